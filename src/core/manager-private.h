/* SPDX-License-Identifier: Apache-2.0 */
/* What the manager's source files share among themselves (and its unit test); not for other
 * modules, which see struct manager only through manager.h. */
#pragma once

#include "core/manager.h"
#include "core/profile.h"
#include "shared/cleanup.h"
#include "shared/time-util.h"

struct manager {
        struct store *store;
        /* Progress and warnings for a person (manager_set_notify); NULL: dropped. */
        void (*notify)(void *ctx, const char *msg);
        void *notify_ctx;
};

/* Shared run directory of ephemeral sandboxes (not a valid sandbox name: no clash). */
#define EPHEMERAL_RUN_DIR ".ephemeral"
/* TTL of the record of a run that needs one (see run_via_record). */
#define RUN_RECORD_TTL 3600

void now_rfc3339(char out[RFC3339_MAX]);

/* Everything a backend needs, derived from the record. Strings point into st and the plan. */
struct start_plan {
        struct backend_config cfg;
        char *run_dir;
        char **env;
        struct port_spec *ports;
        struct profile profile; /* the sandbox's profile, with its seccomp filter override */
        struct bind_mount *binds;
        char (*bind_paths)[2][4096]; /* host path and sandbox path of each bind */
        char own_paths[2][4096];     /* the data and the user directory (cfg.own_dirs) */
        const char *own[2];
        /* what the egress proxy will need of this start's secrets, values excepted:
         * [{"name", "hosts": [...], "header", "prefix", "placeholder"}] (docs/secrets.md) */
        json_t *secret_grants;
        json_t *net_policy; /* the record's policy with the bound hosts allowed, or NULL */
        char *upstream_ca;  /* [network] ca_file's certificates, when it has grants */
        char *proxy_ca;     /* the CA the proxy made for the sandbox (after the start) */
};

/* Builds the plan of starting st into *p (which the caller then frees with start_plan_done); on
 * failure *p is untouched. */
int plan_from_state(struct manager *m, const struct sandbox_state *st, bool ephemeral,
                    struct start_plan *p, struct ak_err *err);
/* Frees what p holds (p itself is the caller's). */
void start_plan_done(struct start_plan *p);
DEFINE_CLEANUP_DONE(struct start_plan, start_plan_done)
#define cleanup_start_plan CLEANUP_FUNC(start_plan_done)

/* Takes a sandbox's lock and loads its record. *ret_lock is the lock (or -1 when it could not be
 * taken); the caller releases it whatever the result, because even a failed load (missing or bad
 * record) may leave work to do under the lock. */
int lock_and_load(struct manager *m, const char *name, int *ret_lock, struct sandbox_state **ret,
                  struct ak_err *err);

/* Tells the manager's user something (a warning, a note): its notify callback, if any. */
void manager_notify(struct manager *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- secrets (manager-secrets.c) ---- */

/* A start's secrets: every bound KEY gets a fresh placeholder in the environment (one per key,
 * whatever its hosts), and *ret_grants what the egress proxy will need of them, values excepted.
 * A binding whose secret is gone from the vault is skipped with a warning, as upstream. */
int plan_secrets(struct manager *m, const struct sandbox_state *st, char **env, size_t *k,
                 json_t **ret_grants, struct ak_err *err);

/* The secrets of a new sandbox into its record: bindings in their value-less form, each naming
 * a secret the vault has (or an inline value, which manager_create stores), secret files
 * likewise, [secrets]' mappings. */
int secrets_to_state(const struct create_opts *o, struct sandbox_state *st, struct ak_err *err);

/* A record upstream wrote may hold "KEY=value:host" (in clear, often world-readable): before
 * anything else at start, the value goes to the vault (only where it has none, or the same) and
 * the record keeps "KEY:host", saved at once. */
int secrets_migrate(struct manager *m, struct sandbox_state *st, struct ak_err *err);

/* Stores the inline values of o's bindings in the vault (only where it has none, or the same):
 * *ret_added lists those it added, for undoing a create that fails afterwards. */
int secrets_store_inline(const struct create_opts *o, char ***ret_added, struct ak_err *err);

/* Secret bindings need proxy mode (the proxy puts the values in): -EINVAL naming --network
 * proxy for a record with bindings and another mode. */
int secrets_check_network(const struct sandbox_state *st, enum net_mode mode, struct ak_err *err);

/* The policy a start registers when it has grants: policy (NULL: the built-in one) with an allow
 * rule for each bound host (port 443) after its last deny rule, so a user's deny wins. *ret NULL
 * when there are no grants (the record's policy stands). */
int secrets_policy(const json_t *policy, const json_t *grants, json_t **ret, struct ak_err *err);

/* Where the sandbox trusts the proxy's CA (docs/secrets.md): the CA alone and a bundle of the
 * sandbox's own system certificates plus the CA, in TRUST_RUN_DIR (the variables of
 * plan_secrets name those), and in an image's system places too where it lets us. */
#define TRUST_CA_LOCAL "/usr/local/share/ca-certificates/agentkernel-proxy.crt"
#define TRUST_COMBINED_ETC "/etc/ssl/certs/agentkernel-combined.crt"
#define TRUST_RUN_DIR "/run/agentkernel/trust" /* the sandbox's own, always written */
#define TRUST_CA "agentkernel-proxy.crt"
#define TRUST_COMBINED "agentkernel-combined.crt"
#define TRUST_SYSTEM_DEBIAN "/etc/ssl/certs/ca-certificates.crt"
#define TRUST_SYSTEM_REDHAT "/etc/pki/tls/certs/ca-bundle.crt"
#define TRUST_MARK "# agentkernel proxy CA"
#define TRUST_BUNDLE_MAX (8u << 20)

/* Writes the proxy's CA (PEM; NULL: nothing to do) into a started sandbox, through its agent's
 * writes that follow no symlink: TRUST_RUN_DIR's two files (a failure fails the start), and for
 * an image (not the host's, whose /etc and /usr are the host's) TRUST_CA_LOCAL,
 * TRUST_COMBINED_ETC and the CA in its own system bundle, each with a note where the image does
 * not let us. The bundle: the certificates of the sandbox's system bundle -- only those -- and
 * the CA. */
int write_proxy_trust(struct manager *m, const struct backend_ops *b, const struct sandbox_ref *ref,
                      const struct sandbox_state *st, const char *ca, struct ak_err *err);

/* Undoes secrets_store_inline. */
void secrets_unstore(char **added);

/* Writes the sandbox's secret files (the one way a value enters a sandbox, asked for by name):
 * mode 0400, or placeholders with placeholder_secrets -- the placeholder of the key's binding
 * when it has one (grants, from plan_secrets), so that the proxy knows it, else a fresh one. */
int write_secret_files(const struct backend_ops *b, const struct sandbox_ref *ref,
                       const struct sandbox_state *st, json_t *grants, struct ak_err *err);
