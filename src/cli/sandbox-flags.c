// SPDX-License-Identifier: Apache-2.0
/* Parsing of the options that describe a new sandbox (`run`, `create`). */
#include "sandbox-flags.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/profile.h"
#include "core/validate.h"
#include "core/volume.h"
#include "shared/cleanup.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

const struct option run_longopts[] = {
    {"keep", no_argument, NULL, 'k'},
    {"image", required_argument, NULL, 'i'},
    {"profile", required_argument, NULL, 'p'},
    {"no-network", no_argument, NULL, SF_NO_NETWORK},
    {"network", no_argument, NULL, SF_NETWORK},
    {"env", required_argument, NULL, 'e'},
    {"workdir", required_argument, NULL, 'w'},
    {"ttl", required_argument, NULL, SF_TTL},
    {"backend", required_argument, NULL, 'B'},
    {"label", required_argument, NULL, 'l'},
    {"publish", required_argument, NULL, 'P'},
    {"memory", required_argument, NULL, SF_MEMORY},
    {"disk", required_argument, NULL, SF_DISK},
    {"cpus", required_argument, NULL, SF_CPUS},
    {"mount-cwd", no_argument, NULL, SF_MOUNT_CWD},
    {"tty", no_argument, NULL, 't'},
    {"interactive", no_argument, NULL, SF_INTERACTIVE},
    {"timeout", required_argument, NULL, SF_TIMEOUT},
    {"fast", no_argument, NULL, 'F'},
    {"volume", required_argument, NULL, 'v'},
    {"config", required_argument, NULL, 'c'},
    {"no-config", no_argument, NULL, SF_NO_CONFIG},
    {NULL, 0, NULL, 0},
};

const struct option create_longopts[] = {
    {"image", required_argument, NULL, 'i'},
    {"profile", required_argument, NULL, SF_PROFILE},
    {"publish", required_argument, NULL, 'p'},
    {"no-network", no_argument, NULL, SF_NO_NETWORK},
    {"network", no_argument, NULL, SF_NETWORK},
    {"env", required_argument, NULL, 'e'},
    {"ttl", required_argument, NULL, SF_TTL},
    {"backend", required_argument, NULL, 'B'},
    {"label", required_argument, NULL, 'l'},
    {"agent", required_argument, NULL, 'a'},
    {"dir", required_argument, NULL, 'd'},
    {"memory", required_argument, NULL, SF_MEMORY},
    {"disk", required_argument, NULL, SF_DISK},
    {"cpus", required_argument, NULL, SF_CPUS},
    {"description", required_argument, NULL, SF_DESCRIPTION},
    {"mount-cwd", no_argument, NULL, SF_MOUNT_CWD},
    {"no-start", no_argument, NULL, SF_NO_START},
    {"volume", required_argument, NULL, 'v'},
    {"config", required_argument, NULL, 'c'},
    {"no-config", no_argument, NULL, SF_NO_CONFIG},
    {NULL, 0, NULL, 0},
};

void sandbox_flags_init(struct sandbox_flags *f, bool run)
{
        memset(f, 0, sizeof(*f));
        f->run = run;
        f->o.network = -1;
        f->o.mount_cwd = -1;
}

void sandbox_flags_done(struct sandbox_flags *f)
{
        config_free(f->cfg);
        strv_free(f->cfg_env);
        free(f->all_ports);
        strv_free(f->env);
        strv_free(f->volumes);
        json_decref(f->labels);
        free((char *)f->o.work_dir);
}

static int add_port(struct sandbox_flags *f, const char *arg)
{
        struct ak_err err = {0};

        if (f->n_ports >= ARRAY_SIZE(f->ports))
                return cli_usage_error(cli_current, "at most %zu published ports",
                                       ARRAY_SIZE(f->ports));
        if (parse_port_spec(arg, &f->ports[f->n_ports], &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        f->n_ports++;
        f->o.ports = f->ports;
        f->o.n_ports = f->n_ports;
        return 0;
}

int sandbox_flags_opt(int c, const char *arg, void *ctx)
{
        struct sandbox_flags *f = ctx;
        struct ak_err err = {0};
        uint64_t v;
        uint32_t u;

        switch (c) {
        case 'k':
                f->keep = true;
                return 0;
        case 'i':
                if (validate_image(arg, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->o.image = arg;
                return 0;
        case 'p':
                if (!f->run)
                        return add_port(f, arg);
                /* on `run`, -p is the profile */
                __attribute__((fallthrough));
        case SF_PROFILE:
                if (!profile_get(arg))
                        return cli_usage_error(cli_current,
                                               "invalid profile '%s': use permissive, moderate or "
                                               "restrictive",
                                               arg);
                f->o.profile = arg;
                return 0;
        case 'P':
                return add_port(f, arg);
        case SF_NO_NETWORK:
                f->o.network = 0;
                return 0;
        case SF_NETWORK:
                f->o.network = 1;
                return 0;
        case 'e':
                if (cli_add_env(&f->env, arg))
                        return EXIT_USAGE;
                f->o.env = f->env;
                return 0;
        case 'w':
                return cli_opt_workdir(arg, &f->workdir);
        case SF_TTL:
                if (parse_ttl(arg, true, &v, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->o.has_ttl = true;
                f->o.ttl_seconds = v;
                return 0;
        case SF_TIMEOUT:
                return cli_opt_timeout(arg, &f->timeout_ms);
        case 'B':
                if (!backend_find(arg))
                        return cli_usage_error(cli_current,
                                               "unknown backend '%s' (this build has: native, "
                                               "docker, podman)",
                                               arg);
                f->o.backend = arg;
                return 0;
        case 'l': {
                char *k = NULL, *val = NULL;
                if (parse_label(arg, '=', &k, &val, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                if (!f->labels)
                        f->labels = json_object();
                json_object_set_new(f->labels, k, json_string(val));
                free(k);
                free(val);
                f->o.labels = f->labels;
                return 0;
        }
        case 'a':
                f->o.agent = arg;
                return 0;
        case 'd': {
                char *real = realpath(arg, NULL);
                if (!real)
                        return cli_usage_error(cli_current, "directory '%s': %s", arg,
                                               strerror(errno));
                free((char *)f->o.work_dir);
                f->o.work_dir = real;
                f->o.mount_cwd = 1;
                return 0;
        }
        case SF_MOUNT_CWD:
                f->o.mount_cwd = 1;
                return 0;
        case SF_MEMORY:
                if (safe_atou64(arg, &v) < 0 || v < 16 || v > (1u << 20))
                        return cli_usage_error(cli_current,
                                               "invalid memory '%s': a number of MB, 16 to "
                                               "1048576",
                                               arg);
                f->o.memory_mb = v;
                return 0;
        case SF_DISK:
                if (safe_atou64(arg, &v) < 0 || validate_disk_mb(v, NULL) < 0)
                        return cli_usage_error(cli_current,
                                               "invalid disk '%s': a number of MB, %u to %u", arg,
                                               DISK_MB_MIN, DISK_MB_MAX);
                f->o.disk_mb = v;
                return 0;
        case SF_CPUS:
                if (safe_atou32(arg, &u) < 0 || u < 1 || u > 64)
                        return cli_usage_error(cli_current, "invalid cpus '%s': 1 to 64", arg);
                f->o.vcpus = u;
                return 0;
        case SF_DESCRIPTION:
                f->o.description = arg;
                return 0;
        case SF_NO_START:
                f->no_start = true;
                return 0;
        case 't':
                f->tty = true;
                return 0;
        case SF_INTERACTIVE:
                f->interactive = true;
                return 0;
        case 'F':
                /* upstream's warm pool: docker and podman keep one; native needs none */
                f->o.fast = true;
                return 0;
        case 'c':
                f->config_path = arg;
                return 0;
        case 'v': {
                struct volume_spec vs;
                if (volume_parse_spec(arg, &vs, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                if (strv_push(&f->volumes, arg) < 0)
                        return cli_usage_error(cli_current, "out of memory");
                f->o.volumes = f->volumes;
                return 0;
        }
        case SF_NO_CONFIG:
                f->no_config = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

/* The git identity of [agent], as upstream passes it: git's environment configuration. */
static int add_git_identity(struct sandbox_flags *f)
{
        char *e[6] = {0};
        int r = 0;

        if (!f->cfg->git_name || !f->cfg->git_email)
                return 0;
        if (asprintf(&e[0], "GIT_CONFIG_COUNT=2") < 0 ||
            asprintf(&e[1], "GIT_CONFIG_KEY_0=user.name") < 0 ||
            asprintf(&e[2], "GIT_CONFIG_VALUE_0=%s", f->cfg->git_name) < 0 ||
            asprintf(&e[3], "GIT_CONFIG_KEY_1=user.email") < 0 ||
            asprintf(&e[4], "GIT_CONFIG_VALUE_1=%s", f->cfg->git_email) < 0)
                r = -ENOMEM;
        for (size_t i = 0; i < 5 && r == 0; i++)
                r = strv_push(&f->cfg_env, e[i]);
        for (size_t i = 0; i < 5; i++)
                free(e[i]);
        return r;
}

int sandbox_flags_config(struct sandbox_flags *f)
{
        struct ak_err err = {0};
        struct config *c;
        const char *path = f->config_path;

        if (f->no_config && path)
                return cli_usage_error(cli_current, "--config and --no-config cannot be combined");
        if (!path && !f->no_config)
                path = config_default_path();
        if (!path)
                return 0;
        if (config_load(path, &f->cfg, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        c = f->cfg;
        for (char **w = c->warnings; *w; w++)
                cli_warn("%s: %s", path, *w);
        if (!f->o.image)
                f->o.image = config_image(c);
        if (config_apply_registry_env(c) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        if (!f->o.profile)
                f->o.profile = c->profile;
        if (!f->o.vcpus)
                f->o.vcpus = c->vcpus;
        if (!f->o.memory_mb)
                f->o.memory_mb = c->memory_mb;
        if (!f->o.disk_mb)
                f->o.disk_mb = c->disk_mb;
        if (f->o.network < 0)
                f->o.network = c->network;
        if (f->o.mount_cwd < 0)
                f->o.mount_cwd = c->mount_cwd;
        if (!f->o.agent)
                f->o.agent = c->agent;
        f->o.init_script = c->init_script;
        f->o.seccomp = c->seccomp;
        f->o.files = c->files;
        f->o.n_files = c->n_files;
        f->o.files_dir = c->dir;
        f->policy =
            (struct cmd_policy){c->commands.allow, c->commands.block, c->commands.allowlist_only};
        f->o.commands = cmd_policy_empty(&f->policy) ? NULL : &f->policy;
        /* ports: the file's, then the command line's */
        if (c->n_ports) {
                f->all_ports = calloc(c->n_ports + f->n_ports, sizeof(*f->all_ports));
                if (!f->all_ports) {
                        cli_error("out of memory");
                        return EXIT_ERROR;
                }
                memcpy(f->all_ports, c->ports, c->n_ports * sizeof(*c->ports));
                memcpy(f->all_ports + c->n_ports, f->ports, f->n_ports * sizeof(*f->ports));
                f->o.ports = f->all_ports;
                f->o.n_ports = c->n_ports + f->n_ports;
        }
        /* environment: the file's git identity, then -e (later wins) */
        if (add_git_identity(f) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        for (char **e = f->env; e && *e; e++)
                if (strv_push(&f->cfg_env, *e) < 0) {
                        cli_error("out of memory");
                        return EXIT_ERROR;
                }
        if (f->cfg_env)
                f->o.env = f->cfg_env;
        return 0;
}
