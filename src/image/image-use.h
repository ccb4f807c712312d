/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which images sandboxes use, and removing a name with that check: one place for the CLI's
 * `images rm` and the API's DELETE /images/{id}, so both refuse the same things.
 */
#pragma once

#include <stdbool.h>

#include "core/manager.h"
#include "image/image-store.h"
#include "shared/err.h"

/* The image ids that sandboxes (any state) are built from, NULL-terminated, with in *ret_users
 * (may be NULL) the name of a sandbox using each. NULL when they cannot be listed. */
char **image_ids_in_use(struct image_store *s, struct manager *m, char ***ret_users);

/* Forgets name (image_store_remove) unless, without force, a sandbox uses the image it names:
 * -EBUSY "image 'x' is used by sandbox 'y'; remove the sandbox first, or use --force". Then
 * frees what no sandbox uses (as `docker rmi` does); *ret_freed (may be NULL) says how much.
 * in_use/users: image_ids_in_use's answer. Needs the exclusive lock. */
int image_remove_checked(struct image_store *s, char *const *in_use, char *const *users,
                         const char *name, bool force, uint64_t *ret_freed, struct ak_err *err);
