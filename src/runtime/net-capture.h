/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proxy mode's network namespace (docs/network.md, issue 14): no interface but loopback, every
 * IPv4 destination routed to loopback (AnyIP: `ip route add local default dev lo`), and an
 * nf_tables table that redirects every TCP connection that leaves loopback to the listener on
 * 127.0.0.1:NET_CAPTURE_TCP_PORT and every DNS query (UDP and TCP port 53) to
 * 127.0.0.1:NET_CAPTURE_DNS_PORT, and refuses anything else that leaves loopback (UDP, ICMP)
 * but the replies of those redirected connections.
 * The listeners are made here, inside the namespace, and handed to the host's policy proxy,
 * whose own sockets are the only ones that reach anything: without an interface out, a sandbox
 * that flushed the rules (CAP_NET_ADMIN in its own namespace) reaches nothing at all.
 *
 * Called by the runtime's child before it drops its capabilities: everything here works on the
 * stack and with system calls only (no allocation: the child shares its parent's memory). The
 * nf_tables batch is built at build time (nft-gen.c).
 */
#pragma once

#define NET_CAPTURE_TCP_PORT 15001
#define NET_CAPTURE_DNS_PORT 15053
#define NET_CAPTURE_FDS 3 /* TCP 15001, UDP 15053, TCP 15053: struct egress_fds's order */
#define NET_CAPTURE_BACKLOG 1024

/* Brings the caller's network namespace's loopback up. 0 or -errno. */
int net_loopback_up(void);

/* The AnyIP route and the nf_tables table, in the caller's network namespace. Returns 0, or
 * -errno with *ret_what naming what failed (a kernel feature, for a missing one). */
int net_capture_install(const char **ret_what);

/* The three listeners (close-on-exec, non-blocking) in fds, in NET_CAPTURE_FDS order. */
int net_capture_listeners(int fds[NET_CAPTURE_FDS], const char **ret_what);
