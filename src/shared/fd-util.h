/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File-descriptor and file helpers: full reads and writes that survive EINTR and short counts,
 * bounded file reads, atomic file replacement, directory creation, path resolution that never
 * jumps through a magic link, and files the host writes from data it does not trust. All fds are
 * O_CLOEXEC.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* Writes all of data, retrying on EINTR/short writes. Returns 0 or -errno. */
int write_all(int fd, const void *data, size_t len);

/* Reads exactly len bytes. Returns 0, -EPIPE on early EOF, or -errno. */
int read_exact(int fd, void *data, size_t len);

/* Reads fd to EOF into b, failing with -EFBIG beyond max bytes. */
int read_fd_full(int fd, struct buf *b, size_t max);

/* Reads a whole file (relative to dirfd, AT_FDCWD allowed) into b, at most max bytes. */
int read_file_at(int dirfd, const char *path, struct buf *b, size_t max);

/* Replaces path (relative to dirfd) atomically: write a temp file in the same directory,
 * optionally fsync it, rename over path, optionally fsync the directory. mode is the file mode. */
int write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
                         bool durable);

/* Writes data to an existing file (e.g. a cgroup or /proc knob) in one write(2). */
int write_file_string(const char *path, const char *s);

/* mkdir -p with the given mode for every created component. Existing directories are fine. */
int mkdir_p(const char *path, mode_t mode);

/* rm -rf below and including path (relative to dirfd), never crossing into other mounts or
 * following symlinks: any depth with a constant number of fds, and a directory it cannot enter
 * or empty is made writable first (as its owner could). Returns 0 or the first error. */
int rm_rf_at(int dirfd, const char *path);

/* Sets O_NONBLOCK on or off. */
int fd_set_nonblock(int fd, bool on);

/* Closes every fd >= lowfd except those listed in keep (close_range where available). */
int close_all_fds_except(int lowfd, const int *keep, size_t n_keep);

/* Returns true when path exists (lstat succeeds). */
bool path_exists(const char *path);

/* Creates a unix stream socket connected to path. Long paths are reached through a directory
 * fd, so the 108-byte sun_path limit does not apply. */
int unix_connect(const char *path, struct ak_err *err);

/* Creates a listening unix socket bound at path (replacing a stale socket file). */
int unix_listen(const char *path, int backlog, struct ak_err *err);

/* Opens path (relative to dirfd, AT_FDCWD allowed) as openat(2) would, but never through a magic
 * link (/proc/PID/fd/N, /proc/PID/cwd, /proc/PID/root, /proc/PID/exe, map_files...): such a link
 * is refused with -ELOOP wherever it appears, as openat2(RESOLVE_NO_MAGICLINKS) does. Ordinary
 * symlinks are followed (the last one unless flags has O_NOFOLLOW). Where openat2 is missing (an
 * old kernel, or a container's seccomp filter that refuses it) the path is walked one component
 * at a time and each symlink's text followed instead, which never makes a magic link's jump.
 * Safe in a vfork child (no allocation). Returns the fd or -errno. */
int openat_nomagic(int dirfd, const char *path, int flags, mode_t mode);

/* Testing only: makes openat_nomagic take its user-space walk (as if openat2 were missing). */
void openat_nomagic_force_walk(bool on);

/*
 * A file the host writes from data it does not trust (a sandbox's), at a path another user may
 * share (/tmp, their home): never written through a symlink or into a file someone else planted.
 * The data goes to a file only this process can reach (O_TMPFILE, or a random name created with
 * O_CREAT|O_EXCL|O_NOFOLLOW where the filesystem has no O_TMPFILE), owned by the caller, and
 * becomes visible under its final name only by rename(2), which replaces whatever was there (a
 * symlink included: replaced, never followed).
 */
struct out_file {
        int dir_fd;              /* the directory the file goes into */
        int fd;                  /* the file, open for writing */
        char name[NAME_MAX + 1]; /* its final name in dir_fd */
        char tmp[NAME_MAX + 1];  /* its temporary name, "" while it has none */
        bool published;
};

#define OUT_FILE_INIT                                                                              \
        {                                                                                          \
                .dir_fd = -1, .fd = -1                                                             \
        }

/* Prepares to write dest. No symlink owned by anyone but the caller or root is followed anywhere
 * on dest's way (the rule of fs.protected_symlinks, applied in every directory): one in dest's
 * directory part is an error (-ELOOP); one at dest itself is replaced by the file. A symlink at
 * dest is never written through: it is followed only when it (and every link after it) is the
 * caller's or root's and leads to a directory. When dest is a directory (or such a symlink to
 * one, or ends with '/'), the file goes inside it under name_if_dir, a plain name (NULL: a
 * directory is an error). On success *ret owns two fds: out_file_abort() or out_file_publish()
 * releases them. */
int out_file_open(const char *dest, const char *name_if_dir, struct out_file *ret,
                  struct ak_err *err);

/* Gives the file mode (only its 0777 bits: setuid, setgid and sticky never survive) less the
 * process umask, and renames it over its final name. The fd stays open for more writes (a
 * recording keeps appending); out_file_abort() closes it afterwards. Reads the umask with
 * umask(2): not for threaded callers. */
int out_file_publish(struct out_file *f, mode_t mode, struct ak_err *err);

/* Closes the file; if it was never published, nothing of it remains. Accepts an unopened one. */
void out_file_abort(struct out_file *f);

/* Testing only: makes out_file_open use a named temporary file (as without O_TMPFILE). */
void out_file_force_named(bool on);

/* Opens path for reading a file the caller names: no symlink owned by anyone but the caller or
 * root is followed anywhere on its way (-ELOOP), and a FIFO does not block the open. Returns the
 * fd (blocking reads) or -errno. */
int open_source_file(const char *path);
