// SPDX-License-Identifier: Apache-2.0
/*
 * Peers of `serve` and the connection table (see peer.h). An identity learnt here only ever
 * narrows what a peer may do: an unknown owner is "someone else", a socket that is closed,
 * orphaned or in TIME_WAIT (whose recorded owner reads as uid 0) is unknown, and a unix peer in
 * other namespaces than the server (a sandbox or a container reaching the socket through a
 * mount) is not trusted whatever its uid.
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define PROC_NET_MAX (64u << 20)

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4_mapped(const uint8_t a[16])
{
        return memcmp(a, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* ---- TCP: who owns the client socket ---- */

int peer_diag_open(void)
{
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

        if (fd < 0)
                return -errno;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/* A socket that is alive and owned: not a TIME_WAIT or request mini-socket (their owner reads
 * as 0), not orphaned (inode 0: its process closed it). */
static bool alive_state(unsigned state, unsigned long inode)
{
        return state != 6 /* TCP_TIME_WAIT */ && state != 12 /* TCP_NEW_SYN_RECV */ &&
               state != 10 /* TCP_LISTEN */ && inode != 0;
}

static int diag_owner(int diag_fd, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
                      uint16_t dport, uid_t *ret_uid)
{
        static unsigned seq;
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 r;
        } req;
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        union {
                struct nlmsghdr h;
                char b[8192];
        } reply;
        bool v4 = is_v4_mapped(src) && is_v4_mapped(dst);
        ssize_t n;

        memset(&req, 0, sizeof(req));
        req.nlh.nlmsg_len = sizeof(req);
        req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req.nlh.nlmsg_flags = NLM_F_REQUEST;
        req.nlh.nlmsg_seq = ++seq;
        req.r.sdiag_family = v4 ? AF_INET : AF_INET6;
        req.r.sdiag_protocol = IPPROTO_TCP;
        req.r.idiag_states = ~0u;
        req.r.id.idiag_sport = htons(sport);
        req.r.id.idiag_dport = htons(dport);
        if (v4) {
                memcpy(&req.r.id.idiag_src[0], src + 12, 4);
                memcpy(&req.r.id.idiag_dst[0], dst + 12, 4);
        } else {
                memcpy(req.r.id.idiag_src, src, 16);
                memcpy(req.r.id.idiag_dst, dst, 16);
        }
        req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
        if (sendto(diag_fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
                return -errno;
        for (;;) {
                struct sockaddr_nl from;
                socklen_t flen = sizeof(from);
                n = recvfrom(diag_fd, &reply, sizeof(reply), 0, (struct sockaddr *)&from, &flen);
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                if (from.nl_pid != 0)
                        continue; /* only the kernel answers */
                for (struct nlmsghdr *h = &reply.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_seq != seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);
                                return e->error < 0 ? e->error : -ENOENT;
                        }
                        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
                            h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                                const struct inet_diag_msg *m = NLMSG_DATA(h);
                                if (!alive_state(m->idiag_state, m->idiag_inode))
                                        return -ENOENT;
                                *ret_uid = m->idiag_uid;
                                return 0;
                        }
                        if (h->nlmsg_type == NLMSG_DONE)
                                return -ENOENT;
                }
        }
}

/* /proc/net/tcp prints each 32-bit word of an address as the number it is in memory. */
static bool proc_addr_eq(const char *hex, const uint8_t a[16], bool v4)
{
        size_t words = v4 ? 1 : 4;

        for (size_t i = 0; i < words; i++) {
                char w[9];
                uint32_t want;
                memcpy(w, hex + 8 * i, 8);
                w[8] = '\0';
                memcpy(&want, a + (v4 ? 12 : 4 * i), 4);
                if ((uint32_t)strtoul(w, NULL, 16) != want)
                        return false;
        }
        return true;
}

static int proc_owner(const char *file, bool v4, const uint8_t src[16], uint16_t sport,
                      const uint8_t dst[16], uint16_t dport, uid_t *ret_uid)
{
        cleanup_buf struct buf b = BUF_INIT;
        size_t alen = v4 ? 8 : 32;
        char *line, *save = NULL;
        int r = read_file_at(AT_FDCWD, file, &b, PROC_NET_MAX);

        if (r < 0)
                return r;
        if (!b.data || buf_append(&b, "", 1) < 0)
                return -ENOENT;
        for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char local[33], rem[33];
                unsigned lport, rport, state, uid;
                unsigned long inode;
                int k = v4 ? sscanf(line,
                                    " %*u: %8[0-9A-Fa-f]:%x %8[0-9A-Fa-f]:%x %x %*x:%*x %*x:%*x "
                                    "%*x %u %*d %lu",
                                    local, &lport, rem, &rport, &state, &uid, &inode)
                           : sscanf(line,
                                    " %*u: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x %*x:%*x "
                                    "%*x:%*x %*x %u %*d %lu",
                                    local, &lport, rem, &rport, &state, &uid, &inode);
                if (k != 7)
                        continue;
                if (strlen(local) != alen || strlen(rem) != alen || lport != sport ||
                    rport != dport || !proc_addr_eq(local, src, v4) || !proc_addr_eq(rem, dst, v4))
                        continue;
                if (!alive_state(state, inode))
                        return -ENOENT;
                *ret_uid = (uid_t)uid;
                return 0;
        }
        return -ENOENT;
}

int peer_tcp_owner(int diag_fd, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
                   uint16_t dport, uid_t *ret_uid)
{
        int r = -ENOENT;

        if (diag_fd >= 0) {
                r = diag_owner(diag_fd, src, sport, dst, dport, ret_uid);
                if (r == 0 || r == -ENOENT)
                        return r;
        }
        /* no sock_diag (an old or trimmed kernel): the slower tables */
        if (is_v4_mapped(src) && is_v4_mapped(dst)) {
                r = proc_owner("/proc/net/tcp", true, src, sport, dst, dport, ret_uid);
                if (r == 0)
                        return 0;
        }
        return proc_owner("/proc/net/tcp6", false, src, sport, dst, dport, ret_uid);
}

static void to_v6(const struct sockaddr_storage *ss, uint8_t out[16], uint16_t *port)
{
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
                memcpy(out, v4_mapped_prefix, 12);
                memcpy(out + 12, &a->sin_addr, 4);
                *port = ntohs(a->sin_port);
        } else {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
                memcpy(out, &a->sin6_addr, 16);
                *port = ntohs(a->sin6_port);
        }
}

/* ---- unix sockets: credentials and namespaces ---- */

static bool same_ns(pid_t pid)
{
        static const char *const kinds[] = {"user", "mnt", "pid"};

        if (pid <= 0)
                return false;
        for (size_t i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
                char path[64];
                struct stat theirs, ours;
                (void)snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kinds[i]);
                if (stat(path, &theirs) < 0)
                        return false;
                (void)snprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
                if (stat(path, &ours) < 0 || theirs.st_ino != ours.st_ino ||
                    theirs.st_dev != ours.st_dev)
                        return false;
        }
        return true;
}

static void identify_unix(int fd, struct peer *p)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        cleanup_close int pidfd = -1;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
                return;
        p->uid_known = true;
        p->uid = cred.uid;
        p->pid = cred.pid;
        len = sizeof(pidfd);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                pidfd = -1;
        p->same_ns = same_ns(cred.pid);
        /* the pid could have been recycled between connect() and the look at /proc: with a
         * pidfd of the connecting process, it must still be alive (then the pid is still its) */
        if (p->same_ns && pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 &&
            errno != EPERM)
                p->same_ns = false;
}

void peer_identify(int fd, int diag_fd, struct peer *ret)
{
        struct sockaddr_storage local, remote;
        socklen_t llen = sizeof(local), rlen = sizeof(remote);
        uint8_t laddr[16];
        uint16_t lport, rport;
        uid_t uid;

        memset(ret, 0, sizeof(*ret));
        if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
                return;
        if (local.ss_family == AF_UNIX) {
                ret->kind = PEER_UNIX;
                identify_unix(fd, ret);
                return;
        }
        ret->kind = PEER_TCP;
        if ((local.ss_family != AF_INET && local.ss_family != AF_INET6) ||
            getpeername(fd, (struct sockaddr *)&remote, &rlen) < 0 ||
            remote.ss_family != local.ss_family)
                return;
        to_v6(&local, laddr, &lport);
        to_v6(&remote, ret->addr, &rport);
        /* the client's socket: its local end is our remote one */
        if (peer_tcp_owner(diag_fd, ret->addr, rport, laddr, lport, &uid) == 0) {
                ret->uid_known = true;
                ret->uid = uid;
        }
}

void peer_describe(const struct peer *p, char *buf, size_t len)
{
        char a[INET6_ADDRSTRLEN] = "?";

        if (p->uid_known) {
                (void)snprintf(buf, len, "uid %u%s", (unsigned)p->uid,
                               p->kind == PEER_UNIX ? " (unix socket)" : "");
                return;
        }
        if (p->kind == PEER_UNIX) {
                (void)snprintf(buf, len, "an unknown unix-socket peer");
                return;
        }
        if (is_v4_mapped(p->addr))
                (void)inet_ntop(AF_INET, p->addr + 12, a, sizeof(a));
        else
                (void)inet_ntop(AF_INET6, p->addr, a, sizeof(a));
        (void)snprintf(buf, len, "%s (owner unknown)", a);
}

/* ---- the connection table ---- */

static bool same_peer(const struct peer *a, const struct peer *b)
{
        if (a->uid_known != b->uid_known)
                return false;
        if (a->uid_known)
                return a->uid == b->uid;
        return a->kind == b->kind && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

void conns_init(struct conns *t, uid_t owner, const struct conn_limits *lim)
{
        memset(t, 0, sizeof(*t));
        pthread_mutex_init(&t->lock, NULL);
        t->owner = owner;
        t->lim = *lim;
}

static void unlink_conn(struct conns *t, struct conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                t->head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        t->n--;
        if (!c->privileged)
                t->n_others--;
}

static void conn_free(struct conn *c)
{
        if (c->ref_fd >= 0)
                close(c->ref_fd);
        free(c);
}

int conns_admit(struct conns *t, const struct peer *p, int fd, int64_t deadline_ns,
                struct conn **ret, const char **ret_why)
{
        bool privileged = p->uid_known && (p->uid == t->owner || p->uid == 0);
        struct conn *c, *stale = NULL;
        size_t same = 0;
        int ref;

        *ret = NULL;
        *ret_why = NULL;
        pthread_mutex_lock(&t->lock);
        for (c = t->head; c; c = c->next) {
                /* fd is open again: an entry libmicrohttpd never took (it closed the fd) */
                if (!c->started && c->mhd_fd == fd)
                        stale = c;
                else if (!privileged && !c->privileged && same_peer(&c->peer, p))
                        same++;
        }
        if (stale) {
                unlink_conn(t, stale);
                conn_free(stale);
        }
        if (t->n >= t->lim.total)
                *ret_why = "the server's connection limit";
        else if (!privileged && t->n_others >= t->lim.others)
                *ret_why = "the limit for all other users together";
        else if (!privileged && same >= t->lim.per_peer)
                *ret_why = "its connection limit";
        if (*ret_why) {
                pthread_mutex_unlock(&t->lock);
                return -EUSERS;
        }
        ref = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        c = ref >= 0 ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
                int e = ref < 0 ? errno : ENOMEM;
                pthread_mutex_unlock(&t->lock);
                if (ref >= 0)
                        close(ref);
                return -e;
        }
        c->peer = *p;
        c->privileged = privileged;
        c->trusted = privileged && p->kind == PEER_UNIX && p->same_ns;
        c->mhd_fd = fd;
        c->ref_fd = ref;
        c->deadline_ns = deadline_ns;
        c->next = t->head;
        if (t->head)
                t->head->prev = c;
        t->head = c;
        t->n++;
        if (!privileged)
                t->n_others++;
        pthread_mutex_unlock(&t->lock);
        *ret = c;
        return 0;
}

struct conn *conns_started(struct conns *t, int fd)
{
        struct conn *c;

        pthread_mutex_lock(&t->lock);
        for (c = t->head; c; c = c->next)
                if (!c->started && c->mhd_fd == fd) {
                        c->started = true;
                        break;
                }
        pthread_mutex_unlock(&t->lock);
        return c;
}

void conns_closed(struct conns *t, struct conn *c)
{
        if (!c)
                return;
        pthread_mutex_lock(&t->lock);
        unlink_conn(t, c);
        pthread_mutex_unlock(&t->lock);
        conn_free(c);
}

void conns_set_deadline(struct conns *t, struct conn *c, int64_t deadline_ns)
{
        if (!c)
                return;
        pthread_mutex_lock(&t->lock);
        c->deadline_ns = deadline_ns;
        pthread_mutex_unlock(&t->lock);
}

size_t conns_sweep(struct conns *t, int64_t now_ns)
{
        struct conn *c, *next;
        size_t ended = 0;

        pthread_mutex_lock(&t->lock);
        for (c = t->head; c; c = next) {
                next = c->next;
                if (!c->deadline_ns || now_ns < c->deadline_ns || c->ended)
                        continue;
                if (!c->started) {
                        /* libmicrohttpd dropped it without a word (out of memory) */
                        unlink_conn(t, c);
                        conn_free(c);
                        continue;
                }
                /* its thread sees the end of the stream and closes; the entry goes then */
                (void)shutdown(c->ref_fd, SHUT_RDWR);
                c->ended = true;
                ended++;
        }
        pthread_mutex_unlock(&t->lock);
        return ended;
}

void conns_clear(struct conns *t)
{
        struct conn *c;

        pthread_mutex_lock(&t->lock);
        while ((c = t->head)) {
                unlink_conn(t, c);
                conn_free(c);
        }
        pthread_mutex_unlock(&t->lock);
}
