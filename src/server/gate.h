/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gate every HTTP request passes before anything else looks at it: who may talk to the API
 * (an API key, or a trusted unix-socket peer) and what a browser may not do to it (DNS
 * rebinding through a foreign Host, cross-origin and cross-site requests, CSRF through
 * text/plain or form bodies). Pure functions of the request's headers: no I/O, no allocation,
 * independent of the HTTP library, so the rules are unit-tested and fuzzed on their own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A Host name the server answers to besides the loopback names (localhost, 127.0.0.1,
 * [::1]), as it appears in a Host header: "myhost.example", "10.0.0.5", "[fe80::1]". */
struct gate_host {
        const char *name;
        bool any_port; /* an Origin with this name may carry any port (a proxy in front) */
};

struct gate_config {
        const char *const *keys; /* accepted API keys */
        size_t n_keys;
        bool no_auth; /* --insecure-no-auth: every peer is let in without a key */
        const struct gate_host *hosts;
        size_t n_hosts;
        unsigned port; /* the port clients reach the server on, for its own Origin */
};

/* What a request shows at the gate; the transport fills it from the request's headers. A
 * header that appears more than once is counted so that the gate can refuse the ambiguity. */
struct gate_request {
        bool http11; /* HTTP/1.1 or later: a Host header is required */
        const char *host;
        unsigned n_host;
        const char *origin;
        unsigned n_origin;
        const char *sec_fetch_site;
        const char *content_type;
        unsigned n_content_type;
        bool has_body; /* a Content-Length above 0, or a Transfer-Encoding */
        const char *authorization;
        const char *x_api_key;
        bool peer_trusted; /* a unix-socket peer with the server's uid (or root), same namespaces */
        bool open_route;   /* GET /health: no key needed, it reveals nothing */
};

/* 0 when the request may go on; else the HTTP status to answer with (400, 401, 403, 415) and
 * *ret_msg, a message for the error envelope that lives in *buf (of len bytes). Checks, in
 * order: ambiguous headers, Host, Origin, Sec-Fetch-Site, Content-Type, then the key. */
int gate_check(const struct gate_config *g, const struct gate_request *rq, char *buf, size_t len,
               const char **ret_msg);

/* Whether a Host header value names this server: a loopback name or one of g->hosts, with or
 * without a port. */
bool gate_host_allowed(const struct gate_config *g, const char *host);

/* Whether an Origin header value is the server's own origin: http(s):// plus an allowed name and
 * the server's port (any port for a name with any_port). "null" never is. */
bool gate_origin_allowed(const struct gate_config *g, const char *origin);

/* Whether a Content-Type value is application/json (parameters such as charset allowed). */
bool gate_content_type_json(const char *ct);

/* Whether key (of len bytes) is one of keys. Every key is compared in full, whatever matched,
 * so the time taken says nothing about the keys. */
bool gate_key_valid(const char *const *keys, size_t n_keys, const char *key, size_t len);
