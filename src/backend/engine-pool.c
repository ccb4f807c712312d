// SPDX-License-Identifier: Apache-2.0
/*
 * The warm pool of the docker and podman backends (run --fast).
 *
 * <ephemeral dir>/pool-<kind>-<key>/<container>/ holds one idle, started container's socket
 * directory and an unlocked lock file; <key> hashes everything the container was made with, so a
 * run is only ever handed a container it would have created itself. A run claims an entry by
 * locking it and renaming it out of the pool (into an ordinary ephemeral run directory): each
 * container is used once, then destroyed like any ephemeral one. After a --fast run a detached
 * process tops the pool up. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sha256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/engine-private.h"
#include "backend/proc-util.h"
#include "core/backend.h"
#include "engine/container.h"
#include "engine/engine.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define POOL_TARGET 5 /* idle containers kept per configuration (upstream's run_pooled) */
#define POOL_MAX 20   /* idle containers per engine, all configurations together */
#define POOL_KEY_UUID "00000000-0000-0000-0000-000000000000"

bool engine_pool_usable(const struct backend_config *cfg)
{
        return cfg->ephemeral && cfg->pooled && !cfg->workspace && !cfg->n_binds && !cfg->n_ports;
}

void engine_pool_dir(enum engine_kind kind, const struct backend_config *cfg, const char *agent,
                     char *out, size_t len, char key[17])
{
        /* each pooled container gets a uuid of its own: not part of the key */
        cleanup_json json_t *c =
            engine_config_container(kind, cfg, agent, POOL_KEY_UUID, NULL, NULL, false, NULL);
        cleanup_free char *text = NULL;
        char hex[65];

        json_object_del(c, "Labels"); /* per run: not part of what the container is */
        text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        SHA256Data((const uint8_t *)(text ? text : ""), text ? strlen(text) : 0, hex);
        memcpy(key, hex, 16);
        key[16] = '\0';
        (void)snprintf(out, len, "%s/pool-%s-%s", cfg->ref.run_dir, engine_name(kind), key);
}

/* Claims a ready container: returns a connected agent fd and fills s, or -ENOENT. */
int engine_pool_claim(const struct engine *e, const char *pool, const char *eph,
                      struct engine_session *s)
{
        DIR *d = opendir(pool);
        struct dirent *de;
        int fd = -ENOENT;

        if (!d)
                return -ENOENT;
        while (fd < 0 && (de = readdir(d))) {
                char lock[PATH_MAX], dest[PATH_MAX];
                struct container_rt rt;
                int lk;
                if (de->d_name[0] == '.' || strncmp(de->d_name, "agentkernel-pool-", 17) != 0)
                        continue;
                (void)snprintf(lock, sizeof(lock), "%s/%s/lock", pool, de->d_name);
                lk = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0) {
                        if (lk >= 0)
                                close(lk);
                        continue; /* another run is taking it */
                }
                (void)snprintf(dest, sizeof(dest), "%s/%s-%s", eph, engine_name(e->kind),
                               de->d_name);
                if (renameat(dirfd(d), de->d_name, AT_FDCWD, dest) < 0) {
                        close(lk);
                        continue;
                }
                /* the container's agent, as the refill recorded it (host-only files) */
                fd = container_rt_read(dest, &rt, NULL);
                if (fd >= 0)
                        fd = container_connect(&rt, rt.uuid, NULL);
                if (fd < 0) { /* its container died (an engine restart): discard it */
                        (void)engine_backend_remove(e, de->d_name, NULL, false, NULL);
                        (void)rm_rf_at(AT_FDCWD, dest);
                        close(lk);
                        fd = -ENOENT;
                        continue;
                }
                s->eng = *e;
                s->lock_fd = lk;
                (void)snprintf(s->container, sizeof(s->container), "%s", de->d_name);
                (void)snprintf(s->dir, sizeof(s->dir), "%s", dest);
        }
        closedir(d);
        return fd;
}

/* Ready (visible) entries in one pool directory, or in all of kind's when pool is NULL. */
static unsigned pool_count(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static unsigned pool_total(enum engine_kind kind, const char *eph)
{
        char prefix[32], path[PATH_MAX];
        DIR *d = opendir(eph);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        (void)snprintf(prefix, sizeof(prefix), "pool-%s-", engine_name(kind));
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
                        (void)snprintf(path, sizeof(path), "%s/%s", eph, de->d_name);
                        n += pool_count(path, "agentkernel-pool-");
                }
        closedir(d);
        return n;
}

/* Makes one idle container in pool: hidden until its agent answers, then published. */
static int pool_add(const struct engine *e, const struct backend_config *cfg, const char *agent,
                    const char *pool, const char *key, const char *user,
                    const struct image_volumes *vols)
{
        char name[64], hidden[PATH_MAX], ready[PATH_MAX], path[256], uuid[37];
        char hex[13], why[512];
        cleanup_json json_t *conf = NULL;
        struct container_rt rt;
        struct disk_outcome out = {0};
        struct ak_err err = {0};
        int st, fd, r = -EIO;

        random_hex(hex, 6);
        uuid_v7(uuid, (uint64_t)(now_realtime_ns() / 1000000));
        (void)snprintf(name, sizeof(name), "agentkernel-pool-%s", hex);
        (void)snprintf(hidden, sizeof(hidden), "%s/.%s", pool, name);
        (void)snprintf(ready, sizeof(ready), "%s/%s", pool, name);
        (void)snprintf(path, sizeof(path), "%s/lock", hidden);
        if (mkdir_p(hidden, 0700) < 0 ||
            (fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
                return -EIO;
        close(fd);
        conf = engine_config_container(e->kind, cfg, agent, uuid, user, key, false, vols);
        if (engine_config_create(e, name, conf, why, sizeof(why), &err) >= 0) {
                (void)snprintf(path, sizeof(path), "/containers/%s/start", name);
                st = engine_call(e, "POST", path, NULL, NULL, NULL);
                if (st >= 200 && st < 300 &&
                    (fd = engine_backend_settle(e, name, uuid, cfg, false, 0, vols, &rt, &out,
                                                NULL)) >= 0) {
                        close(fd);
                        if (container_rt_write(hidden, &rt, NULL) >= 0)
                                r = rename(hidden, ready) < 0 ? -errno : 0;
                }
        }
        if (r < 0) {
                (void)engine_backend_remove(e, name, NULL, false, NULL);
                (void)rm_rf_at(AT_FDCWD, hidden);
        }
        return r;
}

/* Tops the pool up to POOL_TARGET in a detached process (one refill per pool at a time), so the
 * run that triggered it does not wait. */
void engine_pool_refill(const struct engine *e, const struct backend_config *cfg, const char *agent,
                        const char *pool, const char *key)
{
        char lockpath[PATH_MAX + 16];
        cleanup_json json_t *info = NULL;
        struct image_volumes vols;
        const char *user;
        int ready, lk;

        /* The run returns only once the refiller holds the pool's refill lock (or found another
         * refill at it): a `pool clear` after the run then waits for the refill instead of
         * racing it. */
        if (proc_fork_worker(&ready) != 0)
                return;
        (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
        lk = mkdir_p(pool, 0700) < 0
                 ? -1
                 : open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                _exit(0); /* another refill is at it */
        close(ready);
        if (engine_backend_ensure_image(e, cfg->image, &info, NULL) < 0 ||
            engine_config_image_volumes(info, cfg, &vols, NULL) < 0)
                _exit(0);
        user = json_string_value(json_object_get(json_object_get(info, "Config"), "User"));
        while (pool_count(pool, "agentkernel-pool-") < POOL_TARGET &&
               pool_total(e->kind, cfg->ref.run_dir) < POOL_MAX)
                if (pool_add(e, cfg, agent, pool, key, user, &vols) < 0)
                        break;
        _exit(0);
}

int engine_pool_clear(enum engine_kind kind, const char *ephemeral_dir, unsigned *ret_removed,
                      struct ak_err *err)
{
        char prefix[32];
        struct engine e;
        struct dirent *de;
        unsigned removed = 0;
        DIR *d;
        int r = engine_open(kind, &e, err);

        if (r < 0)
                return r;
        d = opendir(ephemeral_dir);
        (void)snprintf(prefix, sizeof(prefix), "pool-%s-", engine_name(kind));
        while (d && (de = readdir(d))) {
                char pool[PATH_MAX], lockpath[PATH_MAX + 16];
                struct dirent *ee;
                DIR *p;
                int lk;
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                (void)snprintf(pool, sizeof(pool), "%s/%s", ephemeral_dir, de->d_name);
                /* wait for a refill in progress: it would otherwise add behind our back */
                (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
                lk = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (lk >= 0)
                        (void)flock(lk, LOCK_EX);
                p = opendir(pool);
                while (p && (ee = readdir(p))) {
                        const char *n = ee->d_name[0] == '.' ? ee->d_name + 1 : ee->d_name;
                        char entry_lock[PATH_MAX + 300];
                        int el;
                        if (strncmp(n, "agentkernel-pool-", 17) != 0)
                                continue;
                        (void)snprintf(entry_lock, sizeof(entry_lock), "%s/%s/lock", pool,
                                       ee->d_name);
                        el = open(entry_lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                        if (el >= 0 && flock(el, LOCK_EX | LOCK_NB) < 0) {
                                close(el);
                                continue; /* being claimed right now */
                        }
                        if (engine_backend_remove(&e, n, NULL, false, NULL) == 0) {
                                (void)rm_rf_at(dirfd(p), ee->d_name);
                                removed++;
                        }
                        if (el >= 0)
                                close(el);
                }
                if (p)
                        closedir(p);
                /* an emptied pool goes entirely (entries being claimed keep it) */
                (void)unlink(lockpath);
                (void)rmdir(pool);
                if (lk >= 0)
                        close(lk);
        }
        if (d)
                closedir(d);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
