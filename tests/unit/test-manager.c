// SPDX-License-Identifier: Apache-2.0
/*
 * The sandbox manager against the fake backend (the real agent as a plain process) and the
 * faulty backend (the same, with injected failures): lifecycle rules, messages, and that a
 * failure at any step leaves a consistent record behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/manager.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

struct fixture {
        char dir[64];
        struct manager *m;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        strcpy(f->dir, "/tmp/ak-test-manager-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        setenv("AGENTKERNEL_DATA_DIR", f->dir, 1);
        unsetenv("AGENTKERNEL_FAULT");
        assert_int_equal(manager_open(&f->m, NULL), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        struct state_list l;
        if (manager_list(f->m, NULL, NULL, &l) == 0) {
                for (size_t i = 0; i < l.n; i++)
                        (void)manager_remove(f->m, l.items[i]->name, NULL);
                state_list_free(&l);
        }
        manager_free(f->m);
        (void)rm_rf_at(AT_FDCWD, f->dir);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        free(f);
        return 0;
}

static void create(struct fixture *f, const char *name, const char *backend)
{
        struct create_opts o = {.name = name, .backend = backend, .network = 0, .mount_cwd = 0};
        struct ak_err err = {0};
        int r = manager_create(f->m, &o, &err);
        if (r < 0)
                fail_msg("create %s: %s", name, ak_err_msg(&err));
}

static int run(struct fixture *f, const char *name, char **argv, struct buf *out,
               struct buf *errout, struct agent_exit *ex, struct ak_err *err)
{
        struct agent_exec_opts x = {.argv = argv};
        int fd = manager_connect(f->m, name, NULL, err), r;
        if (fd < 0)
                return fd;
        r = agent_exec_capture(fd, &x, 1 << 20, out, errout, NULL, ex, err);
        close(fd);
        return r;
}

static void test_create_rules(void **state)
{
        struct fixture *f = *state;
        struct create_opts o = {.name = "dup", .backend = "fake", .network = 0, .mount_cwd = 0};
        struct ak_err err = {0};
        struct sandbox_state *st = NULL;

        create(f, "dup", "fake");
        assert_int_equal(manager_create(f->m, &o, &err), -EEXIST);
        assert_string_equal(err.msg, "sandbox 'dup' already exists");
        o.name = "bad name";
        assert_int_equal(manager_create(f->m, &o, &err), -EINVAL);
        o.name = "ok";
        o.profile = "lax";
        assert_int_equal(manager_create(f->m, &o, &err), -EINVAL);
        o.profile = NULL;
        o.backend = "nosuch";
        assert_int_equal(manager_create(f->m, &o, &err), -EINVAL);
        assert_false(store_exists(f->m->store, "ok"));
        /* the record has the seed's defaults and a CID */
        assert_int_equal(store_load(f->m->store, "dup", &st, NULL), 0);
        assert_int_equal(st->vcpus, 1);
        assert_int_equal(st->memory_mb, 512); /* moderate's default memory */
        assert_int_equal(st->vsock_cid, 3);
        assert_string_equal(st->created_at, st->last_activity_at);
        assert_int_equal(strlen(st->uuid), 36);
        assert_false(manager_is_running(f->m, st));
        state_free(st);
}

static void test_memory_not_replaced_by_profile(void **state)
{
        /* upstream Q6: a profile's cap must not silently replace the memory asked for */
        struct fixture *f = *state;
        struct create_opts o = {.name = "big",
                                .backend = "fake",
                                .profile = "restrictive",
                                .memory_mb = 2048,
                                .network = 0,
                                .mount_cwd = 0};
        struct sandbox_state *st = NULL;
        assert_int_equal(manager_create(f->m, &o, NULL), 0);
        assert_int_equal(store_load(f->m->store, "big", &st, NULL), 0);
        assert_int_equal(st->memory_mb, 2048);
        state_free(st);
        o.name = "small";
        o.memory_mb = 0; /* not given: the profile's default */
        assert_int_equal(manager_create(f->m, &o, NULL), 0);
        assert_int_equal(store_load(f->m->store, "small", &st, NULL), 0);
        assert_int_equal(st->memory_mb, 256);
        state_free(st);
}

static void test_lifecycle(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        cleanup_buf struct buf out = BUF_INIT;
        cleanup_buf struct buf eout = BUF_INIT;
        struct agent_exit ex;
        struct sandbox_state *st = NULL;
        char *echo[] = {"echo", "a  b", "c*d", "$HOME", "'q'", NULL};
        char *fail3[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
        char run_dir[256], lock[256];

        create(f, "life", "fake");
        assert_int_equal(manager_start(f->m, "life", &err), 0);
        assert_int_equal(manager_start(f->m, "life", &err), -EALREADY);
        assert_int_equal(run(f, "life", echo, &out, &eout, &ex, &err), 0);
        assert_int_equal(ex.code, 0);
        assert_string_equal(out.data, "a  b c*d $HOME 'q'\n"); /* argv exactly, no shell */
        buf_reset(&out);
        assert_int_equal(run(f, "life", fail3, &out, &eout, &ex, &err), 0);
        assert_int_equal(ex.code, 3);
        assert_string_equal(out.data, "out\n");
        assert_string_equal(eout.data, "err\n");

        assert_int_equal(manager_stop(f->m, "life", &err), 0);
        assert_int_equal(manager_stop(f->m, "life", &err), 0); /* idempotent */
        assert_int_equal(store_load(f->m->store, "life", &st, NULL), 0);
        assert_false(manager_is_running(f->m, st));
        state_free(st);
        ak_err_clear(&err);
        assert_int_equal(manager_connect(f->m, "life", NULL, &err), -ESRCH);
        assert_string_equal(err.msg,
                            "sandbox 'life' is not running; start it with: agentkernel start life");

        assert_int_equal(manager_start(f->m, "life", &err), 0);
        assert_int_equal(manager_remove(f->m, "life", &err), 0);
        (void)snprintf(run_dir, sizeof(run_dir), "%s/run/life", f->dir);
        (void)snprintf(lock, sizeof(lock), "%s/locks/life.lock", f->dir);
        assert_false(store_exists(f->m->store, "life"));
        assert_int_equal(access(run_dir, F_OK), -1);
        assert_int_equal(access(lock, F_OK), -1);
        ak_err_clear(&err);
        assert_int_equal(manager_remove(f->m, "life", &err), -ENOENT);
        assert_string_equal(err.msg, "sandbox 'life' not found");
}

static void test_touch(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st = NULL;

        create(f, "touch-test", "fake");
        assert_int_equal(store_load(f->m->store, "touch-test", &st, NULL), 0);
        assert_int_equal(state_set_str(&st->last_activity_at, "2026-01-01T00:00:00Z"), 0);
        assert_int_equal(store_save(f->m->store, st, false, NULL), 0);
        state_free(st);
        assert_int_equal(manager_touch(f->m, "touch-test"), 0);
        assert_int_equal(store_load(f->m->store, "touch-test", &st, NULL), 0);
        assert_string_not_equal(st->last_activity_at, "2026-01-01T00:00:00Z");
        state_free(st);
}

static void test_archived_refuses_start(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};

        create(f, "arch", "fake");
        assert_int_equal(store_load(f->m->store, "arch", &st, NULL), 0);
        assert_int_equal(state_set_str(&st->archived_at, "2026-01-01T00:00:00Z"), 0);
        assert_int_equal(store_save(f->m->store, st, false, NULL), 0);
        state_free(st);
        assert_int_equal(manager_start(f->m, "arch", &err), -EPERM);
        assert_non_null(strstr(err.msg, "is archived"));
}

static void test_files_and_detached(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        cleanup_buf struct buf content = BUF_INIT;
        char data[300000];
        char *cmd[] = {"sh", "-c", "echo detached-out; exit 4", NULL};
        struct agent_detached d, *list = NULL;
        size_t n = 0;
        int fd;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (char)(i * 7);
        create(f, "files", "fake");
        assert_int_equal(manager_start(f->m, "files", &err), 0);
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_true(fd >= 0);
        assert_int_equal(agent_file_write(fd, "/tmp/ak-test-manager-file/sub/bin.dat", 0600, true,
                                          true, -1, data, sizeof(data), NULL, &err),
                         0);
        close(fd);
        fd = manager_connect(f->m, "files", NULL, &err);
        {
                struct agent_file_info info;
                int (*sink)(void *, const void *, size_t) = NULL;
                (void)sink;
                assert_int_equal(agent_file_read(fd, "/tmp/ak-test-manager-file/sub/bin.dat", 0,
                                                 (int (*)(void *, const void *, size_t))buf_append,
                                                 &content, &info, &err),
                                 0);
                assert_int_equal(info.size, sizeof(data));
                assert_int_equal(info.mode, 0600);
        }
        close(fd);
        assert_int_equal(content.len, sizeof(data));
        assert_memory_equal(content.data, data, sizeof(data));
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_int_equal(agent_file_remove(fd, "/tmp/ak-test-manager-file", true, &err), 0);
        close(fd);

        fd = manager_connect(f->m, "files", NULL, &err);
        {
                struct agent_exec_opts x = {.argv = cmd};
                assert_int_equal(agent_detach(fd, &x, &d, &err), 0);
        }
        close(fd);
        assert_int_equal(strlen(d.id), 8);
        for (int tries = 0; tries < 200; tries++) {
                struct agent_detached g;
                fd = manager_connect(f->m, "files", NULL, &err);
                assert_int_equal(agent_detach_get(fd, d.id, &g, &err), 0);
                close(fd);
                if (g.status != AK_DETACH_RUNNING) {
                        assert_int_equal(g.status, AK_DETACH_FAILED);
                        assert_true(g.has_code);
                        assert_int_equal(g.code, 4);
                        agent_detached_clear(&g);
                        break;
                }
                agent_detached_clear(&g);
                usleep(10000);
        }
        /* a new connection (as from another process) sees it */
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_int_equal(agent_detach_list(fd, &list, &n, &err), 0);
        close(fd);
        assert_int_equal(n, 1);
        assert_string_equal(list[0].id, d.id);
        assert_string_equal(list[0].argv[2], "echo detached-out; exit 4");
        agent_detached_clear(&list[0]);
        free(list);
        buf_reset(&content);
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_int_equal(agent_detach_logs(fd, d.id, false,
                                           (int (*)(void *, const void *, size_t))buf_append,
                                           &content, &err),
                         0);
        close(fd);
        assert_string_equal(content.data, "detached-out\n");
        agent_detached_clear(&d);
}

static void test_injected_start_failure(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        struct sandbox_state *st = NULL;

        create(f, "faulty1", "faulty");
        setenv("AGENTKERNEL_FAULT", "start:1:28", 1);
        assert_int_equal(manager_start(f->m, "faulty1", &err), -ENOSPC);
        assert_non_null(strstr(err.msg, "cannot start sandbox 'faulty1'"));
        /* the record is intact and says stopped */
        assert_int_equal(store_load(f->m->store, "faulty1", &st, NULL), 0);
        assert_false(manager_is_running(f->m, st));
        state_free(st);
        /* the second attempt goes through */
        assert_int_equal(manager_start(f->m, "faulty1", &err), 0);
        unsetenv("AGENTKERNEL_FAULT");
}

static void test_injected_stop_failure(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};

        create(f, "faulty2", "faulty");
        assert_int_equal(manager_start(f->m, "faulty2", &err), 0);
        setenv("AGENTKERNEL_FAULT", "stop:1:5", 1);
        /* remove must not forget a sandbox it could not stop */
        assert_int_equal(manager_remove(f->m, "faulty2", &err), -EIO);
        assert_true(store_exists(f->m->store, "faulty2"));
        assert_int_equal(manager_remove(f->m, "faulty2", &err), 0);
        assert_false(store_exists(f->m->store, "faulty2"));
        unsetenv("AGENTKERNEL_FAULT");
}

static void test_ephemeral(void **state)
{
        struct fixture *f = *state;
        struct create_opts o = {.backend = "fake", .network = 0, .mount_cwd = 0};
        char *argv[] = {"sh", "-c", "exit 9", NULL};
        struct agent_exec_opts x = {.argv = argv};
        struct agent_io io = {.stdin_fd = -1, .signal_fd = -1, .tty_fd = -1};
        struct agent_exit ex = {0};
        struct state_list l;
        struct ak_err err = {0};

        assert_int_equal(manager_run_ephemeral(f->m, &o, &x, &io, &ex, &err), 0);
        assert_int_equal(ex.code, 9);
        assert_int_equal(manager_list(f->m, NULL, NULL, &l), 0);
        assert_int_equal(l.n, 0); /* nothing recorded */
        state_list_free(&l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_create_rules, setup, teardown),
            cmocka_unit_test_setup_teardown(test_memory_not_replaced_by_profile, setup, teardown),
            cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
            cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
            cmocka_unit_test_setup_teardown(test_archived_refuses_start, setup, teardown),
            cmocka_unit_test_setup_teardown(test_files_and_detached, setup, teardown),
            cmocka_unit_test_setup_teardown(test_injected_start_failure, setup, teardown),
            cmocka_unit_test_setup_teardown(test_injected_stop_failure, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ephemeral, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
