/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentkernel.toml: the project configuration (reference/upstream.md §4). It is read once, when
 * a sandbox is created (or run), and what matters later (command policy, init script, files to
 * inject) is recorded in the sandbox's state: exec never looks at the current directory again
 * (upstream's Q2 fixed). Types are checked strictly; unknown keys and sections this version does
 * not implement are warnings, never silently ignored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/state.h"
#include "core/validate.h"
#include "shared/err.h"

#define CONFIG_FILE_NAME "agentkernel.toml"
#define CONFIG_MAX_FILES 256
#define CONFIG_MAX_PORTS 64
#define CONFIG_WARNINGS_MAX 64

struct config_list {
        char **allow, **block; /* NULL-terminated, never NULL */
        bool allowlist_only;
};

struct config {
        char *path; /* the file it came from (absolute), NULL when parsed from text */

        /* [sandbox] */
        char *name;
        char *runtime;
        char *base_image;
        char *init_script;
        /* [agent] */
        char *agent; /* preferred */
        char *compatibility_mode;
        char *git_name, *git_email;
        /* [resources] (0: not given) */
        uint32_t vcpus;
        uint64_t memory_mb;
        /* [security] */
        char *profile;
        int network;   /* -1: not given */
        int mount_cwd; /* -1: not given */
        char *seccomp;
        struct config_list commands, domains;
        /* [network] */
        struct port_spec *ports;
        size_t n_ports;
        /* [[files]] */
        struct inject_file *files; /* sources made absolute (relative to the file's dir) */
        size_t n_files;
        /* [api] */
        char *api_key, *api_key_env;
        bool allow_sudo_exec;
        /* [images] (ours: upstream pulls through Docker's own settings) */
        char *registry_mirror;
        char **insecure_registries; /* NULL-terminated, or NULL */

        char **warnings; /* NULL-terminated, never NULL */
};

/* Parses a document. dir resolves relative [[files]] sources (NULL: the current directory). */
int config_parse(const char *text, size_t len, const char *dir, struct config **ret,
                 struct ak_err *err);
/* Reads and parses a file; errors name it. */
int config_load(const char *path, struct config **ret, struct ak_err *err);
void config_free(struct config *c);

/* The image a config asks for: base_image, else the runtime's (upstream's table), else NULL
 * (the backend's default). */
const char *config_image(const struct config *c);

/* Makes [images] mirror and insecure_registries the pullers' settings, unless the environment
 * (AGENTKERNEL_REGISTRY_MIRROR, AGENTKERNEL_INSECURE_REGISTRIES) already says otherwise. */
int config_apply_registry_env(const struct config *c);

/* The starter file `agentkernel init` writes. */
int config_starter(const char *name, const char *agent, char **ret);
