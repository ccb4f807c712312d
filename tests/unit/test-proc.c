// SPDX-License-Identifier: Apache-2.0
/* What a runtime file names, checked before it is acted on: processes (backend/proc-util) and
 * cgroups (runtime/cgroup's cgroup_confined). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/proc-util.h"
#include "runtime/cgroup.h"

#define ID "01a24ca6-fa08-7aa3-b472-653c693107be"

static void test_proc_verify(void **unused)
{
        uint64_t start = 0;
        char boot[PROC_BOOT_ID_LEN + 1];
        struct proc_ident id;
        (void)unused;

        assert_int_equal(proc_start_time(getpid(), &start), 0);
        assert_int_equal(proc_boot_id(boot), 0);
        id = (struct proc_ident){.pid = getpid(), .start_time = start, .boot_id = boot};
        assert_true(proc_verify(&id));
        id.start_time = start + 1; /* a recycled pid has another start time */
        assert_false(proc_verify(&id));
        id.start_time = start;
        id.boot_id = "00000000-0000-0000-0000-000000000000"; /* recorded in another boot */
        assert_false(proc_verify(&id));
        id.boot_id = NULL;
        id.ns_init = true; /* this test is no pid namespace's init */
        assert_false(proc_verify(&id));
        id.ns_init = false;
        id.cgroup_dir = "/nonexistent/cgroup"; /* not a member */
        assert_false(proc_verify(&id));
        id = (struct proc_ident){.pid = 1, .start_time = 0};
        assert_false(proc_verify(&id)); /* never pid 1 (or below) */
}

static void test_cgroup_confined(void **unused)
{
        struct cgroup_set cg, bad;
        (void)unused;

        assert_int_equal(cgroup_paths(ID, &cg), 0);
        if (cg.mode == CGROUP_NONE) {
                skip(); /* no usable cgroups here: nothing is ever confined */
                return;
        }
        assert_true(cgroup_confined(ID, &cg));
        assert_false(cgroup_confined("01a24ca6-fa08-7aa3-b472-653c693107bf", &cg));
        assert_false(cgroup_confined("../x", &cg));
        bad = cg;
        (void)snprintf(bad.dirs[0], sizeof(bad.dirs[0]), "%s/../../victim", cg.dirs[0]);
        assert_false(cgroup_confined(ID, &bad));
        bad = cg;
        (void)snprintf(bad.dirs[0], sizeof(bad.dirs[0]), CGROUP_ROOT "/victim");
        assert_false(cgroup_confined(ID, &bad));
        bad = cg;
        (void)snprintf(bad.dirs[bad.n - 1], sizeof(bad.dirs[0]), "%s/child", cg.dirs[cg.n - 1]);
        assert_false(cgroup_confined(ID, &bad));
        bad = cg;
        bad.mode = cg.mode == CGROUP_V2 ? CGROUP_V1 : CGROUP_V2;
        assert_false(cgroup_confined(ID, &bad));
        bad = cg;
        bad.n = 0;
        assert_false(cgroup_confined(ID, &bad));
        if (cg.mode == CGROUP_V1) { /* one hierarchy's directory in another's place */
                bad = cg;
                memcpy(bad.dirs[0], cg.dirs[1], sizeof(bad.dirs[0]));
                assert_false(cgroup_confined(ID, &bad));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_proc_verify),
            cmocka_unit_test(test_cgroup_confined),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
