/* SPDX-License-Identifier: Apache-2.0 */
/* jansson helpers for host-side code (the static agent does not link jansson). */
#pragma once

#include <jansson.h>

/* jansson >= 2.9 provides json_decrefp() for scope cleanup. */
#define cleanup_json __attribute__((cleanup(json_decrefp)))
