// SPDX-License-Identifier: Apache-2.0
/* Unit tests: compatibility modes (core/compat.c), source URL and ref checks (core/source.c),
 * template names and the built-in catalog (core/template.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/compat.h"
#include "core/config.h"
#include "core/source.h"
#include "core/template.h"

static void test_compat_lookup(void **unused)
{
        const struct compat_mode *m = NULL;
        struct ak_err err = {0};
        (void)unused;

        assert_int_equal(compat_mode_lookup(NULL, &m, NULL), 0);
        assert_true(compat_mode_is_native(m));
        assert_int_equal(compat_mode_lookup("Claude-Code", &m, NULL), 0);
        assert_string_equal(m->name, "claude");
        assert_string_equal(m->seccomp, "ai-agent");
        assert_int_equal(compat_mode_lookup("OPENAI-CODEX", &m, NULL), 0);
        assert_string_equal(m->profile, "restrictive");
        assert_true(m->network);
        assert_int_equal(compat_mode_lookup("gemini-cli", &m, NULL), 0);
        assert_int_equal(compat_mode_lookup("default", &m, NULL), 0);
        assert_true(compat_mode_is_native(m));
        assert_int_equal(compat_mode_lookup("copilot", &m, &err), -EINVAL);
        assert_non_null(strstr(ak_err_msg(&err), "native, claude, codex or gemini"));
}

static void test_source_urls(void **unused)
{
        static const char *const good[] = {"https://github.com/o/r.git",
                                           "http://h:8080/x",
                                           "ssh://git@h:2222/o/r",
                                           "git://h/r",
                                           "git@github.com:o/r.git",
                                           "git:https://h/r",
                                           "https://h",
                                           NULL};
        static const char *const bad[] = {"--upload-pack=x",
                                          "-u",
                                          "file:///etc",
                                          "/etc",
                                          "./r",
                                          "ext::sh",
                                          "fd::3",
                                          "git:ext::sh",
                                          "ssh://-oProxyCommand=x/r",
                                          "ssh://-o@h/r",
                                          "-o@h:r",
                                          "https://u:p@h/r",
                                          "https://h/a b",
                                          "https://h/a\nb",
                                          "https://-h/r",
                                          "https://h:0/r",
                                          "https://h:65536/r",
                                          "https:///r",
                                          "h:r",
                                          "@h:r",
                                          "",
                                          NULL};
        char host[256];
        uint16_t port = 0;
        (void)unused;

        for (const char *const *u = good; *u; u++)
                assert_int_equal(source_check(*u, NULL, NULL), 0);
        for (const char *const *u = bad; *u; u++)
                assert_int_equal(source_check(*u, NULL, NULL), -EINVAL);
        assert_int_equal(source_url_host("https://h.example:8443/r", host, sizeof(host), &port), 0);
        assert_string_equal(host, "h.example");
        assert_int_equal(port, 8443);
        assert_int_equal(source_url_host("git@github.com:o/r", host, sizeof(host), &port), 0);
        assert_string_equal(host, "github.com");
        assert_int_equal(port, 22);
        assert_int_equal(source_url_host("git:http://h/r", host, sizeof(host), &port), 0);
        assert_int_equal(port, 80);
}

static void test_source_refs(void **unused)
{
        static const char *const good[] = {"main", "v1.2.3", "feature/x-y_z", "0123abcd", NULL};
        static const char *const bad[] = {"-b",     "--orphan", "a..b",  "a//b", "/a",  "a/",
                                          "a.lock", ".a",       "a@{1}", "a b",  "a~1", "a^",
                                          "a:b",    "*",        "",      NULL};
        struct ak_err err = {0};
        (void)unused;

        for (const char *const *r = good; *r; r++)
                assert_int_equal(source_check("https://h/r", *r, NULL), 0);
        for (const char *const *r = bad; *r; r++)
                assert_int_equal(source_check("https://h/r", *r, NULL), -EINVAL);
        assert_int_equal(source_check(NULL, "main", &err), -EINVAL);
        assert_non_null(strstr(ak_err_msg(&err), "--git-ref requires --source"));
}

static void test_template_names_and_catalog(void **unused)
{
        (void)unused;
        assert_int_equal(template_name_check("python", NULL), 0);
        assert_int_equal(template_name_check("my.tpl-1_x", NULL), 0);
        assert_int_equal(template_name_check("../x", NULL), -EINVAL);
        assert_int_equal(template_name_check(".x", NULL), -EINVAL);
        assert_int_equal(template_name_check("-x", NULL), -EINVAL);
        assert_int_equal(template_name_check("x.toml", NULL), -EINVAL);
        assert_int_equal(template_name_check("", NULL), -EINVAL);
        assert_int_equal(template_builtins_n, 23);
        for (size_t i = 0; i < template_builtins_n; i++) {
                struct config *c = NULL;
                struct ak_err err = {0};
                const char *t = template_builtins[i].text;
                if (config_parse(t, strlen(t), NULL, &c, &err) < 0)
                        fail_msg("%s: %s", template_builtins[i].name, ak_err_msg(&err));
                assert_string_equal(c->name, template_builtins[i].name);
                assert_non_null(c->template_help_text);
                assert_int_equal(c->n_files, 0);
                assert_null(c->warnings[0]);
                config_free(c);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_compat_lookup),
            cmocka_unit_test(test_source_urls),
            cmocka_unit_test(test_source_refs),
            cmocka_unit_test(test_template_names_and_catalog),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
