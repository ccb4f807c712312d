/* SPDX-License-Identifier: Apache-2.0 */
/* URL paths of the HTTP API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_SEGS_MAX 64

struct route {
        char *seg[ROUTE_SEGS_MAX]; /* pointing into the split URL */
        size_t n;
        char *path_rest; /* after "/sandboxes/{name}/files/": the rest, slashes kept */
};

/* Splits a (percent-decoded) URL path in place; empty segments dropped. -E2BIG past
 * ROUTE_SEGS_MAX segments. */
int route_split(char *url, struct route *rt);
bool route_is(const struct route *rt, size_t i, const char *s);
/* The path for metrics, with names, ids and file paths folded (bounded label values). */
void route_template(const struct route *rt, char *out, size_t len);
