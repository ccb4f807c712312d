// SPDX-License-Identifier: Apache-2.0
/*
 * The microvm backend's warm pool (run --fast, upstream's daemon pool of booted VMs): machines
 * booted ahead for one configuration, each handed to one run and then ended like any ephemeral
 * machine.
 *
 * <ephemeral dir>/pv-<key's first 8 digits>/ holds machines booted as ephemeral ones there:
 * vm-<tail>/ (the run directory) and vm-<uuid>.lock, and the whole key in `key`. The key hashes
 * everything a machine is booted with (driver, kernel, agent, the image's root filesystem, vCPUs,
 * memory, disk, capabilities, environment), so a run is only ever given a machine it would have
 * booted itself: a pool whose `key` is not the run's whole key is never claimed from. The
 * refiller holds an entry's lock while it boots and writes VM_POOL_READY into its run directory
 * before letting go; a run claims a ready entry by taking its lock, moving its run directory out of
 * the pool to an ordinary ephemeral one (a running machine's sockets are found by inode, not by
 * name) with an ordinary run lock, and checking the machine (its processes, then its agent's
 * answer). A machine that fails the check is ended and the next one tried; with none, the run boots
 * its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/client.h"
#include "backend/microvm-private.h"
#include "backend/microvm.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "core/profile.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define VM_POOL_TARGET 2 /* idle machines kept per configuration */
#define VM_POOL_MAX 6    /* idle machines, all configurations together (each holds its RAM) */
#define VM_POOL_PREFIX "pv-"
#define VM_POOL_NAME_KEY 8 /* digits of the key in the directory's name */
#define VM_POOL_KEY_FILE "key"
#define VM_POOL_READY "pool-ready"
#define VM_POOL_CLAIM_TIMEOUT_S 5  /* for a pooled machine's agent to answer a claim */
#define LOCK_NAME_LEN (3 + 36 + 5) /* vm-<uuid>.lock */

bool vm_pool_usable(const struct backend_config *cfg)
{
        /* a pooled machine is booted before its run's policy is known: proxy mode boots its
         * own (its relay's capture is registered with the run's policy) */
        /* and one without host directories: a share's virtiofsd is the run's own */
        return cfg->ephemeral && cfg->pooled && cfg->network == NET_MODE_NONE && cfg->image &&
               !streq(cfg->image, "host") && !cfg->workspace && !cfg->home && !cfg->n_binds &&
               !vm_test_guest_root();
}

static void hash_str(SHA2_CTX *c, const char *s)
{
        SHA256Update(c, (const uint8_t *)(s ? s : ""), s ? strlen(s) + 1 : 1);
}

int vm_pool_key(const struct backend_config *cfg, char key[VM_POOL_KEY_LEN + 1])
{
        char agent[PATH_MAX], kernel[PATH_MAX], kver[256], cache[PATH_MAX], rootfs[PATH_MAX];
        char digest[SHA256_DIGEST_STRING_LENGTH], num[96];
        cleanup_strv char **img_env = NULL;
        cleanup_free char *workdir = NULL, *user = NULL;
        struct stat st;
        SHA2_CTX c;

        if (paths_agent_binary(agent, sizeof(agent), NULL) < 0 || stat(agent, &st) < 0 ||
            vm_guest_kernel(kernel, sizeof(kernel), kver, sizeof(kver), NULL) < 0 ||
            vm_cache_dir(cache, sizeof(cache), NULL) < 0 ||
            vm_guest_rootfs(cache, cfg->image, rootfs, sizeof(rootfs), &img_env, &workdir, &user,
                            NULL) < 0)
                return -ENOENT;
        SHA256Init(&c);
        hash_str(&c, vm_driver_pick()->name);
        hash_str(&c, kernel);
        hash_str(&c, agent);
        (void)snprintf(num, sizeof(num), "%llu:%llu:%lld:%lld", (unsigned long long)st.st_dev,
                       (unsigned long long)st.st_ino, (long long)st.st_size,
                       (long long)st.st_mtim.tv_sec);
        hash_str(&c, num);
        hash_str(&c, rootfs);
        (void)snprintf(num, sizeof(num), "%u:%llu:%llu:%llx:%s", cfg->vcpus,
                       (unsigned long long)cfg->memory_mb, (unsigned long long)cfg->disk_mb,
                       (unsigned long long)cfg->profile->caps, cfg->profile->name);
        hash_str(&c, num);
        /* what the guest applies to commands (the seccomp filter may differ from the
         * profile's own: [security] seccomp) */
        (void)snprintf(num, sizeof(num), "%s:%llu:%d", seccomp_profile_name(cfg->profile->seccomp),
                       (unsigned long long)cfg->profile->pids_max, cfg->profile->read_only_root);
        hash_str(&c, num);
        for (char *const *e = cfg->env; e && *e; e++)
                hash_str(&c, *e);
        (void)SHA256End(&c, digest);
        (void)snprintf(key, VM_POOL_KEY_LEN + 1, "%s", digest);
        return 0;
}

static void pool_dir(const char *ephemeral_dir, const char *key, char *out, size_t len)
{
        (void)snprintf(out, len, "%s/" VM_POOL_PREFIX "%.*s", ephemeral_dir, VM_POOL_NAME_KEY, key);
}

/* Whether pool (its directory fd) was made for exactly key. */
static bool pool_is_for(int pool_fd, const char *key)
{
        cleanup_buf struct buf b = BUF_INIT;

        return private_file_read_at(pool_fd, VM_POOL_KEY_FILE, &b, 256, NULL) >= 0 && b.data &&
               b.len == VM_POOL_KEY_LEN && memcmp(b.data, key, VM_POOL_KEY_LEN) == 0;
}

/* The uuid of an entry's lock name (vm-<uuid>.lock), or false. */
static bool lock_uuid(const char *name, char uuid[37])
{
        if (strlen(name) != LOCK_NAME_LEN || strncmp(name, "vm-", 3) != 0 ||
            !streq(name + LOCK_NAME_LEN - 5, ".lock"))
                return false;
        memcpy(uuid, name + 3, 36);
        uuid[36] = '\0';
        return uuid_is_valid(uuid);
}

/* The machine's agent answers: a connection ready for the run, or -errno. */
static int agent_ready(const char *run_dir)
{
        char sock[PATH_MAX];
        struct timeval tv = {VM_POOL_CLAIM_TIMEOUT_S, 0};
        struct ak_err e = {0};
        int64_t pid;
        int fd;

        (void)snprintf(sock, sizeof(sock), "%s/%s", run_dir, VM_FILE_AGENT);
        fd = unix_connect(sock, &e);
        if (fd < 0)
                return fd;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (agent_hello(fd, &pid, &e) < 0) {
                close(fd);
                return -EIO;
        }
        tv.tv_sec = 0;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/* Ends an entry of the pool directory (its lock held by the caller). */
static void discard(int pool_fd, const char *pool, const char *uuid, const char *lock_name)
{
        char run_dir[PATH_MAX];

        vm_ephemeral_run_dir(pool, uuid, run_dir, sizeof(run_dir));
        vm_kill(run_dir, uuid);
        (void)rm_rf_at(AT_FDCWD, run_dir);
        (void)unlinkat(pool_fd, lock_name, 0);
}

/* One entry: taken, moved out, checked. 0 with ret_session filled, or -errno. */
static int claim_one(int pool_fd, const char *pool, const char *eph, const char *lock_name,
                     const char *uuid, struct backend_session *ret_session)
{
        char from[PATH_MAX], to[PATH_MAX], ready[PATH_MAX + 16];
        cleanup_close int lk = openat(pool_fd, lock_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        struct vm_session *s;
        int chan, r;

        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                return -EBUSY; /* booting, or another run is taking it */
        vm_ephemeral_run_dir(pool, uuid, from, sizeof(from));
        (void)snprintf(ready, sizeof(ready), "%s/%s", from, VM_POOL_READY);
        if (lexists_at(AT_FDCWD, ready) < 0)
                return -EAGAIN; /* a refill died while booting it: the next refill ends it */
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->lock_fd = -1;
        r = vm_run_lock(eph, uuid, &s->lock_fd, s->lock_path, sizeof(s->lock_path), NULL);
        vm_ephemeral_run_dir(eph, uuid, to, sizeof(to));
        if (r >= 0 && rename(from, to) < 0)
                r = -errno;
        if (r < 0) {
                if (s->lock_fd >= 0) {
                        (void)unlink(s->lock_path);
                        close(s->lock_fd);
                }
                free(s);
                return r;
        }
        (void)unlinkat(pool_fd, lock_name, 0); /* the entry is the run's now */
        (void)snprintf(s->run_dir, sizeof(s->run_dir), "%s", to);
        (void)snprintf(s->uuid, sizeof(s->uuid), "%s", uuid);
        /* a paused machine is never handed out (its agent would not answer anyway) */
        chan = !vm_running(to, uuid) ? -ESRCH : vm_paused(to, uuid) ? -EBUSY : agent_ready(to);
        if (chan < 0) { /* it died idle (a host reboot, a kill) or was paused: end it */
                vm_kill(to, uuid);
                (void)rm_rf_at(AT_FDCWD, to);
                (void)unlink(s->lock_path);
                close(s->lock_fd);
                free(s);
                return chan;
        }
        ret_session->chan_fd = chan;
        ret_session->priv = s;
        return 0;
}

int vm_pool_claim(const struct backend_config *cfg, const char *key,
                  struct backend_session *ret_session)
{
        char pool[PATH_MAX];
        struct dirent *de;
        DIR *d;
        int r = -ENOENT;

        pool_dir(cfg->ref.run_dir, key, pool, sizeof(pool));
        d = opendir(pool);
        if (!d)
                return -ENOENT;
        if (!pool_is_for(dirfd(d), key)) { /* another configuration's (the name's digits) */
                closedir(d);
                return -ENOENT;
        }
        while (r < 0 && (de = readdir(d))) {
                char uuid[37];
                if (lock_uuid(de->d_name, uuid))
                        r = claim_one(dirfd(d), pool, cfg->ref.run_dir, de->d_name, uuid,
                                      ret_session) < 0
                                ? -ENOENT
                                : 0;
        }
        closedir(d);
        return r;
}

/* Entries of one pool: ready ones in *ready, all in *all. */
static void pool_count(const char *pool, unsigned *ready, unsigned *all)
{
        DIR *d = opendir(pool);
        struct dirent *de;

        *ready = *all = 0;
        if (!d)
                return;
        while ((de = readdir(d))) {
                char uuid[37], run_dir[PATH_MAX], marker[PATH_MAX + 16];
                if (!lock_uuid(de->d_name, uuid))
                        continue;
                (*all)++;
                vm_ephemeral_run_dir(pool, uuid, run_dir, sizeof(run_dir));
                (void)snprintf(marker, sizeof(marker), "%s/%s", run_dir, VM_POOL_READY);
                *ready += lexists_at(AT_FDCWD, marker) == 0;
        }
        closedir(d);
}

static unsigned pools_total(const char *eph)
{
        DIR *d = opendir(eph);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char path[PATH_MAX];
                unsigned ready, all;
                if (strncmp(de->d_name, VM_POOL_PREFIX, strlen(VM_POOL_PREFIX)) != 0)
                        continue;
                (void)snprintf(path, sizeof(path), "%s/%s", eph, de->d_name);
                pool_count(path, &ready, &all);
                n += all;
        }
        closedir(d);
        return n;
}

/* Entries a dead refill left half-booted (no marker, lock free): ended. */
static void drop_stale(const char *pool)
{
        DIR *d = opendir(pool);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char uuid[37], run_dir[PATH_MAX], marker[PATH_MAX + 16];
                cleanup_close int lk = -1;
                if (!lock_uuid(de->d_name, uuid))
                        continue;
                vm_ephemeral_run_dir(pool, uuid, run_dir, sizeof(run_dir));
                (void)snprintf(marker, sizeof(marker), "%s/%s", run_dir, VM_POOL_READY);
                lk = openat(dirfd(d), de->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                        continue;
                if (lexists_at(AT_FDCWD, marker) < 0 || !vm_running(run_dir, uuid))
                        discard(dirfd(d), pool, uuid, de->d_name);
        }
        closedir(d);
}

/* Boots one machine into the pool; false when it could not. */
static bool pool_add(const struct backend_config *cfg, const char *pool)
{
        struct backend_config c = *cfg;
        struct backend_session s = {.chan_fd = -1};
        struct vm_session *vs;
        char uuid[37], marker[PATH_MAX + 16];
        int fd;

        uuid_v7(uuid, (uint64_t)(now_realtime_ns() / 1000000));
        c.ref.uuid = uuid;
        c.ref.run_dir = pool;
        c.ephemeral = true;
        c.pooled = false;
        if (vm_boot(&c, &s, NULL) < 0)
                return false;
        vs = s.priv;
        close(s.chan_fd);
        (void)snprintf(marker, sizeof(marker), "%s/%s", vs->run_dir, VM_POOL_READY);
        fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                vm_kill(vs->run_dir, vs->uuid);
                (void)rm_rf_at(AT_FDCWD, vs->run_dir);
                (void)unlink(vs->lock_path);
        } else {
                close(fd);
        }
        close(vs->lock_fd); /* ready: a run may take it */
        free(vs);
        return fd >= 0;
}

void vm_pool_refill(const struct backend_config *cfg, const char *key)
{
        char pool[PATH_MAX], lockpath[PATH_MAX + 16];
        unsigned n_ready, n_all;
        int ready, lk;

        /* the caller goes on once the refiller holds the pool's refill lock (or gave up), so a
         * `pool clear` after the run waits for it instead of racing it */
        if (proc_fork_worker(&ready) != 0)
                return;
        pool_dir(cfg->ref.run_dir, key, pool, sizeof(pool));
        (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
        lk = private_dir_ensure(cfg->ref.run_dir, NULL) < 0 || private_dir_ensure(pool, NULL) < 0
                 ? -1
                 : open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                _exit(0); /* another refill is at it */
        close(ready);
        {
                cleanup_close int pfd = open(pool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (pfd < 0)
                        _exit(0);
                if (!pool_is_for(pfd, key) &&
                    (lexists_at(pfd, VM_POOL_KEY_FILE) == 0 ||
                     write_file_atomic_at(pfd, VM_POOL_KEY_FILE, key, VM_POOL_KEY_LEN, 0600,
                                          false) < 0))
                        _exit(0); /* the name's digits are another configuration's */
        }
        drop_stale(pool);
        for (;;) {
                pool_count(pool, &n_ready, &n_all);
                if (n_all >= VM_POOL_TARGET || pools_total(cfg->ref.run_dir) >= VM_POOL_MAX ||
                    !pool_add(cfg, pool))
                        break;
        }
        _exit(0);
}

int vm_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err)
{
        DIR *d = opendir(ephemeral_dir);
        struct dirent *de;
        unsigned removed = 0;

        (void)err;
        while (d && (de = readdir(d))) {
                char pool[PATH_MAX], lockpath[PATH_MAX + 16];
                cleanup_close int lk = -1;
                struct dirent *ee;
                DIR *p;
                if (strncmp(de->d_name, VM_POOL_PREFIX, strlen(VM_POOL_PREFIX)) != 0)
                        continue;
                (void)snprintf(pool, sizeof(pool), "%s/%s", ephemeral_dir, de->d_name);
                /* a refill in progress would add behind our back: wait for it */
                (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
                lk = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (lk >= 0)
                        (void)flock(lk, LOCK_EX);
                p = opendir(pool);
                while (p && (ee = readdir(p))) {
                        char uuid[37];
                        cleanup_close int el = -1;
                        if (!lock_uuid(ee->d_name, uuid))
                                continue;
                        el = openat(dirfd(p), ee->d_name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
                        if (el < 0 || flock(el, LOCK_EX | LOCK_NB) < 0)
                                continue; /* being claimed right now */
                        discard(dirfd(p), pool, uuid, ee->d_name);
                        removed++;
                }
                if (p)
                        closedir(p);
                (void)unlink(lockpath);
                {
                        /* entries being claimed keep it (and its key) */
                        unsigned n_ready, n_all;
                        pool_count(pool, &n_ready, &n_all);
                        if (!n_all) {
                                char key[PATH_MAX + 8];
                                (void)snprintf(key, sizeof(key), "%s/%s", pool, VM_POOL_KEY_FILE);
                                (void)unlink(key);
                                (void)rmdir(pool);
                        }
                }
        }
        if (d)
                closedir(d);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}
