// SPDX-License-Identifier: Apache-2.0
/* The remount data `setup` gives a cgroup2 hierarchy to favor joins (runtime/cgroup.c,
 * cgroup_favor_options): favordynmods added, cgroup2's own options kept (a remount resets what it
 * is not given), per-mount flags and anything unknown left out, and a too small buffer an error,
 * never a truncated option string. Pure: nothing is mounted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/cgroup.h"

static void test_plain_mount(void **state)
{
        char out[128];

        (void)state;
        assert_int_equal(cgroup_favor_options("rw,relatime", out, sizeof(out)), 0);
        assert_string_equal(out, "favordynmods");
}

static void test_systemd_options_kept(void **state)
{
        char out[128];

        (void)state;
        assert_int_equal(cgroup_favor_options("rw,nosuid,nodev,noexec,relatime,nsdelegate,"
                                              "memory_recursiveprot",
                                              out, sizeof(out)),
                         0);
        assert_string_equal(out, "nsdelegate,memory_recursiveprot,favordynmods");
}

static void test_already_favored_once(void **state)
{
        char out[128];

        (void)state;
        assert_int_equal(
            cgroup_favor_options("rw,favordynmods,memory_localevents,bogus=1", out, sizeof(out)),
            0);
        assert_string_equal(out, "memory_localevents,favordynmods");
}

static void test_too_small(void **state)
{
        char out[16];

        (void)state;
        assert_int_equal(cgroup_favor_options("nsdelegate,memory_recursiveprot", out, sizeof(out)),
                         -ENAMETOOLONG);
        assert_int_equal(cgroup_favor_options("rw", out, 12), -ENAMETOOLONG);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plain_mount),
            cmocka_unit_test(test_systemd_options_kept),
            cmocka_unit_test(test_already_favored_once),
            cmocka_unit_test(test_too_small),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
