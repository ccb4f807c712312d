/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unpacks one image layer (a tar stream, plain, gzip or zstd) into an empty directory, as an
 * overlayfs lower layer: `.wh.NAME` becomes a 0/0 character device, `.wh..wh..opq` the
 * trusted.overlay.opaque xattr of its directory (user.overlay.opaque when not root: such a store
 * is mounted with "userxattr" inside the user's own user namespace). Untrusted input: every path is
 * resolved inside the directory with openat2(RESOLVE_IN_ROOT) and never by string joining; `..`
 * components are refused; a hard link may only point at a file of this layer; nothing is ever
 * written through a symlink; device nodes are not created (counted in skipped_devices). Bounded by
 * LAYER_MAX_ENTRIES and LAYER_MAX_BYTES.
 */
#pragma once

#include <stdint.h>

#include "shared/err.h"

#define LAYER_MAX_ENTRIES 1000000u
#define LAYER_MAX_BYTES (64ull << 30)
#define LAYER_PATH_MAX 4096u

struct unpack_stats {
        uint64_t entries;
        uint64_t bytes; /* file content written */
        uint64_t skipped_devices;
};

/* Reads the layer from fd (at its current offset) into the directory root_fd. Owners are
 * applied when running as root (unprivileged, every file is the user's, directories u+rwx).
 * On error the directory holds a partial tree: the caller
 * discards it. */
int layer_unpack(int fd, int root_fd, struct unpack_stats *ret, struct ak_err *err);
