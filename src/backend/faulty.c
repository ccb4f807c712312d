// SPDX-License-Identifier: Apache-2.0
/*
 * `faulty`: the fake backend with failures injected on demand (git's refs_be_debug, SQLite's
 * anomaly tests). AGENTKERNEL_FAULT="op:N:errno" makes the Nth call (1-based, per process) of
 * op (start, stop, cleanup, connect, status) fail with errno. Unit-test build only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "core/backend.h"

static unsigned calls[8];
static char last_spec[64];

static bool should_fail(const char *op, int slot, int *ret_errno)
{
        const char *spec = getenv("AGENTKERNEL_FAULT");
        char want[32];
        unsigned n;
        int e;

        /* Calls are counted from the moment the spec was (re)set. */
        if (!spec || strncmp(spec, last_spec, sizeof(last_spec)) != 0) {
                memset(calls, 0, sizeof(calls));
                (void)snprintf(last_spec, sizeof(last_spec), "%s", spec ? spec : "");
        }
        calls[slot]++;
        if (!spec || sscanf(spec, "%31[^:]:%u:%d", want, &n, &e) != 3)
                return false;
        if (!streq(want, op) || calls[slot] != n)
                return false;
        *ret_errno = e > 0 ? e : EIO;
        return true;
}

static int faulty_start(const struct backend_config *cfg, struct backend_session *s,
                        struct ak_err *err)
{
        int e;
        if (should_fail("start", 0, &e))
                return ak_err_errno(err, e, "injected failure in start");
        return fake_backend_ops.start(cfg, s, err);
}

static int faulty_stop(const struct sandbox_ref *ref, struct ak_err *err)
{
        int e;
        if (should_fail("stop", 1, &e))
                return ak_err_errno(err, e, "injected failure in stop");
        return fake_backend_ops.stop(ref, err);
}

static int faulty_cleanup(const struct sandbox_ref *ref, struct ak_err *err)
{
        int e;
        if (should_fail("cleanup", 2, &e))
                return ak_err_errno(err, e, "injected failure in cleanup");
        return fake_backend_ops.cleanup(ref, err);
}

static int faulty_status(const struct sandbox_ref *ref, struct backend_status *ret)
{
        int e;
        if (should_fail("status", 3, &e))
                return -e;
        return fake_backend_ops.status(ref, ret);
}

static int faulty_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        int e;
        if (should_fail("connect", 4, &e))
                return ak_err_errno(err, e, "injected failure in connect");
        return fake_backend_ops.connect(ref, err);
}

const struct backend_ops faulty_backend_ops = {
    .name = "faulty",
    .description = "TEST ONLY: fake with injected failures",
    .start = faulty_start,
    .finish = NULL,
    .stop = faulty_stop,
    .cleanup = faulty_cleanup,
    .status = faulty_status,
    .connect = faulty_connect,
};
