/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox manager: lifecycle (create, start, stop, remove), lookups and the exec/file/detached
 * plumbing shared by the CLI, the HTTP API and the MCP server. It matches the seed's VmManager
 * (reference/seed-vmm.rs) in state, rules and messages, and fixes the defects listed in
 * reference/upstream.md §12. It never prints: errors come back in struct ak_err.
 *
 * Locking: one flock per sandbox for every read-modify-write of its state, and a global lock
 * for creation (name uniqueness, CID allocation). The global lock is never taken while holding
 * a sandbox lock.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/client.h"
#include "core/backend.h"
#include "core/state.h"
#include "core/store.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/err.h"
#include "shared/time-util.h"

/* Opaque: front-ends (the CLI, the HTTP API, MCP) reach sandboxes only through the functions
 * below; the manager checks, decides and audits, they parse and print. */
struct manager;

#define START_OUTPUT_MAX (64u << 10)                 /* init script output kept for errors */
#define AGENT_INSTALL_TIMEOUT_MS (10u * 60u * 1000u) /* npm install -g of an agent's CLI */

/* Opens the manager on the data directory (paths_data_dir_open()). */
int manager_open(struct manager **ret, struct ak_err *err);
/* Frees m (NULL is fine). */
void manager_free(struct manager *m);
DEFINE_CLEANUP(struct manager, manager_free)
#define cleanup_manager CLEANUP_FUNC(manager_free)

/* Where progress and warnings for a person go (the CLI prints them); fn NULL: dropped (the
 * default, and what MCP wants: its stdout is the protocol's). */
void manager_set_notify(struct manager *m, void (*fn)(void *ctx, const char *msg), void *ctx);
/* The data directory the manager works in (for doctor). Owned by m. */
const char *manager_data_dir(const struct manager *m);

struct create_opts {
        const char *name;
        const char *image;   /* NULL: "host" on native */
        const char *backend; /* NULL: the default backend */
        const char *profile; /* NULL: moderate */
        uint32_t vcpus;      /* 0: DEFAULT_VCPUS */
        uint64_t memory_mb;  /* 0: the profile's default */
        uint64_t disk_mb;    /* private writable places; 0: half of memory_mb (16 at least) */
        bool has_ttl;
        bool fast; /* run --fast: a container backend may hand out a pre-started container */
        /* run: the caller exits right after, so the sandbox's teardown may finish after it
         * (backend_session.detach) */
        bool detach_teardown;
        uint64_t ttl_seconds;   /* with has_ttl: 0 means no expiry */
        int network;            /* -1: the profile decides, else an enum net_mode */
        json_t *network_policy; /* proxy mode's egress policy (borrowed; checked), or NULL */
        int mount_cwd;          /* -1: the profile decides */
        const char *work_dir;   /* host dir for /workspace; NULL: the current directory */
        char *const *env;       /* KEY=VALUE for every command */
        const struct port_spec *ports;
        size_t n_ports;
        json_t *labels; /* object of strings (borrowed), or NULL */
        const char *description;
        const char *agent;
        const struct cmd_policy *commands; /* [security.commands]; NULL: none */
        const char *init_script;           /* sh -c after every start; NULL: none */
        const struct inject_file *files;   /* copied in after every start */
        size_t n_files;
        const char *files_dir; /* the config directory the files' sources are relative to */
        char *const *volumes;  /* "slug:/path[:ro]" of existing volumes */
        const char *seccomp;   /* seccomp filter overriding the profile's, or NULL */
        /* a coding agent's compatibility mode (core/compat.h; NULL: native): it fills in what the
         * fields above leave unset (profile, network, mount_cwd, seccomp, network_policy) and adds
         * its environment; recorded */
        const char *compat_mode;
        /* a git repository cloned into /workspace by manager_clone_source (checked here,
         * recorded); source_ref needs source_url */
        const char *source_url, *source_ref;
        /* the template it came from (recorded as upstream's created_from_template), or NULL */
        const char *template_name, *template_help_text;
        const char *ca_file; /* [network] ca_file: extra trust for the proxy's upstream TLS */
        /* secrets (core/secrets.h): bindings "KEY:host[:header]" or "KEY=value:host" (the value
         * goes to the vault, never to the record), secret files "KEY[:/path]", placeholder
         * tokens instead of values in the files, and [secrets]' NAME -> host (borrowed) */
        char *const *secrets;
        char *const *secret_body; /* bound KEYs also substituted in request bodies (opt-in) */
        char *const *secret_files;
        bool placeholder_secrets;
        json_t *secret_mappings;
};

/* Validates and records a new sandbox (not started). */
int manager_create(struct manager *m, const struct create_opts *o, struct ak_err *err);
/* Starts a recorded sandbox. -EALREADY when it is already running. */
int manager_start(struct manager *m, const char *name, struct ak_err *err);
/* Stops a sandbox; stopping a stopped sandbox is not an error. */
int manager_stop(struct manager *m, const char *name, struct ak_err *err);
/* Stops and forgets a sandbox: nothing of it remains (processes, cgroups, files, lock). */
int manager_remove(struct manager *m, const char *name, struct ak_err *err);

/* A sandbox's network mode: its own, else its profile's ("on": NET_MODE_ON on native, docker and
 * podman, where proxy mode exists; NET_MODE_FULL on the others, which have none). */
enum net_mode manager_net_mode(const struct sandbox_state *st);

/* A sandbox's egress policy (docs/network.md): a running proxy-mode sandbox's as its proxy
 * applies it, else the recorded one (or the built-in policy when none is recorded). *ret is the
 * caller's. */
int manager_network_policy(struct manager *m, const char *name, json_t **ret, struct ak_err *err);
/* Replaces a proxy-mode sandbox's policy (checked as the proxy checks it): recorded, and applied
 * to new connections of a running sandbox before this returns. Audited (network_policy_set).
 * -EINVAL for a sandbox in another mode. */
int manager_network_set_policy(struct manager *m, const char *name, const json_t *policy,
                               struct ak_err *err);
/* The egress proxy's counters per sandbox ({"sandboxes": {NAME: {...}}, ...}, the proxy's `stats`
 * answer), or -ESRCH when this user's proxy is not running. */
int manager_network_stats(struct manager *m, json_t **ret, struct ak_err *err);
/* Opens a sandbox's decision log (JSON lines, docs/network.md) for reading: -ENOENT with a
 * message when the sandbox does not exist; *ret_fd = -1 when it has no log yet. The fd is the
 * caller's. */
int manager_network_log_open(struct manager *m, const char *name, int *ret_fd, struct ak_err *err);

/* Loads a sandbox's record: -EINVAL for an invalid name, -ENOENT ("sandbox 'x' not found"), or
 * -EINVAL for a bad record. The caller frees *ret (state_free). */
int manager_get(struct manager *m, const char *name, struct sandbox_state **ret,
                struct ak_err *err);

/* Name of a recorded sandbox's backend (its own, or the default when it names none). */
const char *manager_backend_name(const struct sandbox_state *st);
/* The backend a sandbox gets when it names none (the detection order of docs/backends.md). */
const char *manager_default_backend(void);
/* The backend itself; -ENOTSUP (with a message) when this build does not have it. */
int manager_backend(const struct sandbox_state *st, const struct backend_ops **ret,
                    struct ak_err *err);
bool manager_is_running(struct manager *m, const struct sandbox_state *st);
/* What its backend says of a sandbox now (running, paused, pid); all false when it cannot say. */
void manager_status(struct manager *m, const struct sandbox_state *st, struct backend_status *ret);
/* The status shown of a sandbox: "archived", "paused", "running" or "stopped" (upstream's
 * precedence). */
const char *manager_status_word(struct manager *m, const struct sandbox_state *st);
/* The same for a status the caller has (manager_status_many). */
const char *manager_status_word_as(const struct sandbox_state *st, const struct backend_status *bs);
/* Pauses (every process stopped, the agent's too, nothing lost) or resumes a running sandbox
 * (backend_pause: the cgroup freezer on native, the engine's pause on docker/podman). -ESRCH
 * when it is not running, -EALREADY when it already is in that state, -ENOTSUP where its backend
 * cannot. Audited (sandbox_paused, sandbox_resumed). While paused, everything that needs its
 * agent (exec, files, attach, detached commands) fails with -EBUSY; stop, remove and gc resume
 * it first. */
int manager_pause(struct manager *m, const char *name, bool pause, struct ak_err *err);
/* What `info` and list show of a sandbox (views.h's sandbox_info_json), with what its backend
 * adds (how its limits are enforced). NULL when out of memory; the caller owns it. */
json_t *manager_info_json(struct manager *m, const struct sandbox_state *st);
/* The same for a sandbox whose status the caller has (manager_status_many). */
json_t *manager_info_json_as(struct manager *m, const struct sandbox_state *st,
                             const struct backend_status *bs);
/* ret[i]: manager_status(items[i]), for n sandboxes, on a few threads when n is large (list). */
void manager_status_many(struct manager *m, struct sandbox_state *const *items, size_t n,
                         struct backend_status *ret);

/* Loads a sandbox that must be running and connects to its agent. Returns the fd; *ret_state
 * (optional) receives the state. */
int manager_connect(struct manager *m, const char *name, struct sandbox_state **ret_state,
                    struct ak_err *err);
/* Records activity now (last_activity_at), as the seed's touch_activity. */
int manager_touch(struct manager *m, const char *name);

int manager_list(struct manager *m, void (*warn)(void *ctx, const char *file, const char *msg),
                 void *ctx, struct state_list *ret);

/* Work in a running sandbox. Each checks the sandbox's command policy (commands refused fail
 * with -EPERM and are audited as policy violations), writes the audit log and records activity. */
int manager_exec(struct manager *m, const char *name, const struct agent_exec_opts *x,
                 const struct agent_io *io, struct agent_exit *ret, struct ak_err *err);
/* An interactive session (audited as session_attached). x->argv NULL: a login shell, bash where
 * the sandbox has it, else sh. */
int manager_attach(struct manager *m, const char *name, const struct agent_exec_opts *x,
                   const struct agent_io *io, struct agent_exit *ret, struct ak_err *err);
int manager_detach(struct manager *m, const char *name, const struct agent_exec_opts *x,
                   struct agent_detached *ret, struct ak_err *err);
int manager_file_read(struct manager *m, const char *name, const char *path, uint64_t limit,
                      int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                      struct agent_file_info *ret_info, struct ak_err *err);
struct manager_write {
        uint32_t mode;
        bool mode_given, parents;
        int src_fd; /* read to EOF; < 0: data/len */
        const void *data;
        size_t len;
};
int manager_file_write(struct manager *m, const char *name, const char *path,
                       const struct manager_write *w, uint64_t *ret_size, struct ak_err *err);
int manager_file_remove(struct manager *m, const char *name, const char *path, bool recursive,
                        struct ak_err *err);
/* What manager_exec_capture collected; the caller frees the buffers (exec_capture_done). */
struct exec_capture {
        struct buf out, err;    /* at most max bytes of each stream */
        bool truncated;         /* a stream had more */
        struct agent_exit exit; /* how the command ended */
        const char *backend;    /* the backend that ran it (static), NULL until one did */
};
#define EXEC_CAPTURE_INIT                                                                          \
        {                                                                                          \
                BUF_INIT, BUF_INIT, false, {0}, NULL                                               \
        }
void exec_capture_done(struct exec_capture *c);
DEFINE_CLEANUP_DONE(struct exec_capture, exec_capture_done)
#define cleanup_exec_capture CLEANUP_FUNC(exec_capture_done)
/* manager_exec, collecting each stream into *ret (which starts as EXEC_CAPTURE_INIT). */
int manager_exec_capture(struct manager *m, const char *name, const struct agent_exec_opts *x,
                         size_t max, struct exec_capture *ret, struct ak_err *err);
/* Detached commands (manager_detach starts one), kept by the sandbox's agent so that any process
 * sees every one. The sandbox must be running (-ESRCH); an id that is not one
 * (detached_id_is_valid) fails with -EINVAL before the sandbox is reached. */
struct detached_list {
        struct agent_detached *items;
        size_t n;
};
/* Frees what l holds (l itself is the caller's) and empties it. */
void detached_list_done(struct detached_list *l);
DEFINE_CLEANUP_DONE(struct detached_list, detached_list_done)
#define cleanup_detached_list CLEANUP_FUNC(detached_list_done)
int manager_detached_list(struct manager *m, const char *name, struct detached_list *ret,
                          struct ak_err *err);
int manager_detached_get(struct manager *m, const char *name, const char *id,
                         struct agent_detached *ret, struct ak_err *err);
/* Streams the command's stdout (or stderr) to sink(ctx, data, len). */
int manager_detached_logs(struct manager *m, const char *name, const char *id, bool stderr_stream,
                          int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                          struct ak_err *err);
/* Stops the command (SIGTERM, then SIGKILL after the agent's grace period); *ret is its record
 * afterwards. Audited as command_killed. */
int manager_detached_kill(struct manager *m, const char *name, const char *id,
                          struct agent_detached *ret, struct ak_err *err);

/* The host-side policy check alone (audits a refusal). */
int manager_check_command(const char *sandbox, const struct cmd_policy *p, char *const *argv,
                          struct ak_err *err);

/* Runs one command in a throw-away sandbox configured like o (name is ignored): nothing of it
 * remains afterwards, even if this process is killed. */
int manager_run_ephemeral(struct manager *m, const struct create_opts *o,
                          const struct agent_exec_opts *x, const struct agent_io *io,
                          struct agent_exit *ret, struct ak_err *err);

/* ---- metadata, TTL, lifecycle, resize (manager-lifecycle.c) ---- */

#define DESCRIPTION_MAX 4096

/* One locked, atomic read-modify-write of a record: fn edits st; an error leaves the file
 * untouched. */
typedef int (*manager_edit_fn)(struct sandbox_state *st, void *ctx, struct ak_err *err);
int manager_update(struct manager *m, const char *name, manager_edit_fn fn, void *ctx,
                   struct ak_err *err);

/* The seed's setters. labels replaces all labels (validated); NULL description clears it. */
int manager_set_labels(struct manager *m, const char *name, json_t *labels, struct ak_err *err);
int manager_set_description(struct manager *m, const char *name, const char *description,
                            struct ak_err *err);
int manager_set_identity(struct manager *m, const char *name, const char *uuid,
                         const char *created_at, const char *expires_at, struct ak_err *err);
/* Trimmed; an empty value is stored as none. */
int manager_set_template(struct manager *m, const char *name, const char *from, const char *help,
                         struct ak_err *err);
/* NULL clears the policy. */
int manager_set_lifecycle(struct manager *m, const char *name, const struct lifecycle_policy *p,
                          struct ak_err *err);
int manager_set_init_script(struct manager *m, const char *name, const char *script,
                            struct ak_err *err);
int manager_set_volumes(struct manager *m, const char *name, char *const *volumes,
                        struct ak_err *err);

/* Moves the expiry secs later (from now when it has passed); -EINVAL for a sandbox without a
 * TTL (upstream's Q8). expiry receives the new one. */
int manager_extend_ttl(struct manager *m, const char *name, uint64_t secs, char expiry[RFC3339_MAX],
                       struct ak_err *err);
bool state_labels_match(const struct sandbox_state *st, json_t *filters);
/* Sorted names (NULL-terminated, free with strv_free). */
int manager_expired(struct manager *m, char ***ret, struct ak_err *err);
int manager_list_matching_labels(struct manager *m, json_t *filters, char ***ret,
                                 struct ak_err *err);
/* Removes expired sandboxes; with labels, only the expired ones that match (upstream's Q12
 * removed every match). dry_run only lists them. */
int manager_gc(struct manager *m, json_t *labels, bool dry_run, char ***ret_removed,
               struct ak_err *err);

/* Removes every sandbox that is not running, and the running ones too with force (upstream's
 * `clean`). *ret_removed and *ret_skipped (the running ones left) are NULL-terminated. */
int manager_clean(struct manager *m, bool force, char ***ret_removed, char ***ret_skipped,
                  struct ak_err *err);

enum reconcile_kind { RECONCILE_STOP = 1, RECONCILE_ARCHIVE, RECONCILE_DELETE };
struct reconcile_action {
        char *sandbox;
        enum reconcile_kind action;
        char reason[96];
};
struct reconcile_result {
        bool dry_run;
        char **stopped, **archived, **removed;
        struct reconcile_action *actions;
        size_t n_actions;
};
const char *reconcile_action_name(enum reconcile_kind k);
/* Upstream's LifecycleReconcileResult as JSON. */
json_t *reconcile_json(const struct reconcile_result *r);
/* The seed's reconcile_lifecycle: decisions sorted by sandbox, applied unless dry_run. */
int manager_reconcile(struct manager *m, bool dry_run, struct reconcile_result *ret,
                      struct ak_err *err);
/* Frees what r holds (r itself is the caller's) and zeroes it. */
void reconcile_result_done(struct reconcile_result *r);
DEFINE_CLEANUP_DONE(struct reconcile_result, reconcile_result_done)
#define cleanup_reconcile_result CLEANUP_FUNC(reconcile_result_done)
int manager_recover(struct manager *m, const char *name, struct ak_err *err);
int manager_archive(struct manager *m, const char *name, const char *reason, struct ak_err *err);

enum resize_how { RESIZE_RECORDED, RESIZE_IN_PLACE, RESIZE_RESTARTED };
/* New limits (0 keeps one). A running sandbox is resized in place when its backend can, else
 * stopped and started again with its record (identity, expiry, metadata) kept. */
int manager_resize(struct manager *m, const char *name, uint32_t vcpus, uint64_t memory_mb,
                   enum resize_how *ret_how, struct ak_err *err);

/* Resource use of a running sandbox (its cgroups on native). -ESRCH when it is not running,
 * -EOPNOTSUPP when its backend cannot tell. */
int manager_stats(struct manager *m, const struct sandbox_state *st, struct backend_stats *ret);

/* Removes leftovers of ephemeral runs whose starter was killed. */
void manager_sweep(struct manager *m);

/* Empties the warm pools of started, unused sandboxes that `run --fast` takes from: of backend,
 * or (NULL) of every backend that keeps one, skipping those that cannot be reached. done(ctx,
 * backend, n) reports each pool emptied. -EINVAL for a backend that keeps none; a named backend's
 * failure is returned. */
/* The warm pools of the backends that can list theirs (backend_ops.pool_list): an array of
 * {"backend", "pool", "idle", "target", "max"} (a new reference), or NULL without memory. */
json_t *manager_pool_list(struct manager *m);
int manager_pool_clear(struct manager *m, const char *backend,
                       void (*done)(void *ctx, const char *backend, unsigned removed), void *ctx,
                       struct ak_err *err);
