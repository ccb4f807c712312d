/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API's routes: one table of {method, pattern, operation, body rule, metric} that
 * decides dispatch (which operation a request runs, with which captures and body), its metric
 * labels (the pattern: names, ids and paths never become labels) and what the gate lets in
 * without a key. Independent of the HTTP library, so that it is unit-tested on its own.
 *
 * Patterns are literal segments and captures: ":name" (a sandbox), ":id" and ":uuid" (one
 * segment each) and ":path", which takes the rest of the URL, slashes kept, and is normalised
 * (api_normalize_path). Empty segments are dropped ("//sandboxes//x" is "/sandboxes/x"), as the
 * SDK sends file paths with a double slash; the URL arrives percent-decoded.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/api.h"

enum route_body {
        ROUTE_BODY_NONE = 0,   /* not read: the operation gets NULL */
        ROUTE_BODY_REQUIRED,   /* JSON; an empty or invalid body is a 400 */
        ROUTE_BODY_OPTIONAL,   /* JSON, or NULL when empty; an invalid body is a 400 */
        ROUTE_BODY_OR_DEFAULT, /* JSON; an empty or invalid one is {} (upstream's extend) */
};

#define ROUTE_OPEN (1u << 0)       /* the gate lets it in without a key: it reveals nothing */
#define ROUTE_NO_MANAGER (1u << 1) /* answered without opening the manager */
#define ROUTE_STREAM (1u << 2)     /* the transport answers it (server-sent events), no op */
#define ROUTE_405 (1u << 3)        /* another method on this path is a 405, not a 404 */
#define ROUTE_EVENTS (1u << 4)     /* the transport answers it: the lifecycle event stream */

struct route {
        const char *method;
        const char *pattern; /* also the metric label */
        api_op op;
        enum route_body body;
        /* metric: "created", "started", "stopped", "removed" (sandbox lifecycle) or "command";
         * NULL: none beyond the request counters */
        const char *metric;
        unsigned flags;
        /* NULL: the JSON envelope; else the reply's data (a string) is sent as is, as this */
        const char *content_type;
};

#define ROUTE_PATH_MAX 4096

struct route_match {
        /* The route; after a 405 or a 400, the route whose path it was (for its label). */
        const struct route *route;
        const char *name; /* :name, cut out of the URL */
        const char *id;   /* :id or :uuid, cut out of the URL */
        const char *path; /* :path normalised (into path_buf), or NULL */
        char path_buf[ROUTE_PATH_MAX];
};

/* Finds the route of method and url. The captures are cut out of url in place (NUL after each):
 * keep url while the match is used. Returns 0, or the status of a miss, with what the reply
 * says in *ret_msg: 404 "Not found" (no route has this path; also a wrong method on a route
 * without ROUTE_405), 405 "Method not allowed", 400 "invalid path" (a :path that
 * api_normalize_path refuses, whatever the method). */
int route_match(const char *method, char *url, struct route_match *ret, const char **ret_msg);

/* The metric label of a request: its route's pattern, or "unmatched". */
const char *route_label(const struct route_match *m);

/* Reads a request's body per rt's rule into *ret (NULL: none). -1 with r filled (400 "Invalid
 * JSON: ...") when it must be JSON and is not; nesting deeper than ROUTE_JSON_DEPTH_MAX is
 * refused before the parser sees it. */
#define ROUTE_JSON_DEPTH_MAX 64 /* the SDK's bodies are 3 deep */
int route_body(const struct route *rt, const char *data, size_t len, json_t **ret,
               struct api_result *r);

/* Whether a reply of status counts for rt's metric: a lifecycle action when it succeeded, a
 * command when it ran (2xx, or 409: it exited with another code). */
bool route_metric_counts(const struct route *rt, int status);

/* The whole table (for tests and documentation), and its size. */
const struct route *route_table(size_t *ret_n);
