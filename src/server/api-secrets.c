// SPDX-License-Identifier: Apache-2.0
/*
 * The vault's routes, as upstream's (reference/upstream-secrets.md §9): GET /secrets (names and
 * when they were set, never a value), POST /secrets {"name", "value"}, DELETE /secrets/{name}.
 * No reply and no error message ever holds a value; the request's copy of it is wiped once
 * stored.
 */
#include "api-private.h"

#include <errno.h>
#include <string.h>

#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/strv.h"

static int vault_backend_or_fail(enum vault_backend *b, struct api_result *r)
{
        struct ak_err err = {0};

        if (vault_backend_default(b, &err) < 0)
                return api_fail(r, 500, "%s", ak_err_msg(&err));
        return 0;
}

int api_secrets_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_json json_t *all = NULL;
        struct ak_err err = {0};
        enum vault_backend b;
        json_t *out, *v;
        const char *k;

        (void)c;
        (void)a;
        if (vault_backend_or_fail(&b, r) < 0)
                return -1;
        if (vault_list(b, &all, &err) < 0)
                return api_fail(r, 500, "Failed to list secrets: %s", ak_err_msg(&err));
        out = json_array();
        json_object_foreach (all, k, v) {
                json_t *e =
                    json_pack("{s:s,s:O}", "name", k, "created_at", json_object_get(v, "set_at"));
                if (e && json_object_get(v, "hosts"))
                        json_object_set(e, "hosts", json_object_get(v, "hosts"));
                json_array_append_new(out, e);
        }
        return api_ok(r, 200, out);
}

int api_secret_set(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *body = a->body, *name = json_object_get(body, "name");
        json_t *value = json_object_get(body, "value");
        cleanup_strv char **hosts = NULL;
        struct ak_err err = {0};
        enum vault_backend b;
        int ret;

        (void)c;
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        if (!json_is_string(name) || !json_string_length(name))
                return api_fail(r, 400, "name is required");
        if (!json_is_string(value))
                return api_fail(r, 400, "value is required (a string)");
        if (api_string_array(body, "hosts", false, VAULT_HOSTS_MAX, &hosts, r) < 0)
                return -1;
        if (vault_backend_or_fail(&b, r) < 0)
                return -1;
        ret = vault_set(b, json_string_value(name), json_string_value(value),
                        json_string_length(value), &err);
        /* the body's copy of the value: wiped, then freed with the body */
        explicit_bzero((char *)json_string_value(value), json_string_length(value));
        if (ret >= 0 && hosts)
                ret = vault_set_hosts(b, json_string_value(name), hosts, &err);
        if (ret < 0)
                return api_fail(r, ret == -EINVAL || ret == -EFBIG ? 400 : 500,
                                "Failed to store secret: %s", ak_err_msg(&err));
        return api_ok_text(r, "Secret stored");
}

int api_secret_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        struct ak_err err = {0};
        enum vault_backend b;

        (void)c;
        if (vault_backend_or_fail(&b, r) < 0)
                return -1;
        if (vault_delete(b, a->name, &err) < 0)
                return api_fail(r, 404, "Failed to delete secret: %s", ak_err_msg(&err));
        return api_ok_text(r, "Secret deleted");
}
