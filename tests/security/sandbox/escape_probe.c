// SPDX-License-Identifier: Apache-2.0
/*
 * escape-probe: the native suite's escape syscalls (tests/integration/test_isolation.py's
 * SYSCALL_PROBE) for a guest that has no Python: compiled static by the microvm escape tests
 * (test_microvm_escape.py) and copied into the VM. Each probe prints "NAME OUTCOME", where OUTCOME
 * is "ok" or the errno's name. Arguments are harmless where a call succeeds (-1 fds, empty paths).
 * "escape-probe x32" makes one x32 system call (the process must be killed before it prints
 * anything); "escape-probe bomb [hold]" is a fork bomb that counts what it got.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ename(int e)
{
        switch (e) {
        case EPERM:
                return "EPERM";
        case EACCES:
                return "EACCES";
        case ENOSYS:
                return "ENOSYS";
        case EINVAL:
                return "EINVAL";
        case EBADF:
                return "EBADF";
        case ENOENT:
                return "ENOENT";
        case EFAULT:
                return "EFAULT";
        case EROFS:
                return "EROFS";
        case ESRCH:
                return "ESRCH";
        case EAFNOSUPPORT:
                return "EAFNOSUPPORT";
        case EBUSY:
                return "EBUSY";
        case EEXIST:
                return "EEXIST";
        case ENOTDIR:
                return "ENOTDIR";
        case EAGAIN:
                return "EAGAIN";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        default:
                return "OTHER";
        }
}

static void report(const char *name, long r)
{
        printf("%s %s\n", name, r >= 0 ? "ok" : ename(errno));
}

#define TRY(name, ...) report(name, syscall(__VA_ARGS__))

/* "bomb": forks children that wait until fork fails, prints "forked N ERRNO", ends them all
 * ("bomb hold": only once its stdin ends). */
static int bomb(int hold)
{
        static pid_t kids[65536];
        int n = 0, err = 0, p[2];

        if (pipe(p) < 0)
                return 1;
        while (n < (int)(sizeof(kids) / sizeof(kids[0]))) {
                pid_t pid = fork();
                if (pid < 0) {
                        err = errno;
                        break;
                }
                if (pid == 0) {
                        char c;
                        close(p[1]);
                        (void)read(p[0], &c, 1); /* until the parent closes its end */
                        _exit(0);
                }
                kids[n++] = pid;
        }
        printf("forked %d %s\n", n, ename(err));
        fflush(stdout);
        if (hold) { /* until stdin ends */
                char c;
                while (read(0, &c, 1) > 0)
                        ;
        }
        close(p[1]);
        for (int i = 0; i < n; i++)
                (void)waitpid(kids[i], NULL, 0);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc > 1 && strcmp(argv[1], "x32") == 0) {
                long r = syscall(0x40000000 | 39, 0, 0, 0, 0, 0); /* x32 getpid */
                printf("returned %ld\n", r);
                return 0;
        }
        if (argc > 1 && strcmp(argv[1], "bomb") == 0)
                return bomb(argc > 2 && strcmp(argv[2], "hold") == 0);
        TRY("unshare-user", SYS_unshare, CLONE_NEWUSER);
        TRY("unshare-mount", SYS_unshare, CLONE_NEWNS);
        TRY("unshare-net", SYS_unshare, CLONE_NEWNET);
        TRY("setns", SYS_setns, 0, 0);
        TRY("mount", SYS_mount, "none", "/mnt", "tmpfs", 0L, NULL);
        TRY("umount", SYS_umount2, "/proc", 2L /* MNT_DETACH */);
        TRY("pivot_root", SYS_pivot_root, "/tmp", "/tmp");
        TRY("chroot", SYS_chroot, "/tmp");
        TRY("ptrace", SYS_ptrace, 16L /* PTRACE_ATTACH */, 1L, 0L, 0L);
        TRY("process_vm_readv", SYS_process_vm_readv, 1L, NULL, 0L, NULL, 0L, 0L);
        TRY("bpf", SYS_bpf, 0L, NULL, 0L);
        TRY("keyctl", SYS_keyctl, 0L, 0L, 0L);
        TRY("add_key", SYS_add_key, "user", "k", "v", 1L, -3L);
        TRY("open_tree", SYS_open_tree, -100L, "/", 1L);
        TRY("fsopen", SYS_fsopen, "tmpfs", 0L);
        TRY("move_mount", SYS_move_mount, -100L, "/", -100L, "/tmp", 0L);
        TRY("perf_event_open", SYS_perf_event_open, NULL, 0L, -1L, -1L, 0L);
        TRY("userfaultfd", SYS_userfaultfd, 0L);
        TRY("io_uring_setup", SYS_io_uring_setup, 1L, NULL);
        TRY("clone3", SYS_clone3, NULL, 0L);
        TRY("kexec_load", SYS_kexec_load, 0L, 0L, NULL, 0L);
        TRY("kexec_file_load", SYS_kexec_file_load, -1L, -1L, 0L, "", 0L);
        TRY("init_module", SYS_init_module, NULL, 0L, "");
        TRY("finit_module", SYS_finit_module, -1L, "", 0L);
        TRY("delete_module", SYS_delete_module, "virtio_blk", 0L);
        TRY("reboot", SYS_reboot, 0xfee1deadL, 672274793L, 0x4321fedcL /* POWER_OFF */, NULL);
        TRY("swapon", SYS_swapon, "/dev/vda", 0L);
        TRY("mknod-mem", SYS_mknodat, -100L, "/tmp/mem", (long)(0020000 | 0600), 0x101L);
        TRY("open-dev-mem", SYS_openat, -100L, "/dev/mem", (long)O_RDONLY);
        TRY("open-dev-port", SYS_openat, -100L, "/dev/port", (long)O_RDONLY);
        TRY("socket-packet", SYS_socket, (long)AF_PACKET, (long)SOCK_RAW, 0L);
        TRY("socket-raw", SYS_socket, (long)AF_INET, (long)SOCK_RAW, 1L);
        TRY("socket-vsock", SYS_socket, 40L /* AF_VSOCK */, (long)SOCK_STREAM, 0L);
        TRY("vmsplice", SYS_vmsplice, -1L, NULL, 0L, 0L);
        TRY("mq_open", SYS_mq_open, "agentkernel-probe", (long)(O_RDWR | O_CREAT), 0600L, NULL);
        {
                /* TIOCSTI on our own terminal, and with high bits a filter on 64 bits would miss */
                int m = posix_openpt(O_RDWR | O_NOCTTY), s = -1;
                char c = 'x';
                if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0)
                        s = open(ptsname(m), O_RDWR | O_NOCTTY);
                report("tiocsti", s < 0 ? -1 : syscall(SYS_ioctl, s, (long)TIOCSTI, &c));
                report("tiocsti-high",
                       s < 0 ? -1 : syscall(SYS_ioctl, s, (1L << 32) | TIOCSTI, &c));
                if (s >= 0)
                        close(s);
                if (m >= 0)
                        close(m);
        }
        {
                int fd = open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC);
                long r = fd < 0 ? -1 : write(fd, "pwned\n", 6);
                report("proc-sys-write", r);
                if (fd >= 0)
                        close(fd);
        }
        {
                int fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
                report("sysrq-trigger-open", fd);
                if (fd >= 0)
                        close(fd);
        }
        return 0;
}
