// SPDX-License-Identifier: Apache-2.0
/* agentkernel.toml as text ([[files]] sources, disk_mb), and the trusted reader with its trust
 * store, on files made here (a private AGENTKERNEL_DATA_DIR per run). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/trust.h"
#include "shared/fd-util.h"

static char dir[64];

static int parse(const char *text, struct config **ret)
{
        struct ak_err err = {0};
        return config_parse(text, strlen(text), "/proj", ret, &err);
}

static void test_files_sources_as_text(void **unused)
{
        static const char *const bad[] = {"/etc/shadow", "..", "../x", "a/../../x", "a/..", ""};
        static const char *const good[] = {"x", "a/b", "a..b", "..a", "a/.../b", "./x"};
        struct config *c = NULL;
        char text[256];

        (void)unused;
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                (void)snprintf(text, sizeof(text),
                               "[[files]]\nsource = \"%s\"\ndest = \"/tmp/x\"\n", bad[i]);
                assert_int_equal(parse(text, &c), -EINVAL);
        }
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
                (void)snprintf(text, sizeof(text),
                               "[[files]]\nsource = \"%s\"\ndest = \"/tmp/x\"\n", good[i]);
                assert_int_equal(parse(text, &c), 0);
                assert_string_equal(c->files[0].source, good[i]);
                assert_string_equal(c->dir, "/proj");
                config_free(c);
        }
        /* a NUL inside the string cuts nothing short */
        assert_int_equal(
            parse("[[files]]\nsource = \"x\\u0000/../../etc\"\ndest = \"/tmp/x\"\n", &c), -EINVAL);
}

static void test_disk_mb(void **unused)
{
        struct config *c = NULL;

        (void)unused;
        assert_int_equal(parse("[resources]\ndisk_mb = 64\n", &c), 0);
        assert_int_equal(c->disk_mb, 64);
        config_free(c);
        assert_int_equal(parse("[resources]\ndisk_mb = 8\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\ndisk_mb = 2000000\n", &c), -EINVAL);
        assert_int_equal(parse("[resources]\ndisk_mb = \"1G\"\n", &c), -EINVAL);
}

static void put(const char *name, const char *text, mode_t mode)
{
        char p[128];
        int fd;

        (void)snprintf(p, sizeof(p), "%s/%s", dir, name);
        (void)unlink(p);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, text, strlen(text)), 0);
        assert_int_equal(fchmod(fd, mode), 0);
        close(fd);
}

static void test_trusted_reader(void **unused)
{
        struct ak_err err = {0};
        struct config *c = NULL;
        char p[128];
        bool found;

        (void)unused;
        (void)snprintf(p, sizeof(p), "%s/agentkernel.toml", dir);
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0644);
        /* new: refused, and nothing is returned */
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_null(c);
        assert_non_null(strstr(err.msg, "it is new"));
        /* approved: read */
        assert_int_equal(config_inspect(p, &c, &err), 0);
        assert_int_equal(config_approve(c, &err), 0);
        config_free(c);
        c = NULL;
        assert_int_equal(config_load(p, &c, &err), 0);
        assert_string_equal(c->name, "t");
        config_free(c);
        c = NULL;
        /* a byte changed: refused */
        put("agentkernel.toml", "[sandbox]\nname = \"u\"\n", 0644);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "changed since"));
        /* writable by others: refused even before the approval is looked at */
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0646);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by others"));
        put("agentkernel.toml", "[sandbox]\nname = \"t\"\n", 0644);
        assert_int_equal(config_load(p, &c, &err), 0);
        config_free(c);
        c = NULL;
        /* a symlink to the approved file is not it */
        (void)snprintf(p, sizeof(p), "%s/link.toml", dir);
        assert_int_equal(symlink("agentkernel.toml", p), 0);
        assert_int_equal(config_load(p, &c, &err), -EPERM);
        assert_non_null(strstr(err.msg, "symbolic link"));
        /* untrust */
        (void)snprintf(p, sizeof(p), "%s/agentkernel.toml", dir);
        {
                char *real = realpath(p, NULL);
                assert_non_null(real);
                assert_int_equal(trust_remove(real, &found, &err), 0);
                assert_true(found);
                free(real);
        }
        assert_int_equal(config_load(p, &c, &err), -EPERM);
}

static bool have_openat2(void)
{
        struct open_how how = {.flags = O_PATH | O_CLOEXEC};
        long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

        if (fd >= 0)
                close((int)fd);
        return fd >= 0 || errno != ENOSYS;
}

static void test_sources_at_start(void **unused)
{
        struct ak_err err = {0};
        struct buf b = BUF_INIT;
        char *real = NULL;
        char p[128];

        (void)unused;
        /* valgrind does not know openat2 (sources are refused there): nothing to check */
        if (!have_openat2())
                return;
        real = realpath(dir, NULL);
        assert_non_null(real);
        put("data.txt", "data\n", 0644);
        assert_int_equal(config_read_source(real, "data.txt", &b, &err), 0);
        assert_int_equal(b.len, 5);
        buf_done(&b);
        (void)snprintf(p, sizeof(p), "%s/out", dir);
        assert_int_equal(symlink("/etc/passwd", p), 0);
        assert_int_equal(config_read_source(real, "out", &b, &err), -EPERM);
        assert_int_equal(config_read_source(real, "/etc/passwd", &b, &err), -EPERM);
        assert_int_equal(config_read_source(real, "../x", &b, &err), -EPERM);
        assert_int_equal(config_read_source(NULL, "data.txt", &b, &err), -EPERM);
        (void)snprintf(p, sizeof(p), "%s/fifo", dir);
        assert_int_equal(mkfifo(p, 0600), 0);
        assert_int_equal(config_read_source(real, "fifo", &b, &err), -EINVAL);
        buf_done(&b);
        free(real);
}

static void test_store_not_believed(void **unused)
{
        struct ak_err err = {0};
        enum trust_verdict v;
        char p[128];

        (void)unused;
        assert_int_equal(trust_add("/x/agentkernel.toml",
                                   "00000000000000000000000000000000000000"
                                   "00000000000000000000000000",
                                   &err),
                         0);
        assert_int_equal(
            trust_check("/x/agentkernel.toml",
                        "0000000000000000000000000000000000000000000000000000000000000000", &v,
                        &err),
            0);
        assert_int_equal(v, TRUST_APPROVED);
        (void)snprintf(p, sizeof(p), "%s/data/" TRUST_FILE, dir);
        assert_int_equal(chmod(p, 0620), 0);
        assert_int_equal(trust_check("/x/agentkernel.toml", "00", &v, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by group or others"));
        assert_int_equal(chmod(p, 0600), 0);
        put("data/" TRUST_FILE, "{\"configs\": []}", 0600);
        assert_int_equal(trust_check("/x/agentkernel.toml", "00", &v, &err), -EPERM);
        assert_non_null(strstr(err.msg, "not valid"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_files_sources_as_text), cmocka_unit_test(test_disk_mb),
            cmocka_unit_test(test_trusted_reader),        cmocka_unit_test(test_sources_at_start),
            cmocka_unit_test(test_store_not_believed),
        };
        char data[96];
        int r;

        (void)snprintf(dir, sizeof(dir), "/tmp/ak-test-config-XXXXXX");
        if (!mkdtemp(dir))
                return 1;
        (void)snprintf(data, sizeof(data), "%s/data", dir);
        (void)mkdir(data, 0700);
        (void)setenv("AGENTKERNEL_DATA_DIR", data, 1);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        (void)rm_rf_at(AT_FDCWD, dir);
        return r;
}
