/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the native backend needs of an OCI image: its layers from the local store (pulled with
 * the agentkernel-image helper when missing), its config (Env, WorkingDir, User) and, where
 * overlayfs cannot stack idmapped layers, a private copy of it. Holds the store's shared lock so
 * that `images prune` cannot remove a layer while a sandbox is being built on it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shared/cleanup.h"
#include "shared/err.h"

struct native_image {
        char *lowers;  /* layer dirs, top first, ':'-separated */
        char **env;    /* the image's Env, NULL-terminated (may be NULL) */
        char *workdir; /* or NULL */
        char *user;    /* or NULL */
        int lock_fd;   /* the store lock, shared */
};
#define NATIVE_IMAGE_INIT                                                                          \
        {                                                                                          \
                .lock_fd = -1                                                                      \
        }

/* Resolves name in the store, pulling it when absent. */
int native_image_open(const char *name, struct native_image *ret, struct ak_err *err);
/* Frees what img holds and drops its layer lock (img itself is the caller's). NULL is fine. */
void native_image_done(struct native_image *img);
DEFINE_CLEANUP_DONE(struct native_image, native_image_done)
#define cleanup_native_image CLEANUP_FUNC(native_image_done)

/* The copy fallback: the image's layers merged into dir (bottom up, whiteouts and opaque
 * directories applied), owned by the layer's ids + shift (rootful) or by us (rootless). Slow for
 * big images, but needs neither overlayfs nor idmapped mounts. */
int native_image_copy(const struct native_image *img, const char *dir, uint32_t shift,
                      struct ak_err *err);

/* Whether image roots are copies: AGENTKERNEL_IMAGE_ROOTFS=copy|overlay, else copy only where
 * this kernel cannot stack idmapped layers (rootful, before Linux 6.13). */
bool native_image_use_copy(void);

/* 0 when the agent binary (an open fd) can run inside an image root: it must be static, since an
 * image has its own (or no) dynamic loader and libraries. */
int native_image_agent_ok(int agent_fd, struct ak_err *err);
