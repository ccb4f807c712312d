// SPDX-License-Identifier: Apache-2.0
/*
 * A connection's destination: found (a transparent connection's first bytes: TLS SNI, an HTTP
 * request, else the DNS table or the address), decided, resolved by the proxy's own means (the
 * policy's hosts, the DNS table, c-ares) and decided again with the address, then connected
 * upstream; and what starts once it is (a tunnel, or the request sent on). Must never connect to
 * an address no decision allowed, or follow the sandbox's choice of address for a name the
 * proxy did not give it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/macro.h"
#include "worker-private.h"

/* Transparent: the first bytes are in c->cin (or none came): find the destination. */
void sniff_decide(struct conn *c, bool timed_out)
{
        if (c->sniffed)
                return;
        const uint8_t *d = c->cin.d ? c->cin.d + c->cin.start : NULL;
        size_t len = buf_len(&c->cin);
        char sni[SNIFF_NAME_MAX + 1];
        const char *t;
        int r = -EINVAL;

        if (len) {
                r = sniff_http(d, len);
                if (r == 1) {
                        c->sniffed = true;
                        c->mode = CM_HTTP;
                        c->hs = H_HEAD;
                        http_process(c);
                        return;
                }
                if (r == -EAGAIN && !timed_out && len < SNIFF_MAX)
                        return;
                r = sniff_tls_sni(d, len, sni);
                if (r == -EAGAIN && !timed_out && len < SNIFF_MAX)
                        return;
        } else if (!timed_out) {
                return;
        }
        c->sniffed = true;
        c->port = ntohs(c->orig.sin_port);
        c->method[0] = '\0';
        if (r == 1) {
                c->kind = "tls";
                snprintf(c->host, sizeof(c->host), "%s", sni);
                if (table_has_addr(c->sb, c->orig.sin_addr)) {
                        if (!table_name_for(c->sb, c->orig.sin_addr, sni)) {
                                /* fronting: the name this address was resolved for is not the
                                 * name inside */
                                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                                snprintf(c->dec.why, sizeof(c->dec.why),
                                         "TLS server name is not the name this address was "
                                         "resolved for");
                                conn_decided(c);
                                c->rst = true;
                                conn_close(c);
                                return;
                        }
                        c->dst = c->orig.sin_addr;
                        c->have_dst = true;
                        decide_and_connect(c);
                        return;
                }
                resolve_and_connect(c);
                return;
        }
        c->kind = r == 0 ? "tls" : "tcp";
        t = table_name_for(c->sb, c->orig.sin_addr, NULL);
        snprintf(c->host, sizeof(c->host), "%s", t ? t : "");
        c->dst = c->orig.sin_addr;
        c->have_dst = true;
        decide_and_connect(c);
}

/* Starts connecting upstream to c->dst:c->port. */
static void upstream_connect(struct conn *c)
{
        struct sockaddr_in sa = {
            .sin_family = AF_INET, .sin_port = htons(c->port), .sin_addr = c->dst};
        int one = 1;

        if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && c->up_port == c->port &&
            !c->is_connect && !c->upgrade && streq(c->up_host, c->host[0] ? c->host : "?")) {
                dest_decided(c);
                return;
        }
        upstream_close(c);
        c->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->ufd < 0) {
                conn_refuse(c, 502, "no socket");
                return;
        }
        (void)setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->ufd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
                char why[128];
                snprintf(why, sizeof(why), "cannot connect: %s", strerror(errno));
                conn_refuse(c, 502, why);
                return;
        }
        snprintf(c->up_host, sizeof(c->up_host), "%s", c->host[0] ? c->host : "?");
        c->up_port = c->port;
        c->connecting = true;
        c->deadline = W.now + (int64_t)W.o->connect_timeout_ms;
        conn_update(c);
}

/* Decides c's destination with its resolved address and connects, or refuses. */
void decide_and_connect(struct conn *c)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = c->dst};
        net_policy_decide(c->sb->policy, c->host[0] ? c->host : NULL, (struct sockaddr *)&sa,
                          c->port, c->method[0] ? c->method : NULL, &c->dec);
        if (c->dec.action != NET_ALLOW) {
                conn_deny(c);
                return;
        }
        conn_decided(c);
        upstream_connect(c);
}

void conn_resolved(struct conn *c, const struct in_addr *addrs, size_t n, int status)
{
        struct net_decision first = {0};
        if (n == 0) {
                conn_deny_reason(c, 502, "cannot resolve: %s", ares_strerror(status));
                return;
        }
        /* the first address the policy allows (a name resolving into private space is not
         * followed there) */
        for (size_t i = 0; i < n; i++) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addrs[i]};
                struct net_decision d;
                if (net_policy_decide(c->sb->policy, c->host, (struct sockaddr *)&sa, c->port,
                                      c->method[0] ? c->method : NULL, &d) == NET_ALLOW) {
                        c->dst = addrs[i];
                        c->have_dst = true;
                        decide_and_connect(c);
                        return;
                }
                if (i == 0)
                        first = d;
        }
        c->dst = addrs[0];
        c->have_dst = true;
        c->dec = first;
        conn_deny(c);
}

/* The destination is named (c->host) or an address (c->dst): decide before resolving, then
 * resolve by our own means (the policy's hosts, our earlier answers, c-ares). */
void resolve_and_connect(struct conn *c)
{
        struct in_addr a;
        struct lookup *l;

        if (!c->host[0]) {
                decide_and_connect(c);
                return;
        }
        if (net_policy_decide(c->sb->policy, c->host, NULL, c->port,
                              c->method[0] ? c->method : NULL, &c->dec) != NET_ALLOW) {
                conn_deny(c);
                return;
        }
        if (inet_pton(AF_INET, c->host, &a) == 1 ||
            net_policy_static_host(c->sb->policy, c->host, &a) ||
            table_lookup(c->sb, c->host, &a)) {
                c->dst = a;
                c->have_dst = true;
                decide_and_connect(c);
                return;
        }
        l = lookup_new(c->sb, c->host);
        if (!l) {
                conn_refuse(c, 502, "too many resolutions in flight");
                return;
        }
        l->c = c;
        c->lookup = l;
        c->deadline = W.now + (int64_t)W.o->connect_timeout_ms;
        conn_update(c);
        ares_start(l);
}

/* The upstream for the current destination is connected (or reused). */
void dest_decided(struct conn *c)
{
        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        if (c->mode == CM_SNIFF || c->is_connect || c->upgrade) {
                free(c->head); /* no more request heads on this connection */
                c->head = NULL;
        }
        if (c->mode == CM_SNIFF && streq(c->kind, "tls") && !c->mitm && mitm_wanted(c)) {
                /* transparent TLS to a bound host: intercepted (the SNI named it) */
                if (mitm_intercept(c, false))
                        conn_update(c);
                return;
        }
        if (c->is_connect && !c->mitm && mitm_wanted(c)) {
                if (mitm_intercept(c, true))
                        conn_update(c);
                return;
        }
        if (c->mode == CM_SNIFF) {
                /* transparent TLS or TCP: what the client sent goes first */
                c->mode = CM_TUNNEL;
                if (buf_len(&c->cin)) {
                        (void)buf_put(&c->up, c->cin.d + c->cin.start, buf_len(&c->cin));
                        c->bytes_out += buf_len(&c->cin);
                        buf_free(&c->cin);
                }
        } else if (c->is_connect) {
                static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
                (void)buf_put(&c->down, ok, sizeof(ok) - 1);
                c->mode = CM_TUNNEL;
                c->sni_check = true;
                /* a client that sent its ClientHello with the CONNECT sends nothing more */
                if (!connect_sni_step(c))
                        return;
        } else if (c->upgrade) {
                /* WebSocket and other upgrades: the head, then bytes both ways */
                (void)buf_put(&c->up, c->hbuf.d + c->hbuf.start, buf_len(&c->hbuf));
                buf_free(&c->hbuf);
                c->mode = CM_TUNNEL; /* what followed the head in cin: conn_update moves it */
        } else {
                /* (a body to substitute holds its head back: mitm.c sends both) */
                if (buf_len(&c->hbuf))
                        (void)buf_put(&c->up, c->hbuf.d + c->hbuf.start, buf_len(&c->hbuf));
                buf_free(&c->hbuf);
                c->hs = c->req_done && !c->mb ? H_PENDING : H_BODY;
                c->resp_done = false;
                c->resp_interim = false;
                http_parser_init(&c->resp, HTTP_RESPONSE);
                c->resp.data = c;
        }
        conn_update(c);
        if (c->mode == CM_HTTP)
                http_process(c);
}
