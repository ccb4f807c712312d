/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scope-bound cleanup (crun/systemd style): a variable declared `cleanup_free char *p = NULL;`
 * is freed when it leaves scope. Every cleanup variable is initialised where it is declared.
 * Destructors here accept NULL / -1 and preserve errno, so they are safe on every error path.
 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CLEANUP(f) __attribute__((cleanup(f)))

static inline void cleanup_free_fn(void *p)
{
        free(*(void **)p);
}

static inline void cleanup_close_fn(const int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                (void)close(*fd);
                errno = saved;
        }
}

static inline void cleanup_fclose_fn(FILE **f)
{
        if (*f) {
                int saved = errno;
                (void)fclose(*f);
                errno = saved;
        }
}

#define cleanup_free CLEANUP(cleanup_free_fn)
#define cleanup_close CLEANUP(cleanup_close_fn)
#define cleanup_fclose CLEANUP(cleanup_fclose_fn)

/* Declares cleanup_<name> for `type *` variables released by `func(type *)`. */
#define DEFINE_CLEANUP(type, func)                                                                 \
        static inline void func##_cleanup_fn(type **p)                                             \
        {                                                                                          \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }
#define CLEANUP_FUNC(func) CLEANUP(func##_cleanup_fn)
