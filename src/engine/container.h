/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host-side work on a started container of the docker and podman backends, done through the
 * kernel rather than through the engine: reaching our agent inside it, hiding the agent's state
 * from the commands, giving it its host directories idmapped, and bounding what it can write
 * (its scratch disk, the engine's own writable mounts made read-only).
 *
 * Nothing here trusts a path the container can write. The agent is reached through its own
 * process (/proc/<pid>/fd/<state dir fd>/agent.sock, inside a tmpfs that is detached from the
 * container's mount tree, so no command can see, replace or connect to the socket), the peer's
 * credentials must be that process, and it must answer with the sandbox's uuid. What the host
 * keeps to find it again (struct container_rt) lives in the host's run directory, which no
 * container can write (nothing of it is bound into any container).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/err.h"

/* In the container: the agent's private tmpfs (the engine mounts it), its socket in there. */
#define CONTAINER_STATE_DIR "/.agentkernel/state"
#define CONTAINER_SOCKET "agent.sock"
#define CONTAINER_RT_FILE "engine-runtime.json"

/* A host directory the host attaches in the container, idmapped: container id k (0 < k < 65536)
 * writes there as host id base + k; container root as the directory's owner when by_owner and
 * the owner is neither root nor in that range, else as base. */
struct container_mount {
        const char *source; /* host path */
        const char *dest;   /* in the container, where it has an empty placeholder */
        bool ro;
        bool by_owner;
        uint32_t base;
};

/* The scratch places of every container: one tmpfs (its "disk", made by the host, charged to the
 * container's memory cgroup as its writers fill it) bound at each. The engine puts an empty
 * placeholder at each first, so that the mount point exists whatever the image holds. */
#define CONTAINER_SCRATCH_PLACES                                                                   \
        {                                                                                          \
                "/tmp", "/var/tmp", "/run", "/dev/shm"                                             \
        }
#define CONTAINER_SCRATCH_N 4
#define CONTAINER_RO_MAX 32    /* engine mounts made read-only, at most */
#define CONTAINER_PATH_MAX 256 /* of a mount point handled here */

/* What bounds a container's disk, beyond the engine's own options (container_settle). */
struct container_disk {
        uint64_t scratch_bytes; /* size of the scratch tmpfs; 0: no scratch disk */
        /* engine placeholders to take away after the start (the image's VOLUMEs: the directory
         * of the root layer shows again, as on native, instead of an unbounded engine volume) */
        const char *const *uncover;
        size_t n_uncover;
};

/* What container_settle made read-only: the engine's writable mounts outside the root, the
 * scratch places and the host directories (/dev, /etc/hosts, ... on host disk or in memory). */
struct container_ro {
        size_t n;
        char path[CONTAINER_RO_MAX][CONTAINER_PATH_MAX];
};

/* How the host finds a running container's agent again. */
struct container_rt {
        pid_t pid;           /* the agent: the container's init, as the host sees it */
        uint64_t start_time; /* of that pid (a recycled pid is never taken for it) */
        int state_fd;        /* the agent's fd of its (detached) state directory */
        uint64_t state_dev, state_ino;
        char uuid[37]; /* the sandbox the agent said it serves */
};

/* After the engine started the container whose init is pid (the agent, started with
 * --listen CONTAINER_STATE_DIR/CONTAINER_SOCKET --state-dir CONTAINER_STATE_DIR --uuid uuid):
 * waits up to timeout_ms for the agent, checks that it is that process and serves uuid, detaches
 * its state tmpfs from the container's mount tree, attaches each of mounts when attach (only
 * root may; otherwise the engine bound them), gives the container its scratch disk and takes
 * disk->uncover away (disk may be NULL: neither), and makes every other writable mount of the
 * engine's read-only: all but the root, the kernel's own filesystems (proc, sysfs, devpts,
 * mqueue, cgroup) and the host directories of mounts. Returns a connected, identified fd to the
 * agent and fills *ret_rt; *ret_root_kuid and *ret_ro (may be NULL) get the host uid of the
 * container's root and what was made read-only. */
int container_settle(pid_t pid, const char *uuid, const struct container_mount *mounts,
                     size_t n_mounts, bool attach, const struct container_disk *disk,
                     int timeout_ms, struct container_rt *ret_rt, uid_t *ret_root_kuid,
                     struct container_ro *ret_ro, struct ak_err *err);

/* A new connection to the agent described by rt, checked as container_settle checks it (the
 * process, the peer, the uuid). -ESRCH when that process is gone. */
int container_connect(const struct container_rt *rt, const char *uuid, struct ak_err *err);
/* An O_PATH fd of the agent's listening socket, checked as container_connect checks it (one
 * connection, closed): for a process that connects to it later without looking the path up
 * again (published ports in proxy mode, backend/port-relay.h). */
int container_agent_socket(const struct container_rt *rt, const char *uuid, struct ak_err *err);

/* Keeps rt as dir/CONTAINER_RT_FILE (0600), or reads it back: only a regular file of ours that
 * nobody else can write is believed. -ENOENT when there is none. */
int container_rt_write(const char *dir, const struct container_rt *rt, struct ak_err *err);
int container_rt_read(const char *dir, struct container_rt *ret, struct ak_err *err);
