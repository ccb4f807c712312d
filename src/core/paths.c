// SPDX-License-Identifier: Apache-2.0
/* Path resolution for data and helper binaries; reads the environment with secure_getenv. */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"

char *paths_data_dir(void)
{
        const char *d = secure_getenv("AGENTKERNEL_DATA_DIR");
        const char *home = getenv("HOME");
        char *out = NULL;

        if (d && *d)
                return strdup(d);
        if (home && *home) {
                if (asprintf(&out, "%s/.local/share/agentkernel", home) < 0)
                        return NULL;
                return out;
        }
        return strdup("/tmp/agentkernel");
}

char *paths_user_dir(void)
{
        const char *d = secure_getenv("AGENTKERNEL_DATA_DIR");
        const char *home = getenv("HOME");
        char *out = NULL;

        if (d && *d)
                return strdup(d);
        if (home && *home)
                return asprintf(&out, "%s/.agentkernel", home) < 0 ? NULL : out;
        return strdup("/tmp/agentkernel");
}

int paths_helper(const char *name, const char *env_var, char *out, size_t len, struct ak_err *err)
{
        const char *env = secure_getenv(env_var);
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                if (access(env, X_OK) < 0)
                        return ak_err_set(err, errno, "%s '%s': %s", env_var, env, strerror(errno));
                (void)snprintf(out, len, "%s", env);
                return 0;
        }
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
                char *slash;
                exe[n] = '\0';
                slash = strrchr(exe, '/');
                if (slash) {
                        *slash = '\0';
                        (void)snprintf(out, len, "%s/%s", exe, name);
                        if (access(out, X_OK) == 0)
                                return 0;
                }
        }
        (void)snprintf(out, len, "%s/%s", AK_LIBEXECDIR, name);
        if (access(out, X_OK) == 0)
                return 0;
        return ak_err_set(err, ENOENT,
                          "%s not found next to this program or in %s; reinstall, or set %s", name,
                          AK_LIBEXECDIR, env_var);
}

int paths_agent_binary(char *out, size_t len, struct ak_err *err)
{
        return paths_helper("agentkernel-agent", "AGENTKERNEL_AGENT", out, len, err);
}
