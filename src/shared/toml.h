/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A strict TOML 1.0 reader for agentkernel.toml (Debian 12 packages no C TOML library). Values
 * become jansson values: tables are objects (keys in file order), arrays are arrays, strings,
 * integers (64-bit), floats and booleans are themselves, and dates and times are kept as their
 * text (agentkernel reads none). Everything TOML forbids is an error with its line and column:
 * duplicate keys, a table defined twice, extending an inline table or a static array, bad
 * escapes, control characters, integer overflow, leading zeros, and so on.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "shared/err.h"

#define TOML_MAX_BYTES (1u << 20) /* larger documents are refused */
#define TOML_MAX_DEPTH 32         /* nesting of arrays and inline tables */
#define TOML_MAX_TABLES 4096      /* tables and arrays of tables in one document */

/* Parses text (len bytes, need not be NUL-terminated). On error *ret is untouched and err says
 * "line L, column C: what". */
int toml_parse(const char *text, size_t len, json_t **ret, struct ak_err *err);
