/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI and Docker schema 2 documents: image indexes / manifest lists, image manifests and image
 * configs, parsed from untrusted bytes with explicit limits. Pure: no I/O. Docker schema 1 and
 * foreign layers are refused with a clear error, never half-understood.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "shared/cleanup.h"
#include "shared/err.h"

#define MANIFEST_MAX_BYTES (4u << 20) /* the distribution spec's manifest limit */
#define CONFIG_MAX_BYTES (8u << 20)
#define MANIFEST_MAX_LAYERS 128u /* overlayfs takes up to 500 lower dirs; images far fewer */
#define INDEX_MAX_ENTRIES 1024u
#define CONFIG_MAX_ENV 4096u
#define CONFIG_ENV_BYTES_MAX (256u << 10) /* Env, all entries together */
#define CONFIG_ENV_ENTRY_MAX 32768u
#define CONFIG_WORKDIR_MAX 1024u
#define CONFIG_USER_MAX 32u /* each of the user and the group */

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MANIFEST_ACCEPT                                                                            \
        MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST

enum layer_compression { LAYER_TAR, LAYER_GZIP, LAYER_ZSTD };

struct descriptor {
        char *media_type;
        char *digest; /* validated sha256:<hex> */
        int64_t size; /* >= 0 */
        /* index entries only */
        char *os, *arch, *variant;
        enum layer_compression compression; /* layers only */
};

enum manifest_kind { MANIFEST_INDEX, MANIFEST_IMAGE };

struct manifest {
        enum manifest_kind kind;
        struct descriptor config;  /* MANIFEST_IMAGE */
        struct descriptor *layers; /* MANIFEST_IMAGE, lowest first */
        size_t n_layers;
        struct descriptor *manifests; /* MANIFEST_INDEX */
        size_t n_manifests;
};

struct image_config {
        char **env;    /* NULL-terminated "K=V" */
        char *workdir; /* or NULL */
        char *user;    /* or NULL */
        char **cmd;    /* NULL-terminated, or NULL */
        char **entrypoint;
        char *os, *arch;
        char **diff_ids; /* NULL-terminated sha256 digests of the uncompressed layers */
        size_t n_diff_ids;
};

/* Parses a manifest or index. content_type (may be NULL) is the registry's Content-Type,
 * used only when the document does not carry its own mediaType. */
int manifest_parse(const char *buf, size_t len, const char *content_type, struct manifest *ret,
                   struct ak_err *err);
/* Frees what m holds (m itself is the caller's) and zeroes it. */
void manifest_done(struct manifest *m);
DEFINE_CLEANUP_DONE(struct manifest, manifest_done)
#define cleanup_manifest CLEANUP_FUNC(manifest_done)

/* The index entry for os/arch (variant may be NULL: any). ENOENT lists what the index has. */
int manifest_pick(const struct manifest *index, const char *os, const char *arch,
                  const char *variant, const struct descriptor **ret, struct ak_err *err);

/* This machine's platform as OCI names it (e.g. "amd64", NULL variant; "arm64", "v8"). */
void manifest_host_platform(const char **ret_arch, const char **ret_variant);

/* Parses an image config. Env, WorkingDir and User are checked (image_env_check,
 * image_workdir_normalize, image_user_check): a config failing them is refused. */
int image_config_parse(const char *buf, size_t len, struct image_config *ret, struct ak_err *err);

/* An image's WorkingDir made canonical in place: absolute, "." and repeated or trailing '/'
 * dropped; ".." (which the setup would resolve before the sandbox exists), control characters
 * and more than CONFIG_WORKDIR_MAX bytes are refused. */
int image_workdir_normalize(char *dir, struct ak_err *err);
/* An image's User: NAME, UID, NAME:GROUP or UID:GID, each part [A-Za-z0-9_][A-Za-z0-9_.-]* of at
 * most CONFIG_USER_MAX bytes. */
int image_user_check(const char *user, struct ak_err *err);
/* An image's Env: KEY=VALUE entries (KEY as -e takes it), at most CONFIG_MAX_ENV of them,
 * CONFIG_ENV_ENTRY_MAX bytes each and CONFIG_ENV_BYTES_MAX in all. */
int image_env_check(char *const *env, struct ak_err *err);
/* Frees what c holds (c itself is the caller's) and zeroes it. */
void image_config_done(struct image_config *c);
DEFINE_CLEANUP_DONE(struct image_config, image_config_done)
#define cleanup_image_config CLEANUP_FUNC(image_config_done)
