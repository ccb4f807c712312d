/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Coding agents' compatibility modes (`[agent] compatibility_mode`, MCP sandbox_run's
 * `compatibility_mode`; upstream's src/permissions.rs): what a sandbox made for Claude Code,
 * Codex or Gemini CLI gets. Upstream applied only the permissions part of a mode (its network
 * lists, environment and key variable were dead code); here every part is applied where the
 * caller did not say otherwise: the base profile, the workspace, the `ai-agent` seccomp filter,
 * the network (proxy mode with the mode's hosts as its policy), the environment. The key
 * variable is data for the secrets' injection (issue 15, part B), applied nowhere yet.
 */
#pragma once

#include <stdbool.h>

#include "shared/err.h"

struct compat_mode {
        const char *name;           /* native, claude, codex, gemini */
        const char *const *aliases; /* other names upstream accepts; NULL-terminated */
        const char *profile;        /* the base permission profile */
        bool network;               /* network on even where the profile has none */
        bool mount_cwd;             /* the current directory at /workspace */
        const char *seccomp;        /* the seccomp filter, or NULL: the profile's */
        /* the network policy: allowed hosts (always-allow, then allow), denied hosts; with an
         * allow list, nothing else is allowed (NULL-terminated, or NULL: the default policy) */
        const char *const *allow, *const *block;
        const char *const *env;  /* KEY=VALUE for every command; NULL-terminated, or NULL */
        const char *api_key_env; /* the provider key's variable, or NULL */
};

/* The mode called name (upstream's names and aliases, case-insensitive), or -EINVAL with a
 * message listing the modes. NULL name: native. */
int compat_mode_lookup(const char *name, const struct compat_mode **ret, struct ak_err *err);

/* True when m changes nothing (native). */
bool compat_mode_is_native(const struct compat_mode *m);

struct create_opts;
struct sandbox_state;

/* Applies m (not native) to a new sandbox's state st, built from o: records the mode, and sets
 * what o left unset -- network on, the workspace, the seccomp filter, the network policy of the
 * mode's hosts -- and appends the mode's environment (the caller's own variables override it
 * later). The profile is the caller's (the mode's when o names none). */
int compat_mode_apply(const struct compat_mode *m, const struct create_opts *o,
                      struct sandbox_state *st, struct ak_err *err);
