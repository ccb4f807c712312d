/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A per-thread cache of jansson's small blocks, in front of malloc (json-cache.c says why).
 *
 * json_cache_install() routes jansson's allocations through it; call it once, first thing in
 * main(), before any JSON value exists. It does nothing where it would not help or where it
 * would hide bugs: with glibc's malloc (per-thread arenas already) and in sanitizer builds.
 */
#pragma once

void json_cache_install(void);
