/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scope-bound cleanup (crun/systemd style): a variable declared `cleanup_free char *p = NULL;`
 * is freed when it leaves scope. Every cleanup variable is initialised where it is declared.
 * Destructors here accept NULL / -1 and preserve errno, so they are safe on every error path.
 */
#pragma once

#include <dirent.h>
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

static inline void cleanup_closedir_fn(DIR **d)
{
        if (*d) {
                int saved = errno;
                (void)closedir(*d);
                errno = saved;
        }
}

#define cleanup_free CLEANUP(cleanup_free_fn)
#define cleanup_close CLEANUP(cleanup_close_fn)
#define cleanup_fclose CLEANUP(cleanup_fclose_fn)
#define cleanup_closedir CLEANUP(cleanup_closedir_fn)

/* Declares the cleanup function of `type *` variables that func(type *) frees (an x_free: it
 * frees the object). Use it as CLEANUP_FUNC(func), normally through a name declared beside func:
 *     DEFINE_CLEANUP(struct store, store_free)
 *     #define cleanup_store CLEANUP_FUNC(store_free)
 *     cleanup_store struct store *s = NULL;
 * errno is preserved, as by the other cleanups here. */
#define DEFINE_CLEANUP(type, func)                                                                 \
        static inline void func##_cleanup_fn(type **p)                                             \
        {                                                                                          \
                if (*p) {                                                                          \
                        int saved_ = errno;                                                        \
                        func(*p);                                                                  \
                        errno = saved_;                                                            \
                }                                                                                  \
        }

/* The same for `type` variables, caller-owned structs whose contents func(type *) frees (an
 * x_done). Such a variable must be initialised to a value func accepts (its empty value):
 *     cleanup_mount_plan struct mount_plan plan = {0}; */
#define DEFINE_CLEANUP_DONE(type, func)                                                            \
        static inline void func##_cleanup_fn(type *p)                                              \
        {                                                                                          \
                int saved_ = errno;                                                                \
                func(p);                                                                           \
                errno = saved_;                                                                    \
        }

#define CLEANUP_FUNC(func) CLEANUP(func##_cleanup_fn)
