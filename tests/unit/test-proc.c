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

/* A fake cgroup.procs in dir, and whether proc_verify() finds this process listed in it. */
static bool listed_in(const char *dir, const char *procs, size_t len)
{
        char p[256];
        uint64_t start = 0;
        struct proc_ident id;
        FILE *f;

        (void)snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
        f = fopen(p, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(procs, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(proc_start_time(getpid(), &start), 0);
        id = (struct proc_ident){.pid = getpid(), .start_time = start, .cgroup_dir = dir};
        return proc_verify(&id);
}

/* cgroup.procs is read a page at a time up to our line: only whole lines count, wherever the
 * pages cut them, and a list past its limit lists nothing. */
static void test_in_cgroup(void **unused)
{
        char dir[] = "/tmp/ak-test-procs-XXXXXX", me[16], *big;
        size_t len = 0, cap = (2u << 20) + 64;
        int n = snprintf(me, sizeof(me), "%d", (int)getpid());
        (void)unused;

        assert_non_null(mkdtemp(dir));
        big = malloc(cap);
        assert_non_null(big);
        assert_true(listed_in(dir, "1\n", 0) == false);
        (void)snprintf(big, cap, "7\n%s\n9\n", me);
        assert_true(listed_in(dir, big, strlen(big)));
        (void)snprintf(big, cap, "7\n%s", me); /* the last line without its newline */
        assert_true(listed_in(dir, big, strlen(big)));
        (void)snprintf(big, cap, "%s1\n1%s\n%.*s\n", me, me, n - 1, me); /* prefixes, suffixes */
        assert_false(listed_in(dir, big, strlen(big)));
        /* our line cut by the first page's end: other pids up to 4093, then ours */
        while (len < 4093 - 8)
                len += (size_t)snprintf(big + len, cap - len, "%07d\n", 1000000 + (int)len);
        while (len < 4093)
                big[len++] = '\n';
        len += (size_t)snprintf(big + len, cap - len, "%s\n", me);
        assert_true(listed_in(dir, big, len));
        memset(big, '1', 5000); /* a line longer than a page: no pid list */
        len = 5000 + (size_t)snprintf(big + 5000, cap - 5000, "\n%s\n", me);
        assert_false(listed_in(dir, big, len));
        /* more than the limit before our line: refused, as a file over the limit always was */
        for (len = 0; len <= (1u << 20);)
                len += (size_t)snprintf(big + len, cap - len, "1\n");
        len += (size_t)snprintf(big + len, cap - len, "%s\n", me);
        assert_false(listed_in(dir, big, len));
        free(big);
        {
                char p[256];
                (void)snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
                assert_int_equal(unlink(p), 0);
                assert_int_equal(rmdir(dir), 0);
        }
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
            cmocka_unit_test(test_in_cgroup),
            cmocka_unit_test(test_cgroup_confined),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
