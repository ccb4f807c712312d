// SPDX-License-Identifier: Apache-2.0
/* The permission grant store (core/permissions.c): upstream's matching rule, `once` consumed,
 * the bound of 256 grants, revoke, and `always` grants written and believed by a new store. */
#include <errno.h>
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

#include "core/permissions.h"

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/tmp/ak-test-perms-XXXXXX");
        assert_non_null(mkdtemp(dir));
        setenv("AGENTKERNEL_DATA_DIR", dir, 1);
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        (void)state;
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static void test_names(void **state)
{
        char req[PERM_REQUEST_ID_LEN + 1];

        (void)state;
        assert_int_equal(perm_kind_parse("sandbox_create"), PERM_SANDBOX_CREATE);
        assert_int_equal(perm_kind_parse("file_delete"), PERM_FILE_DELETE);
        assert_int_equal(perm_kind_parse("Sandbox_create"), -EINVAL);
        assert_int_equal(perm_kind_parse(NULL), -EINVAL);
        assert_int_equal(perm_scope_parse(NULL), PERM_ONCE);
        assert_int_equal(perm_scope_parse("always"), PERM_ALWAYS);
        assert_int_equal(perm_scope_parse("forever"), -EINVAL);
        perm_request_id(req);
        assert_int_equal(strlen(req), PERM_REQUEST_ID_LEN);
        assert_memory_equal(req, "req_", 4);
}

static void test_matching_and_once(void **state)
{
        struct perm_store *s = malloc(sizeof(*s));
        char id[PERM_ID_LEN + 1];
        struct ak_err err = {0};

        (void)state;
        perm_store_init(s, false);
        assert_false(perm_check(s, PERM_SANDBOX_CREATE, "a", true));
        assert_int_equal(perm_grant(s, PERM_SANDBOX_CREATE, PERM_ONCE, "a", id, &err), 0);
        assert_false(perm_check(s, PERM_SANDBOX_CREATE, "b", true));  /* another sandbox */
        assert_false(perm_check(s, PERM_SANDBOX_CREATE, NULL, true)); /* all: not this one */
        assert_false(perm_check(s, PERM_SANDBOX_REMOVE, "a", true));  /* another kind */
        assert_true(perm_check(s, PERM_SANDBOX_CREATE, "a", false));  /* not consumed */
        assert_true(perm_check(s, PERM_SANDBOX_CREATE, "a", true));   /* consumed */
        assert_false(perm_check(s, PERM_SANDBOX_CREATE, "a", true));
        assert_int_equal(perm_grant(s, PERM_SANDBOX_REMOVE, PERM_SESSION, NULL, id, &err), 0);
        assert_true(perm_check(s, PERM_SANDBOX_REMOVE, "x", true));
        assert_true(perm_check(s, PERM_SANDBOX_REMOVE, NULL, true));
        assert_int_equal(perm_revoke(s, id, &err), 0);
        assert_false(perm_check(s, PERM_SANDBOX_REMOVE, "x", true));
        assert_int_equal(perm_revoke(s, id, &err), -ENOENT);
        assert_int_equal(perm_revoke(s, "../x", &err), -ENOENT);
        assert_int_equal(perm_grant(s, PERM_SANDBOX_REMOVE, PERM_ALWAYS, NULL, id, &err),
                         -ENOTSUP); /* a store that keeps no file */
        assert_int_equal(perm_grant(s, PERM_SANDBOX_REMOVE, PERM_SESSION, "a b", id, &err),
                         -EINVAL);
        perm_store_done(s);
        free(s);
}

static void test_bound(void **state)
{
        struct perm_store *s = malloc(sizeof(*s));
        char id[PERM_ID_LEN + 1];
        struct ak_err err = {0};

        (void)state;
        perm_store_init(s, false);
        for (int i = 0; i < PERM_GRANTS_MAX; i++)
                assert_int_equal(perm_grant(s, PERM_SUDO_EXEC, PERM_SESSION, NULL, id, &err), 0);
        assert_int_equal(perm_grant(s, PERM_SUDO_EXEC, PERM_SESSION, NULL, id, &err), -ENOSPC);
        perm_store_done(s);
        free(s);
}

static void test_always_persists(void **state)
{
        struct perm_store *s = malloc(sizeof(*s)), *t = malloc(sizeof(*t));
        char id[PERM_ID_LEN + 1], path[128], w[512];
        struct ak_err err = {0};
        struct stat st;
        json_t *l;

        (void)state;
        perm_store_init(s, true);
        assert_false(perm_store_warning(s, w, sizeof(w)));
        assert_int_equal(perm_grant(s, PERM_FILE_DELETE, PERM_ALWAYS, "box", id, &err), 0);
        (void)snprintf(path, sizeof(path), "%s/%s", dir, PERM_FILE);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        perm_store_init(t, true);
        assert_true(perm_check(t, PERM_FILE_DELETE, "box", true));
        assert_true(perm_check(t, PERM_FILE_DELETE, "box", true)); /* never consumed */
        l = perm_list(t);
        assert_int_equal(json_array_size(l), 1);
        json_decref(l);
        assert_int_equal(perm_revoke(t, id, &err), 0);
        assert_false(perm_check(t, PERM_FILE_DELETE, "box", true));
        perm_store_done(t);
        /* a loosened file is refused by the next store, and not overwritten */
        assert_int_equal(chmod(path, 0644), 0);
        perm_store_init(t, true);
        assert_true(perm_store_warning(t, w, sizeof(w)));
        assert_non_null(strstr(w, "0600"));
        assert_int_equal(perm_grant(t, PERM_FILE_DELETE, PERM_ALWAYS, NULL, id, &err), -EPERM);
        perm_store_done(t);
        perm_store_done(s);
        free(s);
        free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test(test_matching_and_once),
            cmocka_unit_test(test_bound),
            cmocka_unit_test_setup_teardown(test_always_persists, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
