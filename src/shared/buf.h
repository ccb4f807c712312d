/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer (git's strbuf, redis' sds, in spirit). Always NUL-terminated so text can
 * be used as a C string, but binary-safe: `len` is authoritative.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct buf {
        char *data; /* NULL until the first append; NUL-terminated after it */
        size_t len; /* bytes used, excluding the terminator */
        size_t cap; /* bytes allocated */
};

#define BUF_INIT                                                                                   \
        {                                                                                          \
                NULL, 0, 0                                                                         \
        }

/* Ensures room for `extra` more bytes plus the terminator. Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_byte(struct buf *b, uint8_t c);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Frees the storage and resets the struct (which stays usable). */
void buf_done(struct buf *b);
/* Gives away the storage (never NULL on success: an empty buffer yields ""); the buf is reset. */
char *buf_detach(struct buf *b, size_t *ret_len);

static inline void cleanup_buf_fn(struct buf *b)
{
        buf_done(b);
}
#define cleanup_buf __attribute__((cleanup(cleanup_buf_fn)))

/* Owned copies of strings, freed together (plans and lists that point into them). */
struct str_pool {
        char **v;
        size_t n, cap;
};
/* A copy of the len bytes at s, NUL-terminated, owned by the pool; NULL on ENOMEM. */
const char *str_pool_add(struct str_pool *p, const char *s, size_t len);

/* Room for one more element in an array of *cap elements of elem bytes, n of them used: returns
 * v itself when there is room, else v grown to twice its capacity (first when empty), or NULL
 * (v untouched, still the caller's). */
void *array_reserve_one(void *v, size_t n, size_t *cap, size_t elem, size_t first);
/* Frees every string of p and its array (p itself is the caller's) and zeroes it. */
void str_pool_done(struct str_pool *p);
