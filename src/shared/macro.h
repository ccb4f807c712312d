/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small macros used everywhere: array sizes, branch hints, ownership transfer.
 * Header-only; must never grow project knowledge.
 */
#pragma once

#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define MIN(a, b)                                                                                  \
        ({                                                                                         \
                __typeof__(a) _a = (a);                                                            \
                __typeof__(b) _b = (b);                                                            \
                _a < _b ? _a : _b;                                                                 \
        })
#define MAX(a, b)                                                                                  \
        ({                                                                                         \
                __typeof__(a) _a = (a);                                                            \
                __typeof__(b) _b = (b);                                                            \
                _a > _b ? _a : _b;                                                                 \
        })

/* Hand a pointer (or fd) over to a new owner: returns the value and clears the variable, so the
 * cleanup attribute on the old variable does nothing. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p = (p);                                                            \
                (p) = NULL;                                                                        \
                _p;                                                                                \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd = (fd);                                                                    \
                (fd) = -1;                                                                         \
                _fd;                                                                               \
        })

/* Hands a struct over by value and leaves the variable zeroed, so that its _done cleanup frees
 * nothing: `*ret = TAKE_STRUCT(plan);`. */
#define TAKE_STRUCT(s)                                                                             \
        ({                                                                                         \
                __typeof__(s) _s = (s);                                                            \
                (s) = (__typeof__(s)){0};                                                          \
                _s;                                                                                \
        })

#define STRLEN(s) (sizeof("" s "") - 1)

#define streq(a, b) (strcmp((a), (b)) == 0)

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _unused_ __attribute__((unused))
#define _warn_unused_ __attribute__((warn_unused_result))
