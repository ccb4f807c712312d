/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pulling an image into the local store: resolve the name, fetch and verify the manifest (and
 * the platform's manifest from an index), the config and every missing layer, unpack each layer
 * once, then publish the record and the names. Concurrent pulls of one image share the work
 * through per-layer locks; a killed pull leaves only tmp/ entries that nothing reads.
 */
#pragma once

#include <stdbool.h>

#include "image/image-store.h"
#include "shared/err.h"

struct pull_opts {
        bool progress; /* draw progress on stderr (a terminal) */
        bool quiet;    /* no per-layer lines at all */
};

int image_pull(const char *data_dir, const char *name, const struct pull_opts *o,
               struct image_record *ret, struct ak_err *err);
