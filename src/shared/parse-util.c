// SPDX-License-Identifier: Apache-2.0
/* Strict parsers for numbers and durations typed by users and read from files. */
#include "parse-util.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int safe_atou64(const char *s, uint64_t *ret)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        *ret = v;
        return 0;
}

int safe_atou32(const char *s, uint32_t *ret)
{
        uint64_t v;
        int r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t)v;
        return 0;
}

int safe_atoi32(const char *s, int32_t *ret)
{
        uint64_t v;
        bool neg = s && *s == '-';
        int r = safe_atou64(neg ? s + 1 : s, &v);
        if (r < 0)
                return r;
        if (v > (neg ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT32_MAX))
                return -ERANGE;
        *ret = neg ? (int32_t)(-(int64_t)v) : (int32_t)v;
        return 0;
}

int parse_duration(const char *s, uint64_t *ret)
{
        static const struct {
                char unit;
                uint64_t secs;
        } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
        uint64_t total = 0;
        size_t next_unit = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        if (strspn(s, "0123456789") == strlen(s)) {
                uint64_t v;
                int r = safe_atou64(s, &v);
                if (r < 0)
                        return r;
                if (v > DURATION_MAX_SECONDS)
                        return -ERANGE;
                *ret = v;
                return 0;
        }
        while (*p) {
                uint64_t v = 0;
                size_t n = 0;
                size_t u;

                while (p[n] >= '0' && p[n] <= '9') {
                        if (v > DURATION_MAX_SECONDS)
                                return -ERANGE;
                        v = v * 10 + (uint64_t)(p[n] - '0');
                        n++;
                }
                if (n == 0)
                        return -EINVAL;
                for (u = next_unit; u < 4; u++)
                        if (p[n] == units[u].unit)
                                break;
                if (u == 4)
                        return -EINVAL; /* unknown unit, repeated unit, or wrong order */
                if (v > DURATION_MAX_SECONDS / units[u].secs)
                        return -ERANGE;
                total += v * units[u].secs;
                if (total > DURATION_MAX_SECONDS)
                        return -ERANGE;
                next_unit = u + 1;
                p += n + 1;
        }
        *ret = total;
        return 0;
}
