// SPDX-License-Identifier: Apache-2.0
/*
 * The permission grant operations (api.h), over the process's store (core/permissions.h): the
 * HTTP routes /permissions* and MCP's permission_* tools, and the check MCP makes before
 * sandbox_create and sandbox_remove.
 */
#include <errno.h>
#include <string.h>

#include "server/api.h"
#include "shared/json-util.h"

/* a request_id the client echoes back: only its type and size matter */
#define REQUEST_ID_MAX 128

static int store_of(struct api_ctx *c, struct perm_store **ret, struct api_result *r)
{
        *ret = c->opts ? c->opts->perms : NULL;
        return *ret ? 0 : api_fail(r, 500, "no permission store in this process");
}

/* The body's kind (required), scope (optional) and sandbox (optional string or null). */
static int parse(json_t *body, bool with_scope, int *ret_kind, int *ret_scope,
                 const char **ret_sandbox, struct api_result *r)
{
        json_t *kind = json_object_get(body, "kind"), *scope = json_object_get(body, "scope"),
               *sb = json_object_get(body, "sandbox");

        if (!json_is_object(body))
                return api_fail(r, 400, "a JSON object is required");
        if (!json_is_string(kind) || (*ret_kind = perm_kind_parse(json_string_value(kind))) < 0)
                return api_fail(r, 400,
                                "kind must be one of sandbox_remove, sandbox_create, "
                                "network_access, mount_directory, sudo_exec, file_delete");
        if (with_scope) {
                if (scope && !json_is_null(scope) && !json_is_string(scope))
                        return api_fail(r, 400, "scope must be once, session or always");
                *ret_scope = perm_scope_parse(json_string_value(scope));
                if (*ret_scope < 0)
                        return api_fail(r, 400, "scope must be once, session or always");
        }
        if (sb && !json_is_null(sb) && !json_is_string(sb))
                return api_fail(r, 400, "sandbox must be a string");
        *ret_sandbox = json_string_value(sb);
        if (*ret_sandbox && !**ret_sandbox)
                *ret_sandbox = NULL;
        if (*ret_sandbox && strlen(*ret_sandbox) > PERM_SANDBOX_MAX)
                return api_fail(r, 400, "sandbox is at most %d characters", PERM_SANDBOX_MAX);
        return 0;
}

int api_permissions_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        struct perm_store *s;

        (void)a;
        if (store_of(c, &s, r) < 0)
                return -1;
        r->data = perm_list(s);
        if (!r->data)
                return api_fail(r, 500, "out of memory");
        r->status = 200;
        return 0;
}

int api_permission_grant(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *granted = json_object_get(a->body, "granted"),
               *req = json_object_get(a->body, "request_id");
        char id[PERM_ID_LEN + 1];
        struct ak_err err = {0};
        struct perm_store *s;
        const char *sandbox;
        int kind, scope, e;

        if (parse(a->body, true, &kind, &scope, &sandbox, r) < 0 || store_of(c, &s, r) < 0)
                return -1;
        if (granted && !json_is_boolean(granted))
                return api_fail(r, 400, "granted must be a boolean");
        if (req && !json_is_null(req) &&
            (!json_is_string(req) || strlen(json_string_value(req)) > REQUEST_ID_MAX))
                return api_fail(r, 400, "request_id must be a string of at most %d characters",
                                REQUEST_ID_MAX);
        if (granted && json_is_false(granted)) {
                r->data =
                    json_pack("{s:b,s:s}", "granted", 0, "message", "Permission denied by user.");
                r->status = 200;
                return r->data ? 0 : api_fail(r, 500, "out of memory");
        }
        e = perm_grant(s, (enum perm_kind)kind, (enum perm_scope)scope, sandbox, id, &err);
        if (e < 0)
                return api_fail(r,
                                e == -EINVAL   ? 400
                                : e == -ENOSPC ? 409
                                               : 500,
                                "%s", ak_err_msg(&err));
        r->data = json_pack("{s:b,s:s,s:s,s:s}", "granted", 1, "grant_id", id, "kind",
                            perm_kind_name((enum perm_kind)kind), "scope",
                            perm_scope_name((enum perm_scope)scope));
        r->status = 200;
        return r->data ? 0 : api_fail(r, 500, "out of memory");
}

int api_permission_revoke(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        struct ak_err err = {0};
        struct perm_store *s;
        int e;

        if (!a->id) /* the request's own fault first */
                return api_fail(r, 400, "id is required");
        if (store_of(c, &s, r) < 0)
                return -1;
        e = perm_revoke(s, a->id, &err);
        if (e < 0)
                return api_fail(r, e == -ENOENT ? 404 : 500, "%s", ak_err_msg(&err));
        r->data = json_pack("{s:b,s:s}", "revoked", 1, "id", a->id);
        r->status = 200;
        return r->data ? 0 : api_fail(r, 500, "out of memory");
}

int api_permission_check(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        struct perm_store *s;
        const char *sandbox;
        int kind, scope;
        bool ok;

        if (parse(a->body, false, &kind, &scope, &sandbox, r) < 0 || store_of(c, &s, r) < 0)
                return -1;
        ok = perm_check(s, (enum perm_kind)kind, sandbox, false);
        r->data =
            json_pack("{s:b,s:s,s:o}", "allowed", ok, "kind", perm_kind_name((enum perm_kind)kind),
                      "sandbox", sandbox ? json_string(sandbox) : json_null());
        r->status = 200;
        return r->data ? 0 : api_fail(r, 500, "out of memory");
}

int api_permission_require(struct api_ctx *c, enum perm_kind kind, const char *sandbox,
                           struct api_result *r)
{
        char req[PERM_REQUEST_ID_LEN + 1];
        struct perm_store *s;

        if (store_of(c, &s, r) < 0)
                return -1;
        if (perm_check(s, kind, sandbox, true))
                return 0;
        perm_request_id(req);
        if (sandbox)
                return api_fail(r, 403,
                                "Permission required: %s for sandbox '%.128s'. Grant with "
                                "permission_grant tool. Request ID: %s",
                                perm_kind_name(kind), sandbox, req);
        return api_fail(r, 403,
                        "Permission required: %s for all sandboxes. Grant with permission_grant "
                        "tool. Request ID: %s",
                        perm_kind_name(kind), req);
}
