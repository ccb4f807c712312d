// SPDX-License-Identifier: Apache-2.0
/*
 * Proxy mode's capture, set up by the runtime's child in the sandbox's new network namespace
 * (net-capture.h): the AnyIP route over rtnetlink, the nf_tables batch nft-gen built, and the
 * listeners. System calls and stack buffers only: this runs between clone() and execve() in a
 * child that shares its parent's memory, so it must never allocate or take a lock.
 */
#include "net-capture.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nft-batch.h"

/* What each message of the nf_tables batch needs, by its sequence number (nft-gen.c's order),
 * for an error that names the missing kernel feature. */
static const char *nft_need(uint32_t seq)
{
        switch (seq) {
        case 2:
                return "nf_tables in the sandbox's network namespace (kernel: CONFIG_NF_TABLES)";
        case 3:
                return "nf_tables nat chains (kernel: CONFIG_NFT_NAT, nf_nat, nf_conntrack)";
        case 4:
                return "nf_tables filter chains (kernel: CONFIG_NF_TABLES_IPV4)";
        case 5:
        case 6:
        case 7:
                return "nf_tables redirect (kernel: CONFIG_NFT_REDIR, nft_redir)";
        case 8:
                return "nf_tables conntrack state (kernel: CONFIG_NFT_CT, nf_conntrack)";
        case 9:
                return "nf_tables reject (kernel: CONFIG_NFT_REJECT, nft_reject_ipv4)";
        default:
                return "nf_tables (kernel: CONFIG_NF_TABLES)";
        }
}

/* Reads acknowledgements on fd until `want` arrived: 0, or the first error (-errno) with the
 * sequence number of the message it answers in *ret_seq. */
static int read_acks(int fd, unsigned want, uint32_t *ret_seq)
{
        union {
                char buf[8192];
                struct nlmsghdr align;
        } u;
        unsigned got = 0;

        while (got < want) {
                ssize_t n = recv(fd, u.buf, sizeof(u.buf), MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN ? -EIO : -errno; /* the kernel answers at once */
                for (struct nlmsghdr *h = &u.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
                        const struct nlmsgerr *e = NLMSG_DATA(h);
                        if (h->nlmsg_type != NLMSG_ERROR)
                                continue;
                        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                                return -EIO;
                        if (e->error) {
                                *ret_seq = e->msg.nlmsg_seq;
                                return e->error < 0 ? e->error : -e->error;
                        }
                        got++;
                }
        }
        return 0;
}

static int send_kernel(int fd, const void *msg, size_t len)
{
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        ssize_t n;

        do
                n = sendto(fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

/* ip addr add 10.0.2.15/32 dev lo: an IPv4 address other than loopback, so that getaddrinfo's
 * AI_ADDRCONFIG (glibc's check_pf: any address but 127.0.0.1) sees IPv4 configured and answers
 * A records (ssh, apt, `getent ahosts` asked it and got nothing). It routes nowhere: with the
 * AnyIP route every address is local anyway, and TCP to it is captured like any other. */
static int own_address(int fd, int lo_index)
{
        struct {
                struct nlmsghdr n;
                struct ifaddrmsg a;
                struct rtattr local;
                struct in_addr local_addr;
                struct rtattr addr;
                struct in_addr addr_addr;
        } req;
        uint32_t seq = 0;
        int r;

        memset(&req, 0, sizeof(req));
        req.n.nlmsg_len = sizeof(req);
        req.n.nlmsg_type = RTM_NEWADDR;
        req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        req.n.nlmsg_seq = 2;
        req.a.ifa_family = AF_INET;
        req.a.ifa_prefixlen = 32;
        req.a.ifa_scope = RT_SCOPE_HOST;
        req.a.ifa_index = (unsigned)lo_index;
        req.local.rta_type = IFA_LOCAL;
        req.local.rta_len = RTA_LENGTH(sizeof(struct in_addr));
        req.local_addr.s_addr = htonl(0x0a00020f); /* 10.0.2.15 */
        req.addr.rta_type = IFA_ADDRESS;
        req.addr.rta_len = RTA_LENGTH(sizeof(struct in_addr));
        req.addr_addr = req.local_addr;
        r = send_kernel(fd, &req, sizeof(req));
        return r == 0 ? read_acks(fd, 1, &seq) : r;
}

/* ip route add local default dev lo (table local): every IPv4 address is this namespace's own,
 * so a connect() anywhere reaches the nat hook instead of failing with ENETUNREACH. */
static int anyip_route(void)
{
        struct {
                struct nlmsghdr n;
                struct rtmsg r;
                struct rtattr a;
                int oif;
        } req;
        struct ifreq ifr;
        uint32_t seq = 0;
        int fd, r;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        memset(&ifr, 0, sizeof(ifr));
        memcpy(ifr.ifr_name, "lo", 3);
        r = ioctl(fd, SIOCGIFINDEX, &ifr) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        memset(&req, 0, sizeof(req));
        req.n.nlmsg_len = sizeof(req);
        req.n.nlmsg_type = RTM_NEWROUTE;
        req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        req.n.nlmsg_seq = 1;
        req.r.rtm_family = AF_INET;
        req.r.rtm_table = RT_TABLE_LOCAL;
        req.r.rtm_protocol = RTPROT_BOOT;
        req.r.rtm_scope = RT_SCOPE_HOST;
        req.r.rtm_type = RTN_LOCAL;
        req.a.rta_type = RTA_OIF;
        req.a.rta_len = RTA_LENGTH(sizeof(int));
        req.oif = ifr.ifr_ifindex;
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
                return -errno;
        r = send_kernel(fd, &req, sizeof(req));
        if (r == 0)
                r = read_acks(fd, 1, &seq);
        if (r == 0)
                r = own_address(fd, ifr.ifr_ifindex);
        close(fd);
        return r;
}

int net_loopback_up(void)
{
        struct ifreq ifr;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int r = 0;

        if (fd < 0)
                return -errno;
        memset(&ifr, 0, sizeof(ifr));
        memcpy(ifr.ifr_name, "lo", 3);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                r = -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (r == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                r = -errno;
        close(fd);
        return r;
}

int net_capture_install(const char **ret_what)
{
        uint32_t seq = 0;
        int fd, r;

        r = anyip_route();
        if (r < 0) {
                *ret_what = "add the AnyIP route (local default dev lo) and 10.0.2.15 on lo";
                return r;
        }
        fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0) {
                r = -errno;
                *ret_what = "open nfnetlink: proxy mode needs nf_tables (kernel: "
                            "CONFIG_NETFILTER_NETLINK, CONFIG_NF_TABLES)";
                return r;
        }
        r = send_kernel(fd, nft_capture_batch, nft_capture_batch_len);
        if (r == 0)
                r = read_acks(fd, NFT_CAPTURE_ACKS, &seq);
        close(fd);
        if (r < 0)
                *ret_what = nft_need(seq);
        return r;
}

static int listener(int type, uint16_t port, int backlog)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1, r;
        int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            (type == SOCK_STREAM && listen(fd, backlog) < 0)) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int net_capture_listeners(int fds[NET_CAPTURE_FDS], const char **ret_what)
{
        fds[0] = listener(SOCK_STREAM, NET_CAPTURE_TCP_PORT, NET_CAPTURE_BACKLOG);
        fds[1] = fds[0] >= 0 ? listener(SOCK_DGRAM, NET_CAPTURE_DNS_PORT, 0) : -1;
        fds[2] = fds[1] >= 0 ? listener(SOCK_STREAM, NET_CAPTURE_DNS_PORT, 128) : -1;
        for (int i = 0; i < NET_CAPTURE_FDS; i++)
                if (fds[i] < 0) {
                        int r = fds[i];
                        for (int j = 0; j < i; j++)
                                close(fds[j]);
                        *ret_what = "make the proxy's listeners (127.0.0.1:15001, :15053)";
                        return r;
                }
        return 0;
}
