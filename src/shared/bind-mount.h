/* SPDX-License-Identifier: Apache-2.0 */
/* A host directory shown inside a sandbox (volumes), as backends and runtimes pass it on, and
 * the host id ranges that decide who owns what a sandbox writes there. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Host uid and gid of a volume's root: a volume's files are owned by VOLUME_ID_BASE + k on the
 * host for sandbox id k, in every sandbox that mounts it (native backend, as root). The range
 * lies just below the sandboxes' own ranges (0x40000000 + 65536 * N) and far above ordinary
 * users and the subordinate ranges of /etc/subuid (100000 + 65536 * n): nobody on the host has
 * these ids, and no sandbox id is ever host root. */
#define VOLUME_ID_BASE 0x3FFF0000u
#define VOLUME_ID_COUNT 65536u

/* Host ids of a rootful sandbox (native and containers alike): slot N's root is host uid/gid
 * ID_RANGE_BASE + N * ID_RANGE_SIZE, with ID_RANGE_SIZE ids mapped. Kept sandboxes use their
 * recorded slot (below EPHEMERAL_SLOT_BASE); ephemeral runs take a random one above it. */
#define ID_RANGE_BASE 0x40000000u /* host uid/gid of slot 0's root */
#define ID_RANGE_SIZE 65536u      /* ids mapped per sandbox */
#define ID_SLOTS 16384u           /* slots fit below 0x80000000 */
#define EPHEMERAL_SLOT_BASE 8192u /* ephemeral runs take slots from here up */

struct bind_mount {
        const char *source; /* host path */
        const char *dest;   /* absolute sandbox path */
        bool ro;
};

/* Whether a sandbox with this workspace (or NULL) and these binds writes a host directory: then
 * it gets the host-files variant of its seccomp profile (runtime/seccomp.h). */
static inline bool bind_mounts_writable(const char *workspace, const struct bind_mount *binds,
                                        size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!binds[i].ro)
                        return true;
        return workspace != NULL;
}
