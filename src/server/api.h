/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operations of the HTTP API and of MCP, independent of either transport: JSON in, JSON or
 * an error with its HTTP status out. Semantics follow reference/http-contract.md (what the SDK
 * sends and parses) and upstream's http_api.rs (reference/upstream.md §2).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/manager.h"
#include "shared/cleanup.h"

#define API_BODY_MAX (16u << 20)    /* request bodies, as upstream */
#define API_OUTPUT_MAX (16u << 20)  /* output of one command kept for a JSON reply */
#define API_EXEC_TIMEOUT_MS 600000u /* a command's deadline unless the request gives one */
#define API_DEFAULT_IMAGE "host"    /* native's image; upstream's alpine:3.20 maps here */

struct api_options {
        bool allow_sudo_exec; /* [api] allow_sudo_exec */
};

struct api_result {
        int status;   /* HTTP status */
        json_t *data; /* success payload (owned) */
        char error[AK_ERR_MSG_MAX];
        json_t *extra; /* extra top-level members of an error reply (owned), e.g. exit_code */
};

/* Frees what r holds (r itself is the caller's) and zeroes it, ready for another use. */
void api_result_done(struct api_result *r);
DEFINE_CLEANUP_DONE(struct api_result, api_result_done)
#define cleanup_api_result CLEANUP_FUNC(api_result_done)

/* Fills r as a failure; returns -1 so handlers can `return api_fail(...)`. */
int api_fail(struct api_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The HTTP status for a manager error code. */
int api_status_of(int err_code);

struct api_ctx {
        struct manager *m;
        const struct api_options *opts;
};

/* POST /run (non-streaming): {command, image?, profile?, fast?, env?, cwd?, timeout_ms?,
 * network?} -> {output}. */
int api_run(struct api_ctx *c, json_t *body, struct api_result *r);
/* Validates a run request into o and x (strings point into body). */
int api_run_prepare(json_t *body, struct create_opts *o, struct agent_exec_opts *x,
                    char ***argv_out, char ***env_out, struct api_result *r);

int api_list(struct api_ctx *c, json_t *label_filters, struct api_result *r);
int api_create(struct api_ctx *c, json_t *body, struct api_result *r);
int api_get(struct api_ctx *c, const char *name, struct api_result *r);
int api_get_by_uuid(struct api_ctx *c, const char *uuid, struct api_result *r);
int api_patch(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_delete(struct api_ctx *c, const char *name, struct api_result *r);
int api_start(struct api_ctx *c, const char *name, struct api_result *r);
int api_stop(struct api_ctx *c, const char *name, struct api_result *r);
int api_exec(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_exec_detach(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_detached_list(struct api_ctx *c, const char *name, struct api_result *r);
int api_detached_get(struct api_ctx *c, const char *name, const char *id, struct api_result *r);
int api_detached_logs(struct api_ctx *c, const char *name, const char *id, bool stderr_stream,
                      struct api_result *r);
int api_detached_kill(struct api_ctx *c, const char *name, const char *id, struct api_result *r);
/* path: an absolute sandbox path (already normalised). */
int api_file_read(struct api_ctx *c, const char *name, const char *path, struct api_result *r);
int api_file_write(struct api_ctx *c, const char *name, const char *path, json_t *body,
                   struct api_result *r);
int api_file_delete(struct api_ctx *c, const char *name, const char *path, struct api_result *r);
int api_files_write(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_extend(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_resize(struct api_ctx *c, const char *name, json_t *body, struct api_result *r);
int api_recover(struct api_ctx *c, const char *name, struct api_result *r);
int api_reconcile(struct api_ctx *c, json_t *body, struct api_result *r);
int api_gc(struct api_ctx *c, struct api_result *r);
int api_logs(struct api_ctx *c, const char *name, struct api_result *r);
int api_audit(struct api_ctx *c, size_t last, struct api_result *r);
int api_batch_run(struct api_ctx *c, json_t *body, struct api_result *r);

/* "tmp/a b" and "//tmp/a b" -> "/tmp/a b": empty segments dropped. -EINVAL on "..". */
int api_normalize_path(const char *raw, char *out, size_t len);
