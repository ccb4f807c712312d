/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who is on the other end of a connection to `serve`, and how many connections each peer may
 * hold. A unix-socket peer is known by SO_PEERCRED (and its namespaces); a loopback TCP peer by
 * the owner of its client socket, looked up with NETLINK_SOCK_DIAG (or /proc/net/tcp*); a remote
 * one by its address. The TCP identity only decides connection limits, never access: access over
 * TCP always needs a key (gate.h).
 *
 * The connection table admits or refuses each accepted connection (a cap per non-owner peer,
 * one for all non-owners together, one overall, so the server's owner and root keep a reserve)
 * and enforces deadlines that libmicrohttpd's idle timeout cannot (it restarts at every byte):
 * request headers within seconds, a body within a minute. It ends a connection by shutting down
 * a duplicate of its socket that it holds itself, so a recycled descriptor number is never hit.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum peer_kind {
        PEER_UNIX = 1,
        PEER_TCP = 2,
};

struct peer {
        enum peer_kind kind;
        bool uid_known; /* unix: always; TCP: a live local client socket with an owner */
        uid_t uid;
        pid_t pid;        /* unix peers (0: not visible from here) */
        bool same_ns;     /* unix peers: same user, mount and pid namespaces as the server */
        uint8_t addr[16]; /* TCP: the client's address (IPv4 as v4-mapped IPv6) */
};

/* A NETLINK_SOCK_DIAG socket for peer_identify (-errno when there is none: /proc is used). One
 * thread at a time may use it (the accept loop). */
int peer_diag_open(void);

/* Identifies the peer of an accepted connection fd. diag_fd may be -1. Never fails: what cannot
 * be learnt stays unknown (uid_known false, same_ns false). */
void peer_identify(int fd, int diag_fd, struct peer *ret);

/* For TCP: the uid owning the local socket with the given 4-tuple (v4-mapped IPv6 addresses,
 * ports in host order), by sock_diag (diag_fd >= 0) or /proc/net/tcp*. 0 when found and alive,
 * -ENOENT when there is no such live socket (closed, orphaned, in TIME_WAIT, or not on this
 * host), other -errno on error. Exposed for tests. */
int peer_tcp_owner(int diag_fd, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
                   uint16_t dport, uid_t *ret_uid);

/* "uid 1000 (unix socket)", "uid 0", "10.0.0.5", "::1 (owner unknown)". */
void peer_describe(const struct peer *p, char *buf, size_t len);

struct conn_limits {
        size_t total;    /* all connections */
        size_t others;   /* all connections of peers other than the owner and root */
        size_t per_peer; /* one such peer (a uid; an address when the uid is unknown) */
};

struct conn {
        struct conn *prev, *next;
        struct peer peer;
        bool privileged;     /* the server's own uid or root */
        bool trusted;        /* a unix peer that needs no key (privileged, same namespaces) */
        int mhd_fd;          /* the fd handed to libmicrohttpd (a key only until started) */
        int ref_fd;          /* our own duplicate of the socket */
        bool started;        /* libmicrohttpd took it; its socket context points here */
        bool ended;          /* shut down by a deadline */
        int64_t deadline_ns; /* monotonic; 0 = none */
};

struct conns {
        pthread_mutex_t lock;
        struct conn *head;
        size_t n, n_others;
        uid_t owner; /* the server's uid */
        struct conn_limits lim;
};

void conns_init(struct conns *t, uid_t owner, const struct conn_limits *lim);

/* Admits a connection (fd, accepted, still ours) from p with the given deadline, or refuses it:
 * -EUSERS (*ret_why says which limit), -ENOMEM, -errno of dup. On success the entry is in the
 * table and *ret points to it; the caller then hands fd over to libmicrohttpd. */
int conns_admit(struct conns *t, const struct peer *p, int fd, int64_t deadline_ns,
                struct conn **ret, const char **ret_why);

/* libmicrohttpd started serving the connection on fd: its entry, to keep as socket context (NULL
 * when there is none: the caller must then end the connection). */
struct conn *conns_started(struct conns *t, int fd);

/* The connection is gone (libmicrohttpd closed it, or never took it): drop the entry. */
void conns_closed(struct conns *t, struct conn *c);

/* Sets the deadline of c (monotonic ns; 0 = none). c may be NULL. */
void conns_set_deadline(struct conns *t, struct conn *c, int64_t deadline_ns);

/* Ends every connection past its deadline; drops entries libmicrohttpd never took. Returns how
 * many were ended. */
size_t conns_sweep(struct conns *t, int64_t now_ns);

/* Drops every entry (at shutdown, after libmicrohttpd stopped). */
void conns_clear(struct conns *t);
