/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Templates (`template list|save|add|remove`, `create/run --template`, `init -t`; reference/
 * upstream-agents.md §6): an agentkernel.toml with an optional `[template] help_text`, either
 * built in (upstream's catalog, by name) or the user's own in <data dir>/templates/NAME.toml,
 * upstream's place. The user's directory is a private directory (0700, the caller's, never a
 * link: core/private-dir.h), each template a private file (0600, regular, the caller's, never
 * followed through a link, at most TEMPLATE_MAX_BYTES), written atomically. A template's text is
 * parsed like any agentkernel.toml, and one with [[files]] is refused (a template has no
 * directory its sources could be in).
 *
 * Resolution of a spec, as upstream: a path (it has a '/' or ends in .toml) is read through the
 * trusted reader (config_load: it must be approved like any agentkernel.toml); else the local
 * template of that name, else the built-in one. A github:OWNER/REPO[/PATH][@REF] spec is
 * fetched only by `template add` (template_fetch_github), which stores it as a local template.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "shared/err.h"

#define TEMPLATE_NAME_MAX 64
#define TEMPLATE_MAX_BYTES (64u << 10)
#define TEMPLATES_MAX 1024 /* local templates listed */

enum template_source {
        TEMPLATE_BUILTIN,
        TEMPLATE_LOCAL,
        TEMPLATE_FILE,
};

struct template
{
        char *name;
        enum template_source source;
        char *text;         /* the TOML as written */
        struct config *cfg; /* parsed */
};

void template_done(struct template *t);
DEFINE_CLEANUP_DONE(struct template, template_done)
#define cleanup_template CLEANUP_FUNC(template_done)

const char *template_source_name(enum template_source s);

/* A template's name: 1 to TEMPLATE_NAME_MAX of [A-Za-z0-9._-], first a letter or digit, not
 * ending in ".toml". 0 or -EINVAL with a message. */
int template_name_check(const char *name, struct ak_err *err);

/* Resolves spec as above into *ret. -ENOENT with upstream's message when there is none. */
int template_resolve(const char *spec, struct template *ret, struct ak_err *err);

/* Every template: the built-ins, the local ones replacing a built-in of the same name, sorted
 * by name. A local file that is not a valid template (bad name, link, foreign, too big,
 * unparsable) is skipped and named in *ret_warnings (NULL-terminated, never NULL). */
int template_list(struct template **ret, size_t *ret_n, char ***ret_warnings, struct ak_err *err);
void template_list_free(struct template *t, size_t n);

/* Stores text (checked: it must parse as a template) as the local template name (replacing one
 * of that name); *ret_path (may be NULL) gets its path. */
int template_save(const char *name, const char *text, size_t len, char **ret_path,
                  struct ak_err *err);

/* Fetches github:OWNER/REPO[/PATH][@REF] (template-github.c: PATH default agentkernel.toml,
 * ".toml" added when missing; REF a branch or tag, default the repository's default branch)
 * into *ret_text (at most TEMPLATE_MAX_BYTES, unchecked as a template) and *ret_name (the
 * file's name without .toml, or REPO for agentkernel.toml). Nothing of the repository is run or
 * written as a file; see the file's comment. */
struct buf;
int template_fetch_github(const char *spec, char **ret_name, struct buf *ret_text,
                          struct ak_err *err);

/* Removes the local template name: -EPERM for a built-in name without a local one, -ENOENT when
 * there is none. */
int template_remove(const char *name, struct ak_err *err);

/* The built-in catalog (template-catalog.c). */
struct template_builtin {
        const char *name;
        const char *text;
};
extern const struct template_builtin template_builtins[];
extern const size_t template_builtins_n;
