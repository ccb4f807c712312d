/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Directory descriptors kept for one batch of many opens below the same few directories (list:
 * each sandbox's runtime record, /proc/<pid>/stat and its cgroup's cgroup.procs, thousands of
 * each). An open through a kept descriptor walks two components, not the whole path. Outside a
 * batch nothing is kept, so no long-lived process (serve) holds a descriptor of a directory that
 * was replaced since.
 */
#pragma once

#include <sys/types.h>

/* Starts a batch in the calling thread (nested and concurrent batches count): only a thread
 * between its dir_cache_begin() and dir_cache_end() opens through kept descriptors. A worker
 * thread of a batch calls both itself, within its starter's. */
void dir_cache_begin(void);

/* Ends the calling thread's batch; the kept descriptors are closed when no thread is in one. */
void dir_cache_end(void);

/* Where to open path from: within a batch (this thread's), a kept descriptor of the directory
 * `depth` levels above path's last component (1: its parent, 2: its grandparent; opened once per
 * batch, with O_PATH), and *rest the part of path below it; otherwise (no batch, a relative or too
 * short path, a directory that cannot be opened) AT_FDCWD and path itself. openat(fd, *rest, ...)
 * then opens what openat(AT_FDCWD, path, ...) would have, with the kept directory as it was at
 * its first use in the batch. Thread-safe; the fd is the cache's (never closed by the caller). */
int dir_cache_at(const char *path, unsigned depth, const char **rest);
