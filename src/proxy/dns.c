// SPDX-License-Identifier: Apache-2.0
/*
 * DNS: the responder on a sandbox's 127.0.0.1:15053 (UDP and TCP), and the per-sandbox table of
 * what it told the sandbox (address -> name), which transparent connections are named and
 * checked by. A name the policy refuses gets NXDOMAIN and is never asked upstream; types other
 * than A and AAAA are refused (DNS tunnelling); AAAA gets an empty answer (no IPv6 route); A
 * answers carry only addresses the policy allows. Must never send a sandbox's question upstream
 * before the policy allowed its name.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/macro.h"
#include "worker-private.h"

#define DNS_TTL 60     /* of the answers the responder gives */
#define DNS_TCP_MAX 64 /* TCP DNS connections per sandbox */

void table_add(struct sandbox *sb, const char *name, struct in_addr a, uint32_t ttl)
{
        struct table_entry *e = NULL;
        if (ttl > TABLE_MAX_TTL_S)
                ttl = TABLE_MAX_TTL_S;
        if (ttl < TABLE_MIN_TTL_S)
                ttl = TABLE_MIN_TTL_S;
        for (size_t i = 0; i < TABLE_SIZE; i++)
                if (sb->table[i].addr.s_addr == a.s_addr && streq(sb->table[i].name, name)) {
                        e = &sb->table[i];
                        break;
                }
        if (!e) {
                e = &sb->table[sb->table_next];
                sb->table_next = (sb->table_next + 1) % TABLE_SIZE;
        }
        e->addr = a;
        e->expires_ms = W.now + (int64_t)ttl * 1000;
        snprintf(e->name, sizeof(e->name), "%s", name);
}

/* Is name one the sandbox was told a is for (or, with name NULL, the first such name)? */
const char *table_name_for(struct sandbox *sb, struct in_addr a, const char *name)
{
        for (size_t i = 0; i < TABLE_SIZE; i++) {
                struct table_entry *e = &sb->table[i];
                if (e->name[0] && e->addr.s_addr == a.s_addr &&
                    (!name || strcasecmp(e->name, name) == 0))
                        return e->name;
        }
        return NULL;
}

bool table_has_addr(struct sandbox *sb, struct in_addr a)
{
        return table_name_for(sb, a, NULL) != NULL;
}

/* A fresh cached address of name. */
bool table_lookup(struct sandbox *sb, const char *name, struct in_addr *ret)
{
        for (size_t i = 0; i < TABLE_SIZE; i++) {
                struct table_entry *e = &sb->table[i];
                if (e->name[0] && e->expires_ms > W.now && strcasecmp(e->name, name) == 0) {
                        *ret = e->addr;
                        return true;
                }
        }
        return false;
}

static void dns_send(struct sandbox *sb, int udp_fd, const struct sockaddr_storage *from,
                     socklen_t from_len, struct dns_conn *dc, const uint8_t *reply, size_t len)
{
        if (dc) {
                uint8_t frame[2 + DNS_MSG_MAX];
                frame[0] = (uint8_t)(len >> 8);
                frame[1] = (uint8_t)len;
                memcpy(frame + 2, reply, len);
                (void)send(dc->fd, frame, len + 2, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
                (void)sendto(udp_fd, reply, len, MSG_DONTWAIT, (const struct sockaddr *)from,
                             from_len);
        }
        (void)sb;
}

void dns_reply(struct lookup *l, int rcode, const struct in_addr *addrs, size_t n)
{
        uint8_t out[DNS_MSG_MAX];
        size_t len = dns_build_reply(l->query, &l->q, rcode, addrs, n, DNS_TTL, out);
        struct net_decision d = {.action = rcode == DNS_RCODE_NOERROR ? NET_ALLOW : NET_DENY};

        if (l->dc || !l->for_dns || l->udp_fd >= 0)
                dns_send(l->sb, l->udp_fd, &l->from, l->from_len, l->dc, out, len);
        if (rcode == DNS_RCODE_NOERROR)
                snprintf(d.why, sizeof(d.why), "%zu address%s", n, n == 1 ? "" : "es");
        else
                snprintf(d.why, sizeof(d.why), "upstream: %s",
                         rcode == DNS_RCODE_NXDOMAIN ? "no such name" : "resolution failed");
        log_decision(l->sb, "dns", l->name, n ? &addrs[0] : NULL, 53, NULL, &d, 0, 0);
}

/* Answers or starts answering one query from a sandbox. */
static void dns_query(struct sandbox *sb, const uint8_t *msg, size_t len, int udp_fd,
                      const struct sockaddr_storage *from, socklen_t from_len, struct dns_conn *dc)
{
        struct dns_question q;
        uint8_t out[DNS_MSG_MAX];
        struct net_decision d;
        struct in_addr a;
        int rc;

        sb->st.dns_queries++;
        rc = dns_parse_query(msg, len, &q);
        if (rc == -EINVAL && len < 12)
                return;
        if (rc < 0) {
                q.question_end = 0;
                len =
                    dns_build_reply(msg, &q, rc == -ENOTSUP ? DNS_RCODE_NOTIMP : DNS_RCODE_FORMERR,
                                    NULL, 0, 0, out);
                sb->st.dns_denied++;
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        if (q.qclass != DNS_CLASS_IN || (q.qtype != DNS_TYPE_A && q.qtype != DNS_TYPE_AAAA)) {
                /* TXT, MX, ANY, ...: refused, never asked upstream (DNS tunnelling) */
                d = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(d.why, sizeof(d.why), "query type %u refused", q.qtype);
                sb->st.dns_denied++;
                log_decision(sb, "dns", q.name, NULL, 53, NULL, &d, 0, 0);
                len = dns_build_reply(msg, &q, DNS_RCODE_REFUSED, NULL, 0, 0, out);
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        if (net_policy_decide(sb->policy, q.name, NULL, 0, NULL, &d) != NET_ALLOW) {
                sb->st.dns_denied++;
                log_decision(sb, "dns", q.name, NULL, 53, NULL, &d, 0, 0);
                len = dns_build_reply(msg, &q, DNS_RCODE_NXDOMAIN, NULL, 0, 0, out);
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        if (q.qtype == DNS_TYPE_AAAA) {
                /* no IPv6 route: an empty answer, so clients use A */
                len = dns_build_reply(msg, &q, DNS_RCODE_NOERROR, NULL, 0, 0, out);
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        if (net_policy_static_host(sb->policy, q.name, &a)) {
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = a};
                if (net_policy_decide(sb->policy, q.name, (struct sockaddr *)&sa, 0, NULL, &d) ==
                    NET_ALLOW) {
                        table_add(sb, q.name, a, TABLE_MAX_TTL_S);
                        len = dns_build_reply(msg, &q, DNS_RCODE_NOERROR, &a, 1, DNS_TTL, out);
                } else {
                        len = dns_build_reply(msg, &q, DNS_RCODE_NXDOMAIN, NULL, 0, 0, out);
                }
                log_decision(sb, "dns", q.name, &a, 53, NULL, &d, 0, 0);
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        struct lookup *l = lookup_new(sb, q.name);
        if (!l) {
                len = dns_build_reply(msg, &q, DNS_RCODE_SERVFAIL, NULL, 0, 0, out);
                dns_send(sb, udp_fd, from, from_len, dc, out, len);
                return;
        }
        l->for_dns = true;
        l->dc = dc;
        l->udp_fd = dc ? -1 : udp_fd;
        if (from)
                memcpy(&l->from, from, from_len);
        l->from_len = from_len;
        l->q = q;
        memcpy(l->query, msg, MIN(len, sizeof(l->query)));
        l->query_len = len;
        if (l->q.question_end > sizeof(l->query))
                l->q.question_end = 0;
        ares_start(l);
}

void dns_udp_readable(struct sandbox *sb)
{
        for (int i = 0; i < 64; i++) {
                uint8_t msg[DNS_MSG_MAX];
                struct sockaddr_storage from;
                socklen_t from_len = sizeof(from);
                ssize_t n = recvfrom(sb->udp_fd, msg, sizeof(msg), MSG_DONTWAIT,
                                     (struct sockaddr *)&from, &from_len);
                if (n < 0)
                        return;
                dns_query(sb, msg, (size_t)n, sb->udp_fd, &from, from_len, NULL);
        }
}

void dns_conn_close(struct dns_conn *dc)
{
        for (struct lookup *l = W.lookups; l; l = l->next)
                if (l->dc == dc) {
                        l->dc = NULL;
                        l->udp_fd = -1;
                }
        uint32_t m = EPOLLIN;
        ep_set(dc->fd, &dc->ev, &m, 0);
        close(dc->fd);
        dc->sb->dns_tcp_open--;
        LIST_UNLINK(W.dns_conns, dc);
        free(dc);
}

void dns_tcp_accept(struct sandbox *sb)
{
        for (int i = 0; i < 16; i++) {
                int fd = accept4(sb->dnstcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct dns_conn *dc;
                uint32_t m = 0;
                if (fd < 0)
                        return;
                if (sb->dns_tcp_open >= DNS_TCP_MAX || !(dc = calloc(1, sizeof(*dc)))) {
                        close(fd);
                        continue;
                }
                dc->ev.kind = EVK_DNS_TCP;
                dc->sb = sb;
                dc->fd = fd;
                dc->deadline = W.now + (int64_t)W.o->header_timeout_ms;
                LIST_PUSH(W.dns_conns, dc);
                sb->dns_tcp_open++;
                ep_set(fd, &dc->ev, &m, EPOLLIN);
        }
}

void dns_tcp_readable(struct dns_conn *dc)
{
        ssize_t n = read(dc->fd, dc->in + dc->in_len, sizeof(dc->in) - dc->in_len);
        if (n <= 0) {
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        dns_conn_close(dc);
                return;
        }
        dc->in_len += (size_t)n;
        dc->deadline = W.now + (int64_t)W.o->header_timeout_ms;
        while (dc->in_len >= 2) {
                size_t mlen = (size_t)dc->in[0] << 8 | dc->in[1];
                if (mlen > DNS_MSG_MAX || mlen < 12) {
                        dns_conn_close(dc);
                        return;
                }
                if (dc->in_len < mlen + 2)
                        return;
                dns_query(dc->sb, dc->in + 2, mlen, -1, NULL, 0, dc);
                memmove(dc->in, dc->in + 2 + mlen, dc->in_len - 2 - mlen);
                dc->in_len -= 2 + mlen;
        }
}
