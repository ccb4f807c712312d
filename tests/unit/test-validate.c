// SPDX-License-Identifier: Apache-2.0
/* Validation rules: upstream's, with its defects fixed (TTL units agree everywhere). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/validate.h"

static void test_names(void **unused)
{
        static const char *const good[] = {
            "a",
            "dev",
            "my-sandbox",
            "a_b",
            "A1",
            "x-1-y",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
        static const char *const bad[] = {
            "",     "-a",   "a-",
            "_a",   "a_",   "a--b",
            "a__b", "a-_b", "a_-b",
            "a b",  "a/b",  "../x",
            "a.b",  "é",    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
        (void)unused;
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                assert_int_equal(validate_name(good[i], NULL), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_int_equal(validate_name(bad[i], NULL), -EINVAL);
}

static void test_images(void **unused)
{
        (void)unused;
        assert_int_equal(validate_image("alpine:3.20", NULL), 0);
        assert_int_equal(validate_image("registry:5000/x/y:z", NULL), 0);
        assert_int_equal(validate_image("alpine@sha256:0123abcd", NULL), 0);
        assert_int_equal(validate_image("host", NULL), 0);
        assert_int_equal(validate_image("alpine;rm -rf /", NULL), -EINVAL);
        assert_int_equal(validate_image("$(id)", NULL), -EINVAL);
        assert_int_equal(validate_image("a|b", NULL), -EINVAL);
        assert_int_equal(validate_image("a\nb", NULL), -EINVAL);
        assert_int_equal(validate_image("-rf", NULL), -EINVAL);
        assert_int_equal(validate_image("", NULL), -EINVAL);
}

static void test_ttl(void **unused)
{
        uint64_t v;
        (void)unused;
        assert_int_equal(parse_ttl("30s", false, &v, NULL), 0);
        assert_int_equal(v, 30);
        assert_int_equal(parse_ttl("2h30m", false, &v, NULL), 0);
        assert_int_equal(v, 9000);
        assert_int_equal(parse_ttl("1d", false, &v, NULL), 0); /* upstream Q8: d everywhere */
        assert_int_equal(v, 86400);
        assert_int_equal(parse_ttl("1d2h3m4s", false, &v, NULL), 0);
        assert_int_equal(v, 86400 + 7200 + 180 + 4);
        assert_int_equal(parse_ttl("90", false, &v, NULL), 0);
        assert_int_equal(v, 90);
        assert_int_equal(parse_ttl("0", true, &v, NULL), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_ttl("0", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("30m2h", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("1h1h", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("1w", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("h", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("-1s", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("3651d", false, &v, NULL), -EINVAL);
        assert_int_equal(parse_ttl("99999999999999999999999s", false, &v, NULL), -EINVAL);
}

static void test_ports(void **unused)
{
        struct port_spec p;
        (void)unused;
        assert_int_equal(parse_port_spec("8080:80", &p, NULL), 0);
        assert_int_equal(p.host_port, 8080);
        assert_int_equal(p.container_port, 80);
        assert_false(p.udp);
        assert_int_equal(parse_port_spec("53:53/udp", &p, NULL), 0);
        assert_true(p.udp);
        assert_int_equal(parse_port_spec("3000", &p, NULL), 0);
        assert_int_equal(p.host_port, -1);
        assert_int_equal(p.container_port, 3000);
        assert_int_equal(parse_port_spec("80/tcp", &p, NULL), 0);
        assert_int_equal(parse_port_spec("0:80", &p, NULL), -EINVAL);
        assert_int_equal(parse_port_spec("80:70000", &p, NULL), -EINVAL);
        assert_int_equal(parse_port_spec("80/sctp", &p, NULL), -EINVAL);
        assert_int_equal(parse_port_spec("a:b", &p, NULL), -EINVAL);
        assert_int_equal(parse_port_spec("", &p, NULL), -EINVAL);
}

static void test_paths(void **unused)
{
        (void)unused;
        assert_int_equal(validate_sandbox_path("/tmp/x", NULL), 0);
        assert_int_equal(validate_sandbox_path("/workspace/a..b", NULL), 0);
        assert_int_equal(validate_sandbox_path("/etc/passwd.bak", NULL), 0);
        assert_int_equal(validate_sandbox_path("tmp/x", NULL), -EINVAL);
        assert_int_equal(validate_sandbox_path("/tmp/../etc/shadow", NULL), -EINVAL);
        assert_int_equal(validate_sandbox_path("/tmp/..", NULL), -EINVAL);
        assert_int_equal(validate_sandbox_path("/proc/1/mem", NULL), -EACCES);
        assert_int_equal(validate_sandbox_path("/sys", NULL), -EACCES);
        assert_int_equal(validate_sandbox_path("/dev/sda", NULL), -EACCES);
        assert_int_equal(validate_sandbox_path("/etc/shadow", NULL), -EACCES);
        assert_int_equal(validate_sandbox_path("/etc/sudoers", NULL), -EACCES);
        assert_int_equal(validate_sandbox_path("/root/.ssh/id_rsa", NULL), -EACCES);
}

static void test_labels_env_user(void **unused)
{
        char *k = NULL, *v = NULL;
        (void)unused;
        assert_int_equal(validate_label("env", "prod", NULL), 0);
        assert_int_equal(validate_label("app.kubernetes.io/name", "x", NULL), 0);
        assert_int_equal(validate_label("", "x", NULL), -EINVAL);
        assert_int_equal(validate_label("a b", "x", NULL), -EINVAL);
        assert_int_equal(validate_label("k", "a\nb", NULL), -EINVAL);
        assert_int_equal(parse_label("team=ml", '=', &k, &v, NULL), 0);
        assert_string_equal(k, "team");
        assert_string_equal(v, "ml");
        free(k);
        free(v);
        assert_int_equal(parse_label("team:ml", ':', &k, &v, NULL), 0);
        free(k);
        free(v);
        assert_int_equal(parse_label("noequals", '=', &k, &v, NULL), -EINVAL);
        assert_int_equal(validate_env_entry("A=1", NULL), 0);
        assert_int_equal(validate_env_entry("A=", NULL), 0);
        assert_int_equal(validate_env_entry("A", NULL), -EINVAL);
        assert_int_equal(validate_env_entry("=1", NULL), -EINVAL);
        assert_int_equal(validate_env_entry("1A=1", NULL), -EINVAL);
        assert_int_equal(validate_env_entry("A B=1", NULL), -EINVAL);
        assert_int_equal(validate_user("root", NULL), 0);
        assert_int_equal(validate_user("1000:1000", NULL), 0);
        assert_int_equal(validate_user("a;b", NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names), cmocka_unit_test(test_images),
            cmocka_unit_test(test_ttl),   cmocka_unit_test(test_ports),
            cmocka_unit_test(test_paths), cmocka_unit_test(test_labels_env_user),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
