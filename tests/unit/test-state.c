// SPDX-License-Identifier: Apache-2.0
/* SandboxState (de)serialisation: the seed's `mod tests` for state, ported, plus compatibility
 * cases of our own (unknown fields survive, our extension stays in its key). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/state.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"

static struct sandbox_state *sample(const char *name)
{
        struct sandbox_state *s = state_new();
        assert_non_null(s);
        assert_int_equal(state_set_str(&s->name, name), 0);
        assert_int_equal(state_set_str(&s->uuid, "0190a3c4-0000-7000-8000-000000000001"), 0);
        assert_int_equal(state_set_str(&s->image, "alpine:3.20"), 0);
        assert_int_equal(state_set_str(&s->created_at, "2024-01-01T00:00:00Z"), 0);
        s->vcpus = 2;
        s->memory_mb = 1024;
        s->vsock_cid = 5;
        return s;
}

static void test_serialize(void **unused)
{
        struct sandbox_state *s = sample("test-sandbox");
        cleanup_free char *json = NULL;

        (void)unused;
        assert_int_equal(state_format(s, &json), 0);
        assert_non_null(strstr(json, "test-sandbox"));
        assert_non_null(strstr(json, "alpine:3.20"));
        assert_non_null(strstr(json, "1024"));
        /* upstream omits empty maps and an absent lifecycle policy */
        assert_null(strstr(json, "\"labels\""));
        assert_null(strstr(json, "\"secret_mappings\""));
        assert_null(strstr(json, "\"lifecycle_policy\""));
        /* and writes the always-present fields */
        assert_non_null(strstr(json, "\"ports\": []"));
        assert_non_null(strstr(json, "\"backend\": null"));
        state_free(s);
}

static void test_deserialize_minimal(void **unused)
{
        const char *json = "{\"name\": \"my-sandbox\", \"image\": \"python:3.12-alpine\", "
                           "\"vcpus\": 4, \"memory_mb\": 2048, \"vsock_cid\": 10, "
                           "\"created_at\": \"2024-01-01T00:00:00Z\"}";
        struct sandbox_state *s = NULL;

        (void)unused;
        assert_int_equal(state_parse(json, strlen(json), &s, NULL), 0);
        assert_string_equal(s->name, "my-sandbox");
        assert_string_equal(s->image, "python:3.12-alpine");
        assert_int_equal(s->vcpus, 4);
        assert_int_equal(s->memory_mb, 2048);
        assert_int_equal(s->vsock_cid, 10);
        assert_string_equal(s->uuid, ""); /* defaulted; the store back-fills it */
        assert_null(s->backend);
        assert_false(s->has_ttl);
        assert_int_equal(s->n_ports, 0);
        assert_int_equal(s->proxy_port, -1);
        state_free(s);
}

static void test_roundtrip(void **unused)
{
        struct sandbox_state *a = sample("roundtrip-test"), *b = NULL;
        cleanup_free char *json = NULL, *json2 = NULL;
        struct port_mapping ports[2] = {{8080, 80, false}, {-1, 53, true}};

        (void)unused;
        a->ports = malloc(sizeof(ports));
        memcpy(a->ports, ports, sizeof(ports));
        a->n_ports = 2;
        a->has_ttl = true;
        a->ttl_seconds = 3600;
        json_object_set_new(a->labels, "env", json_string("prod"));
        a->lifecycle.present = true;
        a->lifecycle.has_archive = true;
        a->lifecycle.archive_after = 60;
        assert_int_equal(state_set_backend(a, "native"), 0);
        assert_int_equal(state_format(a, &json), 0);
        assert_int_equal(state_parse(json, strlen(json), &b, NULL), 0);
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->uuid, b->uuid);
        assert_string_equal(a->image, b->image);
        assert_int_equal(a->vcpus, b->vcpus);
        assert_int_equal(a->memory_mb, b->memory_mb);
        assert_int_equal(a->vsock_cid, b->vsock_cid);
        assert_string_equal(a->created_at, b->created_at);
        assert_int_equal(b->n_ports, 2);
        assert_int_equal(b->ports[0].host_port, 8080);
        assert_int_equal(b->ports[1].host_port, -1);
        assert_true(b->ports[1].udp);
        assert_true(b->has_ttl);
        assert_int_equal(b->ttl_seconds, 3600);
        assert_string_equal(json_string_value(json_object_get(b->labels, "env")), "prod");
        assert_true(b->lifecycle.present && b->lifecycle.has_archive);
        assert_false(b->lifecycle.has_stop);
        assert_int_equal(b->lifecycle.archive_after, 60);
        assert_string_equal(state_backend(b), "native");
        assert_null(b->backend); /* upstream has no "native": its field stays null */
        /* formatting the parsed state gives the same text */
        assert_int_equal(state_format(b, &json2), 0);
        assert_string_equal(json, json2);
        state_free(a);
        state_free(b);
}

static void test_missing_required(void **unused)
{
        const char *json = "{\"name\": \"test\"}";
        struct sandbox_state *s = NULL;
        struct ak_err err = {0};

        (void)unused;
        assert_int_equal(state_parse(json, strlen(json), &s, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "missing field"));
        assert_null(s);
}

static void test_wrong_types(void **unused)
{
        static const char *const bad[] = {
            "{\"name\":1,\"image\":\"a\",\"vcpus\":1,\"memory_mb\":1,\"vsock_cid\":3,\"created_"
            "at\":\"x\"}",
            "{\"name\":\"a\",\"image\":\"a\",\"vcpus\":-1,\"memory_mb\":1,\"vsock_cid\":3,"
            "\"created_at\":\"x\"}",
            "{\"name\":\"a\",\"image\":\"a\",\"vcpus\":1,\"memory_mb\":1,\"vsock_cid\":3,\"created_"
            "at\":\"x\",\"ports\":[{\"container_port\":70000}]}",
            "{\"name\":\"a\",\"image\":\"a\",\"vcpus\":1,\"memory_mb\":1,\"vsock_cid\":3,\"created_"
            "at\":\"x\",\"labels\":{\"k\":1}}",
            "{\"name\":\"a\",\"image\":\"a\",\"vcpus\":1,\"memory_mb\":1,\"vsock_cid\":3,\"created_"
            "at\":\"x\",\"ssh_enabled\":\"yes\"}",
            "{\"name\":\"a\",\"name\":\"b\",\"image\":\"a\",\"vcpus\":1,\"memory_mb\":1,\"vsock_"
            "cid\":3,\"created_at\":\"x\"}",
            "[1,2,3]",
            "not json",
        };
        (void)unused;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct sandbox_state *s = NULL;
                assert_int_not_equal(state_parse(bad[i], strlen(bad[i]), &s, NULL), 0);
                assert_null(s);
        }
}

static void test_unknown_fields_survive(void **unused)
{
        const char *json = "{\"name\":\"a\",\"image\":\"host\",\"vcpus\":1,\"memory_mb\":256,"
                           "\"vsock_cid\":4,\"created_at\":\"2026-02-16T00:00:00Z\","
                           "\"workspace_revision\":7,\"endpoints\":[{\"port\":1}],"
                           "\"x_agentkernel\":{\"backend\":\"native\",\"future\":true}}";
        struct sandbox_state *s = NULL;
        cleanup_free char *out = NULL;
        cleanup_json json_t *o = NULL;

        (void)unused;
        assert_int_equal(state_parse(json, strlen(json), &s, NULL), 0);
        assert_int_equal(state_format(s, &out), 0);
        o = json_loads(out, 0, NULL);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "workspace_revision")), 7);
        assert_true(json_is_array(json_object_get(o, "endpoints")));
        assert_true(json_is_true(json_object_get(json_object_get(o, "x_agentkernel"), "future")));
        assert_string_equal(state_backend(s), "native");
        state_free(s);
}

static void test_status(void **unused)
{
        struct sandbox_state *s = sample("a");
        (void)unused;
        assert_string_equal(state_status(s, true), "running");
        assert_string_equal(state_status(s, false), "stopped");
        assert_int_equal(state_set_str(&s->archived_at, "2026-01-01T00:00:00Z"), 0);
        assert_string_equal(state_status(s, true), "archived");
        state_free(s);
}

static void test_upstream_backend_names(void **unused)
{
        struct sandbox_state *s = sample("a");
        (void)unused;
        assert_int_equal(state_set_backend(s, "docker"), 0);
        assert_string_equal(s->backend, "docker");
        assert_null(s->ext_backend);
        assert_int_equal(state_set_backend(s, "native"), 0);
        assert_null(s->backend);
        assert_string_equal(s->ext_backend, "native");
        state_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_serialize),   cmocka_unit_test(test_deserialize_minimal),
            cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_missing_required),
            cmocka_unit_test(test_wrong_types), cmocka_unit_test(test_unknown_fields_survive),
            cmocka_unit_test(test_status),      cmocka_unit_test(test_upstream_backend_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
