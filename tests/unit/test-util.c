// SPDX-License-Identifier: Apache-2.0
/* Shared utilities: time formats (chrono-compatible), number parsing, buffers, ids, files,
 * opening without magic links (openat2 and the user-space walk), files written from untrusted
 * data (out_file). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/dir-cache.h"
#include "shared/err.h"
#include "shared/fd-util.h"
#include "shared/host-file.h"
#include "shared/parse-util.h"
#include "shared/path-walk.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

static void test_rfc3339_format(void **unused)
{
        char out[RFC3339_MAX];
        (void)unused;
        format_rfc3339(0, out);
        assert_string_equal(out, "1970-01-01T00:00:00+00:00");
        format_rfc3339(1704067200LL * NSEC_PER_SEC, out);
        assert_string_equal(out, "2024-01-01T00:00:00+00:00");
        /* chrono's AutoSi: 3, 6 or 9 digits, only when non-zero */
        format_rfc3339(1704067200LL * NSEC_PER_SEC + 123000000, out);
        assert_string_equal(out, "2024-01-01T00:00:00.123+00:00");
        format_rfc3339(1704067200LL * NSEC_PER_SEC + 123456000, out);
        assert_string_equal(out, "2024-01-01T00:00:00.123456+00:00");
        format_rfc3339(1704067200LL * NSEC_PER_SEC + 123456789, out);
        assert_string_equal(out, "2024-01-01T00:00:00.123456789+00:00");
        format_rfc3339(951782400LL * NSEC_PER_SEC, out); /* leap day */
        assert_string_equal(out, "2000-02-29T00:00:00+00:00");
}

static void test_rfc3339_parse(void **unused)
{
        int64_t ns;
        char out[RFC3339_MAX];
        (void)unused;
        assert_int_equal(parse_rfc3339("2024-01-01T00:00:00Z", &ns), 0);
        assert_true(ns == 1704067200LL * NSEC_PER_SEC);
        assert_int_equal(parse_rfc3339("2024-01-01T01:00:00+01:00", &ns), 0);
        assert_true(ns == 1704067200LL * NSEC_PER_SEC);
        assert_int_equal(parse_rfc3339("2023-12-31T23:00:00-01:00", &ns), 0);
        assert_true(ns == 1704067200LL * NSEC_PER_SEC);
        assert_int_equal(parse_rfc3339("2024-01-01t00:00:00.5z", &ns), 0);
        assert_true(ns == 1704067200LL * NSEC_PER_SEC + 500000000);
        assert_int_equal(parse_rfc3339("2024-01-01T00:00:00.123456789123+00:00", &ns), 0);
        assert_true(ns % NSEC_PER_SEC == 123456789);
        /* roundtrip of our own output */
        format_rfc3339(1795756007964812345LL, out);
        assert_int_equal(parse_rfc3339(out, &ns), 0);
        assert_true(ns == 1795756007964812345LL);
        static const char *const bad[] = {"",
                                          "2024-01-01",
                                          "2024-13-01T00:00:00Z",
                                          "2023-02-29T00:00:00Z",
                                          "2024-01-01T24:00:00Z",
                                          "2024-01-01T00:00:00",
                                          "2024-01-01T00:00:00Zx",
                                          "2024-01-01T00:00:00.Z",
                                          "2024-01-01T00:00:00+1:00"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_int_equal(parse_rfc3339(bad[i], &ns), -EINVAL);
}

static void test_numbers(void **unused)
{
        uint64_t v;
        uint32_t u;
        int32_t i;
        (void)unused;
        assert_int_equal(safe_atou64("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(safe_atou64("18446744073709551616", &v), -ERANGE);
        assert_int_equal(safe_atou64("", &v), -EINVAL);
        assert_int_equal(safe_atou64("1 ", &v), -EINVAL);
        assert_int_equal(safe_atou64("+1", &v), -EINVAL);
        assert_int_equal(safe_atou32("4294967296", &u), -ERANGE);
        assert_int_equal(safe_atoi32("-2147483648", &i), 0);
        assert_int_equal(i, INT32_MIN);
        assert_int_equal(safe_atoi32("2147483648", &i), -ERANGE);
}

static void test_buf(void **unused)
{
        struct buf b = BUF_INIT;
        size_t len;
        char *p;
        (void)unused;
        assert_int_equal(buf_append(&b, "ab\0c", 4), 0);
        assert_int_equal(b.len, 4);
        assert_int_equal(buf_printf(&b, "%d", 42), 0);
        assert_memory_equal(b.data, "ab\0c42", 6);
        buf_consume(&b, 2);
        assert_memory_equal(b.data, "\0c42", 4);
        for (int k = 0; k < 10000; k++)
                assert_int_equal(buf_append_byte(&b, 'x'), 0);
        assert_int_equal(b.len, 10004);
        p = buf_detach(&b, &len);
        assert_int_equal(len, 10004);
        assert_null(b.data);
        free(p);
        p = buf_detach(&b, &len); /* empty buffer gives "" */
        assert_string_equal(p, "");
        free(p);
}

/* Under AddressSanitizer, an allocation that cannot be made returns NULL, as it does without it:
 * test_array_reserve checks what a failed growth leaves behind. Every other check stays on. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "allocator_may_return_null=1";
}

static void test_array_reserve(void **unused)
{
        int *v = NULL, *nv;
        size_t n = 0, cap = 0;
        (void)unused;
        for (int k = 0; k < 100; k++) {
                nv = array_reserve_one(v, n, &cap, sizeof(*v), 4);
                assert_non_null(nv);
                if (k < 4)
                        assert_int_equal(cap, 4);
                assert_true(n < cap);
                v = nv;
                v[n++] = k;
        }
        assert_int_equal(cap, 128);
        for (int k = 0; k < 100; k++)
                assert_int_equal(v[k], k);
        /* with room left, the array is given back as it is */
        assert_ptr_equal(array_reserve_one(v, 99, &cap, sizeof(*v), 4), v);
        /* a size that cannot be allocated changes nothing */
        n = cap;
        assert_null(array_reserve_one(v, n, &cap, SIZE_MAX / 2, 4));
        assert_int_equal(cap, 128);
        free(v);
}

static void test_ids(void **unused)
{
        char u[37], h[17], u2[37];
        (void)unused;
        uuid_v7(u, 0x0190a3c4b5d6ULL);
        assert_int_equal(strlen(u), 36);
        assert_true(uuid_is_valid(u));
        assert_memory_equal(u, "0190a3c4-b5d6-7", 15);
        assert_true(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
        uuid_v7(u2, 0x0190a3c4b5d6ULL);
        assert_string_not_equal(u, u2);
        assert_false(uuid_is_valid("not-a-uuid"));
        assert_false(uuid_is_valid("0190a3c4-b5d6-7000-8000-00000000000g"));
        random_hex(h, 8);
        assert_int_equal(strlen(h), 16);
        /* is_lower_hex: exactly that many lowercase hex digits, nothing else */
        assert_true(is_lower_hex(h, 16));
        assert_false(is_lower_hex(h, 15));
        assert_false(is_lower_hex(h, 17));
        assert_true(is_lower_hex("", 0));
        assert_false(is_lower_hex("0123456789ABCDEF", 16));
        assert_false(is_lower_hex("../../etc/passw", 15));
        assert_true(detached_id_is_valid("0a1b2c3d"));
        assert_false(detached_id_is_valid("0a1b2c3"));
        assert_false(detached_id_is_valid("0a1b2c3g"));
}

static void test_atomic_write(void **unused)
{
        char dir[] = "/tmp/ak-test-util-XXXXXX", p[128];
        cleanup_buf struct buf b = BUF_INIT;
        struct stat st;
        (void)unused;
        assert_non_null(mkdtemp(dir));
        (void)snprintf(p, sizeof(p), "%s/f.json", dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "one", 3, 0600, true), 0);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "two!", 4, 0644, false), 0);
        assert_int_equal(read_file_at(AT_FDCWD, p, &b, 100), 0);
        assert_string_equal(b.data, "two!");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        buf_reset(&b);
        assert_int_equal(read_file_at(AT_FDCWD, p, &b, 2), -EFBIG);
        /* an empty file reads as "" even into memory that held something else (a cgroup file
         * read this way once found stale text where the empty file was) */
        {
                cleanup_buf struct buf e = BUF_INIT;
                char q[160];
                assert_int_equal(buf_reserve(&e, 8192), 0);
                memset(e.data, 'x', e.cap);
                (void)snprintf(q, sizeof(q), "%s/empty", dir);
                assert_int_equal(write_file_atomic_at(AT_FDCWD, q, "", 0, 0600, false), 0);
                assert_int_equal(read_file_at(AT_FDCWD, q, &e, 100), 0);
                assert_int_equal(e.len, 0);
                assert_string_equal(e.data, "");
                assert_int_equal(unlink(q), 0);
        }
        /* a read that ends at the size fstat() gave is the end; a file that grew or shrank
         * since is still read to its end */
        {
                cleanup_buf struct buf g = BUF_INIT;
                cleanup_close int fd = -1;
                struct stat was;
                assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "0123456789", 10, 0600, false),
                                 0);
                fd = open(p, O_RDWR | O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(fstat(fd, &was), 0);
                assert_int_equal(read_fd_full_stat(fd, &was, &g, 100), 0);
                assert_string_equal(g.data, "0123456789");
                assert_int_equal(pwrite(fd, "abcdefghij", 10, 10), 10); /* grew */
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                buf_reset(&g);
                assert_int_equal(read_fd_full_stat(fd, &was, &g, 100), 0);
                assert_string_equal(g.data, "0123456789abcdefghij");
                assert_int_equal(ftruncate(fd, 4), 0); /* shrank */
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                buf_reset(&g);
                assert_int_equal(read_fd_full_stat(fd, &was, &g, 100), 0);
                assert_string_equal(g.data, "0123");
                assert_int_equal(ftruncate(fd, 200), 0); /* over max, whatever fstat said */
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                buf_reset(&g);
                assert_int_equal(read_fd_full_stat(fd, &was, &g, 100), -EFBIG);
        }
        /* no temp files left behind */
        assert_int_equal(rm_rf_at(AT_FDCWD, p), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_mkdir_rm(void **unused)
{
        char dir[] = "/tmp/ak-test-util-XXXXXX", p[256], link[256];
        (void)unused;
        assert_non_null(mkdtemp(dir));
        (void)snprintf(p, sizeof(p), "%s/a/b/c", dir);
        assert_int_equal(mkdir_p(p, 0755), 0);
        assert_int_equal(mkdir_p(p, 0755), 0);
        /* rm_rf must delete a symlink, never what it points to */
        (void)snprintf(link, sizeof(link), "%s/a/escape", dir);
        assert_int_equal(symlink("/etc", link), 0);
        /* lexists_at: a link is there whatever it points to; a missing name is ENOENT */
        assert_int_equal(lexists_at(AT_FDCWD, link), 0);
        (void)snprintf(p, sizeof(p), "%s/a/dangling", dir);
        assert_int_equal(symlink("/nonexistent/x", p), 0);
        assert_int_equal(lexists_at(AT_FDCWD, p), 0);
        (void)snprintf(p, sizeof(p), "%s/a/missing", dir);
        errno = 0;
        assert_int_equal(lexists_at(AT_FDCWD, p), -1);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(access("/etc/hostname", F_OK) == 0 || access("/etc/passwd", F_OK) == 0, 1);
}

/* rm_rf of a tree deeper than the fd limit (a sandbox can make one in a volume or its upper
 * directory): all of it goes, with a handful of fds. */
static void test_rm_rf_deep(void **unused)
{
        char dir[] = "/tmp/ak-test-rmrf-XXXXXX";
        struct rlimit old, low;
        int cur;
        (void)unused;

        assert_non_null(mkdtemp(dir));
        cur = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        for (int i = 0; i < 3000; i++) {
                int nfd;
                assert_int_equal(mkdirat(cur, "d", 0755), 0);
                if (i % 100 ==
                    0) { /* some files, symlinks and an unreadable directory on the way */
                        int f = openat(cur, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                        close(f);
                        assert_int_equal(symlinkat("/etc", cur, "etc"), 0);
                        assert_int_equal(mkdirat(cur, "locked", 0000), 0);
                }
                nfd = openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_true(nfd >= 0);
                close(cur);
                cur = nfd;
        }
        close(cur);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = (struct rlimit){64, old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(access("/etc", F_OK), 0);
}

static int read_str(int fd, char *out, size_t len)
{
        ssize_t n = pread(fd, out, len - 1, 0);
        if (n < 0)
                return -errno;
        out[n] = '\0';
        return 0;
}

/* openat_nomagic, once through openat2 and once through the user-space walk. */
static void check_nomagic(bool walk)
{
        char dir[] = "/tmp/ak-test-nomagic-XXXXXX", p[256], t[256], got[64];
        int secret, fd;
        (void)fd;

        openat_nomagic_force_walk(walk);
        assert_non_null(mkdtemp(dir));
        (void)snprintf(p, sizeof(p), "%s/d/e", dir);
        assert_int_equal(mkdir_p(p, 0755), 0);
        (void)snprintf(p, sizeof(p), "%s/d/e/file", dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "plain", 5, 0644, false), 0);
        /* ordinary symlinks: relative, absolute, through "..", chained */
        (void)snprintf(p, sizeof(p), "%s/rel", dir);
        assert_int_equal(symlink("d/e", p), 0);
        (void)snprintf(t, sizeof(t), "%s/d", dir);
        (void)snprintf(p, sizeof(p), "%s/abs", dir);
        assert_int_equal(symlink(t, p), 0);
        (void)snprintf(p, sizeof(p), "%s/d/up", dir);
        assert_int_equal(symlink("../rel", p), 0);
        (void)snprintf(p, sizeof(p), "%s/d/e/flink", dir);
        assert_int_equal(symlink("file", p), 0);
        {
                const char *ok[] = {"rel/file",  "abs/e/file",   "d/up/file",  "d/up/../e/file",
                                    "rel/flink", "abs/e/./file", "d//e///file"};
                for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
                        (void)snprintf(p, sizeof(p), "%s/%s", dir, ok[i]);
                        fd = openat_nomagic(AT_FDCWD, p, O_RDONLY, 0);
                        assert_true(fd >= 0);
                        assert_int_equal(read_str(fd, got, sizeof(got)), 0);
                        assert_string_equal(got, "plain");
                        close(fd);
                }
        }
        /* relative to a directory fd, and the directory itself with a trailing slash */
        {
                cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                fd = openat_nomagic(dfd, "rel/flink", O_RDONLY, 0);
                assert_true(fd >= 0);
                close(fd);
                fd = openat_nomagic(dfd, "abs/", O_RDONLY | O_DIRECTORY, 0);
                assert_true(fd >= 0);
                close(fd);
                fd = openat_nomagic(dfd, "abs", O_PATH | O_DIRECTORY, 0); /* a final link */
                assert_true(fd >= 0);
                close(fd);
                fd = openat_nomagic(dfd, "rel", O_RDONLY | O_DIRECTORY, 0);
                assert_true(fd >= 0);
                close(fd);
                assert_int_equal(openat_nomagic(dfd, "rel/flink", O_RDONLY | O_DIRECTORY, 0),
                                 -ENOTDIR);
                assert_int_equal(openat_nomagic(dfd, "rel/file/", O_RDONLY, 0), -ENOTDIR);
        }
        /* O_NOFOLLOW on a final symlink, O_PATH|O_NOFOLLOW returns the link */
        (void)snprintf(p, sizeof(p), "%s/rel/flink", dir);
        assert_int_equal(openat_nomagic(AT_FDCWD, p, O_RDONLY | O_NOFOLLOW, 0), -ELOOP);
        fd = openat_nomagic(AT_FDCWD, p, O_PATH | O_NOFOLLOW, 0);
        assert_true(fd >= 0);
        {
                struct stat st;
                assert_int_equal(fstat(fd, &st), 0);
                assert_true(S_ISLNK(st.st_mode));
        }
        close(fd);
        /* O_CREAT through a dangling symlink creates its target; O_EXCL does not follow */
        (void)snprintf(p, sizeof(p), "%s/dangling", dir);
        assert_int_equal(symlink("d/new", p), 0);
        assert_int_equal(openat_nomagic(AT_FDCWD, p, O_WRONLY | O_CREAT | O_EXCL, 0600), -EEXIST);
        fd = openat_nomagic(AT_FDCWD, p, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        (void)snprintf(p, sizeof(p), "%s/d/new", dir);
        assert_int_equal(access(p, F_OK), 0);
        /* a loop */
        (void)snprintf(p, sizeof(p), "%s/loop1", dir);
        assert_int_equal(symlink("loop2", p), 0);
        (void)snprintf(p, sizeof(p), "%s/loop2", dir);
        assert_int_equal(symlink("loop1", p), 0);
        assert_int_equal(openat_nomagic(AT_FDCWD, p, O_RDONLY, 0), -ELOOP);

        /* the point: a magic link to a file no path reaches any more (unlinked, still open)
         * opens it for openat(2); never for openat_nomagic */
        (void)snprintf(p, sizeof(p), "%s/secret", dir);
        secret = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(secret >= 0);
        assert_int_equal(write(secret, "stolen", 6), 6);
        assert_int_equal(unlink(p), 0);
        (void)snprintf(t, sizeof(t), "/proc/self/fd/%d", secret);
        (void)snprintf(p, sizeof(p), "%s/magic", dir);
        assert_int_equal(symlink(t, p), 0);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) { /* /proc is there: the jump works for a plain open */
                assert_int_equal(read_str(fd, got, sizeof(got)), 0);
                assert_string_equal(got, "stolen");
                close(fd);
                fd = openat_nomagic(AT_FDCWD, p, O_RDONLY, 0);
                assert_true(fd < 0);
                fd = openat_nomagic(AT_FDCWD, t, O_RDONLY, 0);
                assert_true(fd < 0);
        }
        close(secret);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
        openat_nomagic_force_walk(false);
}

static void test_openat_nomagic(void **unused)
{
        (void)unused;
        check_nomagic(false);
}

static void test_openat_nomagic_walk(void **unused)
{
        (void)unused;
        check_nomagic(true);
}

static void check_out_file(bool named)
{
        char dir[] = "/tmp/ak-test-outfile-XXXXXX", p[256], t[256], got[64];
        struct out_file f = OUT_FILE_INIT;
        struct ak_err err = {0};
        struct stat st;
        mode_t old = umask(022);
        DIR *d;
        struct dirent *de;
        int fd;
        int n;

        out_file_force_named(named);
        assert_non_null(mkdtemp(dir));
        /* a new file: the mode loses setuid/setgid/sticky and the umask applies */
        (void)snprintf(p, sizeof(p), "%s/new", dir);
        assert_int_equal(out_file_open(p, NULL, &f, &err), 0);
        assert_int_equal(write(f.fd, "one", 3), 3);
        assert_int_equal(out_file_publish(&f, 07777, &err), 0);
        out_file_abort(&f);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        assert_int_equal(st.st_uid, geteuid());
        /* a symlink at the destination is replaced, never written through */
        (void)snprintf(t, sizeof(t), "%s/target", dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, t, "keep", 4, 0600, false), 0);
        (void)snprintf(p, sizeof(p), "%s/link", dir);
        assert_int_equal(symlink(t, p), 0);
        assert_int_equal(out_file_open(p, NULL, &f, &err), 0);
        assert_int_equal(write(f.fd, "two", 3), 3);
        assert_int_equal(out_file_publish(&f, 0644, &err), 0);
        out_file_abort(&f);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        {
                cleanup_close int tf = open(t, O_RDONLY | O_CLOEXEC);
                assert_int_equal(read_str(tf, got, sizeof(got)), 0);
                assert_string_equal(got, "keep");
                assert_int_equal(stat(t, &st), 0);
                assert_int_equal(st.st_mode & 0777, 0600);
        }
        /* a directory (and the caller's own symlink to one, and "dir/") takes name_if_dir */
        (void)snprintf(p, sizeof(p), "%s/sub", dir);
        assert_int_equal(mkdir(p, 0755), 0);
        (void)snprintf(t, sizeof(t), "%s/sublink", dir);
        assert_int_equal(symlink("sub", t), 0);
        assert_int_equal(out_file_open(p, NULL, &f, &err), -EISDIR);
        assert_int_equal(out_file_open(p, "../x", &f, &err), -EINVAL);
        assert_int_equal(out_file_open(t, "inside", &f, &err), 0);
        assert_int_equal(out_file_publish(&f, 0600, &err), 0);
        out_file_abort(&f);
        (void)snprintf(p, sizeof(p), "%s/sub/inside", dir);
        assert_int_equal(access(p, F_OK), 0);
        (void)snprintf(p, sizeof(p), "%s/target/", dir);
        assert_int_equal(out_file_open(p, "x", &f, &err), -ENOTDIR);
        (void)snprintf(p, sizeof(p), "%s/nowhere/", dir);
        assert_int_equal(out_file_open(p, "x", &f, &err), -ENOENT);
        /* abandoned: nothing of it remains */
        (void)snprintf(p, sizeof(p), "%s/abandoned", dir);
        assert_int_equal(out_file_open(p, NULL, &f, &err), 0);
        assert_int_equal(write(f.fd, "partial", 7), 7);
        out_file_abort(&f);
        assert_int_equal(access(p, F_OK), -1);
        /* when root: another user's symlink is never followed, not even to a directory */
        if (geteuid() == 0) {
                (void)snprintf(p, sizeof(p), "%s/foreign", dir);
                (void)snprintf(t, sizeof(t), "%s/sub", dir);
                assert_int_equal(symlink(t, p), 0);
                assert_int_equal(lchown(p, 54321, 54321), 0);
                assert_int_equal(out_file_open(p, "inside2", &f, &err), 0);
                assert_int_equal(out_file_publish(&f, 0600, &err), 0);
                out_file_abort(&f);
                assert_int_equal(lstat(p, &st), 0);
                assert_true(S_ISREG(st.st_mode));
                (void)snprintf(p, sizeof(p), "%s/sub/inside2", dir);
                assert_int_equal(access(p, F_OK), -1);
                (void)snprintf(p, sizeof(p), "%s/foreign2", dir);
                assert_int_equal(symlink(t, p), 0);
                assert_int_equal(lchown(p, 54321, 54321), 0);
                (void)snprintf(p, sizeof(p), "%s/foreign2/", dir);
                assert_int_equal(out_file_open(p, "x", &f, &err), -ELOOP);
                (void)snprintf(p, sizeof(p), "%s/foreign2", dir);
                assert_int_equal(open_source_file(p), -ELOOP);
                /* nor anywhere on the way */
                (void)snprintf(p, sizeof(p), "%s/foreign2/x", dir);
                assert_int_equal(out_file_open(p, NULL, &f, &err), -ELOOP);
                (void)snprintf(p, sizeof(p), "%s/foreign2/inside", dir);
                assert_int_equal(open_source_file(p), -ELOOP);
                (void)snprintf(p, sizeof(p), "%s/sublink/inside", dir); /* the caller's: fine */
                fd = open_source_file(p);
                assert_true(fd >= 0);
                close(fd);
        }
        /* no temporary file is left anywhere */
        d = opendir(dir);
        assert_non_null(d);
        n = 0;
        while ((de = readdir(d)))
                n += strstr(de->d_name, ".ak-") != NULL;
        closedir(d);
        assert_int_equal(n, 0);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
        out_file_force_named(false);
        umask(old);
}

static void test_out_file(void **unused)
{
        (void)unused;
        check_out_file(false);
}

static void test_out_file_named(void **unused)
{
        (void)unused;
        check_out_file(true);
}

static void test_open_source_file(void **unused)
{
        char dir[] = "/tmp/ak-test-source-XXXXXX", p[256], t[256];
        int fd;
        (void)unused;
        assert_non_null(mkdtemp(dir));
        (void)snprintf(p, sizeof(p), "%s/fifo", dir);
        assert_int_equal(mkfifo(p, 0600), 0);
        fd = open_source_file(p); /* no writer: must not block */
        assert_true(fd >= 0);
        close(fd);
        (void)snprintf(t, sizeof(t), "%s/own-link", dir);
        assert_int_equal(symlink("fifo", t), 0);
        fd = open_source_file(t);
        assert_true(fd >= 0);
        close(fd);
        (void)snprintf(p, sizeof(p), "%s/missing", dir);
        assert_int_equal(open_source_file(p), -ENOENT);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

static void test_err_errno(void **unused)
{
        struct ak_err err = {0};
        char big[AK_ERR_MSG_MAX * 2];
        char want[AK_ERR_MSG_MAX + 64];
        (void)unused;
        /* the sign is normalised: code, return value and message agree */
        assert_int_equal(ak_err_errno(&err, -ENOENT, "open '%s'", "x"), -ENOENT);
        assert_int_equal(err.code, ENOENT);
        (void)snprintf(want, sizeof(want), "open 'x': %s", strerror(ENOENT));
        assert_string_equal(err.msg, want);
        assert_int_equal(ak_err_errno(&err, EACCES, "open"), -EACCES);
        assert_int_equal(err.code, EACCES);
        (void)snprintf(want, sizeof(want), "open: %s", strerror(EACCES));
        assert_string_equal(err.msg, want);
        /* 0 is not an error: it is reported as EIO, like ak_err_set */
        assert_int_equal(ak_err_errno(&err, 0, "what"), -EIO);
        assert_int_equal(err.code, EIO);
        /* errno is preserved */
        errno = ERANGE;
        (void)ak_err_errno(&err, EPERM, "x");
        assert_int_equal(errno, ERANGE);
        /* NULL err: only the return value */
        assert_int_equal(ak_err_errno(NULL, -EBUSY, "x"), -EBUSY);
        assert_int_equal(ak_err_errno(NULL, EBUSY, "x"), -EBUSY);
        /* truncation at AK_ERR_MSG_MAX, the same as formatting the whole message at once */
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(ak_err_errno(&err, ENOENT, "%s", big), -ENOENT);
        assert_int_equal(strlen(err.msg), AK_ERR_MSG_MAX - 1);
        assert_int_equal(err.code, ENOENT);
        for (size_t n = AK_ERR_MSG_MAX - 8; n < AK_ERR_MSG_MAX + 2; n++) {
                struct ak_err set = {0};
                big[n] = '\0';
                (void)ak_err_errno(&err, ENOENT, "%s", big);
                (void)ak_err_set(&set, ENOENT, "%s: %s", big, strerror(ENOENT));
                assert_string_equal(err.msg, set.msg);
                big[n] = 'a';
        }
}

static void test_err_oom(void **unused)
{
        struct ak_err err = {0};
        (void)unused;
        assert_int_equal(ak_err_oom(&err), -ENOMEM);
        assert_int_equal(err.code, ENOMEM);
        assert_string_equal(err.msg, "out of memory");
        assert_int_equal(ak_err_oom(NULL), -ENOMEM);
}

static void test_strv(void **unused)
{
        cleanup_strv char **v = NULL;
        cleanup_strv char **copy = NULL;
        cleanup_strv char **env = NULL;
        char *base[] = {"PATH=/bin", "HOME=/root", "junk", "TERM=dumb", NULL};
        char *over[] = {"HOME=/home/u", "X=1", NULL};
        (void)unused;
        assert_int_equal(strv_len(NULL), 0);
        assert_null(strv_dup(NULL));
        strv_free(NULL);
        assert_int_equal(strv_push(&v, "a"), 0);
        assert_int_equal(strv_push(&v, "b"), 0);
        assert_int_equal(strv_consume(&v, strdup("c")), 0);
        assert_int_equal(strv_consume(&v, NULL), -ENOMEM); /* a failed strdup: v unchanged */
        assert_int_equal(strv_len(v), 3);
        assert_string_equal(v[2], "c");
        assert_null(v[3]);
        copy = strv_dup(v);
        assert_non_null(copy);
        assert_int_equal(strv_len(copy), 3);
        assert_ptr_not_equal(copy[0], v[0]);
        assert_string_equal(copy[1], "b");
        /* base's keys that over does not set, then over; entries without '=' dropped */
        env = strv_env_merge(base, over);
        assert_non_null(env);
        assert_int_equal(strv_len(env), 4);
        assert_string_equal(env[0], "PATH=/bin");
        assert_string_equal(env[1], "TERM=dumb");
        assert_string_equal(env[2], "HOME=/home/u");
        assert_string_equal(env[3], "X=1");
}

/* A destructor that counts its calls and clobbers errno, as close() may. */
struct counted {
        int *calls;
};
static void counted_free(struct counted *c)
{
        (*c->calls)++;
        errno = EBADF;
}
static void counted_done(struct counted *c)
{
        if (c->calls)
                (*c->calls)++;
        errno = EBADF;
}
DEFINE_CLEANUP(struct counted, counted_free)
DEFINE_CLEANUP_DONE(struct counted, counted_done)

static struct counted *counted_hand_over(int *calls, bool keep)
{
        static struct counted obj;
        CLEANUP_FUNC(counted_free) struct counted *c = &obj;
        obj.calls = calls;
        return keep ? TAKE_PTR(c) : NULL;
}

static void test_cleanup(void **unused)
{
        int calls = 0;
        (void)unused;
        /* an x_free cleanup runs once at scope exit, keeps errno, and not after TAKE_PTR */
        errno = ERANGE;
        assert_null(counted_hand_over(&calls, false));
        assert_int_equal(calls, 1);
        assert_int_equal(errno, ERANGE);
        assert_non_null(counted_hand_over(&calls, true));
        assert_int_equal(calls, 1);
        /* an x_done cleanup runs on the struct itself; TAKE_STRUCT leaves it empty */
        {
                CLEANUP_FUNC(counted_done) struct counted v = {&calls};
                struct counted moved = TAKE_STRUCT(v);
                assert_ptr_equal(moved.calls, &calls);
                assert_null(v.calls);
        }
        assert_int_equal(calls, 1);
        {
                CLEANUP_FUNC(counted_done) struct counted v = {&calls};
                (void)v;
        }
        assert_int_equal(calls, 2);
        assert_int_equal(errno, ERANGE);
}

static int got_at;

static void *other_thread_at(void *arg)
{
        const char *rest;

        got_at = dir_cache_at(arg, 2, &rest);
        return NULL;
}

/* dir_cache_at: outside a batch the whole path from AT_FDCWD; within one, a kept fd of the
 * directory depth levels up and the rest below it (the same file opened); paths too short for
 * the depth, relative ones and depth 0 never kept; after the batch, nothing kept. */
static void test_dir_cache(void **unused)
{
        char dir[] = "/tmp/ak-dircache-XXXXXX", p[PATH_MAX];
        const char *rest;
        struct stat a, b;
        int at, fd;

        (void)unused;
        assert_non_null(mkdtemp(dir));
        (void)snprintf(p, sizeof(p), "%s/sub", dir);
        assert_int_equal(mkdir(p, 0700), 0);
        (void)snprintf(p, sizeof(p), "%s/sub/f", dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, "x", 1, 0600, false), 0);

        assert_int_equal(dir_cache_at(p, 2, &rest), AT_FDCWD); /* no batch */
        assert_ptr_equal(rest, p);
        dir_cache_begin();
        at = dir_cache_at(p, 2, &rest);
        assert_true(at >= 0);
        assert_string_equal(rest, "sub/f");
        assert_int_equal(dir_cache_at(p, 2, &rest), at); /* kept */
        fd = openat(at, rest, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &a), 0);
        close(fd);
        assert_int_equal(stat(p, &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        at = dir_cache_at(p, 1, &rest);
        assert_true(at >= 0);
        assert_string_equal(rest, "f");
        assert_int_equal(dir_cache_at("/f", 1, &rest), AT_FDCWD); /* "/" is never kept */
        assert_int_equal(dir_cache_at("/a/b", 2, &rest), AT_FDCWD);
        assert_string_equal(rest, "/a/b");
        assert_int_equal(dir_cache_at("a/b/c", 2, &rest), AT_FDCWD);
        assert_int_equal(dir_cache_at(p, 0, &rest), AT_FDCWD);
        (void)snprintf(p, sizeof(p), "%s/sub/", dir);
        assert_int_equal(dir_cache_at(p, 1, &rest), AT_FDCWD); /* no last component */
        dir_cache_begin(); /* nested: the inner end keeps them */
        dir_cache_end();
        (void)snprintf(p, sizeof(p), "%s/sub/f", dir);
        assert_true(dir_cache_at(p, 2, &rest) >= 0);
        dir_cache_end();
        assert_int_equal(dir_cache_at(p, 2, &rest), AT_FDCWD);
        /* a thread outside any batch of its own never uses another thread's kept fds */
        dir_cache_begin();
        {
                pthread_t t;
                assert_int_equal(pthread_create(&t, NULL, other_thread_at, p), 0);
                assert_int_equal(pthread_join(t, NULL), 0);
                assert_int_equal(got_at, AT_FDCWD);
        }
        dir_cache_end();
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rfc3339_format),
            cmocka_unit_test(test_rfc3339_parse),
            cmocka_unit_test(test_numbers),
            cmocka_unit_test(test_buf),
            cmocka_unit_test(test_array_reserve),
            cmocka_unit_test(test_ids),
            cmocka_unit_test(test_atomic_write),
            cmocka_unit_test(test_mkdir_rm),
            cmocka_unit_test(test_openat_nomagic),
            cmocka_unit_test(test_openat_nomagic_walk),
            cmocka_unit_test(test_out_file),
            cmocka_unit_test(test_out_file_named),
            cmocka_unit_test(test_open_source_file),
            cmocka_unit_test(test_rm_rf_deep),
            cmocka_unit_test(test_err_errno),
            cmocka_unit_test(test_err_oom),
            cmocka_unit_test(test_strv),
            cmocka_unit_test(test_cleanup),
            cmocka_unit_test(test_dir_cache),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
