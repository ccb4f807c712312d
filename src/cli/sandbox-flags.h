/* SPDX-License-Identifier: Apache-2.0 */
/* What a new sandbox looks like (`run`, `create`): the values of their options, the parsers of
 * those that need one (their option tables are in cmd-run.c and cmd-lifecycle.c), and
 * agentkernel.toml under them. */
#pragma once

#include <jansson.h>

#include "cli.h"
#include "core/config.h"
#include "core/manager.h"
#include "shared/cleanup.h"
#include "shared/net-mode.h"

struct sandbox_flags {
        struct create_opts o;
        char **env;
        struct port_spec ports[64];
        size_t n_ports;
        json_t *labels;
        char **volumes;
        char **allow_hosts, **deny_hosts; /* --allow-host, --deny-host */
        json_t *net_policy;               /* built from them and the config; o.network_policy */
        /* run only */
        bool keep, tty, interactive;
        const char *workdir;
        uint64_t timeout_ms;
        /* agentkernel.toml */
        const char *config_path;   /* --config; NULL: ./agentkernel.toml when there is one */
        const char *template_spec; /* --template: instead of ./agentkernel.toml (not --config) */
        char *template_name;
        bool no_config;
        struct config *cfg;
        struct cmd_policy policy;
        char **cfg_env;
        struct port_spec *all_ports;
        /* create only */
        bool no_start;
        /* secrets (docs/secrets.md) */
        char **secrets, **secret_files, **secret_body;
        bool placeholder_secrets;
        json_t *secret_mappings; /* [secrets]: NAME -> host */
};

void sandbox_flags_init(struct sandbox_flags *f);
/* Frees what f holds (f itself is the caller's). */
void sandbox_flags_done(struct sandbox_flags *f);
DEFINE_CLEANUP_DONE(struct sandbox_flags, sandbox_flags_done)
#define cleanup_sandbox_flags CLEANUP_FUNC(sandbox_flags_done)

/* Option parsers (CLI_OPT_CALLBACK). Their targets: */
int sf_opt_image(const struct cli_option *o, const char *arg);   /* const char **: an image */
int sf_opt_profile(const struct cli_option *o, const char *arg); /* const char **: a profile */
int sf_opt_compat(const struct cli_option *o,
                  const char *arg); /* const char **: a mode (compat.h) */
int sf_opt_publish(const struct cli_option *o, const char *arg);     /* struct sandbox_flags * */
int sf_opt_ttl(const struct cli_option *o, const char *arg);         /* struct create_opts * */
int sf_opt_dir(const struct cli_option *o, const char *arg);         /* struct create_opts * */
int sf_opt_disk(const struct cli_option *o, const char *arg);        /* uint64_t *: MB */
int sf_opt_volume(const struct cli_option *o, const char *arg);      /* char ***: V:/PATH[:ro] */
int sf_opt_network(const struct cli_option *o, const char *arg);     /* int *: a mode; NULL "on" */
int sf_opt_host(const struct cli_option *o, const char *arg);        /* char ***: PATTERN[:PORT] */
int sf_opt_secret_body(const struct cli_option *o, const char *arg); /* char ***: a KEY */
int sf_opt_secret(const struct cli_option *o, const char *arg);      /* char ***: a binding */
int sf_opt_secret_file(const struct cli_option *o, const char *arg); /* char ***: KEY[:/PATH] */

/* The options `run` and `create` share, said the same way: a new sandbox's network, limits and
 * mounts, and whether agentkernel.toml is read. */
#define SANDBOX_OPTIONS(f)                                                                         \
        OPT_SET_INT(0, "no-network", &(f)->o.network, NET_MODE_NONE,                               \
                    "no network (loopback only): --network none"),                                 \
            OPT_CALLBACK(0, "network", &(f)->o.network, "[none|proxy|full]",                       \
                         "network mode: none (loopback only), proxy (only through the\n"           \
                         "policy proxy), full (direct, unfiltered); without a mode:\n"             \
                         "on, even if the profile has none (docs/network.md)",                     \
                         sf_opt_network),                                                          \
            OPT_CALLBACK(0, "allow-host", &(f)->allow_hosts, "PATTERN[:PORT]",                     \
                         "proxy mode: allow a host (api.example.com, *.example.com,\n"             \
                         "198.18.0.0/24; repeatable)",                                             \
                         sf_opt_host),                                                             \
            OPT_CALLBACK(0, "deny-host", &(f)->deny_hosts, "PATTERN[:PORT]",                       \
                         "proxy mode: deny a host (checked before --allow-host)", sf_opt_host),    \
            OPT_CALLBACK(0, "memory", &(f)->o.memory_mb, "MB",                                     \
                         "memory limit (default: the profile's, 512)", cli_opt_memory),            \
            OPT_CALLBACK(0, "disk", &(f)->o.disk_mb, "MB",                                         \
                         "what the sandbox may write to its own filesystems (/, /tmp,\n"           \
                         "/var, ...) together; default: half of --memory (docker,\n"               \
                         "podman: / and the scratch places each; see info)",                       \
                         sf_opt_disk),                                                             \
            OPT_CALLBACK(0, "cpus", &(f)->o.vcpus, "N", "CPU limit in CPUs (default 1)",           \
                         cli_opt_cpus),                                                            \
            OPT_SET_INT(0, "mount-cwd", &(f)->o.mount_cwd, 1,                                      \
                        "mount the current directory at /workspace"),                              \
            OPT_CALLBACK('v', "volume", &(f)->volumes, "V:/PATH[:ro]",                             \
                         "mount volume V (see 'volume') at PATH (repeatable)", sf_opt_volume),     \
            OPT_CALLBACK(0, "compat", &(f)->o.compat_mode, "MODE",                                 \
                         "a coding agent's compatibility mode: native, claude, codex\n"            \
                         "or gemini (profile, seccomp 'ai-agent', its hosts; as\n"                 \
                         "[agent] compatibility_mode, which it overrides)",                        \
                         sf_opt_compat),                                                           \
            OPT_BOOL(0, "no-config", &(f)->no_config, "do not read ./agentkernel.toml"),           \
            OPT_STRING(0, "template", &(f)->template_spec, "NAME",                                 \
                       "start from template NAME instead of ./agentkernel.toml\n"                  \
                       "(see 'template list'; --config wins over it)")

/* The secret options `run` and `create` share. */
#define SECRET_OPTIONS(f)                                                                          \
        OPT_CALLBACK('S', "secret", &(f)->secrets, "KEY:HOST[:HEADER]",                            \
                     "bind vault secret KEY to HOST (needs --network proxy): inside,\n"            \
                     "$KEY holds a placeholder the proxy replaces by the value in\n"               \
                     "HTTPS requests to HOST only (repeatable; docs/secrets.md)",                  \
                     sf_opt_secret),                                                               \
            OPT_CALLBACK(0, "secret-file", &(f)->secret_files, "KEY[:/PATH]",                      \
                         "write vault secret KEY into the sandbox (default path\n"                 \
                         "/run/agentkernel/secrets/KEY): the value enters the sandbox",            \
                         sf_opt_secret_file),                                                      \
            OPT_CALLBACK(0, "secret-body", &(f)->secret_body, "KEY",                               \
                         "also replace bound KEY's placeholder in request bodies (up to\n"         \
                         "1 MiB) sent to its hosts, not only in headers and the query",            \
                         sf_opt_secret_body),                                                      \
            OPT_BOOL(0, "placeholder-secrets", &(f)->placeholder_secrets,                          \
                     "secret files hold placeholders instead of values")

/* After parsing: points f->o at the lists the options filled, reads agentkernel.toml (--config,
 * else ./agentkernel.toml when present, unless --no-config) through the trusted reader, and fills
 * in what the flags did not say. A config that is refused (untrusted, invalid) stops the command
 * with EXIT_USAGE: it is never silently skipped. Prints warnings; returns 0 or an exit code. */
int sandbox_flags_config(struct sandbox_flags *f);
