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

#include "core/validate.h"
#include "shared/err.h"

#define NET_GUEST_ADDR "10.0.2.100"
#define NET_DNS_ADDR "10.0.2.3"
#define NET_RESOLV_CONF "nameserver " NET_DNS_ADDR "\n"

/* True when slirp4netns can be run; otherwise why says what to install. */
bool net_available(char *why, size_t why_len);

/* Connects the network namespace of `pid` to the outside; returns once it is configured.
 * exit_fd is the read end of the pipe whose write end the sandbox holds (consumed: closed here).
 * api_socket (may be NULL when there are no ports) is where slirp4netns listens for control.
 * Published ports listen on the host's 127.0.0.1. */
int net_start(pid_t pid, int exit_fd, const char *api_socket, const struct port_spec *ports,
              size_t n_ports, struct ak_err *err);
