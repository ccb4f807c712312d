// SPDX-License-Identifier: Apache-2.0
/*
 * The API's routes about the host rather than one sandbox (upstream's /doctor, /backends,
 * /agents, /images): what works here, which backends and coding agents there are, and the local
 * image store. Images are removed through image-use.h, the CLI's own check (an image a sandbox
 * uses is refused). Never prints; every failure is a status and a message.
 */
#include "api-private.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/backend.h"
#include "core/coding-agents.h"
#include "core/plugins.h"
#include "image/image-store.h"
#include "image/image-use.h"
#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define WHY_MAX 512
#define IMAGE_NAME_MAX 512

/* ---- /backends ---- */

static json_t *backend_json(const struct backend_ops *b, const struct backend_ops *def)
{
        char why[WHY_MAX] = "";
        int up = backend_probe(b, why, sizeof(why));
        json_t *caps = json_array();

        json_array_append_new(caps, json_string("exec"));
        json_array_append_new(caps, json_string("files"));
        if (b->caps & BACKEND_CAP_ATTACH)
                json_array_append_new(caps, json_string("attach"));
        if (b->caps & BACKEND_CAP_RESIZE)
                json_array_append_new(caps, json_string("resize"));
        if (b->pause)
                json_array_append_new(caps, json_string("pause"));
        return json_pack("{s:s,s:s,s:b,s:b,s:s,s:o}", "name", b->name, "description",
                         b->description ? b->description : "", "available", up == 1, "default",
                         b == def, "message",
                         why[0]    ? why
                         : up == 1 ? "available"
                                   : "not available",
                         "capabilities", caps);
}

int api_backends(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const struct backend_ops *const *all = backend_all();
        const struct backend_ops *def = backend_default();
        json_t *list = json_array();

        (void)c;
        (void)a;
        for (size_t i = 0; all && all[i]; i++)
                json_array_append_new(list, backend_json(all[i], def));
        return api_ok(r, 200, list);
}

/* ---- /doctor ---- */

static void check(json_t *checks, const char *name, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void check(json_t *checks, const char *name, const char *status, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_array_append_new(
            checks, json_pack("{s:s,s:s,s:s}", "name", name, "status", status, "message", msg));
}

int api_doctor(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const struct backend_ops *const *all = backend_all();
        const struct backend_ops *def = backend_default();
        cleanup_state_list struct state_list l = {0};
        cleanup_free char *audit = audit_path();
        json_t *checks = json_array();
        struct statvfs vfs;
        struct stat st;
        bool healthy = true;

        (void)a;
        for (size_t i = 0; all && all[i]; i++) {
                char why[WHY_MAX] = "";
                bool up = backend_probe(all[i], why, sizeof(why)) == 1;
                /* the default backend must work; the others are options */
                if (!up && all[i] == def)
                        healthy = false;
                check(checks, all[i]->name,
                      up              ? "ok"
                      : all[i] == def ? "error"
                                      : "info",
                      "%s", why);
        }
        check(checks, "data", "ok", "state in %s", manager_data_dir(c->m));
        if (manager_list(c->m, NULL, NULL, &l) == 0) {
                size_t running = 0;
                for (size_t i = 0; i < l.n; i++)
                        running += manager_is_running(c->m, l.items[i]);
                check(checks, "sandboxes", "info", "%zu recorded, %zu running", l.n, running);
        } else {
                healthy = false;
                check(checks, "sandboxes", "error", "the sandbox records cannot be read");
        }
        if (statvfs(manager_data_dir(c->m), &vfs) == 0) {
                unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20;
                check(checks, "disk", avail < 512 ? "warning" : "ok", "%llu MB free under %s",
                      avail, manager_data_dir(c->m));
        }
        if (!audit_enabled())
                check(checks, "audit", "warning", "the audit log is off (AGENTKERNEL_AUDIT)");
        else if (audit && stat(audit, &st) == 0)
                check(checks, "audit", "ok", "%s, %llu KB", audit,
                      (unsigned long long)st.st_size >> 10);
        else
                check(checks, "audit", "info", "no audit log yet");
        check(checks, "backend", "info", "default backend: %s", manager_default_backend());
        return api_ok(r, 200, json_pack("{s:o,s:b}", "checks", checks, "healthy", healthy));
}

/* ---- /agents ---- */

/* Where name is an executable file in a directory of PATH (into full), or false. */
static bool in_path(const char *name, char *full, size_t len)
{
        const char *path = getenv("PATH");
        cleanup_free char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;

        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
             d = strtok_r(NULL, ":", &save)) {
                struct stat st;
                if (d[0] != '/')
                        continue; /* a relative PATH entry depends on where serve was started */
                if ((size_t)snprintf(full, len, "%s/%s", d, name) >= len)
                        continue;
                if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
                        return true;
        }
        return false;
}

#define VERSION_TIMEOUT_MS 2000 /* of one `CLI --version` */
#define VERSIONS_BUDGET_MS 4000 /* of all of them, for one GET /agents */
#define VERSION_OUT_MAX 4096    /* of its output read */

/* The version a CLI prints for --version (upstream's cli_version): its first line's first token
 * that starts with a digit and has a dot ("2.1.3" of "2.1.3 (Claude Code)"), at most 63
 * characters of [0-9A-Za-z.+-]. Run without a shell, stdin /dev/null, only PATH and HOME in its
 * environment, in a process group of its own killed at the deadline: a CLI that hangs or
 * floods costs at most timeout_ms and VERSION_OUT_MAX bytes. false when it says none. */
static bool cli_version(const char *full, int timeout_ms, char out[64])
{
        char *argv[] = {(char *)full, "--version", NULL};
        char env_path[4096], env_home[1024], *envp[3] = {NULL, NULL, NULL};
        const char *p = getenv("PATH"), *h = getenv("HOME");
        char buf[VERSION_OUT_MAX + 1];
        size_t got = 0;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, all;
        int fds[2], k = 0;
        int64_t until = now_monotonic_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;
        pid_t pid;
        bool ok = false;

        out[0] = '\0';
        (void)snprintf(env_path, sizeof(env_path), "PATH=%s", p ? p : "/usr/bin:/bin");
        envp[k++] = env_path;
        if (h && (size_t)snprintf(env_home, sizeof(env_home), "HOME=%s", h) < sizeof(env_home))
                envp[k++] = env_home;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return false;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&at);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                          POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setpgroup(&at, 0);
        k = posix_spawn(&pid, full, &fa, &at, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        close(fds[1]);
        if (k != 0) {
                close(fds[0]);
                return false;
        }
        for (;;) {
                int64_t left = (until - now_monotonic_ns()) / NSEC_PER_MSEC;
                struct pollfd pfd = {fds[0], POLLIN, 0};
                ssize_t n;
                if (left <= 0 || got >= VERSION_OUT_MAX)
                        break;
                if (poll(&pfd, 1, (int)left) <= 0)
                        continue; /* EINTR or the deadline: checked above */
                n = read(fds[0], buf + got, VERSION_OUT_MAX - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
                if (memchr(buf, '\n', got))
                        break; /* the first line says it */
        }
        close(fds[0]);
        (void)kill(-pid, SIGKILL); /* done or not: nothing of it outlives the request */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        buf[got] = '\0';
        for (char *t = buf; *t && !ok; t++) {
                size_t n = 0;
                if (!(*t >= '0' && *t <= '9') || (t > buf && strchr(".-+0123456789", t[-1])))
                        continue;
                while (n < 63 && t[n] && (isalnum((unsigned char)t[n]) || strchr(".+-", t[n])))
                        n++;
                if (memchr(t, '.', n)) {
                        memcpy(out, t, n);
                        out[n] = '\0';
                        ok = true;
                }
        }
        return ok;
}

int api_agents(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        size_t n;
        const struct coding_agent *ag = coding_agents(&n);
        json_t *list = json_array();
        const char *home = getenv("HOME");
        char cwd[PATH_MAX];
        int64_t until = now_monotonic_ns() + VERSIONS_BUDGET_MS * NSEC_PER_MSEC;

        (void)c;
        (void)a;
        if (!getcwd(cwd, sizeof(cwd)))
                cwd[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                char full[4096], version[64], install[256];
                bool installed = in_path(ag[i].binary, full, sizeof(full)), has_version = false;
                const struct plugin_target *t = plugin_target_find(ag[i].name);
                bool global = t && !t->project_only && home && home[0] == '/';
                int64_t left = (until - now_monotonic_ns()) / NSEC_PER_MSEC;
                json_t *keys = json_array(), *o;
                if (installed && left > 0)
                        has_version = cli_version(
                            full, left < VERSION_TIMEOUT_MS ? (int)left : VERSION_TIMEOUT_MS,
                            version);
                (void)snprintf(install, sizeof(install), "npm install -g %s", ag[i].npm_package);
                for (size_t k = 0; k < AGENT_KEYS_MAX && ag[i].keys[k].env; k++)
                        json_array_append_new(keys, json_string(ag[i].keys[k].env));
                /* names of the variables only: never whether or what they hold */
                o = json_pack(
                    "{s:s,s:s,s:b,s:s,s:s,s:b,s:o,s:n,s:s,s:s,s:b,s:b,s:b,s:b,s:o}", "name",
                    ag[i].name, "display_name", ag[i].display, "enabled", installed, "description",
                    ag[i].display, "package", ag[i].npm_package, "cli_installed", installed,
                    "cli_version", has_version ? json_string(version) : json_null(),
                    "tested_version",
                    /* no versions tested here: an installed CLI is "untested" */
                    "compatibility_status", installed ? "untested_version" : "not_installed",
                    "install_command", install, "integration_supported", t != NULL,
                    "integration_project_installed", t && cwd[0] && plugin_installed(t, cwd),
                    "integration_global_installed", global && plugin_installed(t, home),
                    "integration_global_supported", global, "api_key_env", keys);
                json_array_append_new(list, o);
        }
        return api_ok(r, 200, list);
}

/* ---- /images ---- */

static int host_store_open(struct api_ctx *c, int mode, struct image_store *s, struct api_result *r)
{
        struct ak_err err = {0};

        if (image_store_open(manager_data_dir(c->m), mode, s, &err) < 0)
                return api_fail_err(r, &err);
        return 0;
}

/* ?backend=NAME: a backend with images of its own (docker, podman), into *ret; none, or
 * native: *ret NULL (the local store). -1 (answered) for another. */
static int images_backend(const struct api_args *a, const struct backend_ops **ret,
                          struct api_result *r)
{
        const char *name = api_query_get(a, "backend");
        const struct backend_ops *b;

        *ret = NULL;
        if (!name || streq(name, "native"))
                return 0;
        b = backend_find(name);
        if (!b)
                return api_fail(r, 400, "unknown backend '%.64s'", name);
        if (!b->images_list || !b->image_remove)
                return api_fail(r, 400, "the %s backend keeps no images of its own", b->name);
        *ret = b;
        return 0;
}

/* The images (references) that sandboxes of backend b are made of, and who uses each. */
static int images_of_sandboxes(struct api_ctx *c, const struct backend_ops *b, char ***ret,
                               char ***ret_users)
{
        cleanup_state_list struct state_list l = {0};
        cleanup_strv char **refs = NULL, **users = NULL;

        if (manager_list(c->m, NULL, NULL, &l) < 0)
                return -EIO;
        for (size_t i = 0; i < l.n; i++)
                if (l.items[i]->image && streq(manager_backend_name(l.items[i]), b->name) &&
                    (strv_push(&refs, l.items[i]->image) < 0 ||
                     strv_push(&users, l.items[i]->name) < 0))
                        return -ENOMEM;
        *ret = TAKE_PTR(refs);
        *ret_users = TAKE_PTR(users);
        return 0;
}

int api_images_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        struct image_record *v = NULL;
        struct ak_err err = {0};
        const struct backend_ops *b;
        json_t *list;
        size_t n = 0;

        if (images_backend(a, &b, r) < 0)
                return -1;
        if (b) {
                if (b->images_list(&list, &err) < 0)
                        return api_fail(r, err.code == ENOENT ? 503 : api_status_of(err.code), "%s",
                                        ak_err_msg(&err));
                return api_ok(r, 200, list);
        }
        if (host_store_open(c, IMAGE_STORE_SHARED, &s, r) < 0)
                return -1;
        if (image_store_list(&s, &v, &n, &err) < 0)
                return api_fail_err(r, &err);
        list = json_array();
        for (size_t i = 0; i < n; i++) {
                json_t *names = json_array();
                uint64_t size = 0;
                for (char **nm = v[i].names; nm && *nm; nm++)
                        json_array_append_new(names, json_string(*nm));
                for (size_t k = 0; k < v[i].n_layers; k++)
                        size += v[i].layers[k].unpacked;
                json_array_append_new(list,
                                      json_pack("{s:s,s:o,s:I,s:I,s:s?}", "id", v[i].id, "names",
                                                names, "layers", (json_int_t)v[i].n_layers, "size",
                                                (json_int_t)size, "pulled_at", v[i].pulled_at));
        }
        image_records_free(v, n);
        return api_ok(r, 200, list);
}

/* An image name or id as a URL gives it: the characters of references and digests only (as
 * upstream checks them), at most IMAGE_NAME_MAX bytes, never an option. */
static bool image_name_ok(const char *s)
{
        size_t n = strlen(s);

        if (!n || n > IMAGE_NAME_MAX || s[0] == '-' || s[0] == '.' || s[0] == '/')
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@") ==
               n;
}

int api_image_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_strv char **ids = NULL;
        cleanup_strv char **users = NULL;
        const char *name = a->path ? a->path + strspn(a->path, "/") : NULL;
        const char *force = api_query_get(a, "force");
        struct ak_err err = {0};
        const struct backend_ops *b;
        uint64_t freed = 0;

        if (!name || !image_name_ok(name))
                return api_fail(r, 400, "invalid image name or id");
        if (force && strcmp(force, "true") && strcmp(force, "1") && strcmp(force, "false") &&
            strcmp(force, "0"))
                return api_fail(r, 400, "force must be true or false");
        if (images_backend(a, &b, r) < 0)
                return -1;
        if (b) {
                /* never forced: a sandbox's image, or a container's, stays */
                if (force && (!strcmp(force, "true") || !strcmp(force, "1")))
                        return api_fail(r, 400, "force is not taken for the %s backend", b->name);
                if (images_of_sandboxes(c, b, &ids, &users) < 0)
                        return api_fail(r, 500, "cannot tell which images sandboxes use");
                if (b->image_remove(name, ids, users, &err) < 0)
                        return api_fail_err(r, &err);
                return api_ok(r, 200, json_pack("{s:s}", "removed", name));
        }
        if (host_store_open(c, IMAGE_STORE_EXCLUSIVE, &s, r) < 0)
                return -1;
        ids = image_ids_in_use(&s, c->m, &users);
        if (!ids)
                return api_fail(r, 500, "cannot tell which images sandboxes use");
        if (image_remove_checked(&s, ids, users, name,
                                 force && (!strcmp(force, "true") || !strcmp(force, "1")), &freed,
                                 &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(r, 200,
                      json_pack("{s:s,s:I}", "removed", name, "freed_bytes", (json_int_t)freed));
}
