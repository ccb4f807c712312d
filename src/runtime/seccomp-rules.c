// SPDX-License-Identifier: Apache-2.0
/*
 * The rules of the sandbox seccomp filters, compiled with libseccomp at build time by
 * seccomp-gen (the programs are then part of agentkernel; nothing compiles a filter at run
 * time). The lists here are the security boundary's second line (after namespaces and dropped
 * capabilities): additions need a reason, removals need a test that shows the syscall is harmless
 * inside a user namespace.
 */
#include "seccomp-rules.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"

/* clone() flags that create namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
 */
#define NS_FLAGS 0x7E020000ull

/* Upstream's `default` deny list (images/seccomp/default.json), plus `mount`. */
static const char *const deny_default[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "nfsservctl",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "mount",
    /* Beyond upstream: the new mount API reaches everything `mount` does. */
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    /* Beyond upstream: file handles bypass path-based checks; quotactl_fd is quotactl. */
    "open_by_handle_at",
    "quotactl_fd",
    "syslog",
};

/* Added by `moderate` (upstream adds ptrace; we add its siblings and io_uring, whose requests
 * are not seen by seccomp at all). */
static const char *const deny_moderate[] = {
    "ptrace",         "process_vm_readv", "process_vm_writev",
    "io_uring_setup", "io_uring_enter",   "io_uring_register",
};

/* `restrictive` allows only these (everything else fails with EPERM). */
static const char *const allow_restrictive[] = {
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "get_robust_list",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_yield",
    "select",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semctl",
    "semtimedop",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
};

static int add_names(scmp_filter_ctx ctx, uint32_t action, const char *const *list, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int nr = seccomp_syscall_resolve_name(list[i]);
                int r;
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not a syscall on this architecture */
                r = seccomp_rule_add(ctx, action, nr, 0);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return 0;
}

static void release_ctx(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

int seccomp_build(enum seccomp_profile p, struct sock_fprog *ret, struct ak_err *err)
{
        scmp_filter_ctx ctx CLEANUP(release_ctx) = NULL;
        bool allowlist = p == SECCOMP_PROFILE_RESTRICTIVE;
        uint32_t deny = SCMP_ACT_ERRNO(EPERM);
        cleanup_close int mfd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        int r;

        ctx = seccomp_init(allowlist ? deny : SCMP_ACT_ALLOW);
        if (!ctx)
                return ak_err_set(err, ENOMEM, "seccomp_init failed");
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return ak_err_set(err, -r, "seccomp: bad-arch action: %s", strerror(-r));
        /* A binary tree of syscall numbers instead of a linear list: every syscall of every
         * command runs through this program. */
        (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

        if (allowlist) {
                r = add_names(ctx, SCMP_ACT_ALLOW, allow_restrictive,
                              ARRAY_SIZE(allow_restrictive));
                /* clone only without namespace flags. */
                if (r >= 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                             SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS, 0));
        } else {
                r = add_names(ctx, deny, deny_default, ARRAY_SIZE(deny_default));
                if (r >= 0 && p == SECCOMP_PROFILE_MODERATE)
                        r = add_names(ctx, deny, deny_moderate, ARRAY_SIZE(deny_moderate));
                /* clone with any namespace flag: one rule per bit (no "masked not-equal"). */
                for (int bit = 0; r >= 0 && bit < 32; bit++) {
                        uint64_t f = 1ull << bit;
                        if (NS_FLAGS & f)
                                r = seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1,
                                                     SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
                }
        }
        /* clone3 passes its flags in memory seccomp cannot read: make libc fall back to clone. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        /* Terminal injection (TIOCSTI, TIOCLINUX). The kernel reads the request as 32 bits,
         * so only the low 32 bits are compared: high bits cannot smuggle it past. */
        if (r >= 0 && allowlist) {
                /* An allow-list cannot add a deny rule (it is the default action), and one rule
                 * cannot compare an argument twice: allow every request around the two. */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_32(SCMP_CMP_LT, TIOCSTI));
                for (unsigned req = TIOCSTI + 1; r >= 0 && req < TIOCLINUX; req++)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                             SCMP_A1_32(SCMP_CMP_EQ, req));
                if (r >= 0)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                             SCMP_A1_32(SCMP_CMP_GT, TIOCLINUX));
        }
        if (r >= 0 && !allowlist)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_32(SCMP_CMP_EQ, TIOCSTI));
        if (r >= 0 && !allowlist)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_32(SCMP_CMP_EQ, TIOCLINUX));
        if (r < 0)
                return ak_err_set(err, -r, "seccomp: adding rules: %s", strerror(-r));

        mfd = memfd_create("seccomp", MFD_CLOEXEC);
        if (mfd < 0)
                return ak_err_set(err, errno, "memfd_create: %s", strerror(errno));
        r = seccomp_export_bpf(ctx, mfd);
        if (r < 0)
                return ak_err_set(err, -r, "seccomp: export: %s", strerror(-r));
        if (lseek(mfd, 0, SEEK_SET) < 0)
                return ak_err_set(err, errno, "lseek: %s", strerror(errno));
        r = read_fd_full(mfd, &b, 1u << 20);
        if (r < 0 || b.len == 0 || b.len % sizeof(struct sock_filter))
                return ak_err_set(err, r < 0 ? -r : EIO, "seccomp: reading program failed");
        ret->len = (unsigned short)(b.len / sizeof(struct sock_filter));
        ret->filter = (struct sock_filter *)buf_detach(&b, NULL);
        return 0;
}

/* ---- the same rules in the OCI runtime-spec JSON that container engines take ---- */

static void json_names(struct buf *b, const char *const *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                (void)buf_printf(b, "%s\"%s\"", i ? "," : "", list[i]);
}

static void json_rule(struct buf *b, const char *name, const char *action, int errno_ret, int index,
                      unsigned long long value, unsigned long long two, const char *op)
{
        (void)buf_printf(b, ",{\"names\":[\"%s\"],\"action\":\"%s\"", name, action);
        if (errno_ret)
                (void)buf_printf(b, ",\"errnoRet\":%d", errno_ret);
        if (op)
                (void)buf_printf(b,
                                 ",\"args\":[{\"index\":%d,\"value\":%llu,\"valueTwo\":%llu,"
                                 "\"op\":\"%s\"}]",
                                 index, value, two, op);
        (void)buf_printf(b, "}");
}

int seccomp_oci_json(enum seccomp_profile p, char **ret)
{
        struct buf b = BUF_INIT;
        bool allowlist = p == SECCOMP_PROFILE_RESTRICTIVE;

        (void)buf_printf(&b, "{\"defaultAction\":\"%s\",\"defaultErrnoRet\":%d,\"syscalls\":[",
                         allowlist ? "SCMP_ACT_ERRNO" : "SCMP_ACT_ALLOW", EPERM);
        if (allowlist) {
                (void)buf_printf(&b, "{\"names\":[");
                json_names(&b, allow_restrictive, ARRAY_SIZE(allow_restrictive));
                (void)buf_printf(&b, "],\"action\":\"SCMP_ACT_ALLOW\"}");
                json_rule(&b, "clone", "SCMP_ACT_ALLOW", 0, 0, NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ");
                json_rule(&b, "ioctl", "SCMP_ACT_ALLOW", 0, 1, TIOCSTI, 0, "SCMP_CMP_LT");
                for (unsigned req = TIOCSTI + 1; req < TIOCLINUX; req++)
                        json_rule(&b, "ioctl", "SCMP_ACT_ALLOW", 0, 1, req, 0, "SCMP_CMP_EQ");
                json_rule(&b, "ioctl", "SCMP_ACT_ALLOW", 0, 1, TIOCLINUX, 0, "SCMP_CMP_GT");
        } else {
                (void)buf_printf(&b, "{\"names\":[");
                json_names(&b, deny_default, ARRAY_SIZE(deny_default));
                if (p == SECCOMP_PROFILE_MODERATE) {
                        (void)buf_printf(&b, ",");
                        json_names(&b, deny_moderate, ARRAY_SIZE(deny_moderate));
                }
                (void)buf_printf(&b, "],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":%d}", EPERM);
                for (int bit = 0; bit < 32; bit++)
                        if (NS_FLAGS & (1ull << bit))
                                json_rule(&b, "clone", "SCMP_ACT_ERRNO", EPERM, 0, 1ull << bit,
                                          1ull << bit, "SCMP_CMP_MASKED_EQ");
                json_rule(&b, "ioctl", "SCMP_ACT_ERRNO", EPERM, 1, TIOCSTI, 0, "SCMP_CMP_EQ");
                json_rule(&b, "ioctl", "SCMP_ACT_ERRNO", EPERM, 1, TIOCLINUX, 0, "SCMP_CMP_EQ");
        }
        json_rule(&b, "clone3", "SCMP_ACT_ERRNO", ENOSYS, 0, 0, 0, NULL);
        (void)buf_printf(&b, "]}");
        if (!b.data) {
                buf_free(&b);
                return -ENOMEM;
        }
        *ret = buf_detach(&b, NULL);
        return 0;
}
