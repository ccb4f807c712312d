// SPDX-License-Identifier: Apache-2.0
/*
 * Linked only into the musl-built CLI (src/meson.build says why the CLI is built with musl).
 *
 * Debian builds its static libraries (jansson, libmd) with _FORTIFY_SOURCE=2, so their objects
 * call glibc's checked variants of a few functions: the compiler knew the destination's size and
 * passes it along. musl has none of them. These are what glibc's are: the same checks, then the
 * plain call; a failed check aborts, as glibc's __chk_fail does. They are the only glibc symbols
 * those libraries need (a symbol musl lacks fails the link, so a new one cannot slip in).
 *
 * And a memcpy for short copies (below).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap);
int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...);
char *__strncpy_chk(char *dst, const char *src, size_t n, size_t dstlen);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

static _Noreturn void chk_fail(void)
{
        static const char msg[] = "*** buffer overflow detected ***: terminated\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        abort();
}

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, va_list ap)
{
        (void)flag; /* glibc's %n check: musl's printf has no such mode */
        if (slen < maxlen)
                chk_fail();
        return vsnprintf(s, maxlen, fmt, ap);
}

int __snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = __vsnprintf_chk(s, maxlen, flag, slen, fmt, ap);
        va_end(ap);
        return r;
}

char *__strncpy_chk(char *dst, const char *src, size_t n, size_t dstlen)
{
        if (dstlen < n)
                chk_fail();
        return strncpy(dst, src, n);
}

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
        if (n > buflen)
                chk_fail();
        return read(fd, buf, n);
}

/*
 * memcpy. musl's x86_64 memcpy starts every copy, however short, with `rep movsq`, whose
 * start-up is tens of cycles: jansson's reader appends each byte of a JSON text with its own
 * memcpy call, and `list` of 500 spent a quarter of its CPU time there (perf). A copy of up to
 * 16 bytes is done here with two overlapping loads and stores (all loads before any store, so a
 * forward copy between overlapping buffers, what musl's memmove asks of __memcpy_fwd, is
 * right too); a longer one with `rep movsb`, which copies forward. Defining __memcpy_fwd as
 * well keeps musl's memcpy object out of the link (its memmove calls that name).
 * tests/unit/test-libc-compat.c checks every length to 300 at every alignment, and overlaps.
 */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *__memcpy_fwd(void *dst, const void *src, size_t n);

static inline void *copy_forward(void *dst, const void *src, size_t n)
{
        unsigned char *d = dst;
        const unsigned char *s = src;

        if (n >= 8 && n <= 16) {
                uint64_t a, b;
                __builtin_memcpy(&a, s, 8);
                __builtin_memcpy(&b, s + n - 8, 8);
                __builtin_memcpy(d, &a, 8);
                __builtin_memcpy(d + n - 8, &b, 8);
        } else if (n >= 4 && n < 8) {
                uint32_t a, b;
                __builtin_memcpy(&a, s, 4);
                __builtin_memcpy(&b, s + n - 4, 4);
                __builtin_memcpy(d, &a, 4);
                __builtin_memcpy(d + n - 4, &b, 4);
        } else if (n > 0 && n < 4) {
                unsigned char a = s[0], b = s[n / 2], c = s[n - 1];
                d[0] = a;
                d[n / 2] = b;
                d[n - 1] = c;
        } else if (n > 16) {
                __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
        }
        return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
        return copy_forward(dst, src, n);
}

void *__memcpy_fwd(void *dst, const void *src, size_t n)
{
        return copy_forward(dst, src, n);
}
