/* SPDX-License-Identifier: Apache-2.0 */
/* What the docker and podman backends offer beyond struct backend_ops: their warm pools. */
#pragma once

#include "engine/engine.h"
#include "shared/err.h"

/* Removes every idle pooled container of kind (waiting for a refill in progress; containers being
 * claimed right now are left to their runs). */
int engine_pool_clear(enum engine_kind kind, const char *ephemeral_dir, unsigned *ret_removed,
                      struct ak_err *err);
