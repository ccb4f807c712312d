/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SandboxState: the persistent record of a sandbox, in upstream's JSON format
 * (~/.local/share/agentkernel/sandboxes/<name>.json). A file upstream wrote loads here and a file
 * written here loads in upstream: field names, types, defaults and omissions follow the seed.
 * Fields this version does not know are kept and written back. What only this implementation
 * needs lives under one extension key, "x_agentkernel", which upstream ignores.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/cleanup.h"
#include "shared/err.h"

#define STATE_FILE_MAX (4u << 20) /* a state file larger than this is refused */
#define STATE_EXT_KEY "x_agentkernel"

struct port_mapping {
        int32_t host_port; /* -1: not set (JSON null) */
        uint16_t container_port;
        bool udp;
};

struct lifecycle_policy {
        bool present;
        bool has_stop, has_archive, has_delete;
        uint64_t stop_after, archive_after, delete_after;
};

/* A host file copied into the sandbox after every start ([[files]] of agentkernel.toml). */
struct inject_file {
        char *source; /* relative to the config's directory (files_dir), checked at every start */
        char *dest;   /* absolute path in the sandbox */
        uint32_t mode;
};

struct sandbox_state {
        /* upstream fields, in upstream's order */
        char *name;
        char *uuid; /* "" when the file had none (filled in on load) */
        char *image;
        uint32_t vcpus;
        uint64_t memory_mb;
        uint32_t vsock_cid;
        char *created_at;
        char *backend; /* upstream BackendType name, NULL = null */
        char *remote_id;
        char *remote_namespace;
        bool has_ttl;
        uint64_t ttl_seconds;
        char *expires_at;
        struct port_mapping *ports;
        size_t n_ports;
        bool ssh_enabled;
        int32_t ssh_host_port; /* -1: null */
        char **volumes;        /* NULL-terminated, never NULL after init */
        char *agent;
        char **secret_bindings;
        char **secret_files;
        bool placeholder_secrets;
        int32_t proxy_port;      /* -1: null */
        json_t *secret_mappings; /* object of strings, never NULL */
        char *init_script;
        char *created_from_template;
        char *template_help_text;
        json_t *labels; /* object of strings, never NULL */
        char *description;
        char *last_activity_at;
        char *archived_at;
        char *archived_reason;
        struct lifecycle_policy lifecycle;

        /* this implementation's fields (under "x_agentkernel") */
        char *ext_backend;      /* backend name when upstream has no name for it ("native") */
        char *profile;          /* permission profile the sandbox starts with */
        int network;            /* -1 profile default, else an enum net_mode (shared/net-mode.h) */
        json_t *network_policy; /* the egress policy of a proxy-mode sandbox (docs/network.md), or
                                   NULL: the built-in default */
        int mount_cwd;          /* -1 profile default, 0 off, 1 on */
        char *work_dir;         /* host directory mounted at /workspace */
        char **env;             /* KEY=VALUE for every command */
        struct {
                char **allow, **block; /* NULL-terminated or NULL */
                bool allowlist_only;
        } commands; /* command policy ([security.commands]) */
        struct inject_file *files;
        size_t n_files;
        char *files_dir; /* the config's directory (canonical): where [[files]] sources live */
        char *seccomp;   /* seccomp filter overriding the profile's ([security] seccomp), or NULL */
        char *compat_mode; /* the coding agent's compatibility mode (core/compat.h), or NULL */
        char *source_url, *source_ref; /* cloned into /workspace at create, or NULL */
        char *network_ca_file; /* [network] ca_file: extra trust for the proxy's upstream TLS */
        char **secret_body;    /* bound KEYs substituted in request bodies too (opt-in) */
        uint64_t disk_mb;      /* size of the private writable places; 0: not recorded (default) */

        json_t *extra;     /* unknown top-level keys, kept verbatim */
        json_t *ext_extra; /* unknown keys inside "x_agentkernel" */
};

/* Allocates an empty state (all lists empty, optional fields unset). NULL on OOM. */
struct sandbox_state *state_new(void);
/* Frees s (NULL is fine). */
void state_free(struct sandbox_state *s);
DEFINE_CLEANUP(struct sandbox_state, state_free)
#define cleanup_state CLEANUP_FUNC(state_free)

/* Parses a state file's JSON text. Fails (with a message) on a missing required field or a
 * field of the wrong type, like upstream's serde. */
int state_parse(const char *text, size_t len, struct sandbox_state **ret, struct ak_err *err);

/* Serialises in upstream's pretty format (2-space indent, upstream field order, upstream's
 * omissions). Returns a malloc'd NUL-terminated string. */
int state_format(const struct sandbox_state *s, char **ret);

/* The backend name used by this implementation ("native", "docker", ...), or NULL. */
const char *state_backend(const struct sandbox_state *s);
/* Sets the backend, splitting it into the upstream field and the extension as needed. */
int state_set_backend(struct sandbox_state *s, const char *backend);

/* "archived" / "running" / "stopped", as upstream's status(). */
const char *state_status(const struct sandbox_state *s, bool running);

/* Replaces *field with a copy of value (NULL allowed). -ENOMEM on failure. */
int state_set_str(char **field, const char *value);
