// SPDX-License-Identifier: Apache-2.0
/*
 * Proxy mode for the microvm backend (docs/network.md, "The microvm backend"): the two ends of
 * a virtual machine's network, which has no NIC and goes through the agent's channel instead.
 *
 * Host end, the relay (agentkernel-agent --vm-relay ... --net-report FD): before it serves, it
 * moves into a network namespace of its own (as root: CLONE_NEWNET; as a user: in a new user
 * namespace as well) with the native backend's whole capture (runtime/net-capture.h: loopback,
 * the AnyIP route, the nf_tables batch, the three listeners) and hands the listeners to its
 * starter over FD, which registers them with the user's policy proxy as any native sandbox's.
 * Every DIAL of the guest is then a connect() from inside that namespace: captured, and decided
 * by the proxy, whatever address the guest named.
 *
 * Guest end, the VM's init: the same capture inside the guest (no interface but loopback), the
 * TCP listeners given to the multiplexer (each connection a DIAL to its original destination),
 * /etc/resolv.conf naming 127.0.0.1, and a small bridge that turns each DNS query over UDP into
 * DNS over TCP to port 53 (captured in turn, so it travels as a DIAL to the proxy's DNS).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent-guest.h"
#include "agent-net.h"
#include "runtime/net-capture.h"
#include "shared/fd-util.h"

#define DNS_BRIDGE_TIMEOUT_S 5 /* per query: connect, send, answer */
#define DNS_MSG_MAX 4096
#define RESOLV "nameserver 127.0.0.1\n"

/* Loopback, the capture and its listeners in the caller's network namespace. */
static int capture_here(int fds[NET_CAPTURE_FDS], const char **what)
{
        int r = net_loopback_up();

        if (r < 0) {
                *what = "bring up loopback";
                return r;
        }
        r = net_capture_install(what);
        return r < 0 ? r : net_capture_listeners(fds, what);
}

static void report_error(int fd, const char *what, int r)
{
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-r));

        if (n > 0)
                (void)send(fd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1,
                           MSG_NOSIGNAL);
}

int agent_net_relay_setup(int report_fd)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * NET_CAPTURE_FDS)];
                struct cmsghdr align;
        } cm;
        const char *what = "";
        char ok = 'L';
        struct iovec iov = {&ok, 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        struct cmsghdr *c;
        int fds[NET_CAPTURE_FDS];
        int r;

        /* as a user: a user namespace of our own gives the capabilities over the new network
         * namespace that the capture needs, and nothing on the host */
        if (unshare(geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET) < 0) {
                report_error(report_fd, "a network namespace for the relay", -errno);
                return -1;
        }
        r = capture_here(fds, &what);
        if (r < 0) {
                report_error(report_fd, what, r);
                return -1;
        }
        memset(cm.buf, 0, sizeof(cm.buf));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(c), fds, sizeof(fds));
        r = sendmsg(report_fd, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
        for (int i = 0; i < NET_CAPTURE_FDS; i++)
                close(fds[i]);
        return r;
}

/* One query: DNS over TCP (RFC 1035 4.2.2: a two-byte length first) to 127.0.0.1:53, which
 * the capture sends on as a DIAL; the answer goes back to the client as a datagram. */
static void bridge_one(int udp, const uint8_t *q, size_t qlen, const struct sockaddr_in *from)
{
        const struct sockaddr_in dns = {.sin_family = AF_INET,
                                        .sin_port = htons(53),
                                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        const struct timeval tv = {DNS_BRIDGE_TIMEOUT_S, 0};
        uint8_t msg[DNS_MSG_MAX + 2], len[2];
        size_t alen;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return;
        msg[0] = (uint8_t)(qlen >> 8);
        msg[1] = (uint8_t)qlen;
        memcpy(msg + 2, q, qlen);
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
            connect(fd, (const struct sockaddr *)&dns, sizeof(dns)) < 0 ||
            write_all(fd, msg, qlen + 2) < 0 || read_exact(fd, len, 2) < 0)
                goto out;
        alen = (size_t)len[0] << 8 | len[1];
        if (alen == 0 || alen > DNS_MSG_MAX || read_exact(fd, msg, alen) < 0)
                goto out;
        (void)sendto(udp, msg, alen, 0, (const struct sockaddr *)from, sizeof(*from));
out:
        close(fd);
}

/* The DNS bridge's process: one query at a time (a client retries one that timed out). */
static _noreturn_ void dns_bridge(int udp)
{
        uint8_t q[DNS_MSG_MAX];

        (void)fd_set_nonblock(udp, false);
        for (;;) {
                struct sockaddr_in from;
                socklen_t flen = sizeof(from);
                ssize_t n = recvfrom(udp, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
                if (n < 0 && errno != EINTR)
                        usleep(10000);
                if (n >= 12 && flen == sizeof(from)) /* a DNS header at least */
                        bridge_one(udp, q, (size_t)n, &from);
        }
}

void agent_net_guest_setup(int ret_capture[2])
{
        const char *what = "";
        int fds[NET_CAPTURE_FDS];
        int r = capture_here(fds, &what);
        pid_t pid;

        if (r < 0)
                agent_guest_fail("network (proxy mode): %s: %s", what, strerror(-r));
        /* the image's own file is replaced: port 53 anywhere ends at the proxy anyway, but a
         * resolver must be named */
        (void)mkdir("/etc", 0755); /* an image may have none */
        (void)unlink("/etc/resolv.conf");
        r = write_file_atomic_at(AT_FDCWD, "/etc/resolv.conf", RESOLV, sizeof(RESOLV) - 1, 0644,
                                 false);
        if (r < 0)
                agent_guest_fail("network (proxy mode): write /etc/resolv.conf: %s", strerror(-r));
        pid = fork();
        if (pid < 0)
                agent_guest_fail("fork: %s", strerror(errno));
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                close(fds[0]);
                close(fds[2]);
                dns_bridge(fds[1]);
        }
        close(fds[1]);
        ret_capture[0] = fds[0]; /* TCP 15001 */
        ret_capture[1] = fds[2]; /* DNS over TCP 15053 */
}
