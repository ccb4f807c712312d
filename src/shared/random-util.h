/* SPDX-License-Identifier: Apache-2.0 */
/* Randomness from the kernel (getrandom): ids, temp names, UUIDv7. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fills buf with n random bytes. Blocks only before the pool is initialised. */
void random_bytes(void *buf, size_t n);

/* Writes 2*nbytes lowercase hex characters plus NUL into out (which holds 2*nbytes+1). */
void random_hex(char *out, size_t nbytes);

/* Writes a UUIDv7 string (36 chars + NUL) for the given Unix time in milliseconds. */
void uuid_v7(char out[37], uint64_t unix_ms);

/* Returns 1 when s is a canonical UUID string (any version), else 0. */
int uuid_is_valid(const char *s);

/* Whether s is exactly len lowercase hex digits: the names this code makes from random or hashed
 * bytes, checked so that a name read back never names anything else (no '/', no '..'). */
bool is_lower_hex(const char *s, size_t len);

/* A detached command's id: random_hex() of DETACHED_ID_BYTES bytes, made by the agent. */
#define DETACHED_ID_BYTES 4
/* Returns 1 when s is a detached command's id (2 * DETACHED_ID_BYTES lowercase hex digits), else
 * 0: the one check for an id that comes from outside (the manager, the agent), so that an id
 * never names anything but a record (no '/', no '..'). */
int detached_id_is_valid(const char *s);
