// SPDX-License-Identifier: Apache-2.0
/* Kernel randomness helpers; never falls back to a weak generator. */
#include "random-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void random_bytes(void *buf, size_t n)
{
        char *p = buf;

        while (n > 0) {
                ssize_t r = getrandom(p, n, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        abort(); /* no entropy source at all: refuse to make weak ids */
                }
                p += r;
                n -= (size_t)r;
        }
}

void random_hex(char *out, size_t nbytes)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[64];

        if (nbytes > sizeof(raw))
                nbytes = sizeof(raw);
        random_bytes(raw, nbytes);
        for (size_t i = 0; i < nbytes; i++) {
                out[2 * i] = hex[raw[i] >> 4];
                out[2 * i + 1] = hex[raw[i] & 15];
        }
        out[2 * nbytes] = '\0';
}

void uuid_v7(char out[37], uint64_t unix_ms)
{
        unsigned char b[16];

        random_bytes(b, sizeof(b));
        for (int i = 0; i < 6; i++)
                b[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        (void)snprintf(out, 37,
                       "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                       b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                       b[13], b[14], b[15]);
}

int uuid_is_valid(const char *s)
{
        if (strlen(s) != 36)
                return 0;
        for (int i = 0; i < 36; i++) {
                char c = s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return 0;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                             (c >= 'A' && c <= 'F'))) {
                        return 0;
                }
        }
        return 1;
}

bool is_lower_hex(const char *s, size_t len)
{
        size_t i;

        for (i = 0; s[i]; i++)
                if (i >= len || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return i == len;
}

int detached_id_is_valid(const char *s)
{
        return is_lower_hex(s, 2 * DETACHED_ID_BYTES);
}
