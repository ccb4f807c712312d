// SPDX-License-Identifier: Apache-2.0
/* Command policy matching (src/shared/cmd-policy.c) on its own: the host's check by names, the
 * agent's by what a name resolves to (symlinks, copies, paths), the allow list's two modes, and
 * the PATH search that finds a command's target. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/fd-util.h"

#define BLOCKED "blocked by the command policy"
#define NOT_ALLOWED "not in the command policy's allow list"
#define NOT_FOUND "not found, and the command policy allows only listed commands"

/* A sandbox's view, as the agent resolves names: name -> real path of what would run. */
static const struct {
        const char *name, *target;
} fs[] = {
    {"ls", "/usr/bin/ls"},
    {"/usr/bin/ls", "/usr/bin/ls"},
    {"/bin/ls", "/usr/bin/ls"}, /* /bin is a link to /usr/bin */
    {"python3", "/usr/bin/python3.11"},
    {"py", "/usr/bin/python3.11"}, /* a symlink named otherwise */
    {"/tmp/ls", "/tmp/ls"},        /* a copy of ls */
    {"sh", "/usr/bin/dash"},
    {"cat", "/usr/bin/cat"},
    {"./tool", "/work/tool"},
};

static char *resolver(void *ctx, const char *name)
{
        (void)ctx;
        for (size_t i = 0; i < sizeof(fs) / sizeof(*fs); i++)
                if (!strcmp(fs[i].name, name))
                        return strdup(fs[i].target);
        return NULL;
}

static const char *check(const struct cmd_policy *p, const char *argv0, bool agent)
{
        return cmd_policy_check(p, argv0, agent ? resolver : NULL, NULL);
}

static void test_empty(void **unused)
{
        char *none[] = {NULL};
        struct cmd_policy p = {none, none, false};

        (void)unused;
        assert_true(cmd_policy_empty(NULL));
        assert_true(cmd_policy_empty(&p));
        assert_null(check(NULL, "anything", true));
        assert_null(check(&p, "rm", false));
        /* allowlist_only with nothing listed is not empty: it refuses everything */
        p.allowlist_only = true;
        assert_false(cmd_policy_empty(&p));
        assert_string_equal(check(&p, "ls", false), NOT_ALLOWED);
        assert_string_equal(check(&p, "ls", true), NOT_ALLOWED);
}

static void test_block(void **unused)
{
        char *block[] = {"python3", "rm", NULL};
        struct cmd_policy p = {NULL, block, false};

        (void)unused;
        /* by name, with or without a path */
        assert_string_equal(check(&p, "rm", false), BLOCKED);
        assert_string_equal(check(&p, "/bin/rm", false), BLOCKED);
        assert_string_equal(check(&p, "./rm", false), BLOCKED);
        assert_null(check(&p, "rmdir", false));
        assert_null(check(&p, "rm2", false));
        /* by what it resolves to: a symlink named otherwise, or the target's own name */
        assert_string_equal(check(&p, "py", true), BLOCKED);
        assert_string_equal(check(&p, "python3", true), BLOCKED);
        assert_null(check(&p, "py", false)); /* the host cannot see the link */
        assert_null(check(&p, "ls", true));
}

static void test_block_by_path(void **unused)
{
        char *block[] = {"/usr/bin/ls", NULL};
        struct cmd_policy p = {NULL, block, false};

        (void)unused;
        assert_string_equal(check(&p, "ls", true), BLOCKED);
        assert_string_equal(check(&p, "/bin/ls", true), BLOCKED);
        assert_string_equal(check(&p, "/usr/bin/ls", false), BLOCKED);
        /* a copy elsewhere is another file */
        assert_null(check(&p, "/tmp/ls", true));
}

static void test_allowlist_only(void **unused)
{
        char *allow[] = {"ls", "/usr/bin/python3.11", NULL};
        char *block[] = {"cat", NULL};
        struct cmd_policy p = {allow, block, true};

        (void)unused;
        /* the agent: what the name resolves to must be an allowed entry's target */
        assert_null(check(&p, "ls", true));
        assert_null(check(&p, "/bin/ls", true));
        assert_null(check(&p, "python3", true)); /* named by path */
        assert_null(check(&p, "py", true));
        /* a copy named like an allowed command is not it */
        assert_string_equal(check(&p, "/tmp/ls", true), NOT_ALLOWED);
        assert_string_equal(check(&p, "sh", true), NOT_ALLOWED);
        assert_string_equal(check(&p, "nosuch", true), NOT_FOUND);
        /* blocked wins over allowed */
        assert_string_equal(check(&p, "cat", true), BLOCKED);
        /* the host: names only */
        assert_null(check(&p, "ls", false));
        assert_null(check(&p, "/usr/bin/ls", false));
        assert_string_equal(check(&p, "sh", false), NOT_ALLOWED);
        assert_string_equal(check(&p, "cat", false), BLOCKED);
}

/* Without allowlist_only the allow list is not consulted (upstream's rule). */
static void test_allow_without_allowlist_only(void **unused)
{
        char *allow[] = {"ls", NULL};
        struct cmd_policy p = {allow, NULL, false};

        (void)unused;
        assert_false(cmd_policy_empty(&p));
        assert_null(check(&p, "cat", true));
        assert_null(check(&p, "nosuch", true));
        assert_null(check(&p, "sh", false));
}

/* cmd_resolve: the PATH search the agent runs, in a directory of our own. */
static void test_resolve(void **unused)
{
        char dir[] = "/tmp/ak-test-policy-XXXXXX", path[PATH_MAX * 2], file[PATH_MAX];
        cleanup_free char *real = NULL, *got = NULL;
        char long_name[PATH_MAX + 8];
        int fd;

        (void)unused;
        assert_non_null(mkdtemp(dir));
        real = realpath(dir, NULL);
        assert_non_null(real);
        /* a: tool (not executable); b: tool (executable), run (a directory); c: link -> b/tool */
        (void)snprintf(file, sizeof(file), "%s/a", dir);
        assert_int_equal(mkdir(file, 0700), 0);
        (void)snprintf(file, sizeof(file), "%s/b", dir);
        assert_int_equal(mkdir(file, 0700), 0);
        (void)snprintf(file, sizeof(file), "%s/c", dir);
        assert_int_equal(mkdir(file, 0700), 0);
        (void)snprintf(file, sizeof(file), "%s/a/tool", dir);
        assert_true((fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) >= 0);
        close(fd);
        (void)snprintf(file, sizeof(file), "%s/b/tool", dir);
        assert_true((fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0700)) >= 0);
        close(fd);
        (void)snprintf(file, sizeof(file), "%s/b/run", dir);
        assert_int_equal(mkdir(file, 0700), 0);
        (void)snprintf(file, sizeof(file), "%s/c/alias", dir);
        assert_int_equal(symlink("../b/tool", file), 0);

        (void)snprintf(path, sizeof(path), "%s/a:%s/b:%s/c", dir, dir, dir);
        got = cmd_resolve("tool", path, NULL);
        (void)snprintf(file, sizeof(file), "%s/b/tool", real);
        assert_non_null(got);
        assert_string_equal(got, file); /* the first executable, not the first file */
        free(got);
        got = cmd_resolve("alias", path, NULL); /* a symlink: its real path */
        assert_non_null(got);
        assert_string_equal(got, file);
        free(got);
        assert_null(got = cmd_resolve("run", path, NULL)); /* a directory does not run */
        assert_null(got = cmd_resolve("nosuch", path, NULL));
        /* with a slash: as given, relative to cwd */
        got = cmd_resolve("b/tool", NULL, dir);
        assert_non_null(got);
        assert_string_equal(got, file);
        free(got);
        assert_null(got = cmd_resolve("a/tool", NULL, dir));
        /* an empty PATH entry is the working directory */
        (void)snprintf(path, sizeof(path), "/nonexistent::%s/a", dir);
        (void)snprintf(file, sizeof(file), "%s/b", dir);
        got = cmd_resolve("tool", path, file);
        assert_non_null(got);
        free(got);
        got = NULL;
        assert_null(cmd_resolve("", NULL, NULL));
        assert_null(cmd_resolve(NULL, NULL, NULL));
        memset(long_name, 'x', sizeof(long_name) - 1);
        long_name[sizeof(long_name) - 1] = '\0';
        assert_null(cmd_resolve(long_name, path, NULL));
        (void)rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_empty),
            cmocka_unit_test(test_block),
            cmocka_unit_test(test_block_by_path),
            cmocka_unit_test(test_allowlist_only),
            cmocka_unit_test(test_allow_without_allowlist_only),
            cmocka_unit_test(test_resolve),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
