// SPDX-License-Identifier: Apache-2.0
/*
 * Plain fd and file helpers. Every fd created here is O_CLOEXEC; nothing here follows a symlink
 * where it could be used to redirect a write (temp files use O_EXCL, rm_rf uses
 * AT_SYMLINK_NOFOLLOW). Paths resolved without magic links are path-walk.c's; files the host
 * writes from data it does not trust, host-file.c's.
 */
#include "fd-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "random-util.h"

/* write_all and read_exact: the whole of len, across short transfers and EINTR. */
static int transfer_all(int fd, char *p, size_t len, bool out)
{
        while (len > 0) {
                ssize_t n = out ? write(fd, p, len) : read(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return out ? -EIO : -EPIPE;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int write_all(int fd, const void *data, size_t len)
{
        return transfer_all(fd, (char *)data, len, true);
}

int read_exact(int fd, void *data, size_t len)
{
        return transfer_all(fd, data, len, false);
}

int read_fd_full(int fd, struct buf *b, size_t max)
{
        struct stat st;

        return read_fd_full_stat(fd, fstat(fd, &st) == 0 ? &st : NULL, b, max);
}

int read_fd_full_stat(int fd, const struct stat *st, struct buf *b, size_t max)
{
        /* a regular file's size, plus one byte to see its end, is all the first read needs;
         * a small file then makes a small allocation (files in /proc say 0: 4 KiB) */
        bool sized = st && S_ISREG(st->st_mode) && st->st_size > 0 && (uint64_t)st->st_size < max;
        size_t want = sized ? (size_t)st->st_size + 1 : 4096, start = b->len;

        for (;;) {
                ssize_t n;
                size_t room;
                int r = buf_reserve(b, want);
                if (r < 0)
                        return r;
                room = b->cap - b->len - 1;
                n = read(fd, b->data + b->len, room);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0) {
                        /* an empty file too reads as a string ("", not stale heap bytes) */
                        b->data[b->len] = '\0';
                        break;
                }
                b->len += (size_t)n;
                b->data[b->len] = '\0';
                if (b->len > max)
                        return -EFBIG;
                /* A regular file that gave the size fstat said, and no more though there was
                 * room, ended there (a read stops short only at the end of one): no read to see
                 * its end (a system call less per record in `list`). Files of /proc, sysfs and
                 * cgroupfs say 0 or a page, not their content's size: they read to a 0. */
                if (sized && b->len - start == (size_t)st->st_size && (size_t)n < room)
                        break;
                want = 1; /* room for one more byte at least; buf_reserve doubles when full */
        }
        return 0;
}

int read_file_at(int dirfd, const char *path, struct buf *b, size_t max)
{
        cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return read_fd_full(fd, b, max);
}

int write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
                         bool durable)
{
        char tmp[PATH_MAX];
        const char *slash = strrchr(path, '/');
        size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
        char rnd[17];
        cleanup_close int fd = -1;
        int r;

        random_hex(rnd, 8);
        if ((size_t)snprintf(tmp, sizeof(tmp), "%.*s.%s.%s.tmp", (int)dirlen, path,
                             slash ? slash + 1 : path, rnd) >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && durable && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, path) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dirfd, tmp, 0);
                return r;
        }
        if (durable) {
                cleanup_close int dfd = -1;
                if (dirlen) {
                        char dir[PATH_MAX];
                        (void)snprintf(dir, sizeof(dir), "%.*s", (int)dirlen, path);
                        dfd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                } else {
                        dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                }
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        return 0;
}

int write_file_string(const char *path, const char *s)
{
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        size_t len = strlen(s);
        ssize_t n;

        if (fd < 0)
                return -errno;
        do
                n = write(fd, s, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

int mkdir_p(const char *path, mode_t mode)
{
        char tmp[PATH_MAX];
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(tmp))
                return -EINVAL;
        /* The common case: everything but the leaf exists already. */
        if (mkdir(path, mode) == 0 || errno == EEXIST)
                return 0;
        if (errno != ENOENT)
                return -errno;
        memcpy(tmp, path, len + 1);
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/*
 * rm -rf of a tree someone else wrote (a sandbox's upper directory, a volume): any depth, with a
 * constant number of fds and no recursion. The walk goes down one directory at a time (keeping
 * only the names on the way, to remove each directory from its parent on the way back up through
 * ".."), never follows a symlink, never crosses into another mount, and makes a directory it
 * cannot enter or empty writable (a rootless sandbox's chmod 000) before giving up on it. What
 * cannot be removed is remembered ("stuck") so the walk never returns to it.
 */
#define RM_STUCK_MAX 256
#define RM_NAMES_MAX (64u << 20) /* the names from the top to the deepest directory */

struct rm_walk {
        dev_t dev;
        ino_t stuck[RM_STUCK_MAX];
        size_t n_stuck;
        int err;    /* the first error */
        bool abort; /* too many stuck directories, or out of memory */
};

static void rm_note(struct rm_walk *w, int err)
{
        if (!w->err)
                w->err = err;
}

static void rm_stick(struct rm_walk *w, ino_t ino)
{
        if (w->n_stuck == RM_STUCK_MAX)
                w->abort = true;
        else
                w->stuck[w->n_stuck++] = ino;
}

static bool rm_is_stuck(const struct rm_walk *w, ino_t ino)
{
        for (size_t i = 0; i < w->n_stuck; i++)
                if (w->stuck[i] == ino)
                        return true;
        return false;
}

/* unlinkat, making the directory writable once if it refuses (EACCES). */
static int rm_unlink(int fd, const char *name, int flags, bool *chmodded)
{
        if (unlinkat(fd, name, flags) == 0)
                return 0;
        if (errno == EACCES && !*chmodded) {
                *chmodded = true;
                if (fchmod(fd, 0700) == 0 && unlinkat(fd, name, flags) == 0)
                        return 0;
        }
        return -errno;
}

/* Removes the files of directory fd and its empty subdirectories; returns an fd of the first
 * subdirectory left to empty (its name pushed on names), or -1 when there is none. */
static int rm_scan(int fd, struct rm_walk *w, struct buf *names)
{
        int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3), sub = -1;
        bool chmodded = false;
        struct dirent *de;
        DIR *d;

        if (dfd < 0 || !(d = fdopendir(dfd))) {
                rm_note(w, -errno);
                if (dfd >= 0)
                        close(dfd);
                return -1;
        }
        while ((de = readdir(d))) {
                struct stat st;
                int r;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT)
                                rm_note(w, -errno);
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        r = rm_unlink(fd, de->d_name, 0, &chmodded);
                        if (r < 0 && r != -ENOENT)
                                rm_note(w, r);
                        continue;
                }
                if (st.st_dev != w->dev) { /* never cross into another mount */
                        rm_note(w, -EXDEV);
                        continue;
                }
                if (rm_is_stuck(w, st.st_ino))
                        continue;
                r = rm_unlink(fd, de->d_name, AT_REMOVEDIR, &chmodded);
                if (r == 0 || r == -ENOENT)
                        continue; /* it was empty */
                sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0 && errno == EACCES && fchmodat(fd, de->d_name, 0700, 0) == 0)
                        sub =
                            openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        rm_note(w, -errno);
                        rm_stick(w, st.st_ino);
                        continue;
                }
                if (names->len + strlen(de->d_name) + 1 > RM_NAMES_MAX ||
                    buf_append(names, de->d_name, strlen(de->d_name) + 1) < 0) {
                        close(sub);
                        sub = -1;
                        rm_note(w, -ENOMEM);
                        w->abort = true;
                }
                break;
        }
        closedir(d);
        return sub;
}

/* Empties the directory top (which stays, and stays open). Returns 0 or the first error. */
static int rm_rf_children(int top)
{
        struct rm_walk w = {0};
        cleanup_buf struct buf names = BUF_INIT;
        struct stat st;
        size_t depth = 0;
        ino_t top_ino;
        int cur;

        if (fstat(top, &st) < 0)
                return -errno;
        w.dev = st.st_dev;
        top_ino = st.st_ino;
        cur = fcntl(top, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -errno;
        while (!w.abort) {
                struct stat me, there;
                const char *name;
                bool chmodded = false;
                int sub = rm_scan(cur, &w, &names), parent, r;

                if (sub >= 0) {
                        close(cur);
                        cur = sub;
                        depth++;
                        continue;
                }
                if (depth == 0)
                        break;
                /* cur is as empty as it gets: up, and remove it from its parent */
                if (fstat(cur, &me) < 0) {
                        rm_note(&w, -errno);
                        break;
                }
                parent = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (parent < 0) {
                        rm_note(&w, -errno);
                        break;
                }
                close(cur);
                cur = parent;
                depth--;
                names.len--; /* the last name's NUL */
                while (names.len && names.data[names.len - 1])
                        names.len--;
                name = names.data + names.len;
                if (fstatat(cur, name, &there, AT_SYMLINK_NOFOLLOW) < 0 ||
                    there.st_ino != me.st_ino || there.st_dev != me.st_dev) {
                        rm_note(&w, -ESTALE); /* moved while we were in it */
                        rm_stick(&w, me.st_ino);
                        continue;
                }
                r = rm_unlink(cur, name, AT_REMOVEDIR, &chmodded);
                if (r < 0 && r != -ENOENT) {
                        rm_note(&w, r);
                        rm_stick(&w, me.st_ino);
                }
        }
        if (!w.abort && (fstat(cur, &st) < 0 || st.st_ino != top_ino || st.st_dev != w.dev))
                rm_note(&w, -ESTALE);
        close(cur);
        return w.abort && !w.err ? -ENOTEMPTY : w.err;
}

int rm_rf_at(int dirfd, const char *path)
{
        struct stat st;
        int fd, r;

        if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode))
                return unlinkat(dirfd, path, 0) < 0 && errno != ENOENT ? -errno : 0;
        fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == EACCES && fchmodat(dirfd, path, 0700, 0) == 0)
                fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        r = rm_rf_children(fd);
        close(fd);
        if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

DIR *opendir_at(int dirfd)
{
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

        if (!d && fd >= 0) {
                int e = errno;
                close(fd);
                errno = e;
        }
        return d;
}

int lexists_at(int dirfd, const char *path)
{
        struct stat st;

        return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW);
}

int fd_set_nonblock(int fd, bool on)
{
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        return fcntl(fd, F_SETFL, flags) < 0 ? -errno : 0;
}

int fd_send(int sock, const void *data, size_t len, const int *fds, size_t n)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * FD_PASS_MAX)];
                struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t k;

        if (len == 0 || n > FD_PASS_MAX)
                return -EINVAL;
        if (n) {
                struct cmsghdr *c;
                memset(&u, 0, sizeof(u));
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
        }
        do
                k = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        return write_all(sock, (const char *)data + k, len - (size_t)k);
}

ssize_t fd_recv(int sock, void *data, size_t len, int *fds, size_t max, size_t *ret_n)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * FD_PASS_MAX)];
                struct cmsghdr align;
        } u;
        struct iovec iov = {.iov_base = data, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = u.buf,
                            .msg_controllen = sizeof(u.buf)};
        size_t got = 0;
        bool bad;
        ssize_t k;

        *ret_n = 0;
        do
                k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        bad = (mh.msg_flags & MSG_CTRUNC) != 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t m;
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
                        bad = true;
                        continue;
                }
                m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < m; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (got < max && got < FD_PASS_MAX)
                                fds[got++] = fd;
                        else {
                                close(fd);
                                bad = true;
                        }
                }
        }
        if (bad) {
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        *ret_n = got;
        return k;
}

static int cmp_int(const void *a, const void *b)
{
        return *(const int *)a - *(const int *)b;
}

int close_all_fds_except(int lowfd, const int *keep, size_t n_keep)
{
        int sorted[16];
        int from = lowfd;

        if (n_keep > ARRAY_SIZE(sorted))
                return -E2BIG;
        if (n_keep) { /* keep may be NULL then: memcpy from NULL is undefined even for 0 */
                memcpy(sorted, keep, n_keep * sizeof(int));
                qsort(sorted, n_keep, sizeof(int), cmp_int);
        }
        for (size_t i = 0; i <= n_keep; i++) {
                int to = i < n_keep ? sorted[i] - 1 : INT32_MAX;
                if (i < n_keep && sorted[i] < from)
                        continue;
                if (to >= from) {
                        if (syscall(SYS_close_range, (unsigned)from, (unsigned)to, 0) < 0) {
                                /* Old kernel: close one by one up to a sane bound. */
                                int max = (int)sysconf(_SC_OPEN_MAX);
                                for (int fd = from; fd <= to && fd < max; fd++)
                                        (void)close(fd);
                        }
                }
                if (i < n_keep)
                        from = sorted[i] + 1;
        }
        return 0;
}

bool path_exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}

/* Splits path into a directory fd and a short name usable in sun_path via /proc/self/fd. */
static int unix_addr(const char *path, struct sockaddr_un *sa, int *ret_dirfd, struct ak_err *err)
{
        size_t len = strlen(path);

        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        *ret_dirfd = -1;
        if (len < sizeof(sa->sun_path)) {
                memcpy(sa->sun_path, path, len + 1);
                return 0;
        }
        {
                const char *slash = strrchr(path, '/');
                char dir[PATH_MAX];
                int dfd;
                if (!slash || (size_t)(slash - path) >= sizeof(dir))
                        return ak_err_set(err, ENAMETOOLONG, "socket path '%s' is too long", path);
                memcpy(dir, path, (size_t)(slash - path));
                dir[slash - path] = '\0';
                dfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return ak_err_errno(err, errno, "open '%s'", dir);
                if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", dfd,
                                     slash + 1) >= sizeof(sa->sun_path)) {
                        close(dfd);
                        return ak_err_set(err, ENAMETOOLONG, "socket name in '%s' is too long",
                                          path);
                }
                *ret_dirfd = dfd;
        }
        return 0;
}

int unix_connect(const char *path, struct ak_err *err)
{
        struct sockaddr_un sa;
        cleanup_close int dirfd = -1;
        cleanup_close int fd = -1;
        int r;

        r = unix_addr(path, &sa, &dirfd, err);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return ak_err_errno(err, errno, "socket");
        while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (errno == EINTR)
                        continue;
                return ak_err_errno(err, errno, "connect '%s'", path);
        }
        return TAKE_FD(fd);
}

int unix_listen(const char *path, int backlog, struct ak_err *err)
{
        struct sockaddr_un sa;
        cleanup_close int dirfd = -1;
        cleanup_close int fd = -1;
        int r;

        r = unix_addr(path, &sa, &dirfd, err);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return ak_err_errno(err, errno, "socket");
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return ak_err_errno(err, errno, "bind '%s'", path);
        if (listen(fd, backlog) < 0)
                return ak_err_errno(err, errno, "listen '%s'", path);
        return TAKE_FD(fd);
}
