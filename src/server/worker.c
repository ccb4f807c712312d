// SPDX-License-Identifier: Apache-2.0
/* Forked workers of the API (see worker.h). A worker keeps none of the server's descriptors
 * (client connections, listening sockets) beyond its pipe back. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/fd-util.h"

static rlim_t child_nofile = RLIM_INFINITY; /* RLIM_INFINITY: leave the limit alone */

void worker_set_child_nofile(rlim_t soft)
{
        child_nofile = soft;
}

struct frame_head {
        uint8_t type;
        uint8_t pad[3];
        uint32_t len;
        int32_t code, signal, timed_out;
};

/* In the worker: a clean signal state, death with the server, a manager of its own. */
static struct manager *worker_setup(pid_t server)
{
        struct manager *m = NULL;
        sigset_t none;

        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)signal(SIGPIPE, SIG_IGN);
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != server)
                _exit(1); /* the server died before the line above */
        if (manager_open(&m, NULL) < 0)
                return NULL;
        return m;
}

static void send_frame(int fd, uint8_t type, const void *data, size_t len, int code, int sig,
                       int timed_out)
{
        struct frame_head h = {.type = type,
                               .len = (uint32_t)len,
                               .code = code,
                               .signal = sig,
                               .timed_out = timed_out};
        if (write_all(fd, &h, sizeof(h)) < 0 || (len && write_all(fd, data, len) < 0))
                _exit(1); /* the server stopped listening: nothing left to do */
}

static void send_error(int fd, int r, const struct ak_err *err)
{
        const char *msg = ak_err_msg(err);
        send_frame(fd, WORKER_ERROR, msg, strlen(msg), -r, 0, 0);
}

static pid_t fork_worker(int *ret_fd, struct ak_err *err)
{
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return ak_err_errno(err, errno, "pipe");
        pid = fork();
        if (pid < 0) {
                int e = errno;
                close(p[0]);
                close(p[1]);
                return ak_err_errno(err, e, "fork");
        }
        if (pid == 0) {
                close(p[0]);
                /* a client's connection must end when the server closes it, not when some
                 * worker that happened to fork meanwhile exits */
                (void)close_all_fds_except(3, &p[1], 1);
                if (child_nofile != RLIM_INFINITY) {
                        struct rlimit rl;
                        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && child_nofile <= rl.rlim_max) {
                                rl.rlim_cur = child_nofile;
                                (void)setrlimit(RLIMIT_NOFILE, &rl);
                        }
                }
                *ret_fd = p[1];
                return 0;
        }
        close(p[1]);
        *ret_fd = p[0];
        return pid;
}

static void reap(pid_t pid)
{
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

int worker_call(int (*fn)(struct manager *m, void *ctx, struct ak_err *err), void *ctx,
                struct ak_err *err)
{
        pid_t server = getpid();
        struct frame_head h;
        char msg[AK_ERR_MSG_MAX];
        int fd = -1, r;
        pid_t pid = fork_worker(&fd, err);

        if (pid < 0)
                return pid;
        if (pid == 0) {
                struct ak_err e = {0};
                struct manager *m = worker_setup(server);
                r = m ? fn(m, ctx, &e) : ak_err_oom(&e);
                if (r < 0)
                        send_error(fd, r, &e);
                else
                        send_frame(fd, WORKER_EXIT, NULL, 0, r, 0, 0);
                _exit(0);
        }
        r = read_exact(fd, &h, sizeof(h));
        if (r < 0) {
                close(fd);
                reap(pid);
                return ak_err_set(err, EIO, "the worker died");
        }
        if (h.type == WORKER_ERROR) {
                size_t n = h.len < sizeof(msg) - 1 ? h.len : sizeof(msg) - 1;
                r = read_exact(fd, msg, n);
                msg[r < 0 ? 0 : n] = '\0';
                r = ak_err_set(err, h.code > 0 ? h.code : EIO, "%s", msg);
        } else {
                r = h.code;
        }
        close(fd);
        reap(pid);
        return r;
}

/* The worker's side of a run. */
struct run_sink {
        int fd;
};

static int forward_output(void *ctx, int stream, const void *data, size_t len)
{
        const struct run_sink *s = ctx;
        const char *p = data;

        while (len) {
                size_t n = len > WORKER_CHUNK_MAX ? WORKER_CHUNK_MAX : len;
                send_frame(s->fd, stream == 2 ? WORKER_STDERR : WORKER_STDOUT, p, n, 0, 0, 0);
                p += n;
                len -= n;
        }
        return 0;
}

int worker_run_start(const struct create_opts *o, const struct agent_exec_opts *x,
                     struct worker_run *ret, struct ak_err *err)
{
        pid_t server = getpid();
        int fd = -1;
        pid_t pid = fork_worker(&fd, err);

        ret->pid = -1;
        ret->fd = -1;
        if (pid < 0)
                return pid;
        if (pid == 0) {
                struct ak_err e = {0};
                struct run_sink sink = {fd};
                struct agent_io io = {.stdin_fd = -1,
                                      .signal_fd = -1,
                                      .tty_fd = -1,
                                      .on_output = forward_output,
                                      .ctx = &sink};
                struct agent_exit ex = {0};
                struct manager *m = worker_setup(server);
                int r;
                if (!m) {
                        send_error(fd, ak_err_oom(&e), &e);
                        _exit(1);
                }
                manager_sweep(m);
                r = manager_run_ephemeral(m, o, x, &io, &ex, &e);
                if (r < 0)
                        send_error(fd, r, &e);
                else
                        send_frame(fd, WORKER_EXIT, NULL, 0, ex.code, ex.signal, ex.timed_out);
                _exit(0);
        }
        ret->pid = pid;
        ret->fd = fd;
        return 0;
}

int worker_run_next(struct worker_run *w, int timeout_ms, struct worker_event *ev)
{
        struct pollfd p = {w->fd, POLLIN, 0};
        struct frame_head h;
        int r;

        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (r == 0)
                return 0;
        r = read_exact(w->fd, &h, sizeof(h));
        if (r < 0)
                return -EPIPE;
        if (h.len > WORKER_CHUNK_MAX)
                return -EBADMSG;
        if (h.len && read_exact(w->fd, ev->data, h.len) < 0)
                return -EPIPE;
        ev->data[h.len] = '\0';
        ev->len = h.len;
        ev->type = (enum worker_event_type)h.type;
        ev->code = h.code;
        ev->signal = h.signal;
        ev->timed_out = h.timed_out;
        return 1;
}

void worker_run_end(struct worker_run *w)
{
        if (w->pid > 0) {
                int status;
                pid_t r = waitpid(w->pid, &status, WNOHANG);
                if (r == 0) {
                        /* still running: the client left; the sandbox dies with its worker */
                        (void)kill(w->pid, SIGKILL);
                        reap(w->pid);
                }
                w->pid = -1;
        }
        if (w->fd >= 0) {
                close(w->fd);
                w->fd = -1;
        }
}
