/* SPDX-License-Identifier: Apache-2.0 */
/* jansson helpers for host-side code (the static agent does not link jansson). */
#pragma once

#include <jansson.h>

/* jansson >= 2.9 provides json_decrefp() for scope cleanup. */
#define cleanup_json __attribute__((cleanup(json_decrefp)))

/* A JSON array of the strings of a NULL-terminated vector (NULL: empty). NULL on OOM. */
static inline json_t *strv_json_array(char *const *v)
{
        json_t *a = json_array();
        for (char *const *p = v; a && p && *p; p++)
                if (json_array_append_new(a, json_string(*p)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}
