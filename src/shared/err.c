// SPDX-License-Identifier: Apache-2.0
/*
 * Fixed-buffer error reports. Must never allocate: callers use these after clone() and on
 * out-of-memory paths.
 */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A positive errno: the sign of code does not matter, and 0 is no error code (EIO). */
static int positive(int code)
{
        if (code < 0)
                code = -code;
        return code ? code : EIO;
}

/* Records code and the formatted message (errno kept); the strerror of code is appended with
 * ": " when with_strerror. Truncates at the buffer's end, as formatting it all at once would. */
static void record(struct ak_err *err, int code, bool with_strerror, const char *fmt, va_list ap)
{
        int saved = errno;

        err->code = code;
        (void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        if (with_strerror) {
                size_t len = strlen(err->msg);
                (void)snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(code));
        }
        errno = saved;
}

int ak_err_set(struct ak_err *err, int code, const char *fmt, ...)
{
        code = positive(code);
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                record(err, code, false, fmt, ap);
                va_end(ap);
        }
        return -code;
}

int ak_err_errno(struct ak_err *err, int errnum, const char *fmt, ...)
{
        errnum = positive(errnum);
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                record(err, errnum, true, fmt, ap);
                va_end(ap);
        }
        return -errnum;
}

int ak_err_oom(struct ak_err *err)
{
        return ak_err_set(err, ENOMEM, "out of memory");
}

int ak_err_prefix(struct ak_err *err, const char *fmt, ...)
{
        char prefix[AK_ERR_MSG_MAX];
        char old[AK_ERR_MSG_MAX];
        va_list ap;

        if (!err)
                return -EIO;
        if (err->code == 0)
                err->code = EIO;
        va_start(ap, fmt);
        (void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        (void)snprintf(old, sizeof(old), "%s", ak_err_msg(err)); /* strerror's text is short */
        (void)snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
        return -err->code;
}

int ak_err_default(struct ak_err *err, int code, const char *fmt, ...)
{
        code = positive(code);
        if (err && err->code == 0) {
                va_list ap;
                char what[AK_ERR_MSG_MAX / 2];
                va_start(ap, fmt);
                (void)vsnprintf(what, sizeof(what), fmt, ap);
                va_end(ap);
                err->code = code;
                (void)snprintf(err->msg, sizeof(err->msg), "%s: %s", what, strerror(code));
        }
        return -(err && err->code ? err->code : code);
}

void ak_err_clear(struct ak_err *err)
{
        if (err) {
                err->code = 0;
                err->msg[0] = '\0';
        }
}

const char *ak_err_msg(const struct ak_err *err)
{
        if (!err)
                return "unknown error";
        if (err->msg[0])
                return err->msg;
        return err->code ? strerror(err->code) : "unknown error";
}
