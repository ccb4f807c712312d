/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number and duration parsing: whole-string, no sign, explicit overflow errors. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Parses a decimal unsigned integer; the whole string must be digits. -EINVAL / -ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
int safe_atoi32(const char *s, int32_t *ret);

#define DURATION_MAX_SECONDS (3650ULL * 86400ULL) /* ten years: the longest TTL accepted */

/* Parses a duration: "0", a bare number of seconds, or units in descending order, each at most
 * once: "1d", "2h30m", "90s", "1d2h3m4s". Returns seconds in *ret. -EINVAL or -ERANGE. */
int parse_duration(const char *s, uint64_t *ret);
