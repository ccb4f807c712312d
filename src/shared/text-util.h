/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 validation, base64 (RFC 4648, standard alphabet, padded), byte counts for people. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Offset of the first byte that is not valid UTF-8 (overlongs, surrogates and code points past
 * U+10FFFF are invalid), or len when all of it is. */
size_t utf8_invalid_at(const unsigned char *s, size_t len);
bool utf8_valid(const void *s, size_t len);

/* Encoded length of n bytes, without the NUL. */
size_t base64_encoded_len(size_t n);
/* Writes base64 of data into out (base64_encoded_len(n) + 1 bytes, NUL-terminated). */
void base64_encode(const void *data, size_t n, char *out);
/* Decodes text (whitespace not allowed, padding required) into out (at least len/4*3 bytes).
 * Returns the decoded length, or -EINVAL. */
long base64_decode(const char *text, size_t len, void *out);

/* "1.5MB", "512B": a byte count for people (binary units). */
void format_bytes(uint64_t n, char *out, size_t len);
