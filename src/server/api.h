/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operations of the HTTP API and of MCP, independent of either transport: JSON in, JSON or
 * an error with its HTTP status out. Semantics follow reference/http-contract.md (what the SDK
 * sends and parses) and upstream's http_api.rs (reference/upstream.md §2).
 *
 * Every operation has one shape, `int api_x(struct api_ctx *, const struct api_args *, struct
 * api_result *)`, so that the HTTP route table (route.h) and the MCP tool table (mcp.c) both point
 * at them directly. The operations live by subject: api-sandboxes.c (records and lifecycle),
 * api-exec.c (runs, exec, detached commands), api-files.c (files), api.c (the server's own and
 * what they share). They never print and reach sandboxes only through the manager.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/manager.h"
#include "core/permissions.h"
#include "shared/cleanup.h"

#define API_BODY_MAX (16u << 20)    /* request bodies, as upstream */
#define API_OUTPUT_MAX (16u << 20)  /* output of one command kept for a JSON reply */
#define API_EXEC_TIMEOUT_MS 600000u /* a command's deadline unless the request gives one */
#define API_DEFAULT_IMAGE "host"    /* native's image; upstream's alpine:3.20 maps here */
#define API_BACKEND_MAX 32          /* a backend's name in a result */

struct api_options {
        bool allow_sudo_exec;     /* [api] allow_sudo_exec */
        bool api_key_configured;  /* GET /status says so */
        time_t started;           /* GET /stats: the uptime */
        struct perm_store *perms; /* the process's permission grants (NULL: routes answer 500) */
};

struct api_result {
        int status;   /* HTTP status */
        json_t *data; /* success payload (owned) */
        char error[AK_ERR_MSG_MAX];
        json_t *extra; /* extra top-level members of an error reply (owned), e.g. exit_code */
        /* the backend of the sandbox the request was about (metric labels), or "" */
        char backend[API_BACKEND_MAX];
        /* follow: the reply is server-sent events, one per line appended to follow_fd (a
         * decision log, owned) until the client leaves (api_network_log) */
        bool follow;
        int follow_fd;
};

/* Frees what r holds (r itself is the caller's) and zeroes it, ready for another use. */
void api_result_done(struct api_result *r);
DEFINE_CLEANUP_DONE(struct api_result, api_result_done)
#define cleanup_api_result CLEANUP_FUNC(api_result_done)

/* Fills r as a failure; returns -1 so operations can `return api_fail(...)`. */
int api_fail(struct api_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The HTTP status for a manager error code. */
int api_status_of(int err_code);

struct api_ctx {
        struct manager *m;
        const struct api_options *opts;
};

/* A request's query parameters (HTTP), or MCP's tool arguments read the same way. */
struct api_query {
        /* The first value of key, or NULL. */
        const char *(*get)(void *ctx, const char *key);
        /* Calls fn(fctx, value) for each value of key, in order. */
        void (*each)(void *ctx, const char *key, void (*fn)(void *fctx, const char *value),
                     void *fctx);
        void *ctx;
};

/* What an operation is asked: the route's captures (or MCP's arguments) and the body. */
struct api_args {
        const char *name; /* a sandbox's name */
        const char *id;   /* a detached command's id, or a sandbox's uuid */
        const char *path; /* an absolute, normalised path in the sandbox (api_normalize_path) */
        json_t *body;     /* the JSON body (MCP: the tool's arguments), or NULL */
        const struct api_query *query; /* NULL: none */
};

/* The first value of query parameter key, or NULL (also when a has no query). */
const char *api_query_get(const struct api_args *a, const char *key);
/* A query that reads the string members of a JSON object (MCP's arguments). */
struct api_query api_query_json(json_t *object);

typedef int (*api_op)(struct api_ctx *c, const struct api_args *a, struct api_result *r);

/* ---- the server (api.c) ---- */

/* GET /health: "ok" (needs no manager). */
int api_health(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /status: version, default backend, whether a key is configured. */
int api_status(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /stats: counts, memory in use, uptime. */
int api_stats(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /stats also: cpu_percent (the host's, sampled over 200 ms), memory_total_mb, disk_used_mb
 * (the data directory's filesystem). */
/* the host (api-host.c): GET /doctor {checks: [{name, status, message}], healthy}; GET /backends
 * [{name, description, available, default, message, capabilities}]; GET /agents (upstream's
 * fields, and the names of the key variables each reads); GET /images (the local store);
 * DELETE /images/{name or id}[?force=true] (a->path; refused while a sandbox uses it, as the
 * CLI's `images rm`) */
int api_doctor(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_backends(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_agents(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_images_list(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_image_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /audit?last=N (default 100). */
int api_audit(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* the vault (api-secrets.c): names only out, values only in */
int api_secrets_list(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_secret_set(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_secret_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* permission grants (api-permissions.c; core/permissions.h), the process's own store:
 * GET /permissions and MCP permission_list: [{id, kind, scope, sandbox, granted_at}];
 * POST /permissions/grant {kind, scope?, sandbox?, granted?} and MCP permission_grant:
 * {granted: true, grant_id, kind, scope} (granted false: {granted: false}, nothing stored);
 * DELETE /permissions/{a->id} and MCP permission_revoke {id}: 404 when there is none;
 * POST /permissions/check {kind, sandbox?}: {allowed, kind, sandbox}, consuming nothing */
int api_permissions_list(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_permission_grant(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_permission_revoke(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_permission_check(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* MCP's rule: whether kind is granted for sandbox (NULL: all sandboxes), consuming a `once`
 * grant; 0, or -1 with r failed (403) in upstream's words, naming a fresh request id. */
int api_permission_require(struct api_ctx *c, enum perm_kind kind, const char *sandbox,
                           struct api_result *r);

/* POST /gc: removes expired sandboxes. */
int api_gc(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* POST /lifecycle/reconcile {dry_run?}. */
int api_reconcile(struct api_ctx *c, const struct api_args *a, struct api_result *r);

/* ---- sandboxes (api-sandboxes.c): a->name ---- */

/* GET /sandboxes?label=k:v... */
int api_list(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* POST /sandboxes {name, image?, ...}: created and started (201). */
int api_create(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_get(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /sandboxes/by-uuid/{a->id}. */
int api_get_by_uuid(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_patch(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_start(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_stop(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* upstream's: 200 "Sandbox paused" / "Sandbox resumed"; 409 not running, already paused, not
 * paused; 422 a backend that cannot pause (microvm). */
int api_pause(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_resume(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_extend(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_resize(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_recover(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* The sandbox's audit entries. */
int api_logs(struct api_ctx *c, const struct api_args *a, struct api_result *r);

/* ---- egress (api-network.c): a->name ---- */

/* GET /sandboxes/{name}/network/policy: the policy (docs/network.md). */
int api_network_policy_get(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* PUT /sandboxes/{name}/network/policy, the body a policy (MCP: {name, policy}): replaces it and
 * answers with the policy now applied. */
int api_network_policy_put(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* GET /sandboxes/{name}/network/log[?limit=N][&follow=1]: {"entries": [...]}, the last N
 * (default 1000) of the decision log; with follow, r->follow (server-sent events). */
int api_network_log(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* One log line as an entry: a JSON object of at most 16 KiB, else NULL. */
json_t *api_network_log_line(const char *line, size_t len);

/* ---- commands (api-exec.c) ---- */

/* POST /run (non-streaming): {command, image?, profile?, fast?, env?, cwd?, timeout_ms?,
 * network?, ports?} -> {output}. */
int api_run(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* The most ports one sandbox publishes through the API (create and run). */
#define API_PORTS_MAX 64
/* Validates a run request into o and x (strings point into body, o->ports into ports). */
int api_run_prepare(json_t *body, struct create_opts *o, struct agent_exec_opts *x,
                    struct port_spec ports[API_PORTS_MAX], char ***argv_out, char ***env_out,
                    struct api_result *r);
/* POST /batch/run {commands: [run requests]}: at most 8 at once, results in order. */
int api_batch_run(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_exec(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_exec_detach(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_detached_list(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* a->id: the command's id. */
int api_detached_get(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* Query "stream": "stderr" for its standard error. */
int api_detached_logs(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_detached_kill(struct api_ctx *c, const struct api_args *a, struct api_result *r);

/* ---- files (api-files.c): a->path ---- */

int api_file_read(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_file_write(struct api_ctx *c, const struct api_args *a, struct api_result *r);
int api_file_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r);
/* POST /sandboxes/{name}/files {files: {path: content}}: every path checked before any write. */
int api_files_write(struct api_ctx *c, const struct api_args *a, struct api_result *r);

/* "tmp/a b" and "//tmp/a b" -> "/tmp/a b": empty segments dropped. -EINVAL on "..". */
int api_normalize_path(const char *raw, char *out, size_t len);
