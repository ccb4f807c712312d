/* SPDX-License-Identifier: Apache-2.0 */
/* What the API's operation files (api*.c) share among themselves; not for other modules. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/api.h"
#include "shared/buf.h"

/* ---- replies ---- */

/* A success: status and data (owned; NULL becomes JSON null). Returns 0. */
int api_ok(struct api_result *r, int status, json_t *data);
/* A success whose data is a message. Returns 0. */
int api_ok_text(struct api_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failure with the manager's message and the status of its code. Returns -1. */
int api_fail_err(struct api_result *r, const struct ak_err *err);
/* Records which backend the request's sandbox uses (metric labels). */
void api_set_backend(struct api_result *r, const char *backend);

/* ---- request fields: each fails r with 400 and a message saying which field and why ---- */

int api_want_name(const char *name, struct api_result *r);
/* An array of strings (argv, env, volumes) of at most max entries; a NULL-terminated copy in
 * *ret (NULL when absent and not required). */
int api_string_array(json_t *body, const char *key, bool required, size_t max, char ***ret,
                     struct api_result *r);
/* "command": a non-empty array of strings. */
int api_command_of(json_t *body, char ***ret, struct api_result *r);
/* "env": ["K=V", ...] (HTTP) or {"K": "V"} (MCP); validated. */
int api_env_of(json_t *body, char ***ret, struct api_result *r);
/* An optional string (NULL when absent or null); sets *bad on any other type. */
const char *api_opt_string(json_t *body, const char *key, struct api_result *r, bool *bad);
int api_opt_uint(json_t *body, const char *key, uint64_t max, uint64_t *ret, struct api_result *r);
/* "disk_mb": absent, null, or DISK_MB_MIN..DISK_MB_MAX. */
int api_opt_disk(json_t *body, uint64_t *ret, struct api_result *r);
int api_opt_bool(json_t *body, const char *key, int *ret, struct api_result *r);
/* "compatibility_mode": absent, null, or one of upstream's native|claude|codex|gemini. */
int api_opt_compat(json_t *body, const char **ret, struct api_result *r);
/* "network": true, false (upstream's) or a mode's name: *ret an enum net_mode. */
int api_opt_network(json_t *body, int *ret, struct api_result *r);

/* ---- output of a command ---- */

/* Upstream's combined output: stdout, then stderr after a newline when both have text; bytes
 * that are not UTF-8 become U+FFFD. */
json_t *api_combined(const struct buf *out, const struct buf *err);
/* 200 {output}, or upstream's 409 with exit_code and output for a failed command. */
int api_command_reply(struct api_result *r, const struct agent_exit *ex, const struct buf *out,
                      const struct buf *err);
/* A sink that appends to the struct buf ctx, refusing more than API_OUTPUT_MAX bytes. */
int api_to_buf(void *ctx, const void *data, size_t len);

/* ---- the sandbox a request names ---- */

/* Loads it (400 for a bad name, 404 "Sandbox 'x' not found") and notes its backend. */
int api_load(struct api_ctx *c, const char *name, struct sandbox_state **st, struct api_result *r);
/* api_load, answered with status and what info shows of it. */
int api_info_reply(struct api_ctx *c, const char *name, int status, struct api_result *r);
/* api_load, and 409 when it is not running. */
int api_running(struct api_ctx *c, const char *name, struct api_result *r);
