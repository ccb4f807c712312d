/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references as Docker reads them: `alpine` is docker.io/library/alpine:latest,
 * `ghcr.io/o/r:1`, `127.0.0.1:5000/x@sha256:<hex>`. Pure string work: no I/O, no allocation
 * beyond the parsed fields. Never accepts a name the registry API would reject.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include "shared/cleanup.h"
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
/* Frees what r holds (r itself is the caller's) and zeroes it. NULL is fine. */
void image_ref_done(struct image_ref *r);
DEFINE_CLEANUP_DONE(struct image_ref, image_ref_done)
#define cleanup_image_ref CLEANUP_FUNC(image_ref_done)

/* The canonical name: registry/repository[:tag][@digest]. malloc'd, NULL on ENOMEM. */
char *image_ref_canonical(const struct image_ref *r);

/* Whether s is "sha256:" followed by 64 lowercase hex digits. */
bool image_digest_valid(const char *s);

/* Whether the registry is spoken to over plain HTTP: those listed in
 * AGENTKERNEL_INSECURE_REGISTRIES (comma-separated host[:port]; [images] insecure_registries sets
 * it). An entry written "https://host[:port]" keeps HTTPS. Loopback names are not special. */
bool image_registry_insecure(const char *registry);

/* Whether a connection to host (as in a URL: a name, an IPv4 address or a bracketed IPv6 one)
 * on port may go to a loopback or private address. Only when the user configured that host: an
 * entry of AGENTKERNEL_INSECURE_REGISTRIES (an entry without a port covers ports 80 and 443) or
 * the mirror of AGENTKERNEL_REGISTRY_MIRROR; never because a request (an image name, a redirect,
 * a token realm) named it. */
bool image_registry_may_be_private(const char *host, unsigned port);

/* Whether sa is an address a registry no one configured may be reached at: not loopback,
 * unspecified, RFC 1918, carrier-grade NAT (100.64/10), link-local (169.254/16 with the cloud
 * metadata services, fe80::/10), unique local (fc00::/7), multicast, reserved or documentation
 * ranges, nor any of those inside IPv6 (mapped, compatible, SIIT, NAT64, 6to4). */
bool image_addr_public(const struct sockaddr *sa);
