// SPDX-License-Identifier: Apache-2.0
/* URL paths of the HTTP API: segments, the file-path remainder, and metric-safe templates. */
#include "route.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int route_split(char *url, struct route *rt)
{
        char *p = url;

        rt->n = 0;
        rt->path_rest = NULL;
        while (*p) {
                char *end;
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                if (rt->n == ROUTE_SEGS_MAX)
                        return -E2BIG;
                /* a file path keeps its slashes */
                if (rt->n == 3 && strcmp(rt->seg[0], "sandboxes") == 0 &&
                    strcmp(rt->seg[2], "files") == 0) {
                        rt->path_rest = p;
                        return 0;
                }
                end = strchr(p, '/');
                rt->seg[rt->n++] = p;
                if (!end)
                        break;
                *end = '\0';
                p = end + 1;
        }
        return 0;
}

bool route_is(const struct route *rt, size_t i, const char *s)
{
        return i < rt->n && strcmp(rt->seg[i], s) == 0;
}

/* The route template for metrics: sandbox names, ids and paths folded. */
void route_template(const struct route *rt, char *out, size_t len)
{
        size_t o = 0;

        out[0] = '\0';
        for (size_t i = 0; i < rt->n && o + 2 < len; i++) {
                const char *s = rt->seg[i];
                if (i > 0 &&
                    (route_is(rt, i - 1, "sandboxes") || route_is(rt, i - 1, "snapshots") ||
                     route_is(rt, i - 1, "secrets") || route_is(rt, i - 1, "detached") ||
                     route_is(rt, i - 1, "hooks") || route_is(rt, i - 1, "by-uuid")))
                        s = route_is(rt, i, "by-uuid") ? "by-uuid" : ":name";
                int w = snprintf(out + o, len - o, "/%s", s);
                if (w < 0 || (size_t)w >= len - o)
                        break;
                o += (size_t)w;
        }
        if (rt->path_rest && o + 7 < len)
                o += (size_t)snprintf(out + o, len - o, "/:path");
        if (!o)
                (void)snprintf(out, len, "/");
}
