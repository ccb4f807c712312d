/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a sandbox sees: mount plans for its root filesystem. The `host` image is a read-only view
 * of the host's programs and libraries (/usr and the merged-/usr links) with a curated /etc
 * (generated passwd/group/hosts, an allow-list of configuration that holds no secrets), fresh
 * /proc with sensitive files masked, a minimal /dev, and private writable /tmp, /var, /run and
 * /root (all on the sandbox's disk, see rootfs_plan_common). Users' homes and everything else of
 * the host stay invisible.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "mount-plan.h"
#include "shared/bind-mount.h"

struct rootfs_opts {
        const char *workspace;   /* host directory mounted read-write at /workspace, or NULL */
        bool scratch_workspace;  /* without workspace: /workspace a directory of the disk */
        const char *home;        /* host directory mounted read-only at /home/user, or NULL */
        const char *const *hide; /* host directories hidden where they lie inside home */
        size_t n_hide;
        const char *resolv_conf;        /* contents of /etc/resolv.conf, or NULL for none */
        const struct bind_mount *binds; /* volumes, after the workspace */
        size_t n_binds;
        bool idmap; /* rootful: idmap the workspace (MOP_OWNER), volumes (MOP_VOLUME), /etc */
        /* Where /etc snapshots live (etc-snapshot.h), or NULL to fill /etc at every start. */
        const char *etc_snapshots;
};

/* Appends the `host` image to plan. *ret_etc_lock: -1, or the lock of the /etc snapshot the plan
 * binds, which must stay open (the sandbox's agent inherits it) while the sandbox lives. */
int rootfs_plan_host(const struct rootfs_opts *o, struct mount_plan *plan, int *ret_etc_lock);

/* Appends an OCI image: overlayfs over `lowers` (store layer dirs, top first, ':'-separated), or,
 * when merged is given, over that one host directory (the copy fallback), with its upper layer on
 * the sandbox's disk; then the common mounts; workdir (the image's WorkingDir, may be NULL) is
 * created when the image lacks it. o->idmap (rootful): idmapped layers, or the copy lent as a
 * detached mount; else the sandbox's user namespace mounts the overlay. */
int rootfs_plan_image(const struct rootfs_opts *o, const char *lowers, const char *merged,
                      const char *workdir, struct mount_plan *plan);

/* Appends /dev, /proc, /tmp, /run and the workspace: the part shared by every image. Every place
 * the sandbox may write for itself (/tmp, /run, /dev/shm here; /var and /root of the host image;
 * an image's upper layer) is a directory of the sandbox's disk (MOP_DISK_DIR): one size for all
 * (runtime_spec.disk_bytes). */
int rootfs_plan_common(const struct rootfs_opts *o, struct mount_plan *plan);

/* Whether the host's /etc/<name> is shown by the `host` image (its allow-list; the microvm
 * backend builds the same view). */
bool rootfs_etc_allowed(const char *name);

/* The credentials masked in a home shown to a sandbox, relative to the home: directories
 * (covered by an empty one) and files (covered by an empty file). NULL-terminated; the microvm
 * backend's home share masks the same. */
extern const char *const rootfs_home_mask_dirs[];
extern const char *const rootfs_home_mask_files[];
