// SPDX-License-Identifier: Apache-2.0
/*
 * The native runtime's child: everything between clone() and the execve() of the sandbox's
 * agent, and nothing else.
 *
 * The parent prepares every path, string, filter and fd (mount-plan.c builds the plan, prepare.c
 * the mounts only it can make, spawn.c clones us and writes our id maps). The child then runs one
 * linear recipe: each step either succeeds or the child reports the step and errno over a
 * close-on-exec pipe and exits. The child shares the parent's memory until its execve (CLONE_VM:
 * see spawn.c), so it never allocates (no malloc, no stdio), takes no lock, keeps nothing global
 * and never returns. This file must stay small enough to audit in one sitting; anything that is
 * not namespace, mount, credential or filter setup belongs elsewhere.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net-capture.h"
#include "shared/caps.h"
#include "shared/fd-util.h"
#include "shared/mount-api.h"

#define NEWROOT "/newroot"
#define OLDROOT "/oldroot"
#define STATEDIR "/akstate"
#define CHILD_PATH_MAX 4096
#define DISK_SCRATCH "/disk"   /* the sandbox's disk, on the scratch root: reached only by binds */
#define LOWER_SCRATCH "/lower" /* MOP_OVERLAY|MOP_DETACHED: the lent lower directory */

#ifndef ST_VALID
#define ST_VALID 0x0020
#endif

static _noreturn_ void die(int errfd, const char *what, const char *arg, int err)
{
        struct child_report rep = {.err = err ? err : EIO};
        size_t n = strlen(what), m = arg ? strlen(arg) : 0;

        if (n > sizeof(rep.what) - 1)
                n = sizeof(rep.what) - 1;
        memcpy(rep.what, what, n);
        if (arg && n + 3 < sizeof(rep.what)) {
                rep.what[n++] = ' ';
                rep.what[n++] = '\'';
                if (m > sizeof(rep.what) - n - 2)
                        m = sizeof(rep.what) - n - 2;
                memcpy(rep.what + n, arg, m);
                n += m;
                rep.what[n++] = '\'';
        }
        rep.what[n] = '\0';
        (void)write_all(errfd, &rep, sizeof(rep));
        _exit(1);
}

/* out = a + b, refusing to truncate. */
static int pjoin(char *out, const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);

        if (la + lb + 1 > CHILD_PATH_MAX)
                return -ENAMETOOLONG;
        memcpy(out, a, la);
        memcpy(out + la, b, lb + 1);
        return 0;
}

static unsigned long locked_flags(int fd)
{
        struct statfs sf;
        unsigned long f = 0;

        if (fstatfs(fd, &sf) < 0 || !(sf.f_flags & ST_VALID))
                return 0;
        if (sf.f_flags & ST_NOSUID)
                f |= MS_NOSUID;
        if (sf.f_flags & ST_NODEV)
                f |= MS_NODEV;
        if (sf.f_flags & ST_NOEXEC)
                f |= MS_NOEXEC;
        if (sf.f_flags & ST_NOATIME)
                f |= MS_NOATIME;
        if (sf.f_flags & ST_NODIRATIME)
                f |= MS_NODIRATIME;
        if (sf.f_flags & ST_RELATIME)
                f |= MS_RELATIME;
        return f;
}

static uint64_t mount_attrs(unsigned long flags)
{
        return (flags & MS_RDONLY ? MOUNT_ATTR_RDONLY : 0) |
               (flags & MS_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
               (flags & MS_NODEV ? MOUNT_ATTR_NODEV : 0) |
               (flags & MS_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
}

/* Adds flags (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC) to the mount at path, and with
 * recursive to the mounts below it. mount_setattr() changes only those (one call, no statfs);
 * before Linux 5.12 a bind remount must repeat the flags the kernel locks in a user namespace. */
static int mount_add_flags(const char *path, unsigned long flags, bool recursive)
{
        struct mount_attr attr = {.attr_set = mount_attrs(flags)};
        int fd, r;

        if (mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof(attr)) == 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        fd = open(path, O_PATH | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        flags |= MS_REMOUNT | MS_BIND | locked_flags(fd);
        close(fd);
        r = mount(NULL, path, NULL, flags, NULL);
        return r < 0 ? -errno : 0;
}

/* Makes the mount at path read-only (and extra). */
static int remount_ro(const char *path, unsigned long extra)
{
        return mount_add_flags(path, MS_RDONLY | extra, false);
}

/* What one child works with. It lives on the child's own stack: children of concurrent starts
 * (API server threads) share their parent's memory, so nothing of a child may be global. */
struct child_ctx {
        int errfd;
        int root; /* O_PATH: the sandbox root being built (NEWROOT), what every dst is below */
        int prepared[RUNTIME_IDMAP_MAX]; /* detached mounts from the parent, in plan order */
        size_t n_prepared, next_prepared;
        /* the last directory in_root_parent() resolved (consecutive ops share one: /dev/...,
         * /proc/...), until a mount covers it (parent_moved) */
        int parent_fd;
        char parent_path[CHILD_PATH_MAX];
        int mask; /* O_PATH: the root tmpfs's /proc directory, what every mask shows (mask_dir) */
};

/*
 * Paths inside the sandbox root. An image is untrusted, and so are a workspace's and a volume's
 * contents: any directory on the way to a mount point or a file the setup writes may be a
 * symlink (`etc -> /oldroot/etc`) or the path may hold "..". Every dst is therefore resolved by
 * the kernel below cx->root as if that were "/" (openat2 RESOLVE_IN_ROOT: symlinks and ".." never
 * leave it; magic links are refused), and the setup works on the resulting file descriptors,
 * never on a path string that the host's tree could resolve.
 */
static int in_root(struct child_ctx *cx, const char *path, int flags)
{
        struct open_how how = {
            .flags = (uint64_t)(flags | O_CLOEXEC),
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, cx->root, path, &how, sizeof(how));

        return fd < 0 ? -errno : (int)fd;
}

/* Whether in_root()'s answer means "nothing there to mask": absent, or behind a directory the
 * sandbox's ids cannot search either (a host directory of a user it does not map). */
static bool unreachable(int r)
{
        return r == -ENOENT || r == -EACCES;
}

/* The directory holding dst (O_PATH, resolved in the root) and dst's last component. */
static int in_root_parent(struct child_ctx *cx, const char *dst, const char **ret_name)
{
        char parent[CHILD_PATH_MAX];
        const char *slash = strrchr(dst, '/');
        size_t n;
        int fd;

        if (!slash || dst[0] != '/')
                die(cx->errfd, "not an absolute path", dst, EINVAL);
        n = slash == dst ? 1 : (size_t)(slash - dst);
        if (n >= sizeof(parent))
                die(cx->errfd, "path too long", dst, ENAMETOOLONG);
        memcpy(parent, dst, n);
        parent[n] = '\0';
        *ret_name = slash + 1;
        if (!**ret_name || streq(*ret_name, ".") || streq(*ret_name, ".."))
                die(cx->errfd, "not a usable path", dst, EINVAL);
        if (n == 1) /* "/": the root itself, which nothing can have replaced */
                return cx->root;
        if (cx->parent_fd >= 0 && streq(parent, cx->parent_path))
                return cx->parent_fd;
        fd = in_root(cx, parent, O_PATH | O_DIRECTORY);
        if (fd < 0)
                die(cx->errfd, "directory of", dst, -fd);
        if (cx->parent_fd >= 0)
                close(cx->parent_fd);
        cx->parent_fd = fd;
        memcpy(cx->parent_path, parent, n + 1);
        return fd;
}

/* A mount now covers dst: the remembered parent directory is stale if dst is it or lies above
 * it (its fd names the directory underneath). */
static void parent_moved(struct child_ctx *cx, const char *dst)
{
        size_t n = strlen(dst);

        if (cx->parent_fd < 0)
                return;
        if (streq(dst, "/") || (strncmp(cx->parent_path, dst, n) == 0 &&
                                (cx->parent_path[n] == '\0' || cx->parent_path[n] == '/'))) {
                close(cx->parent_fd);
                cx->parent_fd = -1;
        }
}

/* Creates dst, which is not there, as a new directory (dir) or empty file to mount on; its
 * directory resolved in the root. Returns an fd of it (O_PATH for a directory). */
static int new_mount_point(struct child_ctx *cx, const char *dst, bool dir)
{
        const char *name;
        int parent = in_root_parent(cx, dst, &name), fd;

        if (dir) {
                fd = mkdirat(parent, name, 0755) < 0
                         ? -errno
                         : openat(parent, name, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        } else {
                /* the new file's own fd is what gets mounted on */
                fd = openat(parent, name,
                            O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
        }
        if (fd < 0 && errno == EEXIST) /* there, but not reachable in the root: a symlink out */
                die(cx->errfd, "mount point is a symlink that leads outside the sandbox", dst,
                    ELOOP);
        if (fd < 0)
                die(cx->errfd, "create mount point", dst, errno);
        return fd;
}

/* A mount point for dst, resolved in the root: what is there (followed in the root if a
 * symlink), or a new directory (dir) or empty file. Returns an fd of it. */
static int mount_point(struct child_ctx *cx, const char *dst, bool dir)
{
        int fd = in_root(cx, dst, O_PATH);

        if (fd == -ENOENT)
                return new_mount_point(cx, dst, dir);
        if (fd < 0)
                die(cx->errfd, "mount point", dst, -fd);
        return fd;
}

/* The object an fd names as a path mount(2) can take: "/oldroot/proc/self/fd/N", the host's
 * procfs, where our pid is our own. */
static void fd_path(char out[64], int fd)
{
        static const char prefix[] = OLDROOT "/proc/self/fd/";
        char digits[16];
        size_t n = 0;

        do
                digits[n++] = (char)('0' + fd % 10);
        while ((fd /= 10) > 0);
        memcpy(out, prefix, sizeof(prefix) - 1);
        for (size_t i = 0; i < n; i++)
                out[sizeof(prefix) - 1 + i] = digits[n - 1 - i];
        out[sizeof(prefix) - 1 + n] = '\0';
}

/* mount(2) onto the object target (an O_PATH fd from mount_point or in_root): a directory as the
 * working directory (no lookup at all), anything else (and a directory the child may not enter)
 * through its fd's magic link. Never by a
 * path the sandbox's tree could redirect. source NULL: target itself (a bind onto itself). */
static void mount_on(struct child_ctx *cx, int target, const char *dst, const char *source,
                     const char *type, unsigned long flags, const char *data)
{
        char self[64];
        struct stat st;

        parent_moved(cx, dst);
        if (fstat(target, &st) < 0)
                die(cx->errfd, "mount point", dst, errno);
        if (S_ISDIR(st.st_mode)) {
                if (fchdir(target) == 0) {
                        if (mount(source ? source : ".", ".", type, flags, data) < 0)
                                die(cx->errfd, "mount", dst, errno);
                        return;
                }
                /* a directory the sandbox's ids may not enter (a mask over a private directory of
                 * the host's): mounted on through its fd, which needs no search permission */
                if (errno != EACCES)
                        die(cx->errfd, "enter mount point", dst, errno);
        }
        fd_path(self, target);
        if (mount(source ? source : self, self, type, flags, data) < 0)
                die(cx->errfd, "mount", dst, errno);
}

/* Adds flags to the mount now at dst (and below it when recursive). */
static void mount_flags_at(struct child_ctx *cx, const char *dst, unsigned long flags,
                           bool recursive)
{
        struct mount_attr attr = {.attr_set = mount_attrs(flags)};
        char self[64];
        int top = in_root(cx, dst, O_PATH);

        if (top < 0)
                die(cx->errfd, "mount flags", dst, -top);
        if (mount_setattr(top, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr,
                          sizeof(attr)) < 0) {
                /* before Linux 5.12: a bind remount repeating the flags the kernel locks */
                if (errno != ENOSYS)
                        die(cx->errfd, "mount flags", dst, errno);
                fd_path(self, top);
                if (mount(NULL, self, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags(top),
                          NULL) < 0)
                        die(cx->errfd, "remount", dst, errno);
        }
        close(top);
}

/* Mounts a new filesystem (tmpfs, proc, devpts) on the directory at target. */
static void mount_fs_at(struct child_ctx *cx, int target, const char *dst, const char *type,
                        unsigned long flags, const char *data)
{
        mount_on(cx, target, dst, type, type, flags, data);
}

/* Attaches the detached mount tree at target; closes tree. */
static void attach_at(struct child_ctx *cx, int tree, int target, const char *dst)
{
        parent_moved(cx, dst);
        if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                die(cx->errfd, "attach mount", dst, errno);
        close(tree);
}

/* Binds the host path src (below OLDROOT) at dst with flags. A missing src is skipped when the
 * op is optional. The bind is a detached copy of src (open_tree) that gets its flags before it
 * is attached at dst: dst is resolved once, and nothing is ever mounted there without them. */
static void bind_at(struct child_ctx *cx, const struct mount_op *op, const char *src,
                    unsigned long flags, bool recursive)
{
        struct mount_attr attr = {.attr_set = mount_attrs(flags)};
        unsigned rec = recursive ? AT_RECURSIVE : 0;
        bool later = false; /* flags after attaching: no mount_setattr (before Linux 5.12) */
        struct stat st;
        int tree, target;

        tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
        if (tree < 0) {
                if (op->flags & MOP_OPTIONAL)
                        return;
                die(cx->errfd, "bind source", op->src, errno);
        }
        if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &attr, sizeof(attr)) < 0) {
                if (errno != ENOSYS)
                        die(cx->errfd, "mount flags", op->dst, errno);
                later = true;
        }
        target = in_root(cx, op->dst, O_PATH);
        if (target == -ENOENT) {
                if (fstat(tree, &st) < 0)
                        die(cx->errfd, "bind source", op->src, errno);
                target = new_mount_point(cx, op->dst, S_ISDIR(st.st_mode));
        } else if (target < 0) {
                die(cx->errfd, "mount point", op->dst, -target);
        }
        attach_at(cx, tree, target, op->dst);
        close(target);
        if (later)
                mount_flags_at(cx, op->dst, flags, recursive);
}

/* Covers the directory target (at dst) with an empty read-only one: a copy (open_tree) of the
 * root tmpfs's own /proc directory, cx->mask, which the sandbox's /proc (or an image's root)
 * covers and nothing ever writes; read-only, nosuid, nodev, noexec before it is attached. Not a
 * tmpfs per mask: each superblock registers a shrinker that every memory cgroup of the host keeps
 * room for (mm/shrinker.c: ~1 KiB per cgroup per 64 superblocks alive at the peak, for good),
 * and the copy shows nothing new: it is the sandbox's own root filesystem. Before Linux 5.12 (no
 * mount_setattr for a detached copy) a tmpfs as before. */
static void mask_dir(struct child_ctx *cx, int target, const char *dst)
{
        struct mount_attr attr = {.attr_set =
                                      mount_attrs(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)};
        int tree =
            (int)open_tree(cx->mask, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);

        if (tree < 0)
                die(cx->errfd, "mask", dst, errno);
        if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
                if (errno != ENOSYS)
                        die(cx->errfd, "mask", dst, errno);
                close(tree);
                mount_fs_at(cx, target, dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                            "size=0,mode=0555");
                return;
        }
        attach_at(cx, tree, target, dst);
}

/* Attaches the detached mount fd at dst (closing fd). A mount at "/" becomes the new root,
 * which cx->root then names. */
static void attach_mount(struct child_ctx *cx, int fd, const char *dst)
{
        struct stat st;
        int target;

        if (fstat(fd, &st) < 0)
                die(cx->errfd, "stat prepared mount", dst, errno);
        target = mount_point(cx, dst, S_ISDIR(st.st_mode));
        attach_at(cx, fd, target, dst);
        close(target);
        if (streq(dst, "/")) {
                close(cx->root);
                cx->root = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (cx->root < 0)
                        die(cx->errfd, "open the sandbox root", NULL, errno);
        }
}

/* Places the next mount the parent prepared (MOP_PREPARED, rootful MOP_OVERLAY) at op->dst. */
static void attach_prepared(struct child_ctx *cx, const struct mount_op *op)
{
        if (cx->next_prepared >= cx->n_prepared)
                die(cx->errfd, "prepared mount missing", op->dst, EINVAL);
        attach_mount(cx, cx->prepared[cx->next_prepared++], op->dst);
}

/* Attaches the next mount the parent prepared at path, a directory on the scratch root (not
 * in the sandbox's tree: the sandbox reaches it only through binds). */
static void attach_scratch(struct child_ctx *cx, const char *path, const char *what)
{
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                die(cx->errfd, "mkdir", path, errno);
        if (cx->next_prepared >= cx->n_prepared)
                die(cx->errfd, what, NULL, EINVAL);
        if (move_mount(cx->prepared[cx->next_prepared], "", AT_FDCWD, path,
                       MOVE_MOUNT_F_EMPTY_PATH) < 0)
                die(cx->errfd, what, NULL, errno);
        close(cx->prepared[cx->next_prepared++]);
}

/* The sandbox's disk at DISK_SCRATCH: rootful, the tmpfs the parent made (the first prepared
 * mount, its root owned by the sandbox's root); rootless, a tmpfs of our own. Runs in the child:
 * no allocation. */
static void mount_disk(struct child_ctx *cx, const struct runtime_spec *s)
{
        int errfd = cx->errfd;
        char opts[64];

        if (!s->rootless) {
                attach_scratch(cx, DISK_SCRATCH, "attach the sandbox's disk");
                return;
        }
        if (mkdir(DISK_SCRATCH, 0755) < 0)
                die(errfd, "mkdir", DISK_SCRATCH, errno);
        (void)snprintf(opts, sizeof(opts), "mode=0755,size=%llu",
                       (unsigned long long)s->disk_bytes);
        if (mount("tmpfs", DISK_SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                die(errfd, "mount the sandbox's disk", NULL, errno);
}

/* MOP_OVERLAY mounted by the child, in its own user namespace, reading the user.overlay.* xattrs
 * ("userxattr") that an unprivileged unpacker could write: rootless over the store's layers, or
 * (MOP_DETACHED) over the one directory the parent lent. The upper layer is on the sandbox's disk.
 * Runs in the child: no allocation. */
static void mount_overlay_userns(struct child_ctx *cx, const struct mount_op *op)
{
        char path[CHILD_PATH_MAX], layer[CHILD_PATH_MAX];
        const char *p = op->src;
        int errfd = cx->errfd;
        int fs, mnt;

        fs = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                die(errfd, "overlayfs", NULL, errno);
        (void)fsconfig(fs, FSCONFIG_SET_STRING, "source", "none", 0);
        if (op->flags & MOP_DETACHED) {
                /* one layer: "lowerdir" works on every kernel, "lowerdir+" only from 6.8 */
                attach_scratch(cx, LOWER_SCRATCH, "attach the image root's copy");
                if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", LOWER_SCRATCH, 0) < 0)
                        die(errfd, "image root", op->src, errno);
                p = "";
        }
        while (*p) {
                const char *e = strchr(p, ':');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                if (len >= sizeof(layer))
                        die(errfd, "image layer path too long", NULL, ENAMETOOLONG);
                memcpy(layer, p, len);
                layer[len] = '\0';
                p = e ? e + 1 : p + len;
                if (pjoin(path, OLDROOT, layer) < 0)
                        die(errfd, "image layer path too long", layer, ENAMETOOLONG);
                if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", path, 0) < 0)
                        die(errfd, "image layer (overlayfs needs Linux 6.8+)", layer, errno);
        }
        if ((mkdir(DISK_SCRATCH "/upper", 0755) < 0 && errno != EEXIST) ||
            (mkdir(DISK_SCRATCH "/work", 0700) < 0 && errno != EEXIST))
                die(errfd, "upper layer on the sandbox's disk", NULL, errno);
        if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", DISK_SCRATCH "/upper", 0) < 0)
                die(errfd, "overlay upper dir", NULL, errno);
        if (fsconfig(fs, FSCONFIG_SET_STRING, "workdir", DISK_SCRATCH "/work", 0) < 0)
                die(errfd, "overlay work dir", NULL, errno);
        if (fsconfig(fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                die(errfd, "mount overlayfs", NULL, errno);
        mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (mnt < 0)
                die(errfd, "mount overlayfs", NULL, errno);
        close(fs);
        attach_mount(cx, mnt, op->dst);
}

static void run_op(struct child_ctx *cx, const struct mount_op *op)
{
        int errfd = cx->errfd;
        char src[CHILD_PATH_MAX];
        const unsigned long ms = MS_NOSUID | MS_NODEV;
        const char *name;
        int r = 0, fd, parent;

        src[0] = '\0';
        if (op->src &&
            (op->type == MOP_BIND || op->type == MOP_BIND_RO || op->type == MOP_BIND_DEV ||
             op->type == MOP_COPY) &&
            pjoin(src, OLDROOT, op->src) < 0)
                die(errfd, "path too long", op->src, ENAMETOOLONG);

        switch (op->type) {
        case MOP_MKDIR:
                parent = in_root_parent(cx, op->dst, &name);
                if (mkdirat(parent, name, op->mode) < 0) {
                        struct stat st;
                        if (errno != EEXIST)
                                die(errfd, "mkdir", op->dst, errno);
                        if (op->flags & MOP_OPTIONAL)
                                return;
                        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                            !S_ISDIR(st.st_mode))
                                die(errfd, "mkdir (not a directory)", op->dst, ENOTDIR);
                }
                /* a directory now, ours or the image's: the mode is exact (no umask) */
                if (fchmodat(parent, name, op->mode, 0) < 0)
                        die(errfd, "chmod", op->dst, errno);
                return;
        case MOP_TMPFS:
                fd = mount_point(cx, op->dst, true);
                mount_fs_at(cx, fd, op->dst, "tmpfs", ms | (op->flags & MOP_NOEXEC ? MS_NOEXEC : 0),
                            op->data);
                close(fd);
                return;
        case MOP_BIND:
        case MOP_BIND_RO:
        case MOP_BIND_DEV:
                if (op->flags & MOP_PREPARED)
                        return attach_prepared(cx, op);
                if (op->type == MOP_BIND_RO)
                        bind_at(cx, op, src, MS_RDONLY | MS_NOSUID | MS_NODEV, true);
                else if (op->type == MOP_BIND_DEV)
                        bind_at(cx, op, src, MS_NOSUID | MS_NOEXEC, false);
                else
                        bind_at(cx, op, src, MS_NOSUID | MS_NODEV, true);
                return;
        case MOP_PROC:
                fd = mount_point(cx, op->dst, true);
                mount_fs_at(cx, fd, op->dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
                close(fd);
                return;
        case MOP_DEVPTS:
                fd = mount_point(cx, op->dst, true);
                mount_fs_at(cx, fd, op->dst, "devpts", MS_NOSUID | MS_NOEXEC,
                            "newinstance,ptmxmode=0666,mode=620");
                close(fd);
                return;
        case MOP_SYMLINK:
                parent = in_root_parent(cx, op->dst, &name);
                if (symlinkat(op->src, parent, name) < 0 && errno != EEXIST)
                        die(errfd, "symlink", op->dst, errno);
                return;
        case MOP_FILE:
                parent = in_root_parent(cx, op->dst, &name);
                if ((op->flags & MOP_REPLACE) && unlinkat(parent, name, 0) < 0 && errno != ENOENT &&
                    errno != EISDIR)
                        die(errfd, "replace", op->dst, errno);
                fd = openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                            op->mode);
                if (fd < 0)
                        die(errfd, "create", op->dst, errno);
                r = write_all(fd, op->src, op->len);
                close(fd);
                if (r < 0)
                        die(errfd, "write", op->dst, -r);
                return;
        case MOP_COPY: {
                /* the kernel copies (sendfile): no buffer, nothing allocated */
                int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), out;
                if (in < 0) {
                        if (op->flags & MOP_OPTIONAL)
                                return;
                        die(errfd, "open", op->src, errno);
                }
                parent = in_root_parent(cx, op->dst, &name);
                out = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                             op->mode);
                if (out < 0)
                        die(errfd, "create", op->dst, errno);
                for (size_t done = 0;;) {
                        ssize_t n = sendfile(out, in, NULL, 1 << 20);
                        if (n == 0)
                                break;
                        if (n < 0 && errno != EINTR)
                                die(errfd, "copy", op->src, errno);
                        /* all that was planned (and maybe more): a file that grew since is
                         * copied to the end, one that has not needs no second call */
                        done += n > 0 ? (size_t)n : 0;
                        if (op->len && done == op->len && n > 0 && (size_t)n < (1u << 20))
                                break;
                }
                close(in);
                close(out);
                return;
        }
        case MOP_REMOUNT_RO:
                fd = in_root(cx, op->dst, O_PATH);
                if (unreachable(fd))
                        return; /* nothing to protect on this kernel */
                if (fd < 0)
                        die(errfd, "remount read-only", op->dst, -fd);
                mount_on(cx, fd, op->dst, NULL, NULL, MS_BIND | MS_REC, NULL);
                close(fd);
                mount_flags_at(cx, op->dst, MS_RDONLY | MS_NOSUID | MS_NODEV, false);
                return;
        case MOP_MASK_FILE:
                fd = in_root(cx, op->dst, O_PATH);
                if (unreachable(fd))
                        return;
                if (fd < 0)
                        die(errfd, "mask", op->dst, -fd);
                mount_on(cx, fd, op->dst, OLDROOT "/dev/null", NULL, MS_BIND, NULL);
                close(fd);
                return;
        case MOP_MASK_DIR:
                fd = in_root(cx, op->dst, O_PATH | O_DIRECTORY);
                if (unreachable(fd) || fd == -ENOTDIR)
                        return;
                if (fd < 0)
                        die(errfd, "mask", op->dst, -fd);
                mask_dir(cx, fd, op->dst);
                close(fd);
                return;
        case MOP_OVERLAY:
                if (op->flags & MOP_IDMAP)
                        attach_prepared(cx, op);
                else
                        mount_overlay_userns(cx, op);
                return;
        case MOP_DISK_DIR:
                /* a directory of the sandbox's disk: every one shares its size */
                if (pjoin(src, DISK_SCRATCH, op->src) < 0)
                        die(errfd, "path too long", op->src, ENAMETOOLONG);
                if ((mkdir(src, op->mode) < 0 && errno != EEXIST) || chmod(src, op->mode) < 0)
                        die(errfd, "directory on the sandbox's disk", op->src, errno);
                /* the bind keeps the disk's nosuid and nodev */
                fd = mount_point(cx, op->dst, true);
                mount_on(cx, fd, op->dst, src, NULL, MS_BIND, NULL);
                close(fd);
                if (op->flags & MOP_NOEXEC)
                        mount_flags_at(cx, op->dst, MS_NOEXEC | MS_NOSUID | MS_NODEV, false);
                return;
        default:
                die(errfd, "unknown mount op", op->dst, EINVAL);
        }
}

/* Proxy mode: the capture (route, nf_tables) and the listeners, which go to the parent over the
 * sync socket as one byte 'L' carrying them (SCM_RIGHTS); it reads them once we have executed
 * the agent. Ours are closed with everything else before the agent starts. */
static void capture(const struct runtime_spec *s, int sync_fd, int errfd)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * NET_CAPTURE_FDS)];
                struct cmsghdr align;
        } cm;
        char tag = 'L';
        struct iovec iov = {&tag, 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm)};
        struct cmsghdr *c;
        const char *what = "proxy mode";
        int fds[NET_CAPTURE_FDS], r;
        ssize_t n;

        (void)s;
        r = net_capture_install(&what);
        if (r < 0)
                die(errfd, what, NULL, -r);
        r = net_capture_listeners(fds, &what);
        if (r < 0)
                die(errfd, what, NULL, -r);
        memset(&cm, 0, sizeof(cm));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(c), fds, sizeof(fds));
        do
                n = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                die(errfd, "hand the proxy's listeners to the starter", NULL, n < 0 ? errno : EIO);
        for (int i = 0; i < NET_CAPTURE_FDS; i++)
                close(fds[i]);
}

/* Moves fd to exactly `target`, which must not be used by anything we still need. */
static int place_fd(int fd, int target)
{
        if (fd == target)
                return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0; /* clear CLOEXEC */
        return dup2(fd, target) < 0 ? -errno : 0;
}

void runtime_child_main(const struct runtime_spec *s, int sync_fd, int errfd, int join_fd)
{
        struct child_ctx cx = {.errfd = errfd, .root = -1, .parent_fd = -1, .mask = -1};
        char go = 0;
        int state_fd, devnull, r;
        int hi_chan, hi_sync, hi_state, hi_exe, hi_hold[RUNTIME_HOLD_MAX];
        const int exe = 6 + (int)s->n_hold; /* the agent binary, after the held fds */

        /* 1. Wait until the parent has written our id maps; the go byte carries the mounts it
         * prepared for us. (Our cgroups are joined meanwhile: see 8b.) */
        {
                union {
                        char buf[CMSG_SPACE(sizeof(int) * RUNTIME_IDMAP_MAX)];
                        struct cmsghdr align;
                } cm;
                struct iovec iov = {&go, 1};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = cm.buf,
                                    .msg_controllen = sizeof(cm.buf)};
                ssize_t n;
                do
                        n = recvmsg(sync_fd, &mh, MSG_CMSG_CLOEXEC);
                while (n < 0 && errno == EINTR);
                if (n != 1 || go != 'G' || (mh.msg_flags & MSG_CTRUNC))
                        _exit(1);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                cx.n_prepared = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                memcpy(cx.prepared, CMSG_DATA(c), cx.n_prepared * sizeof(int));
                        }
        }

        /* 2. Become root of the new user namespace (an unprivileged id on the host). Direct
         * system calls: libc's wrappers would try to change the ids of every thread of a
         * multi-threaded parent (the API server), whose memory and thread list we share. */
        if (!s->rootless && syscall(SYS_setgroups, 0, NULL) < 0)
                die(errfd, "setgroups", NULL, errno);
        if (syscall(SYS_setresgid, 0, 0, 0) < 0)
                die(errfd, "setresgid", NULL, errno);
        if (syscall(SYS_setresuid, 0, 0, 0) < 0)
                die(errfd, "setresuid", NULL, errno);

        /* 3. A session of our own. */
        (void)setsid();

        /* 4. A private mount tree: a scratch tmpfs becomes the root, the host moves under it. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                die(errfd, "make mounts private", NULL, errno);
        if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0)
                die(errfd, "mount scratch tmpfs", NULL, errno);
        if (mkdir("/tmp" NEWROOT, 0755) < 0 || mkdir("/tmp" OLDROOT, 0755) < 0 ||
            mkdir("/tmp" STATEDIR, 0700) < 0)
                die(errfd, "mkdir scratch", NULL, errno);
        if (syscall(SYS_pivot_root, "/tmp", "/tmp" OLDROOT) < 0)
                die(errfd, "pivot_root to scratch", NULL, errno);
        if (chdir("/") < 0)
                die(errfd, "chdir", "/", errno);

        /* 5. The sandbox root: a small tmpfs holding mount points, then the planned mounts. */
        if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
                  "mode=0755,size=16m,nr_inodes=16384") < 0)
                die(errfd, "mount root tmpfs", NULL, errno);
        cx.root = open(NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cx.root < 0)
                die(errfd, "open the sandbox root", NULL, errno);
        /* the masks' empty directory: the root tmpfs's /proc, covered by the sandbox's /proc
         * (the plan always mounts one) or by an image's root, and read-only to everything after
         * the setup */
        if (mkdirat(cx.root, "proc", 0555) < 0 || fchmodat(cx.root, "proc", 0555, 0) < 0)
                die(errfd, "mkdir", "/proc", errno);
        cx.mask = openat(cx.root, "proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cx.mask < 0)
                die(errfd, "open", "/proc", errno);
        if (s->disk_bytes)
                mount_disk(&cx, s);
        for (size_t i = 0; i < s->plan->n; i++)
                run_op(&cx, &s->plan->ops[i]);
        close(cx.root);
        if (cx.parent_fd >= 0)
                close(cx.parent_fd);
        if (cx.mask >= 0)
                close(cx.mask);

        /* 6. The agent's private state: a tmpfs it keeps by fd, attached nowhere in the tree. */
        if (mount("tmpfs", STATEDIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  s->state_tmpfs_opts) < 0)
                die(errfd, "mount state tmpfs", NULL, errno);
        state_fd = open(STATEDIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (state_fd < 0)
                die(errfd, "open state tmpfs", NULL, errno);
        if (umount2(STATEDIR, MNT_DETACH) < 0)
                die(errfd, "detach state tmpfs", NULL, errno);

        /* 7. Enter the sandbox root and drop the host tree entirely. */
        if (chdir(NEWROOT) < 0)
                die(errfd, "chdir", NEWROOT, errno);
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                die(errfd, "pivot_root to sandbox root", NULL, errno);
        if (umount2(".", MNT_DETACH) < 0)
                die(errfd, "detach host root", NULL, errno);
        if (chdir("/") < 0)
                die(errfd, "chdir", "/", errno);
        /* An image's root stays writable (its private upper layer) unless the profile says
         * otherwise; the `host` image's root is a scaffold of mount points, always read-only. */
        if (!(s->plan->n && streq(s->plan->ops[0].dst, "/")) || s->read_only_root) {
                r = remount_ro("/", MS_NOSUID | MS_NODEV);
                if (r < 0)
                        die(errfd, "remount root read-only", NULL, -r);
        }

        /* 8. Identity and network: our hostname, loopback up, nothing else. */
        if (sethostname(s->hostname, strlen(s->hostname)) < 0)
                die(errfd, "sethostname", s->hostname, errno);
        r = net_loopback_up();
        if (r < 0)
                die(errfd, "bring up loopback", NULL, -r);
        if (s->net_capture)
                capture(s, sync_fd, errfd);
        if (chdir(s->workdir) < 0 && chdir("/") < 0)
                die(errfd, "chdir", s->workdir, errno);

        /* 8b. In our cgroups (the parent's thread joined us while we built the above: spawn.c's
         * struct joiner), then a cgroup namespace rooted there. Nothing of the sandbox's has run
         * yet; from here on all of it runs inside. */
        if (join_fd >= 0) {
                char verdict = 0;
                ssize_t n;
                do
                        n = read(join_fd, &verdict, 1);
                while (n < 0 && errno == EINTR);
                if (n != 1 || verdict != 'J')
                        die(errfd, "join cgroups", NULL, n < 0 ? errno : EIO);
                close(join_fd);
        }
        if (unshare(CLONE_NEWCGROUP) < 0)
                die(errfd, "unshare cgroup namespace", NULL, errno);

        /* 9. File descriptors: stdio to /dev/null, then channel 3, sync 4, state 5, the held ones
         * from 6, nothing else.
         * Park everything high first so the final dup2s cannot clobber each other. */
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                die(errfd, "open", "/dev/null", errno);
        r = fcntl(errfd, F_DUPFD_CLOEXEC, 100);
        if (r < 0)
                die(errfd, "dup", NULL, errno);
        errfd = r;
        hi_chan = fcntl(s->chan_fd, F_DUPFD_CLOEXEC, 100);
        hi_sync = fcntl(sync_fd, F_DUPFD_CLOEXEC, 100);
        hi_state = fcntl(state_fd, F_DUPFD_CLOEXEC, 100);
        hi_exe = fcntl(s->agent_exe_fd, F_DUPFD_CLOEXEC, 100);
        if (hi_chan < 0 || hi_sync < 0 || hi_state < 0 || hi_exe < 0)
                die(errfd, "dup", NULL, errno);
        for (size_t i = 0; i < s->n_hold; i++)
                if ((hi_hold[i] = fcntl(s->hold_fds[i], F_DUPFD_CLOEXEC, 100)) < 0)
                        die(errfd, "dup", NULL, errno);
        if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0)
                die(errfd, "dup2 stdio", NULL, errno);
        if (place_fd(hi_chan, 3) < 0 || place_fd(hi_sync, 4) < 0 || place_fd(hi_state, 5) < 0)
                die(errfd, "place fds", NULL, errno);
        for (size_t i = 0; i < s->n_hold; i++)
                if (place_fd(hi_hold[i], 6 + (int)i) < 0)
                        die(errfd, "place fds", NULL, errno);
        if (place_fd(hi_exe, exe) < 0 || fcntl(exe, F_SETFD, FD_CLOEXEC) < 0)
                die(errfd, "place fds", NULL, errno);
        (void)close_all_fds_except(exe + 1, &errfd, 1);

        /* 10. Privileges: the agent's capability bounding set, no new privileges, the filter. */
        r = caps_limit_bounding(s->agent_caps);
        if (r < 0)
                die(errfd, "drop capabilities", NULL, -r);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                die(errfd, "no_new_privs", NULL, errno);
        if (s->seccomp && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, s->seccomp, 0, 0) < 0)
                die(errfd, "load seccomp filter", NULL, errno);

        /* 11. Become the agent. On success errfd closes (CLOEXEC): that is the parent's signal. */
        syscall(SYS_execveat, exe, "", s->agent_argv, s->agent_envp, AT_EMPTY_PATH);
        die(errfd, "execute agent", NULL, errno);
}
