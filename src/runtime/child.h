/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the parent's side of a start (spawn.c) and the child (runtime.c) agree on. Nothing
 * outside src/runtime/ includes this.
 */
#pragma once

#include "runtime.h"
#include "shared/macro.h"

/* The step that failed, written once to errfd by the child before it exits. An end of file on
 * errfd instead means the agent is executing. */
struct child_report {
        int err;
        char what[512];
};

/* The child: waits for the go message on sync_fd (one byte 'G' carrying, as SCM_RIGHTS, the
 * mounts prepare_release_child() made: the sandbox's disk first when rootful with disk_bytes,
 * then one per MOP_PREPARED op, in plan order), builds the sandbox and executes its agent. With
 * cgroups to join (join_fd >= 0), it waits for the parent's verdict on join_fd, one byte 'J'
 * when it is in all of them, before it unshares its cgroup namespace and executes the agent.
 * Never returns; allocates nothing (it shares the parent's memory). */
_noreturn_ void runtime_child_main(const struct runtime_spec *s, int sync_fd, int errfd,
                                   int join_fd);
