// SPDX-License-Identifier: Apache-2.0
/*
 * The rules of the sandbox seccomp filters, compiled with libseccomp at build time by
 * seccomp-gen (the programs are then part of agentkernel; nothing compiles a filter at run
 * time), and rendered from the same table as OCI seccomp JSON for the container engines. The
 * lists here are the security boundary's second line (after namespaces and dropped
 * capabilities): additions need a reason, removals need a test that shows the syscall is harmless
 * inside a user namespace.
 *
 * Every profile is an allow-list underneath. `restrictive` names what it allows; `default` and
 * `moderate` allow every syscall up to SYSCALL_REVIEWED_MAX except their deny lists. A syscall
 * newer than that review, or one that neither libseccomp nor late_syscalls[] below can name,
 * fails with ENOSYS (libc falls back): a new kernel never hands a sandbox a syscall nobody looked
 * at. Some syscalls are allowed only with certain arguments (struct cond); the refused arguments
 * get an errno rule of their own, the exact complement, because libseccomp cannot say "else".
 */
#include "seccomp-rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

/* clone() flags that create namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
 */
#define NS_FLAGS 0x7E020000ull
/* The newest syscall number whose meaning was reviewed for these lists (file_setattr, Linux
 * 6.17). Anything above is refused with ENOSYS in every profile. */
#define SYSCALL_REVIEWED_MAX 469
#define LOW32 0xffffffffull
#ifndef __O_TMPFILE
#define __O_TMPFILE (O_TMPFILE & ~O_DIRECTORY)
#endif
#define SETID_BITS ((uint64_t)(S_ISUID | S_ISGID))

/* Syscalls since Linux 5.1 share one number on every architecture but alpha and mips. Older
 * libseccomps cannot name the newest of them (2.5.4 may not know fchmodat2): these numbers are
 * used when libseccomp has no name for them. */
static const struct {
        const char *name;
        int nr;
} late_syscalls[] = {
    {"pidfd_send_signal", 424},
    {"io_uring_setup", 425},
    {"io_uring_enter", 426},
    {"io_uring_register", 427},
    {"open_tree", 428},
    {"move_mount", 429},
    {"fsopen", 430},
    {"fsconfig", 431},
    {"fsmount", 432},
    {"fspick", 433},
    {"pidfd_open", 434},
    {"clone3", 435},
    {"close_range", 436},
    {"openat2", 437},
    {"pidfd_getfd", 438},
    {"faccessat2", 439},
    {"process_madvise", 440},
    {"epoll_pwait2", 441},
    {"mount_setattr", 442},
    {"quotactl_fd", 443},
    {"landlock_create_ruleset", 444},
    {"landlock_add_rule", 445},
    {"landlock_restrict_self", 446},
    {"memfd_secret", 447},
    {"process_mrelease", 448},
    {"futex_waitv", 449},
    {"set_mempolicy_home_node", 450},
    {"cachestat", 451},
    {"fchmodat2", 452},
    {"map_shadow_stack", 453},
    {"futex_wake", 454},
    {"futex_wait", 455},
    {"futex_requeue", 456},
    {"statmount", 457},
    {"listmount", 458},
    {"lsm_get_self_attr", 459},
    {"lsm_set_self_attr", 460},
    {"lsm_list_modules", 461},
    {"mseal", 462},
    {"setxattrat", 463},
    {"getxattrat", 464},
    {"listxattrat", 465},
    {"removexattrat", 466},
    {"open_tree_attr", 467},
    {"file_getattr", 468},
    {"file_setattr", 469},
};

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
    "open_tree_attr",
    "mount_setattr",
    /* Beyond upstream: file handles bypass path-based checks; quotactl_fd is quotactl. */
    "open_by_handle_at",
    "quotactl_fd",
    "syslog",
    /* io_uring's operations are not seen by seccomp at all: an open with any mode, setxattr,
     * socket of any family would all pass (Docker's default profile refuses it too). */
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
};

/* Added by `moderate`: upstream adds ptrace; we add its siblings, which reach into another
 * process's memory or file descriptors with ptrace's permission check. */
static const char *const deny_moderate[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
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
    "seccomp", /* a further filter only narrows; the agent adds one to every command */
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

/* `ai-agent` (upstream's images/seccomp/ai-agent.json, for the coding agents' compatibility
 * modes) allows restrictive's list and these. Upstream's file is restrictive plus clone3,
 * close_range, epoll_pwait2, futex_waitv, landlock_*, membarrier and name_to_handle_at (all but
 * name_to_handle_at already in ours; clone3 stays ENOSYS, libc falls back to clone); its
 * defects fixed: the SysV message queues, getcpu, ioprio, POSIX message queues, memory
 * protection keys and fchmodat2 it left out by accident (runtimes call them) are allowed; mknod
 * and the scheduler setters that node and python use are allowed as upstream allows them.
 * Upstream's io_uring stays refused (its operations bypass seccomp), and so do 32-bit
 * binaries, which every profile kills (upstream listed SCMP_ARCH_X86 but its list broke them
 * anyway). */
static const char *const allow_ai_agent_extra[] = {
    "name_to_handle_at",  "mknod",           "mknodat",    "sched_setattr", "sched_setparam",
    "sched_setscheduler", "ioprio_get",      "ioprio_set", "mq_open",       "mq_unlink",
    "mq_timedsend",       "mq_timedreceive", "mq_notify",  "mq_getsetattr", "pkey_alloc",
    "pkey_free",          "pkey_mprotect",   "fchmodat2",
};

/* ---- rules, rendered to libseccomp (the BPF programs) and to OCI JSON (container engines) ---- */

/* One argument comparison. MASKED_EQ compares (arg & a) == b; the others arg OP a. Arguments the
 * kernel reads as int are compared through a 32-bit mask, so high bits cannot smuggle a value
 * past a rule (SCMP_A*_32 does not do that: it compares all 64 bits). */
struct cmp {
        unsigned arg;
        enum scmp_compare op;
        uint64_t a, b;
};

struct sink {
        scmp_filter_ctx ctx; /* the BPF program being built, or NULL */
        struct buf *json;    /* the JSON rules being written, or NULL */
        struct buf allowed;  /* JSON: names allowed without conditions, written last */
        size_t n_json;       /* JSON: rules written so far */
        uint32_t def;        /* the default action: rules with it are left out (implied) */
};

static const char *op_name(enum scmp_compare op)
{
        switch (op) {
        case SCMP_CMP_NE:
                return "SCMP_CMP_NE";
        case SCMP_CMP_LT:
                return "SCMP_CMP_LT";
        case SCMP_CMP_LE:
                return "SCMP_CMP_LE";
        case SCMP_CMP_EQ:
                return "SCMP_CMP_EQ";
        case SCMP_CMP_GE:
                return "SCMP_CMP_GE";
        case SCMP_CMP_GT:
                return "SCMP_CMP_GT";
        case SCMP_CMP_MASKED_EQ:
                return "SCMP_CMP_MASKED_EQ";
        case _SCMP_CMP_MIN:
        case _SCMP_CMP_MAX:
        default:
                return "SCMP_CMP_EQ";
        }
}

/* The syscall number of name here, or -1: libseccomp's name, else the late_syscalls[] number
 * (on architectures that share it). */
static int syscall_nr(const char *name)
{
        uint32_t arch = seccomp_arch_native();
        int nr = seccomp_syscall_resolve_name(name);

        if (nr >= 0)
                return nr;
        if (arch == SCMP_ARCH_MIPS || arch == SCMP_ARCH_MIPS64 || arch == SCMP_ARCH_MIPS64N32 ||
            arch == SCMP_ARCH_MIPSEL || arch == SCMP_ARCH_MIPSEL64 || arch == SCMP_ARCH_MIPSEL64N32)
                return -1;
        for (size_t i = 0; i < ARRAY_SIZE(late_syscalls); i++)
                if (streq(late_syscalls[i].name, name))
                        return late_syscalls[i].nr;
        return -1;
}

/* Adds one rule: action for name when every comparison holds. A syscall this architecture does
 * not have is skipped; so is a rule whose action is the default one (libseccomp refuses those,
 * and the default applies anyway). */
static int rule(struct sink *s, const char *name, uint32_t action, size_t n, const struct cmp *c)
{
        struct scmp_arg_cmp args[6];
        int nr = syscall_nr(name), r;

        if (nr < 0 || nr > SYSCALL_REVIEWED_MAX || action == s->def || n > ARRAY_SIZE(args))
                return 0;
        if (s->json && action == SCMP_ACT_ALLOW && n == 0)
                return buf_printf(&s->allowed, "%s\"%s\"", s->allowed.len ? "," : "", name);
        if (s->json) {
                bool errno_action = action != SCMP_ACT_ALLOW;
                r = buf_printf(s->json, "%s{\"names\":[\"%s\"],\"action\":\"%s\"",
                               s->n_json++ ? "," : "", name,
                               errno_action ? "SCMP_ACT_ERRNO" : "SCMP_ACT_ALLOW");
                if (r >= 0 && errno_action)
                        r = buf_printf(s->json, ",\"errnoRet\":%u", action & 0xffffu);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = buf_printf(
                            s->json,
                            "%s{\"index\":%u,\"value\":%llu,\"valueTwo\":%llu,"
                            "\"op\":\"%s\"}",
                            i ? "," : ",\"args\":[", c[i].arg, (unsigned long long)c[i].a,
                            (unsigned long long)(c[i].op == SCMP_CMP_MASKED_EQ ? c[i].b : 0),
                            op_name(c[i].op));
                if (r >= 0)
                        r = buf_printf(s->json, "%s}", n ? "]" : "");
                return r;
        }
        for (size_t i = 0; i < n; i++)
                args[i] = (struct scmp_arg_cmp){c[i].arg, c[i].op, c[i].a, c[i].b};
        r = seccomp_rule_add_array(s->ctx, action, nr, (unsigned)n, args);
        return r == -EEXIST ? 0 : r;
}

static int rule0(struct sink *s, const char *name, uint32_t action)
{
        return rule(s, name, action, 0, NULL);
}

static int rule1(struct sink *s, const char *name, uint32_t action, struct cmp c)
{
        return rule(s, name, action, 1, &c);
}

static int rule2(struct sink *s, const char *name, uint32_t action, struct cmp c1, struct cmp c2)
{
        return rule(s, name, action, 2, (const struct cmp[]){c1, c2});
}

static struct cmp masked(unsigned arg, uint64_t mask, uint64_t value)
{
        return (struct cmp){arg, SCMP_CMP_MASKED_EQ, mask, value};
}

static struct cmp cmp(unsigned arg, enum scmp_compare op, uint64_t value)
{
        return (struct cmp){arg, op, value, 0};
}

#define EPERM_ACT SCMP_ACT_ERRNO(EPERM)

/* ---- syscalls allowed only with some arguments ---- */

/* clone without namespace flags (NS_FLAGS), each flag refused on its own. */
static int cond_clone(struct sink *s, const char *name)
{
        int r = rule1(s, name, SCMP_ACT_ALLOW, masked(0, NS_FLAGS, 0));

        for (int bit = 0; r >= 0 && bit < 32; bit++)
                if (NS_FLAGS & (1ull << bit))
                        r = rule1(s, name, EPERM_ACT, masked(0, 1ull << bit, 1ull << bit));
        return r;
}

/* ioctl except terminal injection (TIOCSTI, TIOCLINUX). The kernel reads the request as 32 bits
 * and ignores the rest, so the rules look at the low 32 bits only: every request whose low word
 * differs from both in a bit where they agree, then the few that agree with them there. */
static int cond_ioctl(struct sink *s, const char *name)
{
        const uint64_t sti = TIOCSTI, lin = TIOCLINUX, differ = sti ^ lin;
        int r = rule1(s, name, EPERM_ACT, masked(1, LOW32, sti));

        if (r >= 0)
                r = rule1(s, name, EPERM_ACT, masked(1, LOW32, lin));
        for (int bit = 0; r >= 0 && bit < 32; bit++) {
                uint64_t m = 1ull << bit;
                if (!(differ & m))
                        r = rule1(s, name, SCMP_ACT_ALLOW, masked(1, m, ~sti & m));
        }
        /* agreeing everywhere else: every combination of the differing bits but the two */
        for (uint64_t v = 0; r >= 0 && v <= differ; v++) {
                uint64_t req = (sti & ~differ) | (v & differ);
                if ((v & ~differ) == 0 && req != sti && req != lin)
                        r = rule1(s, name, SCMP_ACT_ALLOW, masked(1, LOW32, req));
        }
        return r;
}

/* A mode argument without the setuid and setgid bits: a file a sandbox creates or changes never
 * gets them, wherever it lies (a workspace or volume is the host's file system). */
static int cond_mode(struct sink *s, const char *name, unsigned arg)
{
        int r = rule1(s, name, SCMP_ACT_ALLOW, masked(arg, SETID_BITS, 0));

        if (r >= 0)
                r = rule1(s, name, EPERM_ACT, masked(arg, S_ISUID, S_ISUID));
        if (r >= 0)
                r = rule1(s, name, EPERM_ACT, masked(arg, S_ISGID, S_ISGID));
        return r;
}

/* open and openat: the mode counts only with O_CREAT or O_TMPFILE. */
static int cond_open(struct sink *s, const char *name, unsigned flags_arg, unsigned mode_arg)
{
        static const uint64_t creates[] = {O_CREAT, __O_TMPFILE};
        static const uint64_t bits[] = {S_ISUID, S_ISGID};
        int r = rule1(s, name, SCMP_ACT_ALLOW, masked(flags_arg, O_CREAT | __O_TMPFILE, 0));

        if (r >= 0)
                r = rule1(s, name, SCMP_ACT_ALLOW, masked(mode_arg, SETID_BITS, 0));
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(creates); i++)
                for (size_t j = 0; r >= 0 && j < ARRAY_SIZE(bits); j++)
                        r = rule2(s, name, EPERM_ACT, masked(flags_arg, creates[i], creates[i]),
                                  masked(mode_arg, bits[j], bits[j]));
        return r;
}

/* socket families a sandbox needs, whatever its network mode: unix, IPv4 and IPv6 (loopback
 * is there even with the network off) and netlink (the namespace's own routes and links, for
 * ip, getaddrinfo's AI_ADDRCONFIG, if_nameindex). vsock (not namespaced: a channel to the
 * hypervisor and host), packet, bluetooth, alg, key and the rest are refused. The family is
 * compared on all 64 bits: a value with high bits set is refused, never reinterpreted. */
static const int socket_families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

static int cond_socket(struct sink *s, const char *name, bool unix_only)
{
        const uint32_t refuse = SCMP_ACT_ERRNO(EAFNOSUPPORT);
        int last = unix_only ? AF_UNIX : AF_NETLINK, r = 0;

        for (int f = 0; r >= 0 && f <= last; f++) {
                bool ok = false;
                for (size_t i = 0; i < ARRAY_SIZE(socket_families); i++)
                        ok |= socket_families[i] == f && (!unix_only || f == AF_UNIX);
                r = rule1(s, name, ok ? SCMP_ACT_ALLOW : refuse, cmp(0, SCMP_CMP_EQ, (uint64_t)f));
        }
        if (r >= 0)
                r = rule1(s, name, refuse, cmp(0, SCMP_CMP_GT, (uint64_t)last));
        return r;
}

/* personality: as Docker's default profile allows, PER_LINUX (0), PER_LINUX32 (8), UNAME26
 * (0x20000), their combination, and the query 0xffffffff; READ_IMPLIES_EXEC,
 * ADDR_NO_RANDOMIZE and every other flag are refused. The kernel reads 32 bits. */
#define PERSONA_ALLOWED 0x20008u
#define PERSONA_QUERY 0xffffffffu

static int cond_personality(struct sink *s, const char *name)
{
        const uint64_t top = 1ull << 31;
        int r = rule1(s, name, SCMP_ACT_ALLOW, masked(0, ~(uint64_t)PERSONA_ALLOWED & LOW32, 0));

        if (r >= 0)
                r = rule1(s, name, SCMP_ACT_ALLOW, masked(0, LOW32, PERSONA_QUERY));
        /* refused: a flag bit set while bit 31 is clear ... */
        for (int bit = 0; r >= 0 && bit < 31; bit++)
                if (!(PERSONA_ALLOWED & (1u << bit)))
                        r = rule1(s, name, EPERM_ACT, masked(0, top | (1ull << bit), 1ull << bit));
        /* ... or bit 31 set and any other bit clear (all set is the query) */
        for (int bit = 0; r >= 0 && bit < 31; bit++)
                r = rule1(s, name, EPERM_ACT, masked(0, top | (1ull << bit), top));
        return r;
}

/* The syscalls with conditions; in every profile that allows them at all. */
static const char *const conditional[] = {
    "clone", "ioctl", "socket", "socketpair", "personality", "clone3", "openat2",
};

/* The syscalls that can give a file the setuid or setgid bit: conditional only in the host-files
 * variant (a sandbox that writes host directories), plain otherwise. */
static const char *const conditional_host_files[] = {
    "chmod", "fchmod", "fchmodat", "fchmodat2", "creat", "mknod", "mknodat", "open", "openat",
};

static bool is_conditional(const char *name, bool host_files)
{
        for (size_t i = 0; i < ARRAY_SIZE(conditional); i++)
                if (streq(conditional[i], name))
                        return true;
        for (size_t i = 0; host_files && i < ARRAY_SIZE(conditional_host_files); i++)
                if (streq(conditional_host_files[i], name))
                        return true;
        return false;
}

/*
 * The host-files rules: no file a sandbox creates or changes gets the setuid or setgid bit. A
 * workspace or volume is the host's file system, where such a file would outlive the sandbox and
 * run with its owner's ids for any local user who reaches it (inside, no_new_privs and nosuid
 * make the bits inert). The mode of every call that sets one is refused (EPERM), wherever the
 * file lies: seccomp cannot tell which mount a path is on. Sandboxes without a writable host
 * directory do not get these rules: everything they write is on their own disk (a tmpfs) and
 * leaves the sandbox only through `cp`, which drops the bits; a package manager there can still
 * install programs that ship setuid (dpkg stops when their chmod is refused).
 */
static int add_host_file_rules(struct sink *s, bool allowlist, bool mknod)
{
        int r = cond_mode(s, "chmod", 1);

        if (r >= 0)
                r = cond_mode(s, "fchmod", 1);
        if (r >= 0)
                r = cond_mode(s, "fchmodat", 2);
        if (r >= 0)
                r = cond_mode(s, "fchmodat2", 2);
        if (r >= 0)
                r = cond_mode(s, "creat", 1);
        if (r >= 0)
                r = cond_open(s, "open", 1, 2);
        if (r >= 0)
                r = cond_open(s, "openat", 2, 3);
        /* the restrictive allow-list names neither mknod nor mknodat: refused outright */
        if (r >= 0 && (!allowlist || mknod))
                r = cond_mode(s, "mknod", 1);
        if (r >= 0 && (!allowlist || mknod))
                r = cond_mode(s, "mknodat", 2);
        return r;
}

static int add_conditional(struct sink *s, bool allowlist, bool host_files, bool mknod)
{
        int r = cond_clone(s, "clone");

        /* clone3 passes its flags in memory seccomp cannot read: libc falls back to clone.
         * openat2's mode is behind a pointer too, but the agent needs it for itself
         * (RESOLVE_NO_MAGICLINKS): allowed here, refused to every command by the filter the agent
         * adds for them (agent_child_setup: ENOSYS, libc falls back to openat). */
        if (r >= 0)
                r = rule0(s, "clone3", SCMP_ACT_ERRNO(ENOSYS));
        if (r >= 0)
                r = rule0(s, "openat2", SCMP_ACT_ALLOW);
        if (r >= 0)
                r = cond_ioctl(s, "ioctl");
        if (r >= 0)
                r = cond_socket(s, "socket", false);
        if (r >= 0)
                r = cond_socket(s, "socketpair", true);
        if (r >= 0 && host_files)
                r = add_host_file_rules(s, allowlist, mknod);
        /* the restrictive allow-list names no personality: refused outright */
        if (r >= 0 && !allowlist && s->def != SCMP_ACT_ALLOW) /* else the prefix's */
                r = cond_personality(s, "personality");
        return r;
}

static bool listed(const char *name, const char *const *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (streq(list[i], name))
                        return true;
        return false;
}

/* The name of syscall nr here (malloc'd), or NULL. */
static char *syscall_name(int nr)
{
        char *name = seccomp_syscall_resolve_num_arch(seccomp_arch_native(), nr);

        for (size_t i = 0; !name && i < ARRAY_SIZE(late_syscalls); i++)
                if (late_syscalls[i].nr == nr && syscall_nr(late_syscalls[i].name) == nr)
                        name = strdup(late_syscalls[i].name);
        return name;
}

/* The profiles that name what they allow (EPERM for the rest). */
static bool is_allowlist(enum seccomp_profile p)
{
        return p == SECCOMP_PROFILE_RESTRICTIVE || p == SECCOMP_PROFILE_AI_AGENT;
}

static int add_rules(struct sink *s, enum seccomp_profile p, bool host_files)
{
        bool allowlist = is_allowlist(p), ai = p == SECCOMP_PROFILE_AI_AGENT;
        int r = 0;

        if (allowlist) {
                for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(allow_restrictive); i++)
                        if (!is_conditional(allow_restrictive[i], host_files))
                                r = rule0(s, allow_restrictive[i], SCMP_ACT_ALLOW);
                for (size_t i = 0; ai && r >= 0 && i < ARRAY_SIZE(allow_ai_agent_extra); i++)
                        if (!is_conditional(allow_ai_agent_extra[i], host_files))
                                r = rule0(s, allow_ai_agent_extra[i], SCMP_ACT_ALLOW);
                return r < 0 ? r : add_conditional(s, true, host_files, ai);
        }
        for (int nr = 0; r >= 0 && nr <= SYSCALL_REVIEWED_MAX; nr++) {
                cleanup_free char *name = syscall_name(nr);
                bool denied;
                if (!name || is_conditional(name, host_files))
                        continue;
                denied = listed(name, deny_default, ARRAY_SIZE(deny_default)) ||
                         (p == SECCOMP_PROFILE_MODERATE &&
                          listed(name, deny_moderate, ARRAY_SIZE(deny_moderate)));
                r = rule0(s, name, denied ? EPERM_ACT : SCMP_ACT_ALLOW);
        }
        return r < 0 ? r : add_conditional(s, false, host_files, true);
}

/* What a profile does with a syscall no rule names: restrictive EPERM (as it always has), the
 * others ENOSYS (a syscall newer than the review, which libc treats as absent). */
static uint32_t default_action(enum seccomp_profile p)
{
        return is_allowlist(p) ? EPERM_ACT : SCMP_ACT_ERRNO(ENOSYS);
}

/* Architectures whose syscall numbers above 423 are the shared ones (late_syscalls[]). */
static bool unified_numbers(uint32_t arch)
{
        return arch == SCMP_ARCH_X86_64 || arch == SCMP_ARCH_AARCH64 || arch == SCMP_ARCH_RISCV64 ||
               arch == SCMP_ARCH_PPC64 || arch == SCMP_ARCH_PPC64LE || arch == SCMP_ARCH_S390X;
}

/*
 * The BPF programs of `default` and `moderate` are written the other way round from their JSON:
 * allow by default, refuse the deny lists and the refused arguments; a prefix written here
 * refuses every number above SYSCALL_REVIEWED_MAX with ENOSYS and checks personality()'s
 * argument (libseccomp can compare a syscall number with neither a range nor, in one rule, an
 * argument with two values). The same syscalls and arguments as the JSON's allow-list, in a
 * fraction of the instructions: a sandbox start loads the program (the kernel compiles it and
 * precomputes its per-syscall answers), and the long allow-list made that ~100 us slower.
 * Numbers at or below the review that no rule names are unused (the kernel answers ENOSYS) or
 * reviewed and allowed.
 */
static int prepend_prefix(struct buf *b)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint32_t arg0_low = offsetof(struct seccomp_data, args[0]);
#else
        const uint32_t arg0_low = offsetof(struct seccomp_data, args[0]) + 4;
#endif
        const int personality = syscall_nr("personality");
        /* instruction 12 is libseccomp's first: jumps are counted from the next instruction */
        const struct sock_filter pre[] = {
            /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 0, 10),
            /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            /* 3: x32's numbers: libseccomp's program kills those */
            BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 8, 0),
            /* 4 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, SYSCALL_REVIEWED_MAX, 0, 1),
            /* 5 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
            /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)personality, 0, 5),
            /* 7: the kernel reads 32 bits */
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0_low),
            /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PERSONA_QUERY, 3, 0),
            /* 9 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~PERSONA_ALLOWED),
            /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
            /* 11 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        };
        struct buf out = BUF_INIT;
        int r = personality < 0 ? -ENOSYS : buf_append(&out, pre, sizeof(pre));

        if (r >= 0)
                r = buf_append(&out, b->data, b->len);
        if (r < 0) {
                buf_done(&out);
                return r;
        }
        buf_done(b);
        *b = out;
        return 0;
}

static void release_ctx(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

int seccomp_build(enum seccomp_profile p, bool host_files, struct sock_fprog *ret,
                  struct ak_err *err)
{
        scmp_filter_ctx ctx CLEANUP(release_ctx) = NULL;
        bool deny_form = !is_allowlist(p) && unified_numbers(seccomp_arch_native());
        struct sink s = {.def = deny_form ? SCMP_ACT_ALLOW : default_action(p)};
        cleanup_close int mfd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        int r;

        ctx = seccomp_init(s.def);
        if (!ctx)
                return ak_err_set(err, ENOMEM, "seccomp_init failed");
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return ak_err_errno(err, r, "seccomp: bad-arch action");
        /* A binary tree of syscall numbers instead of a linear list: every syscall of every
         * command runs through this program. */
        (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        s.ctx = ctx;
        r = add_rules(&s, p, host_files);
        if (r < 0)
                return ak_err_errno(err, r, "seccomp: adding rules");

        mfd = memfd_create("seccomp", MFD_CLOEXEC);
        if (mfd < 0)
                return ak_err_errno(err, errno, "memfd_create");
        r = seccomp_export_bpf(ctx, mfd);
        if (r < 0)
                return ak_err_errno(err, r, "seccomp: export");
        if (lseek(mfd, 0, SEEK_SET) < 0)
                return ak_err_errno(err, errno, "lseek");
        r = read_fd_full(mfd, &b, 1u << 20);
        if (r < 0 || b.len == 0 || b.len % sizeof(struct sock_filter))
                return ak_err_set(err, r < 0 ? -r : EIO, "seccomp: reading program failed");
        if (deny_form && (r = prepend_prefix(&b)) < 0)
                return ak_err_errno(err, r, "seccomp");
        if (b.len / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return ak_err_set(err, E2BIG, "seccomp: program longer than %d instructions",
                                  BPF_MAXINSNS);
        ret->len = (unsigned short)(b.len / sizeof(struct sock_filter));
        ret->filter = (struct sock_filter *)buf_detach(&b, NULL);
        return 0;
}

int seccomp_oci_json(enum seccomp_profile p, bool host_files, char **ret)
{
        struct buf json = BUF_INIT;
        struct sink s = {.json = &json, .def = default_action(p)};
        int r;

        r = buf_printf(
            &json, "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":%u,\"syscalls\":[",
            s.def & 0xffffu);
        if (r >= 0)
                r = add_rules(&s, p, host_files);
        if (r >= 0 && s.allowed.len)
                r = buf_printf(&json, "%s{\"names\":[%s],\"action\":\"SCMP_ACT_ALLOW\"}",
                               s.n_json ? "," : "", s.allowed.data);
        if (r >= 0)
                r = buf_printf(&json, "]}");
        buf_done(&s.allowed);
        if (r < 0 || !json.data) {
                buf_done(&json);
                return -ENOMEM;
        }
        *ret = buf_detach(&json, NULL);
        return 0;
}
