// SPDX-License-Identifier: Apache-2.0
/* Verified process handling for backends. Never signals a pid it has not just re-verified. */
#include "proc-util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/dir-cache.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"
#include "shared/time-util.h"

int proc_start_time(pid_t pid, uint64_t *ret)
{
        /* The line is at most ~1.1 KiB (a 16-byte comm, 50 numbers); procfs hands it out whole
         * in one read (list checks thousands: no fstat, no second read to see the end, no
         * allocation). A read that fills the buffer is refused rather than cut. */
        char path[64], line[4096];
        cleanup_close int fd = -1;
        ssize_t n;
        char *p;
        int field = 2;

        const char *rest;
        int at;

        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        at = dir_cache_at(path, 2, &rest); /* list: a kept fd of /proc */
        fd = openat(at, rest, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -ESRCH;
        do
                n = read(fd, line, sizeof(line) - 1);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return -ESRCH;
        if ((size_t)n >= sizeof(line) - 1)
                return -EIO;
        line[n] = '\0';
        p = strrchr(line, ')');
        if (!p || p[1] != ' ')
                return -EIO;
        /* A zombie (or dead) process is gone for every purpose of ours. */
        if (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x')
                return -ESRCH;
        for (p++; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        *ret = strtoull(p, NULL, 10);
        return 0;
}

static bool proc_same(pid_t pid, uint64_t start_time)
{
        uint64_t now = 0;
        return pid > 1 && proc_start_time(pid, &now) == 0 && now == start_time;
}

int proc_boot_id(char ret[PROC_BOOT_ID_LEN + 1])
{
        /* read once per process: it changes only with a reboot (a benign race between threads
         * writes the same bytes) */
        static char cached[PROC_BOOT_ID_LEN + 1];
        cleanup_buf struct buf b = BUF_INIT;

        if (!cached[0]) {
                if (read_file_at(AT_FDCWD, "/proc/sys/kernel/random/boot_id", &b, 64) < 0 ||
                    !b.data || b.len < PROC_BOOT_ID_LEN)
                        return -ENOENT;
                memcpy(cached, b.data, PROC_BOOT_ID_LEN);
        }
        memcpy(ret, cached, sizeof(cached));
        return 0;
}

/* PID 1 of its own pid namespace ("NSpid: <host pid> ... 1"), in a user namespace other than
 * ours that our euid owns. */
static bool ns_init(pid_t pid)
{
        char path[64], *line, *save = NULL, *last = NULL;
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int fd = -1;
        struct stat mine, theirs;
        size_t levels = 0;
        uid_t owner;

        (void)snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return false;
        line = strstr(b.data, "\nNSpid:");
        if (!line)
                return false;
        line[strcspn(line + 1, "\n") + 1] = '\0';
        for (char *t = strtok_r(line + 8, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
                last = t;
                levels++;
        }
        if (levels < 2 || !last || !streq(last, "1"))
                return false;
        (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &theirs) < 0 || stat("/proc/self/ns/user", &mine) < 0)
                return false;
        if (theirs.st_dev == mine.st_dev && theirs.st_ino == mine.st_ino)
                return false;
        return ioctl(fd, NS_GET_OWNER_UID, &owner) == 0 && owner == geteuid();
}

/* Whether pid's command line holds opt ("--uuid") followed by uuid as one argument: what the agent
 * of that sandbox was started with. A process's command line is what it was executed with
 * unless the process rewrites its own memory; the agent never does, and nothing in a sandbox can
 * write the agent's memory (it is non-dumpable). */
static bool started_for(pid_t pid, const char *opt, const char *uuid)
{
        char path[64];
        cleanup_buf struct buf b = BUF_INIT;
        size_t i = 0;

        (void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return false;
        while (i < b.len) {
                const char *arg = b.data + i;
                size_t n = strnlen(arg, b.len - i);
                if (i + n >= b.len) /* unterminated: the end of what was read */
                        return false;
                i += n + 1;
                if (streq(arg, opt))
                        return i < b.len && strnlen(b.data + i, b.len - i) < b.len - i &&
                               streq(b.data + i, uuid);
        }
        return false;
}

#define CGROUP_PROCS_MAX (1u << 20) /* past this, not a list of our sandbox's processes */

/* Whether dir/cgroup.procs lists pid. Read a page at a time, up to the line that names pid:
 * for a sandbox's few processes one read, without an fstat() or a read of the end. Only whole
 * lines count ("15" is not the start of "1589\n"). */
static bool in_cgroup(pid_t pid, const char *dir)
{
        char path[4200], chunk[4096];
        const char *rest;
        cleanup_close int fd = -1;
        size_t have = 0, total = 0;
        uint32_t p;
        int at;

        if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
                return false;
        at = dir_cache_at(path, 2, &rest); /* list: a kept fd of the cgroups' parent */
        fd = openat(at, rest, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return false;
        for (;;) {
                ssize_t n = read(fd, chunk + have, sizeof(chunk) - 1 - have);
                char *s = chunk, *nl;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return false;
                if (n == 0) { /* the end: a last line without its newline counts too */
                        chunk[have] = '\0';
                        return have && safe_atou32(chunk, &p) == 0 && (pid_t)p == pid;
                }
                total += (size_t)n;
                if (total > CGROUP_PROCS_MAX)
                        return false;
                have += (size_t)n;
                while ((nl = memchr(s, '\n', have - (size_t)(s - chunk)))) {
                        *nl = '\0';
                        if (safe_atou32(s, &p) == 0 && (pid_t)p == pid)
                                return true;
                        s = nl + 1;
                }
                have -= (size_t)(s - chunk);
                memmove(chunk, s, have);
                if (have == sizeof(chunk) - 1) /* a line of a page: no pid */
                        return false;
        }
}

bool proc_verify(const struct proc_ident *id)
{
        if (id->boot_id && *id->boot_id) {
                char now[PROC_BOOT_ID_LEN + 1];
                if (proc_boot_id(now) < 0 || !streq(now, id->boot_id))
                        return false;
        }
        if (!proc_same(id->pid, id->start_time))
                return false;
        if (id->cgroup_dir && !in_cgroup(id->pid, id->cgroup_dir))
                return false;
        if (id->ns_init && !ns_init(id->pid))
                return false;
        if (id->uuid && !started_for(id->pid, id->uuid_opt ? id->uuid_opt : "--uuid", id->uuid))
                return false;
        return true;
}

bool proc_wait_exit(int pidfd, pid_t pid, uint64_t start_time, int timeout_ms)
{
        int64_t until = now_monotonic_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;

        if (pidfd >= 0) {
                struct pollfd p = {pidfd, POLLIN, 0};
                int r;
                do
                        r = poll(&p, 1, timeout_ms);
                while (r < 0 && errno == EINTR);
                return r > 0;
        }
        while (now_monotonic_ns() < until) {
                if (!proc_same(pid, start_time))
                        return true;
                usleep(2000);
        }
        return !proc_same(pid, start_time);
}

static void send(int pidfd, pid_t pid, int sig)
{
        if (pidfd >= 0)
                (void)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
        else
                (void)kill(pid, sig);
}

void proc_terminate(const struct proc_ident *id, int grace_ms)
{
        cleanup_close int pidfd = -1;

        if (!proc_verify(id))
                return;
        pidfd = (int)syscall(SYS_pidfd_open, id->pid, 0);
        /* Re-check with the pidfd held: it now pins whichever process has this pid, and the
         * signals go through it. */
        if (!proc_verify(id))
                return;
        send(pidfd, id->pid, SIGTERM);
        if (!proc_wait_exit(pidfd, id->pid, id->start_time, grace_ms)) {
                send(pidfd, id->pid, SIGKILL);
                (void)proc_wait_exit(pidfd, id->pid, id->start_time, grace_ms);
        }
}

bool proc_find_program(const char *const *envs, const char *name, char *out, size_t len)
{
        const char *path = getenv("PATH");
        cleanup_free char *copy = NULL;
        char *save = NULL;

        for (const char *const *e = envs; e && *e; e++) {
                const char *v = secure_getenv(*e);
                if (v && *v) {
                        (void)snprintf(out, len, "%s", v);
                        return access(out, X_OK) == 0;
                }
        }
        copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        if (!copy)
                return false;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                (void)snprintf(out, len, "%s/%s", d, name);
                if (access(out, X_OK) == 0)
                        return true;
        }
        return false;
}

int proc_fork_worker(int *ready_fd)
{
        int ready[2];
        pid_t pid;

        if (pipe2(ready, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(ready[0]);
                close(ready[1]);
                return r;
        }
        if (pid > 0) {
                struct pollfd pfd = {ready[0], POLLIN, 0};
                close(ready[1]);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                (void)poll(&pfd, 1, 5000); /* EOF: the worker let go of it */
                close(ready[0]);
                return 1;
        }
        /* the intermediate child exits at once: the worker is nobody's child to wait for */
        if (setsid() < 0 || fork() != 0)
                _exit(0);
        {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        (void)dup2(null, 0);
                        (void)dup2(null, 1);
                        (void)dup2(null, 2);
                }
                (void)close_all_fds_except(3, &ready[1], 1);
                (void)signal(SIGPIPE, SIG_IGN);
        }
        *ready_fd = ready[1];
        return 0;
}

int proc_spawn_detached(void (*child)(void *arg), void *arg, pid_t *ret_pid)
{
        int p[2], status;
        int32_t pid = 0;
        pid_t mid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        mid = fork();
        if (mid < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                return r;
        }
        if (mid == 0) {
                sigset_t none;
                pid_t g;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void)setsid();
                g = fork();
                if (g == 0) {
                        close(p[0]);
                        close(p[1]);
                        child(arg);
                        _exit(127);
                }
                pid = (int32_t)g;
                _exit(g < 0 || write(p[1], &pid, sizeof(pid)) != sizeof(pid) ? 1 : 0);
        }
        close(p[1]);
        while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
                ;
        if (read(p[0], &pid, sizeof(pid)) != sizeof(pid) || pid <= 1) {
                close(p[0]);
                return -EIO;
        }
        close(p[0]);
        *ret_pid = pid;
        return 0;
}
