// SPDX-License-Identifier: Apache-2.0
/* A data directory's runtime directory: see runtime-dir.h. */
#include "runtime-dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "runtime/etc-snapshot.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"

#define ID_LEN 16
#define RECORD_FILE "data-dir" /* the data directory's canonical path */
#define PROXY_SUB "proxy"
#define PROXY_LOCK "lock" /* held by a running proxy (src/proxy/main.c) */
#define ETC_SUB "etc"

char *runtime_dir_top(void)
{
        const char *runtime = geteuid() == 0 ? "/run" : secure_getenv("XDG_RUNTIME_DIR");
        char *top = NULL;

        if (!runtime || runtime[0] != '/' || asprintf(&top, "%s/agentkernel", runtime) < 0)
                return NULL;
        return top;
}

static void data_id(const char *data, char id[ID_LEN + 1])
{
        char hex[SHA256_DIGEST_STRING_LENGTH];

        (void)SHA256Data((const uint8_t *)data, strlen(data), hex);
        memcpy(id, hex, ID_LEN);
        id[ID_LEN] = '\0';
}

/* Whether <id>/ (idfd) holds nothing but its record. */
static bool only_record_left(int idfd)
{
        DIR *d = opendir_at(idfd);
        struct dirent *de;
        bool only = true;

        if (!d)
                return false;
        while (only && (de = readdir(d)))
                only = streq(de->d_name, ".") || streq(de->d_name, "..") ||
                       streq(de->d_name, RECORD_FILE);
        closedir(d);
        return only;
}

/* Removes the proxy directory of <id>/ unless a proxy runs there (holds its lock): the lock is
 * held while its files go. false when it stays. */
static bool remove_proxy_dir(int idfd)
{
        cleanup_close int pfd = -1, lk = -1;
        struct stat st;

        pfd = openat(idfd, PROXY_SUB, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
                return errno == ENOENT;
        if (fstat(pfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077))
                return false; /* not ours as we made it: never acted on */
        lk = openat(pfd, PROXY_LOCK, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (lk < 0 ? errno != ENOENT : flock(lk, LOCK_EX | LOCK_NB) < 0)
                return false; /* a proxy runs (its sandboxes may, too) */
        return rm_rf_at(idfd, PROXY_SUB) == 0;
}

/* The <id>/ named name in top (tfd), when its record names a data directory that does not exist:
 * what nothing uses of it goes, and it goes when nothing is left. */
static bool sweep_one(int tfd, const char *top, const char *name)
{
        cleanup_buf struct buf rec = BUF_INIT;
        cleanup_close int idfd = -1;
        char id[ID_LEN + 1], *path;
        struct stat st;

        idfd = private_dir_open_at(tfd, top, name, 0, NULL);
        if (idfd < 0 || private_file_read_at(idfd, RECORD_FILE, &rec, PATH_MAX, NULL) < 0)
                return false; /* not ours, or from before records (never acted on) */
        path = rec.data;
        if (!path || path[0] != '/' || strlen(path) != rec.len)
                return false;
        data_id(path, id);
        if (!streq(id, name))
                return false; /* a record that is not this directory's */
        if (lstat(path, &st) == 0 || errno != ENOENT)
                return false; /* the data directory is there (or cannot be told) */
        if (!remove_proxy_dir(idfd) || etc_snapshot_cache_remove(idfd, ETC_SUB) < 0 ||
            !only_record_left(idfd))
                return false;
        (void)unlinkat(idfd, RECORD_FILE, 0);
        return unlinkat(tfd, name, AT_REMOVEDIR) == 0;
}

/* The sweep over top (tfd), leaving self (may be NULL) alone. */
static unsigned sweep(int tfd, const char *top, const char *self)
{
        DIR *d = opendir_at(tfd);
        struct dirent *de;
        unsigned seen = 0, removed = 0;

        if (!d)
                return 0;
        while (seen < RUNTIME_DIR_SWEEP_MAX && (de = readdir(d))) {
                if (!is_lower_hex(de->d_name, ID_LEN) || (self && streq(de->d_name, self)))
                        continue;
                seen++;
                removed += sweep_one(tfd, top, de->d_name);
        }
        closedir(d);
        return removed;
}

unsigned runtime_dir_sweep(void)
{
        cleanup_free char *top = runtime_dir_top();
        cleanup_close int tfd = -1;

        if (!top)
                return 0;
        tfd = private_dir_open(top, "runtime directory", 0, NULL, NULL);
        return tfd < 0 ? 0 : sweep(tfd, top, NULL);
}

/* <top>/<id>/ of the data directory data, made with its record (and a sweep for the others'
 * leftovers, the first time). -1 when it cannot be used. */
static int id_dir_open(const char *top, const char *data, char id[ID_LEN + 1])
{
        cleanup_close int tfd =
            private_dir_open(top, "runtime directory", PRIVATE_CREATE, NULL, NULL);
        struct stat st;
        int idfd;

        if (tfd < 0)
                return -1;
        data_id(data, id);
        idfd = private_dir_open_at(tfd, top, id, PRIVATE_CREATE, NULL);
        if (idfd >= 0 && fstatat(idfd, RECORD_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
            errno == ENOENT) {
                (void)write_file_atomic_at(idfd, RECORD_FILE, data, strlen(data), PRIVATE_FILE_MODE,
                                           false);
                (void)sweep(tfd, top, id);
        }
        return idfd;
}

int runtime_dir_sub(const char *sub, char *out, size_t len, struct ak_err *err)
{
        cleanup_free char *data = NULL, *top = runtime_dir_top();
        cleanup_close int dfd = paths_data_dir_open(&data, err), idfd = -1;
        char id[ID_LEN + 1], rel[ID_LEN + NAME_MAX + 2];
        int fd;

        if (dfd < 0)
                return dfd;
        if (top && (idfd = id_dir_open(top, data, id)) >= 0) {
                (void)snprintf(rel, sizeof(rel), "%s/%s", id, sub);
                fd = private_dir_open_at(idfd, top, sub, PRIVATE_CREATE, NULL);
                if (fd >= 0) {
                        close(fd);
                        if ((size_t)snprintf(out, len, "%s/%s", top, rel) >= len)
                                return ak_err_set(err, ENAMETOOLONG, "runtime directory path");
                        return 0;
                }
        }
        (void)snprintf(rel, sizeof(rel), "cache/%s", sub);
        fd = private_dir_open_at(dfd, data, rel, PRIVATE_CREATE, err);
        if (fd < 0)
                return fd;
        close(fd);
        if ((size_t)snprintf(out, len, "%s/%s", data, rel) >= len)
                return ak_err_set(err, ENAMETOOLONG, "data directory path");
        return 0;
}
