// SPDX-License-Identifier: Apache-2.0
/* The state store: the seed's load_sandboxes tests, ported, plus locking and atomicity. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/paths.h"
#include "core/store.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

struct fixture {
        char dir[64];
        struct store *store;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/ak-test-store-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(store_open(f->dir, &f->store, NULL), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        store_free(f->store);
        (void)rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static void write_raw(struct fixture *f, const char *file, const char *content)
{
        char p[512];
        (void)snprintf(p, sizeof(p), "%s/sandboxes/%s", f->dir, file);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, p, content, strlen(content), 0644, false),
                         0);
}

static void save_state(struct fixture *f, const char *name, uint32_t cid, const char *env_label)
{
        struct sandbox_state *s = state_new();
        assert_int_equal(state_set_str(&s->name, name), 0);
        assert_int_equal(state_set_str(&s->uuid, "0190a3c4-0000-7000-8000-000000000001"), 0);
        assert_int_equal(state_set_str(&s->image, "alpine:3.20"), 0);
        assert_int_equal(state_set_str(&s->created_at, "2024-01-01T00:00:00Z"), 0);
        s->vcpus = 1;
        s->memory_mb = 256;
        s->vsock_cid = cid;
        if (env_label)
                json_object_set_new(s->labels, "env", json_string(env_label));
        assert_int_equal(store_save(f->store, s, true, NULL), 0);
        state_free(s);
}

/* Where the data directory is: never a fixed path in a shared directory (upstream's
 * /tmp/agentkernel without HOME): HOME, else the passwd entry's home, else a refusal. */
static void test_data_dir_uses_home(void **unused)
{
        char *d = NULL, want[4200], cwd[4096];
        struct ak_err err = {0};
        struct passwd *pw = getpwuid(geteuid());
        (void)unused;
        unsetenv("AGENTKERNEL_DATA_DIR");
        setenv("HOME", "/home/someone", 1);
        assert_int_equal(paths_data_dir_path(&d, NULL), 0);
        assert_string_equal(d, "/home/someone/.local/share/agentkernel");
        free(d);
        assert_int_equal(paths_user_dir_path(&d, NULL), 0);
        assert_string_equal(d, "/home/someone/.agentkernel");
        free(d);
        unsetenv("HOME");
        if (pw && pw->pw_dir[0] == '/') {
                assert_int_equal(paths_data_dir_path(&d, NULL), 0);
                (void)snprintf(want, sizeof(want), "%s/.local/share/agentkernel",
                               streq(pw->pw_dir, "/") ? "" : pw->pw_dir);
                assert_string_equal(d, want);
                free(d);
        } else {
                assert_int_equal(paths_data_dir_path(&d, &err), -ENOENT);
                assert_non_null(strstr(err.msg, "HOME"));
                assert_non_null(strstr(err.msg, "AGENTKERNEL_DATA_DIR"));
        }
        setenv("HOME", "relative/home", 1);
        assert_int_equal(paths_data_dir_path(&d, &err), -EINVAL);
        unsetenv("HOME");
        setenv("AGENTKERNEL_DATA_DIR", "/srv/ak", 1);
        assert_int_equal(paths_data_dir_path(&d, NULL), 0);
        assert_string_equal(d, "/srv/ak");
        free(d);
        assert_int_equal(paths_user_dir_path(&d, NULL), 0);
        assert_string_equal(d, "/srv/ak");
        free(d);
        setenv("AGENTKERNEL_DATA_DIR", "rel/ak", 1);
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        (void)snprintf(want, sizeof(want), "%s/rel/ak", cwd);
        assert_int_equal(paths_data_dir_path(&d, NULL), 0);
        assert_string_equal(d, want);
        free(d);
        unsetenv("AGENTKERNEL_DATA_DIR");
}

/* Upstream's records (0644 in a 0755 sandboxes/) load; ours are 0600 in 0700 directories, and
 * an upstream record is tightened when we rewrite it. */
static void test_modes(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *s = NULL;
        struct store *again = NULL;
        char p[512];
        struct stat st;

        (void)snprintf(p, sizeof(p), "%s/sandboxes", f->dir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(f->dir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(chmod(p, 0755), 0);
        write_raw(f, "up.json",
                  "{\"name\": \"up\", \"uuid\": \"0190f0a1-7a0b-7c3d-8e9f-0a1b2c3d4e5f\", "
                  "\"image\": \"a\", \"vcpus\": 1, \"memory_mb\": 1, \"vsock_cid\": 3, "
                  "\"created_at\": \"x\"}");
        (void)snprintf(p, sizeof(p), "%s/sandboxes/up.json", f->dir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(store_load(f->store, "up", &s, NULL), 0); /* loads as it is */
        assert_int_equal(store_save(f->store, s, false, NULL), 0);
        state_free(s);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        /* the next open tightens the directory */
        assert_int_equal(store_open(f->dir, &again, NULL), 0);
        store_free(again);
        (void)snprintf(p, sizeof(p), "%s/sandboxes", f->dir);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
}

/* A record another user could write, or a link, is not loaded. */
static void test_untrusted_records(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *s = NULL;
        struct ak_err err = {0};
        char p[512], q[512];
        const char *rec = "{\"name\": \"w\", \"image\": \"a\", \"vcpus\": 1, "
                          "\"memory_mb\": 1, \"vsock_cid\": 3, \"created_at\": \"x\"}";

        write_raw(f, "w.json", rec);
        (void)snprintf(p, sizeof(p), "%s/sandboxes/w.json", f->dir);
        assert_int_equal(chmod(p, 0666), 0);
        assert_int_equal(store_load(f->store, "w", &s, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by"));
        assert_int_equal(unlink(p), 0);
        (void)snprintf(q, sizeof(q), "%s/elsewhere.json", f->dir);
        assert_int_equal(write_file_atomic_at(AT_FDCWD, q, rec, strlen(rec), 0600, false), 0);
        assert_int_equal(symlink(q, p), 0);
        ak_err_clear(&err);
        assert_int_equal(store_load(f->store, "w", &s, &err), -ELOOP);
        assert_int_equal(unlink(p), 0);
        if (geteuid() == 0) {
                write_raw(f, "w.json", rec);
                assert_int_equal(chown(p, 62001, 62001), 0);
                ak_err_clear(&err);
                assert_int_equal(store_load(f->store, "w", &s, &err), -EPERM);
                assert_non_null(strstr(err.msg, "uid 62001"));
        }
}

static void test_load_empty(void **state)
{
        struct fixture *f = *state;
        struct state_list l;
        assert_int_equal(store_list(f->store, NULL, NULL, &l), 0);
        assert_int_equal(l.n, 0);
        state_list_done(&l);
}

static int warnings;
static void count_warning(void *ctx, const char *file, const char *msg)
{
        (void)ctx;
        (void)file;
        (void)msg;
        warnings++;
}

static void test_load_with_files(void **state)
{
        struct fixture *f = *state;
        struct state_list l;

        save_state(f, "loaded-sandbox", 4, NULL);
        write_raw(f, "invalid.json", "not valid json");
        write_raw(f, "readme.txt", "hello");
        warnings = 0;
        assert_int_equal(store_list(f->store, count_warning, NULL, &l), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.items[0]->name, "loaded-sandbox");
        assert_string_equal(l.items[0]->image, "alpine:3.20");
        assert_int_equal(l.items[0]->memory_mb, 256);
        assert_int_equal(warnings, 1); /* the invalid file is reported, not fatal */
        state_list_done(&l);
}

static void test_load_nonexistent_dir(void **unused)
{
        struct store s = {.sandboxes_dir = "/nonexistent/path"};
        struct state_list l;
        (void)unused;
        assert_int_equal(store_list(&s, NULL, NULL, &l), 0);
        assert_int_equal(l.n, 0);
}

static void test_backfills_uuid(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *s = NULL;
        char p[512];
        cleanup_buf struct buf b = BUF_INIT;

        write_raw(
            f, "legacy-box.json",
            "{\"name\": \"legacy-box\", \"image\": \"alpine:3.20\", \"vcpus\": 1, "
            "\"memory_mb\": 256, \"vsock_cid\": 4, \"created_at\": \"2026-02-16T00:00:00Z\"}");
        assert_int_equal(store_load(f->store, "legacy-box", &s, NULL), 0);
        assert_int_equal(strlen(s->uuid), 36);
        assert_int_equal(s->uuid[14], '7'); /* UUIDv7 */
        (void)snprintf(p, sizeof(p), "%s/sandboxes/legacy-box.json", f->dir);
        assert_int_equal(read_file_at(AT_FDCWD, p, &b, 1 << 20), 0);
        assert_non_null(strstr(b.data, "\"uuid\""));
        assert_non_null(strstr(b.data, s->uuid));
        state_free(s);
}

static void test_next_cid(void **state)
{
        struct fixture *f = *state;
        uint32_t cid = 0;

        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 3); /* none yet: 2 + 1, as the seed */
        save_state(f, "sb1", 5, NULL);
        save_state(f, "sb2", 10, NULL);
        save_state(f, "sb3", 3, NULL);
        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 11);
}

/* The remembered highest cid (store_cid_taken) is used only while the records are the same by
 * name: one that appears otherwise (another tool, a copy) with a higher cid is seen, and a
 * removed one leaves the next cid unique. */
static void test_next_cid_memo(void **state)
{
        struct fixture *f = *state;
        uint32_t cid = 0;

        save_state(f, "sb1", 5, NULL);
        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 6);
        save_state(f, "sb2", cid, NULL);
        store_cid_taken(f->store, cid);
        {
                char memo[128];
                struct stat st;
                (void)snprintf(memo, sizeof(memo), "%s/locks/.cid-max", f->dir);
                assert_int_equal(stat(memo, &st), 0);
                /* what a scan would not say: the memo is what is used */
                assert_int_equal(write_file_atomic_at(AT_FDCWD, memo, "x", 1, 0600, false), 0);
                store_cid_taken(f->store, 20);
        }
        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 21); /* from the memo */
        /* a record made behind the store's back, with a higher cid */
        write_raw(f, "foreign.json",
                  "{\"name\": \"foreign\", \"uuid\": \"0190a3c4-0000-7000-8000-000000000002\", "
                  "\"image\": \"a\", \"vcpus\": 1, \"memory_mb\": 1, \"vsock_cid\": 40, "
                  "\"created_at\": \"x\"}");
        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 41); /* scanned: the names changed */
        /* a memo that lies about the records is not believed either (another directory's) */
        store_cid_taken(f->store, 41);
        assert_int_equal(store_delete(f->store, "sb1", NULL), 0);
        assert_int_equal(store_next_cid(f->store, &cid), 0);
        assert_int_equal(cid, 41); /* scanned: foreign's 40 is the highest left */
}

static void test_labels_persist(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *s = NULL;

        save_state(f, "persist-test", 3, "prod");
        assert_int_equal(store_load(f->store, "persist-test", &s, NULL), 0);
        assert_string_equal(json_string_value(json_object_get(s->labels, "env")), "prod");
        assert_int_equal(state_set_str(&s->description, "Test sandbox"), 0);
        assert_int_equal(store_save(f->store, s, false, NULL), 0);
        state_free(s);
        s = NULL;
        assert_int_equal(store_load(f->store, "persist-test", &s, NULL), 0);
        assert_string_equal(s->description, "Test sandbox");
        state_free(s);
}

static void test_load_missing_and_invalid(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *s = NULL;
        struct ak_err err = {0};

        assert_int_equal(store_load(f->store, "nope", &s, &err), -ENOENT);
        assert_string_equal(err.msg, "sandbox 'nope' not found");
        ak_err_clear(&err);
        assert_int_equal(store_load(f->store, "../etc", &s, &err), -EINVAL);
        write_raw(f, "broken.json", "{\"name\": \"broken\"}");
        assert_int_equal(store_load(f->store, "broken", &s, &err), -EINVAL);
        /* a file whose name disagrees with its content is refused */
        write_raw(f, "other.json",
                  "{\"name\": \"someone\", \"image\": \"a\", \"vcpus\": 1, \"memory_mb\": 1, "
                  "\"vsock_cid\": 3, \"created_at\": \"x\"}");
        assert_int_equal(store_load(f->store, "other", &s, NULL), -EINVAL);
}

/* Locks exclude other processes and survive the lock file being removed under a waiter. */
static void test_lock_excludes(void **state)
{
        struct fixture *f = *state;
        int fd = store_lock(f->store, "x", NULL);
        pid_t pid;
        int pipefd[2], status;
        char c;

        assert_true(fd >= 0);
        assert_int_equal(pipe(pipefd), 0);
        pid = fork();
        if (pid == 0) {
                int l;
                close(fd); /* flock belongs to the open file: drop our inherited copy */
                l = store_lock(f->store, "x", NULL); /* blocks until the parent releases */
                if (write(pipefd[1], "L", 1) != 1)
                        _exit(1);
                store_unlock(l);
                _exit(0);
        }
        usleep(100000);
        /* the child must still be waiting */
        assert_int_equal(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(read(pipefd[0], &c, 1), -1);
        store_unlock_remove(f->store, "x", fd); /* the waiter must notice and retry */
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        close(pipefd[0]);
        close(pipefd[1]);
}

static void test_delete(void **state)
{
        struct fixture *f = *state;
        save_state(f, "gone", 3, NULL);
        assert_true(store_exists(f->store, "gone"));
        assert_int_equal(store_delete(f->store, "gone", NULL), 0);
        assert_false(store_exists(f->store, "gone"));
        assert_int_equal(store_delete(f->store, "gone", NULL), 0); /* idempotent */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_data_dir_uses_home),
            cmocka_unit_test_setup_teardown(test_load_empty, setup, teardown),
            cmocka_unit_test_setup_teardown(test_load_with_files, setup, teardown),
            cmocka_unit_test(test_load_nonexistent_dir),
            cmocka_unit_test_setup_teardown(test_backfills_uuid, setup, teardown),
            cmocka_unit_test_setup_teardown(test_next_cid, setup, teardown),
            cmocka_unit_test_setup_teardown(test_next_cid_memo, setup, teardown),
            cmocka_unit_test_setup_teardown(test_labels_persist, setup, teardown),
            cmocka_unit_test_setup_teardown(test_load_missing_and_invalid, setup, teardown),
            cmocka_unit_test_setup_teardown(test_lock_excludes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
            cmocka_unit_test_setup_teardown(test_modes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_untrusted_records, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
