// SPDX-License-Identifier: Apache-2.0
/*
 * SandboxState <-> JSON. The parser is fed files from disk that any process (or person) may have
 * written: it checks every type, bounds every size, and never trusts a count. It is fuzzed
 * (fuzz/fuzz-state.c).
 */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/json-util.h"
#include "shared/net-mode.h"
#include "shared/strv.h"

/* Backends upstream's BackendType knows; anything else goes to the extension. */
static const char *const upstream_backends[] = {
    "docker", "podman",  "firecracker", "apple", "hyperlight", "kubernetes",
    "nomad",  "daytona", "runloop",     "e2b",   "modal",      "agentcomputer",
};

static const char *const known_keys[] = {
    "name",
    "uuid",
    "image",
    "vcpus",
    "memory_mb",
    "vsock_cid",
    "created_at",
    "backend",
    "remote_id",
    "remote_namespace",
    "ttl_seconds",
    "expires_at",
    "ports",
    "ssh_enabled",
    "ssh_host_port",
    "volumes",
    "agent",
    "secret_bindings",
    "secret_files",
    "placeholder_secrets",
    "proxy_port",
    "secret_mappings",
    "init_script",
    "created_from_template",
    "template_help_text",
    "labels",
    "description",
    "last_activity_at",
    "archived_at",
    "archived_reason",
    "lifecycle_policy",
    STATE_EXT_KEY,
};

static const char *const ext_known_keys[] = {
    "backend",     "profile",    "network",    "mount_cwd",       "work_dir",    "env",
    "commands",    "files",      "files_dir",  "seccomp",         "disk_mb",     "network_policy",
    "compat_mode", "source_url", "source_ref", "network_ca_file", "secret_body",
};

static char **strv_empty(void)
{
        return calloc(1, sizeof(char *));
}

struct sandbox_state *state_new(void)
{
        struct sandbox_state *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->uuid = strdup("");
        s->volumes = strv_empty();
        s->secret_bindings = strv_empty();
        s->secret_files = strv_empty();
        s->env = strv_empty();
        s->secret_mappings = json_object();
        s->labels = json_object();
        s->extra = json_object();
        s->ext_extra = json_object();
        s->ssh_host_port = -1;
        s->proxy_port = -1;
        s->network = -1;
        s->mount_cwd = -1;
        if (!s->uuid || !s->volumes || !s->secret_bindings || !s->secret_files || !s->env ||
            !s->secret_mappings || !s->labels || !s->extra || !s->ext_extra) {
                state_free(s);
                return NULL;
        }
        return s;
}

void state_free(struct sandbox_state *s)
{
        if (!s)
                return;
        free(s->name);
        free(s->uuid);
        free(s->image);
        free(s->created_at);
        free(s->backend);
        free(s->remote_id);
        free(s->remote_namespace);
        free(s->expires_at);
        free(s->ports);
        strv_free(s->volumes);
        free(s->agent);
        strv_free(s->secret_bindings);
        strv_free(s->secret_files);
        json_decref(s->secret_mappings);
        free(s->init_script);
        free(s->created_from_template);
        free(s->template_help_text);
        json_decref(s->labels);
        free(s->description);
        free(s->last_activity_at);
        free(s->archived_at);
        free(s->archived_reason);
        free(s->ext_backend);
        free(s->profile);
        free(s->work_dir);
        strv_free(s->env);
        strv_free(s->commands.allow);
        strv_free(s->commands.block);
        for (size_t i = 0; i < s->n_files; i++) {
                free(s->files[i].source);
                free(s->files[i].dest);
        }
        free(s->files);
        free(s->files_dir);
        free(s->seccomp);
        free(s->compat_mode);
        free(s->source_url);
        free(s->source_ref);
        free(s->network_ca_file);
        strv_free(s->secret_body);
        json_decref(s->extra);
        json_decref(s->ext_extra);
        json_decref(s->network_policy);
        free(s);
}

int state_set_str(char **field, const char *value)
{
        char *copy = NULL;

        if (value) {
                copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
        }
        free(*field);
        *field = copy;
        return 0;
}

const char *state_backend(const struct sandbox_state *s)
{
        return s->ext_backend ? s->ext_backend : s->backend;
}

int state_set_backend(struct sandbox_state *s, const char *backend)
{
        bool upstream = false;
        int r;

        for (size_t i = 0; backend && i < ARRAY_SIZE(upstream_backends); i++)
                if (streq(backend, upstream_backends[i]))
                        upstream = true;
        r = state_set_str(&s->backend, upstream ? backend : NULL);
        if (r >= 0)
                r = state_set_str(&s->ext_backend, upstream ? NULL : backend);
        return r;
}

const char *state_status(const struct sandbox_state *s, bool running)
{
        if (s->archived_at)
                return "archived";
        return running ? "running" : "stopped";
}

/* ---- parsing ---- */

static int bad(struct ak_err *err, const char *field, const char *want)
{
        return ak_err_set(err, EINVAL, "field '%s' must be %s", field, want);
}

static int get_req_str(json_t *o, const char *k, char **out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k);
        if (!v)
                return ak_err_set(err, EINVAL, "missing field '%s'", k);
        if (!json_is_string(v))
                return bad(err, k, "a string");
        return state_set_str(out, json_string_value(v));
}

static int get_opt_str(json_t *o, const char *k, char **out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k);
        if (!v || json_is_null(v))
                return state_set_str(out, NULL);
        if (!json_is_string(v))
                return bad(err, k, "a string or null");
        return state_set_str(out, json_string_value(v));
}

static int get_uint(json_t *o, const char *k, bool required, uint64_t max, uint64_t *out,
                    bool *present, struct ak_err *err)
{
        json_t *v = json_object_get(o, k);

        if (present)
                *present = false;
        if (!v || (!required && json_is_null(v))) {
                if (required)
                        return ak_err_set(err, EINVAL, "missing field '%s'", k);
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return bad(err, k, "a non-negative integer in range");
        *out = (uint64_t)json_integer_value(v);
        if (present)
                *present = true;
        return 0;
}

static int get_opt_port(json_t *o, const char *k, int32_t *out, struct ak_err *err)
{
        uint64_t v = 0;
        bool present;
        int r = get_uint(o, k, false, 65535, &v, &present, err);
        if (r < 0)
                return r;
        *out = present ? (int32_t)v : -1;
        return 0;
}

static int get_bool(json_t *o, const char *k, bool *out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k);
        if (!v || json_is_null(v)) {
                *out = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return bad(err, k, "a boolean");
        *out = json_is_true(v);
        return 0;
}

static int get_strv(json_t *o, const char *k, char ***out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k), *e;
        char **list;
        size_t i;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return bad(err, k, "an array of strings");
        list = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!list)
                return -ENOMEM;
        json_array_foreach (v, i, e) {
                if (!json_is_string(e) || !(list[i] = strdup(json_string_value(e)))) {
                        strv_free(list);
                        return json_is_string(e) ? -ENOMEM : bad(err, k, "an array of strings");
                }
        }
        strv_free(*out);
        *out = list;
        return 0;
}

static int get_str_map(json_t *o, const char *k, json_t **out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k), *e;
        const char *key;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return bad(err, k, "an object of strings");
        json_object_foreach (v, key, e) {
                if (!json_is_string(e))
                        return bad(err, k, "an object of strings");
        }
        /* v is the parsed record's, freed with it: shared, not copied (jansson's deep copy of an
         * object formats each one's address with snprintf to check for loops) */
        json_decref(*out);
        *out = json_incref(v);
        return 0;
}

static int get_ports(json_t *o, struct sandbox_state *s, struct ak_err *err)
{
        json_t *v = json_object_get(o, "ports"), *e;
        size_t i;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return bad(err, "ports", "an array");
        if (json_array_size(v) > 4096)
                return bad(err, "ports", "at most 4096 entries long");
        s->ports = calloc(json_array_size(v) + 1, sizeof(*s->ports));
        if (!s->ports)
                return -ENOMEM;
        json_array_foreach (v, i, e) {
                struct port_mapping *pm = &s->ports[i];
                uint64_t cp = 0;
                json_t *proto;
                int r;

                if (!json_is_object(e))
                        return bad(err, "ports", "an array of objects");
                r = get_opt_port(e, "host_port", &pm->host_port, err);
                if (r < 0)
                        return r;
                r = get_uint(e, "container_port", true, 65535, &cp, NULL, err);
                if (r < 0)
                        return ak_err_prefix(err, "ports[%zu]", i);
                pm->container_port = (uint16_t)cp;
                proto = json_object_get(e, "protocol");
                if (proto && !json_is_null(proto)) {
                        if (!json_is_string(proto) || !(streq(json_string_value(proto), "tcp") ||
                                                        streq(json_string_value(proto), "udp")))
                                return bad(err, "ports[].protocol", "\"tcp\" or \"udp\"");
                        pm->udp = streq(json_string_value(proto), "udp");
                }
                s->n_ports++;
        }
        return 0;
}

static int get_lifecycle(json_t *o, struct lifecycle_policy *lp, struct ak_err *err)
{
        json_t *v = json_object_get(o, "lifecycle_policy");
        int r;

        memset(lp, 0, sizeof(*lp));
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return bad(err, "lifecycle_policy", "an object or null");
        lp->present = true;
        r = get_uint(v, "auto_stop_after_seconds", false, UINT64_MAX >> 1, &lp->stop_after,
                     &lp->has_stop, err);
        if (r >= 0)
                r = get_uint(v, "auto_archive_after_seconds", false, UINT64_MAX >> 1,
                             &lp->archive_after, &lp->has_archive, err);
        if (r >= 0)
                r = get_uint(v, "auto_delete_after_seconds", false, UINT64_MAX >> 1,
                             &lp->delete_after, &lp->has_delete, err);
        return r;
}

/* Whether k is one of list's n keys. *hint: where to start (the one after the last found):
 * a record's keys come in the order we write them, which is the list's, so each is found at the
 * first compare (a linear search from the top took ~500 strcmp per record, 10% of `list`). */
static bool in_list(const char *k, const char *const *list, size_t n, size_t *hint)
{
        for (size_t j = 0, i = *hint; j < n; j++, i = i + 1 < n ? i + 1 : 0)
                if (streq(k, list[i])) {
                        *hint = i + 1 < n ? i + 1 : 0;
                        return true;
                }
        return false;
}

static int get_tristate(json_t *o, const char *k, int *out, struct ak_err *err)
{
        json_t *v = json_object_get(o, k);
        if (!v || json_is_null(v)) {
                *out = -1;
                return 0;
        }
        if (!json_is_boolean(v))
                return bad(err, k, "a boolean or null");
        *out = json_is_true(v) ? 1 : 0;
        return 0;
}

/* "network": null/absent (the profile decides), a boolean (records of older versions: true is
 * "on", NET_MODE_ON) or a mode's name. */
static int get_network(json_t *o, int *out, struct ak_err *err)
{
        json_t *v = json_object_get(o, "network");
        enum net_mode m;

        if (!v || json_is_null(v) || json_is_boolean(v)) {
                *out = !v || json_is_null(v) ? -1 : json_is_true(v) ? NET_MODE_ON : NET_MODE_NONE;
                return 0;
        }
        if (!json_is_string(v) || net_mode_from_string(json_string_value(v), &m) < 0)
                return bad(err, "network", "none, proxy, full, a boolean or null");
        *out = (int)m;
        return 0;
}

static int get_network_policy(json_t *o, json_t **out, struct ak_err *err)
{
        json_t *v = json_object_get(o, "network_policy");

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return bad(err, "network_policy", "an object");
        *out = json_incref(v);
        return 0;
}

static int parse_commands(json_t *x, struct sandbox_state *s, struct ak_err *err)
{
        json_t *c = json_object_get(x, "commands");
        int r;

        if (!c || json_is_null(c))
                return 0;
        if (!json_is_object(c))
                return bad(err, "commands", "an object");
        if ((r = get_strv(c, "allow", &s->commands.allow, err)) < 0 ||
            (r = get_strv(c, "block", &s->commands.block, err)) < 0 ||
            (r = get_bool(c, "allowlist_only", &s->commands.allowlist_only, err)) < 0)
                return r < 0 && err && err->code ? ak_err_prefix(err, "commands") : r;
        return 0;
}

static int parse_files(json_t *x, struct sandbox_state *s, struct ak_err *err)
{
        json_t *a = json_object_get(x, "files"), *e;
        size_t i;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return bad(err, "files", "an array");
        s->files = calloc(json_array_size(a) + 1, sizeof(*s->files));
        if (!s->files)
                return -ENOMEM;
        json_array_foreach (a, i, e) {
                const char *src = json_string_value(json_object_get(e, "source"));
                const char *dst = json_string_value(json_object_get(e, "dest"));
                json_t *mode = json_object_get(e, "mode");
                if (!src || !dst || !json_is_integer(mode) || json_integer_value(mode) < 0 ||
                    json_integer_value(mode) > 07777)
                        return bad(err, "files", "entries {source, dest, mode}");
                s->files[i].source = strdup(src);
                s->files[i].dest = strdup(dst);
                s->files[i].mode = (uint32_t)json_integer_value(mode);
                s->n_files = i + 1;
                if (!s->files[i].source || !s->files[i].dest)
                        return -ENOMEM;
        }
        return 0;
}

static int parse_ext(json_t *root, struct sandbox_state *s, struct ak_err *err)
{
        json_t *x = json_object_get(root, STATE_EXT_KEY), *v;
        const char *k;
        size_t hint = 0;
        int r;

        if (!x || json_is_null(x))
                return 0;
        if (!json_is_object(x))
                return bad(err, STATE_EXT_KEY, "an object");
        if ((r = get_opt_str(x, "backend", &s->ext_backend, err)) < 0 ||
            (r = get_opt_str(x, "profile", &s->profile, err)) < 0 ||
            (r = get_network(x, &s->network, err)) < 0 ||
            (r = get_network_policy(x, &s->network_policy, err)) < 0 ||
            (r = get_tristate(x, "mount_cwd", &s->mount_cwd, err)) < 0 ||
            (r = get_opt_str(x, "work_dir", &s->work_dir, err)) < 0 ||
            (r = get_strv(x, "env", &s->env, err)) < 0 || (r = parse_commands(x, s, err)) < 0 ||
            (r = parse_files(x, s, err)) < 0 ||
            (r = get_opt_str(x, "files_dir", &s->files_dir, err)) < 0 ||
            (r = get_opt_str(x, "seccomp", &s->seccomp, err)) < 0 ||
            (r = get_opt_str(x, "compat_mode", &s->compat_mode, err)) < 0 ||
            (r = get_opt_str(x, "source_url", &s->source_url, err)) < 0 ||
            (r = get_opt_str(x, "source_ref", &s->source_ref, err)) < 0 ||
            (r = get_opt_str(x, "network_ca_file", &s->network_ca_file, err)) < 0 ||
            (r = get_strv(x, "secret_body", &s->secret_body, err)) < 0 ||
            (r = get_uint(x, "disk_mb", false, DISK_MB_MAX, &s->disk_mb, NULL, err)) < 0)
                return r < 0 && err && err->code ? ak_err_prefix(err, STATE_EXT_KEY) : r;
        json_object_foreach (x, k, v) {
                if (!in_list(k, ext_known_keys, ARRAY_SIZE(ext_known_keys), &hint) &&
                    json_object_set(s->ext_extra, k, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int state_parse(const char *text, size_t len, struct sandbox_state **ret, struct ak_err *err)
{
        json_error_t jerr;
        json_t *root CLEANUP(json_decrefp) = NULL;
        struct sandbox_state *s = NULL;
        uint64_t u = 0;
        size_t hint = 0;
        const char *k;
        json_t *v;
        int r;

        if (len > STATE_FILE_MAX)
                return ak_err_set(err, EFBIG, "state file larger than %u bytes", STATE_FILE_MAX);
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ak_err_set(err, EINVAL, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        if (!json_is_object(root))
                return ak_err_set(err, EINVAL, "state must be a JSON object");
        s = state_new();
        if (!s)
                return -ENOMEM;

        if ((r = get_req_str(root, "name", &s->name, err)) < 0)
                goto fail;
        v = json_object_get(root, "uuid");
        if (v && !json_is_string(v)) {
                r = bad(err, "uuid", "a string");
                goto fail;
        }
        if (v && (r = state_set_str(&s->uuid, json_string_value(v))) < 0)
                goto fail;
        if ((r = get_req_str(root, "image", &s->image, err)) < 0)
                goto fail;
        if ((r = get_uint(root, "vcpus", true, UINT32_MAX, &u, NULL, err)) < 0)
                goto fail;
        s->vcpus = (uint32_t)u;
        if ((r = get_uint(root, "memory_mb", true, UINT64_MAX >> 1, &s->memory_mb, NULL, err)) < 0)
                goto fail;
        if ((r = get_uint(root, "vsock_cid", true, UINT32_MAX, &u, NULL, err)) < 0)
                goto fail;
        s->vsock_cid = (uint32_t)u;
        if ((r = get_req_str(root, "created_at", &s->created_at, err)) < 0 ||
            (r = get_opt_str(root, "backend", &s->backend, err)) < 0 ||
            (r = get_opt_str(root, "remote_id", &s->remote_id, err)) < 0 ||
            (r = get_opt_str(root, "remote_namespace", &s->remote_namespace, err)) < 0 ||
            (r = get_uint(root, "ttl_seconds", false, UINT64_MAX >> 1, &s->ttl_seconds, &s->has_ttl,
                          err)) < 0 ||
            (r = get_opt_str(root, "expires_at", &s->expires_at, err)) < 0 ||
            (r = get_ports(root, s, err)) < 0 ||
            (r = get_bool(root, "ssh_enabled", &s->ssh_enabled, err)) < 0 ||
            (r = get_opt_port(root, "ssh_host_port", &s->ssh_host_port, err)) < 0 ||
            (r = get_strv(root, "volumes", &s->volumes, err)) < 0 ||
            (r = get_opt_str(root, "agent", &s->agent, err)) < 0 ||
            (r = get_strv(root, "secret_bindings", &s->secret_bindings, err)) < 0 ||
            (r = get_strv(root, "secret_files", &s->secret_files, err)) < 0 ||
            (r = get_bool(root, "placeholder_secrets", &s->placeholder_secrets, err)) < 0 ||
            (r = get_opt_port(root, "proxy_port", &s->proxy_port, err)) < 0 ||
            (r = get_str_map(root, "secret_mappings", &s->secret_mappings, err)) < 0 ||
            (r = get_opt_str(root, "init_script", &s->init_script, err)) < 0 ||
            (r = get_opt_str(root, "created_from_template", &s->created_from_template, err)) < 0 ||
            (r = get_opt_str(root, "template_help_text", &s->template_help_text, err)) < 0 ||
            (r = get_str_map(root, "labels", &s->labels, err)) < 0 ||
            (r = get_opt_str(root, "description", &s->description, err)) < 0 ||
            (r = get_opt_str(root, "last_activity_at", &s->last_activity_at, err)) < 0 ||
            (r = get_opt_str(root, "archived_at", &s->archived_at, err)) < 0 ||
            (r = get_opt_str(root, "archived_reason", &s->archived_reason, err)) < 0 ||
            (r = get_lifecycle(root, &s->lifecycle, err)) < 0 || (r = parse_ext(root, s, err)) < 0)
                goto fail;
        json_object_foreach (root, k, v) {
                if (!in_list(k, known_keys, ARRAY_SIZE(known_keys), &hint) &&
                    json_object_set(s->extra, k, v) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = s;
        return 0;
fail:
        state_free(s);
        return r == -ENOMEM ? ak_err_oom(err) : r;
}

/* ---- formatting ---- */

static json_t *str_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *port_or_null(int32_t p)
{
        return p >= 0 ? json_integer(p) : json_null();
}

int state_format(const struct sandbox_state *s, char **ret)
{
        json_t *o CLEANUP(json_decrefp) = json_object();
        json_t *ports, *ext;
        const char *k;
        json_t *v;
        char *text;

        if (!o)
                return -ENOMEM;
        json_object_set_new(o, "name", json_string(s->name));
        json_object_set_new(o, "uuid", json_string(s->uuid ? s->uuid : ""));
        json_object_set_new(o, "image", json_string(s->image));
        json_object_set_new(o, "vcpus", json_integer(s->vcpus));
        json_object_set_new(o, "memory_mb", json_integer((json_int_t)s->memory_mb));
        json_object_set_new(o, "vsock_cid", json_integer(s->vsock_cid));
        json_object_set_new(o, "created_at", json_string(s->created_at));
        json_object_set_new(o, "backend", str_or_null(s->backend));
        json_object_set_new(o, "remote_id", str_or_null(s->remote_id));
        json_object_set_new(o, "remote_namespace", str_or_null(s->remote_namespace));
        json_object_set_new(o, "ttl_seconds",
                            s->has_ttl ? json_integer((json_int_t)s->ttl_seconds) : json_null());
        json_object_set_new(o, "expires_at", str_or_null(s->expires_at));
        ports = json_array();
        for (size_t i = 0; ports && i < s->n_ports; i++)
                json_array_append_new(ports,
                                      json_pack("{s:o,s:i,s:s}", "host_port",
                                                port_or_null(s->ports[i].host_port),
                                                "container_port", (int)s->ports[i].container_port,
                                                "protocol", s->ports[i].udp ? "udp" : "tcp"));
        json_object_set_new(o, "ports", ports);
        json_object_set_new(o, "ssh_enabled", json_boolean(s->ssh_enabled));
        json_object_set_new(o, "ssh_host_port", port_or_null(s->ssh_host_port));
        json_object_set_new(o, "volumes", strv_json_array(s->volumes));
        json_object_set_new(o, "agent", str_or_null(s->agent));
        json_object_set_new(o, "secret_bindings", strv_json_array(s->secret_bindings));
        json_object_set_new(o, "secret_files", strv_json_array(s->secret_files));
        json_object_set_new(o, "placeholder_secrets", json_boolean(s->placeholder_secrets));
        json_object_set_new(o, "proxy_port", port_or_null(s->proxy_port));
        if (json_object_size(s->secret_mappings))
                json_object_set(o, "secret_mappings", s->secret_mappings);
        json_object_set_new(o, "init_script", str_or_null(s->init_script));
        json_object_set_new(o, "created_from_template", str_or_null(s->created_from_template));
        json_object_set_new(o, "template_help_text", str_or_null(s->template_help_text));
        if (json_object_size(s->labels))
                json_object_set(o, "labels", s->labels);
        json_object_set_new(o, "description", str_or_null(s->description));
        json_object_set_new(o, "last_activity_at", str_or_null(s->last_activity_at));
        json_object_set_new(o, "archived_at", str_or_null(s->archived_at));
        json_object_set_new(o, "archived_reason", str_or_null(s->archived_reason));
        if (s->lifecycle.present) {
                json_t *lp = json_object();
                if (s->lifecycle.has_stop)
                        json_object_set_new(lp, "auto_stop_after_seconds",
                                            json_integer((json_int_t)s->lifecycle.stop_after));
                if (s->lifecycle.has_archive)
                        json_object_set_new(lp, "auto_archive_after_seconds",
                                            json_integer((json_int_t)s->lifecycle.archive_after));
                if (s->lifecycle.has_delete)
                        json_object_set_new(lp, "auto_delete_after_seconds",
                                            json_integer((json_int_t)s->lifecycle.delete_after));
                json_object_set_new(o, "lifecycle_policy", lp);
        }

        ext = json_object();
        if (!ext)
                return -ENOMEM;
        if (s->ext_backend)
                json_object_set_new(ext, "backend", json_string(s->ext_backend));
        if (s->profile)
                json_object_set_new(ext, "profile", json_string(s->profile));
        if (s->network >= 0)
                json_object_set_new(ext, "network", json_string(net_mode_name(s->network)));
        if (s->network_policy)
                json_object_set(ext, "network_policy", s->network_policy);
        if (s->mount_cwd >= 0)
                json_object_set_new(ext, "mount_cwd", json_boolean(s->mount_cwd));
        if (s->work_dir)
                json_object_set_new(ext, "work_dir", json_string(s->work_dir));
        if (s->env && s->env[0])
                json_object_set_new(ext, "env", strv_json_array(s->env));
        if (!cmd_policy_empty(&(struct cmd_policy){s->commands.allow, s->commands.block,
                                                   s->commands.allowlist_only})) {
                json_t *c = json_object();
                if (s->commands.allow)
                        json_object_set_new(c, "allow", strv_json_array(s->commands.allow));
                if (s->commands.block)
                        json_object_set_new(c, "block", strv_json_array(s->commands.block));
                json_object_set_new(c, "allowlist_only", json_boolean(s->commands.allowlist_only));
                json_object_set_new(ext, "commands", c);
        }
        if (s->seccomp)
                json_object_set_new(ext, "seccomp", json_string(s->seccomp));
        if (s->compat_mode)
                json_object_set_new(ext, "compat_mode", json_string(s->compat_mode));
        if (s->source_url)
                json_object_set_new(ext, "source_url", json_string(s->source_url));
        if (s->source_ref)
                json_object_set_new(ext, "source_ref", json_string(s->source_ref));
        if (s->network_ca_file)
                json_object_set_new(ext, "network_ca_file", json_string(s->network_ca_file));
        if (s->secret_body && s->secret_body[0])
                json_object_set_new(ext, "secret_body", strv_json_array(s->secret_body));
        if (s->n_files) {
                json_t *a = json_array();
                for (size_t i = 0; a && i < s->n_files; i++)
                        json_array_append_new(
                            a, json_pack("{s:s,s:s,s:i}", "source", s->files[i].source, "dest",
                                         s->files[i].dest, "mode", (int)s->files[i].mode));
                json_object_set_new(ext, "files", a);
        }
        if (s->files_dir)
                json_object_set_new(ext, "files_dir", json_string(s->files_dir));
        if (s->disk_mb)
                json_object_set_new(ext, "disk_mb", json_integer((json_int_t)s->disk_mb));
        json_object_foreach (s->ext_extra, k, v)
                json_object_set(ext, k, v);
        if (json_object_size(ext))
                json_object_set_new(o, STATE_EXT_KEY, ext);
        else
                json_decref(ext);

        json_object_foreach (s->extra, k, v)
                json_object_set(o, k, v);

        text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}
