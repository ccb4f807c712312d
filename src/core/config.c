// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel.toml: TOML text -> struct config, through a table of known keys per section; and
 * the one trusted way to read such a file from disk (config_load). Every path here may have been
 * planted by a sandbox or another user: files are opened once, checked on the fd, and read from
 * it; [[files]] sources are resolved beneath their directory with openat2, never by joining
 * strings, and never through a symlink that leaves it or a magic link.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sha256.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/coding-agents.h"
#include "core/compat.h"
#include "core/profile.h"
#include "core/secrets.h"
#include "core/trust.h"
#include "core/vault.h"
#include "runtime/seccomp.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-mode.h"
#include "shared/net-policy.h"
#include "shared/strv.h"
#include "shared/toml.h"

#define INIT_SCRIPT_MAX (64u << 10)

enum kind { K_STR, K_BOOL, K_TRISTATE, K_NETMODE, K_U32, K_U64, K_IGNORED };

struct field {
        const char *key;
        enum kind kind;
        size_t off;
};

#define F(k, kind, member)                                                                         \
        {                                                                                          \
                k, kind, offsetof(struct config, member)                                           \
        }

static const struct field sandbox_fields[] = {
    F("name", K_STR, name),
    F("runtime", K_STR, runtime),
    F("base_image", K_STR, base_image),
    F("init_script", K_STR, init_script),
};
static const struct field agent_fields[] = {
    F("preferred", K_STR, agent),
    F("compatibility_mode", K_STR, compatibility_mode),
    F("git_name", K_STR, git_name),
    F("git_email", K_STR, git_email),
};
static const struct field resources_fields[] = {
    F("vcpus", K_U32, vcpus),
    F("memory_mb", K_U64, memory_mb),
    F("disk_mb", K_U64, disk_mb),
};
static const struct field security_fields[] = {
    F("profile", K_STR, profile),
    F("network", K_NETMODE, network),
    F("mount_cwd", K_TRISTATE, mount_cwd),
    F("seccomp", K_STR, seccomp),
};
static const struct field api_fields[] = {
    F("api_key", K_STR, api_key),
    F("api_key_env", K_STR, api_key_env),
    F("allow_sudo_exec", K_BOOL, allow_sudo_exec),
};

/* [api.tls] (upstream's): cert and key are absolute paths, checked by serve as its flags' */
static const struct field api_tls_fields[] = {
    F("enabled", K_TRISTATE, tls_enabled),
    F("cert", K_STR, tls_cert),
    F("key", K_STR, tls_key),
    F("require_tls", K_TRISTATE, tls_require),
};

static const struct field template_fields[] = {
    F("help_text", K_STR, template_help_text),
};

static const struct field images_fields[] = {
    F("mirror", K_STR, registry_mirror),
};

/* Sections upstream reads that this version does not implement: warned about, not applied. */
static const char *const unsupported_sections[] = {
    "ssh",        "build",     "git",      "orchestrator", "remote",   "enterprise",
    "scheduling", "workspace", "schedule", "proxy",        "llm_keys", "llm_governance",
};

struct ctx {
        struct config *c;
        struct ak_err *err;
        const char *dir;
};

static void warn(struct config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct config *c, const char *fmt, ...)
{
        char *msg = NULL;
        va_list ap;

        if (strv_len(c->warnings) >= CONFIG_WARNINGS_MAX)
                return;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        (void)strv_consume(&c->warnings, msg); /* best effort: a warning lost to ENOMEM */
}

static int type_error(struct ctx *x, const char *section, const char *key, const char *want)
{
        return ak_err_set(x->err, EINVAL, "[%s] %s: expected %s", section, key, want);
}

static int set_field(struct ctx *x, const char *section, const struct field *f, json_t *v)
{
        void *dst = (char *)x->c + f->off;

        switch (f->kind) {
        case K_STR:
                if (!json_is_string(v))
                        return type_error(x, section, f->key, "a string");
                free(*(char **)dst);
                *(char **)dst = strdup(json_string_value(v));
                return *(char **)dst ? 0 : ak_err_oom(x->err);
        case K_BOOL:
                if (!json_is_boolean(v))
                        return type_error(x, section, f->key, "true or false");
                *(bool *)dst = json_is_true(v);
                return 0;
        case K_TRISTATE:
                if (!json_is_boolean(v))
                        return type_error(x, section, f->key, "true or false");
                *(int *)dst = json_is_true(v);
                return 0;
        case K_NETMODE: {
                /* upstream's boolean (true: "on", NET_MODE_ON) or a mode's name */
                enum net_mode m;
                if (json_is_boolean(v)) {
                        *(int *)dst = json_is_true(v) ? NET_MODE_ON : NET_MODE_NONE;
                        return 0;
                }
                if (!json_is_string(v) || net_mode_from_string(json_string_value(v), &m) < 0)
                        return type_error(x, section, f->key,
                                          "\"none\", \"proxy\", \"full\", true or false");
                *(int *)dst = (int)m;
                return 0;
        }
        case K_U32:
        case K_U64:
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    (f->kind == K_U32 && json_integer_value(v) > UINT32_MAX))
                        return type_error(x, section, f->key, "a non-negative integer");
                if (f->kind == K_U32)
                        *(uint32_t *)dst = (uint32_t)json_integer_value(v);
                else
                        *(uint64_t *)dst = (uint64_t)json_integer_value(v);
                return 0;
        case K_IGNORED:
        default:
                return 0;
        }
}

/* Applies the scalar fields of a section; subtables are left to the caller (skip lists them). */
static int apply_section(struct ctx *x, const char *section, json_t *t, const struct field *fields,
                         size_t n, const char *const *skip, size_t n_skip)
{
        const char *k;
        json_t *v;
        int r;

        if (!json_is_object(t))
                return ak_err_set(x->err, EINVAL, "[%s]: expected a table", section);
        json_object_foreach (t, k, v) {
                const struct field *f = NULL;
                bool skipped = false;
                for (size_t i = 0; i < n && !f; i++)
                        if (streq(fields[i].key, k))
                                f = &fields[i];
                for (size_t i = 0; i < n_skip; i++)
                        skipped = skipped || streq(skip[i], k);
                if (skipped)
                        continue;
                if (!f) {
                        warn(x->c, "unknown key '%s' in [%s] (ignored)", k, section);
                        continue;
                }
                r = set_field(x, section, f, v);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int strv_from(struct ctx *x, const char *where, json_t *v, size_t max, char ***ret)
{
        size_t i;
        json_t *e;

        if (!json_is_array(v))
                return ak_err_set(x->err, EINVAL, "%s: expected an array of strings", where);
        if (json_array_size(v) > max)
                return ak_err_set(x->err, EINVAL, "%s: at most %zu entries", where, max);
        strv_free(*ret);
        *ret = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!*ret)
                return ak_err_oom(x->err);
        json_array_foreach (v, i, e) {
                const char *s = json_string_value(e);
                if (!s)
                        return ak_err_set(x->err, EINVAL, "%s: expected an array of strings",
                                          where);
                if (!*s || strlen(s) > CMD_POLICY_ENTRY_MAX)
                        return ak_err_set(x->err, EINVAL, "%s: entries must be 1 to %d bytes",
                                          where, CMD_POLICY_ENTRY_MAX);
                for (const char *p = s; *p; p++)
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                return ak_err_set(x->err, EINVAL, "%s: control character in '%s'",
                                                  where, s);
                if (!((*ret)[i] = strdup(s)))
                        return ak_err_oom(x->err);
        }
        return 0;
}

static int apply_list(struct ctx *x, const char *section, json_t *t, struct config_list *l)
{
        const char *k;
        json_t *v;
        char where[64];
        int r;

        if (!json_is_object(t))
                return ak_err_set(x->err, EINVAL, "[%s]: expected a table", section);
        json_object_foreach (t, k, v) {
                (void)snprintf(where, sizeof(where), "[%s] %s", section, k);
                if (streq(k, "allow") || streq(k, "block")) {
                        r = strv_from(x, where, v, CMD_POLICY_MAX_ENTRIES,
                                      streq(k, "allow") ? &l->allow : &l->block);
                } else if (streq(k, "allowlist_only")) {
                        if (!json_is_boolean(v))
                                return type_error(x, section, k, "true or false");
                        l->allowlist_only = json_is_true(v);
                        r = 0;
                } else {
                        warn(x->c, "unknown key '%s' in [%s] (ignored)", k, section);
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int apply_security(struct ctx *x, json_t *t)
{
        static const char *const subtables[] = {"commands", "domains", "transport"};
        json_t *v;
        int r = apply_section(x, "security", t, security_fields, ARRAY_SIZE(security_fields),
                              subtables, ARRAY_SIZE(subtables));

        if (r < 0)
                return r;
        if ((v = json_object_get(t, "commands")) &&
            (r = apply_list(x, "security.commands", v, &x->c->commands)) < 0)
                return r;
        if ((v = json_object_get(t, "domains"))) {
                r = apply_list(x, "security.domains", v, &x->c->domains);
                if (r < 0)
                        return r;
                x->c->has_domains = true;
        }
        if (json_object_get(t, "transport"))
                warn(x->c, "[security.transport] is not supported by this version (ignored)");
        if (x->c->seccomp) {
                enum seccomp_profile sp;
                if (seccomp_profile_from_name(x->c->seccomp, &sp) < 0)
                        return ak_err_set(x->err, EINVAL,
                                          "[security] seccomp: '%s' is not a filter this version "
                                          "has (default, moderate, restrictive; custom JSON "
                                          "profiles are not supported)",
                                          x->c->seccomp);
        }
        if (x->c->profile && !profile_get(x->c->profile))
                return ak_err_set(x->err, EINVAL,
                                  "[security] profile: '%s' is not permissive, moderate or "
                                  "restrictive",
                                  x->c->profile);
        return 0;
}

/* [network] hosts = { "api.internal" = "198.18.0.2" }: static names for proxy-mode sandboxes
 * (the proxy answers them itself, like curl's --resolve). Names are checked as DNS names, the
 * addresses as dotted IPv4. */
static int apply_hosts(struct ctx *x, json_t *t)
{
        const char *k;
        json_t *v;

        if (!json_is_object(t) || json_object_size(t) > CONFIG_MAX_HOSTS)
                return ak_err_set(x->err, EINVAL,
                                  "[network] hosts: expected a table of at most %d names",
                                  CONFIG_MAX_HOSTS);
        json_object_foreach (t, k, v) {
                char norm[NET_POLICY_HOST_MAX + 1];
                struct in_addr a;
                if (!json_is_string(v) || inet_pton(AF_INET, json_string_value(v), &a) != 1)
                        return ak_err_set(x->err, EINVAL,
                                          "[network] hosts: '%s': expected an IPv4 address", k);
                if (net_host_normalise(k, norm) < 0)
                        return ak_err_set(x->err, EINVAL,
                                          "[network] hosts: '%s' is not a host name", k);
        }
        json_decref(x->c->hosts);
        x->c->hosts = json_deep_copy(t);
        return x->c->hosts ? 0 : ak_err_oom(x->err);
}

static int apply_network(struct ctx *x, json_t *t)
{
        const char *k;
        json_t *v;

        if (!json_is_object(t))
                return ak_err_set(x->err, EINVAL, "[network]: expected a table");
        json_object_foreach (t, k, v) {
                if (streq(k, "vsock_cid")) {
                        if (!json_is_integer(v))
                                return type_error(x, "network", k, "an integer");
                        continue; /* chosen by agentkernel, as upstream's create does */
                }
                if (streq(k, "hosts")) {
                        int r = apply_hosts(x, v);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (streq(k, "ca_file")) {
                        if (!json_is_string(v) || json_string_value(v)[0] != '/' ||
                            strlen(json_string_value(v)) >= PATH_MAX)
                                return type_error(x, "network", k, "an absolute path");
                        free(x->c->ca_file);
                        if (!(x->c->ca_file = strdup(json_string_value(v))))
                                return ak_err_oom(x->err);
                        continue;
                }
                if (!streq(k, "ports")) {
                        warn(x->c, "unknown key '%s' in [network] (ignored)", k);
                        continue;
                }
                if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_PORTS)
                        return ak_err_set(x->err, EINVAL,
                                          "[network] ports: expected at most %d port strings",
                                          CONFIG_MAX_PORTS);
                free(x->c->ports);
                x->c->ports = calloc(json_array_size(v) + 1, sizeof(*x->c->ports));
                if (!x->c->ports)
                        return ak_err_oom(x->err);
                x->c->n_ports = 0;
                for (size_t i = 0; i < json_array_size(v); i++) {
                        json_t *e = json_array_get(v, i);
                        char spec[32];
                        if (json_is_integer(e))
                                (void)snprintf(spec, sizeof(spec), "%lld",
                                               (long long)json_integer_value(e));
                        else if (json_is_string(e))
                                (void)snprintf(spec, sizeof(spec), "%s", json_string_value(e));
                        else
                                return type_error(x, "network", "ports",
                                                  "strings like \"8080:80\"");
                        if (parse_port_spec(spec, &x->c->ports[x->c->n_ports], x->err) < 0)
                                return ak_err_prefix(x->err, "[network] ports");
                        x->c->n_ports++;
                }
        }
        return 0;
}

/* A [[files]] source as text: relative, no '..' component, no NUL. What it names on disk is
 * checked by config_read_source(), at load and at every start. */
static const char *source_problem(const char *src, size_t len)
{
        const char *p = src;

        if (!len || len >= PATH_MAX || strlen(src) != len)
                return "is empty, too long or holds a NUL byte";
        if (src[0] == '/')
                return "is absolute";
        while (*p) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return "contains '..'";
                p += n;
                p += *p == '/';
        }
        return NULL;
}

static int check_source(struct ctx *x, size_t i, const char *src, size_t len)
{
        const char *why = source_problem(src, len);

        if (why)
                return ak_err_set(x->err, EINVAL,
                                  "[[files]] entry %zu: source '%s' %s; sources are relative to "
                                  "the config's directory and stay inside it",
                                  i, src, why);
        return 0;
}

static int apply_files(struct ctx *x, json_t *arr)
{
        size_t i;
        json_t *t;

        if (!json_is_array(arr))
                return ak_err_set(x->err, EINVAL, "[[files]]: expected an array of tables");
        if (json_array_size(arr) > CONFIG_MAX_FILES)
                return ak_err_set(x->err, EINVAL, "[[files]]: at most %d", CONFIG_MAX_FILES);
        x->c->files = calloc(json_array_size(arr) + 1, sizeof(*x->c->files));
        if (!x->c->files)
                return ak_err_oom(x->err);
        json_array_foreach (arr, i, t) {
                struct inject_file *f = &x->c->files[x->c->n_files];
                const char *src, *dst, *mode = "0644", *k;
                char *end;
                unsigned long m;
                json_t *v;
                int r;

                if (!json_is_object(t))
                        return ak_err_set(x->err, EINVAL, "[[files]]: expected a table");
                src = json_string_value(json_object_get(t, "source"));
                dst = json_string_value(json_object_get(t, "dest"));
                if (json_object_get(t, "mode"))
                        mode = json_string_value(json_object_get(t, "mode"));
                if (!src || !dst || !mode)
                        return ak_err_set(x->err, EINVAL,
                                          "[[files]] entry %zu: 'source' and 'dest' (strings) are "
                                          "required; 'mode' is an octal string like \"0644\"",
                                          i + 1);
                json_object_foreach (t, k, v)
                        if (!streq(k, "source") && !streq(k, "dest") && !streq(k, "mode"))
                                warn(x->c, "unknown key '%s' in [[files]] (ignored)", k);
                errno = 0;
                m = strtoul(mode, &end, 8);
                if (!*mode || *end || errno || m > 07777)
                        return ak_err_set(x->err, EINVAL,
                                          "[[files]] entry %zu: mode '%s' is not an octal mode",
                                          i + 1, mode);
                if (validate_sandbox_path(dst, x->err) < 0)
                        return ak_err_prefix(x->err, "[[files]] entry %zu: dest", i + 1);
                r = check_source(x, i + 1, src, json_string_length(json_object_get(t, "source")));
                if (r < 0)
                        return r;
                f->source = strdup(src);
                f->dest = strdup(dst);
                f->mode = (uint32_t)m;
                x->c->n_files++;
                if (!f->source || !f->dest)
                        return ak_err_oom(x->err);
        }
        return 0;
}

/* [secrets]: NAME = "host" (upstream) or NAME = {host = "...", header = "...", body = true}
 * (upstream's docs, which its parser refused; body is ours: the opt-in to substitution in request
 * bodies). No value is ever read from the file: the vault holds them. */
static int apply_secrets(struct ctx *x, json_t *v)
{
        const char *k;
        json_t *e;

        if (!json_is_object(v))
                return type_error(x, "secrets", "", "a table");
        json_object_foreach (v, k, e) {
                struct secret_binding b = {0};
                const char *host = json_string_value(e), *header = NULL;
                char *s = NULL;
                int r;
                if (streq(k, "backend") && json_is_string(e)) {
                        warn(x->c, "[secrets] backend is not read; AGENTKERNEL_SECRETS_BACKEND "
                                   "chooses the vault's backend");
                        continue;
                }
                if (json_is_object(e)) {
                        host = json_string_value(json_object_get(e, "host"));
                        header = json_string_value(json_object_get(e, "header"));
                        if (json_object_get(e, "header") && !header)
                                return type_error(x, "secrets", k, "a header name (string)");
                        if (json_object_get(e, "body") &&
                            !json_is_boolean(json_object_get(e, "body")))
                                return type_error(x, "secrets", k, "body = true or false");
                        if (json_is_true(json_object_get(e, "body")) &&
                            strv_push(&x->c->secret_body, k) < 0)
                                return ak_err_oom(x->err);
                }
                if (!host)
                        return type_error(x, "secrets", k,
                                          "a host name, or a table {host, header}");
                if (strv_len(x->c->secrets) >= SECRET_BINDINGS_MAX)
                        return ak_err_set(x->err, EINVAL, "[secrets]: at most %d entries",
                                          SECRET_BINDINGS_MAX);
                if (asprintf(&s, "%s:%s%s%s", k, host, header ? ":" : "", header ? header : "") < 0)
                        return ak_err_oom(x->err);
                r = vault_name_check(k, x->err);
                if (r >= 0)
                        r = secret_binding_parse(s, &b, x->err);
                secret_binding_done(&b);
                if (r < 0) {
                        free(s);
                        return ak_err_prefix(x->err, "[secrets]");
                }
                if (strv_consume(&x->c->secrets, s) < 0)
                        return ak_err_oom(x->err);
        }
        return 0;
}

static int apply(struct ctx *x, json_t *doc)
{
        static const char *const api_sub[] = {"tls"};
        const char *k;
        json_t *v;
        int r = 0;

        json_object_foreach (doc, k, v) {
                if (streq(k, "sandbox"))
                        r = apply_section(x, k, v, sandbox_fields, ARRAY_SIZE(sandbox_fields), NULL,
                                          0);
                else if (streq(k, "agent"))
                        r = apply_section(x, k, v, agent_fields, ARRAY_SIZE(agent_fields), NULL, 0);
                else if (streq(k, "resources"))
                        r = apply_section(x, k, v, resources_fields, ARRAY_SIZE(resources_fields),
                                          NULL, 0);
                else if (streq(k, "template"))
                        r = apply_section(x, k, v, template_fields, ARRAY_SIZE(template_fields),
                                          NULL, 0);
                else if (streq(k, "security"))
                        r = apply_security(x, v);
                else if (streq(k, "network"))
                        r = apply_network(x, v);
                else if (streq(k, "files"))
                        r = apply_files(x, v);
                else if (streq(k, "secrets"))
                        r = apply_secrets(x, v);
                else if (streq(k, "images")) {
                        static const char *const images_sub[] = {"insecure_registries"};
                        r = apply_section(x, k, v, images_fields, ARRAY_SIZE(images_fields),
                                          images_sub, ARRAY_SIZE(images_sub));
                        if (r >= 0 && json_object_get(v, "insecure_registries"))
                                r = strv_from(x, "[images] insecure_registries",
                                              json_object_get(v, "insecure_registries"), 64,
                                              &x->c->insecure_registries);
                } else if (streq(k, "api")) {
                        r = apply_section(x, k, v, api_fields, ARRAY_SIZE(api_fields), api_sub,
                                          ARRAY_SIZE(api_sub));
                        if (r >= 0 && json_object_get(v, "tls"))
                                r = apply_section(x, "api.tls", json_object_get(v, "tls"),
                                                  api_tls_fields, ARRAY_SIZE(api_tls_fields), NULL,
                                                  0);
                } else {
                        bool known = false;
                        for (size_t i = 0; i < ARRAY_SIZE(unsupported_sections); i++)
                                known = known || streq(unsupported_sections[i], k);
                        if (known)
                                warn(x->c, "[%s] is not supported by this version (ignored)", k);
                        else
                                warn(x->c, "unknown section or key '%s' (ignored)", k);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int validate(struct ctx *x)
{
        struct config *c = x->c;
        const char *tls_paths[][2] = {{"cert", c->tls_cert}, {"key", c->tls_key}};

        for (size_t i = 0; i < ARRAY_SIZE(tls_paths); i++)
                if (tls_paths[i][1] &&
                    (tls_paths[i][1][0] != '/' || strlen(tls_paths[i][1]) >= PATH_MAX))
                        return ak_err_set(x->err, EINVAL, "[api.tls] %s: expected an absolute path",
                                          tls_paths[i][0]);

        if (c->name && validate_name(c->name, x->err) < 0)
                return ak_err_prefix(x->err, "[sandbox] name");
        if (c->base_image && validate_image(c->base_image, x->err) < 0)
                return ak_err_prefix(x->err, "[sandbox] base_image");
        if (c->init_script && strlen(c->init_script) > INIT_SCRIPT_MAX)
                return ak_err_set(x->err, EINVAL, "[sandbox] init_script: longer than %u bytes",
                                  INIT_SCRIPT_MAX);
        if (c->vcpus && c->vcpus > 64)
                return ak_err_set(x->err, EINVAL, "[resources] vcpus: must be 1 to 64");
        if (c->memory_mb && (c->memory_mb < 16 || c->memory_mb > (1u << 20)))
                return ak_err_set(x->err, EINVAL,
                                  "[resources] memory_mb: must be 16 to 1048576 (1 TB)");
        if (c->disk_mb && validate_disk_mb(c->disk_mb, x->err) < 0)
                return ak_err_prefix(x->err, "[resources] disk_mb");
        if (c->agent && !coding_agent_find(c->agent))
                warn(c, "[agent] preferred: '%s' is not an agent agentkernel knows", c->agent);
        if (c->compatibility_mode) {
                const struct compat_mode *m;
                if (compat_mode_lookup(c->compatibility_mode, &m, x->err) < 0)
                        return ak_err_prefix(x->err, "[agent] compatibility_mode");
        }
        if (c->template_help_text && strlen(c->template_help_text) > TEMPLATE_HELP_MAX)
                return ak_err_set(x->err, EINVAL, "[template] help_text: longer than %u bytes",
                                  TEMPLATE_HELP_MAX);
        if (!c->git_name != !c->git_email)
                warn(c, "[agent] git_name and git_email go together; neither is applied");
        return 0;
}

int config_parse(const char *text, size_t len, const char *dir, struct config **ret,
                 struct ak_err *err)
{
        cleanup_json json_t *doc = NULL;
        cleanup_config struct config *c = NULL;
        struct ctx x;
        int r;

        r = toml_parse(text, len, &doc, err);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return ak_err_oom(err);
        c->network = c->mount_cwd = -1;
        c->tls_enabled = c->tls_require = -1;
        c->warnings = calloc(1, sizeof(char *));
        c->commands.allow = calloc(1, sizeof(char *));
        c->commands.block = calloc(1, sizeof(char *));
        c->domains.allow = calloc(1, sizeof(char *));
        c->domains.block = calloc(1, sizeof(char *));
        if (!c->warnings || !c->commands.allow || !c->commands.block || !c->domains.allow ||
            !c->domains.block)
                return ak_err_oom(err);
        if (dir && !(c->dir = strdup(dir)))
                return ak_err_oom(err);
        x = (struct ctx){c, err, dir};
        r = apply(&x, doc);
        if (r >= 0)
                r = validate(&x);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- reading a config from disk ---- */

static int openat2_beneath(int dirfd, const char *path, int flags, uint64_t resolve)
{
        struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = resolve};
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

        return fd < 0 ? -errno : fd;
}

/* Opens an O_PATH fd for real reading: a FIFO or device never gets an open() of its own. */
static int reopen_regular(int pathfd, const struct stat *st, int *ret)
{
        char proc[64];
        int fd;

        if (!S_ISREG(st->st_mode))
                return -EBADFD;
        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
        fd = open(proc, O_RDONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret = fd;
        return 0;
}

/* Reads source rel beneath the directory dirfd (see config_read_source). */
static int read_source_at(int dirfd, const char *dir, const char *rel, struct buf *ret,
                          struct ak_err *err)
{
        cleanup_close int pfd = -1;
        cleanup_close int fd = -1;
        struct stat st;
        int r;

        pfd = openat2_beneath(dirfd, rel, O_PATH, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
        if (pfd == -EXDEV || pfd == -ELOOP)
                return ak_err_set(err, EPERM,
                                  "[[files]] source '%s' leads outside the config's directory "
                                  "'%s' (a symlink out of it, or a magic link): refused",
                                  rel, dir);
        if (pfd == -ENOSYS)
                return ak_err_set(err, ENOSYS,
                                  "[[files]] need openat2 (Linux 5.6 or later) to be read safely");
        if (pfd < 0)
                return ak_err_errno(err, pfd, "[[files]] source '%s' in '%s'", rel, dir);
        if (fstat(pfd, &st) < 0)
                return ak_err_errno(err, errno, "[[files]] source '%s'", rel);
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EINVAL,
                                  "[[files]] source '%s' in '%s' is not a regular file", rel, dir);
        if ((uint64_t)st.st_size > CONFIG_SOURCE_MAX_BYTES)
                return ak_err_set(err, EFBIG, "[[files]] source '%s' in '%s' is larger than %u MiB",
                                  rel, dir, CONFIG_SOURCE_MAX_BYTES >> 20);
        if (!ret)
                return 0;
        r = reopen_regular(pfd, &st, &fd);
        if (r >= 0)
                r = read_fd_full(fd, ret, CONFIG_SOURCE_MAX_BYTES);
        if (r == -EFBIG)
                return ak_err_set(err, EFBIG, "[[files]] source '%s' in '%s' is larger than %u MiB",
                                  rel, dir, CONFIG_SOURCE_MAX_BYTES >> 20);
        if (r < 0)
                return ak_err_errno(err, r, "[[files]] source '%s' in '%s'", rel, dir);
        return 0;
}

int config_read_source(const char *dir, const char *rel, struct buf *ret, struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        const char *why = rel ? source_problem(rel, strlen(rel)) : "is missing";

        /* records of older versions held absolute sources, and no directory */
        if (why)
                return ak_err_set(err, EPERM,
                                  "[[files]] source '%s' %s: refused (sources are relative to "
                                  "the config's directory now); recreate the sandbox from its "
                                  "agentkernel.toml",
                                  rel ? rel : "", why);
        if (!dir || dir[0] != '/')
                return ak_err_set(err, EPERM,
                                  "[[files]] source '%s' has no config directory recorded (a "
                                  "record of an older agentkernel): refused; recreate the sandbox "
                                  "from its agentkernel.toml",
                                  rel);
        /* dir is canonical: any symlink in it now was put there since */
        dirfd = openat2_beneath(AT_FDCWD, dir, O_PATH | O_DIRECTORY,
                                RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
        if (dirfd == -ELOOP || dirfd == -ENOTDIR)
                return ak_err_set(err, EPERM,
                                  "the config directory '%s' of the [[files]] was replaced (a "
                                  "symlink is in its path now): refused; recreate the sandbox",
                                  dir);
        if (dirfd < 0)
                return ak_err_errno(err, dirfd, "the config directory '%s' of the [[files]]", dir);
        return read_source_at(dirfd, dir, rel, ret, err);
}

const char *config_default_path(void)
{
        struct stat st;

        return lstat(CONFIG_FILE_NAME, &st) == 0 || errno != ENOENT ? CONFIG_FILE_NAME : NULL;
}

static const char *verdict_text(enum trust_verdict v)
{
        return v == TRUST_NEW ? "it is new, never approved" : "it changed since it was approved";
}

/* Opens path as a config with config_load()'s checks; the approval only when approval. */
static int open_checked(const char *path, bool approval, struct config **ret, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int dirfd = -1;
        cleanup_close int pfd = -1;
        cleanup_close int fd = -1;
        cleanup_free char *dir = NULL;
        cleanup_free char *canon = NULL;
        cleanup_config struct config *c = NULL;
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        enum trust_verdict verdict = TRUST_APPROVED;
        char proc[64], real[PATH_MAX], sha[CONFIG_SHA256_HEX];
        struct stat st;
        ssize_t n;
        int r;

        if (!*base || streq(base, ".") || streq(base, ".."))
                return ak_err_set(err, EINVAL, "'%s' does not name a file", path);
        if (slash) {
                dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
                if (!dir)
                        return ak_err_oom(err);
        }
        dirfd = open(dir ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return ak_err_errno(err, errno, "cannot read '%s'", path);
        /* the directory's name as the kernel knows the fd: canonical, whatever path led there */
        (void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
        n = readlink(proc, real, sizeof(real) - 1);
        if (n <= 0 || real[0] != '/')
                return ak_err_set(err, n < 0 ? errno : ENOENT,
                                  "cannot resolve the directory of '%s'", path);
        real[n] = '\0';
        if (asprintf(&canon, "%s%s%s", real, n > 1 ? "/" : "", base) < 0)
                return ak_err_oom(err);
        /* an O_PATH fd first: a symlink is seen as one, a FIFO or device is never opened */
        pfd = openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
                return ak_err_errno(err, errno, "cannot read '%s'", path);
        if (fstat(pfd, &st) < 0)
                return ak_err_errno(err, errno, "cannot read '%s'", path);
        if (S_ISLNK(st.st_mode))
                return ak_err_set(err, EPERM,
                                  "'%s' is a symbolic link; a config must be a regular file named "
                                  "by its own path (give --config the file it points to, or "
                                  "--no-config)",
                                  path);
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EPERM, "'%s' is not a regular file", path);
        if (st.st_uid != geteuid())
                return ak_err_set(err, EPERM,
                                  "'%s' is not trusted: it is not owned by you (owner uid %u, you "
                                  "are uid %u); agentkernel reads only configs you own -- copy "
                                  "it, review the copy and approve it with: agentkernel trust "
                                  "COPY (or use --no-config)",
                                  path, (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & 022)
                return ak_err_set(err, EPERM,
                                  "'%s' is not trusted: it is writable by %s (mode %04o); fix it "
                                  "with: chmod go-w %s (then review it and approve it with: "
                                  "agentkernel trust %s)",
                                  path,
                                  (st.st_mode & 022) == 022 ? "group and others"
                                  : st.st_mode & 020        ? "its group"
                                                            : "others",
                                  (unsigned)(st.st_mode & 07777), canon, canon);
        /* from here on only what is read from this very file counts: exactly these bytes are
         * hashed, judged and parsed */
        r = reopen_regular(pfd, &st, &fd);
        if (r >= 0)
                r = read_fd_full(fd, &b, TOML_MAX_BYTES);
        if (r < 0)
                return ak_err_set(err, -r, "cannot read '%s': %s", path,
                                  r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        (void)SHA256Data((const uint8_t *)(b.data ? b.data : ""), b.len, sha);
        if (approval && (r = trust_check(canon, sha, &verdict, err)) < 0)
                return r;
        r = config_parse(b.data ? b.data : "", b.len, real, &c, err);
        for (size_t i = 0; r >= 0 && i < c->n_files; i++)
                r = read_source_at(dirfd, real, c->files[i].source, NULL, err);
        if (r < 0) {
                char why[AK_ERR_MSG_MAX];
                if (verdict == TRUST_APPROVED || !err)
                        return ak_err_prefix(err, "%s", path);
                (void)snprintf(why, sizeof(why), "%s", ak_err_msg(err));
                return ak_err_set(err, r == -EPERM ? EPERM : EINVAL,
                                  "'%s' is not trusted (%s) and not valid: %s; fix and review it, "
                                  "then approve it with: agentkernel trust %s (or run without it: "
                                  "--no-config)",
                                  path, verdict_text(verdict), why, canon);
        }
        if (verdict != TRUST_APPROVED)
                return ak_err_set(err, EPERM,
                                  "'%s' is not trusted: %s; agentkernel reads a config only once "
                                  "you approved it, since a sandbox or someone else may have "
                                  "written it. Review it, then approve it with: agentkernel trust "
                                  "%s (or run without it: --no-config)",
                                  path, verdict_text(verdict), canon);
        memcpy(c->sha256, sha, sizeof(sha));
        c->path = TAKE_PTR(canon);
        *ret = TAKE_PTR(c);
        return 0;
}

int config_inspect(const char *path, struct config **ret, struct ak_err *err)
{
        return open_checked(path, false, ret, err);
}

int config_load(const char *path, struct config **ret, struct ak_err *err)
{
        return open_checked(path, true, ret, err);
}

int config_approve(const struct config *c, struct ak_err *err)
{
        if (!c->path || !c->sha256[0])
                return ak_err_set(err, EINVAL, "only a config read from a file can be approved");
        return trust_add(c->path, c->sha256, err);
}

void config_free(struct config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->dir);
        free(c->name);
        free(c->runtime);
        free(c->base_image);
        free(c->init_script);
        free(c->agent);
        free(c->compatibility_mode);
        free(c->template_help_text);
        free(c->git_name);
        free(c->git_email);
        free(c->profile);
        free(c->seccomp);
        strv_free(c->secrets);
        strv_free(c->secret_body);
        strv_free(c->commands.allow);
        strv_free(c->commands.block);
        strv_free(c->domains.allow);
        strv_free(c->domains.block);
        json_decref(c->hosts);
        free(c->ca_file);
        free(c->ports);
        for (size_t i = 0; i < c->n_files; i++) {
                free(c->files[i].source);
                free(c->files[i].dest);
        }
        free(c->files);
        free(c->api_key);
        free(c->api_key_env);
        free(c->tls_cert);
        free(c->tls_key);
        free(c->registry_mirror);
        strv_free(c->insecure_registries);
        strv_free(c->warnings);
        free(c);
}

const char *config_image(const struct config *c)
{
        static const struct {
                const char *runtime, *image;
        } table[] = {
            {"python", "python:3.12-alpine"}, {"node", "node:22-alpine"},
            {"go", "golang:1.23-alpine"},     {"rust", "rust:1.85-alpine"},
            {"ruby", "ruby:3.3-alpine"},      {"java", "eclipse-temurin:21-alpine"},
            {"c", "gcc:14-bookworm"},         {"dotnet", "mcr.microsoft.com/dotnet/sdk:8.0"},
        };

        if (c->base_image)
                return c->base_image;
        for (size_t i = 0; c->runtime && i < ARRAY_SIZE(table); i++)
                if (streq(c->runtime, table[i].runtime))
                        return table[i].image;
        return NULL; /* "base" and unknown runtimes: the backend's default */
}

int config_starter(const char *name, const char *agent, char **ret)
{
        return asprintf(ret,
                        "# agentkernel configuration (https://github.com/thrashr888/agentkernel)\n"
                        "\n"
                        "[sandbox]\n"
                        "name = \"%s\"\n"
                        "runtime = \"base\"\n"
                        "# init_script = \"echo ready\"  # run with sh -c after every start\n"
                        "\n"
                        "[agent]\n"
                        "preferred = \"%s\"\n"
                        "# git_name = \"Your Name\"\n"
                        "# git_email = \"you@example.com\"\n"
                        "\n"
                        "[resources]\n"
                        "vcpus = 1\n"
                        "memory_mb = 512\n"
                        "\n"
                        "[security]\n"
                        "profile = \"moderate\"\n"
                        "\n"
                        "# [security.commands]\n"
                        "# block = [\"curl\", \"wget\"]\n",
                        name, agent) < 0
                   ? -ENOMEM
                   : 0;
}

int config_apply_registry_env(const struct config *c)
{
        cleanup_buf struct buf list = {0};

        if (c->registry_mirror && !getenv("AGENTKERNEL_REGISTRY_MIRROR") &&
            setenv("AGENTKERNEL_REGISTRY_MIRROR", c->registry_mirror, 1) < 0)
                return -errno;
        if (!c->insecure_registries || !c->insecure_registries[0] ||
            getenv("AGENTKERNEL_INSECURE_REGISTRIES"))
                return 0;
        for (char **r = c->insecure_registries; *r; r++)
                if (buf_printf(&list, "%s%s", list.len ? "," : "", *r) < 0)
                        return -ENOMEM;
        return setenv("AGENTKERNEL_INSECURE_REGISTRIES", list.data, 1) < 0 ? -errno : 0;
}
