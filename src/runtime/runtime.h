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

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/err.h"

enum mount_op_type {
        MOP_MKDIR,      /* dst, mode */
        MOP_TMPFS,      /* dst, data (mount options), flags */
        MOP_BIND,       /* src (host path) -> dst, read-write */
        MOP_BIND_RO,    /* src (host path) -> dst, read-only */
        MOP_BIND_DEV,   /* src (host device node) -> dst, read-write, no exec */
        MOP_PROC,       /* fresh procfs at dst */
        MOP_DEVPTS,     /* new devpts instance at dst */
        MOP_SYMLINK,    /* dst -> src (target text) */
        MOP_FILE,       /* dst with contents src/len, mode */
        MOP_COPY,       /* dst as a copy of host file src, mode (for small files: no mount) */
        MOP_REMOUNT_RO, /* make dst (a mount point) read-only */
        MOP_MASK_FILE,  /* bind /dev/null over dst when it exists */
        MOP_MASK_DIR,   /* empty read-only tmpfs over dst when it exists */
        MOP_OVERLAY,    /* overlayfs at dst: src = lower dirs, top first, ':'-separated;
                           the upper and work dirs are on the sandbox's disk. Rootful
                           (MOP_IDMAP): the parent builds it over idmapped layers; rootless: the
                           child mounts it with userxattr; MOP_DETACHED: src is one host
                           directory (the copy fallback), lent by the parent as a detached mount,
                           and the child mounts the overlay on it */
        MOP_DISK_DIR,   /* directory src ("/name") on the sandbox's disk (created with mode),
                           bound at dst; MOP_NOEXEC: no execution */
};

#define MOP_OPTIONAL (1u << 0) /* skip the op when its source is missing */
#define MOP_NOEXEC (1u << 1)   /* tmpfs: no execution */
/* MOP_BIND_RO, MOP_OVERLAY: an idmapped mount through the sandbox's own user namespace (rootful
 * only): files appear with the sandbox's ids (host root's as the sandbox's root). Only for what
 * the sandbox cannot write (the /etc snapshot, image layers). Prepared by the parent. */
#define MOP_IDMAP (1u << 2)
#define RUNTIME_IDMAP_MAX 40  /* idmapped mounts per sandbox */
#define RUNTIME_HOLD_MAX 2    /* fds the agent holds for the host (see runtime_spec) */
#define MOP_REPLACE (1u << 3) /* MOP_FILE: replace whatever is at dst (an image's symlink) */
/* MOP_BIND (rootful): a plain detached copy of src made by the parent, which can reach places
 * the sandbox's root cannot (the private data directory); attached like MOP_IDMAP. */
#define MOP_DETACHED (1u << 4)
/* MOP_BIND (rootful): a writable host directory (a workspace), idmapped through a user namespace
 * made for this mount: the directory's owner is the sandbox's root (its group the sandbox's
 * group 0) and the sandbox's other ids are its own host range, so nothing the sandbox writes is
 * ever owned by host root. A directory owned by root is mounted plain: the sandbox's root writes
 * as its own unprivileged host id. Prepared by the parent. */
#define MOP_OWNER (1u << 5)
/* MOP_BIND/MOP_BIND_RO (rootful): a volume, idmapped so that sandbox id k is host id
 * VOLUME_ID_BASE + k in every sandbox (volumes are shared between sandboxes of different host
 * ranges). Prepared by the parent. */
#define MOP_VOLUME (1u << 6)
#define MOP_PREPARED (MOP_IDMAP | MOP_DETACHED | MOP_OWNER | MOP_VOLUME)
/* MOP_MKDIR with MOP_OPTIONAL: create when missing, leave an existing directory as it is. */
#define OVERLAY_MAX_LOWER 128u /* lower layers of one MOP_OVERLAY */

struct mount_op {
        enum mount_op_type type;
        const char *src;
        const char *dst;  /* absolute path inside the sandbox */
        const char *data; /* tmpfs options */
        size_t len;       /* MOP_FILE content length */
        unsigned mode;
        unsigned flags; /* MOP_* flags */
};

/* A growable list of mount operations that owns its strings. */
struct mount_plan {
        struct mount_op *ops;
        size_t n, cap;
        struct str_pool strings;
};

/* Frees what p holds (p itself is the caller's) and zeroes it. */
void mount_plan_done(struct mount_plan *p);
DEFINE_CLEANUP_DONE(struct mount_plan, mount_plan_done)
#define cleanup_mount_plan CLEANUP_FUNC(mount_plan_done)
/* Appends an op; strings are copied. Returns 0 or -ENOMEM. */
int mount_plan_add(struct mount_plan *p, enum mount_op_type type, const char *src, const char *dst,
                   const char *data, unsigned mode, unsigned flags);
int mount_plan_add_file(struct mount_plan *p, const char *dst, const char *content, unsigned mode);
int mount_plan_add_bytes(struct mount_plan *p, const char *dst, const char *data, size_t len,
                         unsigned mode);

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
        /* Called in the parent once the child's namespaces exist and its ids are mapped, while
         * the child sets itself up: work that needs the namespaces (networking) overlaps it. */
        void (*on_namespaces)(pid_t pid, void *ctx);
        void *ctx;
};

struct runtime_child {
        pid_t pid;   /* host pid of the sandbox's PID 1 */
        int pidfd;   /* pidfd of it (or -1 when the kernel has no pidfd_open) */
        int sync_fd; /* handshake channel: write 'C' to commit, close to abort */
};

/* Starts a sandbox. On success the agent is running as PID 1 and *ret is filled; the caller
 * must either commit (write 'C' to sync_fd) or close sync_fd to tear the sandbox down. */
int runtime_spawn(const struct runtime_spec *spec, struct runtime_child *ret, struct ak_err *err);

/* Commits a started sandbox so that it outlives its starter. Closes sync_fd. */
int runtime_commit(struct runtime_child *c);

/* Whether this kernel can build an image root (MOP_OVERLAY): overlayfs taking idmapped layers by
 * file descriptor. why says what is missing. Needs no privileges to ask. */
bool runtime_image_roots_supported(char *why, size_t len);
