// SPDX-License-Identifier: Apache-2.0
/*
 * Interactive commands (agent_serve_exec): pipes or a PTY, streamed both ways over the
 * connection, the exit status reported at the end. Runs in a forked handler process. Must never
 * block on the host or on the command in a way that can deadlock the other side: output is
 * buffered up to a high-water mark, then the command is throttled, never the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent-exec.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/path-walk.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define OUT_HIGH_WATER (1u << 20) /* stop reading the command's output above this */
#define STDIN_HIGH_WATER (1u << 20)

static int queue_exit(struct ak_conn *c, int code, int sig, bool timed_out)
{
        size_t st = ak_msg_begin(&c->out, AK_EXIT);
        ak_put_u64(&c->out, AK_T_CODE, (uint64_t)(int64_t)code);
        ak_put_u64(&c->out, AK_T_SIGNAL, (uint64_t)sig);
        if (timed_out)
                ak_put_u64(&c->out, AK_T_FLAGS, AK_EXIT_TIMED_OUT);
        return ak_msg_end(&c->out, st);
}

/* Blocking flush of everything queued, then return. */
static int conn_drain_out(struct ak_conn *c)
{
        (void)fd_set_nonblock(c->fd, false);
        return ak_conn_flush(c);
}

static int open_pty(int *ret_master, char *slave, size_t slave_len, uint64_t rows, uint64_t cols)
{
        /* not posix_openpt: /dev/ptmx is the sandbox's to replace (its /dev is writable), and a
         * link from there into /proc would hand us one of our own fds; /dev/pts is a mount
         * point nothing in the sandbox can replace */
        int m = openat_nomagic(AT_FDCWD, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, 0);
        struct winsize ws = {0};

        if (m < 0)
                m = openat_nomagic(AT_FDCWD, "/dev/ptmx", O_RDWR | O_NOCTTY, 0);
        if (m < 0)
                return m;
        if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, slave_len) != 0) {
                int e = errno;
                close(m);
                return -e;
        }
        ws.ws_row = (unsigned short)(rows ? MIN(rows, 1000u) : 24);
        ws.ws_col = (unsigned short)(cols ? MIN(cols, 1000u) : 80);
        (void)ioctl(m, TIOCSWINSZ, &ws);
        *ret_master = m;
        return 0;
}

struct session {
        struct ak_conn conn;
        pid_t pid;
        int in_fd;          /* command's stdin (pipe write end or pty master), -1 when closed */
        int out_fd, err_fd; /* command's output (pty master for out_fd in tty mode) */
        bool tty;
        struct buf pending_in; /* stdin not yet written to the command */
        bool stdin_eof;        /* host sent STDIN_EOF */
        bool exited;
        int status;
        int sigfd;
        int64_t deadline_ns;    /* timeout, 0 = none */
        int64_t drain_until_ns; /* after exit: stop waiting for output at this time */
        bool timed_out;
        size_t read_size; /* next output read: grows while reads come back full */
};

static void session_kill(struct session *s, int sig)
{
        if (s->pid > 0 && !s->exited)
                (void)kill(-s->pid, sig);
}

static void session_close_in(struct session *s)
{
        if (s->in_fd >= 0 && !s->tty)
                close(s->in_fd);
        s->in_fd = -1;
}

/* Handles one message from the host during a session. Returns <0 to abort the session. */
static int session_handle_msg(struct session *s, const struct ak_msg *m)
{
        uint64_t v, rows, cols;

        switch (m->type) {
        case AK_STDIN:
                if (s->in_fd >= 0 && !s->stdin_eof)
                        return buf_append(&s->pending_in, m->payload, m->len);
                return 0;
        case AK_STDIN_EOF:
                s->stdin_eof = true;
                if (s->pending_in.len == 0) {
                        if (s->tty && s->in_fd >= 0) {
                                /* A terminal has no EOF of its own: send the EOF character. */
                                char eof = 4;
                                (void)write_all(s->in_fd, &eof, 1);
                        } else {
                                session_close_in(s);
                        }
                }
                return 0;
        case AK_SIGNAL:
                if (ak_get_u64(m, AK_T_SIGNAL, &v) == 0 && v >= 1 && v < (uint64_t)NSIG)
                        session_kill(s, (int)v);
                return 0;
        case AK_RESIZE:
                if (s->tty && ak_get_u64(m, AK_T_ROWS, &rows) == 0 &&
                    ak_get_u64(m, AK_T_COLS, &cols) == 0) {
                        struct winsize ws = {.ws_row = (unsigned short)MIN(rows, 1000u),
                                             .ws_col = (unsigned short)MIN(cols, 1000u)};
                        (void)ioctl(s->out_fd, TIOCSWINSZ, &ws);
                }
                return 0;
        default:
                return 0; /* unknown frames are ignored for forward compatibility */
        }
}

/* Output is read straight into the connection's buffer, as much as the last read suggests: a
 * command that writes little keeps the buffer small (a 64 KiB read each time costs the handler
 * a mapping and an unmapping per command, with a TLB flush across CPUs); one that writes a lot
 * soon reads whole chunks. revents without POLLIN is the end: nothing left to read. */
static int read_output(struct session *s, int *fdp, uint16_t type, short revents)
{
        ssize_t n = 0;

        if (revents & POLLIN) {
                n = ak_put_frame_from_fd(&s->conn.out, type, *fdp, s->read_size);
                if (n == (ssize_t)s->read_size && s->read_size < AK_CHUNK)
                        s->read_size = MIN(s->read_size * 2, (size_t)AK_CHUNK);
        }
        if (n == -EAGAIN)
                return 0;
        if (n == -ENOMEM)
                return -ENOMEM;
        if (n <= 0) { /* EOF, or EIO on a pty whose last slave closed */
                if (s->tty)
                        s->in_fd = -1; /* the pty master is both ends */
                close(*fdp);
                *fdp = -1;
        }
        return 0;
}

static void reap(struct session *s)
{
        struct signalfd_siginfo si;
        int status;

        while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                ;
        for (;;) {
                pid_t p = waitpid(-1, &status, WNOHANG);
                if (p <= 0)
                        break;
                if (p == s->pid) {
                        s->exited = true;
                        s->status = status;
                        s->drain_until_ns =
                            now_monotonic_ns() + AGENT_DRAIN_GRACE_MS * NSEC_PER_MSEC;
                }
        }
}

static int session_run(struct session *s)
{
        for (;;) {
                struct pollfd p[5];
                int n = 0, i_conn, i_out = -1, i_err = -1, i_in = -1, i_sig;
                int64_t now = now_monotonic_ns();
                int timeout = -1;
                int r;

                if (s->exited && ((s->out_fd < 0 && s->err_fd < 0) || now >= s->drain_until_ns))
                        break;
                if (s->deadline_ns && !s->exited && now >= s->deadline_ns) {
                        s->timed_out = true;
                        session_kill(s, SIGKILL);
                        s->deadline_ns = 0;
                }
                if (s->exited)
                        timeout = (int)((s->drain_until_ns - now) / NSEC_PER_MSEC) + 1;
                else if (s->deadline_ns)
                        timeout = (int)((s->deadline_ns - now) / NSEC_PER_MSEC) + 1;

                i_conn = n;
                p[n++] = (struct pollfd){
                    s->conn.fd,
                    (short)((s->pending_in.len < STDIN_HIGH_WATER && !s->conn.eof ? POLLIN : 0) |
                            (s->conn.out.len ? POLLOUT : 0)),
                    0};
                if (s->out_fd >= 0 && s->conn.out.len < OUT_HIGH_WATER) {
                        i_out = n;
                        p[n++] = (struct pollfd){s->out_fd, POLLIN, 0};
                }
                if (s->err_fd >= 0 && s->conn.out.len < OUT_HIGH_WATER) {
                        i_err = n;
                        p[n++] = (struct pollfd){s->err_fd, POLLIN, 0};
                }
                if (s->in_fd >= 0 && s->pending_in.len && !s->tty) {
                        i_in = n;
                        p[n++] = (struct pollfd){s->in_fd, POLLOUT, 0};
                }
                i_sig = n;
                p[n++] = (struct pollfd){s->sigfd, POLLIN, 0};

                r = poll(p, (nfds_t)n, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[i_sig].revents)
                        reap(s);
                if (p[i_conn].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t got = ak_conn_fill(&s->conn);
                        struct ak_msg m;
                        if (got < 0 || (p[i_conn].revents & POLLERR)) {
                                session_kill(s, SIGKILL);
                                return -ECONNRESET;
                        }
                        while ((r = ak_conn_next(&s->conn, &m)) > 0)
                                if (session_handle_msg(s, &m) < 0)
                                        return -ENOMEM;
                        if (r < 0) {
                                session_kill(s, SIGKILL);
                                return r;
                        }
                        if (s->conn.eof) {
                                /* The host went away: nobody will read the output. */
                                session_kill(s, SIGKILL);
                                return -ECONNRESET;
                        }
                }
                if (p[i_conn].revents & POLLOUT) {
                        r = ak_conn_flush(&s->conn);
                        if (r < 0) {
                                session_kill(s, SIGKILL);
                                return r;
                        }
                }
                if (s->tty && s->in_fd >= 0 && s->pending_in.len) {
                        /* The pty master is shared with output; write stdin opportunistically. */
                        ssize_t w = write(s->in_fd, s->pending_in.data, s->pending_in.len);
                        if (w > 0)
                                buf_consume(&s->pending_in, (size_t)w);
                }
                if (i_in >= 0 && (p[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t w = write(s->in_fd, s->pending_in.data, s->pending_in.len);
                        if (w > 0)
                                buf_consume(&s->pending_in, (size_t)w);
                        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                                buf_reset(&s->pending_in); /* command closed its stdin */
                                session_close_in(s);
                        }
                        if (s->stdin_eof && s->pending_in.len == 0)
                                session_close_in(s);
                }
                if (i_out >= 0 && p[i_out].revents &&
                    read_output(s, &s->out_fd, AK_STDOUT, p[i_out].revents) < 0)
                        return -ENOMEM;
                if (i_err >= 0 && p[i_err].revents &&
                    read_output(s, &s->err_fd, AK_STDERR, p[i_err].revents) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* SIGCHLD through a signalfd while a command runs; undone by end_sigchld (handlers serve many
 * connections). */
static int setup_sigchld(void)
{
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGCHLD);
        sigprocmask(SIG_BLOCK, &m, NULL);
        return signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void end_sigchld(int sigfd)
{
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGCHLD);
        if (sigfd >= 0)
                close(sigfd);
        sigprocmask(SIG_UNBLOCK, &m, NULL);
}

int agent_serve_exec(int fd, const struct ak_msg *msg)
{
        struct exec_req req;
        struct agent_user user;
        cleanup_strv char **env = NULL;
        struct session s = {
            .in_fd = -1, .out_fd = -1, .err_fd = -1, .sigfd = -1, .read_size = 4096};
        int child_stdio[3] = {-1, -1, -1};
        char slave[128] = "";
        struct spawn_fail fail = {0, 0};
        int r, code, sig;

        r = exec_prepare(fd, msg, &req, &user, &env);
        if (r < 0)
                return r;
        s.sigfd = setup_sigchld();
        s.tty = req.flags & AK_EXEC_TTY;
        if (s.tty) {
                int master = -1;
                r = open_pty(&master, slave, sizeof(slave), req.rows, req.cols);
                if (r < 0) {
                        exec_req_done(&req);
                        return agent_send_error(fd, -r, "cannot allocate a terminal: %s",
                                                strerror(-r));
                }
                s.out_fd = master;
                s.in_fd = master;
        } else {
                int in[2] = {-1, -1}, out[2], err[2];
                if ((req.flags & AK_EXEC_STDIN) && pipe2(in, O_CLOEXEC) < 0)
                        return agent_send_error(fd, errno, "pipe: %s", strerror(errno));
                if (!(req.flags & AK_EXEC_STDIN))
                        in[0] = exec_open_devnull();
                if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
                        return agent_send_error(fd, errno, "pipe: %s", strerror(errno));
                child_stdio[0] = in[0];
                child_stdio[1] = out[1];
                child_stdio[2] = err[1];
                s.in_fd = in[1];
                s.out_fd = out[0];
                s.err_fd = err[0];
        }

        s.pid = exec_spawn(&req, &user, env, child_stdio, s.tty ? slave : NULL, &fail);
        agent_handler_busy();
        for (int i = 0; i < 3; i++)
                if (child_stdio[i] >= 0)
                        close(child_stdio[i]);

        ak_conn_init(&s.conn, fd);
        if (s.pid < 0) {
                char m[768];
                exec_spawn_error(m, sizeof(m), &req, &fail);
                ak_put_frame(&s.conn.out, AK_STDERR, m, strlen(m));
                queue_exit(&s.conn, fail.step == 1 && fail.err == ENOENT ? 127 : 126, 0, false);
                r = conn_drain_out(&s.conn);
                end_sigchld(s.sigfd);
                ak_conn_done(&s.conn);
                exec_req_done(&req);
                return r;
        }
        if (req.timeout_ms)
                s.deadline_ns = now_monotonic_ns() +
                                (int64_t)MIN(req.timeout_ms, 86400000ull * 365) * NSEC_PER_MSEC;
        for (int i = 0; i < 3; i++) {
                int f = i == 0 ? s.in_fd : i == 1 ? s.out_fd : s.err_fd;
                if (f >= 0)
                        (void)fd_set_nonblock(f, true);
        }
        (void)fd_set_nonblock(fd, true);
        if (!(req.flags & AK_EXEC_STDIN) && !s.tty)
                session_close_in(&s);

        r = session_run(&s);
        if (r >= 0) {
                code = exec_exit_code(s.status, &sig);
                queue_exit(&s.conn, code, sig, s.timed_out);
                r = conn_drain_out(&s.conn);
        } else {
                /* Host gone or protocol error: make sure the command is gone and reaped. */
                if (!s.exited) {
                        session_kill(&s, SIGKILL);
                        (void)waitpid(s.pid, NULL, 0);
                }
        }
        if (s.out_fd >= 0)
                close(s.out_fd);
        if (s.err_fd >= 0)
                close(s.err_fd);
        session_close_in(&s);
        end_sigchld(s.sigfd);
        buf_done(&s.pending_in);
        ak_conn_done(&s.conn);
        exec_req_done(&req);
        return r;
}
