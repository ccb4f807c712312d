// SPDX-License-Identifier: Apache-2.0
/*
 * Private directories and files (see private-dir.h). Directories are walked component by
 * component from "/" with O_NOFOLLOW, so what is checked is what is opened; a symlink that
 * appears during the walk fails it instead of being followed. Never deletes anything.
 */
#include "private-dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"

/* The effective uid: it does not change in our processes (the runtime's child, which shares our
 * memory, changes its own credentials but only reads this). */
static uid_t euid(void)
{
        static uid_t me = (uid_t)-1;
        if (me == (uid_t)-1)
                me = geteuid();
        return me;
}

static const char *writers(mode_t mode)
{
        return (mode & 022) == 022 ? "group and others" : (mode & 002) ? "others" : "group";
}

/* An ancestor: a directory owned by root or the caller that nobody else can change, except
 * that a sticky one (/tmp) may be writable by all: its entries can then only be replaced by
 * their owners, and the next component is checked to be root's or the caller's. */
static int check_ancestor(const struct stat *st, const char *path, const char *what,
                          const char *target, struct ak_err *err)
{
        uid_t me = euid();

        if (!S_ISDIR(st->st_mode))
                return ak_err_set(err, ENOTDIR,
                                  "'%s' (on the way to the %s '%s') is not a directory", path, what,
                                  target);
        if (st->st_uid != 0 && st->st_uid != me)
                return ak_err_set(err, EPERM,
                                  "'%s' (above the %s '%s') belongs to uid %u, not to you (uid %u) "
                                  "or root: its owner could replace what lies below it; use a "
                                  "place whose every parent directory is yours or root's",
                                  path, what, target, (unsigned)st->st_uid, (unsigned)me);
        if ((st->st_mode & 022) && !(st->st_mode & S_ISVTX))
                return ak_err_set(err, EPERM,
                                  "'%s' (above the %s '%s') is writable by %s (mode %04o) and not "
                                  "sticky: anyone could replace what lies below it; fix it "
                                  "(chmod go-w '%s') or use another place",
                                  path, what, target, writers(st->st_mode),
                                  (unsigned)(st->st_mode & 07777), path);
        return 0;
}

/* The private directory itself, open as fd: the caller's, not writable by others, and
 * readable by nobody else once this returns (0755 from upstream or an old umask becomes 0700). */
static int check_own_dir(int fd, const char *path, const char *what, struct ak_err *err)
{
        struct stat st;
        uid_t me = euid();

        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "the %s '%s'", what, path);
        if (!S_ISDIR(st.st_mode))
                return ak_err_set(err, ENOTDIR, "the %s '%s' is not a directory", what, path);
        if (st.st_uid != me)
                return ak_err_set(err, EPERM,
                                  "the %s '%s' belongs to uid %u, not to you (uid %u): its owner "
                                  "could plant files in it for you to trust; remove it, or use a "
                                  "directory of your own",
                                  what, path, (unsigned)st.st_uid, (unsigned)me);
        if (st.st_mode & 022)
                return ak_err_set(err, EPERM,
                                  "the %s '%s' is writable by %s (mode %04o): anyone could have "
                                  "planted files in it; check what it holds, then: chmod 0700 "
                                  "'%s'",
                                  what, path, writers(st.st_mode), (unsigned)(st.st_mode & 07777),
                                  path);
        if ((st.st_mode & 077) && fchmod(fd, PRIVATE_DIR_MODE) < 0)
                return ak_err_errno(err, errno, "cannot make the %s '%s' private (chmod 0700)",
                                    what, path);
        return 0;
}

/* A name of one component that can be created and opened as such. */
static bool plain_component(const char *c, size_t len)
{
        return len > 0 && !(len == 1 && c[0] == '.') && !(len == 2 && c[0] == '.' && c[1] == '.');
}

/* Opens (creating with PRIVATE_CREATE) the directory `name` in dirfd without following a link,
 * and checks it as the caller's own. */
static int open_own_child(int dirfd, const char *name, const char *path, const char *what,
                          unsigned flags, struct ak_err *err)
{
        const int oflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        cleanup_close int fd = openat(dirfd, name, oflags);
        struct stat st;
        int r;

        if (fd < 0 && errno == ENOENT && (flags & PRIVATE_CREATE)) {
                if (mkdirat(dirfd, name, PRIVATE_DIR_MODE) < 0 && errno != EEXIST)
                        return ak_err_errno(err, errno, "cannot create the %s '%s'", what, path);
                fd = openat(dirfd, name, oflags);
        }
        if (fd < 0) {
                int e = errno;
                /* what is there instead, for the message */
                if ((e == ELOOP || e == ENOTDIR) &&
                    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                        if (S_ISLNK(st.st_mode))
                                return ak_err_set(err, ELOOP,
                                                  "the %s '%s' is a symbolic link: a link can be "
                                                  "re-pointed by whoever owns the directory it is "
                                                  "in; use the directory it names instead",
                                                  what, path);
                        return ak_err_set(err, ENOTDIR, "the %s '%s' is not a directory", what,
                                          path);
                }
                return ak_err_errno(err, e, "the %s '%s'", what, path);
        }
        r = check_own_dir(fd, path, what, err);
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

/* Walks dir (absolute) from "/": resolves the symlinks of the part that exists (realpath), then
 * opens every component with O_NOFOLLOW and checks it as an ancestor, creating what is missing
 * (0700) with PRIVATE_CREATE. canon (PATH_MAX) gets the canonical path. Returns an O_PATH fd of
 * dir. */
static int walk_ancestors(const char *dir, const char *what, const char *target, unsigned flags,
                          char *canon, struct ak_err *err)
{
        char exist[PATH_MAX], rest[PATH_MAX] = "", *slash;
        cleanup_close int fd = -1;
        struct stat st;
        size_t len;
        int r;

        if ((size_t)snprintf(exist, sizeof(exist), "%s", dir) >= sizeof(exist))
                return ak_err_set(err, ENAMETOOLONG, "the %s '%s' is too long", what, target);
        /* the longest part that exists, resolved; what follows is created below */
        while (!realpath(exist, canon)) {
                char tmp[PATH_MAX];
                if (errno != ENOENT)
                        return ak_err_errno(err, errno, "'%s' (on the way to the %s '%s')", exist,
                                            what, target);
                if (!(flags & PRIVATE_CREATE))
                        return ak_err_set(err, ENOENT, "the %s '%s' does not exist", what, target);
                slash = strrchr(exist, '/');
                if (!slash || !plain_component(slash + 1, strlen(slash + 1)))
                        return ak_err_set(err, EINVAL, "the %s '%s' is not a usable path", what,
                                          target);
                (void)snprintf(tmp, sizeof(tmp), "%s%s%s", slash + 1, rest[0] ? "/" : "", rest);
                memcpy(rest, tmp, sizeof(rest));
                if (slash == exist)
                        slash[1] = '\0';
                else
                        *slash = '\0';
        }
        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "open '/'");
        r = check_ancestor(&st, "/", what, target, err);
        if (r < 0)
                return r;
        len = strlen(canon);
        if ((size_t)snprintf(canon + len, PATH_MAX - len, "%s%s",
                             rest[0] && canon[len - 1] != '/' ? "/" : "", rest) >= PATH_MAX - len)
                return ak_err_set(err, ENAMETOOLONG, "the %s '%s' is too long", what, target);
        /* every component of canon: the resolved ones must still be real directories (a link
         * now means a race with someone), the missing ones are made here */
        for (char *c = canon + 1, *end; *c; c = *end ? end + 1 : end) {
                char sub[PATH_MAX];
                cleanup_close int next = -1;
                end = strchrnul(c, '/');
                if (end == c)
                        continue;
                if (!plain_component(c, (size_t)(end - c)))
                        return ak_err_set(err, EINVAL, "the %s '%s' is not a usable path", what,
                                          target);
                (void)snprintf(sub, sizeof(sub), "%.*s", (int)(end - c), c);
                next = openat(fd, sub, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT && (flags & PRIVATE_CREATE)) {
                        if (mkdirat(fd, sub, PRIVATE_DIR_MODE) < 0 && errno != EEXIST)
                                return ak_err_errno(err, errno, "cannot create '%.*s'",
                                                    (int)(end - canon), canon);
                        next = openat(fd, sub, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                }
                if (next < 0 || fstat(next, &st) < 0)
                        return ak_err_set(err, errno == ELOOP ? ENOTDIR : errno,
                                          "'%.*s' (on the way to the %s '%s'): %s",
                                          (int)(end - canon), canon, what, target,
                                          errno == ELOOP || errno == ENOTDIR
                                              ? "not a directory (a link appeared meanwhile?)"
                                              : strerror(errno));
                {
                        char shown[PATH_MAX];
                        (void)snprintf(shown, sizeof(shown), "%.*s", (int)(end - canon), canon);
                        r = check_ancestor(&st, shown, what, target, err);
                }
                if (r < 0)
                        return r;
                close(fd);
                fd = TAKE_FD(next);
        }
        return TAKE_FD(fd);
}

/* Directories this process has walked and found private: the walk (every ancestor opened and
 * checked, realpath's readlinks) is done once per process. What it found cannot be undone by
 * another user (every ancestor is root's or ours and nobody else's to write); a hit still
 * re-opens the directory itself without following a link and checks that it is the same one,
 * ours and private. */
#define WALKED_MAX 4
static struct walked {
        char *path, *canon;
        dev_t dev;
        ino_t ino;
} walked[WALKED_MAX];
static size_t walked_next;
static pthread_mutex_t walked_lock = PTHREAD_MUTEX_INITIALIZER;

static int walked_open(const char *path, char **ret_path)
{
        int fd = -1;

        pthread_mutex_lock(&walked_lock);
        for (size_t i = 0; i < WALKED_MAX; i++) {
                struct stat st;
                if (!walked[i].path || !streq(walked[i].path, path))
                        continue;
                fd = open(walked[i].canon, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0 &&
                    (fstat(fd, &st) < 0 || st.st_dev != walked[i].dev ||
                     st.st_ino != walked[i].ino || st.st_uid != euid() || (st.st_mode & 077))) {
                        close(fd);
                        fd = -1;
                }
                if (fd >= 0 && ret_path && !(*ret_path = strdup(walked[i].canon))) {
                        close(fd);
                        fd = -1;
                }
                break;
        }
        pthread_mutex_unlock(&walked_lock);
        return fd;
}

static void walked_add(const char *path, const char *canon, int fd)
{
        struct stat st;
        size_t slot;
        char *p, *c;

        if (fstat(fd, &st) < 0)
                return;
        p = strdup(path);
        c = strdup(canon);
        if (!p || !c) {
                free(p);
                free(c);
                return;
        }
        pthread_mutex_lock(&walked_lock);
        slot = walked_next;
        for (size_t i = 0; i < WALKED_MAX; i++)
                if (walked[i].path && streq(walked[i].path, path))
                        slot = i; /* replaces the stale entry */
        if (slot == walked_next)
                walked_next = (walked_next + 1) % WALKED_MAX;
        free(walked[slot].path);
        free(walked[slot].canon);
        walked[slot] = (struct walked){p, c, st.st_dev, st.st_ino};
        pthread_mutex_unlock(&walked_lock);
}

int private_dir_open(const char *path, const char *what, unsigned flags, char **ret_path,
                     struct ak_err *err)
{
        char p[PATH_MAX], canon[PATH_MAX], *leaf, *full = NULL;
        const char *parent;
        cleanup_close int pfd = -1;
        size_t len;
        int fd;

        if (!path || path[0] != '/')
                return ak_err_set(err, EINVAL, "the %s '%s' is not an absolute path", what,
                                  path ? path : "");
        if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
                return ak_err_set(err, ENAMETOOLONG, "the %s '%s' is too long", what, path);
        fd = walked_open(path, ret_path);
        if (fd >= 0)
                return fd;
        len = strlen(p);
        while (len > 1 && p[len - 1] == '/')
                p[--len] = '\0';
        leaf = strrchr(p, '/') + 1;
        if (!plain_component(leaf, strlen(leaf)))
                return ak_err_set(err, EINVAL, "the %s cannot be '%s'", what, path);
        if (leaf == p + 1) {
                parent = "/";
        } else {
                leaf[-1] = '\0';
                parent = p;
        }
        pfd = walk_ancestors(parent, what, path, flags, canon, err);
        if (pfd < 0)
                return pfd;
        len = strlen(canon);
        if (asprintf(&full, "%s%s%s", canon, canon[len - 1] == '/' ? "" : "/", leaf) < 0)
                return ak_err_oom(err);
        fd = open_own_child(pfd, leaf, full, what, flags, err);
        if (fd >= 0)
                walked_add(path, full, fd);
        if (fd < 0 || !ret_path)
                free(full);
        else
                *ret_path = full;
        return fd;
}

int private_dir_check_at(int dirfd, const char *dirpath, const char *name, unsigned flags,
                         struct ak_err *err)
{
        struct stat st;
        int fd;

        /* the usual case in one system call: there already, a real directory, ours, private */
        if (!strchr(name, '/') && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode) && st.st_uid == euid() && !(st.st_mode & 077))
                return 0;
        fd = private_dir_open_at(dirfd, dirpath, name, flags, err);
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

int private_dir_open_at(int dirfd, const char *dirpath, const char *name, unsigned flags,
                        struct ak_err *err)
{
        cleanup_close int fd = -1;
        int at = dirfd;
        const char *c = name, *end;

        do {
                char comp[NAME_MAX + 1], path[PATH_MAX];
                int next;
                end = strchrnul(c, '/');
                if (!plain_component(c, (size_t)(end - c)) || (size_t)(end - c) > NAME_MAX)
                        return ak_err_set(err, EINVAL, "'%s' is not a usable directory name", name);
                (void)snprintf(comp, sizeof(comp), "%.*s", (int)(end - c), c);
                (void)snprintf(path, sizeof(path), "%s/%.*s", dirpath, (int)(end - name), name);
                next = open_own_child(at, comp, path, "directory", flags, err);
                if (next < 0)
                        return next;
                if (fd >= 0)
                        close(fd);
                at = fd = next;
                c = end + 1;
        } while (*end);
        return TAKE_FD(fd);
}

int private_dir_ensure(const char *path, struct ak_err *err)
{
        char parent[PATH_MAX];
        const char *slash = strrchr(path, '/');
        cleanup_close int pfd = -1;
        struct stat st;
        int fd;

        if (!slash || !plain_component(slash + 1, strlen(slash + 1)) ||
            (size_t)(slash - path) >= sizeof(parent))
                return ak_err_set(err, EINVAL, "'%s' is not a usable directory", path);
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            st.st_uid == euid() && !(st.st_mode & 077))
                return 0; /* there already, as it should be */
        (void)snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
        pfd = open(parent[0] ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return ak_err_errno(err, errno, "open '%s'", parent);
        fd = open_own_child(pfd, slash + 1, path, "directory", PRIVATE_CREATE, err);
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

static int file_check(int fd, const char *path, struct stat *ret, struct ak_err *err)
{
        struct stat st;
        uid_t me = euid();

        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "'%s'", path);
        *ret = st;
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EINVAL, "'%s' is not a regular file", path);
        if (st.st_uid != me)
                return ak_err_set(err, EPERM,
                                  "'%s' belongs to uid %u, not to you (uid %u): not trusting it; "
                                  "remove it if you did not put it there",
                                  path, (unsigned)st.st_uid, (unsigned)me);
        if (st.st_mode & 022)
                return ak_err_set(err, EPERM,
                                  "'%s' is writable by %s (mode %04o): not trusting it; check it, "
                                  "then: chmod 0600 '%s'",
                                  path, writers(st.st_mode), (unsigned)(st.st_mode & 07777), path);
        return 0;
}

int private_file_check(int fd, const char *path, struct ak_err *err)
{
        struct stat st;
        return file_check(fd, path, &st, err);
}

/* private_file_open_at(), and the file's stat in *st. */
static int open_private(int dirfd, const char *path, int flags, struct stat *st, struct ak_err *err)
{
        /* O_NONBLOCK: a FIFO planted in the file's place must not block the open */
        cleanup_close int fd = openat(
            dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, PRIVATE_FILE_MODE);
        int r;

        if (fd < 0) {
                if (errno == ELOOP)
                        return ak_err_set(err, ELOOP,
                                          "'%s' is a symbolic link: not following it; remove it "
                                          "if you did not put it there",
                                          path);
                return ak_err_errno(err, errno, "'%s'", path);
        }
        r = file_check(fd, path, st, err);
        if (r < 0)
                return r;
        /* a writer makes what it writes to private (an upstream 0644 file, an old umask's) */
        if ((flags & O_CREAT) && (st->st_mode & 077) && fchmod(fd, PRIVATE_FILE_MODE) < 0)
                return ak_err_errno(err, errno, "chmod 0600 '%s'", path);
        /* O_NONBLOCK stays: it means nothing to a regular file (nor to flock) */
        return TAKE_FD(fd);
}

int private_file_open_at(int dirfd, const char *path, int flags, struct ak_err *err)
{
        struct stat st;

        return open_private(dirfd, path, flags, &st, err);
}

int private_file_read_at(int dirfd, const char *path, struct buf *b, size_t max, struct ak_err *err)
{
        struct stat st;
        cleanup_close int fd = open_private(dirfd, path, O_RDONLY, &st, err);
        int r;

        if (fd < 0)
                return fd;
        r = read_fd_full_stat(fd, &st, b, max); /* the size checked just now: no second fstat */
        if (r == -EFBIG)
                return ak_err_set(err, EFBIG, "'%s' is larger than %zu bytes", path, max);
        if (r < 0)
                return ak_err_errno(err, r, "cannot read '%s'", path);
        return 0;
}

int private_parent_check(const char *path, const char *what, unsigned flags, struct ak_err *err)
{
        char dir[PATH_MAX], canon[PATH_MAX], *slash;
        int fd;

        if (!path || path[0] != '/')
                return ak_err_set(err, EINVAL, "the %s '%s' is not an absolute path", what,
                                  path ? path : "");
        if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
                return ak_err_set(err, ENAMETOOLONG, "the %s '%s' is too long", what, path);
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        fd = walk_ancestors(dir, what, path, flags, canon, err);
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

int private_lock_at(int dirfd, const char *name, const char *what, struct ak_err *err)
{
        int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

        if (fd < 0)
                return ak_err_errno(err, errno, "cannot lock %s", what);
        if (flock(fd, LOCK_EX) < 0) {
                int e = errno;
                close(fd);
                return ak_err_errno(err, e, "cannot lock %s", what);
        }
        return fd;
}

int private_json_save_at(int dirfd, const char *name, json_t *o, const char *what,
                         struct ak_err *err)
{
        cleanup_free char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        int r;

        if (!text)
                return ak_err_oom(err);
        r = write_file_atomic_at(dirfd, name, text, strlen(text), 0600, true);
        return r < 0 ? ak_err_errno(err, r, "cannot write %s", what) : 0;
}
