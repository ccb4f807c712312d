/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API key `serve` makes for its owner when none is configured: ~/.agentkernel/api-key
 * (the user directory), 32 random bytes in hex, readable by its owner only. Clients read it
 * (AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)); nobody else can.
 */
#pragma once

#include <stdbool.h>

#include "shared/err.h"

#define APIKEY_FILE_NAME "api-key"

/* The default key file's directory: the user directory, created and checked as a private
 * directory (paths_user_dir_open). *ret is its canonical path, malloc'd. 0 or -errno with a
 * message that says what is wrong. */
int apikey_default_dir(char **ret, struct ak_err *err);

/* Reads dir/api-key, or creates it (O_CREAT|O_EXCL|O_NOFOLLOW, 0600) with a new random key when
 * it does not exist; dir is created 0700 when missing. An existing file is used only when it is
 * a regular file owned by the caller with no group or other permission bits, in a directory of
 * the caller (or root) that nobody else may write; anything else is refused with the reason and
 * the fix. *ret_text: the file's content, one key per line (malloc'd). *ret_created: whether it
 * was made now. Errors: -errno with err set. */
int apikey_load_or_create(const char *dir, char **ret_text, bool *ret_created, struct ak_err *err);

/* apikey_load_or_create for another of serve's secrets: dir/file (e.g. "webhook-secret"), with
 * the same checks and a new random key when it does not exist. */
int apikey_secret_load_or_create(const char *dir, const char *file, char **ret_text,
                                 bool *ret_created, struct ak_err *err);

/* Reads a key file the user names (a webhook secret) with the same checks: not a link, a regular
 * file owned by the caller with no group or other permission bits, not empty. *ret_text is
 * malloc'd. */
int apikey_read_private_file(const char *path, char **ret_text, struct ak_err *err);
