// SPDX-License-Identifier: Apache-2.0
/*
 * Agent protocol codec, shared by the host and agentkernel-agent. It must stay free of policy and
 * of anything the static agent cannot link: only libc and src/shared/buf.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/strv.h"

static void put_le16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
}

static uint64_t get_le64(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

bool ak_type_is_raw(uint16_t type)
{
        switch (type) {
        case AK_DATA:
        case AK_STDIN:
        case AK_STDOUT:
        case AK_STDERR:
        case AK_STDIN_EOF:
        case AK_END:
        case AK_PING:
        case AK_PONG:
                return true;
        default:
                return false;
        }
}

size_t ak_msg_begin(struct buf *b, uint16_t type)
{
        size_t start = b->len;
        uint8_t hdr[AK_FRAME_HDR] = {0};

        put_le16(hdr + 4, type);
        if (buf_append(b, hdr, sizeof(hdr)) < 0)
                return (size_t)-1;
        return start;
}

int ak_put_bytes(struct buf *b, uint16_t tag, const void *p, size_t n)
{
        uint8_t h[6];
        int r;

        if (n > AK_FRAME_MAX)
                return -EMSGSIZE;
        put_le16(h, tag);
        put_le32(h + 2, (uint32_t)n);
        r = buf_append(b, h, sizeof(h));
        if (r < 0)
                return r;
        return buf_append(b, p, n);
}

int ak_put_str(struct buf *b, uint16_t tag, const char *s)
{
        return ak_put_bytes(b, tag, s, strlen(s));
}

int ak_put_u64(struct buf *b, uint16_t tag, uint64_t v)
{
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
                le[i] = (uint8_t)(v >> (8 * i));
        return ak_put_bytes(b, tag, le, sizeof(le));
}

int ak_msg_end(struct buf *b, size_t start)
{
        size_t len;

        if (start == (size_t)-1 || start + AK_FRAME_HDR > b->len)
                return -ENOMEM;
        len = b->len - start - AK_FRAME_HDR;
        if (len > AK_FRAME_MAX) {
                b->len = start;
                return -EMSGSIZE;
        }
        put_le32((uint8_t *)b->data + start, (uint32_t)len);
        return 0;
}

/* The 8-byte header of a frame with an n-byte payload. */
static int frame_header(uint8_t hdr[AK_FRAME_HDR], uint16_t type, size_t n)
{
        if (n > AK_FRAME_MAX)
                return -EMSGSIZE;
        memset(hdr, 0, AK_FRAME_HDR);
        put_le32(hdr, (uint32_t)n);
        put_le16(hdr + 4, type);
        return 0;
}

int ak_put_frame(struct buf *b, uint16_t type, const void *p, size_t n)
{
        uint8_t hdr[AK_FRAME_HDR];
        int r = frame_header(hdr, type, n);

        if (r < 0)
                return r;
        r = buf_append(b, hdr, sizeof(hdr));
        if (r < 0)
                return r;
        return buf_append(b, p, n);
}

ssize_t ak_put_frame_from_fd(struct buf *b, uint16_t type, int fd, size_t max)
{
        uint8_t hdr[AK_FRAME_HDR];
        ssize_t n;
        int r;

        if (max > AK_FRAME_MAX)
                return -EMSGSIZE;
        r = buf_reserve(b, AK_FRAME_HDR + max);
        if (r < 0)
                return r;
        do
                n = read(fd, b->data + b->len + AK_FRAME_HDR, max);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return n < 0 ? -errno : 0;
        (void)frame_header(hdr, type, (size_t)n);
        memcpy(b->data + b->len, hdr, sizeof(hdr));
        b->len += AK_FRAME_HDR + (size_t)n;
        b->data[b->len] = '\0';
        return n;
}

ssize_t ak_frame_parse(const uint8_t *p, size_t len, struct ak_msg *ret)
{
        uint32_t plen;

        if (len < AK_FRAME_HDR)
                return 0;
        plen = get_le32(p);
        if (plen > AK_FRAME_MAX)
                return -EBADMSG;
        if (len - AK_FRAME_HDR < plen)
                return 0;
        ret->len = plen;
        ret->type = get_le16(p + 4);
        ret->chan = get_le16(p + 6);
        ret->payload = p + AK_FRAME_HDR;
        return (ssize_t)(AK_FRAME_HDR + plen);
}

/* Iterates fields: returns 1 with tag/value set, 0 at the end, -EBADMSG when truncated. */
static int tlv_next(const struct ak_msg *m, size_t *off, uint16_t *tag, const uint8_t **val,
                    uint32_t *vlen)
{
        size_t o = *off;
        uint32_t n;

        if (o == m->len)
                return 0;
        if (m->len - o < 6)
                return -EBADMSG;
        *tag = get_le16(m->payload + o);
        n = get_le32(m->payload + o + 2);
        if (n > m->len - o - 6)
                return -EBADMSG;
        *val = m->payload + o + 6;
        *vlen = n;
        *off = o + 6 + n;
        return 1;
}

int ak_msg_validate(const struct ak_msg *m)
{
        size_t off = 0, count = 0;
        uint16_t tag;
        const uint8_t *val;
        uint32_t vlen;
        int r;

        if (ak_type_is_raw(m->type))
                return 0;
        while ((r = tlv_next(m, &off, &tag, &val, &vlen)) > 0)
                if (++count > AK_MAX_FIELDS)
                        return -EBADMSG;
        return r;
}

int ak_get_bytes(const struct ak_msg *m, uint16_t tag, const uint8_t **ret, size_t *ret_len)
{
        size_t off = 0;
        uint16_t t;
        const uint8_t *val;
        uint32_t vlen;
        int r;

        while ((r = tlv_next(m, &off, &t, &val, &vlen)) > 0) {
                if (t == tag) {
                        *ret = val;
                        *ret_len = vlen;
                        return 0;
                }
        }
        return r < 0 ? r : -ENOENT;
}

int ak_get_u64(const struct ak_msg *m, uint16_t tag, uint64_t *ret)
{
        const uint8_t *p;
        size_t n;
        int r = ak_get_bytes(m, tag, &p, &n);

        if (r < 0)
                return r;
        if (n != 8)
                return -EBADMSG;
        *ret = get_le64(p);
        return 0;
}

static char *dup_cstr(const uint8_t *p, size_t n)
{
        char *s;

        if (memchr(p, '\0', n))
                return NULL;
        s = malloc(n + 1);
        if (!s)
                return NULL;
        memcpy(s, p, n);
        s[n] = '\0';
        return s;
}

int ak_get_str(const struct ak_msg *m, uint16_t tag, char **ret)
{
        const uint8_t *p;
        size_t n;
        char *s;
        int r = ak_get_bytes(m, tag, &p, &n);

        if (r < 0)
                return r;
        if (memchr(p, '\0', n))
                return -EBADMSG;
        s = dup_cstr(p, n);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int ak_get_strv(const struct ak_msg *m, uint16_t tag, size_t max, char ***ret, size_t *ret_n)
{
        size_t off = 0, n = 0, cap = 0;
        uint16_t t;
        const uint8_t *val;
        uint32_t vlen;
        cleanup_strv char **v = NULL;
        int r;

        while ((r = tlv_next(m, &off, &t, &val, &vlen)) > 0) {
                if (t != tag)
                        continue;
                if (n >= max)
                        return -E2BIG;
                if (memchr(val, '\0', vlen))
                        return -EBADMSG;
                if (n + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        char **nv = realloc(v, ncap * sizeof(char *));
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                        cap = ncap;
                }
                v[n] = dup_cstr(val, vlen);
                if (!v[n])
                        return -ENOMEM;
                v[++n] = NULL;
        }
        if (r < 0)
                return r;
        if (!v) {
                v = calloc(1, sizeof(char *));
                if (!v)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(v);
        if (ret_n)
                *ret_n = n;
        return 0;
}

int ak_read_frame(int fd, struct buf *b, struct ak_msg *ret)
{
        uint8_t hdr[AK_FRAME_HDR];
        uint32_t plen;
        ssize_t n;
        int r;

        /* The first byte tells EOF-between-frames (clean) from a truncated frame. */
        do
                n = read(fd, hdr, 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return -EPIPE;
        r = read_exact(fd, hdr + 1, sizeof(hdr) - 1);
        if (r < 0)
                return r == -EPIPE ? -EBADMSG : r;
        plen = get_le32(hdr);
        if (plen > AK_FRAME_MAX)
                return -EBADMSG;
        buf_reset(b);
        r = buf_append(b, hdr, sizeof(hdr));
        if (r < 0)
                return r;
        r = buf_reserve(b, plen);
        if (r < 0)
                return r;
        r = read_exact(fd, b->data + AK_FRAME_HDR, plen);
        if (r < 0)
                return r == -EPIPE ? -EBADMSG : r;
        b->len += plen;
        b->data[b->len] = '\0';
        if (ak_frame_parse((const uint8_t *)b->data, b->len, ret) <= 0)
                return -EBADMSG;
        return ak_msg_validate(ret);
}

int ak_write_buf(int fd, const struct buf *b)
{
        return write_all(fd, b->data, b->len);
}

int ak_write_frame(int fd, uint16_t type, const void *p, size_t n)
{
        uint8_t hdr[AK_FRAME_HDR];
        int r = frame_header(hdr, type, n);

        if (r < 0)
                return r;
        r = write_all(fd, hdr, sizeof(hdr));
        if (r < 0 || n == 0)
                return r;
        return write_all(fd, p, n);
}

void ak_conn_init(struct ak_conn *c, int fd)
{
        memset(c, 0, sizeof(*c));
        c->fd = fd;
}

void ak_conn_done(struct ak_conn *c)
{
        buf_done(&c->in);
        buf_done(&c->out);
}

ssize_t ak_conn_fill(struct ak_conn *c)
{
        ssize_t n;
        int r;

        if (c->consumed) {
                buf_consume(&c->in, c->consumed);
                c->consumed = 0;
        }
        r = buf_reserve(&c->in, AK_CHUNK + AK_FRAME_HDR);
        if (r < 0)
                return r;
        do
                n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? 0 : -errno;
        if (n == 0) {
                c->eof = true;
                return 0;
        }
        c->in.len += (size_t)n;
        c->in.data[c->in.len] = '\0';
        return n;
}

int ak_conn_next(struct ak_conn *c, struct ak_msg *ret)
{
        ssize_t n;

        if (c->consumed) {
                buf_consume(&c->in, c->consumed);
                c->consumed = 0;
        }
        n = ak_frame_parse((const uint8_t *)c->in.data, c->in.len, ret);
        if (n <= 0)
                return (int)n;
        if (ak_msg_validate(ret) < 0)
                return -EBADMSG;
        c->consumed = (size_t)n;
        return 1;
}

int ak_conn_flush(struct ak_conn *c)
{
        while (c->out.len > 0) {
                ssize_t n = write(c->fd, c->out.data, c->out.len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                buf_consume(&c->out, (size_t)n);
        }
        return 0;
}
