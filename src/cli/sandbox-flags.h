/* SPDX-License-Identifier: Apache-2.0 */
/* Options shared by `run` and `create`: what a new sandbox looks like. */
#pragma once

#include <getopt.h>
#include <jansson.h>

#include "cli.h"
#include "core/config.h"
#include "core/manager.h"
#include "shared/cleanup.h"

struct sandbox_flags {
        struct create_opts o;
        char **env;
        struct port_spec ports[64];
        size_t n_ports;
        json_t *labels;
        /* run only */
        bool keep, tty, interactive;
        const char *workdir;
        uint64_t timeout_ms;
        /* agentkernel.toml */
        const char *config_path; /* --config; NULL: ./agentkernel.toml when there is one */
        bool no_config;
        struct config *cfg;
        struct cmd_policy policy;
        char **cfg_env;
        struct port_spec *all_ports;
        char **volumes;
        /* create only */
        bool no_start;
        bool run; /* parsing for `run` (-p is --profile) rather than `create` (-p is --publish) */
};

enum {
        SF_PROFILE = 2000,
        SF_NO_NETWORK,
        SF_NETWORK,
        SF_TTL,
        SF_MEMORY,
        SF_CPUS,
        SF_DESCRIPTION,
        SF_MOUNT_CWD,
        SF_NO_START,
        SF_TIMEOUT,
        SF_INTERACTIVE,
        SF_FAST,
        SF_NO_CONFIG,
        SF_DISK,
};

void sandbox_flags_init(struct sandbox_flags *f, bool run);
/* Frees what f holds (f itself is the caller's). */
void sandbox_flags_done(struct sandbox_flags *f);
DEFINE_CLEANUP_DONE(struct sandbox_flags, sandbox_flags_done)
#define cleanup_sandbox_flags CLEANUP_FUNC(sandbox_flags_done)
/* cli_parse() callback. */
int sandbox_flags_opt(int c, const char *arg, void *ctx);
/* After parsing: reads agentkernel.toml (--config, else ./agentkernel.toml when present, unless
 * --no-config) through the trusted reader, and fills in what the flags did not say. A config
 * that is refused (untrusted, invalid) stops the command with EXIT_USAGE: it is never silently
 * skipped. Prints warnings; returns 0 or an exit code. */
int sandbox_flags_config(struct sandbox_flags *f);
extern const struct option run_longopts[];
extern const struct option create_longopts[];
#define RUN_SHORTOPTS "ki:p:e:w:B:l:P:tFc:v:"
#define CREATE_SHORTOPTS "i:p:e:B:l:a:d:c:v:"
