/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the docker and podman backend's three files share: engine-backend.c (the ops: start, stop,
 * status...; what a start finds out about the container), engine-config.c (a container's
 * configuration: its hardening, limits and mounts, and how its disk is bounded) and
 * engine-pool.c (the warm pool of run --fast). Nothing outside src/backend/engine-*.c includes
 * this.
 */
#pragma once

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/backend.h"
#include "engine/container.h"
#include "engine/engine.h"
#include "shared/err.h"

#define AGENT_IN "/.agentkernel/agent"
#define RESERVED_IN "/.agentkernel" /* ours in every container: no volume goes there */
#define WORKSPACE_IN "/workspace"
#define LABEL_UUID "agentkernel.uuid"
#define LABEL_NAME "agentkernel.sandbox"
#define LABEL_POOL "agentkernel.pool"
#define IMAGE_VOLUMES_MAX 16

/* An ephemeral run (backend_session.priv). */
struct engine_session {
        struct engine eng;
        char container[128];
        char dir[PATH_MAX]; /* the per-run socket directory */
        int lock_fd;        /* held while the run lives: a sweep leaves it alone */
        bool pooled;        /* from the warm pool: removed in the background after the run */
};

/* The image's VOLUMEs that get a placeholder (see above). */
struct image_volumes {
        size_t n;
        char path[IMAGE_VOLUMES_MAX][CONTAINER_PATH_MAX];
        const char *ptr[IMAGE_VOLUMES_MAX];
};

/* What a start found out about the container's disk (DISK_FILE, info's disk_limit). */
struct disk_outcome {
        int root;      /* 1 the storage driver's quota, 0 none (why), -1 read-only */
        char why[512]; /* the engine's refusal */
        char driver[32];
        struct container_ro ro;
};

/* engine-backend.c */

/* The container, if it is this sandbox's (uuid; NULL: any): 1 found (ret_running, ret_pid,
 * ret_driver: its storage driver, each may be NULL), 0 none, <0 error (a container of that name
 * that belongs to something else is an error). */
int engine_backend_inspect(const struct engine *e, const char *name, const char *uuid,
                           bool *ret_running, pid_t *ret_pid, char *ret_driver, size_t driver_len,
                           struct ak_err *err);
/* Removes the container if it is this sandbox's (uuid; NULL: any); graceful: stop it first. */
int engine_backend_remove(const struct engine *e, const char *name, const char *uuid, bool graceful,
                          struct ak_err *err);
/* Pulls image through the engine unless it has it; *ret_info: the engine's inspection of it. */
int engine_backend_ensure_image(const struct engine *e, const char *image, json_t **ret_info,
                                struct ak_err *err);
/* After the start: the agent reached, checked and made private, the host directories attached
 * (when inject), the disk bounded (vols: the image's volumes to uncover), as container_settle
 * does. Returns a connected, identified fd, fills *ret_rt and the read-only mounts and storage
 * driver of *out. */
int engine_backend_settle(const struct engine *e, const char *name, const char *uuid,
                          const struct backend_config *cfg, bool inject, uint32_t id_base,
                          const struct image_volumes *vols, struct container_rt *ret_rt,
                          struct disk_outcome *out, struct ak_err *err);

/* engine-config.c */

/* The image's Config.Volumes that the container gets as its root's directories (see "the disk"
 * in engine-config.c). Refused: a path that is not plain, is the kernel's or ours, or too many. */
int engine_config_image_volumes(json_t *image_info, const struct backend_config *cfg,
                                struct image_volumes *ret, struct ak_err *err);
/* The container's configuration: our agent as the entrypoint, the hardening, the limits. uuid:
 * the one the agent tells in its HELLO. pool: the warm pool's key label, or NULL. inject: the
 * host directories are attached by the host after the start (idmapped), the container gets
 * empty placeholders there; otherwise they are plain binds. vols (may be NULL): the image's
 * volumes, placeholders too. NULL when out of memory. */
json_t *engine_config_container(enum engine_kind kind, const struct backend_config *cfg,
                                const char *agent, const char *uuid, const char *image_user,
                                const char *pool, bool inject, const struct image_volumes *vols);
/* Creates container name from conf. When conf gives the root a size the engine cannot enforce
 * (it says so), creates it without: returns 1 with a quota, 0 without (why: the engine's
 * reason), <0 an error. */
int engine_config_create(const struct engine *e, const char *name, json_t *conf, char *why,
                         size_t why_len, struct ak_err *err);
/* The host directories a container shows (the workspace, then the volumes), at most max. */
size_t engine_config_host_mounts(const struct backend_config *cfg, uint32_t id_base,
                                 struct container_mount *out, size_t max);

/* engine-pool.c */

/* Whether a start may take a container from the warm pool (run --fast, nothing of the host's
 * in it). */
bool engine_pool_usable(const struct backend_config *cfg);
/* The pool of containers made exactly as cfg's would be, and its key. */
void engine_pool_dir(enum engine_kind kind, const struct backend_config *cfg, const char *agent,
                     char *out, size_t len, char key[17]);
/* Claims a ready container of pool: returns a connected agent fd and fills s, or -ENOENT. */
int engine_pool_claim(const struct engine *e, const char *pool, const char *eph,
                      struct engine_session *s);
/* Tops the pool up in a detached process; returns once that process holds the refill lock. */
void engine_pool_refill(const struct engine *e, const struct backend_config *cfg, const char *agent,
                        const char *pool, const char *key);
/* Removes every idle pooled container of kind (waiting for a refill in progress; containers being
 * claimed right now are left to their runs): the ops tables' pool_clear, through docker_pool_clear
 * and podman_pool_clear in engine-backend.c. */
int engine_pool_clear(enum engine_kind kind, const char *ephemeral_dir, unsigned *ret_removed,
                      struct ak_err *err);

/* engine-images.c */

/* The engine's images: [{id, names, size, created, in_use (a container is made of it)}]. */
int engine_images_list(enum engine_kind kind, json_t **ret, struct ak_err *err);
/* Removes image name from the engine unless one of used (image references of sandboxes,
 * NULL-terminated; users[i] the sandbox) is the same image, or a container is made of it:
 * -EBUSY with a message. Never forced. -ENOENT when the engine has no such image. */
int engine_image_remove(enum engine_kind kind, const char *name, char *const *used,
                        char *const *users, struct ak_err *err);
