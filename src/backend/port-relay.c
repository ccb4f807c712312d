// SPDX-License-Identifier: Apache-2.0
/*
 * Published ports in proxy mode (port-relay.h): the host's listeners bound by the starter, a
 * detached relay process that asks the sandbox's agent for each connection (TCP_CONNECT) and
 * moves the bytes. The relay is a fork of the starter (which may be `serve`, with threads): it
 * allocates nothing and uses system calls only, on static state.
 */
#include "backend/port-relay.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/proto.h"
#include "runtime/net-capture.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/time-util.h"

#define RELAY_PORTS_MAX 64
#define RELAY_BUF (16u << 10)

enum kind { K_LISTEN = 1, K_PIDFD, K_CLIENT, K_AGENT, K_SANDBOX };

struct rconn {
        int client, agent, sb; /* -1 when not open; a free slot has client -1 */
        uint16_t port;
        int64_t deadline_ns;                       /* while waiting for the agent */
        size_t up_off, up_len, down_off, down_len; /* up: client -> sandbox */
        bool client_eof, sb_eof, up_shut, down_shut;
        char up[RELAY_BUF], down[RELAY_BUF];
};

static struct {
        int fd;
        uint16_t port; /* in the sandbox */
} lst[RELAY_PORTS_MAX];
static size_t n_lst;
static struct rconn conns[PORT_RELAY_CONNS];
static int epfd = -1, agent_sock = -1;
static struct stat sandbox_ns;

int port_relay_check(const struct port_spec *ports, size_t n, struct ak_err *err)
{
        if (n > RELAY_PORTS_MAX)
                return ak_err_set(err, E2BIG, "at most %d published ports in proxy mode",
                                  RELAY_PORTS_MAX);
        for (size_t i = 0; i < n; i++) {
                if (ports[i].udp)
                        return ak_err_set(err, ENOTSUP,
                                          "publishing UDP port %u needs --network full (proxy "
                                          "mode publishes TCP ports only)",
                                          (unsigned)ports[i].container_port);
                if (ports[i].container_port == NET_CAPTURE_TCP_PORT ||
                    ports[i].container_port == NET_CAPTURE_DNS_PORT)
                        return ak_err_set(err, EINVAL,
                                          "port %u in the sandbox is the egress proxy's in proxy "
                                          "mode: publish another, or use --network full",
                                          (unsigned)ports[i].container_port);
        }
        return 0;
}

static uint64_t tag(enum kind k, size_t i)
{
        return (uint64_t)k << 32 | i;
}

static void ep(int op, int fd, uint32_t events, uint64_t data)
{
        struct epoll_event e = {.events = events, .data.u64 = data};
        (void)epoll_ctl(epfd, op, fd, &e);
}

static void drop_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void conn_drop(struct rconn *c)
{
        drop_fd(&c->agent);
        drop_fd(&c->sb);
        drop_fd(&c->client);
}

/* TCP_CONNECT {PORT} to the agent, on a new connection to its socket (through the O_PATH fd the
 * relay was given: the path is never looked up again). */
static int ask_agent(struct rconn *c)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        uint8_t req[AK_FRAME_HDR + 2 + 4 + 8] = {0};
        int a;

        (void)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", agent_sock);
        a = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (a < 0)
                return -errno;
        if (connect(a, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(a);
                return -ECONNREFUSED;
        }
        req[0] = 2 + 4 + 8; /* payload length (u32 LE) */
        req[4] = AK_TCP_CONNECT;
        req[8] = AK_T_PORT; /* field: u16 tag, u32 length 8, u64 value */
        req[10] = 8;
        req[14] = (uint8_t)(c->port & 0xff);
        req[15] = (uint8_t)(c->port >> 8);
        if (send(a, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
                close(a);
                return -EIO;
        }
        c->agent = a;
        c->deadline_ns = now_monotonic_ns() + (int64_t)PORT_RELAY_AGENT_MS * NSEC_PER_MSEC;
        ep(EPOLL_CTL_ADD, a, EPOLLIN, tag(K_AGENT, (size_t)(c - conns)));
        return 0;
}

/* What the sandbox handed back is a TCP/IPv4 socket connected to 127.0.0.1:port, in the
 * sandbox's own network namespace. */
static bool sandbox_tcp(int fd, uint16_t port)
{
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer), l;
        struct stat st;
        int v, ns;
        bool same;

        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return false;
        l = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0 || v != AF_INET)
                return false;
        l = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 || v != SOCK_STREAM)
                return false;
        l = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 || v != IPPROTO_TCP)
                return false;
        if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0 || len != sizeof(peer) ||
            peer.sin_family != AF_INET || peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK) ||
            peer.sin_port != htons(port))
                return false;
        ns = ioctl(fd, SIOCGSKNS);
        if (ns < 0)
                return false;
        same =
            fstat(ns, &st) == 0 && st.st_dev == sandbox_ns.st_dev && st.st_ino == sandbox_ns.st_ino;
        close(ns);
        return same;
}

static void interest(struct rconn *c, bool add)
{
        uint32_t ce = 0, se = 0;
        size_t i = (size_t)(c - conns);

        if (!c->client_eof && c->up_len < RELAY_BUF)
                ce |= EPOLLIN;
        if (c->down_off < c->down_len)
                ce |= EPOLLOUT;
        if (!c->sb_eof && c->down_len < RELAY_BUF)
                se |= EPOLLIN;
        if (c->up_off < c->up_len)
                se |= EPOLLOUT;
        ep(add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->client, ce, tag(K_CLIENT, i));
        ep(add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->sb, se, tag(K_SANDBOX, i));
}

static void on_agent(struct rconn *c)
{
        uint8_t hdr[64];
        int fd = -1;
        size_t n = 0;
        ssize_t k = fd_recv(c->agent, hdr, sizeof(hdr), &fd, 1, &n);

        if (k == -EAGAIN)
                return;
        drop_fd(&c->agent);
        /* exactly the OK frame (no payload) with exactly one fd */
        if (k != AK_FRAME_HDR || n != 1 || hdr[0] || hdr[1] || hdr[2] || hdr[3] ||
            hdr[4] != AK_OK || hdr[5] || !sandbox_tcp(fd, c->port)) {
                if (n)
                        close(fd);
                conn_drop(c);
                return;
        }
        c->sb = fd;
        if (fd_set_nonblock(fd, true) < 0) {
                conn_drop(c);
                return;
        }
        interest(c, true);
}

/* Moves what can move without blocking; false when the connection is over. */
static bool pump(struct rconn *c)
{
        ssize_t k;

        if (!c->client_eof && c->up_len < RELAY_BUF) {
                k = recv(c->client, c->up + c->up_len, RELAY_BUF - c->up_len, 0);
                if (k > 0)
                        c->up_len += (size_t)k;
                else if (k == 0)
                        c->client_eof = true;
                else if (errno != EAGAIN && errno != EINTR)
                        return false;
        }
        if (!c->sb_eof && c->down_len < RELAY_BUF) {
                k = recv(c->sb, c->down + c->down_len, RELAY_BUF - c->down_len, 0);
                if (k > 0)
                        c->down_len += (size_t)k;
                else if (k == 0)
                        c->sb_eof = true;
                else if (errno != EAGAIN && errno != EINTR)
                        return false;
        }
        if (c->up_off < c->up_len) {
                k = send(c->sb, c->up + c->up_off, c->up_len - c->up_off, MSG_NOSIGNAL);
                if (k > 0)
                        c->up_off += (size_t)k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return false;
        }
        if (c->down_off < c->down_len) {
                k = send(c->client, c->down + c->down_off, c->down_len - c->down_off, MSG_NOSIGNAL);
                if (k > 0)
                        c->down_off += (size_t)k;
                else if (k < 0 && errno != EAGAIN && errno != EINTR)
                        return false;
        }
        if (c->up_off == c->up_len)
                c->up_off = c->up_len = 0;
        if (c->down_off == c->down_len)
                c->down_off = c->down_len = 0;
        if (c->client_eof && !c->up_len && !c->up_shut) {
                (void)shutdown(c->sb, SHUT_WR);
                c->up_shut = true;
        }
        if (c->sb_eof && !c->down_len && !c->down_shut) {
                (void)shutdown(c->client, SHUT_WR);
                c->down_shut = true;
        }
        return !(c->up_shut && c->down_shut);
}

static void on_accept(size_t li)
{
        for (;;) {
                int fd = accept4(lst[li].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct rconn *c = NULL;

                if (fd < 0)
                        return;
                for (size_t i = 0; i < ARRAY_SIZE(conns) && !c; i++)
                        if (conns[i].client < 0)
                                c = &conns[i];
                if (!c) { /* the bound: refused at once */
                        close(fd);
                        continue;
                }
                memset(c, 0, offsetof(struct rconn, up));
                c->client = fd;
                c->agent = c->sb = -1;
                c->port = lst[li].port;
                if (ask_agent(c) < 0)
                        conn_drop(c);
        }
}

static _Noreturn void relay_main(int pidfd)
{
        struct epoll_event ev[64];

        (void)prctl(PR_SET_NAME, "ak-port-relay");
        for (size_t i = 0; i < ARRAY_SIZE(conns); i++)
                conns[i].client = conns[i].agent = conns[i].sb = -1;
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0)
                _exit(1);
        ep(EPOLL_CTL_ADD, pidfd, EPOLLIN, tag(K_PIDFD, 0));
        for (size_t i = 0; i < n_lst; i++)
                ep(EPOLL_CTL_ADD, lst[i].fd, EPOLLIN, tag(K_LISTEN, i));
        for (;;) {
                int n = epoll_wait(epfd, ev, ARRAY_SIZE(ev), 1000);
                int64_t now = now_monotonic_ns();

                for (int j = 0; j < n; j++) {
                        enum kind k = (enum kind)(ev[j].data.u64 >> 32);
                        size_t i = (size_t)(ev[j].data.u64 & 0xffffffffu);
                        struct rconn *c = &conns[i < ARRAY_SIZE(conns) ? i : 0];

                        switch (k) {
                        case K_PIDFD: /* the sandbox is gone: so are its ports */
                                _exit(0);
                        case K_LISTEN:
                                if (i < n_lst)
                                        on_accept(i);
                                break;
                        case K_AGENT:
                                if (c->agent >= 0)
                                        on_agent(c);
                                break;
                        case K_CLIENT:
                        case K_SANDBOX: {
                                size_t before = c->up_len + c->up_off + c->down_len + c->down_off;
                                bool eof = c->client_eof || c->sb_eof;
                                if (c->sb < 0)
                                        break;
                                bool moved;
                                if (!pump(c)) {
                                        conn_drop(c); /* over */
                                        break;
                                }
                                moved =
                                    before != c->up_len + c->up_off + c->down_len + c->down_off ||
                                    eof != (c->client_eof || c->sb_eof);
                                if ((ev[j].events & (EPOLLHUP | EPOLLERR)) && !moved) {
                                        conn_drop(c); /* a hang-up nothing can follow */
                                        break;
                                }
                                if (moved && (c->up_shut || c->down_shut))
                                        c->deadline_ns = now + (int64_t)PORT_RELAY_HALF_CLOSED_MS *
                                                                   NSEC_PER_MSEC;
                                interest(c, false);
                                break;
                        }
                        default:
                                break;
                        }
                }
                for (size_t i = 0; i < ARRAY_SIZE(conns); i++) {
                        struct rconn *c = &conns[i];
                        if (c->agent >= 0 && now > c->deadline_ns)
                                conn_drop(c); /* the agent did not answer in time */
                        else if (c->sb >= 0 && (c->up_shut || c->down_shut) && now > c->deadline_ns)
                                conn_drop(c); /* half closed, and the other half silent */
                }
        }
}

static int bind_listener(uint16_t port, struct ak_err *err)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int64_t deadline = now_monotonic_ns() + (int64_t)PORT_RELAY_BIND_RETRY_MS * NSEC_PER_MSEC;
        int one = 1, fd, r;

        for (;;) {
                fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return ak_err_errno(err, errno, "socket");
                (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 128) == 0)
                        return fd;
                r = errno;
                close(fd);
                /* a stopped sandbox's relay lets go of its ports as soon as it sees the sandbox
                 * gone: a restart may come first */
                if (r != EADDRINUSE || now_monotonic_ns() > deadline)
                        return ak_err_errno(err, r, "cannot publish port %u on 127.0.0.1",
                                            (unsigned)port);
                (void)usleep(50 * 1000);
        }
}

int port_relay_start(const struct port_spec *ports, size_t n, int agent, int pidfd, int netns,
                     struct ak_err *err)
{
        int fds[RELAY_PORTS_MAX], status = 0, r;
        struct stat ns;
        size_t nfd = 0;
        pid_t pid;

        r = port_relay_check(ports, n, err);
        if (r < 0)
                return r;
        if (fstat(netns, &ns) < 0)
                return ak_err_errno(err, errno, "the sandbox's network namespace");
        for (; nfd < n; nfd++) {
                uint16_t host = ports[nfd].host_port > 0 ? (uint16_t)ports[nfd].host_port
                                                         : ports[nfd].container_port;
                fds[nfd] = bind_listener(host, err);
                if (fds[nfd] < 0) {
                        r = fds[nfd];
                        for (size_t j = 0; j < nfd; j++)
                                close(fds[j]);
                        return r;
                }
        }
        pid = fork();
        if (pid == 0) {
                /* the relay's own state is set in the relay (the starter may run several starts
                 * at once: serve's threads) */
                int keep[RELAY_PORTS_MAX + 2], null, k = 0;
                sigset_t none;
                pid_t g;
                if (setsid() < 0)
                        _exit(1);
                g = fork();
                if (g != 0)
                        _exit(g < 0);
                null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                        _exit(1);
                for (size_t i = 0; i < n; i++) {
                        lst[i].fd = keep[k++] = fds[i];
                        lst[i].port = ports[i].container_port;
                }
                n_lst = n;
                keep[k++] = agent;
                keep[k++] = pidfd;
                (void)close_all_fds_except(3, keep, (size_t)k);
                agent_sock = agent;
                sandbox_ns = ns;
                for (int s = 1; s < NSIG; s++)
                        if (s != SIGKILL && s != SIGSTOP)
                                (void)signal(s, SIG_DFL);
                (void)signal(SIGPIPE, SIG_IGN);
                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
                relay_main(pidfd);
        }
        r = pid < 0 ? -errno : 0;
        for (size_t j = 0; j < nfd; j++)
                close(fds[j]);
        if (r < 0)
                return ak_err_errno(err, -r, "fork the port relay");
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return ak_err_set(err, EIO, "the port relay did not start");
        return 0;
}
