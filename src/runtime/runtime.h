/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The native runtime: creates a sandbox's namespaces, builds its root filesystem from a flat list
 * of mount operations, applies the seccomp filter and capability limits, and executes the agent
 * as the sandbox's PID 1. Everything the child needs is prepared by the parent beforehand; the
 * child runs a linear recipe that allocates nothing and dies on the first failure, reporting the
 * failed step through a pipe (crun, bubblewrap).
 */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mount-plan.h"
#include "shared/err.h"

#define RUNTIME_HOLD_MAX 2 /* fds the agent holds for the host (see runtime_spec) */

struct runtime_spec {
        bool rootless;     /* map only the caller's uid/gid, as an unprivileged user */
        uint32_t id_base;  /* rootful: host uid/gid of the sandbox's root */
        uint32_t id_count; /* rootful: how many ids are mapped */
        uid_t host_uid;    /* rootless: the caller's ids */
        gid_t host_gid;
        const char *hostname;
        bool read_only_root; /* an image root (a first op mounting "/") is writable unless this */
        const struct mount_plan *plan;
        /* The sandbox's disk: one tmpfs of this size holding every MOP_DISK_DIR and the upper
         * layer of a MOP_OVERLAY, so that what the sandbox writes to its own places is bounded
         * together (and charged to its memory cgroup, as tmpfs pages are). 0: none. */
        uint64_t disk_bytes;
        const char *workdir;             /* chdir here before starting the agent */
        const char *const *cgroup_procs; /* NULL-terminated cgroup.procs files to join */
        const struct sock_fprog *seccomp;
        uint64_t agent_caps;          /* capability bounding set of the agent */
        const char *state_tmpfs_opts; /* mount options of the agent's private state tmpfs */
        int agent_exe_fd;             /* the agent binary, opened by the parent */
        int chan_fd;                  /* listening socket or connected socket: becomes fd 3 */
        /* kept open by the agent for its lifetime, as fds 6, 7, ... in this order */
        int hold_fds[RUNTIME_HOLD_MAX];
        size_t n_hold;
        char *const *agent_argv; /* names fd 3 (channel), 4 (sync), 5 (state), 6... (held) */
        char *const *agent_envp;
        /* Proxy mode (net-capture.h): the child installs the capture in its network namespace
         * and makes the proxy's listeners, which runtime_spawn() hands back in
         * runtime_child.capture_fds. */
        bool net_capture;
        /* Called in the parent once the child's namespaces exist and its ids are mapped, while
         * the child sets itself up: work that needs the namespaces (networking) overlaps it. */
        void (*on_namespaces)(pid_t pid, void *ctx);
        void *ctx;
};

struct runtime_child {
        pid_t pid;          /* host pid of the sandbox's PID 1 */
        int pidfd;          /* pidfd of it (or -1 when the kernel has no pidfd_open) */
        int sync_fd;        /* handshake channel: write 'C' to commit, close to abort */
        int capture_fds[3]; /* net_capture: the listeners (net-capture.h's order), else -1 */
};

/* Starts a sandbox. On success the agent is running as PID 1 and *ret is filled; the caller
 * must either commit (write 'C' to sync_fd) or close sync_fd to tear the sandbox down. */
int runtime_spawn(const struct runtime_spec *spec, struct runtime_child *ret, struct ak_err *err);

/* Commits a started sandbox so that it outlives its starter. Closes sync_fd. */
int runtime_commit(struct runtime_child *c);

/* Whether this kernel can build an image root (MOP_OVERLAY): overlayfs taking idmapped layers by
 * file descriptor. why says what is missing. Needs no privileges to ask. */
bool runtime_image_roots_supported(char *why, size_t len);
