// SPDX-License-Identifier: Apache-2.0
/*
 * The musl-built CLI's memcpy (src/cli/libc-compat.c), linked the same way, against a byte-wise
 * copy: every length to 300 at every source and destination alignment to 15, the bytes around
 * the destination untouched; and musl's memmove, which calls it (as __memcpy_fwd) for forward
 * copies between overlapping buffers. Built with musl-gcc (tests/meson.build); no cmocka there,
 * so it prints TAP itself.
 */
#include <stdio.h>
#include <string.h>

#define MAXLEN 300
#define ALIGN 16
#define GUARD 32

void *__memcpy_fwd(void *dst, const void *src, size_t n);

/* through pointers the compiler cannot see through: every call reaches the linked function */
static void *(*volatile copy)(void *restrict, const void *restrict, size_t) = memcpy;
static void *(*volatile move)(void *, const void *, size_t) = memmove;
static void *(*volatile fwd)(void *, const void *, size_t) = __memcpy_fwd;

static unsigned char src[MAXLEN + 2 * ALIGN + GUARD], dst[MAXLEN + 2 * ALIGN + 2 * GUARD];
static unsigned char want[sizeof(dst)];

static int check_copies(void)
{
        for (size_t n = 0; n <= MAXLEN; n++)
                for (size_t sa = 0; sa < ALIGN; sa++)
                        for (size_t da = 0; da < ALIGN; da++) {
                                for (size_t i = 0; i < sizeof(src); i++)
                                        src[i] = (unsigned char)(i * 7 + n + 1);
                                for (size_t i = 0; i < sizeof(dst); i++)
                                        dst[i] = want[i] = (unsigned char)(0xA5 ^ i);
                                for (size_t i = 0; i < n; i++)
                                        want[GUARD + da + i] = src[sa + i];
                                if (copy(dst + GUARD + da, src + sa, n) != dst + GUARD + da ||
                                    memcmp(dst, want, sizeof(dst)) != 0) {
                                        printf("# memcpy: length %zu, alignments %zu/%zu\n", n, sa,
                                               da);
                                        return 1;
                                }
                        }
        return 0;
}

/* forward copies between overlapping buffers: dst below src, by every distance */
static int check_overlap(void *(*fn)(void *, const void *, size_t), const char *what)
{
        unsigned char buf[MAXLEN + ALIGN + GUARD], ref[sizeof(buf)];

        for (size_t n = 0; n <= MAXLEN; n++)
                for (size_t gap = 1; gap < ALIGN + GUARD && gap <= sizeof(buf) - n; gap++) {
                        for (size_t i = 0; i < sizeof(buf); i++)
                                buf[i] = ref[i] = (unsigned char)(i * 13 + gap);
                        for (size_t i = 0; i < n; i++) /* forward, byte by byte: the reference */
                                ref[i] = ref[i + gap];
                        if (fn(buf, buf + gap, n) != buf || memcmp(buf, ref, sizeof(buf)) != 0) {
                                printf("# %s: length %zu, distance %zu\n", what, n, gap);
                                return 1;
                        }
                }
        return 0;
}

int main(void)
{
        int bad = 0, r;

        printf("1..3\n");
        r = check_copies();
        printf("%s 1 - memcpy: every length to %d, every alignment\n", r ? "not ok" : "ok", MAXLEN);
        bad |= r;
        r = check_overlap(move, "memmove");
        printf("%s 2 - memmove forward over an overlap\n", r ? "not ok" : "ok");
        bad |= r;
        r = check_overlap(fwd, "__memcpy_fwd");
        printf("%s 3 - __memcpy_fwd forward over an overlap\n", r ? "not ok" : "ok");
        bad |= r;
        return bad;
}
