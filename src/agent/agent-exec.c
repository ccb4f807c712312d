// SPDX-License-Identifier: Apache-2.0
/*
 * Running commands inside the sandbox: interactive sessions (pipes or a PTY, streamed both ways,
 * exit status reported) and detached commands (supervised, logs kept in the agent's private
 * state directory, queryable by any later connection). Runs in a forked handler process.
 * Must never block on the host or on the command in a way that can deadlock the other side:
 * output is buffered up to a high-water mark, then the command is throttled, never the host.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#if defined(__SANITIZE_ADDRESS__)
#define AK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AK_ASAN 1
#endif
#endif
#if AK_ASAN
#include <sanitizer/asan_interface.h>
#endif
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define OUT_HIGH_WATER (1u << 20) /* stop reading the command's output above this */
#define STDIN_HIGH_WATER (1u << 20)

struct exec_req {
        char **argv;
        char **env;
        char *cwd;
        char *user;
        uint64_t flags;
        uint64_t rows, cols;
        uint64_t timeout_ms;
        char **allow, **block; /* command policy */
};

static void exec_req_done(struct exec_req *r)
{
        strv_free(r->allow);
        strv_free(r->block);
        strv_free(r->argv);
        strv_free(r->env);
        free(r->cwd);
        free(r->user);
}

static int exec_req_decode(const struct ak_msg *m, struct exec_req *r)
{
        size_t argc = 0;
        int k;

        memset(r, 0, sizeof(*r));
        k = ak_get_strv(m, AK_T_ARG, AK_MAX_ARGS, &r->argv, &argc);
        if (k < 0)
                return k;
        if (argc == 0)
                return -EINVAL;
        k = ak_get_strv(m, AK_T_ENV, AK_MAX_ARGS, &r->env, NULL);
        if (k < 0)
                return k;
        for (char **e = r->env; *e; e++)
                if (!strchr(*e, '=') || **e == '=')
                        return -EINVAL;
        if ((k = ak_get_str(m, AK_T_CWD, &r->cwd)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_str(m, AK_T_USER, &r->user)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_FLAGS, &r->flags)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_ROWS, &r->rows)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_COLS, &r->cols)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_TIMEOUT_MS, &r->timeout_ms)) < 0 && k != -ENOENT)
                return k;
        k = ak_get_strv(m, AK_T_ALLOW, CMD_POLICY_MAX_ENTRIES, &r->allow, NULL);
        if (k < 0)
                return k;
        k = ak_get_strv(m, AK_T_BLOCK, CMD_POLICY_MAX_ENTRIES, &r->block, NULL);
        if (k < 0)
                return k;
        return 0;
}

struct resolve_ctx {
        const char *path, *cwd;
};

static char *resolve_in_sandbox(void *ctx, const char *name)
{
        const struct resolve_ctx *c = ctx;
        return cmd_resolve(name, c->path, c->cwd);
}

/* The command policy the host sent, checked against what argv[0] is here. NULL: may run. */
static const char *exec_policy_refusal(const struct exec_req *req, char **env, char **ret_target)
{
        struct cmd_policy p = {req->allow, req->block, req->flags & AK_EXEC_ALLOWLIST_ONLY};
        struct resolve_ctx c = {NULL, req->cwd ? req->cwd : agent_cfg.workdir};

        *ret_target = NULL;
        if (cmd_policy_empty(&p))
                return NULL;
        for (char **e = env; *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        c.path = *e + 5;
        *ret_target = cmd_resolve(req->argv[0], c.path, c.cwd);
        return cmd_policy_check(&p, req->argv[0], resolve_in_sandbox, &c);
}

/* Decodes an EXEC request and resolves what it runs as: the user (from the sandbox's passwd) and
 * the command's environment. Sends the ERROR reply itself on failure; on success the caller owns
 * *req and *ret_env. */
static int exec_prepare(int fd, const struct ak_msg *msg, struct exec_req *req,
                        struct agent_user *user, char ***ret_env)
{
        int r = exec_req_decode(msg, req);

        if (r < 0) {
                exec_req_done(req);
                return agent_send_error(fd, -r, "malformed exec request");
        }
        if (agent_user_lookup(req->user ? req->user : agent_cfg.user, user) < 0) {
                r = agent_send_error(fd, ESRCH, "user '%s' not found in the sandbox",
                                     req->user ? req->user : agent_cfg.user);
                exec_req_done(req);
                return r;
        }
        *ret_env = agent_build_env(req->env, user,
                                   (req->flags & AK_EXEC_TTY) && !(req->flags & AK_EXEC_DETACH));
        if (!*ret_env) {
                exec_req_done(req);
                return agent_send_error(fd, ENOMEM, "out of memory");
        }
        {
                cleanup_free char *target = NULL;
                const char *why = exec_policy_refusal(req, *ret_env, &target);
                if (why) {
                        r = agent_send_error(fd, EPERM, "command '%s'%s%s%s is %s", req->argv[0],
                                             target ? " (" : "", target ? target : "",
                                             target ? ")" : "", why);
                        strv_free(*ret_env);
                        *ret_env = NULL;
                        exec_req_done(req);
                        return r < 0 ? r : -EPERM;
                }
        }
        return 0;
}

/* A command's empty stdin: /dev/null when it is the real one. Where a sandbox may replace it (a
 * container's /dev is a plain tmpfs) a FIFO would hang the handler's open and a link into /proc
 * would hand the command one of the agent's own fds; then a pipe with no writer serves. */
static int open_devnull(void)
{
        int fd = openat_nomagic(AT_FDCWD, "/dev/null", O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
        struct stat st;
        int p[2];

        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) &&
            fd_set_nonblock(fd, false) == 0)
                return fd;
        if (fd >= 0)
                close(fd);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        close(p[1]);
        return p[0];
}

/* Child-side failure report: which step failed and errno. */
struct spawn_fail {
        int step; /* 0: setup (user, cwd, capabilities), 1: execve */
        int err;  /* 0: no failure */
};

/* The child shares the handler's memory and the handler sleeps until it has called execve or
 * exited (CLONE_VFORK), so the report is written straight into the handler's struct. */
static _noreturn_ void child_fail(struct spawn_fail *f, int step, int err)
{
        f->step = step;
        f->err = err ? err : EIO;
        _exit(step == 1 && err == ENOENT ? 127 : 126);
}

/* execvpe() without touching the parent's memory: PATH comes from the command's own
 * environment (glibc's execvpe reads the caller's), and nothing is allocated, so this is safe in
 * a vfork child. Returns only on failure, with errno set as execvp(3) would. */
static void exec_search(char *const argv[], char *const envp[])
{
        const char *file = argv[0];
        const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        char buf[4096];
        int saved = ENOENT;
        size_t flen = strlen(file);

        if (strchr(file, '/')) {
                execve(file, argv, envp);
                return;
        }
        for (char *const *e = envp; e && *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        path = *e + 5;
        while (*path || saved == ENOENT) {
                const char *end = strchr(path, ':');
                size_t dlen = end ? (size_t)(end - path) : strlen(path);
                if (dlen + flen + 2 <= sizeof(buf)) {
                        if (dlen) {
                                memcpy(buf, path, dlen);
                                buf[dlen] = '/';
                                memcpy(buf + dlen + 1, file, flen + 1);
                        } else {
                                memcpy(buf, file, flen + 1); /* empty entry: current directory */
                        }
                        execve(buf, argv, envp);
                        if (errno == EACCES)
                                saved = EACCES;
                        else if (errno != ENOENT && errno != ENOTDIR)
                                return; /* found but not runnable: report that */
                }
                if (!end)
                        break;
                path = end + 1;
        }
        errno = saved;
}

struct spawn_args {
        const struct exec_req *req;
        const struct agent_user *u;
        char **env;
        const int *stdio;
        const char *pty_slave;
        struct spawn_fail *fail;
};

/* Runs in a vfork-style child sharing the handler's memory: only syscalls, no allocation, no
 * writes to shared state; ends in execve or _exit. */
static int spawn_child(void *arg)
{
        const struct spawn_args *a = arg;
        int r;

        if (a->pty_slave) {
                int s;
                if (setsid() < 0)
                        child_fail(a->fail, 0, errno);
                s = open(a->pty_slave, O_RDWR | O_NOCTTY);
                if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
                        child_fail(a->fail, 0, errno);
                if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
                        child_fail(a->fail, 0, errno);
                if (s > 2)
                        close(s);
        } else {
                (void)setpgid(0, 0);
                for (int i = 0; i < 3; i++)
                        if (dup2(a->stdio[i], i) < 0)
                                child_fail(a->fail, 0, errno);
        }
        (void)syscall(SYS_close_range, 3u, ~0u, 0u); /* everything but stdio */
        r = agent_child_setup(a->u, a->req->cwd ? a->req->cwd : agent_cfg.workdir);
        if (r < 0)
                child_fail(a->fail, 0, -r);
        exec_search(a->req->argv, a->env);
        child_fail(a->fail, 1, errno);
}

/* Starts the command (vfork semantics: the handler's pages are not copied, which makes this
 * several times faster than fork on a busy host). stdio[] are the fds for 0/1/2, or pty_slave
 * the terminal to open after setsid. Returns the pid, or -errno with *fail saying why. */
static pid_t spawn_command(const struct exec_req *req, const struct agent_user *u, char **env,
                           const int stdio[3], const char *pty_slave, struct spawn_fail *fail)
{
        static char stack[64 * 1024] __attribute__((aligned(16)));
        struct spawn_args a = {req, u, env, stdio, pty_slave, fail};
        pid_t pid;

        *fail = (struct spawn_fail){0, 0};
#if AK_ASAN
        /* the last child left its frames' redzones poisoned: it never returned, it exec'd */
        ASAN_UNPOISON_MEMORY_REGION(stack, sizeof(stack));
#endif
        pid = clone(spawn_child, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
        if (pid < 0) {
                *fail = (struct spawn_fail){0, errno}; /* no process (the pids limit, memory) */
                return -fail->err;
        }
        if (fail->err) {
                (void)waitpid(pid, NULL, 0);
                return -fail->err;
        }
        return pid;
}

static void format_spawn_error(char *out, size_t len, const struct exec_req *req,
                               const struct spawn_fail *f)
{
        if (f->step == 1)
                (void)snprintf(out, len, "agentkernel: cannot run '%s': %s\n", req->argv[0],
                               f->err == ENOENT ? "command not found" : strerror(f->err));
        else if (req->cwd && f->err == ELOOP)
                (void)snprintf(out, len,
                               "agentkernel: cannot start '%s': working directory '%s' leads "
                               "through a link into /proc (or too many symbolic links); "
                               "refused\n",
                               req->argv[0], req->cwd);
        else if (req->cwd && (f->err == ENOENT || f->err == ENOTDIR))
                (void)snprintf(out, len,
                               "agentkernel: cannot start '%s': working directory '%s' does not "
                               "exist\n",
                               req->argv[0], req->cwd);
        else
                (void)snprintf(out, len, "agentkernel: cannot start '%s': %s\n", req->argv[0],
                               strerror(f->err));
}

static int exit_code_of(int status, int *ret_signal)
{
        *ret_signal = 0;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) {
                *ret_signal = WTERMSIG(status);
                return 128 + WTERMSIG(status);
        }
        return 255;
}

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
                        in[0] = open_devnull();
                if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
                        return agent_send_error(fd, errno, "pipe: %s", strerror(errno));
                child_stdio[0] = in[0];
                child_stdio[1] = out[1];
                child_stdio[2] = err[1];
                s.in_fd = in[1];
                s.out_fd = out[0];
                s.err_fd = err[0];
        }

        s.pid = spawn_command(&req, &user, env, child_stdio, s.tty ? slave : NULL, &fail);
        agent_handler_busy();
        for (int i = 0; i < 3; i++)
                if (child_stdio[i] >= 0)
                        close(child_stdio[i]);

        ak_conn_init(&s.conn, fd);
        if (s.pid < 0) {
                char m[768];
                format_spawn_error(m, sizeof(m), &req, &fail);
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
                code = exit_code_of(s.status, &sig);
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

/* ---- detached commands ---- */

#define DETACH_DIR "detached"

static bool valid_id(const char *id)
{
        return detached_id_is_valid(id);
}

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
                if (!valid_id(de->d_name))
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
        devnull = open_devnull();
        if (outlog < 0 || errlog < 0 || devnull < 0 || pipe2(out, O_CLOEXEC) < 0 ||
            pipe2(err, O_CLOEXEC) < 0) {
                int e = errno;
                (void)write_all(report_fd, &e, sizeof(e));
                _exit(1);
        }
        stdio[0] = devnull;
        stdio[1] = out[1];
        stdio[2] = err[1];
        pid = spawn_command(req, u, env, stdio, NULL, &fail);
        close(out[1]);
        close(err[1]);
        close(devnull);
        if (pid < 0) {
                char m[768];
                format_spawn_error(m, sizeof(m), req, &fail);
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
        code = exit_code_of(status, &sig);
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
                if (valid_id(de->d_name) && detach_load(ddir, de->d_name, &recs[n]) == 0)
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
        if (ak_get_str(msg, AK_T_ID, &id) < 0 || !valid_id(id))
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
                                if (detach_load(ddir, id, &rec) < 0 ||
                                    rec.status != AK_DETACH_RUNNING)
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
