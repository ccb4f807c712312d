/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The content-addressed image store (layout in image-store.h). Records and the name table are
 * small JSON files replaced atomically; layer trees are published by renaming a finished
 * temporary directory. Readers never see a partial layer: a layer directory exists only once its
 * unpacking is complete and synced.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/private-dir.h"
#include "image/image-store.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/strv.h"

#define REFS_FILE "refs.json"

static const char *digest_hex(const char *digest)
{
        return strncmp(digest, "sha256:", 7) == 0 ? digest + 7 : digest;
}

int image_store_open(const char *data_dir, int mode, struct image_store *ret, struct ak_err *err)
{
        static const char *const subdirs[] = {"layers", "images", "tmp", "locks"};
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_free char *data = NULL;
        cleanup_close int dfd = -1;
        int r;

        /* The store and everything in it are private (core/private-dir.h): the caller's, 0700,
         * reached through directories nobody else can change. A store from an older umask or
         * another tool is tightened; one another user owns or can write is refused. */
        dfd = private_dir_open(data_dir, "data directory", PRIVATE_CREATE, &data, err);
        if (dfd < 0)
                return dfd;
        if (asprintf(&s.root, "%s/images", data) < 0)
                return ak_err_oom(err);
        s.dirfd = private_dir_open_at(dfd, data, "images", PRIVATE_CREATE, err);
        if (s.dirfd < 0)
                return ak_err_prefix(err, "image store");
        for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
                r = private_dir_check_at(s.dirfd, s.root, subdirs[i], PRIVATE_CREATE, err);
                if (r < 0)
                        return r;
        }
        s.lock_fd = private_file_open_at(s.dirfd, "lock", O_RDWR | O_CREAT, err);
        if (s.lock_fd < 0)
                return ak_err_prefix(err, "image store lock");
        while (flock(s.lock_fd, mode == IMAGE_STORE_EXCLUSIVE ? LOCK_EX : LOCK_SH) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "lock image store");
        *ret = s;
        s = (struct image_store)IMAGE_STORE_INIT; /* handed over */
        return 0;
}

void image_store_done(struct image_store *s)
{
        if (!s)
                return;
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        if (s->dirfd >= 0)
                close(s->dirfd);
        free(s->root);
        *s = (struct image_store){.dirfd = -1, .lock_fd = -1};
}

void image_record_done(struct image_record *r)
{
        if (!r)
                return;
        free(r->id);
        free(r->config);
        for (size_t i = 0; i < r->n_layers; i++)
                free(r->layers[i].digest);
        free(r->layers);
        strv_free(r->env);
        strv_free(r->cmd);
        strv_free(r->names);
        free(r->workdir);
        free(r->user);
        free(r->pulled_at);
        *r = (struct image_record){0};
}

void image_records_free(struct image_record *v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                image_record_done(&v[i]);
        free(v);
}

int image_store_layer_path(const struct image_store *s, const char *digest, char *out, size_t len)
{
        int n = snprintf(out, len, "%s/layers/%s", s->root, digest_hex(digest));
        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool image_store_has_layer(const struct image_store *s, const char *digest)
{
        char p[128];
        struct stat st;

        (void)snprintf(p, sizeof(p), "layers/%s", digest_hex(digest));
        return fstatat(s->dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* ---- JSON (de)serialisation ---- */

static char **json_strv(json_t *a)
{
        char **v;
        size_t n = json_array_size(a);

        if (!json_is_array(a))
                return NULL;
        v = calloc(n + 1, sizeof(*v));
        for (size_t i = 0; v && i < n; i++) {
                const char *s = json_string_value(json_array_get(a, i));
                v[i] = strdup(s ? s : "");
                if (!v[i]) {
                        strv_free(v);
                        return NULL;
                }
        }
        return v;
}

static char *record_dump(const struct image_record *r)
{
        json_t *o = json_object(), *layers = json_array();
        char *s;

        for (size_t i = 0; i < r->n_layers; i++) {
                json_t *l = json_object();
                json_object_set_new(l, "digest", json_string(r->layers[i].digest));
                json_object_set_new(l, "size", json_integer(r->layers[i].size));
                json_object_set_new(l, "unpacked", json_integer((json_int_t)r->layers[i].unpacked));
                json_array_append_new(layers, l);
        }
        json_object_set_new(o, "id", json_string(r->id));
        json_object_set_new(o, "config", json_string(r->config));
        json_object_set_new(o, "layers", layers);
        json_object_set_new(o, "env", strv_json_array(r->env));
        if (r->cmd)
                json_object_set_new(o, "cmd", strv_json_array(r->cmd));
        if (r->workdir)
                json_object_set_new(o, "workdir", json_string(r->workdir));
        if (r->user)
                json_object_set_new(o, "user", json_string(r->user));
        if (r->pulled_at)
                json_object_set_new(o, "pulled_at", json_string(r->pulled_at));
        s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        return s;
}

static int record_load(struct image_store *s, const char *hex, struct image_record *ret,
                       struct ak_err *err)
{
        cleanup_buf struct buf b = {0};
        cleanup_image_record struct image_record r = {0};
        cleanup_json json_t *o = NULL;
        char path[128];
        json_t *layers;
        const char *id, *cfg, *str;
        int k;

        (void)snprintf(path, sizeof(path), "images/%s.json", hex);
        k = private_file_read_at(s->dirfd, path, &b, IMAGE_RECORD_MAX_BYTES, err);
        if (k < 0)
                return ak_err_prefix(err, "image record in '%s'", s->root);
        o = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        id = json_string_value(json_object_get(o, "id"));
        cfg = json_string_value(json_object_get(o, "config"));
        layers = json_object_get(o, "layers");
        if (!id || !cfg || !json_is_array(layers) || !image_digest_valid(id) ||
            !streq(digest_hex(id), hex) || json_array_size(layers) > 1024)
                return ak_err_set(err, EBADMSG,
                                  "image record '%s' is damaged; remove it with: "
                                  "agentkernel images prune",
                                  path);
        r.id = strdup(id);
        r.config = strdup(cfg);
        r.n_layers = json_array_size(layers);
        r.layers = calloc(r.n_layers ? r.n_layers : 1, sizeof(*r.layers));
        k = r.id && r.config && r.layers ? 0 : -ENOMEM;
        for (size_t i = 0; k == 0 && i < r.n_layers; i++) {
                json_t *l = json_array_get(layers, i);
                const char *d = json_string_value(json_object_get(l, "digest"));
                if (!d || !image_digest_valid(d)) {
                        k = -EBADMSG;
                        break;
                }
                r.layers[i].digest = strdup(d);
                r.layers[i].size = json_integer_value(json_object_get(l, "size"));
                r.layers[i].unpacked = (uint64_t)json_integer_value(json_object_get(l, "unpacked"));
                if (!r.layers[i].digest)
                        k = -ENOMEM;
        }
        if (k == 0) {
                r.env = json_strv(json_object_get(o, "env"));
                if (json_object_get(o, "cmd"))
                        r.cmd = json_strv(json_object_get(o, "cmd"));
                if ((str = json_string_value(json_object_get(o, "workdir"))))
                        r.workdir = strdup(str);
                if ((str = json_string_value(json_object_get(o, "user"))))
                        r.user = strdup(str);
                if ((str = json_string_value(json_object_get(o, "pulled_at"))))
                        r.pulled_at = strdup(str);
        }
        if (k < 0)
                return ak_err_errno(err, k, "image record '%s'", path);
        *ret = TAKE_STRUCT(r);
        return 0;
}

/* refs.json: {"name": "sha256:..."}; a missing file is an empty table. */
static int refs_load(struct image_store *s, json_t **ret, struct ak_err *err)
{
        cleanup_buf struct buf b = {0};
        struct ak_err e = {0};
        json_t *o;
        int r = private_file_read_at(s->dirfd, REFS_FILE, &b, IMAGE_REFS_MAX_BYTES, &e);

        if (r == -ENOENT) {
                *ret = json_object();
                return *ret ? 0 : -ENOMEM;
        }
        if (r < 0)
                return ak_err_set(err, -r, "image store '%s': %s", s->root, ak_err_msg(&e));
        o = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return ak_err_set(err, EBADMSG, "%s/%s is damaged", s->root, REFS_FILE);
        }
        *ret = o;
        return 0;
}

static int refs_save(struct image_store *s, json_t *refs, struct ak_err *err)
{
        cleanup_free char *text = json_dumps(refs, JSON_INDENT(2) | JSON_SORT_KEYS);
        int r;

        if (!text)
                return ak_err_oom(err);
        r = write_file_atomic_at(s->dirfd, REFS_FILE, text, strlen(text), 0600, true);
        if (r < 0)
                return ak_err_errno(err, r, "write %s/%s", s->root, REFS_FILE);
        return 0;
}

/* The name table is read-modify-written by concurrent pulls: its own short lock. */
static int refs_lock(struct image_store *s, struct ak_err *err)
{
        int fd = private_file_open_at(s->dirfd, "locks/refs.lock", O_RDWR | O_CREAT, err);
        if (fd < 0)
                return ak_err_prefix(err, "refs lock");
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int e = errno;
                        close(fd);
                        return ak_err_errno(err, e, "lock refs");
                }
        return fd;
}

static char **names_of(json_t *refs, const char *id)
{
        const char *k;
        json_t *v;
        size_t n = 0;
        char **out = calloc(json_object_size(refs) + 1, sizeof(*out));

        if (!out)
                return NULL;
        json_object_foreach (refs, k, v) {
                const char *d = json_string_value(v);
                if (d && streq(d, id) && !(out[n++] = strdup(k))) {
                        strv_free(out);
                        return NULL;
                }
        }
        return out;
}

static char *ref_key(const struct image_ref *ref)
{
        char *s = NULL;

        if (ref->digest) {
                if (asprintf(&s, "%s/%s@%s", ref->registry, ref->repository, ref->digest) < 0)
                        return NULL;
                return s;
        }
        return image_ref_canonical(ref);
}

int image_store_resolve(struct image_store *s, const struct image_ref *ref,
                        struct image_record *ret, struct ak_err *err)
{
        cleanup_free char *key = ref_key(ref);
        cleanup_image_record struct image_record rec = {0};
        cleanup_json json_t *refs = NULL;
        const char *id;
        int r;

        if (!key)
                return ak_err_oom(err);
        r = refs_load(s, &refs, err);
        if (r < 0)
                return r;
        id = json_string_value(json_object_get(refs, key));
        if (!id && ref->digest) {
                /* A platform manifest's own digest names its record directly. */
                char p[128];
                (void)snprintf(p, sizeof(p), "images/%s.json", digest_hex(ref->digest));
                if (faccessat(s->dirfd, p, F_OK, 0) == 0)
                        id = ref->digest;
        }
        if (!id)
                return ak_err_set(err, ENOENT,
                                  "image '%s' is not in the local store; pull it with: "
                                  "agentkernel images pull %s",
                                  key, key);
        r = image_digest_valid(id) ? record_load(s, digest_hex(id), &rec, err)
                                   : ak_err_set(err, EBADMSG, "refs.json: bad id for '%s'", key);
        if (r >= 0) {
                for (size_t i = 0; i < rec.n_layers; i++)
                        if (!image_store_has_layer(s, rec.layers[i].digest))
                                return ak_err_set(err, ENOENT,
                                                  "image '%s' is incomplete in the local store; "
                                                  "pull it again with: agentkernel images pull %s",
                                                  key, key);
                rec.names = names_of(refs, rec.id);
                *ret = TAKE_STRUCT(rec);
        }
        return r;
}

static int cmp_records(const void *a, const void *b)
{
        const struct image_record *x = a, *y = b;
        const char *nx = x->names && x->names[0] ? x->names[0] : x->id;
        const char *ny = y->names && y->names[0] ? y->names[0] : y->id;
        return strcmp(nx, ny);
}

int image_store_list(struct image_store *s, struct image_record **ret, size_t *ret_n,
                     struct ak_err *err)
{
        struct image_record *v = NULL;
        size_t n = 0, cap = 0;
        cleanup_json json_t *refs = NULL;
        cleanup_closedir DIR *d = NULL;
        struct dirent *de;
        int fd, r;

        r = refs_load(s, &refs, err);
        if (r < 0)
                return r;
        fd = openat(s->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                r = ak_err_errno(err, errno, "open %s/images", s->root);
                if (fd >= 0)
                        close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                char hex[IMAGE_DIGEST_HEX + 1];
                struct image_record rec;
                if (l != IMAGE_DIGEST_HEX + 5 || !streq(de->d_name + IMAGE_DIGEST_HEX, ".json"))
                        continue;
                memcpy(hex, de->d_name, IMAGE_DIGEST_HEX);
                hex[IMAGE_DIGEST_HEX] = '\0';
                if (record_load(s, hex, &rec, NULL) < 0)
                        continue; /* damaged: prune removes it */
                rec.names = names_of(refs, rec.id);
                if (n == cap) {
                        struct image_record *nv;
                        cap = cap ? cap * 2 : 16;
                        nv = realloc(v, cap * sizeof(*v));
                        if (!nv) {
                                image_record_done(&rec);
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                }
                v[n++] = rec;
        }
        if (r < 0) {
                image_records_free(v, n);
                return ak_err_oom(err);
        }
        if (n)
                qsort(v, n, sizeof(*v), cmp_records);
        *ret = v;
        *ret_n = n;
        return 0;
}

int image_store_commit(struct image_store *s, const struct image_record *rec, char *const *names,
                       struct ak_err *err)
{
        cleanup_free char *text = record_dump(rec);
        cleanup_close int lk = -1;
        json_t *refs = NULL;
        char path[128];
        int r;

        if (!text)
                return ak_err_oom(err);
        (void)snprintf(path, sizeof(path), "images/%s.json", digest_hex(rec->id));
        r = write_file_atomic_at(s->dirfd, path, text, strlen(text), 0600, true);
        if (r < 0)
                return ak_err_errno(err, r, "write image record");
        lk = refs_lock(s, err);
        if (lk < 0)
                return lk;
        r = refs_load(s, &refs, err);
        if (r < 0)
                return r;
        for (size_t i = 0; names && names[i]; i++)
                json_object_set_new(refs, names[i], json_string(rec->id));
        r = refs_save(s, refs, err);
        json_decref(refs);
        return r;
}

/* Whether s names an image id: "sha256:<hex prefix>" or a bare hex prefix of 12+ digits. */
static bool id_prefix(const char *s, const char *id)
{
        const char *h = digest_hex(s);
        size_t n = strlen(h);

        if (n < 12 || n > IMAGE_DIGEST_HEX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
                        return false;
        return strncmp(digest_hex(id), h, n) == 0;
}

int image_store_remove(struct image_store *s, const char *name, struct ak_err *err)
{
        cleanup_close int lk = refs_lock(s, err);
        cleanup_free char *key = NULL;
        cleanup_image_ref struct image_ref ref = {0};
        cleanup_json json_t *refs = NULL;
        const char *match = NULL, *k;
        json_t *v;
        void *tmp;
        int r;

        if (lk < 0)
                return lk;
        r = refs_load(s, &refs, err);
        if (r < 0)
                return r;
        if (image_ref_parse(name, &ref, NULL) == 0) {
                key = ref_key(&ref);
                if (key && json_object_get(refs, key)) {
                        /* Untag; the last tag takes the image's digest names with it. */
                        cleanup_free char *id =
                            strdup(json_string_value(json_object_get(refs, key)) ?: "");
                        bool tagged = false;
                        json_object_del(refs, key);
                        json_object_foreach (refs, k, v) {
                                const char *d = json_string_value(v);
                                if (d && id && streq(d, id) && !strchr(k, '@'))
                                        tagged = true;
                        }
                        json_object_foreach_safe(refs, tmp, k, v)
                        {
                                const char *d = json_string_value(v);
                                if (!tagged && d && id && streq(d, id))
                                        json_object_del(refs, k);
                        }
                        return refs_save(s, refs, err);
                }
        }
        json_object_foreach (refs, k, v) {
                const char *id = json_string_value(v);
                if (id && id_prefix(name, id)) {
                        if (match && !streq(match, id))
                                return ak_err_set(err, EINVAL, "'%s' matches more than one image",
                                                  name);
                        match = id;
                }
        }
        if (!match)
                return ak_err_set(err, ENOENT, "no image '%s' in the local store", name);
        {
                cleanup_free char *id = strdup(match);
                if (!id)
                        return ak_err_oom(err);
                json_object_foreach_safe(refs, tmp, k, v)
                {
                        const char *d = json_string_value(v);
                        if (d && streq(d, id))
                                json_object_del(refs, k);
                }
        }
        return refs_save(s, refs, err);
}

uint64_t image_tree_usage(int at, const char *path)
{
        struct stat st;
        uint64_t sum = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        if (fstatat(at, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        sum = (uint64_t)st.st_blocks * 512;
        if (!S_ISDIR(st.st_mode))
                return sum;
        fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return sum;
        }
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        sum += image_tree_usage(dirfd(d), de->d_name);
        closedir(d);
        return sum;
}

/* Removes every entry of dir (relative to the store) whose name is not in keep. */
static int sweep_dir(struct image_store *s, const char *dir, bool (*keep)(const char *, void *),
                     void *ctx, uint64_t *freed)
{
        int fd = openat(s->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;
        int r = 0;

        if (!d) {
                if (fd >= 0)
                        close(fd);
                return -errno;
        }
        while ((de = readdir(d))) {
                int k;
                if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
                    (keep && keep(de->d_name, ctx)))
                        continue;
                *freed += image_tree_usage(dirfd(d), de->d_name);
                k = rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        return r;
}

struct prune_ctx {
        json_t *refs;
        char *const *keep;
        json_t *used_layers; /* set: hex -> true */
};

static bool keep_record(const char *name, void *p)
{
        struct prune_ctx *c = p;
        const char *k;
        json_t *v;
        char id[80];

        if (strlen(name) != IMAGE_DIGEST_HEX + 5)
                return false;
        (void)snprintf(id, sizeof(id), "sha256:%.*s", IMAGE_DIGEST_HEX, name);
        for (size_t i = 0; c->keep && c->keep[i]; i++)
                if (streq(c->keep[i], id))
                        return true;
        json_object_foreach (c->refs, k, v) {
                const char *d = json_string_value(v);
                if (d && streq(d, id))
                        return true;
        }
        return false;
}

static bool keep_layer(const char *name, void *p)
{
        struct prune_ctx *c = p;
        return json_object_get(c->used_layers, name) != NULL;
}

int image_store_prune(struct image_store *s, char *const *keep, uint64_t *ret_freed,
                      struct ak_err *err)
{
        struct prune_ctx c = {.keep = keep};
        struct image_record *v = NULL;
        uint64_t freed = 0;
        size_t n = 0;
        int r;

        r = refs_load(s, &c.refs, err);
        if (r < 0)
                return r;
        r = sweep_dir(s, "images", keep_record, &c, &freed);
        if (r >= 0)
                r = image_store_list(s, &v, &n, err);
        if (r >= 0) {
                c.used_layers = json_object();
                for (size_t i = 0; i < n; i++)
                        for (size_t j = 0; j < v[i].n_layers; j++)
                                json_object_set_new(c.used_layers,
                                                    digest_hex(v[i].layers[j].digest), json_true());
                image_records_free(v, n);
                r = sweep_dir(s, "layers", keep_layer, &c, &freed);
        }
        if (r >= 0)
                r = sweep_dir(s, "tmp", NULL, NULL, &freed);
        json_decref(c.refs);
        json_decref(c.used_layers);
        if (r < 0)
                return ak_err_errno(err, r, "prune image store");
        if (ret_freed)
                *ret_freed = freed;
        return 0;
}

int image_store_lock_layer(struct image_store *s, const char *digest, struct ak_err *err)
{
        char p[128];
        int fd;

        (void)snprintf(p, sizeof(p), "locks/%s.lock", digest_hex(digest));
        fd = private_file_open_at(s->dirfd, p, O_RDWR | O_CREAT, err);
        if (fd < 0)
                return ak_err_prefix(err, "layer lock");
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int e = errno;
                        close(fd);
                        return ak_err_errno(err, e, "lock layer");
                }
        return fd;
}
