/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbound networking for native sandboxes through slirp4netns: a user-mode TCP/IP stack that
 * connects a sandbox's own network namespace to the host's sockets. Only outbound connections
 * and explicitly published ports pass; the host's loopback is never reachable from the sandbox
 * (--disable-host-loopback), and slirp4netns runs in its own sandbox (--enable-sandbox,
 * --enable-seccomp). It exits when the sandbox's agent exits: the agent holds the write end of
 * slirp4netns' exit pipe.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "shared/err.h"
#include "shared/parse-util.h"

#define NET_GUEST_ADDR "10.0.2.100"
#define NET_DNS_ADDR "10.0.2.3"
#define NET_RESOLV_CONF "nameserver " NET_DNS_ADDR "\n"

/* True when slirp4netns can be run; otherwise why says what to install. */
bool net_available(char *why, size_t why_len);

struct net_handle {
        pid_t pid;    /* slirp4netns */
        int ready_fd; /* becomes readable when the namespace is configured */
};

/* Starts connecting the network namespace of `pid` to the outside, without waiting (so the
 * sandbox's own setup runs meanwhile). exit_fd is the read end of the pipe whose write end the
 * sandbox holds (consumed: closed here). api_socket (NULL without ports) is where slirp4netns
 * listens for control. */
int net_launch(pid_t pid, int exit_fd, const char *api_socket, struct net_handle *ret,
               struct ak_err *err);

/* Waits until the namespace is configured, then publishes ports (on the host's 127.0.0.1).
 * On failure slirp4netns is stopped. Consumes the handle either way. */
int net_wait(struct net_handle *h, const char *api_socket, const struct port_spec *ports,
             size_t n_ports, struct ak_err *err);

/* Stops a launched slirp4netns that will not be waited for. */
void net_abort(struct net_handle *h);
