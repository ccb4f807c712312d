// SPDX-License-Identifier: Apache-2.0
/*
 * The request gate of `serve` (see gate.h): Host, Origin, Sec-Fetch-Site, Content-Type and the
 * API key, checked on the headers alone, before a body is read or a route runs. It must never
 * let a browser page through on the strength of where the connection comes from: loopback TCP
 * carries no identity, and a page can reach it.
 */
#include "gate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HOST_NAME_MAX_LEN 255

static const char *const loopback_names[] = {"localhost", "127.0.0.1", "[::1]"};

static bool name_char(char c, bool bracketed)
{
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        if (bracketed)
                return c == ':' || c == '.';
        return c == '.' || c == '-' || c == '_';
}

/* Splits "name[:port]" or "[v6][:port]"; name (with its brackets) goes to out. -1 when the value
 * is not a host[:port] at all. *ret_port is 0 when no port is given. */
static int split_host_port(const char *s, char *out, size_t len, unsigned *ret_port)
{
        const char *end, *p;
        bool bracketed = s[0] == '[';
        size_t n;
        unsigned port = 0;

        if (bracketed) {
                end = strchr(s, ']');
                if (!end)
                        return -1;
                end++;
        } else {
                end = s + strcspn(s, ":");
        }
        n = (size_t)(end - s);
        if (n == 0 || n >= len || n > HOST_NAME_MAX_LEN || (bracketed && n < 3))
                return -1;
        for (p = s + (bracketed ? 1 : 0); p < end - (bracketed ? 1 : 0); p++)
                if (!name_char(*p, bracketed))
                        return -1;
        memcpy(out, s, n);
        out[n] = '\0';
        if (*end == ':') {
                size_t digits = 0;
                for (p = end + 1; *p >= '0' && *p <= '9'; p++) {
                        if (++digits > 5)
                                return -1;
                        port = port * 10 + (unsigned)(*p - '0');
                }
                if (*p || digits == 0 || port == 0 || port > 65535)
                        return -1;
        } else if (*end) {
                return -1;
        }
        *ret_port = port;
        return 0;
}

/* Whether name is a loopback name (1), a configured one (2, *ret_any_port set), or neither. */
static int known_name(const struct gate_config *g, const char *name, bool *ret_any_port)
{
        *ret_any_port = false;
        for (size_t i = 0; i < sizeof(loopback_names) / sizeof(*loopback_names); i++)
                if (strcasecmp(name, loopback_names[i]) == 0)
                        return 1;
        for (size_t i = 0; i < g->n_hosts; i++)
                if (g->hosts[i].name && strcasecmp(name, g->hosts[i].name) == 0) {
                        *ret_any_port = g->hosts[i].any_port;
                        return 2;
                }
        return 0;
}

bool gate_host_allowed(const struct gate_config *g, const char *host)
{
        char name[HOST_NAME_MAX_LEN + 1];
        unsigned port;
        bool any;

        if (!host || split_host_port(host, name, sizeof(name), &port) < 0)
                return false;
        return known_name(g, name, &any) != 0;
}

bool gate_origin_allowed(const struct gate_config *g, const char *origin)
{
        char name[HOST_NAME_MAX_LEN + 1];
        unsigned port, dflt;
        bool any;

        if (!origin)
                return false;
        if (strncasecmp(origin, "http://", 7) == 0) {
                origin += 7;
                dflt = 80;
        } else if (strncasecmp(origin, "https://", 8) == 0) {
                origin += 8;
                dflt = 443;
        } else {
                return false; /* "null", file:, chrome-extension:, ... */
        }
        if (split_host_port(origin, name, sizeof(name), &port) < 0 || !known_name(g, name, &any))
                return false;
        return any || (port ? port : dflt) == g->port;
}

bool gate_content_type_json(const char *ct)
{
        static const char json[] = "application/json";

        if (!ct)
                return false;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
                return false;
        ct += sizeof(json) - 1;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        return *ct == '\0' || *ct == ';';
}

static bool const_time_equal(const char *a, size_t alen, const char *b, size_t blen)
{
        unsigned char diff = (unsigned char)(alen != blen);
        size_t n = alen > blen ? alen : blen;

        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
        return diff == 0;
}

bool gate_key_valid(const char *const *keys, size_t n_keys, const char *key, size_t len)
{
        bool match = false;

        /* every key is compared, whatever matched, so timing says nothing */
        for (size_t i = 0; i < n_keys; i++)
                match |= const_time_equal(key, len, keys[i], strlen(keys[i]));
        return match;
}

/* NULL when the request carries a valid key; else upstream's 401 message. */
static const char *check_key(const struct gate_config *g, const struct gate_request *rq)
{
        const char *h = rq->authorization;

        if (!h) {
                if (!rq->x_api_key)
                        return "Missing Authorization header";
                return gate_key_valid(g->keys, g->n_keys, rq->x_api_key, strlen(rq->x_api_key))
                           ? NULL
                           : "Invalid API key";
        }
        if (strncmp(h, "Bearer ", 7) != 0)
                return "Invalid authorization format. Use: Bearer <api_key>";
        h += 7;
        return gate_key_valid(g->keys, g->n_keys, h, strlen(h)) ? NULL : "Invalid API key";
}

static int refuse(int status, char *buf, size_t len, const char **ret_msg, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(int status, char *buf, size_t len, const char **ret_msg, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        *ret_msg = buf;
        return status;
}

int gate_check(const struct gate_config *g, const struct gate_request *rq, char *buf, size_t len,
               const char **ret_msg)
{
        const char *why;

        *ret_msg = NULL;
        if (rq->n_host > 1 || rq->n_origin > 1 || rq->n_content_type > 1)
                return refuse(400, buf, len, ret_msg,
                              "duplicate Host, Origin or Content-Type header");
        if (!rq->host) {
                if (rq->http11)
                        return refuse(400, buf, len, ret_msg, "Missing Host header");
        } else if (!gate_host_allowed(g, rq->host)) {
                return refuse(403, buf, len, ret_msg,
                              "Host '%.80s' is not allowed: this server answers to localhost, "
                              "127.0.0.1, [::1] and its --host or --allowed-host names only",
                              rq->host);
        }
        if (rq->origin && !gate_origin_allowed(g, rq->origin))
                return refuse(403, buf, len, ret_msg,
                              "cross-origin requests are refused (Origin '%.80s')", rq->origin);
        if (rq->sec_fetch_site && strcmp(rq->sec_fetch_site, "same-origin") != 0 &&
            strcmp(rq->sec_fetch_site, "none") != 0)
                return refuse(403, buf, len, ret_msg, "cross-site requests are refused (%.20s)",
                              rq->sec_fetch_site);
        if ((rq->content_type && !gate_content_type_json(rq->content_type)) ||
            (rq->has_body && !rq->content_type))
                return refuse(415, buf, len, ret_msg,
                              "a request body must be sent as 'Content-Type: "
                              "application/json'");
        if (rq->open_route || rq->peer_trusted || g->no_auth)
                return 0;
        why = check_key(g, rq);
        if (why)
                return refuse(401, buf, len, ret_msg, "%s", why);
        return 0;
}
