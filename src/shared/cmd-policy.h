/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command policy ([security.commands] in agentkernel.toml): which programs a caller may ask a
 * sandbox to run. Checked by the host before it asks and by the agent, which also knows what
 * the name resolves to inside the sandbox (PATH, symlinks).
 *
 * Matching. A command is named by argv[0] and, when it can be found, by its target: the real
 * path of the file that would be executed. An entry with a '/' is a path; an entry without is a
 * name, looked up with the command's PATH to a target of its own.
 *  - blocked when an entry equals argv[0], argv[0]'s last component, the target or the target's
 *    last component, or when the entry's own target is the command's target;
 *  - with allowlist_only, allowed only when the command's target is the target of an allow entry
 *    (or the entry names it by path): an allowed name cannot be borrowed by a symlink or a copy
 *    elsewhere. A command whose target cannot be found is refused;
 *  - without allowlist_only, the allow list is not consulted (upstream's rule).
 * What a policy cannot stop: an allowed interpreter runs anything (`sh -c`, `python3 -c`), and a
 * process in the sandbox may replace an allowed file. The sandbox is the boundary; the policy
 * says what callers may ask for.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CMD_POLICY_MAX_ENTRIES 256
#define CMD_POLICY_ENTRY_MAX 256

struct cmd_policy {
        char *const *allow; /* NULL-terminated, may be NULL */
        char *const *block;
        bool allowlist_only;
};

bool cmd_policy_empty(const struct cmd_policy *p);

/* Resolves a command name (with PATH, relative to cwd) to the real path of the file that would
 * run; malloc'd, or NULL when there is none. */
typedef char *(*cmd_resolver)(void *ctx, const char *name);

/* NULL when argv0 may run; else why not (a static string). resolve may be NULL (host side: only
 * names are compared, and allowlist_only then accepts a name listed in allow). */
const char *cmd_policy_check(const struct cmd_policy *p, const char *argv0, cmd_resolver resolve,
                             void *ctx);

/* The real path of the executable file that execvp(name) with PATH `path` (NULL: the default)
 * would run, relative names against cwd. malloc'd, or NULL. */
char *cmd_resolve(const char *name, const char *path, const char *cwd);
