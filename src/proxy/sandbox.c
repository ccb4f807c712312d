// SPDX-License-Identifier: Apache-2.0
/*
 * The worker's registered sandboxes, and the supervisor's requests that change them: register
 * (a sandbox's listeners, DNS sockets, decision log and policy), set_policy, unregister, and
 * stats. What is registered again replaces the old; a policy is parsed in full before anything
 * changes. Must never act on a request from anyone but the supervisor (the control socket is
 * its socketpair) or keep an fd of a registration that failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/macro.h"
#include "worker-private.h"

static struct sandbox *sandbox_find(const char *name)
{
        for (struct sandbox *s = W.sandboxes; s; s = s->next)
                if (streq(s->name, name))
                        return s;
        return NULL;
}

void sandbox_free(struct sandbox *sb)
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
        ep_set(sb->tcp_fd, &sb->lev, &sb->lmask, 0);
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
        sandbox_tls_done(sb);
        grants_free(sb->grants, sb->n_grants);
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

static json_t *op_register(json_t *req, const uint8_t *raw, size_t raw_len, int *fds, size_t n_fds)
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
        if (grants_parse(json_object_get(req, "secrets"), &sb->grants, &sb->n_grants, &err) < 0 ||
            sandbox_tls_init(sb, json_string_value(json_object_get(req, "ca")), raw, raw_len,
                             json_string_value(json_object_get(req, "upstream_ca")), &err) < 0) {
                sandbox_free(sb);
                return proxy_error_reply(ak_err_msg(&err));
        }
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
        ep_set(sb->tcp_fd, &sb->lev, &sb->lmask, EPOLLIN);
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

/* A grant's value from the supervisor (it checked it): replaces the one before. */
static json_t *op_secret_value(json_t *req, const uint8_t *raw, size_t raw_len)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        struct sandbox *sb = name ? sandbox_find(name) : NULL;
        struct grant *g = sb ? grants_find(sb->grants, sb->n_grants,
                                           json_string_value(json_object_get(req, "name")))
                             : NULL;
        uint8_t *v;

        if (!g || !raw || raw_len == 0 || raw_len > MITM_VALUE_MAX)
                return proxy_error_reply("secret_value: no such grant");
        v = secret_dup(raw, raw_len);
        if (!v)
                return proxy_error_reply("out of memory");
        secret_free(g->value, g->value_len);
        g->value = v;
        g->value_len = raw_len;
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
                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                              "connections_open", (json_int_t)s->st.open, "connections_total",
                              (json_int_t)s->st.total, "allowed", (json_int_t)s->st.allowed,
                              "denied", (json_int_t)s->st.denied, "bytes_out",
                              (json_int_t)s->st.bytes_out, "bytes_in", (json_int_t)s->st.bytes_in,
                              "dns_queries", (json_int_t)s->st.dns_queries, "dns_denied",
                              (json_int_t)s->st.dns_denied, "log_dropped", (json_int_t)s->log_drops,
                              "audit_dropped", (json_int_t)s->audit_drops, "intercepted",
                              (json_int_t)s->st.intercepted, "substituted",
                              (json_int_t)s->st.substituted, "misdirected",
                              (json_int_t)s->st.misdirected));
        return json_pack("{s:b,s:i,s:I,s:I,s:o}", "ok", 1, "worker_pid", (int)getpid(), "rss_kb",
                         (json_int_t)rss_kb(), "connections_open", (json_int_t)W.open, "sandboxes",
                         sbs);
}

void ctl_readable(void)
{
        int fds[PROXY_WORKER_FDS];
        size_t n_fds = 0;
        json_t *req = NULL, *reply;
        const char *op;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        int rc = proxy_recv_raw(W.ctl_fd, &req, &raw, &raw_len, fds, PROXY_WORKER_FDS, &n_fds);

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
                reply = op_register(req, raw, raw_len, fds, n_fds), n_fds = 0;
        else if (streq(op, "secret_value"))
                reply = op_secret_value(req, raw, raw_len);
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
        secret_free(raw, raw_len);
}
