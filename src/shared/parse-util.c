// SPDX-License-Identifier: Apache-2.0
/* Strict parsers for numbers, durations and port specs typed by users and read from files. */
#include "parse-util.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

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

static int parse_port_number(const char *s, size_t len, uint16_t *ret)
{
        char tmp[8];
        uint32_t v;

        if (len == 0 || len >= sizeof(tmp))
                return -EINVAL;
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        if (safe_atou32(tmp, &v) < 0 || v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

int parse_port_spec(const char *spec, struct port_spec *ret, struct ak_err *err)
{
        const char *slash = strchr(spec, '/');
        size_t len = slash ? (size_t)(slash - spec) : strlen(spec);
        const char *colon = memchr(spec, ':', len);
        struct port_spec p = {.host_port = -1};
        uint16_t v;

        if (slash) {
                if (streq(slash + 1, "udp"))
                        p.udp = true;
                else if (!streq(slash + 1, "tcp"))
                        return ak_err_set(err, EINVAL,
                                          "invalid port '%s': protocol must be tcp or udp", spec);
        }
        if (colon) {
                if (parse_port_number(spec, (size_t)(colon - spec), &v) < 0)
                        return ak_err_set(err, EINVAL, "invalid host port in '%s' (1-65535)", spec);
                p.host_port = v;
                if (parse_port_number(colon + 1, len - (size_t)(colon - spec) - 1,
                                      &p.container_port) < 0)
                        return ak_err_set(err, EINVAL, "invalid container port in '%s' (1-65535)",
                                          spec);
        } else if (parse_port_number(spec, len, &p.container_port) < 0) {
                return ak_err_set(err, EINVAL,
                                  "invalid port '%s': expected PORT, HOST:CONTAINER or "
                                  "HOST:CONTAINER/udp",
                                  spec);
        }
        *ret = p;
        return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
        static const struct {
                const char *suffix;
                unsigned shift;
        } units[] = {{"TB", 40}, {"T", 40},  {"GB", 30}, {"G", 30}, {"MB", 20},
                     {"M", 20},  {"KB", 10}, {"K", 10},  {"B", 0},  {"", 0}};
        uint64_t v = 0;
        size_t i = 0;

        while (s[i] >= '0' && s[i] <= '9') {
                if (v > UINT64_MAX / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(s[i++] - '0');
        }
        if (i == 0)
                return -EINVAL;
        for (size_t u = 0; u < ARRAY_SIZE(units); u++) {
                if (strcasecmp(s + i, units[u].suffix) != 0)
                        continue;
                if (units[u].shift && v > (UINT64_MAX >> units[u].shift))
                        return -ERANGE;
                *ret = v << units[u].shift;
                return 0;
        }
        return -EINVAL;
}
