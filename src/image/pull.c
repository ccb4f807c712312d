/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pull pipeline (see pull.h). The helper program that runs it is the only place libcurl and
 * libarchive are linked: the CLI starts sandboxes from the store without either.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/manifest.h"
#include "image/pull.h"
#include "image/ref.h"
#include "image/registry.h"
#include "image/unpack.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "shared/test-hook.h"
#include "shared/text-util.h"
#include "shared/time-util.h"

struct layer_progress {
        const struct pull_opts *o;
        size_t index, count;
        const char *digest;
        int64_t last_ns;
};

static void on_progress(void *p, uint64_t now, uint64_t total)
{
        struct layer_progress *lp = p;
        int64_t t = now_monotonic_ns();
        char a[32], b[32];

        if (t - lp->last_ns < 100 * 1000000LL && now != total)
                return;
        lp->last_ns = t;
        format_bytes(now, a, sizeof(a));
        format_bytes(total, b, sizeof(b));
        fprintf(stderr, "\r  layer %zu/%zu %.19s  %s / %s   ", lp->index, lp->count, lp->digest, a,
                b);
        fflush(stderr);
}

/* Removes leftovers of killed pulls of this layer (we hold its lock: their owners are gone). */
static void drop_leftovers(int tmpfd, const char *hex)
{
        int fd = openat(tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        while ((de = readdir(d)))
                if (strncmp(de->d_name, hex, IMAGE_DIGEST_HEX) == 0)
                        (void)rm_rf_at(dirfd(d), de->d_name);
        closedir(d);
}

/* Fetches and unpacks one layer into layers/<hex>, unless it is already there. */
static int fetch_layer(struct image_store *s, struct registry *reg, const struct descriptor *l,
                       struct layer_progress *lp, uint64_t *ret_unpacked, bool *ret_fetched,
                       struct ak_err *err)
{
        const char *hex = l->digest + 7;
        cleanup_close int lock = -1;
        cleanup_close int tmpfd = -1;
        cleanup_close int blob = -1;
        cleanup_close int dir = -1;
        char blob_name[128], dir_name[128], final[128];
        struct unpack_stats us = {0};
        int r;

        lock = image_store_lock_layer(s, l->digest, err);
        if (lock < 0)
                return lock;
        (void)snprintf(final, sizeof(final), "layers/%s", hex);
        *ret_fetched = false;
        if (image_store_has_layer(s, l->digest)) { /* perhaps by a pull we waited for */
                *ret_unpacked = image_tree_usage(s->dirfd, final);
                return 0;
        }
        tmpfd = openat(s->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tmpfd < 0)
                return ak_err_errno(err, errno, "open %s/tmp", s->root);
        drop_leftovers(tmpfd, hex);
        (void)snprintf(blob_name, sizeof(blob_name), "%s.blob.%d", hex, (int)getpid());
        (void)snprintf(dir_name, sizeof(dir_name), "%s.dir.%d", hex, (int)getpid());
        blob = openat(tmpfd, blob_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (blob < 0)
                return ak_err_errno(err, errno, "create download file");
        r = registry_blob(reg, l->digest, l->size, blob, lp->o->progress ? on_progress : NULL, lp,
                          err);
        if (r < 0)
                goto fail;
        test_hook("image-layer-downloaded");
        if (lseek(blob, 0, SEEK_SET) < 0) {
                r = ak_err_errno(err, errno, "seek");
                goto fail;
        }
        if (mkdirat(tmpfd, dir_name, 0755) < 0) {
                r = ak_err_errno(err, errno, "create unpack directory");
                goto fail;
        }
        dir = openat(tmpfd, dir_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir < 0) {
                r = ak_err_errno(err, errno, "open unpack directory");
                goto fail;
        }
        r = layer_unpack(blob, dir, &us, err);
        if (r < 0) {
                ak_err_prefix(err, "layer %s", l->digest);
                goto fail;
        }
        /* Durable before it becomes visible. */
        if (syncfs(dir) < 0) {
                r = ak_err_errno(err, errno, "sync");
                goto fail;
        }
        test_hook("image-layer-unpacked");
        if (renameat(tmpfd, dir_name, s->dirfd, final) < 0) {
                r = ak_err_errno(err, errno, "publish layer");
                goto fail;
        }
        (void)unlinkat(tmpfd, blob_name, 0);
        *ret_unpacked = image_tree_usage(s->dirfd, final);
        *ret_fetched = true;
        return 0;
fail:
        (void)unlinkat(tmpfd, blob_name, 0);
        (void)rm_rf_at(tmpfd, dir_name);
        return r;
}

int image_pull(const char *data_dir, const char *name, const struct pull_opts *o,
               struct image_record *ret, struct ak_err *err)
{
        cleanup_image_ref struct image_ref ref = {0};
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_registry struct registry *reg = NULL;
        cleanup_manifest struct manifest m = {0};
        cleanup_manifest struct manifest idx = {0};
        cleanup_image_config struct image_config cfg = {0};
        cleanup_image_record struct image_record rec = {0};
        cleanup_buf struct buf body = {0};
        cleanup_buf struct buf cfgbuf = {0};
        cleanup_free char *ctype = NULL;
        cleanup_free char *display = NULL;
        cleanup_strv char **names = NULL;
        char top_digest[72], digest[72], ts[RFC3339_MAX];
        int r;

        r = image_ref_parse(name, &ref, err);
        if (r < 0)
                return r;
        display = image_ref_canonical(&ref);
        r = image_store_open(data_dir, IMAGE_STORE_SHARED, &s, err);
        if (r < 0)
                return r;
        r = registry_open(ref.registry, ref.repository, &reg, err);
        if (r < 0)
                return r;
        r = registry_manifest(reg, ref.digest ? ref.digest : ref.tag, &body, &ctype, top_digest,
                              err);
        if (r < 0)
                return r;
        r = manifest_parse(body.data, body.len, ctype, &m, err);
        if (r < 0)
                return r;
        memcpy(digest, top_digest, sizeof(digest));
        if (m.kind == MANIFEST_INDEX) {
                const struct descriptor *d;
                const char *arch, *variant;
                manifest_host_platform(&arch, &variant);
                idx = TAKE_STRUCT(m);
                r = manifest_pick(&idx, "linux", arch, variant, &d, err);
                if (r < 0)
                        return r;
                free(ctype);
                ctype = NULL;
                r = registry_manifest(reg, d->digest, &body, &ctype, digest, err);
                if (r >= 0)
                        r = manifest_parse(body.data, body.len, ctype, &m, err);
                if (r >= 0 && m.kind != MANIFEST_IMAGE)
                        r = ak_err_set(err, EMEDIUMTYPE, "an index entry is itself an index");
                if (r < 0)
                        return r;
        }
        r = registry_blob_mem(reg, m.config.digest, m.config.size, CONFIG_MAX_BYTES, &cfgbuf, err);
        if (r >= 0)
                r = image_config_parse(cfgbuf.data, cfgbuf.len, &cfg, err);
        if (r < 0)
                return r;
        if (!o->quiet)
                fprintf(stderr, "Pulling %s (%zu layer%s)\n", display, m.n_layers,
                        m.n_layers == 1 ? "" : "s");
        rec.id = strdup(digest);
        rec.config = strdup(m.config.digest);
        rec.layers = calloc(m.n_layers ? m.n_layers : 1, sizeof(*rec.layers));
        if (!rec.id || !rec.config || !rec.layers)
                return ak_err_oom(err);
        rec.n_layers = m.n_layers;
        for (size_t i = 0; i < m.n_layers; i++) {
                struct layer_progress lp = {o, i + 1, m.n_layers, m.layers[i].digest + 7, 0};
                bool fetched = false;
                char sz[32];
                rec.layers[i].digest = strdup(m.layers[i].digest);
                rec.layers[i].size = m.layers[i].size;
                if (!rec.layers[i].digest)
                        return ak_err_oom(err);
                r = fetch_layer(&s, reg, &m.layers[i], &lp, &rec.layers[i].unpacked, &fetched, err);
                if (r < 0)
                        return r;
                format_bytes((uint64_t)m.layers[i].size, sz, sizeof(sz));
                if (o->progress)
                        fprintf(stderr, "\r\033[K");
                if (!o->quiet)
                        fprintf(stderr, "  layer %zu/%zu %.19s  %s%s\n", i + 1, m.n_layers,
                                m.layers[i].digest + 7, sz, fetched ? "" : "  (already present)");
        }
        rec.env = TAKE_PTR(cfg.env);
        rec.cmd = TAKE_PTR(cfg.cmd);
        rec.workdir = TAKE_PTR(cfg.workdir);
        rec.user = TAKE_PTR(cfg.user);
        format_rfc3339(now_realtime_ns(), ts);
        rec.pulled_at = strdup(ts);
        r = 0;
        if (ref.tag)
                r = strv_consume(&names, image_ref_canonical(&(struct image_ref){
                                             ref.registry, ref.repository, ref.tag, NULL}));
        if (r >= 0) {
                char *byd = NULL;
                if (asprintf(&byd, "%s/%s@%s", ref.registry, ref.repository, top_digest) < 0)
                        byd = NULL;
                r = strv_consume(&names, byd);
        }
        if (r < 0)
                return ak_err_oom(err);
        r = image_store_commit(&s, &rec, names, err);
        if (r < 0)
                return r;
        rec.names = TAKE_PTR(names);
        *ret = TAKE_STRUCT(rec);
        return 0;
}
