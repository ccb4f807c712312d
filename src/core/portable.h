/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox's portable configuration (`export-config`, `import-config`, upstream's): the part of
 * an agentkernel.toml that says what a sandbox is — name, image, init script, resources, agent,
 * ports — and nothing that is this host's or this user's (no workspace, volumes, files to copy,
 * uuid, secrets; no security settings: an imported file does not choose its own profile).
 */
#pragma once

#include "core/config.h"
#include "core/manager.h"
#include "core/state.h"
#include "shared/err.h"

/* st's portable configuration as TOML text (malloc'd in *ret). */
int portable_export(const struct sandbox_state *st, char **ret, struct ak_err *err);

/* What of c an import applies, into o (strings point into c, o->ports into ports; as_name
 * replaces c's name). The rest of c is named in *ret_ignored (NULL-terminated section names,
 * malloc'd, never NULL) so the caller can say it was not applied. */
int portable_import(const struct config *c, const char *as_name, struct create_opts *o,
                    struct port_spec ports[CONFIG_MAX_PORTS], char ***ret_ignored,
                    struct ak_err *err);
