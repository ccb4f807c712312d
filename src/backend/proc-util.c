// SPDX-License-Identifier: Apache-2.0
/* Verified process handling for backends. Never signals a pid it has not just re-verified. */
#include "proc-util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/fd-util.h"
#include "shared/time-util.h"

int proc_start_time(pid_t pid, uint64_t *ret)
{
        char path[64];
        cleanup_buf struct buf b = BUF_INIT;
        char *p;
        int field = 2;

        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 8192) < 0 || !b.data)
                return -ESRCH;
        p = strrchr(b.data, ')');
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

bool proc_same(pid_t pid, uint64_t start_time)
{
        uint64_t now = 0;
        return pid > 0 && proc_start_time(pid, &now) == 0 && now == start_time;
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

void proc_terminate(pid_t pid, uint64_t start_time, int grace_ms)
{
        int pidfd;

        if (!proc_same(pid, start_time))
                return;
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        /* Re-check with the pidfd held: it now pins whichever process has this pid. */
        if (!proc_same(pid, start_time)) {
                if (pidfd >= 0)
                        close(pidfd);
                return;
        }
        send(pidfd, pid, SIGTERM);
        if (!proc_wait_exit(pidfd, pid, start_time, grace_ms)) {
                send(pidfd, pid, SIGKILL);
                (void)proc_wait_exit(pidfd, pid, start_time, grace_ms);
        }
        if (pidfd >= 0)
                close(pidfd);
}
