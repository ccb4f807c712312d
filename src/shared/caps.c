// SPDX-License-Identifier: Apache-2.0
/* Capability bounding set: a process and everything it later executes can never regain what
 * is dropped here. No allocation: this runs in the sandbox child before execve. */
#include "caps.h"

#include <errno.h>
#include <sys/prctl.h>

int caps_limit_bounding(uint64_t keep)
{
        for (int c = 0; c <= 63; c++) {
                if (keep & (1ull << c))
                        continue;
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break; /* past the last capability this kernel knows */
                        return -errno;
                }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        return 0;
}
