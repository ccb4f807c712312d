/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret injection's parts that the supervisor and the worker share (docs/network.md,
 * "Interception"): a sandbox's grants (which KEY may be sent to which hosts, in which header,
 * under which placeholder), their values (held only in locked memory, wiped when dropped), and
 * the sandbox's CA (an EC P-256 certificate made at register; its key never leaves the proxy's
 * memory). The grants' JSON is the control protocol's (SECRETS-B.md); values never pass through
 * jansson.
 */
#pragma once

#include <jansson.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define MITM_GRANTS_MAX 64
#define MITM_HOSTS_MAX 16
#define MITM_KEY_MAX 128
#define MITM_HEADER_MAX 64
#define MITM_PREFIX_MAX 64
#define MITM_VALUE_MAX (64 * 1024)
#define MITM_UPSTREAM_CA_MAX (32 * 1024)
#define MITM_BODY_MAX (1024 * 1024) /* a request body substituted (opt-in) */
#define MITM_PLACEHOLDER_PREFIX "AGENTKERNEL_PLACEHOLDER_"
#define MITM_PLACEHOLDER_LEN 56 /* the prefix and 32 lowercase hex digits */

struct net_policy;

struct grant {
        char name[MITM_KEY_MAX + 1];
        struct net_policy *hosts; /* allow rules of the hosts, default deny */
        char header[MITM_HEADER_MAX + 1];
        char prefix[MITM_PREFIX_MAX + 1];
        char placeholder[MITM_PLACEHOLDER_LEN + 1];
        bool body;
        uint8_t *value; /* NULL until it arrives (secret_dup'd) */
        size_t value_len;
};

/* Parses and checks "secrets" (an array of grants; NULL = none) into *ret (n_ret grants; NULL
 * and 0 for none). Refuses with a message naming the place: more than MITM_GRANTS_MAX, a bad
 * name, hosts (1..MITM_HOSTS_MAX host patterns without ports: no addresses, no "*"), header,
 * prefix or placeholder, a duplicate name or placeholder, unknown keys. *ret's values are unset. */
int grants_parse(const json_t *j, struct grant **ret, size_t *n_ret, struct ak_err *err);

/* Wipes the values and frees the grants. NULL is fine. */
void grants_free(struct grant *g, size_t n);

/* The grant named name, or NULL. */
struct grant *grants_find(struct grant *g, size_t n, const char *name);

/* Is host (a name: an address literal never is) one of g's hosts? */
bool grant_binds(const struct grant *g, const char *host);

/* Adds the X.509v3 extension nid (OpenSSL's configuration text value) to cert, issued by issuer
 * (cert itself for a self-signed one). */
bool mitm_x509_add_ext(X509 *issuer, X509 *cert, int nid, const char *value);

/* Makes a sandbox's CA: an EC P-256 key and a self-signed certificate (CN "AgentKernel Proxy
 * CA", O "AgentKernel", OU ou, CA:TRUE pathlen 0 and keyCertSign,cRLSign, both critical, valid
 * from an hour ago for 30 days). *cert_pem is malloc'd, *key_der secret_dup'd (*key_len bytes). */
int mitm_ca_new(const char *ou, char **cert_pem, uint8_t **key_der, size_t *key_len,
                struct ak_err *err);
