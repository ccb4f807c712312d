// SPDX-License-Identifier: Apache-2.0
/*
 * The API's routes about the host rather than one sandbox (upstream's /doctor, /backends,
 * /agents, /images): what works here, which backends and coding agents there are, and the local
 * image store. Images are removed through image-use.h, the CLI's own check (an image a sandbox
 * uses is refused). Never prints; every failure is a status and a message.
 */
#include "api-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/backend.h"
#include "core/coding-agents.h"
#include "image/image-store.h"
#include "image/image-use.h"
#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/macro.h"
#include "shared/strv.h"

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

/* Whether name is an executable file in a directory of PATH. */
static bool in_path(const char *name)
{
        const char *path = getenv("PATH");
        cleanup_free char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;

        for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
             d = strtok_r(NULL, ":", &save)) {
                char full[4096];
                struct stat st;
                if (d[0] != '/')
                        continue; /* a relative PATH entry depends on where serve was started */
                (void)snprintf(full, sizeof(full), "%s/%s", d, name);
                if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
                        return true;
        }
        return false;
}

int api_agents(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        size_t n;
        const struct coding_agent *ag = coding_agents(&n);
        json_t *list = json_array();

        (void)c;
        (void)a;
        for (size_t i = 0; i < n; i++) {
                bool installed = in_path(ag[i].binary);
                char install[256];
                json_t *keys = json_array();
                (void)snprintf(install, sizeof(install), "npm install -g %s", ag[i].npm_package);
                for (size_t k = 0; k < AGENT_KEYS_MAX && ag[i].keys[k].env; k++)
                        json_array_append_new(keys, json_string(ag[i].keys[k].env));
                /* names of the variables only: never whether or what they hold */
                json_array_append_new(
                    list, json_pack("{s:s,s:s,s:b,s:s,s:s,s:b,s:s,s:s,s:o}", "name", ag[i].name,
                                    "display_name", ag[i].display, "enabled", installed,
                                    "description", ag[i].display, "package", ag[i].npm_package,
                                    "cli_installed", installed, "compatibility_status",
                                    installed ? "untested_version" : "not_installed",
                                    "install_command", install, "api_key_env", keys));
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

int api_images_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        struct image_record *v = NULL;
        struct ak_err err = {0};
        json_t *list;
        size_t n = 0;

        (void)a;
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
        uint64_t freed = 0;

        if (!name || !image_name_ok(name))
                return api_fail(r, 400, "invalid image name or id");
        if (force && strcmp(force, "true") && strcmp(force, "1") && strcmp(force, "false") &&
            strcmp(force, "0"))
                return api_fail(r, 400, "force must be true or false");
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
