/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Egress of proxy-mode sandboxes (issue 14, docs/network.md): the policy a sandbox is created
 * with (from agentkernel.toml's [security.domains] and [network] hosts and the command line's
 * --allow-host/--deny-host), and the host's side of the policy proxy's control protocol
 * (agentkernel-proxy, one per user and data directory: found or started here, then spoken to
 * over its SOCK_SEQPACKET control socket: register, unregister, get and set a policy).
 *
 * Nothing here parses what a sandbox sends: the proxy does. This module never waits for the
 * proxy longer than EGRESS_REPLY_TIMEOUT_MS per request, and never trusts a control socket that
 * is not the caller's own (its owner and mode are checked, its peer's uid too).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "shared/err.h"

#define EGRESS_MSG_MAX (64u << 10) /* one control message */
#define EGRESS_REPLY_TIMEOUT_MS 5000
#define EGRESS_LOG_FILE "network.jsonl" /* a sandbox's decision log, in its run directory */
#define EGRESS_CA_MAX (32 << 10)        /* a CA's PEM, the proxy's or [network] ca_file */
#define EGRESS_SECRET_MAX (64 << 10)    /* one secret's value (the vault's limit) */
#define EGRESS_GRANTS_MAX 64            /* bound secrets per sandbox */

/* The environment of a proxy-mode sandbox's commands, for cooperative clients (the capture takes
 * the others): HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (the proxy's port on the sandbox's loopback)
 * and NO_PROXY (its loopback), in both cases. NULL-terminated. */
extern char *const egress_proxy_env[];

/* The listeners a proxy-mode sandbox's runtime made inside its network namespace. */
struct egress_fds {
        int tcp;     /* 127.0.0.1:15001: transparent and explicit proxy clients */
        int dns_udp; /* 127.0.0.1:15053 */
        int dns_tcp; /* 127.0.0.1:15053 */
};

/* Checks a command-line rule, "PATTERN[:PORT]" (net_policy_insert_text's syntax): 0, or -EINVAL
 * with a message. */
int egress_host_rule_check(const char *text, struct ak_err *err);

/* The policy of a new sandbox (POLICY JSON, docs/network.md), or *ret = NULL when nothing asks
 * for one (the proxy then applies its built-in policy). Rules in this order, first match wins:
 * deny_hosts, allow_hosts (the command line's), then the base: upstream's [security.domains]
 * as upstream documents it (net_policy_from_domains) when given, else the built-in policy
 * (net_policy_builtin), whose rules the command line's thus refine. hosts (an object of name ->
 * IPv4, may be NULL) become the policy's static names. Any list may be NULL. */
int egress_policy_build(char *const *deny_hosts, char *const *allow_hosts,
                        char *const *domains_allow, char *const *domains_block, bool domains_given,
                        bool allowlist_only, const json_t *hosts, json_t **ret, struct ak_err *err);

/* Checks a policy (a PUT body, a `network policy --set` file, a record) as the proxy will:
 * net_policy_from_json. */
int egress_policy_check(const json_t *policy, struct ak_err *err);

/* The control socket's directory: the data directory's runtime directory's proxy/
 * (core/runtime-dir.h: <runtime>/agentkernel/<id>/proxy, else <data>/cache/proxy), created
 * private. */
int egress_proxy_dir(char *out, size_t len, struct ak_err *err);

/* Connects to the user's proxy, starting it (agentkernel-proxy, found as the other helpers are:
 * AGENTKERNEL_PROXY, next to this program, libexec) when none answers. Returns the connected
 * control socket. */
int egress_connect(struct ak_err *err);

/* One request on a connected control socket: sends req (with fds as SCM_RIGHTS, n_fds may be
 * 0), waits for the reply, and returns it in *ret when it says {"ok":true}; {"ok":false,
 * "error":M} fails with -EIO and M. */
int egress_request(int ctl, const json_t *req, const int *fds, size_t n_fds, json_t **ret,
                   struct ak_err *err);

/* The secrets a proxy-mode start hands the proxy (issue 15, docs/secrets.md). */
struct egress_secrets {
        /* [{"name", "hosts", "header", "prefix", "placeholder", "body"?, "from_env"?}]
         * (start_plan.secret_grants), or NULL/empty: no injection. "from_env": the value may
         * come from the host environment when the vault has none (an agent's provider key). */
        const json_t *grants;
        const char *upstream_ca; /* extra PEM trust anchors for the proxy's upstream TLS, or NULL */
        char **ret_ca; /* where the sandbox's CA certificate (PEM, malloc'd) goes, or NULL */
};

/* Registers a started proxy-mode sandbox: its listeners, its init's pidfd (the proxy forgets it
 * when that becomes readable) and its decision log, opened here at log_path (O_APPEND, 0600;
 * NULL: a log nobody reads). policy NULL: the built-in policy (net_policy_builtin), sent as
 * such. The fds stay the caller's. With sec's grants: they go with the registration, then each
 * value in its own secret_value message (read from the vault just before, wiped after: never in
 * argv, the environment, a file or a log), and *sec->ret_ca gets the CA the proxy made for the
 * sandbox; any failure unregisters the sandbox again. */
int egress_register(const char *name, const char *uuid, const json_t *policy,
                    const struct egress_fds *fds, int pidfd, const char *log_path,
                    const struct egress_secrets *sec, struct ak_err *err);

/* Reads [network] ca_file for the proxy (it never opens a path the user names): an absolute
 * path to a regular file (not a symlink) of the caller's or root's that nobody else may write,
 * 1..EGRESS_CA_MAX bytes of PEM certificates without a private key. *ret malloc'd. */
int egress_ca_file_read(const char *path, char **ret, struct ak_err *err);

/* Forgets a sandbox (stop, remove); a proxy that is not running has nothing to forget. */
int egress_unregister(const char *name, struct ak_err *err);

/* The running proxy's counters (docs/network.md, control protocol `stats`): -ESRCH when none
 * runs (nothing is started to answer). */
int egress_stats(json_t **ret, struct ak_err *err);

/* A running sandbox's policy, as the proxy applies it (*ret owned by the caller). */
int egress_get_policy(const char *name, json_t **ret, struct ak_err *err);
/* Replaces a running sandbox's policy: new connections (and the next request of a kept-alive
 * one) follow it once this returns. */
int egress_set_policy(const char *name, const json_t *policy, struct ak_err *err);
