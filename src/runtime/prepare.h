/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mounts the parent makes for the child (prepare.c). Nothing outside src/runtime/ includes
 * this.
 */
#pragma once

#include <sys/types.h>

#include "runtime.h"
#include "shared/err.h"

/* Makes the child's prepared mounts (runtime.c's go message says which, in which order), sends
 * them with the go byte on sync_fd, and closes its own copies. pid: the child, whose user
 * namespace idmaps the MOP_IDMAP ones. 0, or -errno with err set (the child is then the
 * caller's to kill). */
int prepare_release_child(pid_t pid, const struct runtime_spec *s, int sync_fd, struct ak_err *err);
