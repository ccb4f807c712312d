// SPDX-License-Identifier: Apache-2.0
/*
 * The sandbox manager against the fake backend (the real agent as a plain process) and the
 * faulty backend (the same, with injected failures): lifecycle rules, messages, and that a
 * failure at any step leaves a consistent record behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "backend/backends.h"
#include "core/audit.h"
#include "core/manager-private.h" /* white-box: the test reads and edits records itself */
#include "core/manager.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/net-mode.h"
#include "shared/strv.h"
#include "shared/time-util.h"

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
        backends_init_test();
        assert_int_equal(manager_open(&f->m, NULL), 0);
        *state = f;
        return 0;
}

/* Processes whose command line names dir (agents of this fixture's sandboxes), not zombies. */
static int processes_of(const char *dir)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int n = 0;

        while (d && (de = readdir(d))) {
                char path[64], cmd[4096], stat[512];
                ssize_t len;
                int fd;
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                (void)snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                len = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
                if (fd >= 0)
                        close(fd);
                if (len <= 0)
                        continue;
                for (ssize_t i = 0; i < len; i++)
                        if (!cmd[i])
                                cmd[i] = ' ';
                cmd[len] = '\0';
                (void)snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                len = fd >= 0 ? read(fd, stat, sizeof(stat) - 1) : -1;
                if (fd >= 0)
                        close(fd);
                stat[len > 0 ? len : 0] = '\0';
                if (strstr(cmd, dir) && !strstr(stat, ") Z "))
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        struct state_list l;
        int left = 0;
        if (manager_list(f->m, NULL, NULL, &l) == 0) {
                for (size_t i = 0; i < l.n; i++)
                        (void)manager_remove(f->m, l.items[i]->name, NULL);
                state_list_done(&l);
        }
        manager_free(f->m);
        /* every agent a test started is gone (its handlers and spare too) */
        for (int tries = 0; tries < 100 && (left = processes_of(f->dir)) > 0; tries++)
                usleep(20000);
        (void)rm_rf_at(AT_FDCWD, f->dir);
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        free(f);
        assert_int_equal(left, 0);
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

/* A sandbox's egress policy through the manager (not running: the record's side), its checks,
 * and its decision log's opening. */
static void test_network_policy(void **state)
{
        struct fixture *f = *state;
        struct create_opts o = {
            .name = "np", .backend = "fake", .network = NET_MODE_PROXY, .mount_cwd = 0};
        json_error_t je;
        json_t *pol = json_loads("{\"default\":\"deny\",\"rules\":[{\"action\":\"allow\","
                                 "\"host\":\"*.example.org\",\"ports\":[443]}]}",
                                 0, &je);
        json_t *bad = json_loads("{\"default\":\"maybe\"}", 0, &je);
        json_t *got = NULL;
        struct ak_err err = {0};
        struct sandbox_state *st = NULL;
        char path[256];
        int fd = -2;

        assert_non_null(pol);
        o.network_policy = pol;
        assert_int_equal(manager_create(f->m, &o, &err), 0);
        assert_int_equal(manager_network_policy(f->m, "np", &got, &err), 0);
        assert_true(json_equal(got, pol));
        json_decref(got);
        /* none recorded: the built-in policy */
        o.name = "nb";
        o.network_policy = NULL;
        assert_int_equal(manager_create(f->m, &o, &err), 0);
        assert_int_equal(manager_network_policy(f->m, "nb", &got, &err), 0);
        assert_string_equal(json_string_value(json_object_get(got, "default")), "deny");
        assert_true(json_array_size(json_object_get(got, "rules")) > 10);
        json_decref(got);
        /* replaced: recorded; a bad one changes nothing */
        assert_int_equal(manager_network_set_policy(f->m, "nb", pol, &err), 0);
        assert_int_equal(store_load(f->m->store, "nb", &st, NULL), 0);
        assert_true(json_equal(st->network_policy, pol));
        state_free(st);
        st = NULL;
        assert_int_equal(manager_network_set_policy(f->m, "nb", bad, &err), -EINVAL);
        assert_int_equal(manager_network_policy(f->m, "nb", &got, &err), 0);
        assert_true(json_equal(got, pol));
        json_decref(got);
        /* only in proxy mode */
        o.name = "nf";
        o.network = NET_MODE_FULL;
        assert_int_equal(manager_create(f->m, &o, &err), 0);
        assert_int_equal(manager_network_set_policy(f->m, "nf", pol, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "proxy mode"));
        assert_int_equal(manager_network_set_policy(f->m, "nosuch", pol, &err), -ENOENT);
        /* create refuses an unknown mode and a bad policy, recording nothing */
        o.name = "nx";
        o.network = 7;
        assert_int_equal(manager_create(f->m, &o, &err), -EINVAL);
        o.network = NET_MODE_PROXY;
        o.network_policy = bad;
        assert_int_equal(manager_create(f->m, &o, &err), -EINVAL);
        assert_false(store_exists(f->m->store, "nx"));
        /* the log: none yet, then the run directory's network.jsonl */
        assert_int_equal(manager_network_log_open(f->m, "np", &fd, &err), 0);
        assert_int_equal(fd, -1);
        (void)snprintf(path, sizeof(path), "%s/run/np", f->dir);
        assert_int_equal(mkdir_p(path, 0700), 0);
        (void)snprintf(path, sizeof(path), "%s/run/np/network.jsonl", f->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(manager_network_log_open(f->m, "np", &fd, &err), 0);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(manager_network_log_open(f->m, "nosuch", &fd, &err), -ENOENT);
        json_decref(pol);
        json_decref(bad);
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
                        agent_detached_done(&g);
                        break;
                }
                agent_detached_done(&g);
                usleep(10000);
        }
        /* a new connection (as from another process) sees it */
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_int_equal(agent_detach_list(fd, &list, &n, &err), 0);
        close(fd);
        assert_int_equal(n, 1);
        assert_string_equal(list[0].id, d.id);
        assert_string_equal(list[0].argv[2], "echo detached-out; exit 4");
        agent_detached_done(&list[0]);
        free(list);
        buf_reset(&content);
        fd = manager_connect(f->m, "files", NULL, &err);
        assert_int_equal(agent_detach_logs(fd, d.id, false,
                                           (int (*)(void *, const void *, size_t))buf_append,
                                           &content, &err),
                         0);
        close(fd);
        assert_string_equal(content.data, "detached-out\n");
        agent_detached_done(&d);
}

static int collect(void *ctx, const void *data, size_t len)
{
        return buf_append(ctx, data, len);
}

/* Detached commands through the manager, as every front-end reaches them: ids are checked before
 * the sandbox is, and a kill is audited. */
/* The host's own writes into a sandbox's files (the proxy's trust files): a symlink anywhere on
 * the path fails the write instead of leading it elsewhere; one at the last component is
 * replaced, never written through. (The fake backend's agent works on this host's /tmp.) */
static void test_write_nofollow(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};
        char base[] = "/tmp/ak-test-nofollow-XXXXXX", p[256], q[256];
        struct stat sb;
        int fd;

        assert_non_null(mkdtemp(base));
        (void)snprintf(p, sizeof(p), "%s/target", base);
        assert_int_equal(mkdir(p, 0755), 0);
        (void)snprintf(q, sizeof(q), "%s/link", base);
        assert_int_equal(symlink(p, q), 0);
        create(f, "nofollow", "fake");
        assert_int_equal(manager_start(f->m, "nofollow", &err), 0);

        /* a planted directory link: refused, nothing written at its target */
        fd = manager_connect(f->m, "nofollow", NULL, &err);
        (void)snprintf(q, sizeof(q), "%s/link/ca.crt", base);
        assert_true(agent_file_write_nofollow(fd, q, 0644, "x", 1, &err) < 0);
        close(fd);
        (void)snprintf(q, sizeof(q), "%s/target/ca.crt", base);
        assert_int_equal(stat(q, &sb), -1);
        /* the same through parents to be made below the link: refused too */
        fd = manager_connect(f->m, "nofollow", NULL, &err);
        (void)snprintf(q, sizeof(q), "%s/link/new/ca.crt", base);
        assert_true(agent_file_write_nofollow(fd, q, 0644, "x", 1, &err) < 0);
        close(fd);
        (void)snprintf(q, sizeof(q), "%s/target/new", base);
        assert_int_equal(stat(q, &sb), -1);
        /* a link at the last component: replaced by the file, its target untouched */
        (void)snprintf(q, sizeof(q), "%s/last", base);
        (void)snprintf(p, sizeof(p), "%s/target/victim", base);
        assert_int_equal(symlink(p, q), 0);
        fd = manager_connect(f->m, "nofollow", NULL, &err);
        assert_int_equal(agent_file_write_nofollow(fd, q, 0644, "ca", 2, &err), 0);
        close(fd);
        assert_int_equal(lstat(q, &sb), 0);
        assert_true(S_ISREG(sb.st_mode) && sb.st_size == 2);
        assert_int_equal(stat(p, &sb), -1);
        /* no link: made, parents included */
        fd = manager_connect(f->m, "nofollow", NULL, &err);
        (void)snprintf(q, sizeof(q), "%s/real/sub/ca.crt", base);
        assert_int_equal(agent_file_write_nofollow(fd, q, 0644, "ok", 2, &err), 0);
        close(fd);
        assert_int_equal(stat(q, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0644);
        assert_int_equal(manager_stop(f->m, "nofollow", &err), 0);
        {
                char cmd[300];
                (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
                assert_int_equal(system(cmd), 0);
        }
}

/* The policy a start with grants registers: the bound hosts allowed on 443 right after the
 * last deny rule (a user's deny wins), the rest as it was; no grants: nothing. */
static void test_secrets_policy(void **state)
{
        struct ak_err err = {0};
        cleanup_json json_t *pol =
            json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "default", "deny", "rules",
                      "action", "allow", "host", "a.example", "action", "deny", "host",
                      "api.example.com", "action", "allow", "host", "b.example");
        cleanup_json json_t *grants = json_pack("[{s:s,s:[s,s]}]", "name", "K", "hosts",
                                                "api.example.com", "*.up.example.org");
        cleanup_json json_t *out = NULL, *none = NULL;
        json_t *r;

        (void)state;
        assert_int_equal(secrets_policy(pol, NULL, &none, &err), 0);
        assert_null(none);
        assert_int_equal(secrets_policy(pol, grants, &out, &err), 0);
        r = json_object_get(out, "rules");
        assert_int_equal(json_array_size(r), 5);
        assert_string_equal(json_string_value(json_object_get(json_array_get(r, 1), "action")),
                            "deny");
        assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "host")),
                            "api.example.com");
        assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "action")),
                            "allow");
        assert_int_equal(
            json_integer_value(json_array_get(json_object_get(json_array_get(r, 2), "ports"), 0)),
            443);
        assert_string_equal(json_string_value(json_object_get(json_array_get(r, 3), "host")),
                            "*.up.example.org");
        assert_string_equal(json_string_value(json_object_get(json_array_get(r, 4), "host")),
                            "b.example");
        /* no recorded policy: the built-in one, with the bound hosts */
        json_decref(out);
        out = NULL;
        assert_int_equal(secrets_policy(NULL, grants, &out, &err), 0);
        assert_true(json_array_size(json_object_get(out, "rules")) > 2);
}

static void test_detached_door(void **state)
{
        struct fixture *f = *state;
        static const char *const bad[] = {"../../x",   "DEADBEEF", "abc",
                                          "deadbeef0", "",         "dead/eef"};
        char *cmd[] = {"sh", "-c", "echo started; exec sleep 60", NULL};
        struct agent_exec_opts x = {.argv = cmd};
        cleanup_agent_detached struct agent_detached d = {0};
        cleanup_agent_detached struct agent_detached k = {0};
        cleanup_detached_list struct detached_list l = {0};
        cleanup_buf struct buf out = BUF_INIT;
        cleanup_free char *audit = NULL;
        cleanup_json json_t *entries = NULL;
        struct ak_err err = {0};
        json_t *last;

        create(f, "det", "fake");
        /* a stopped sandbox is refused; a bad id even before that */
        assert_int_equal(manager_detached_list(f->m, "det", &l, &err), -ESRCH);
        assert_int_equal(manager_detached_kill(f->m, "det", "../x", &k, &err), -EINVAL);
        assert_int_equal(manager_start(f->m, "det", &err), 0);
        assert_int_equal(manager_detach(f->m, "det", &x, &d, &err), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                struct agent_detached g = {0};
                assert_int_equal(manager_detached_get(f->m, "det", bad[i], &g, &err), -EINVAL);
                assert_string_equal(err.msg, "invalid detached command id");
                assert_int_equal(
                    manager_detached_logs(f->m, "det", bad[i], false, collect, &out, &err),
                    -EINVAL);
                assert_int_equal(manager_detached_kill(f->m, "det", bad[i], &g, &err), -EINVAL);
        }
        assert_int_equal(manager_detached_get(f->m, "det", "00000000", &k, &err), -ENOENT);
        assert_int_equal(manager_detached_list(f->m, "det", &l, &err), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.items[0].id, d.id);
        for (int tries = 0; tries < 200 && !out.len; tries++) {
                assert_int_equal(
                    manager_detached_logs(f->m, "det", d.id, false, collect, &out, &err), 0);
                if (!out.len)
                        usleep(10000);
        }
        assert_string_equal(out.data, "started\n");
        assert_int_equal(manager_detached_kill(f->m, "det", d.id, &k, &err), 0);
        assert_int_not_equal(k.status, AK_DETACH_RUNNING);
        /* the kill is in the audit log, with the command */
        assert_non_null(audit = audit_path());
        assert_int_equal(audit_read(audit, "det", 1, &entries, &err), 0);
        last = json_array_get(entries, 0);
        assert_string_equal(json_string_value(json_object_get(last, "type")), "command_killed");
        assert_string_equal(json_string_value(json_object_get(last, "id")), d.id);
        assert_string_equal(json_string_value(json_array_get(json_object_get(last, "command"), 2)),
                            "echo started; exec sleep 60");
}

/* Only a backend that keeps a warm pool has one to clear (the engines' own are not touched
 * here: they may be another test's). */
static void test_pool_clear_names(void **state)
{
        struct fixture *f = *state;
        struct ak_err err = {0};

        assert_int_equal(manager_pool_clear(f->m, "fake", NULL, NULL, &err), -EINVAL);
        assert_string_equal(err.msg, "backend 'fake' keeps no pool");
        assert_int_equal(manager_pool_clear(f->m, "nosuch", NULL, NULL, &err), -EINVAL);
        /* native keeps one since run --fast pools there (native-pool.c) */
        assert_true(backend_keeps_pool(backend_find("native")));
        assert_true(backend_keeps_pool(backend_find("docker")));
        assert_true(backend_keeps_pool(backend_find("podman")));
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
        state_list_done(&l);
}

/* ---- the seed's mod tests, ported (same scenarios, same expectations) ---- */

/* The seed's lifecycle_state(): a stopped sandbox with a 1 h TTL, idle since 2026-01-01. */
static void lifecycle_state(struct fixture *f, const char *name)
{
        struct sandbox_state *st = NULL;

        create(f, name, "fake");
        assert_int_equal(store_load(f->m->store, name, &st, NULL), 0);
        assert_int_equal(state_set_str(&st->created_at, "2026-01-01T00:00:00Z"), 0);
        assert_int_equal(state_set_str(&st->expires_at, "2026-01-01T01:00:00Z"), 0);
        st->has_ttl = true;
        st->ttl_seconds = 3600;
        assert_int_equal(state_set_str(&st->last_activity_at, "2026-01-01T00:00:00Z"), 0);
        assert_int_equal(store_save(f->m->store, st, false, NULL), 0);
        state_free(st);
}

static struct sandbox_state *load(struct fixture *f, const char *name)
{
        struct sandbox_state *st = NULL;
        assert_int_equal(store_load(f->m->store, name, &st, NULL), 0);
        return st;
}

/* Sets a field through a throw-away edit, as the seed's tests poke the map directly. */
static void poke(struct fixture *f, const char *name, void (*fn)(struct sandbox_state *, int64_t),
                 int64_t arg)
{
        struct sandbox_state *st = load(f, name);
        fn(st, arg);
        assert_int_equal(store_save(f->m->store, st, false, NULL), 0);
        state_free(st);
}

static void ago(char **field, int64_t secs)
{
        char ts[RFC3339_MAX];
        format_rfc3339(now_realtime_ns() - secs * NSEC_PER_SEC, ts);
        assert_int_equal(state_set_str(field, ts), 0);
}

static void active_ago(struct sandbox_state *st, int64_t secs)
{
        ago(&st->last_activity_at, secs);
}

static void archived_ago(struct sandbox_state *st, int64_t secs)
{
        ago(&st->archived_at, secs);
        assert_int_equal(state_set_str(&st->archived_reason, "stale"), 0);
}

static bool in(char **list, const char *name)
{
        for (char **p = list; p && *p; p++)
                if (!strcmp(*p, name))
                        return true;
        return false;
}

static void test_seed_recover_clears_archive_metadata(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st;

        lifecycle_state(f, "recover-test");
        st = load(f, "recover-test");
        assert_int_equal(state_set_str(&st->archived_at, "2026-01-01T02:00:00Z"), 0);
        assert_int_equal(state_set_str(&st->archived_reason, "manual archive"), 0);
        assert_int_equal(store_save(f->m->store, st, false, NULL), 0);
        state_free(st);
        assert_int_equal(manager_recover(f->m, "recover-test", NULL), 0);
        st = load(f, "recover-test");
        assert_null(st->archived_at);
        assert_null(st->archived_reason);
        assert_non_null(st->last_activity_at);
        assert_string_not_equal(st->last_activity_at, "2026-01-01T00:00:00Z");
        state_free(st);
}

static void test_seed_reconcile_dry_run_archive_does_not_mutate(void **state)
{
        struct fixture *f = *state;
        struct lifecycle_policy p = {.has_archive = true, .archive_after = 60};
        struct reconcile_result res;
        struct sandbox_state *st;
        char *before = NULL, *after = NULL;

        lifecycle_state(f, "archive-dry-run");
        poke(f, "archive-dry-run", active_ago, 2 * 3600);
        assert_int_equal(manager_set_lifecycle(f->m, "archive-dry-run", &p, NULL), 0);
        st = load(f, "archive-dry-run");
        assert_int_equal(state_format(st, &before), 0);
        state_free(st);
        assert_int_equal(manager_reconcile(f->m, true, &res, NULL), 0);
        assert_true(res.dry_run);
        assert_true(in(res.archived, "archive-dry-run"));
        assert_int_equal(res.n_actions, 1);
        assert_string_equal(reconcile_action_name(res.actions[0].action), "archive");
        assert_non_null(strstr(res.actions[0].reason, "(threshold=60s)"));
        reconcile_result_done(&res);
        st = load(f, "archive-dry-run");
        assert_null(st->archived_at);
        assert_int_equal(state_format(st, &after), 0);
        assert_string_equal(before, after); /* not a byte changed */
        state_free(st);
        free(before);
        free(after);
}

static void test_seed_reconcile_archives_when_threshold_hit(void **state)
{
        struct fixture *f = *state;
        struct lifecycle_policy p = {.has_archive = true, .archive_after = 0};
        struct reconcile_result res;
        struct sandbox_state *st;
        struct ak_err err = {0};

        lifecycle_state(f, "archive-now");
        poke(f, "archive-now", active_ago, 600);
        assert_int_equal(manager_set_lifecycle(f->m, "archive-now", &p, NULL), 0);
        assert_int_equal(manager_reconcile(f->m, false, &res, NULL), 0);
        assert_true(in(res.archived, "archive-now"));
        reconcile_result_done(&res);
        st = load(f, "archive-now");
        assert_non_null(st->archived_at);
        assert_non_null(st->archived_reason);
        assert_non_null(strstr(st->archived_reason, "inactive for 6"));
        state_free(st);
        /* and an archived sandbox refuses to start until recovered */
        assert_int_equal(manager_start(f->m, "archive-now", &err), -EPERM);
        assert_int_equal(manager_recover(f->m, "archive-now", NULL), 0);
        assert_int_equal(manager_start(f->m, "archive-now", &err), 0);
}

static void test_seed_reconcile_stops_running_sandbox(void **state)
{
        struct fixture *f = *state;
        struct lifecycle_policy p = {.has_stop = true, .stop_after = 10};
        struct reconcile_result res;
        struct sandbox_state *st;

        lifecycle_state(f, "stop-now");
        assert_int_equal(manager_start(f->m, "stop-now", NULL), 0);
        poke(f, "stop-now", active_ago, 600);
        assert_int_equal(manager_set_lifecycle(f->m, "stop-now", &p, NULL), 0);
        assert_int_equal(manager_reconcile(f->m, false, &res, NULL), 0);
        assert_true(in(res.stopped, "stop-now"));
        reconcile_result_done(&res);
        st = load(f, "stop-now");
        assert_false(manager_is_running(f->m, st));
        assert_null(st->archived_at); /* stopped, not archived */
        state_free(st);
        /* a stopped sandbox is not stopped again */
        assert_int_equal(manager_reconcile(f->m, false, &res, NULL), 0);
        assert_int_equal(res.n_actions, 0);
        reconcile_result_done(&res);
}

static void test_seed_reconcile_deletes_archived_sandbox(void **state)
{
        struct fixture *f = *state;
        struct lifecycle_policy p = {.has_delete = true, .delete_after = 60};
        struct reconcile_result res;

        lifecycle_state(f, "delete-now");
        poke(f, "delete-now", archived_ago, 2 * 3600);
        assert_int_equal(manager_set_lifecycle(f->m, "delete-now", &p, NULL), 0);
        assert_int_equal(manager_reconcile(f->m, false, &res, NULL), 0);
        assert_true(in(res.removed, "delete-now"));
        reconcile_result_done(&res);
        assert_false(store_exists(f->m->store, "delete-now"));
}

static void test_reconcile_orders_by_name_and_leaves_others(void **state)
{
        struct fixture *f = *state;
        struct lifecycle_policy p = {.has_archive = true, .archive_after = 60};
        struct reconcile_result res;

        lifecycle_state(f, "zeta");
        lifecycle_state(f, "alpha");
        lifecycle_state(f, "no-policy");
        lifecycle_state(f, "fresh");
        poke(f, "zeta", active_ago, 3600);
        poke(f, "alpha", active_ago, 3600);
        poke(f, "no-policy", active_ago, 3600);
        poke(f, "fresh", active_ago, 5);
        assert_int_equal(manager_set_lifecycle(f->m, "zeta", &p, NULL), 0);
        assert_int_equal(manager_set_lifecycle(f->m, "alpha", &p, NULL), 0);
        assert_int_equal(manager_set_lifecycle(f->m, "fresh", &p, NULL), 0);
        assert_int_equal(manager_reconcile(f->m, false, &res, NULL), 0);
        assert_int_equal(res.n_actions, 2);
        assert_string_equal(res.actions[0].sandbox, "alpha");
        assert_string_equal(res.actions[1].sandbox, "zeta");
        reconcile_result_done(&res);
}

static void test_seed_set_identity_metadata(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st;

        lifecycle_state(f, "id-test");
        assert_int_equal(manager_set_identity(f->m, "id-test", "fixed-uuid", "2020-01-01T00:00:00Z",
                                              "2020-01-01T01:00:00Z", NULL),
                         0);
        st = load(f, "id-test");
        assert_string_equal(st->uuid, "fixed-uuid");
        assert_string_equal(st->created_at, "2020-01-01T00:00:00Z");
        assert_string_equal(st->expires_at, "2020-01-01T01:00:00Z");
        state_free(st);
}

static void test_seed_set_labels_and_retrieve(void **state)
{
        struct fixture *f = *state;
        json_t *labels = json_pack("{s:s,s:s}", "env", "prod", "team", "ml");
        struct sandbox_state *st;

        create(f, "label-test", "fake");
        assert_int_equal(manager_set_labels(f->m, "label-test", labels, NULL), 0);
        json_decref(labels);
        st = load(f, "label-test");
        assert_string_equal(json_string_value(json_object_get(st->labels, "env")), "prod");
        assert_string_equal(json_string_value(json_object_get(st->labels, "team")), "ml");
        state_free(st);
        /* invalid labels change nothing */
        labels = json_pack("{s:i}", "env", 1);
        assert_int_equal(manager_set_labels(f->m, "label-test", labels, NULL), -EINVAL);
        json_decref(labels);
        st = load(f, "label-test");
        assert_int_equal(json_object_size(st->labels), 2);
        state_free(st);
}

static void test_seed_list_matching_labels(void **state)
{
        struct fixture *f = *state;
        const char *names[] = {"s1", "s2", "s3"}, *envs[] = {"prod", "staging", "prod"};
        json_t *filter;
        char **matched = NULL;

        for (int i = 0; i < 3; i++) {
                json_t *l = json_pack("{s:s}", "env", envs[i]);
                create(f, names[i], "fake");
                assert_int_equal(manager_set_labels(f->m, names[i], l, NULL), 0);
                json_decref(l);
        }
        filter = json_pack("{s:s}", "env", "prod");
        assert_int_equal(manager_list_matching_labels(f->m, filter, &matched, NULL), 0);
        assert_int_equal(strv_len(matched), 2);
        assert_string_equal(matched[0], "s1");
        assert_string_equal(matched[1], "s3");
        strv_free(matched);
        json_decref(filter);
        filter = json_pack("{s:s}", "env", "staging");
        assert_int_equal(manager_list_matching_labels(f->m, filter, &matched, NULL), 0);
        assert_int_equal(strv_len(matched), 1);
        assert_string_equal(matched[0], "s2");
        strv_free(matched);
        json_decref(filter);
        filter = json_pack("{s:s}", "team", "ml");
        assert_int_equal(manager_list_matching_labels(f->m, filter, &matched, NULL), 0);
        assert_int_equal(strv_len(matched), 0);
        strv_free(matched);
        json_decref(filter);
}

static void test_seed_set_description(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st;

        create(f, "desc-test", "fake");
        assert_int_equal(manager_set_description(f->m, "desc-test", "My sandbox", NULL), 0);
        st = load(f, "desc-test");
        assert_string_equal(st->description, "My sandbox");
        state_free(st);
        assert_int_equal(manager_set_description(f->m, "desc-test", NULL, NULL), 0);
        st = load(f, "desc-test");
        assert_null(st->description);
        state_free(st);
}

static void test_seed_labels_persist_across_reload(void **state)
{
        struct fixture *f = *state;
        json_t *labels = json_pack("{s:s}", "env", "prod");
        struct sandbox_state *st;

        create(f, "persist-test", "fake");
        assert_int_equal(manager_set_labels(f->m, "persist-test", labels, NULL), 0);
        assert_int_equal(manager_set_description(f->m, "persist-test", "Test sandbox", NULL), 0);
        json_decref(labels);
        /* a new manager reads the files again */
        manager_free(f->m);
        assert_int_equal(manager_open(&f->m, NULL), 0);
        st = load(f, "persist-test");
        assert_string_equal(json_string_value(json_object_get(st->labels, "env")), "prod");
        assert_string_equal(st->description, "Test sandbox");
        state_free(st);
}

static void test_template_metadata_is_trimmed(void **state)
{
        struct fixture *f = *state;
        struct sandbox_state *st;

        create(f, "tpl", "fake");
        assert_int_equal(manager_set_template(f->m, "tpl", "  python \n", "   ", NULL), 0);
        st = load(f, "tpl");
        assert_string_equal(st->created_from_template, "python");
        assert_null(st->template_help_text);
        state_free(st);
}

static void test_extend_ttl(void **state)
{
        struct fixture *f = *state;
        struct create_opts o = {.name = "ttl",
                                .backend = "fake",
                                .network = 0,
                                .mount_cwd = 0,
                                .has_ttl = true,
                                .ttl_seconds = 600};
        char expiry[RFC3339_MAX];
        struct sandbox_state *st;
        struct ak_err err = {0};
        int64_t exp, created;

        assert_int_equal(manager_create(f->m, &o, NULL), 0);
        assert_int_equal(manager_extend_ttl(f->m, "ttl", 86400, expiry, NULL), 0);
        st = load(f, "ttl");
        assert_string_equal(st->expires_at, expiry);
        assert_int_equal(parse_rfc3339(st->expires_at, &exp), 0);
        assert_int_equal(parse_rfc3339(st->created_at, &created), 0);
        /* the future expiry is the base; ttl_seconds is recomputed from created_at */
        assert_true(exp - created >= (600 + 86400 - 1) * NSEC_PER_SEC);
        assert_int_equal(st->ttl_seconds, (exp - created) / NSEC_PER_SEC);
        state_free(st);
        /* an expired sandbox is extended from now */
        lifecycle_state(f, "old");
        assert_int_equal(manager_extend_ttl(f->m, "old", 60, expiry, NULL), 0);
        assert_int_equal(parse_rfc3339(expiry, &exp), 0);
        assert_true(exp > now_realtime_ns() + 50 * NSEC_PER_SEC);
        /* no TTL: it gets one ending that long from now (upstream's behaviour) */
        create(f, "forever", "fake");
        assert_int_equal(manager_extend_ttl(f->m, "forever", 60, expiry, &err), 0);
        st = load(f, "forever");
        assert_non_null(st->expires_at);
        assert_string_equal(st->expires_at, expiry);
        assert_int_equal(parse_rfc3339(expiry, &exp), 0);
        assert_true(exp > now_realtime_ns() + 50 * NSEC_PER_SEC);
        assert_true(exp < now_realtime_ns() + 70 * NSEC_PER_SEC);
        assert_true(st->has_ttl);
        state_free(st);
        assert_int_equal(manager_extend_ttl(f->m, "nosuch", 60, expiry, NULL), -ENOENT);
}

static void test_gc_removes_only_expired_matches(void **state)
{
        struct fixture *f = *state;
        json_t *a = json_pack("{s:s}", "team", "a"), *b = json_pack("{s:s}", "team", "b");
        char **removed = NULL;

        lifecycle_state(f, "old-a"); /* expired in 2026-01-01 */
        lifecycle_state(f, "old-b");
        create(f, "live-a", "fake");
        assert_int_equal(manager_set_labels(f->m, "old-a", a, NULL), 0);
        assert_int_equal(manager_set_labels(f->m, "old-b", b, NULL), 0);
        assert_int_equal(manager_set_labels(f->m, "live-a", a, NULL), 0);
        /* Q12: a label filter narrows the expired ones; it never removes a live sandbox */
        assert_int_equal(manager_gc(f->m, a, true, &removed, NULL), 0);
        assert_int_equal(strv_len(removed), 1);
        assert_string_equal(removed[0], "old-a");
        strv_free(removed);
        assert_true(store_exists(f->m->store, "old-a")); /* dry run */
        assert_int_equal(manager_gc(f->m, a, false, &removed, NULL), 0);
        strv_free(removed);
        assert_false(store_exists(f->m->store, "old-a"));
        assert_true(store_exists(f->m->store, "old-b"));
        assert_true(store_exists(f->m->store, "live-a"));
        assert_int_equal(manager_expired(f->m, &removed, NULL), 0);
        assert_int_equal(strv_len(removed), 1);
        assert_string_equal(removed[0], "old-b");
        strv_free(removed);
        assert_int_equal(manager_gc(f->m, NULL, false, &removed, NULL), 0);
        strv_free(removed);
        assert_false(store_exists(f->m->store, "old-b"));
        assert_true(store_exists(f->m->store, "live-a"));
        json_decref(a);
        json_decref(b);
}

static void test_resize(void **state)
{
        struct fixture *f = *state;
        enum resize_how how;
        struct sandbox_state *st;
        struct ak_err err = {0};

        create(f, "rs", "fake");
        assert_int_equal(manager_resize(f->m, "rs", 2, 300, &how, NULL), 0);
        assert_int_equal(how, RESIZE_RECORDED);
        st = load(f, "rs");
        assert_int_equal(st->vcpus, 2);
        assert_int_equal(st->memory_mb, 300);
        state_free(st);
        assert_int_equal(manager_resize(f->m, "rs", 0, 8, &how, &err), -EINVAL);
        assert_int_equal(manager_resize(f->m, "rs", 0, 0, &how, &err), -EINVAL);
        /* the fake backend cannot resize in place: a restart keeps the identity */
        assert_int_equal(manager_start(f->m, "rs", NULL), 0);
        st = load(f, "rs");
        char *uuid = strdup(st->uuid), *created = strdup(st->created_at);
        state_free(st);
        assert_int_equal(manager_resize(f->m, "rs", 1, 400, &how, NULL), 0);
        assert_int_equal(how, RESIZE_RESTARTED);
        st = load(f, "rs");
        assert_string_equal(st->uuid, uuid);
        assert_string_equal(st->created_at, created);
        assert_int_equal(st->memory_mb, 400);
        assert_true(manager_is_running(f->m, st));
        state_free(st);
        free(uuid);
        free(created);
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
            cmocka_unit_test_setup_teardown(test_write_nofollow, setup, teardown),
            cmocka_unit_test(test_secrets_policy),
            cmocka_unit_test_setup_teardown(test_detached_door, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pool_clear_names, setup, teardown),
            cmocka_unit_test_setup_teardown(test_injected_start_failure, setup, teardown),
            cmocka_unit_test_setup_teardown(test_injected_stop_failure, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ephemeral, setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_recover_clears_archive_metadata, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_seed_reconcile_dry_run_archive_does_not_mutate,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_reconcile_archives_when_threshold_hit, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_seed_reconcile_stops_running_sandbox, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_seed_reconcile_deletes_archived_sandbox, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_reconcile_orders_by_name_and_leaves_others, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_seed_set_identity_metadata, setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_set_labels_and_retrieve, setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_list_matching_labels, setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_set_description, setup, teardown),
            cmocka_unit_test_setup_teardown(test_seed_labels_persist_across_reload, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_template_metadata_is_trimmed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_extend_ttl, setup, teardown),
            cmocka_unit_test_setup_teardown(test_gc_removes_only_expired_matches, setup, teardown),
            cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
            cmocka_unit_test_setup_teardown(test_network_policy, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
