// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP/1.1 on a proxied connection: request heads parsed (http-parser) into a bounded store,
 * each request's destination found (absolute-URI for explicit clients, Host for transparent
 * ones) and decided, the head rewritten for upstream (origin-form, less the proxy's headers),
 * bodies streamed, responses followed to their end for keep-alive; CONNECT, whose tunnel's TLS
 * server name must be the CONNECT's host; Upgrade, which becomes a tunnel. Must never forward a
 * request whose destination was not decided, or whose Host is not the decided host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shared/macro.h"
#include "worker-private.h"

static int on_url(http_parser *p, const char *at, size_t len)
{
        struct conn *c = p->data;
        struct head *h = c->head;
        if (h->len + len > HEAD_MAX)
                return -1;
        if (h->url_len == 0)
                h->url_off = h->len;
        memcpy(h->buf + h->len, at, len);
        h->len += len;
        h->url_len += len;
        return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
        struct conn *c = p->data;
        struct head *h = c->head;
        if (h->len + len > HEAD_MAX)
                return -1;
        if (h->in_value || h->n == 0) {
                if (h->n >= MAX_HEADERS) {
                        h->too_many = true;
                        return -1;
                }
                h->h[h->n].f_off = h->len;
                h->h[h->n].f_len = 0;
                h->h[h->n].v_len = 0;
                h->n++;
                h->in_value = false;
        }
        memcpy(h->buf + h->len, at, len);
        h->len += len;
        h->h[h->n - 1].f_len += len;
        return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
        struct conn *c = p->data;
        struct head *h = c->head;
        if (h->len + len > HEAD_MAX || h->n == 0)
                return -1;
        if (!h->in_value) {
                h->h[h->n - 1].v_off = h->len;
                h->in_value = true;
        }
        memcpy(h->buf + h->len, at, len);
        h->len += len;
        h->h[h->n - 1].v_len += len;
        return 0;
}

static int on_message_complete_req(http_parser *p)
{
        struct conn *c = p->data;
        c->req_done = true;
        http_parser_pause(p, 1);
        return 0;
}

int http_resp_headers_complete(http_parser *p)
{
        struct conn *c = p->data;
        c->resp_interim = p->status_code >= 100 && p->status_code < 200;
        return c->req_is_head ? 1 : 0;
}

void http_resp_message_done(struct conn *c, http_parser *p)
{
        if (c->resp_interim)
                c->resp_interim = false;
        else {
                c->resp_done = true;
                if (!http_should_keep_alive(p))
                        c->keep_alive = false;
        }
}

static int on_message_complete_resp(http_parser *p)
{
        http_resp_message_done(p->data, p);
        return 0;
}

static const http_parser_settings req_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_message_complete = on_message_complete_req,
};

static const http_parser_settings resp_settings = {
    .on_headers_complete = http_resp_headers_complete,
    .on_message_complete = on_message_complete_resp,
};

static bool hdr_is(const struct head *h, size_t i, const char *name)
{
        return h->h[i].f_len == strlen(name) &&
               strncasecmp(h->buf + h->h[i].f_off, name, h->h[i].f_len) == 0;
}

/* Copies host[:port] text into name (without the port) and *port. -EINVAL for junk. */
static int split_host_port(const char *s, size_t len, char name[NET_POLICY_HOST_MAX + 1],
                           uint16_t *port)
{
        const char *colon = memchr(s, ':', len);
        size_t hl = colon ? (size_t)(colon - s) : len;
        if (hl == 0 || hl > NET_POLICY_HOST_MAX || (len && s[0] == '['))
                return -EINVAL;
        memcpy(name, s, hl);
        name[hl] = '\0';
        if (colon) { /* a port is checked even where it is not wanted ('a:80:b' is no Host) */
                unsigned long v = 0;
                size_t i = hl + 1;
                if (i >= len)
                        return -EINVAL;
                for (; i < len; i++) {
                        if (s[i] < '0' || s[i] > '9' ||
                            (v = v * 10 + (unsigned)(s[i] - '0')) > 65535)
                                return -EINVAL;
                }
                if (v == 0)
                        return -EINVAL;
                if (port)
                        *port = (uint16_t)v;
        }
        return 0;
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

/* Builds the request head for upstream into c->up: origin-form target, the client's headers
 * less the proxy's own, Host present. */
static bool build_upstream_head(struct conn *c, const char *path, size_t path_len, bool have_host)
{
        struct head *h = c->head;
        char line[64];
        int n;

#define PUT(p, l)                                                                                  \
        do {                                                                                       \
                if (!buf_put(&c->hbuf, (p), (l)))                                                  \
                        return false;                                                              \
        } while (0)
        PUT(c->method, strlen(c->method));
        PUT(" ", 1);
        PUT(path, path_len);
        n = snprintf(line, sizeof(line), " HTTP/%u.%u\r\n", c->req.http_major, c->req.http_minor);
        PUT(line, (size_t)n);
        if (!have_host) {
                PUT("Host: ", 6);
                PUT(c->host, strlen(c->host));
                if (c->port != 80) {
                        n = snprintf(line, sizeof(line), ":%u", c->port);
                        PUT(line, (size_t)n);
                }
                PUT("\r\n", 2);
        }
        for (size_t i = 0; i < h->n; i++) {
                if (hdr_is(h, i, "proxy-connection") || hdr_is(h, i, "proxy-authorization"))
                        continue;
                PUT(h->buf + h->h[i].f_off, h->h[i].f_len);
                PUT(": ", 2);
                PUT(h->buf + h->h[i].v_off, h->h[i].v_len);
                PUT("\r\n", 2);
        }
        PUT("\r\n", 2);
#undef PUT
        return true;
}

/* A complete request head is in c->head: find its destination and decide. */
static void http_request(struct conn *c)
{
        struct head *h = c->head;
        const char *url = h->buf + h->url_off;
        char hosthdr[NET_POLICY_HOST_MAX + 1] = "";
        const char *path = url;
        size_t path_len = h->url_len;
        bool have_host = false;
        struct http_parser_url u;
        uint16_t port = 0;

        snprintf(c->method, sizeof(c->method), "%s",
                 http_method_str((enum http_method)c->req.method));
        c->req_is_head = c->req.method == HTTP_HEAD;
        c->keep_alive = http_should_keep_alive(&c->req);
        c->upgrade = c->req.upgrade && c->req.method != HTTP_CONNECT;
        c->is_connect = false;
        c->host[0] = '\0';
        c->have_dst = false;
        for (size_t i = 0; i < h->n; i++)
                if (hdr_is(h, i, "host")) {
                        if (have_host || split_host_port(h->buf + h->h[i].v_off, h->h[i].v_len,
                                                         hosthdr, NULL) < 0) {
                                snprintf(c->dec.why, sizeof(c->dec.why), "bad Host header");
                                c->dec.action = NET_DENY;
                                conn_refuse(c, 400, "bad Host header");
                                return;
                        }
                        have_host = true;
                }
        c->scan_carry_len = 0;
        if (c->mitm) {
                mitm_request(c, have_host, hosthdr);
                return;
        }

        if (c->req.method == HTTP_CONNECT) {
                c->kind = "connect";
                c->is_connect = true;
                c->method[0] = '\0';
                if (!c->explicit_proxy || split_host_port(url, h->url_len, c->host, &port) < 0 ||
                    port == 0) {
                        c->port = port;
                        conn_deny_reason(c, 400, "bad CONNECT target");
                        return;
                }
                c->port = port;
                c->hs = H_WAIT;
                resolve_and_connect(c);
                return;
        }

        c->kind = "http";
        c->port = c->explicit_proxy ? 80 : ntohs(c->orig.sin_port);
        if (http_parser_parse_url(url, h->url_len, 0, &u) == 0 && (u.field_set & (1 << UF_HOST))) {
                /* absolute-URI: http only, no userinfo ('http://allowed@evil/') */
                if (!(u.field_set & (1 << UF_SCHEMA)) || u.field_data[UF_SCHEMA].len != 4 ||
                    strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0 ||
                    (u.field_set & (1 << UF_USERINFO)) ||
                    u.field_data[UF_HOST].len > NET_POLICY_HOST_MAX) {
                        conn_deny_reason(c, 400, "only http:// URLs without userinfo");
                        return;
                }
                memcpy(c->host, url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
                c->host[u.field_data[UF_HOST].len] = '\0';
                if (u.field_set & (1 << UF_PORT))
                        c->port = u.port;
                if (u.field_set & (1 << UF_PATH)) {
                        path = url + u.field_data[UF_PATH].off;
                        path_len = h->url_len - u.field_data[UF_PATH].off;
                        if (u.field_set & (1 << UF_FRAGMENT))
                                path_len =
                                    u.field_data[UF_FRAGMENT].off - 1 - u.field_data[UF_PATH].off;
                } else {
                        path = "/";
                        path_len = 1;
                }
                if (have_host && !same_host(hosthdr, c->host)) {
                        /* fronting: the Host a server routes by must be the decided one */
                        conn_deny_reason(c, 403, "Host header '%.100s' is not the URL's host",
                                         hosthdr);
                        return;
                }
        } else if (c->explicit_proxy) {
                conn_deny_reason(c, 400,
                                 "a proxy request needs an absolute http:// URL or CONNECT");
                return;
        } else if (have_host) {
                snprintf(c->host, sizeof(c->host), "%s", hosthdr);
        } else {
                const char *t = table_name_for(c->sb, c->orig.sin_addr, NULL);
                snprintf(c->host, sizeof(c->host), "%s", t ? t : "");
        }
        if (!c->explicit_proxy) {
                /* transparent: the connection's own address decides when the name is ours */
                if (c->host[0] && table_name_for(c->sb, c->orig.sin_addr, c->host)) {
                        c->dst = c->orig.sin_addr;
                        c->have_dst = true;
                }
        }
        if (mitm_check_plain(c) < 0)
                return;
        buf_free(&c->hbuf);
        if (!build_upstream_head(c, path, path_len, have_host)) {
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why), "request head too large");
                conn_refuse(c, 431, c->dec.why);
                return;
        }
        c->hs = H_WAIT;
        if (c->have_dst && c->host[0] && !c->explicit_proxy) {
                if (net_policy_decide(c->sb->policy, c->host, NULL, c->port, c->method, &c->dec) !=
                    NET_ALLOW) {
                        conn_deny(c);
                        return;
                }
                decide_and_connect(c);
        } else if (!c->host[0]) {
                c->dst = c->orig.sin_addr;
                c->have_dst = true;
                decide_and_connect(c);
        } else {
                resolve_and_connect(c);
        }
}

/* Ends a request/response exchange; the next request may follow on the connection. */
static void http_exchange_done(struct conn *c)
{
        conn_log(c);
        c->req_done = c->resp_done = false;
        c->hs = H_HEAD;
        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        if (!c->keep_alive) {
                c->mode = CM_CLOSING;
                return;
        }
        http_parser_pause(&c->req, 0);
}

/* Moves client bytes through the request parser. */
void http_process(struct conn *c)
{
        for (;;) {
                size_t len = buf_len(&c->cin), n;
                const char *data = (const char *)c->cin.d + c->cin.start;
                enum http_errno e;

                if (c->mode != CM_HTTP)
                        return;
                if (c->hs == H_PENDING && c->resp_done) {
                        http_exchange_done(c);
                        continue;
                }
                if (c->hs == H_HEAD) {
                        const char *end;
                        /* the next request waits until the last response is out: a refusal
                         * then replaces nothing, and a slow reader slows its own requests */
                        if (len == 0 || buf_len(&c->down))
                                return;
                        end = memmem(data, len, "\r\n\r\n", 4);
                        if (!end) {
                                if (len >= HEAD_MAX) {
                                        c->dec = (struct net_decision){.action = NET_DENY};
                                        conn_refuse(c, 431, "request head too large");
                                }
                                /* slow-loris: the head must be complete by the deadline */
                                c->deadline =
                                    MIN(c->deadline, W.now + (int64_t)W.o->header_timeout_ms);
                                return;
                        }
                        size_t hl = (size_t)(end - data) + 4;
                        /* the head's store lives only while requests are parsed: a tunnel
                         * holds none */
                        if (!c->head && !(c->head = malloc(sizeof(*c->head)))) {
                                conn_close(c);
                                return;
                        }
                        c->head->len = c->head->n = c->head->url_len = 0;
                        c->head->in_value = c->head->too_many = false;
                        c->req_done = false;
                        n = http_parser_execute(&c->req, &req_settings, data, hl);
                        e = HTTP_PARSER_ERRNO(&c->req);
                        if ((e != HPE_OK && e != HPE_PAUSED) || (n != hl && !c->req.upgrade)) {
                                c->dec = (struct net_decision){.action = NET_DENY};
                                conn_refuse(c, 400, http_errno_description(e));
                                return;
                        }
                        buf_consume(&c->cin, hl);
                        c->bytes_out += hl;
                        http_request(c);
                        if (c->mode != CM_HTTP || c->hs == H_WAIT)
                                return;
                        continue;
                }
                if (c->hs == H_BODY && c->mb) {
                        /* a body whose placeholders are substituted: whole, then sent */
                        if (mitm_body_step(c) < 0 || c->mode != CM_HTTP || c->hs != H_PENDING)
                                return;
                        continue;
                }
                if (c->hs == H_BODY) {
                        size_t room = buf_room(&c->up);
                        if (c->req_done) {
                                c->hs = H_PENDING;
                                continue;
                        }
                        if (len == 0 || room == 0)
                                return;
                        len = MIN(len, room);
                        n = http_parser_execute(&c->req, &req_settings, data, len);
                        e = HTTP_PARSER_ERRNO(&c->req);
                        if (e != HPE_OK && e != HPE_PAUSED) {
                                c->keep_alive = false;
                                conn_close(c);
                                return;
                        }
                        if (mitm_scan_body(c, (const uint8_t *)data, n) < 0)
                                return;
                        (void)buf_put(&c->up, data, n);
                        c->bytes_out += n;
                        buf_consume(&c->cin, n);
                        continue;
                }
                return; /* H_WAIT, or H_PENDING without its response yet */
        }
}

void http_response(struct conn *c, size_t before)
{
        size_t got = buf_len(&c->down) - before;
        const char *data = (const char *)c->down.d + c->down.start + before;
        if (got) {
                size_t k = http_parser_execute(&c->resp, &resp_settings, data, got);
                if (k != got || HTTP_PARSER_ERRNO(&c->resp) != HPE_OK)
                        c->keep_alive = false;
        }
        if (c->up_eof) {
                http_parser_execute(&c->resp, &resp_settings, NULL, 0);
                c->keep_alive = false;
                c->resp_done = true;
        }
        http_process(c);
}

/* CONNECT: the first client bytes of the tunnel, when TLS, must name the CONNECT's host. */
/* Plain HTTP inside a CONNECT tunnel: its first request's one Host header must name the CONNECT
 * host (fronting at the HTTP layer otherwise: 'CONNECT allowed:80', then 'Host: denied'). 1 when
 * it does, 0 when it does not, -EAGAIN while the head is incomplete. Later requests on the same
 * tunnel are not parsed (docs/network.md, "What is and is not covered"). */
static int tunnel_http_host_ok(const struct conn *c)
{
        const char *d = (const char *)c->cin.d + c->cin.start;
        size_t len = buf_len(&c->cin), n = 0;
        const char *end = memmem(d, len, "\r\n\r\n", 4), *host = NULL;
        char name[NET_POLICY_HOST_MAX + 1];

        if (!end)
                return len < SNIFF_MAX ? -EAGAIN : 0;
        for (const char *l = memchr(d, '\n', (size_t)(end - d)); l && l < end;
             l = memchr(l + 1, '\n', (size_t)(end - l))) {
                if ((size_t)(end - l) > 6 && !strncasecmp(l + 1, "host:", 5)) {
                        host = l + 6;
                        n++;
                }
        }
        if (n != 1)
                return 0;
        while (*host == ' ' || *host == '\t')
                host++;
        len = strcspn(host, "\r\n");
        while (len && (host[len - 1] == ' ' || host[len - 1] == '\t'))
                len--;
        return split_host_port(host, len, name, NULL) == 0 && same_host(name, c->host);
}

static bool connect_sni_ok(struct conn *c, bool *wait)
{
        char sni[SNIFF_NAME_MAX + 1];
        int r = sniff_tls_sni(c->cin.d + c->cin.start, buf_len(&c->cin), sni);

        *wait = r == -EAGAIN && buf_len(&c->cin) < SNIFF_MAX;
        if (r == -EINVAL) {
                int hs = sniff_http(c->cin.d + c->cin.start, buf_len(&c->cin));
                *wait = hs == -EAGAIN && buf_len(&c->cin) < SNIFF_MAX;
                if (hs != 1)
                        return true; /* not HTTP (or not yet known): bytes of their own */
        }
        if (r == -EINVAL) {
                int h = tunnel_http_host_ok(c);
                *wait = h == -EAGAIN;
                if (h != 0)
                        return true;
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why),
                         "an HTTP request inside the tunnel names another host than the "
                         "CONNECT host");
                return false;
        }
        if (*wait || r != 1)
                return true;
        if (inet_pton(AF_INET, c->host, &(struct in_addr){0}) == 1) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = c->dst};
                struct net_decision d;
                if (net_policy_decide(c->sb->policy, sni, (struct sockaddr *)&sa, c->port, NULL,
                                      &d) == NET_ALLOW)
                        return true;
        } else if (same_host(sni, c->host)) {
                return true;
        }
        c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
        snprintf(c->dec.why, sizeof(c->dec.why), "TLS server name '%.100s' is not the CONNECT host",
                 sni);
        return false;
}

/* CONNECT: checks the tunnel's first client bytes once they say enough, then lets them (and
 * the rest) through. false when the connection was cut. */
bool connect_sni_step(struct conn *c)
{
        bool wait;

        if (!buf_len(&c->cin)) {
                if (c->cin_eof)
                        c->sni_check = false;
                return true;
        }
        if (!connect_sni_ok(c, &wait)) {
                conn_decided(c);
                c->rst = true;
                conn_close(c);
                return false;
        }
        if (!wait || c->cin_eof) {
                c->sni_check = false;
                /* plain HTTP in a tunnel (not intercepted): its first request, which the proxy
                 * reads anyway, may not carry a placeholder */
                if (c->sb->n_grants && sniff_http(c->cin.d + c->cin.start, buf_len(&c->cin)) == 1 &&
                    mitm_scan_body(c, c->cin.d + c->cin.start, buf_len(&c->cin)) < 0)
                        return false;
                c->bytes_out += buf_len(&c->cin);
                (void)buf_put(&c->up, c->cin.d + c->cin.start, buf_len(&c->cin));
                buf_free(&c->cin);
        }
        return true;
}
