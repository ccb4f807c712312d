// SPDX-License-Identifier: Apache-2.0
/*
 * Host directories in a microvm (microvm.h, "microvm-fs.c"): each share is served to the guest
 * by a virtiofsd of its own (QEMU's C one, /usr/lib/qemu/virtiofsd), a detached process that
 * QEMU's vhost-user-fs device talks to over a socket in the sandbox's run directory. The guest
 * is hostile (root in its own kernel, it sends virtiofsd any request), so what holds is decided
 * on the host, before virtiofsd runs:
 *
 * - **Whose files.** virtiofsd runs in a user namespace whose ids are the share's: a workspace's
 *   (or home's) owner is its id 0, the sandbox's own unprivileged range the rest (as the native
 *   backend's idmapped workspace, less the range's last two ids: the hypervisor's and the
 *   relay's); a volume's range is VOLUME_ID_BASE + k; the host image's and
 *   a root-owned directory's ids are the sandbox's own range. Rootless, the caller's uid is the
 *   only id. Whatever virtiofsd creates or chowns for the guest is owned by a mapped id: never
 *   host root, and its capabilities reach only files of mapped ids. Its supplementary groups
 *   are dropped first; its real uid is not the owner's (the owner cannot ptrace it: it maps
 *   the guest's memory).
 * - **Which tree.** In a mount namespace of its own the share is cloned (opened without
 *   following symlinks, checked to be the directory the starter saw) onto a private tmpfs, made
 *   nosuid and nodev, read-only when the share is (a mount flag: no request gets past it, guest
 *   root or not), with a home's credential directories and files masked and the host image
 *   built as native's (/usr and its links, the allow-listed /etc entries, generated passwd,
 *   group, hosts). virtiofsd's own sandbox (namespace: pivot_root into that tree) keeps every
 *   lookup, `..`, rename and link inside it.
 * - **What it may create.** A seccomp filter under virtiofsd's own refuses modes with setuid or
 *   setgid bits (chmod family, open/creat with O_CREAT or O_TMPFILE, mkdir, mknod), every mknod
 *   of anything but a regular file (no device node, FIFO or socket), extended attributes
 *   (security.capability) and openat2 (whose mode the filter cannot see); virtiofsd runs without
 *   CAP_FSETID, CAP_MKNOD and CAP_SETFCAP, so a write or chown also clears a setuid bit already
 *   there.
 *
 * The processes are recorded with the hypervisor and relay (runtime.json); each is started with
 * argv[0] naming its socket in the run directory, which is how a starter killed before the
 * record is cleaned up after (vm_fs_is_stray). virtiofsd exits when QEMU's connection ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/microvm.h"
#include "runtime/rootfs.h"
#include "shared/bind-mount.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/mount-api.h"

#define FS_TREE "/tmp/ak-share" /* the share, in the launcher's own mount namespace */
#define FS_NOFILE 65536         /* virtiofsd holds a descriptor per inode the guest knows */

static bool find_virtiofsd(char *out, size_t len)
{
        static const char *const envs[] = {"AGENTKERNEL_VIRTIOFSD", NULL};
        static const char *const dirs[] = {"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd",
                                           "/usr/lib/virtiofsd"};

        if (secure_getenv("AGENTKERNEL_VIRTIOFSD"))
                return proc_find_program(envs, "virtiofsd", out, len);
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if (access(dirs[i], X_OK) == 0) {
                        (void)snprintf(out, len, "%s", dirs[i]);
                        return true;
                }
        return proc_find_program(envs, "virtiofsd", out, len);
}

int vm_fs_probe(char *why, size_t why_len)
{
        char path[PATH_MAX];

        if (!find_virtiofsd(path, sizeof(path))) {
                (void)snprintf(why, why_len,
                               "virtiofsd is not installed (host directories in a microvm need "
                               "it: apt-get install qemu-system-x86, or set "
                               "AGENTKERNEL_VIRTIOFSD)");
                return 0;
        }
        (void)snprintf(why, why_len, "%s", path);
        return 1;
}

void vm_fs_socket_name(unsigned index, char *out, size_t len)
{
        (void)snprintf(out, len, "fs-%u.sock", index);
}

/* virtiofsd's argv[0]: its socket's path, what ties a process to this run directory */
static void fs_marker(const char *run_dir, unsigned index, char *out, size_t len)
{
        char name[32];
        vm_fs_socket_name(index, name, sizeof(name));
        (void)snprintf(out, len, "%s/%s", run_dir, name);
}

/* The sandbox's ids a share maps: all but the range's last two, the hypervisor's and the relay's
 * (microvm.c), so no file a guest writes belongs to one of its host processes. */
#define FS_RANGE (ID_RANGE_SIZE - 2)

/* One id map line set: the share's owner as id 0 and the sandbox's range for the rest, or the
 * sandbox's range alone (owner root, or one of the range's own ids). */
static void owner_map(char *out, size_t len, uint32_t owner, uint32_t base)
{
        if (owner == 0 || (owner >= base && owner - base < ID_RANGE_SIZE))
                (void)snprintf(out, len, "0 %u %u\n", base, FS_RANGE);
        else
                (void)snprintf(out, len, "0 %u 1\n1 %u %u\n", owner, base + 1, FS_RANGE - 1);
}

/* A user namespace with these maps (rootful): made by a child that waits, read as an fd. */
static int make_userns(const char *umap, const char *gmap, struct ak_err *err)
{
        int p[2], fd = -1, r = 0;
        char path[64];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return ak_err_errno(err, errno, "pipe");
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(p[0]);
                close(p[1]);
                return ak_err_errno(err, r, "fork");
        }
        if (pid == 0) {
                char c;
                close(p[1]);
                if (unshare(CLONE_NEWUSER) < 0)
                        _exit(1);
                /* until the parent is done with it */
                _exit(read(p[0], &c, 1) < 0 ? 1 : 0);
        }
        close(p[0]);
        /* the child's unshare is done once its ns link differs from ours */
        for (int i = 0; i < 5000; i++) {
                struct stat a, b;
                (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
                if (stat(path, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 &&
                    a.st_ino != b.st_ino)
                        break;
                usleep(1000);
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        r = write_file_string(path, umap);
        if (r >= 0) {
                (void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
                r = write_file_string(path, gmap);
        }
        if (r >= 0) {
                (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? -errno : 0;
        }
        close(p[1]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        return r < 0 ? ak_err_errno(err, r, "user namespace for virtiofsd") : fd;
}

/* --- the launcher: a detached grandchild that builds the tree and execs virtiofsd --- */

struct fs_launch {
        const struct vm_share *sh;
        const char *virtiofsd;
        char marker[PATH_MAX];
        int listen_fd, log_fd, userns_fd; /* userns_fd: rootful; -1: rootless, self-mapped */
        int exe_fd; /* virtiofsd, opened before the tmpfs on /tmp could hide it */
        dev_t dev;
        ino_t ino; /* the share's directory as the starter saw it */
        uid_t uid; /* rootless: the caller */
        gid_t gid;
        bool host_sh; /* /bin/sh exists (for the generated passwd) */
};

static _noreturn_ void launch_fail(const char *what, int e)
{
        char msg[PATH_MAX + 128];
        int n = snprintf(msg, sizeof(msg), "agentkernel: virtiofsd's setup: %s: %s\n", what,
                         strerror(e));
        if (n > 0)
                (void)write_all(STDERR_FILENO, msg, (size_t)n);
        _exit(126);
}

/* the share's directory, opened without following a symlink, the one the starter checked */
static int open_checked(const struct fs_launch *l)
{
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        struct stat st;
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, l->sh->source, &how, sizeof(how));

        if (fd < 0)
                launch_fail(l->sh->source, errno);
        if (fstat(fd, &st) < 0 || st.st_dev != l->dev || st.st_ino != l->ino)
                launch_fail(l->sh->source, ESTALE);
        return fd;
}

/* Clones dir_fd's mount tree onto target (an empty directory). */
static void clone_onto(int dir_fd, const char *target, const char *what)
{
        int t = open_tree(dir_fd, "",
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);

        if (t < 0 || move_mount(t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                launch_fail(what, errno);
        close(t);
}

/* Binds a host path (no symlink followed on the way) read-only onto the tree's copy of it. */
static void bind_host(const char *host, const char *target, bool dir)
{
        struct open_how how = {.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW,
                               .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, host, &how, sizeof(how));
        int t;

        if (fd < 0)
                return; /* missing or unreachable: not shown, as native skips it */
        if (dir ? mkdir(target, 0755) < 0 : mknod(target, S_IFREG | 0644, 0) < 0)
                launch_fail(target, errno);
        t = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (t < 0 || move_mount(t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                launch_fail(host, errno);
        close(t);
        close(fd);
}

static void put_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);

        if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
                launch_fail(path, errno);
        close(fd);
}

/* Mirrors host path (absolute) at tree/path: a symlink as a symlink, a directory or file bound
 * read-only. */
static void mirror(const char *path)
{
        char target[PATH_MAX], link[PATH_MAX];
        struct stat st;
        ssize_t n;

        if (lstat(path, &st) < 0)
                return;
        (void)snprintf(target, sizeof(target), "%s%s", FS_TREE, path);
        if (S_ISLNK(st.st_mode)) {
                n = readlink(path, link, sizeof(link) - 1);
                if (n <= 0)
                        return;
                link[n] = '\0';
                if (symlink(link, target) < 0)
                        launch_fail(target, errno);
        } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
                bind_host(path, target, S_ISDIR(st.st_mode));
        }
}

/* The host image's root, as native's (runtime/rootfs.c rootfs_plan_host): /usr and the
 * top-level links or directories of the libraries and programs, /etc of the allow-list with
 * generated passwd, group, hostname and hosts, and empty directories for the rest (the guest's
 * overlay makes them writable in the guest, never on the host). */
static void build_host_root(const struct fs_launch *l)
{
        static const char *const top[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                          "/lib32", "/lib64", "/libx32"};
        static const char *const dirs[] = {"home", "root", "tmp", "var",  "run", "mnt",
                                           "opt",  "srv",  "dev", "proc", "sys", "workspace"};
        const char *shell = l->host_sh ? "/bin/bash" : "/bin/sh";
        char path[PATH_MAX], text[512];
        int fd;

        if (mount("tmpfs", FS_TREE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") < 0)
                launch_fail("tmpfs for the host image", errno);
        for (size_t i = 0; i < ARRAY_SIZE(top); i++)
                mirror(top[i]);
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                (void)snprintf(path, sizeof(path), "%s/%s", FS_TREE, dirs[i]);
                (void)mkdir(path, streq(dirs[i], "tmp") ? 01777 : 0755);
        }
        (void)snprintf(path, sizeof(path), "%s/tmp", FS_TREE);
        (void)chmod(path, 01777);
        (void)snprintf(path, sizeof(path), "%s/etc", FS_TREE);
        if (mkdir(path, 0755) < 0)
                launch_fail(path, errno);
        fd = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                char dents[8192];
                long n;
                while ((n = syscall(SYS_getdents64, fd, dents, sizeof(dents))) > 0) {
                        for (long off = 0; off < n;) {
                                const char *name = dents + off + 19; /* d_name of dirent64 */
                                unsigned short reclen;
                                memcpy(&reclen, dents + off + 16, sizeof(reclen));
                                off += reclen;
                                if (name[0] == '.' || !rootfs_etc_allowed(name))
                                        continue;
                                (void)snprintf(text, sizeof(text), "/etc/%s", name);
                                mirror(text);
                        }
                }
                close(fd);
        }
        (void)snprintf(text, sizeof(text),
                       "root:x:0:0:root:/root:%s\n"
                       "user:x:1000:1000:user:/home/user:%s\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                       shell, shell);
        (void)snprintf(path, sizeof(path), "%s/etc/passwd", FS_TREE);
        put_file(path, text);
        (void)snprintf(path, sizeof(path), "%s/etc/group", FS_TREE);
        put_file(path, "root:x:0:\ntty:x:5:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n");
        (void)snprintf(path, sizeof(path), "%s/etc/hostname", FS_TREE);
        put_file(path, "agentkernel\n");
        (void)snprintf(path, sizeof(path), "%s/etc/hosts", FS_TREE);
        put_file(path, "127.0.0.1\tlocalhost agentkernel\n::1\tlocalhost ip6-localhost "
                       "ip6-loopback\n");
        (void)snprintf(path, sizeof(path), "%s/etc/mtab", FS_TREE);
        if (symlink("../proc/self/mounts", path) < 0)
                launch_fail(path, errno);
        /* the other shares' mount points (the guest cannot make them in a read-only root) */
        for (size_t i = 0; i < l->sh->n_mkdirs; i++) {
                const char *d = l->sh->mkdirs[i];
                if (!d || d[0] != '/')
                        continue;
                (void)snprintf(path, sizeof(path), "%s%s", FS_TREE, d);
                for (char *c = path + strlen(FS_TREE) + 1; *c; c++)
                        if (*c == '/') {
                                *c = '\0';
                                (void)mkdirat(AT_FDCWD, path, 0755);
                                *c = '/';
                        }
                (void)mkdirat(AT_FDCWD, path, 0755);
        }
}

/* A home's credentials (native's list, rootfs_home_mask_*) and agentkernel's own directories
 * inside it: an empty read-only tmpfs over each directory, an empty file over each file. */
static void mask_home(const struct fs_launch *l)
{
        const char *const *dirs = rootfs_home_mask_dirs, *const *files = rootfs_home_mask_files;
        size_t n_dirs = 0;
        char path[PATH_MAX];
        size_t n = strlen(l->sh->source);
        int tree = open(FS_TREE, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (tree < 0)
                launch_fail(FS_TREE, errno);
        while (n > 1 && l->sh->source[n - 1] == '/')
                n--;
        while (dirs[n_dirs])
                n_dirs++;
        for (size_t i = 0; i < n_dirs + l->sh->n_hide; i++) {
                struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
                                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH};
                const char *rel;
                int fd;
                if (i < n_dirs) {
                        rel = dirs[i];
                } else {
                        const char *h = l->sh->hide[i - n_dirs];
                        if (!h || strncmp(h, l->sh->source, n) != 0 || h[n] != '/')
                                continue;
                        rel = h + n + 1;
                }
                fd = (int)syscall(SYS_openat2, tree, rel, &how, sizeof(how));
                if (fd < 0)
                        continue; /* not there (or a link: shown as the link it is) */
                /* on what was checked, not on a path the home's owner could swap meanwhile */
                (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=0500,size=4k,nr_inodes=1") < 0)
                        launch_fail(rel, errno);
                close(fd);
        }
        for (size_t i = 0; files[i]; i++) {
                struct open_how how = {.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW,
                                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH};
                struct stat st;
                int fd;
                fd = (int)syscall(SYS_openat2, tree, files[i], &how, sizeof(how));
                if (fd < 0)
                        continue;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        continue;
                }
                (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                if (mount("/dev/null", path, NULL, MS_BIND, NULL) < 0)
                        launch_fail(files[i], errno);
                close(fd);
        }
        close(tree);
}

/* The filter under virtiofsd's own (see the file's comment), one block per call: the call's
 * number, then its checks. x86_64 numbers; another architecture's calls end the process.
 * Arguments are compared on their low 32 bits (modes and flags are ints). */
#define FS_FILTER_MAX 160
#define SUID_BITS (S_ISUID | S_ISGID)
#define CREATE_FLAGS (O_CREAT | 020000000 /* __O_TMPFILE */)

struct bpf_out {
        struct sock_filter f[FS_FILTER_MAX];
        unsigned short n;
};

static void emit(struct bpf_out *b, struct sock_filter ins)
{
        if (b->n < FS_FILTER_MAX)
                b->f[b->n++] = ins;
}

static void ld_arg(struct bpf_out *b, unsigned i)
{
        emit(b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, args[i])));
}

/* the call nr: its block of body_len instructions follows, skipped for other calls */
static void block(struct bpf_out *b, long nr, unsigned char body_len)
{
        emit(b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, nr)));
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, body_len));
}

#define RET(v) ((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (v)))
#define DENY(e) RET(SECCOMP_RET_ERRNO | (e))
#define ALLOW RET(SECCOMP_RET_ALLOW)

/* mode in arg i: no setuid/setgid bit (4 instructions) */
static void mode_block(struct bpf_out *b, long nr, unsigned i)
{
        block(b, nr, 4);
        ld_arg(b, i);
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SUID_BITS, 0, 1));
        emit(b, DENY(EPERM));
        emit(b, ALLOW);
}

/* mknod: mode in arg i, no setuid/setgid bit and a regular file's type (8 instructions) */
static void mknod_block(struct bpf_out *b, long nr, unsigned i)
{
        block(b, nr, 8);
        ld_arg(b, i);
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SUID_BITS, 0, 1));
        emit(b, DENY(EPERM));
        emit(b, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT));
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0));
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFREG, 1, 0));
        emit(b, DENY(EPERM));
        emit(b, ALLOW);
}

/* open: flags in arg fi, a mode (arg mi) only with O_CREAT or O_TMPFILE (6 instructions) */
static void open_block(struct bpf_out *b, long nr, unsigned fi, unsigned mi)
{
        block(b, nr, 6);
        ld_arg(b, fi);
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CREATE_FLAGS, 0, 3));
        ld_arg(b, mi);
        emit(b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SUID_BITS, 0, 1));
        emit(b, DENY(EPERM));
        emit(b, ALLOW);
}

static void deny_block(struct bpf_out *b, long nr, int e)
{
        block(b, nr, 1);
        emit(b, DENY(e));
}

static int fs_seccomp(void)
{
        struct bpf_out b = {.n = 0};
        struct sock_fprog prog;

        emit(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                              offsetof(struct seccomp_data, arch)));
        emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
        emit(&b, RET(SECCOMP_RET_KILL_PROCESS));
        emit(&b, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                              offsetof(struct seccomp_data, nr)));
        emit(&b, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));
        emit(&b, RET(SECCOMP_RET_KILL_PROCESS)); /* x32 */
        mode_block(&b, SYS_chmod, 1);
        mode_block(&b, SYS_fchmod, 1);
        mode_block(&b, SYS_fchmodat, 2);
        mode_block(&b, 452 /* fchmodat2 */, 2);
        mode_block(&b, SYS_creat, 1);
        mode_block(&b, SYS_mkdir, 1);
        mode_block(&b, SYS_mkdirat, 2);
        mknod_block(&b, SYS_mknod, 1);
        mknod_block(&b, SYS_mknodat, 2);
        open_block(&b, SYS_open, 1, 2);
        open_block(&b, SYS_openat, 2, 3);
        deny_block(&b, SYS_openat2, ENOSYS); /* its mode is in memory: glibc falls back */
        deny_block(&b, SYS_setxattr, EOPNOTSUPP);
        deny_block(&b, SYS_lsetxattr, EOPNOTSUPP);
        deny_block(&b, SYS_fsetxattr, EOPNOTSUPP);
        deny_block(&b, 463 /* setxattrat */, EOPNOTSUPP);
        emit(&b, ALLOW);
        if (b.n >= FS_FILTER_MAX)
                return -E2BIG;
        prog.len = b.n;
        prog.filter = b.f;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}

static void launch_virtiofsd(void *arg)
{
        const struct fs_launch *l = arg;
        const int keep[] = {3, 4};
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
        const char *argv[24];
        size_t n = 0;
        int null = open("/dev/null", O_RDWR | O_CLOEXEC), dir_fd = -1;
        /* above 2..4 first, so no dup2 below overwrites another's source (or is a no-op that
         * keeps O_CLOEXEC) */
        int lfd = fcntl(l->listen_fd, F_DUPFD_CLOEXEC, 10),
            efd = fcntl(l->exe_fd, F_DUPFD_CLOEXEC, 10);
        int logfd = fcntl(l->log_fd >= 0 ? l->log_fd : null, F_DUPFD_CLOEXEC, 10);

        if (null < 0 || lfd < 0 || efd < 0 || logfd < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
            dup2(logfd, 2) < 0 || dup2(lfd, 3) < 0 || dup2(efd, 4) < 0)
                _exit(127);
        /* more descriptors (an inode the guest knows is one), then only what virtiofsd needs */
        if (setrlimit(RLIMIT_NOFILE, &(struct rlimit){FS_NOFILE, FS_NOFILE}) < 0) {
                struct rlimit rl;
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        if (l->userns_fd >= 0) {
                /* rootful: no host group of root's survives into virtiofsd */
                if (setgroups(0, NULL) < 0)
                        launch_fail("setgroups", errno);
        } else {
                char map[64];
                if (unshare(CLONE_NEWUSER) < 0)
                        launch_fail("user namespace", errno);
                (void)snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)l->uid);
                if (write_file_string("/proc/self/setgroups", "deny") < 0 ||
                    write_file_string("/proc/self/uid_map", map) < 0)
                        launch_fail("uid_map", errno);
                (void)snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)l->gid);
                if (write_file_string("/proc/self/gid_map", map) < 0)
                        launch_fail("gid_map", errno);
        }
        if (unshare(CLONE_NEWNS) < 0)
                launch_fail("mount namespace", errno);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                launch_fail("private mounts", errno);
        if (l->sh->kind != VM_SHARE_HOST_ROOT)
                dir_fd = open_checked(l); /* before the tmpfs below hides a share under /tmp */
        if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0755,size=64k,nr_inodes=16") < 0 ||
            mkdir(FS_TREE, 0755) < 0)
                launch_fail("tmpfs", errno);
        if (l->sh->kind == VM_SHARE_HOST_ROOT) {
                build_host_root(l);
        } else {
                clone_onto(dir_fd, FS_TREE, l->sh->source);
                close(dir_fd);
                if (l->sh->kind == VM_SHARE_HOME)
                        mask_home(l);
        }
        if (l->sh->ro)
                attr.attr_set |= MOUNT_ATTR_RDONLY;
        if (mount_setattr(AT_FDCWD, FS_TREE, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                launch_fail("mount flags of the share", errno);
        if (chdir("/") < 0)
                launch_fail("chdir", errno);
        if (l->userns_fd >= 0) {
                if (setns(l->userns_fd, CLONE_NEWUSER) < 0)
                        launch_fail("enter the user namespace", errno);
                close(l->userns_fd);
        }
        /* Rootful, the real uid is another id of the map (1: the sandbox's range, or the
         * volumes'): the share's owner, whose uid virtiofsd writes as, can signal it but not
         * ptrace it or read its memory (the guest's RAM), fds or environment; and an exec
         * with real and effective ids apart leaves it non-dumpable. */
        if (setresgid(0, 0, 0) < 0 || setresuid(l->userns_fd >= 0 ? 1 : 0, 0, 0) < 0)
                launch_fail("the share's ids", errno);
        (void)close_all_fds_except(3, keep, 2);
        if (fs_seccomp() < 0)
                launch_fail("seccomp", errno);
        argv[n++] = l->marker;
        argv[n++] = "--fd=3";
        argv[n++] = "-o";
        argv[n++] = "source=" FS_TREE;
        argv[n++] = "-o";
        argv[n++] = "sandbox=namespace";
        argv[n++] = "-o";
        argv[n++] = "no_xattr";
        argv[n++] = "-o";
        argv[n++] = "no_posix_acl";
        argv[n++] = "-o";
        argv[n++] = "modcaps=-fsetid:-mknod:-setfcap";
        argv[n++] = "-o";
        argv[n++] = "log_level=err";
        argv[n++] = "--rlimit-nofile=0";
        argv[n] = NULL;
        syscall(SYS_execveat, 4, "", (char *const *)argv, environ, AT_EMPTY_PATH);
        launch_fail(l->virtiofsd, errno);
}

int vm_fs_start(const char *run_dir, unsigned index, const struct vm_share *sh, uint32_t id_base,
                pid_t *ret_pid, struct ak_err *err)
{
        struct fs_launch l = {.sh = sh, .listen_fd = -1, .log_fd = -1, .userns_fd = -1};
        char virtiofsd[PATH_MAX], name[32], sock[PATH_MAX], log[PATH_MAX];
        cleanup_close int listen_fd = -1, log_fd = -1, userns_fd = -1, exe_fd = -1;
        struct stat st = {0};
        mode_t old;
        int r;

        if (!find_virtiofsd(virtiofsd, sizeof(virtiofsd)))
                return ak_err_set(err, ENOENT,
                                  "virtiofsd is not installed: host directories in a microvm "
                                  "need it (apt-get install qemu-system-x86, or set "
                                  "AGENTKERNEL_VIRTIOFSD)");
        l.virtiofsd = virtiofsd;
        exe_fd = open(virtiofsd, O_RDONLY | O_CLOEXEC);
        if (exe_fd < 0)
                return ak_err_errno(err, errno, "open '%s'", virtiofsd);
        l.exe_fd = exe_fd;
        if (sh->kind != VM_SHARE_HOST_ROOT) {
                struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
                cleanup_close int fd =
                    (int)syscall(SYS_openat2, AT_FDCWD, sh->source, &how, sizeof(how));
                if (fd < 0 || fstat(fd, &st) < 0)
                        return ak_err_errno(err, errno,
                                            "cannot share '%s' (a directory reached without "
                                            "symlinks)",
                                            sh->source);
                l.dev = st.st_dev;
                l.ino = st.st_ino;
        }
        l.host_sh = access("/bin/bash", X_OK) == 0;
        if (geteuid() == 0) {
                char umap[96], gmap[96];
                if (sh->volume) {
                        (void)snprintf(umap, sizeof(umap), "0 %u %u\n", VOLUME_ID_BASE,
                                       VOLUME_ID_COUNT);
                        memcpy(gmap, umap, sizeof(gmap));
                } else if (sh->kind == VM_SHARE_HOST_ROOT) {
                        owner_map(umap, sizeof(umap), 0, id_base);
                        owner_map(gmap, sizeof(gmap), 0, id_base);
                } else {
                        owner_map(umap, sizeof(umap), (uint32_t)st.st_uid, id_base);
                        owner_map(gmap, sizeof(gmap), (uint32_t)st.st_gid, id_base);
                }
                userns_fd = make_userns(umap, gmap, err);
                if (userns_fd < 0)
                        return userns_fd;
        } else {
                l.uid = geteuid();
                l.gid = getegid();
        }
        vm_fs_socket_name(index, name, sizeof(name));
        (void)snprintf(sock, sizeof(sock), "%s/%s", run_dir, name);
        (void)snprintf(log, sizeof(log), "%s/fs-%u.log", run_dir, index);
        fs_marker(run_dir, index, l.marker, sizeof(l.marker));
        old = umask(0177);
        listen_fd = unix_listen(sock, 1, err);
        umask(old);
        if (listen_fd < 0)
                return listen_fd;
        log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        l.listen_fd = listen_fd;
        l.log_fd = log_fd;
        l.userns_fd = userns_fd;
        r = proc_spawn_detached(launch_virtiofsd, &l, ret_pid);
        return r < 0 ? ak_err_errno(err, r, "start virtiofsd") : 0;
}

void vm_fs_log_tail(const char *run_dir, unsigned index, char *out, size_t len)
{
        char path[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;

        out[0] = '\0';
        (void)snprintf(path, sizeof(path), "%s/fs-%u.log", run_dir, index);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return;
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
                b.data[--b.len] = '\0';
        (void)snprintf(out, len, "%s", b.data + (b.len > 300 ? b.len - 300 : 0));
        for (char *c = out; *c; c++)
                if (*c == '\n' || *c == '\r')
                        *c = ' ';
}

bool vm_fs_is_stray(pid_t pid, const char *run_dir)
{
        char path[64], exe[PATH_MAX], want[PATH_MAX], marker[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        ssize_t n;

        if (!find_virtiofsd(want, sizeof(want)))
                return false;
        (void)snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
        n = readlink(path, exe, sizeof(exe) - 1);
        if (n <= 0)
                return false;
        exe[n] = '\0';
        {
                char real[PATH_MAX];
                if (realpath(want, real))
                        (void)snprintf(want, sizeof(want), "%s", real);
        }
        if (!streq(exe, want))
                return false;
        (void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return false;
        for (unsigned i = 0; i < VM_FS_MAX; i++) {
                fs_marker(run_dir, i, marker, sizeof(marker));
                if (streq(b.data, marker))
                        return true;
        }
        return false;
}
