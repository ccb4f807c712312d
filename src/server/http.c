// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-serve: the HTTP API on libmicrohttpd, one thread per connection (a slow or stalled
 * client holds only its own thread; MHD's connection timeout ends idle ones). Requests are
 * routed to api.c; /run/stream relays a worker's output as server-sent events as it is written,
 * sends a comment during silence, and kills the command when the client goes away. A
 * reconciler thread removes expired sandboxes and applies lifecycle policies every few seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "core/config.h"
#include "core/manager.h"
#include "server/api.h"
#include "server/metrics.h"
#include "server/route.h"
#include "server/worker.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/time-util.h"

#define API_KEYS_MAX 64
#define API_KEY_MAX 512
#define CONNECTIONS_MAX 512
#define IDLE_TIMEOUT_S 120
#define SSE_KEEPALIVE_MS 15000
#define DEFAULT_PORT 18888
#define RECONCILE_INTERVAL_S 2

struct server {
        char *keys[API_KEYS_MAX];
        size_t n_keys;
        struct api_options opts;
        time_t started;
        volatile sig_atomic_t stop;
        unsigned reconcile_s;
};

static struct server srv;

/* ---- one request ---- */

struct request {
        struct buf body;
        bool too_large;
        int64_t start_ns;
        char route[96]; /* normalised path for metrics */
};

static double since(int64_t start_ns)
{
        return (double)(now_monotonic_ns() - start_ns) / 1e9;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, char *text, const char *type)
{
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        enum MHD_Result r;

        if (!resp) {
                free(text);
                return MHD_NO;
        }
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        r = MHD_queue_response(c, (unsigned)status, resp);
        MHD_destroy_response(resp);
        return r;
}

/* The envelope: {"success":true,"data":...} or {"success":false,"error":"...", extras}. */
static enum MHD_Result send_result(struct MHD_Connection *c, struct api_result *res)
{
        json_t *o;
        char *text;

        if (res->status >= 200 && res->status < 300) {
                o = json_pack("{s:b,s:O}", "success", 1, "data",
                              res->data ? res->data : json_null());
        } else {
                o = json_pack("{s:b,s:s}", "success", 0, "error", res->error);
                if (o && res->extra)
                        json_object_update(o, res->extra);
        }
        text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!text)
                return MHD_NO;
        return send_text(c, res->status ? res->status : 500, text, "application/json");
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg)
{
        struct api_result res = {0};
        enum MHD_Result r;

        api_fail(&res, status, "%s", msg);
        r = send_result(c, &res);
        api_result_clear(&res);
        return r;
}

/* ---- auth ---- */

static bool const_time_equal(const char *a, size_t alen, const char *b, size_t blen)
{
        unsigned char diff = (unsigned char)(alen != blen);
        size_t n = alen > blen ? alen : blen;

        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
        return diff == 0;
}

/* NULL when the request may go on; else the 401 message. */
static const char *check_auth(struct MHD_Connection *c)
{
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        bool match = false;

        if (!srv.n_keys)
                return NULL;
        if (!h) {
                const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
                if (!x)
                        return "Missing Authorization header";
                for (size_t i = 0; i < srv.n_keys; i++)
                        match |= const_time_equal(x, strlen(x), srv.keys[i], strlen(srv.keys[i]));
                return match ? NULL : "Invalid API key";
        }
        if (strncmp(h, "Bearer ", 7) != 0)
                return "Invalid authorization format. Use: Bearer <api_key>";
        h += 7;
        /* every key is compared, whatever matched, so timing says nothing */
        for (size_t i = 0; i < srv.n_keys; i++)
                match |= const_time_equal(h, strlen(h), srv.keys[i], strlen(srv.keys[i]));
        return match ? NULL : "Invalid API key";
}

/* ---- routing ---- */

struct label_ctx {
        json_t *filters;
        bool bad;
};

static enum MHD_Result collect_label(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
        struct label_ctx *l = cls;
        const char *colon;

        (void)kind;
        if (strcmp(key, "label") != 0 || !value)
                return MHD_YES;
        colon = strchr(value, ':');
        if (!colon) {
                l->bad = true;
                return MHD_YES;
        }
        {
                cleanup_free char *k = strndup(value, (size_t)(colon - value));
                if (k)
                        json_object_set_new(l->filters, k, json_string(colon + 1));
        }
        return MHD_YES;
}

/* Parses the JSON body; NULL body allowed when optional. */
static int body_json(struct request *rq, bool optional, json_t **ret, struct api_result *res)
{
        json_error_t e;

        *ret = NULL;
        if (!rq->body.len) {
                if (optional)
                        return 0;
                return api_fail(res, 400, "Invalid JSON: the request has no body");
        }
        *ret = json_loadb(rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &e);
        if (!*ret)
                return api_fail(res, 400, "Invalid JSON: %s", e.text);
        return 0;
}

/* ---- server-sent events for /run/stream ---- */

struct sse {
        struct worker_run w;
        struct worker_event *ev;
        struct buf out; /* encoded events not yet sent */
        size_t sent;    /* of out */
        bool finished;  /* the terminal event is queued */
        int client_fd;
        int64_t start_ns;
};

static void sse_event(struct buf *b, const char *type, json_t *data)
{
        char *text = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
        buf_printf(b, "event: %s\ndata: %s\n\n", type, text ? text : "{}");
        free(text);
        json_decref(data);
}

/* Output chunks are text in JSON; bytes that are not UTF-8 become U+FFFD. */
static json_t *chunk_string(const char *data, size_t len)
{
        json_t *s = json_stringn(data, len);
        if (s)
                return s;
        {
                cleanup_buf struct buf fixed = BUF_INIT;
                for (size_t i = 0; i < len; i++) {
                        unsigned char ch = (unsigned char)data[i];
                        if (ch < 0x80)
                                (void)buf_append(&fixed, data + i, 1);
                        else
                                (void)buf_append(&fixed, "\xEF\xBF\xBD", 3);
                }
                return json_stringn(fixed.data ? fixed.data : "", fixed.len);
        }
}

/* Fills s->out with the next events, waiting at most SSE_KEEPALIVE_MS; returns -1 when the
 * client went away. */
static int sse_pump(struct sse *s)
{
        struct pollfd p[2] = {{s->w.fd, POLLIN, 0}, {s->client_fd, POLLRDHUP, 0}};
        int r;

        do
                r = poll(p, s->client_fd >= 0 ? 2 : 1, SSE_KEEPALIVE_MS);
        while (r < 0 && errno == EINTR);
        if (r > 0 && s->client_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
                return -1;
        if (r == 0) {
                buf_printf(&s->out, ": keepalive\n\n");
                return 0;
        }
        r = worker_run_next(&s->w, 0, s->ev);
        if (r == 0)
                return 0;
        if (r < 0) {
                sse_event(&s->out, "error",
                          json_pack("{s:s}", "message", "the sandbox ended without a result"));
                s->finished = true;
                return 0;
        }
        switch (s->ev->type) {
        case WORKER_STDOUT:
        case WORKER_STDERR:
                sse_event(&s->out, "output",
                          json_pack("{s:o,s:s}", "data", chunk_string(s->ev->data, s->ev->len),
                                    "stream", s->ev->type == WORKER_STDOUT ? "stdout" : "stderr"));
                break;
        case WORKER_EXIT:
                metrics_command("native", since(s->start_ns));
                if (s->ev->code == 0)
                        sse_event(&s->out, "done",
                                  json_pack("{s:i,s:b}", "exit_code", 0, "success", 1));
                else {
                        char msg[64];
                        (void)snprintf(msg, sizeof(msg), "Command exited with code %d%s",
                                       s->ev->code, s->ev->timed_out ? " (timed out)" : "");
                        sse_event(&s->out, "error",
                                  json_pack("{s:s,s:i}", "message", msg, "exit_code", s->ev->code));
                }
                s->finished = true;
                break;
        case WORKER_ERROR:
        default:
                sse_event(&s->out, "error", json_pack("{s:s}", "message", s->ev->data));
                s->finished = true;
                break;
        }
        return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct sse *s = cls;
        size_t n;

        (void)pos;
        while (s->sent == s->out.len) {
                if (s->finished)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                buf_reset(&s->out);
                s->sent = 0;
                if (sse_pump(s) < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        n = s->out.len - s->sent;
        if (n > max)
                n = max;
        memcpy(buf, s->out.data + s->sent, n);
        s->sent += n;
        return (ssize_t)n;
}

static void sse_free(void *cls)
{
        struct sse *s = cls;
        /* a client that left before the end takes the command and its sandbox with it */
        worker_run_end(&s->w);
        buf_free(&s->out);
        free(s->ev);
        free(s);
}

static enum MHD_Result run_stream(struct MHD_Connection *c, struct request *rq, int *status)
{
        struct api_result res = {0};
        struct create_opts o;
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        cleanup_json json_t *body = NULL;
        struct ak_err err = {0};
        const union MHD_ConnectionInfo *ci;
        struct MHD_Response *resp;
        struct sse *s;
        enum MHD_Result r;
        char now[RFC3339_MAX];

        if (body_json(rq, false, &body, &res) < 0) {
                *status = res.status;
                r = send_result(c, &res);
                api_result_clear(&res);
                return r;
        }
        s = calloc(1, sizeof(*s));
        if (!s || !(s->ev = malloc(sizeof(*s->ev)))) {
                free(s);
                return MHD_NO;
        }
        s->w.fd = s->w.pid = -1;
        s->start_ns = now_monotonic_ns();
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        s->client_fd = ci ? ci->connect_fd : -1;
        format_rfc3339(now_realtime_ns(), now);
        if (api_run_prepare(body, &o, &x, &argv, &env, &res) < 0) {
                /* upstream: an empty command is a 200 with a single error event */
                sse_event(&s->out, "error", json_pack("{s:s}", "message", res.error));
                s->finished = true;
                api_result_clear(&res);
        } else {
                sse_event(&s->out, "started",
                          json_pack("{s:O,s:b,s:s}", "command", json_object_get(body, "command"),
                                    "fast", json_is_false(json_object_get(body, "fast")) ? 0 : 1,
                                    "timestamp", now));
                if (worker_run_start(&o, &x, &s->w, &err) < 0) {
                        sse_event(&s->out, "error",
                                  json_pack("{s:s}", "message", ak_err_msg(&err)));
                        s->finished = true;
                }
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10, sse_read, s, sse_free);
        if (!resp) {
                sse_free(s);
                return MHD_NO;
        }
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        *status = 200;
        r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

/* ---- dispatch ---- */

static json_t *stats_json(struct manager *m)
{
        struct state_list l = {0};
        size_t n = manager_list(m, NULL, NULL, &l) == 0 ? l.n : 0;
        uint64_t mem = 0;

        for (size_t i = 0; i < n; i++) {
                struct backend_stats st;
                if (manager_stats(m, l.items[i], &st) == 0)
                        mem += st.memory_bytes;
        }
        if (n)
                state_list_free(&l);
        return json_pack("{s:I,s:i,s:s,s:I,s:s,s:{s:I}}", "sandbox_count", (json_int_t)n,
                         "sandbox_limit", 0, "backend", "native", "uptime_seconds",
                         (json_int_t)(time(NULL) - srv.started), "version", AK_VERSION,
                         "resource_usage", "memory_used_mb", (json_int_t)(mem >> 20));
}

static void dispatch(struct MHD_Connection *c, const char *method, struct route *rt,
                     struct request *rq, struct api_ctx *ctx, struct api_result *res)
{
        bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
             del = !strcmp(method, "DELETE"), put = !strcmp(method, "PUT"),
             patch = !strcmp(method, "PATCH");
        cleanup_json json_t *body = NULL;
        const char *name = rt->n > 1 ? rt->seg[1] : NULL;

        if (rt->n == 1 && get && route_is(rt, 0, "status")) {
                res->status = 200;
                res->data = json_pack("{s:s,s:s,s:b}", "version", AK_VERSION, "backend",
                                      manager_backend_name(&(struct sandbox_state){0}),
                                      "api_key_configured", srv.n_keys > 0);
                return;
        }
        if (rt->n == 1 && get && route_is(rt, 0, "stats")) {
                res->status = 200;
                res->data = stats_json(ctx->m);
                return;
        }
        if (rt->n == 1 && post && route_is(rt, 0, "run")) {
                if (body_json(rq, false, &body, res) == 0)
                        (void)api_run(ctx, body, res);
                return;
        }
        if (rt->n == 2 && post && route_is(rt, 0, "batch") && route_is(rt, 1, "run")) {
                if (body_json(rq, false, &body, res) == 0)
                        (void)api_batch_run(ctx, body, res);
                return;
        }
        if (rt->n == 1 && post && route_is(rt, 0, "gc")) {
                (void)api_gc(ctx, res);
                return;
        }
        if (rt->n == 2 && post && route_is(rt, 0, "lifecycle") && route_is(rt, 1, "reconcile")) {
                if (body_json(rq, true, &body, res) == 0)
                        (void)api_reconcile(ctx, body, res);
                return;
        }
        if (rt->n == 1 && get && route_is(rt, 0, "audit")) {
                const char *last = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "last");
                uint64_t n = 100;
                if (last && (safe_atou64(last, &n) < 0 || n > 100000)) {
                        api_fail(res, 400, "last must be a number up to 100000");
                        return;
                }
                (void)api_audit(ctx, (size_t)n, res);
                return;
        }
        if (!route_is(rt, 0, "sandboxes")) {
                api_fail(res, 404, "Not found");
                return;
        }
        if (rt->n == 1 && get) {
                struct label_ctx l = {json_object(), false};
                (void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_label, &l);
                if (l.bad)
                        api_fail(res, 400, "label filters are key:value");
                else
                        (void)api_list(ctx, json_object_size(l.filters) ? l.filters : NULL, res);
                json_decref(l.filters);
                return;
        }
        if (rt->n == 1 && post) {
                if (body_json(rq, false, &body, res) == 0)
                        (void)api_create(ctx, body, res);
                return;
        }
        /* by-uuid before {name}: "by-uuid" is a valid sandbox name */
        if (rt->n == 3 && get && route_is(rt, 1, "by-uuid")) {
                (void)api_get_by_uuid(ctx, rt->seg[2], res);
                return;
        }
        if (rt->n == 2) {
                if (get)
                        (void)api_get(ctx, name, res);
                else if (del)
                        (void)api_delete(ctx, name, res);
                else if (patch) {
                        if (body_json(rq, false, &body, res) == 0)
                                (void)api_patch(ctx, name, body, res);
                } else
                        api_fail(res, 405, "Method not allowed");
                return;
        }
        if (rt->path_rest || (rt->n == 3 && route_is(rt, 2, "files"))) {
                char path[4096];
                if (!rt->path_rest) {
                        if (post) {
                                if (body_json(rq, false, &body, res) == 0)
                                        (void)api_files_write(ctx, name, body, res);
                        } else {
                                api_fail(res, 405, "Method not allowed");
                        }
                        return;
                }
                if (api_normalize_path(rt->path_rest, path, sizeof(path)) < 0) {
                        api_fail(res, 400, "invalid path");
                        return;
                }
                if (get)
                        (void)api_file_read(ctx, name, path, res);
                else if (put) {
                        if (body_json(rq, false, &body, res) == 0)
                                (void)api_file_write(ctx, name, path, body, res);
                } else if (del)
                        (void)api_file_delete(ctx, name, path, res);
                else
                        api_fail(res, 405, "Method not allowed");
                return;
        }
        if (rt->n == 3 && post) {
                const char *verb = rt->seg[2];
                if (!strcmp(verb, "start"))
                        (void)api_start(ctx, name, res);
                else if (!strcmp(verb, "stop"))
                        (void)api_stop(ctx, name, res);
                else if (!strcmp(verb, "recover"))
                        (void)api_recover(ctx, name, res);
                else if (!strcmp(verb, "exec") || !strcmp(verb, "extend") ||
                         !strcmp(verb, "resize")) {
                        bool optional = strcmp(verb, "exec") != 0;
                        if (body_json(rq, optional, &body, res) < 0) {
                                if (!optional)
                                        return;
                                /* upstream: an empty or invalid body extends by 1 h */
                                api_result_clear(res);
                                body = NULL;
                        }
                        if (!body)
                                body = json_object();
                        if (!strcmp(verb, "exec"))
                                (void)api_exec(ctx, name, body, res);
                        else if (!strcmp(verb, "extend"))
                                (void)api_extend(ctx, name, body, res);
                        else
                                (void)api_resize(ctx, name, body, res);
                } else
                        api_fail(res, 404, "Not found");
                return;
        }
        if (rt->n == 3 && get && route_is(rt, 2, "logs")) {
                (void)api_logs(ctx, name, res);
                return;
        }
        if (rt->n == 4 && post && route_is(rt, 2, "exec") && route_is(rt, 3, "detach")) {
                if (body_json(rq, false, &body, res) == 0)
                        (void)api_exec_detach(ctx, name, body, res);
                return;
        }
        if (rt->n >= 4 && route_is(rt, 2, "exec") && route_is(rt, 3, "detached")) {
                if (rt->n == 4 && get)
                        (void)api_detached_list(ctx, name, res);
                else if (rt->n == 5 && get)
                        (void)api_detached_get(ctx, name, rt->seg[4], res);
                else if (rt->n == 5 && del)
                        (void)api_detached_kill(ctx, name, rt->seg[4], res);
                else if (rt->n == 6 && get && route_is(rt, 5, "logs")) {
                        const char *st =
                            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stream");
                        (void)api_detached_logs(ctx, name, rt->seg[4], st && !strcmp(st, "stderr"),
                                                res);
                } else
                        api_fail(res, 404, "Not found");
                return;
        }
        api_fail(res, 404, "Not found");
}

/* upstream's lifecycle and command metrics, from what a request did */
static void record_operation(const char *method, const char *route, int status, double secs)
{
        bool post = !strcmp(method, "POST");

        if (post && !strcmp(route, "/sandboxes") && status == 201)
                metrics_lifecycle("created", "native", secs);
        else if (post && !strcmp(route, "/sandboxes/:name/start") && status == 200)
                metrics_lifecycle("started", "native", secs);
        else if (post && !strcmp(route, "/sandboxes/:name/stop") && status == 200)
                metrics_lifecycle("stopped", "native", secs);
        else if (!strcmp(method, "DELETE") && !strcmp(route, "/sandboxes/:name") && status == 200)
                metrics_lifecycle("removed", "native", secs);
        else if (post && (!strcmp(route, "/sandboxes/:name/exec") || !strcmp(route, "/run")) &&
                 (status == 200 || status == 409))
                metrics_command("native", secs);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        struct request *rq = *con_cls;
        struct api_result res = {0};
        struct route rt;
        cleanup_free char *path = NULL;
        const char *auth_error;
        int status = 0;
        enum MHD_Result r;

        (void)cls;
        (void)version;
        if (!rq) {
                const char *len =
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                uint64_t n = 0;
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                rq->start_ns = now_monotonic_ns();
                *con_cls = rq;
                if (len && (safe_atou64(len, &n) < 0 || n > API_BODY_MAX))
                        rq->too_large = true;
                return MHD_YES;
        }
        if (*upload_size) {
                if (!rq->too_large && rq->body.len + *upload_size <= API_BODY_MAX)
                        (void)buf_append(&rq->body, upload, *upload_size);
                else
                        rq->too_large = true;
                *upload_size = 0;
                return MHD_YES;
        }
        path = strdup(url);
        if (!path || route_split(path, &rt) < 0) {
                (void)snprintf(rq->route, sizeof(rq->route), "/");
                return send_error(c, 404, "Not found");
        }
        route_template(&rt, rq->route, sizeof(rq->route));
        if (rq->too_large) {
                status = 413;
                r = send_error(c, 413, "Request body exceeds the 16 MiB limit");
                goto out;
        }
        if (rt.n == 1 && !strcmp(method, "GET") && route_is(&rt, 0, "health")) {
                status = 200;
                r = send_text(c, 200, strdup("{\"success\":true,\"data\":\"ok\"}"),
                              "application/json");
                goto out;
        }
        if (rt.n == 1 && !strcmp(method, "GET") && route_is(&rt, 0, "metrics")) {
                struct manager *m = NULL;
                status = 200;
                if (manager_open(&m, NULL) < 0)
                        return MHD_NO;
                r = send_text(c, 200, metrics_render(m), "text/plain; version=0.0.4");
                manager_free(m);
                goto out;
        }
        auth_error = check_auth(c);
        if (auth_error) {
                status = 401;
                r = send_error(c, 401, auth_error);
                goto out;
        }
        if (rt.n == 2 && !strcmp(method, "POST") && route_is(&rt, 0, "run") &&
            route_is(&rt, 1, "stream")) {
                r = run_stream(c, rq, &status);
                goto out;
        }
        {
                struct manager *m = NULL;
                struct ak_err err = {0};
                struct api_ctx ctx;
                if (manager_open(&m, &err) < 0) {
                        api_fail(&res, 500, "%s", ak_err_msg(&err));
                } else {
                        ctx = (struct api_ctx){m, &srv.opts};
                        dispatch(c, method, &rt, rq, &ctx, &res);
                        manager_free(m);
                }
        }
        status = res.status ? res.status : 500;
        r = send_result(c, &res);
        api_result_clear(&res);
out:
        if (status == 404 && !strcmp(res.error, "Not found"))
                (void)snprintf(rq->route, sizeof(rq->route), "unmatched");
        metrics_http(method, rq->route, status, since(rq->start_ns));
        record_operation(method, rq->route, status, since(rq->start_ns));
        return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;

        (void)cls;
        (void)c;
        (void)toe;
        if (rq) {
                buf_free(&rq->body);
                free(rq);
                *con_cls = NULL;
        }
}

/* ---- reconciler ---- */

static void *reconciler(void *arg)
{
        (void)arg;
        while (!srv.stop) {
                struct manager *m = NULL;
                if (manager_open(&m, NULL) == 0) {
                        char **removed = NULL;
                        /* leftovers of runs whose worker was killed (their client left) */
                        manager_sweep(m);
                        struct reconcile_result res;
                        if (manager_gc(m, NULL, false, &removed, NULL) == 0) {
                                for (char **n = removed; *n; n++)
                                        fprintf(stderr,
                                                "agentkernel serve: removed expired "
                                                "sandbox '%s'\n",
                                                *n);
                                strv_free(removed);
                        }
                        if (manager_reconcile(m, false, &res, NULL) == 0) {
                                for (size_t i = 0; i < res.n_actions; i++)
                                        fprintf(stderr, "agentkernel serve: %s '%s': %s\n",
                                                reconcile_action_name(res.actions[i].action),
                                                res.actions[i].sandbox, res.actions[i].reason);
                                reconcile_result_free(&res);
                        }
                        manager_free(m);
                }
                for (unsigned i = 0; i < srv.reconcile_s * 10 && !srv.stop; i++)
                        (void)usleep(100000);
        }
        return NULL;
}

/* ---- startup ---- */

static int add_key(const char *k)
{
        size_t n = strlen(k);

        while (n && (k[n - 1] == '\n' || k[n - 1] == '\r' || k[n - 1] == ' '))
                n--;
        if (n == 0)
                return 0;
        if (n > API_KEY_MAX || srv.n_keys == API_KEYS_MAX)
                return -EINVAL;
        srv.keys[srv.n_keys] = strndup(k, n);
        return srv.keys[srv.n_keys++] ? 0 : -ENOMEM;
}

/* One key per line; blank lines and # comments skipped. */
static int add_key_file(const char *path)
{
        cleanup_buf struct buf b = BUF_INIT;
        char *line, *save = NULL;
        int r = read_file_at(AT_FDCWD, path, &b, 1 << 20);

        if (r < 0)
                return r;
        for (line = strtok_r(b.data ? b.data : (char[]){""}, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                while (*line == ' ' || *line == '\t')
                        line++;
                if (*line == '#' || !*line)
                        continue;
                if ((r = add_key(line)) < 0)
                        return r;
        }
        return 0;
}

static bool loopback(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
        if (a->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
        return false;
}

static int listen_on(const char *host, unsigned port, bool *ret_loopback)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
        struct addrinfo *ai = NULL;
        char ports[16];
        int fd, one = 1, e;

        (void)snprintf(ports, sizeof(ports), "%u", port);
        e = getaddrinfo(host, ports, &hints, &ai);
        if (e != 0) {
                fprintf(stderr, "error: cannot resolve '%s': %s\n", host, gai_strerror(e));
                return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
                e = errno;
                fprintf(stderr,
                        e == EADDRINUSE
                            ? "error: port %u is already in use. Is another agentkernel server "
                              "running?\n"
                            : "error: cannot listen on port %u: %s\n",
                        port, strerror(e));
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(ai);
                return -1;
        }
        {
                struct sockaddr_storage ss;
                memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
                *ret_loopback = loopback(&ss);
        }
        freeaddrinfo(ai);
        return fd;
}

static void on_signal(int sig)
{
        (void)sig;
        srv.stop = 1;
}

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: agentkernel serve [OPTIONS]\n\n"
                "Serve the HTTP API (the official SDKs talk to it).\n\n"
                "Options:\n"
                "  -H, --host ADDR          address to listen on (default 127.0.0.1)\n"
                "  -p, --port N             port (default 18888)\n"
                "      --api-key KEY        require 'Authorization: Bearer KEY' (repeatable)\n"
                "      --api-key-file FILE  keys, one per line (# comments)\n"
                "      --allow-unauthenticated  listen on a non-loopback address without keys\n"
                "      --reconcile-interval S  seconds between TTL/lifecycle passes (default 2; "
                "0 = off)\n"
                "  -c, --config FILE        agentkernel.toml for [api] (default ./agentkernel.toml "
                "if any)\n\n"
                "Keys also come from AGENTKERNEL_API_KEY and [api] api_key / api_key_env.\n"
                "Without keys every route is open; GET /health and /metrics always are.\n");
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"host", required_argument, NULL, 'H'},
            {"port", required_argument, NULL, 'p'},
            {"api-key", required_argument, NULL, 'k'},
            {"api-key-file", required_argument, NULL, 'K'},
            {"allow-unauthenticated", no_argument, NULL, 'U'},
            {"reconcile-interval", required_argument, NULL, 'R'},
            {"config", required_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *host = "127.0.0.1", *config_path = NULL;
        bool allow_open = false, is_loopback = false, keys_given = false;
        unsigned port = DEFAULT_PORT;
        struct MHD_Daemon *d;
        struct config *cfg = NULL;
        struct ak_err err = {0};
        pthread_t rec;
        uint32_t v;
        int c, fd;

        srv.reconcile_s = RECONCILE_INTERVAL_S;
        while ((c = getopt_long(argc, argv, "H:p:c:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'H':
                        host = optarg;
                        break;
                case 'p':
                        if (safe_atou32(optarg, &v) < 0 || v == 0 || v > 65535) {
                                fprintf(stderr, "error: invalid port '%s'\n", optarg);
                                return 2;
                        }
                        port = v;
                        break;
                case 'k':
                        keys_given = true;
                        if (add_key(optarg) < 0) {
                                fprintf(stderr,
                                        "error: invalid API key (at most %d keys of %d "
                                        "bytes)\n",
                                        API_KEYS_MAX, API_KEY_MAX);
                                return 2;
                        }
                        break;
                case 'K':
                        keys_given = true;
                        if (add_key_file(optarg) < 0) {
                                fprintf(stderr, "error: cannot read API keys from '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'U':
                        allow_open = true;
                        break;
                case 'R':
                        if (safe_atou32(optarg, &v) < 0 || v > 3600) {
                                fprintf(stderr, "error: invalid interval '%s'\n", optarg);
                                return 2;
                        }
                        srv.reconcile_s = v;
                        break;
                case 'c':
                        config_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        if (!config_path)
                config_path = config_default_path(); /* read only when approved */
        if (config_path && config_load(config_path, &cfg, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return 2;
        }
        if (cfg)
                srv.opts.allow_sudo_exec = cfg->allow_sudo_exec;
        /* upstream's order: flags, then the environment, then [api] */
        if (!keys_given) {
                const char *env = getenv("AGENTKERNEL_API_KEY");
                const char *named = cfg && cfg->api_key_env ? getenv(cfg->api_key_env) : NULL;
                const char *k = env && *env       ? env
                                : named && *named ? named
                                : cfg             ? cfg->api_key
                                                  : NULL;
                if (k && add_key(k) < 0) {
                        fprintf(stderr, "error: invalid API key\n");
                        return 2;
                }
        }
        config_free(cfg);
        fd = listen_on(host, port, &is_loopback);
        if (fd < 0)
                return 1;
        if (!is_loopback && !srv.n_keys && !allow_open) {
                fprintf(stderr,
                        "error: refusing to serve %s without an API key: anyone who can reach it "
                        "could run commands. Give --api-key (or AGENTKERNEL_API_KEY), or "
                        "--allow-unauthenticated if you really mean it.\n",
                        host);
                close(fd);
                return 2;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        (void)signal(SIGINT, on_signal);
        (void)signal(SIGTERM, on_signal);
        srv.started = time(NULL);
        d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
            NULL, NULL, handle, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)CONNECTIONS_MAX, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "error: cannot start the HTTP server\n");
                close(fd);
                return 1;
        }
        if (srv.reconcile_s && pthread_create(&rec, NULL, reconciler, NULL) != 0)
                srv.reconcile_s = 0;
        fprintf(stderr, "agentkernel %s serving on http://%s:%u (%s)\n", AK_VERSION, host, port,
                srv.n_keys ? "API key required" : "no API key: open to local clients");
        while (!srv.stop)
                pause();
        fprintf(stderr, "agentkernel serve: stopping\n");
        MHD_stop_daemon(d);
        if (srv.reconcile_s)
                pthread_join(rec, NULL);
        {
                /* streams cut by the shutdown leave ephemeral sandboxes to sweep */
                struct manager *m = NULL;
                for (int i = 0; i < 20 && manager_open(&m, NULL) == 0; i++) {
                        manager_sweep(m);
                        manager_free(m);
                        m = NULL;
                        (void)usleep(50000);
                }
        }
        for (size_t i = 0; i < srv.n_keys; i++)
                free(srv.keys[i]);
        return 0;
}
