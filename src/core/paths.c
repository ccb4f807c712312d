// SPDX-License-Identifier: Apache-2.0
/*
 * Path resolution for data and helper binaries; reads the environment with secure_getenv.
 * Never falls back to a fixed path in a shared directory (upstream's /tmp/agentkernel): another
 * user could create it first and plant records there.
 */
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-config.h"
#include "core/private-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"

#define PASSWD_MAX (16u << 20)

/* The home directory of uid in /etc/passwd (files only: the CLI is static, NSS modules cannot
 * be loaded), or NULL. */
static char *passwd_home(uid_t uid)
{
        cleanup_buf struct buf b = BUF_INIT;
        char *save = NULL;

        if (read_file_at(AT_FDCWD, "/etc/passwd", &b, PASSWD_MAX) < 0 || !b.data)
                return NULL;
        for (char *line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[7] = {0}, *p = line;
                uint32_t u;
                size_t n = 0;
                while (n < 7) {
                        f[n++] = p;
                        p = strchr(p, ':');
                        if (!p)
                                break;
                        *p++ = '\0';
                }
                if (n < 6 || safe_atou32(f[2], &u) < 0 || u != (uint32_t)uid)
                        continue;
                return f[5][0] == '/' ? strdup(f[5]) : NULL;
        }
        return NULL;
}

/* The caller's home: $HOME, else the passwd entry's. */
static int home_dir(char **ret, struct ak_err *err)
{
        const char *home = secure_getenv("HOME");
        char *h;

        if (home && *home) {
                if (home[0] != '/')
                        return ak_err_set(err, EINVAL,
                                          "HOME '%s' is not an absolute path; fix HOME, or set "
                                          "AGENTKERNEL_DATA_DIR to a private directory",
                                          home);
                h = strdup(home);
        } else {
                h = passwd_home(geteuid());
                if (!h)
                        return ak_err_set(err, ENOENT,
                                          "no place for agentkernel's data: HOME is not set and "
                                          "uid %u has no home directory in /etc/passwd; set HOME, "
                                          "or AGENTKERNEL_DATA_DIR to a private directory",
                                          (unsigned)geteuid());
        }
        if (!h)
                return ak_err_oom(err);
        *ret = h;
        return 0;
}

/* $AGENTKERNEL_DATA_DIR made absolute, or NULL when unset. */
static int env_data_dir(char **ret, struct ak_err *err)
{
        const char *d = secure_getenv("AGENTKERNEL_DATA_DIR");
        char cwd[PATH_MAX];

        *ret = NULL;
        if (!d || !*d)
                return 0;
        if (d[0] == '/') {
                *ret = strdup(d);
        } else {
                if (!getcwd(cwd, sizeof(cwd)))
                        return ak_err_errno(err, errno, "AGENTKERNEL_DATA_DIR '%s': getcwd", d);
                if (asprintf(ret, "%s/%s", cwd, d) < 0)
                        *ret = NULL;
        }
        return *ret ? 1 : ak_err_oom(err);
}

static int under_home(const char *suffix, char **ret, struct ak_err *err)
{
        cleanup_free char *home = NULL;
        int r = env_data_dir(ret, err);

        if (r != 0)
                return r < 0 ? r : 0;
        r = home_dir(&home, err);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s%s", streq(home, "/") ? "" : home, suffix) < 0)
                return ak_err_oom(err);
        return 0;
}

int paths_data_dir_path(char **ret, struct ak_err *err)
{
        return under_home("/.local/share/agentkernel", ret, err);
}

int paths_user_dir_path(char **ret, struct ak_err *err)
{
        return under_home("/.agentkernel", ret, err);
}

static int open_private(int (*where)(char **, struct ak_err *), const char *what, char **ret_path,
                        struct ak_err *err)
{
        cleanup_free char *path = NULL;
        struct ak_err e = {0};
        int fd = where(&path, err);

        if (fd < 0)
                return fd;
        fd = private_dir_open(path, what, PRIVATE_CREATE, ret_path, &e);
        if (fd < 0)
                return ak_err_set(err, e.code, "%s (AGENTKERNEL_DATA_DIR chooses another place)",
                                  ak_err_msg(&e));
        return fd;
}

int paths_data_dir_open(char **ret_path, struct ak_err *err)
{
        return open_private(paths_data_dir_path, "data directory", ret_path, err);
}

int paths_user_dir_open(char **ret_path, struct ak_err *err)
{
        return open_private(paths_user_dir_path, "agentkernel directory", ret_path, err);
}

char *paths_data_dir(void)
{
        char *path = NULL;
        int fd = paths_data_dir_open(&path, NULL);

        if (fd < 0)
                return NULL;
        close(fd);
        return path;
}

int paths_helper(const char *name, const char *env_var, char *out, size_t len, struct ak_err *err)
{
        const char *env = secure_getenv(env_var);
        char exe[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                if (access(env, X_OK) < 0)
                        return ak_err_errno(err, errno, "%s '%s'", env_var, env);
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

int paths_user_dir_open_for(bool create, struct ak_err *err)
{
        cleanup_free char *dir = NULL;
        struct stat st;

        if (!create) {
                int r = paths_user_dir_path(&dir, err);
                if (r < 0)
                        return r;
                if (lstat(dir, &st) < 0 && errno == ENOENT)
                        return -ENOENT;
        }
        return paths_user_dir_open(NULL, err);
}
