// SPDX-License-Identifier: Apache-2.0
/*
 * Interception's HTTP side (docs/network.md, "Interception"): which connections are intercepted
 * (a destination name bound by a grant, allowed by the policy), each request's checks and
 * substitution (Host must name the intercepted host; placeholders of the grants bound to it are
 * replaced by their values in the request target and every header value, Basic credentials
 * decoded and encoded again; a placeholder of any other grant, or any placeholder in plain HTTP,
 * is refused with 403 and audited as secret_misdirected), and the scrubbing of responses
 * (values back to placeholders in the head and, streaming, in the body: only bytes that may
 * begin a value are held back; a body whose length may change is sent chunked).
 *
 * Must never: send a value anywhere but over the verified TLS connection to a bound host, write
 * a value or a placeholder to a log, or buffer a response body beyond a value's length.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/audit.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "worker-private.h"

void ob_put(struct outb *o, const void *d, size_t n)
{
        if (o->oom || !n)
                return;
        if (o->len + n > o->cap) {
                size_t cap = MAX(o->cap * 2, o->len + n + 256);
                uint8_t *p = realloc(o->p, cap);
                if (!p) {
                        o->oom = true;
                        return;
                }
                o->p = p;
                o->cap = cap;
        }
        memcpy(o->p + o->len, d, n);
        o->len += n;
}

void ob_free(struct outb *o)
{
        if (o->p) {
                explicit_bzero(o->p, o->cap);
                free(o->p);
        }
        *o = (struct outb){0};
}

struct mbody {
        struct outb head;  /* the request head, less its framing and final CRLF */
        struct outb body;  /* the body as it came (decoded from chunks) */
        struct outb queue; /* head and substituted body for upstream */
        size_t sent;       /* of queue */
        bool queued;
};

void mitm_body_free(struct conn *c)
{
        if (!c->mb)
                return;
        ob_free(&c->mb->head);
        ob_free(&c->mb->body);
        ob_free(&c->mb->queue);
        free(c->mb);
        c->mb = NULL;
}

struct mresp {
        bool body;         /* the head is out: body bytes follow */
        bool chunked_out;  /* the body is re-framed as chunked */
        bool scrub;        /* values bound to the host exist: scrub */
        struct outb carry; /* body bytes that may begin a value */
        struct outb out;   /* the current callback's output */
        size_t ratio;      /* how much a byte may grow (a short value into its placeholder) */
};

void mitm_resp_free(struct conn *c)
{
        if (!c->mr)
                return;
        ob_free(&c->mr->carry);
        ob_free(&c->mr->out);
        free(c->mr);
        c->mr = NULL;
}

static bool same_host(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        if (la && a[la - 1] == '.')
                la--;
        if (lb && b[lb - 1] == '.')
                lb--;
        return la == lb && strncasecmp(a, b, la) == 0;
}

/* Writes an alert: a decision log line (action deny, "alert": event, the KEY's name) and an
 * audit event of its own (rate-limited with the denials). Never a value or a placeholder. */
static void alert(struct conn *c, const char *event, const char *key, const char *why)
{
        struct sandbox *sb = c->sb;
        json_t *extra = json_pack("{s:s,s:s?}", "alert", event, "secret", key);
        struct net_decision d = {.action = NET_DENY, .rule = -2};
        snprintf(d.why, sizeof(d.why), "%s", why);
        /* the decision log line (log_decision audits denials as network_denied: this one is
         * audited under its own event below instead) */
        log_decision_ex(sb, c->kind, c->host, c->have_dst ? &c->dst : NULL, c->port,
                        c->method[0] ? c->method : NULL, &d, c->bytes_out, c->bytes_in, extra,
                        false);
        if (W.now / 1000 != sb->audit_second) {
                sb->audit_second = W.now / 1000;
                sb->audit_count = 0;
        }
        if (sb->audit_count++ < 10) {
                json_t *f =
                    json_pack("{s:s,s:s,s:s,s:s?,s:i,s:s}", "sandbox", sb->name, "uuid", sb->uuid,
                              "host", c->host, "secret", key, "port", (int)c->port, "rule", why);
                (void)audit_log(event, f);
        } else {
                sb->audit_drops++;
        }
}

void mitm_client_tls_failed(struct conn *c)
{
        char why[256];
        snprintf(why, sizeof(why),
                 "tls_client_rejected_ca: the client refused the sandbox CA's certificate for "
                 "'%.100s' (not trusted, or pinned): %.100s",
                 c->host, c->ct ? c->ct->why : "");
        c->log_pending = false;
        c->kind = "tls";
        alert(c, "tls_client_rejected_ca", NULL, why);
}

bool mitm_sni_ok(struct conn *c)
{
        const char *sni = SSL_get_servername(c->ct->ssl, TLSEXT_NAMETYPE_host_name);
        char why[200];
        if (!sni || same_host(sni, c->mitm_host))
                return true;
        snprintf(why, sizeof(why), "TLS server name '%.100s' is not the intercepted host", sni);
        c->kind = "tls";
        c->sb->st.denied++;
        alert(c, "network_denied", NULL, why);
        return false;
}

void mitm_upstream_tls_failed(struct conn *c)
{
        char why[200];
        snprintf(why, sizeof(why), "upstream TLS: %s", c->ut->why);
        upstream_close(c);
        if (c->mode == CM_HTTP && c->hs != H_HEAD) {
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why), "%s", why);
                conn_decided(c);
                conn_refuse(c, 502, why);
        }
        /* between requests: the next one connects again, and fails in its own exchange */
}

bool mitm_wanted(struct conn *c)
{
        char norm[NET_POLICY_HOST_MAX + 1];
        c->bound = 0;
        if (!c->sb->n_grants || !c->host[0] || !W.srv_ctx || net_host_normalise(c->host, norm) < 0)
                return false;
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if (grant_binds(&c->sb->grants[i], norm))
                        c->bound |= 1ull << i;
        return c->bound != 0;
}

bool mitm_intercept(struct conn *c, bool connect)
{
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (tls_client_start(c) < 0) {
                conn_refuse(c, 502, "cannot start interception");
                return false;
        }
        if (connect)
                (void)buf_put(&c->ct->out, ok, sizeof(ok) - 1);
        c->mitm = true;
        /* where values pass in the clear: towards upstream, the next head, what upstream says */
        c->up.wipe = c->hbuf.wipe = c->rin.wipe = true;
        /* the upstream connected as a tunnel's would: TLS on it from the ClientHello on (its ALPN
         * offer mirrors the client's: tls.c), or now when that was seen */
        if (c->alpn_seen && c->ufd >= 0 && c->upstream_ok && !c->ut && tls_up_start(c) < 0) {
                upstream_close(c);
                conn_refuse(c, 502, "cannot start TLS upstream");
                return false;
        }
        conn_log(c); /* the CONNECT's (or TLS connection's) own line */
        c->mitm = true;
        c->mitm_port = c->port;
        snprintf(c->mitm_host, sizeof(c->mitm_host), "%s", c->host);
        c->sb->st.intercepted++;
        c->mode = CM_HTTP;
        c->hs = H_HEAD;
        c->is_connect = false;
        c->sni_check = false;
        c->deadline = W.now + (int64_t)W.o->header_timeout_ms;
        http_parser_init(&c->req, HTTP_REQUEST);
        c->req.data = c;
        return true;
}

/* ---- substitution ---- */

enum subst_ctx { SC_HEADER, SC_URL, SC_BODY };

struct subst_err {
        const struct grant *g;
        int status;
        const char *what;
};

/* Appends in to o with each placeholder replaced as c's interception says. -1 with *e set when
 * a placeholder may not go there (misdirected: 403; no value yet: 503; a value unsafe here:
 * 502). */
static int subst(struct conn *c, const char *in, size_t len, enum subst_ctx ctx, struct outb *o,
                 struct subst_err *e)
{
        const char *p = in, *end = in + len;
        while (p < end) {
                const char *m = memmem(p, (size_t)(end - p), MITM_PLACEHOLDER_PREFIX,
                                       STRLEN(MITM_PLACEHOLDER_PREFIX));
                const struct grant *g = NULL;
                size_t gi = 0;
                if (!m) {
                        ob_put(o, p, (size_t)(end - p));
                        break;
                }
                ob_put(o, p, (size_t)(m - p));
                if ((size_t)(end - m) >= MITM_PLACEHOLDER_LEN)
                        for (gi = 0; gi < c->sb->n_grants; gi++)
                                if (memcmp(c->sb->grants[gi].placeholder, m,
                                           MITM_PLACEHOLDER_LEN) == 0) {
                                        g = &c->sb->grants[gi];
                                        break;
                                }
                if (!g) { /* not one of this sandbox's */
                        ob_put(o, m, STRLEN(MITM_PLACEHOLDER_PREFIX));
                        p = m + STRLEN(MITM_PLACEHOLDER_PREFIX);
                        continue;
                }
                if (!c->mitm || !(c->bound & (1ull << gi))) {
                        *e = (struct subst_err){g, 403, "secret_misdirected"};
                        return -1;
                }
                if (ctx == SC_BODY && !g->body) { /* bodies only where the grant opts in */
                        ob_put(o, m, MITM_PLACEHOLDER_LEN);
                        p = m + MITM_PLACEHOLDER_LEN;
                        continue;
                }
                if (!g->value) {
                        *e = (struct subst_err){g, 503, "no value yet"};
                        return -1;
                }
                for (size_t k = 0; k < g->value_len; k++) {
                        uint8_t b = g->value[k];
                        if (b == '\r' || b == '\n' || (ctx == SC_URL && (b <= 0x20 || b >= 0x7f))) {
                                *e = (struct subst_err){g, 502, "value unsafe here"};
                                return -1;
                        }
                }
                ob_put(o, g->value, g->value_len);
                c->used |= 1ull << gi;
                p = m + MITM_PLACEHOLDER_LEN;
        }
        return o->oom ? (*e = (struct subst_err){NULL, 431, "out of memory"}, -1) : 0;
}

static bool hdr_is(const struct head *h, size_t i, const char *name)
{
        return h->h[i].f_len == strlen(name) &&
               strncasecmp(h->buf + h->h[i].f_off, name, h->h[i].f_len) == 0;
}

/* An Authorization value "Basic <base64>": the credentials decoded, substituted, encoded. */
static int subst_basic(struct conn *c, const char *v, size_t len, struct outb *o,
                       struct subst_err *e)
{
        const char *b64 = v + 6;
        size_t bl = len - 6;
        struct outb dec = {0}, sub = {0};
        int n, r = 0;

        while (bl && *b64 == ' ')
                b64++, bl--;
        while (bl && b64[bl - 1] == ' ')
                bl--;
        if (bl == 0 || bl % 4 || bl > 8192)
                return subst(c, v, len, SC_HEADER, o, e);
        dec.p = malloc(bl);
        if (!dec.p)
                return subst(c, v, len, SC_HEADER, o, e);
        dec.cap = bl;
        n = EVP_DecodeBlock(dec.p, (const unsigned char *)b64, (int)bl);
        if (n < 0) {
                ERR_clear_error();
                ob_free(&dec);
                return subst(c, v, len, SC_HEADER, o, e);
        }
        dec.len = (size_t)n;
        /* EVP_DecodeBlock counts the padding's zero bytes */
        if (b64[bl - 1] == '=')
                dec.len--;
        if (b64[bl - 2] == '=')
                dec.len--;
        if (!memmem(dec.p, dec.len, MITM_PLACEHOLDER_PREFIX, STRLEN(MITM_PLACEHOLDER_PREFIX))) {
                ob_free(&dec);
                return subst(c, v, len, SC_HEADER, o, e);
        }
        r = subst(c, (const char *)dec.p, dec.len, SC_HEADER, &sub, e);
        if (r == 0 && sub.len <= 48 * 1024) {
                size_t cap = (sub.len + 2) / 3 * 4 + 1;
                uint8_t *enc = malloc(cap);
                if (!enc) {
                        r = -1;
                        *e = (struct subst_err){NULL, 431, "out of memory"};
                } else {
                        int el = EVP_EncodeBlock(enc, sub.p, (int)sub.len);
                        ob_put(o, v, 6);
                        ob_put(o, enc, (size_t)el);
                        explicit_bzero(enc, cap);
                        free(enc);
                }
        } else if (r == 0) {
                r = -1;
                *e = (struct subst_err){NULL, 431, "credentials too long"};
        }
        ob_free(&dec);
        ob_free(&sub);
        return r;
}

/* Refuses the request for e: 403 secret_misdirected (alert), 503 (no value yet), or another
 * status. The body and the logs name the KEY, never a value or a placeholder. */
static void refuse_subst(struct conn *c, const struct subst_err *e)
{
        char why[256];
        const char *key = e->g ? e->g->name : "?";
        if (e->status == 403) {
                snprintf(why, sizeof(why),
                         "secret_misdirected: the placeholder of secret '%s' may be sent only "
                         "over TLS to its own hosts",
                         key);
                c->sb->st.misdirected++;
                c->sb->st.denied++;
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why), "%s", why);
                c->log_pending = false;
                alert(c, "secret_misdirected", key, why);
                conn_refuse(c, 403, why);
                return;
        }
        if (e->status == 503)
                snprintf(why, sizeof(why), "secret '%s' has no value in the proxy yet", key);
        else if (e->status == 502)
                snprintf(why, sizeof(why), "the value of secret '%s' cannot go there", key);
        else
                snprintf(why, sizeof(why), "%s", e->what);
        conn_deny_reason(c, e->status, "%s", why);
}

int mitm_check_plain(struct conn *c)
{
        struct head *h = c->head;
        struct outb o = {0};
        struct subst_err e = {0};
        int r = 0;

        if (!c->sb->n_grants)
                return 0;
        r = subst(c, h->buf + h->url_off, h->url_len, SC_URL, &o, &e);
        for (size_t i = 0; r == 0 && i < h->n; i++) {
                const char *v = h->buf + h->h[i].v_off;
                size_t vl = h->h[i].v_len;
                o.len = 0;
                if (hdr_is(h, i, "authorization") && vl > 6 && !strncasecmp(v, "Basic ", 6))
                        r = subst_basic(c, v, vl, &o, &e);
                else
                        r = subst(c, v, vl, SC_HEADER, &o, &e);
        }
        ob_free(&o);
        if (r < 0 && e.status == 403) {
                refuse_subst(c, &e);
                return -1;
        }
        return 0;
}

/* Has the request a body, and does a grant bound to the host opt into substituting bodies? */
static bool body_wanted(struct conn *c)
{
        bool has_body = (c->req.flags & F_CHUNKED) ||
                        (c->req.content_length != ULLONG_MAX && c->req.content_length > 0);
        if (!has_body || c->req.upgrade)
                return false;
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if ((c->bound & (1ull << i)) && c->sb->grants[i].body)
                        return true;
        return false;
}

/* Builds the upstream head of an intercepted request into c->hbuf, substituted. */
static int build_head(struct conn *c)
{
        struct head *h = c->head;
        struct outb o = {0};
        struct subst_err e = {0};
        char line[64];
        int n;

        c->used = 0;
        mitm_body_free(c);
        if (body_wanted(c)) {
                if (c->req.content_length != ULLONG_MAX && !(c->req.flags & F_CHUNKED) &&
                    c->req.content_length > MITM_BODY_MAX) {
                        conn_deny_reason(c, 413,
                                         "a request body to substitute secrets in is at most "
                                         "1 MiB");
                        return -1;
                }
                c->mb = calloc(1, sizeof(*c->mb));
                if (!c->mb) {
                        conn_close(c);
                        return -1;
                }
        }
        ob_put(&o, c->method, strlen(c->method));
        ob_put(&o, " ", 1);
        if (subst(c, h->buf + h->url_off, h->url_len, SC_URL, &o, &e) < 0)
                goto refused;
        n = snprintf(line, sizeof(line), " HTTP/%u.%u\r\n", c->req.http_major, c->req.http_minor);
        ob_put(&o, line, (size_t)n);
        for (size_t i = 0; i < h->n; i++) {
                const char *v = h->buf + h->h[i].v_off;
                size_t vl = h->h[i].v_len;
                if (hdr_is(h, i, "proxy-connection") || hdr_is(h, i, "proxy-authorization"))
                        continue;
                /* a body substituted gets its own length */
                if (c->mb && (hdr_is(h, i, "content-length") || hdr_is(h, i, "transfer-encoding") ||
                              hdr_is(h, i, "expect")))
                        continue;
                ob_put(&o, h->buf + h->h[i].f_off, h->h[i].f_len);
                ob_put(&o, ": ", 2);
                if (hdr_is(h, i, "accept-encoding")) {
                        /* responses are scrubbed: they must come as they are */
                        ob_put(&o, "identity", 8);
                } else if (hdr_is(h, i, "authorization") && vl > 6 &&
                           !strncasecmp(v, "Basic ", 6)) {
                        if (subst_basic(c, v, vl, &o, &e) < 0)
                                goto refused;
                } else if (subst(c, v, vl, SC_HEADER, &o, &e) < 0) {
                        goto refused;
                }
                ob_put(&o, "\r\n", 2);
        }
        if (!c->mb)
                ob_put(&o, "\r\n", 2);
        if (o.oom || o.len > BUF_SIZE) {
                ob_free(&o);
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why), "request head too large");
                conn_refuse(c, 431, c->dec.why);
                return -1;
        }
        buf_free(&c->hbuf);
        if (c->mb) {
                c->mb->head = o; /* sent with the body */
                o = (struct outb){0};
        } else {
                (void)buf_put(&c->hbuf, o.p, o.len);
        }
        ob_free(&o);
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if (c->used & (1ull << i))
                        c->sb->st.substituted++;
        return 0;
refused:
        ob_free(&o);
        refuse_subst(c, &e);
        return -1;
}

static int on_body_req(http_parser *p, const char *at, size_t len)
{
        struct conn *c = p->data;
        if (c->mb->body.len + len > MITM_BODY_MAX)
                return -1;
        ob_put(&c->mb->body, at, len);
        return 0;
}

static int on_message_complete_body(http_parser *p)
{
        struct conn *c = p->data;
        c->req_done = true;
        http_parser_pause(p, 1);
        return 0;
}

static const http_parser_settings body_req_settings = {
    .on_body = on_body_req,
    .on_message_complete = on_message_complete_body,
};

void mitm_body_flush(struct conn *c)
{
        struct mbody *mb = c->mb;
        if (!mb || !mb->queued)
                return;
        while (mb->sent < mb->queue.len && buf_room(&c->up)) {
                size_t k = MIN(mb->queue.len - mb->sent, buf_room(&c->up));
                (void)buf_put(&c->up, mb->queue.p + mb->sent, k);
                mb->sent += k;
        }
        if (mb->sent == mb->queue.len)
                mitm_body_free(c);
}

int mitm_body_step(struct conn *c)
{
        struct mbody *mb = c->mb;
        size_t len = buf_len(&c->cin), n;
        struct subst_err e = {0};
        char line[48];

        if (len && !c->req_done) {
                n = http_parser_execute(&c->req, &body_req_settings,
                                        (const char *)c->cin.d + c->cin.start, len);
                if (HTTP_PARSER_ERRNO(&c->req) != HPE_OK &&
                    HTTP_PARSER_ERRNO(&c->req) != HPE_PAUSED) {
                        if (mb->body.len + len > MITM_BODY_MAX) {
                                c->keep_alive = false;
                                conn_deny_reason(c, 413,
                                                 "a request body to substitute secrets in is at "
                                                 "most 1 MiB");
                        } else {
                                conn_close(c);
                        }
                        return -1;
                }
                buf_consume(&c->cin, n);
                c->bytes_out += n;
                c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        }
        if (!c->req_done)
                return 0;
        /* the whole body: substituted, framed by its new length, queued after the head */
        ob_put(&mb->queue, mb->head.p, mb->head.len);
        if (mb->body.len &&
            subst(c, (const char *)mb->body.p, mb->body.len, SC_BODY, &mb->queue, &e) < 0) {
                refuse_subst(c, &e);
                return -1;
        }
        /* the length goes between the head and the body: rebuild the queue in order */
        {
                struct outb q = {0};
                size_t blen = mb->queue.len - mb->head.len;
                int ln = snprintf(line, sizeof(line), "Content-Length: %zu\r\n\r\n", blen);
                ob_put(&q, mb->head.p, mb->head.len);
                ob_put(&q, line, (size_t)ln);
                ob_put(&q, mb->queue.p + mb->head.len, blen);
                ob_free(&mb->queue);
                mb->queue = q;
                if (q.oom) {
                        conn_close(c);
                        return -1;
                }
        }
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if (c->used & (1ull << i))
                        c->sb->st.substituted++;
        ob_free(&mb->body);
        ob_free(&mb->head);
        mb->queued = true;
        c->hs = H_PENDING;
        mitm_body_flush(c);
        return 0;
}

void mitm_conn_closing(struct conn *c)
{
        if (c->ct && !c->ct->hs_done && !c->ct->failed) {
                /* it went away in the handshake (an alert and a reset at once: the socket's
                 * error ended the connection before the alert was read) */
                char why[200];
                snprintf(why, sizeof(why),
                         "tls_client_rejected_ca: the client left the TLS handshake for "
                         "'%.100s' (not trusted, or pinned)",
                         c->mitm_host);
                c->kind = "tls";
                alert(c, "tls_client_rejected_ca", NULL, why);
                c->log_pending = false;
        } else if (c->ct && c->ct->hs_done && !c->mitm_req_seen && !c->ct->failed) {
                char why[200];
                snprintf(why, sizeof(why),
                         "tls_client_rejected_ca: the client closed after the TLS handshake "
                         "for '%.100s' without a request (a pinned certificate?)",
                         c->mitm_host);
                c->kind = "tls";
                alert(c, "tls_client_rejected_ca", NULL, why);
                c->log_pending = false;
        }
}

void mitm_request(struct conn *c, bool have_host, const char *hosthdr)
{
        struct head *h = c->head;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = c->dst};

        c->kind = "http";
        c->mitm_req_seen = true;
        snprintf(c->host, sizeof(c->host), "%s", c->mitm_host);
        c->port = c->mitm_port;
        c->have_dst = true;
        if (c->req.method == HTTP_CONNECT || h->url_len == 0 ||
            (h->buf[h->url_off] != '/' && !(h->url_len == 1 && h->buf[h->url_off] == '*'))) {
                conn_deny_reason(c, 400, "an intercepted request needs an origin-form target");
                return;
        }
        if (!have_host || !same_host(hosthdr, c->mitm_host)) {
                conn_deny_reason(c, 403, "Host/SNI mismatch: Host '%.100s' is not '%.100s'",
                                 have_host ? hosthdr : "", c->mitm_host);
                return;
        }
        if (net_policy_decide(c->sb->policy, c->host, (struct sockaddr *)&sa, c->port, c->method,
                              &c->dec) != NET_ALLOW) {
                conn_deny(c);
                return;
        }
        if (build_head(c) < 0)
                return;
        buf_free(&c->rin); /* what upstream said unasked is no answer to this request */
        mitm_resp_free(c);
        c->hs = H_WAIT;
        decide_and_connect(c);
}

/* Scans d (after the carry of the bytes before it) for a placeholder that may not go where c
 * sends it: -1 with *e set. The carry keeps the tail that may begin one. */
static int scan(struct conn *c, uint8_t *carry, size_t *carry_len, const uint8_t *d, size_t n,
                struct subst_err *e)
{
        uint8_t *w;
        size_t wl = *carry_len + n, keep;
        const uint8_t *p, *m;

        if (!c->sb->n_grants || !n)
                return 0;
        w = malloc(wl);
        if (!w)
                return 0;
        memcpy(w, carry, *carry_len);
        memcpy(w + *carry_len, d, n);
        for (p = w; (m = memmem(p, wl - (size_t)(p - w), MITM_PLACEHOLDER_PREFIX,
                                STRLEN(MITM_PLACEHOLDER_PREFIX)));
             p = m + 1) {
                if ((size_t)(w + wl - m) < MITM_PLACEHOLDER_LEN)
                        break;
                for (size_t gi = 0; gi < c->sb->n_grants; gi++) {
                        const struct grant *g = &c->sb->grants[gi];
                        if (memcmp(g->placeholder, m, MITM_PLACEHOLDER_LEN) == 0 &&
                            !(c->mitm && (c->bound & (1ull << gi)))) {
                                *e = (struct subst_err){g, 403, "secret_misdirected"};
                                free(w);
                                return -1;
                        }
                }
        }
        keep = MIN(wl, (size_t)MITM_PLACEHOLDER_LEN - 1);
        memcpy(carry, w + wl - keep, keep);
        *carry_len = keep;
        free(w);
        return 0;
}

int mitm_scan_body(struct conn *c, const uint8_t *d, size_t n)
{
        struct subst_err e = {0};
        if (scan(c, c->scan_carry, &c->scan_carry_len, d, n, &e) < 0) {
                refuse_subst(c, &e);
                return -1;
        }
        return 0;
}

/* ---- the parts HTTP/2 (h2.c) shares ---- */

bool mitm_same_host(const char *a, const char *b)
{
        return same_host(a, b);
}

/* What refuse_subst says, for a stream: a 403 is counted and alerted here. */
static int refusal(struct conn *c, const struct subst_err *e, struct mitm_refusal *r)
{
        const char *key = e->g ? e->g->name : "?";
        r->status = e->status;
        r->alerted = false;
        if (e->status == 403) {
                snprintf(r->why, sizeof(r->why),
                         "secret_misdirected: the placeholder of secret '%s' may be sent only "
                         "over TLS to its own hosts",
                         key);
                c->sb->st.misdirected++;
                c->sb->st.denied++;
                alert(c, "secret_misdirected", key, r->why);
                r->alerted = true;
        } else if (e->status == 503) {
                snprintf(r->why, sizeof(r->why), "secret '%s' has no value in the proxy yet", key);
        } else if (e->status == 502) {
                snprintf(r->why, sizeof(r->why), "the value of secret '%s' cannot go there", key);
        } else {
                snprintf(r->why, sizeof(r->why), "%s", e->what);
        }
        return -1;
}

int mitm_subst_value(struct conn *c, const char *name, size_t nl, const char *v, size_t vl,
                     bool url, struct outb *o, struct mitm_refusal *r)
{
        struct subst_err e = {0};
        int rc;
        if (url)
                rc = subst(c, v, vl, SC_URL, o, &e);
        else if (nl == 13 && !strncasecmp(name, "authorization", 13) && vl > 6 &&
                 !strncasecmp(v, "Basic ", 6))
                rc = subst_basic(c, v, vl, o, &e);
        else
                rc = subst(c, v, vl, SC_HEADER, o, &e);
        return rc < 0 ? refusal(c, &e, r) : 0;
}

int mitm_subst_body(struct conn *c, const uint8_t *d, size_t n, struct outb *o,
                    struct mitm_refusal *r)
{
        struct subst_err e = {0};
        return subst(c, (const char *)d, n, SC_BODY, o, &e) < 0 ? refusal(c, &e, r) : 0;
}

int mitm_scan_stream(struct conn *c, uint8_t *carry, size_t *carry_len, const uint8_t *d, size_t n,
                     struct mitm_refusal *r)
{
        struct subst_err e = {0};
        return scan(c, carry, carry_len, d, n, &e) < 0 ? refusal(c, &e, r) : 0;
}

bool mitm_body_opt_in(const struct conn *c)
{
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if ((c->bound & (1ull << i)) && c->sb->grants[i].body)
                        return true;
        return false;
}

bool mitm_scrubs(const struct conn *c, size_t *ratio)
{
        bool any = false;
        *ratio = 1;
        for (size_t i = 0; i < c->sb->n_grants; i++)
                if ((c->bound & (1ull << i)) && c->sb->grants[i].value) {
                        size_t vl = c->sb->grants[i].value_len;
                        any = true;
                        *ratio = MAX(*ratio, (MITM_PLACEHOLDER_LEN + vl - 1) / vl);
                }
        return any;
}

/* ---- responses ---- */

void mitm_scrub_into(struct conn *c, struct outb *carry, struct outb *out, const uint8_t *d,
                     size_t n, bool final)
{
        struct outb w = {0};
        size_t pos = 0, hold;

        ob_put(&w, carry->p, carry->len);
        ob_put(&w, d, n);
        carry->len = 0;
        if (w.oom || !w.len) { /* nothing to scrub (an empty read of an empty carry) */
                out->oom |= w.oom;
                ob_free(&w);
                return;
        }
        for (;;) {
                const uint8_t *best = NULL;
                const struct grant *bg = NULL;
                for (size_t i = 0; i < c->sb->n_grants; i++) {
                        const struct grant *g = &c->sb->grants[i];
                        const uint8_t *m;
                        if (!(c->bound & (1ull << i)) || !g->value)
                                continue;
                        m = memmem(w.p + pos, w.len - pos, g->value, g->value_len);
                        if (m && (!best || m < best)) {
                                best = m;
                                bg = g;
                        }
                }
                if (!best)
                        break;
                ob_put(out, w.p + pos, (size_t)(best - (w.p + pos)));
                ob_put(out, bg->placeholder, MITM_PLACEHOLDER_LEN);
                pos = (size_t)(best - w.p) + bg->value_len;
        }
        /* the earliest tail that is a proper prefix of a value waits */
        hold = w.len;
        if (!final)
                for (size_t i = 0; i < c->sb->n_grants; i++) {
                        const struct grant *g = &c->sb->grants[i];
                        size_t from;
                        if (!(c->bound & (1ull << i)) || !g->value)
                                continue;
                        from = w.len - pos > g->value_len - 1 ? w.len - (g->value_len - 1) : pos;
                        for (size_t k = from; k < hold; k++)
                                if (w.p[k] == g->value[0] &&
                                    memcmp(w.p + k, g->value, w.len - k) == 0) {
                                        hold = k;
                                        break;
                                }
                }
        ob_put(out, w.p + pos, hold - pos);
        ob_put(carry, w.p + hold, w.len - hold);
        ob_free(&w);
}

/* Scrubs the body bytes d (final: and the carry) into mr->out: each value bound to the host
 * becomes its placeholder; a tail that may begin a value waits in the carry. */
static void scrub(struct conn *c, const uint8_t *d, size_t n, bool final)
{
        struct mresp *mr = c->mr;

        if (!mr->scrub) {
                ob_put(&mr->out, d, n);
                return;
        }
        mitm_scrub_into(c, &mr->carry, &mr->out, d, n, final);
}

/* Puts mr->out into c->down, framed as a chunk when re-framing. */
static void emit(struct conn *c)
{
        struct mresp *mr = c->mr;
        char hdr[24];
        if (!mr->out.len)
                return;
        if (mr->chunked_out) {
                int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", mr->out.len);
                (void)buf_put(&c->down, hdr, (size_t)n);
        }
        (void)buf_put(&c->down, mr->out.p, mr->out.len);
        if (mr->chunked_out)
                (void)buf_put(&c->down, "\r\n", 2);
        explicit_bzero(mr->out.p, mr->out.len);
        mr->out.len = 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
        struct conn *c = p->data;
        scrub(c, (const uint8_t *)at, len, false);
        emit(c);
        return 0;
}

static int on_message_complete(http_parser *p)
{
        struct conn *c = p->data;
        struct mresp *mr = c->mr;
        if (mr->body) {
                scrub(c, NULL, 0, true);
                emit(c);
                if (mr->chunked_out)
                        (void)buf_put(&c->down, "0\r\n\r\n", 5);
        }
        mr->body = false;
        http_resp_message_done(c, p);
        http_parser_pause(p, 1);
        return 0;
}

static const http_parser_settings head_settings = {
    .on_headers_complete = http_resp_headers_complete,
    .on_message_complete = on_message_complete,
};

static const http_parser_settings body_settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void bad_response(struct conn *c, const char *why)
{
        c->keep_alive = false;
        if (c->mr && (c->mr->body || buf_len(&c->down))) {
                conn_close(c); /* part of it went out: only an end is left to say */
                return;
        }
        conn_refuse(c, 502, why);
}

/* The response head in rin (hl bytes): parsed, scrubbed, re-framed, into c->down. */
static bool response_head(struct conn *c, size_t hl)
{
        struct mresp *mr = c->mr;
        const char *d = (const char *)c->rin.d + c->rin.start, *line, *end = d + hl - 2;
        bool reframe, has_body, chunked_in, has_len;
        struct outb head = {0};
        size_t n;

        http_parser_pause(&c->resp, 0);
        n = http_parser_execute(&c->resp, &head_settings, d, hl);
        if (HTTP_PARSER_ERRNO(&c->resp) != HPE_OK && HTTP_PARSER_ERRNO(&c->resp) != HPE_PAUSED) {
                bad_response(c, "bad response from upstream");
                return false;
        }
        (void)n;
        has_body = !c->req_is_head && !(c->resp.status_code / 100 == 1) &&
                   c->resp.status_code != 204 && c->resp.status_code != 304;
        chunked_in = c->resp.flags & F_CHUNKED;
        has_len = c->resp.content_length != ULLONG_MAX && !chunked_in;
        /* a length that may change goes chunked (or to the close, for an HTTP/1.0 client) */
        reframe = mr->scrub && has_body && !c->resp_done && (chunked_in || has_len);
        for (line = d; line < end;) {
                const char *eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
                size_t ll = (size_t)(eol - line);
                if (line != d && reframe &&
                    ((ll >= 15 && !strncasecmp(line, "content-length:", 15)) ||
                     (ll >= 18 && !strncasecmp(line, "transfer-encoding:", 18)) ||
                     (ll >= 11 && !strncasecmp(line, "connection:", 11))))
                        ;
                else {
                        mr->out.len = 0;
                        scrub(c, (const uint8_t *)line, ll, true);
                        ob_put(&head, mr->out.p, mr->out.len);
                        ob_put(&head, "\r\n", 2);
                        mr->out.len = 0;
                }
                line = eol + 2;
        }
        if (reframe) {
                if (c->req.http_major == 1 && c->req.http_minor >= 1) {
                        mr->chunked_out = true;
                        ob_put(&head, "Transfer-Encoding: chunked\r\n", 28);
                        if (!c->keep_alive || !http_should_keep_alive(&c->resp))
                                ob_put(&head, "Connection: close\r\n", 19);
                } else {
                        c->keep_alive = false;
                        ob_put(&head, "Connection: close\r\n", 19);
                }
        } else {
                mr->chunked_out = false;
        }
        ob_put(&head, "\r\n", 2);
        if (head.oom || head.len > buf_room(&c->down)) {
                ob_free(&head);
                bad_response(c, "response head too large");
                return false;
        }
        (void)buf_put(&c->down, head.p, head.len);
        ob_free(&head);
        buf_consume(&c->rin, hl);
        c->mr->body = has_body && !c->resp_done;
        return true;
}

void mitm_response(struct conn *c)
{
        if (!c->mr) {
                c->mr = calloc(1, sizeof(*c->mr));
                if (!c->mr) {
                        conn_close(c);
                        return;
                }
                c->mr->ratio = 1;
                for (size_t i = 0; i < c->sb->n_grants; i++)
                        if ((c->bound & (1ull << i)) && c->sb->grants[i].value) {
                                c->mr->scrub = true;
                                size_t vl = c->sb->grants[i].value_len;
                                size_t r = (MITM_PLACEHOLDER_LEN + vl - 1) / vl;
                                c->mr->ratio = MAX(c->mr->ratio, r);
                        }
        }
        while (!c->closed && !c->resp_done && buf_len(&c->rin)) {
                const uint8_t *d = c->rin.d + c->rin.start;
                size_t len = buf_len(&c->rin), room = buf_room(&c->down), k;
                if (!c->mr->body) {
                        const uint8_t *end = memmem(d, len, "\r\n\r\n", 4);
                        if (!end) {
                                if (len >= HEAD_MAX)
                                        bad_response(c, "response head too large");
                                break;
                        }
                        if (!response_head(c, (size_t)(end - d) + 4))
                                return;
                        continue;
                }
                /* within the room towards the client: a value may grow into its placeholder,
                 * and a chunk has its frame */
                {
                        size_t ratio = c->mr->ratio, need = 64 + c->mr->carry.len * ratio;
                        k = room > need ? (room - need) / ratio : 0;
                }
                k = MIN(k, len);
                if (k == 0)
                        break;
                http_parser_pause(&c->resp, 0);
                size_t n = http_parser_execute(&c->resp, &body_settings, (const char *)d, k);
                if (HTTP_PARSER_ERRNO(&c->resp) != HPE_OK &&
                    HTTP_PARSER_ERRNO(&c->resp) != HPE_PAUSED) {
                        bad_response(c, "bad response body from upstream");
                        return;
                }
                buf_consume(&c->rin, n);
                if (n == 0)
                        break;
        }
        if (c->closed)
                return;
        if (c->resp_done) {
                buf_free(&c->rin); /* nothing may follow a response we did not ask for */
                mitm_resp_free(c);
        } else if (c->up_eof && !buf_len(&c->rin)) {
                /* a body to the close (or a cut one) */
                if (c->mr->body) {
                        scrub(c, NULL, 0, true);
                        emit(c);
                }
                c->keep_alive = false;
                c->resp_done = true;
                mitm_resp_free(c);
        }
        http_process(c);
}
