/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Volumes: named directories that outlive sandboxes, mounted with `-v SLUG:/path[:ro]`.
 * Layout as upstream: data in <user dir>/volumes/<slug>/, metadata in
 * <user dir>/volume-metadata/<slug>.json {slug, size_bytes, created_at, last_used, mount_count}.
 * Beyond upstream, a size limit is enforced, not just recorded: a sized volume is an ext4
 * filesystem image (<slug>.img, sparse) loop-mounted on its data directory, so writes past the
 * size fail with ENOSPC inside every sandbox that mounts it. That needs root; unsized volumes
 * are plain directories and work for anyone.
 *
 * volumes/ and volume-metadata/ are private directories (core/private-dir.h); metadata, lock
 * files and images are trusted only as private files; nothing is mounted on, bound from or
 * loop-attached through a symlink.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"

#define VOLUME_SLUG_MAX 63
#define VOLUME_SIZE_MIN (8ull << 20)
#define VOLUME_SIZE_MAX (16ull << 40)
#define VOLUMES_PER_SANDBOX_MAX 32

struct volume_info {
        char slug[VOLUME_SLUG_MAX + 1];
        uint64_t size_bytes; /* 0: unlimited */
        char created_at[64], last_used[64];
        uint64_t mount_count;
        uint64_t used_bytes; /* filled by volume_get */
        bool mounted;        /* a sized volume's filesystem is mounted */
        char path[4096];     /* data directory on the host */
};

/* A parsed "slug:/path[:ro]". Strings point into the spec copy held by the caller. */
struct volume_spec {
        char slug[VOLUME_SLUG_MAX + 1];
        char dest[4096];
        bool ro;
};

int volume_validate_slug(const char *slug, struct ak_err *err);
/* "512MB", "2GB", "1G", "100M", "4096" (bytes); KB/MB/GB/TB are powers of 1024 as upstream. */
int volume_parse_size(const char *s, uint64_t *ret, struct ak_err *err);
int volume_parse_spec(const char *spec, struct volume_spec *ret, struct ak_err *err);

int volume_create(const char *slug, uint64_t size_bytes, struct volume_info *ret,
                  struct ak_err *err);
int volume_get(const char *slug, struct volume_info *ret, struct ak_err *err);
/* All volumes, sorted by slug: *ret is a malloc'd array. */
int volume_list(struct volume_info **ret, size_t *ret_n, struct ak_err *err);
/* Refuses a non-empty volume unless force. */
int volume_delete(const char *slug, bool force, struct ak_err *err);
/* Before a sandbox mounts it: exists, (re)mounts a sized volume's filesystem, counts the use.
 * Fills the host directory to bind. */
int volume_acquire(const char *slug, char *ret_path, size_t len, struct ak_err *err);
json_t *volume_json(const struct volume_info *v);
