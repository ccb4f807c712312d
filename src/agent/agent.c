// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-agent: PID 1 of a sandbox. It reaps every process that ends in the sandbox, accepts
 * connections from the host and serves each in a forked handler, and stops the sandbox when the
 * host asks (SIGTERM from outside the sandbox, or the end of the start handshake channel).
 *
 * It makes itself non-dumpable first, so nothing in the sandbox can ptrace it or read its fds.
 * It must never act on signals sent from inside the sandbox, and never exit while commands it
 * started still need reaping, except to stop the whole sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-guest.h"
#include "agent-net.h"
#include "agent.h"
#include "mux.h"
#include "shared/caps.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define AGENT_LOG_MAX (1u << 20)
#define HANDLERS_MAX 4096
#define HOLD_MAX 4 /* --hold-fd given at most this often */
/* The sandbox this agent serves (--uuid), told in every HELLO reply: a host that reached an
 * agent by a path can check that it is the sandbox it meant. NULL when not given (native: the
 * host made the channel itself). */
static const char *agent_uuid;

extern char **environ;

void agent_log(const char *fmt, ...)
{
        char line[1024];
        int n;
        va_list ap;
        struct stat st;
        cleanup_close int fd = -1;

        if (agent_cfg.state_fd < 0)
                return;
        fd = openat(agent_cfg.state_fd, "agent.log",
                    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return;
        if (fstat(fd, &st) == 0 && st.st_size > AGENT_LOG_MAX)
                if (ftruncate(fd, 0) < 0)
                        return;
        n = snprintf(line, sizeof(line), "[%d] ", (int)getpid());
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (n > (int)sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        (void)write_all(fd, line, (size_t)n);
}

static int serve_hello(int fd)
{
        cleanup_buf struct buf out = BUF_INIT;
        size_t s = ak_msg_begin(&out, AK_HELLO);
        ak_put_u64(&out, AK_T_VERSION, AK_PROTO_VERSION);
        ak_put_u64(&out, AK_T_PID, (uint64_t)getpid());
        if (agent_uuid)
                ak_put_str(&out, AK_T_UUID, agent_uuid);
        ak_msg_end(&out, s);
        return ak_write_buf(fd, &out);
}

/* TCP_CONNECT (published ports in proxy mode, docs/network.md): a TCP connection to
 * 127.0.0.1:PORT in the sandbox's own network namespace, handed to the host with the OK frame
 * (SCM_RIGHTS; the host relays the bytes). Only loopback: the host names a port, never an address.
 * A unix socket only (a VM's byte stream carries no fds). */
static int serve_tcp_connect(int fd, const struct ak_msg *m)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct timeval tv = {5, 0};
        uint8_t ok[AK_FRAME_HDR] = {0};
        uint64_t port = 0;
        int s, r;

        if (ak_get_u64(m, AK_T_PORT, &port) < 0 || port == 0 || port > 65535)
                return agent_send_error(fd, EINVAL, "TCP_CONNECT needs a PORT (1-65535)");
        sa.sin_port = htons((uint16_t)port);
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return agent_send_error(fd, errno, "socket: %s", strerror(errno));
        (void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = errno;
                close(s);
                return agent_send_error(fd, r, "connect 127.0.0.1:%u: %s", (unsigned)port,
                                        strerror(r));
        }
        ok[4] = AK_OK; /* u32 length 0, u16 type, u16 channel 0 (little-endian) */
        r = fd_send(fd, ok, sizeof(ok), &s, 1);
        close(s);
        return r;
}

/* A run's published ports (--ports-fd, with --conn-fd): a child that serves TCP_CONNECT, and
 * nothing else, to the host's port relay on a second socket, one connection at a time, while
 * PID 1 serves the run. It ends with the sandbox. */
static void serve_ports(int ports_fd, int conn_fd)
{
        pid_t pid = fork();

        if (pid != 0) {
                if (pid < 0)
                        agent_log("fork the ports server: %s", strerror(errno));
                close(ports_fd);
                return;
        }
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        close(conn_fd);
        for (;;) {
                cleanup_buf struct buf b = BUF_INIT;
                struct timeval tv = {5, 0};
                struct ak_msg m;
                int fd = accept4(ports_fd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        _exit(1);
                }
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                if (ak_read_frame(fd, &b, &m) == 0) {
                        if (m.type == AK_TCP_CONNECT)
                                (void)serve_tcp_connect(fd, &m);
                        else
                                (void)agent_send_error(fd, ENOTSUP, "only TCP_CONNECT here");
                }
                close(fd);
        }
}

/* Serves one connection; runs in a forked handler process. */
static int serve_connection(int fd)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct timeval tv = {AGENT_FIRST_FRAME_TIMEOUT_S, 0};
        struct ak_msg m;
        int r;

        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (;;) {
                r = ak_read_frame(fd, &b, &m);
                if (r < 0)
                        return r == -EPIPE ? 0 : r;
                tv.tv_sec = 0;
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                if (m.type != AK_EXEC) /* an exec tells once its command runs */
                        agent_handler_busy();
                switch (m.type) {
                case AK_HELLO:
                        r = serve_hello(fd);
                        break; /* a connection may send requests after HELLO */
                case AK_PING:
                        r = ak_write_frame(fd, AK_PONG, NULL, 0);
                        break;
                case AK_STATS:
                        if (!agent_guest)
                                return agent_send_error(fd, ENOTSUP,
                                                        "stats are the host's (the sandbox's "
                                                        "cgroup), not the agent's");
                        r = agent_guest_serve_stats(fd);
                        break;
                case AK_EXEC: {
                        uint64_t flags = 0;
                        (void)ak_get_u64(&m, AK_T_FLAGS, &flags);
                        return flags & AK_EXEC_DETACH ? agent_serve_detach(fd, &m)
                                                      : agent_serve_exec(fd, &m);
                }
                case AK_FILE_READ:
                case AK_FILE_WRITE:
                case AK_FILE_LIST:
                case AK_FILE_STAT:
                case AK_FILE_REMOVE:
                case AK_MKDIR:
                        r = agent_serve_file(fd, &m);
                        break;
                case AK_DETACH_LIST:
                case AK_DETACH_GET:
                case AK_DETACH_LOGS:
                case AK_DETACH_KILL:
                        r = agent_serve_detach_query(fd, &m);
                        break;
                case AK_TCP_CONNECT:
                        return serve_tcp_connect(fd, &m);
                default:
                        return agent_send_error(fd, ENOTSUP, "unsupported request type %u", m.type);
                }
                if (r < 0 && r != -ENOENT && r != -EINVAL && r != -EISDIR && r != -EACCES &&
                    r != -EPERM && r != -EEXIST && r != -ENOTDIR && r != -EFBIG &&
                    r != -ENOTEMPTY && r != -ESRCH)
                        return r; /* the connection itself failed */
        }
}

/*
 * Handlers. PID 1 never serves a connection itself: handler processes wait for connections and
 * each serves one at a time, then waits for the next. PID 1 keeps one handler free at all times,
 * forking another as soon as the last free one takes a connection, so a connection never waits
 * for a fork; and handlers are kept, so a fork (about a millisecond on a busy virtual machine,
 * and page-table work that slows the command running beside it) is paid only when more
 * connections run at once than ever before. One-at-a-time use settles at two handlers and no
 * forks.
 *
 * Handlers tell PID 1 through the note pipe when they have work and when they are free again (an
 * exec tells once its command runs: the note wakes PID 1, which should not delay the start).
 * Whatever a burst left behind is retired (handlers count against the sandbox's pids limit): when k
 * > 1 handlers stayed free for a whole HANDLER_SURPLUS_WINDOW_MS, k - 1 of them exit, but
 * HANDLERS_MIN always stay. Two, not one: with one, each request after a pause (an agent's usual
 * rhythm: think, then run a command) would take the last free handler and have PID 1 fork beside
 * its command. A retired handler gets SIGUSR1, which it lets in only while it waits, so a
 * connection it has taken is always served.
 *
 * A handler is reused only if its connection left nothing behind: no child process (a detached
 * command's supervisor is one), no fd beyond its own few, the signal mask it started with. It
 * exits after HANDLER_CONNECTIONS_MAX connections, which bounds what a leak could ever grow to.
 *
 * Dormancy: a sandbox that served nothing for --dormant-ms (DORMANT_DEFAULT_MS; 0: never) has
 * all its free handlers retired, and PID 1 watches the listening socket itself; the next
 * connection has it fork a handler for that connection (and the usual second one beside it). An
 * idle sandbox is then one process, not three (each handler costs the kernel ~36 KiB of page
 * tables, a 16 KiB stack and its task: about a third of an idle sandbox's memory, see
 * docs/performance.md); the first request after a dormant minute waits for one fork. A warm
 * pool's sandbox (run --fast) is started with --dormant-ms 0: its one request must not wait.
 */
#define HANDLER_SURPLUS_WINDOW_MS 2000
#define DORMANT_DEFAULT_MS 60000
#define HANDLERS_MIN 2
#define HANDLER_CONNECTIONS_MAX 10000
#define HANDLER_FORK_RETRY_MS 100 /* after a failed fork, with no handler free */

enum handler_state {
        HANDLER_FREE, /* waiting for a connection, or on its way there after its fork */
        HANDLER_BUSY,
        HANDLER_RETIRING, /* asked to exit (SIGUSR1) */
};

struct handler {
        pid_t pid;
        enum handler_state state;
        int64_t free_since_ns;
};

static pid_t agent_pid; /* this process, before any fork */
static struct handler handlers[HANDLERS_MAX];
static size_t n_handlers;
static int note_pipe[2] = {-1, -1}; /* handlers -> PID 1: struct agent_handler_note records */
/* while more than one handler is free: since when, and the fewest free since then */
static int64_t surplus_since_ns;
static size_t surplus_min;
static int64_t dormant_after_ns = (int64_t)DORMANT_DEFAULT_MS * NSEC_PER_MSEC; /* 0: never */
static int64_t last_work_ns; /* the last note, or handler forked: when the sandbox last did work */
static bool dormant;         /* no handler: PID 1 watches the listening socket */

/* Signals PID 1 catches (and blocks, to read them through a signalfd). */
static const int pid1_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

static volatile sig_atomic_t handler_retire;

static void on_retire(int sig)
{
        (void)sig;
        handler_retire = 1;
}

/* Waits for a connection; exits when retired. epfd watches the listening socket with
 * EPOLLEXCLUSIVE: one waiting handler wakes per connection, not all of them. */
static int handler_accept(int listen_fd, int epfd, const sigset_t *waiting_mask)
{
        for (;;) {
                struct epoll_event ev;
                int conn;

                if (handler_retire)
                        _exit(0);
                if (epoll_pwait(epfd, &ev, 1, -1, waiting_mask) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (conn >= 0)
                        return conn;
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        _exit(1);
        }
}

/* After a connection: true if this process is as it was before it, and may serve another. */
static bool handler_reusable(const int *keep, size_t n_keep, const sigset_t *serving_mask)
{
        for (;;) {
                pid_t p = waitpid(-1, NULL, WNOHANG);
                if (p == 0)
                        return false; /* a child still runs (a detached command's supervisor) */
                if (p < 0)
                        break; /* ECHILD: none left */
        }
        if (close_all_fds_except(3, keep, n_keep) < 0)
                return false;
        return sigprocmask(SIG_SETMASK, serving_mask, NULL) == 0;
}

/* The life of a handler process, from its fork to its exit. */
static _noreturn_ void handler_main(int listen_fd)
{
        struct sigaction sa = {.sa_handler = on_retire}; /* no SA_RESTART: ends the wait */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
        sigset_t serving, waiting;
        int epfd;

        agent_handler_init(note_pipe[1]);
        /* Not an init, nothing ends us with the agent: the kernel must, however it dies (a
         * SIGKILL skips shutdown_all), or a handler waiting for a connection outlives it. */
        if (!agent_cfg.is_init && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent_pid))
                _exit(0);
        for (size_t i = 0; i < ARRAY_SIZE(pid1_signals); i++)
                (void)signal(pid1_signals[i], SIG_DFL);
        (void)sigaction(SIGUSR1, &sa, NULL);
        sigemptyset(&waiting);
        sigemptyset(&serving);
        sigaddset(&serving, SIGUSR1);
        (void)sigprocmask(SIG_SETMASK, &serving, NULL);
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
                _exit(1);

        /* PID 1's signalfd, sync channel, note reader and held fds are not ours to keep */
        const int keep[] = {listen_fd, epfd, note_pipe[1], agent_cfg.state_fd,
                            agent_guest_cgroup_fd()};
        (void)close_all_fds_except(3, keep, ARRAY_SIZE(keep));
        for (unsigned served = 0; served < HANDLER_CONNECTIONS_MAX; served++) {
                int conn = handler_accept(listen_fd, epfd, &waiting), r;
                struct pollfd req = {conn, POLLIN, 0};

                agent_handler_conn_begin();
                /* The host writes its request with the connect, so it is normally here already
                 * and the note can wait for the work to start. A client slow to send it must not
                 * hold a handler that PID 1 counts as free. */
                if (poll(&req, 1, 0) == 0)
                        agent_handler_busy();
                r = serve_connection(conn);
                close(conn);
                if (r < 0)
                        _exit(1);
                if (!handler_reusable(keep, ARRAY_SIZE(keep), &serving))
                        _exit(0);
                agent_handler_conn_end();
        }
        _exit(0);
}

static bool spawn_handler(int listen_fd)
{
        pid_t pid;

        if (n_handlers == HANDLERS_MAX) {
                errno = EAGAIN;
                return false;
        }
        pid = fork();
        if (pid < 0) {
                agent_log("fork handler: %s", strerror(errno));
                return false;
        }
        if (pid == 0)
                handler_main(listen_fd);
        handlers[n_handlers++] = (struct handler){pid, HANDLER_FREE, now_monotonic_ns()};
        last_work_ns = handlers[n_handlers - 1].free_since_ns;
        return true;
}

static struct handler *handler_find(pid_t pid)
{
        for (size_t i = 0; i < n_handlers; i++)
                if (handlers[i].pid == pid)
                        return &handlers[i];
        return NULL;
}

static void handler_forget(pid_t pid)
{
        struct handler *h = handler_find(pid);
        if (h)
                *h = handlers[--n_handlers];
}

static size_t n_free_handlers(void)
{
        size_t n = 0;
        for (size_t i = 0; i < n_handlers; i++)
                n += handlers[i].state == HANDLER_FREE;
        return n;
}

static void read_notes(void)
{
        struct agent_handler_note n[64];
        ssize_t got;

        while ((got = read(note_pipe[0], n, sizeof(n))) > 0)
                for (size_t i = 0; i < (size_t)got / sizeof(n[0]); i++) {
                        struct handler *h = handler_find(n[i].pid);
                        if (!h || h->state == HANDLER_RETIRING)
                                continue;
                        h->state = n[i].busy ? HANDLER_BUSY : HANDLER_FREE;
                        h->free_since_ns = now_monotonic_ns();
                        last_work_ns = h->free_since_ns;
                }
}

/* Dormancy (see above): once nothing was served for dormant_after_ns and no handler is busy,
 * every handler is retired. Returns the poll timeout until that is due (ms), or -1. */
static int go_dormant(void)
{
        int64_t now = now_monotonic_ns(), due = last_work_ns + dormant_after_ns;

        if (!dormant_after_ns || dormant)
                return -1;
        for (size_t i = 0; i < n_handlers; i++)
                if (handlers[i].state == HANDLER_BUSY)
                        return -1; /* its free note restarts the clock */
        if (now < due)
                return (int)MIN((due - now) / NSEC_PER_MSEC + 1, (int64_t)INT32_MAX);
        for (size_t i = 0; i < n_handlers; i++)
                if (handlers[i].state == HANDLER_FREE) {
                        (void)kill(handlers[i].pid, SIGUSR1);
                        handlers[i].state = HANDLER_RETIRING;
                }
        dormant = true;
        return -1;
}

/* The smaller of two poll timeouts (-1: none). */
static int min_timeout(int a, int b)
{
        return a < 0 ? b : b < 0 ? a : MIN(a, b);
}

/* Retires the handlers a burst left: after HANDLER_SURPLUS_WINDOW_MS during which at least k > 1
 * handlers were free all along, k - 1 of them (longest free first), keeping HANDLERS_MIN.
 * Returns the poll timeout until the current window ends (ms), or -1 when there is no surplus. */
static int retire_surplus(void)
{
        int64_t now = now_monotonic_ns(), window = HANDLER_SURPLUS_WINDOW_MS * NSEC_PER_MSEC;
        size_t free_now = n_free_handlers(), live = 0, k;

        for (size_t i = 0; i < n_handlers; i++)
                live += handlers[i].state != HANDLER_RETIRING;
        if (free_now <= 1 || live <= HANDLERS_MIN) {
                surplus_since_ns = 0;
                return -1;
        }
        if (!surplus_since_ns || free_now < surplus_min) {
                if (!surplus_since_ns)
                        surplus_since_ns = now;
                surplus_min = free_now;
        }
        if (now - surplus_since_ns < window)
                return (int)((surplus_since_ns + window - now) / NSEC_PER_MSEC) + 1;
        for (k = MIN(surplus_min - 1, live - HANDLERS_MIN); k > 0; k--) {
                struct handler *oldest = NULL;
                for (size_t i = 0; i < n_handlers; i++)
                        if (handlers[i].state == HANDLER_FREE &&
                            (!oldest || handlers[i].free_since_ns < oldest->free_since_ns))
                                oldest = &handlers[i];
                if (!oldest)
                        break;
                (void)kill(oldest->pid, SIGUSR1);
                oldest->state = HANDLER_RETIRING;
        }
        surplus_since_ns = 0;
        return -1;
}

/* A connection waits, no handler is free and none could be forked: it gets an error rather than
 * a wait with no end. */
static void refuse_waiting_connection(int listen_fd, int err)
{
        int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (conn < 0)
                return;
        (void)agent_send_error(conn, err, "the sandbox cannot start a handler for this request: %s",
                               strerror(err));
        close(conn);
}

/* Stops everything: SIGTERM to all, a grace period, then exit (the kernel kills the rest of the
 * pid namespace when its init exits). */
static _noreturn_ void shutdown_all(void)
{
        int64_t until = now_monotonic_ns() + AGENT_STOP_GRACE_MS * NSEC_PER_MSEC;

        if (agent_cfg.is_init) {
                (void)kill(-1, SIGTERM);
                while (now_monotonic_ns() < until) {
                        pid_t p = waitpid(-1, NULL, WNOHANG);
                        if (p < 0 && errno == ECHILD)
                                break;
                        if (p <= 0)
                                usleep(2000);
                }
                (void)kill(-1, SIGKILL);
                if (agent_guest)
                        agent_guest_poweroff(); /* the machine ends with its init */
        } else {
                /* not an init: nothing ends our children for us, waiting handlers included */
                for (size_t i = 0; i < n_handlers; i++)
                        (void)kill(handlers[i].pid, SIGKILL);
        }
        _exit(0);
}

static void noop_handler(int sig)
{
        (void)sig;
}

static _noreturn_ void usage(void)
{
        fputs(
            "usage: agentkernel-agent (--listen-fd N | --listen PATH | --conn-fd N [--ports-fd N]) "
            "[--sync-fd N]\n"
            "                         [--state-fd N | --state-dir DIR] [--caps HEX]\n"
            "                         [--workdir DIR] [--user USER] [--hold-fd N]... [--uuid ID]\n"
            "                         [--host-files] [--dormant-ms MS]\n"
            "       agentkernel-agent --guest             (a virtual machine's /init)\n"
            "       agentkernel-agent --vm-relay FD --listen-fd N [--relay-id ID] [--uuid ID]\n"
            "                         [--net-report FD]\n"
            "The sandbox agent; started by agentkernel, not by hand.\n",
            stderr);
        exit(2);
}

static int parse_fd(const char *s)
{
        uint32_t v;
        if (safe_atou32(s, &v) < 0 || v > 65535)
                usage();
        return (int)v;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"listen-fd", required_argument, NULL, 'l'},
            {"conn-fd", required_argument, NULL, 'c'},
            {"listen", required_argument, NULL, 'L'},
            {"sync-fd", required_argument, NULL, 's'},
            {"state-fd", required_argument, NULL, 'S'},
            {"state-dir", required_argument, NULL, 'D'},
            {"caps", required_argument, NULL, 'C'},
            {"workdir", required_argument, NULL, 'w'},
            {"user", required_argument, NULL, 'u'},
            {"hold-fd", required_argument, NULL, 'H'},
            {"uuid", required_argument, NULL, 'U'},
            {"host-files", no_argument, NULL, 'F'},
            {"vm-relay", required_argument, NULL, 'R'},
            {"relay-id", required_argument, NULL, 'I'},
            {"ports-fd", required_argument, NULL, 'P'},
            {"net-report", required_argument, NULL, 'N'},
            {"dormant-ms", required_argument, NULL, 'Z'},
            {NULL, 0, NULL, 0},
        };
        int relay_fd = -1, net_report_fd = -1;
        uint32_t relay_id = 0;
        int listen_fd = -1, conn_fd = -1, sync_fd = -1, ports_fd = -1, sigfd, c;
        int hold_fds[HOLD_MAX];
        size_t n_hold = 0;
        struct sigaction sa = {.sa_handler = noop_handler};
        sigset_t mask;

        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (argc == 2 && streq(argv[1], "--guest") && getpid() == 1)
                (void)agent_guest_boot(&argc, &argv);
        agent_cfg.child_caps = ~0ull;
        agent_cfg.workdir = "/";
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'l':
                        listen_fd = parse_fd(optarg);
                        break;
                case 'c':
                        conn_fd = parse_fd(optarg);
                        break;
                case 'L': {
                        /* In a container the agent makes its socket itself, in a directory the
                         * host shares with it; only the owner (the container's root) may use it. */
                        struct ak_err e = {0};
                        mode_t old = umask(0077);
                        (void)unlink(optarg);
                        listen_fd = unix_listen(optarg, 128, &e);
                        umask(old);
                        if (listen_fd < 0) {
                                agent_log("listen on '%s': %s", optarg, ak_err_msg(&e));
                                return 1;
                        }
                        break;
                }
                case 's':
                        sync_fd = parse_fd(optarg);
                        break;
                case 'S':
                        agent_cfg.state_fd = parse_fd(optarg);
                        break;
                case 'D':
                        (void)mkdir(optarg, 0700);
                        agent_cfg.state_fd = open(optarg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (agent_cfg.state_fd < 0) {
                                fprintf(stderr, "agentkernel-agent: state dir '%s': %s\n", optarg,
                                        strerror(errno));
                                return 1;
                        }
                        break;
                case 'C': {
                        char *end;
                        errno = 0;
                        agent_cfg.child_caps = strtoull(optarg, &end, 16);
                        if (errno || *end || end == optarg)
                                usage();
                        break;
                }
                case 'w':
                        agent_cfg.workdir = optarg;
                        break;
                case 'u':
                        agent_cfg.user = optarg;
                        break;
                case 'H':
                        /* held open for our lifetime: a pipe whose closing tells the host we
                         * are gone, a lock that keeps what we use from being removed */
                        if (n_hold == HOLD_MAX)
                                usage();
                        hold_fds[n_hold++] = parse_fd(optarg);
                        break;
                case 'F':
                        agent_cfg.host_files = true;
                        break;
                case 'R':
                        relay_fd = parse_fd(optarg);
                        break;
                case 'P':
                        ports_fd = parse_fd(optarg);
                        break;
                case 'N':
                        net_report_fd = parse_fd(optarg);
                        break;
                case 'I':
                        if (safe_atou32(optarg, &relay_id) < 0 || relay_id == 0)
                                usage();
                        break;
                case 'U':
                        if (!uuid_is_valid(optarg))
                                usage();
                        agent_uuid = optarg;
                        break;
                case 'Z': {
                        uint32_t ms; /* at most ~49 days */
                        if (safe_atou32(optarg, &ms) < 0)
                                usage();
                        dormant_after_ns = (int64_t)ms * NSEC_PER_MSEC;
                        break;
                }
                default:
                        usage();
                }
        }
        if ((listen_fd < 0) == (conn_fd < 0) || optind != argc)
                usage();
        if (relay_fd >= 0) {
                /* The host's end of a virtual machine's channel (mux.h): connections on the
                 * listening socket become channels over the hypervisor's stream (the fd the
                 * backend connected), until it ends. */
                if (listen_fd < 0)
                        usage();
                (void)fcntl(relay_fd, F_SETFD, FD_CLOEXEC);
                (void)fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
                (void)signal(SIGPIPE, SIG_IGN);
                /* Proxy mode (agent-net.h): into the VM's own capture namespace first, while
                 * root; every connection the guest asks for is made from there. */
                if (net_report_fd >= 0) {
                        int r = agent_net_relay_setup(net_report_fd);
                        close(net_report_fd);
                        if (r < 0)
                                return 1;
                }
                /* It reads what the guest sends: with its two fds open it needs nothing else
                 * of the host, so it gives up root for an id of the sandbox's own range. */
                if (relay_id &&
                    (setgroups(0, NULL) < 0 || setresgid(relay_id, relay_id, relay_id) < 0 ||
                     setresuid(relay_id, relay_id, relay_id) < 0)) {
                        fprintf(stderr, "agentkernel-agent: relay: drop to %u: %s\n", relay_id,
                                strerror(errno));
                        return 1;
                }
                (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
                if (chdir("/") < 0)
                        return 1;
                return mux_run(relay_fd, listen_fd, NULL, 0,
                               &(struct mux_net){{-1, -1}, net_report_fd >= 0}) < 0
                           ? 1
                           : 0;
        }
        agent_cfg.is_init = getpid() == 1;
        agent_pid = getpid();
        /* Lower the bounding set once: every command started afterwards gets at most the
         * profile's capabilities at execve, while the agent keeps its own. */
        if (agent_cfg.child_caps != ~0ull) {
                /* what the starter dropped already needs no system call each */
                uint64_t have, keep = agent_cfg.child_caps;
                if (caps_bounding_now(&have) == 0)
                        keep |= ~have;
                if (caps_limit_bounding(keep) < 0) {
                        agent_log("cannot lower the capability bounding set: %s", strerror(errno));
                        return 1; /* fail closed: commands must never get more than they should */
                }
        }
        agent_cfg.base_env = environ;
        if (!agent_cfg.is_init)
                (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        {
                /* Everything the agent keeps must be close-on-exec: commands inherit nothing. */
                const int keep[] = {listen_fd, conn_fd, sync_fd, agent_cfg.state_fd, ports_fd};
                for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
                        if (keep[i] >= 0)
                                (void)fcntl(keep[i], F_SETFD, FD_CLOEXEC);
                for (size_t i = 0; i < n_hold; i++)
                        (void)fcntl(hold_fds[i], F_SETFD, FD_CLOEXEC);
        }

        /* Real handlers, not SIG_DFL: the init of a pid namespace never receives a signal whose
         * disposition is the default, SIGCHLD included. They stay blocked; signalfd reads them
         * together with the sender, so signals sent from inside the sandbox can be ignored. */
        sigemptyset(&mask);
        for (size_t i = 0; i < ARRAY_SIZE(pid1_signals); i++) {
                (void)sigaction(pid1_signals[i], &sa, NULL);
                sigaddset(&mask, pid1_signals[i]);
        }
        sigprocmask(SIG_SETMASK, &mask, NULL); /* exactly these: the starter may block all */
        (void)signal(SIGPIPE, SIG_IGN);
        sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sigfd < 0) {
                agent_log("signalfd: %s", strerror(errno));
                return 1;
        }
        if (agent_guest)
                agent_guest_start_mux();
        if (conn_fd >= 0 && ports_fd >= 0)
                serve_ports(ports_fd, conn_fd);
        if (conn_fd >= 0) {
                /* One request, served right here (no fork on the way), then the sandbox ends. */
                (void)serve_connection(conn_fd);
                shutdown_all();
        }
        (void)fd_set_nonblock(listen_fd, true);
        /* the read end only is non-blocking: a handler waits if PID 1 ever falls behind */
        if (pipe2(note_pipe, O_CLOEXEC) < 0 || fd_set_nonblock(note_pipe[0], true) < 0) {
                agent_log("pipe: %s", strerror(errno));
                return 1;
        }
        for (;;) {
                struct pollfd p[4];
                nfds_t n = 0;
                int i_listen = -1, i_sync = -1, i_note, timeout, fork_err = 0;
                struct signalfd_siginfo si;

                /* one handler free at all times (none while dormant) */
                if (!dormant && n_free_handlers() == 0 && !spawn_handler(listen_fd))
                        fork_err = errno;
                timeout = min_timeout(retire_surplus(), go_dormant());
                p[n++] = (struct pollfd){sigfd, POLLIN, 0};
                i_note = (int)n;
                p[n++] = (struct pollfd){note_pipe[0], POLLIN, 0};
                if (dormant) {
                        /* a connection ends the dormancy: the next round forks its handler */
                        i_listen = (int)n;
                        p[n++] = (struct pollfd){listen_fd, POLLIN, 0};
                } else if (fork_err) {
                        /* retry soon; meanwhile a waiting connection gets an error */
                        i_listen = (int)n;
                        p[n++] = (struct pollfd){listen_fd, POLLIN, 0};
                        timeout = HANDLER_FORK_RETRY_MS;
                }
                if (sync_fd >= 0) {
                        i_sync = (int)n;
                        p[n++] = (struct pollfd){sync_fd, POLLIN, 0};
                }
                if (poll(p, n, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        agent_log("poll: %s", strerror(errno));
                        shutdown_all();
                }
                while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                        if (si.ssi_signo == SIGCHLD)
                                continue;
                        /* As init, a sender outside the sandbox shows as pid 0. */
                        if (!agent_cfg.is_init || si.ssi_pid == 0)
                                shutdown_all();
                }
                if (p[i_note].revents & POLLIN)
                        read_notes();
                for (;;) {
                        pid_t pid = waitpid(-1, NULL, WNOHANG);
                        if (pid <= 0)
                                break;
                        if (!agent_guest_reaped(pid))
                                handler_forget(pid);
                }
                if (dormant) {
                        if (i_listen >= 0 && p[i_listen].revents)
                                dormant = false;
                } else if (i_listen >= 0 && (p[i_listen].revents & POLLIN) &&
                           n_free_handlers() == 0) {
                        refuse_waiting_connection(listen_fd, fork_err);
                }
                if (i_sync >= 0 && p[i_sync].revents) {
                        char c2 = 0;
                        ssize_t got = read(sync_fd, &c2, 1);
                        if (got == 1 && c2 == 'C') {
                                /* The host recorded the sandbox: it now outlives its starter. */
                                close(sync_fd);
                                sync_fd = -1;
                        } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                                /* The starter is gone before committing: stop everything. */
                                shutdown_all();
                        }
                }
        }
}
