// SPDX-License-Identifier: Apache-2.0
/*
 * File operations inside the sandbox: streamed read and write (constant memory whatever the
 * size), list, stat, remove, mkdir. Paths are resolved inside the sandbox's own root, where the
 * agent lives, so nothing here can reach the host. Writes go to a temp file and are renamed into
 * place, so a reader never sees half a file.
 *
 * The handler that serves these holds fds the sandbox must never reach (the agent's private state
 * tmpfs with the detached commands' records, its channel, its note pipe), and a path comes from
 * the host but may run through symlinks the sandbox planted. So every path is resolved with
 * openat_nomagic (never through /proc/PID/fd/N, /proc/PID/cwd, /proc/PID/root...: the jump would
 * land on the handler's or PID 1's own files), every operation then works relative to the
 * directory fd it got (the last component is never resolved again by name), and anything on
 * procfs is refused (the handler's own /proc/self would show the agent's memory map and fds).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/path-walk.h"
#include "shared/random-util.h"

#define PROC_FS_MAGIC 0x9fa0 /* PROC_SUPER_MAGIC of <linux/magic.h>, which musl lacks */

static int get_path(int fd, const struct ak_msg *m, char **ret)
{
        char *p = NULL;
        int r = ak_get_str(m, AK_T_PATH, &p);

        if (r < 0)
                return agent_send_error(fd, EINVAL, "a path is required") < 0 ? -EIO : -EINVAL;
        if (p[0] != '/' || strlen(p) >= PATH_MAX) {
                agent_send_error(fd, EINVAL, "path '%s' must be absolute and shorter than %d", p,
                                 PATH_MAX);
                free(p);
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

/* Reports a failed resolution or open; a refused magic link reads as EACCES, not ELOOP. */
static int send_fs_error(int fd, int err, const char *what, const char *path)
{
        if (err == ELOOP)
                return agent_send_error(fd, EACCES,
                                        "cannot %s '%s': it leads through a link into /proc (or "
                                        "too many symbolic links); refused",
                                        what, path);
        if (err == EXDEV)
                return agent_send_error(fd, EACCES, "cannot %s '%s': it is in /proc; refused", what,
                                        path);
        return agent_send_error(fd, err, "cannot %s '%s': %s", what, path, strerror(err));
}

/* 0, or -EXDEV when fd is on procfs. */
static int not_proc(int fd)
{
        struct statfs sfs;

        if (fstatfs(fd, &sfs) < 0)
                return -errno;
        return sfs.f_type == PROC_FS_MAGIC ? -EXDEV : 0;
}

/* Opens path, never through a magic link and never onto procfs. Returns the fd or -errno. */
static int open_safe(const char *path, int flags)
{
        int f = openat_nomagic(AT_FDCWD, path, flags, 0), r;

        if (f < 0)
                return f;
        r = not_proc(f);
        if (r < 0) {
                close(f);
                return r;
        }
        return f;
}

/* Splits path into an O_PATH fd of its directory (resolved as open_safe does) and its last
 * component, a plain name ("." for "/"); trailing slashes are ignored. buf holds the name. */
static int open_parent(const char *path, char buf[PATH_MAX], const char **ret_name)
{
        size_t n = strlen(path);
        char *slash;

        memcpy(buf, path, n + 1);
        while (n > 1 && buf[n - 1] == '/')
                buf[--n] = '\0';
        slash = strrchr(buf, '/');
        if (slash == buf && !slash[1]) {
                *ret_name = ".";
                return open_safe("/", O_PATH | O_DIRECTORY);
        }
        *slash = '\0';
        *ret_name = slash + 1;
        return open_safe(slash == buf ? "/" : buf, O_PATH | O_DIRECTORY);
}

/* Walks path from "/" one component at a time, each opened relative to its parent's fd (never
 * through a magic link): created first when parents is set; with nofollow, not a single symlink
 * (O_NOFOLLOW on every component, ".." refused), so a link the sandbox planted anywhere on the
 * path fails the walk (-ENOTDIR/-ELOOP) instead of leading it elsewhere. Returns an O_PATH fd of
 * the last directory (never on procfs) or -errno. */
static int walk_dirs(const char *path, bool parents, bool nofollow, mode_t mode)
{
        char buf[PATH_MAX];
        int cur, r;

        if (strlen(path) >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, strlen(path) + 1);
        cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return -errno;
        for (char *p = buf, *comp; (comp = strsep(&p, "/"));) {
                int nfd;
                if (!*comp || (nofollow && streq(comp, ".")))
                        continue;
                if (nofollow && streq(comp, "..")) {
                        close(cur);
                        return -EINVAL;
                }
                if (parents && mkdirat(cur, comp, mode) < 0 && errno != EEXIST) {
                        r = -errno;
                        close(cur);
                        return r;
                }
                if (nofollow) {
                        nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (nfd < 0)
                                nfd = -errno;
                } else {
                        nfd = openat_nomagic(cur, comp, O_PATH | O_DIRECTORY, 0);
                }
                close(cur);
                if (nfd < 0)
                        return nfd;
                cur = nfd;
        }
        r = not_proc(cur);
        if (r < 0) {
                close(cur);
                return r;
        }
        return cur;
}

/* mkdir -p, each component created and then opened relative to its parent's fd (never through a
 * magic link). Returns an O_PATH fd of the last directory or -errno. */
static int open_dir_p(const char *path, mode_t mode)
{
        /* the common case: everything exists already */
        int cur = open_safe(path, O_PATH | O_DIRECTORY);

        return cur != -ENOENT ? cur : walk_dirs(path, true, false, mode);
}

/* open_dir_p without a single symlink, for the host's writes into places the sandbox may have
 * prepared (the proxy's trust files). */
static int open_dir_nofollow(const char *path, bool parents, mode_t mode)
{
        return walk_dirs(path, parents, true, mode);
}

static int send_ok_frame(int fd)
{
        cleanup_buf struct buf out = BUF_INIT;
        size_t s = ak_msg_begin(&out, AK_OK);
        ak_msg_end(&out, s);
        return ak_write_buf(fd, &out);
}

static enum ak_file_type file_type(mode_t m)
{
        if (S_ISREG(m))
                return AK_FT_FILE;
        if (S_ISDIR(m))
                return AK_FT_DIR;
        if (S_ISLNK(m))
                return AK_FT_SYMLINK;
        return AK_FT_OTHER;
}

static void put_entry(struct buf *out, const char *name, const struct stat *st)
{
        size_t s = ak_msg_begin(out, AK_FILE_ENTRY);
        ak_put_str(out, AK_T_NAME, name);
        ak_put_u64(out, AK_T_TYPE, file_type(st->st_mode));
        ak_put_u64(out, AK_T_SIZE, (uint64_t)st->st_size);
        ak_put_u64(out, AK_T_MODE, st->st_mode & 07777);
        ak_put_u64(out, AK_T_MTIME,
                   (uint64_t)((int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec));
        ak_msg_end(out, s);
}

static int file_read(int fd, const char *path, const struct ak_msg *m)
{
        cleanup_close int f = open_safe(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        cleanup_buf struct buf out = BUF_INIT;
        char chunk[AK_CHUNK];
        uint64_t limit = AGENT_FILE_MAX, sent = 0;
        struct stat st;
        size_t s;
        int r;

        if (f < 0)
                return send_fs_error(fd, -f, "open", path);
        if (fstat(f, &st) < 0)
                return agent_send_error(fd, errno, "cannot stat '%s': %s", path, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return agent_send_error(fd, EISDIR, "'%s' is a directory", path);
        if (!S_ISREG(st.st_mode))
                return agent_send_error(fd, EINVAL, "'%s' is not a regular file", path);
        (void)fd_set_nonblock(f, false);
        (void)ak_get_u64(m, AK_T_SIZE, &limit);
        limit = MIN(limit, AGENT_FILE_MAX);

        s = ak_msg_begin(&out, AK_FILE_INFO);
        ak_put_u64(&out, AK_T_SIZE, (uint64_t)st.st_size);
        ak_put_u64(&out, AK_T_MODE, st.st_mode & 07777);
        ak_msg_end(&out, s);
        r = ak_write_buf(fd, &out);
        if (r < 0)
                return r;
        while (sent < limit) {
                ssize_t n = read(f, chunk, (size_t)MIN((uint64_t)sizeof(chunk), limit - sent));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return agent_send_error(fd, errno, "read '%s': %s", path, strerror(errno));
                if (n == 0)
                        break;
                r = ak_write_frame(fd, AK_DATA, chunk, (size_t)n);
                if (r < 0)
                        return r;
                sent += (uint64_t)n;
        }
        if (sent >= limit && limit < (uint64_t)st.st_size)
                return agent_send_error(fd, EFBIG, "'%s' is larger than the limit of %llu bytes",
                                        path, (unsigned long long)limit);
        return ak_write_frame(fd, AK_END, NULL, 0);
}

/* Reads DATA frames until END into f (or discards them when f < 0). *ret_err keeps an error
 * the caller already had, or gets the first write error. */
static int receive_data(int fd, int f, uint64_t *ret_size, int *ret_err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        uint64_t total = 0;

        for (;;) {
                int r = ak_read_frame(fd, &b, &m);
                if (r < 0)
                        return r;
                if (m.type == AK_END)
                        break;
                if (m.type != AK_DATA)
                        return -EBADMSG;
                total += m.len;
                if (total > AGENT_FILE_MAX && !*ret_err)
                        *ret_err = EFBIG;
                if (f >= 0 && !*ret_err) {
                        r = write_all(f, m.payload, m.len);
                        if (r < 0)
                                *ret_err = -r;
                }
        }
        *ret_size = total;
        return 0;
}

static int file_write(int fd, const char *path, const struct ak_msg *m)
{
        cleanup_close int dfd = -1;
        cleanup_close int f = -1;
        char buf[PATH_MAX], tmp[NAME_MAX + 1], rnd[17];
        uint64_t mode = 0644, flags = 0, size = 0;
        const char *name = NULL;
        int err = 0, r;
        struct stat st;
        bool has_mode;

        has_mode = ak_get_u64(m, AK_T_MODE, &mode) == 0;
        (void)ak_get_u64(m, AK_T_FLAGS, &flags);
        if (path[strlen(path) - 1] == '/')
                err = EISDIR;
        if (!err) {
                memcpy(buf, path, strlen(path) + 1);
                *strrchr(buf, '/') = '\0';
                name = strrchr(path, '/') + 1;
                if (flags & AK_FILE_NOFOLLOW)
                        dfd = open_dir_nofollow(buf[0] ? buf : "/", flags & AK_FILE_PARENTS, 0755);
                else if (flags & AK_FILE_PARENTS)
                        dfd = open_dir_p(buf[0] ? buf : "/", 0755);
                else
                        dfd = open_safe(buf[0] ? buf : "/", O_PATH | O_DIRECTORY);
                if (dfd < 0)
                        err = -dfd;
        }
        if (!err && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (S_ISDIR(st.st_mode))
                        err = EISDIR;
                else if (!has_mode) /* new contents: the old file's setuid/setgid do not stay */
                        mode = st.st_mode & 0777;
        }
        if (!err) {
                random_hex(rnd, 8);
                (void)snprintf(tmp, sizeof(tmp), ".%.200s.ak-%s", name, rnd);
                f = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                           (mode_t)(mode & 07777));
                if (f < 0)
                        err = errno;
        }
        r = receive_data(fd, f, &size, &err);
        if (r < 0) {
                if (f >= 0)
                        (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        if (!err && fchmod(f, (mode_t)(mode & 07777)) < 0)
                err = errno;
        if (!err && renameat(dfd, tmp, dfd, name) < 0)
                err = errno;
        if (err) {
                if (f >= 0)
                        (void)unlinkat(dfd, tmp, 0);
                return send_fs_error(fd, err, "write", path);
        }
        {
                cleanup_buf struct buf out = BUF_INIT;
                size_t s = ak_msg_begin(&out, AK_OK);
                ak_put_u64(&out, AK_T_SIZE, size);
                ak_msg_end(&out, s);
                return ak_write_buf(fd, &out);
        }
}

static int file_list(int fd, const char *path)
{
        int dfd = open_safe(path, O_RDONLY | O_DIRECTORY);
        DIR *d = NULL;
        struct dirent *de;
        cleanup_buf struct buf out = BUF_INIT;
        size_t count = 0;
        int r = 0;

        if (dfd < 0)
                return send_fs_error(fd, -dfd, "list", path);
        d = fdopendir(dfd);
        if (!d) {
                r = errno;
                close(dfd);
                return send_fs_error(fd, r, "list", path);
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (++count > AGENT_LIST_MAX)
                        break;
                put_entry(&out, de->d_name, &st);
                if (out.len > AK_CHUNK) {
                        r = ak_write_buf(fd, &out);
                        buf_reset(&out);
                        if (r < 0)
                                break;
                }
        }
        closedir(d);
        if (r < 0)
                return r;
        ak_put_frame(&out, AK_END, NULL, 0);
        return ak_write_buf(fd, &out);
}

static int file_stat(int fd, const char *path)
{
        cleanup_buf struct buf out = BUF_INIT;
        char buf[PATH_MAX];
        const char *name;
        cleanup_close int dfd = open_parent(path, buf, &name);
        struct stat st;

        if (dfd < 0)
                return send_fs_error(fd, -dfd, "stat", path);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return send_fs_error(fd, errno, "stat", path);
        put_entry(&out, path, &st);
        return ak_write_buf(fd, &out);
}

static int file_remove(int fd, const char *path, bool recursive)
{
        char buf[PATH_MAX];
        const char *name;
        cleanup_close int dfd = open_parent(path, buf, &name);
        struct stat st;
        int r;

        if (dfd < 0)
                return send_fs_error(fd, -dfd, "remove", path);
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return send_fs_error(fd, errno, "remove", path);
        if (S_ISDIR(st.st_mode) && recursive)
                r = rm_rf_at(dfd, name);
        else
                r = unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
        if (r < 0)
                return send_fs_error(fd, -r, "remove", path);
        return send_ok_frame(fd);
}

static int file_mkdir(int fd, const char *path, mode_t mode, bool parents)
{
        char buf[PATH_MAX];
        const char *name;
        cleanup_close int dfd = parents ? open_dir_p(path, mode) : open_parent(path, buf, &name);

        if (dfd < 0)
                return send_fs_error(fd, -dfd, "create directory", path);
        if (!parents && mkdirat(dfd, name, mode) < 0)
                return send_fs_error(fd, errno, "create directory", path);
        return send_ok_frame(fd);
}

int agent_serve_file(int fd, const struct ak_msg *m)
{
        cleanup_free char *path = NULL;
        uint64_t flags = 0, mode = 0755;
        int r;

        r = get_path(fd, m, &path);
        if (r < 0)
                return r;
        (void)ak_get_u64(m, AK_T_FLAGS, &flags);
        switch (m->type) {
        case AK_FILE_READ:
                return file_read(fd, path, m);
        case AK_FILE_WRITE:
                return file_write(fd, path, m);
        case AK_FILE_LIST:
                return file_list(fd, path);
        case AK_FILE_STAT:
                return file_stat(fd, path);
        case AK_FILE_REMOVE:
                return file_remove(fd, path, flags & AK_FILE_RECURSIVE);
        case AK_MKDIR:
                (void)ak_get_u64(m, AK_T_MODE, &mode);
                return file_mkdir(fd, path, (mode_t)(mode & 07777), flags & AK_FILE_PARENTS);
        default:
                return agent_send_error(fd, ENOTSUP, "unsupported request");
        }
}
