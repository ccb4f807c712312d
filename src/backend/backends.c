// SPDX-License-Identifier: Apache-2.0
/* The shipped programs' backends (backends.h). The test library adds backends-test.c. */
#include "backends.h"

static const struct backend_ops *const builtin[] = {
    &native_backend_ops, &docker_backend_ops, &podman_backend_ops, &microvm_backend_ops, NULL,
};

void backends_init(void)
{
        backend_registry_set(builtin);
}
