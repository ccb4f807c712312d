/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the native backend's two files share: native.c (the ops table, runtime.json, status,
 * stop, cleanup, the ephemeral session's end) and native-start.c (a start, as named steps with
 * one undo). Nothing outside src/backend/native*.c includes this; everyone else reaches the
 * backend through native_backend_ops (core/backend.h).
 */
#pragma once

#include <limits.h>
#include <sys/types.h>

#include "core/backend.h"
#include "runtime/cgroup.h"

#define NATIVE_SOCKET_FILE "agent.sock" /* a kept sandbox's agent listens here, in its run dir */

/* An ephemeral sandbox in use (backend_session.priv): what native_finish() releases. */
struct native_session {
        pid_t pid;
        int pidfd;
        int sync_fd;
        int lock_fd; /* held while the ephemeral cgroup is ours */
        char lock_path[PATH_MAX];
        int image_lock_fd;     /* the image store's shared lock, or -1 */
        char merged[PATH_MAX]; /* an ephemeral copy-fallback root to delete, or "" */
        struct cgroup_set cg;
        /* claimed from the warm pool (native-pool.c): lock_fd is the entry's lock, and
         * release_fd the connection to the entry's keeper, whose end has it tear the sandbox
         * down */
        bool pooled;
        int release_fd;
};

/* Hands the rest of an ephemeral run's teardown (its PID 1 killed already) to a worker process
 * that outlives us (native-teardown.c): for a caller that exits right after. 0: the worker holds
 * copies of s's pidfd, lock and image lock and will remove the cgroups and the lock file; the
 * caller closes its own fds, unlinks nothing, and must not wait for PID 1 (init reaps it once
 * the caller has exited). Else -errno and nothing happened: tear down as usual. */
int native_teardown_detach(struct native_session *s);

/* <ref->run_dir>/<file>. */
void native_run_path(const struct sandbox_ref *ref, const char *file, char *out, size_t len);

/* Records a started kept sandbox in runtime.json: its init's pid, start time and boot, and its
 * cgroups. 0 or -errno. */
int native_record(const struct sandbox_ref *ref, pid_t pid, const struct cgroup_set *cg);

/* The backend's start op (core/backend.h). On failure nothing of the sandbox is left. */
int native_start(const struct backend_config *cfg, struct backend_session *ret_session,
                 struct ak_err *err);

/* The backend's cleanup op: removes what a stopped (or crashed) sandbox left. Idempotent. */
int native_cleanup(const struct sandbox_ref *ref, struct ak_err *err);

/* The init of a sandbox the warm pool made, at run_dir (its runtime.json, read and checked as
 * for any kept sandbox): uuid gets the record's uuid, which must end in tail (the entry's
 * name), even when the rest fails (for the cleanup). 0 with *ret_pid and *ret_pidfd (the process
 * checked with the pidfd held) when it is alive and is that sandbox's init; -errno otherwise. */
int native_pooled_init(const char *run_dir, const char *tail, char uuid[37], pid_t *ret_pid,
                       int *ret_pidfd);

/* ---- the warm pool (native-pool.c) ---- */

/* Whether a start may come from the pool: a pooled ephemeral run of the host image, no
 * workspace, volumes or ports, network none or full. */
bool native_pool_usable(const struct backend_config *cfg);
/* Claims a sandbox made for exactly cfg's configuration: 0 with *ret_session filled (a pooled
 * native_session), or -ENOENT when there is none to take. */
int native_pool_claim(const struct backend_config *cfg, struct backend_session *ret_session);
/* Starts a detached worker that tops cfg's pool up (nothing when one is at it already). */
void native_pool_refill(const struct backend_config *cfg);
/* The backend's finish for a claimed sandbox: kills its init, leaves the rest to the worker. */
int native_pool_finish(struct backend_session *bs);
/* Ends claimed sandboxes whose run and worker died (their lock free), from the ephemeral dir. */
void native_pool_sweep(int ephemeral_fd, const char *ephemeral_dir);
/* The backend's pool_list op: each pool of ours with its profile, network mode and idle count. */
void native_pool_list(const char *ephemeral_dir, json_t *pools);
/* The backend's pool_clear op. */
int native_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err);
