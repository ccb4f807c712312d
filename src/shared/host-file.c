// SPDX-License-Identifier: Apache-2.0
/*
 * Files the host writes from data it does not trust (a sandbox's), or reads, at paths a user
 * names: out_file never opens its destination by name and never writes through a symlink or
 * into a file someone else planted; neither it nor open_source_file follows a symlink that
 * another user could have planted on the way.
 */
#include "host-file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fd-util.h"
#include "macro.h"
#include "path-walk.h"
#include "random-util.h"

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

static bool force_named;

void out_file_force_named(bool on)
{
        force_named = on;
}

/* Follows the symlinks at (dirfd, name) while each is trusted. On return *ret_dir and ret_name
 * name the end of that chain: an entry that is not a symlink, an untrusted symlink, or nothing
 * (ret_st->st_mode 0). */
static int follow_trusted(int dirfd, const char *name, int *ret_dir, char ret_name[NAME_MAX + 1],
                          struct stat *ret_st)
{
        cleanup_close int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        char nm[PATH_MAX];

        if (cur < 0)
                return -errno;
        if (strlen(name) >= sizeof(nm))
                return -ENAMETOOLONG;
        memcpy(nm, name, strlen(name) + 1);
        for (int links = 0;; links++) {
                cleanup_close int lfd = openat(cur, nm, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                char target[PATH_MAX], *slash;
                ssize_t n;

                if (lfd < 0 && errno != ENOENT)
                        return -errno;
                if (lfd < 0) {
                        memset(ret_st, 0, sizeof(*ret_st));
                        break;
                }
                if (fstat(lfd, ret_st) < 0)
                        return -errno;
                if (!S_ISLNK(ret_st->st_mode) || !path_link_trusted(ret_st))
                        break;
                if (links == PATH_WALK_LINKS_MAX)
                        return -ELOOP;
                /* the text read once is what gets followed: the link cannot change under us */
                n = readlinkat(lfd, "", target, sizeof(target) - 1);
                if (n <= 0)
                        return n < 0 ? -errno : -ENOENT;
                target[n] = '\0';
                while (n > 1 && target[n - 1] == '/')
                        target[--n] = '\0';
                slash = strrchr(target, '/');
                if (slash) {
                        int nfd;
                        *slash = '\0';
                        nfd = path_walk(cur, slash == target ? "/" : target, O_PATH | O_DIRECTORY,
                                        0, true);
                        if (nfd < 0)
                                return nfd;
                        close(cur);
                        cur = nfd;
                        memmove(target, slash + 1, strlen(slash + 1) + 1);
                }
                (void)snprintf(nm, sizeof(nm), "%s", target[0] ? target : ".");
        }
        if (strlen(nm) > NAME_MAX)
                return -ENAMETOOLONG;
        memcpy(ret_name, nm, strlen(nm) + 1);
        *ret_dir = cur;
        cur = -1;
        return 0;
}

static bool plain_name(const char *s)
{
        return *s && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..") && strlen(s) <= NAME_MAX;
}

/* Splits path (modified) into its directory and last component; trailing slashes are dropped
 * and reported. "/" gives ("/", ""). */
static void split_last(char *path, const char **ret_dir, const char **ret_last, bool *ret_trailing)
{
        size_t n = strlen(path);
        char *slash;

        *ret_trailing = false;
        while (n > 1 && path[n - 1] == '/') {
                path[--n] = '\0';
                *ret_trailing = true;
        }
        slash = strrchr(path, '/');
        if (!slash) {
                *ret_dir = ".";
                *ret_last = path;
        } else if (slash == path) {
                *ret_dir = "/";
                *ret_last = path + 1;
        } else {
                *slash = '\0';
                *ret_dir = path;
                *ret_last = slash + 1;
        }
}

static int create_tmp(struct out_file *f)
{
        if (!force_named) {
                f->fd = openat(f->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
                if (f->fd >= 0)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
                        return -errno; /* the filesystem has O_TMPFILE: this is the answer */
        }
        for (int i = 0; i < 16; i++) {
                char rnd[17];
                random_hex(rnd, 8);
                (void)snprintf(f->tmp, sizeof(f->tmp), ".%.200s.ak-%s", f->name, rnd);
                f->fd = openat(f->dir_fd, f->tmp,
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (f->fd >= 0)
                        return 0;
                if (errno != EEXIST)
                        break;
        }
        f->tmp[0] = '\0';
        return -errno;
}

int out_file_open(const char *dest, const char *name_if_dir, struct out_file *ret,
                  struct ak_err *err)
{
        struct out_file f = OUT_FILE_INIT;
        char buf[PATH_MAX], end_name[NAME_MAX + 1];
        cleanup_close int pfd = -1;
        cleanup_close int end_dir = -1;
        const char *dir, *last;
        bool trailing, into;
        struct stat st;
        int r;

        if (!*dest || strlen(dest) >= sizeof(buf))
                return ak_err_set(err, EINVAL, "invalid destination '%.200s'", dest);
        memcpy(buf, dest, strlen(dest) + 1);
        split_last(buf, &dir, &last, &trailing);
        pfd = path_walk(AT_FDCWD, dir, O_PATH | O_DIRECTORY, 0, true);
        if (pfd == -ELOOP)
                return ak_err_set(err, ELOOP,
                                  "cannot write '%s': a symbolic link on its way is owned by "
                                  "another user (or there are too many); it is not followed",
                                  dest);
        if (pfd < 0)
                return ak_err_errno(err, pfd, "cannot write '%s'", dest);
        if (!*last || streq(last, ".") || streq(last, "..")) {
                f.dir_fd = openat(pfd, *last ? last : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (f.dir_fd < 0)
                        return ak_err_errno(err, errno, "cannot write '%s'", dest);
                into = true;
        } else {
                r = follow_trusted(pfd, last, &end_dir, end_name, &st);
                if (r < 0)
                        return ak_err_errno(err, r, "cannot write '%s'", dest);
                into = S_ISDIR(st.st_mode);
                if (!into && trailing && !st.st_mode)
                        return ak_err_set(err, ENOENT, "directory '%s' does not exist", dest);
                if (!into && trailing && S_ISLNK(st.st_mode))
                        return ak_err_set(err, ELOOP,
                                          "'%s' is a symbolic link owned by another user (uid %u); "
                                          "it is not followed",
                                          dest, (unsigned)st.st_uid);
                if (!into && trailing)
                        return ak_err_set(err, ENOTDIR, "'%s' is not a directory", dest);
                if (into) {
                        f.dir_fd = openat(end_dir, end_name,
                                          O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (f.dir_fd < 0)
                                return ak_err_errno(err, errno, "cannot write '%s'", dest);
                } else {
                        /* a file, nothing, or a symlink: whatever is there gets replaced */
                        f.dir_fd = TAKE_FD(pfd);
                        (void)snprintf(f.name, sizeof(f.name), "%s", last);
                }
        }
        if (into) {
                if (!name_if_dir) {
                        close(f.dir_fd);
                        return ak_err_set(err, EISDIR, "'%s' is a directory", dest);
                }
                if (!plain_name(name_if_dir)) {
                        close(f.dir_fd);
                        return ak_err_set(err, EINVAL, "invalid file name '%.200s'", name_if_dir);
                }
                (void)snprintf(f.name, sizeof(f.name), "%s", name_if_dir);
        }
        if (strlen(f.name) > NAME_MAX) {
                close(f.dir_fd);
                return ak_err_set(err, ENAMETOOLONG, "file name in '%s' is too long", dest);
        }
        r = create_tmp(&f);
        if (r < 0) {
                close(f.dir_fd);
                return ak_err_errno(err, r, "cannot write '%s'", dest);
        }
        *ret = f;
        return 0;
}

/* Gives the unnamed (O_TMPFILE) file a random temporary name in its directory. */
static int link_tmp(struct out_file *f)
{
        char proc[64];

        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
        for (int i = 0; i < 16; i++) {
                char rnd[17];
                random_hex(rnd, 8);
                (void)snprintf(f->tmp, sizeof(f->tmp), ".%.200s.ak-%s", f->name, rnd);
                /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc works for everyone */
                if (linkat(f->fd, "", f->dir_fd, f->tmp, AT_EMPTY_PATH) == 0 ||
                    (errno != EEXIST &&
                     linkat(AT_FDCWD, proc, f->dir_fd, f->tmp, AT_SYMLINK_FOLLOW) == 0))
                        return 0;
                if (errno != EEXIST)
                        break;
        }
        f->tmp[0] = '\0';
        return -errno;
}

int out_file_publish(struct out_file *f, mode_t mode, struct ak_err *err)
{
        mode_t mask = umask(0);
        int r;

        umask(mask);
        if (fchmod(f->fd, mode & 0777 & ~mask) < 0)
                return ak_err_errno(err, errno, "cannot write '%s'", f->name);
        if (!f->tmp[0] && (r = link_tmp(f)) < 0)
                return ak_err_errno(err, r, "cannot write '%s'", f->name);
        if (renameat(f->dir_fd, f->tmp, f->dir_fd, f->name) < 0) {
                r = errno;
                (void)unlinkat(f->dir_fd, f->tmp, 0);
                f->tmp[0] = '\0';
                return ak_err_errno(err, r, "cannot replace '%s'", f->name);
        }
        f->tmp[0] = '\0';
        f->published = true;
        return 0;
}

void out_file_abort(struct out_file *f)
{
        if (f->dir_fd >= 0 && !f->published && f->tmp[0])
                (void)unlinkat(f->dir_fd, f->tmp, 0);
        if (f->fd >= 0)
                close(f->fd);
        if (f->dir_fd >= 0)
                close(f->dir_fd);
        f->fd = f->dir_fd = -1;
        f->tmp[0] = '\0';
}

int open_source_file(const char *path)
{
        char buf[PATH_MAX], end_name[NAME_MAX + 1];
        cleanup_close int pfd = -1;
        cleanup_close int end_dir = -1;
        const char *dir, *last;
        bool trailing;
        struct stat st;
        int fd, r;

        if (!*path || strlen(path) >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, path, strlen(path) + 1);
        split_last(buf, &dir, &last, &trailing);
        pfd = path_walk(AT_FDCWD, dir, O_PATH | O_DIRECTORY, 0, true);
        if (pfd < 0)
                return pfd;
        r = follow_trusted(pfd, *last ? last : ".", &end_dir, end_name, &st);
        if (r < 0)
                return r;
        if (!st.st_mode)
                return -ENOENT;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        /* O_NONBLOCK: a FIFO without a writer must not hang the open (reads block again below) */
        fd = openat(end_dir, end_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        (void)fd_set_nonblock(fd, false);
        return fd;
}
