/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentkernel-proxy's parts (docs/network.md, "The proxy"): the supervisor, which owns the
 * control socket and the registered sandboxes' fds and parses only its own user's control
 * messages, and the worker, the epoll proxy that parses everything sandboxes send. They talk
 * over a SOCK_SEQPACKET socketpair with the control protocol's own messages (one JSON object per
 * message, fds by SCM_RIGHTS). Nothing here trusts a sandbox's bytes; the worker holds no
 * privilege the user lacks and reaches upstream only through sockets it makes itself.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"

#define PROXY_MSG_MAX (64 * 1024)
#define PROXY_NAME_MAX 128 /* bytes of a sandbox name */
#define PROXY_REG_FDS 5    /* tcp listener, dns udp, dns tcp listener, pidfd, log fd */
#define PROXY_WORKER_FDS 4 /* the same without the pidfd */

struct proxy_opts {
        const char *dir;
        unsigned max_conns;             /* in all */
        unsigned max_conns_per_sandbox; /* open connections of one sandbox */
        unsigned header_timeout_ms;     /* a request head or a transparent first packet */
        unsigned idle_timeout_ms;       /* an idle tunnel or kept-alive connection */
        unsigned connect_timeout_ms;    /* resolving and connecting upstream */
        unsigned idle_exit_s;           /* exit this long after the last sandbox is gone */
        bool foreground;
};

/* Sends one message (j, not stolen) with fds (may be NULL/0). -errno. */
int proxy_send(int fd, const json_t *j, const int *fds, size_t n_fds);

/* Receives one message into *ret (a new reference) with at most max_fds fds into fds (*n_fds
 * set; every received fd O_CLOEXEC, and closed on failure). -EPIPE on EOF, -EMSGSIZE on a
 * truncated message, -EBADMSG on bad JSON or too many fds. */
int proxy_recv(int fd, json_t **ret, int *fds, size_t max_fds, size_t *n_fds);

/* A reply {"ok":false,"error":msg}. */
json_t *proxy_error_reply(const char *msg);

/* Runs the worker on the supervisor's end ctl_fd until it closes. Returns an exit status. */
int worker_main(int ctl_fd, const struct proxy_opts *o);

/* Runs the supervisor on a listening control socket until it is idle for o->idle_exit_s with
 * no sandbox, or is signalled. Returns an exit status. */
int supervisor_main(int listen_fd, const struct proxy_opts *o);
