/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash-test points. When AGENTKERNEL_TEST_HOOK names a point, the process stops itself
 * (SIGSTOP) there, so a test can kill it at exactly that step and check what is left behind.
 * Without the variable this is a getenv() and nothing else.
 */
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static inline void test_hook(const char *point)
{
        const char *want = getenv("AGENTKERNEL_TEST_HOOK");
        if (want && strcmp(want, point) == 0)
                (void)raise(SIGSTOP);
}
