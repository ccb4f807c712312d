// SPDX-License-Identifier: Apache-2.0
/*
 * File operations inside the sandbox: streamed read and write (constant memory whatever the
 * size), list, stat, remove, mkdir. Paths are resolved inside the sandbox's own root, where the
 * agent lives, so nothing here can reach the host. Writes go to a temp file and are renamed into
 * place, so a reader never sees half a file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"

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
        cleanup_close int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        cleanup_buf struct buf out = BUF_INIT;
        char chunk[AK_CHUNK];
        uint64_t limit = AGENT_FILE_MAX, sent = 0;
        struct stat st;
        size_t s;
        int r;

        if (f < 0)
                return agent_send_error(fd, errno, "cannot open '%s': %s", path, strerror(errno));
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
        cleanup_free char *dir = strdup(path);
        cleanup_close int f = -1;
        char tmp[PATH_MAX + 32], rnd[17];
        uint64_t mode = 0644, flags = 0, size = 0;
        int err = 0, r;
        struct stat st;
        char *slash;
        bool has_mode;

        if (!dir)
                return agent_send_error(fd, ENOMEM, "out of memory");
        has_mode = ak_get_u64(m, AK_T_MODE, &mode) == 0;
        (void)ak_get_u64(m, AK_T_FLAGS, &flags);
        slash = strrchr(dir, '/');
        *slash = '\0';
        if (!slash[1])
                err = EISDIR;
        if (!err && (flags & AK_FILE_PARENTS) && dir[0] && (r = mkdir_p(dir, 0755)) < 0)
                err = -r;
        if (!err && lstat(path, &st) == 0) {
                if (S_ISDIR(st.st_mode))
                        err = EISDIR;
                else if (!has_mode)
                        mode = st.st_mode & 07777;
        }
        if (!err) {
                random_hex(rnd, 8);
                (void)snprintf(tmp, sizeof(tmp), "%s/.%s.ak-%s", dir, slash + 1, rnd);
                f = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                         (mode_t)(mode & 07777));
                if (f < 0)
                        err = errno;
        }
        r = receive_data(fd, f, &size, &err);
        if (r < 0) {
                if (f >= 0)
                        (void)unlink(tmp);
                return r;
        }
        if (!err && fchmod(f, (mode_t)(mode & 07777)) < 0)
                err = errno;
        if (!err && rename(tmp, path) < 0)
                err = errno;
        if (err) {
                if (f >= 0)
                        (void)unlink(tmp);
                return agent_send_error(fd, err, "cannot write '%s': %s", path, strerror(err));
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
        DIR *d = opendir(path);
        struct dirent *de;
        cleanup_buf struct buf out = BUF_INIT;
        size_t count = 0;
        int r = 0;

        if (!d)
                return agent_send_error(fd, errno, "cannot list '%s': %s", path, strerror(errno));
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

static int send_ok(int fd)
{
        cleanup_buf struct buf out = BUF_INIT;
        size_t s = ak_msg_begin(&out, AK_OK);
        ak_msg_end(&out, s);
        return ak_write_buf(fd, &out);
}

int agent_serve_file(int fd, const struct ak_msg *m)
{
        cleanup_free char *path = NULL;
        uint64_t flags = 0, mode = 0755;
        struct stat st;
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
        case AK_FILE_STAT: {
                cleanup_buf struct buf out = BUF_INIT;
                if (lstat(path, &st) < 0)
                        return agent_send_error(fd, errno, "cannot stat '%s': %s", path,
                                                strerror(errno));
                put_entry(&out, path, &st);
                return ak_write_buf(fd, &out);
        }
        case AK_FILE_REMOVE:
                if (lstat(path, &st) < 0)
                        return agent_send_error(fd, errno, "cannot remove '%s': %s", path,
                                                strerror(errno));
                if (S_ISDIR(st.st_mode)) {
                        if (flags & AK_FILE_RECURSIVE)
                                r = rm_rf_at(AT_FDCWD, path);
                        else
                                r = rmdir(path) < 0 ? -errno : 0;
                } else {
                        r = unlink(path) < 0 ? -errno : 0;
                }
                if (r < 0)
                        return agent_send_error(fd, -r, "cannot remove '%s': %s", path,
                                                strerror(-r));
                return send_ok(fd);
        case AK_MKDIR:
                (void)ak_get_u64(m, AK_T_MODE, &mode);
                if (flags & AK_FILE_PARENTS)
                        r = mkdir_p(path, (mode_t)(mode & 07777));
                else
                        r = mkdir(path, (mode_t)(mode & 07777)) < 0 ? -errno : 0;
                if (r < 0)
                        return agent_send_error(fd, -r, "cannot create directory '%s': %s", path,
                                                strerror(-r));
                return send_ok(fd);
        default:
                return agent_send_error(fd, ENOTSUP, "unsupported request");
        }
}
