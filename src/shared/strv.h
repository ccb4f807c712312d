/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NULL-terminated vectors of malloc'd strings (argv, environments, lists of names): the vector
 * and every string in it are owned together and freed by strv_free(). Used by the agent too, so
 * it must stay plain C with no host-only dependency.
 */
#pragma once

#include <stddef.h>

#include "cleanup.h"

/* The number of strings in v (0 for NULL). */
size_t strv_len(char *const *v);

/* Frees every string of v and v itself. Accepts NULL. */
void strv_free(char **v);

/* A deep copy of v, or NULL (for NULL, and on ENOMEM: check v first). */
char **strv_dup(char *const *v);

/* Appends a copy of s to *v (growing it; *v may be NULL). 0 or -ENOMEM (*v unchanged). */
int strv_push(char ***v, const char *s);

/* Appends s itself to *v, which takes ownership of it: on failure (-ENOMEM) s is freed and *v is
 * unchanged. s may be NULL (a failed allocation): then -ENOMEM. */
int strv_consume(char ***v, char *s);

/* An environment: the entries of base ("K=V") whose K over does not set, then all of over.
 * Entries of base without '=' are dropped. The caller frees it; NULL on ENOMEM. */
char **strv_env_merge(char *const *base, char *const *over);

static inline void cleanup_strv_fn(char ***v)
{
        strv_free(*v);
}
#define cleanup_strv CLEANUP(cleanup_strv_fn)
