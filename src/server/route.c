// SPDX-License-Identifier: Apache-2.0
/* The HTTP API's route table and the matching, body and metric rules it drives (route.h). */
#include "route.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "server/metrics.h"
#include "shared/macro.h"

#define PROMETHEUS_TEXT "text/plain; version=0.0.4"

/* Order matters only where two patterns match one path: the first wins ("by-uuid" is a valid
 * sandbox name, so its route comes before the sandbox's own). */
static const struct route routes[] = {
    {"GET", "/health", api_health, ROUTE_BODY_NONE, NULL, ROUTE_OPEN | ROUTE_NO_MANAGER, NULL},
    {"GET", "/metrics", metrics_reply, ROUTE_BODY_NONE, NULL, 0, PROMETHEUS_TEXT},
    {"GET", "/status", api_status, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/stats", api_stats, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/run", api_run, ROUTE_BODY_REQUIRED, "command", 0, NULL},
    {"POST", "/run/stream", NULL, ROUTE_BODY_REQUIRED, NULL, ROUTE_STREAM | ROUTE_NO_MANAGER, NULL},
    {"POST", "/batch/run", api_batch_run, ROUTE_BODY_REQUIRED, NULL, 0, NULL},
    {"POST", "/gc", api_gc, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/lifecycle/reconcile", api_reconcile, ROUTE_BODY_OPTIONAL, NULL, 0, NULL},
    {"GET", "/audit", api_audit, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/doctor", api_doctor, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/backends", api_backends, ROUTE_BODY_NONE, NULL, ROUTE_NO_MANAGER, NULL},
    {"GET", "/agents", api_agents, ROUTE_BODY_NONE, NULL, ROUTE_NO_MANAGER, NULL},
    {"GET", "/images", api_images_list, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"DELETE", "/images/:path", api_image_delete, ROUTE_BODY_NONE, NULL, ROUTE_405, NULL},
    {"GET", "/events", NULL, ROUTE_BODY_NONE, NULL, ROUTE_EVENTS | ROUTE_NO_MANAGER, NULL},
    {"GET", "/secrets", api_secrets_list, ROUTE_BODY_NONE, NULL, ROUTE_NO_MANAGER, NULL},
    {"POST", "/secrets", api_secret_set, ROUTE_BODY_REQUIRED, NULL, ROUTE_NO_MANAGER, NULL},
    {"DELETE", "/secrets/:name", api_secret_delete, ROUTE_BODY_NONE, NULL, ROUTE_NO_MANAGER, NULL},
    {"GET", "/permissions", api_permissions_list, ROUTE_BODY_NONE, NULL, ROUTE_NO_MANAGER, NULL},
    {"POST", "/permissions/grant", api_permission_grant, ROUTE_BODY_REQUIRED, NULL,
     ROUTE_NO_MANAGER, NULL},
    {"POST", "/permissions/check", api_permission_check, ROUTE_BODY_REQUIRED, NULL,
     ROUTE_NO_MANAGER, NULL},
    {"DELETE", "/permissions/:id", api_permission_revoke, ROUTE_BODY_NONE, NULL,
     ROUTE_NO_MANAGER | ROUTE_405, NULL},
    {"GET", "/sandboxes", api_list, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/sandboxes", api_create, ROUTE_BODY_REQUIRED, "created", 0, NULL},
    {"GET", "/sandboxes/by-uuid/:uuid", api_get_by_uuid, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/sandboxes/:name", api_get, ROUTE_BODY_NONE, NULL, ROUTE_405, NULL},
    {"DELETE", "/sandboxes/:name", api_delete, ROUTE_BODY_NONE, "removed", ROUTE_405, NULL},
    {"PATCH", "/sandboxes/:name", api_patch, ROUTE_BODY_REQUIRED, NULL, ROUTE_405, NULL},
    {"POST", "/sandboxes/:name/start", api_start, ROUTE_BODY_NONE, "started", 0, NULL},
    {"POST", "/sandboxes/:name/stop", api_stop, ROUTE_BODY_NONE, "stopped", 0, NULL},
    {"POST", "/sandboxes/:name/pause", api_pause, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/sandboxes/:name/resume", api_resume, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/sandboxes/:name/recover", api_recover, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/sandboxes/:name/extend", api_extend, ROUTE_BODY_OR_DEFAULT, NULL, 0, NULL},
    {"POST", "/sandboxes/:name/resize", api_resize, ROUTE_BODY_OR_DEFAULT, NULL, 0, NULL},
    {"GET", "/sandboxes/:name/logs", api_logs, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/sandboxes/:name/network/policy", api_network_policy_get, ROUTE_BODY_NONE, NULL,
     ROUTE_405, NULL},
    {"PUT", "/sandboxes/:name/network/policy", api_network_policy_put, ROUTE_BODY_REQUIRED, NULL,
     ROUTE_405, NULL},
    {"GET", "/sandboxes/:name/network/log", api_network_log, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"POST", "/sandboxes/:name/exec", api_exec, ROUTE_BODY_REQUIRED, "command", 0, NULL},
    {"POST", "/sandboxes/:name/exec/detach", api_exec_detach, ROUTE_BODY_REQUIRED, NULL, 0, NULL},
    {"GET", "/sandboxes/:name/exec/detached", api_detached_list, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"GET", "/sandboxes/:name/exec/detached/:id", api_detached_get, ROUTE_BODY_NONE, NULL, 0, NULL},
    {"DELETE", "/sandboxes/:name/exec/detached/:id", api_detached_kill, ROUTE_BODY_NONE, NULL, 0,
     NULL},
    {"GET", "/sandboxes/:name/exec/detached/:id/logs", api_detached_logs, ROUTE_BODY_NONE, NULL, 0,
     NULL},
    {"POST", "/sandboxes/:name/files", api_files_write, ROUTE_BODY_REQUIRED, NULL, ROUTE_405, NULL},
    {"GET", "/sandboxes/:name/files/:path", api_file_read, ROUTE_BODY_NONE, NULL, ROUTE_405, NULL},
    {"PUT", "/sandboxes/:name/files/:path", api_file_write, ROUTE_BODY_REQUIRED, NULL, ROUTE_405,
     NULL},
    {"DELETE", "/sandboxes/:name/files/:path", api_file_delete, ROUTE_BODY_NONE, NULL, ROUTE_405,
     NULL},
};

const struct route *route_table(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(routes);
        return routes;
}

/* The next segment of *p (empty ones skipped): its start and length; false at the end. */
static bool next_segment(const char **p, const char **ret, size_t *ret_len)
{
        const char *s = *p;

        while (*s == '/')
                s++;
        if (!*s)
                return false;
        *ret = s;
        *ret_len = strcspn(s, "/");
        *p = s + *ret_len;
        return true;
}

struct captures {
        const char *name, *id, *rest;
        size_t name_len, id_len;
};

/* Whether url's path is pattern's, filling c. */
static bool path_matches(const char *pattern, const char *url, struct captures *c)
{
        const char *pp = pattern, *up = url, *ps, *us;
        size_t pn, un;

        memset(c, 0, sizeof(*c));
        while (next_segment(&pp, &ps, &pn)) {
                if (!next_segment(&up, &us, &un))
                        return false;
                if (pn == 5 && !memcmp(ps, ":path", 5)) {
                        c->rest = us; /* the rest, slashes kept */
                        return true;
                }
                if (pn == 5 && !memcmp(ps, ":name", 5)) {
                        c->name = us;
                        c->name_len = un;
                } else if (ps[0] == ':') {
                        c->id = us;
                        c->id_len = un;
                } else if (pn != un || memcmp(ps, us, un) != 0) {
                        return false;
                }
        }
        return !next_segment(&up, &us, &un);
}

int route_match(const char *method, char *url, struct route_match *ret, const char **ret_msg)
{
        const struct route *path_only = NULL;
        bool any_405 = false;
        struct captures c;

        memset(ret, 0, offsetof(struct route_match, path_buf));
        ret->path_buf[0] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
                const struct route *rt = &routes[i];
                if (!path_matches(rt->pattern, url, &c))
                        continue;
                if (c.rest &&
                    api_normalize_path(c.rest, ret->path_buf, sizeof(ret->path_buf)) < 0) {
                        ret->route = rt;
                        *ret_msg = "invalid path";
                        return 400;
                }
                if (strcmp(rt->method, method) != 0) {
                        if (!path_only)
                                path_only = rt;
                        any_405 = any_405 || (rt->flags & ROUTE_405);
                        continue;
                }
                ret->route = rt;
                /* cut the captures out of the URL: after its segment, each ends at a '/' */
                if (c.name) {
                        url[(c.name - url) + (ptrdiff_t)c.name_len] = '\0';
                        ret->name = c.name;
                }
                if (c.id) {
                        url[(c.id - url) + (ptrdiff_t)c.id_len] = '\0';
                        ret->id = c.id;
                }
                ret->path = c.rest ? ret->path_buf : NULL;
                *ret_msg = NULL;
                return 0;
        }
        if (path_only && any_405) {
                ret->route = path_only;
                *ret_msg = "Method not allowed";
                return 405;
        }
        *ret_msg = "Not found";
        return 404;
}

const char *route_label(const struct route_match *m)
{
        return m->route ? m->route->pattern : "unmatched";
}

/* Whether the nesting of JSON text stays within max levels (strings skipped): the parser and
 * the code that walks its result recurse, and a connection thread's stack is small. */
static bool json_depth_ok(const char *s, size_t n, int max)
{
        int depth = 0;
        bool in_string = false;

        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (in_string) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_string = false;
                } else if (ch == '"') {
                        in_string = true;
                } else if (ch == '[' || ch == '{') {
                        if (++depth > max)
                                return false;
                } else if (ch == ']' || ch == '}') {
                        depth--;
                }
        }
        return true;
}

static int parse_json(const char *data, size_t len, bool optional, json_t **ret,
                      struct api_result *r)
{
        json_error_t e;

        if (!len) {
                if (optional)
                        return 0;
                return api_fail(r, 400, "Invalid JSON: the request has no body");
        }
        if (!json_depth_ok(data, len, ROUTE_JSON_DEPTH_MAX))
                return api_fail(r, 400, "Invalid JSON: nested deeper than %d levels",
                                ROUTE_JSON_DEPTH_MAX);
        *ret = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
        if (!*ret)
                return api_fail(r, 400, "Invalid JSON: %s", e.text);
        return 0;
}

int route_body(const struct route *rt, const char *data, size_t len, json_t **ret,
               struct api_result *r)
{
        *ret = NULL;
        switch (rt->body) {
        case ROUTE_BODY_NONE:
                return 0;
        case ROUTE_BODY_REQUIRED:
                return parse_json(data, len, false, ret, r);
        case ROUTE_BODY_OPTIONAL:
                return parse_json(data, len, true, ret, r);
        case ROUTE_BODY_OR_DEFAULT:
                if (parse_json(data, len, true, ret, r) < 0)
                        api_result_done(r); /* upstream: an invalid body extends by 1 h */
                if (!*ret)
                        *ret = json_object();
                return 0;
        default:
                return api_fail(r, 500, "route without a body rule");
        }
}

bool route_metric_counts(const struct route *rt, int status)
{
        if (!rt->metric)
                return false;
        if (!strcmp(rt->metric, "command"))
                return (status >= 200 && status < 300) || status == 409;
        return status >= 200 && status < 300;
}
