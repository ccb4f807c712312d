/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Validation of everything a user names: sandboxes, images, labels, ports, paths inside a
 * sandbox, environment entries, durations. The rules are upstream's (reference/upstream.md §1.4,
 * §5.3) with its defects fixed: one duration syntax everywhere (`d` included), no silent
 * acceptance of values that would be truncated. Each returns 0 or -EINVAL with a message.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/parse-util.h" /* struct port_spec, parse_port_spec: ports are checked there */

#define NAME_MAX_LEN 63
#define IMAGE_MAX_LEN 256
#define LABEL_KEY_MAX 63
#define LABEL_VALUE_MAX 255
#define LABELS_MAX 64
#define ENV_ENTRY_MAX 32768
#define ENV_MAX 1024

int validate_name(const char *name, struct ak_err *err);
int validate_image(const char *image, struct ak_err *err);
int validate_label(const char *key, const char *value, struct ak_err *err);
/* A sandbox's labels: an object of at most LABELS_MAX strings, each a valid label. */
int validate_labels(json_t *labels, struct ak_err *err);
/* Splits "k=v" (CLI) or "k:v" (HTTP query, sep=':') into key and value (malloc'd). */
int parse_label(const char *spec, char sep, char **ret_key, char **ret_value, struct ak_err *err);

/* A path inside the sandbox for file operations: absolute, no "..", not under /proc, /sys,
 * /dev, /etc/passwd, /etc/shadow, /etc/sudoers or /root/.ssh (upstream's rule). */
int validate_sandbox_path(const char *path, struct ak_err *err);

/* A host directory to mount at /workspace (-d, the current directory, or a record's work_dir
 * read back at every start): absolute and normalised (no ".", "..", empty components or
 * trailing "/"), an existing directory reached without any symlink (realpath gives it back
 * unchanged), neither "/" nor one of agentkernel's own directories, anything inside them or
 * anything that contains them (`own`: n_own canonical paths; NULL entries are skipped). */
int validate_workspace(const char *path, const char *const *own, size_t n_own, struct ak_err *err);

/* "KEY=VALUE" with a valid key. */
int validate_env_entry(const char *entry, struct ak_err *err);

/* A TTL: "0" (none), seconds, or units "1d2h3m4s". ret_none is set for "0". */
int parse_ttl(const char *s, bool allow_zero, uint64_t *ret_seconds, struct ak_err *err);

/* A user to run as: a name ([a-z_][a-z0-9_-]*), a uid, or uid:gid. */
int validate_user(const char *user, struct ak_err *err);

/* A sandbox's disk limit in MB (--disk, disk_mb): the size of its private writable places. */
#define DISK_MB_MIN 16
#define DISK_MB_MAX (1u << 20)
int validate_disk_mb(uint64_t mb, struct ak_err *err);

struct inject_file;
/* [[files]] of a sandbox of the host image: none may land in the host's read-only, shared trees
 * (/etc, /usr, /bin, /sbin, /lib*): -EINVAL naming the file and what to do. */
int validate_host_image_files(const struct inject_file *files, size_t n, struct ak_err *err);
