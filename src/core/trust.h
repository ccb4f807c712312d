/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The trust store: which agentkernel.toml files the user approved, by canonical path and the
 * SHA-256 of their exact bytes (as direnv's `allow`). It lives in the user's directory
 * (the user directory/trusted-configs.json, 0600, replaced atomically under a lock) and holds at
 * most TRUST_MAX_ENTRIES approvals. A store that is not a regular file owned by the caller and
 * closed to group and others approves nothing: it is reported, never believed.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "shared/err.h"

#define TRUST_FILE "trusted-configs.json"
#define TRUST_MAX_ENTRIES 1024
#define TRUST_FILE_MAX (8u << 20)

enum trust_verdict {
        TRUST_APPROVED, /* this path with this hash */
        TRUST_NEW,      /* this path was never approved */
        TRUST_CHANGED,  /* approved with another hash */
};

/* Looks path (canonical) up. A store that cannot be believed fails (-EPERM, with why). */
int trust_check(const char *path, const char *sha256_hex, enum trust_verdict *ret,
                struct ak_err *err);
/* Approves path with sha256_hex, replacing an earlier approval of the path. When the store is
 * full, approvals of files that no longer exist are dropped first; -ENOSPC if still full. */
int trust_add(const char *path, const char *sha256_hex, struct ak_err *err);
/* Removes the approval of path; *ret_found says whether there was one. */
int trust_remove(const char *path, bool *ret_found, struct ak_err *err);
/* The approvals: an object path -> {"sha256", "approved_at"} (a new reference). */
int trust_list(json_t **ret, struct ak_err *err);
/* Where the store is (malloc'd), for messages. */
char *trust_store_path(void);
