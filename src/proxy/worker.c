// SPDX-License-Identifier: Apache-2.0
/*
 * The proxy's worker (proxy.h): one epoll loop, nonblocking sockets, no thread per connection.
 * Everything a sandbox sends is parsed in this process: HTTP/1.1 requests to the explicit proxy
 * (absolute-URI, CONNECT, keep-alive with a decision per request, Upgrade then a tunnel),
 * transparent connections (TLS SNI, HTTP Host, the per-sandbox DNS table, else the address),
 * and DNS questions. Upstream is reached only by sockets made here, to addresses resolved here
 * (never the sandbox's choice for a named destination).
 *
 * This file is the process and its loop: limits, the seccomp filter, the epoll wait and the
 * dispatch of each event to its file (worker-private.h; docs/architecture.md, "The egress
 * proxy", says which behaviour lives where), and the sweep of deadlines.
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
#include <errno.h>
#include <ifaddrs.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "shared/macro.h"
#include "shared/sanitizer.h"
#include "worker-private.h"

/* Under AddressSanitizer the worker checks its own leaks when it ends, which LeakSanitizer does
 * by tracing the process from a thread of its own: the seccomp filter (no clone, no ptrace) is
 * left out of such builds. */
#define AK_LSAN AK_ASAN
#if AK_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define SWEEP_MS 100

struct worker W;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ep_set(int fd, struct ev *ev, uint32_t *cur, uint32_t want)
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
        for (struct sandbox *s = W.sandboxes; s; s = s->next) {
                if (s->ares_ok)
                        ares_process_fd(s->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
                if (!s->lmask && W.now >= s->accept_paused_ms)
                        ep_set(s->tcp_fd, &s->lev, &s->lmask, EPOLLIN);
        }
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
        W.max_conns = o->max_conns;
        W.nofile = want;
        if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
                if (r.rlim_cur < want)
                        r.rlim_cur = want < r.rlim_max ? want : r.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &r) < 0)
                        (void)getrlimit(RLIMIT_NOFILE, &r);
                W.nofile = r.rlim_cur;
                /* two fds a connection, and room for listeners, resolvers and the log */
                if (W.nofile < want)
                        W.max_conns = W.nofile > 512 ? (unsigned)((W.nofile - 256) / 2) : 128;
        }
        (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        signal(SIGPIPE, SIG_IGN);
}

/* What the worker never needs, refused (not chmod: the audit log tightens a loose mode): a bug in
 * code that parses sandbox bytes gets no new program, no other process, no namespace, no kernel
 * interface beyond its sockets and files. Sockets are IPv4 only (upstream, c-ares). Best effort:
 * without seccomp the worker runs. */
static void worker_seccomp(void)
{
        static const int denied[] = {
            SCMP_SYS(execve),
            SCMP_SYS(execveat),
            SCMP_SYS(fork),
            SCMP_SYS(vfork),
            SCMP_SYS(clone),
            SCMP_SYS(clone3),
            SCMP_SYS(ptrace),
            SCMP_SYS(process_vm_readv),
            SCMP_SYS(process_vm_writev),
            SCMP_SYS(kill),
            SCMP_SYS(tkill),
            SCMP_SYS(tgkill),
            SCMP_SYS(pidfd_open),
            SCMP_SYS(pidfd_getfd),
            SCMP_SYS(mount),
            SCMP_SYS(umount2),
            SCMP_SYS(pivot_root),
            SCMP_SYS(chroot),
            SCMP_SYS(unshare),
            SCMP_SYS(setns),
            SCMP_SYS(bpf),
            SCMP_SYS(perf_event_open),
            SCMP_SYS(keyctl),
            SCMP_SYS(add_key),
            SCMP_SYS(request_key),
            SCMP_SYS(userfaultfd),
            SCMP_SYS(io_uring_setup),
            SCMP_SYS(init_module),
            SCMP_SYS(finit_module),
            SCMP_SYS(delete_module),
            SCMP_SYS(kexec_load),
            SCMP_SYS(open_by_handle_at),
            SCMP_SYS(name_to_handle_at),
            SCMP_SYS(setuid),
            SCMP_SYS(setgid),
            SCMP_SYS(setgroups),

            SCMP_SYS(chown),
            SCMP_SYS(fchown),
            SCMP_SYS(fchownat),
            SCMP_SYS(unlink),
            SCMP_SYS(unlinkat),
            SCMP_SYS(rename),
            SCMP_SYS(renameat2),
            SCMP_SYS(link),
            SCMP_SYS(symlink),
        };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        int rc = ctx ? 0 : -ENOMEM;

        for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(denied); i++)
                if (denied[i] >= 0)
                        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
        if (rc == 0)
                rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                      SCMP_A0(SCMP_CMP_NE, AF_INET));
        if (rc == 0)
                rc = seccomp_load(ctx);
        if (rc < 0)
                fprintf(stderr, "agentkernel-proxy: worker runs without its seccomp filter: %s\n",
                        strerror(-rc));
        seccomp_release(ctx);
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
        if (tls_worker_init() < 0)
                fprintf(stderr, "agentkernel-proxy: worker has no TLS: interception fails\n");
        tls_server_setup();
        if (!AK_LSAN)
                worker_seccomp();
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
        while (W.dead) {
                struct conn *c = W.dead;
                W.dead = c->next;
                free(c);
        }
        ares_library_cleanup();
        tls_worker_done();
#if AK_LSAN
        /* the worker ends with _exit (no atexit): its leaks are looked for here */
        __lsan_do_leak_check();
#endif
        return 0;
}
