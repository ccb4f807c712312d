// SPDX-License-Identifier: Apache-2.0
/* The secrets vault (core/vault.c): upstream's format (a known AES-256-GCM vector, the legacy
 * base64 form), the files it makes and refuses, and that no message quotes a value; the binding
 * and secret-file parsers (core/secrets.c) with upstream's own test cases. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/coding-agents.h"
#include "core/secrets.h"
#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/tmp/ak-test-vault-XXXXXX");
        assert_non_null(mkdtemp(dir));
        setenv("AGENTKERNEL_DATA_DIR", dir, 1);
        unsetenv("AGENTKERNEL_SECRETS_BACKEND");
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        (void)rm_rf_at(AT_FDCWD, dir);
        return 0;
}

static mode_t mode_of(const char *name)
{
        char p[128];
        struct stat st;

        (void)snprintf(p, sizeof(p), "%s/%s", dir, name);
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode & 07777;
}

/* key = 32 zero bytes, nonce = 12 zero bytes, "hello": what ring (upstream) and any AES-GCM
 * writes */
static void test_known_vector(void **state)
{
        static const uint8_t key[VAULT_KEY_LEN] = {0};
        char *v = NULL;
        size_t n = 0;

        (void)state;
        assert_int_equal(vault_open_payload(key, "v1:AAAAAAAAAAAAAAAA:psIsUSKLkI9/Yv/Opqkvq+85v02T",
                                            &v, &n, NULL),
                         0);
        assert_int_equal(n, 5);
        assert_string_equal(v, "hello");
        vault_value_free(v, n);
        /* a flipped bit of the tag: refused */
        assert_int_equal(vault_open_payload(key, "v1:AAAAAAAAAAAAAAAA:psIsUSKLkI9/Yv/Opqkvq+85v02U",
                                            &v, &n, NULL),
                         -EBADMSG);
        /* legacy: plain base64 of the value */
        assert_int_equal(vault_open_payload(key, "aGVsbG8=", &v, &n, NULL), 0);
        assert_string_equal(v, "hello");
        vault_value_free(v, n);
        /* a nonce that is not 12 bytes */
        assert_int_equal(
            vault_open_payload(key, "v1:AAAA:psIsUSKLkI9/Yv/Opqkvq+85v02T", &v, &n, NULL),
            -EBADMSG);
}

static void test_seal_roundtrip_and_wrong_key(void **state)
{
        uint8_t key[VAULT_KEY_LEN] = {1, 2, 3}, other[VAULT_KEY_LEN] = {9};
        cleanup_free char *p1 = NULL, *p2 = NULL;
        char *v = NULL;
        size_t n = 0;

        (void)state;
        assert_int_equal(vault_seal(key, "sk-abc:def", 10, &p1), 0);
        assert_int_equal(vault_seal(key, "sk-abc:def", 10, &p2), 0);
        assert_true(strncmp(p1, "v1:", 3) == 0);
        assert_string_not_equal(p1, p2); /* a fresh nonce per value */
        assert_null(strstr(p1, "sk-abc"));
        assert_int_equal(vault_open_payload(key, p1, &v, &n, NULL), 0);
        assert_string_equal(v, "sk-abc:def");
        vault_value_free(v, n);
        assert_int_equal(vault_open_payload(other, p1, &v, &n, NULL), -EBADMSG);
}

static void test_store_files_and_modes(void **state)
{
        cleanup_json json_t *all = NULL;
        struct ak_err err = {0};
        char *v = NULL;
        size_t n = 0;

        (void)state;
        assert_int_equal(vault_has(VAULT_FILE, "K", NULL), 0);
        /* a read makes nothing (upstream made a key on a read, then failed to decrypt) */
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -ENOENT);
        assert_int_equal(access(dir, F_OK), 0);
        assert_int_equal(vault_set(VAULT_FILE, "K", "value-1", 7, NULL), 0);
        assert_int_equal(mode_of("secrets.json"), 0600);
        assert_int_equal(mode_of("secrets.key"), 0600);
        assert_int_equal(mode_of(""), 0700);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, NULL), 0);
        assert_string_equal(v, "value-1");
        vault_value_free(v, n);
        assert_int_equal(vault_list(VAULT_FILE, &all, NULL), 0);
        assert_non_null(json_object_get(all, "K"));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(all, "K"), "backend")), "file");
        assert_int_equal(vault_delete(VAULT_FILE, "K", NULL), 0);
        assert_int_equal(vault_delete(VAULT_FILE, "K", &err), -ENOENT);
        assert_string_equal(ak_err_msg(&err), "secret 'K' not found");
}

static void test_missing_key_is_not_made_by_a_read(void **state)
{
        char p[128], *v = NULL;
        struct ak_err err = {0};
        size_t n = 0;

        (void)state;
        assert_int_equal(vault_set(VAULT_FILE, "K", "value-2", 7, NULL), 0);
        (void)snprintf(p, sizeof(p), "%s/secrets.key", dir);
        assert_int_equal(unlink(p), 0);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -ENOENT);
        assert_non_null(strstr(ak_err_msg(&err), "key file"));
        assert_int_equal(access(p, F_OK), -1);
}

static void test_foreign_modes_refused(void **state)
{
        char p[128], *v = NULL;
        struct ak_err err = {0};
        size_t n = 0;

        (void)state;
        assert_int_equal(vault_set(VAULT_FILE, "K", "value-3", 7, NULL), 0);
        (void)snprintf(p, sizeof(p), "%s/secrets.json", dir);
        assert_int_equal(chmod(p, 0620), 0);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -EPERM);
        assert_non_null(strstr(ak_err_msg(&err), "writable by group or others"));
        assert_int_equal(chmod(p, 0644), 0);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -EPERM);
        assert_int_equal(chmod(p, 0600), 0);
        (void)snprintf(p, sizeof(p), "%s/secrets.key", dir);
        assert_int_equal(chmod(p, 0604), 0);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -EPERM);
        assert_int_equal(chmod(p, 0600), 0);
        /* a link in the key's place */
        assert_int_equal(rename(p, "/tmp/ak-test-vault-moved-key"), 0);
        assert_int_equal(symlink("/tmp/ak-test-vault-moved-key", p), 0);
        assert_int_equal(vault_get(VAULT_FILE, "K", &v, &n, &err), -EPERM);
        assert_int_equal(unlink("/tmp/ak-test-vault-moved-key"), 0);
}

static void test_add_and_messages_hold_no_value(void **state)
{
        struct ak_err err = {0};
        bool added = false;

        (void)state;
        assert_int_equal(vault_add(VAULT_FILE, "A", "first-CANARY", 12, &added, NULL), 0);
        assert_true(added);
        assert_int_equal(vault_add(VAULT_FILE, "A", "first-CANARY", 12, &added, NULL), 0);
        assert_false(added);
        assert_int_equal(vault_add(VAULT_FILE, "A", "other-CANARY", 12, &added, &err), -EEXIST);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(vault_set(VAULT_FILE, "bad name", "v-CANARY", 8, &err), -EINVAL);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(vault_set(VAULT_FILE, "B", "nul\0-CANARY", 11, &err), -EINVAL);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(vault_set(VAULT_FILE, "B", "\xff-CANARY", 8, &err), -EINVAL);
        assert_int_equal(vault_set(VAULT_FILE, "B", "", 0, &err), -EINVAL);
}

static void test_hosts(void **state)
{
        char *const hosts[] = {"api.openai.com", "*.example.com", NULL};
        char *const bad[] = {"host:443", NULL};
        struct ak_err err = {0};

        (void)state;
        assert_int_equal(vault_set_hosts(VAULT_FILE, "H", (char *const *)hosts, NULL), -ENOENT);
        assert_int_equal(vault_set(VAULT_FILE, "H", "v-hosts", 7, NULL), 0);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "evil.com", NULL), 1); /* no list */
        assert_int_equal(vault_set_hosts(VAULT_FILE, "H", (char *const *)bad, NULL), -EINVAL);
        assert_int_equal(vault_set_hosts(VAULT_FILE, "H", (char *const *)hosts, NULL), 0);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "API.openai.com", NULL), 1);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "example.com", NULL), 1);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "a.b.example.com", NULL), 1);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "badexample.com", NULL), 0);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "api.openai.com.evil.com", &err), 0);
        assert_non_null(strstr(ak_err_msg(&err), "may be sent only to"));
        /* a new value keeps the list */
        assert_int_equal(vault_set(VAULT_FILE, "H", "v-hosts-2", 9, NULL), 0);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "evil.com", NULL), 0);
        assert_int_equal(vault_set_hosts(VAULT_FILE, "H", NULL, NULL), 0);
        assert_int_equal(vault_host_allowed(VAULT_FILE, "H", "evil.com", NULL), 1);
}

static void test_env_backend(void **state)
{
        enum vault_backend b;
        char *v = NULL;
        size_t n = 0;
        cleanup_json json_t *all = NULL;

        (void)state;
        assert_int_equal(vault_backend_parse("ENV", &b, NULL), 0);
        assert_int_equal(b, VAULT_ENV);
        assert_int_equal(vault_backend_parse("vault", &b, NULL), -EINVAL);
        setenv("AK_TEST_VAULT_ENV", "from-env", 1);
        assert_int_equal(vault_get(VAULT_ENV, "AK_TEST_VAULT_ENV", &v, &n, NULL), 0);
        assert_string_equal(v, "from-env");
        vault_value_free(v, n);
        assert_int_equal(vault_has(VAULT_ENV, "AK_TEST_VAULT_UNSET", NULL), 0);
        assert_int_equal(vault_set(VAULT_ENV, "X", "y", 1, NULL), -EOPNOTSUPP);
        assert_int_equal(vault_delete(VAULT_ENV, "X", NULL), -EOPNOTSUPP);
        assert_int_equal(vault_list(VAULT_ENV, &all, NULL), 0);
        assert_int_equal(json_object_size(all), 0);
        assert_int_equal(vault_get(VAULT_KEYRING, "X", &v, &n, NULL), -EOPNOTSUPP);
}

static void test_binding_parse(void **state)
{
        struct secret_binding b = {0};
        struct ak_err err = {0};
        char *f;

        (void)state;
        /* upstream's own cases */
        assert_int_equal(secret_binding_parse("OPENAI_API_KEY=sk-test123:api.openai.com", &b, NULL),
                         0);
        assert_string_equal(b.key, "OPENAI_API_KEY");
        assert_string_equal(b.value, "sk-test123");
        assert_string_equal(b.host, "api.openai.com");
        assert_string_equal(b.header, "Authorization");
        assert_string_equal(b.prefix, "Bearer ");
        f = secret_binding_format(&b);
        assert_string_equal(f, "OPENAI_API_KEY:api.openai.com"); /* never the value */
        free(f);
        secret_binding_done(&b);
        assert_int_equal(
            secret_binding_parse("ANTHROPIC_API_KEY:api.anthropic.com:x-api-key", &b, NULL), 0);
        assert_string_equal(b.header, "x-api-key");
        assert_string_equal(b.prefix, "");
        assert_null(b.value);
        f = secret_binding_format(&b);
        assert_string_equal(f, "ANTHROPIC_API_KEY:api.anthropic.com:x-api-key");
        free(f);
        secret_binding_done(&b);
        assert_int_equal(secret_binding_parse("MY_KEY=abc:def:ghi:my-host.com", &b, NULL), 0);
        assert_string_equal(b.value, "abc:def:ghi");
        assert_string_equal(b.host, "my-host.com");
        secret_binding_done(&b);
        assert_int_equal(secret_binding_parse("NOHOST", &b, NULL), -EINVAL);
        assert_int_equal(secret_binding_parse("=:", &b, NULL), -EINVAL);
        assert_int_equal(secret_binding_parse(":host.com", &b, NULL), -EINVAL);
        /* where upstream went wrong: a port read as a header, a header read as the host */
        assert_int_equal(secret_binding_parse("K:api.x.com:8443", &b, &err), -EINVAL);
        assert_non_null(strstr(ak_err_msg(&err), "port"));
        assert_int_equal(secret_binding_parse("K=CANARY-v:api.x.com:x-api-key", &b, &err), -EINVAL);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(secret_binding_parse("K=CANARY-v:bad host", &b, &err), -EINVAL);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(secret_binding_parse("K=CANARY-v", &b, &err), -EINVAL);
        assert_null(strstr(ak_err_msg(&err), "CANARY"));
        assert_int_equal(secret_binding_parse("K=:api.x.com", &b, &err), -EINVAL);
        assert_int_equal(secret_binding_parse("K:api.x.com:bad header", &b, &err), -EINVAL);
}

static void test_secret_file_and_placeholder(void **state)
{
        char *k = NULL, *p = NULL, ph[SECRET_PLACEHOLDER_LEN + 1], ph2[SECRET_PLACEHOLDER_LEN + 1];

        (void)state;
        assert_int_equal(secret_file_parse("TOKEN", &k, &p, NULL), 0);
        assert_string_equal(k, "TOKEN");
        assert_string_equal(p, "/run/agentkernel/secrets/TOKEN");
        free(k);
        free(p);
        assert_int_equal(secret_file_parse("TOKEN:/home/u/.netrc", &k, &p, NULL), 0);
        assert_string_equal(p, "/home/u/.netrc");
        free(k);
        free(p);
        assert_int_equal(secret_file_parse("TOKEN:relative", &k, &p, NULL), -EINVAL);
        assert_int_equal(secret_file_parse("../x", &k, &p, NULL), -EINVAL);
        secret_placeholder(ph);
        secret_placeholder(ph2);
        assert_int_equal(strlen(ph), SECRET_PLACEHOLDER_LEN);
        assert_true(strncmp(ph, "AGENTKERNEL_PLACEHOLDER_", 24) == 0);
        assert_string_not_equal(ph, ph2);
        assert_true(secret_has_placeholder(ph));
        assert_false(secret_has_placeholder("AGENTKERNEL_PLACEHOLDER_xyz"));
}

/* Every agent's provider key is a valid binding (the data the proxy's part will apply). */
static void test_agent_keys_are_bindings(void **state)
{
        static const char *const names[] = {"claude", "gemini", "codex",  "opencode",
                                            "amp",    "pi",     "copilot"};
        char text[512];

        (void)state;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                const struct coding_agent *a = coding_agent_find(names[i]);
                assert_non_null(a);
                assert_non_null(a->keys[0].env);
                for (size_t k = 0; k < AGENT_KEYS_MAX && a->keys[k].env; k++) {
                        struct secret_binding b = {0};
                        assert_true(coding_agent_key_binding(&a->keys[k], text, sizeof(text)) > 0);
                        assert_int_equal(secret_binding_parse(text, &b, NULL), 0);
                        assert_string_equal(b.key, a->keys[k].env);
                        secret_binding_done(&b);
                }
        }
        assert_string_equal(coding_agent_find("claude")->keys[0].header, "x-api-key");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_known_vector),
            cmocka_unit_test(test_seal_roundtrip_and_wrong_key),
            cmocka_unit_test_setup_teardown(test_store_files_and_modes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_key_is_not_made_by_a_read, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_foreign_modes_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(test_add_and_messages_hold_no_value, setup, teardown),
            cmocka_unit_test_setup_teardown(test_env_backend, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
            cmocka_unit_test(test_binding_parse),
            cmocka_unit_test(test_secret_file_and_placeholder),
            cmocka_unit_test(test_agent_keys_are_bindings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
