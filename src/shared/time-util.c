// SPDX-License-Identifier: Apache-2.0
/* Clock and RFC 3339 helpers; pure computation, no locale or timezone database. */
#include "time-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t now_realtime_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

int64_t now_monotonic_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void format_rfc3339(int64_t ns, char out[RFC3339_MAX])
{
        int64_t secs = ns / NSEC_PER_SEC;
        int64_t frac = ns % NSEC_PER_SEC;
        int64_t days, rem, y;
        unsigned mo, d;
        char fracbuf[12] = "";

        if (frac < 0) {
                frac += NSEC_PER_SEC;
                secs -= 1;
        }
        days = secs / 86400;
        rem = secs % 86400;
        if (rem < 0) {
                rem += 86400;
                days -= 1;
        }
        civil_from_days(days, &y, &mo, &d);
        if (frac != 0) {
                if (frac % 1000000 == 0)
                        (void)snprintf(fracbuf, sizeof(fracbuf), ".%03lld",
                                       (long long)(frac / 1000000));
                else if (frac % 1000 == 0)
                        (void)snprintf(fracbuf, sizeof(fracbuf), ".%06lld",
                                       (long long)(frac / 1000));
                else
                        (void)snprintf(fracbuf, sizeof(fracbuf), ".%09lld", (long long)frac);
        }
        (void)snprintf(out, RFC3339_MAX, "%04lld-%02u-%02uT%02d:%02d:%02d%s+00:00", (long long)y,
                       mo, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fracbuf);
}

static int digits(const char **p, int n, int *ret)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                char c = (*p)[i];
                if (c < '0' || c > '9')
                        return -EINVAL;
                v = v * 10 + (c - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

int parse_rfc3339(const char *s, int64_t *ret_ns)
{
        const char *p = s;
        int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
        int64_t frac = 0, ns;
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

        if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
            digits(&p, 2, &d) < 0)
                return -EINVAL;
        if (*p != 'T' && *p != 't' && *p != ' ')
                return -EINVAL;
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' ||
            digits(&p, 2, &se) < 0)
                return -EINVAL;
        if (*p == '.') {
                int n = 0;
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9') {
                        if (n < 9) {
                                frac = frac * 10 + (*p - '0');
                                n++;
                        }
                        p++;
                }
                for (; n < 9; n++)
                        frac *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p == '-' ? -1 : 1;
                p++;
                if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0)
                        return -EINVAL;
                if (oh > 23 || om > 59)
                        return -EINVAL;
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
                return -EINVAL;
        if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return -EINVAL;
        if (se == 60)
                se = 59; /* leap second: clamp, as chrono does for parsing */
        ns = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se) *
                 NSEC_PER_SEC +
             frac;
        ns -= (int64_t)sign * (oh * 3600 + om * 60) * NSEC_PER_SEC;
        *ret_ns = ns;
        return 0;
}
