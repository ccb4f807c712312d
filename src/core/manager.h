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
#include "shared/err.h"

struct manager {
        struct store *store;
        /* Progress and warnings for a person (the CLI prints them); NULL: dropped. */
        void (*notify)(void *ctx, const char *msg);
        void *notify_ctx;
};

#define START_OUTPUT_MAX (64u << 10)                 /* init script output kept for errors */
#define AGENT_INSTALL_TIMEOUT_MS (10u * 60u * 1000u) /* npm install -g of an agent's CLI */

int manager_open(struct manager **ret, struct ak_err *err);
void manager_free(struct manager *m);

struct create_opts {
        const char *name;
        const char *image;   /* NULL: "host" on native */
        const char *backend; /* NULL: the default backend */
        const char *profile; /* NULL: moderate */
        uint32_t vcpus;      /* 0: DEFAULT_VCPUS */
        uint64_t memory_mb;  /* 0: the profile's default */
        bool has_ttl;
        uint64_t ttl_seconds; /* with has_ttl: 0 means no expiry */
        int network;          /* -1: the profile decides */
        int mount_cwd;        /* -1: the profile decides */
        const char *work_dir; /* host dir for /workspace; NULL: the current directory */
        char *const *env;     /* KEY=VALUE for every command */
        const struct port_spec *ports;
        size_t n_ports;
        json_t *labels; /* object of strings (borrowed), or NULL */
        const char *description;
        const char *agent;
        const struct cmd_policy *commands; /* [security.commands]; NULL: none */
        const char *init_script;           /* sh -c after every start; NULL: none */
        const struct inject_file *files;   /* copied in after every start */
        size_t n_files;
};

/* Validates and records a new sandbox (not started). */
int manager_create(struct manager *m, const struct create_opts *o, struct ak_err *err);
/* Starts a recorded sandbox. -EALREADY when it is already running. */
int manager_start(struct manager *m, const char *name, struct ak_err *err);
/* Stops a sandbox; stopping a stopped sandbox is not an error. */
int manager_stop(struct manager *m, const char *name, struct ak_err *err);
/* Stops and forgets a sandbox: nothing of it remains (processes, cgroups, files, lock). */
int manager_remove(struct manager *m, const char *name, struct ak_err *err);

/* Name of a recorded sandbox's backend (its own, or the default when it names none). */
const char *manager_backend_name(const struct sandbox_state *st);
/* The backend itself; -ENOTSUP (with a message) when this build does not have it. */
int manager_backend(const struct sandbox_state *st, const struct backend_ops **ret,
                    struct ak_err *err);
bool manager_is_running(struct manager *m, const struct sandbox_state *st);

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
/* An interactive session (audited as session_attached). */
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
/* The host-side policy check alone (audits a refusal). */
int manager_check_command(const char *sandbox, const struct cmd_policy *p, char *const *argv,
                          struct ak_err *err);

/* Runs one command in a throw-away sandbox configured like o (name is ignored): nothing of it
 * remains afterwards, even if this process is killed. */
int manager_run_ephemeral(struct manager *m, const struct create_opts *o,
                          const struct agent_exec_opts *x, const struct agent_io *io,
                          struct agent_exit *ret, struct ak_err *err);

/* Removes leftovers of ephemeral runs whose starter was killed. */
void manager_sweep(struct manager *m);
