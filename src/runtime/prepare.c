// SPDX-License-Identifier: Apache-2.0
/*
 * The parent's half of a sandbox's mounts: what the child attaches but cannot make itself,
 * because it needs the host's view or privileges the child's user namespace lacks. Each is a
 * detached mount (an fd, attached nowhere): idmapped host trees (MOP_IDMAP, MOP_DETACHED), host
 * directories the sandbox writes, idmapped through user namespaces made for them (MOP_OWNER,
 * MOP_VOLUME), the sandbox's disk and an image's overlayfs over idmapped layers. They are lent
 * to the child with its go byte (prepare_release_child) and closed here: the child's copies are
 * all that is left of them, so they disappear with the sandbox.
 */
#include "prepare.h"

#include "shared/bind-mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/mount-api.h"

/* A detached copy of the host tree at src, idmapped through the sandbox's user namespace
 * (MOP_IDMAP), or as it is (MOP_DETACHED). Falls back to a plain (not idmapped) copy where the
 * filesystem cannot idmap. */
static int prepare_idmapped(const struct mount_op *op, int userns_fd, struct ak_err *err)
{
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                        (op->type == MOP_BIND_RO ? MOUNT_ATTR_RDONLY : 0),
            .userns_fd = (uint64_t)userns_fd,
        };
        cleanup_close int fd = open_tree(AT_FDCWD, op->src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);

        if (fd < 0)
                return ak_err_errno(err, errno, "cannot mount '%s'", op->src);
        if (!(op->flags & MOP_IDMAP) || userns_fd < 0) { /* as it is */
                attr.attr_set &= ~(uint64_t)MOUNT_ATTR_IDMAP;
                attr.userns_fd = 0;
        }
        if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0)
                return TAKE_FD(fd);
        if (!(attr.attr_set & MOUNT_ATTR_IDMAP) ||
            (errno != EINVAL && errno != EOPNOTSUPP && errno != EPERM))
                return ak_err_errno(err, errno, "cannot mount '%s'", op->src);
        /* This filesystem cannot idmap: a plain mount, where the sandbox's root is its own
         * unprivileged host id and host files are nobody's. */
        attr.attr_set &= ~(uint64_t)MOUNT_ATTR_IDMAP;
        attr.userns_fd = 0;
        if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                return ak_err_errno(err, errno, "cannot mount '%s'", op->src);
        return TAKE_FD(fd);
}

/* ---- user namespaces made for one mount (MOP_OWNER, MOP_VOLUME) ---- */

/* Runs on a stack inside mount_userns()'s frame: nothing here may leave sanitizer state behind
 * (it is killed, never returns). */
__attribute__((no_sanitize_address)) static int userns_wait(void *arg)
{
        (void)arg;
        for (;;)
                (void)syscall(SYS_pause); /* until SIGKILL: every signal is blocked */
        return 0;
}

/* A user namespace with these uid and gid maps ("inside outside count" lines): what an idmapped
 * mount needs, and nothing else. Only a process can create one: a child that shares our memory
 * (CLONE_VM, so nothing is copied), waits with every signal blocked while we write its maps and
 * open its namespace, and is then killed and reaped. Returns the namespace's fd. */
static int mount_userns(const char *uid_map, const char *gid_map, struct ak_err *err)
{
        /* the child's stack: it only ever runs userns_wait */
        char stack[8192] __attribute__((aligned(16)));
        char path[64];
        sigset_t all, saved;
        int r = 0, fd = -1;
        pid_t pid;

        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
#ifndef RUNTIME_NO_SHARED_CHILD
        pid = clone(userns_wait, stack + sizeof(stack), CLONE_NEWUSER | CLONE_VM, NULL);
        if (pid < 0 && errno == EINVAL) /* CLONE_VM refused (valgrind): a copy, as with fork */
#endif
                pid = clone(userns_wait, stack + sizeof(stack), CLONE_NEWUSER, NULL);
        if (pid < 0) {
                r = errno;
                pthread_sigmask(SIG_SETMASK, &saved, NULL);
                return ak_err_errno(err, r, "user namespace for a mount");
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        r = write_file_string(path, uid_map);
        if (r >= 0) {
                (void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
                r = write_file_string(path, gid_map);
        }
        if (r >= 0) {
                (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : 0;
        }
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
                ;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return ak_err_errno(err, r, "user namespace for a mount");
        return fd;
}

/* One id map of a host directory a sandbox writes (MOP_OWNER): the directory's owner `owner`
 * is the sandbox's 0, the sandbox's ids 1..count-1 are its own host range. Empty when no such
 * map is needed or possible: the owner is root (no sandbox id may be host 0) or lies in the
 * sandbox's own range already. */
static void owner_map(char *out, size_t len, uint32_t owner, uint32_t base, uint32_t count)
{
        if (owner == 0 || (owner >= base && owner - base < count))
                out[0] = '\0';
        else
                (void)snprintf(out, len, "%u %u 1\n%u %u %u\n", owner, base, base + 1, base + 1,
                               count - 1);
}

/* A detached mount of a host directory the sandbox writes (MOP_OWNER: the workspace;
 * MOP_VOLUME: a volume), idmapped as those flags say. *vol_userns caches the volumes' user
 * namespace (one per sandbox). */
static int prepare_owned(const struct mount_op *op, const struct runtime_spec *s, int *vol_userns,
                         struct ak_err *err)
{
        char umap[96], gmap[96];
        struct mount_op plain = *op;
        struct stat st;
        int fd, userns = -1, r;

        plain.flags = MOP_DETACHED;
        if (op->flags & MOP_VOLUME) {
                if (*vol_userns < 0) {
                        (void)snprintf(umap, sizeof(umap), "%u %u %u\n", VOLUME_ID_BASE, s->id_base,
                                       s->id_count);
                        *vol_userns = mount_userns(umap, umap, err);
                        if (*vol_userns < 0)
                                return *vol_userns;
                }
                plain.flags = MOP_IDMAP;
                return prepare_idmapped(&plain, *vol_userns, err);
        }
        /* the owner of what will be mounted, not of what the path named a moment ago */
        fd = open_tree(AT_FDCWD, op->src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fd < 0)
                return ak_err_errno(err, errno, "cannot mount '%s'", op->src);
        r = fstat(fd, &st) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return ak_err_errno(err, r, "cannot mount '%s'", op->src);
        owner_map(umap, sizeof(umap), (uint32_t)st.st_uid, s->id_base, s->id_count);
        owner_map(gmap, sizeof(gmap), (uint32_t)st.st_gid, s->id_base, s->id_count);
        if (umap[0] || gmap[0]) {
                char ident[64];
                (void)snprintf(ident, sizeof(ident), "%u %u %u\n", s->id_base, s->id_base,
                               s->id_count);
                userns = mount_userns(umap[0] ? umap : ident, gmap[0] ? gmap : ident, err);
                if (userns < 0)
                        return userns;
                plain.flags = MOP_IDMAP;
        }
        r = prepare_idmapped(&plain, userns, err);
        if (userns >= 0)
                close(userns);
        return r;
}

/* The sandbox's disk (rootful): a detached tmpfs of size bytes whose root belongs to the
 * sandbox's root (uid), never anywhere in the host's tree; it disappears with the sandbox's last
 * mount of it. Its pages are charged to the memory cgroup of whoever writes them: the sandbox. */
static int make_disk(uint64_t size, uint32_t uid, struct ak_err *err)
{
        char opt[32], id[16];
        int fs, mnt = -1, r = 0;

        fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                return ak_err_errno(err, errno, "tmpfs");
        (void)snprintf(opt, sizeof(opt), "%llu", (unsigned long long)size);
        (void)snprintf(id, sizeof(id), "%u", uid);
        if (fsconfig(fs, FSCONFIG_SET_STRING, "size", opt, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "uid", id, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "gid", id, 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
            (mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
                r = ak_err_errno(err, errno, "the sandbox's disk (tmpfs)");
        close(fs);
        return r < 0 ? r : mnt;
}

/* upper/ (owned by uid) and work/ on the disk, as O_PATH fds. */
static int disk_upper(int disk, uint32_t uid, int *ret_upper, int *ret_work, struct ak_err *err)
{
        if (mkdirat(disk, "upper", 0755) < 0 || fchownat(disk, "upper", uid, uid, 0) < 0 ||
            mkdirat(disk, "work", 0700) < 0 ||
            (*ret_upper = openat(disk, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            (*ret_work = openat(disk, "work", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
                return ak_err_errno(err, errno, "upper layer on the sandbox's disk");
        return 0;
}

/* A detached overlayfs for MOP_OVERLAY: each lower layer an idmapped, read-only detached mount
 * handed to overlayfs by fd (Linux 6.8+: no path to the idmapped layers exists anywhere), the
 * upper and work directories on the sandbox's disk. Files of the layers (owned by 0..65535
 * in the store) appear with the sandbox's ids; copy-ups land in upper with those ids. */
static int prepare_overlay(const struct mount_op *op, int userns_fd, uint32_t id_base, int disk,
                           struct ak_err *err)
{
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            .userns_fd = (uint64_t)userns_fd,
        };
        char path[PATH_MAX];
        const char *p = op->src;
        /* The detached layers must live until the overlay is created: closing one dissolves it. */
        int layer_fds[OVERLAY_MAX_LOWER + 1];
        size_t n_fds = 0;
        int fs, mnt = -1, r = 0;

        fs = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return ak_err_errno(err, errno, "overlayfs is not available");
        for (size_t n = 0; *p && r >= 0; n++) {
                const char *e = strchr(p, ':');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                int fd;
                if (n >= OVERLAY_MAX_LOWER || len >= sizeof(path)) {
                        r = ak_err_set(err, E2BIG, "too many image layers");
                        break;
                }
                memcpy(path, p, len);
                path[len] = '\0';
                p = e ? e + 1 : p + len;
                fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (fd < 0) {
                        r = ak_err_errno(err, errno, "image layer '%s'", path);
                        break;
                }
                if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                        r = ak_err_errno(err, errno, "cannot idmap image layer '%s'", path);
                else if (fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, fd) < 0)
                        r = ak_err_errno(err, errno,
                                         "this kernel cannot stack idmapped layers with overlayfs "
                                         "(needs Linux 6.13 or later)");
                layer_fds[n_fds++] = fd;
        }
        if (r >= 0 && disk < 0)
                r = ak_err_set(err, EINVAL, "an image root needs the sandbox's disk");
        if (r >= 0) {
                int upper = -1, work = -1;
                r = disk_upper(disk, id_base, &upper, &work, err);
                if (r >= 0 && (fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, upper) < 0 ||
                               fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, work) < 0))
                        r = ak_err_errno(err, errno, "overlay upper layer");
                if (upper >= 0)
                        close(upper);
                if (work >= 0)
                        close(work);
        }
        if (r >= 0 && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                r = ak_err_errno(err, errno, "mount overlayfs");
        if (r >= 0) {
                mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
                if (mnt < 0)
                        r = ak_err_errno(err, errno, "mount overlayfs");
        }
        close(fs);
        for (size_t i = 0; i < n_fds; i++)
                close(layer_fds[i]);
        return r < 0 ? r : mnt;
}

bool runtime_image_roots_supported(char *why, size_t len)
{
        int fs = fsopen("overlay", FSOPEN_CLOEXEC), dir, r;

        if (fs < 0) {
                (void)snprintf(why, len, "overlayfs is not available: %s", strerror(errno));
                return false;
        }
        dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        r = dir >= 0 ? fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, dir) : -1;
        if (r < 0)
                (void)snprintf(why, len,
                               "this kernel cannot give overlayfs its layers by file descriptor "
                               "(needs Linux 6.13 or later)");
        if (dir >= 0)
                close(dir);
        close(fs);
        return r == 0;
}

/* Releases the child: the go byte, with the prepared mounts. */
static int send_go(int sock, const int *fds, size_t n)
{
        static const char go = 'G';

        _Static_assert(RUNTIME_IDMAP_MAX <= FD_PASS_MAX, "prepared mounts fit one message");
        return fd_send(sock, &go, 1, fds, n) < 0 ? -EIO : 0;
}

int prepare_release_child(pid_t pid, const struct runtime_spec *s, int sync_fd, struct ak_err *err)
{
        int fds[RUNTIME_IDMAP_MAX];
        size_t n = 0;
        int userns = -1, vol_userns = -1, r = 0, disk = -1;

        /* the disk first: the child attaches it before any planned mount */
        if (!s->rootless && s->disk_bytes) {
                r = disk = make_disk(s->disk_bytes, s->id_base, err);
                if (r >= 0)
                        fds[n++] = disk;
        }
        for (size_t i = 0; i < s->plan->n && r >= 0; i++) {
                const struct mount_op *op = &s->plan->ops[i];
                if (!(op->flags & MOP_PREPARED))
                        continue;
                if (n == RUNTIME_IDMAP_MAX) {
                        r = ak_err_set(err, E2BIG, "more than %d idmapped mounts",
                                       RUNTIME_IDMAP_MAX);
                        break;
                }
                if (userns < 0 && (op->flags & MOP_IDMAP)) {
                        char path[64];
                        (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
                        userns = open(path, O_RDONLY | O_CLOEXEC);
                        if (userns < 0) {
                                r = ak_err_errno(err, errno, "open %s", path);
                                break;
                        }
                }
                if (op->type == MOP_OVERLAY && (op->flags & MOP_IDMAP))
                        r = prepare_overlay(op, userns, s->id_base, disk, err);
                else if (op->flags & (MOP_OWNER | MOP_VOLUME))
                        r = prepare_owned(op, s, &vol_userns, err);
                else
                        r = prepare_idmapped(op, userns, err); /* a copy-fallback lower too */
                if (r >= 0)
                        fds[n++] = r;
        }
        if (r >= 0 && send_go(sync_fd, fds, n) < 0)
                r = ak_err_set(err, EIO, "sandbox process exited during setup");
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        if (userns >= 0)
                close(userns);
        if (vol_userns >= 0)
                close(vol_userns);
        return r < 0 ? r : 0;
}
