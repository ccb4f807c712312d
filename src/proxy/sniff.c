// SPDX-License-Identifier: Apache-2.0
/* TLS ClientHello SNI, HTTP request sniffing and the DNS codec (sniff.h). Every read is bounds
 * checked through the cursor below; a short or lying length is -EINVAL (or -EAGAIN when the
 * buffer simply ends early). */
#include "sniff.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

struct cur {
        const uint8_t *p;
        size_t left;
};

static bool take(struct cur *c, size_t n, const uint8_t **ret)
{
        if (c->left < n)
                return false;
        if (ret)
                *ret = c->p;
        c->p += n;
        c->left -= n;
        return true;
}

static bool u8(struct cur *c, unsigned *v)
{
        const uint8_t *p;
        if (!take(c, 1, &p))
                return false;
        *v = p[0];
        return true;
}

static bool u16(struct cur *c, unsigned *v)
{
        const uint8_t *p;
        if (!take(c, 2, &p))
                return false;
        *v = (unsigned)p[0] << 8 | p[1];
        return true;
}

static bool u24(struct cur *c, size_t *v)
{
        const uint8_t *p;
        if (!take(c, 3, &p))
                return false;
        *v = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        return true;
}

int sniff_tls_sni(const uint8_t *buf, size_t len, char name[SNIFF_NAME_MAX + 1])
{
        struct cur c = {buf, len}, h, ext;
        unsigned type, major, minor, rlen, skip16, etype, elen;
        size_t hlen;

        if (len >= 1 && buf[0] != 0x16)
                return -EINVAL;
        if (len >= 2 && buf[1] != 0x03)
                return -EINVAL;
        if (len < 5)
                return -EAGAIN;
        (void)u8(&c, &type);
        (void)u8(&c, &major);
        (void)u8(&c, &minor);
        (void)u16(&c, &rlen);
        if (rlen < 4 || rlen > 16384 + 2048)
                return -EINVAL;
        if (c.left < rlen)
                return -EAGAIN; /* the ClientHello's first record: SNI is in it in practice */
        h = (struct cur){c.p, rlen};
        if (!u8(&h, &type) || type != 1 || !u24(&h, &hlen))
                return -EINVAL;
        if (hlen <= h.left) /* else a ClientHello over several records: parse what is here */
                h.left = hlen;
        /* version, random, session id, cipher suites, compression methods */
        if (!take(&h, 2 + 32, NULL) || !u8(&h, &skip16) || !take(&h, skip16, NULL) ||
            !u16(&h, &skip16) || !take(&h, skip16, NULL) || !u8(&h, &skip16) ||
            !take(&h, skip16, NULL))
                return hlen > rlen - 4 ? -EAGAIN : -EINVAL;
        if (h.left == 0)
                return 0; /* no extensions */
        if (!u16(&h, &skip16))
                return -EINVAL;
        ext = (struct cur){h.p, skip16 < h.left ? skip16 : h.left};
        while (ext.left > 0) {
                struct cur sn;
                if (!u16(&ext, &etype) || !u16(&ext, &elen) || elen > ext.left)
                        return hlen > rlen - 4 ? -EAGAIN : -EINVAL;
                sn = (struct cur){ext.p, elen};
                (void)take(&ext, elen, NULL);
                if (etype != 0)
                        continue;
                /* server_name: list length, then (type, length, name)... */
                if (!u16(&sn, &skip16))
                        return -EINVAL;
                while (sn.left > 0) {
                        unsigned nt, nl;
                        const uint8_t *n;
                        if (!u8(&sn, &nt) || !u16(&sn, &nl) || !take(&sn, nl, &n))
                                return -EINVAL;
                        if (nt != 0)
                                continue;
                        if (nl == 0 || nl > SNIFF_NAME_MAX)
                                return -EINVAL;
                        for (unsigned i = 0; i < nl; i++) {
                                if (n[i] == 0 || n[i] > 0x7e || n[i] <= 0x20)
                                        return -EINVAL;
                                name[i] = (char)n[i];
                        }
                        name[nl] = '\0';
                        return 1;
                }
                return 0;
        }
        if (hlen > rlen - 4)
                return -EAGAIN;
        return 0;
}

int sniff_http(const uint8_t *buf, size_t len)
{
        for (size_t i = 0; i < len && i < 16; i++) {
                if (buf[i] == ' ')
                        return i >= 3 ? 1 : 0;
                if (!isupper(buf[i]))
                        return 0;
        }
        return len < 16 ? -EAGAIN : 0;
}

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_question *q)
{
        struct cur c = {msg, len};
        unsigned qd, an, ns, ar, v;
        size_t n = 0;

        memset(q, 0, sizeof(*q));
        if (!u16(&c, &v))
                return -EINVAL;
        q->id = (uint16_t)v;
        if (!u16(&c, &v))
                return -EINVAL;
        q->flags = (uint16_t)v;
        if (q->flags & 0x8000)
                return -EINVAL; /* a response */
        if (((q->flags >> 11) & 0xf) != 0)
                return -ENOTSUP;
        if (!u16(&c, &qd) || !u16(&c, &an) || !u16(&c, &ns) || !u16(&c, &ar) || qd != 1)
                return -EINVAL;
        for (;;) {
                unsigned l;
                const uint8_t *p;
                if (!u8(&c, &l))
                        return -EINVAL;
                if (l == 0)
                        break;
                if (l > 63 || !take(&c, l, &p)) /* 0xc0: compression, not in a question */
                        return -EINVAL;
                if (n + l + 1 > SNIFF_NAME_MAX + 1)
                        return -EINVAL;
                if (n)
                        q->name[n++] = '.';
                for (unsigned i = 0; i < l; i++) {
                        if (p[i] == '.' || p[i] <= 0x20 || p[i] > 0x7e)
                                return -EINVAL;
                        q->name[n++] = (char)tolower(p[i]);
                }
        }
        q->name[n] = '\0';
        if (!u16(&c, &v))
                return -EINVAL;
        q->qtype = (uint16_t)v;
        if (!u16(&c, &v))
                return -EINVAL;
        q->qclass = (uint16_t)v;
        q->question_end = len - c.left;
        return 0;
}

static void put16(uint8_t *p, unsigned v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

size_t dns_build_reply(const uint8_t *query, const struct dns_question *q, int rcode,
                       const struct in_addr *addrs, size_t n_addrs, uint32_t ttl,
                       uint8_t out[DNS_MSG_MAX])
{
        size_t qlen = q->question_end > 12 ? q->question_end - 12 : 0, off;
        unsigned flags = 0x8000 | (q->flags & 0x0100) | 0x0080 | (unsigned)(rcode & 0xf);

        if (12 + qlen > DNS_MSG_MAX)
                qlen = 0;
        if (rcode != DNS_RCODE_NOERROR)
                n_addrs = 0;
        if (n_addrs > 16)
                n_addrs = 16;
        put16(out, q->id);
        put16(out + 2, flags);
        put16(out + 4, qlen ? 1 : 0);
        put16(out + 6, (unsigned)n_addrs);
        put16(out + 8, 0);
        put16(out + 10, 0);
        memcpy(out + 12, query + 12, qlen);
        off = 12 + qlen;
        for (size_t i = 0; i < n_addrs && off + 16 <= DNS_MSG_MAX; i++) {
                put16(out + off, 0xc00c); /* the question's name */
                put16(out + off + 2, DNS_TYPE_A);
                put16(out + off + 4, DNS_CLASS_IN);
                put16(out + off + 6, ttl >> 16);
                put16(out + off + 8, ttl & 0xffff);
                put16(out + off + 10, 4);
                memcpy(out + off + 12, &addrs[i].s_addr, 4);
                off += 16;
        }
        return off;
}
