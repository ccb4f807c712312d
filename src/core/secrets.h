/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox's secrets: bindings (upstream's `--secret KEY:host[:header]` / `KEY=value:host`),
 * secret files (`--secret-file KEY[:/path]`) and placeholders. A binding names a vault secret
 * and the one host it may be sent to; what a sandbox's record keeps of it is its value-less form
 * ("KEY:host" or "KEY:host:header"), and inside the sandbox KEY holds a placeholder
 * (AGENTKERNEL_PLACEHOLDER_ + 32 random hex digits, made at every start) that only the egress
 * proxy (issue 14) may later replace by the value, for that host. A secret file is the one
 * explicit way a value enters a sandbox.
 *
 * Nothing here puts a value into a message: a parse error of `KEY=value:host` names the key
 * and what is wrong, never the text after '='.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "shared/cleanup.h"
#include "shared/err.h"

#define SECRET_BINDINGS_MAX 64
#define SECRET_HOST_MAX 253
#define SECRET_HEADER_MAX 64
#define SECRET_PLACEHOLDER_PREFIX "AGENTKERNEL_PLACEHOLDER_"
#define SECRET_PLACEHOLDER_LEN (sizeof(SECRET_PLACEHOLDER_PREFIX) - 1 + 32)
/* where secret files go unless their binding names a path (upstream's constant) */
#define SECRET_FILES_DIR "/run/agentkernel/secrets"
#define SECRET_FILES_ENV "AGENTKERNEL_SECRETS_PATH"

struct secret_binding {
        char *key;
        char *host;
        char *header; /* "Authorization" unless the binding names one */
        char *prefix; /* "Bearer " for Authorization by default, "" for a named header */
        char *value;  /* the inline value of KEY=value:host, or NULL; wiped by _done */
        size_t value_len;
};

/* Parses a binding as upstream does (reference/upstream-secrets.md §3), and checks it: the key
 * is a vault name, the host a DNS name or IPv4 address without port (upstream read
 * `KEY:host:8443` as header "8443": refused here, saying why), the header an HTTP token. */
int secret_binding_parse(const char *s, struct secret_binding *ret, struct ak_err *err);
/* Frees what b holds, the value wiped; b is zeroed. */
void secret_binding_done(struct secret_binding *b);
DEFINE_CLEANUP_DONE(struct secret_binding, secret_binding_done)
#define cleanup_secret_binding CLEANUP_FUNC(secret_binding_done)
/* The value-less form a record keeps: "KEY:host", or "KEY:host:header" for a named header.
 * malloc'd, NULL on OOM. */
char *secret_binding_format(const struct secret_binding *b);

/* A secret file: "KEY" (SECRET_FILES_DIR/KEY) or "KEY:/abs/path". *ret_key and *ret_path are
 * malloc'd. */
int secret_file_parse(const char *s, char **ret_key, char **ret_path, struct ak_err *err);

/* A fresh placeholder (SECRET_PLACEHOLDER_LEN characters and NUL). */
void secret_placeholder(char out[SECRET_PLACEHOLDER_LEN + 1]);

/* Whether a string holds a placeholder's shape anywhere (for tests and the proxy). */
bool secret_has_placeholder(const char *s);
