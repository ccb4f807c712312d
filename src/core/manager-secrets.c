// SPDX-License-Identifier: Apache-2.0
/*
 * The manager's part of secrets (core/secrets.h, docs/secrets.md): what a sandbox's record holds
 * of its bindings (names and hosts, never a value), the placeholders and proxy grants a start
 * plans, secret files written into a started sandbox, and upstream's records migrated.
 */
#include "manager-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/secrets.h"
#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/strv.h"

/* The grant of key in grants (an array of {"name", "hosts", "header", "prefix", "placeholder"}),
 * or NULL. */
static json_t *find_grant(json_t *grants, const char *key)
{
        size_t i;
        json_t *g;

        json_array_foreach (grants, i, g)
                if (streq(json_string_value(json_object_get(g, "name")), key))
                        return g;
        return NULL;
}

/* A start's secrets: every bound KEY gets a fresh placeholder in the environment (one per key,
 * whatever its hosts), and *ret_grants what the egress proxy will need of them, values excepted.
 * A binding whose secret is gone from the vault is skipped with a warning, as upstream. */
int plan_secrets(struct manager *m, const struct sandbox_state *st, char **env, size_t *k,
                 json_t **ret_grants, struct ak_err *err)
{
        cleanup_json json_t *grants = json_array();
        enum vault_backend vb;
        int r;

        if (!grants)
                return ak_err_oom(err);
        if ((r = vault_backend_default(&vb, err)) < 0)
                return r;
        for (char **s = st->secret_bindings; s && *s; s++) {
                cleanup_secret_binding struct secret_binding b = {0};
                char ph[SECRET_PLACEHOLDER_LEN + 1];
                json_t *g;
                /* a record is input read back from disk: parsed again, a bad one refused */
                if ((r = secret_binding_parse(*s, &b, err)) < 0)
                        return ak_err_prefix(err, "sandbox '%s'", st->name);
                if (b.value)
                        return ak_err_set(err, EINVAL,
                                          "sandbox '%s': its record holds a secret's value; "
                                          "remove the sandbox and create it again",
                                          st->name);
                g = find_grant(grants, b.key);
                {
                        /* a record is read back: its host is checked against the secret's list
                         * again (the list may have changed, the record may be forged) */
                        struct ak_err e = {0};
                        if (vault_has(vb, b.key, &e) == 1 &&
                            vault_host_allowed(vb, b.key, b.host, &e) != 1) {
                                manager_notify(m, "warning: %s; skipping that binding",
                                               ak_err_msg(&e));
                                continue;
                        }
                }
                if (!g) {
                        struct ak_err e = {0};
                        if (vault_has(vb, b.key, &e) != 1) {
                                manager_notify(
                                    m,
                                    "warning: secret '%s' is not in the vault (backend %s), "
                                    "skipping its binding",
                                    b.key, vault_backend_name(vb));
                                continue;
                        }
                        secret_placeholder(ph);
                        g = json_pack("{s:s,s:[],s:s,s:s,s:s}", "name", b.key, "hosts", "header",
                                      b.header, "prefix", b.prefix, "placeholder", ph);
                        if (!g || json_array_append_new(grants, g) < 0 ||
                            asprintf(&env[(*k)++], "%s=%s", b.key, ph) < 0)
                                return ak_err_oom(err);
                }
                if (json_array_append_new(json_object_get(g, "hosts"), json_string(b.host)) < 0)
                        return ak_err_oom(err);
        }
        if (strv_len(st->secret_files) &&
            asprintf(&env[(*k)++], "%s=%s", SECRET_FILES_ENV, SECRET_FILES_DIR) < 0)
                return ak_err_oom(err);
        *ret_grants = TAKE_PTR(grants);
        return 0;
}

/* The secrets of a new sandbox into its record: bindings in their value-less form, each naming
 * a secret the vault has (or an inline value, which manager_create stores), secret files
 * likewise, [secrets]' mappings. */
int secrets_to_state(const struct create_opts *o, struct sandbox_state *st, struct ak_err *err)
{
        cleanup_strv char **inline_keys = NULL;
        enum vault_backend vb;
        const char *k;
        json_t *v;
        int r;

        if (strv_len(o->secrets) > SECRET_BINDINGS_MAX ||
            strv_len(o->secret_files) > SECRET_BINDINGS_MAX)
                return ak_err_set(err, EINVAL, "at most %d secret bindings and %d secret files",
                                  SECRET_BINDINGS_MAX, SECRET_BINDINGS_MAX);
        if (!strv_len(o->secrets) && !strv_len(o->secret_files) && !o->placeholder_secrets &&
            !json_object_size(o->secret_mappings))
                return 0;
        if ((r = vault_backend_default(&vb, err)) < 0)
                return r;
        for (char *const *s = o->secrets; s && *s; s++) {
                cleanup_secret_binding struct secret_binding b = {0};
                cleanup_free char *f = NULL;
                bool dup = false;
                if ((r = secret_binding_parse(*s, &b, err)) < 0)
                        return r;
                /* where the secret may go, if its owner said (a stored one: an inline value
                 * that is new has no list yet) */
                if ((!b.value || vault_has(vb, b.key, NULL) == 1) &&
                    (r = vault_host_allowed(vb, b.key, b.host, err)) <= 0)
                        return r < 0 ? r : -EPERM;
                if (b.value) {
                        if (strv_push(&inline_keys, b.key) < 0)
                                return ak_err_oom(err);
                } else if ((r = vault_has(vb, b.key, err)) < 0) {
                        return r;
                } else if (r == 0) {
                        return ak_err_set(err, EINVAL,
                                          "secret '%s' is not in the vault (backend %s); store it "
                                          "first with: agentkernel secret set %s",
                                          b.key, vault_backend_name(vb), b.key);
                }
                if (!(f = secret_binding_format(&b)))
                        return ak_err_oom(err);
                for (char **e = st->secret_bindings; e && *e && !dup; e++)
                        dup = streq(*e, f);
                if (!dup && strv_consume(&st->secret_bindings, TAKE_PTR(f)) < 0)
                        return ak_err_oom(err);
        }
        for (char *const *s = o->secret_files; s && *s; s++) {
                cleanup_free char *key = NULL, *path = NULL;
                bool pending = false;
                if ((r = secret_file_parse(*s, &key, &path, err)) < 0)
                        return r;
                for (char **e = inline_keys; e && *e; e++)
                        pending = pending || streq(*e, key);
                if (!pending && (r = vault_has(vb, key, err)) <= 0)
                        return r < 0 ? r
                                     : ak_err_set(err, EINVAL,
                                                  "secret '%s' is not in the vault (backend %s); "
                                                  "store it first with: agentkernel secret set %s",
                                                  key, vault_backend_name(vb), key);
                if (strv_push(&st->secret_files, *s) < 0)
                        return ak_err_oom(err);
        }
        st->placeholder_secrets = o->placeholder_secrets;
        json_object_foreach (o->secret_mappings, k, v) {
                if (vault_name_check(k, err) < 0 || !json_is_string(v))
                        return ak_err_set(err, EINVAL, "[secrets] %s: expected a host name", k);
                if (json_object_set(st->secret_mappings, k, v) < 0)
                        return ak_err_oom(err);
        }
        return 0;
}

/* A record upstream wrote may hold "KEY=value:host" (in clear, often world-readable): before
 * anything else at start, the value goes to the vault (only where it has none, or the same) and
 * the record keeps "KEY:host", saved at once. */
int secrets_migrate(struct manager *m, struct sandbox_state *st, struct ak_err *err)
{
        enum vault_backend vb;
        bool changed = false;
        int r;

        for (char **s = st->secret_bindings; s && *s; s++) {
                cleanup_secret_binding struct secret_binding b = {0};
                char *f;
                if (!strchr(*s, '='))
                        continue;
                if ((r = secret_binding_parse(*s, &b, err)) < 0) {
                        (void)ak_err_prefix(err, "sandbox '%s'", st->name);
                        return r;
                }
                if ((r = vault_backend_default(&vb, err)) < 0 ||
                    (r = vault_add(vb, b.key, b.value, b.value_len, NULL, err)) < 0) {
                        (void)ak_err_prefix(err,
                                            "sandbox '%s': moving the value of its binding "
                                            "of '%s' into the vault",
                                            st->name, b.key);
                        return r;
                }
                if (!(f = secret_binding_format(&b)))
                        return ak_err_oom(err);
                explicit_bzero(*s, strlen(*s));
                free(*s);
                *s = f;
                changed = true;
        }
        if (!changed)
                return 0;
        manager_notify(
            m,
            "note: sandbox '%s' kept secret values in its record (upstream's KEY=value:host); "
            "they are in the vault now, and the record names them only",
            st->name);
        return store_save(m->store, st, false, err);
}

/* Stores the inline values of o's bindings in the vault (only where it has none, or the same):
 * *ret_added lists those it added, for undoing a create that fails afterwards. */
int secrets_store_inline(const struct create_opts *o, char ***ret_added, struct ak_err *err)
{
        enum vault_backend vb;
        int r;

        if ((r = vault_backend_default(&vb, err)) < 0)
                return r;
        for (char *const *s = o->secrets; s && *s; s++) {
                cleanup_secret_binding struct secret_binding b = {0};
                bool added = false;
                if ((r = secret_binding_parse(*s, &b, err)) < 0)
                        return r;
                if (!b.value)
                        continue;
                r = vault_add(vb, b.key, b.value, b.value_len, &added, err);
                if (r < 0)
                        return ak_err_prefix(err, "secret binding for '%s'", b.key);
                if (added && strv_push(ret_added, b.key) < 0)
                        return ak_err_oom(err);
        }
        return 0;
}

/* Undoes secrets_store_inline. */
void secrets_unstore(char **added)
{
        enum vault_backend vb;

        if (vault_backend_default(&vb, NULL) < 0)
                return;
        for (char **k = added; k && *k; k++)
                (void)vault_delete(vb, *k, NULL);
}

/* Writes the sandbox's secret files (the one way a value enters a sandbox, asked for by name):
 * mode 0400, or placeholders with placeholder_secrets -- the placeholder of the key's binding
 * when it has one (grants, from plan_secrets), so that the proxy knows it, else a fresh one. */
int write_secret_files(const struct backend_ops *b, const struct sandbox_ref *ref,
                       const struct sandbox_state *st, json_t *grants, struct ak_err *err)
{
        enum vault_backend vb;
        int r;

        if ((r = vault_backend_default(&vb, err)) < 0)
                return r;
        for (char **s = st->secret_files; s && *s; s++) {
                cleanup_free char *key = NULL, *path = NULL;
                char ph[SECRET_PLACEHOLDER_LEN + 1];
                char *value = NULL;
                size_t len = 0;
                int fd;
                if ((r = secret_file_parse(*s, &key, &path, err)) < 0)
                        return r;
                if (st->placeholder_secrets) {
                        const char *bound = json_string_value(
                            json_object_get(find_grant(grants, key), "placeholder"));
                        if (bound)
                                (void)snprintf(ph, sizeof(ph), "%s", bound);
                        else
                                secret_placeholder(ph);
                        value = ph;
                        len = strlen(ph);
                } else if ((r = vault_get(vb, key, &value, &len, err)) < 0) {
                        return ak_err_prefix(err, "secret file '%s'", key);
                }
                fd = backend_connect(b, ref, err);
                r = fd < 0
                        ? fd
                        : agent_file_write(fd, path, 0400, true, true, -1, value, len, NULL, err);
                if (fd >= 0)
                        close(fd);
                if (value != ph)
                        vault_value_free(value, len);
                explicit_bzero(ph, sizeof(ph));
                if (r < 0)
                        return ak_err_prefix(err, "writing secret file '%s' to '%s'", key, path);
                /* a value entered a sandbox (asked for): on the record, by name */
                (void)audit_log("secret_file_written",
                                json_pack("{s:s,s:s,s:s,s:b}", "sandbox", st->name, "name", key,
                                          "path", path, "placeholder", st->placeholder_secrets));
        }
        return 0;
}
