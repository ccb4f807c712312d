// SPDX-License-Identifier: Apache-2.0
/* The HTTP API's route table on its own (every route reaches its operation with its captures,
 * 404/405/400, empty segments and file paths, metric labels and counts, body rules) and the MCP
 * tool table (every tool has a schema and an operation; an unknown tool or method). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/api.h"
#include "server/mcp.h"
#include "server/metrics.h"
#include "server/route.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"

struct match {
        int status;
        const char *msg;
        struct route_match m;
        char url[8192];
};

static struct match *match(const char *method, const char *url)
{
        static struct match r;

        memset(&r, 0, sizeof(r));
        (void)snprintf(r.url, sizeof(r.url), "%s", url);
        r.status = route_match(method, r.url, &r.m, &r.msg);
        return &r;
}

/* method url -> the operation, and what it captured */
static const struct {
        const char *method, *url;
        api_op op;
        const char *name, *id, *path;
} cases[] = {
    {"GET", "/health", api_health, NULL, NULL, NULL},
    {"GET", "/metrics", metrics_reply, NULL, NULL, NULL},
    {"GET", "/status", api_status, NULL, NULL, NULL},
    {"GET", "/stats", api_stats, NULL, NULL, NULL},
    {"POST", "/run", api_run, NULL, NULL, NULL},
    {"POST", "/batch/run", api_batch_run, NULL, NULL, NULL},
    {"POST", "/gc", api_gc, NULL, NULL, NULL},
    {"POST", "/lifecycle/reconcile", api_reconcile, NULL, NULL, NULL},
    {"GET", "/audit", api_audit, NULL, NULL, NULL},
    {"GET", "/doctor", api_doctor, NULL, NULL, NULL},
    {"GET", "/backends", api_backends, NULL, NULL, NULL},
    {"GET", "/agents", api_agents, NULL, NULL, NULL},
    {"GET", "/images", api_images_list, NULL, NULL, NULL},
    /* an image's name keeps its slashes (the path capture; the leading one is dropped later) */
    {"DELETE", "/images/docker.io/library/alpine:3.20", api_image_delete, NULL, NULL,
     "/docker.io/library/alpine:3.20"},
    {"DELETE", "/images/sha256:0123456789ab", api_image_delete, NULL, NULL, "/sha256:0123456789ab"},
    {"GET", "/sandboxes", api_list, NULL, NULL, NULL},
    {"POST", "/sandboxes", api_create, NULL, NULL, NULL},
    {"GET", "/sandboxes/by-uuid/0190-x", api_get_by_uuid, NULL, "0190-x", NULL},
    {"GET", "/sandboxes/box", api_get, "box", NULL, NULL},
    {"DELETE", "/sandboxes/box", api_delete, "box", NULL, NULL},
    {"PATCH", "/sandboxes/box", api_patch, "box", NULL, NULL},
    {"POST", "/sandboxes/box/start", api_start, "box", NULL, NULL},
    {"POST", "/sandboxes/box/stop", api_stop, "box", NULL, NULL},
    {"POST", "/sandboxes/box/recover", api_recover, "box", NULL, NULL},
    {"POST", "/sandboxes/box/extend", api_extend, "box", NULL, NULL},
    {"POST", "/sandboxes/box/resize", api_resize, "box", NULL, NULL},
    {"GET", "/sandboxes/box/logs", api_logs, "box", NULL, NULL},
    {"GET", "/sandboxes/box/network/policy", api_network_policy_get, "box", NULL, NULL},
    {"PUT", "/sandboxes/box/network/policy", api_network_policy_put, "box", NULL, NULL},
    {"GET", "/sandboxes/box/network/log", api_network_log, "box", NULL, NULL},
    {"POST", "/sandboxes/box/exec", api_exec, "box", NULL, NULL},
    {"POST", "/sandboxes/box/exec/detach", api_exec_detach, "box", NULL, NULL},
    {"GET", "/sandboxes/box/exec/detached", api_detached_list, "box", NULL, NULL},
    {"GET", "/sandboxes/box/exec/detached/deadbeef", api_detached_get, "box", "deadbeef", NULL},
    {"DELETE", "/sandboxes/box/exec/detached/deadbeef", api_detached_kill, "box", "deadbeef", NULL},
    {"GET", "/sandboxes/box/exec/detached/deadbeef/logs", api_detached_logs, "box", "deadbeef",
     NULL},
    {"POST", "/sandboxes/box/files", api_files_write, "box", NULL, NULL},
    {"GET", "/sandboxes/box/files/tmp/a b", api_file_read, "box", NULL, "/tmp/a b"},
    {"PUT", "/sandboxes/box/files/tmp/a b", api_file_write, "box", NULL, "/tmp/a b"},
    {"DELETE", "/sandboxes/box/files/tmp/a b", api_file_delete, "box", NULL, "/tmp/a b"},
    /* empty segments are dropped (the SDK sends /files//tmp/f) */
    {"GET", "//sandboxes//box///exec/detached/", api_detached_list, "box", NULL, NULL},
    {"GET", "/sandboxes/box/files//tmp//x/", api_file_read, "box", NULL, "/tmp/x"},
    {"GET", "/sandboxes/box/files/./tmp/./x", api_file_read, "box", NULL, "/tmp/x"},
    {"POST", "/sandboxes/box/files/", api_files_write, "box", NULL, NULL},
    /* "by-uuid" and the verbs are sandbox names where the pattern has one */
    {"POST", "/sandboxes/by-uuid/start", api_start, "by-uuid", NULL, NULL},
    {"GET", "/sandboxes/by-uuid", api_get, "by-uuid", NULL, NULL},
    {"GET", "/sandboxes/files/files/files", api_file_read, "files", NULL, "/files"},
    {"GET", "/sandboxes/start/logs", api_logs, "start", NULL, NULL},
};

static void test_every_route_reaches_its_operation(void **unused)
{
        (void)unused;
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                struct match *r = match(cases[i].method, cases[i].url);
                if (r->status != 0)
                        fail_msg("%s %s: %d %s", cases[i].method, cases[i].url, r->status, r->msg);
                if (r->m.route->op != cases[i].op)
                        fail_msg("%s %s: the operation of %s", cases[i].method, cases[i].url,
                                 r->m.route->pattern);
                assert_null(r->msg);
                if (cases[i].name)
                        assert_string_equal(r->m.name, cases[i].name);
                else
                        assert_null(r->m.name);
                if (cases[i].id)
                        assert_string_equal(r->m.id, cases[i].id);
                else
                        assert_null(r->m.id);
                if (cases[i].path)
                        assert_string_equal(r->m.path, cases[i].path);
                else
                        assert_null(r->m.path);
        }
}

/* The table itself: every entry has a method, a pattern, an operation (or is streamed), a known
 * metric; no two entries share a method and a pattern; each is reached by its own pattern. */
static void test_table_is_well_formed(void **unused)
{
        static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
        static const char *const metrics[] = {"created", "started", "stopped", "removed",
                                              "command"};
        size_t n;
        const struct route *t = route_table(&n);
        size_t open = 0;

        (void)unused;
        assert_true(n >= 30);
        for (size_t i = 0; i < n; i++) {
                bool known = false;
                char url[256];
                size_t o = 0;
                struct match *r;
                for (size_t k = 0; k < sizeof(methods) / sizeof(*methods); k++)
                        known = known || !strcmp(t[i].method, methods[k]);
                assert_true(known);
                assert_true(t[i].pattern[0] == '/');
                assert_true((t[i].op != NULL) != !!(t[i].flags & (ROUTE_STREAM | ROUTE_EVENTS)));
                if (t[i].metric) {
                        known = false;
                        for (size_t k = 0; k < sizeof(metrics) / sizeof(*metrics); k++)
                                known = known || !strcmp(t[i].metric, metrics[k]);
                        assert_true(known);
                }
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(t[i].method, t[j].method) &&
                            !strcmp(t[i].pattern, t[j].pattern))
                                fail_msg("%s %s twice", t[i].method, t[i].pattern);
                open += !!(t[i].flags & ROUTE_OPEN);
                /* its own pattern, captures filled in, reaches it */
                for (const char *p = t[i].pattern; *p && o + 8 < sizeof(url);) {
                        if (p[0] == ':') {
                                o += (size_t)snprintf(url + o, sizeof(url) - o, "%s",
                                                      !strncmp(p, ":path", 5) ? "a/b" : "x1");
                                p += strcspn(p, "/");
                        } else {
                                url[o++] = *p++;
                        }
                }
                url[o] = '\0';
                r = match(t[i].method, url);
                assert_int_equal(r->status, 0);
                if (r->m.route != &t[i])
                        fail_msg("%s %s reached %s", t[i].method, url, r->m.route->pattern);
                /* the label is the pattern: no name, id or path of a request becomes one */
                assert_string_equal(route_label(&r->m), t[i].pattern);
        }
        /* only GET /health is let in without a key */
        assert_int_equal(open, 1);
        assert_true(match("GET", "/health")->m.route->flags & ROUTE_OPEN);
        assert_false(match("GET", "/metrics")->m.route->flags & ROUTE_OPEN);
}

/* Misses, with upstream's 404 for an unknown route, and what is labelled how. */
static void test_misses(void **unused)
{
        static const struct {
                const char *method, *url;
                int status;
                const char *label;
        } miss[] = {
            {"GET", "/nowhere", 404, "unmatched"},
            {"GET", "/", 404, "unmatched"},
            {"GET", "", 404, "unmatched"},
            {"POST", "/status", 404, "unmatched"}, /* top-level routes: another method is 404 */
            {"GET", "/run", 404, "unmatched"},
            {"DELETE", "/sandboxes", 404, "unmatched"},
            {"HEAD", "/health", 404, "unmatched"},
            {"get", "/health", 404, "unmatched"},
            {"GET", "/sandboxes/x/start", 404, "unmatched"},
            {"POST", "/sandboxes/x/nosuch", 404, "unmatched"},
            {"DELETE", "/sandboxes/x/logs", 404, "unmatched"},
            {"PUT", "/sandboxes/x/network/log", 404, "unmatched"},
            {"GET", "/sandboxes/x/network", 404, "unmatched"},
            {"GET", "/sandboxes/x/exec/detached/id/nosuch", 404, "unmatched"},
            {"GET", "/sandboxes/x/exec/detached/id/logs/more", 404, "unmatched"},
            {"GET", "/sandboxes/by-uuid/u/more", 404, "unmatched"},
            {"GET", "/healthz", 404, "unmatched"},
            {"GET", "/health/x", 404, "unmatched"},
            {"POST", "/events", 404, "unmatched"}, /* nothing configures events or webhooks */
            {"POST", "/webhooks", 404, "unmatched"},
            {"DELETE", "/images", 404, "unmatched"},
            {"GET", "/images/x", 405, "/images/:path"},
            {"DELETE", "/images/../etc", 400, "/images/:path"},
            /* a sandbox's own path and its files: another method is 405 */
            {"PUT", "/sandboxes/x", 405, "/sandboxes/:name"},
            {"POST", "/sandboxes/x", 405, "/sandboxes/:name"},
            {"GET", "/sandboxes/x/files", 405, "/sandboxes/:name/files"},
            {"POST", "/sandboxes/x/files/tmp/a", 405, "/sandboxes/:name/files/:path"},
            {"PATCH", "/sandboxes/x/files/tmp/a", 405, "/sandboxes/:name/files/:path"},
            /* a file path that is not one is a 400, whatever the method */
            {"GET", "/sandboxes/x/files/tmp/../etc/passwd", 400, "/sandboxes/:name/files/:path"},
            {"POST", "/sandboxes/x/files/..", 400, "/sandboxes/:name/files/:path"},
            {"DELETE", "/sandboxes/x/files/a/../../b", 400, "/sandboxes/:name/files/:path"},
        };
        (void)unused;
        for (size_t i = 0; i < sizeof(miss) / sizeof(*miss); i++) {
                struct match *r = match(miss[i].method, miss[i].url);
                if (r->status != miss[i].status)
                        fail_msg("%s %s: %d, not %d", miss[i].method, miss[i].url, r->status,
                                 miss[i].status);
                assert_string_equal(r->msg, miss[i].status == 404   ? "Not found"
                                            : miss[i].status == 405 ? "Method not allowed"
                                                                    : "invalid path");
                assert_string_equal(route_label(&r->m), miss[i].label);
        }
}

/* File paths: any depth and any characters but NUL, up to the path limit. */
static void test_file_paths(void **unused)
{
        char url[8192], want[8192];
        size_t o = (size_t)snprintf(url, sizeof(url), "/sandboxes/x/files"), w = 0;
        struct match *r;

        (void)unused;
        /* deeper than any other route has segments */
        for (int i = 0; i < 300; i++) {
                o += (size_t)snprintf(url + o, sizeof(url) - o, "/d%d", i % 10);
                w += (size_t)snprintf(want + w, sizeof(want) - w, "/d%d", i % 10);
        }
        r = match("GET", url);
        assert_int_equal(r->status, 0);
        assert_string_equal(r->m.path, want);
        /* percent-decoded names keep their bytes: a space, a colon, UTF-8, "..." */
        r = match("GET", "/sandboxes/x/files/a b:c/\xc3\xbc/.../..x");
        assert_int_equal(r->status, 0);
        assert_string_equal(r->m.path, "/a b:c/\xc3\xbc/.../..x");
        /* a name's own segment ends at a slash: nothing after it leaks into it */
        r = match("GET", "/sandboxes/a.b/exec/detached/zz/logs");
        assert_int_equal(r->status, 0);
        assert_string_equal(r->m.name, "a.b");
        assert_string_equal(r->m.id, "zz");
        /* too long a path is refused, not cut */
        memset(url, 'a', sizeof(url) - 1);
        memcpy(url, "/sandboxes/x/files/", 19);
        url[sizeof(url) - 1] = '\0';
        assert_int_equal(match("GET", url)->status, 400);
        /* a sandbox route with more segments than any pattern is simply unknown */
        o = (size_t)snprintf(url, sizeof(url), "/sandboxes/x");
        for (int i = 0; i < 100; i++)
                o += (size_t)snprintf(url + o, sizeof(url) - o, "/exec");
        assert_int_equal(match("POST", url)->status, 404);
}

static void test_normalize_path(void **unused)
{
        static const struct {
                const char *raw, *want;
        } ok[] = {
            {"tmp/a b", "/tmp/a b"},
            {"//tmp//a", "/tmp/a"},
            {"/", "/"},
            {"", "/"},
            {"./a/./b/.", "/a/b"},
            {"a/.../b", "/a/.../b"},
            {"..a/b..", "/..a/b.."},
        };
        static const char *const bad[] = {"..", "a/..", "../a", "a/../b", "/x/../"};
        char out[64];

        (void)unused;
        for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
                assert_int_equal(api_normalize_path(ok[i].raw, out, sizeof(out)), 0);
                assert_string_equal(out, ok[i].want);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_int_equal(api_normalize_path(bad[i], out, sizeof(out)), -EINVAL);
        assert_int_equal(api_normalize_path("abcdefghij", out, 10), -ENAMETOOLONG);
        assert_int_equal(api_normalize_path("", out, 1), -ENAMETOOLONG);
}

/* What counts for the lifecycle and command metrics. */
static void test_metric_counts(void **unused)
{
        (void)unused;
        assert_true(route_metric_counts(match("POST", "/sandboxes")->m.route, 201));
        assert_false(route_metric_counts(match("POST", "/sandboxes")->m.route, 409));
        assert_string_equal(match("POST", "/sandboxes")->m.route->metric, "created");
        assert_string_equal(match("POST", "/sandboxes/x/start")->m.route->metric, "started");
        assert_string_equal(match("POST", "/sandboxes/x/stop")->m.route->metric, "stopped");
        assert_string_equal(match("DELETE", "/sandboxes/x")->m.route->metric, "removed");
        assert_false(route_metric_counts(match("DELETE", "/sandboxes/x")->m.route, 404));
        /* a command that ran and exited with another code still ran */
        assert_true(route_metric_counts(match("POST", "/run")->m.route, 200));
        assert_true(route_metric_counts(match("POST", "/run")->m.route, 409));
        assert_true(route_metric_counts(match("POST", "/sandboxes/x/exec")->m.route, 409));
        assert_false(route_metric_counts(match("POST", "/sandboxes/x/exec")->m.route, 404));
        assert_false(route_metric_counts(match("GET", "/sandboxes")->m.route, 200));
        assert_null(match("GET", "/sandboxes/x")->m.route->metric);
}

static void test_body_rules(void **unused)
{
        const struct route *required = match("POST", "/sandboxes/x/exec")->m.route;
        const struct route *optional = match("POST", "/lifecycle/reconcile")->m.route;
        const struct route *fallback = match("POST", "/sandboxes/x/extend")->m.route;
        const struct route *none = match("POST", "/sandboxes/x/start")->m.route;
        cleanup_api_result struct api_result r = {0};
        char deep[200];
        json_t *j;

        (void)unused;
        assert_int_equal(route_body(required, "", 0, &j, &r), -1);
        assert_int_equal(r.status, 400);
        assert_string_equal(r.error, "Invalid JSON: the request has no body");
        assert_null(j);
        api_result_done(&r);
        assert_int_equal(route_body(required, "{nope", 5, &j, &r), -1);
        assert_true(!strncmp(r.error, "Invalid JSON: ", 14));
        api_result_done(&r);
        assert_int_equal(route_body(required, "{\"a\":1,\"a\":2}", 13, &j, &r), -1);
        api_result_done(&r);
        memset(deep, '[', 65);
        memset(deep + 65, ']', 65);
        assert_int_equal(route_body(required, deep, 130, &j, &r), -1);
        assert_string_equal(r.error, "Invalid JSON: nested deeper than 64 levels");
        api_result_done(&r);
        /* depth in strings does not count */
        assert_int_equal(route_body(required, "{\"a\":\"[[[[[[[[\"}", 16, &j, &r), 0);
        json_decref(j);
        assert_int_equal(route_body(optional, "", 0, &j, &r), 0);
        assert_null(j);
        assert_int_equal(route_body(optional, "x", 1, &j, &r), -1);
        api_result_done(&r);
        /* extend and resize: an empty or invalid body is {} (upstream extends by 1 h) */
        assert_int_equal(route_body(fallback, "x", 1, &j, &r), 0);
        assert_int_equal(r.status, 0);
        assert_true(json_is_object(j) && json_object_size(j) == 0);
        json_decref(j);
        assert_int_equal(route_body(fallback, "", 0, &j, &r), 0);
        assert_true(json_is_object(j));
        json_decref(j);
        assert_int_equal(route_body(none, "{\"ignored\":1}", 13, &j, &r), 0);
        assert_null(j);
}

/* ---- MCP ---- */

struct mcp_fixture {
        char dir[64];
        struct manager *m;
        struct api_options opts;
        struct api_ctx c;
};

static int mcp_setup(void **state)
{
        struct mcp_fixture *f = calloc(1, sizeof(*f));

        strcpy(f->dir, "/tmp/ak-test-route-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        setenv("AGENTKERNEL_DATA_DIR", f->dir, 1);
        assert_int_equal(manager_open(&f->m, NULL), 0);
        f->c = (struct api_ctx){f->m, &f->opts};
        *state = f;
        return 0;
}

static int mcp_teardown(void **state)
{
        struct mcp_fixture *f = *state;

        manager_free(f->m);
        (void)rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static json_t *rpc(struct mcp_fixture *f, const char *text)
{
        cleanup_json json_t *msg = json_loads(text, 0, NULL);

        assert_non_null(msg);
        return mcp_handle(&f->c, msg);
}

/* Every tool has a schema (an object) and reaches an operation: called without arguments, each
 * answers with a result (a missing argument is the tool's error), never "unknown tool". */
static void test_mcp_tools(void **state)
{
        struct mcp_fixture *f = *state;
        cleanup_json json_t *list =
            rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        json_t *tools = json_object_get(json_object_get(list, "result"), "tools"), *t;
        size_t i;

        /* ours and upstream's that this build lacks (answered with an error result): 40 in all */
        assert_int_equal(json_array_size(tools), 40);
        json_array_foreach (tools, i, t) {
                const char *name = json_string_value(json_object_get(t, "name"));
                json_t *schema = json_object_get(t, "inputSchema");
                char call[256];
                cleanup_json json_t *res = NULL;
                json_t *result;
                assert_non_null(name);
                assert_non_null(json_string_value(json_object_get(t, "description")));
                assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
                assert_true(json_is_object(json_object_get(schema, "properties")));
                (void)snprintf(call, sizeof(call),
                               "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                               "\"params\":{\"name\":\"%s\",\"arguments\":{}}}",
                               name);
                res = rpc(f, call);
                result = json_object_get(res, "result");
                if (!result)
                        fail_msg("tool %s: no result", name);
                assert_non_null(json_object_get(result, "content"));
                /* what each says without arguments: its required argument is missing */
                if (json_array_size(json_object_get(schema, "required"))) {
                        const char *text = json_string_value(json_object_get(
                            json_array_get(json_object_get(result, "content"), 0), "text"));
                        assert_true(json_is_true(json_object_get(result, "isError")));
                        if (!strstr(text, "is required") && !strstr(text, "not available"))
                                fail_msg("tool %s: %s", name, text);
                }
        }
}

static void test_mcp_errors(void **state)
{
        struct mcp_fixture *f = *state;
        cleanup_json json_t *unknown =
            rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                   "\"params\":{\"name\":\"sandbox_nosuch\"}}");
        cleanup_json json_t *bad_args =
            rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
                   "\"params\":{\"name\":\"sandbox_list\",\"arguments\":[]}}");
        cleanup_json json_t *method =
            rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"nosuch\"}");
        cleanup_json json_t *bad = rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":6}");
        cleanup_json json_t *init =
            rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"initialize\","
                   "\"params\":{\"protocolVersion\":\"2024-11-05\"}}");
        json_t *note = rpc(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");

        /* upstream: an unknown tool is a result with isError, not a JSON-RPC error */
        assert_null(json_object_get(unknown, "error"));
        assert_true(json_is_true(json_object_get(json_object_get(unknown, "result"), "isError")));
        assert_string_equal(
            json_string_value(json_object_get(
                json_array_get(json_object_get(json_object_get(unknown, "result"), "content"), 0),
                "text")),
            "Error: Unknown tool: sandbox_nosuch");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(bad_args, "error"), "code")),
            -32602);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(method, "error"), "code")), -32601);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(bad, "error"), "code")),
                         -32600);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(init, "result"), "protocolVersion")),
            "2024-11-05");
        assert_null(note);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_route_reaches_its_operation),
            cmocka_unit_test(test_table_is_well_formed),
            cmocka_unit_test(test_misses),
            cmocka_unit_test(test_file_paths),
            cmocka_unit_test(test_normalize_path),
            cmocka_unit_test(test_metric_counts),
            cmocka_unit_test(test_body_rules),
            cmocka_unit_test_setup_teardown(test_mcp_tools, mcp_setup, mcp_teardown),
            cmocka_unit_test_setup_teardown(test_mcp_errors, mcp_setup, mcp_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
