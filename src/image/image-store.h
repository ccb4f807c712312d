/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local image store, under <data dir>/images, content-addressed:
 *   layers/<hex>/      one unpacked layer per compressed-blob digest, shared by every image;
 *                      whiteouts in overlayfs form (0/0 character devices, trusted.overlay.opaque)
 *   images/<hex>.json  one record per platform manifest: its layers and its config
 *   refs.json          names ("docker.io/library/alpine:3.20", "...@sha256:...") -> manifest
 *   tmp/, locks/       work in progress, and the per-layer locks that make it happen once
 * A layer or record appears by rename(2) only when complete, so an interrupted pull leaves
 * nothing a later run would use. Pulls hold the store lock shared; rm and prune exclusive.
 * The store is mode 0700: layers keep their owners and setuid bits, so no unprivileged host user
 * may reach them. This module never talks to the network (see pull.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/err.h"

#define IMAGE_RECORD_MAX_BYTES (1u << 20)
#define IMAGE_REFS_MAX_BYTES (4u << 20)

struct image_layer {
        char *digest;      /* sha256:<hex> of the compressed blob */
        int64_t size;      /* compressed bytes */
        uint64_t unpacked; /* bytes on disk after unpacking */
};

struct image_record {
        char *id;                   /* manifest digest */
        char *config;               /* config digest */
        struct image_layer *layers; /* lowest first */
        size_t n_layers;
        char **env; /* NULL-terminated, or NULL */
        char *workdir, *user;
        char **cmd;
        char *pulled_at;
        char **names; /* filled by list and resolve: every name pointing here */
};

struct image_store {
        char *root;  /* <data dir>/images */
        int dirfd;   /* O_PATH of root */
        int lock_fd; /* held while open: shared or exclusive */
};
#define IMAGE_STORE_INIT                                                                           \
        {                                                                                          \
                .dirfd = -1, .lock_fd = -1                                                         \
        }

enum { IMAGE_STORE_SHARED, IMAGE_STORE_EXCLUSIVE };

/* Opens (creating) the store under data_dir and takes its lock in the given mode. */
int image_store_open(const char *data_dir, int mode, struct image_store *ret, struct ak_err *err);
/* Drops the lock, closes and frees what s holds (s itself is the caller's). NULL is fine. */
void image_store_done(struct image_store *s);
DEFINE_CLEANUP_DONE(struct image_store, image_store_done)
#define cleanup_image_store CLEANUP_FUNC(image_store_done)

/* Frees what r holds (r itself is the caller's) and zeroes it. NULL is fine. */
void image_record_done(struct image_record *r);
DEFINE_CLEANUP_DONE(struct image_record, image_record_done)
#define cleanup_image_record CLEANUP_FUNC(image_record_done)

/* The record a name resolves to; -ENOENT (with a message saying how to pull) if none. */
int image_store_resolve(struct image_store *s, const struct image_ref *ref,
                        struct image_record *ret, struct ak_err *err);

/* Absolute path of an unpacked layer. */
int image_store_layer_path(const struct image_store *s, const char *digest, char *out, size_t len);
bool image_store_has_layer(const struct image_store *s, const char *digest);

/* Every image, sorted by first name. */
int image_store_list(struct image_store *s, struct image_record **ret, size_t *ret_n,
                     struct ak_err *err);
void image_records_free(struct image_record *v, size_t n);

/* Writes rec (atomically) and points every name in names at it. Store lock: shared is enough. */
int image_store_commit(struct image_store *s, const struct image_record *rec, char *const *names,
                       struct ak_err *err);

/* Forgets a name; the image's last tag takes its digest names with it. Given a manifest id
 * ("sha256:...", or a unique prefix of 12+ hex digits) every name of that image goes. The files
 * stay until prune. Needs the exclusive lock. */
int image_store_remove(struct image_store *s, const char *name, struct ak_err *err);

/* Removes records no name points at, layers no record uses, and everything in tmp/. Needs the
 * exclusive lock. keep: ids still in use by sandboxes (NULL-terminated, may be NULL). */
int image_store_prune(struct image_store *s, char *const *keep, uint64_t *ret_freed,
                      struct ak_err *err);

/* Locks one layer for the work of fetching it (blocks while another process does it). */
int image_store_lock_layer(struct image_store *s, const char *digest, struct ak_err *err);

/* Disk usage of a tree (bytes of allocated blocks), for sizes. */
uint64_t image_tree_usage(int dirfd, const char *path);
