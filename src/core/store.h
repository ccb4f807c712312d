/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state store: one JSON file per sandbox in <data>/sandboxes/ (upstream's layout), written
 * atomically (temp file, fsync, rename, fsync of the directory), with flock-based locks so that
 * any number of agentkernel processes can work on it at once. A bad file is reported and
 * skipped, never fatal, and never costs the other sandboxes.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/state.h"
#include "shared/cleanup.h"
#include "shared/err.h"

struct store {
        char *data_dir;
        char *sandboxes_dir; /* <data>/sandboxes */
        char *locks_dir;     /* <data>/locks */
        char *run_dir;       /* <data>/run: per-sandbox runtime files */
};

struct state_list {
        struct sandbox_state **items; /* sorted by name */
        size_t n;
};

/* Opens the store in data_dir (NULL: paths_data_dir_open()): the data directory and its
 * sandboxes/, locks/ and run/ are created if missing and checked as private directories
 * (core/private-dir.h: the caller's, 0700, no symlink, trusted ancestors), or refused with a
 * message saying why. Records are read only when they are regular files of the caller's that
 * nobody else can write, and written 0600. */
int store_open(const char *data_dir, struct store **ret, struct ak_err *err);
/* Frees s (NULL is fine). */
void store_free(struct store *s);
DEFINE_CLEANUP(struct store, store_free)
#define cleanup_store CLEANUP_FUNC(store_free)

/* Loads one sandbox. -ENOENT ("sandbox 'x' not found") or -EINVAL for a bad file. Fills in a
 * missing uuid (UUIDv7) and writes it back, as upstream does. */
int store_load(struct store *s, const char *name, struct sandbox_state **ret, struct ak_err *err);

/* Writes a sandbox atomically; durable also fsyncs the file and the directory. */
int store_save(struct store *s, const struct sandbox_state *st, bool durable, struct ak_err *err);

int store_delete(struct store *s, const char *name, struct ak_err *err);

/* True when <name>.json exists. */
bool store_exists(struct store *s, const char *name);

/* Loads every valid state file; for each bad one, warn(ctx, file, message) is called. */
int store_list(struct store *s, void (*warn)(void *ctx, const char *file, const char *msg),
               void *ctx, struct state_list *ret);
/* Frees the states of l and its array (l itself is the caller's) and empties it. */
void state_list_done(struct state_list *l);
DEFINE_CLEANUP_DONE(struct state_list, state_list_done)
#define cleanup_state_list CLEANUP_FUNC(state_list_done)

/* Exclusive lock on one sandbox (blocks). Returns an fd to pass to store_unlock(). */
int store_lock(struct store *s, const char *name, struct ak_err *err);
/* Exclusive lock on the set of sandboxes (creation, CID allocation). */
int store_lock_global(struct store *s, struct ak_err *err);
void store_unlock(int fd);
static inline void store_unlock_cleanup_fn(const int *fd)
{
        int saved = errno;
        store_unlock(*fd);
        errno = saved;
}
/* A lock released when the variable leaves scope: `cleanup_store_lock int lk = -1;` */
#define cleanup_store_lock CLEANUP(store_unlock_cleanup_fn)
/* Unlinks a sandbox's lock file while holding it, then releases it. */
void store_unlock_remove(struct store *s, const char *name, int fd);

/* <data>/run/<name> (malloc'd). */
char *store_run_dir(struct store *s, const char *name);

/* max(vsock_cid) + 1 over all sandboxes, 3 when there are none (the seed's rule). Call with the
 * global lock held. */
int store_next_cid(struct store *s, uint32_t *ret);
/* After the record with cid was saved (the global lock still held): remembers it as the highest,
 * for the next store_next_cid. */
void store_cid_taken(struct store *s, uint32_t cid);
