// SPDX-License-Identifier: Apache-2.0
/* The API's shared ground: results and their statuses, the request fields every operation reads,
 * command output, the sandbox a request names; and the server's own operations (health, status,
 * stats, audit, gc, reconcile). Never prints; every failure becomes a status and a message for
 * the envelope. */
#include "api-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "agent/proto.h"
#include "build-config.h"
#include "core/audit.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-mode.h"
#include "shared/parse-util.h"
#include "shared/strv.h"
#include "shared/text-util.h"

void api_result_done(struct api_result *r)
{
        if (r->follow && r->follow_fd >= 0)
                close(r->follow_fd);
        json_decref(r->data);
        json_decref(r->extra);
        memset(r, 0, sizeof(*r));
}

int api_fail(struct api_result *r, int status, const char *fmt, ...)
{
        va_list ap;

        r->status = status;
        va_start(ap, fmt);
        (void)vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
        return -1;
}

int api_status_of(int code)
{
        switch (code) {
        case ENOENT:
                return 404;
        case EINVAL:
        case ENAMETOOLONG:
        case E2BIG:
        case ERANGE:
                return 400;
        case EEXIST:
        case EBUSY:
        case EALREADY:
        case ESRCH:
        case ENOTEMPTY:
        case ECANCELED:
                return 409;
        case EPERM:
        case EACCES:
                return 403;
        case EFBIG:
                return 413;
        case ENOTSUP:
                return 501;
        default:
                return 500;
        }
}

int api_fail_err(struct api_result *r, const struct ak_err *err)
{
        return api_fail(r, api_status_of(err->code), "%s", ak_err_msg(err));
}

int api_ok(struct api_result *r, int status, json_t *data)
{
        r->status = status;
        r->data = data ? data : json_null();
        return 0;
}

int api_ok_text(struct api_result *r, const char *fmt, ...)
{
        char text[1024];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        return api_ok(r, 200, json_string(text));
}

void api_set_backend(struct api_result *r, const char *backend)
{
        (void)snprintf(r->backend, sizeof(r->backend), "%s", backend ? backend : "");
}

/* ---- query parameters ---- */

const char *api_query_get(const struct api_args *a, const char *key)
{
        return a->query ? a->query->get(a->query->ctx, key) : NULL;
}

static const char *json_query_get(void *ctx, const char *key)
{
        return json_string_value(json_object_get(ctx, key));
}

static void json_query_each(void *ctx, const char *key, void (*fn)(void *fctx, const char *value),
                            void *fctx)
{
        const char *v = json_query_get(ctx, key);

        if (v)
                fn(fctx, v);
}

struct api_query api_query_json(json_t *object)
{
        return (struct api_query){json_query_get, json_query_each, object};
}

/* ---- request fields ---- */

int api_want_name(const char *name, struct api_result *r)
{
        struct ak_err err = {0};
        if (validate_name(name, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        return 0;
}

/* An array of strings (argv, env, volumes); NULL-terminated copy in *ret. */
int api_string_array(json_t *body, const char *key, bool required, size_t max, char ***ret,
                     struct api_result *r)
{
        json_t *v = json_object_get(body, key), *e;
        size_t i;

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return api_fail(r, 400, "%s is required", key);
                return 0;
        }
        if (!json_is_array(v))
                return api_fail(r, 400, "%s must be an array of strings", key);
        if (json_array_size(v) > max)
                return api_fail(r, 400, "%s has more than %zu entries", key, max);
        *ret = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!*ret)
                return api_fail(r, 500, "out of memory");
        json_array_foreach (v, i, e) {
                if (!json_is_string(e) ||
                    memchr(json_string_value(e), '\0', json_string_length(e))) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 400, "%s must be an array of strings", key);
                }
                if (!((*ret)[i] = strdup(json_string_value(e)))) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 500, "out of memory");
                }
        }
        return 0;
}

int api_command_of(json_t *body, char ***ret, struct api_result *r)
{
        if (api_string_array(body, "command", false, AK_MAX_ARGS, ret, r) < 0)
                return -1;
        if (!*ret || !(*ret)[0]) {
                strv_free(*ret);
                *ret = NULL;
                return api_fail(r, 400, "command is required");
        }
        return 0;
}

/* env: ["K=V", ...] (HTTP) or {"K": "V"} (MCP); validated. */
int api_env_of(json_t *body, char ***ret, struct api_result *r)
{
        json_t *v = json_object_get(body, "env");
        struct ak_err err = {0};

        *ret = NULL;
        if (json_is_object(v)) {
                const char *k;
                json_t *val;
                json_object_foreach (v, k, val) {
                        cleanup_free char *e = NULL;
                        if (!json_is_string(val))
                                return api_fail(r, 400, "env values must be strings");
                        if (asprintf(&e, "%s=%s", k, json_string_value(val)) < 0)
                                return api_fail(r, 500, "out of memory");
                        if (strv_len(*ret) >= AK_MAX_ARGS)
                                return api_fail(r, 400, "too many environment variables");
                        if (strv_consume(ret, TAKE_PTR(e)) < 0)
                                return api_fail(r, 500, "out of memory");
                }
        } else if (api_string_array(body, "env", false, AK_MAX_ARGS, ret, r) < 0) {
                return -1;
        }
        for (char **e = *ret; e && *e; e++)
                if (validate_env_entry(*e, &err) < 0) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 400, "%s", ak_err_msg(&err));
                }
        return 0;
}

const char *api_opt_string(json_t *body, const char *key, struct api_result *r, bool *bad)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return NULL;
        if (!json_is_string(v)) {
                *bad = true;
                (void)api_fail(r, 400, "%s must be a string", key);
                return NULL;
        }
        return json_string_value(v);
}

int api_opt_uint(json_t *body, const char *key, uint64_t max, uint64_t *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return api_fail(r, 400, "%s must be an integer from 0 to %llu", key,
                                (unsigned long long)max);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* disk_mb: absent, null, or DISK_MB_MIN..DISK_MB_MAX. */
int api_opt_disk(json_t *body, uint64_t *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, "disk_mb");
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < DISK_MB_MIN ||
            json_integer_value(v) > DISK_MB_MAX)
                return api_fail(r, 400, "disk_mb must be an integer from %u to %u", DISK_MB_MIN,
                                DISK_MB_MAX);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int api_opt_bool(json_t *body, const char *key, int *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return api_fail(r, 400, "%s must be true or false", key);
        *ret = json_is_true(v);
        return 0;
}

int api_opt_compat(json_t *body, const char **ret, struct api_result *r)
{
        static const char *const modes[] = {"native", "claude", "codex", "gemini"};
        json_t *v = json_object_get(body, "compatibility_mode");

        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        for (size_t i = 0; json_is_string(v) && i < ARRAY_SIZE(modes); i++)
                if (!strcmp(json_string_value(v), modes[i])) {
                        *ret = modes[i];
                        return 0;
                }
        return api_fail(r, 400,
                        "compatibility_mode must be \"native\", \"claude\", \"codex\" or "
                        "\"gemini\"");
}

int api_opt_network(json_t *body, int *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, "network");
        enum net_mode m;

        if (!v || json_is_null(v))
                return 0;
        if (json_is_boolean(v)) {
                *ret = json_is_true(v) ? NET_MODE_ON : NET_MODE_NONE;
                return 0;
        }
        if (!json_is_string(v) || net_mode_from_string(json_string_value(v), &m) < 0)
                return api_fail(r, 400,
                                "network must be true, false, \"none\", \"proxy\" or \"full\"");
        *ret = (int)m;
        return 0;
}

/* Upstream's combined output: stdout, then stderr after a newline when both have text. */
/* ---- output of a command ---- */

json_t *api_combined(const struct buf *out, const struct buf *err)
{
        cleanup_buf struct buf b = BUF_INIT;

        if (out->len)
                (void)buf_append(&b, out->data, out->len);
        if (out->len && err->len)
                (void)buf_append(&b, "\n", 1);
        if (err->len)
                (void)buf_append(&b, err->data, err->len);
        if (!utf8_valid(b.data ? b.data : "", b.len)) {
                /* JSON strings are text: invalid bytes become U+FFFD */
                cleanup_buf struct buf fixed = BUF_INIT;
                size_t i = 0;
                while (i < b.len) {
                        size_t ok_len = utf8_invalid_at((unsigned char *)b.data + i, b.len - i);
                        (void)buf_append(&fixed, b.data + i, ok_len);
                        i += ok_len;
                        if (i < b.len) {
                                (void)buf_append(&fixed, "\xEF\xBF\xBD", 3);
                                i++;
                        }
                }
                return json_stringn(fixed.data ? fixed.data : "", fixed.len);
        }
        return json_stringn(b.data ? b.data : "", b.len);
}

/* 200 {output}, or upstream's 409 with exit_code and output for a failed command. */
int api_command_reply(struct api_result *r, const struct agent_exit *ex, const struct buf *out,
                      const struct buf *err)
{
        json_t *output = api_combined(out, err);

        if (!output)
                return api_fail(r, 500, "out of memory");
        if (ex->code != 0) {
                const char *text = json_string_value(output);
                size_t n = strlen(text);
                api_fail(r, 409, "Command exited with code %d%s: %.*s", ex->code,
                         ex->timed_out ? " (timed out)" : "", (int)(n > 512 ? 512 : n), text);
                r->extra = json_pack("{s:i,s:o}", "exit_code", ex->code, "output", output);
                return -1;
        }
        return api_ok(r, 200, json_pack("{s:o}", "output", output));
}

int api_to_buf(void *ctx, const void *data, size_t len)
{
        struct buf *b = ctx;
        if (b->len + len > API_OUTPUT_MAX)
                return -1;
        return buf_append(b, data, len) < 0 ? -1 : 0;
}

/* ---- the sandbox a request names ---- */

int api_load(struct api_ctx *c, const char *name, struct sandbox_state **st, struct api_result *r)
{
        struct ak_err err = {0};

        if (api_want_name(name, r) < 0)
                return -1;
        if (manager_get(c->m, name, st, &err) < 0) {
                if (err.code == ENOENT)
                        return api_fail(r, 404, "Sandbox '%s' not found", name);
                return api_fail_err(r, &err);
        }
        api_set_backend(r, manager_backend_name(*st));
        return 0;
}

int api_info_reply(struct api_ctx *c, const char *name, int status, struct api_result *r)
{
        struct sandbox_state *st = NULL;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        api_ok(r, status, manager_info_json(c->m, st));
        state_free(st);
        return 0;
}

int api_running(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        bool up;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        up = manager_is_running(c->m, st);
        state_free(st);
        if (!up)
                return api_fail(r, 409,
                                "Sandbox '%s' is not running. Start it with: POST "
                                "/sandboxes/%s/start",
                                name, name);
        return 0;
}

/* ---- the server ---- */

int api_health(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        (void)c;
        (void)a;
        return api_ok(r, 200, json_string("ok"));
}

int api_status(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        (void)a;
        return api_ok(r, 200,
                      json_pack("{s:s,s:s,s:b}", "version", AK_VERSION, "backend",
                                manager_default_backend(), "api_key_configured",
                                c->opts->api_key_configured));
}

/* The host's CPU time counters from /proc/stat's first line: busy and total jiffies. */
static int cpu_times(uint64_t *busy, uint64_t *total)
{
        unsigned long long v[8] = {0};
        FILE *f = fopen("/proc/stat", "re");
        int n;

        if (!f)
                return -1;
        n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
        fclose(f);
        if (n < 4)
                return -1;
        *total = 0;
        for (int i = 0; i < 8; i++)
                *total += v[i];
        *busy = *total - v[3] - v[4]; /* less idle and iowait */
        return 0;
}

/* The host's CPU use over 200 ms, in percent (upstream samples for as long). */
static double cpu_percent(void)
{
        uint64_t b0, t0, b1, t1;

        if (cpu_times(&b0, &t0) < 0)
                return 0;
        (void)usleep(200000);
        if (cpu_times(&b1, &t1) < 0 || t1 <= t0)
                return 0;
        return 100.0 * (double)(b1 - b0) / (double)(t1 - t0);
}

int api_stats(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_state_list struct state_list l = {0};
        size_t n = manager_list(c->m, NULL, NULL, &l) == 0 ? l.n : 0;
        uint64_t mem = 0, total_mb = 0, disk_mb = 0;
        struct statvfs vfs;
        struct sysinfo si;
        double cpu = cpu_percent();

        (void)a;
        for (size_t i = 0; i < n; i++) {
                struct backend_stats st;
                if (manager_stats(c->m, l.items[i], &st) == 0)
                        mem += st.memory_bytes;
        }
        if (sysinfo(&si) == 0)
                total_mb = ((uint64_t)si.totalram * si.mem_unit) >> 20;
        if (statvfs(manager_data_dir(c->m), &vfs) == 0)
                disk_mb = ((uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize) >> 20;
        return api_ok(r, 200,
                      json_pack("{s:I,s:i,s:s,s:I,s:s,s:{s:f,s:I,s:I,s:I}}", "sandbox_count",
                                (json_int_t)n, "sandbox_limit", 0, "backend",
                                manager_default_backend(), "uptime_seconds",
                                (json_int_t)(time(NULL) - c->opts->started), "version", AK_VERSION,
                                "resource_usage", "cpu_percent", cpu, "memory_used_mb",
                                (json_int_t)(mem >> 20), "memory_total_mb", (json_int_t)total_mb,
                                "disk_used_mb", (json_int_t)disk_mb));
}

int api_reconcile(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *body = a->body;
        struct reconcile_result res;
        struct ak_err err = {0};
        int dry = 0;

        if (body && !json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        if (body && api_opt_bool(body, "dry_run", &dry, r) < 0)
                return -1;
        if (manager_reconcile(c->m, dry, &res, &err) < 0)
                return api_fail_err(r, &err);
        api_ok(r, 200, reconcile_json(&res));
        reconcile_result_done(&res);
        return 0;
}

int api_gc(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_strv char **removed = NULL;
        struct ak_err err = {0};

        (void)a;
        if (manager_gc(c->m, NULL, false, &removed, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(r, 200,
                      json_pack("{s:o,s:I}", "removed", strv_json_array(removed), "count",
                                (json_int_t)strv_len(removed)));
}

/* Audit entries carry upstream's "type"; the API's readers also look for "event". */
static json_t *entries_view(json_t *entries)
{
        size_t i;
        json_t *e;

        json_array_foreach (entries, i, e)
                if (json_is_string(json_object_get(e, "type")))
                        json_object_set(e, "event", json_object_get(e, "type"));
        return entries;
}

int api_audit(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *last = api_query_get(a, "last");
        cleanup_free char *path = NULL;
        json_t *entries = NULL;
        struct ak_err err = {0};
        uint64_t n = 100;

        (void)c;
        if (last && (safe_atou64(last, &n) < 0 || n > 100000))
                return api_fail(r, 400, "last must be a number up to 100000");
        path = audit_path();
        if (!path || audit_read(path, NULL, (size_t)n, &entries, &err) < 0)
                return api_fail(r, 500, "cannot read the audit log: %s", ak_err_msg(&err));
        return api_ok(r, 200, entries_view(entries));
}

int api_logs(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        struct sandbox_state *st = NULL;
        cleanup_free char *path = audit_path();
        json_t *entries = NULL;
        struct ak_err err = {0};

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (!path || audit_read(path, name, 0, &entries, &err) < 0)
                return api_fail(r, 500, "cannot read the audit log: %s", ak_err_msg(&err));
        return api_ok(r, 200, entries_view(entries));
}
