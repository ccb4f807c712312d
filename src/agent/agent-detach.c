// SPDX-License-Identifier: Apache-2.0
/*
 * Detached commands (agent_serve_detach, agent_serve_detach_query): each runs under a
 * supervisor process of its own that copies its output to bounded logs and records its exit, in
 * the agent's private state directory (a tmpfs nothing in the sandbox can reach), so that any
 * later connection can list them, read their logs and stop them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-exec.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define DETACH_DIR "detached"

struct detach_rec {
        char id[9];
        int64_t pid, sup_pid, started_ns;
        bool has_exit;
        int64_t code;
        int status;
        char **argv;
};

static int read_small(int dirfd, const char *path, char *out, size_t len)
{
        cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, out, len - 1);
        if (n < 0)
                return -errno;
        out[n] = '\0';
        return 0;
}

static int detach_load(int ddir, const char *id, struct detach_rec *rec)
{
        cleanup_close int d = openat(ddir, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        char info[128], ex[64];
        cleanup_buf struct buf argvbuf = BUF_INIT;
        long long a = 0, b = 0, c = 0;
        struct ak_msg m;

        if (d < 0)
                return -errno;
        memset(rec, 0, sizeof(*rec));
        (void)snprintf(rec->id, sizeof(rec->id), "%s", id);
        if (read_small(d, "info", info, sizeof(info)) < 0 ||
            sscanf(info, "%lld %lld %lld", &a, &b, &c) != 3)
                return -ENOENT; /* not fully started yet */
        rec->pid = a;
        rec->sup_pid = b;
        rec->started_ns = c;
        if (read_small(d, "exit", ex, sizeof(ex)) == 0 && sscanf(ex, "%lld", &a) == 1) {
                rec->has_exit = true;
                rec->code = a;
                rec->status = a == 0 ? AK_DETACH_COMPLETED : AK_DETACH_FAILED;
        } else if (rec->sup_pid > 0 && kill((pid_t)rec->sup_pid, 0) == 0) {
                rec->status = AK_DETACH_RUNNING;
        } else {
                rec->status = AK_DETACH_FAILED; /* supervisor vanished without a result */
        }
        if (read_file_at(d, "argv", &argvbuf, AK_FRAME_MAX) == 0 && argvbuf.len >= AK_FRAME_HDR &&
            ak_frame_parse((const uint8_t *)argvbuf.data, argvbuf.len, &m) > 0 &&
            ak_msg_validate(&m) == 0)
                (void)ak_get_strv(&m, AK_T_ARG, AK_MAX_ARGS, &rec->argv, NULL);
        return 0;
}

static int queue_detach_info(struct buf *out, const struct detach_rec *rec)
{
        size_t st = ak_msg_begin(out, AK_DETACH_INFO);
        ak_put_str(out, AK_T_ID, rec->id);
        ak_put_u64(out, AK_T_PID, (uint64_t)rec->pid);
        ak_put_u64(out, AK_T_STATUS, (uint64_t)rec->status);
        if (rec->has_exit)
                ak_put_u64(out, AK_T_CODE, (uint64_t)rec->code);
        ak_put_u64(out, AK_T_STARTED, (uint64_t)rec->started_ns);
        for (char **a = rec->argv; a && *a; a++)
                ak_put_str(out, AK_T_ARG, *a);
        return ak_msg_end(out, st);
}

static int open_detach_dir(void)
{
        if (agent_cfg.state_fd < 0)
                return -ENOTSUP;
        if (mkdirat(agent_cfg.state_fd, DETACH_DIR, 0700) < 0 && errno != EEXIST)
                return -errno;
        return openat(agent_cfg.state_fd, DETACH_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Keeps the number of records bounded: drops the oldest finished ones. */
static int detach_make_room(int ddir)
{
        DIR *d;
        struct dirent *de;
        char oldest[9] = "";
        int64_t oldest_ns = INT64_MAX;
        int count = 0;
        int dfd = dup(ddir);

        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return -errno;
        }
        while ((de = readdir(d))) {
                struct detach_rec rec;
                if (!detached_id_is_valid(de->d_name))
                        continue;
                count++;
                if (detach_load(ddir, de->d_name, &rec) == 0) {
                        if (rec.status != AK_DETACH_RUNNING && rec.started_ns < oldest_ns) {
                                oldest_ns = rec.started_ns;
                                memcpy(oldest, rec.id, sizeof(oldest));
                        }
                        strv_free(rec.argv);
                }
        }
        closedir(d);
        if (count < AGENT_DETACH_MAX)
                return 0;
        if (!oldest[0])
                return -EAGAIN;
        return rm_rf_at(ddir, oldest);
}

/* Copies output to a log file, keeping at most AGENT_DETACH_LOG_MAX bytes. */
static void copy_capped(int *from, int to, uint64_t *written)
{
        char chunk[AK_CHUNK];
        ssize_t n = read(*from, chunk, sizeof(chunk));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                close(*from);
                *from = -1;
                return;
        }
        if (*written < AGENT_DETACH_LOG_MAX) {
                size_t keep = (size_t)MIN((uint64_t)n, AGENT_DETACH_LOG_MAX - *written);
                if (write_all(to, chunk, keep) == 0)
                        *written += keep;
        }
}

/* The supervisor: runs the command, copies its output, records its exit. Never returns. */
static _noreturn_ void supervise(const struct exec_req *req, const struct agent_user *u, char **env,
                                 int recdir, int report_fd)
{
        int out[2], err[2], devnull, outlog, errlog, status = 0, code, sig;
        int stdio[3];
        struct spawn_fail fail = {0, 0};
        uint64_t wout = 0, werr = 0;
        pid_t pid;
        char line[128];
        bool exited = false;
        int64_t drain_until = 0;

        (void)setsid(); /* own process group: killing the command never hits the supervisor */
        outlog = openat(recdir, "stdout", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        errlog = openat(recdir, "stderr", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        devnull = exec_open_devnull();
        if (outlog < 0 || errlog < 0 || devnull < 0 || pipe2(out, O_CLOEXEC) < 0 ||
            pipe2(err, O_CLOEXEC) < 0) {
                int e = errno;
                (void)write_all(report_fd, &e, sizeof(e));
                _exit(1);
        }
        stdio[0] = devnull;
        stdio[1] = out[1];
        stdio[2] = err[1];
        pid = exec_spawn(req, u, env, stdio, NULL, &fail);
        close(out[1]);
        close(err[1]);
        close(devnull);
        if (pid < 0) {
                char m[768];
                exec_spawn_error(m, sizeof(m), req, &fail);
                (void)write_all(errlog, m, strlen(m));
                code = fail.step == 1 && fail.err == ENOENT ? 127 : 126;
                (void)snprintf(line, sizeof(line), "0 %d %lld\n", (int)getpid(),
                               (long long)now_realtime_ns());
                (void)write_file_atomic_at(recdir, "info", line, strlen(line), 0600, false);
                (void)snprintf(line, sizeof(line), "%d 0\n", code);
                (void)write_file_atomic_at(recdir, "exit", line, strlen(line), 0600, false);
                (void)write_all(report_fd, &(int){0}, sizeof(int));
                _exit(0);
        }
        (void)snprintf(line, sizeof(line), "%d %d %lld\n", (int)pid, (int)getpid(),
                       (long long)now_realtime_ns());
        (void)write_file_atomic_at(recdir, "info", line, strlen(line), 0600, false);
        (void)write_all(report_fd, &(int){0}, sizeof(int));
        close(report_fd);

        for (;;) {
                struct pollfd p[2];
                int n = 0;
                if (out[0] >= 0)
                        p[n++] = (struct pollfd){out[0], POLLIN, 0};
                if (err[0] >= 0)
                        p[n++] = (struct pollfd){err[0], POLLIN, 0};
                if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
                        exited = true;
                        drain_until = now_monotonic_ns() + AGENT_DRAIN_GRACE_MS * NSEC_PER_MSEC;
                }
                if (exited && (n == 0 || now_monotonic_ns() >= drain_until))
                        break;
                if (n == 0) {
                        (void)waitpid(pid, &status, 0);
                        exited = true;
                        continue;
                }
                if (poll(p, (nfds_t)n, exited ? AGENT_DRAIN_GRACE_MS : 200) <= 0)
                        continue;
                for (int i = 0; i < n; i++) {
                        if (!p[i].revents)
                                continue;
                        if (p[i].fd == out[0])
                                copy_capped(&out[0], outlog, &wout);
                        else
                                copy_capped(&err[0], errlog, &werr);
                }
        }
        code = exec_exit_code(status, &sig);
        (void)snprintf(line, sizeof(line), "%d %d\n", code, sig);
        (void)write_file_atomic_at(recdir, "exit", line, strlen(line), 0600, false);
        _exit(0);
}

int agent_serve_detach(int fd, const struct ak_msg *msg)
{
        struct exec_req req;
        struct agent_user user;
        cleanup_strv char **env = NULL;
        cleanup_close int ddir = -1;
        cleanup_close int recdir = -1;
        cleanup_buf struct buf out = BUF_INIT;
        struct detach_rec rec;
        char id[9];
        int rep[2], got = -1, r;
        size_t st;
        pid_t sup;

        agent_handler_busy();
        r = exec_prepare(fd, msg, &req, &user, &env);
        if (r < 0)
                return r;
        ddir = open_detach_dir();
        if (ddir < 0) {
                exec_req_done(&req);
                return agent_send_error(fd, -ddir, "detached commands are unavailable: %s",
                                        strerror(-ddir));
        }
        r = detach_make_room(ddir);
        if (r < 0) {
                exec_req_done(&req);
                return agent_send_error(fd, -r, "too many running detached commands (limit %d)",
                                        AGENT_DETACH_MAX);
        }
        do
                random_hex(id, 4);
        while (mkdirat(ddir, id, 0700) < 0 && errno == EEXIST);
        recdir = openat(ddir, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (recdir < 0) {
                exec_req_done(&req);
                return agent_send_error(fd, errno, "cannot record detached command");
        }
        st = ak_msg_begin(&out, AK_HELLO);
        for (char **a = req.argv; *a; a++)
                ak_put_str(&out, AK_T_ARG, *a);
        if (ak_msg_end(&out, st) < 0 ||
            write_file_atomic_at(recdir, "argv", out.data, out.len, 0600, false) < 0) {
                exec_req_done(&req);
                return agent_send_error(fd, EIO, "cannot record detached command");
        }
        buf_reset(&out);

        if (pipe2(rep, O_CLOEXEC) < 0) {
                exec_req_done(&req);
                return agent_send_error(fd, errno, "pipe: %s", strerror(errno));
        }
        sup = fork();
        if (sup < 0) {
                close(rep[0]);
                close(rep[1]);
                exec_req_done(&req);
                return agent_send_error(fd, errno, "fork: %s", strerror(errno));
        }
        if (sup == 0) {
                close(rep[0]);
                close(fd);
                supervise(&req, &user, env, recdir, rep[1]);
        }
        close(rep[1]);
        if (read(rep[0], &got, sizeof(got)) != (ssize_t)sizeof(got))
                got = EIO;
        close(rep[0]);
        exec_req_done(&req);
        if (got != 0)
                return agent_send_error(fd, got, "cannot start detached command: %s",
                                        strerror(got));
        r = detach_load(ddir, id, &rec);
        if (r < 0)
                return agent_send_error(fd, -r, "detached command vanished");
        queue_detach_info(&out, &rec);
        strv_free(rec.argv);
        return ak_write_buf(fd, &out);
}

static int cmp_started(const void *a, const void *b)
{
        const struct detach_rec *x = a, *y = b;
        return (x->started_ns > y->started_ns) - (x->started_ns < y->started_ns);
}

static int detach_list(int fd, int ddir)
{
        struct detach_rec recs[AGENT_DETACH_MAX + 8];
        size_t n = 0;
        cleanup_buf struct buf out = BUF_INIT;
        int dupfd = dup(ddir);
        DIR *d;
        struct dirent *de;

        if (dupfd < 0)
                return agent_send_error(fd, errno, "dup: %s", strerror(errno));
        d = fdopendir(dupfd);
        if (!d) {
                close(dupfd);
                return agent_send_error(fd, errno, "cannot list detached commands");
        }
        while ((de = readdir(d)) && n < ARRAY_SIZE(recs))
                if (detached_id_is_valid(de->d_name) &&
                    detach_load(ddir, de->d_name, &recs[n]) == 0)
                        n++;
        closedir(d);
        qsort(recs, n, sizeof(recs[0]), cmp_started);
        for (size_t i = 0; i < n; i++) {
                queue_detach_info(&out, &recs[i]);
                strv_free(recs[i].argv);
        }
        ak_put_frame(&out, AK_END, NULL, 0);
        return ak_write_buf(fd, &out);
}

static int stream_file(int fd, int dirfd, const char *path)
{
        cleanup_close int f = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        char chunk[AK_CHUNK];

        if (f < 0 && errno != ENOENT)
                return agent_send_error(fd, errno, "cannot read log: %s", strerror(errno));
        for (;;) {
                ssize_t n;
                int r;
                if (f < 0)
                        break;
                n = read(f, chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                r = ak_write_frame(fd, AK_DATA, chunk, (size_t)n);
                if (r < 0)
                        return r;
        }
        return ak_write_frame(fd, AK_END, NULL, 0);
}

int agent_serve_detach_query(int fd, const struct ak_msg *msg)
{
        cleanup_close int ddir = open_detach_dir();
        cleanup_free char *id = NULL;
        cleanup_buf struct buf out = BUF_INIT;
        struct detach_rec rec;
        uint64_t v = 0;
        int r;

        if (ddir < 0)
                return agent_send_error(fd, -ddir, "detached commands are unavailable");
        if (msg->type == AK_DETACH_LIST)
                return detach_list(fd, ddir);
        if (ak_get_str(msg, AK_T_ID, &id) < 0 || !detached_id_is_valid(id))
                return agent_send_error(fd, EINVAL, "invalid detached command id");
        r = detach_load(ddir, id, &rec);
        if (r < 0)
                return agent_send_error(fd, ENOENT, "detached command '%s' not found", id);

        switch (msg->type) {
        case AK_DETACH_LOGS: {
                cleanup_close int recdir = openat(ddir, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                strv_free(rec.argv);
                if (ak_get_u64(msg, AK_T_STREAM, &v) < 0)
                        v = AK_STREAM_STDOUT;
                if (recdir < 0)
                        return agent_send_error(fd, errno, "detached command '%s' not found", id);
                return stream_file(fd, recdir, v == AK_STREAM_STDERR ? "stderr" : "stdout");
        }
        case AK_DETACH_KILL:
                if (rec.status == AK_DETACH_RUNNING && rec.pid > 0) {
                        int64_t until;
                        int sig = ak_get_u64(msg, AK_T_SIGNAL, &v) == 0 && v > 0 && v < NSIG
                                      ? (int)v
                                      : SIGTERM;
                        (void)kill(-(pid_t)rec.pid, sig);
                        until = now_monotonic_ns() + AGENT_STOP_GRACE_MS * NSEC_PER_MSEC;
                        for (int escalated = 0;;) {
                                strv_free(rec.argv);
                                if (detach_load(ddir, id, &rec) < 0)
                                        break;
                                /* done once the command's end is recorded and nothing of its
                                 * group is left: a member that outlives the shell (its `sleep`)
                                 * dies of the same signal an instant later and PID 1 reaps it;
                                 * one that ignores the signal gets SIGKILL after the grace */
                                if (rec.status != AK_DETACH_RUNNING &&
                                    kill(-(pid_t)rec.pid, 0) < 0 && errno == ESRCH)
                                        break;
                                if (now_monotonic_ns() >= until) {
                                        if (escalated)
                                                break;
                                        (void)kill(-(pid_t)rec.pid, SIGKILL);
                                        until = now_monotonic_ns() + 1000 * NSEC_PER_MSEC;
                                        escalated = 1;
                                }
                                usleep(5000);
                        }
                }
                break;
        default:
                break;
        }
        queue_detach_info(&out, &rec);
        strv_free(rec.argv);
        return ak_write_buf(fd, &out);
}
