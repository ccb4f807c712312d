// SPDX-License-Identifier: Apache-2.0
/* Private directories and files (core/private-dir.h): what is refused, what is tightened. */
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

#include "core/private-dir.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

#define OTHER_UID 62001

struct fixture {
        char dir[64];
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/ak-test-private-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        (void)rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static void path_of(const struct fixture *f, const char *sub, char *out, size_t len)
{
        (void)snprintf(out, len, "%s/%s", f->dir, sub);
}

static unsigned mode_of(const char *p)
{
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode & 07777;
}

/* Missing directories (and missing parents) are made 0700; the canonical path comes back. */
static void test_creates_private(void **state)
{
        struct fixture *f = *state;
        char p[256], q[256];
        char *canon = NULL;
        int fd;

        path_of(f, "a/b/data", p, sizeof(p));
        fd = private_dir_open(p, "data directory", PRIVATE_CREATE, &canon, NULL);
        assert_true(fd >= 0);
        close(fd);
        assert_string_equal(canon, p);
        free(canon);
        assert_int_equal(mode_of(p), 0700);
        path_of(f, "a/b", q, sizeof(q));
        assert_int_equal(mode_of(q), 0700);
        /* without PRIVATE_CREATE a missing directory is an error, not made */
        path_of(f, "absent", p, sizeof(p));
        assert_int_equal(private_dir_open(p, "data directory", 0, NULL, NULL), -ENOENT);
        assert_int_equal(access(p, F_OK), -1);
}

/* A directory of ours that others may read (upstream's 0755) is tightened; one they may write
 * is refused, and left as it was. */
static void test_tightens_and_refuses(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        char p[256];
        int fd;

        path_of(f, "d", p, sizeof(p));
        assert_int_equal(mkdir(p, 0755), 0);
        assert_int_equal(chmod(p, 0755), 0);
        fd = private_dir_open(p, "data directory", PRIVATE_CREATE, NULL, NULL);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(mode_of(p), 0700);
        assert_int_equal(chmod(p, 0777), 0);
        assert_int_equal(private_dir_open(p, "data directory", PRIVATE_CREATE, NULL, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by group and others"));
        assert_non_null(strstr(err.msg, "chmod 0700"));
        assert_int_equal(mode_of(p), 0777);
        assert_int_equal(chmod(p, 0720), 0);
        assert_int_equal(private_dir_open(p, "data directory", 0, NULL, NULL), -EPERM);
        /* the same rules below an opened one */
        assert_int_equal(chmod(p, 0700), 0);
        fd = private_dir_open(p, "data directory", 0, NULL, NULL);
        assert_true(fd >= 0);
        {
                int sub = private_dir_open_at(fd, p, "run/.ephemeral", PRIVATE_CREATE, NULL);
                char q[300];
                assert_true(sub >= 0);
                close(sub);
                (void)snprintf(q, sizeof(q), "%s/run", p);
                assert_int_equal(mode_of(q), 0700);
                assert_int_equal(chmod(q, 0757), 0);
                assert_int_equal(private_dir_open_at(fd, p, "run/.ephemeral", 0, NULL), -EPERM);
                assert_int_equal(private_dir_open_at(fd, p, "../x", PRIVATE_CREATE, NULL), -EINVAL);
        }
        close(fd);
}

/* The directory itself must not be a symlink (it could be re-pointed); a symlink among its
 * parents is resolved, and the canonical path is what callers get. */
static void test_symlinks(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        char real[256], link[256], p[300];
        char *canon = NULL;
        int fd;

        path_of(f, "real", real, sizeof(real));
        path_of(f, "link", link, sizeof(link));
        assert_int_equal(mkdir(real, 0700), 0);
        assert_int_equal(symlink(real, link), 0);
        assert_int_equal(private_dir_open(link, "data directory", PRIVATE_CREATE, NULL, &err),
                         -ELOOP);
        assert_non_null(strstr(err.msg, "symbolic link"));
        (void)snprintf(p, sizeof(p), "%s/data", link);
        fd = private_dir_open(p, "data directory", PRIVATE_CREATE, &canon, NULL);
        assert_true(fd >= 0);
        close(fd);
        (void)snprintf(p, sizeof(p), "%s/data", real);
        assert_string_equal(canon, p);
        free(canon);
}

/* sshd's StrictModes for the ancestors: writable by others only when sticky. */
static void test_ancestors(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        char open_dir[256], p[300];
        int fd;

        path_of(f, "open", open_dir, sizeof(open_dir));
        assert_int_equal(mkdir(open_dir, 0700), 0);
        assert_int_equal(chmod(open_dir, 0777), 0);
        (void)snprintf(p, sizeof(p), "%s/data", open_dir);
        assert_int_equal(private_dir_open(p, "data directory", PRIVATE_CREATE, NULL, &err), -EPERM);
        assert_non_null(strstr(err.msg, "not sticky"));
        assert_int_equal(access(p, F_OK), -1); /* nothing made */
        assert_int_equal(chmod(open_dir, 01777), 0);
        fd = private_dir_open(p, "data directory", PRIVATE_CREATE, NULL, NULL);
        assert_true(fd >= 0);
        close(fd);
        /* the parent check alone (AGENTKERNEL_AUDIT_PATH) */
        assert_int_equal(chmod(open_dir, 0777), 0);
        (void)snprintf(p, sizeof(p), "%s/audit.jsonl", open_dir);
        assert_int_equal(private_parent_check(p, "audit log", 0, NULL), -EPERM);
        assert_int_equal(chmod(open_dir, 0755), 0);
        assert_int_equal(private_parent_check(p, "audit log", 0, NULL), 0);
}

/* Another user's directory, or one below another user's directory, is refused (root only:
 * making files of another uid needs it). */
static void test_foreign_owner(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        char p[256], q[300];

        if (geteuid() != 0) {
                skip();
                return;
        }
        path_of(f, "theirs", p, sizeof(p));
        assert_int_equal(mkdir(p, 0700), 0);
        assert_int_equal(chown(p, OTHER_UID, OTHER_UID), 0);
        assert_int_equal(private_dir_open(p, "data directory", PRIVATE_CREATE, NULL, &err), -EPERM);
        assert_non_null(strstr(err.msg, "uid 62001"));
        (void)snprintf(q, sizeof(q), "%s/mine", p);
        assert_int_equal(mkdir(q, 0700), 0);
        ak_err_clear(&err);
        assert_int_equal(private_dir_open(q, "data directory", PRIVATE_CREATE, NULL, &err), -EPERM);
        assert_non_null(strstr(err.msg, "above the data directory"));
}

/* Files: regular, ours, not writable by others; never through a link; never a FIFO. */
static void test_files(void **state)
{
        struct fixture *f = *state;
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_err err = {0};
        char p[256], q[256];
        int fd;

        path_of(f, "rec.json", p, sizeof(p));
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "{}", 2, 0644, false), 0);
        assert_int_equal(private_file_read_at(AT_FDCWD, p, &b, 64, NULL), 0);
        assert_string_equal(b.data, "{}");
        assert_int_equal(chmod(p, 0664), 0);
        assert_int_equal(private_file_read_at(AT_FDCWD, p, &b, 64, &err), -EPERM);
        assert_int_equal(chmod(p, 0600), 0);
        path_of(f, "link.json", q, sizeof(q));
        assert_int_equal(symlink(p, q), 0);
        assert_int_equal(private_file_read_at(AT_FDCWD, q, &b, 64, NULL), -ELOOP);
        path_of(f, "fifo", q, sizeof(q));
        assert_int_equal(mkfifo(q, 0600), 0);
        assert_int_equal(private_file_read_at(AT_FDCWD, q, &b, 64, NULL), -EINVAL);
        path_of(f, "missing", q, sizeof(q));
        assert_int_equal(private_file_read_at(AT_FDCWD, q, &b, 64, NULL), -ENOENT);
        fd = private_file_open_at(AT_FDCWD, q, O_RDWR | O_CREAT, NULL);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(mode_of(q) & 077, 0);
        if (geteuid() == 0) {
                assert_int_equal(chown(p, OTHER_UID, OTHER_UID), 0);
                assert_int_equal(private_file_read_at(AT_FDCWD, p, &b, 64, NULL), -EPERM);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_creates_private, setup, teardown),
            cmocka_unit_test_setup_teardown(test_tightens_and_refuses, setup, teardown),
            cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ancestors, setup, teardown),
            cmocka_unit_test_setup_teardown(test_foreign_owner, setup, teardown),
            cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
