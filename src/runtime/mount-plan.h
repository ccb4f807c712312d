/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A mount plan: what a sandbox's root filesystem is built from, as a flat list of operations
 * that the runtime's child carries out in order (runtime.c), the parent making some of them
 * beforehand (MOP_PREPARED, prepare.c). rootfs.h says what goes in a plan.
 */
#pragma once

#include <stddef.h>

#include "shared/buf.h"
#include "shared/cleanup.h"

enum mount_op_type {
        MOP_MKDIR,      /* dst, mode */
        MOP_TMPFS,      /* dst, data (mount options), flags */
        MOP_BIND,       /* src (host path) -> dst, read-write */
        MOP_BIND_RO,    /* src (host path) -> dst, read-only */
        MOP_BIND_DEV,   /* src (host device node) -> dst, read-write, no exec */
        MOP_PROC,       /* fresh procfs at dst */
        MOP_DEVPTS,     /* new devpts instance at dst */
        MOP_SYMLINK,    /* dst -> src (target text) */
        MOP_FILE,       /* dst with contents src/len, mode */
        MOP_COPY,       /* dst as a copy of host file src, mode (for small files: no mount) */
        MOP_REMOUNT_RO, /* make dst (a mount point) read-only */
        MOP_MASK_FILE,  /* bind /dev/null over dst when it exists */
        MOP_MASK_DIR,   /* empty read-only tmpfs over dst when it exists */
        MOP_OVERLAY,    /* overlayfs at dst: src = lower dirs, top first, ':'-separated;
                           the upper and work dirs are on the sandbox's disk. Rootful
                           (MOP_IDMAP): the parent builds it over idmapped layers; rootless: the
                           child mounts it with userxattr; MOP_DETACHED: src is one host
                           directory (the copy fallback), lent by the parent as a detached mount,
                           and the child mounts the overlay on it */
        MOP_DISK_DIR,   /* directory src ("/name") on the sandbox's disk (created with mode),
                           bound at dst; MOP_NOEXEC: no execution */
};

#define MOP_OPTIONAL (1u << 0) /* skip the op when its source is missing */
#define MOP_NOEXEC (1u << 1)   /* tmpfs: no execution */
/* MOP_BIND_RO, MOP_OVERLAY: an idmapped mount through the sandbox's own user namespace (rootful
 * only): files appear with the sandbox's ids (host root's as the sandbox's root). Only for what
 * the sandbox cannot write (the /etc snapshot, image layers). Prepared by the parent. */
#define MOP_IDMAP (1u << 2)
#define RUNTIME_IDMAP_MAX 40  /* prepared mounts per sandbox (and its disk) */
#define MOP_REPLACE (1u << 3) /* MOP_FILE: replace whatever is at dst (an image's symlink) */
/* MOP_BIND (rootful): a plain detached copy of src made by the parent, which can reach places
 * the sandbox's root cannot (the private data directory); attached like MOP_IDMAP. */
#define MOP_DETACHED (1u << 4)
/* MOP_BIND (rootful): a writable host directory (a workspace), idmapped through a user namespace
 * made for this mount: the directory's owner is the sandbox's root (its group the sandbox's
 * group 0) and the sandbox's other ids are its own host range, so nothing the sandbox writes is
 * ever owned by host root. A directory owned by root is mounted plain: the sandbox's root writes
 * as its own unprivileged host id. Prepared by the parent. */
#define MOP_OWNER (1u << 5)
/* MOP_BIND/MOP_BIND_RO (rootful): a volume, idmapped so that sandbox id k is host id
 * VOLUME_ID_BASE + k in every sandbox (volumes are shared between sandboxes of different host
 * ranges). Prepared by the parent. */
#define MOP_VOLUME (1u << 6)
#define MOP_PREPARED (MOP_IDMAP | MOP_DETACHED | MOP_OWNER | MOP_VOLUME)
/* MOP_MKDIR with MOP_OPTIONAL: create when missing, leave an existing directory as it is. */
#define OVERLAY_MAX_LOWER 128u /* lower layers of one MOP_OVERLAY */

struct mount_op {
        enum mount_op_type type;
        const char *src;
        const char *dst;  /* absolute path inside the sandbox */
        const char *data; /* tmpfs options */
        size_t len;       /* MOP_FILE content length */
        unsigned mode;
        unsigned flags; /* MOP_* flags */
};

/* A growable list of mount operations that owns its strings. */
struct mount_plan {
        struct mount_op *ops;
        size_t n, cap;
        struct str_pool strings;
};

/* Frees what p holds (p itself is the caller's) and zeroes it. */
void mount_plan_done(struct mount_plan *p);
DEFINE_CLEANUP_DONE(struct mount_plan, mount_plan_done)
#define cleanup_mount_plan CLEANUP_FUNC(mount_plan_done)
/* Appends an op; strings are copied. Returns 0 or -ENOMEM. */
int mount_plan_add(struct mount_plan *p, enum mount_op_type type, const char *src, const char *dst,
                   const char *data, unsigned mode, unsigned flags);
int mount_plan_add_file(struct mount_plan *p, const char *dst, const char *content, unsigned mode);
int mount_plan_add_bytes(struct mount_plan *p, const char *dst, const char *data, size_t len,
                         unsigned mode);
