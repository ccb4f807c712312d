/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host-side work on a started container of the docker and podman backends, done through the
 * kernel rather than through the engine: reaching our agent inside it, hiding the agent's state
 * from the commands, and giving it its host directories idmapped.
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
 * its state tmpfs from the container's mount tree, and attaches each of mounts (n_mounts must be
 * 0 unless this process is root). Returns a connected, identified fd to the agent and fills
 * *ret_rt; *ret_root_kuid (may be NULL) gets the host uid of the container's root. */
int container_settle(pid_t pid, const char *uuid, const struct container_mount *mounts,
                     size_t n_mounts, int timeout_ms, struct container_rt *ret_rt,
                     uid_t *ret_root_kuid, struct ak_err *err);

/* A new connection to the agent described by rt, checked as container_settle checks it (the
 * process, the peer, the uuid). -ESRCH when that process is gone. */
int container_connect(const struct container_rt *rt, const char *uuid, struct ak_err *err);

/* Keeps rt as dir/CONTAINER_RT_FILE (0600), or reads it back: only a regular file of ours that
 * nobody else can write is believed. -ENOENT when there is none. */
int container_rt_write(const char *dir, const struct container_rt *rt, struct ak_err *err);
int container_rt_read(const char *dir, struct container_rt *ret, struct ak_err *err);
