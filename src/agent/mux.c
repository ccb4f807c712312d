// SPDX-License-Identifier: Apache-2.0
/*
 * The channel multiplexer of mux.h: one poll loop over the link and every channel's socket.
 * Nothing here blocks: the link and the sockets are non-blocking, what cannot be written yet
 * waits in a buffer bounded by the window (channels) or by what the loop reads (the link), and
 * a channel is read from only while its window has room and the link's buffer is short.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mux.h"
#include "proto.h"
#include "shared/buf.h"
#include "shared/err.h"
#include "shared/fd-util.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80 /* <linux/netfilter_ipv4.h>, which musl's headers lack */
#endif

#define LINK_OUT_HIGH (512u << 10) /* channels are not read while the link has this much queued */
#define HDR 8

struct chan {
        int fd;           /* -1: slot free */
        uint16_t id;      /* on the link */
        struct buf out;   /* from the link, to be written to fd */
        uint32_t unacked; /* bytes sent on the link the peer has not written out yet */
        uint32_t to_ack;  /* bytes written to fd, not yet acknowledged */
        bool local_eof;   /* fd said end of file; EOF sent */
        bool peer_eof;    /* peer sent EOF; shut fd for writing once out is empty */
        bool shut;        /* fd shut for writing */
};

struct mux {
        int link;
        struct buf in, out;
        struct chan ch[MUX_CHANNELS_MAX];
        uint16_t next_id;
        bool guest;
        const char *connect_path;
        struct mux_net net; /* capture_fds -1 and dial 0 without proxy mode */
};

static void encode_hdr(uint8_t h[HDR], uint16_t type, uint16_t chan, uint32_t len)
{
        const uint8_t v[HDR] = {(uint8_t)len,         (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                                (uint8_t)(len >> 24), (uint8_t)type,       (uint8_t)(type >> 8),
                                (uint8_t)chan,        (uint8_t)(chan >> 8)};
        memcpy(h, v, HDR);
}

static void put_hdr(struct buf *b, uint16_t type, uint16_t chan, uint32_t len)
{
        uint8_t h[HDR];
        encode_hdr(h, type, chan, len);
        (void)buf_append(b, h, sizeof(h));
}

static int send_ctl(struct mux *m, uint16_t type, uint16_t chan, uint32_t v, bool with_v)
{
        uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

        put_hdr(&m->out, type, chan, with_v ? 4 : 0);
        if (with_v)
                return buf_append(&m->out, p, sizeof(p));
        return 0;
}

static struct chan *chan_find(struct mux *m, uint16_t id)
{
        for (size_t i = 0; i < MUX_CHANNELS_MAX; i++)
                if (m->ch[i].fd >= 0 && m->ch[i].id == id)
                        return &m->ch[i];
        return NULL;
}

/* Open channels the guest opened (DIAL). */
static size_t dial_count(const struct mux *m)
{
        size_t n = 0;

        for (size_t i = 0; i < MUX_CHANNELS_MAX; i++)
                n += m->ch[i].fd >= 0 && m->ch[i].id >= MUX_GUEST_CHAN_BASE;
        return n;
}

static struct chan *chan_add(struct mux *m, int fd, uint16_t id)
{
        for (size_t i = 0; i < MUX_CHANNELS_MAX; i++)
                if (m->ch[i].fd < 0) {
                        struct chan *c = &m->ch[i];
                        *c = (struct chan){.fd = fd, .id = id};
                        (void)fd_set_nonblock(fd, true);
                        return c;
                }
        return NULL;
}

static void chan_drop(struct chan *c)
{
        close(c->fd);
        buf_done(&c->out);
        *c = (struct chan){.fd = -1};
}

/* Ends a channel here and tells the peer (a reset: whatever was queued is dropped). */
static void chan_reset(struct mux *m, struct chan *c)
{
        (void)send_ctl(m, AK_MUX_CLOSE, c->id, 0, false);
        chan_drop(c);
}

/* Once both directions ended here (our EOF sent, the peer's received and everything before it
 * written out), the channel is done at this end; the peer decides the same for its end from
 * the same two EOFs, so nothing more is sent (a CLOSE now could overtake data the peer has yet
 * to write out). */
static void chan_maybe_done(struct mux *m, struct chan *c)
{
        (void)m;
        if (c->local_eof && c->shut && c->out.len == 0)
                chan_drop(c);
}

static void flush_chan(struct mux *m, struct chan *c)
{
        while (c->out.len) {
                ssize_t n = write(c->fd, c->out.data, c->out.len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        chan_reset(m, c); /* the local end is gone */
                        return;
                }
                buf_consume(&c->out, (size_t)n);
                c->to_ack += (uint32_t)n;
        }
        if (c->to_ack) {
                (void)send_ctl(m, AK_MUX_ACK, c->id, c->to_ack, true);
                c->to_ack = 0;
        }
        if (c->out.len == 0 && c->peer_eof && !c->shut) {
                (void)shutdown(c->fd, SHUT_WR);
                c->shut = true;
        }
        chan_maybe_done(m, c);
}

/* Host, proxy mode: the guest's DIAL. A non-blocking connect from this process's network
 * namespace (the VM's capture namespace: whatever the address, it reaches the proxy's listener
 * or nothing); a connection that fails later ends the channel as any other socket error. */
static int dial(struct mux *m, uint16_t id, const uint8_t *p)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        memcpy(&sa.sin_addr.s_addr, p, 4);
        memcpy(&sa.sin_port, p + 4, 2);
        if (fd >= 0 && dial_count(m) >= MUX_DIAL_MAX) { /* a guest past its share: refused */
                close(fd);
                fd = -1;
        }
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
            errno != EINPROGRESS) {
                close(fd);
                fd = -1;
        }
        if (fd < 0 || !chan_add(m, fd, id)) {
                if (fd >= 0)
                        close(fd);
                return send_ctl(m, AK_MUX_CLOSE, id, 0, false);
        }
        return 0;
}

/* One frame from the link. -EPROTO when the peer broke the rules. */
static int on_frame(struct mux *m, const struct ak_msg *f)
{
        struct chan *c = chan_find(m, f->chan);

        switch (f->type) {
        case AK_MUX_OPEN: {
                struct ak_err e = {0};
                int fd;

                if (!m->guest || f->chan == 0 || f->chan >= MUX_GUEST_CHAN_BASE)
                        return -EPROTO;
                if (c) /* the host is done with it (it reuses only ids it freed) */
                        chan_drop(c);
                fd = unix_connect(m->connect_path, &e);
                if (fd < 0 || !chan_add(m, fd, f->chan)) {
                        if (fd >= 0)
                                close(fd);
                        return send_ctl(m, AK_MUX_CLOSE, f->chan, 0, false);
                }
                return 0;
        }
        case AK_MUX_DIAL:
                if (m->guest || !m->net.dial || f->chan < MUX_GUEST_CHAN_BASE ||
                    f->len != MUX_DIAL_LEN)
                        return -EPROTO;
                if (c) /* the guest is done with it (it reuses only ids it freed) */
                        chan_drop(c);
                return dial(m, f->chan, f->payload);
        case AK_MUX_DATA:
                if (!c)
                        return 0; /* reset here while it was on its way */
                if (c->peer_eof || c->out.len + f->len > MUX_WINDOW)
                        return -EPROTO;
                if (buf_append(&c->out, f->payload, f->len) < 0)
                        return -ENOMEM;
                flush_chan(m, c);
                return 0;
        case AK_MUX_EOF:
                if (c) {
                        c->peer_eof = true;
                        flush_chan(m, c);
                }
                return 0;
        case AK_MUX_CLOSE:
                if (c && m->guest && c->id >= MUX_GUEST_CHAN_BASE) {
                        /* the host's connection failed or was reset: the guest's client sees
                         * a reset too, not an orderly end */
                        struct linger l = {1, 0};
                        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
                }
                if (c)
                        chan_drop(c);
                return 0;
        case AK_MUX_ACK: {
                uint32_t n;
                if (f->len != 4)
                        return -EPROTO;
                if (!c)
                        return 0;
                n = (uint32_t)f->payload[0] | (uint32_t)f->payload[1] << 8 |
                    (uint32_t)f->payload[2] << 16 | (uint32_t)f->payload[3] << 24;
                if (n > c->unacked)
                        return -EPROTO;
                c->unacked -= n;
                return 0;
        }
        default:
                return -EPROTO;
        }
}

static int read_link(struct mux *m)
{
        ssize_t n;

        if (buf_reserve(&m->in, MUX_CHUNK) < 0)
                return -ENOMEM;
        n = read(m->link, m->in.data + m->in.len, MUX_CHUNK);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : -errno;
        if (n == 0)
                return 0;
        m->in.len += (size_t)n;
        for (;;) {
                struct ak_msg f;
                ssize_t k = ak_frame_parse((const uint8_t *)m->in.data, m->in.len, &f);
                int r;
                if (k < 0)
                        return (int)k;
                if (k == 0)
                        break;
                r = on_frame(m, &f);
                if (r < 0)
                        return r;
                buf_consume(&m->in, (size_t)k);
        }
        return 1;
}

static void read_chan(struct mux *m, struct chan *c)
{
        size_t room = MUX_WINDOW - c->unacked, hdr_at = m->out.len;
        ssize_t n;

        if (room > MUX_CHUNK)
                room = MUX_CHUNK;
        if (room == 0)
                return; /* the window is full: nothing may be read (0 bytes is not an end) */
        if (buf_reserve(&m->out, HDR + room) < 0)
                return;
        n = read(c->fd, m->out.data + hdr_at + HDR, room);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                if (n < 0) {
                        chan_reset(m, c);
                        return;
                }
                c->local_eof = true;
                (void)send_ctl(m, AK_MUX_EOF, c->id, 0, false);
                chan_maybe_done(m, c);
                return;
        }
        /* the header goes in front of the bytes read, in place (buf_append would write its NUL
         * terminator over the first of them) */
        encode_hdr((uint8_t *)m->out.data + hdr_at, AK_MUX_DATA, c->id, (uint32_t)n);
        m->out.len += HDR + (size_t)n;
        m->out.data[m->out.len] = '\0';
        c->unacked += (uint32_t)n;
}

static int flush_link(struct mux *m)
{
        while (m->out.len) {
                ssize_t n = write(m->link, m->out.data, m->out.len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0)
                        return n < 0 ? -errno : -EPIPE;
                buf_consume(&m->out, (size_t)n);
        }
        return 0;
}

/* A channel this end opens (the host: OPEN, ids below MUX_GUEST_CHAN_BASE; the guest: DIAL,
 * ids from it on), told to the peer; false when all MUX_CHANNELS_MAX are in use. */
static bool open_chan(struct mux *m, int fd, uint16_t type, const uint8_t dial_to[MUX_DIAL_LEN])
{
        const uint16_t base = m->guest ? MUX_GUEST_CHAN_BASE : 1;
        const uint16_t n = m->guest ? (uint16_t)(0x10000u - MUX_GUEST_CHAN_BASE)
                                    : (uint16_t)(MUX_GUEST_CHAN_BASE - 1);

        if (m->guest && dial_count(m) >= MUX_DIAL_MAX)
                return false;
        for (uint32_t tries = 0; tries < n; tries++) {
                uint16_t id = (uint16_t)(base + m->next_id++ % n);
                if (chan_find(m, id))
                        continue;
                if (!chan_add(m, fd, id))
                        return false;
                put_hdr(&m->out, type, id, dial_to ? MUX_DIAL_LEN : 0);
                if (dial_to)
                        (void)buf_append(&m->out, dial_to, MUX_DIAL_LEN);
                return true;
        }
        return false;
}

static void accept_one(struct mux *m, int listen_fd)
{
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        if (!open_chan(m, fd, AK_MUX_OPEN, NULL))
                close(fd); /* too many channels: the client sees end of file */
}

/* Guest, proxy mode: a connection the capture redirected to one of our listeners becomes a DIAL
 * channel to where it was going. */
static void accept_captured(struct mux *m, int listen_fd)
{
        struct sockaddr_in dst;
        socklen_t len = sizeof(dst);
        uint8_t p[MUX_DIAL_LEN];
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) < 0 || len < sizeof(dst) ||
            dst.sin_family != AF_INET) {
                close(fd);
                return;
        }
        memcpy(p, &dst.sin_addr.s_addr, 4);
        memcpy(p + 4, &dst.sin_port, 2);
        if (!open_chan(m, fd, AK_MUX_DIAL, p)) {
                struct linger l = {1, 0};
                (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
                close(fd); /* too many channels: a reset */
        }
}

static void reset_all(struct mux *m)
{
        for (size_t i = 0; i < MUX_CHANNELS_MAX; i++)
                if (m->ch[i].fd >= 0)
                        chan_drop(&m->ch[i]);
        buf_reset(&m->in);
        buf_reset(&m->out);
}

int mux_run(int link_fd, int listen_fd, const char *connect_path, int is_guest,
            const struct mux_net *net)
{
        static struct mux m; /* one per process; too big for a small stack */
        struct pollfd p[MUX_CHANNELS_MAX + 4];
        struct chan *pc[MUX_CHANNELS_MAX + 4];
        int which[MUX_CHANNELS_MAX + 4]; /* a listener's entry: 0 listen_fd, 1 + i capture i */
        int r = 0;

        memset(&m, 0, sizeof(m));
        m.link = link_fd;
        m.guest = is_guest;
        m.connect_path = connect_path;
        m.net = net ? *net : (struct mux_net){{-1, -1}, 0};
        if (!is_guest)
                m.net.capture_fds[0] = m.net.capture_fds[1] = -1;
        for (int i = 0; i < 2; i++)
                if (m.net.capture_fds[i] >= 0)
                        (void)fd_set_nonblock(m.net.capture_fds[i], true);
        for (size_t i = 0; i < MUX_CHANNELS_MAX; i++)
                m.ch[i].fd = -1;
        (void)fd_set_nonblock(link_fd, true);
        if (listen_fd >= 0)
                (void)fd_set_nonblock(listen_fd, true);
        for (;;) {
                nfds_t n = 0;
                bool link_busy = m.out.len >= LINK_OUT_HIGH;

                p[n] = (struct pollfd){link_fd, (short)(POLLIN | (m.out.len ? POLLOUT : 0)), 0};
                pc[n++] = NULL;
                if (listen_fd >= 0 && !link_busy) {
                        p[n] = (struct pollfd){listen_fd, POLLIN, 0};
                        which[n] = 0;
                        pc[n++] = NULL;
                }
                for (int i = 0; i < 2; i++)
                        if (m.net.capture_fds[i] >= 0 && !link_busy) {
                                p[n] = (struct pollfd){m.net.capture_fds[i], POLLIN, 0};
                                which[n] = 1 + i;
                                pc[n++] = NULL;
                        }
                for (size_t i = 0; i < MUX_CHANNELS_MAX; i++) {
                        struct chan *c = &m.ch[i];
                        short ev = 0;
                        if (c->fd < 0 || (c->local_eof && c->out.len == 0))
                                continue; /* nothing to do until the peer says more: a hung-up
                                             socket would wake poll() every time */
                        if (!c->local_eof && !link_busy && c->unacked < MUX_WINDOW)
                                ev |= POLLIN;
                        if (c->out.len)
                                ev |= POLLOUT;
                        p[n] = (struct pollfd){c->fd, ev, 0};
                        pc[n++] = c;
                }
                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        r = read_link(&m);
                        if (r == 0 && is_guest) {
                                /* no host at the other end (yet, or any more): forget its
                                 * channels and wait for the next one */
                                reset_all(&m);
                                usleep(20000);
                                continue;
                        }
                        if (r <= 0)
                                break;
                }
                for (nfds_t i = 1; i < n; i++) {
                        struct chan *c = pc[i];
                        if (!c) {
                                if ((p[i].revents & POLLIN) && which[i] == 0)
                                        accept_one(&m, listen_fd);
                                else if (p[i].revents & POLLIN)
                                        accept_captured(&m, p[i].fd);
                                continue;
                        }
                        if (c->fd < 0 || p[i].fd != c->fd)
                                continue; /* reset while handling an earlier entry */
                        if (p[i].revents & POLLOUT)
                                flush_chan(&m, c);
                        /* only when asked for: a hung-up socket reports POLLHUP even while
                         * the window is full, and a read of 0 bytes would look like its end */
                        if (c->fd >= 0 && p[i].fd == c->fd && (p[i].events & POLLIN) &&
                            (p[i].revents & (POLLIN | POLLHUP | POLLERR)) && !c->local_eof)
                                read_chan(&m, c);
                }
                r = flush_link(&m);
                if (r < 0)
                        break;
        }
        reset_all(&m);
        buf_done(&m.in);
        buf_done(&m.out);
        return r;
}
