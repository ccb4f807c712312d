// SPDX-License-Identifier: Apache-2.0
/*
 * The manager's part of secrets (core/secrets.h, docs/secrets.md): what a sandbox's record holds
 * of its bindings (names and hosts, never a value), the placeholders and proxy grants a start
 * plans, secret files written into a started sandbox, and upstream's records migrated.
 */
#include "manager-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/client.h"
#include "core/audit.h"
#include "core/coding-agents.h"
#include "core/egress.h"
#include "core/secrets.h"
#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/net-policy.h"
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

static bool strv_has(char *const *v, const char *s)
{
        for (; s && v && *v; v++)
                if (streq(*v, s))
                        return true;
        return false;
}

/* The provider keys of the sandbox's coding agent (`-a claude`, core/coding-agents.c): each key
 * the user has -- in the vault, else in this process's environment -- and that no binding of the
 * record names already becomes a grant to its provider's host, with a placeholder in the
 * agent's variable. Proxy mode only: without the proxy nothing could put the key in, and the
 * key itself never enters a sandbox. */
static int plan_agent_keys(struct manager *m, const struct sandbox_state *st, enum vault_backend vb,
                           json_t *grants, char **env, size_t *k, struct ak_err *err)
{
        const struct coding_agent *agent = coding_agent_find(st->agent);
        bool noted = false;

        for (size_t i = 0; agent && i < AGENT_KEYS_MAX && agent->keys[i].env; i++) {
                const struct agent_key *ak = &agent->keys[i];
                char ph[SECRET_PLACEHOLDER_LEN + 1];
                struct ak_err e = {0};
                bool in_vault = vault_has(vb, ak->env, &e) == 1;
                const char *v = getenv(ak->env);
                json_t *g;
                if (find_grant(grants, ak->env) || (!in_vault && !(v && *v)))
                        continue;
                if (manager_net_mode(st) != NET_MODE_PROXY) {
                        if (!noted)
                                manager_notify(m,
                                               "note: the %s agent's key is not given to sandbox "
                                               "'%s': keys go in through the egress proxy only "
                                               "(--network proxy)",
                                               agent->name, st->name);
                        noted = true;
                        continue;
                }
                if (in_vault && vault_host_allowed(vb, ak->env, ak->host, &e) != 1) {
                        manager_notify(m, "warning: %s; the %s agent's key is not bound",
                                       ak_err_msg(&e), agent->name);
                        continue;
                }
                secret_placeholder(ph);
                g = json_pack("{s:s,s:[s],s:s,s:s,s:s,s:b}", "name", ak->env, "hosts", ak->host,
                              "header", ak->header ? ak->header : "Authorization", "prefix",
                              ak->header ? "" : "Bearer ", "placeholder", ph, "from_env",
                              !in_vault);
                explicit_bzero(ph, sizeof(ph));
                if (!g || json_array_append_new(grants, g) < 0 ||
                    asprintf(&env[(*k)++], "%s=%s", ak->env,
                             json_string_value(json_object_get(g, "placeholder"))) < 0)
                        return ak_err_oom(err);
        }
        return 0;
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
        if (json_array_size(grants) && manager_net_mode(st) != NET_MODE_PROXY) {
                /* a record from before the rule, or one edited: refused as at create */
                if ((r = secrets_check_network(st, manager_net_mode(st), err)) < 0)
                        return ak_err_prefix(err, "sandbox '%s'", st->name);
        }
        if ((r = plan_agent_keys(m, st, vb, grants, env, k, err)) < 0)
                return r;
        if (json_array_size(grants)) {
                size_t i;
                json_t *g;
                json_array_foreach (grants, i, g)
                        if (strv_has(st->secret_body,
                                     json_string_value(json_object_get(g, "name"))) &&
                            json_object_set_new(g, "body", json_true()) < 0)
                                return ak_err_oom(err);
                /* the sandbox trusts the proxy's CA: files written at start (write_proxy_trust),
                 * variables for the clients that read one */
                const char *combined = TRUST_RUN_DIR "/" TRUST_COMBINED;
                const char *alone = TRUST_RUN_DIR "/" TRUST_CA;
                static const char *const vars[] = {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                                                   "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT"};
                for (size_t v = 0; v < ARRAY_SIZE(vars); v++)
                        if (asprintf(&env[(*k)++], "%s=%s", vars[v], combined) < 0)
                                return ak_err_oom(err);
                if (asprintf(&env[(*k)++], "NODE_EXTRA_CA_CERTS=%s", alone) < 0)
                        return ak_err_oom(err);
        }
        if (strv_len(st->secret_files) &&
            asprintf(&env[(*k)++], "%s=%s", SECRET_FILES_ENV, SECRET_FILES_DIR) < 0)
                return ak_err_oom(err);
        *ret_grants = TAKE_PTR(grants);
        return 0;
}

int secrets_check_network(const struct sandbox_state *st, enum net_mode mode, struct ak_err *err)
{
        if (!strv_len(st->secret_bindings) || mode == NET_MODE_PROXY)
                return 0;
        return ak_err_set(err, EINVAL,
                          "secret bindings (-S) need --network proxy: the egress proxy puts the "
                          "values into requests to their hosts, %s",
                          mode == NET_MODE_FULL ? "and with --network full requests bypass it"
                                                : "and with no network nothing could use them");
}

int secrets_policy(const json_t *policy, const json_t *grants, json_t **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL;
        cleanup_json json_t *norm = NULL;
        size_t at = 0, i, j;
        json_t *rule, *g, *h;
        int r;

        *ret = NULL;
        if (!json_array_size(grants))
                return 0;
        r = policy ? net_policy_from_json(policy, &p, err) : net_policy_builtin(&p, err);
        if (r < 0)
                return r;
        /* after the last deny rule: whatever the user denied stays denied */
        if (!(norm = net_policy_to_json(p)))
                return ak_err_oom(err);
        json_array_foreach (json_object_get(norm, "rules"), i, rule)
                if (streq(json_string_value(json_object_get(rule, "action")), "deny"))
                        at = i + 1;
        json_array_foreach (grants, i, g) {
                json_array_foreach (json_object_get(g, "hosts"), j, h) {
                        char text[300];
                        (void)snprintf(text, sizeof(text), "%s:443", json_string_value(h));
                        if ((r = net_policy_insert_text(p, at++, NET_ALLOW, text, err)) < 0)
                                return ak_err_prefix(err, "the bound host '%s'",
                                                     json_string_value(h));
                }
        }
        if (!(*ret = net_policy_to_json(p)))
                return ak_err_oom(err);
        return 0;
}

/* The CERTIFICATE blocks of a PEM text (a bundle read from the sandbox: anything else in it,
 * whatever the file really was, is left out), without the block of ours that follows a line
 * TRUST_MARK (an earlier start's CA), appended to out. */
static int pem_certs(const char *s, size_t len, struct buf *out)
{
        static const char begin[] = "-----BEGIN CERTIFICATE-----";
        static const char end[] = "-----END CERTIFICATE-----";
        const char *p = s, *stop = s + len;

        while (p < stop) {
                const char *b = memmem(p, (size_t)(stop - p), begin, sizeof(begin) - 1), *e;
                bool ours;
                if (!b)
                        break;
                e = memmem(b, (size_t)(stop - b), end, sizeof(end) - 1);
                if (!e)
                        break;
                e += sizeof(end) - 1;
                ours = (size_t)(b - s) >= sizeof(TRUST_MARK) &&
                       memcmp(b - sizeof(TRUST_MARK), TRUST_MARK "\n", sizeof(TRUST_MARK)) == 0;
                if (!ours &&
                    (buf_append(out, b, (size_t)(e - b)) < 0 || buf_append(out, "\n", 1) < 0))
                        return -ENOMEM;
                p = e;
        }
        return 0;
}

static int sink_buf(void *ctx, const void *data, size_t len)
{
        return buf_append(ctx, data, len);
}

/* Reads a file of the sandbox (at most TRUST_BUNDLE_MAX): 1 with its certificates in out, 0
 * when there is none to read. */
static int read_bundle(const struct backend_ops *b, const struct sandbox_ref *ref, const char *path,
                       struct buf *out)
{
        cleanup_buf struct buf raw = BUF_INIT;
        cleanup_close int fd = backend_connect(b, ref, NULL);
        int r;

        if (fd < 0)
                return 0;
        r = agent_file_read(fd, path, TRUST_BUNDLE_MAX, sink_buf, &raw, NULL, NULL);
        if (r < 0 || !raw.len)
                return 0;
        return pem_certs(raw.data, raw.len, out) < 0 ? -ENOMEM : 1;
}

static int write_trust_file(const struct backend_ops *b, const struct sandbox_ref *ref,
                            const char *path, const void *data, size_t len, struct ak_err *err)
{
        cleanup_close int fd = backend_connect(b, ref, err);

        if (fd < 0)
                return fd;
        return agent_file_write_nofollow(fd, path, 0644, data, len, err);
}

int write_proxy_trust(struct manager *m, const struct backend_ops *b, const struct sandbox_ref *ref,
                      const struct sandbox_state *st, const char *ca, struct ak_err *err)
{
        static const char *const bundles[] = {TRUST_SYSTEM_DEBIAN, TRUST_SYSTEM_REDHAT};
        bool host = !st->image || streq(st->image, "host");
        cleanup_buf struct buf sys = BUF_INIT, all = BUF_INIT;
        const char *own = NULL;
        int r = 0;

        if (!ca)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(bundles) && !own; i++) {
                buf_reset(&sys);
                if ((r = read_bundle(b, ref, bundles[i], &sys)) < 0)
                        return ak_err_oom(err);
                if (r > 0)
                        own = bundles[i];
        }
        if ((sys.len && buf_append(&all, sys.data, sys.len) < 0) ||
            buf_append(&all, TRUST_MARK "\n", sizeof(TRUST_MARK)) < 0 ||
            buf_append(&all, ca, strlen(ca)) < 0)
                return ak_err_oom(err);
        /* the files the variables name: the sandbox's own /run, where nothing of the image
         * (a read-only /etc, a link from /etc/ssl/certs elsewhere) stands in the way */
        r = write_trust_file(b, ref, TRUST_RUN_DIR "/" TRUST_CA, ca, strlen(ca), err);
        if (r >= 0)
                r = write_trust_file(b, ref, TRUST_RUN_DIR "/" TRUST_COMBINED, all.data, all.len,
                                     err);
        if (r < 0)
                return ak_err_prefix(err, "the proxy's CA into the sandbox");
        if (host)
                return 0; /* its /etc and /usr are the host's, read-only: not the sandbox's */
        /* the system places too, for programs that read only those: the CA where
         * update-ca-certificates looks, the bundle next to the system's, and the system's own
         * bundle (its certificates and ours, an earlier start's CA left out). Where the image
         * does not let us (read-only, a link on the way), a note: the variables still hold. */
        {
                const struct {
                        const char *path;
                        const void *data;
                        size_t len;
                } extra[] = {{TRUST_CA_LOCAL, ca, strlen(ca)},
                             {TRUST_COMBINED_ETC, all.data, all.len},
                             {own, all.data, all.len}};
                for (size_t i = 0; i < ARRAY_SIZE(extra); i++) {
                        struct ak_err e = {0};
                        if (extra[i].path && write_trust_file(b, ref, extra[i].path, extra[i].data,
                                                              extra[i].len, &e) < 0)
                                manager_notify(m,
                                               "note: sandbox '%s': the proxy's CA is not in "
                                               "'%s' (%s); programs that read only that file do "
                                               "not trust it (SSL_CERT_FILE and the other "
                                               "variables name %s)",
                                               st->name, extra[i].path, ak_err_msg(&e),
                                               TRUST_RUN_DIR "/" TRUST_COMBINED);
                }
        }
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
                if (inet_pton(AF_INET, b.host, &(struct in_addr){0}) == 1)
                        return ak_err_set(err, EINVAL,
                                          "secret '%s': bind it to a host name, not an address "
                                          "('%s'): the proxy puts values only into TLS "
                                          "connections it can check by name",
                                          b.key, b.host);
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
        for (char *const *s = o->secret_body; s && *s; s++) {
                bool bound = false;
                /* only a bound KEY has requests to substitute in ([secrets]' unbound: none) */
                for (char **e = st->secret_bindings; e && *e && !bound; e++)
                        bound = strncmp(*e, *s, strlen(*s)) == 0 && (*e)[strlen(*s)] == ':';
                if (bound && !strv_has(st->secret_body, *s) && strv_push(&st->secret_body, *s) < 0)
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
