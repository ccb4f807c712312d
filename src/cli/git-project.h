/* SPDX-License-Identifier: Apache-2.0 */
/* The git project the current directory is in, for sandbox names (`create --branch`, `list
 * --project`, as upstream): read from .git without running git. */
#pragma once

#include <stddef.h>

#include "shared/err.h"

/* The project's name (its top directory's name, as a sandbox name may spell it) into name and,
 * when branch is given, its checked-out branch (a detached HEAD is an error). */
int git_project(char *name, size_t name_len, char *branch, size_t branch_len, struct ak_err *err);

/* "<project>-<branch>" made a valid sandbox name: characters other than [A-Za-z0-9_-] become
 * '-', runs of separators are one '-', at most 63 characters, ending alphanumeric. */
int git_sandbox_name(char *out, size_t len, struct ak_err *err);
