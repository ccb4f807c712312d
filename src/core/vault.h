/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The secrets vault: named values kept encrypted on the host and never handed to a sandbox
 * unless a caller asks for exactly that (a secret file). Upstream's format and place
 * (reference/upstream-secrets.md §1): the user directory's secrets.json ({"secrets": {NAME:
 * "v1:<nonce b64>:<ciphertext+tag b64>"}, "metadata": {NAME: {"set_at", "backend"}}}, AES-256-GCM
 * with a random 12-byte nonce per value) and secrets.key (32 random bytes as base64). Where
 * upstream was unsafe this does better: both files are private files checked when read (the
 * caller's, mode 0600, no link; one that group or others may read or write is refused), the key
 * is created only by a writer (never by a read, which upstream did and then failed to decrypt),
 * with O_EXCL, and a value never appears in a message, a log or an argument list.
 *
 * Backends (upstream's names): "file" (the default), "env" (a value is the host environment
 * variable of that name; nothing can be stored), "keyring" (not available: every call fails).
 * AGENTKERNEL_SECRETS_BACKEND chooses one.
 *
 * Values are at most VAULT_VALUE_MAX bytes of UTF-8 without NUL. Returned values are the
 * caller's and must be released with vault_value_free(), which wipes them.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define VAULT_STORE_FILE "secrets.json"
#define VAULT_KEY_FILE "secrets.key"
#define VAULT_NAME_MAX 128
#define VAULT_VALUE_MAX (64u << 10)
#define VAULT_STORE_MAX (16u << 20)
#define VAULT_ENTRIES_MAX 4096
#define VAULT_KEY_LEN 32
#define VAULT_NONCE_LEN 12
#define VAULT_TAG_LEN 16

enum vault_backend {
        VAULT_FILE = 0,
        VAULT_ENV,
        VAULT_KEYRING,
};

/* Parses a backend's name (case-insensitive, upstream's message for an unknown one). */
int vault_backend_parse(const char *s, enum vault_backend *ret, struct ak_err *err);
/* The backend AGENTKERNEL_SECRETS_BACKEND names (file when unset); its errors as above. */
int vault_backend_default(enum vault_backend *ret, struct ak_err *err);
const char *vault_backend_name(enum vault_backend b);

/* A secret's name: 1..VAULT_NAME_MAX of [A-Za-z0-9_-] (upstream's rule for names that become
 * file names; it also makes every name a usable environment variable name but for '-'). */
int vault_name_check(const char *name, struct ak_err *err);
/* A value: 1..VAULT_VALUE_MAX bytes, UTF-8, no NUL. The message never quotes it. */
int vault_value_check(const char *value, size_t len, struct ak_err *err);

/* Stores (replaces) name. -EOPNOTSUPP for env and keyring. */
int vault_set(enum vault_backend b, const char *name, const char *value, size_t len,
              struct ak_err *err);
/* Stores name only when it is missing or already holds exactly value: *ret_added says whether
 * it was added. -EEXIST (with a message naming only the name) when it holds another value. */
int vault_add(enum vault_backend b, const char *name, const char *value, size_t len,
              bool *ret_added, struct ak_err *err);
/* The value of name (NUL-terminated, *ret_len without the NUL): -ENOENT "secret 'NAME' not
 * found". Free it with vault_value_free(). */
int vault_get(enum vault_backend b, const char *name, char **ret, size_t *ret_len,
              struct ak_err *err);
/* Whether name is stored (1) or not (0), without decrypting anything; a stored one whose key
 * file is missing or not believable is an error, as for vault_get. */
int vault_has(enum vault_backend b, const char *name, struct ak_err *err);
/* Removes name: -ENOENT "secret 'NAME' not found". */
int vault_delete(enum vault_backend b, const char *name, struct ak_err *err);
/* The metadata of every stored secret, {NAME: {"set_at", "backend"}} sorted by name (a new
 * reference); never a value. env and keyring: an empty object (upstream). */
int vault_list(enum vault_backend b, json_t **ret, struct ak_err *err);

/* The hosts a secret may be bound to (ours; kept as "hosts" in its metadata, which upstream
 * ignores): each a host name, or "*.domain" for the domain and every name under it. None: any
 * host (upstream). Replaces the list (NULL or empty: clears it); a later vault_set keeps it.
 * -ENOENT when name is not stored; -EOPNOTSUPP for env and keyring. */
#define VAULT_HOSTS_MAX 16
int vault_set_hosts(enum vault_backend b, const char *name, char *const *hosts, struct ak_err *err);
/* Whether name may be bound to host: 1, or 0 with a message naming the secret, the host and
 * the hosts it may go to; -errno when it cannot be told. Secrets of the env backend, and those
 * without a list, may go anywhere. */
int vault_host_allowed(enum vault_backend b, const char *name, const char *host,
                       struct ak_err *err);

/* Wipes and frees a value (NULL is fine). */
void vault_value_free(char *value, size_t len);

/* The format itself, for the unit tests: seals value with key into upstream's
 * "v1:<nonce>:<ciphertext>" (malloc'd), and opens one (also the legacy plain base64 form). */
int vault_seal(const uint8_t key[VAULT_KEY_LEN], const char *value, size_t len, char **ret);
int vault_open_payload(const uint8_t key[VAULT_KEY_LEN], const char *payload, char **ret,
                       size_t *ret_len, struct ak_err *err);
