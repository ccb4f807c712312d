/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash-test and failure-injection points. AGENTKERNEL_TEST_HOOK names one point:
 *   <point>       the process stops itself (SIGSTOP) there, so a test can kill it at exactly that
 *                 step and check what is left behind;
 *   fail:<point>  test_hook() returns -EIO there, and its caller fails as if the step it follows
 *                 had, so a test can check that the caller undoes what it holds.
 * Without the variable this is a getenv() and nothing else.
 */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static inline int test_hook(const char *point)
{
        const char *want = getenv("AGENTKERNEL_TEST_HOOK");

        if (!want)
                return 0;
        if (strncmp(want, "fail:", 5) == 0)
                return strcmp(want + 5, point) == 0 ? -EIO : 0;
        if (strcmp(want, point) == 0)
                (void)raise(SIGSTOP);
        return 0;
}
