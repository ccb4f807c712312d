/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Interactive permission grants (upstream's permission_grant/list/revoke): what an MCP client
 * must be granted by its user before a tool acts (sandbox_create needs `sandbox_create`,
 * sandbox_remove `sandbox_remove`). A store lives in one server process (each `mcp-server` has
 * its own, `serve` another). `once` grants are consumed by the first check they satisfy,
 * `session` grants live as long as the process, `always` grants are also kept in
 * permissions.json in the user's config directory ($XDG_CONFIG_HOME or ~/.config, then
 * agentkernel/; the data directory when AGENTKERNEL_DATA_DIR is set) and loaded at start.
 *
 * That file is read back, so it is believed only when it is a regular file (never a link) of
 * the caller with mode 0600 or tighter, at most PERM_FILE_MAX bytes and PERM_GRANTS_MAX grants,
 * and every entry passes a strict schema; otherwise nothing of it is believed and the store
 * says why (perm_store_warning). It is written whole, atomically (temp + rename, 0600) under a
 * lock, re-read first so that two processes do not lose each other's grants.
 *
 * The functions lock the store themselves: one store serves all of serve's threads.
 */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "shared/err.h"

#define PERM_GRANTS_MAX 256          /* grants in a store, and in the file */
#define PERM_FILE_MAX (64u << 10)    /* permissions.json's size */
#define PERM_SANDBOX_MAX 128         /* a grant's sandbox name */
#define PERM_ID_LEN (6 + 32)         /* "grant_" + 32 hex */
#define PERM_REQUEST_ID_LEN (4 + 32) /* "req_" + 32 hex */
#define PERM_FILE "permissions.json"

enum perm_kind {
        PERM_SANDBOX_REMOVE,
        PERM_SANDBOX_CREATE,
        PERM_NETWORK_ACCESS,
        PERM_MOUNT_DIRECTORY,
        PERM_SUDO_EXEC,
        PERM_FILE_DELETE,
        PERM_KIND_N,
};

enum perm_scope {
        PERM_ONCE,
        PERM_SESSION,
        PERM_ALWAYS,
        PERM_SCOPE_N,
};

struct perm_grant {
        char id[PERM_ID_LEN + 1];
        enum perm_kind kind;
        enum perm_scope scope;
        char sandbox[PERM_SANDBOX_MAX + 1]; /* "" = every sandbox */
        long long granted_at;               /* Unix seconds */
};

struct perm_store {
        pthread_mutex_t lock;
        struct perm_grant grants[PERM_GRANTS_MAX];
        size_t n;
        bool persist;      /* false: `always` grants are refused (tests of the store only) */
        char warning[512]; /* why permissions.json was not believed, or "" */
};

/* The kind named s, or -EINVAL. */
int perm_kind_parse(const char *s);
const char *perm_kind_name(enum perm_kind k);
/* The scope named s (NULL: once), or -EINVAL. */
int perm_scope_parse(const char *s);
const char *perm_scope_name(enum perm_scope s);

/* Sets s up empty; with persist, loads the `always` grants of permissions.json. A file that is
 * not believed is not an error: s->warning says why, and no grant of it is loaded. */
void perm_store_init(struct perm_store *s, bool persist);
void perm_store_done(struct perm_store *s);
/* Why permissions.json was not believed (copied into out), or false when it was / is absent. */
bool perm_store_warning(struct perm_store *s, char *out, size_t len);

/* Adds a grant (sandbox NULL or "": every sandbox) and writes its id into ret_id. `always`
 * grants are saved first: a file that is not believed is never overwritten (-EPERM with why).
 * -EINVAL for a bad kind/scope/sandbox, -ENOSPC at PERM_GRANTS_MAX. */
int perm_grant(struct perm_store *s, enum perm_kind kind, enum perm_scope scope,
               const char *sandbox, char ret_id[PERM_ID_LEN + 1], struct ak_err *err);
/* Whether a grant allows kind for sandbox (NULL: the question is about every sandbox, and only
 * a grant for every sandbox answers it): kind equal and the grant's sandbox empty or equal.
 * With consume, a `once` grant that answers is removed. */
bool perm_check(struct perm_store *s, enum perm_kind kind, const char *sandbox, bool consume);
/* Removes grant id (from the file too when it is `always`). -ENOENT when there is none. */
int perm_revoke(struct perm_store *s, const char *id, struct ak_err *err);
/* The grants: [{id, kind, scope, sandbox (null: all), granted_at}]. NULL without memory. */
json_t *perm_list(struct perm_store *s);
/* A fresh "req_<32 hex>" (getrandom). */
void perm_request_id(char out[PERM_REQUEST_ID_LEN + 1]);
