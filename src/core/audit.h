/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log: one JSON object per line, upstream's events and fields (reference/upstream.md
 * §8.1) at upstream's place (~/.agentkernel/audit.jsonl). Beyond upstream, every entry carries a
 * sequence number, the hash of the entry before it and its own hash (SHA-256), and a small head
 * file records the last one, so `agentkernel audit verify` finds any edited, removed, inserted or
 * reordered line, and a truncated tail. Writing is best effort: a full disk never fails the
 * operation being audited. AGENTKERNEL_AUDIT=0 (or false) turns it off, as upstream.
 *
 * The log and its head are private files (core/private-dir.h): appended to and read only when
 * they are regular files of the caller's that nobody else can write, in a directory nobody else
 * can change; written 0600, and an older 0644 log is tightened at the next append.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define AUDIT_LINE_MAX (1u << 20) /* longer lines are refused when reading */

/* $AGENTKERNEL_AUDIT_PATH (absolute); else <AGENTKERNEL_DATA_DIR>/audit.jsonl when that is
 * set; else ~/.agentkernel/audit.jsonl (HOME, or the passwd entry's home: paths.h). *ret is
 * malloc'd; -errno with a message when there is no such place. Touches nothing. */
int audit_path_get(char **ret, struct ak_err *err);
/* audit_path_get() without the reason: NULL when there is no place. */
char *audit_path(void);
bool audit_enabled(void);

/* Appends an event of type with fields (an object whose members follow the common ones; the
 * reference is stolen, NULL allowed). Returns 0 or -errno; callers usually ignore it. */
int audit_log(const char *type, json_t *fields);

/* Reads entries (most recent last). When sandbox is set, only entries naming it (in "sandbox" or
 * "name"); at most the last `last` of them (0: all). Malformed lines are skipped. *ret is a JSON
 * array. */
int audit_read(const char *path, const char *sandbox, size_t last, json_t **ret,
               struct ak_err *err);

/* Usage figures from the log, as upstream's `stats`: {total_executions, executions_last_30d (from
 * now_ns), sandboxes_created, sandboxes_removed, sandboxes_active (created less removed),
 * top_images and top_backends ([[name, count]], 5 at most), first_entry, last_entry (YYYY-MM-DD,
 * or null)}. The log is read line by line (any size). */
int audit_stats(const char *path, int64_t now_ns, json_t **ret, struct ak_err *err);

struct audit_verdict {
        size_t lines;    /* lines read */
        size_t chained;  /* of which carry a hash */
        size_t bad_line; /* first bad line (1-based), 0 when all is well */
        char reason[256];
};

/* Checks the chain and the head. Returns 0 when the log is intact, -EBADMSG when not (verdict
 * says where and why), other -errno when it cannot be read. */
int audit_verify(const char *path, struct audit_verdict *ret, struct ak_err *err);
