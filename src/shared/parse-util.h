/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number, duration and port parsing: whole-string, no sign, explicit overflow errors. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* Parses a decimal unsigned integer; the whole string must be digits. -EINVAL / -ERANGE. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
int safe_atoi32(const char *s, int32_t *ret);

#define DURATION_MAX_SECONDS (3650ULL * 86400ULL) /* ten years: the longest TTL accepted */

/* Parses a duration: "0", a bare number of seconds, or units in descending order, each at most
 * once: "1d", "2h30m", "90s", "1d2h3m4s". Returns seconds in *ret. -EINVAL or -ERANGE. */
int parse_duration(const char *s, uint64_t *ret);
/* A size in bytes: "4096", "512MB", "2G", "1TB" (K/M/G/T and KB/MB/GB/TB are powers of 1024, as
 * upstream; a "B" suffix allowed). -EINVAL, or -ERANGE past 2^64. */
int parse_size(const char *s, uint64_t *ret);

/* A published port: the sandbox's container_port reachable at the host's host_port. */
struct port_spec {
        int32_t host_port; /* -1 when not given */
        uint16_t container_port;
        bool udp;
};
/* "8080", "8080:80", "8080:80/udp", "80/tcp". 0 or -EINVAL with a message. */
int parse_port_spec(const char *spec, struct port_spec *ret, struct ak_err *err);
