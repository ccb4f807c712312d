// SPDX-License-Identifier: Apache-2.0
/* The API's operations on sandboxes' records and lifecycle: list, create, get (by name or uuid),
 * patch, delete, start, stop, extend, resize, recover. Starts run in a worker (worker.h). */
#include "api-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/profile.h"
#include "core/source.h"
#include "core/validate.h"
#include "server/worker.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/strv.h"
#include "shared/time-util.h"

struct label_filters {
        json_t *filters;
        bool bad;
};

/* ?label=key:value, repeatable: every one must match. */
static void add_label_filter(void *ctx, const char *value)
{
        struct label_filters *l = ctx;
        const char *colon = strchr(value, ':');
        cleanup_free char *k = NULL;

        if (!colon) {
                l->bad = true;
                return;
        }
        k = strndup(value, (size_t)(colon - value));
        if (k)
                json_object_set_new(l->filters, k, json_string(colon + 1));
}

int api_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_json json_t *filters = json_object();
        struct label_filters lf = {filters, false};
        cleanup_state_list struct state_list l = {0};
        json_t *arr;
        int e;

        if (a->query)
                a->query->each(a->query->ctx, "label", add_label_filter, &lf);
        if (lf.bad)
                return api_fail(r, 400, "label filters are key:value");
        e = manager_list(c->m, NULL, NULL, &l);
        if (e < 0)
                return api_fail(r, 500, "cannot list sandboxes: %s", strerror(-e));
        arr = json_array();
        for (size_t i = 0; i < l.n; i++)
                if (!json_object_size(filters) || state_labels_match(l.items[i], filters))
                        json_array_append_new(arr, manager_info_json(c->m, l.items[i]));
        return api_ok(r, 200, arr);
}

int api_get(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        return api_info_reply(c, name, 200, r);
}

int api_get_by_uuid(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *uuid = a->id;
        cleanup_state_list struct state_list l = {0};
        int e;

        if (strlen(uuid) != 36)
                return api_fail(r, 400, "invalid uuid '%s'", uuid);
        e = manager_list(c->m, NULL, NULL, &l);
        if (e < 0)
                return api_fail(r, 500, "cannot list sandboxes: %s", strerror(-e));
        for (size_t i = 0; i < l.n; i++)
                if (strcasecmp(l.items[i]->uuid, uuid) == 0) {
                        api_ok(r, 200, manager_info_json(c->m, l.items[i]));
                        return 0;
                }
        return api_fail(r, 404, "No sandbox with uuid '%s'", uuid);
}

static int start_in_worker(struct manager *m, void *ctx, struct ak_err *err)
{
        return manager_start(m, ctx, err);
}

static int parse_lifecycle(json_t *v, struct lifecycle_policy *p, struct api_result *r)
{
        static const char *const keys[] = {"auto_stop_after_seconds", "auto_archive_after_seconds",
                                           "auto_delete_after_seconds"};
        bool *has[] = {&p->has_stop, &p->has_archive, &p->has_delete};
        uint64_t *val[] = {&p->stop_after, &p->archive_after, &p->delete_after};

        memset(p, 0, sizeof(*p));
        if (!json_is_object(v))
                return api_fail(r, 400, "lifecycle must be an object or null");
        p->present = true;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                json_t *x = json_object_get(v, keys[i]);
                if (!x || json_is_null(x))
                        continue;
                if (!json_is_integer(x) || json_integer_value(x) < 0)
                        return api_fail(r, 400, "%s must be a non-negative integer", keys[i]);
                *has[i] = true;
                *val[i] = (uint64_t)json_integer_value(x);
        }
        return 0;
}

int api_create(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *body = a->body;
        struct create_opts o = {.network = -1, .mount_cwd = 0};
        cleanup_strv char **env = NULL, **volumes = NULL, **ports_s = NULL, **secrets = NULL,
                          **secret_files = NULL, **secret_body = NULL;
        struct port_spec ports[API_PORTS_MAX];
        struct lifecycle_policy lc;
        struct ak_err err = {0};
        json_t *labels = json_object_get(body, "labels"), *lcj = json_object_get(body, "lifecycle");
        uint64_t vcpus = 0, mem = 0, disk = 0, ttl = 0;
        bool bad = false, has_lc = false;
        const char *name, *image, *profile, *ttl_s;
        int network = -1, placeholder = -1, r_create;
        json_t *mappings;

        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        name = api_opt_string(body, "name", r, &bad);
        image = api_opt_string(body, "image", r, &bad);
        profile = api_opt_string(body, "profile", r, &bad);
        o.description = api_opt_string(body, "description", r, &bad);
        o.agent = api_opt_string(body, "agent", r, &bad);
        o.init_script = api_opt_string(body, "init_script", r, &bad);
        o.backend = api_opt_string(body, "backend", r, &bad);
        ttl_s = api_opt_string(body, "ttl", r, &bad);
        if (bad)
                return -1;
        if (!name)
                return api_fail(r, 400, "name is required");
        if (api_want_name(name, r) < 0)
                return -1;
        if (profile && !profile_get(profile))
                return api_fail(r, 400,
                                "invalid profile '%s': use permissive, moderate or restrictive",
                                profile);
        if (api_opt_uint(body, "vcpus", 64, &vcpus, r) < 0 ||
            api_opt_uint(body, "memory_mb", 1u << 20, &mem, r) < 0 ||
            api_opt_disk(body, &disk, r) < 0 || api_opt_network(body, &network, r) < 0 ||
            api_opt_compat(body, &o.compat_mode, r) < 0 || api_env_of(body, &env, r) < 0 ||
            api_string_array(body, "volumes", false, 32, &volumes, r) < 0 ||
            api_string_array(body, "ports", false, ARRAY_SIZE(ports), &ports_s, r) < 0 ||
            api_string_array(body, "secrets", false, 64, &secrets, r) < 0 ||
            api_string_array(body, "secret_files", false, 64, &secret_files, r) < 0 ||
            api_string_array(body, "secret_body", false, 64, &secret_body, r) < 0)
                return -1;
        o.source_url = api_opt_string(body, "source_url", r, &bad);
        o.source_ref = api_opt_string(body, "source_ref", r, &bad);
        if (bad)
                return -1;
        if (o.source_ref && !o.source_url)
                return api_fail(r, 400, "source_ref requires source_url");
        if (api_opt_bool(body, "placeholder_secrets", &placeholder, r) < 0)
                return -1;
        mappings = json_object_get(body, "secret_mappings");
        if (mappings && !json_is_null(mappings) && !json_is_object(mappings))
                return api_fail(r, 400, "secret_mappings must be an object of strings");
        if (ttl_s && parse_ttl(ttl_s, true, &ttl, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        if (lcj && !json_is_null(lcj)) {
                if (parse_lifecycle(lcj, &lc, r) < 0)
                        return -1;
                has_lc = true;
        }
        if (labels && !json_is_null(labels) && validate_labels(labels, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        for (size_t i = 0; ports_s && ports_s[i]; i++)
                if (parse_port_spec(ports_s[i], &ports[i], &err) < 0)
                        return api_fail(r, 400, "%s", ak_err_msg(&err));
        o.name = name;
        o.image = image;
        o.profile = profile;
        o.vcpus = (uint32_t)vcpus;
        o.memory_mb = mem;
        o.disk_mb = disk;
        o.network = network;
        o.network_policy = json_object_get(body, "network_policy");
        if (json_is_null(o.network_policy))
                o.network_policy = NULL;
        o.env = env;
        o.volumes = volumes;
        o.ports = ports;
        o.n_ports = strv_len(ports_s);
        o.labels = labels && !json_is_null(labels) ? labels : NULL;
        o.has_ttl = ttl_s != NULL;
        o.ttl_seconds = ttl;
        o.secrets = secrets;
        o.secret_files = secret_files;
        o.secret_body = secret_body;
        o.placeholder_secrets = placeholder > 0;
        o.secret_mappings = json_is_object(mappings) ? mappings : NULL;
        r_create = manager_create(c->m, &o, &err);
        /* "KEY=value:host" held a value: wiped in the copy and in the body */
        for (char **b = secrets; b && *b; b++)
                explicit_bzero(*b, strlen(*b));
        {
                json_t *arr = json_object_get(body, "secrets"), *v;
                size_t i;
                json_array_foreach (arr, i, v)
                        if (json_is_string(v))
                                explicit_bzero((char *)json_string_value(v), json_string_length(v));
        }
        if (r_create < 0)
                return api_fail_err(r, &err);
        if ((has_lc && manager_set_lifecycle(c->m, name, &lc, &err) < 0) ||
            worker_call(start_in_worker, (void *)name, &err) < 0 ||
            (o.source_url && manager_clone_source(c->m, name, &err) < 0)) {
                struct ak_err ignore = {0};
                int status = api_status_of(err.code);
                (void)manager_remove(c->m, name, &ignore);
                /* a failed clone: upstream's 500 "Failed to clone <url>: <e>" */
                return api_fail(r, status == 409 || status == 404 || err.code == EIO ? 500 : status,
                                "%s", ak_err_msg(&err));
        }
        return api_info_reply(c, name, 201, r);
}

int api_patch(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        json_t *body = a->body;
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        json_t *v;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        if ((v = json_object_get(body, "labels")) && !json_is_null(v) &&
            manager_set_labels(c->m, name, v, &err) < 0)
                return api_fail_err(r, &err);
        if ((v = json_object_get(body, "description"))) {
                if (!json_is_null(v) && !json_is_string(v))
                        return api_fail(r, 400, "description must be a string or null");
                if (manager_set_description(c->m, name, json_string_value(v), &err) < 0)
                        return api_fail_err(r, &err);
        }
        if ((v = json_object_get(body, "lifecycle"))) {
                struct lifecycle_policy lc;
                if (!json_is_null(v) && parse_lifecycle(v, &lc, r) < 0)
                        return -1;
                if (manager_set_lifecycle(c->m, name, json_is_null(v) ? NULL : &lc, &err) < 0)
                        return api_fail_err(r, &err);
        }
        return api_info_reply(c, name, 200, r);
}

int api_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        cleanup_state struct sandbox_state *st = NULL;
        struct ak_err err = {0};

        if (api_want_name(name, r) < 0)
                return -1;
        if (manager_get(c->m, name, &st, NULL) == 0)
                api_set_backend(r, manager_backend_name(st)); /* a metric label */
        if (manager_remove(c->m, name, &err) < 0) {
                if (err.code == ENOENT)
                        return api_fail(r, 404, "Sandbox '%s' not found", name);
                return api_fail_err(r, &err);
        }
        return api_ok_text(r, "Sandbox removed");
}

int api_start(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        int e;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        e = worker_call(start_in_worker, (void *)name, &err);
        if (e == -EALREADY)
                return api_ok_text(r, "Sandbox already running");
        if (e < 0)
                return api_fail_err(r, &err);
        return api_ok_text(r, "Sandbox started");
}

int api_stop(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (manager_stop(c->m, name, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok_text(r, "Sandbox stopped");
}

static int pause_reply(struct api_ctx *c, const struct api_args *a, bool pause,
                       struct api_result *r)
{
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};

        if (api_load(c, a->name, &st, r) < 0)
                return -1;
        state_free(st);
        if (manager_pause(c->m, a->name, pause, &err) < 0)
                /* upstream: a backend without full-state pause is 422 */
                return api_fail(r, err.code == ENOTSUP ? 422 : api_status_of(err.code), "%s",
                                ak_err_msg(&err));
        return api_ok_text(r, pause ? "Sandbox paused" : "Sandbox resumed");
}

int api_pause(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        return pause_reply(c, a, true, r);
}

int api_resume(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        return pause_reply(c, a, false, r);
}

int api_extend(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        json_t *body = a->body;
        const char *by = json_string_value(json_object_get(body, "by"));
        struct sandbox_state *st = NULL;
        char expiry[RFC3339_MAX];
        struct ak_err err = {0};
        uint64_t secs = 3600;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (by && parse_ttl(by, false, &secs, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        if (manager_extend_ttl(c->m, name, secs, expiry, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(r, 200, json_pack("{s:s}", "expires_at", expiry));
}

struct resize_req {
        const char *name;
        uint32_t vcpus;
        uint64_t mem;
};

static int resize_in_worker(struct manager *m, void *ctx, struct ak_err *err)
{
        struct resize_req *z = ctx;
        enum resize_how how;
        return manager_resize(m, z->name, z->vcpus, z->mem, &how, err);
}

int api_resize(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        json_t *body = a->body;
        struct resize_req z = {name, 0, 0};
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        uint64_t v = 0;

        if (api_load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (api_opt_uint(body, "vcpus", 64, &v, r) < 0 ||
            api_opt_uint(body, "memory_mb", 1u << 20, &z.mem, r) < 0)
                return -1;
        z.vcpus = (uint32_t)v;
        /* a backend that cannot resize in place restarts the sandbox: a worker's job */
        if (worker_call(resize_in_worker, &z, &err) < 0)
                return api_fail_err(r, &err);
        return api_info_reply(c, name, 200, r);
}

int api_recover(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        struct ak_err err = {0};

        if (api_want_name(name, r) < 0)
                return -1;
        if (manager_recover(c->m, name, &err) < 0)
                return err.code == ENOENT ? api_fail(r, 404, "Sandbox '%s' not found", name)
                                          : api_fail_err(r, &err);
        return api_info_reply(c, name, 200, r);
}
