/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error reports that cross module boundaries. A `struct ak_err` is set once, where the error
 * happens, and callers may prefix context. It is a fixed buffer: reporting an error never
 * allocates, so it works on out-of-memory paths and after clone().
 */
#pragma once

#include "macro.h"

#define AK_ERR_MSG_MAX 1024

struct ak_err {
        int code;                 /* positive errno; 0 when unset */
        char msg[AK_ERR_MSG_MAX]; /* human-readable, lowercase, no trailing period */
};

/* Records code and message in err (which may be NULL) and returns -code. */
int ak_err_set(struct ak_err *err, int code, const char *fmt, ...) _printf_(3, 4);

/* Records errnum (positive or negative: the sign is normalised) with the message
 * "<formatted context>: <strerror(errnum)>" and returns -errnum. err may be NULL. Never allocates:
 * used after clone() and on out-of-memory paths. */
int ak_err_errno(struct ak_err *err, int errnum, const char *fmt, ...) _printf_(3, 4);

/* Records ENOMEM with the message "out of memory" and returns -ENOMEM. err may be NULL. */
int ak_err_oom(struct ak_err *err);

/* Prefixes the existing message with "<context>: ". Returns -err->code. */
int ak_err_prefix(struct ak_err *err, const char *fmt, ...) _printf_(2, 3);

/* Sets a message for code if nothing was recorded yet (for errors from plain -errno code). */
int ak_err_default(struct ak_err *err, int code, const char *fmt, ...) _printf_(3, 4);

/* Clears err. */
void ak_err_clear(struct ak_err *err);

/* The message, or strerror(code) when none was recorded. Never NULL. */
const char *ak_err_msg(const struct ak_err *err);
