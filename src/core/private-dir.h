/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private directories and files: where agentkernel keeps what another local user must neither
 * read nor change (records holding environment values, runtime files naming host pids and
 * cgroups, locks, the audit log, volume metadata, the image store). Everything here is read
 * back later and trusted only as far as these checks go:
 *
 * - every ancestor of a private directory (after its symlinks are resolved) is owned by root or
 *   by the caller and writable by nobody else, unless it is sticky (/tmp): sshd's StrictModes;
 * - the directory itself is a real directory (never a symlink), owned by the caller and not
 *   writable by group or others; one that others may read (upstream's 0755) is tightened to
 *   0700; a missing one is created 0700 without following links;
 * - a file is a regular file (never a link, FIFO or device), owned by the caller and not
 *   writable by group or others. Upstream's 0644 files load; writers make 0600 files.
 *
 * A refusal says what is wrong and how to fix it. Nothing here removes or changes anything it
 * did not create, except that it tightens the modes of directories the caller owns.
 */
#pragma once

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "shared/buf.h"
#include "shared/err.h"

#define PRIVATE_DIR_MODE 0700
#define PRIVATE_FILE_MODE 0600

enum {
        PRIVATE_CREATE = 1 << 0, /* create what is missing (mode 0700) */
};

/* Opens the private directory at path (absolute), checking its ancestors and itself as above
 * (creating it, and missing ancestors, with PRIVATE_CREATE). `what` names it in messages
 * ("data directory"). Returns an O_DIRECTORY fd; *ret_path (may be NULL) gets its canonical
 * path (ancestors' symlinks resolved), which callers must use from then on: a link on the way
 * could be re-pointed, the canonical path cannot. -errno with a message otherwise. The walk of
 * the ancestors is done once per process and path (nobody else can change what it found); the
 * directory itself is re-checked at every call. */
int private_dir_open(const char *path, const char *what, unsigned flags, char **ret_path,
                     struct ak_err *err);

/* Opens a directory below an opened private directory (dirfd, whose path is dirpath, for
 * messages): `name` is one or more components ("run/.ephemeral"), each checked as a private
 * directory itself (owner, mode, no symlink; tightened; created with PRIVATE_CREATE). Returns an
 * O_DIRECTORY fd. */
int private_dir_open_at(int dirfd, const char *dirpath, const char *name, unsigned flags,
                        struct ak_err *err);

/* private_dir_open_at() without the fd: 0 or -errno. One fstatat when all is well. */
int private_dir_check_at(int dirfd, const char *dirpath, const char *name, unsigned flags,
                         struct ak_err *err);

/* Creates (0700) or checks the directory at path, whose parent the caller has already opened as
 * a private directory: only path's last component is checked (owner, mode, no symlink;
 * tightened). 0 or -errno with a message. */
int private_dir_ensure(const char *path, struct ak_err *err);

/* Checks an open file: a regular file, owned by the caller, not writable by group or others.
 * path is for the message. 0 or -errno (EPERM for a foreign or writable file, EINVAL for a
 * non-regular one). */
int private_file_check(int fd, const char *path, struct ak_err *err);

/* Opens a private file relative to dirfd (AT_FDCWD allowed) with O_NOFOLLOW | O_CLOEXEC and
 * the given flags, then private_file_check()s it. With O_CREAT (a writer) it is created 0600,
 * and an existing one others may read is made 0600. -ENOENT (with a message) when missing. */
int private_file_open_at(int dirfd, const char *path, int flags, struct ak_err *err);

/* Reads a whole private file (at most max bytes). -ENOENT when missing, -EFBIG when larger. */
int private_file_read_at(int dirfd, const char *path, struct buf *b, size_t max,
                         struct ak_err *err);

/* Checks the directories above a file the caller names itself (AGENTKERNEL_AUDIT_PATH): path's
 * parent and all its ancestors are owned by root or the caller and not writable by others unless
 * sticky. Creates a missing parent (0700) with PRIVATE_CREATE. */
int private_parent_check(const char *path, const char *what, unsigned flags, struct ak_err *err);

/* A private store's lock: name in dirfd (created 0600, never through a link), held exclusively.
 * Returns the fd (close it to release) or -errno with "cannot lock <what>". */
int private_lock_at(int dirfd, const char *name, const char *what, struct ak_err *err);

/* Writes o as pretty JSON to name in dirfd, atomically and durably, mode 0600 ("cannot write
 * <what>" on failure). */
int private_json_save_at(int dirfd, const char *name, json_t *o, const char *what,
                         struct ak_err *err);
