// SPDX-License-Identifier: Apache-2.0
/*
 * Resolution: the proxy's own lookups of names, through c-ares on the worker's epoll (one
 * channel per sandbox, its policy's dns_servers), for a connection or for a DNS question of a
 * sandbox. At most LOOKUPS_MAX in flight per sandbox. Must never read the host's /etc/hosts or
 * block the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>

#include "shared/macro.h"
#include "worker-private.h"

#define LOOKUPS_MAX 256 /* upstream resolutions in flight per sandbox */

void lookup_free(struct lookup *l)
{
        l->sb->lookups--;
        LIST_UNLINK(W.lookups, l);
        free(l);
}

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

struct lookup *lookup_new(struct sandbox *sb, const char *name)
{
        struct lookup *l;
        if (sb->lookups >= LOOKUPS_MAX)
                return NULL; /* a flood of questions waits for none of them */
        l = calloc(1, sizeof(*l));
        if (!l)
                return NULL;
        sb->lookups++;
        l->sb = sb;
        snprintf(l->name, sizeof(l->name), "%s", name);
        LIST_PUSH(W.lookups, l);
        return l;
}

void ares_start(struct lookup *l)
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

int sandbox_ares_init(struct sandbox *sb)
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

void sandbox_ares_done(struct sandbox *sb)
{
        if (sb->ares_ok) {
                sb->ares_ok = false;
                ares_destroy(sb->ares); /* pending lookups end with ARES_EDESTRUCTION */
        }
        for (size_t i = 0; i < MAX_ARES_SOCKS; i++)
                if (sb->asocks[i].events)
                        ep_set(sb->asocks[i].fd, &sb->asocks[i].ev, &sb->asocks[i].events, 0);
}
