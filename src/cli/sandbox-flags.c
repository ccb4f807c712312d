// SPDX-License-Identifier: Apache-2.0
/* The options that describe a new sandbox (`run`, `create`): their parsers and agentkernel.toml
 * under them. */
#include "sandbox-flags.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/compat.h"
#include "core/egress.h"
#include "core/profile.h"
#include "core/secrets.h"
#include "core/template.h"
#include "core/validate.h"
#include "core/vault.h"
#include "core/volume.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

void sandbox_flags_init(struct sandbox_flags *f)
{
        memset(f, 0, sizeof(*f));
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
        strv_free(f->allow_hosts);
        strv_free(f->deny_hosts);
        json_decref(f->net_policy);
        json_decref(f->labels);
        for (char **b = f->secrets; b && *b; b++)
                explicit_bzero(*b, strlen(*b)); /* KEY=value:host held a value */
        strv_free(f->secrets);
        strv_free(f->secret_files);
        strv_free(f->secret_body);
        json_decref(f->secret_mappings);
        free((char *)f->o.work_dir);
        free(f->template_name);
}

int sf_opt_secret(const struct cli_option *o, const char *arg)
{
        cleanup_secret_binding struct secret_binding b = {0};
        struct ak_err err = {0};
        int r = secret_binding_parse(arg, &b, &err);

        if (r < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (b.value) {
                cli_warn("--secret %s=...: a value on the command line is visible to other local "
                         "users (ps, /proc) and stays in your shell's history; it is stored in "
                         "the vault as '%s' (unless the vault has it already), and the sandbox "
                         "is bound to it as %s:%s. Prefer: agentkernel secret set %s, then -S "
                         "%s:%s",
                         b.key, b.key, b.key, b.host, b.key, b.key, b.host);
        }
        if (strv_push(o->value, arg) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        /* the copy is ours: the argument itself is wiped from what ps shows */
        explicit_bzero((char *)arg, strlen(arg));
        return 0;
}

int sf_opt_secret_body(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (vault_name_check(arg, &err) < 0)
                return cli_usage_error(cli_current, "--secret-body: %s", ak_err_msg(&err));
        if (strv_push(o->value, arg) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        return 0;
}

int sf_opt_secret_file(const struct cli_option *o, const char *arg)
{
        cleanup_free char *key = NULL, *path = NULL;
        struct ak_err err = {0};

        if (secret_file_parse(arg, &key, &path, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (strv_push(o->value, arg) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        return 0;
}

/* [secrets] NAME = "host" (or {host, header}): a binding of NAME where the vault has it, else a
 * warning; every entry is recorded in secret_mappings, as upstream. */
static int config_secrets(struct sandbox_flags *f, const struct config *c)
{
        enum vault_backend vb;
        struct ak_err err = {0};

        if (!c->secrets || !c->secrets[0])
                return 0;
        if (vault_backend_default(&vb, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        if (!f->secret_mappings && !(f->secret_mappings = json_object()))
                goto oom;
        for (char **s = c->secrets; *s; s++) {
                cleanup_secret_binding struct secret_binding b = {0};
                bool given = false;
                if (secret_binding_parse(*s, &b, &err) < 0)
                        return cli_fail(&err, EXIT_USAGE);
                if (json_object_set_new(f->secret_mappings, b.key, json_string(b.host)) < 0)
                        goto oom;
                for (char **e = f->secrets; e && *e && !given; e++)
                        given = strncmp(*e, b.key, strlen(b.key)) == 0 &&
                                ((*e)[strlen(b.key)] == ':' || (*e)[strlen(b.key)] == '=');
                if (given)
                        continue; /* the command line's binding of it wins */
                if (vault_has(vb, b.key, &err) != 1) {
                        cli_warn("[secrets] %s: not in the vault (backend %s), so not bound; store "
                                 "it with: agentkernel secret set %s",
                                 b.key, vault_backend_name(vb), b.key);
                        continue;
                }
                if (strv_push(&f->secrets, *s) < 0)
                        goto oom;
        }
        return 0;
oom:
        cli_error("out of memory");
        return EXIT_ERROR;
}

int sf_opt_image(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (validate_image(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *(const char **)o->value = arg;
        return 0;
}

int sf_opt_profile(const struct cli_option *o, const char *arg)
{
        if (!profile_get(arg))
                return cli_usage_error(cli_current,
                                       "invalid profile '%s': use permissive, moderate or "
                                       "restrictive",
                                       arg);
        *(const char **)o->value = arg;
        return 0;
}

int sf_opt_compat(const struct cli_option *o, const char *arg)
{
        const struct compat_mode *cm;
        struct ak_err err = {0};

        if (compat_mode_lookup(arg, &cm, &err) < 0)
                return cli_usage_error(cli_current, "--compat: %s", ak_err_msg(&err));
        *(const char **)o->value = arg;
        return 0;
}

int sf_opt_publish(const struct cli_option *o, const char *arg)
{
        struct sandbox_flags *f = o->value;
        struct ak_err err = {0};

        if (f->n_ports >= ARRAY_SIZE(f->ports))
                return cli_usage_error(cli_current, "at most %zu published ports",
                                       ARRAY_SIZE(f->ports));
        if (parse_port_spec(arg, &f->ports[f->n_ports], &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        f->n_ports++;
        return 0;
}

int sf_opt_network(const struct cli_option *o, const char *arg)
{
        enum net_mode m = NET_MODE_ON;

        if (arg && net_mode_from_string(arg, &m) < 0)
                return cli_usage_error(cli_current,
                                       "invalid network mode '%s': use none, proxy or full", arg);
        *(int *)o->value = (int)m;
        return 0;
}

int sf_opt_host(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (egress_host_rule_check(arg, &err) < 0)
                return cli_usage_error(cli_current, "--%s: %s", o->long_name, ak_err_msg(&err));
        if (strv_push((char ***)o->value, arg) < 0)
                return cli_usage_error(cli_current, "out of memory");
        return 0;
}

int sf_opt_ttl(const struct cli_option *o, const char *arg)
{
        struct create_opts *c = o->value;
        struct ak_err err = {0};
        uint64_t v;

        if (parse_ttl(arg, true, &v, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        c->has_ttl = true;
        c->ttl_seconds = v;
        return 0;
}

int sf_opt_dir(const struct cli_option *o, const char *arg)
{
        struct create_opts *c = o->value;
        char *real = realpath(arg, NULL);

        if (!real)
                return cli_usage_error(cli_current, "directory '%s': %s", arg, strerror(errno));
        free((char *)c->work_dir);
        c->work_dir = real;
        c->mount_cwd = 1;
        return 0;
}

int sf_opt_disk(const struct cli_option *o, const char *arg)
{
        uint64_t v;

        if (safe_atou64(arg, &v) < 0 || validate_disk_mb(v, NULL) < 0)
                return cli_usage_error(cli_current, "invalid disk '%s': a number of MB, %u to %u",
                                       arg, DISK_MB_MIN, DISK_MB_MAX);
        *(uint64_t *)o->value = v;
        return 0;
}

int sf_opt_volume(const struct cli_option *o, const char *arg)
{
        struct volume_spec vs;
        struct ak_err err = {0};

        if (volume_parse_spec(arg, &vs, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (strv_push(o->value, arg) < 0)
                return cli_usage_error(cli_current, "out of memory");
        return 0;
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

static int load_config(struct sandbox_flags *f);

/* The egress policy: --deny-host, --allow-host, then [security.domains] and [network] hosts. */
static int build_net_policy(struct sandbox_flags *f)
{
        const struct config *c = f->cfg;
        struct ak_err err = {0};
        bool proxy;

        char *const *allow = c ? c->domains.allow : NULL, *const *block =
                                                              c ? c->domains.block : NULL;
        bool domains = c && c->has_domains, only = c && c->domains.allowlist_only;
        const struct compat_mode *cm = NULL;

        if (compat_mode_lookup(f->o.compat_mode, &cm, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        /* a compatibility mode's hosts are the base the command line's rules refine; a policy
         * with no rule of the command line's is the mode's, made by manager_create */
        if (!domains && cm->allow && (f->deny_hosts || f->allow_hosts || (c && c->hosts))) {
                allow = (char *const *)cm->allow;
                block = (char *const *)cm->block;
                domains = only = true;
        }
        if (egress_policy_build(f->deny_hosts, f->allow_hosts, allow, block, domains, only,
                                c ? c->hosts : NULL, &f->net_policy, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        f->o.network_policy = f->net_policy;
        proxy =
            f->o.network == NET_MODE_PROXY || (f->o.network < 0 && NET_MODE_ON == NET_MODE_PROXY);
        if (f->net_policy && !proxy && f->o.network != NET_MODE_NONE)
                cli_warn("the network policy (--allow-host, --deny-host, [security.domains], "
                         "[network] hosts) is enforced only in proxy mode: add --network proxy "
                         "(this sandbox's network is %s)",
                         f->o.network < 0 ? "the profile's" : net_mode_name(f->o.network));
        return 0;
}

int sandbox_flags_config(struct sandbox_flags *f)
{
        int r = load_config(f);

        return r ? r : build_net_policy(f);
}

static int load_config(struct sandbox_flags *f)
{
        struct ak_err err = {0};
        struct config *c;
        const char *path = f->config_path;

        f->o.env = f->env;
        f->o.labels = f->labels;
        f->o.volumes = f->volumes;
        f->o.secret_files = f->secret_files;
        f->o.secret_body = f->secret_body;
        f->o.placeholder_secrets = f->placeholder_secrets;
        if (f->n_ports) {
                f->o.ports = f->ports;
                f->o.n_ports = f->n_ports;
        }

        if (f->no_config && path)
                return cli_usage_error(cli_current, "--config and --no-config cannot be combined");
        if (f->template_spec && path) {
                cli_warn("--config is given: template '%s' is not used", f->template_spec);
        } else if (f->template_spec) {
                /* upstream's order: --config, then --template, then ./agentkernel.toml */
                cleanup_template struct template t = {0};
                if (template_resolve(f->template_spec, &t, &err) < 0)
                        return cli_fail(&err, EXIT_USAGE);
                f->cfg = TAKE_PTR(t.cfg);
                f->template_name = TAKE_PTR(t.name);
                f->o.template_name = f->template_name;
                path = f->template_name;
        }
        if (!path && !f->no_config)
                path = config_default_path();
        if (!path) {
                f->o.secrets = f->secrets;
                return 0;
        }
        if (!f->cfg && config_load(path, &f->cfg, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        c = f->cfg;
        {
                int r = config_secrets(f, c);
                if (r)
                        return r;
        }
        f->o.secrets = f->secrets;
        f->o.secret_mappings = f->secret_mappings;
        for (char **k = c->secret_body; k && *k; k++)
                if (strv_push(&f->secret_body, *k) < 0) {
                        cli_error("out of memory");
                        return EXIT_ERROR;
                }
        f->o.secret_body = f->secret_body;
        f->o.ca_file = c->ca_file;
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
        if (!f->o.compat_mode)
                f->o.compat_mode = c->compatibility_mode;
        if (c->template_help_text && !f->o.template_help_text)
                f->o.template_help_text = c->template_help_text;
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
