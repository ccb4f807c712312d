// SPDX-License-Identifier: Apache-2.0
#include "text-util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
        size_t i = 0;

        while (i < len) {
                unsigned c = s[i], n;
                uint32_t cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        n = 1, cp = c & 0x1F;
                else if (c >= 0xE0 && c <= 0xEF)
                        n = 2, cp = c & 0x0F;
                else if (c >= 0xF0 && c <= 0xF4)
                        n = 3, cp = c & 0x07;
                else
                        return i;
                if (n >= len - i)
                        return i;
                for (unsigned k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return i;
                        cp = (cp << 6) | (s[i + k] & 0x3F);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
                    (cp >= 0xD800 && cp <= 0xDFFF))
                        return i;
                i += n + 1;
        }
        return len;
}

bool utf8_valid(const void *s, size_t len)
{
        return utf8_invalid_at(s, len) == len;
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
        return (n + 2) / 3 * 4;
}

void base64_encode(const void *data, size_t n, char *out)
{
        const unsigned char *p = data;
        size_t o = 0, i = 0;

        for (; i + 2 < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = alphabet[(v >> 6) & 63];
                out[o++] = alphabet[v & 63];
        }
        if (i < n) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
                out[o++] = alphabet[v >> 18];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
                out[o++] = '=';
        }
        out[o] = '\0';
}

static int value_of(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

long base64_decode(const char *text, size_t len, void *out)
{
        unsigned char *o = out;
        size_t n = 0;

        if (len % 4)
                return -EINVAL;
        for (size_t i = 0; i < len; i += 4) {
                int v[4];
                bool last = i + 4 == len;
                for (int k = 0; k < 4; k++)
                        v[k] = value_of(text[i + k]);
                if (v[0] < 0 || v[1] < 0)
                        return -EINVAL;
                if (last && text[i + 2] == '=' && text[i + 3] == '=') {
                        if (v[1] & 15)
                                return -EINVAL;
                        o[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
                        break;
                }
                if (last && text[i + 3] == '=') {
                        if (v[2] < 0 || (v[2] & 3))
                                return -EINVAL;
                        o[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
                        o[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
                        break;
                }
                if (v[2] < 0 || v[3] < 0)
                        return -EINVAL;
                o[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
                o[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
                o[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
        }
        return (long)n;
}

void format_bytes(uint64_t n, char *out, size_t len)
{
        static const char *const unit[] = {"B", "KB", "MB", "GB", "TB"};
        double v = (double)n;
        size_t u = 0;

        while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
                v /= 1024;
                u++;
        }
        (void)snprintf(out, len, u ? "%.1f%s" : "%.0f%s", v, unit[u]);
}
