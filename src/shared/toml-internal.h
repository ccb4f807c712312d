/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the TOML reader's two files share (toml.c: documents, strings, keys, tables, arrays;
 * toml-number.c: numbers, dates and times): the parser's state and its look at the bytes.
 * Nothing outside them includes this.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum origin { ORIGIN_IMPLICIT, ORIGIN_DOTTED, ORIGIN_HEADER, ORIGIN_INLINE, ORIGIN_AOT };

/* Which tables (and arrays of tables) have which origin. Few enough for a linear list. */
struct mark {
        json_t *v;
        enum origin origin;
};

struct parser {
        const char *s;
        size_t len, pos;
        struct ak_err *err;
        json_t *root, *cur;
        struct mark *marks;
        size_t n_marks, cap_marks;
        int depth;
        bool failed;
};

static inline bool at_end(const struct parser *p)
{
        return p->pos >= p->len;
}

/* The byte at the position (or off bytes further), -1 past the end. */
static inline int peek(const struct parser *p)
{
        return at_end(p) ? -1 : (unsigned char)p->s[p->pos];
}

static inline int peek_at(const struct parser *p, size_t off)
{
        return p->pos + off >= p->len ? -1 : (unsigned char)p->s[p->pos + off];
}

static inline bool digit(int c)
{
        return c >= '0' && c <= '9';
}

/* A character of a bare key (and of a number's or date's token). */
static inline bool is_bare(int c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* Fails the parse once: "line L, column C: what" (at the position) in the parser's err.
 * Returns -EINVAL. */
int toml_fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A number, date or time at the position (the caller has ruled out strings, arrays, inline
 * tables and booleans). NULL on error: failed (toml_fail), or out of memory when not. */
json_t *toml_parse_number(struct parser *p);
