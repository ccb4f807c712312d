/* SPDX-License-Identifier: Apache-2.0 */
/* Capability bounding-set helpers; allocation-free, so usable between clone() and execve(). */
#pragma once

#include <stdint.h>

/* Drops every capability not in keep (a bit mask of CAP_* numbers) from the bounding set and
 * clears the ambient set. Needs CAP_SETPCAP. Returns 0 or -errno. */
int caps_limit_bounding(uint64_t keep);
/* The current bounding set, from /proc/self/status. Returns 0 or -errno. */
int caps_bounding_now(uint64_t *ret);
