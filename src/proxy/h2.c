// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/2 through the interception (docs/network.md, "HTTP/2"): when the sandbox's client and
 * the upstream both chose h2 (ALPN is mirrored: tls.c), the connection carries two nghttp2
 * sessions, a server towards the sandbox and a client towards upstream, and each stream of the
 * one is a stream of the other. Every request stream gets the HTTP/1.1 path's rules (mitm.c):
 * its :authority (or Host) must name the intercepted host, the policy decides it with its
 * method, the placeholders of the grants bound to the host are substituted in :path and every
 * header value (Basic credentials too), a request body only where a grant opts in (collected
 * whole, at most MITM_BODY_MAX), a misdirected placeholder refuses the stream (403, audited as
 * secret_misdirected). Responses are scrubbed (header values whole, DATA streaming: only a tail
 * that may begin a value waits), accept-encoding is forced to identity.
 *
 * Bounded: H2_STREAMS_MAX streams at a time, a request's header list within HEAD_MAX, flow
 * control never automatic (a window opens again only when its bytes went on: a slow reader on
 * either side slows the writer on the other), H2_WINDOW per stream and H2_CONN_WINDOW per
 * connection in flight each way, collected bodies within H2_BODIES_MAX; nghttp2's own
 * protections (CONTINUATION, RST_STREAM, SETTINGS and ACK floods) are set explicitly.
 *
 * Must never: send a value upstream for a stream that was not allowed, write a value or a
 * placeholder to a log, or keep a value in a compression table (upstream's is size 0).
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "worker-private.h"

#define H2_STREAMS_MAX 100                /* concurrent streams of a sandbox's client */
#define H2_WINDOW (64 * 1024)             /* each stream's receive window, both sessions */
#define H2_CONN_WINDOW (1024 * 1024)      /* each session's connection window */
#define H2_RESP_HEADERS_MAX (64 * 1024)   /* a response's header list */
#define H2_BODIES_MAX (4 * MITM_BODY_MAX) /* bodies collected to substitute, per connection */
#define H2_CONTINUATIONS_MAX 8            /* CONTINUATION frames after one HEADERS */
#define H2_RST_BURST 1000                 /* RST_STREAM: a burst, then ... */
#define H2_RST_RATE 33                    /* ... this many a second */
#define H2_FIELD_MAX MAX_HEADERS          /* fields of a header list */

struct hfield {
        size_t n_off, n_len, v_off, v_len;
};

struct hlist {
        struct outb b; /* names and values (may hold a value: wiped) */
        struct hfield f[H2_FIELD_MAX];
        size_t n, bytes;
};

struct h2s {
        struct h2s *prev, *next;
        int32_t cid, uid; /* the stream's id towards the client, towards upstream (0: none) */
        struct hlist req, resp;
        char method[NET_POLICY_METHOD_MAX + 1];
        bool req_end;    /* the client's END_STREAM came */
        bool refused;    /* answered by the proxy */
        bool collect;    /* the body is collected whole, to substitute */
        bool up_closed;  /* the upstream stream closed */
        bool final_seen; /* the final response head came */
        bool dn_end;     /* upstream's END_STREAM came: after dn, the end (and trailers) */
        bool too_large;  /* the request's header list went past HEAD_MAX */
        bool logged, scrub, decided;
        struct outb up; /* request DATA for upstream */
        size_t up_off;
        struct outb dn; /* response DATA for the client (scrubbed) */
        size_t dn_off;
        size_t dn_raw;     /* upstream's bytes not yet given back to its window */
        struct outb carry; /* a tail that may begin a value */
        struct hlist trail;
        uint8_t scan[MITM_PLACEHOLDER_LEN];
        size_t scan_len;
        uint64_t bytes_out, bytes_in, used;
        struct net_decision dec;
};

struct h2 {
        struct conn *c;
        nghttp2_session *srv, *cli;
        struct h2s *streams;
        size_t n, collected;
        bool up_gone, dying;
};

static void hl_free(struct hlist *l)
{
        ob_free(&l->b);
        l->n = l->bytes = 0;
}

static int hl_add(struct hlist *l, const void *n, size_t nl, const void *v, size_t vl, size_t max)
{
        struct hfield *f;
        l->bytes += nl + vl + 32; /* RFC 9113's size of a field */
        if (l->bytes > max || l->n >= H2_FIELD_MAX)
                return -1;
        f = &l->f[l->n++];
        f->n_off = l->b.len;
        f->n_len = nl;
        ob_put(&l->b, n, nl);
        f->v_off = l->b.len;
        f->v_len = vl;
        ob_put(&l->b, v, vl);
        return l->b.oom ? -1 : 0;
}

static const char *hl_name(const struct hlist *l, size_t i)
{
        return (const char *)l->b.p + l->f[i].n_off;
}

static const char *hl_value(const struct hlist *l, size_t i)
{
        return (const char *)l->b.p + l->f[i].v_off;
}

static bool hl_is(const struct hlist *l, size_t i, const char *name)
{
        return l->f[i].n_len == strlen(name) && !strncasecmp(hl_name(l, i), name, l->f[i].n_len);
}

/* The value of name (NUL-terminated into buf, cut to its size), or NULL. */
static const char *hl_get(const struct hlist *l, const char *name, char *buf, size_t size)
{
        for (size_t i = 0; i < l->n; i++)
                if (hl_is(l, i, name)) {
                        snprintf(buf, size, "%.*s", (int)MIN(l->f[i].v_len, size - 1),
                                 hl_value(l, i));
                        return buf;
                }
        return NULL;
}

/* l's fields as nghttp2's (pointing into l; no compression table keeps them when no_index). */
static size_t hl_nva(const struct hlist *l, nghttp2_nv *nva, bool no_index)
{
        for (size_t i = 0; i < l->n; i++)
                nva[i] = (nghttp2_nv){
                    .name = l->b.p + l->f[i].n_off,
                    .value = l->b.p + l->f[i].v_off,
                    .namelen = l->f[i].n_len,
                    .valuelen = l->f[i].v_len,
                    .flags = no_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE,
                };
        return l->n;
}

/* ---- streams ---- */

static void stream_log(struct h2 *h, struct h2s *s)
{
        struct conn *c = h->c;
        json_t *names, *extra;
        if (s->logged)
                return;
        s->logged = true;
        c->sb->st.bytes_out += s->bytes_out;
        c->sb->st.bytes_in += s->bytes_in;
        names = json_array();
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if (s->used & (1ull << i))
                        json_array_append_new(names, json_string(c->sb->grants[i].name));
        extra = json_pack("{s:b,s:o,s:s}", "intercepted", 1, "secrets", names, "http", "2");
        log_decision_ex(c->sb, "http", c->mitm_host, &c->dst, c->mitm_port,
                        s->method[0] ? s->method : NULL, &s->dec, s->bytes_out, s->bytes_in, extra,
                        true);
}

/* Frees s (its upstream stream no longer knows it; what it held unconsumed is given back). */
static void stream_free(struct h2 *h, struct h2s *s)
{
        if (s->uid > 0 && !h->dying) {
                (void)nghttp2_session_set_stream_user_data(h->cli, s->uid, NULL);
                if (s->dn_raw)
                        (void)nghttp2_session_consume(h->cli, s->uid, s->dn_raw);
        }
        if (!s->collect && s->up.len > s->up_off && !h->dying)
                (void)nghttp2_session_consume(h->srv, s->cid, s->up.len - s->up_off);
        if (s->collect)
                h->collected -= MIN(h->collected, s->up.len);
        hl_free(&s->req);
        hl_free(&s->resp);
        hl_free(&s->trail);
        ob_free(&s->up);
        ob_free(&s->dn);
        ob_free(&s->carry);
        explicit_bzero(s->scan, sizeof(s->scan));
        LIST_UNLINK(h->streams, s);
        h->n--;
        free(s);
}

static ssize_t dn_read(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = src->ptr;
        size_t k = MIN(len, s->dn.len - s->dn_off);
        (void)ses;
        (void)id;
        if (k) {
                memcpy(buf, s->dn.p + s->dn_off, k);
                s->dn_off += k;
        }
        if (s->dn_off == s->dn.len) {
                ob_free(&s->dn);
                s->dn_off = 0;
        }
        /* upstream's window opens as the client takes the bytes */
        if (s->dn_raw && s->uid > 0) {
                size_t give = s->dn.len ? MIN(k, s->dn_raw) : s->dn_raw;
                (void)nghttp2_session_consume(h->cli, s->uid, give);
                s->dn_raw -= give;
        }
        if (!s->dn.len && s->dn_end) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                if (s->trail.n) {
                        nghttp2_nv nva[H2_FIELD_MAX];
                        size_t n = hl_nva(&s->trail, nva, false);
                        if (nghttp2_submit_trailer(h->srv, s->cid, nva, n) == 0)
                                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                }
                return (ssize_t)k;
        }
        return k ? (ssize_t)k : NGHTTP2_ERR_DEFERRED;
}

static ssize_t up_read(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = src->ptr;
        size_t k = MIN(len, s->up.len - s->up_off);
        (void)ses;
        (void)id;
        if (k) {
                memcpy(buf, s->up.p + s->up_off, k);
                s->up_off += k;
                /* the client's window opens as upstream takes the bytes */
                if (!s->collect)
                        (void)nghttp2_session_consume(h->srv, s->cid, k);
        }
        if (s->up_off == s->up.len) {
                if (s->collect)
                        h->collected -= MIN(h->collected, s->up.len);
                ob_free(&s->up);
                s->up_off = 0;
        }
        if (!s->up.len && s->req_end) {
                *flags |= NGHTTP2_DATA_FLAG_EOF;
                return (ssize_t)k;
        }
        return k ? (ssize_t)k : NGHTTP2_ERR_DEFERRED;
}

/* A printable copy of why for a header value. */
static void printable(char *d, size_t size, const char *why)
{
        size_t i = 0;
        for (; why[i] && i + 1 < size; i++)
                d[i] = (why[i] < 0x20 || why[i] >= 0x7f) ? '?' : why[i];
        d[i] = '\0';
}

/* Answers s with status and why (the body, and X-Agentkernel-Rule) instead of upstream; logs the
 * denial unless logged (a secret_misdirected alert logged it already). */
static void refuse(struct h2 *h, struct h2s *s, int status, const char *why, bool logged,
                   bool from_policy)
{
        struct conn *c = h->c;
        char st[8], rule[256];
        nghttp2_nv nva[3];
        nghttp2_data_provider dp = {.source.ptr = s, .read_callback = dn_read};

        if (!from_policy) {
                s->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(s->dec.why, sizeof(s->dec.why), "%s", why);
        }
        if (!logged) {
                c->sb->st.denied++;
                stream_log(h, s);
        }
        s->logged = true;
        s->refused = true;
        if (s->uid > 0 && !s->up_closed) {
                (void)nghttp2_submit_rst_stream(h->cli, NGHTTP2_FLAG_NONE, s->uid, NGHTTP2_CANCEL);
                (void)nghttp2_session_set_stream_user_data(h->cli, s->uid, NULL);
                if (s->dn_raw)
                        (void)nghttp2_session_consume(h->cli, s->uid, s->dn_raw);
                s->dn_raw = 0;
                s->uid = 0;
        }
        if (s->final_seen) { /* part of a response went out: only a reset is left to say */
                (void)nghttp2_submit_rst_stream(h->srv, NGHTTP2_FLAG_NONE, s->cid,
                                                NGHTTP2_REFUSED_STREAM);
                return;
        }
        s->final_seen = true;
        snprintf(st, sizeof(st), "%d", status);
        printable(rule, sizeof(rule), why);
        ob_free(&s->dn);
        s->dn_off = 0;
        ob_put(&s->dn, rule, strlen(rule));
        ob_put(&s->dn, "\n", 1);
        s->dn_end = true;
        nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), 0};
        nva[1] = (nghttp2_nv){(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, 0};
        nva[2] =
            (nghttp2_nv){(uint8_t *)"x-agentkernel-rule", (uint8_t *)rule, 18, strlen(rule), 0};
        if (nghttp2_submit_response(h->srv, s->cid, nva, 3, &dp) != 0)
                (void)nghttp2_submit_rst_stream(h->srv, NGHTTP2_FLAG_NONE, s->cid,
                                                NGHTTP2_INTERNAL_ERROR);
}

/* Sends s's request (substituted in s->req) upstream. */
static void submit(struct h2 *h, struct h2s *s)
{
        nghttp2_nv nva[H2_FIELD_MAX];
        nghttp2_data_provider dp = {.source.ptr = s, .read_callback = up_read};
        size_t n = hl_nva(&s->req, nva, true);
        int32_t id =
            nghttp2_submit_request(h->cli, NULL, nva, n, s->req_end && !s->up.len ? NULL : &dp, s);
        if (id < 0) {
                refuse(h, s, 502, "cannot open a stream upstream", false, false);
                return;
        }
        s->uid = id;
        s->decided = true;
        h->c->sb->st.allowed++;
        for (size_t i = 0; i < h->c->sb->n_grants; i++)
                if (s->used & (1ull << i))
                        h->c->sb->st.substituted++;
}

/* A complete request head: checked, decided, substituted, and sent (or refused). */
static void request(struct h2 *h, struct h2s *s)
{
        struct conn *c = h->c;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = c->dst};
        char auth[NET_POLICY_HOST_MAX + 16], path[2];
        struct hlist out = {0};
        struct mitm_refusal r = {0};
        const char *a;
        char *colon;

        c->mitm_req_seen = true; /* (a client that pins another key sends none) */
        if (s->too_large) {
                refuse(h, s, 431, "request header list too large", false, false);
                return;
        }
        if (!hl_get(&s->req, ":method", s->method, sizeof(s->method)))
                s->method[0] = '\0';
        snprintf(c->method, sizeof(c->method), "%s", s->method);
        if (!strcmp(s->method, "CONNECT") || !hl_get(&s->req, ":path", path, sizeof(path)) ||
            (path[0] != '/' && path[0] != '*')) {
                refuse(h, s, 400, "an intercepted request needs an origin-form target", false,
                       false);
                return;
        }
        a = hl_get(&s->req, ":authority", auth, sizeof(auth));
        if (!a)
                a = hl_get(&s->req, "host", auth, sizeof(auth));
        if (a && (colon = strrchr(auth, ':')) &&
            strspn(colon + 1, "0123456789") == strlen(colon + 1))
                *colon = '\0';
        /* a host field beside :authority must name the same host (a server may read either) */
        for (size_t i = 0; a && i < s->req.n; i++)
                if (hl_is(&s->req, i, "host")) {
                        char hv[NET_POLICY_HOST_MAX + 16];
                        snprintf(hv, sizeof(hv), "%.*s",
                                 (int)MIN(s->req.f[i].v_len, sizeof(hv) - 1), hl_value(&s->req, i));
                        if ((colon = strrchr(hv, ':')) &&
                            strspn(colon + 1, "0123456789") == strlen(colon + 1))
                                *colon = '\0';
                        if (!mitm_same_host(hv, c->mitm_host)) {
                                snprintf(auth, sizeof(auth), "%s", hv);
                                break;
                        }
                }
        if (!a || !mitm_same_host(auth, c->mitm_host)) {
                char why[256];
                snprintf(why, sizeof(why), "Host/SNI mismatch: Host '%.100s' is not '%.100s'",
                         a ? auth : "", c->mitm_host);
                refuse(h, s, 403, why, false, false);
                return;
        }
        if (net_policy_decide(c->sb->policy, c->mitm_host, (struct sockaddr *)&sa, c->mitm_port,
                              s->method, &s->dec) != NET_ALLOW) {
                refuse(h, s, 403, s->dec.why, false, true);
                return;
        }
        s->collect = !s->req_end && mitm_body_opt_in(c);
        c->used = 0;
        for (size_t i = 0; i < s->req.n; i++) {
                const char *n = hl_name(&s->req, i), *v = hl_value(&s->req, i);
                size_t nl = s->req.f[i].n_len, vl = s->req.f[i].v_len, before;
                if (hl_is(&s->req, i, "proxy-authorization") ||
                    (s->collect && hl_is(&s->req, i, "content-length")))
                        continue;
                if (out.n >= H2_FIELD_MAX) {
                        hl_free(&out);
                        refuse(h, s, 431, "request header list too large", false, false);
                        return;
                }
                out.f[out.n].n_off = out.b.len;
                out.f[out.n].n_len = nl;
                ob_put(&out.b, n, nl);
                before = out.b.len;
                if (hl_is(&s->req, i, "accept-encoding")) {
                        /* responses are scrubbed: they must come as they are */
                        ob_put(&out.b, "identity", 8);
                } else if (mitm_subst_value(c, n, nl, v, vl, hl_is(&s->req, i, ":path"), &out.b,
                                            &r) < 0) {
                        hl_free(&out);
                        refuse(h, s, r.status, r.why, r.alerted, false);
                        return;
                }
                out.f[out.n].v_off = before;
                out.f[out.n].v_len = out.b.len - before;
                out.n++;
        }
        if (out.b.oom) {
                hl_free(&out);
                refuse(h, s, 431, "out of memory", false, false);
                return;
        }
        s->used = c->used;
        hl_free(&s->req);
        s->req = out;
        if (!s->collect)
                submit(h, s);
}

/* The client's END_STREAM on a collected body: substituted, then the request goes. */
static void collected(struct h2 *h, struct h2s *s)
{
        struct outb o = {0};
        struct mitm_refusal r = {0};
        uint64_t used = h->c->used;
        h->c->used = s->used;
        snprintf(h->c->method, sizeof(h->c->method), "%s", s->method);
        if (mitm_subst_body(h->c, s->up.p + s->up_off, s->up.len - s->up_off, &o, &r) < 0) {
                ob_free(&o);
                refuse(h, s, r.status, r.why, r.alerted, false);
                h->c->used = used;
                return;
        }
        s->used = h->c->used;
        h->c->used = used;
        h->collected -= MIN(h->collected, s->up.len);
        ob_free(&s->up);
        s->up = o;
        s->up_off = 0;
        h->collected += s->up.len;
        submit(h, s);
}

/* ---- the sandbox's side (server session) ---- */

static int srv_begin_headers(nghttp2_session *ses, const nghttp2_frame *f, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s;
        if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0;
        if (h->n >= H2_STREAMS_MAX) /* before our SETTINGS are acknowledged, too: reset */
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        s->cid = f->hd.stream_id;
        s->scrub = mitm_scrubs(h->c, &(size_t){0});
        LIST_PUSH(h->streams, s);
        h->n++;
        (void)nghttp2_session_set_stream_user_data(ses, s->cid, s);
        return 0;
}

static int srv_header(nghttp2_session *ses, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                      const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
        (void)flags;
        (void)ud;
        if (!s || f->hd.type != NGHTTP2_HEADERS)
                return 0;
        if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
                return 0; /* request trailers are not passed on */
        if (!s->too_large && hl_add(&s->req, name, nl, value, vl, HEAD_MAX) < 0) {
                s->too_large = true;
                hl_free(&s->req);
        }
        return 0;
}

static int srv_frame_recv(nghttp2_session *ses, const nghttp2_frame *f, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s;
        if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
                return 0;
        s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
        if (!s)
                return 0;
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
                s->req_end = true;
        if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
                request(h, s);
                return 0;
        }
        if (s->req_end && !s->refused) {
                if (s->collect && !s->uid)
                        collected(h, s);
                else if (s->uid > 0)
                        (void)nghttp2_session_resume_data(h->cli, s->uid);
        }
        return 0;
}

static int srv_data(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                    void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
        struct mitm_refusal r = {0};
        (void)flags;
        if (!s || s->refused || s->up_closed) { /* nowhere to go: the window opens again */
                (void)nghttp2_session_consume(ses, id, len);
                return 0;
        }
        s->bytes_out += len;
        snprintf(h->c->method, sizeof(h->c->method), "%s", s->method);
        if (mitm_scan_stream(h->c, s->scan, &s->scan_len, d, len, &r) < 0) {
                (void)nghttp2_session_consume(ses, id, len);
                refuse(h, s, r.status, r.why, r.alerted, false);
                return 0;
        }
        if (s->collect) {
                (void)nghttp2_session_consume(ses, id, len);
                if (s->up.len + len > MITM_BODY_MAX || h->collected + len > H2_BODIES_MAX) {
                        refuse(h, s, 413,
                               "a request body to substitute secrets in is at most 1 MiB", false,
                               false);
                        return 0;
                }
                ob_put(&s->up, d, len);
                h->collected += len;
                return 0;
        }
        ob_put(&s->up, d, len);
        if (s->uid > 0)
                (void)nghttp2_session_resume_data(h->cli, s->uid);
        return 0;
}

static int srv_stream_close(nghttp2_session *ses, int32_t id, uint32_t err, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
        (void)err;
        if (!s || h->dying)
                return 0;
        if (s->uid > 0 && !s->up_closed)
                (void)nghttp2_submit_rst_stream(h->cli, NGHTTP2_FLAG_NONE, s->uid, NGHTTP2_CANCEL);
        if (s->decided)
                stream_log(h, s);
        stream_free(h, s);
        return 0;
}

/* ---- upstream's side (client session) ---- */

static int cli_header(nghttp2_session *ses, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                      const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
        struct hlist *l;
        (void)flags;
        (void)ud;
        if (!s || f->hd.type != NGHTTP2_HEADERS)
                return 0;
        l = s->final_seen ? &s->trail : &s->resp;
        if (hl_add(l, name, nl, value, vl, H2_RESP_HEADERS_MAX) < 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        return 0;
}

/* l's fields scrubbed into out (content-length left out when drop_length). */
static void scrub_fields(struct h2 *h, const struct hlist *l, struct hlist *out, bool drop_length)
{
        for (size_t i = 0; i < l->n && out->n < H2_FIELD_MAX; i++) {
                struct outb carry = {0};
                size_t before;
                if (drop_length && hl_is(l, i, "content-length"))
                        continue;
                out->f[out->n].n_off = out->b.len;
                out->f[out->n].n_len = l->f[i].n_len;
                ob_put(&out->b, hl_name(l, i), l->f[i].n_len);
                before = out->b.len;
                mitm_scrub_into(h->c, &carry, &out->b, (const uint8_t *)hl_value(l, i),
                                l->f[i].v_len, true);
                ob_free(&carry);
                out->f[out->n].v_off = before;
                out->f[out->n].v_len = out->b.len - before;
                out->n++;
        }
}

static int cli_frame_recv(nghttp2_session *ses, const nghttp2_frame *f, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s;
        bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
        if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
                return 0;
        s = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
        if (!s || s->refused)
                return 0;
        if (f->hd.type == NGHTTP2_HEADERS && !s->final_seen) {
                nghttp2_nv nva[H2_FIELD_MAX];
                nghttp2_data_provider dp = {.source.ptr = s, .read_callback = dn_read};
                struct hlist out = {0};
                char st[4] = "";
                (void)hl_get(&s->resp, ":status", st, sizeof(st));
                scrub_fields(h, &s->resp, &out, s->scrub);
                hl_free(&s->resp);
                if (st[0] == '1') { /* interim */
                        (void)nghttp2_submit_headers(h->srv, NGHTTP2_FLAG_NONE, s->cid, NULL, nva,
                                                     hl_nva(&out, nva, false), NULL);
                        hl_free(&out);
                        return 0;
                }
                s->final_seen = true;
                if (end)
                        s->dn_end = true;
                if (nghttp2_submit_response(h->srv, s->cid, nva, hl_nva(&out, nva, false),
                                            end ? NULL : &dp) != 0)
                        (void)nghttp2_submit_rst_stream(h->srv, NGHTTP2_FLAG_NONE, s->cid,
                                                        NGHTTP2_INTERNAL_ERROR);
                hl_free(&out);
                return 0;
        }
        if (f->hd.type == NGHTTP2_HEADERS) { /* trailers: sent after the body */
                struct hlist out = {0};
                scrub_fields(h, &s->trail, &out, false);
                hl_free(&s->trail);
                s->trail = out;
        }
        if (end) {
                if (s->scrub)
                        mitm_scrub_into(h->c, &s->carry, &s->dn, NULL, 0, true);
                s->dn_end = true;
                (void)nghttp2_session_resume_data(h->srv, s->cid);
        }
        return 0;
}

static int cli_data(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                    void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
        (void)flags;
        if (!s || s->refused) {
                (void)nghttp2_session_consume(ses, id, len);
                return 0;
        }
        s->bytes_in += len;
        s->dn_raw += len;
        if (s->scrub)
                mitm_scrub_into(h->c, &s->carry, &s->dn, d, len, false);
        else
                ob_put(&s->dn, d, len);
        (void)nghttp2_session_resume_data(h->srv, s->cid);
        return 0;
}

static int cli_stream_close(nghttp2_session *ses, int32_t id, uint32_t err, void *ud)
{
        struct h2 *h = ud;
        struct h2s *s = nghttp2_session_get_stream_user_data(ses, id);
        if (!s || h->dying)
                return 0;
        s->up_closed = true;
        if (s->dn_raw) {
                (void)nghttp2_session_consume(ses, id, s->dn_raw);
                s->dn_raw = 0;
        }
        /* request bytes that will never go: the client's window opens again */
        if (!s->collect && s->up.len > s->up_off)
                (void)nghttp2_session_consume(h->srv, s->cid, s->up.len - s->up_off);
        if (s->collect)
                h->collected -= MIN(h->collected, s->up.len);
        ob_free(&s->up);
        s->up_off = 0;
        s->uid = 0;
        if (!s->dn_end && !s->refused)
                (void)nghttp2_submit_rst_stream(h->srv, NGHTTP2_FLAG_NONE, s->cid,
                                                err ? err : NGHTTP2_CANCEL);
        return 0;
}

/* ---- output ---- */

static ssize_t srv_send(nghttp2_session *ses, const uint8_t *d, size_t len, int flags, void *ud)
{
        struct h2 *h = ud;
        size_t k = MIN(len, buf_room(&h->c->down));
        (void)ses;
        (void)flags;
        if (!k || !buf_put(&h->c->down, d, k))
                return NGHTTP2_ERR_WOULDBLOCK;
        return (ssize_t)k;
}

static ssize_t cli_send(nghttp2_session *ses, const uint8_t *d, size_t len, int flags, void *ud)
{
        struct h2 *h = ud;
        size_t k = MIN(len, buf_room(&h->c->up));
        (void)ses;
        (void)flags;
        if (!k || !buf_put(&h->c->up, d, k))
                return NGHTTP2_ERR_WOULDBLOCK;
        return (ssize_t)k;
}

/* nghttp2's protections, set explicitly (the defaults of one version are not another's). */
static nghttp2_option *options(bool server)
{
        nghttp2_option *o;
        if (nghttp2_option_new(&o) != 0)
                return NULL;
        nghttp2_option_set_no_auto_window_update(o, 1);
        nghttp2_option_set_max_send_header_block_length(o, H2_RESP_HEADERS_MAX);
        nghttp2_option_set_max_outbound_ack(o, 1000);
        nghttp2_option_set_max_settings(o, 32);
        nghttp2_option_set_stream_reset_rate_limit(o, H2_RST_BURST, H2_RST_RATE);
        nghttp2_option_set_max_continuations(o, H2_CONTINUATIONS_MAX);
        if (!server) {
                /* no value stays in upstream's compression table, and no push comes */
                nghttp2_option_set_max_deflate_dynamic_table_size(o, 0);
                nghttp2_option_set_max_reserved_remote_streams(o, 0);
        }
        return o;
}

int h2_start(struct conn *c)
{
        struct h2 *h = calloc(1, sizeof(*h));
        nghttp2_session_callbacks *cb = NULL;
        nghttp2_option *os = options(true), *oc = options(false);
        nghttp2_settings_entry srv_iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_STREAMS_MAX},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEAD_MAX},
        };
        nghttp2_settings_entry cli_iv[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_STREAMS_MAX},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_RESP_HEADERS_MAX},
            {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0},
        };
        int rc = -1;

        if (!h || !os || !oc || nghttp2_session_callbacks_new(&cb) != 0)
                goto out;
        h->c = c;
        nghttp2_session_callbacks_set_send_callback(cb, srv_send);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, srv_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, srv_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, srv_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, srv_stream_close);
        if (nghttp2_session_server_new2(&h->srv, cb, h, os) != 0)
                goto out;
        nghttp2_session_callbacks_set_send_callback(cb, cli_send);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, NULL);
        nghttp2_session_callbacks_set_on_header_callback(cb, cli_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cli_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cli_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, cli_stream_close);
        if (nghttp2_session_client_new2(&h->cli, cb, h, oc) != 0)
                goto out;
        if (nghttp2_submit_settings(h->srv, NGHTTP2_FLAG_NONE, srv_iv, ARRAY_SIZE(srv_iv)) != 0 ||
            nghttp2_submit_settings(h->cli, NGHTTP2_FLAG_NONE, cli_iv, ARRAY_SIZE(cli_iv)) != 0 ||
            nghttp2_session_set_local_window_size(h->srv, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) ||
            nghttp2_session_set_local_window_size(h->cli, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW))
                goto out;
        c->h2 = h;
        h = NULL;
        c->mode = CM_H2;
        c->hs = H_PENDING;
        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        rc = 0;
out:
        if (h) {
                nghttp2_session_del(h->srv);
                nghttp2_session_del(h->cli);
                free(h);
        }
        nghttp2_session_callbacks_del(cb);
        nghttp2_option_del(os);
        nghttp2_option_del(oc);
        if (rc < 0)
                conn_close(c);
        return rc;
}

/* The sandbox's side broke the protocol (or a flood): logged, its GOAWAY sent, then closed. */
static void client_failed(struct conn *c, ssize_t rv)
{
        struct net_decision d = {.action = NET_DENY, .rule = -2};
        snprintf(d.why, sizeof(d.why), "HTTP/2 from the sandbox: %s", nghttp2_strerror((int)rv));
        c->sb->st.denied++;
        log_decision(c->sb, "http", c->mitm_host, &c->dst, c->mitm_port, NULL, &d, 0, 0);
        (void)nghttp2_session_send(c->h2->srv);
        c->mode = CM_CLOSING;
}

void h2_process(struct conn *c)
{
        struct h2 *h = c->h2;
        ssize_t rv;

        if (!h || c->closed || c->mode != CM_H2)
                return;
        if (buf_len(&c->cin)) {
                size_t n = buf_len(&c->cin);
                rv = nghttp2_session_mem_recv(h->srv, c->cin.d + c->cin.start, n);
                if (rv < 0) {
                        buf_free(&c->cin);
                        client_failed(c, rv);
                        return;
                }
                buf_consume(&c->cin, n);
                c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        }
        if (buf_len(&c->rin) && !h->up_gone) {
                size_t n = buf_len(&c->rin);
                rv = nghttp2_session_mem_recv(h->cli, c->rin.d + c->rin.start, n);
                buf_free(&c->rin);
                if (rv < 0) { /* upstream broke it: its streams end */
                        c->up_eof = true;
                } else {
                        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
                }
        }
        if (c->up_eof && !h->up_gone) {
                h->up_gone = true;
                for (struct h2s *s = h->streams; s; s = s->next)
                        if (!s->dn_end && !s->refused)
                                (void)nghttp2_submit_rst_stream(h->srv, NGHTTP2_FLAG_NONE, s->cid,
                                                                NGHTTP2_REFUSED_STREAM);
                (void)nghttp2_submit_goaway(h->srv, NGHTTP2_FLAG_NONE,
                                            nghttp2_session_get_last_proc_stream_id(h->srv),
                                            NGHTTP2_NO_ERROR, NULL, 0);
        }
        if (!h->up_gone && nghttp2_session_send(h->cli) != 0)
                c->up_eof = true;
        if (nghttp2_session_send(h->srv) != 0) {
                conn_close(c);
                return;
        }
        /* the client's bytes taken may have opened upstream's windows */
        if (!h->up_gone && nghttp2_session_send(h->cli) != 0)
                c->up_eof = true;
}

bool h2_update(struct conn *c, uint32_t *cw, uint32_t *uw)
{
        struct h2 *h = c->h2;
        if (!c->cin_eof && buf_room(&c->down) > 0 && !buf_len(&c->cin))
                *cw |= EPOLLIN;
        if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && !h->up_gone && buf_room(&c->rin) > 0)
                *uw |= EPOLLIN;
        if (c->cin_eof)
                return true;
        if (!nghttp2_session_want_read(h->srv) && !nghttp2_session_want_write(h->srv))
                return true;
        return h->up_gone && !h->n && !nghttp2_session_want_write(h->srv);
}

void h2_free(struct conn *c)
{
        struct h2 *h = c->h2;
        if (!h)
                return;
        h->dying = true;
        while (h->streams) {
                struct h2s *s = h->streams;
                if (!s->logged && s->decided)
                        stream_log(h, s);
                stream_free(h, s);
        }
        nghttp2_session_del(h->srv);
        nghttp2_session_del(h->cli);
        free(h);
        c->h2 = NULL;
}
