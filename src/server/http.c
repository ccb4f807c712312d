// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-serve's request handling on libmicrohttpd, one thread per connection (a slow or
 * stalled client holds only its own thread). Every request passes one gate (gate.h: Host, Origin,
 * Content-Type, the API key) on its headers, before its body is read or a route runs; the route
 * table (route.h) then says which API operation answers it (api.h), with which body, and how it
 * is counted in the metrics. /run/stream relays a worker's output as server-sent events as it is
 * written, sends a comment during silence, and kills the command when the client goes away.
 * Connections come from serve.c, which accepts and admits them (peer.h).
 */
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/validate.h"
#include "server/events.h"
#include "server/metrics.h"
#include "server/otel.h"
#include "server/route.h"
#include "server/worker.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define THREAD_STACK_SIZE (1u << 20)
#define CONNECTION_MEMORY (32u << 10) /* request line and headers, per connection */
#define SSE_KEEPALIVE_MS 15000

/* ---- one request ---- */

struct request {
        char *url;            /* a copy, which the match's captures point into */
        int miss;             /* 0, or route_match's status for this request */
        const char *miss_msg; /* its message */
        struct route_match match;
        struct buf body;
        bool too_large;
        int64_t start_ns;
        int64_t start_unix_ns; /* for its span (otel.h) */
};

/* The connection's entry in the table (peer.h), kept as libmicrohttpd's socket context. */
static struct conn *conn_of(struct MHD_Connection *c)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

int64_t http_deadline_in(unsigned seconds)
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

/* A 200 whose body is a server-sent event stream read from ctx (free_cb ends it, also when the
 * response cannot be made). */
static enum MHD_Result queue_sse(struct MHD_Connection *c, MHD_ContentReaderCallback read_cb,
                                 void *ctx, MHD_ContentReaderFreeCallback free_cb)
{
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10, read_cb, ctx, free_cb);
        enum MHD_Result r;

        if (!resp) {
                free_cb(ctx);
                return MHD_NO;
        }
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
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
static int gate(struct http_server *srv, struct MHD_Connection *c, const char *version,
                const struct request *rq, bool *ret_has_body, uint64_t *ret_length,
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
        h.g.open_route = !rq->miss && (rq->match.route->flags & ROUTE_OPEN);
        h.g.peer_trusted = k && k->trusted;
        *ret_has_body = h.g.has_body;
        *ret_length = h.chunked ? UINT64_MAX : n;
        status = gate_check(&srv->gate, &h.g, buf, sizeof(buf), &msg);
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

/* ---- query parameters, for the operations (api_query) ---- */

static const char *query_get(void *ctx, const char *key)
{
        return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, key);
}

struct query_each_ctx {
        const char *key;
        void (*fn)(void *fctx, const char *value);
        void *fctx;
};

static enum MHD_Result query_each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
        struct query_each_ctx *q = cls;

        (void)kind;
        if (key && value && !strcmp(key, q->key))
                q->fn(q->fctx, value);
        return MHD_YES;
}

static void query_each(void *ctx, const char *key, void (*fn)(void *fctx, const char *value),
                       void *fctx)
{
        struct query_each_ctx q = {key, fn, fctx};

        (void)MHD_get_connection_values(ctx, MHD_GET_ARGUMENT_KIND, query_each_value, &q);
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
        char backend[API_BACKEND_MAX]; /* the commands metric's label */
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
                metrics_command(s->backend, since(s->start_ns));
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

/* A streamed response's reader: what out holds past *sent, refilled by pump(ctx) each time all
 * of it was sent; *finished (may be NULL) ends the stream once out is empty. */
static ssize_t stream_read(struct buf *out, size_t *sent, const bool *finished,
                           int (*pump)(void *ctx), void *ctx, char *buf, size_t max)
{
        size_t n;

        while (*sent == out->len) {
                if (finished && *finished)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                buf_reset(out);
                *sent = 0;
                if (pump(ctx) < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        n = MIN(out->len - *sent, max);
        memcpy(buf, out->data + *sent, n);
        *sent += n;
        return (ssize_t)n;
}

static int sse_pump_cb(void *ctx)
{
        return sse_pump(ctx);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct sse *s = cls;

        (void)pos;
        return stream_read(&s->out, &s->sent, &s->finished, sse_pump_cb, s, buf, max);
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
        struct port_spec ports[API_PORTS_MAX];
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

        if (route_body(rq->match.route, rq->body.data, rq->body.len, &body, &res) < 0) {
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
        if (api_run_prepare(body, &o, &x, ports, &argv, &env, &res) < 0) {
                /* upstream: an empty command is a 200 with a single error event */
                sse_event(&s->out, "error", json_pack("{s:s}", "message", res.error));
                s->finished = true;
                api_result_done(&res);
        } else {
                (void)snprintf(s->backend, sizeof(s->backend), "%s",
                               o.backend ? o.backend : manager_default_backend());
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

/* ---- the lifecycle events (GET /events[?sandbox=NAME]; events.h) ---- */

#define EVENTS_WAIT_MS 1000 /* how often a quiet stream looks for its client leaving */

struct evstream {
        struct events_sub *sub;
        struct buf out;
        size_t sent;
        bool finished;
        int client_fd;
        int idle_ms;
};

static int evstream_pump(void *ctx)
{
        struct evstream *e = ctx;
        struct pollfd p = {e->client_fd, POLLRDHUP, 0};
        int r = events_next(e->sub, EVENTS_WAIT_MS, &e->out);

        if (r < 0) {
                /* it fell too far behind: told so, and dropped (it holds nobody up) */
                e->finished = true;
                return 0;
        }
        if (r > 0) {
                e->idle_ms = 0;
                return 0;
        }
        if (e->client_fd >= 0 && poll(&p, 1, 0) > 0 &&
            (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                return -1;
        e->idle_ms += EVENTS_WAIT_MS;
        if (e->idle_ms >= SSE_KEEPALIVE_MS) {
                e->idle_ms = 0;
                buf_printf(&e->out, ": keepalive\n\n");
        }
        return 0;
}

static ssize_t evstream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct evstream *e = cls;

        (void)pos;
        return stream_read(&e->out, &e->sent, &e->finished, evstream_pump, e, buf, max);
}

static void evstream_free(void *cls)
{
        struct evstream *e = cls;

        events_unsubscribe(e->sub);
        buf_done(&e->out);
        free(e);
}

static enum MHD_Result events_reply(struct MHD_Connection *c, int *status)
{
        const char *sandbox = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sandbox");
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ak_err verr = {0};
        struct evstream *e;
        int err;

        if (sandbox && validate_name(sandbox, &verr) < 0) {
                *status = 400;
                return send_error(c, 400, ak_err_msg(&verr));
        }
        e = calloc(1, sizeof(*e));
        if (!e)
                return MHD_NO;
        e->out = (struct buf)BUF_INIT;
        err = events_subscribe(sandbox, &e->sub);
        if (err < 0) {
                free(e);
                *status = err == -EBUSY ? 503 : 500;
                return send_error(c, *status,
                                  err == -EBUSY ? "too many event streams" : "out of memory");
        }
        e->client_fd = ci ? ci->connect_fd : -1;
        buf_printf(&e->out, ": connected\n\n");
        *status = 200;
        return queue_sse(c, evstream_read, e, evstream_free);
}

/* ---- dispatch ---- */

/* Runs the request's route: its body per the route's rule, its operation with a manager of its
 * own (unless it needs none). */
static void dispatch(struct http_server *srv, struct MHD_Connection *c, struct request *rq,
                     struct api_result *res)
{
        const struct route *rt = rq->match.route;
        const struct api_query q = {query_get, query_each, c};
        cleanup_manager struct manager *m = NULL;
        cleanup_json json_t *body = NULL;
        struct ak_err err = {0};
        struct api_ctx ctx = {NULL, &srv->opts};
        struct api_args a = {rq->match.name, rq->match.id, rq->match.path, NULL, &q};

        if (!(rt->flags & ROUTE_NO_MANAGER)) {
                if (manager_open(&m, &err) < 0) {
                        api_fail(res, 500, "%s", ak_err_msg(&err));
                        return;
                }
                ctx.m = m;
        }
        if (route_body(rt, rq->body.data, rq->body.len, &body, res) < 0)
                return;
        a.body = body;
        (void)rt->op(&ctx, &a, res);
}

/* The reply: the envelope, or a route's text as it is. */
/* ---- a decision log followed as server-sent events (api_network_log's follow) ---- */

#define FOLLOW_POLL_MS 200

struct follow {
        int fd;        /* the log, read from where it is */
        int client_fd; /* to notice the client leaving */
        struct buf line, out;
        size_t sent;
        int idle_ms;
};

/* Turns what was appended to the log into events, or waits FOLLOW_POLL_MS (a keepalive comment
 * every SSE_KEEPALIVE_MS). -1: the client went away. */
static int follow_pump(struct follow *f)
{
        char buf[16384];
        ssize_t n = read(f->fd, buf, sizeof(buf));
        struct pollfd p = {f->client_fd, POLLRDHUP, 0};

        if (n > 0) {
                f->idle_ms = 0;
                for (ssize_t i = 0; i < n; i++) {
                        json_t *j;
                        if (buf[i] != '\n') {
                                if (f->line.len <= 16384)
                                        (void)buf_append(&f->line, buf + i, 1);
                                continue;
                        }
                        j = api_network_log_line(f->line.data ? f->line.data : "", f->line.len);
                        if (j)
                                sse_event(&f->out, "entry", j);
                        buf_reset(&f->line);
                }
                return 0;
        }
        if (f->client_fd >= 0 && poll(&p, 1, FOLLOW_POLL_MS) > 0 &&
            (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                return -1;
        if (f->client_fd < 0)
                (void)poll(NULL, 0, FOLLOW_POLL_MS);
        f->idle_ms += FOLLOW_POLL_MS;
        if (f->idle_ms >= SSE_KEEPALIVE_MS) {
                f->idle_ms = 0;
                buf_printf(&f->out, ": keepalive\n\n");
        }
        return 0;
}

static int follow_pump_cb(void *ctx)
{
        return follow_pump(ctx);
}

static ssize_t follow_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct follow *f = cls;

        (void)pos;
        return stream_read(&f->out, &f->sent, NULL, follow_pump_cb, f, buf, max);
}

static void follow_free(void *cls)
{
        struct follow *f = cls;

        close(f->fd);
        buf_done(&f->line);
        buf_done(&f->out);
        free(f);
}

/* Takes res->follow_fd. */
static enum MHD_Result follow_reply(struct MHD_Connection *c, struct api_result *res)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct follow *f = calloc(1, sizeof(*f));

        if (!f)
                return MHD_NO;
        f->fd = res->follow_fd;
        res->follow = false; /* ours now */
        f->client_fd = ci ? ci->connect_fd : -1;
        f->line = (struct buf)BUF_INIT;
        f->out = (struct buf)BUF_INIT;
        return queue_sse(c, follow_read, f, follow_free);
}

static enum MHD_Result reply(struct MHD_Connection *c, const struct route *rt,
                             struct api_result *res)
{
        const char *text = json_string_value(res->data);

        if (res->follow)
                return follow_reply(c, res);
        if (rt->content_type && res->status >= 200 && res->status < 300 && text) {
                char *copy = strdup(text);
                return copy ? send_text(c, res->status, copy, rt->content_type) : MHD_NO;
        }
        return send_result(c, res);
}

/* Upstream's metrics of what a request did: counted by its route, labelled with its backend. */
static void count(const char *method, const struct request *rq, int status,
                  const struct api_result *res)
{
        const struct route *rt = rq->match.route;
        const char *backend = res->backend[0] ? res->backend : manager_default_backend();
        double secs = since(rq->start_ns);

        metrics_http(method_label(method), route_label(&rq->match), status, secs);
        if (!rq->miss && route_metric_counts(rt, status)) {
                if (!strcmp(rt->metric, "command"))
                        metrics_command(backend, secs);
                else
                        metrics_lifecycle(rt->metric, backend, secs);
        }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        struct http_server *srv = cls;
        struct request *rq = *con_cls;
        cleanup_api_result struct api_result res = {0};
        int status = 0;
        enum MHD_Result r;

        if (!rq) {
                /* the headers are in: the route, then the gate, before any of the body is read */
                bool has_body = false;
                uint64_t n = 0;
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                *con_cls = rq;
                rq->start_ns = now_monotonic_ns();
                rq->start_unix_ns = now_realtime_ns();
                rq->url = strdup(url);
                if (!rq->url)
                        return MHD_NO;
                rq->miss = route_match(method, rq->url, &rq->match, &rq->miss_msg);
                status = gate(srv, c, version, rq, &has_body, &n, &r);
                if (status) {
                        /* an unauthenticated peer's paths do not become metric labels */
                        metrics_http(method_label(method), "rejected", status, since(rq->start_ns));
                        return r;
                }
                if (n > API_BODY_MAX && n != UINT64_MAX)
                        rq->too_large = true;
                conns_set_deadline(&srv->conns, conn_of(c),
                                   has_body ? http_deadline_in(BODY_TIMEOUT_S) : 0);
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
        conns_set_deadline(&srv->conns, conn_of(c), 0);
        if (rq->too_large) {
                status = 413;
                r = send_error(c, 413, "Request body exceeds the 16 MiB limit");
        } else if (rq->miss) {
                status = rq->miss;
                r = send_error(c, status, rq->miss_msg);
        } else if (rq->match.route->flags & ROUTE_STREAM) {
                r = run_stream(c, rq, &status);
        } else if (rq->match.route->flags & ROUTE_EVENTS) {
                r = events_reply(c, &status);
        } else {
                dispatch(srv, c, rq, &res);
                status = res.status ? res.status : 500;
                res.status = status;
                r = reply(c, rq->match.route, &res);
        }
        count(method, rq, status, &res);
        if (otel_enabled()) {
                const struct otel_request o = {
                    .method = method,
                    .path = url,
                    .route = rq->miss ? NULL : route_label(&rq->match),
                    .sandbox = rq->match.name,
                    .backend = res.backend[0] ? res.backend : NULL,
                    .traceparent = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
                    .status = status,
                    .start_unix_ns = rq->start_unix_ns,
                    .end_unix_ns = now_realtime_ns(),
                };
                otel_request(&o);
        }
        return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
        struct http_server *srv = cls;
        struct request *rq = *con_cls;

        (void)toe;
        if (rq) {
                buf_done(&rq->body);
                free(rq->url);
                free(rq);
                *con_cls = NULL;
        }
        /* a kept-alive connection has the same few seconds for its next request's headers */
        conns_set_deadline(&srv->conns, conn_of(c), http_deadline_in(HEADERS_TIMEOUT_S));
}

/* libmicrohttpd took a connection the accept loop admitted, or is done with one. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
        struct http_server *srv = cls;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci =
                    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                struct conn *k = ci ? conns_started(&srv->conns, ci->connect_fd) : NULL;
                *socket_context = k;
                /* not admitted by us (cannot happen): it is not served */
                if (!k && ci)
                        (void)shutdown(ci->connect_fd, SHUT_RDWR);
        } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conns_closed(&srv->conns, *socket_context);
                *socket_context = NULL;
        }
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

/* libmicrohttpd's URL decoding, except that "%00" stays as it is: the URL is a C string from
 * then on, and a decoded NUL cut it short (DELETE /sandboxes/keep%00x removed 'keep'). A name
 * with '%' in it is invalid; a file path keeps the three characters literally. */
static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
        char *w = s;

        (void)cls;
        (void)c;
        for (const char *r = s; *r;) {
                int hi, lo;
                if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 &&
                    (hi || lo)) {
                        *w++ = (char)(hi * 16 + lo);
                        r += 3;
                } else {
                        *w++ = *r++;
                }
        }
        *w = '\0';
        return (size_t)(w - s);
}

/* ---- the daemon ---- */

struct MHD_Daemon *http_start(struct http_server *s, size_t connections, const char *tls_cert,
                              const char *tls_key)
{
        unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                         MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;

        if (tls_cert) {
                if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
                        fprintf(stderr, "error: this libmicrohttpd has no TLS\n");
                        return NULL;
                }
                /* connections handed over by MHD_add_connection get the handshake too */
                return MHD_start_daemon(
                    flags | MHD_USE_TLS, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER,
                    mhd_log, NULL, MHD_OPTION_HTTPS_MEM_CERT, tls_cert, MHD_OPTION_HTTPS_MEM_KEY,
                    tls_key, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(connections + 16),
                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                    MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_SIZE,
                    MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                    on_connection, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
        }
        /* the logger first: libmicrohttpd uses its own for options before it */
        return MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER,
                                mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)(connections + 16), MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                (size_t)CONNECTION_MEMORY, MHD_OPTION_THREAD_STACK_SIZE,
                                (size_t)THREAD_STACK_SIZE, MHD_OPTION_NOTIFY_COMPLETED, completed,
                                s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
}

void http_add_connection(struct http_server *s, struct MHD_Daemon *d, int fd,
                         const struct sockaddr *sa, socklen_t len, struct conn *k)
{
        /* it closes fd when it fails */
        if (MHD_add_connection(d, fd, sa, len) != MHD_YES)
                conns_closed(&s->conns, k);
}
