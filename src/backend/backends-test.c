// SPDX-License-Identifier: Apache-2.0
/* The unit tests' backends (backends.h): the shipped ones, then two that exist only here. */
#include "backends.h"

static const struct backend_ops *const with_tests[] = {
    &native_backend_ops,
    &docker_backend_ops,
    &podman_backend_ops,
    &microvm_backend_ops,
    &fake_backend_ops,
    &faulty_backend_ops,
    NULL,
};

void backends_init_test(void)
{
        backend_registry_set(with_tests);
}
