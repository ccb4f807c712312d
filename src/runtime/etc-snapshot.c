// SPDX-License-Identifier: Apache-2.0
/* /etc snapshots: see etc-snapshot.h. Host side; runs before the sandbox exists. */
#include "etc-snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha256.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"

#define SNAPSHOT_FORMAT "agentkernel etc snapshot 3\n"
#define NAME_LEN (SHA256_DIGEST_STRING_LENGTH - 1) /* 64 hex digits */
#define TMP_STALE_SEC 3600 /* a builder's leftovers older than this are removed */

static void hash_bytes(SHA256_CTX *c, const void *p, size_t len)
{
        uint64_t n = len; /* length-prefixed: no two inputs hash alike by concatenation */
        SHA256Update(c, (const uint8_t *)&n, sizeof(n));
        SHA256Update(c, (const uint8_t *)p, len);
}

#define KEY_FILE "key"
#define KEY_LEN 32

/* The cache's secret (KEY_FILE: KEY_LEN random bytes, made once, a private file of ours): it is
 * hashed into every snapshot's name, so the name, which a sandbox can read in its mount table,
 * says nothing about the host's /etc (its files' inodes and times) and cannot be computed by
 * anyone else. */
static int cache_key(int rootfd, uint8_t key[KEY_LEN])
{
        cleanup_close int fd = -1;
        struct stat st;
        ssize_t n;

        fd = openat(rootfd, KEY_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                char tmp[32];
                int w;
                random_bytes(key, KEY_LEN);
                (void)snprintf(tmp, sizeof(tmp), ".key.%d", (int)getpid());
                w = openat(rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (w < 0)
                        return -errno;
                n = write(w, key, KEY_LEN);
                close(w);
                /* a concurrent first start may have made one: the first link wins, all read it */
                if (n != KEY_LEN ||
                    (linkat(rootfd, tmp, rootfd, KEY_FILE, 0) < 0 && errno != EEXIST)) {
                        (void)unlinkat(rootfd, tmp, 0);
                        return -EIO;
                }
                (void)unlinkat(rootfd, tmp, 0);
                fd = openat(rootfd, KEY_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 077))
                return -EPERM; /* not our secret: fill /etc the slow way */
        n = read(fd, key, KEY_LEN);
        return n == KEY_LEN ? 0 : -EIO;
}

static void snapshot_name(const uint8_t key[KEY_LEN], const struct etc_item *items, size_t n,
                          char out[NAME_LEN + 1])
{
        SHA256_CTX c;

        SHA256Init(&c);
        SHA256Update(&c, (const uint8_t *)SNAPSHOT_FORMAT, strlen(SNAPSHOT_FORMAT));
        hash_bytes(&c, key, KEY_LEN);
        for (size_t i = 0; i < n; i++) {
                const struct etc_item *it = &items[i];
                uint64_t meta[2] = {(uint64_t)it->kind, it->mode};

                hash_bytes(&c, meta, sizeof(meta));
                hash_bytes(&c, it->name, strlen(it->name));
                if (it->kind == ETC_COPY) {
                        /* the host file's identity: any change to it moves its ctime */
                        uint64_t id[8] = {
                            (uint64_t)it->st.st_dev,          (uint64_t)it->st.st_ino,
                            (uint64_t)it->st.st_size,         (uint64_t)it->st.st_mtim.tv_sec,
                            (uint64_t)it->st.st_mtim.tv_nsec, (uint64_t)it->st.st_ctim.tv_sec,
                            (uint64_t)it->st.st_ctim.tv_nsec, (uint64_t)it->st.st_mode};
                        hash_bytes(&c, id, sizeof(id));
                        hash_bytes(&c, it->source, strlen(it->source));
                } else if (it->kind == ETC_DATA) {
                        hash_bytes(&c, it->data, it->len);
                } else if (it->kind == ETC_SYMLINK) {
                        hash_bytes(&c, it->data, strlen(it->data));
                }
        }
        SHA256End(&c, out);
}

/* A shared lock on <name>.lock, taken on the file the name still refers to (a pruner unlinks
 * the files of the snapshots it removes, holding them exclusively). */
static int lock_shared(int rootfd, const char *name)
{
        char lock[NAME_LEN + 8];

        (void)snprintf(lock, sizeof(lock), "%s.lock", name);
        for (int tries = 0; tries < 64; tries++) {
                struct stat a, b;
                cleanup_close int fd =
                    openat(rootfd, lock, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -errno;
                if (flock(fd, LOCK_SH) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (fstat(fd, &a) == 0 && fstatat(rootfd, lock, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
                    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                        return TAKE_FD(fd);
        }
        return -EAGAIN;
}

static int copy_host_file(const struct etc_item *it, int dirfd)
{
        cleanup_close int in = -1, out = -1;

        in = open(it->source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (in < 0)
                return -errno;
        out = openat(dirfd, it->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return -errno;
        for (;;) {
                ssize_t k = sendfile(out, in, NULL, 1 << 20);
                if (k == 0)
                        break;
                if (k < 0 && errno != EINTR)
                        return -errno;
        }
        return fchmod(out, it->mode & 07777) < 0 ? -errno : 0;
}

static int write_item(const struct etc_item *it, int dirfd)
{
        cleanup_close int fd = -1;

        switch (it->kind) {
        case ETC_COPY:
                return copy_host_file(it, dirfd);
        case ETC_DATA:
        case ETC_MOUNT_FILE:
                fd = openat(dirfd, it->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                            0600);
                if (fd < 0)
                        return -errno;
                if (it->kind == ETC_DATA && write_all(fd, it->data, it->len) < 0)
                        return -EIO;
                return fchmod(fd, it->kind == ETC_DATA ? it->mode & 07777 : 0644) < 0 ? -errno : 0;
        case ETC_SYMLINK:
                return symlinkat(it->data, dirfd, it->name) < 0 ? -errno : 0;
        case ETC_MOUNT_DIR:
                return mkdirat(dirfd, it->name, 0755) < 0 ? -errno : 0;
        default:
                return -EINVAL;
        }
}

/* Makes the snapshot in a private directory, then publishes it by rename: readers never see a
 * partial one. Losing a race to a concurrent builder is fine: theirs is the same. */
static int build(int rootfd, const char *name, const struct etc_item *items, size_t n)
{
        char tmp[NAME_LEN + 32], hex[9];
        cleanup_close int dfd = -1;
        int r = 0;

        random_hex(hex, 4);
        (void)snprintf(tmp, sizeof(tmp), ".tmp-%s-%s", name, hex);
        if (mkdirat(rootfd, tmp, 0755) < 0)
                return -errno;
        dfd = openat(rootfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                r = -errno;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = write_item(&items[i], dfd);
        /* durable before it is published: a crash must not leave a snapshot of empty files */
        if (r >= 0 && (fchmod(dfd, 0755) < 0 || syncfs(dfd) < 0))
                r = -errno;
        if (r >= 0 && renameat(rootfd, tmp, rootfd, name) < 0) {
                r = errno == EEXIST || errno == ENOTEMPTY ? 0 : -errno;
                (void)rm_rf_at(rootfd, tmp);
                return r;
        }
        if (r < 0)
                (void)rm_rf_at(rootfd, tmp);
        else
                (void)fsync(rootfd);
        return r;
}

struct snap {
        char name[NAME_LEN + 1];
        int64_t made; /* ctime in ns: when it was published (renamed into place) */
};

static int cmp_newest_first(const void *a, const void *b)
{
        const struct snap *x = a, *y = b;
        return (x->made < y->made) - (x->made > y->made);
}

static bool is_snapshot_name(const char *s)
{
        return is_lower_hex(s, NAME_LEN);
}

/* Removes the snapshots nobody uses beyond the newest ETC_SNAPSHOTS_KEPT, and builders'
 * leftovers. Best effort. */
static void prune(int rootfd, const char *current)
{
        cleanup_free struct snap *v = NULL;
        struct snap *nv;
        size_t n = 0, cap = 0;
        struct dirent *de;
        time_t now = time(NULL);
        DIR *d = opendir_at(rootfd);

        if (!d)
                return;
        while ((de = readdir(d))) {
                struct stat st;
                if (fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode))
                        continue;
                if (strncmp(de->d_name, ".tmp-", 5) == 0) {
                        if (now - st.st_mtime > TMP_STALE_SEC)
                                (void)rm_rf_at(rootfd, de->d_name);
                        continue;
                }
                if (!is_snapshot_name(de->d_name) || streq(de->d_name, current))
                        continue;
                nv = array_reserve_one(v, n, &cap, sizeof(*v), 16);
                if (!nv)
                        break;
                v = nv;
                memcpy(v[n].name, de->d_name, NAME_LEN + 1);
                v[n++].made = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
        }
        closedir(d);
        if (n <= ETC_SNAPSHOTS_KEPT)
                return;
        qsort(v, n, sizeof(*v), cmp_newest_first);
        for (size_t i = ETC_SNAPSHOTS_KEPT; i < n; i++) {
                char lock[NAME_LEN + 8];
                cleanup_close int fd = -1;
                (void)snprintf(lock, sizeof(lock), "%s.lock", v[i].name);
                fd = openat(rootfd, lock, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* a sandbox uses it */
                if (rm_rf_at(rootfd, v[i].name) == 0)
                        (void)unlinkat(rootfd, lock, 0);
        }
}

/* A directory is used as ours only if we own it and nobody else can write it: a snapshot is
 * bound as the /etc of root's sandboxes, and its name can be computed by anyone. */
static bool ours(const struct stat *st)
{
        return st->st_uid == geteuid() && !(st->st_mode & 022);
}

/* The snapshot `name` as it stands: 1 when it is a usable one (a real directory of ours that
 * nobody else can write), 0 when there is none, -EPERM when something else has the name. */
static int snapshot_state(int rootfd, const char *name)
{
        struct stat st;

        if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        return S_ISDIR(st.st_mode) && ours(&st) ? 1 : -EPERM;
}

int etc_snapshot(const char *root, const struct etc_item *items, size_t n, char *ret_dir,
                 size_t ret_len)
{
        char name[NAME_LEN + 1];
        uint8_t key[KEY_LEN];
        cleanup_close int rootfd = -1;
        struct stat st;
        int lock, r;

        if (n > ETC_SNAPSHOT_ITEMS_MAX)
                return -E2BIG;
        rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (rootfd < 0 && errno == ENOENT) {
                r = mkdir_p(root, 0700);
                if (r < 0)
                        return r;
                rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        }
        if (rootfd < 0)
                return -errno;
        if (fstat(rootfd, &st) < 0 || !ours(&st))
                return -EPERM; /* someone else's: fill /etc the slow way */
        r = cache_key(rootfd, key);
        if (r < 0)
                return r;
        snapshot_name(key, items, n, name);
        if ((size_t)snprintf(ret_dir, ret_len, "%s/%s", root, name) >= ret_len)
                return -ENAMETOOLONG;
        lock = lock_shared(rootfd, name);
        if (lock < 0)
                return lock;
        r = snapshot_state(rootfd, name);
        if (r == 1)
                return lock;
        if (r < 0) {
                /* not one we made (another owner, writable by others, a link or a file): it
                 * goes, and ours takes its name */
                (void)rm_rf_at(rootfd, name);
        }
        r = build(rootfd, name, items, n);
        if (r >= 0 && snapshot_state(rootfd, name) != 1)
                r = -EPERM; /* lost the name to something that is not ours again */
        if (r < 0) {
                close(lock);
                return r;
        }
        prune(rootfd, name);
        return lock;
}

/* Removes the snapshot `name` (a directory) or, when `name` is a lock left without its snapshot,
 * that lock: with the lock held exclusively, so never one a sandbox uses. false when in use. */
static bool remove_unused(int rootfd, const char *name)
{
        char lock[NAME_LEN + 8];
        cleanup_close int fd = -1;

        (void)snprintf(lock, sizeof(lock), "%s.lock", name);
        fd = openat(rootfd, lock, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return false;
        if (rm_rf_at(rootfd, name) < 0)
                return false;
        (void)unlinkat(rootfd, lock, 0);
        return true;
}

int etc_snapshot_cache_remove(int parentfd, const char *name)
{
        cleanup_close int rootfd = -1;
        time_t now = time(NULL);
        bool busy = false;
        struct dirent *de;
        struct stat st;
        DIR *d;

        rootfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (rootfd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(rootfd, &st) < 0 || !ours(&st))
                return -EPERM;
        d = opendir_at(rootfd);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char snap[NAME_LEN + 1];
                if (fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (strncmp(de->d_name, ".tmp-", 5) == 0) {
                        if (now - st.st_mtime > TMP_STALE_SEC)
                                (void)rm_rf_at(rootfd, de->d_name);
                        else
                                busy = true; /* a build in progress */
                        continue;
                }
                if (len == NAME_LEN + 5 && streq(de->d_name + NAME_LEN, ".lock")) {
                        memcpy(snap, de->d_name, NAME_LEN);
                        snap[NAME_LEN] = '\0';
                } else if (is_snapshot_name(de->d_name)) {
                        memcpy(snap, de->d_name, NAME_LEN + 1);
                } else {
                        continue;
                }
                if (is_snapshot_name(snap) && !remove_unused(rootfd, snap))
                        busy = true;
        }
        closedir(d);
        if (busy)
                return -EBUSY;
        (void)unlinkat(rootfd, KEY_FILE, 0);
        return unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}
