/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A data directory's runtime directory: what lives only while the host runs (the /etc snapshots
 * of native sandboxes, the egress proxy's sockets) goes to <runtime>/agentkernel/<id>/, <runtime>
 * /run as root and $XDG_RUNTIME_DIR rootless (both private places of their owner, a tmpfs on
 * most hosts), <id> the first 16 hex digits of the SHA-256 of the data directory's canonical
 * path: each data directory has its own. Without a usable runtime directory, <data>/cache/.
 *
 * Each <id>/ records its data directory's path (data-dir). A data directory deleted leaves its
 * <id>/ behind; the first use of a new data directory (and `gc`) removes the <id>/ of data
 * directories that no longer exist, each part only when nothing uses it: no proxy running there
 * (its lock), no sandbox holding an /etc snapshot (their locks). Without that, every temporary
 * data directory (a CI job's, a test's) would leave its snapshots in memory until the next boot.
 */
#pragma once

#include <stddef.h>

#include "shared/err.h"

#define RUNTIME_DIR_SWEEP_MAX 4096 /* <id>/ directories one sweep examines */

/* <runtime>/agentkernel (/run as root, $XDG_RUNTIME_DIR rootless), touching nothing; NULL where
 * there is no usable runtime directory (rootless without an absolute $XDG_RUNTIME_DIR).
 * malloc'd. */
char *runtime_dir_top(void);

/* The directory `sub` (one component: "etc", "proxy") of this data directory's runtime
 * directory, created private (0700) if missing; its path into out. 0, or -errno (with err set,
 * err may be NULL). */
int runtime_dir_sub(const char *sub, char *out, size_t len, struct ak_err *err);

/* Removes the runtime directories of data directories that no longer exist, as above (best
 * effort): how many went. */
unsigned runtime_dir_sweep(void);
