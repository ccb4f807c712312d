/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unix-socket HTTP client (see uhttp.h). Why not libcurl: the CLI is a static PIE (its start-up
 * time is part of every `run`), and Debian ships libcurl's static library without static builds
 * of its dependencies; http-parser links statically and does the parsing, the part worth not
 * writing by hand. The request side is a few formatted lines.
 */
#include <errno.h>
#include <http_parser.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/uhttp.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/time-util.h"

#define REQUEST_HEAD_MAX 2048

struct parse_ctx {
        struct uhttp_response *res;
        size_t max_body;
        bool complete, too_big;
        bool in_version; /* the header being read is Api-Version */
        bool headers;    /* the status line and headers are in */
};

static int on_header_field(http_parser *p, const char *at, size_t len)
{
        struct parse_ctx *c = p->data;
        c->in_version = len == 11 && strncasecmp(at, "api-version", 11) == 0;
        return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
        struct parse_ctx *c = p->data;
        if (c->in_version && len < sizeof(c->res->api_version)) {
                memcpy(c->res->api_version, at, len);
                c->res->api_version[len] = '\0';
        }
        return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
        struct parse_ctx *c = p->data;

        if (c->res->body.len + len > c->max_body) {
                c->too_big = true;
                return 1;
        }
        return buf_append(&c->res->body, at, len) < 0 ? 1 : 0;
}

static int on_headers_complete(http_parser *p)
{
        struct parse_ctx *c = p->data;
        c->res->status = (int)p->status_code;
        c->headers = true;
        /* 1 would mean "no body" to http-parser, not an error: a bad status is refused in
         * feed() */
        return 0;
}

static int on_message_complete(http_parser *p)
{
        struct parse_ctx *c = p->data;
        c->complete = true;
        return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void uhttp_response_done(struct uhttp_response *r)
{
        if (!r)
                return;
        buf_done(&r->body);
        r->status = 0;
}

/* Feeds bytes (len 0: the end of the stream) to the parser. 1: the response is complete. */
static int feed(http_parser *p, struct parse_ctx *c, const char *data, size_t len,
                struct ak_err *err)
{
        size_t n = http_parser_execute(p, &settings, data, len);

        if (c->too_big)
                return ak_err_set(err, EFBIG, "engine response larger than %zu bytes", c->max_body);
        if (HTTP_PARSER_ERRNO(p) != HPE_OK || n != len)
                return ak_err_set(err, EBADMSG, "malformed engine response: %s",
                                  http_errno_description(HTTP_PARSER_ERRNO(p)));
        if (c->headers && (c->res->status < 100 || c->res->status > 599))
                return ak_err_set(err, EBADMSG, "engine response with status %d", c->res->status);
        return c->complete ? 1 : 0;
}

int uhttp_parse(const char *data, size_t len, size_t max_body, struct uhttp_response *ret,
                struct ak_err *err)
{
        struct uhttp_response res = {0};
        struct parse_ctx c = {.res = &res, .max_body = max_body};
        http_parser p;
        int r;

        http_parser_init(&p, HTTP_RESPONSE);
        p.data = &c;
        r = feed(&p, &c, data, len, err);
        if (r == 0)
                r = feed(&p, &c, NULL, 0, err);
        if (r == 0)
                r = ak_err_set(err, EBADMSG, "truncated engine response");
        if (r < 0) {
                uhttp_response_done(&res);
                return r;
        }
        *ret = res;
        return 0;
}

int uhttp_request(const char *socket_path, const char *method, const char *target,
                  const char *json_body, size_t max_body, int timeout_ms,
                  struct uhttp_response *ret, struct ak_err *err)
{
        struct uhttp_response res = {0};
        struct parse_ctx c = {.res = &res, .max_body = max_body};
        char head[REQUEST_HEAD_MAX], chunk[65536];
        int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
        size_t blen = json_body ? strlen(json_body) : 0;
        cleanup_close int fd = -1;
        http_parser p;
        int n, r = 0;

        if (json_body)
                n = snprintf(head, sizeof(head),
                             "%s %s HTTP/1.1\r\nHost: engine\r\nUser-Agent: agentkernel\r\n"
                             "Connection: close\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             method, target, blen);
        else
                n = snprintf(head, sizeof(head),
                             "%s %s HTTP/1.1\r\nHost: engine\r\nUser-Agent: agentkernel\r\n"
                             "Connection: close\r\n\r\n",
                             method, target);
        if (n < 0 || (size_t)n >= sizeof(head))
                return ak_err_set(err, ENAMETOOLONG, "engine request too long");
        fd = unix_connect(socket_path, err);
        if (fd < 0)
                return fd;
        if ((r = write_all(fd, head, (size_t)n)) < 0 ||
            (blen && (r = write_all(fd, json_body, blen)) < 0))
                return ak_err_errno(err, -r, "engine socket '%s'", socket_path);
        http_parser_init(&p, HTTP_RESPONSE);
        p.data = &c;
        for (;;) {
                int64_t left = (deadline - now_monotonic_ns()) / 1000000;
                struct pollfd pfd = {fd, POLLIN, 0};
                ssize_t got;
                if (left <= 0) {
                        r = ak_err_set(err, ETIMEDOUT,
                                       "the engine did not answer %s %s within %d s", method,
                                       target, timeout_ms / 1000);
                        break;
                }
                if (poll(&pfd, 1, (int)left) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = ak_err_errno(err, errno, "poll");
                        break;
                }
                if (!pfd.revents)
                        continue;
                got = read(fd, chunk, sizeof(chunk));
                if (got < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        r = ak_err_errno(err, errno, "engine socket");
                        break;
                }
                r = feed(&p, &c, chunk, (size_t)got, err);
                if (r != 0)
                        break;
                if (got == 0) {
                        r = ak_err_set(err, EBADMSG, "the engine closed the connection midway");
                        break;
                }
        }
        if (r < 0) {
                uhttp_response_done(&res);
                return r;
        }
        *ret = res;
        return 0;
}
