/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backend interface. A backend only provisions an isolation boundary with the agent inside
 * and hands back a channel to that agent; exec, files and detached commands are written once,
 * above the backends, on top of the channel. Each backend is one `const struct backend_ops`.
 * Callers use the backend_*() wrappers below, never the table directly: the wrappers check
 * arguments and turn a missing optional op into -EOPNOTSUPP.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/profile.h"
#include "core/validate.h"
#include "shared/bind-mount.h"
#include "shared/err.h"
#include "shared/net-mode.h"

/* Enough to find a sandbox a backend started, from any process. */
struct sandbox_ref {
        const char *name;
        const char *uuid;
        const char *run_dir; /* private directory for the backend's runtime files */
};

struct backend_config {
        struct sandbox_ref ref;
        const char *image;
        uint32_t vcpus;
        uint64_t memory_mb;
        uint64_t disk_mb; /* the sandbox's private writable places: native, one tmpfs of this size
                             (memory_mb bounds it too); docker/podman, see engine-config.c */
        uint32_t id_slot; /* unique per live sandbox: picks its host uid range */
        const struct profile *profile;
        enum net_mode network;
        const json_t *net_policy; /* proxy mode: the egress policy (POLICY JSON, docs/network.md),
                                     or NULL: the proxy's built-in default */
        const char *workspace;    /* host dir mounted read-write at /workspace, or NULL */
        bool scratch_workspace;   /* without workspace: an empty /workspace of the sandbox's own
                                     (its disk on native), for a source cloned there */
        const char *home;         /* host dir mounted read-only at /home/user, or NULL */
        /* proxy mode's injected secrets (egress.h, struct egress_secrets): the grants (values
         * excepted) and [network] ca_file's PEM, handed to the proxy at registration; the CA it
         * made for the sandbox goes to *ret_proxy_ca (malloc'd; NULL pointer: not wanted) */
        const json_t *secret_grants;
        const char *upstream_ca;
        char **ret_proxy_ca;
        /* agentkernel's own directories (data and user directory, canonical; NULL entries
         * skipped): where one is inside home, the sandbox's view of home hides it */
        const char *const *own_dirs;
        size_t n_own_dirs;
        char *const *env; /* base environment of every command */
        const struct port_spec *ports;
        size_t n_ports;
        const struct bind_mount *binds; /* volumes */
        size_t n_binds;
        bool ephemeral; /* run-once: see backend_session; ref.run_dir is then a
                           directory shared by all ephemeral runs */
        bool pooled;    /* ephemeral: may come from a warm pool of identical, unused sandboxes */
        /* a warm pool's own sandbox (native): started like a kept one, but its ids come from the
           ephemeral range (backend_id_base), as it will serve an ephemeral run */
        bool pool_entry;
};

/* An ephemeral sandbox in use: a connected channel to its agent. The sandbox disappears, with
 * everything in it, at backend_finish() or when this process dies. */
struct backend_session {
        int chan_fd;
        void *priv;
        /* The caller exits right after finish: the backend may complete the teardown in a
         * process of its own, after the caller is gone (it stays complete and consistent: what
         * a crash leaves, a sweep removes). */
        bool detach;
};

struct backend_status {
        bool running;
        bool paused; /* running, with every process stopped (backend_pause) */
        pid_t pid;   /* host pid of the sandbox's init, when known */
};

/* What a running sandbox uses. memory_bytes and cpu_usec are always the host's: for a virtual
 * machine, the PSS and CPU time of its hypervisor and relay. pids is the sandbox's processes: a
 * virtual machine's are its guest's user-space processes as its agent counts them (0 when it did
 * not answer). guest: the guest_* fields are set (the guest's own view of its memory). */
struct backend_stats {
        uint64_t memory_bytes;
        uint64_t pids;
        uint64_t cpu_usec; /* 0 where not accounted */
        bool guest;
        uint64_t guest_memory_bytes;       /* in use inside the guest (MemTotal - MemAvailable) */
        uint64_t guest_memory_total_bytes; /* the guest's MemTotal */
};

#define BACKEND_CAP_ATTACH (1u << 0)
#define BACKEND_CAP_RESIZE (1u << 1)
#define BACKEND_CAP_PROXY (1u << 2) /* network mode proxy (docs/network.md) */

/* The host uid/gid of the sandbox's root when started as root (the base of its ID_RANGE_SIZE
 * ids, shared/bind-mount.h): its recorded slot's range, or for an ephemeral run a random slot
 * above EPHEMERAL_SLOT_BASE. -ERANGE with a message when a kept sandbox's slot is out of range. */
int backend_id_base(const struct backend_config *cfg, uint32_t *ret, struct ak_err *err);

struct backend_ops {
        const char *name;
        const char *description;
        unsigned caps;
        /* 1 usable here, 0 not (why says what is missing). */
        int (*probe)(char *why, size_t why_len);
        /* Starts the sandbox. For ephemeral configs fills *ret_session; otherwise the sandbox
         * outlives this process and is found again through cfg->ref. */
        int (*start)(const struct backend_config *cfg, struct backend_session *ret_session,
                     struct ak_err *err);
        /* Ends an ephemeral sandbox; backend_finish() has closed s->chan_fd already. */
        int (*finish)(struct backend_session *s);
        int (*stop)(const struct sandbox_ref *ref, struct ak_err *err);
        /* Removes whatever the backend still holds for a stopped sandbox. Idempotent. */
        int (*cleanup)(const struct sandbox_ref *ref, struct ak_err *err);
        int (*status)(const struct sandbox_ref *ref, struct backend_status *ret);
        /* A new connection to the agent of a running sandbox. */
        int (*connect)(const struct sandbox_ref *ref, struct ak_err *err);
        /* Optional: apply new limits to a running sandbox. */
        int (*resize)(const struct sandbox_ref *ref, const struct backend_config *cfg,
                      struct ak_err *err);
        /* Optional: stops (pause) or continues (resume) every process of a running sandbox,
         * its agent included, keeping all its state; status() then says paused. Resuming a
         * sandbox that is not paused is not an error. */
        int (*pause)(const struct sandbox_ref *ref, bool pause, struct ak_err *err);
        /* Optional: resource use of a running sandbox. */
        int (*stats)(const struct sandbox_ref *ref, struct backend_stats *ret);
        /* Optional: makes image ready (e.g. pulls it) before a sandbox of it is recorded, so
         * that a bad image fails `create` with nothing written. */
        int (*prepare)(const char *image, struct ak_err *err);
        /* Optional: remove leftovers of ephemeral sandboxes whose starter was killed.
         * ephemeral_dir is the run_dir given to ephemeral starts. */
        void (*sweep)(const char *ephemeral_dir);
        /* Optional: adds to info (a sandbox's info JSON) what only the backend knows of how its
         * limits are enforced (the container backends: "disk_limit"). */
        void (*describe)(const struct sandbox_ref *ref, bool running, json_t *info);
        /* Optional: the images of the backend's own store (docker/podman: the engine's), as
         * [{id, names, size, created, in_use}]; and removing one, unless one of used (image
         * references of its sandboxes, NULL-terminated; users[i] names the sandbox) or a
         * container is of it (-EBUSY). The native store is src/image/'s. */
        int (*images_list)(json_t **ret, struct ak_err *err);
        int (*image_remove)(const char *name, char *const *used, char *const *users,
                            struct ak_err *err);
        /* Optional: removes the idle sandboxes of the warm pool that pooled ephemeral starts
         * take from (cfg->pooled); *ret_removed counts them. */
        int (*pool_clear)(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err);
        /* Optional: appends to pools (an array) one object per pool that pooled starts take
         * from: {"pool": name, "idle": ready sandboxes, "target": kept per pool, "max": all
         * pools together}. */
        void (*pool_list)(const char *ephemeral_dir, json_t *pools);
};

/* Makes all (NULL-terminated, in detection order: the first is the default) the program's
 * backends. Called once, by main() through backends_init() (backend/backends.h), before any
 * other function here; using a backend before is a programming error (abort). */
void backend_registry_set(const struct backend_ops *const *all);
/* Looks a backend up by name (upstream's names: "native", "docker", ...). */
const struct backend_ops *backend_find(const char *name);
/* The default backend on this host (detection order of docs/backends.md). */
const struct backend_ops *backend_default(void);
/* All registered backends, NULL-terminated. */
const struct backend_ops *const *backend_all(void);

int backend_probe(const struct backend_ops *b, char *why, size_t why_len);
int backend_start(const struct backend_ops *b, const struct backend_config *cfg,
                  struct backend_session *ret_session, struct ak_err *err);
/* Closes the session's channel, then has the backend end the sandbox. */
int backend_finish(const struct backend_ops *b, struct backend_session *s);
int backend_stop(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err);
int backend_cleanup(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err);
int backend_status(const struct backend_ops *b, const struct sandbox_ref *ref,
                   struct backend_status *ret);
int backend_connect(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err);
int backend_resize(const struct backend_ops *b, const struct sandbox_ref *ref,
                   const struct backend_config *cfg, struct ak_err *err);
/* b->pause; -ENOTSUP (with a message) where the backend cannot pause. */
int backend_pause(const struct backend_ops *b, const struct sandbox_ref *ref, bool pause,
                  struct ak_err *err);
void backend_sweep(const struct backend_ops *b, const char *ephemeral_dir);
int backend_stats(const struct backend_ops *b, const struct sandbox_ref *ref,
                  struct backend_stats *ret);
/* b->describe, where the backend has one. */
void backend_describe(const struct backend_ops *b, const struct sandbox_ref *ref, bool running,
                      json_t *info);
/* Whether b keeps a warm pool (b->pool_clear). */
bool backend_keeps_pool(const struct backend_ops *b);
/* b->pool_clear; -EOPNOTSUPP (with a message) where b keeps no pool. */
int backend_pool_clear(const struct backend_ops *b, const char *ephemeral_dir,
                       unsigned *ret_removed, struct ak_err *err);
/* b->pool_list where the backend has one (nothing appended otherwise). */
void backend_pool_list(const struct backend_ops *b, const char *ephemeral_dir, json_t *pools);
/* b->prepare, or 0 where the backend has nothing to prepare. */
int backend_prepare(const struct backend_ops *b, const char *image, struct ak_err *err);
