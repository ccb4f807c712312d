/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentkernel-serve's request handling on libmicrohttpd (http.c): every request passes the gate
 * (gate.h) on its headers, then is dispatched by the route table (route.h) to an API operation
 * (api.h), or streamed (/run/stream). The serve helper's main (serve.c) listens, admits
 * connections and hands them over here.
 */
#pragma once

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/api.h"
#include "server/gate.h"
#include "server/peer.h"

#define HEADERS_TIMEOUT_S 5 /* from connect (or the end of the last request) to full headers */
#define BODY_TIMEOUT_S 60   /* from the headers to the end of the body */
#define IDLE_TIMEOUT_S 60   /* no byte moved either way (MHD's timeout): a stalled stream */

/* What request handling needs of the server: set up before http_start, read-only after (conns
 * locks itself). */
struct http_server {
        struct gate_config gate;
        struct conns conns;
        struct api_options opts;
};

/* The monotonic deadline `seconds` from now. */
int64_t http_deadline_in(unsigned seconds);

/* Starts libmicrohttpd for s: a thread per connection, up to `connections`, no listening socket
 * of its own (connections come through http_add_connection). With tls_cert and tls_key (PEM
 * text), every connection handed to it speaks TLS (GnuTLS, through libmicrohttpd); a plain one
 * fails its handshake and is closed. NULL when it cannot start. */
struct MHD_Daemon *http_start(struct http_server *s, size_t connections, const char *tls_cert,
                              const char *tls_key);

/* Hands over a connection that s->conns admitted as k; on failure fd is closed and k forgotten. */
void http_add_connection(struct http_server *s, struct MHD_Daemon *d, int fd,
                         const struct sockaddr *sa, socklen_t len, struct conn *k);
