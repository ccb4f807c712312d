// SPDX-License-Identifier: Apache-2.0
/*
 * The trust store of approved agentkernel.toml files. The store is read back from disk, so it is
 * checked like any input: opened without following a symlink, believed only when it is a regular
 * file of the caller closed to group and others, bounded in size and entries. It never follows a
 * path it holds (only `trust_add` lstat()s them, to drop approvals of files that are gone).
 */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/time-util.h"

#define TRUST_LOCK ".trusted-configs.lock"
#define TRUST_VERSION 1

char *trust_store_path(void)
{
        cleanup_free char *dir = NULL;
        struct ak_err ignored = {0};
        char *p = NULL;

        if (paths_user_dir_path(&dir, &ignored) < 0 || asprintf(&p, "%s/%s", dir, TRUST_FILE) < 0)
                return NULL;
        return p;
}

static int distrust(struct ak_err *err, const char *why)
{
        cleanup_free char *p = trust_store_path();

        return ak_err_set(err, EPERM,
                          "the trust store '%s' %s, so none of its approvals is believed; remove "
                          "it and approve your configs again (agentkernel trust FILE)",
                          p ? p : TRUST_FILE, why);
}

/* Reads the store into *ret ({"version", "configs": {...}}; an empty one when there is none). */
static int load(int dirfd, json_t **ret, struct ak_err *err)
{
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        json_t *configs, *v;
        const char *k;
        struct stat st;
        int r;

        fd = openat(dirfd, TRUST_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                *ret = json_pack("{s:i,s:{}}", "version", TRUST_VERSION, "configs");
                return *ret ? 0 : ak_err_oom(err);
        }
        if (fd < 0)
                return errno == ELOOP ? distrust(err, "is a symbolic link")
                                      : ak_err_errno(err, errno, "cannot read the trust store");
        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "cannot read the trust store");
        if (!S_ISREG(st.st_mode))
                return distrust(err, "is not a regular file");
        if (st.st_uid != geteuid())
                return distrust(err, "is not owned by you");
        if (st.st_mode & 022)
                return distrust(err, "is writable by group or others");
        r = read_fd_full(fd, &b, TRUST_FILE_MAX);
        if (r < 0)
                return r == -EFBIG ? distrust(err, "is too large")
                                   : ak_err_errno(err, r, "cannot read the trust store");
        o = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, NULL);
        configs = json_object_get(o, "configs");
        if (!json_is_object(configs) || json_object_size(configs) > TRUST_MAX_ENTRIES)
                return distrust(err, "is not valid");
        json_object_foreach (configs, k, v)
                if (k[0] != '/' || !json_is_string(json_object_get(v, "sha256")) ||
                    strlen(json_string_value(json_object_get(v, "sha256"))) != 64)
                        return distrust(err, "is not valid");
        *ret = TAKE_PTR(o);
        return 0;
}

static int save(int dirfd, json_t *o, struct ak_err *err)
{
        return private_json_save_at(dirfd, TRUST_FILE, o, "the trust store", err);
}

/* The store's lock, held exclusively for a read-modify-write. */
static int lock(int dirfd, struct ak_err *err)
{
        return private_lock_at(dirfd, TRUST_LOCK, "the trust store", err);
}

/* Opens the store's directory (made with create), takes its lock where ret_lk is given, and
 * loads the store. -ENOENT, with nothing set in err, where it does not exist and create is
 * false. */
static int open_store(bool create, int *ret_dirfd, int *ret_lk, json_t **ret_o, struct ak_err *err)
{
        int r;

        *ret_dirfd = paths_user_dir_open_for(create, err);
        if (*ret_dirfd < 0)
                return *ret_dirfd;
        if (ret_lk) {
                *ret_lk = lock(*ret_dirfd, err);
                if (*ret_lk < 0)
                        return *ret_lk;
        }
        r = load(*ret_dirfd, ret_o, err);
        return r < 0 ? r : 0;
}

int trust_check(const char *path, const char *sha256_hex, enum trust_verdict *ret,
                struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        json_t *e;
        int r = open_store(false, &dirfd, NULL, &o, err);

        if (r == -ENOENT) {
                *ret = TRUST_NEW;
                return 0;
        }
        if (r < 0)
                return r;
        e = json_object_get(json_object_get(o, "configs"), path);
        if (!e)
                *ret = TRUST_NEW;
        else if (streq(json_string_value(json_object_get(e, "sha256")), sha256_hex))
                *ret = TRUST_APPROVED;
        else
                *ret = TRUST_CHANGED;
        return 0;
}

/* Drops approvals of files that no longer exist (used when the store is full). */
static void prune_missing(json_t *configs)
{
        const char *k;
        json_t *v;
        void *tmp;
        struct stat st;

        json_object_foreach_safe(configs, tmp, k, v) if (lstat(k, &st) < 0 && errno == ENOENT)
            json_object_del(configs, k);
}

int trust_add(const char *path, const char *sha256_hex, struct ak_err *err)
{
        cleanup_close int dirfd = -1, lk = -1;
        cleanup_json json_t *o = NULL;
        json_t *configs;
        char now[RFC3339_MAX];
        int r = open_store(true, &dirfd, &lk, &o, err);

        if (r < 0)
                return r;
        configs = json_object_get(o, "configs");
        if (!json_object_get(configs, path) && json_object_size(configs) >= TRUST_MAX_ENTRIES)
                prune_missing(configs);
        if (!json_object_get(configs, path) && json_object_size(configs) >= TRUST_MAX_ENTRIES)
                return ak_err_set(err, ENOSPC,
                                  "the trust store holds %d approvals, its most; remove some "
                                  "with: agentkernel untrust FILE (agentkernel trust --list "
                                  "shows them)",
                                  TRUST_MAX_ENTRIES);
        format_rfc3339(now_realtime_ns(), now);
        if (json_object_set_new(configs, path,
                                json_pack("{s:s,s:s}", "sha256", sha256_hex, "approved_at", now)) <
            0)
                return ak_err_oom(err);
        return save(dirfd, o, err);
}

int trust_remove(const char *path, bool *ret_found, struct ak_err *err)
{
        cleanup_close int dirfd = -1, lk = -1;
        cleanup_json json_t *o = NULL;
        json_t *configs;
        int r;

        *ret_found = false;
        r = open_store(false, &dirfd, &lk, &o, err);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        configs = json_object_get(o, "configs");
        if (!json_object_get(configs, path))
                return 0;
        json_object_del(configs, path);
        *ret_found = true;
        return save(dirfd, o, err);
}

int trust_list(json_t **ret, struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        int r = open_store(false, &dirfd, NULL, &o, err);

        if (r == -ENOENT) {
                *ret = json_object();
                return *ret ? 0 : ak_err_oom(err);
        }
        if (r < 0)
                return r;
        *ret = json_incref(json_object_get(o, "configs"));
        return 0;
}
