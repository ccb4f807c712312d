// SPDX-License-Identifier: Apache-2.0
/*
 * The proxy's worker (proxy.h): one epoll loop, nonblocking sockets, no thread per connection.
 * Everything a sandbox sends is parsed here: HTTP/1.1 requests to the explicit proxy
 * (absolute-URI, CONNECT, keep-alive with a decision per request, Upgrade then a tunnel),
 * transparent connections (TLS SNI, HTTP Host, the per-sandbox DNS table, else the address),
 * and DNS questions. Upstream is reached only by sockets made here, to addresses resolved here
 * (never the sandbox's choice for a named destination).
 *
 * Memory is bounded: two buffers of BUF_SIZE per connection and direction at most, allocated
 * while data is in flight and freed when drained (an idle tunnel holds none); a side is not read
 * while the buffer towards the other side is full (backpressure). Connections are limited per
 * sandbox and in all; a request head and a transparent first packet must arrive within the
 * header timeout (slow-loris), an idle connection is closed after the idle timeout.
 *
 * Must never: connect to an address no decision allowed, block on a sandbox's socket, or write
 * to a sandbox's log past its cap.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <ifaddrs.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/audit.h"
#include "proxy.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-policy.h"
#include "sniff.h"

#define BUF_SIZE (32 * 1024)  /* per direction and connection, while data is in flight */
#define HEAD_MAX (16 * 1024)  /* a request head */
#define SNIFF_MAX (16 * 1024) /* a transparent connection's first bytes */
#define SNIFF_WAIT_MS 300     /* then it is a server-speaks-first protocol: raw TCP */
#define MAX_HEADERS 100
#define TABLE_SIZE 1024 /* DNS answers remembered per sandbox (address -> name) */
#define TABLE_MIN_TTL_S 60
#define TABLE_MAX_TTL_S 3600
#define DNS_TTL 60
#define MAX_ARES_SOCKS 16
#define LOG_CAP (64ull << 20) /* decision log bytes per sandbox */
#define AUDIT_PER_SEC 10      /* denials audited per sandbox and second (the rest counted) */
#define SWEEP_MS 100
#define DNS_TCP_MAX 64 /* TCP DNS connections per sandbox */

enum evk {
        EVK_CTL,
        EVK_LISTEN,
        EVK_DNS_UDP,
        EVK_DNS_LISTEN,
        EVK_DNS_TCP,
        EVK_CLIENT,
        EVK_UPSTREAM,
        EVK_ARES,
};

struct ev {
        enum evk kind;
};

struct buf {
        uint8_t *d;
        size_t start, end;
};

struct table_entry {
        struct in_addr addr;
        int64_t expires_ms;
        char name[NET_POLICY_HOST_MAX + 1];
};

struct stats {
        uint64_t open, total, allowed, denied, bytes_out, bytes_in, dns_queries, dns_denied;
};

struct sandbox;

struct ares_sock {
        struct ev ev;
        struct sandbox *sb;
        int fd;
        uint32_t events;
};

struct sandbox {
        struct ev lev, uev, tev;
        struct sandbox *next;
        char name[PROXY_NAME_MAX + 1];
        char uuid[64];
        struct net_policy *policy;
        int tcp_fd, udp_fd, dnstcp_fd, log_fd;
        ares_channel ares;
        bool ares_ok;
        struct ares_sock asocks[MAX_ARES_SOCKS];
        struct table_entry *table;
        size_t table_next;
        struct stats st;
        uint64_t log_bytes, log_drops, audit_drops;
        int64_t audit_second;
        unsigned audit_count;
        unsigned dns_tcp_open;
};

struct head {
        char buf[HEAD_MAX];
        size_t len;
        size_t url_off, url_len;
        struct {
                size_t f_off, f_len, v_off, v_len;
        } h[MAX_HEADERS];
        size_t n;
        bool in_value, too_many;
};

enum cmode {
        CM_SNIFF,   /* transparent: waiting for the first bytes */
        CM_HTTP,    /* requests, one decision each */
        CM_TUNNEL,  /* bytes both ways */
        CM_CLOSING, /* a reply (403, 502) is being flushed, then close */
};

enum hstate {
        H_HEAD,    /* reading a request head */
        H_WAIT,    /* deciding, resolving or connecting for it */
        H_BODY,    /* forwarding its body */
        H_PENDING, /* request sent, response not complete */
};

struct lookup;

struct conn {
        struct ev cev, uev;
        struct conn *prev, *next;
        struct sandbox *sb;
        int cfd, ufd;
        uint32_t cmask, umask;
        enum cmode mode;
        enum hstate hs;
        bool explicit_proxy, connecting, upstream_ok, cin_eof, up_eof, c_shut, u_shut;
        bool sni_check, is_connect, upgrade, req_done, resp_done, resp_interim, req_is_head;
        bool keep_alive, log_pending, rst, sniffed, closed;
        struct sockaddr_in orig;
        struct buf cin, up, down;
        struct buf hbuf; /* the next request head for upstream */
        http_parser req, resp;
        struct head *head;
        char host[NET_POLICY_HOST_MAX + 1]; /* the destination's name ("" when none) */
        uint16_t port;
        char method[NET_POLICY_METHOD_MAX + 1];
        struct in_addr dst;
        bool have_dst;
        char up_host[NET_POLICY_HOST_MAX + 1]; /* what ufd is connected to */
        uint16_t up_port;
        const char *kind; /* "http", "connect", "tls", "tcp" */
        struct net_decision dec;
        struct lookup *lookup;
        uint64_t bytes_out, bytes_in; /* since the last log line */
        int64_t deadline, sniff_until;
};

struct dns_conn {
        struct ev ev;
        struct dns_conn *prev, *next;
        struct sandbox *sb;
        int fd;
        uint8_t in[2 + DNS_MSG_MAX];
        size_t in_len;
        int64_t deadline;
};

/* A pending upstream resolution: for a connection, or for a DNS question of a sandbox (answered
 * over UDP to from, or over a TCP DNS connection). */
struct lookup {
        struct lookup *prev, *next;
        struct sandbox *sb;
        struct conn *c;
        struct dns_conn *dc;
        bool for_dns;
        int udp_fd;
        struct sockaddr_storage from;
        socklen_t from_len;
        struct dns_question q;
        uint8_t query[DNS_MSG_MAX];
        size_t query_len;
        char name[NET_POLICY_HOST_MAX + 1];
};

static struct {
        const struct proxy_opts *o;
        int ep, ctl_fd;
        struct ev ctl_ev;
        struct sandbox *sandboxes;
        struct conn *conns;
        struct conn *dead; /* closed in this batch, freed after it */
        struct dns_conn *dns_conns;
        struct lookup *lookups;
        unsigned open;
        struct in_addr host_addrs[NET_POLICY_MAX_HOST_ADDRS];
        size_t n_host_addrs;
        int64_t now;
        bool quit;
} W;

static void conn_update(struct conn *c);
static void conn_close(struct conn *c);
static void http_process(struct conn *c);
static void dest_decided(struct conn *c);

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- buffers ---- */

static size_t buf_len(const struct buf *b)
{
        return b->end - b->start;
}

static size_t buf_room(const struct buf *b)
{
        return BUF_SIZE - buf_len(b);
}

/* Where up to *room bytes may be written (NULL on OOM). */
static uint8_t *buf_tail(struct buf *b, size_t *room)
{
        if (!b->d) {
                b->d = malloc(BUF_SIZE);
                if (!b->d)
                        return NULL;
                b->start = b->end = 0;
        }
        if (b->start > 0 && b->end == BUF_SIZE) {
                memmove(b->d, b->d + b->start, buf_len(b));
                b->end -= b->start;
                b->start = 0;
        }
        *room = BUF_SIZE - b->end;
        return b->d + b->end;
}

static void buf_consume(struct buf *b, size_t n)
{
        b->start += n;
        if (b->start >= b->end) {
                free(b->d);
                *b = (struct buf){0};
        }
}

static bool buf_put(struct buf *b, const void *data, size_t n)
{
        size_t room;
        uint8_t *t;
        if (buf_room(b) < n)
                return false;
        t = buf_tail(b, &room);
        if (!t)
                return false;
        if (room < n) {
                memmove(b->d, b->d + b->start, buf_len(b));
                b->end -= b->start;
                b->start = 0;
                t = b->d + b->end;
        }
        memcpy(t, data, n);
        b->end += n;
        return true;
}

static void buf_free(struct buf *b)
{
        free(b->d);
        *b = (struct buf){0};
}

/* ---- epoll ---- */

static void ep_set(int fd, struct ev *ev, uint32_t *cur, uint32_t want)
{
        struct epoll_event e = {.events = want, .data.ptr = ev};
        if (fd < 0 || *cur == want)
                return;
        if (want == 0)
                (void)epoll_ctl(W.ep, EPOLL_CTL_DEL, fd, NULL);
        else if (*cur == 0)
                (void)epoll_ctl(W.ep, EPOLL_CTL_ADD, fd, &e);
        else
                (void)epoll_ctl(W.ep, EPOLL_CTL_MOD, fd, &e);
        *cur = want;
}

/* ---- the decision log and the audit ---- */

static void format_ts(char out[40])
{
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void log_decision(struct sandbox *sb, const char *kind, const char *host,
                         const struct in_addr *ip, uint16_t port, const char *method,
                         const struct net_decision *d, uint64_t bytes_out, uint64_t bytes_in)
{
        char ts[40], ipbuf[INET_ADDRSTRLEN];
        cleanup_json json_t *j = NULL;
        cleanup_free char *text = NULL;

        if (ip)
                inet_ntop(AF_INET, ip, ipbuf, sizeof(ipbuf));
        format_ts(ts);
        j = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:i,s:s?,s:s,s:s,s:I,s:I}", "ts", ts, "sandbox",
                      sb->name, "kind", kind, "host", host && *host ? host : NULL, "ip",
                      ip ? ipbuf : NULL, "port", (int)port, "method",
                      method && *method ? method : NULL, "action",
                      d->action == NET_ALLOW ? "allow" : "deny", "rule", d->why, "bytes_out",
                      (json_int_t)bytes_out, "bytes_in", (json_int_t)bytes_in);
        if (!j)
                return;
        if (d->action == NET_DENY) {
                int64_t sec = W.now / 1000;
                if (sec != sb->audit_second) {
                        sb->audit_second = sec;
                        sb->audit_count = 0;
                }
                if (sb->audit_count++ < AUDIT_PER_SEC) {
                        json_t *f = json_deep_copy(j);
                        json_object_del(f, "ts");
                        json_object_set_new(f, "uuid", json_string(sb->uuid));
                        (void)audit_log("network_denied", f);
                } else {
                        sb->audit_drops++;
                }
        }
        if (sb->log_fd < 0)
                return;
        text = json_dumps(j, JSON_COMPACT);
        if (!text)
                return;
        size_t len = strlen(text);
        if (sb->log_bytes + len + 1 > LOG_CAP) {
                sb->log_drops++;
                return;
        }
        text[len] = '\n'; /* json_dumps' NUL: the line's end */
        if (write(sb->log_fd, text, len + 1) == (ssize_t)(len + 1))
                sb->log_bytes += len + 1;
        else
                sb->log_drops++;
}

static void conn_log(struct conn *c)
{
        if (!c->log_pending)
                return;
        c->log_pending = false;
        c->sb->st.bytes_out += c->bytes_out;
        c->sb->st.bytes_in += c->bytes_in;
        log_decision(c->sb, c->kind, c->host, c->have_dst ? &c->dst : NULL, c->port,
                     c->method[0] ? c->method : NULL, &c->dec, c->bytes_out, c->bytes_in);
        c->bytes_out = c->bytes_in = 0;
}

/* Records c->dec for the current destination (allowed ones are logged at their end). */
static void conn_decided(struct conn *c)
{
        if (c->dec.action == NET_ALLOW) {
                c->sb->st.allowed++;
                c->log_pending = true;
        } else {
                c->sb->st.denied++;
                c->log_pending = true;
                conn_log(c);
        }
}

/* ---- the DNS table: what this sandbox was told, address -> name ---- */

static void table_add(struct sandbox *sb, const char *name, struct in_addr a, uint32_t ttl)
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
static const char *table_name_for(struct sandbox *sb, struct in_addr a, const char *name)
{
        for (size_t i = 0; i < TABLE_SIZE; i++) {
                struct table_entry *e = &sb->table[i];
                if (e->name[0] && e->addr.s_addr == a.s_addr &&
                    (!name || strcasecmp(e->name, name) == 0))
                        return e->name;
        }
        return NULL;
}

static bool table_has_addr(struct sandbox *sb, struct in_addr a)
{
        return table_name_for(sb, a, NULL) != NULL;
}

/* A fresh cached address of name. */
static bool table_lookup(struct sandbox *sb, const char *name, struct in_addr *ret)
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

/* ---- resolution (c-ares) ---- */

static void lookup_free(struct lookup *l)
{
        if (l->prev)
                l->prev->next = l->next;
        else
                W.lookups = l->next;
        if (l->next)
                l->next->prev = l->prev;
        free(l);
}

static void dns_reply(struct lookup *l, int rcode, const struct in_addr *addrs, size_t n);

static void conn_resolved(struct conn *c, const struct in_addr *addrs, size_t n, int status);

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
        struct lookup *l = arg;
        struct in_addr addrs[16];
        size_t n = 0;
        uint32_t ttl = TABLE_MAX_TTL_S;

        (void)timeouts;
        if (status == ARES_SUCCESS && res) {
                for (struct ares_addrinfo_node *a = res->nodes; a && n < 16; a = a->ai_next) {
                        if (a->ai_family != AF_INET)
                                continue;
                        addrs[n++] = ((struct sockaddr_in *)a->ai_addr)->sin_addr;
                        if (a->ai_ttl >= 0)
                                ttl = MIN(ttl, (uint32_t)a->ai_ttl);
                }
        }
        if (res)
                ares_freeaddrinfo(res);
        if (status == ARES_EDESTRUCTION) {
                if (l->c)
                        l->c->lookup = NULL;
                lookup_free(l);
                return;
        }
        if (l->for_dns) {
                struct in_addr ok[16];
                size_t k = 0;
                for (size_t i = 0; i < n; i++) {
                        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addrs[i]};
                        struct net_decision d;
                        /* a name that resolves into private space is not answered there */
                        if (net_policy_decide(l->sb->policy, l->name, (struct sockaddr *)&sa, 0,
                                              NULL, &d) == NET_ALLOW) {
                                ok[k++] = addrs[i];
                                table_add(l->sb, l->name, addrs[i], ttl);
                        }
                }
                if (status != ARES_SUCCESS)
                        dns_reply(
                            l, status == ARES_ENOTFOUND ? DNS_RCODE_NXDOMAIN : DNS_RCODE_SERVFAIL,
                            NULL, 0);
                else if (k == 0 && n > 0)
                        dns_reply(l, DNS_RCODE_NXDOMAIN, NULL, 0);
                else
                        dns_reply(l, DNS_RCODE_NOERROR, ok, k);
        } else if (l->c) {
                struct conn *c = l->c;
                c->lookup = NULL;
                for (size_t i = 0; i < n; i++)
                        table_add(l->sb, l->name, addrs[i], ttl);
                lookup_free(l);
                conn_resolved(c, addrs, n, status);
                return;
        }
        lookup_free(l);
}

static struct lookup *lookup_new(struct sandbox *sb, const char *name)
{
        struct lookup *l = calloc(1, sizeof(*l));
        if (!l)
                return NULL;
        l->sb = sb;
        snprintf(l->name, sizeof(l->name), "%s", name);
        l->next = W.lookups;
        if (W.lookups)
                W.lookups->prev = l;
        W.lookups = l;
        return l;
}

static void ares_start(struct lookup *l)
{
        struct ares_addrinfo_hints hints = {.ai_family = AF_INET, .ai_flags = ARES_AI_NOSORT};
        if (!l->sb->ares_ok) {
                ares_done(l, ARES_ENOTINITIALIZED, 0, NULL);
                return;
        }
        ares_getaddrinfo(l->sb->ares, l->name, NULL, &hints, ares_done, l);
}

static void ares_sock_cb(void *data, ares_socket_t fd, int readable, int writable)
{
        struct sandbox *sb = data;
        struct ares_sock *s = NULL, *free_slot = NULL;
        uint32_t want = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);

        for (size_t i = 0; i < MAX_ARES_SOCKS; i++) {
                if (sb->asocks[i].fd == fd && sb->asocks[i].events) {
                        s = &sb->asocks[i];
                        break;
                }
                if (!sb->asocks[i].events && !free_slot)
                        free_slot = &sb->asocks[i];
        }
        if (!s) {
                if (!want || !free_slot)
                        return;
                s = free_slot;
                s->ev.kind = EVK_ARES;
                s->sb = sb;
                s->fd = fd;
        }
        ep_set(fd, &s->ev, &s->events, want);
}

static int sandbox_ares_init(struct sandbox *sb)
{
        struct ares_options o = {0};
        struct ares_addr_port_node nodes[NET_POLICY_MAX_DNS];
        int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
                   ARES_OPT_TRIES | ARES_OPT_DOMAINS;
        const struct net_policy *p = sb->policy;

        o.sock_state_cb = ares_sock_cb;
        o.sock_state_cb_data = sb;
        o.lookups = (char *)"b"; /* DNS only: never the host's /etc/hosts */
        o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
        o.timeout = 2000;
        o.tries = 2;
        o.ndomains = 0;
        if (ares_init_options(&sb->ares, &o, mask) != ARES_SUCCESS)
                return -ENOMEM;
        sb->ares_ok = true;
        if (p->n_dns_servers) {
                for (size_t i = 0; i < p->n_dns_servers; i++) {
                        nodes[i] = (struct ares_addr_port_node){
                            .next = i + 1 < p->n_dns_servers ? &nodes[i + 1] : NULL,
                            .family = AF_INET,
                            .udp_port = ntohs(p->dns_servers[i].sin_port),
                            .tcp_port = ntohs(p->dns_servers[i].sin_port)};
                        nodes[i].addr.addr4 = p->dns_servers[i].sin_addr;
                }
                if (ares_set_servers_ports(sb->ares, nodes) != ARES_SUCCESS)
                        return -EINVAL;
        }
        return 0;
}

static void sandbox_ares_done(struct sandbox *sb)
{
        if (sb->ares_ok) {
                sb->ares_ok = false;
                ares_destroy(sb->ares); /* pending lookups end with ARES_EDESTRUCTION */
        }
        for (size_t i = 0; i < MAX_ARES_SOCKS; i++)
                if (sb->asocks[i].events)
                        ep_set(sb->asocks[i].fd, &sb->asocks[i].ev, &sb->asocks[i].events, 0);
}

/* ---- DNS responder ---- */

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

static void dns_reply(struct lookup *l, int rcode, const struct in_addr *addrs, size_t n)
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
        if (!l)
                return;
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

static void dns_udp_readable(struct sandbox *sb)
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

static void dns_conn_close(struct dns_conn *dc)
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
        if (dc->prev)
                dc->prev->next = dc->next;
        else
                W.dns_conns = dc->next;
        if (dc->next)
                dc->next->prev = dc->prev;
        free(dc);
}

static void dns_tcp_accept(struct sandbox *sb)
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
                dc->next = W.dns_conns;
                if (W.dns_conns)
                        W.dns_conns->prev = dc;
                W.dns_conns = dc;
                sb->dns_tcp_open++;
                ep_set(fd, &dc->ev, &m, EPOLLIN);
        }
}

static void dns_tcp_readable(struct dns_conn *dc)
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

/* ---- connections ---- */

static void close_rst(int fd)
{
        struct linger l = {1, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        close(fd);
}

static void upstream_close(struct conn *c)
{
        if (c->ufd < 0)
                return;
        ep_set(c->ufd, &c->uev, &c->umask, 0);
        close(c->ufd);
        c->ufd = -1;
        c->connecting = c->upstream_ok = c->up_eof = c->u_shut = false;
        c->up_host[0] = '\0';
        buf_free(&c->up);
}

static void conn_close(struct conn *c)
{
        if (c->closed)
                return;
        if (c->lookup) {
                c->lookup->c = NULL;
                c->lookup = NULL;
        }
        conn_log(c);
        ep_set(c->cfd, &c->cev, &c->cmask, 0);
        if (c->rst)
                close_rst(c->cfd);
        else
                close(c->cfd);
        upstream_close(c);
        buf_free(&c->cin);
        buf_free(&c->down);
        buf_free(&c->hbuf);
        free(c->head);
        c->head = NULL;
        c->sb->st.open--;
        W.open--;
        if (c->prev)
                c->prev->next = c->next;
        else
                W.conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->closed = true;
        c->mode = CM_CLOSING;
        c->next = W.dead;
        W.dead = c;
}

/* Refuses the current destination: 403 (or another status) naming the rule for HTTP and
 * CONNECT, a reset for other TCP. */
static void conn_refuse(struct conn *c, int status, const char *reason)
{
        char body[512], resp[1024];
        const char *text = status == 403   ? "Forbidden"
                           : status == 400 ? "Bad Request"
                           : status == 431 ? "Request Header Fields Too Large"
                           : status == 502 ? "Bad Gateway"
                           : status == 504 ? "Gateway Timeout"
                                           : "Error";
        int blen, rlen;

        if (c->closed)
                return;
        if (c->mode == CM_SNIFF || c->mode == CM_TUNNEL) {
                c->rst = true;
                conn_close(c);
                return;
        }
        blen = snprintf(body, sizeof(body), "agentkernel: %s%s%s:%u: %s\n",
                        status == 403 ? "egress denied: " : "", c->host[0] ? c->host : "",
                        c->host[0] ? "" : "?", c->port, reason);
        if (blen < 0 || (size_t)blen >= sizeof(body))
                blen = (int)strlen(body);
        rlen = snprintf(resp, sizeof(resp),
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: "
                        "%d\r\nConnection: close\r\nX-Agentkernel-Rule: %s\r\n\r\n%s",
                        status, text, blen, reason, body);
        if (rlen < 0 || (size_t)rlen >= sizeof(resp))
                rlen = (int)strlen(resp);
        buf_free(&c->down);
        upstream_close(c);
        (void)buf_put(&c->down, resp, (size_t)rlen);
        c->mode = CM_CLOSING;
        c->deadline = W.now + 5000;
        conn_update(c);
}

static void conn_deny(struct conn *c)
{
        conn_decided(c);
        conn_refuse(c, 403, c->dec.why);
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
static void decide_and_connect(struct conn *c)
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

static void conn_resolved(struct conn *c, const struct in_addr *addrs, size_t n, int status)
{
        struct net_decision first = {0};
        if (n == 0) {
                char why[128];
                snprintf(why, sizeof(why), "cannot resolve: %s", ares_strerror(status));
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why), "%s", why);
                conn_decided(c);
                conn_refuse(c, 502, why);
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
static void resolve_and_connect(struct conn *c)
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
                conn_refuse(c, 502, "out of memory");
                return;
        }
        l->c = c;
        c->lookup = l;
        c->deadline = W.now + (int64_t)W.o->connect_timeout_ms;
        conn_update(c);
        ares_start(l);
}

/* ---- HTTP ---- */

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

static int on_headers_complete_resp(http_parser *p)
{
        struct conn *c = p->data;
        c->resp_interim = p->status_code >= 100 && p->status_code < 200;
        return c->req_is_head ? 1 : 0;
}

static int on_message_complete_resp(http_parser *p)
{
        struct conn *c = p->data;
        if (c->resp_interim)
                c->resp_interim = false;
        else {
                c->resp_done = true;
                if (!http_should_keep_alive(p))
                        c->keep_alive = false;
        }
        return 0;
}

static const http_parser_settings req_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_message_complete = on_message_complete_req,
};

static const http_parser_settings resp_settings = {
    .on_headers_complete = on_headers_complete_resp,
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
        if (colon && port) {
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

        if (c->req.method == HTTP_CONNECT) {
                c->kind = "connect";
                c->is_connect = true;
                c->method[0] = '\0';
                if (!c->explicit_proxy || split_host_port(url, h->url_len, c->host, &port) < 0 ||
                    port == 0) {
                        c->port = port;
                        c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                        snprintf(c->dec.why, sizeof(c->dec.why), "bad CONNECT target");
                        conn_decided(c);
                        conn_refuse(c, 400, "bad CONNECT target");
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
                        c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                        snprintf(c->dec.why, sizeof(c->dec.why),
                                 "only http:// URLs without userinfo");
                        conn_decided(c);
                        conn_refuse(c, 400, c->dec.why);
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
                        c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                        snprintf(c->dec.why, sizeof(c->dec.why),
                                 "Host header '%.100s' is not the URL's host", hosthdr);
                        conn_decided(c);
                        conn_refuse(c, 403, c->dec.why);
                        return;
                }
        } else if (c->explicit_proxy) {
                c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
                snprintf(c->dec.why, sizeof(c->dec.why),
                         "a proxy request needs an absolute http:// URL or CONNECT");
                conn_decided(c);
                conn_refuse(c, 400, c->dec.why);
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

/* The upstream for the current destination is connected (or reused). */
static void dest_decided(struct conn *c)
{
        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
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
        } else if (c->upgrade) {
                /* WebSocket and other upgrades: the head, then bytes both ways */
                (void)buf_put(&c->up, c->hbuf.d + c->hbuf.start, buf_len(&c->hbuf));
                buf_free(&c->hbuf);
                c->mode = CM_TUNNEL;
                if (buf_len(&c->cin)) {
                        (void)buf_put(&c->up, c->cin.d + c->cin.start,
                                      MIN(buf_len(&c->cin), buf_room(&c->up)));
                        buf_consume(&c->cin, buf_len(&c->cin));
                }
        } else {
                (void)buf_put(&c->up, c->hbuf.d + c->hbuf.start, buf_len(&c->hbuf));
                buf_free(&c->hbuf);
                c->hs = c->req_done ? H_PENDING : H_BODY;
                c->resp_done = false;
                c->resp_interim = false;
                http_parser_init(&c->resp, HTTP_RESPONSE);
                c->resp.data = c;
        }
        conn_update(c);
        if (c->mode == CM_HTTP)
                http_process(c);
}

/* Ends a request/response exchange; the next request may follow on the connection. */
static void http_exchange_done(struct conn *c)
{
        conn_log(c);
        c->req_done = c->resp_done = false;
        c->hs = H_HEAD;
        c->head->len = c->head->n = c->head->url_len = 0;
        c->head->in_value = false;
        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
        if (!c->keep_alive) {
                c->mode = CM_CLOSING;
                return;
        }
        http_parser_pause(&c->req, 0);
}

/* Moves client bytes through the request parser. */
static void http_process(struct conn *c)
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
                        if (len == 0)
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
                        (void)buf_put(&c->up, data, n);
                        c->bytes_out += n;
                        buf_consume(&c->cin, n);
                        continue;
                }
                return; /* H_WAIT, or H_PENDING without its response yet */
        }
}

/* ---- reading and writing ---- */

static bool flush(int fd, struct buf *b, uint64_t *counter, uint64_t *stat, bool *dead)
{
        while (buf_len(b)) {
                ssize_t n = send(fd, b->d + b->start, buf_len(b), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return true;
                        *dead = true;
                        return false;
                }
                if (counter)
                        *counter += (uint64_t)n;
                if (stat)
                        *stat += (uint64_t)n;
                buf_consume(b, (size_t)n);
        }
        return true;
}

/* Reads from fd into b; returns bytes read, 0 on EOF, -1 when nothing now, -2 on error. */
static ssize_t fill(int fd, struct buf *b)
{
        size_t room;
        uint8_t *t = buf_tail(b, &room);
        ssize_t n;
        if (!t)
                return -1;
        if (room == 0)
                return -1;
        n = read(fd, t, room);
        if (n < 0) {
                if (b->start == b->end)
                        buf_free(b);
                return errno == EAGAIN || errno == EINTR ? -1 : -2;
        }
        b->end += (size_t)n;
        if (b->start == b->end)
                buf_free(b);
        return n;
}

/* Transparent: the first bytes are in c->cin (or none came): find the destination. */
static void sniff_decide(struct conn *c, bool timed_out)
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

/* CONNECT: the first client bytes of the tunnel, when TLS, must name the CONNECT's host. */
static bool connect_sni_ok(struct conn *c, bool *wait)
{
        char sni[SNIFF_NAME_MAX + 1];
        int r = sniff_tls_sni(c->cin.d + c->cin.start, buf_len(&c->cin), sni);

        *wait = r == -EAGAIN && buf_len(&c->cin) < SNIFF_MAX;
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

static void client_event(struct conn *c, uint32_t ev)
{
        bool dead = false;
        ssize_t n;

        if (ev & EPOLLERR) {
                conn_close(c);
                return;
        }
        if (ev & EPOLLOUT) {
                if (!flush(c->cfd, &c->down, NULL, NULL, &dead) || dead) {
                        conn_close(c);
                        return;
                }
        }
        if (ev & (EPOLLIN | EPOLLHUP)) {
                struct buf *b = c->mode == CM_TUNNEL && !c->sni_check ? &c->up : &c->cin;
                n = fill(c->cfd, b);
                if (n == -2) {
                        conn_close(c);
                        return;
                }
                if (n == 0)
                        c->cin_eof = true;
                if (n > 0) {
                        if (b == &c->up)
                                c->bytes_out += (uint64_t)n;
                        c->deadline = MAX(c->deadline, c->mode == CM_TUNNEL
                                                           ? W.now + (int64_t)W.o->idle_timeout_ms
                                                           : c->deadline);
                }
                if (c->mode == CM_SNIFF) {
                        sniff_decide(c, c->cin_eof);
                        return;
                }
                if (c->mode == CM_TUNNEL && c->sni_check && buf_len(&c->cin)) {
                        bool wait;
                        if (!connect_sni_ok(c, &wait)) {
                                conn_decided(c);
                                c->rst = true;
                                conn_close(c);
                                return;
                        }
                        if (!wait || c->cin_eof) {
                                c->sni_check = false;
                                c->bytes_out += buf_len(&c->cin);
                                (void)buf_put(&c->up, c->cin.d + c->cin.start, buf_len(&c->cin));
                                buf_free(&c->cin);
                        }
                } else if (c->mode == CM_TUNNEL && c->sni_check && c->cin_eof) {
                        c->sni_check = false;
                }
                if (c->mode == CM_HTTP)
                        http_process(c);
        }
}

static void upstream_event(struct conn *c, uint32_t ev)
{
        bool dead = false;
        ssize_t n;

        if (c->connecting) {
                int err = 0;
                socklen_t l = sizeof(err);
                if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return;
                (void)getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &l);
                c->connecting = false;
                if (err) {
                        char why[128];
                        snprintf(why, sizeof(why), "cannot connect: %s", strerror(err));
                        upstream_close(c);
                        conn_refuse(c, 502, why);
                        return;
                }
                c->upstream_ok = true;
                dest_decided(c);
                return;
        }
        if (ev & EPOLLOUT) {
                if (!flush(c->ufd, &c->up, NULL, NULL, &dead) || dead) {
                        conn_close(c);
                        return;
                }
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                size_t before = buf_len(&c->down);
                n = fill(c->ufd, &c->down);
                if (n == -2) {
                        c->up_eof = true;
                        if (c->mode != CM_TUNNEL)
                                c->keep_alive = false;
                }
                if (n == 0)
                        c->up_eof = true;
                if (n > 0) {
                        c->bytes_in += (uint64_t)n;
                        if (c->mode == CM_TUNNEL)
                                c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
                }
                if (c->mode == CM_HTTP && (c->hs == H_PENDING || c->hs == H_BODY)) {
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
                } else if (c->mode == CM_HTTP && c->up_eof) {
                        upstream_close(c);
                }
        }
}

/* Sets the epoll interests from the state, propagates half-closes, closes what is done. */
static void conn_update(struct conn *c)
{
        uint32_t cw = 0, uw = 0;
        bool dead = false;

        if (c->closed)
                return;
        /* write what we can now (cheap, and saves a wakeup) */
        if (buf_len(&c->down) && !flush(c->cfd, &c->down, NULL, NULL, &dead)) {
                conn_close(c);
                return;
        }
        if (c->ufd >= 0 && c->upstream_ok && buf_len(&c->up) &&
            !flush(c->ufd, &c->up, NULL, NULL, &dead)) {
                conn_close(c);
                return;
        }
        switch (c->mode) {
        case CM_SNIFF:
                if (!c->cin_eof && buf_len(&c->cin) < SNIFF_MAX)
                        cw |= EPOLLIN;
                break;
        case CM_HTTP:
                if (!c->cin_eof &&
                    ((c->hs == H_HEAD && buf_len(&c->cin) < HEAD_MAX) ||
                     (c->hs == H_BODY && buf_room(&c->cin) > 0 && buf_len(&c->cin) < BUF_SIZE)))
                        cw |= EPOLLIN;
                if (c->cin_eof && c->hs == H_HEAD && buf_len(&c->down) == 0) {
                        conn_close(c);
                        return;
                }
                if (c->up_eof && c->hs == H_HEAD && buf_len(&c->down) == 0 && c->ufd >= 0)
                        upstream_close(c);
                if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && buf_room(&c->down) > 0)
                        uw |= EPOLLIN;
                break;
        case CM_TUNNEL:
                if (!c->cin_eof &&
                    (c->sni_check ? buf_len(&c->cin) < SNIFF_MAX : buf_room(&c->up) > 0))
                        cw |= EPOLLIN;
                if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && buf_room(&c->down) > 0)
                        uw |= EPOLLIN;
                /* half-closes travel once the bytes before them have */
                if (c->cin_eof && !c->sni_check && buf_len(&c->up) == 0 && !c->u_shut &&
                    c->ufd >= 0 && c->upstream_ok) {
                        (void)shutdown(c->ufd, SHUT_WR);
                        c->u_shut = true;
                }
                if (c->up_eof && buf_len(&c->down) == 0 && !c->c_shut) {
                        (void)shutdown(c->cfd, SHUT_WR);
                        c->c_shut = true;
                }
                if ((c->u_shut || c->ufd < 0) && c->c_shut) {
                        conn_close(c);
                        return;
                }
                if (c->cin_eof && c->ufd < 0 && !c->connecting && !c->lookup) {
                        conn_close(c);
                        return;
                }
                break;
        case CM_CLOSING:
                if (buf_len(&c->down) == 0) {
                        conn_close(c);
                        return;
                }
                break;
        default:
                break;
        }
        if (buf_len(&c->down))
                cw |= EPOLLOUT;
        if (c->connecting || (c->upstream_ok && buf_len(&c->up)))
                uw |= EPOLLOUT;
        ep_set(c->cfd, &c->cev, &c->cmask, cw);
        ep_set(c->ufd, &c->uev, &c->umask, uw);
}

static void listener_accept(struct sandbox *sb)
{
        for (int i = 0; i < 64; i++) {
                struct sockaddr_in local;
                socklen_t l = sizeof(local);
                int fd = accept4(sb->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct conn *c;
                int one = 1;

                if (fd < 0)
                        return;
                if (W.open >= W.o->max_conns || sb->st.open >= W.o->max_conns_per_sandbox ||
                    !(c = calloc(1, sizeof(*c)))) {
                        struct net_decision d = {.action = NET_DENY, .rule = -2};
                        snprintf(d.why, sizeof(d.why), "connection limit");
                        sb->st.denied++;
                        log_decision(sb, "tcp", NULL, NULL, 0, NULL, &d, 0, 0);
                        close_rst(fd);
                        continue;
                }
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->cev.kind = EVK_CLIENT;
                c->uev.kind = EVK_UPSTREAM;
                c->sb = sb;
                c->cfd = fd;
                c->ufd = -1;
                c->kind = "tcp";
                c->deadline = W.now + (int64_t)W.o->header_timeout_ms;
                c->sniff_until = W.now + SNIFF_WAIT_MS;
                http_parser_init(&c->req, HTTP_REQUEST);
                c->req.data = c;
                c->head = malloc(sizeof(*c->head));
                if (!c->head) {
                        free(c);
                        close_rst(fd);
                        continue;
                }
                c->head->len = c->head->n = c->head->url_len = 0;
                c->head->in_value = c->head->too_many = false;
                l = sizeof(c->orig);
                if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &c->orig, &l) < 0 ||
                    (getsockname(fd, (struct sockaddr *)&local, &(socklen_t){sizeof(local)}) == 0 &&
                     local.sin_addr.s_addr == c->orig.sin_addr.s_addr &&
                     local.sin_port == c->orig.sin_port)) {
                        c->explicit_proxy = true;
                        c->mode = CM_HTTP;
                        c->hs = H_HEAD;
                } else {
                        c->mode = CM_SNIFF;
                }
                c->next = W.conns;
                if (W.conns)
                        W.conns->prev = c;
                W.conns = c;
                W.open++;
                sb->st.open++;
                sb->st.total++;
                conn_update(c);
        }
}

/* ---- sandboxes ---- */

static void collect_host_addrs(void)
{
        struct ifaddrs *ifa = NULL;
        W.n_host_addrs = 0;
        if (getifaddrs(&ifa) < 0)
                return;
        for (struct ifaddrs *i = ifa; i && W.n_host_addrs < NET_POLICY_MAX_HOST_ADDRS;
             i = i->ifa_next)
                if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
                        W.host_addrs[W.n_host_addrs++] =
                            ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        freeifaddrs(ifa);
}

static struct sandbox *sandbox_find(const char *name)
{
        for (struct sandbox *s = W.sandboxes; s; s = s->next)
                if (streq(s->name, name))
                        return s;
        return NULL;
}

static void sandbox_free(struct sandbox *sb)
{
        uint32_t m;
        /* its connections, then its lookups (ares_destroy ends them), then it */
        for (struct conn *c = W.conns, *next; c; c = next) {
                next = c->next;
                if (c->sb == sb)
                        conn_close(c);
        }
        for (struct dns_conn *d = W.dns_conns, *next; d; d = next) {
                next = d->next;
                if (d->sb == sb)
                        dns_conn_close(d);
        }
        sandbox_ares_done(sb);
        for (struct lookup *l = W.lookups, *next; l; l = next) {
                next = l->next;
                if (l->sb == sb)
                        lookup_free(l);
        }
        m = EPOLLIN;
        ep_set(sb->tcp_fd, &sb->lev, &m, 0);
        m = EPOLLIN;
        ep_set(sb->udp_fd, &sb->uev, &m, 0);
        m = EPOLLIN;
        ep_set(sb->dnstcp_fd, &sb->tev, &m, 0);
        close(sb->tcp_fd);
        close(sb->udp_fd);
        close(sb->dnstcp_fd);
        if (sb->log_fd >= 0)
                close(sb->log_fd);
        net_policy_free(sb->policy);
        free(sb->table);
        free(sb);
}

static void sandbox_unlink(struct sandbox *sb)
{
        for (struct sandbox **p = &W.sandboxes; *p; p = &(*p)->next)
                if (*p == sb) {
                        *p = sb->next;
                        break;
                }
}

static json_t *op_register(json_t *req, int *fds, size_t n_fds)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        const char *uuid = json_string_value(json_object_get(req, "uuid"));
        struct sandbox *sb, *old;
        struct ak_err err = {0};
        struct stat st;
        uint32_t m = 0;

        if (!name || n_fds != PROXY_WORKER_FDS)
                return proxy_error_reply("register: sandbox and 4 fds needed");
        sb = calloc(1, sizeof(*sb));
        if (!sb || !(sb->table = calloc(TABLE_SIZE, sizeof(*sb->table)))) {
                free(sb);
                return proxy_error_reply("out of memory");
        }
        snprintf(sb->name, sizeof(sb->name), "%s", name);
        snprintf(sb->uuid, sizeof(sb->uuid), "%s", uuid ? uuid : "");
        sb->tcp_fd = fds[0];
        sb->udp_fd = fds[1];
        sb->dnstcp_fd = fds[2];
        sb->log_fd = fds[3];
        if (fstat(sb->log_fd, &st) == 0)
                sb->log_bytes = (uint64_t)st.st_size;
        if (net_policy_from_json(json_object_get(req, "policy"), &sb->policy, &err) < 0) {
                sb->policy = net_policy_new(NET_DENY);
                sandbox_free(sb);
                return proxy_error_reply(ak_err_msg(&err));
        }
        net_policy_set_host_addrs(sb->policy, W.host_addrs, W.n_host_addrs);
        sb->lev.kind = EVK_LISTEN;
        sb->uev.kind = EVK_DNS_UDP;
        sb->tev.kind = EVK_DNS_LISTEN;
        (void)fcntl(sb->tcp_fd, F_SETFL, O_NONBLOCK);
        (void)fcntl(sb->udp_fd, F_SETFL, O_NONBLOCK);
        (void)fcntl(sb->dnstcp_fd, F_SETFL, O_NONBLOCK);
        if (sandbox_ares_init(sb) < 0) {
                sandbox_free(sb);
                return proxy_error_reply("cannot set up the resolver");
        }
        old = sandbox_find(name);
        if (old) {
                sandbox_unlink(old);
                sandbox_free(old);
        }
        sb->next = W.sandboxes;
        W.sandboxes = sb;
        ep_set(sb->tcp_fd, &sb->lev, &m, EPOLLIN);
        m = 0;
        ep_set(sb->udp_fd, &sb->uev, &m, EPOLLIN);
        m = 0;
        ep_set(sb->dnstcp_fd, &sb->tev, &m, EPOLLIN);
        return json_pack("{s:b}", "ok", 1);
}

static bool same_dns(const struct net_policy *a, const struct net_policy *b)
{
        if (a->n_dns_servers != b->n_dns_servers)
                return false;
        for (size_t i = 0; i < a->n_dns_servers; i++)
                if (a->dns_servers[i].sin_addr.s_addr != b->dns_servers[i].sin_addr.s_addr ||
                    a->dns_servers[i].sin_port != b->dns_servers[i].sin_port)
                        return false;
        return true;
}

static json_t *op_set_policy(json_t *req)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        struct sandbox *sb = name ? sandbox_find(name) : NULL;
        struct net_policy *p = NULL;
        struct ak_err err = {0};
        bool dns_same;

        if (!sb)
                return proxy_error_reply("no such sandbox");
        if (net_policy_from_json(json_object_get(req, "policy"), &p, &err) < 0)
                return proxy_error_reply(ak_err_msg(&err));
        net_policy_set_host_addrs(p, W.host_addrs, W.n_host_addrs);
        dns_same = same_dns(p, sb->policy);
        net_policy_free(sb->policy);
        sb->policy = p;
        /* what the sandbox was told under the old policy no longer names anything */
        memset(sb->table, 0, TABLE_SIZE * sizeof(*sb->table));
        if (!dns_same) {
                sandbox_ares_done(sb);
                if (sandbox_ares_init(sb) < 0)
                        return proxy_error_reply("cannot set up the resolver");
        }
        return json_pack("{s:b}", "ok", 1);
}

static long rss_kb(void)
{
        long pages = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "re");
        if (!f)
                return 0;
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
                rss = 0;
        fclose(f);
        return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static json_t *op_stats(void)
{
        json_t *sbs = json_object();
        for (struct sandbox *s = W.sandboxes; s; s = s->next)
                json_object_set_new(
                    sbs, s->name,
                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "connections_open",
                              (json_int_t)s->st.open, "connections_total", (json_int_t)s->st.total,
                              "allowed", (json_int_t)s->st.allowed, "denied",
                              (json_int_t)s->st.denied, "bytes_out", (json_int_t)s->st.bytes_out,
                              "bytes_in", (json_int_t)s->st.bytes_in, "dns_queries",
                              (json_int_t)s->st.dns_queries, "dns_denied",
                              (json_int_t)s->st.dns_denied, "log_dropped", (json_int_t)s->log_drops,
                              "audit_dropped", (json_int_t)s->audit_drops));
        return json_pack("{s:b,s:i,s:I,s:I,s:o}", "ok", 1, "worker_pid", (int)getpid(), "rss_kb",
                         (json_int_t)rss_kb(), "connections_open", (json_int_t)W.open, "sandboxes",
                         sbs);
}

static void ctl_readable(void)
{
        int fds[PROXY_WORKER_FDS];
        size_t n_fds = 0;
        json_t *req = NULL, *reply;
        const char *op;
        int rc = proxy_recv(W.ctl_fd, &req, fds, PROXY_WORKER_FDS, &n_fds);

        if (rc == -EAGAIN || rc == -EINTR)
                return;
        if (rc < 0) {
                if (rc == -EPIPE || rc == -ECONNRESET)
                        W.quit = true;
                return;
        }
        op = json_string_value(json_object_get(req, "op"));
        if (!op)
                reply = proxy_error_reply("no op");
        else if (streq(op, "register"))
                reply = op_register(req, fds, n_fds), n_fds = 0;
        else if (streq(op, "set_policy"))
                reply = op_set_policy(req);
        else if (streq(op, "unregister")) {
                const char *name = json_string_value(json_object_get(req, "sandbox"));
                struct sandbox *sb = name ? sandbox_find(name) : NULL;
                if (sb) {
                        sandbox_unlink(sb);
                        sandbox_free(sb);
                }
                reply = json_pack("{s:b}", "ok", 1);
        } else if (streq(op, "stats"))
                reply = op_stats();
        else
                reply = proxy_error_reply("unknown op");
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
        if (reply)
                (void)proxy_send(W.ctl_fd, reply, NULL, 0);
        json_decref(reply);
        json_decref(req);
}

/* ---- the loop ---- */

static void sweep(void)
{
        for (struct conn *c = W.conns, *next; c; c = next) {
                next = c->next;
                if (c->mode == CM_SNIFF && !c->sniffed && buf_len(&c->cin) == 0 &&
                    W.now >= c->sniff_until && !c->cin_eof) {
                        /* nothing sent: a server-speaks-first protocol (ssh, smtp) */
                        sniff_decide(c, true);
                        continue;
                }
                if (W.now < c->deadline)
                        continue;
                if (c->lookup || c->connecting) {
                        conn_refuse(c, 504, "upstream timeout");
                        continue;
                }
                if (c->mode == CM_HTTP && c->hs == H_HEAD && buf_len(&c->cin)) {
                        c->dec = (struct net_decision){.action = NET_DENY};
                        conn_refuse(c, 408, "request head timeout");
                        continue;
                }
                conn_close(c);
        }
        for (struct dns_conn *d = W.dns_conns, *next; d; d = next) {
                next = d->next;
                if (W.now >= d->deadline)
                        dns_conn_close(d);
        }
        for (struct sandbox *s = W.sandboxes; s; s = s->next)
                if (s->ares_ok)
                        ares_process_fd(s->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void dispatch(struct epoll_event *e)
{
        struct ev *ev = e->data.ptr;
        switch (ev->kind) {
        case EVK_CTL:
                ctl_readable();
                break;
        case EVK_LISTEN:
                listener_accept((struct sandbox *)((char *)ev - offsetof(struct sandbox, lev)));
                break;
        case EVK_DNS_UDP:
                dns_udp_readable((struct sandbox *)((char *)ev - offsetof(struct sandbox, uev)));
                break;
        case EVK_DNS_LISTEN:
                dns_tcp_accept((struct sandbox *)((char *)ev - offsetof(struct sandbox, tev)));
                break;
        case EVK_DNS_TCP:
                dns_tcp_readable((struct dns_conn *)ev);
                break;
        case EVK_CLIENT: {
                struct conn *c = (struct conn *)((char *)ev - offsetof(struct conn, cev));
                client_event(c, e->events);
                break;
        }
        case EVK_UPSTREAM: {
                struct conn *c = (struct conn *)((char *)ev - offsetof(struct conn, uev));
                upstream_event(c, e->events);
                break;
        }
        case EVK_ARES: {
                struct ares_sock *s = (struct ares_sock *)ev;
                ares_process_fd(s->sb->ares,
                                e->events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? s->fd
                                                                            : ARES_SOCKET_BAD,
                                e->events & EPOLLOUT ? s->fd : ARES_SOCKET_BAD);
                break;
        }
        default:
                break;
        }
}

/* Which connection does an event touch? (it may be closed by the handler) */
static struct conn *event_conn(struct epoll_event *e)
{
        struct ev *ev = e->data.ptr;
        if (ev->kind == EVK_CLIENT)
                return (struct conn *)((char *)ev - offsetof(struct conn, cev));
        if (ev->kind == EVK_UPSTREAM)
                return (struct conn *)((char *)ev - offsetof(struct conn, uev));
        return NULL;
}

static void set_limits(const struct proxy_opts *o)
{
        struct rlimit r;
        rlim_t want = (rlim_t)o->max_conns * 2 + 256;
        if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
                if (r.rlim_cur < want)
                        r.rlim_cur = want < r.rlim_max ? want : r.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &r);
        }
        (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        signal(SIGPIPE, SIG_IGN);
}

int worker_main(int ctl_fd, const struct proxy_opts *o)
{
        struct epoll_event evs[128];
        int64_t next_sweep = 0;
        uint32_t m = 0;

        W.o = o;
        W.ctl_fd = ctl_fd;
        set_limits(o);
        if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
                return 1;
        W.ep = epoll_create1(EPOLL_CLOEXEC);
        if (W.ep < 0)
                return 1;
        collect_host_addrs();
        W.ctl_ev.kind = EVK_CTL;
        ep_set(ctl_fd, &W.ctl_ev, &m, EPOLLIN);
        W.now = now_ms();
        while (!W.quit) {
                int n = epoll_wait(W.ep, evs, (int)ARRAY_SIZE(evs), SWEEP_MS);
                W.now = now_ms();
                for (int i = 0; i < n; i++) {
                        struct conn *c = event_conn(&evs[i]);
                        /* an earlier event of this batch may have closed it */
                        if (c && c->closed)
                                continue;
                        dispatch(&evs[i]);
                        if (c)
                                conn_update(c);
                }
                if (W.now >= next_sweep) {
                        sweep();
                        next_sweep = W.now + SWEEP_MS;
                }
                while (W.dead) {
                        struct conn *c = W.dead;
                        W.dead = c->next;
                        free(c);
                }
        }
        while (W.sandboxes) {
                struct sandbox *s = W.sandboxes;
                W.sandboxes = s->next;
                sandbox_free(s);
        }
        ares_library_cleanup();
        return 0;
}
