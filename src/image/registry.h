/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client of the OCI distribution API (libcurl): manifests and blobs of one repository, with
 * anonymous, Bearer-token (the WWW-Authenticate realm flow) and basic auth; credentials from
 * the Docker client's config.json. Every byte is checked against the digest it was asked for
 * before the caller sees success. Plain HTTP only for loopback and listed insecure registries.
 */
#pragma once

#include <stdint.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/err.h"

struct registry;

/* Progress of one blob download: bytes so far of total (total may be 0: unknown). */
typedef void (*registry_progress_fn)(void *ctx, uint64_t now, uint64_t total);

/* A client for host (e.g. "docker.io", "127.0.0.1:5000") and repository. The endpoint is
 * AGENTKERNEL_REGISTRY_MIRROR for Docker Hub when set, with the origin as a fallback. */
int registry_open(const char *host, const char *repository, struct registry **ret,
                  struct ak_err *err);
/* Frees r (NULL is fine). */
void registry_free(struct registry *r);
DEFINE_CLEANUP(struct registry, registry_free)
#define cleanup_registry CLEANUP_FUNC(registry_free)

/* Fetches the manifest `reference` (tag or digest). ret_digest gets "sha256:<hex>" of the exact
 * bytes; a digest reference must match it. ret_type: the Content-Type (malloc'd, may be NULL). */
int registry_manifest(struct registry *r, const char *reference, struct buf *ret_body,
                      char **ret_type, char ret_digest[72], struct ak_err *err);

/* Streams blob `digest` (of `size` bytes) to fd, verifying size and digest as it goes. */
int registry_blob(struct registry *r, const char *digest, int64_t size, int fd,
                  registry_progress_fn progress, void *ctx, struct ak_err *err);

/* A small blob (e.g. a config) into memory, verified, at most max bytes. */
int registry_blob_mem(struct registry *r, const char *digest, int64_t size, size_t max,
                      struct buf *ret, struct ak_err *err);
