/* SPDX-License-Identifier: Apache-2.0 */
/* The docker and podman backends' warm pools (struct backend_ops' pool_clear). */
#pragma once

#include "engine/engine.h"
#include "shared/err.h"

/* Removes every idle pooled container of kind (waiting for a refill in progress; containers being
 * claimed right now are left to their runs). */
int engine_pool_clear(enum engine_kind kind, const char *ephemeral_dir, unsigned *ret_removed,
                      struct ak_err *err);

/* The ops tables' pool_clear, one per engine (ENGINE_OPS in engine-backend.c). */
static inline int docker_pool_clear(const char *ephemeral_dir, unsigned *ret_removed,
                                    struct ak_err *err)
{
        return engine_pool_clear(ENGINE_DOCKER, ephemeral_dir, ret_removed, err);
}

static inline int podman_pool_clear(const char *ephemeral_dir, unsigned *ret_removed,
                                    struct ak_err *err)
{
        return engine_pool_clear(ENGINE_PODMAN, ephemeral_dir, ret_removed, err);
}
