// SPDX-License-Identifier: Apache-2.0
/*
 * Host side of the agent protocol. Never trusts a length or a count from the agent; never blocks
 * writing to the agent while the agent may be blocked writing to us (stdin is sent through a
 * bounded queue while output keeps being read).
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <termios.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"

#define CLIENT_OUT_HIGH (1u << 20)

static int protocol_error(struct ak_err *err, const char *what)
{
        return ak_err_set(err, EBADMSG, "agent protocol error: %s", what);
}

/* Turns an ERROR frame into err. */
static int error_from_msg(const struct ak_msg *m, struct ak_err *err)
{
        uint64_t code = EIO;
        cleanup_free char *msg = NULL;

        (void)ak_get_u64(m, AK_T_ERRNO, &code);
        if (code == 0 || code > 4095)
                code = EIO;
        if (ak_get_str(m, AK_T_MSG, &msg) < 0)
                return ak_err_errno(err, (int)code, "agent error");
        return ak_err_set(err, (int)code, "%s", msg);
}

static int send_msg(int fd, struct buf *b, size_t start, struct ak_err *err)
{
        int r = ak_msg_end(b, start);
        if (r < 0)
                return ak_err_set(err, -r, "request too large");
        r = ak_write_buf(fd, b);
        if (r < 0)
                return ak_err_errno(err, r, "sending to agent");
        return 0;
}

static void put_exec(struct buf *b, const struct agent_exec_opts *o, bool stdin_open)
{
        uint64_t flags = (o->tty ? AK_EXEC_TTY : 0) | (stdin_open ? AK_EXEC_STDIN : 0) |
                         (o->detach ? AK_EXEC_DETACH : 0) |
                         (o->policy && o->policy->allowlist_only ? AK_EXEC_ALLOWLIST_ONLY : 0);

        for (char *const *a = o->argv; *a; a++)
                ak_put_str(b, AK_T_ARG, *a);
        for (char *const *e = o->env; e && *e; e++)
                ak_put_str(b, AK_T_ENV, *e);
        if (o->cwd)
                ak_put_str(b, AK_T_CWD, o->cwd);
        if (o->user)
                ak_put_str(b, AK_T_USER, o->user);
        ak_put_u64(b, AK_T_FLAGS, flags);
        if (o->rows)
                ak_put_u64(b, AK_T_ROWS, o->rows);
        if (o->cols)
                ak_put_u64(b, AK_T_COLS, o->cols);
        if (o->timeout_ms)
                ak_put_u64(b, AK_T_TIMEOUT_MS, o->timeout_ms);
        for (char *const *e = o->policy ? o->policy->allow : NULL; e && *e; e++)
                ak_put_str(b, AK_T_ALLOW, *e);
        for (char *const *e = o->policy ? o->policy->block : NULL; e && *e; e++)
                ak_put_str(b, AK_T_BLOCK, *e);
}

static int read_exit(const struct ak_msg *m, struct agent_exit *ret)
{
        uint64_t code = 0, sig = 0, flags = 0;

        if (ak_get_u64(m, AK_T_CODE, &code) < 0)
                return -EBADMSG;
        (void)ak_get_u64(m, AK_T_SIGNAL, &sig);
        (void)ak_get_u64(m, AK_T_FLAGS, &flags);
        ret->code = (int)(int64_t)code;
        ret->signal = sig < 128 ? (int)sig : 0;
        ret->timed_out = flags & AK_EXIT_TIMED_OUT;
        return 0;
}

static void queue_resize(struct ak_conn *c, int tty_fd)
{
        struct winsize ws;
        size_t st;

        if (tty_fd < 0 || ioctl(tty_fd, TIOCGWINSZ, &ws) < 0)
                return;
        st = ak_msg_begin(&c->out, AK_RESIZE);
        ak_put_u64(&c->out, AK_T_ROWS, ws.ws_row);
        ak_put_u64(&c->out, AK_T_COLS, ws.ws_col);
        ak_msg_end(&c->out, st);
}

int agent_exec(int fd, const struct agent_exec_opts *o, const struct agent_io *io,
               struct agent_exit *ret, struct ak_err *err)
{
        struct ak_conn c;
        cleanup_free char *chunk = NULL; /* stdin's buffer, when there is stdin */
        bool stdin_open = io->stdin_fd >= 0;
        bool done = false, sent = false;
        size_t st;
        int r = 0;

        if (!o->argv || !o->argv[0])
                return ak_err_set(err, EINVAL, "a command is required");
        ak_conn_init(&c, fd);
        st = ak_msg_begin(&c.out, AK_EXEC);
        put_exec(&c.out, o, stdin_open);
        r = ak_msg_end(&c.out, st);
        if (r < 0) {
                ak_conn_done(&c);
                return ak_err_set(err, -r, "command line too large for the agent protocol");
        }
        (void)fd_set_nonblock(fd, true);

        while (!done) {
                struct pollfd p[3];
                nfds_t n = 0;
                int i_in = -1, i_sig = -1;
                struct ak_msg m;

                p[n++] = (struct pollfd){fd, (short)(POLLIN | (c.out.len ? POLLOUT : 0)), 0};
                if (stdin_open && c.out.len < CLIENT_OUT_HIGH) {
                        i_in = (int)n;
                        p[n++] = (struct pollfd){io->stdin_fd, POLLIN, 0};
                }
                if (io->signal_fd >= 0) {
                        i_sig = (int)n;
                        p[n++] = (struct pollfd){io->signal_fd, POLLIN, 0};
                }
                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = ak_err_errno(err, errno, "poll");
                        break;
                }
                if (i_sig >= 0 && (p[i_sig].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        while (read(io->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                if (si.ssi_signo == SIGWINCH) {
                                        queue_resize(&c, io->tty_fd);
                                } else {
                                        st = ak_msg_begin(&c.out, AK_SIGNAL);
                                        ak_put_u64(&c.out, AK_T_SIGNAL, si.ssi_signo);
                                        ak_msg_end(&c.out, st);
                                }
                        }
                }
                if (i_in >= 0 && p[i_in].revents) {
                        ssize_t got;
                        if (!chunk && !(chunk = malloc(AK_CHUNK))) {
                                r = ak_err_oom(err);
                                break;
                        }
                        got = read(io->stdin_fd, chunk, AK_CHUNK);
                        if (got > 0) {
                                ak_put_frame(&c.out, AK_STDIN, chunk, (size_t)got);
                        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                                ak_put_frame(&c.out, AK_STDIN_EOF, NULL, 0);
                                stdin_open = false;
                        }
                }
                if (p[0].revents & POLLOUT) {
                        r = ak_conn_flush(&c);
                        if (r < 0 && r != -EPIPE) {
                                r = ak_err_errno(err, r, "sending to agent");
                                break;
                        }
                        r = 0;
                        if (!sent && c.out.len == 0) {
                                sent = true;
                                if (io->on_sent)
                                        io->on_sent(io->sent_ctx);
                        }
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t got = ak_conn_fill(&c);
                        if (got < 0) {
                                r = ak_err_errno(err, (int)got, "reading from agent");
                                break;
                        }
                        while (!done && (r = ak_conn_next(&c, &m)) > 0) {
                                switch (m.type) {
                                case AK_STDOUT:
                                case AK_STDERR:
                                        if (io->on_output &&
                                            io->on_output(io->ctx, m.type == AK_STDOUT ? 1 : 2,
                                                          m.payload, m.len) != 0) {
                                                r = ak_err_set(err, EPIPE, "output closed");
                                                done = true;
                                        }
                                        break;
                                case AK_EXIT:
                                        if (read_exit(&m, ret) < 0)
                                                r = protocol_error(err, "malformed exit");
                                        else
                                                r = 0;
                                        done = true;
                                        break;
                                case AK_ERROR:
                                        r = error_from_msg(&m, err);
                                        done = true;
                                        break;
                                default:
                                        break; /* STARTED and future frames */
                                }
                        }
                        if (r < 0 && !done) {
                                r = protocol_error(err, "malformed frame");
                                break;
                        }
                        if (!done && c.eof) {
                                r = ak_err_set(err, ECONNRESET,
                                               "the sandbox agent closed the connection (was the "
                                               "sandbox stopped?)");
                                break;
                        }
                }
        }
        ak_conn_done(&c);
        return r < 0 ? r : 0;
}

struct capture {
        struct buf *out, *err;
        size_t max;
        bool *truncated;
};

static int capture_output(void *ctx, int stream, const void *data, size_t len)
{
        struct capture *c = ctx;
        struct buf *b = stream == 1 ? c->out : c->err;
        size_t room = b->len < c->max ? c->max - b->len : 0;

        if (len > room) {
                if (c->truncated)
                        *c->truncated = true;
                len = room;
        }
        return len ? (buf_append(b, data, len) < 0 ? -1 : 0) : 0;
}

int agent_exec_capture(int fd, const struct agent_exec_opts *o, size_t max, struct buf *out,
                       struct buf *errout, bool *truncated, struct agent_exit *ret,
                       struct ak_err *err)
{
        struct capture cap = {out, errout, max, truncated};
        struct agent_io io = {.stdin_fd = -1,
                              .signal_fd = -1,
                              .tty_fd = -1,
                              .on_output = capture_output,
                              .ctx = &cap};
        if (truncated)
                *truncated = false;
        return agent_exec(fd, o, &io, ret, err);
}

/* Reads the single reply of a simple request. */
static int read_reply(int fd, struct buf *b, struct ak_msg *m, uint16_t want, struct ak_err *err)
{
        int r = ak_read_frame(fd, b, m);

        if (r < 0)
                return r == -EBADMSG ? protocol_error(err, "malformed frame")
                                     : ak_err_set(err, -r, "reading from agent: %s",
                                                  r == -EPIPE ? "connection closed" : strerror(-r));
        if (m->type == AK_ERROR)
                return error_from_msg(m, err);
        if (m->type != want)
                return protocol_error(err, "unexpected reply");
        return 0;
}

void agent_detached_done(struct agent_detached *d)
{
        strv_free(d->argv);
        memset(d, 0, sizeof(*d));
}

static int detached_from_msg(const struct ak_msg *m, struct agent_detached *d, struct ak_err *err)
{
        cleanup_free char *id = NULL;
        uint64_t v = 0;

        memset(d, 0, sizeof(*d));
        if (ak_get_str(m, AK_T_ID, &id) < 0 || strlen(id) != 8)
                return protocol_error(err, "detached command without id");
        memcpy(d->id, id, 9);
        if (ak_get_u64(m, AK_T_PID, &v) == 0)
                d->pid = (int64_t)v;
        if (ak_get_u64(m, AK_T_STATUS, &v) == 0 && v <= AK_DETACH_FAILED)
                d->status = (int)v;
        if (ak_get_u64(m, AK_T_CODE, &v) == 0) {
                d->has_code = true;
                d->code = (int64_t)v;
        }
        if (ak_get_u64(m, AK_T_STARTED, &v) == 0)
                d->started_ns = (int64_t)v;
        if (ak_get_strv(m, AK_T_ARG, AK_MAX_ARGS, &d->argv, NULL) < 0)
                return protocol_error(err, "malformed command");
        return 0;
}

int agent_detach(int fd, const struct agent_exec_opts *o, struct agent_detached *ret,
                 struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct agent_exec_opts d = *o;
        struct ak_msg m;
        size_t st;
        int r;

        d.detach = true;
        d.tty = false;
        st = ak_msg_begin(&b, AK_EXEC);
        put_exec(&b, &d, false);
        r = send_msg(fd, &b, st, err);
        if (r < 0)
                return r;
        r = read_reply(fd, &b, &m, AK_DETACH_INFO, err);
        if (r < 0)
                return r;
        return detached_from_msg(&m, ret, err);
}

/* Reads `want` frames until END into a growing array of elem_size elements, at most max of them;
 * decode() fills one. On failure, clear() releases what was decoded and nothing is returned. */
static int read_entries(int fd, struct buf *b, uint16_t want, size_t max, size_t elem_size,
                        int (*decode)(const struct ak_msg *m, void *elem, struct ak_err *err),
                        void (*clear)(void *elem), void **ret, size_t *ret_n, struct ak_err *err)
{
        char *list = NULL;
        size_t n = 0, cap = 0;
        struct ak_msg m;
        int r;

        for (;;) {
                r = ak_read_frame(fd, b, &m);
                if (r < 0) {
                        r = protocol_error(err, "truncated list");
                        break;
                }
                if (m.type == AK_END)
                        break;
                if (m.type == AK_ERROR) {
                        r = error_from_msg(&m, err);
                        break;
                }
                if (m.type != want || n >= max) {
                        r = protocol_error(err, "unexpected list entry");
                        break;
                }
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        char *nl = realloc(list, ncap * elem_size);
                        if (!nl) {
                                r = ak_err_oom(err);
                                break;
                        }
                        list = nl;
                        cap = ncap;
                }
                r = decode(&m, list + n * elem_size, err);
                if (r < 0)
                        break;
                n++;
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        clear(list + i * elem_size);
                free(list);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

static int decode_detached(const struct ak_msg *m, void *elem, struct ak_err *err)
{
        return detached_from_msg(m, elem, err);
}

static void clear_detached(void *elem)
{
        agent_detached_done(elem);
}

int agent_detach_list(int fd, struct agent_detached **ret, size_t *ret_n, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        size_t st = ak_msg_begin(&b, AK_DETACH_LIST);
        int r = send_msg(fd, &b, st, err);

        if (r < 0)
                return r;
        return read_entries(fd, &b, AK_DETACH_INFO, 4096, sizeof(**ret), decode_detached,
                            clear_detached, (void **)ret, ret_n, err);
}

static int detach_query(int fd, uint16_t type, const char *id, int sig, bool stderr_stream,
                        struct buf *b, struct ak_err *err)
{
        size_t st = ak_msg_begin(b, type);
        ak_put_str(b, AK_T_ID, id);
        if (sig)
                ak_put_u64(b, AK_T_SIGNAL, (uint64_t)sig);
        if (type == AK_DETACH_LOGS)
                ak_put_u64(b, AK_T_STREAM, stderr_stream ? AK_STREAM_STDERR : AK_STREAM_STDOUT);
        return send_msg(fd, b, st, err);
}

int agent_detach_get(int fd, const char *id, struct agent_detached *ret, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        int r = detach_query(fd, AK_DETACH_GET, id, 0, false, &b, err);

        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_DETACH_INFO, err);
        return r < 0 ? r : detached_from_msg(&m, ret, err);
}

int agent_detach_kill(int fd, const char *id, int sig, struct agent_detached *ret,
                      struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        int r = detach_query(fd, AK_DETACH_KILL, id, sig, false, &b, err);

        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_DETACH_INFO, err);
        return r < 0 ? r : detached_from_msg(&m, ret, err);
}

/* Receives DATA* END into sink. */
static int receive_stream(int fd, struct buf *b, int (*sink)(void *, const void *, size_t),
                          void *ctx, uint64_t limit, struct ak_err *err)
{
        uint64_t total = 0;
        struct ak_msg m;

        for (;;) {
                int r = ak_read_frame(fd, b, &m);
                if (r < 0)
                        return r == -EPIPE || r == -EBADMSG
                                   ? protocol_error(err, "truncated data")
                                   : ak_err_errno(err, r, "reading from agent");
                if (m.type == AK_END)
                        return 0;
                if (m.type == AK_ERROR)
                        return error_from_msg(&m, err);
                if (m.type != AK_DATA)
                        return protocol_error(err, "unexpected frame in data");
                total += m.len;
                if (limit && total > limit)
                        return ak_err_set(err, EFBIG, "more data than the %llu bytes announced",
                                          (unsigned long long)limit);
                if (sink && sink(ctx, m.payload, m.len) != 0)
                        return ak_err_set(err, EIO, "cannot store data");
        }
}

int agent_detach_logs(int fd, const char *id, bool stderr_stream,
                      int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                      struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        int r = detach_query(fd, AK_DETACH_LOGS, id, 0, stderr_stream, &b, err);
        return r < 0 ? r : receive_stream(fd, &b, sink, ctx, 0, err);
}

int agent_file_read(int fd, const char *path, uint64_t limit,
                    int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                    struct agent_file_info *ret_info, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        uint64_t v = 0;
        size_t st = ak_msg_begin(&b, AK_FILE_READ);
        int r;

        ak_put_str(&b, AK_T_PATH, path);
        if (limit)
                ak_put_u64(&b, AK_T_SIZE, limit);
        r = send_msg(fd, &b, st, err);
        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_FILE_INFO, err);
        if (r < 0)
                return r;
        if (ret_info) {
                ret_info->size = ak_get_u64(&m, AK_T_SIZE, &v) == 0 ? v : 0;
                ret_info->mode = ak_get_u64(&m, AK_T_MODE, &v) == 0 ? (uint32_t)v : 0;
        }
        return receive_stream(fd, &b, sink, ctx, limit, err);
}

static int file_write(int fd, const char *path, uint32_t mode, bool mode_given, uint64_t flags,
                      int src_fd, const void *data, size_t len, uint64_t *ret_size,
                      struct ak_err *err);

int agent_file_write(int fd, const char *path, uint32_t mode, bool mode_given, bool parents,
                     int src_fd, const void *data, size_t len, uint64_t *ret_size,
                     struct ak_err *err)
{
        return file_write(fd, path, mode, mode_given, parents ? AK_FILE_PARENTS : 0, src_fd, data,
                          len, ret_size, err);
}

int agent_file_write_nofollow(int fd, const char *path, uint32_t mode, const void *data, size_t len,
                              struct ak_err *err)
{
        return file_write(fd, path, mode, true, AK_FILE_PARENTS | AK_FILE_NOFOLLOW, -1, data, len,
                          NULL, err);
}

static int file_write(int fd, const char *path, uint32_t mode, bool mode_given, uint64_t flags,
                      int src_fd, const void *data, size_t len, uint64_t *ret_size,
                      struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        uint64_t v = 0;
        size_t st = ak_msg_begin(&b, AK_FILE_WRITE);
        int r;

        ak_put_str(&b, AK_T_PATH, path);
        if (mode_given)
                ak_put_u64(&b, AK_T_MODE, mode);
        ak_put_u64(&b, AK_T_FLAGS, flags);
        r = send_msg(fd, &b, st, err);
        if (r < 0)
                return r;
        if (src_fd >= 0) {
                char chunk[AK_CHUNK];
                for (;;) {
                        ssize_t n = read(src_fd, chunk, sizeof(chunk));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return ak_err_errno(err, errno, "reading input");
                        if (n == 0)
                                break;
                        r = ak_write_frame(fd, AK_DATA, chunk, (size_t)n);
                        if (r < 0)
                                break;
                }
        } else {
                for (size_t off = 0; off < len; off += AK_CHUNK) {
                        r = ak_write_frame(fd, AK_DATA, (const char *)data + off,
                                           MIN((size_t)AK_CHUNK, len - off));
                        if (r < 0)
                                break;
                }
        }
        if (r >= 0)
                r = ak_write_frame(fd, AK_END, NULL, 0);
        /* Even if sending failed, the agent may have said why before closing. */
        {
                int rr = read_reply(fd, &b, &m, AK_OK, err);
                if (rr < 0)
                        return rr;
        }
        if (r < 0)
                return ak_err_errno(err, r, "sending to agent");
        if (ret_size)
                *ret_size = ak_get_u64(&m, AK_T_SIZE, &v) == 0 ? v : 0;
        return 0;
}

static int simple_path_request(int fd, uint16_t type, const char *path, uint64_t flags,
                               uint32_t mode, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        size_t st = ak_msg_begin(&b, type);
        int r;

        ak_put_str(&b, AK_T_PATH, path);
        ak_put_u64(&b, AK_T_FLAGS, flags);
        if (mode)
                ak_put_u64(&b, AK_T_MODE, mode);
        r = send_msg(fd, &b, st, err);
        return r < 0 ? r : read_reply(fd, &b, &m, AK_OK, err);
}

int agent_file_remove(int fd, const char *path, bool recursive, struct ak_err *err)
{
        return simple_path_request(fd, AK_FILE_REMOVE, path, recursive ? AK_FILE_RECURSIVE : 0, 0,
                                   err);
}

int agent_mkdir(int fd, const char *path, uint32_t mode, bool parents, struct ak_err *err)
{
        return simple_path_request(fd, AK_MKDIR, path, parents ? AK_FILE_PARENTS : 0,
                                   mode ? mode : 0755, err);
}

static int dirent_from_msg(const struct ak_msg *m, struct agent_dirent *d)
{
        uint64_t v = 0;

        memset(d, 0, sizeof(*d));
        if (ak_get_str(m, AK_T_NAME, &d->name) < 0)
                return -EBADMSG;
        if (ak_get_u64(m, AK_T_TYPE, &v) == 0 && v <= AK_FT_SYMLINK)
                d->type = (int)v;
        if (ak_get_u64(m, AK_T_SIZE, &v) == 0)
                d->size = v;
        if (ak_get_u64(m, AK_T_MODE, &v) == 0)
                d->mode = (uint32_t)(v & 07777);
        if (ak_get_u64(m, AK_T_MTIME, &v) == 0)
                d->mtime_ns = (int64_t)v;
        return 0;
}

void agent_dirents_free(struct agent_dirent *d, size_t n)
{
        for (size_t i = 0; d && i < n; i++)
                free(d[i].name);
        free(d);
}

static int decode_dirent(const struct ak_msg *m, void *elem, struct ak_err *err)
{
        return dirent_from_msg(m, elem) < 0 ? protocol_error(err, "malformed listing entry") : 0;
}

static void clear_dirent(void *elem)
{
        free(((struct agent_dirent *)elem)->name);
}

int agent_file_list(int fd, const char *path, struct agent_dirent **ret, size_t *ret_n,
                    struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        size_t st = ak_msg_begin(&b, AK_FILE_LIST);
        int r;

        ak_put_str(&b, AK_T_PATH, path);
        r = send_msg(fd, &b, st, err);
        if (r < 0)
                return r;
        return read_entries(fd, &b, AK_FILE_ENTRY, 1000000, sizeof(**ret), decode_dirent,
                            clear_dirent, (void **)ret, ret_n, err);
}

int agent_file_stat(int fd, const char *path, struct agent_dirent *ret, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        size_t st = ak_msg_begin(&b, AK_FILE_STAT);
        int r;

        ak_put_str(&b, AK_T_PATH, path);
        r = send_msg(fd, &b, st, err);
        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_FILE_ENTRY, err);
        if (r < 0)
                return r;
        return dirent_from_msg(&m, ret) < 0 ? protocol_error(err, "malformed entry") : 0;
}

int agent_hello(int fd, int64_t *ret_pid, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        uint64_t v = 0;
        size_t st = ak_msg_begin(&b, AK_HELLO);
        int r;

        ak_put_u64(&b, AK_T_VERSION, AK_PROTO_VERSION);
        r = send_msg(fd, &b, st, err);
        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_HELLO, err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = ak_get_u64(&m, AK_T_PID, &v) == 0 ? (int64_t)v : 0;
        return 0;
}

int agent_identify(int fd, const char *uuid, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_free char *got = NULL;
        struct timeval tv = {AGENT_IDENTIFY_TIMEOUT_S, 0}, none = {0, 0};
        struct ak_msg m;
        size_t st = ak_msg_begin(&b, AK_HELLO);
        int r;

        ak_put_u64(&b, AK_T_VERSION, AK_PROTO_VERSION);
        /* an agent that never answers must not hang the host */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = send_msg(fd, &b, st, err);
        if (r >= 0)
                r = read_reply(fd, &b, &m, AK_HELLO, err);
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
        if (r < 0)
                return r;
        r = ak_get_str(&m, AK_T_UUID, &got);
        if (r == -ENOENT)
                return ak_err_set(err, EPROTO,
                                  "the agent does not say which sandbox it serves (an agent "
                                  "older than this agentkernel)");
        if (r < 0 || !uuid_is_valid(got))
                return protocol_error(err, "malformed sandbox id in HELLO");
        if (strcasecmp(got, uuid) != 0)
                return ak_err_set(err, EPERM,
                                  "the agent reached serves another sandbox (id '%s', not '%s')",
                                  got, uuid);
        return 0;
}
