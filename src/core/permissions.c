// SPDX-License-Identifier: Apache-2.0
/*
 * Interactive permission grants (permissions.h): the in-memory store of one server process and
 * the `always` grants it keeps in permissions.json, which is checked like every file agentkernel
 * reads back (owner, mode, no link, size, schema) before any of it is believed.
 */
#include "permissions.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"

#define PERM_LOCK ".permissions.lock"
#define PERM_VERSION 1

static const char *const kinds[PERM_KIND_N] = {
    "sandbox_remove",  "sandbox_create", "network_access",
    "mount_directory", "sudo_exec",      "file_delete",
};
static const char *const scopes[PERM_SCOPE_N] = {"once", "session", "always"};

int perm_kind_parse(const char *s)
{
        for (int i = 0; s && i < PERM_KIND_N; i++)
                if (!strcmp(s, kinds[i]))
                        return i;
        return -EINVAL;
}

const char *perm_kind_name(enum perm_kind k)
{
        return (unsigned)k < PERM_KIND_N ? kinds[k] : "unknown";
}

int perm_scope_parse(const char *s)
{
        if (!s)
                return PERM_ONCE;
        for (int i = 0; i < PERM_SCOPE_N; i++)
                if (!strcmp(s, scopes[i]))
                        return i;
        return -EINVAL;
}

const char *perm_scope_name(enum perm_scope s)
{
        return (unsigned)s < PERM_SCOPE_N ? scopes[s] : "unknown";
}

void perm_request_id(char out[PERM_REQUEST_ID_LEN + 1])
{
        memcpy(out, "req_", 4);
        random_hex(out + 4, 16);
}

static void new_grant_id(char out[PERM_ID_LEN + 1])
{
        memcpy(out, "grant_", 6);
        random_hex(out + 6, 16);
}

static bool grant_id_valid(const char *s)
{
        if (!s || strlen(s) != PERM_ID_LEN || strncmp(s, "grant_", 6) != 0)
                return false;
        for (const char *p = s + 6; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* A sandbox named in a grant: 1..PERM_SANDBOX_MAX printable ASCII characters. */
static bool sandbox_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > PERM_SANDBOX_MAX)
                return false;
        for (; *s; s++)
                if (*s < 0x21 || *s > 0x7e)
                        return false;
        return true;
}

/* ---- the file ---- */

/* The directory of permissions.json: the data directory when AGENTKERNEL_DATA_DIR is set (one
 * directory for everything, as tests and multi-instance setups want), else
 * ($XDG_CONFIG_HOME or ~/.config)/agentkernel, upstream's place. -ENOENT with nothing set in
 * err where it does not exist and create is false. */
static int config_dir_open(bool create, char **ret_path, struct ak_err *err)
{
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        cleanup_free char *p = NULL;
        struct stat st;
        int fd;

        if (getenv("AGENTKERNEL_DATA_DIR")) {
                fd = paths_user_dir_open_for(create, err);
                if (fd >= 0 && ret_path)
                        (void)paths_user_dir_path(ret_path, err);
                return fd;
        }
        if (xdg && xdg[0] == '/')
                fd = asprintf(&p, "%s/agentkernel", xdg);
        else if (home && home[0] == '/')
                fd = asprintf(&p, "%s/.config/agentkernel", home);
        else
                return ak_err_set(err, ENOENT,
                                  "no config directory for the permission store: set HOME or "
                                  "XDG_CONFIG_HOME");
        if (fd < 0)
                return ak_err_oom(err);
        if (!create && lstat(p, &st) < 0 && errno == ENOENT)
                return -ENOENT;
        return private_dir_open(p, "config directory", create ? PRIVATE_CREATE : 0, ret_path, err);
}

static int distrust(struct ak_err *err, const char *why)
{
        return ak_err_set(err, EPERM,
                          "the permission store '%s' %s, so none of its grants is believed; "
                          "remove it and grant again (permission_grant)",
                          PERM_FILE, why);
}

/* One entry of the file into g, or false. */
static bool entry_parse(json_t *e, struct perm_grant *g)
{
        json_t *id = json_object_get(e, "id"), *kind = json_object_get(e, "kind"),
               *scope = json_object_get(e, "scope"), *sb = json_object_get(e, "sandbox"),
               *at = json_object_get(e, "granted_at");
        const char *k;
        json_t *v;
        int kn;

        if (!json_is_object(e))
                return false;
        json_object_foreach (e, k, v)
                if (strcmp(k, "id") && strcmp(k, "kind") && strcmp(k, "scope") &&
                    strcmp(k, "sandbox") && strcmp(k, "granted_at"))
                        return false;
        if (!grant_id_valid(json_string_value(id)) ||
            (kn = perm_kind_parse(json_string_value(kind))) < 0 || !json_is_string(scope) ||
            strcmp(json_string_value(scope), "always") != 0 || !json_is_integer(at) ||
            json_integer_value(at) < 0 ||
            !(json_is_null(sb) || sb == NULL || sandbox_valid(json_string_value(sb))))
                return false;
        memset(g, 0, sizeof(*g));
        (void)snprintf(g->id, sizeof(g->id), "%s", json_string_value(id));
        g->kind = (enum perm_kind)kn;
        g->scope = PERM_ALWAYS;
        if (json_is_string(sb))
                (void)snprintf(g->sandbox, sizeof(g->sandbox), "%s", json_string_value(sb));
        g->granted_at = json_integer_value(at);
        return true;
}

/* The grants of permissions.json in dirfd into out (at most PERM_GRANTS_MAX); none when it is
 * missing. -EPERM (with why) when it is not believed. */
static int load_file(int dirfd, struct perm_grant *out, size_t *ret_n, struct ak_err *err)
{
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        json_t *grants, *e;
        const char *k;
        struct stat st;
        size_t i;
        int r;

        *ret_n = 0;
        fd = openat(dirfd, PERM_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return errno == ELOOP ? distrust(err, "is a symbolic link")
                                      : ak_err_errno(err, errno, "cannot read '%s'", PERM_FILE);
        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "cannot read '%s'", PERM_FILE);
        if (!S_ISREG(st.st_mode))
                return distrust(err, "is not a regular file");
        if (st.st_uid != geteuid())
                return distrust(err, "is not owned by you");
        if (st.st_mode & 077)
                return distrust(err, "is open to group or others (it must be mode 0600)");
        if (st.st_size > (off_t)PERM_FILE_MAX)
                return distrust(err, "is larger than 64 KiB");
        r = read_fd_full(fd, &b, PERM_FILE_MAX);
        if (r < 0)
                return r == -EFBIG ? distrust(err, "is larger than 64 KiB")
                                   : ak_err_errno(err, -r, "cannot read '%s'", PERM_FILE);
        o = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, NULL);
        grants = json_object_get(o, "grants");
        if (!json_is_object(o) || !json_is_array(grants) ||
            json_integer_value(json_object_get(o, "version")) != PERM_VERSION ||
            !json_is_integer(json_object_get(o, "version")))
                return distrust(err, "is not valid");
        json_object_foreach (o, k, e)
                if (strcmp(k, "version") && strcmp(k, "grants"))
                        return distrust(err, "is not valid");
        if (json_array_size(grants) > PERM_GRANTS_MAX)
                return distrust(err, "holds more than 256 grants");
        json_array_foreach (grants, i, e) {
                if (!entry_parse(e, &out[i]))
                        return distrust(err, "is not valid");
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(out[j].id, out[i].id))
                                return distrust(err, "is not valid");
        }
        *ret_n = json_array_size(grants);
        return 0;
}

static json_t *grant_json(const struct perm_grant *g)
{
        return json_pack("{s:s,s:s,s:s,s:o,s:I}", "id", g->id, "kind", perm_kind_name(g->kind),
                         "scope", perm_scope_name(g->scope), "sandbox",
                         g->sandbox[0] ? json_string(g->sandbox) : json_null(), "granted_at",
                         (json_int_t)g->granted_at);
}

static int save_file(int dirfd, const struct perm_grant *g, size_t n, struct ak_err *err)
{
        cleanup_json json_t *o = json_pack("{s:i,s:[]}", "version", PERM_VERSION, "grants");
        json_t *a = json_object_get(o, "grants");

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, grant_json(&g[i])) < 0)
                        return ak_err_oom(err);
        if (!a)
                return ak_err_oom(err);
        return private_json_save_at(dirfd, PERM_FILE, o, "the permission store", err);
}

/* Under the file's lock: re-reads it, adds `add` and/or drops `remove_id`, writes it, and makes
 * s's `always` grants the file's. Called with s->lock held. */
static int persist_change(struct perm_store *s, const struct perm_grant *add, const char *remove_id,
                          bool *ret_found, struct ak_err *err)
{
        cleanup_free struct perm_grant *file = calloc(PERM_GRANTS_MAX, sizeof(*file));
        cleanup_close int dirfd = -1, lk = -1;
        size_t n = 0, others = 0, k = 0;
        bool found = false;
        int r;

        if (!file)
                return ak_err_oom(err);
        dirfd = config_dir_open(true, NULL, err);
        if (dirfd < 0)
                return dirfd;
        lk = private_lock_at(dirfd, PERM_LOCK, "the permission store", err);
        if (lk < 0)
                return lk;
        r = load_file(dirfd, file, &n, err);
        if (r < 0)
                return r;
        if (remove_id)
                for (size_t i = 0; i < n; i++)
                        if (!strcmp(file[i].id, remove_id)) {
                                memmove(&file[i], &file[i + 1], (n - i - 1) * sizeof(*file));
                                n--;
                                found = true;
                                break;
                        }
        for (size_t i = 0; i < s->n; i++)
                others += s->grants[i].scope != PERM_ALWAYS;
        if (add) {
                if (n >= PERM_GRANTS_MAX || others + n >= PERM_GRANTS_MAX)
                        return ak_err_set(err, ENOSPC,
                                          "too many permission grants (at most %d): revoke some",
                                          PERM_GRANTS_MAX);
                file[n++] = *add;
        }
        if (add || found) {
                r = save_file(dirfd, file, n, err);
                if (r < 0)
                        return r;
        }
        /* the process's own grants, then the file's (as many as fit) */
        for (size_t i = 0; i < s->n; i++)
                if (s->grants[i].scope != PERM_ALWAYS)
                        s->grants[k++] = s->grants[i];
        for (size_t i = 0; i < n && k < PERM_GRANTS_MAX; i++)
                s->grants[k++] = file[i];
        s->n = k;
        if (ret_found)
                *ret_found = found;
        return 0;
}

/* ---- the store ---- */

void perm_store_init(struct perm_store *s, bool persist)
{
        cleanup_close int dirfd = -1;
        struct ak_err err = {0};

        memset(s, 0, sizeof(*s));
        pthread_mutex_init(&s->lock, NULL);
        s->persist = persist;
        if (!persist)
                return;
        dirfd = config_dir_open(false, NULL, &err);
        if (dirfd == -ENOENT && err.code == 0)
                return;
        if (dirfd < 0 || load_file(dirfd, s->grants, &s->n, &err) < 0) {
                s->n = 0;
                (void)snprintf(s->warning, sizeof(s->warning), "%s", ak_err_msg(&err));
        }
}

void perm_store_done(struct perm_store *s)
{
        pthread_mutex_destroy(&s->lock);
}

bool perm_store_warning(struct perm_store *s, char *out, size_t len)
{
        bool r;

        pthread_mutex_lock(&s->lock);
        r = s->warning[0] != '\0';
        if (r)
                (void)snprintf(out, len, "%s", s->warning);
        pthread_mutex_unlock(&s->lock);
        return r;
}

int perm_grant(struct perm_store *s, enum perm_kind kind, enum perm_scope scope,
               const char *sandbox, char ret_id[PERM_ID_LEN + 1], struct ak_err *err)
{
        struct perm_grant g = {.kind = kind, .scope = scope, .granted_at = time(NULL)};
        int r = 0;

        if ((unsigned)kind >= PERM_KIND_N || (unsigned)scope >= PERM_SCOPE_N)
                return ak_err_set(err, EINVAL, "unknown permission kind or scope");
        if (sandbox && sandbox[0]) {
                if (!sandbox_valid(sandbox))
                        return ak_err_set(err, EINVAL,
                                          "a grant's sandbox is 1 to %d printable characters",
                                          PERM_SANDBOX_MAX);
                (void)snprintf(g.sandbox, sizeof(g.sandbox), "%s", sandbox);
        }
        new_grant_id(g.id);
        pthread_mutex_lock(&s->lock);
        if (scope == PERM_ALWAYS) {
                if (!s->persist)
                        r = ak_err_set(err, ENOTSUP, "this store keeps no 'always' grants");
                else if (s->warning[0])
                        r = ak_err_set(err, EPERM, "%s", s->warning);
                else
                        r = persist_change(s, &g, NULL, NULL, err);
        } else if (s->n >= PERM_GRANTS_MAX) {
                r = ak_err_set(err, ENOSPC, "too many permission grants (at most %d): revoke some",
                               PERM_GRANTS_MAX);
        } else {
                s->grants[s->n++] = g;
        }
        pthread_mutex_unlock(&s->lock);
        if (r == 0)
                memcpy(ret_id, g.id, sizeof(g.id));
        return r;
}

bool perm_check(struct perm_store *s, enum perm_kind kind, const char *sandbox, bool consume)
{
        bool ok = false;

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++) {
                const struct perm_grant *g = &s->grants[i];
                if (g->kind != kind ||
                    (g->sandbox[0] && (!sandbox || strcmp(g->sandbox, sandbox) != 0)))
                        continue;
                ok = true;
                if (consume && g->scope == PERM_ONCE) {
                        memmove(&s->grants[i], &s->grants[i + 1],
                                (s->n - i - 1) * sizeof(s->grants[0]));
                        s->n--;
                }
                break;
        }
        pthread_mutex_unlock(&s->lock);
        return ok;
}

int perm_revoke(struct perm_store *s, const char *id, struct ak_err *err)
{
        bool found = false;
        int r = 0;

        if (!grant_id_valid(id))
                return ak_err_set(err, ENOENT, "no permission grant '%.64s'", id ? id : "");
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++) {
                if (strcmp(s->grants[i].id, id) != 0)
                        continue;
                found = true;
                if (s->grants[i].scope != PERM_ALWAYS) {
                        memmove(&s->grants[i], &s->grants[i + 1],
                                (s->n - i - 1) * sizeof(s->grants[0]));
                        s->n--;
                        goto out;
                }
                break;
        }
        /* an `always` grant (maybe another process's): the file is the truth */
        if (s->persist && !s->warning[0]) {
                bool in_file = false;
                r = persist_change(s, NULL, id, &in_file, err);
                if (r < 0)
                        goto out;
                found = found || in_file;
        }
        if (!found)
                r = ak_err_set(err, ENOENT, "no permission grant '%s'", id);
out:
        pthread_mutex_unlock(&s->lock);
        return r;
}

json_t *perm_list(struct perm_store *s)
{
        json_t *a = json_array();

        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; a && i < s->n; i++)
                if (json_array_append_new(a, grant_json(&s->grants[i])) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        pthread_mutex_unlock(&s->lock);
        return a;
}
