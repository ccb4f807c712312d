/* The kernel's mount API (open_tree, move_mount, fsopen/fsconfig/fsmount, mount_setattr).
 *
 * glibc 2.36 declares it in <sys/mount.h>. musl 1.2.3 (Debian 12's), which builds the CLI and the
 * agent (meson.build: they start without glibc's CPU probing), has neither the wrappers nor the
 * constants: this header gives both, the constants from the kernel's own UAPI header and the
 * wrappers as plain system calls, so the callers read the same with either C library. */
#pragma once

#include <sys/mount.h>

#ifndef __GLIBC__
#include <linux/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int open_tree(int dfd, const char *path, unsigned int flags)
{
        return (int)syscall(SYS_open_tree, dfd, path, flags);
}

static inline int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                             unsigned int flags)
{
        return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}

static inline int fsopen(const char *fs_name, unsigned int flags)
{
        return (int)syscall(SYS_fsopen, fs_name, flags);
}

static inline int fsconfig(int fd, unsigned int cmd, const char *key, const void *value, int aux)
{
        return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}

static inline int fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
        return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}

static inline int mount_setattr(int dfd, const char *path, unsigned int flags,
                                struct mount_attr *attr, size_t size)
{
        return (int)syscall(SYS_mount_setattr, dfd, path, flags, attr, size);
}
#endif
