// SPDX-License-Identifier: Apache-2.0
/*
 * What a running microvm sandbox uses (backend_ops.stats, docs/backends.md, "Stats"), from two
 * sides. The host's: the proportional set size (PSS, /proc/PID/smaps_rollup) and the CPU time
 * (utime + stime of /proc/PID/stat) of the processes that run on the host for it: the
 * hypervisor and the relay. That is what the VM costs the host, and what `/stats` and the
 * metrics' memory and CPU figures are for every backend. The guest's: its agent answers STATS
 * (docs/protocol.md) with the guest's user-space processes and its memory in use and in all, as
 * the guest's kernel counts them. The guest's answer is the guest's word: it sizes nothing on the
 * host and is reported as what it is (guest_*), never in place of the host's figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "backend/microvm.h"
#include "core/backend.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

#define STATS_TIMEOUT_MS 2000 /* the guest's answer: under emulation on a busy host, slow */

static uint64_t pss_bytes(pid_t pid)
{
        char path[64];
        cleanup_buf struct buf b = BUF_INIT;
        const char *p;
        unsigned long long kb;

        (void)snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        if (read_file_at(AT_FDCWD, path, &b, 1u << 16) < 0 || !b.data)
                return 0;
        p = memmem(b.data, b.len, "\nPss:", 5);
        if (!p || sscanf(p + 5, "%llu", &kb) != 1)
                return 0;
        return (uint64_t)kb * 1024;
}

static uint64_t cpu_usec(pid_t pid)
{
        char path[64];
        cleanup_buf struct buf b = BUF_INIT;
        const char *p;
        unsigned long long ut, st;
        long hz = sysconf(_SC_CLK_TCK);

        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (hz <= 0 || read_file_at(AT_FDCWD, path, &b, 4096) < 0 || !b.data)
                return 0;
        p = memrchr(b.data, ')', b.len);
        /* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
         * cmajflt utime stime */
        if (!p ||
            sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                return 0;
        return (ut + st) * (1000000ull / (unsigned long long)hz);
}

void vm_host_stats(const pid_t *pids, size_t n, struct backend_stats *ret)
{
        for (size_t i = 0; i < n; i++) {
                if (pids[i] <= 0)
                        continue;
                ret->memory_bytes += pss_bytes(pids[i]);
                ret->cpu_usec += cpu_usec(pids[i]);
        }
}

int vm_guest_stats(const char *agent_sock, struct backend_stats *ret)
{
        cleanup_close int fd = unix_connect(agent_sock, NULL);
        cleanup_buf struct buf req = BUF_INIT, rep = BUF_INIT;
        struct timeval tv = {STATS_TIMEOUT_MS / 1000, (STATS_TIMEOUT_MS % 1000) * 1000};
        struct ak_msg m;
        uint64_t pids, used, total;
        size_t start;
        int r;

        if (fd < 0)
                return fd;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        start = ak_msg_begin(&req, AK_STATS);
        if (start == (size_t)-1 || ak_msg_end(&req, start) < 0)
                return -ENOMEM;
        r = ak_write_buf(fd, &req);
        if (r < 0)
                return r;
        r = ak_read_frame(fd, &rep, &m);
        if (r < 0)
                return r;
        if (m.type != AK_OK)
                return -EPROTO; /* an agent without STATS, or one that failed it */
        /* the guest's word: taken as numbers, bounded by nothing but their type */
        if (ak_get_u64(&m, AK_T_PIDS, &pids) < 0 || ak_get_u64(&m, AK_T_MEM_USED, &used) < 0 ||
            ak_get_u64(&m, AK_T_MEM_TOTAL, &total) < 0)
                return -EPROTO;
        ret->pids = pids;
        ret->guest_memory_bytes = used;
        ret->guest_memory_total_bytes = total;
        ret->guest = true;
        return 0;
}
