/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Path resolution that never jumps through a magic link, whatever the kernel, and the walk of
 * one component at a time that it falls back to. All fds are O_CLOEXEC; nothing allocates.
 */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PATH_WALK_LINKS_MAX 40 /* symlinks followed on one path, as the kernel's ELOOP limit */

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

/* The user-space walk of openat_nomagic: each component is opened O_PATH|O_NOFOLLOW; a symlink
 * (a magic one included) is read and its text walked in its place, so the kernel never makes a
 * magic link's jump. trusted_only: a symlink that is not path_link_trusted() is refused
 * (-ELOOP) instead. Returns the fd or -errno. */
int path_walk(int dirfd, const char *path, int flags, mode_t mode, bool trusted_only);

/* Whether a symlink (st of it) may be followed on a path a user names: the caller's own or
 * root's, which no other user can plant (the rule of fs.protected_symlinks, applied in every
 * directory, not only sticky ones). */
bool path_link_trusted(const struct stat *st);
