/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time: clocks in nanoseconds and RFC 3339 timestamps. Formatting matches what upstream's
 * chrono `to_rfc3339()` writes (UTC, "+00:00", sub-second digits in groups of 3 only when
 * non-zero), so state files written here look like upstream's.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define NSEC_PER_SEC 1000000000LL
#define NSEC_PER_MSEC 1000000LL
#define RFC3339_MAX 40

int64_t now_realtime_ns(void);
int64_t now_monotonic_ns(void);

/* Formats ns since the epoch as UTC RFC 3339 into out (RFC3339_MAX bytes). */
void format_rfc3339(int64_t ns, char out[RFC3339_MAX]);

/* Parses an RFC 3339 timestamp (T/t/space separator, optional fraction, Z or ±HH:MM).
 * Returns 0 and sets *ret_ns, or -EINVAL. */
int parse_rfc3339(const char *s, int64_t *ret_ns);
