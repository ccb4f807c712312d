/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plain file-descriptor and file helpers: full reads and writes that survive EINTR and short
 * counts, bounded file reads, atomic file replacement, directory creation and removal, unix
 * sockets. All fds are O_CLOEXEC. Paths resolved without magic links: path-walk.h; files the
 * host writes from data it does not trust: host-file.h.
 */
#pragma once

#include <dirent.h>
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

struct stat;

/* Reads fd to EOF into b, failing with -EFBIG beyond max bytes. A regular file whose read
 * stops short at the size fstat() gave is at its end (no read to see a 0). */
int read_fd_full(int fd, struct buf *b, size_t max);
/* read_fd_full() with the fd's fstat() already made (st; NULL: unknown): one syscall fewer
 * for a caller that checked the file. */
int read_fd_full_stat(int fd, const struct stat *st, struct buf *b, size_t max);

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

/* Whether path (relative to dirfd) exists, a link at its end not followed: 0, or -1 with errno
 * (ENOENT when it does not). faccessat's AT_SYMLINK_NOFOLLOW needs faccessat2 (Linux 5.8) under
 * musl, which fails it with EINVAL on older kernels. */
int lexists_at(int dirfd, const char *path);

/* A listing of the directory dirfd, or NULL (errno set): on a descriptor of its own, so that
 * reading it moves no other stream's offset (a dup would share it) and dirfd stays the caller's.
 * closedir() it. */
DIR *opendir_at(int dirfd);

/* Sets O_NONBLOCK on or off. */
int fd_set_nonblock(int fd, bool on);

/* Closes every fd >= lowfd except those listed in keep (close_range where available). */
int close_all_fds_except(int lowfd, const int *keep, size_t n_keep);

/* Sends len bytes (at least 1) on a unix socket with n fds attached (SCM_RIGHTS, at most
 * FD_PASS_MAX); the rest of data follows with write_all. No allocation. 0 or -errno. */
#define FD_PASS_MAX 64
int fd_send(int sock, const void *data, size_t len, const int *fds, size_t n);

/* Receives up to len bytes (one recvmsg) and the fds that came with them, close-on-exec, into
 * fds (at most max; more, or truncated control data, closes them all: -EBADMSG). *ret_n: how
 * many fds. Returns the bytes read (0 at EOF) or -errno. No allocation. */
ssize_t fd_recv(int sock, void *data, size_t len, int *fds, size_t max, size_t *ret_n);

/* Returns true when path exists (lstat succeeds). */
bool path_exists(const char *path);

/* Creates a unix stream socket connected to path. Long paths are reached through a directory
 * fd, so the 108-byte sun_path limit does not apply. */
int unix_connect(const char *path, struct ak_err *err);

/* Creates a listening unix socket bound at path (replacing a stale socket file). */
int unix_listen(const char *path, int backlog, struct ak_err *err);
