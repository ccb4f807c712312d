/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Published ports in proxy mode (docs/network.md). A proxy-mode sandbox has no interface but
 * loopback, so nothing can be forwarded into it from outside: instead a small detached process
 * (one per sandbox that publishes ports, outliving the CLI that started it) holds the host's
 * listeners — 127.0.0.1:HOST_PORT, as `full` mode's slirp4netns forwarding binds them — and for
 * each connection it accepts asks the sandbox's agent for a TCP connection to 127.0.0.1:PORT in
 * the sandbox (the agent's TCP_CONNECT, docs/protocol.md), which comes back as a file
 * descriptor; it then relays the bytes both ways. The host never connects anywhere itself.
 *
 * What the sandbox hands back is checked before a byte moves: exactly one fd, a TCP socket over
 * IPv4 whose peer is 127.0.0.1:PORT and which lives in the sandbox's own network namespace
 * (SIOCGSKNS compared with the namespace the sandbox was started in); anything else closes the
 * host's connection. Connections are bounded (PORT_RELAY_CONNS at once, 16 KiB buffered per
 * direction; a half-closed connection whose other half stays silent for 10 s is closed); the relay
 * exits, closing its listeners and connections, when the sandbox's first process does (its
 * pidfd).
 */
#pragma once

#include <stddef.h>

#include "core/backend.h"
#include "shared/err.h"

#define PORT_RELAY_CONNS 256          /* connections at once, all ports together */
#define PORT_RELAY_AGENT_MS 5000      /* the agent's answer to TCP_CONNECT */
#define PORT_RELAY_BIND_RETRY_MS 2000 /* a port a stopped predecessor's relay still holds */
/* once one side has closed its half, the other has this long without a byte moving: a side that
 * never closes (a sandbox that keeps its end open) cannot hold a connection for ever */
#define PORT_RELAY_HALF_CLOSED_MS 10000

/* Refuses what proxy mode cannot publish (UDP; the proxy's own ports 15001 and 15053) with a
 * message that names --network full. 0 or -errno. */
int port_relay_check(const struct port_spec *ports, size_t n, struct ak_err *err);

/* Binds the listeners (all or none: a port taken fails the start with its number), then forks
 * the detached relay. agent_sock: an O_PATH fd of the agent's listening unix socket; pidfd: the
 * sandbox's first process; netns: an fd of the sandbox's network namespace. The caller keeps
 * its fds. 0 or -errno with a message. */
int port_relay_start(const struct port_spec *ports, size_t n, int agent_sock, int pidfd, int netns,
                     struct ak_err *err);
