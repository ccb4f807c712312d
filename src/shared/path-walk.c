// SPDX-License-Identifier: Apache-2.0
/*
 * Path resolution that never jumps through a magic link (/proc/PID/fd/N and the like), whatever
 * the kernel: openat2(RESOLVE_NO_MAGICLINKS) where it exists, else a walk of one component at a
 * time that follows each symlink's text instead. Used by the agent on paths inside a sandbox and
 * by the host on paths a user names (host-file.c). Allocates nothing: safe in a vfork child.
 */
#include "path-walk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

/* struct open_how and RESOLVE_NO_MAGICLINKS of <linux/openat2.h>, which musl's headers lack */
struct nomagic_how {
        uint64_t flags, mode, resolve;
};
#define NOMAGIC_RESOLVE 0x02ull

/* Set once openat2 answered ENOSYS (a benign, idempotent write even from a vfork child). */
static bool openat2_missing;
static bool force_walk;

void openat_nomagic_force_walk(bool on)
{
        force_walk = on;
}

static int open_dir_of(int dirfd, const char *path)
{
        if (path[0] == '/')
                return open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd == AT_FDCWD)
                return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
}

static void replace_fd(int *cur, int nfd)
{
        close(*cur);
        *cur = nfd;
}

/* buf holds what is left to walk; links are spliced in front of it. */
int path_walk(int dirfd, const char *path, int flags, mode_t mode, bool trusted_only)
{
        char buf[2 * PATH_MAX], link[PATH_MAX];
        size_t len = strlen(path);
        int cur, links = 0, r;
        char *p = buf;

        if (len == 0)
                return -ENOENT;
        if (len >= PATH_MAX)
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        cur = open_dir_of(dirfd, path);
        if (cur < 0)
                return -errno;
        for (;;) {
                char *comp, *slash, *rest;
                bool last;
                struct stat st;
                int nfd, last_err = 0;
                ssize_t n;

                while (*p == '/')
                        p++;
                if (!*p) { /* ended on a directory: "/", "a/", "a/." */
                        nfd = openat(cur, ".", (flags & ~(O_CREAT | O_EXCL)) | O_CLOEXEC, mode);
                        r = nfd < 0 ? -errno : nfd;
                        break;
                }
                comp = p;
                slash = strchr(p, '/');
                last = !slash;
                if (slash)
                        *slash = '\0';
                rest = slash ? slash + 1 : p + strlen(p);
                if (streq(comp, ".") || streq(comp, "..")) {
                        if (last) {
                                nfd = openat(cur, comp, flags | O_CLOEXEC, mode);
                                r = nfd < 0 ? -errno : nfd;
                                break;
                        }
                        nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (nfd < 0) {
                                r = -errno;
                                break;
                        }
                        replace_fd(&cur, nfd);
                        p = rest;
                        continue;
                }
                if (last) {
                        /* opened as asked, unless it is a symlink to follow: O_NOFOLLOW makes
                         * that ELOOP (ENOTDIR with O_DIRECTORY; a link itself with O_PATH) */
                        nfd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
                        last_err = nfd < 0 ? errno : 0;
                        if (nfd >= 0 && !((flags & O_PATH) && !(flags & O_NOFOLLOW) &&
                                          fstat(nfd, &st) == 0 && S_ISLNK(st.st_mode))) {
                                r = nfd;
                                break;
                        }
                        if (nfd < 0 &&
                            ((flags & O_NOFOLLOW) || (last_err != ELOOP && last_err != ENOTDIR))) {
                                r = -last_err;
                                break;
                        }
                        if (nfd >= 0)
                                close(nfd);
                }
                nfd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0 || fstat(nfd, &st) < 0) {
                        r = -errno;
                        if (nfd >= 0)
                                close(nfd);
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        replace_fd(&cur, nfd);
                        p = rest;
                        continue;
                }
                if (!S_ISLNK(st.st_mode)) {
                        close(nfd);
                        r = last ? -(last_err ? last_err : ELOOP) : -ENOTDIR;
                        break;
                }
                if (trusted_only && !path_link_trusted(&st)) {
                        close(nfd);
                        r = -ELOOP;
                        break;
                }
                n = readlinkat(nfd, "", link, sizeof(link) - 1);
                close(nfd);
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0 || ++links > PATH_WALK_LINKS_MAX) {
                        r = n == 0 ? -ENOENT : -ELOOP;
                        break;
                }
                /* buf becomes link[/rest]: the link's text, then what followed it */
                {
                        size_t rl = strlen(rest), need = (size_t)n + (last ? 0 : 1) + rl + 1;
                        if (need > sizeof(buf)) {
                                r = -ENAMETOOLONG;
                                break;
                        }
                        memmove(buf + n + (last ? 0 : 1), rest, rl + 1);
                        memcpy(buf, link, (size_t)n);
                        if (!last)
                                buf[n] = '/';
                        p = buf;
                }
                if (link[0] == '/') {
                        nfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (nfd < 0) {
                                r = -errno;
                                break;
                        }
                        replace_fd(&cur, nfd);
                }
        }
        close(cur);
        return r;
}

int openat_nomagic(int dirfd, const char *path, int flags, mode_t mode)
{
        if (!openat2_missing && !force_walk) {
                bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
                struct nomagic_how how = {(uint64_t)(flags | O_CLOEXEC), creates ? mode : 0,
                                          NOMAGIC_RESOLVE};
                long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
                if (fd >= 0)
                        return (int)fd;
                /* EPERM: a seccomp filter that predates openat2 (a real EPERM comes back from
                 * the walk as well) */
                if (errno != ENOSYS && errno != EPERM)
                        return -errno;
                if (errno == ENOSYS)
                        openat2_missing = true;
        }
        return path_walk(dirfd, path, flags, mode, false);
}

bool path_link_trusted(const struct stat *st)
{
        return st->st_uid == geteuid() || st->st_uid == 0;
}
