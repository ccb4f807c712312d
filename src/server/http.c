// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-serve: the HTTP API on libmicrohttpd, one thread per connection (a slow or stalled
 * client holds only its own thread). The main thread accepts connections itself, on loopback TCP
 * and optionally a unix socket: it learns who each peer is and admits it within per-peer limits
 * (peer.h), so another local user cannot crowd out the owner, and ends connections that are
 * slow to send their headers or body. Every request then passes one gate (gate.h: Host, Origin,
 * Content-Type, the API key) before its body is read or a route runs; without a configured key
 * the server makes one for its owner (apikey.h), so out of the box only the user who started it
 * can use it. Requests are routed to api.c; /run/stream relays a worker's output as server-sent
 * events as it is written, sends a comment during silence, and kills the command when the client
 * goes away. A reconciler thread removes expired sandboxes and applies lifecycle policies every
 * few seconds.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "core/config.h"
#include "core/manager.h"
#include "server/api.h"
#include "server/apikey.h"
#include "server/gate.h"
#include "server/metrics.h"
#include "server/peer.h"
#include "server/route.h"
#include "server/worker.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define API_KEYS_MAX 64
#define API_KEY_MAX 512
#define ALLOWED_HOSTS_MAX 16
#define CONNECTIONS_MAX 512   /* all connections */
#define OTHERS_MAX 128        /* of peers other than the owner and root, together */
#define PER_PEER_MAX 32       /* of one such peer (a uid, or an address) */
#define HEADERS_TIMEOUT_S 5   /* from connect (or the end of the last request) to full headers */
#define BODY_TIMEOUT_S 60     /* from the headers to the end of the body */
#define IDLE_TIMEOUT_S 60     /* no byte moved either way (MHD's timeout): a stalled stream */
#define SWEEP_INTERVAL_MS 100 /* how often deadlines are looked at */
#define THREAD_STACK_SIZE (1u << 20)
#define CONNECTION_MEMORY (32u << 10) /* request line and headers, per connection */
#define LISTEN_BACKLOG 1024
#define JSON_DEPTH_MAX 64 /* request bodies: the SDK's are 3 deep */
#define SSE_KEEPALIVE_MS 15000
#define DEFAULT_PORT 18888
#define RECONCILE_INTERVAL_S 2

struct server {
        char *keys[API_KEYS_MAX];
        size_t n_keys;
        struct gate_host hosts[ALLOWED_HOSTS_MAX + 1]; /* --allowed-host names, then --host */
        size_t n_hosts;
        struct gate_config gate;
        struct conns conns;
        int diag_fd;
        int wake[2]; /* the signal handler's pipe to the accept loop */
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

/* The connection's entry in the table (peer.h), kept as libmicrohttpd's socket context. */
static struct conn *conn_of(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

static int64_t deadline_in(unsigned seconds)
{
        return now_monotonic_ns() + (int64_t)seconds * 1000000000;
}

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
        (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
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
        api_result_done(&res);
        return r;
}

/* ---- the gate ---- */

struct header_scan {
        struct gate_request g;
        const char *content_length;
        bool chunked;
};

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
        struct header_scan *h = cls;

        (void)kind;
        if (!key)
                return MHD_YES;
        if (!value)
                value = "";
        if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) {
                h->g.host = value;
                h->g.n_host++;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_ORIGIN)) {
                h->g.origin = value;
                h->g.n_origin++;
        } else if (!strcasecmp(key, "Sec-Fetch-Site")) {
                h->g.sec_fetch_site = value;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE)) {
                h->g.content_type = value;
                h->g.n_content_type++;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
                h->content_length = value;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
                h->chunked = true;
        } else if (!strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION)) {
                if (!h->g.authorization)
                        h->g.authorization = value;
        } else if (!strcasecmp(key, "X-API-Key")) {
                if (!h->g.x_api_key)
                        h->g.x_api_key = value;
        }
        return MHD_YES;
}

/* The one check every request passes, on its headers, before its body is read or a route
 * runs. 0: go on; else the status it was answered with. */
static int gate(struct MHD_Connection *c, const char *method, const char *version,
                const struct route *rt, bool *ret_has_body, uint64_t *ret_length,
                enum MHD_Result *ret_r)
{
        struct header_scan h = {0};
        struct conn *k = conn_of(c);
        char buf[256];
        const char *msg;
        uint64_t n = 0;
        int status;

        (void)MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &h);
        if (h.content_length && safe_atou64(h.content_length, &n) < 0)
                n = UINT64_MAX;
        h.g.has_body = h.chunked || n > 0;
        h.g.http11 = !strcmp(version, MHD_HTTP_VERSION_1_1);
        h.g.open_route = rt && rt->n == 1 && !strcmp(method, "GET") && route_is(rt, 0, "health");
        h.g.peer_trusted = k && k->trusted;
        *ret_has_body = h.g.has_body;
        *ret_length = h.chunked ? UINT64_MAX : n;
        status = gate_check(&srv.gate, &h.g, buf, sizeof(buf), &msg);
        if (status)
                *ret_r = send_error(c, status, msg);
        return status;
}

/* A bounded label for metrics: unknown methods are "other". */
static const char *method_label(const char *method)
{
        static const char *const known[] = {"GET",    "POST", "PUT",    "PATCH",
                                            "DELETE", "HEAD", "OPTIONS"};
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                if (!strcmp(method, known[i]))
                        return known[i];
        return "other";
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

/* Whether the nesting of JSON text stays within max levels (strings skipped): the parser and
 * the code that walks its result recurse, and a connection thread's stack is small. */
static bool json_depth_ok(const char *s, size_t n, int max)
{
        int depth = 0;
        bool in_string = false;

        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (in_string) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_string = false;
                } else if (ch == '"') {
                        in_string = true;
                } else if (ch == '[' || ch == '{') {
                        if (++depth > max)
                                return false;
                } else if (ch == ']' || ch == '}') {
                        depth--;
                }
        }
        return true;
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
        if (!json_depth_ok(rq->body.data, rq->body.len, JSON_DEPTH_MAX))
                return api_fail(res, 400, "Invalid JSON: nested deeper than %d levels",
                                JSON_DEPTH_MAX);
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
        buf_done(&s->out);
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
                api_result_done(&res);
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
                api_result_done(&res);
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
                state_list_done(&l);
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
                res->data =
                    json_pack("{s:s,s:s,s:b}", "version", AK_VERSION, "backend",
                              manager_default_backend(), "api_key_configured", srv.n_keys > 0);
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
                                api_result_done(res);
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
        int status = 0;
        enum MHD_Result r;

        (void)cls;
        if (!rq) {
                /* the headers are in: the gate, before any of the body is read */
                bool has_body = false, routed;
                uint64_t n = 0;
                rq = calloc(1, sizeof(*rq));
                path = strdup(url);
                if (!rq || !path)
                        return MHD_NO;
                rq->start_ns = now_monotonic_ns();
                *con_cls = rq;
                routed = route_split(path, &rt) == 0;
                status = gate(c, method, version, routed ? &rt : NULL, &has_body, &n, &r);
                if (status) {
                        /* an unauthenticated peer's paths do not become metric labels */
                        metrics_http(method_label(method), "rejected", status, since(rq->start_ns));
                        return r;
                }
                if (n > API_BODY_MAX && n != UINT64_MAX)
                        rq->too_large = true;
                conns_set_deadline(&srv.conns, conn_of(c),
                                   has_body ? deadline_in(BODY_TIMEOUT_S) : 0);
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
        /* the whole request is in */
        conns_set_deadline(&srv.conns, conn_of(c), 0);
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
        api_result_done(&res);
out:
        if (status == 404 && !strcmp(res.error, "Not found"))
                (void)snprintf(rq->route, sizeof(rq->route), "unmatched");
        metrics_http(method_label(method), rq->route, status, since(rq->start_ns));
        record_operation(method, rq->route, status, since(rq->start_ns));
        return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
        struct request *rq = *con_cls;

        (void)cls;
        (void)toe;
        if (rq) {
                buf_done(&rq->body);
                free(rq);
                *con_cls = NULL;
        }
        /* a kept-alive connection has the same few seconds for its next request's headers */
        conns_set_deadline(&srv.conns, conn_of(c), deadline_in(HEADERS_TIMEOUT_S));
}

/* libmicrohttpd took a connection the accept loop admitted, or is done with one. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        (void)cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci =
                    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                struct conn *k = ci ? conns_started(&srv.conns, ci->connect_fd) : NULL;
                *socket_context = k;
                /* not admitted by us (cannot happen): it is not served */
                if (!k && ci)
                        (void)shutdown(ci->connect_fd, SHUT_RDWR);
        } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conns_closed(&srv.conns, *socket_context);
                *socket_context = NULL;
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
                                reconcile_result_done(&res);
                        }
                        manager_free(m);
                }
                for (unsigned i = 0; i < srv.reconcile_s * 10 && !srv.stop; i++)
                        (void)usleep(100000);
        }
        return NULL;
}

/* ---- keys ---- */

static int add_key(const char *k, size_t n)
{
        while (n && (k[n - 1] == '\n' || k[n - 1] == '\r' || k[n - 1] == ' ' || k[n - 1] == '\t'))
                n--;
        if (n == 0)
                return 0;
        if (n > API_KEY_MAX || srv.n_keys == API_KEYS_MAX || memchr(k, '\0', n))
                return -EINVAL;
        srv.keys[srv.n_keys] = strndup(k, n);
        return srv.keys[srv.n_keys++] ? 0 : -ENOMEM;
}

/* One key per line; blank lines and # comments skipped. */
static int add_key_text(const char *text)
{
        const char *line = text, *end;
        int r;

        for (; *line; line = *end ? end + 1 : end) {
                end = line + strcspn(line, "\n");
                while (line < end && (*line == ' ' || *line == '\t'))
                        line++;
                if (line == end || *line == '#')
                        continue;
                if ((r = add_key(line, (size_t)(end - line))) < 0)
                        return r;
        }
        return 0;
}

static int add_key_file(const char *path)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        int r;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (st.st_mode & 077)
                fprintf(stderr,
                        "agentkernel serve: warning: '%s' can be read by other users (mode %03o): "
                        "they may know the key; chmod 600 it\n",
                        path, (unsigned)(st.st_mode & 07777));
        r = read_fd_full(fd, &b, 1 << 20);
        if (r < 0)
                return r;
        if (buf_append(&b, "", 1) < 0)
                return -ENOMEM;
        return add_key_text(b.data);
}

/* ---- listening ---- */

static bool loopback(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
        if (a->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
        return false;
}

static bool wildcard(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
        if (a->ss_family == AF_INET6)
                return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
        return false;
}

static int listen_on(const char *host, unsigned port, bool *ret_loopback, bool *ret_wildcard)
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
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
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
                *ret_wildcard = wildcard(&ss);
        }
        freeaddrinfo(ai);
        return fd;
}

/* A unix socket only its owner can connect to (0600 from the start: bound under umask 0177), in
 * a directory where nobody else can swap it. A stale socket of ours is replaced; anything else
 * in the way is refused. */
static int listen_unix(const char *path, struct stat *ret_st)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_free char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        struct stat st;
        mode_t old;
        int fd, e;

        if (!dir)
                return -1;
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "error: socket path '%s' is longer than %zu bytes\n", path,
                        sizeof(sa.sun_path) - 1);
                return -1;
        }
        if (slash == dir)
                slash[1] = '\0';
        else if (slash)
                *slash = '\0';
        if (stat(slash ? dir : ".", &st) < 0) {
                fprintf(stderr, "error: cannot use the directory of '%s': %s\n", path,
                        strerror(errno));
                return -1;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
                fprintf(stderr,
                        "error: the directory of '%s' is writable by other users: they could "
                        "replace the socket; use a private directory such as $XDG_RUNTIME_DIR\n",
                        path);
                return -1;
        }
        if (lstat(path, &st) == 0) {
                int probe;
                if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
                        fprintf(stderr,
                                "error: '%s' exists and is not a socket of yours: refusing to "
                                "replace it\n",
                                path);
                        return -1;
                }
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                memcpy(sa.sun_path, path, strlen(path) + 1);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(probe);
                        fprintf(stderr, "error: '%s' is in use by another server\n", path);
                        return -1;
                }
                if (probe >= 0)
                        close(probe);
                (void)unlink(path);
        }
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                fprintf(stderr, "error: socket: %s\n", strerror(errno));
                return -1;
        }
        old = umask(0177);
        e = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
        (void)umask(old);
        if (e == 0 && (lstat(path, ret_st) < 0 || listen(fd, LISTEN_BACKLOG) < 0))
                e = errno;
        if (e) {
                fprintf(stderr, "error: cannot listen on '%s': %s\n", path, strerror(e));
                close(fd);
                return -1;
        }
        return fd;
}

/* ---- accepting ---- */

static void on_signal(int sig)
{
        int saved = errno;

        (void)sig;
        srv.stop = 1;
        (void)!write(srv.wake[1], "x", 1);
        errno = saved;
}

/* At most one line per peer kind every few seconds: a flood does not flood the log. */
static void log_refusal(const struct peer *p, const char *why)
{
        static int64_t last;
        int64_t now = now_monotonic_ns();
        char who[96];

        if (last && now - last < 10 * (int64_t)1000000000)
                return;
        last = now;
        peer_describe(p, who, sizeof(who));
        fprintf(stderr, "agentkernel serve: refusing connections from %s: at %s\n", who, why);
}

static void refuse_connection(int fd)
{
        static const char body[] = "{\"success\":false,\"error\":\"too many connections\"}";
        char resp[256];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                         sizeof(body) - 1, body);

        (void)!send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
}

static void accept_from(int lfd, struct MHD_Daemon *d)
{
        for (int i = 0; i < 64; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                const char *why;
                struct conn *k;
                struct peer p;
                int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                fprintf(stderr, "agentkernel serve: accept: %s\n", strerror(errno));
                                (void)usleep(50000);
                        }
                        return;
                }
                peer_identify(fd, srv.diag_fd, &p);
                if (conns_admit(&srv.conns, &p, fd, deadline_in(HEADERS_TIMEOUT_S), &k, &why) < 0) {
                        if (why)
                                log_refusal(&p, why);
                        refuse_connection(fd);
                        continue;
                }
                /* it closes fd when it fails */
                if (MHD_add_connection(d, fd, (struct sockaddr *)&sa, len) != MHD_YES)
                        conns_closed(&srv.conns, k);
        }
}

static void serve_loop(struct MHD_Daemon *d, int tcp_fd, int unix_fd)
{
        struct pollfd p[3] = {{srv.wake[0], POLLIN, 0}, {tcp_fd, POLLIN, 0}, {unix_fd, POLLIN, 0}};
        int64_t last_sweep = 0;

        while (!srv.stop) {
                int r = poll(p, 3, SWEEP_INTERVAL_MS);
                int64_t now;
                if (r < 0 && errno != EINTR)
                        break;
                if (r > 0) {
                        for (int i = 1; i < 3; i++)
                                if (p[i].fd >= 0 && (p[i].revents & POLLIN))
                                        accept_from(p[i].fd, d);
                }
                now = now_monotonic_ns();
                if (now - last_sweep >= (int64_t)SWEEP_INTERVAL_MS * 1000000) {
                        (void)conns_sweep(&srv.conns, now);
                        last_sweep = now;
                }
        }
}

/* Room for the connections: the soft descriptor limit up to the hard one (each connection holds
 * two), and fewer connections when even that is short. Workers get the old limit back. */
static size_t raise_nofile(void)
{
        struct rlimit rl;
        size_t room;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return CONNECTIONS_MAX;
        worker_set_child_nofile(rl.rlim_cur);
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t want = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
                if (want > rl.rlim_cur) {
                        rl.rlim_cur = want;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                        (void)getrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        room = rl.rlim_cur > 256 ? (size_t)(rl.rlim_cur - 128) / 2 : 64;
        return room < CONNECTIONS_MAX ? room : CONNECTIONS_MAX;
}

/* libmicrohttpd's messages, rate-limited (peers decide how many there are: a flood of them must
 * not flood the log). Its complaints that TCP options do not apply to the unix socket are
 * dropped: a unix socket has no Nagle delay to push past. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static int64_t window;
        static unsigned lines;
        int64_t now = now_monotonic_ns();

        (void)cls;
        if (!strncmp(fmt, "Setting %s option", 17) || !strncmp(fmt, "Failed to push the data", 23))
                return;
        pthread_mutex_lock(&lock);
        if (now - window > 10 * (int64_t)1000000000) {
                window = now;
                lines = 0;
        }
        if (lines++ < 10) {
                fputs("agentkernel serve: libmicrohttpd: ", stderr);
                vfprintf(stderr, fmt, ap);
        }
        pthread_mutex_unlock(&lock);
}

/* ---- startup ---- */

static void usage(FILE *f)
{
        fprintf(
            f,
            "Usage: agentkernel serve [OPTIONS]\n\n"
            "Serve the HTTP API (the official SDKs talk to it).\n\n"
            "Only the user who starts it can use it: without a key of your own it makes one\n"
            "at first start in ~/.agentkernel/api-key (mode 0600) and requires it. Clients:\n"
            "  export AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)\n\n"
            "Options:\n"
            "  -H, --host ADDR          address to listen on (default 127.0.0.1); a\n"
            "                           non-loopback one needs a key you give (--api-key,\n"
            "                           --api-key-file, AGENTKERNEL_API_KEY) and belongs\n"
            "                           behind TLS\n"
            "  -p, --port N             port (default 18888)\n"
            "      --api-key KEY        require 'Authorization: Bearer KEY' (repeatable;\n"
            "                           other users may see it in ps until serve starts:\n"
            "                           prefer the file or AGENTKERNEL_API_KEY)\n"
            "      --api-key-file FILE  keys, one per line (# comments)\n"
            "      --socket PATH        also serve on a unix socket (mode 0600); peers with\n"
            "                           your uid (or root) in your namespaces need no key\n"
            "      --no-tcp             serve on the --socket only\n"
            "      --allowed-host NAME  also answer to 'Host: NAME' (a proxy's or this\n"
            "                           machine's name; repeatable)\n"
            "      --insecure-no-auth   no key at all, loopback only: every local user and\n"
            "                           process can then run commands as you. Do not.\n"
            "      --print-api-key      print the generated key (made if missing) and exit\n"
            "      --reconcile-interval S  seconds between TTL/lifecycle passes (default 2; "
            "0 = off)\n"
            "  -c, --config FILE        agentkernel.toml for [api] (default ./agentkernel.toml "
            "if any)\n\n"
            "Keys: --api-key/--api-key-file, else AGENTKERNEL_API_KEY, else [api] api_key_env /\n"
            "api_key, else the generated key. GET /health is open (it says only \"ok\").\n"
            "Browsers are kept out: a foreign Host or Origin gets 403, a body that is not\n"
            "Content-Type: application/json gets 415.\n");
}

static int default_key(bool print, char **ret_path)
{
        cleanup_free char *dir = NULL, *text = NULL;
        struct ak_err err = {0};
        bool created = false;

        if (apikey_default_dir(&dir, &err) < 0 ||
            apikey_load_or_create(dir, &text, &created, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return -err.code;
        }
        if (print) {
                const char *k = text + strspn(text, " \t\r\n");
                printf("%.*s\n", (int)strcspn(k, " \t\r\n"), k);
                return 0;
        }
        if (add_key_text(text) < 0 || !srv.n_keys) {
                fprintf(stderr, "error: '%s/%s' holds no valid API key\n", dir, APIKEY_FILE_NAME);
                return -EINVAL;
        }
        if (asprintf(ret_path, "%s/%s", dir, APIKEY_FILE_NAME) < 0)
                *ret_path = NULL;
        if (created)
                fprintf(stderr, "agentkernel serve: made a new API key in '%s/%s'\n", dir,
                        APIKEY_FILE_NAME);
        return 0;
}

/* Whether name can be a Host header's name (no port). */
static bool host_name_valid(const char *name)
{
        struct gate_host h = {name, true};
        struct gate_config g = {.hosts = &h, .n_hosts = 1};

        return !strchr(name, ':') || name[0] == '[' ? gate_host_allowed(&g, name) : false;
}

static void host_for_gate(const char *host, bool is_wildcard)
{
        static char v6[300];

        if (is_wildcard || srv.n_hosts == ARRAY_SIZE(srv.hosts))
                return;
        if (strchr(host, ':') && host[0] != '[') {
                (void)snprintf(v6, sizeof(v6), "[%s]", host);
                host = v6;
        }
        srv.hosts[srv.n_hosts++] = (struct gate_host){host, false};
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"host", required_argument, NULL, 'H'},
            {"port", required_argument, NULL, 'p'},
            {"api-key", required_argument, NULL, 'k'},
            {"api-key-file", required_argument, NULL, 'K'},
            {"socket", required_argument, NULL, 'S'},
            {"no-tcp", no_argument, NULL, 'T'},
            {"allowed-host", required_argument, NULL, 'A'},
            {"insecure-no-auth", no_argument, NULL, 'I'},
            {"print-api-key", no_argument, NULL, 'P'},
            {"allow-unauthenticated", no_argument, NULL, 'U'},
            {"reconcile-interval", required_argument, NULL, 'R'},
            {"config", required_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *host = "127.0.0.1", *config_path = NULL, *socket_path = NULL;
        bool no_auth = false, no_tcp = false, print_key = false, is_loopback = true,
             is_wildcard = false, keys_given = false;
        cleanup_free char *key_path = NULL;
        unsigned port = DEFAULT_PORT;
        struct MHD_Daemon *d;
        struct config *cfg = NULL;
        struct ak_err err = {0};
        struct conn_limits lim = {CONNECTIONS_MAX, OTHERS_MAX, PER_PEER_MAX};
        struct stat sock_st = {0};
        struct sigaction sa = {.sa_handler = on_signal};
        pthread_t rec;
        uint32_t v;
        int c, tcp_fd = -1, unix_fd = -1;

        srv.reconcile_s = RECONCILE_INTERVAL_S;
        srv.diag_fd = -1;
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
                        if (add_key(optarg, strlen(optarg)) < 0) {
                                fprintf(stderr,
                                        "error: invalid API key (at most %d keys of %d "
                                        "bytes)\n",
                                        API_KEYS_MAX, API_KEY_MAX);
                                return 2;
                        }
                        /* every local user can read our command line (ps, /proc/PID/cmdline):
                         * the key leaves it as soon as it is copied */
                        memset(optarg, 'x', strlen(optarg));
                        break;
                case 'K':
                        keys_given = true;
                        if (add_key_file(optarg) < 0) {
                                fprintf(stderr, "error: cannot read API keys from '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'S':
                        socket_path = optarg;
                        break;
                case 'T':
                        no_tcp = true;
                        break;
                case 'A':
                        if (srv.n_hosts == ALLOWED_HOSTS_MAX || !host_name_valid(optarg)) {
                                fprintf(stderr, "error: invalid --allowed-host '%s'\n", optarg);
                                return 2;
                        }
                        srv.hosts[srv.n_hosts++] = (struct gate_host){optarg, true};
                        break;
                case 'I':
                        no_auth = true;
                        break;
                case 'P':
                        print_key = true;
                        break;
                case 'U':
                        fprintf(stderr, "error: --allow-unauthenticated is gone: an API without "
                                        "a key is open to every local user and web page; give "
                                        "keys (--api-key-file) to whoever needs access\n");
                        return 2;
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
        if (print_key)
                return default_key(true, NULL) < 0 ? 1 : 0;
        if (no_tcp && !socket_path) {
                fprintf(stderr, "error: --no-tcp needs --socket PATH\n");
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
                if (k && add_key(k, strlen(k)) < 0) {
                        fprintf(stderr, "error: invalid API key\n");
                        return 2;
                }
        }
        config_free(cfg);
        if (no_auth && srv.n_keys) {
                fprintf(stderr, "error: --insecure-no-auth and an API key (from --api-key, "
                                "--api-key-file, AGENTKERNEL_API_KEY or [api]) contradict each "
                                "other\n");
                return 2;
        }
        if (!no_tcp) {
                tcp_fd = listen_on(host, port, &is_loopback, &is_wildcard);
                if (tcp_fd < 0)
                        return 1;
        }
        if (!is_loopback && (no_auth || !srv.n_keys)) {
                fprintf(stderr,
                        "error: refusing to serve %s %s: anyone who can reach it could run "
                        "commands. Give a key of your own (--api-key-file, AGENTKERNEL_API_KEY) "
                        "and put TLS in front (a reverse proxy)\n",
                        host, no_auth ? "without authentication" : "without an API key");
                close(tcp_fd);
                return 2;
        }
        if (!no_tcp && !no_auth && !srv.n_keys && default_key(false, &key_path) < 0) {
                close(tcp_fd);
                return 2;
        }
        if (socket_path) {
                unix_fd = listen_unix(socket_path, &sock_st);
                if (unix_fd < 0) {
                        if (tcp_fd >= 0)
                                close(tcp_fd);
                        return 1;
                }
        }
        host_for_gate(host, is_wildcard);
        srv.gate = (struct gate_config){
            (const char *const *)srv.keys, srv.n_keys, no_auth, srv.hosts, srv.n_hosts, port};
        lim.total = raise_nofile();
        if (lim.others > lim.total / 2)
                lim.others = lim.total / 2;
        conns_init(&srv.conns, geteuid(), &lim);
        srv.diag_fd = peer_diag_open();
        if (pipe2(srv.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
                fprintf(stderr, "error: pipe: %s\n", strerror(errno));
                return 1;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        (void)sigaction(SIGINT, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        srv.started = time(NULL);
        /* the logger first: libmicrohttpd uses its own for options before it */
        d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG,
            0, NULL, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(lim.total + 16), MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
            MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_SIZE, MHD_OPTION_NOTIFY_COMPLETED,
            completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "error: cannot start the HTTP server\n");
                return 1;
        }
        if (srv.reconcile_s && pthread_create(&rec, NULL, reconciler, NULL) != 0)
                srv.reconcile_s = 0;
        if (tcp_fd >= 0)
                fprintf(stderr, "agentkernel %s serving on http://%s%s%s:%u (%s)\n", AK_VERSION,
                        strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port,
                        no_auth ? "NO AUTHENTICATION" : "API key required");
        if (key_path)
                fprintf(stderr,
                        "agentkernel serve: the key is in '%s' (readable by you only); clients: "
                        "export AGENTKERNEL_API_KEY=$(cat '%s')\n",
                        key_path, key_path);
        if (unix_fd >= 0)
                fprintf(stderr,
                        "agentkernel %s serving on unix socket '%s' (uid %u needs no key there)\n",
                        AK_VERSION, socket_path, (unsigned)geteuid());
        if (no_auth)
                fprintf(stderr,
                        "agentkernel serve: WARNING: --insecure-no-auth: NO AUTHENTICATION. Every "
                        "local user and every process on this machine can run commands as uid %u "
                        "through http://%s:%u. Do not use this on a shared machine; use the "
                        "generated key or --socket instead.\n",
                        (unsigned)geteuid(), host, port);
        serve_loop(d, tcp_fd, unix_fd);
        fprintf(stderr, "agentkernel serve: stopping\n");
        if (tcp_fd >= 0)
                close(tcp_fd);
        if (unix_fd >= 0) {
                struct stat now;
                close(unix_fd);
                /* only if it is still the socket we made */
                if (lstat(socket_path, &now) == 0 && now.st_ino == sock_st.st_ino &&
                    now.st_dev == sock_st.st_dev)
                        (void)unlink(socket_path);
        }
        MHD_stop_daemon(d);
        conns_clear(&srv.conns);
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
        if (srv.diag_fd >= 0)
                close(srv.diag_fd);
        return 0;
}
