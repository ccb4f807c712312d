// SPDX-License-Identifier: Apache-2.0
/*
 * `fake`: the real agent as a plain child process with no isolation at all. It exists only in
 * the unit-test build (never in the installed binary) so the core can be tested end to end
 * without privileges. It must never be reachable from a production build.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backends.h"
#include "core/backend.h"
#include "core/paths.h"
#include "proc-util.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"

struct fake_session {
        pid_t pid;
        int sync_fd;
        char state_dir[PATH_MAX];
};

static int spawn_agent(int chan, int sync_fd, const char *state_dir, bool listen_mode, pid_t *ret,
                       struct ak_err *err)
{
        char agent[PATH_MAX];
        pid_t pid;
        int r = paths_agent_binary(agent, sizeof(agent), err);

        if (r < 0)
                return r;
        pid = fork();
        if (pid < 0)
                return ak_err_errno(err, errno, "fork");
        if (pid == 0) {
                int keep = 4;
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                (void)setsid();
                /* the agent's stdio is nobody's: it must not hold a caller's pipe open */
                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                        _exit(127);
                if (dup2(chan, 3) < 0 || (sync_fd >= 0 && dup2(sync_fd, 4) < 0))
                        _exit(127);
                (void)close_all_fds_except(sync_fd >= 0 ? 5 : 4, &keep, 0);
                execl(agent, "agentkernel-agent", listen_mode ? "--listen-fd" : "--conn-fd", "3",
                      "--state-dir", state_dir, sync_fd >= 0 ? "--sync-fd" : NULL, "4",
                      (char *)NULL);
                _exit(127);
        }
        *ret = pid;
        return 0;
}

static void record_path(const struct sandbox_ref *ref, char *out, size_t len)
{
        (void)snprintf(out, len, "%s/fake.pid", ref->run_dir);
}

static int read_record(const struct sandbox_ref *ref, pid_t *pid, uint64_t *start)
{
        char p[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        long long a, c;

        record_path(ref, p, sizeof(p));
        if (read_file_at(AT_FDCWD, p, &b, 128) < 0 || !b.data ||
            sscanf(b.data, "%lld %lld", &a, &c) != 2)
                return -ENOENT;
        *pid = (pid_t)a;
        *start = (uint64_t)c;
        return 0;
}

static int fake_start(const struct backend_config *cfg, struct backend_session *ret_session,
                      struct ak_err *err)
{
        char path[PATH_MAX];
        pid_t pid;
        uint64_t start = 0;
        int r;

        if (cfg->ephemeral) {
                struct fake_session *s = calloc(1, sizeof(*s));
                int sp[2], sync[2];
                char rnd[17];
                if (!s)
                        return ak_err_oom(err);
                random_hex(rnd, 8);
                (void)snprintf(s->state_dir, sizeof(s->state_dir), "/tmp/ak-fake-%s", rnd);
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
                    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0) {
                        free(s);
                        return ak_err_errno(err, errno, "socketpair");
                }
                r = spawn_agent(sp[1], sync[1], s->state_dir, false, &s->pid, err);
                close(sp[1]);
                close(sync[1]);
                if (r < 0) {
                        close(sp[0]);
                        close(sync[0]);
                        free(s);
                        return r;
                }
                s->sync_fd = sync[0];
                ret_session->chan_fd = sp[0];
                ret_session->priv = s;
                return 0;
        }
        r = mkdir_p(cfg->ref.run_dir, 0700);
        if (r < 0)
                return ak_err_errno(err, r, "mkdir '%s'", cfg->ref.run_dir);
        (void)snprintf(path, sizeof(path), "%s/agent.sock", cfg->ref.run_dir);
        {
                cleanup_close int l = unix_listen(path, 64, err);
                char state[PATH_MAX], rec[64];
                if (l < 0)
                        return l;
                (void)snprintf(state, sizeof(state), "%s/state", cfg->ref.run_dir);
                r = spawn_agent(l, -1, state, true, &pid, err);
                if (r < 0)
                        return r;
                (void)proc_start_time(pid, &start);
                (void)snprintf(rec, sizeof(rec), "%d %llu\n", (int)pid, (unsigned long long)start);
                record_path(&cfg->ref, path, sizeof(path));
                r = write_file_atomic_at(AT_FDCWD, path, rec, strlen(rec), 0600, false);
                if (r < 0) {
                        (void)kill(pid, SIGKILL);
                        (void)waitpid(pid, NULL, 0);
                        return ak_err_errno(err, r, "recording the sandbox");
                }
        }
        return 0;
}

static int fake_finish(struct backend_session *bs)
{
        struct fake_session *s = bs->priv;

        if (!s)
                return 0;
        close(s->sync_fd); /* the agent stops its handlers and exits */
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        (void)rm_rf_at(AT_FDCWD, s->state_dir);
        free(s);
        bs->priv = NULL;
        return 0;
}

static int fake_status(const struct sandbox_ref *ref, struct backend_status *ret)
{
        pid_t pid;
        uint64_t start;

        /* the fake agent is a plain child process: its start time is all there is to check */
        if (read_record(ref, &pid, &start) == 0 &&
            proc_verify(&(struct proc_ident){.pid = pid, .start_time = start})) {
                ret->running = true;
                ret->pid = pid;
        }
        return 0;
}

static int fake_cleanup(const struct sandbox_ref *ref, struct ak_err *err)
{
        int r = ref->run_dir ? rm_rf_at(AT_FDCWD, ref->run_dir) : 0;
        return r < 0 ? ak_err_errno(err, r, "remove run dir") : 0;
}

static int fake_stop(const struct sandbox_ref *ref, struct ak_err *err)
{
        pid_t pid;
        uint64_t start;

        if (read_record(ref, &pid, &start) == 0)
                proc_terminate(&(struct proc_ident){.pid = pid, .start_time = start}, 2000);
        /* the agent was our child if this process started it */
        (void)waitpid(-1, NULL, WNOHANG);
        return fake_cleanup(ref, err);
}

static int fake_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        char path[PATH_MAX];
        (void)snprintf(path, sizeof(path), "%s/agent.sock", ref->run_dir);
        return unix_connect(path, err);
}

const struct backend_ops fake_backend_ops = {
    .name = "fake",
    .description = "TEST ONLY: the agent as a plain process, no isolation",
    .start = fake_start,
    .finish = fake_finish,
    .stop = fake_stop,
    .cleanup = fake_cleanup,
    .status = fake_status,
    .connect = fake_connect,
};
