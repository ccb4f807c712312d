/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layer unpacking on libarchive's reader (tar, pax, GNU; gzip and zstd filters), with our own
 * writer: libarchive's disk writer resolves paths by string and cannot produce overlayfs
 * whiteouts, so each entry is created here relative to directory fds that openat2 resolved
 * inside the layer root (the lesson of the runc/umoci path-escape CVEs).
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/unpack.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

struct unpacker {
        int root;
        bool owners; /* running as root: apply the layer's owners */
        struct unpack_stats st;
        struct ak_err *err;
};

static int openat2_in_root(int root, const char *path, int flags)
{
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        int fd = (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
        return fd < 0 ? -errno : fd;
}

/* Normalises a member name in place: strips leading "/" and "./", drops "." components and
 * empty ones; refuses "..". Returns 0, or -EPERM for an escaping name. */
static int clean_path(char *p)
{
        char *out = p, *s = p;

        while (*s) {
                char *e;
                size_t n;
                while (*s == '/')
                        s++;
                if (!*s)
                        break;
                e = strchr(s, '/');
                n = e ? (size_t)(e - s) : strlen(s);
                if (n == 2 && s[0] == '.' && s[1] == '.')
                        return -EPERM;
                if (!(n == 1 && s[0] == '.')) {
                        if (out != p)
                                *out++ = '/';
                        memmove(out, s, n);
                        out += n;
                }
                s += n;
        }
        *out = '\0';
        return 0;
}

/* An fd of directory `dir` (a cleaned path, "" for the root), created with its parents (0755)
 * when missing. Symlinks on the way are followed, but only inside the root. */
static int open_dir(struct unpacker *u, char *dir)
{
        char *slash;
        int pfd, fd, r;

        fd = openat2_in_root(u->root, dir, O_RDONLY | O_DIRECTORY);
        if (fd != -ENOENT)
                return fd;
        slash = strrchr(dir, '/');
        if (slash) {
                *slash = '\0';
                pfd = open_dir(u, dir);
                *slash = '/';
        } else {
                pfd = openat2_in_root(u->root, "", O_RDONLY | O_DIRECTORY);
        }
        if (pfd < 0)
                return pfd;
        r = mkdirat(pfd, slash ? slash + 1 : dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
        if (r == 0) {
                fd = openat(pfd, slash ? slash + 1 : dir,
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                r = fd < 0 ? -errno : fd;
        }
        close(pfd);
        return r;
}

/* Makes room for a new entry `name` in dir: removes what is there unless both are dirs.
 * Returns 1 when an existing directory is kept. */
static int make_room(int dfd, const char *name, bool want_dir)
{
        struct stat st;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (want_dir && S_ISDIR(st.st_mode))
                return 1;
        return rm_rf_at(dfd, name);
}

static int apply_meta(struct unpacker *u, int dfd, const char *name, int fd,
                      struct archive_entry *e, bool is_link)
{
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
                                 {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
        int r;

        if (u->owners) {
                uid_t uid = (uid_t)archive_entry_uid(e);
                gid_t gid = (gid_t)archive_entry_gid(e);
                r = fd >= 0 ? fchown(fd, uid, gid)
                            : fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
                if (r < 0)
                        return -errno;
        }
        if (!is_link) {
                mode_t mode = archive_entry_perm(e) & 07777;
                /* Unprivileged, the store's own user must keep writing into (and one day
                 * pruning) every directory; the sandbox's root sees through modes anyway. */
                if (!u->owners && archive_entry_filetype(e) == AE_IFDIR)
                        mode |= 0700;
                /* After chown, which clears setuid bits. */
                r = fd >= 0 ? fchmod(fd, mode) : fchmodat(dfd, name, mode, 0);
                if (r < 0)
                        return -errno;
        }
        r = fd >= 0 ? futimens(fd, ts) : utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
        return r < 0 ? -errno : 0;
}

static int write_file(struct unpacker *u, struct archive *a, int fd, int64_t size)
{
        const void *block;
        size_t len;
        la_int64_t off;
        int r;

        for (;;) {
                r = archive_read_data_block(a, &block, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN)
                        return ak_err_set(u->err, EIO, "layer data: %s", archive_error_string(a));
                u->st.bytes += len;
                if (u->st.bytes > LAYER_MAX_BYTES)
                        return ak_err_set(u->err, EFBIG, "layer unpacks to more than %llu bytes",
                                          (unsigned long long)LAYER_MAX_BYTES);
                for (size_t done = 0; done < len;) {
                        ssize_t w = pwrite(fd, (const char *)block + done, len - done,
                                           (off_t)off + (off_t)done);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                return ak_err_errno(u->err, errno, "write");
                        }
                        done += (size_t)w;
                }
        }
        /* Sparse files end in a hole. */
        if (size > 0 && ftruncate(fd, size) < 0)
                return ak_err_errno(u->err, errno, "truncate");
        return 0;
}

static int do_hardlink(struct unpacker *u, int dfd, const char *name, const char *target_raw)
{
        cleanup_free char *target = strdup(target_raw);
        cleanup_close int tfd = -1;
        char proc[64];
        struct stat st;

        if (!target)
                return -ENOMEM;
        if (clean_path(target) < 0 || !*target)
                return ak_err_set(u->err, EPERM, "hard link '%s' points outside the layer ('%s')",
                                  name, target_raw);
        tfd = openat2_in_root(u->root, target, O_PATH | O_NOFOLLOW);
        if (tfd < 0)
                return ak_err_set(u->err, -tfd,
                                  "hard link '%s': target '%s' is not a file of this layer", name,
                                  target_raw);
        if (fstat(tfd, &st) < 0 || S_ISDIR(st.st_mode))
                return ak_err_set(u->err, EPERM, "hard link '%s' to a directory", name);
        if (linkat(tfd, "", dfd, name, AT_EMPTY_PATH) == 0)
                return 0;
        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tfd);
        if (linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) == 0)
                return 0;
        return ak_err_errno(u->err, errno, "hard link '%s'", name);
}

static int whiteout(struct unpacker *u, int dfd, const char *base, const char *path)
{
        const char *victim = base + strlen(WH_PREFIX);
        int r;

        if (streq(base, WH_OPAQUE)) {
                /* root: overlayfs' own namespace; unprivileged: read with "userxattr" */
                if (fsetxattr(dfd, u->owners ? "trusted.overlay.opaque" : "user.overlay.opaque",
                              "y", 1, 0) < 0)
                        return ak_err_errno(u->err, errno, "opaque directory '%s'", path);
                return 0;
        }
        if (!*victim || streq(victim, ".") || streq(victim, ".."))
                return ak_err_set(u->err, EPERM, "bad whiteout '%s'", path);
        r = make_room(dfd, victim, false);
        if (r < 0)
                return ak_err_errno(u->err, r, "whiteout '%s'", path);
        /* 0/0 character devices may be made without CAP_MKNOD (Linux 5.8+) */
        if (mknodat(dfd, victim, S_IFCHR | 0000, makedev(0, 0)) < 0)
                return ak_err_errno(u->err, errno, "whiteout '%s'", path);
        return 0;
}

static int unpack_entry(struct unpacker *u, struct archive *a, struct archive_entry *e)
{
        const char *raw = archive_entry_pathname(e);
        cleanup_free char *path = NULL;
        cleanup_close int dfd = -1;
        cleanup_close int fd = -1;
        const char *base;
        char *slash;
        mode_t type = archive_entry_filetype(e);
        int r;

        if (!raw)
                return ak_err_set(u->err, EBADMSG, "layer entry without a name");
        if (strlen(raw) >= LAYER_PATH_MAX)
                return ak_err_set(u->err, ENAMETOOLONG, "layer entry name longer than %u bytes",
                                  LAYER_PATH_MAX);
        path = strdup(raw);
        if (!path)
                return -ENOMEM;
        if (clean_path(path) < 0)
                return ak_err_set(u->err, EPERM, "layer entry '%s' points outside the layer", raw);
        if (!*path) /* the root itself */
                return 0;
        slash = strrchr(path, '/');
        if (slash) {
                *slash = '\0';
                dfd = open_dir(u, path);
                *slash = '/';
                base = slash + 1;
        } else {
                dfd = open_dir(u, (char[]){""});
                base = path;
        }
        if (dfd < 0)
                return ak_err_errno(u->err, dfd, "layer entry '%s': parent directory", path);
        if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
                return whiteout(u, dfd, base, path);

        r = make_room(dfd, base, type == AE_IFDIR && !archive_entry_hardlink(e));
        if (r < 0)
                return ak_err_errno(u->err, r, "layer entry '%s'", path);
        if (archive_entry_hardlink(e)) {
                r = do_hardlink(u, dfd, base, archive_entry_hardlink(e));
                return r;
        }
        switch (type) {
        case AE_IFDIR:
                if (r == 0 && mkdirat(dfd, base, 0700) < 0)
                        return ak_err_errno(u->err, errno, "mkdir '%s'", path);
                fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                break;
        case AE_IFREG:
                fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        r = write_file(u, a, fd, archive_entry_size(e));
                        if (r < 0)
                                return r;
                }
                break;
        case AE_IFLNK: {
                const char *t = archive_entry_symlink(e);
                if (!t || !*t || strlen(t) >= LAYER_PATH_MAX)
                        return ak_err_set(u->err, EBADMSG, "symlink '%s' has no valid target",
                                          path);
                if (symlinkat(t, dfd, base) < 0)
                        return ak_err_errno(u->err, errno, "symlink '%s'", path);
                r = apply_meta(u, dfd, base, -1, e, true);
                return r < 0 ? ak_err_errno(u->err, r, "'%s'", path) : 0;
        }
        case AE_IFIFO:
                if (mkfifoat(dfd, base, 0600) < 0)
                        return ak_err_errno(u->err, errno, "fifo '%s'", path);
                r = apply_meta(u, dfd, base, -1, e, false);
                return r < 0 ? ak_err_errno(u->err, r, "'%s'", path) : 0;
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFSOCK:
        default:
                /* Device nodes are never created: a sandbox gets its own minimal /dev. */
                u->st.skipped_devices++;
                return 0;
        }
        if (fd < 0)
                return ak_err_errno(u->err, errno, "create '%s'", path);
        r = apply_meta(u, dfd, base, fd, e, false);
        return r < 0 ? ak_err_errno(u->err, r, "'%s'", path) : 0;
}

int layer_unpack(int fd, int root_fd, struct unpack_stats *ret, struct ak_err *err)
{
        struct unpacker u = {.root = root_fd, .owners = geteuid() == 0, .err = err};
        struct archive *a = archive_read_new();
        struct archive_entry *e;
        int r = 0, k;

        if (!a)
                return ak_err_oom(err);
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        archive_read_support_filter_none(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_empty(a);
        if (archive_read_open_fd(a, fd, 1 << 17) != ARCHIVE_OK) {
                r = ak_err_set(err, EBADMSG, "layer: %s", archive_error_string(a));
                goto out;
        }
        for (;;) {
                k = archive_read_next_header(a, &e);
                if (k == ARCHIVE_EOF)
                        break;
                if (k < ARCHIVE_WARN) {
                        r = ak_err_set(err, EBADMSG, "layer is not a valid tar stream: %s",
                                       archive_error_string(a));
                        break;
                }
                if (++u.st.entries > LAYER_MAX_ENTRIES) {
                        r = ak_err_set(err, E2BIG, "layer has more than %u entries",
                                       LAYER_MAX_ENTRIES);
                        break;
                }
                r = unpack_entry(&u, a, e);
                if (r < 0)
                        break;
        }
out:
        archive_read_free(a);
        if (r >= 0 && ret)
                *ret = u.st;
        return r < 0 ? r : 0;
}
