/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentkernel.toml: the project configuration (reference/upstream.md §4). It is read once, when
 * a sandbox is created (or run), and what matters later (command policy, init script, files to
 * inject) is recorded in the sandbox's state: exec never looks at the current directory again
 * (upstream's Q2 fixed). Types are checked strictly; unknown keys and sections this version does
 * not implement are warnings, never silently ignored.
 *
 * A config file is input from whoever could write it: a sandbox writes into its workspace (the
 * user's project directory), another local user into a shared directory. config_load() is the
 * only way to read one and honours it only when it is trusted (see config_load); nothing else in
 * agentkernel may read an agentkernel.toml from disk.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/state.h"
#include "core/validate.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/err.h"

#define CONFIG_FILE_NAME "agentkernel.toml"
#define CONFIG_SHA256_HEX 65                /* 64 hex digits and NUL */
#define CONFIG_SOURCE_MAX_BYTES (16u << 20) /* one [[files]] source */
#define CONFIG_MAX_FILES 256
#define CONFIG_MAX_PORTS 64
#define CONFIG_WARNINGS_MAX 64
#define CONFIG_MAX_HOSTS 256 /* [network] hosts */
#define TEMPLATE_HELP_MAX 4096u

struct config_list {
        char **allow, **block; /* NULL-terminated, never NULL */
        bool allowlist_only;
};

struct config {
        char *path; /* the file it came from (canonical), NULL when parsed from text */
        char *dir;  /* its directory (canonical), or the dir given to config_parse */
        char sha256[CONFIG_SHA256_HEX]; /* of exactly the bytes parsed ("" when parsed from text) */

        /* [sandbox] */
        char *name;
        char *runtime;
        char *base_image;
        char *init_script;
        /* [agent] */
        char *agent;              /* preferred */
        char *compatibility_mode; /* checked: core/compat.h */
        char *git_name, *git_email;
        /* [resources] (0: not given) */
        uint32_t vcpus;
        uint64_t memory_mb;
        uint64_t disk_mb;
        /* [security] */
        char *profile;
        int network;   /* -1: not given, else an enum net_mode (true: NET_MODE_ON) */
        int mount_cwd; /* -1: not given */
        char *seccomp;
        struct config_list commands, domains;
        bool has_domains; /* [security.domains] was given (it builds the egress policy) */
        /* [network] */
        struct port_spec *ports;
        size_t n_ports;
        json_t *hosts; /* static names: object of name -> IPv4 string, or NULL */
        char *ca_file; /* extra CA for the proxy's upstream TLS checks, or NULL */
        /* [[files]] */
        struct inject_file *files; /* sources relative to dir: no '/', no '..' */
        size_t n_files;
        /* [api] */
        char *api_key, *api_key_env;
        bool allow_sudo_exec;
        /* [api.tls]: enabled and require_tls -1 when not given; cert and key absolute paths or
         * NULL. serve's flags win over them. */
        int tls_enabled, tls_require;
        char *tls_cert, *tls_key;
        /* [secrets]: bindings "NAME:host[:header]" (NAME = "host", or {host, header}) */
        char **secrets;     /* NULL-terminated, or NULL */
        char **secret_body; /* [secrets] NAME = {..., body = true}: substituted in bodies too */
        /* [images] (ours: upstream pulls through Docker's own settings) */
        char *registry_mirror;
        char **insecure_registries; /* NULL-terminated, or NULL */

        /* [template] (a template's file; core/template.h) */
        char *template_help_text;

        char **warnings; /* NULL-terminated, never NULL */
};

/* Parses a document; touches no file. [[files]] sources are checked as text only (relative,
 * no '..'); dir (may be NULL) is recorded as c->dir. */
int config_parse(const char *text, size_t len, const char *dir, struct config **ret,
                 struct ak_err *err);

/* The trusted reader: every reader of an agentkernel.toml (run, create, serve) goes through it.
 * The file must be a regular file named by its own path (no symlink as last component), owned by
 * the caller and not writable by group or others -- all checked on the opened fd, from which
 * exactly the bytes parsed are read and hashed -- and approved with that SHA-256 in the caller's
 * trust store (core/trust.h; `agentkernel trust`). Its [[files]] sources must resolve inside its
 * directory to regular files of at most CONFIG_SOURCE_MAX_BYTES. A refusal fails with -EPERM
 * (why, and how to approve, in err) and has no effect; other errors name the file. */
int config_load(const char *path, struct config **ret, struct ak_err *err);

/* config_load() without the approval: for `agentkernel trust`, which shows what a file asks for
 * before approving it. Ownership, mode, syntax and sources are checked all the same. */
int config_inspect(const char *path, struct config **ret, struct ak_err *err);

/* Records c (loaded by config_inspect or config_load) as approved with its current hash. */
int config_approve(const struct config *c, struct ak_err *err);

/* ./agentkernel.toml when something by that name exists (a dangling symlink included: it is
 * refused by config_load, never silently skipped), else NULL. */
const char *config_default_path(void);

/* Reads [[files]] source rel (relative, no '..') of the config directory dir for copying into a
 * sandbox: the directory is opened without following any symlink (dir is canonical), rel is
 * resolved beneath it without magic links, and must be a regular file of at most
 * CONFIG_SOURCE_MAX_BYTES. Called at every start: a sandbox may have replaced the file. */
int config_read_source(const char *dir, const char *rel, struct buf *ret, struct ak_err *err);

/* Frees c (NULL is fine). */
void config_free(struct config *c);
DEFINE_CLEANUP(struct config, config_free)
#define cleanup_config CLEANUP_FUNC(config_free)

/* The image a config asks for: base_image, else the runtime's (upstream's table), else NULL
 * (the backend's default). */
const char *config_image(const struct config *c);

/* Makes [images] mirror and insecure_registries the pullers' settings, unless the environment
 * (AGENTKERNEL_REGISTRY_MIRROR, AGENTKERNEL_INSECURE_REGISTRIES) already says otherwise. */
int config_apply_registry_env(const struct config *c);

/* The starter file `agentkernel init` writes. */
int config_starter(const char *name, const char *agent, char **ret);
