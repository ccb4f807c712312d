// SPDX-License-Identifier: Apache-2.0
/*
 * The agent as a virtual machine's init (agentkernel-agent --guest, the kernel's /init in the
 * initramfs the microvm backend makes). Before the agent serves anything it boots the guest:
 * /dev, /proc and /sys; the kernel modules the initramfs carries (virtio and filesystems, in
 * the order /ak/modules lists them); the root filesystem (the image's erofs on the first disk,
 * read-only, under an overlay whose upper layer is a tmpfs of the sandbox's disk size); the
 * switch into it; the channel opened, the commands' /dev (a minimal one, as native's: the
 * kernel's devtmpfs detached). Then the agent's socket and state directory in a private tmpfs that
 * is detached from the mount tree (nothing in the guest can reach them by a path), and the
 * multiplexer (mux.c) that joins the host's channel to that socket: a virtio-serial port named
 * GUEST_PORT_NAME (QEMU), or virtio-vsock (Firecracker), where the guest listens on port
 * GUEST_VSOCK_PORT and the multiplexer serves one host connection at a time.
 *
 * What the host tells the guest is in /ak/config of the initramfs (a second cpio archive the
 * host appends for each start): NUL-separated "arg=", "env=" and "disk_mb=" entries, and the
 * sandbox's profile as the guest applies it to every command it starts (as `native` does to
 * the whole sandbox): "seccomp=" (the BPF program in hex: loaded after no_new_privs),
 * "pids_max=" (the commands share one cgroup v2 with that pids.max; the agent stays outside it)
 * and "read_only_root=1" (the root is read-only, /tmp and /run stay writable); host directories
 * (virtio-fs, served by the host's virtiofsd): "fs=TAG:ro|rw:DEST" each, and "root_fs=TAG" for
 * the `host` image, whose read-only share is the overlay's lower layer. Whatever the
 * profile, the guest kernel's knobs (/proc/sys and the like, /sys) are read-only for everyone
 * once booted. A step that fails powers the machine off with its reason on the console: a guest
 * never serves half-made.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-guest.h"
#include "agent-net.h"
#include "agent.h"
#include "mux.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"

#define GUEST_CONFIG "/ak/config"
#define GUEST_FS_MAX 64
#define GUEST_MODULES "/ak/modules"
#define GUEST_PORT_NAME "ak.0"
#define GUEST_VSOCK_PORT 52000 /* VM_VSOCK_PORT of the host's microvm.h */
#define GUEST_VSOCK_DRIVER "/sys/bus/virtio/drivers/vmw_vsock_virtio_transport"

/* <linux/vm_sockets.h>, which musl's headers lack */
struct guest_sockaddr_vm {
        sa_family_t svm_family;
        unsigned short svm_reserved1;
        unsigned int svm_port;
        unsigned int svm_cid;
        unsigned char svm_flags;
        unsigned char svm_zero[3];
};
#define GUEST_VMADDR_CID_ANY 0xFFFFFFFFu
#define GUEST_DEVICE_WAIT_MS 10000
#define GUEST_CONFIG_MAX (1u << 20)
#define GUEST_ARGS_MAX 64
#define GUEST_BPF_MAX 4096 /* BPF_MAXINSNS */
#define GUEST_CGROUP_DIR "/run/.agentkernel-cgroup"

/* <linux/filter.h>, which musl's headers lack */
struct guest_bpf_insn {
        unsigned short code;
        unsigned char jt, jf;
        unsigned int k;
};
struct guest_bpf_prog {
        unsigned short len;
        const struct guest_bpf_insn *filter;
};

/* What every command gets (agent_guest_command_enter, agent_guest_command_confine). */
static struct guest_bpf_insn cmd_filter[GUEST_BPF_MAX];
static unsigned short cmd_filter_len;
static int cmd_cgroup_fd = -1; /* the commands' cgroup.procs */

bool agent_guest;

static int link_fd = -1;
static bool link_listens; /* link_fd is a vsock listener: each multiplexer accepts its host */
static int sock_dir_fd = -1;
static pid_t mux_pid = -1;
static char sock_path[64];
static int net_fds[2] = {-1, -1}; /* proxy mode: the capture's TCP listeners (agent-net.h) */
static int console_fd = -1;       /* the console, kept once /dev is the commands' (minimal_dev) */

/* Says why on the console and powers off: the host sees the machine end. */
_noreturn_ void agent_guest_fail(const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        int fd = console_fd >= 0 ? dup(console_fd)
                                 : open("/dev/console", O_WRONLY | O_CLOEXEC | O_NOCTTY);

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (fd >= 0) {
                (void)write_all(fd, "agentkernel-agent: ", 19);
                (void)write_all(fd, msg, strlen(msg));
                (void)write_all(fd, "\n", 1);
                close(fd);
        }
        agent_guest_poweroff();
}

_noreturn_ void agent_guest_poweroff(void)
{
        sync();
        (void)reboot(RB_POWER_OFF);
        _exit(1); /* init exiting: the kernel panics, and panic=-1 ends the machine too */
}

static void must(int r, const char *what)
{
        if (r < 0)
                agent_guest_fail("%s: %s", what, strerror(errno));
}

static void mount_or_fail(const char *src, const char *dst, const char *type, unsigned long fl,
                          const char *data)
{
        (void)mkdir(dst, 0755);
        if (mount(src, dst, type, fl, data) < 0)
                agent_guest_fail("mount %s on '%s': %s", type ? type : src, dst, strerror(errno));
}

static void load_modules(void)
{
        cleanup_buf struct buf b = BUF_INIT;

        if (read_file_at(AT_FDCWD, GUEST_MODULES, &b, 1u << 16) < 0 || !b.data)
                return; /* a kernel with the drivers built in */
        for (size_t i = 0; i < b.len;) {
                const char *path = b.data + i;
                size_t len = strnlen(path, b.len - i);
                cleanup_close int fd = -1;

                i += len + 1;
                if (!len)
                        continue;
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        agent_guest_fail("module '%s': %s", path, strerror(errno));
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        agent_guest_fail("load module '%s': %s", path, strerror(errno));
        }
}

/* The /dev name of the virtio-serial port the host named GUEST_PORT_NAME. */
static bool find_port(char *out, size_t len)
{
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *de;
        bool found = false;

        if (!d)
                return false;
        while (!found && (de = readdir(d))) {
                char p[PATH_MAX];
                cleanup_buf struct buf name = BUF_INIT;

                if (de->d_name[0] == '.')
                        continue;
                (void)snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
                if (read_file_at(AT_FDCWD, p, &name, 256) < 0 || !name.data)
                        continue;
                if (name.len && name.data[name.len - 1] == '\n')
                        name.data[--name.len] = '\0';
                if (streq(name.data, GUEST_PORT_NAME)) {
                        (void)snprintf(out, len, "/dev/%s", de->d_name);
                        found = true;
                }
        }
        closedir(d);
        return found;
}

/* A virtio-vsock device bound to its driver (the vsock modules are loaded by then). */
static bool vsock_ready(void)
{
        DIR *d = opendir(GUEST_VSOCK_DRIVER);
        struct dirent *de;
        bool found = false;

        if (!d)
                return false;
        while (!found && (de = readdir(d)))
                found = strncmp(de->d_name, "virtio", 6) == 0;
        closedir(d);
        return found;
}

/* The host's channel: the virtio-serial port (out gets its /dev path), or "vsock". */
static bool find_channel(char *out, size_t len)
{
        if (find_port(out, len))
                return true;
        if (!vsock_ready())
                return false;
        (void)snprintf(out, len, "vsock");
        return true;
}

static int vsock_listen(void)
{
        struct guest_sockaddr_vm a = {
            .svm_family = AF_VSOCK, .svm_port = GUEST_VSOCK_PORT, .svm_cid = GUEST_VMADDR_CID_ANY};
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0)
                agent_guest_fail("vsock port %d: %s", GUEST_VSOCK_PORT, strerror(errno));
        return fd;
}

static void wait_for(const char *what, bool (*ready)(char *, size_t), char *out, size_t len)
{
        for (int waited = 0; !ready(out, len); waited += 5) {
                if (waited >= GUEST_DEVICE_WAIT_MS)
                        agent_guest_fail("no %s after %d ms", what, GUEST_DEVICE_WAIT_MS);
                usleep(5000);
        }
}

static bool find_disk(char *out, size_t len)
{
        (void)snprintf(out, len, "/dev/vda");
        return access(out, F_OK) == 0;
}

struct guest_config {
        char *argv[GUEST_ARGS_MAX + 1];
        size_t argc;
        char **env;
        size_t n_env;
        uint64_t disk_mb;
        bool net_proxy;
        uint64_t pids_max; /* 0: none */
        bool read_only_root;
        const char *root_fs;          /* the root's virtio-fs tag (the host image), or NULL */
        const char *fs[GUEST_FS_MAX]; /* "TAG:ro|rw:DEST": host directories */
        size_t n_fs;
};

static int unhex(char c)
{
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "seccomp=": the program's instructions as hex bytes, in the host's (the same) byte order. */
static void read_filter(const char *hex)
{
        size_t n = strlen(hex);
        unsigned char *out = (unsigned char *)cmd_filter;

        if (!n || n % (2 * sizeof(cmd_filter[0])) || n / 2 > sizeof(cmd_filter))
                agent_guest_fail("bad seccomp program in %s", GUEST_CONFIG);
        for (size_t i = 0; i < n; i += 2) {
                int hi = unhex(hex[i]), lo = unhex(hex[i + 1]);
                if (hi < 0 || lo < 0)
                        agent_guest_fail("bad seccomp program in %s", GUEST_CONFIG);
                out[i / 2] = (unsigned char)(hi << 4 | lo);
        }
        cmd_filter_len = (unsigned short)(n / 2 / sizeof(cmd_filter[0]));
}

static void read_config(struct guest_config *g)
{
        struct buf b = BUF_INIT; /* kept: argv and env point into it */
        size_t n_env_max = 0;

        if (read_file_at(AT_FDCWD, GUEST_CONFIG, &b, GUEST_CONFIG_MAX) < 0 || !b.data)
                agent_guest_fail("no %s in the initramfs", GUEST_CONFIG);
        for (size_t i = 0; i < b.len; i++)
                n_env_max += b.data[i] == '\0';
        g->env = calloc(n_env_max + 2, sizeof(char *));
        if (!g->env)
                agent_guest_fail("out of memory");
        for (size_t i = 0; i < b.len;) {
                char *e = b.data + i;
                i += strnlen(e, b.len - i) + 1;
                if (strncmp(e, "arg=", 4) == 0) {
                        if (g->argc == GUEST_ARGS_MAX)
                                agent_guest_fail("too many arguments in %s", GUEST_CONFIG);
                        g->argv[g->argc++] = e + 4;
                } else if (strncmp(e, "env=", 4) == 0) {
                        g->env[g->n_env++] = e + 4;
                } else if (streq(e, "net=proxy")) {
                        g->net_proxy = true;
                } else if (strncmp(e, "disk_mb=", 8) == 0) {
                        if (safe_atou64(e + 8, &g->disk_mb) < 0 || g->disk_mb == 0)
                                agent_guest_fail("bad disk_mb in %s", GUEST_CONFIG);
                } else if (strncmp(e, "seccomp=", 8) == 0) {
                        read_filter(e + 8);
                } else if (strncmp(e, "pids_max=", 9) == 0) {
                        if (safe_atou64(e + 9, &g->pids_max) < 0 || g->pids_max == 0)
                                agent_guest_fail("bad pids_max in %s", GUEST_CONFIG);
                } else if (streq(e, "read_only_root=1")) {
                        g->read_only_root = true;
                } else if (strncmp(e, "root_fs=", 8) == 0) {
                        g->root_fs = e + 8;
                } else if (strncmp(e, "fs=", 3) == 0) {
                        if (g->n_fs == GUEST_FS_MAX)
                                agent_guest_fail("too many host directories in %s", GUEST_CONFIG);
                        g->fs[g->n_fs++] = e + 3;
                }
        }
}

/* The overlay root over the image and the switch into it (what switch_root does: the
 * initramfs stays, unreachable, under the new root). */
static void mount_root(const struct guest_config *g)
{
        char disk[32], opts[128];

        (void)snprintf(opts, sizeof(opts), "mode=0755,size=%llum",
                       (unsigned long long)(g->disk_mb ? g->disk_mb : 1024));
        if (g->root_fs) {
                /* The host image, as native's: the host's view read-only (on the host too:
                 * virtiofsd's mount), the sandbox's writable places directories of one tmpfs of
                 * the disk's size. No overlay: overlayfs opens its lower files O_NOATIME, which
                 * virtiofsd may not do on files its ids do not own (the host's). */
                static const struct {
                        const char *name;
                        mode_t mode;
                } places[] = {
                    {"tmp", 01777}, {"run", 0755}, {"var", 0755}, {"root", 0700}, {"home", 0755}};
                mount_or_fail(g->root_fs, "/newroot", "virtiofs", MS_RDONLY | MS_NODEV | MS_NOSUID,
                              NULL);
                mount_or_fail("rw", "/rw", "tmpfs", MS_NODEV | MS_NOSUID, opts);
                for (size_t i = 0; i < ARRAY_SIZE(places); i++) {
                        char src[64], dst[64];
                        (void)snprintf(src, sizeof(src), "/rw/%s", places[i].name);
                        (void)snprintf(dst, sizeof(dst), "/newroot/%s", places[i].name);
                        must(mkdir(src, places[i].mode), "mkdir writable place");
                        must(chmod(src, places[i].mode), "chmod writable place");
                        mount_or_fail(src, dst, NULL, MS_BIND, NULL);
                }
        } else {
                wait_for("root disk", find_disk, disk, sizeof(disk));
                mount_or_fail(disk, "/lower", "erofs", MS_RDONLY | MS_NODEV, NULL);
                mount_or_fail("rw", "/rw", "tmpfs", MS_NODEV, opts);
                must(mkdir("/rw/upper", 0755), "mkdir upper");
                must(mkdir("/rw/work", 0755), "mkdir work");
                mount_or_fail("overlay", "/newroot", "overlay", 0,
                              "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work");
        }
        (void)mkdir("/newroot/dev", 0755);
        (void)mkdir("/newroot/proc", 0555);
        (void)mkdir("/newroot/sys", 0555);
        mount_or_fail("/dev", "/newroot/dev", NULL, MS_MOVE, NULL);
        mount_or_fail("/proc", "/newroot/proc", NULL, MS_MOVE, NULL);
        mount_or_fail("/sys", "/newroot/sys", NULL, MS_MOVE, NULL);
        must(chdir("/newroot"), "chdir new root");
        must(mount(".", "/", NULL, MS_MOVE, NULL), "move new root");
        must(chroot("."), "chroot");
        must(chdir("/"), "chdir /");
        if (!g->root_fs) {
                (void)mkdir("/tmp", 01777);
                (void)chmod("/tmp", 01777);
        }
}

/* The commands' /dev, as native's: a small tmpfs with the harmless character devices (null,
 * zero, full, random, urandom, tty), a devpts of its own (ptmx a link to its ptmx), a tmpfs
 * /dev/shm and the fd links. It replaces the kernel's devtmpfs, which holds every device of the
 * guest (the image's disk and the writable one raw, /dev/mem, /dev/port, /dev/kmsg, the consoles,
 * the agent's own channel), once the agent has what it needs of it: the root disk mounted, the
 * channel open, the console kept as a descriptor. The devtmpfs is detached, reachable by no path;
 * no profile may mknod (nor would a node on /dev/shm or the root open: nodev). */
static void minimal_dev(void)
{
        static const struct {
                const char *path;
                unsigned major, minor;
        } devs[] = {{"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
        static const struct {
                const char *target, *path;
        } links[] = {{"pts/ptmx", "/dev/ptmx"},
                     {"/proc/self/fd", "/dev/fd"},
                     {"/proc/self/fd/0", "/dev/stdin"},
                     {"/proc/self/fd/1", "/dev/stdout"},
                     {"/proc/self/fd/2", "/dev/stderr"}};

        console_fd = open("/dev/console", O_WRONLY | O_CLOEXEC | O_NOCTTY);
        must(umount2("/dev", MNT_DETACH), "detach the kernel's devtmpfs");
        mount_or_fail("dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
                      "mode=0755,size=64k,nr_inodes=64");
        for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
                must(mknod(devs[i].path, S_IFCHR | 0666, makedev(devs[i].major, devs[i].minor)),
                     "mknod in /dev");
                must(chmod(devs[i].path, 0666), "chmod in /dev"); /* not the umask's */
        }
        for (size_t i = 0; i < ARRAY_SIZE(links); i++)
                must(symlink(links[i].target, links[i].path), "symlink in /dev");
        must(mkdir("/dev/pts", 0755), "mkdir /dev/pts");
        must(mkdir("/dev/shm", 01777), "mkdir /dev/shm");
        mount_or_fail("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,mode=0620,ptmxmode=0666");
        mount_or_fail("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

/* The host directories (virtio-fs, "TAG:ro|rw:DEST"), nosuid and nodev here too; read-only
 * ones are read-only on the host already, whatever a command does to this mount. */
static void mount_shares(const struct guest_config *g)
{
        for (size_t i = 0; i < g->n_fs; i++) {
                char tag[32];
                const char *e = g->fs[i], *c = strchr(e, ':');
                bool ro;
                if (!c || (size_t)(c - e) >= sizeof(tag) ||
                    (strncmp(c + 1, "ro:", 3) != 0 && strncmp(c + 1, "rw:", 3) != 0))
                        agent_guest_fail("bad fs entry in %s", GUEST_CONFIG);
                memcpy(tag, e, (size_t)(c - e));
                tag[c - e] = '\0';
                ro = c[1] == 'r' && c[2] == 'o';
                if (c[4] != '/')
                        agent_guest_fail("bad fs entry in %s", GUEST_CONFIG);
                (void)mkdir_p(c + 4, 0755); /* in the guest's own root */
                mount_or_fail(tag, c + 4, "virtiofs", MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0),
                              NULL);
        }
}

/* The agent's socket and state in a tmpfs detached from the tree: reachable only through the
 * directory fds this process holds. */
static void private_dirs(int *ret_listen, int *ret_state)
{
        struct ak_err e = {0};
        int listen_fd;

        (void)mkdir("/run", 0755);
        mount_or_fail("agentkernel", "/run/.agentkernel", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=0700,size=256m,nr_inodes=65536");
        must(mkdir("/run/.agentkernel/state", 0700), "mkdir state");
        listen_fd = unix_listen("/run/.agentkernel/agent.sock", 128, &e);
        if (listen_fd < 0)
                agent_guest_fail("agent socket: %s", ak_err_msg(&e));
        *ret_state = open("/run/.agentkernel/state", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sock_dir_fd = open("/run/.agentkernel", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (*ret_state < 0 || sock_dir_fd < 0)
                agent_guest_fail("private directory: %s", strerror(errno));
        must(umount2("/run/.agentkernel", MNT_DETACH), "detach private directory");
        (void)rmdir("/run/.agentkernel");
        (void)snprintf(sock_path, sizeof(sock_path), "/proc/self/fd/%d/agent.sock", sock_dir_fd);
        *ret_listen = listen_fd;
}

/* The commands' cgroup: cgroup v2 mounted for a moment, pids.max set on a child group, its
 * cgroup.procs kept open, the mount detached (no command reaches the hierarchy by a path, and
 * none may mount it: no profile has CAP_SYS_ADMIN). */
static void command_cgroup(uint64_t pids_max)
{
        char v[32];

        mount_or_fail("cgroup2", GUEST_CGROUP_DIR, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      NULL);
        must(write_file_string(GUEST_CGROUP_DIR "/cgroup.subtree_control", "+pids"),
             "enable the pids controller");
        must(mkdir(GUEST_CGROUP_DIR "/commands", 0755), "mkdir commands' cgroup");
        (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)pids_max);
        must(write_file_string(GUEST_CGROUP_DIR "/commands/pids.max", v), "set pids.max");
        cmd_cgroup_fd = open(GUEST_CGROUP_DIR "/commands/cgroup.procs", O_WRONLY | O_CLOEXEC);
        must(cmd_cgroup_fd, "open the commands' cgroup.procs");
        must(umount2(GUEST_CGROUP_DIR, MNT_DETACH), "detach cgroup2");
        (void)rmdir(GUEST_CGROUP_DIR);
}

/* A read-only root for commands (and the agent) as `native` has: the writable places are bound
 * on themselves first (the same overlay, so --disk bounds them), then the root's own mount is
 * made read-only. /dev/shm is a tmpfs of its own already. */
static void read_only_root(void)
{
        static const char *const writable[] = {"/tmp", "/run"};

        for (size_t i = 0; i < ARRAY_SIZE(writable); i++)
                mount_or_fail(writable[i], writable[i], NULL, MS_BIND, NULL);
        must(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL),
             "remount the root read-only");
}

/* The guest's kernel is the sandbox's: no command may reconfigure it. As `native` makes them
 * read-only, /proc/sys (core_pattern, modprobe: programs the kernel would run as full root),
 * /proc/sysrq-trigger, irq, bus, fs; and /sys (uevent_helper), which the agent needs only to
 * boot. No usermode modprobe either: the agent loaded what the guest needs, and the kernel would
 * run the image's /sbin/modprobe, which a command may have replaced. */
static void guest_kernel_ro(void)
{
        static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
                                         "/proc/bus", "/proc/fs"};
        const unsigned long fl =
            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        int fd = open("/proc/sys/kernel/modprobe", O_WRONLY | O_TRUNC | O_CLOEXEC);

        if (fd < 0 && errno != ENOENT)
                agent_guest_fail("open '/proc/sys/kernel/modprobe': %s", strerror(errno));
        if (fd >= 0) {
                int r = write(fd, "\n", 1) == 1 ? 0 : -1;
                close(fd);
                must(r, "clear /proc/sys/kernel/modprobe");
        }
        for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
                if (mount(ro[i], ro[i], NULL, MS_BIND, NULL) < 0) {
                        if (errno == ENOENT)
                                continue; /* not in this kernel */
                        agent_guest_fail("bind '%s': %s", ro[i], strerror(errno));
                }
                if (mount(NULL, ro[i], NULL, fl, NULL) < 0)
                        agent_guest_fail("remount '%s' read-only: %s", ro[i], strerror(errno));
        }
        must(mount(NULL, "/sys", NULL, fl, NULL), "remount /sys read-only");
}

#define PF_KTHREAD_FLAG 0x00200000u /* include/linux/sched.h: a kernel thread */

/* Whether /proc/<name> is a user-space process (not a kernel thread: flags, the stat's 9th
 * field, has PF_KTHREAD). A process gone meanwhile is not counted. */
static bool user_process(int proc_fd, const char *name)
{
        char path[64];
        cleanup_buf struct buf b = BUF_INIT;
        const char *p;
        unsigned long flags = 0;

        (void)snprintf(path, sizeof(path), "%s/stat", name);
        if (read_file_at(proc_fd, path, &b, 4096) < 0 || !b.data)
                return false;
        p = memrchr(b.data, ')', b.len); /* the name may hold anything, ')' included */
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
                return false;
        return !(flags & PF_KTHREAD_FLAG);
}

/* A /proc/meminfo line's value in bytes (its unit is kB), or 0. */
static uint64_t meminfo_bytes(const struct buf *b, const char *key)
{
        size_t klen = strlen(key);

        for (size_t i = 0; i < b->len;) {
                const char *line = b->data + i;
                const char *nl = memchr(line, '\n', b->len - i);
                size_t len = nl ? (size_t)(nl - line) : b->len - i;
                unsigned long long kb;

                if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == ':' &&
                    sscanf(line + klen + 1, "%llu", &kb) == 1)
                        return (uint64_t)kb * 1024;
                i += len + 1;
        }
        return 0;
}

int agent_guest_serve_stats(int fd)
{
        cleanup_buf struct buf out = BUF_INIT, mem = BUF_INIT;
        cleanup_close int proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        uint64_t pids = 0, total, avail;
        DIR *d;
        struct dirent *de;
        size_t start;
        int r;

        if (proc_fd < 0)
                return agent_send_error(fd, errno, "open '/proc': %s", strerror(errno));
        d = fdopendir(dup(proc_fd));
        if (!d)
                return agent_send_error(fd, errno, "read '/proc': %s", strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
                    user_process(proc_fd, de->d_name))
                        pids++;
        closedir(d);
        if (read_file_at(proc_fd, "meminfo", &mem, 1u << 16) < 0 || !mem.data)
                return agent_send_error(fd, EIO, "read '/proc/meminfo'");
        total = meminfo_bytes(&mem, "MemTotal");
        avail = meminfo_bytes(&mem, "MemAvailable");
        start = ak_msg_begin(&out, AK_OK);
        r = start == (size_t)-1 ? -ENOMEM : 0;
        if (r >= 0)
                r = ak_put_u64(&out, AK_T_PIDS, pids);
        if (r >= 0)
                r = ak_put_u64(&out, AK_T_MEM_USED, total > avail ? total - avail : 0);
        if (r >= 0)
                r = ak_put_u64(&out, AK_T_MEM_TOTAL, total);
        if (r >= 0)
                r = ak_msg_end(&out, start);
        return r < 0 ? agent_send_error(fd, -r, "stats: %s", strerror(-r)) : ak_write_buf(fd, &out);
}

int agent_guest_cgroup_fd(void)
{
        return cmd_cgroup_fd;
}

int agent_guest_command_enter(void)
{
        if (cmd_cgroup_fd >= 0 && write(cmd_cgroup_fd, "0", 1) != 1)
                return -errno;
        return 0;
}

int agent_guest_command_confine(void)
{
        const struct guest_bpf_prog prog = {cmd_filter_len, cmd_filter};

        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
                return -errno;
        if (cmd_filter_len && syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0u, &prog) < 0)
                return -errno;
        return 0;
}

void agent_guest_start_mux(void)
{
        pid_t pid = fork();

        if (pid < 0)
                agent_guest_fail("fork: %s", strerror(errno));
        if (pid == 0) {
                const struct mux_net net = {{net_fds[0], net_fds[1]}, 0};
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void)write_file_string("/proc/self/oom_score_adj", "-1000");
                if (link_listens) {
                        /* one host at a time; PID 1 starts the next multiplexer when it ends */
                        int conn;
                        do
                                conn = accept4(link_fd, NULL, NULL, SOCK_CLOEXEC);
                        while (conn < 0 && errno == EINTR);
                        if (conn < 0)
                                _exit(1);
                        close(link_fd);
                        _exit(mux_run(conn, -1, sock_path, 1, &net) < 0 ? 1 : 0);
                }
                _exit(mux_run(link_fd, -1, sock_path, 1, &net) < 0 ? 1 : 0);
        }
        mux_pid = pid;
}

bool agent_guest_reaped(pid_t pid)
{
        if (!agent_guest || pid != mux_pid)
                return false;
        agent_guest_start_mux(); /* the guest's only way out: never without it */
        return true;
}

int agent_guest_boot(int *argc, char ***argv)
{
        static struct guest_config g;
        static char *new_argv[GUEST_ARGS_MAX + 8];
        static char fd_listen[16], fd_state[16];
        char port[64];
        size_t n = 0;
        int listen_fd, state_fd;

        agent_guest = true;
        (void)mkdir("/dev", 0755);
        (void)mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
        mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        mount_or_fail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        read_config(&g);
        load_modules();
        mount_root(&g);
        mount_shares(&g);
        if (g.net_proxy)
                agent_net_guest_setup(net_fds);
        wait_for("virtio-serial port '" GUEST_PORT_NAME "' or virtio-vsock device", find_channel,
                 port, sizeof(port));
        if (streq(port, "vsock")) {
                link_fd = vsock_listen();
                link_listens = true;
        } else {
                link_fd = open(port, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (link_fd < 0)
                        agent_guest_fail("open '%s': %s", port, strerror(errno));
        }
        private_dirs(&listen_fd, &state_fd);
        minimal_dev();
        if (g.pids_max)
                command_cgroup(g.pids_max);
        if (g.read_only_root)
                read_only_root();
        guest_kernel_ro();
        environ = g.env;
        (void)snprintf(fd_listen, sizeof(fd_listen), "%d", listen_fd);
        (void)snprintf(fd_state, sizeof(fd_state), "%d", state_fd);
        new_argv[n++] = (*argv)[0];
        new_argv[n++] = "--listen-fd";
        new_argv[n++] = fd_listen;
        new_argv[n++] = "--state-fd";
        new_argv[n++] = fd_state;
        for (size_t i = 0; i < g.argc; i++)
                new_argv[n++] = g.argv[i];
        new_argv[n] = NULL;
        *argc = (int)n;
        *argv = new_argv;
        return 0;
}
