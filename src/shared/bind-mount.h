/* SPDX-License-Identifier: Apache-2.0 */
/* A host directory shown inside a sandbox (volumes), as backends and runtimes pass it on. */
#pragma once

#include <stdbool.h>

struct bind_mount {
        const char *source; /* host path */
        const char *dest;   /* absolute sandbox path */
        bool ro;
};
