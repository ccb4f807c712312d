// SPDX-License-Identifier: Apache-2.0
/*
 * TOML's numbers (decimal, hexadecimal, octal, binary integers; floats; inf and nan) and its
 * dates and times, read from the raw bytes at the parser's position. Integers must fit 64 bits,
 * underscores sit between digits, leading zeros are refused, and a date or time is checked
 * (days of the month, leap years, offsets) and then kept as its text.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml-internal.h"

/* Copies digits of base into out, checking underscores sit between digits. */
static int take_digits(struct parser *p, const char *tok, size_t n, int base, char *out, size_t cap,
                       size_t *ret_len)
{
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                int c = (unsigned char)tok[i];
                bool ok = base == 16
                              ? (digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                          : base == 8 ? (c >= '0' && c <= '7')
                          : base == 2 ? (c == '0' || c == '1')
                                      : digit(c);
                if (c == '_') {
                        if (i == 0 || i + 1 == n || tok[i - 1] == '_' || tok[i + 1] == '_')
                                return toml_fail(p, "an underscore must be between two digits");
                        continue;
                }
                if (!ok)
                        return toml_fail(p, "invalid digit '%c'", c);
                if (o + 1 >= cap)
                        return toml_fail(p, "number too long");
                out[o++] = (char)c;
        }
        out[o] = '\0';
        *ret_len = o;
        return 0;
}

/* Looks at what follows (n bytes are left in the document). */
static bool looks_like_datetime(const char *t, size_t n)
{
        /* 1979-05-27..., or 07:32:00 */
        return (n >= 10 && digit(t[0]) && digit(t[1]) && digit(t[2]) && digit(t[3]) &&
                t[4] == '-') ||
               (n >= 8 && digit(t[0]) && digit(t[1]) && t[2] == ':');
}

static bool datetime_char(int c)
{
        return digit(c) || c == '-' || c == ':' || c == '.' || c == '+' || c == 'T' || c == 't' ||
               c == 'Z' || c == 'z';
}

/* n digits at t as a number, or -1. */
static int num(const char *t, size_t n)
{
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (!digit(t[i]))
                        return -1;
                v = v * 10 + (t[i] - '0');
        }
        return v;
}

static bool valid_date(const char *t, size_t n)
{
        static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int y, m, d;

        if (n != 10 || t[4] != '-' || t[7] != '-')
                return false;
        y = num(t, 4);
        m = num(t + 5, 2);
        d = num(t + 8, 2);
        if (y < 0 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
                return false;
        return !(m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

/* HH:MM:SS[.frac] */
static bool valid_time(const char *t, size_t n)
{
        if (n < 8 || t[2] != ':' || t[5] != ':' || num(t, 2) < 0 || num(t, 2) > 23 ||
            num(t + 3, 2) < 0 || num(t + 3, 2) > 59 || num(t + 6, 2) < 0 || num(t + 6, 2) > 60)
                return false;
        if (n == 8)
                return true;
        return t[8] == '.' && n > 9 && num(t + 9, n - 9) >= 0;
}

/* Z, or +HH:MM / -HH:MM */
static bool valid_offset(const char *t, size_t n)
{
        if (n == 1)
                return t[0] == 'Z' || t[0] == 'z';
        return n == 6 && (t[0] == '+' || t[0] == '-') && t[3] == ':' && num(t + 1, 2) >= 0 &&
               num(t + 1, 2) <= 23 && num(t + 4, 2) >= 0 && num(t + 4, 2) <= 59;
}

/* A date, a time, a date and time, with or without an offset; kept as its text. */
static json_t *parse_datetime(struct parser *p)
{
        size_t start = p->pos, n, tn;
        const char *t = p->s + start, *tm;
        bool ok;

        while (datetime_char(peek(p)))
                p->pos++;
        /* "1979-05-27 07:32:00": a space may separate the date and the time */
        if (peek(p) == ' ' && p->pos - start == 10 && digit(peek_at(p, 1)) &&
            digit(peek_at(p, 2)) && peek_at(p, 3) == ':') {
                p->pos++;
                while (datetime_char(peek(p)))
                        p->pos++;
        }
        n = p->pos - start;
        if (n >= 3 && t[2] == ':') {
                ok = valid_time(t, n);
        } else if (n == 10) {
                ok = valid_date(t, n);
        } else {
                ok = n > 11 && valid_date(t, 10) && (t[10] == 'T' || t[10] == 't' || t[10] == ' ');
                tm = t + 11;
                tn = n - 11;
                if (ok && (tm[tn - 1] == 'Z' || tm[tn - 1] == 'z'))
                        ok = valid_offset(tm + tn - 1, 1) && valid_time(tm, tn - 1);
                else if (ok && tn > 6 && (tm[tn - 6] == '+' || tm[tn - 6] == '-'))
                        ok = valid_offset(tm + tn - 6, 6) && valid_time(tm, tn - 6);
                else if (ok)
                        ok = valid_time(tm, tn);
        }
        if (!ok) {
                p->pos = start;
                (void)toml_fail(p, "invalid date or time");
                return NULL;
        }
        return json_stringn(t, n);
}

json_t *toml_parse_number(struct parser *p)
{
        size_t start = p->pos, n, dl;
        const char *t = p->s + start;
        char digits[128];
        bool neg = false, is_float = false;
        int base = 10;

        while (is_bare(peek(p)) || peek(p) == '.' || peek(p) == '+')
                p->pos++;
        n = p->pos - start;
        if (n == 0) {
                (void)toml_fail(p, "expected a value");
                return NULL;
        }
        if (looks_like_datetime(t, p->len - start)) {
                p->pos = start;
                return parse_datetime(p);
        }
        {
                size_t i = (t[0] == '+' || t[0] == '-') ? 1 : 0;
                const char *u = t + i;
                size_t un = n - i;
                /* JSON has no infinities or NaN: they become null (agentkernel reads none) */
                if (un == 3 && (memcmp(u, "inf", 3) == 0 || memcmp(u, "nan", 3) == 0))
                        return json_null();
        }
        if (n > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
                base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
                p->pos = start + 2;
                if (take_digits(p, t + 2, n - 2, base, digits, sizeof(digits), &dl) < 0)
                        return NULL;
                if (dl == 0) {
                        (void)toml_fail(p, "missing digits");
                        return NULL;
                }
                errno = 0;
                {
                        unsigned long long v = strtoull(digits, NULL, base);
                        if (errno == ERANGE || v > INT64_MAX) {
                                p->pos = start;
                                (void)toml_fail(p, "integer out of range");
                                return NULL;
                        }
                        p->pos = start + n;
                        return json_integer((json_int_t)v);
                }
        }
        for (size_t i = 0; i < n; i++)
                if (t[i] == '.' || t[i] == 'e' || t[i] == 'E')
                        is_float = true;
        {
                /* sign, then digits (no leading zero), [. digits], [e sign digits] */
                char clean[160];
                size_t o = 0, i = 0;
                if (t[0] == '+' || t[0] == '-') {
                        neg = t[0] == '-';
                        clean[o++] = t[0];
                        i = 1;
                }
                size_t int_start = i;
                while (i < n && (digit(t[i]) || t[i] == '_'))
                        i++;
                p->pos = start + int_start;
                if (i == int_start) {
                        (void)toml_fail(p, "expected a value");
                        return NULL;
                }
                if (take_digits(p, t + int_start, i - int_start, 10, digits, sizeof(digits), &dl) <
                    0)
                        return NULL;
                if (dl > 1 && digits[0] == '0') {
                        (void)toml_fail(p, "leading zeros are not allowed");
                        return NULL;
                }
                memcpy(clean + o, digits, dl);
                o += dl;
                if (i < n && t[i] == '.') {
                        size_t fs = ++i;
                        while (i < n && (digit(t[i]) || t[i] == '_'))
                                i++;
                        p->pos = start + fs;
                        if (i == fs) {
                                (void)toml_fail(p, "a decimal point must be followed by digits");
                                return NULL;
                        }
                        if (take_digits(p, t + fs, i - fs, 10, digits, sizeof(digits), &dl) < 0)
                                return NULL;
                        if (o + dl + 2 >= sizeof(clean)) {
                                (void)toml_fail(p, "number too long");
                                return NULL;
                        }
                        clean[o++] = '.';
                        memcpy(clean + o, digits, dl);
                        o += dl;
                }
                if (i < n && (t[i] == 'e' || t[i] == 'E')) {
                        size_t es;
                        clean[o++] = 'e';
                        i++;
                        if (i < n && (t[i] == '+' || t[i] == '-'))
                                clean[o++] = t[i++];
                        es = i;
                        while (i < n && (digit(t[i]) || t[i] == '_'))
                                i++;
                        p->pos = start + es;
                        if (i == es) {
                                (void)toml_fail(p, "an exponent needs digits");
                                return NULL;
                        }
                        if (take_digits(p, t + es, i - es, 10, digits, sizeof(digits), &dl) < 0)
                                return NULL;
                        if (o + dl + 1 >= sizeof(clean)) {
                                (void)toml_fail(p, "number too long");
                                return NULL;
                        }
                        memcpy(clean + o, digits, dl);
                        o += dl;
                }
                if (i != n) {
                        p->pos = start + i;
                        (void)toml_fail(p, "invalid number");
                        return NULL;
                }
                clean[o] = '\0';
                p->pos = start + n;
                errno = 0;
                if (is_float) {
                        double d = strtod(clean, NULL);
                        if (errno == ERANGE && isinf(d)) {
                                p->pos = start;
                                (void)toml_fail(p, "float out of range");
                                return NULL;
                        }
                        return json_real(d);
                }
                {
                        long long v = strtoll(clean, NULL, 10);
                        (void)neg;
                        if (errno == ERANGE) {
                                p->pos = start;
                                (void)toml_fail(p, "integer out of range");
                                return NULL;
                        }
                        return json_integer((json_int_t)v);
                }
        }
}
