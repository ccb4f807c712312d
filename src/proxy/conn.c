// SPDX-License-Identifier: Apache-2.0
/*
 * A proxied connection's life and bytes: accepting it within the limits, its events on both
 * sides, reading and writing through its bounded buffers (backpressure: a side is not read while
 * the buffer towards the other is full), half-closes, bulk tunnels moved by splice(2) through two
 * pipes, refusals (an HTTP status, or a reset), and closing. What the bytes mean is decided
 * elsewhere (http.c, destination.c). Must never block, or hold a buffer or pipe an idle
 * connection does not need.
 */
#include <arpa/inet.h> /* before linux/netfilter_ipv4.h: glibc's netinet/in.h first */
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/macro.h"
#include "worker-private.h"

#define SNIFF_WAIT_MS 300          /* then it is a server-speaks-first protocol: raw TCP */
#define PIPE_SIZE (256 * 1024)     /* a spliced tunnel's pipe, per direction (kernel memory) */
#define SPLICE_AFTER (1024 * 1024) /* bytes a tunnel moves through buffers before splice */

static void close_rst(int fd)
{
        struct linger l = {1, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        close(fd);
}

void upstream_close(struct conn *c)
{
        if (c->ufd < 0)
                return;
        ep_set(c->ufd, &c->uev, &c->umask, 0);
        close(c->ufd);
        c->ufd = -1;
        c->connecting = c->upstream_ok = c->up_eof = c->u_shut = false;
        c->up_host[0] = '\0';
        buf_free(&c->up);
        tls_end_free(&c->ut);
        buf_free(&c->rin);
        mitm_resp_free(c);
}

void conn_close(struct conn *c)
{
        if (c->closed)
                return;
        if (c->lookup) {
                c->lookup->c = NULL;
                c->lookup = NULL;
        }
        if (c->mitm)
                mitm_conn_closing(c);
        conn_log(c);
        ep_set(c->cfd, &c->cev, &c->cmask, 0);
        if (c->rst)
                close_rst(c->cfd);
        else
                close(c->cfd);
        upstream_close(c);
        buf_free(&c->cin);
        buf_free(&c->down);
        buf_free(&c->hbuf);
        if (c->spliced) {
                close(c->pin[0]);
                close(c->pin[1]);
                close(c->pout[0]);
                close(c->pout[1]);
                c->spliced = false;
                W.spliced--;
        }
        free(c->head);
        c->head = NULL;
        h2_free(c);
        tls_end_free(&c->ct);
        mitm_body_free(c);
        c->sb->st.open--;
        W.open--;
        LIST_UNLINK(W.conns, c);
        c->closed = true;
        c->mode = CM_CLOSING;
        c->next = W.dead;
        W.dead = c;
}

/* Refuses the current destination: 403 (or another status) naming the rule for HTTP and
 * CONNECT, a reset for other TCP. */
void conn_refuse(struct conn *c, int status, const char *reason)
{
        char body[512], resp[1024];
        const char *text = status == 403   ? "Forbidden"
                           : status == 400 ? "Bad Request"
                           : status == 431 ? "Request Header Fields Too Large"
                           : status == 502 ? "Bad Gateway"
                           : status == 504 ? "Gateway Timeout"
                                           : "Error";
        int blen, rlen;

        if (c->closed)
                return;
        if (c->mode == CM_SNIFF || c->mode == CM_TUNNEL) {
                c->rst = true;
                conn_close(c);
                return;
        }
        blen = snprintf(body, sizeof(body), "agentkernel: %s%s%s:%u: %s\n",
                        status == 403 ? "egress denied: " : "", c->host[0] ? c->host : "",
                        c->host[0] ? "" : "?", c->port, reason);
        if (blen < 0 || (size_t)blen >= sizeof(body))
                blen = (int)strlen(body);
        rlen = snprintf(resp, sizeof(resp),
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: "
                        "%d\r\nConnection: close\r\nX-Agentkernel-Rule: %s\r\n\r\n%s",
                        status, text, blen, reason, body);
        if (rlen < 0 || (size_t)rlen >= sizeof(resp))
                rlen = (int)strlen(resp);
        buf_free(&c->down);
        upstream_close(c);
        (void)buf_put(&c->down, resp, (size_t)rlen);
        c->mode = CM_CLOSING;
        c->deadline = W.now + 5000;
        conn_update(c);
}

void conn_deny(struct conn *c)
{
        conn_decided(c);
        conn_refuse(c, 403, c->dec.why);
}

void conn_deny_reason(struct conn *c, int status, const char *fmt, ...)
{
        va_list ap;

        c->dec = (struct net_decision){.action = NET_DENY, .rule = -2};
        va_start(ap, fmt);
        vsnprintf(c->dec.why, sizeof(c->dec.why), fmt, ap);
        va_end(ap);
        conn_decided(c);
        conn_refuse(c, status, c->dec.why);
}

static bool flush(int fd, struct buf *b, uint64_t *counter, uint64_t *stat, bool *dead)
{
        while (buf_len(b)) {
                ssize_t n = send(fd, b->d + b->start, buf_len(b), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return true;
                        *dead = true;
                        return false;
                }
                if (counter)
                        *counter += (uint64_t)n;
                if (stat)
                        *stat += (uint64_t)n;
                buf_consume(b, (size_t)n);
        }
        return true;
}

/* Reads from fd into b; returns bytes read, 0 on EOF, -1 when nothing now, -2 on error. */
static ssize_t fill(int fd, struct buf *b)
{
        size_t room;
        uint8_t *t = buf_tail(b, &room);
        ssize_t n;
        if (!t)
                return -1;
        if (room == 0)
                return -1;
        n = read(fd, t, room);
        if (n < 0) {
                if (b->start == b->end)
                        buf_free(b);
                return errno == EAGAIN || errno == EINTR ? -1 : -2;
        }
        b->end += (size_t)n;
        if (b->start == b->end)
                buf_free(b);
        return n;
}

/* Moves what a pipe holds to fd. false when fd is gone. */
static bool pipe_push(int from, size_t *len, int fd)
{
        while (*len) {
                ssize_t n = splice(from, NULL, fd, NULL, *len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR;
                if (n == 0)
                        return false;
                *len -= (size_t)n;
        }
        return true;
}

/* Reads fd into a pipe: bytes moved, 0 on EOF, -1 when nothing now, -2 on error. */
static ssize_t pipe_pull(int fd, int to, size_t *len)
{
        ssize_t n = splice(fd, NULL, to, NULL, PIPE_SIZE - *len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? -1 : -2;
        *len += (size_t)n;
        return n;
}

/* A spliced tunnel's event on the client side (client) or the upstream side. */
static void spliced_event(struct conn *c, bool client, uint32_t ev)
{
        int fd = client ? c->cfd : c->ufd, other = client ? c->ufd : c->cfd;
        int *in = client ? c->pin : c->pout, *out = client ? c->pout : c->pin;
        size_t *in_len = client ? &c->pin_len : &c->pout_len;
        size_t *out_len = client ? &c->pout_len : &c->pin_len;
        ssize_t n;

        if ((ev & EPOLLOUT) && !pipe_push(out[0], out_len, fd)) {
                conn_close(c);
                return;
        }
        /* a few rounds per wakeup while both sides keep up: fewer trips through epoll */
        for (int round = 0; round < 4 && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)); round++) {
                n = pipe_pull(fd, in[1], in_len);
                if (n == -2 && client) {
                        conn_close(c);
                        return;
                }
                if (n == 0 || n == -2) {
                        if (client)
                                c->cin_eof = true;
                        else
                                c->up_eof = true;
                }
                if (n > 0) {
                        if (client)
                                c->bytes_out += (uint64_t)n;
                        else
                                c->bytes_in += (uint64_t)n;
                        c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
                }
                if (*in_len && !pipe_push(in[0], in_len, other)) {
                        conn_close(c);
                        return;
                }
                if (n <= 0 || *in_len)
                        break; /* nothing more now, or the other side is full */
        }
}

/* Sends what b holds to fd, c's client or upstream socket (through its TLS end t when
 * intercepted). false when fd is gone: c is closed. */
static bool send_or_close_tls(struct conn *c, int fd, struct buf *b, struct tls_end *t)
{
        bool dead = false;

        if (t ? !tls_write(t, fd, b, &dead) || dead : !flush(fd, b, NULL, NULL, &dead) || dead) {
                conn_close(c);
                return false;
        }
        return true;
}

static bool send_or_close(struct conn *c, int fd, struct buf *b)
{
        return send_or_close_tls(c, fd, b, fd == c->cfd ? c->ct : c->ut);
}

/* Is there something for the client (plaintext not yet out, or ciphertext)? */
static bool down_pending(const struct conn *c)
{
        return buf_len(&c->down) || tls_out_pending(c->ct);
}

/* Where upstream's plaintext goes: through the scrubber while requests are parsed. */
static struct buf *up_target(struct conn *c)
{
        return c->mitm && (c->mode == CM_HTTP || c->mode == CM_H2) ? &c->rin : &c->down;
}

/* Client bytes: through its TLS end when intercepted. As fill(). A failed handshake is logged
 * (tls_client_rejected_ca) and ends c. */
static ssize_t client_fill(struct conn *c, struct buf *b, bool sock)
{
        bool eof;
        ssize_t n;
        if (!c->ct)
                return fill(c->cfd, b);
        bool was_done = c->ct->hs_done;
        n = tls_read(c->ct, c->cfd, b, sock, &eof);
        if (n == -2)
                mitm_client_tls_failed(c);
        /* fronting: the name inside must be the CONNECT's (or the first sniffed) host */
        if (!was_done && c->ct->hs_done && !mitm_sni_ok(c)) {
                c->rst = true;
                return -2;
        }
        if (!was_done && c->ct->hs_done) {
                /* ALPN was mirrored (tls.c): h2 on both sides, or HTTP/1.1 towards upstream */
                if (tls_is_h2(c->ct)) {
                        if (!tls_is_h2(c->ut) || h2_start(c) < 0) {
                                c->rst = true;
                                return -2;
                        }
                } else if (tls_is_h2(c->ut)) {
                        upstream_close(c); /* the first request connects again */
                }
        }
        return n;
}

/* Upstream bytes: through its TLS end when intercepted. As fill(). */
static ssize_t up_fill(struct conn *c, bool sock)
{
        bool eof;
        if (!c->ut)
                return fill(c->ufd, &c->down);
        return tls_read(c->ut, c->ufd, up_target(c), sock, &eof);
}

/* A tunnel whose buffers are empty moves to splice (when two pipes can be had). */
static void try_splice(struct conn *c)
{
        /* only bulk tunnels: an idle or interactive one holds no pipe (and no buffer) */
        if (c->spliced || c->mitm || c->sni_check || !c->upstream_ok || buf_len(&c->up) ||
            buf_len(&c->down) || buf_len(&c->cin) || c->bytes_in + c->bytes_out < SPLICE_AFTER)
                return;
        /* four fds more: only while the connections' own two each stay within the limit */
        if ((rlim_t)W.open * 2 + ((rlim_t)W.spliced + 1) * 4 + 256 > W.nofile)
                return;
        if (pipe2(c->pin, O_NONBLOCK | O_CLOEXEC) < 0)
                return;
        if (pipe2(c->pout, O_NONBLOCK | O_CLOEXEC) < 0) {
                close(c->pin[0]);
                close(c->pin[1]);
                return;
        }
        (void)fcntl(c->pin[1], F_SETPIPE_SZ, PIPE_SIZE);
        (void)fcntl(c->pout[1], F_SETPIPE_SZ, PIPE_SIZE);
        buf_free(&c->up);
        buf_free(&c->down);
        c->spliced = true;
        W.spliced++;
        c->pin_len = c->pout_len = 0;
}

void client_event(struct conn *c, uint32_t ev)
{
        if (c->spliced) {
                spliced_event(c, true, ev);
                return;
        }
        ssize_t n;

        if (ev & EPOLLERR) {
                conn_close(c);
                return;
        }
        if (ev & EPOLLOUT) {
                if (!send_or_close(c, c->cfd, &c->down))
                        return;
                if (c->mode == CM_HTTP && c->hs == H_HEAD && buf_len(&c->cin) && !buf_len(&c->down))
                        http_process(c);
        }
        if (c->mode == CM_CLOSING)
                return;
        if (ev & (EPOLLIN | EPOLLHUP)) {
                struct buf *b = c->mode == CM_TUNNEL && !c->sni_check ? &c->up : &c->cin;
                n = client_fill(c, b, true);
                if (n == -2) {
                        conn_close(c);
                        return;
                }
                if (n == 0)
                        c->cin_eof = true;
                if (n > 0) {
                        if (b == &c->up)
                                c->bytes_out += (uint64_t)n;
                        if (c->mode == CM_TUNNEL || (c->mode == CM_HTTP && c->hs == H_BODY))
                                c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
                }
                if (c->mode == CM_H2) {
                        h2_process(c);
                        return;
                }
                if (c->mode == CM_SNIFF) {
                        sniff_decide(c, c->cin_eof);
                        return;
                }
                if (c->mode == CM_TUNNEL && c->sni_check && !connect_sni_step(c))
                        return;
                if (c->mode == CM_HTTP)
                        http_process(c);
        }
}

void upstream_event(struct conn *c, uint32_t ev)
{
        ssize_t n;

        if (c->spliced) {
                spliced_event(c, false, ev);
                return;
        }
        if (c->connecting) {
                int err = 0;
                socklen_t l = sizeof(err);
                if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return;
                (void)getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &l);
                c->connecting = false;
                if (err) {
                        char why[128];
                        snprintf(why, sizeof(why), "cannot connect: %s", strerror(err));
                        upstream_close(c);
                        conn_refuse(c, 502, why);
                        return;
                }
                if (c->mitm && c->alpn_seen && tls_up_start(c) < 0) {
                        upstream_close(c);
                        conn_refuse(c, 502, "cannot start TLS upstream");
                        return;
                }
                c->upstream_ok = true;
                dest_decided(c);
                return;
        }
        if ((ev & EPOLLOUT) && !send_or_close(c, c->ufd, &c->up))
                return;
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                size_t before = buf_len(&c->down);
                n = up_fill(c, true);
                if (n == -2 && c->ut && c->ut->failed) {
                        mitm_upstream_tls_failed(c);
                        return;
                }
                if (n == -2) {
                        c->up_eof = true;
                        if (c->mode != CM_TUNNEL)
                                c->keep_alive = false;
                }
                if (n == 0)
                        c->up_eof = true;
                if (n > 0) {
                        c->bytes_in += (uint64_t)n;
                        /* a long download is not idle */
                        if (c->mode == CM_TUNNEL || (c->mode == CM_HTTP && c->hs != H_HEAD))
                                c->deadline = W.now + (int64_t)W.o->idle_timeout_ms;
                }
                if (c->mode == CM_H2)
                        h2_process(c);
                else if (c->mode == CM_HTTP && (c->hs == H_PENDING || c->hs == H_BODY))
                        c->mitm ? mitm_response(c) : http_response(c, before);
                else if (c->mode == CM_HTTP && c->up_eof) {
                        upstream_close(c);
                }
        }
}

/* Sends what is buffered towards a connected upstream. false when that failed and c is closed. */
static bool flush_up(struct conn *c)
{
        return c->ufd < 0 || !c->upstream_ok || (!buf_len(&c->up) && !tls_out_pending(c->ut)) ||
               send_or_close(c, c->ufd, &c->up);
}

/* Sets the epoll interests from the state, propagates half-closes, closes what is done. */
void conn_update(struct conn *c)
{
        uint32_t cw = 0, uw = 0;

        if (c->closed)
                return;
        /* a ClientHello that waited for upstream's handshake (tls.c) goes on */
        if (c->ct && tls_hello_ready(c)) {
                ssize_t n = client_fill(c, &c->cin, false);
                if (c->closed)
                        return;
                if (n == -2) {
                        conn_close(c);
                        return;
                }
                if (n == 0)
                        c->cin_eof = true;
                if (c->mode == CM_H2)
                        h2_process(c);
                else if (n >= 0 && c->mode == CM_HTTP)
                        http_process(c);
                if (c->closed)
                        return;
        }
        /* intercepted: plaintext the TLS ends hold, now that there may be room for it */
        if (c->ct && c->mode != CM_CLOSING && !c->cin_eof && tls_has_input(c->ct)) {
                struct buf *b = c->mode == CM_TUNNEL ? &c->up : &c->cin;
                ssize_t n = buf_room(b) ? client_fill(c, b, false) : -1;
                if (c->closed)
                        return;
                if (n == -2) {
                        conn_close(c);
                        return;
                }
                if (n == 0)
                        c->cin_eof = true;
                if (n > 0 && b == &c->up)
                        c->bytes_out += (uint64_t)n;
                if (c->mode == CM_H2) {
                        h2_process(c);
                        if (c->closed)
                                return;
                } else if (n >= 0 && c->mode == CM_HTTP) {
                        http_process(c);
                        if (c->closed)
                                return;
                }
        }
        if (c->ut && c->upstream_ok && !c->up_eof && tls_has_input(c->ut) &&
            buf_room(up_target(c))) {
                ssize_t n = up_fill(c, false);
                if (n == -2 && c->ut->failed) {
                        mitm_upstream_tls_failed(c);
                        return;
                }
                if (n == 0 || n == -2)
                        c->up_eof = true;
                if (n > 0)
                        c->bytes_in += (uint64_t)n;
                if (c->mode == CM_H2) {
                        h2_process(c);
                        if (c->closed)
                                return;
                } else if (n != -1 && c->mode == CM_HTTP &&
                           (c->hs == H_PENDING || c->hs == H_BODY)) {
                        mitm_response(c);
                        if (c->closed)
                                return;
                }
        }
        /* a scrubbed response that waited for room towards the client */
        if (c->mitm && c->mode == CM_HTTP && buf_len(&c->rin) &&
            (c->hs == H_PENDING || c->hs == H_BODY) && buf_room(&c->down) > BUF_SIZE / 2) {
                mitm_response(c);
                if (c->closed)
                        return;
        }
        /* write what we can now (cheap, and saves a wakeup) */
        if (down_pending(c)) {
                if (!send_or_close(c, c->cfd, &c->down))
                        return;
                /* a request that waited for the last response to go out */
                if (c->mode == CM_HTTP && c->hs == H_HEAD && buf_len(&c->cin) &&
                    !buf_len(&c->down)) {
                        http_process(c);
                        if (c->closed)
                                return;
                }
        }
        if (c->mb && c->ufd >= 0 && c->upstream_ok) {
                mitm_body_flush(c);
                if (c->mode == CM_HTTP && c->hs == H_PENDING && c->resp_done) {
                        http_process(c);
                        if (c->closed)
                                return;
                }
        }
        if (!flush_up(c))
                return;
        /* a body that waited for room towards upstream */
        if (c->mode == CM_HTTP && c->hs == H_BODY && buf_len(&c->cin) && buf_room(&c->up)) {
                http_process(c);
                if (c->closed || !flush_up(c))
                        return;
        }
        switch (c->mode) {
        case CM_SNIFF:
                if (!c->cin_eof && buf_len(&c->cin) < SNIFF_MAX)
                        cw |= EPOLLIN;
                break;
        case CM_HTTP:
                /* (a ClientHello waiting for upstream's handshake reads nothing more meanwhile:
                 * what is buffered is all it needs, and a full buffer would spin) */
                if (!c->cin_eof && !c->hello_wait &&
                    ((c->hs == H_HEAD && buf_len(&c->cin) < HEAD_MAX) ||
                     (c->hs == H_BODY && buf_room(&c->cin) > 0 && buf_len(&c->cin) < BUF_SIZE)))
                        cw |= EPOLLIN;
                if (c->cin_eof && c->hs == H_HEAD && buf_len(&c->down) == 0) {
                        conn_close(c);
                        return;
                }
                if (c->up_eof && c->hs == H_HEAD && buf_len(&c->down) == 0 && c->ufd >= 0)
                        upstream_close(c);
                if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && buf_room(up_target(c)) > 0)
                        uw |= EPOLLIN;
                /* a TLS handshake upstream reads before any request is sent */
                if (c->ut && !c->ut->hs_done && !c->up_eof)
                        uw |= EPOLLIN;
                break;
        case CM_TUNNEL:
                /* bytes read before the tunnel began go first, as room allows */
                if (!c->sni_check && buf_len(&c->cin) && buf_room(&c->up)) {
                        size_t k = MIN(buf_len(&c->cin), buf_room(&c->up));
                        (void)buf_put(&c->up, c->cin.d + c->cin.start, k);
                        c->bytes_out += k;
                        buf_consume(&c->cin, k);
                        if (!flush_up(c))
                                return;
                }
                try_splice(c);
                if (c->spliced) {
                        if (!c->cin_eof && c->pin_len < PIPE_SIZE)
                                cw |= EPOLLIN;
                        if (c->pout_len)
                                cw |= EPOLLOUT;
                        if (!c->up_eof && c->pout_len < PIPE_SIZE)
                                uw |= EPOLLIN;
                        if (c->pin_len)
                                uw |= EPOLLOUT;
                        if (c->cin_eof && c->pin_len == 0 && !c->u_shut) {
                                (void)shutdown(c->ufd, SHUT_WR);
                                c->u_shut = true;
                        }
                        if (c->up_eof && c->pout_len == 0 && !c->c_shut) {
                                (void)shutdown(c->cfd, SHUT_WR);
                                c->c_shut = true;
                        }
                        if (c->u_shut && c->c_shut) {
                                conn_close(c);
                                return;
                        }
                        ep_set(c->cfd, &c->cev, &c->cmask, cw);
                        ep_set(c->ufd, &c->uev, &c->umask, uw);
                        return;
                }
                if (!c->cin_eof && (c->sni_check ? buf_len(&c->cin) < SNIFF_MAX
                                                 : buf_room(&c->up) > 0 && !buf_len(&c->cin)))
                        cw |= EPOLLIN;
                if (c->ufd >= 0 && c->upstream_ok && !c->up_eof && buf_room(&c->down) > 0)
                        uw |= EPOLLIN;
                /* half-closes travel once the bytes before them have */
                if (c->cin_eof && !c->sni_check && buf_len(&c->up) == 0 && !buf_len(&c->cin) &&
                    !c->u_shut && c->ufd >= 0 && c->upstream_ok) {
                        (void)shutdown(c->ufd, SHUT_WR);
                        c->u_shut = true;
                }
                if (c->up_eof && buf_len(&c->down) == 0 && !c->c_shut) {
                        (void)shutdown(c->cfd, SHUT_WR);
                        c->c_shut = true;
                }
                if ((c->u_shut || c->ufd < 0) && c->c_shut) {
                        conn_close(c);
                        return;
                }
                if (c->cin_eof && c->ufd < 0 && !c->connecting && !c->lookup) {
                        conn_close(c);
                        return;
                }
                break;
        case CM_H2:
                /* frames the sessions could not put out for lack of room */
                h2_process(c);
                if (c->closed)
                        return;
                if (c->mode == CM_H2 && h2_update(c, &cw, &uw) && !down_pending(c)) {
                        conn_close(c);
                        return;
                }
                if (c->ut && !c->ut->hs_done && !c->up_eof)
                        uw |= EPOLLIN;
                if (!flush_up(c))
                        return;
                break;
        case CM_CLOSING:
                if (!down_pending(c)) {
                        conn_close(c);
                        return;
                }
                break;
        default:
                break;
        }
        if (c->ct ? buf_len(&c->ct->out) || (c->ct->hs_done && buf_len(&c->down))
                  : buf_len(&c->down))
                cw |= EPOLLOUT;
        if (c->connecting ||
            (c->upstream_ok && (c->ut ? buf_len(&c->ut->out) || (c->ut->hs_done && buf_len(&c->up))
                                      : buf_len(&c->up))))
                uw |= EPOLLOUT;
        ep_set(c->cfd, &c->cev, &c->cmask, cw);
        ep_set(c->ufd, &c->uev, &c->umask, uw);
}

void listener_accept(struct sandbox *sb)
{
        for (int i = 0; i < 64; i++) {
                struct sockaddr_in local;
                socklen_t l = sizeof(local);
                int fd = accept4(sb->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct conn *c;
                int one = 1;

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE) {
                                /* level-triggered: rest rather than spin; sweep() resumes */
                                ep_set(sb->tcp_fd, &sb->lev, &sb->lmask, 0);
                                sb->accept_paused_ms = W.now + 200;
                        }
                        return;
                }
                if (W.open >= W.max_conns || sb->st.open >= W.o->max_conns_per_sandbox ||
                    !(c = calloc(1, sizeof(*c)))) {
                        struct net_decision d = {.action = NET_DENY, .rule = -2};
                        snprintf(d.why, sizeof(d.why), "connection limit");
                        sb->st.denied++;
                        log_decision(sb, "tcp", NULL, NULL, 0, NULL, &d, 0, 0);
                        close_rst(fd);
                        continue;
                }
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->cev.kind = EVK_CLIENT;
                c->uev.kind = EVK_UPSTREAM;
                c->sb = sb;
                c->cfd = fd;
                c->ufd = -1;
                c->kind = "tcp";
                c->deadline = W.now + (int64_t)W.o->header_timeout_ms;
                c->sniff_until = W.now + SNIFF_WAIT_MS;
                http_parser_init(&c->req, HTTP_REQUEST);
                c->req.data = c;
                l = sizeof(c->orig);
                if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &c->orig, &l) < 0 ||
                    (getsockname(fd, (struct sockaddr *)&local, &(socklen_t){sizeof(local)}) == 0 &&
                     local.sin_addr.s_addr == c->orig.sin_addr.s_addr &&
                     local.sin_port == c->orig.sin_port)) {
                        c->explicit_proxy = true;
                        c->mode = CM_HTTP;
                        c->hs = H_HEAD;
                } else {
                        c->mode = CM_SNIFF;
                }
                LIST_PUSH(W.conns, c);
                W.open++;
                sb->st.open++;
                sb->st.total++;
                conn_update(c);
        }
}
