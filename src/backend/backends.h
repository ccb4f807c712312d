/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The backends a program has, made known to the core (core/backend.h), which names none of them:
 * it is a layer below them. Each program's main() calls one of these once, before anything that
 * uses a backend.
 */
#pragma once

#include "core/backend.h"

/* native, docker, podman and microvm, native first (the default). */
void backends_init(void);

/* Unit tests only (the test library): the same, then the fake and faulty backends. */
void backends_init_test(void);

extern const struct backend_ops native_backend_ops;
extern const struct backend_ops docker_backend_ops;
extern const struct backend_ops podman_backend_ops;
extern const struct backend_ops microvm_backend_ops;
/* In the test library only (backend/fake.c, backend/faulty.c). */
extern const struct backend_ops fake_backend_ops;
extern const struct backend_ops faulty_backend_ops;
