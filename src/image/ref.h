/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references as Docker reads them: `alpine` is docker.io/library/alpine:latest,
 * `ghcr.io/o/r:1`, `127.0.0.1:5000/x@sha256:<hex>`. Pure string work: no I/O, no allocation
 * beyond the parsed fields. Never accepts a name the registry API would reject.
 */
#pragma once

#include <stdbool.h>

#include "shared/err.h"

#define IMAGE_REF_MAX 255   /* whole reference, as Docker's limit on names */
#define IMAGE_TAG_MAX 128   /* tag length, as the distribution spec */
#define IMAGE_DIGEST_HEX 64 /* sha256 */
#define DOCKER_HUB "docker.io"

struct image_ref {
        char *registry;   /* "docker.io", "127.0.0.1:5000" */
        char *repository; /* "library/alpine" */
        char *tag;        /* "3.20", or NULL when only a digest was given */
        char *digest;     /* "sha256:<hex>", or NULL */
};

/* Parses and normalises s. On error ret is untouched and err says what is wrong. */
int image_ref_parse(const char *s, struct image_ref *ret, struct ak_err *err);
void image_ref_free(struct image_ref *r);

/* The canonical name: registry/repository[:tag][@digest]. malloc'd, NULL on ENOMEM. */
char *image_ref_canonical(const struct image_ref *r);

/* Whether s is "sha256:" followed by 64 lowercase hex digits. */
bool image_digest_valid(const char *s);

/* Whether the registry is spoken to over plain HTTP: loopback hosts, and those listed in
 * AGENTKERNEL_INSECURE_REGISTRIES (comma-separated host[:port]). */
bool image_registry_insecure(const char *registry);
