/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sources: a git repository cloned into a new sandbox's /workspace (`create --source URL
 * [--git-ref REF]`, the API's source_url/source_ref, MCP sandbox_create; reference/
 * upstream-agents.md §7). git runs inside the sandbox, so the sandbox's network policy decides
 * whether the repository's host is reachable, and nothing the repository holds touches the host.
 *
 * A URL is text from a caller and ends up in git's argv: only https://, http://, ssh://,
 * git:// URLs and scp-like user@host:path are accepted (upstream's `git:` prefix stripped),
 * never a local path, file://, ext:: or another transport, an option (a leading '-'), or a
 * control character; git itself is told to allow no other protocol. A ref is a branch, tag or
 * commit name as git check-ref-format accepts them, never an option.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"

#define SOURCE_URL_MAX 2048
#define SOURCE_REF_MAX 255
#define SOURCE_CLONE_TIMEOUT_MS (600u * 1000u)

struct manager;
struct sandbox_state;

/* Checks a source: url (may be NULL, then ref must be NULL too) and ref (may be NULL). 0, or
 * -EINVAL with a message saying what is wrong. */
int source_check(const char *url, const char *ref, struct ak_err *err);

/* url without upstream's optional "git:" prefix (a pointer into url). */
const char *source_url_strip(const char *url);

/* The host and port a source URL connects to (host into buf). 0 or -EINVAL. */
int source_url_host(const char *url, char *host, size_t len, uint16_t *ret_port);

/* Whether the sandbox st (not yet started) can reach its source: network none refuses, proxy
 * mode needs its policy (or the built-in one) to allow the host; the message names
 * --allow-host. 0 or -EPERM with a message. */
int source_check_reachable(const struct sandbox_state *st, int net_mode, struct ak_err *err);

/* Clones a running sandbox's recorded source into its /workspace (git inside the sandbox,
 * installed with its package manager when missing), then checks out its ref. A sandbox without
 * a source: 0. A failure says what git said (its last lines). */
int manager_clone_source(struct manager *m, const char *name, struct ak_err *err);
