// SPDX-License-Identifier: Apache-2.0
/* Capability bounding set: a process and everything it later executes can never regain what
 * is dropped here. No allocation: this runs in the sandbox child before execve. */
#include "caps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

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

int caps_bounding_now(uint64_t *ret)
{
        char buf[4096];
        const char *at;
        char *end;
        ssize_t n;
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -EIO;
        buf[n] = '\0';
        at = strstr(buf, "\nCapBnd:");
        if (!at)
                return -ENOENT;
        errno = 0;
        *ret = strtoull(at + strlen("\nCapBnd:"), &end, 16);
        return errno || end == at + strlen("\nCapBnd:") ? -EINVAL : 0;
}
