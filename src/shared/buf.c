// SPDX-License-Identifier: Apache-2.0
/* Growable byte buffer. Must never read or write past `cap`. */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

int buf_reserve(struct buf *b, size_t extra)
{
        size_t need, cap;
        char *p;

        if (extra > SIZE_MAX / 2 - b->len)
                return -ENOMEM;
        need = b->len + extra + 1;
        if (need <= b->cap)
                return 0;
        cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
        int r = buf_reserve(b, len);
        if (r < 0)
                return r;
        if (len)
                memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}

int buf_append_byte(struct buf *b, uint8_t c)
{
        return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = buf_reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void buf_consume(struct buf *b, size_t n)
{
        if (n >= b->len) {
                buf_reset(b);
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
        b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void buf_done(struct buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

char *buf_detach(struct buf *b, size_t *ret_len)
{
        char *p;

        if (!b->data) {
                if (buf_reserve(b, 0) < 0)
                        return NULL;
                b->data[0] = '\0';
        }
        p = b->data;
        if (ret_len)
                *ret_len = b->len;
        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}

void *array_reserve_one(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
        size_t ncap;

        if (n < *cap)
                return v;
        ncap = *cap ? *cap * 2 : first;
        v = reallocarray(v, ncap, elem);
        if (v)
                *cap = ncap;
        return v;
}

const char *str_pool_add(struct str_pool *p, const char *s, size_t len)
{
        char **nv = array_reserve_one(p->v, p->n, &p->cap, sizeof(*nv), 32);
        char *c;

        if (!nv)
                return NULL;
        p->v = nv;
        c = malloc(len + 1);
        if (!c)
                return NULL;
        memcpy(c, s, len);
        c[len] = '\0';
        p->v[p->n++] = c;
        return c;
}

void str_pool_done(struct str_pool *p)
{
        for (size_t i = 0; i < p->n; i++)
                free(p->v[i]);
        free(p->v);
        *p = (struct str_pool){0};
}
