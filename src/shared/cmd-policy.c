// SPDX-License-Identifier: Apache-2.0
/* Command policy matching (cmd-policy.h), shared by the host's check and the agent's: pure
 * string and path work, no allocation kept, nothing printed. */
#include "cmd-policy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "macro.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

bool cmd_policy_empty(const struct cmd_policy *p)
{
        return !p ||
               (!p->allowlist_only && !(p->allow && p->allow[0]) && !(p->block && p->block[0]));
}

static const char *last_component(const char *s)
{
        const char *slash = strrchr(s, '/');
        return slash ? slash + 1 : s;
}

/* Does entry e name the command (argv0, target)? */
static bool entry_matches(const char *e, const char *argv0, const char *target, bool by_name,
                          cmd_resolver resolve, void *ctx)
{
        if (by_name) {
                if (streq(e, argv0) || streq(e, last_component(argv0)))
                        return true;
                if (target && streq(e, last_component(target)))
                        return true;
        }
        if (target) {
                cleanup_free char *et = NULL;
                if (streq(e, target))
                        return true;
                et = resolve ? resolve(ctx, e) : NULL;
                if (et && streq(et, target))
                        return true;
        }
        return false;
}

const char *cmd_policy_check(const struct cmd_policy *p, const char *argv0, cmd_resolver resolve,
                             void *ctx)
{
        cleanup_free char *target = NULL;
        bool allowed = false;

        if (cmd_policy_empty(p))
                return NULL;
        if (resolve)
                target = resolve(ctx, argv0);
        for (char *const *e = p->block; e && *e; e++)
                if (entry_matches(*e, argv0, target, true, resolve, ctx))
                        return "blocked by the command policy";
        if (!p->allowlist_only)
                return NULL;
        if (resolve && !target)
                return "not found, and the command policy allows only listed commands";
        for (char *const *e = p->allow; e && *e && !allowed; e++)
                allowed = resolve ? entry_matches(*e, argv0, target, false, resolve, ctx)
                                  : entry_matches(*e, argv0, NULL, true, NULL, NULL);
        return allowed ? NULL : "not in the command policy's allow list";
}

static char *real_if_executable(const char *p)
{
        struct stat st;
        char *real;

        if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || access(p, X_OK) < 0)
                return NULL;
        real = realpath(p, NULL);
        return real;
}

char *cmd_resolve(const char *name, const char *path, const char *cwd)
{
        char buf[PATH_MAX];

        if (!name || !*name || strlen(name) >= PATH_MAX)
                return NULL;
        if (strchr(name, '/')) {
                if (name[0] == '/' || !cwd)
                        return real_if_executable(name);
                if ((size_t)snprintf(buf, sizeof(buf), "%s/%s", cwd, name) >= sizeof(buf))
                        return NULL;
                return real_if_executable(buf);
        }
        for (const char *p = path ? path : DEFAULT_PATH;;) {
                const char *end = strchr(p, ':');
                size_t dlen = end ? (size_t)(end - p) : strlen(p);
                int n;
                if (dlen == 0)
                        n = snprintf(buf, sizeof(buf), "%s/%s", cwd ? cwd : ".", name);
                else
                        n = snprintf(buf, sizeof(buf), "%.*s/%s", (int)dlen, p, name);
                if (n > 0 && (size_t)n < sizeof(buf)) {
                        char *real = real_if_executable(buf);
                        if (real)
                                return real;
                }
                if (!end)
                        return NULL;
                p = end + 1;
        }
}
