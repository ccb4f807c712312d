/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 requests over a unix socket, for container engines' REST APIs (Docker, and Podman's
 * compatible service). One connection per request. Responses are parsed by Debian's
 * http-parser (nodejs' parser: Content-Length, chunked, close-delimited), never by hand.
 * Every response is bounded in size and time.
 */
#pragma once

#include <stddef.h>

#include "shared/buf.h"
#include "shared/err.h"

struct uhttp_response {
        int status;
        char api_version[16]; /* the Api-Version header (engines announce theirs), or "" */
        struct buf body;
};

/* method target (e.g. "GET", "/v1.41/version") with an optional JSON body. The body of the
 * answer is kept up to max_body bytes (more is an error). timeout_ms bounds the whole exchange. */
int uhttp_request(const char *socket_path, const char *method, const char *target,
                  const char *json_body, size_t max_body, int timeout_ms,
                  struct uhttp_response *ret, struct ak_err *err);
/* Frees what a response holds (the struct itself is the caller's). */
void uhttp_response_done(struct uhttp_response *r);

/* Parses a complete response held in memory (for tests and fuzzing): 0, or -EBADMSG. */
int uhttp_parse(const char *data, size_t len, size_t max_body, struct uhttp_response *ret,
                struct ak_err *err);
