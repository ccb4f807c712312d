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
#include <stdint.h>

#include "shared/err.h"

/* One message: a JSON object of at most PROXY_JSON_MAX bytes, optionally followed by one NUL and
 * raw bytes (a secret's value, a CA key: never through jansson), in all at most PROXY_MSG_MAX. */
#define PROXY_JSON_MAX (64 * 1024)
#define PROXY_MSG_MAX (PROXY_JSON_MAX + 1 + 64 * 1024)
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

/* The same with raw bytes after a NUL (raw_len may be 0: then the NUL alone). -errno. */
int proxy_send_raw(int fd, const json_t *j, const void *raw, size_t raw_len, const int *fds,
                   size_t n_fds);

/* Receives one message into *ret (a new reference) with at most max_fds fds into fds (*n_fds
 * set; every received fd O_CLOEXEC, and closed on failure). -EPIPE on EOF, -EMSGSIZE on a
 * truncated message, -EBADMSG on bad JSON or too many fds. */
int proxy_recv(int fd, json_t **ret, int *fds, size_t max_fds, size_t *n_fds);

/* proxy_recv() for a message that may carry raw bytes after a NUL: *raw (NULL when none) is a
 * copy in locked memory (secret_free() it, with *raw_len); proxy_recv() refuses such a message
 * with -EBADMSG. Every byte received is wiped from the receive buffer before it is freed. */
int proxy_recv_raw(int fd, json_t **ret, uint8_t **raw, size_t *raw_len, int *fds, size_t max_fds,
                   size_t *n_fds);

/* Secrets' memory: a copy of n bytes (n may be 0) that is mlock'd where the limit allows, and
 * freed by secret_free(), which wipes it first. NULL on OOM. */
uint8_t *secret_dup(const void *p, size_t n);
void secret_free(void *p, size_t n);

/* A reply {"ok":false,"error":msg}. */
json_t *proxy_error_reply(const char *msg);

/* Runs the worker on the supervisor's end ctl_fd until it closes. Returns an exit status. */
int worker_main(int ctl_fd, const struct proxy_opts *o);

/* Runs the supervisor on a listening control socket until it is idle for o->idle_exit_s with
 * no sandbox, or is signalled. Returns an exit status. */
int supervisor_main(int listen_fd, const struct proxy_opts *o);
