// SPDX-License-Identifier: Apache-2.0
/*
 * A sandbox's grants and its CA (mitm.h): the supervisor checks a registration's "secrets" here
 * and makes the CA; the worker parses the same grants again from the supervisor's message. A
 * grant's hosts are kept as a small policy of allow rules so that they match as the policy's
 * host patterns do (`*.example.com` also matches `example.com`). Must never log, return or keep
 * outside locked memory a value or the CA's key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mitm.h"
#include "proxy.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-policy.h"

static bool key_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > MITM_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
                        return false;
        return true;
}

/* An HTTP header name (a token). */
static bool header_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > MITM_HEADER_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr("!#$%&'*+-.^_`|~", s[i])))
                        return false;
        return true;
}

static bool prefix_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (!s || n > MITM_PREFIX_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

static bool placeholder_ok(const char *s)
{
        if (!s || strlen(s) != MITM_PLACEHOLDER_LEN ||
            strncmp(s, MITM_PLACEHOLDER_PREFIX, STRLEN(MITM_PLACEHOLDER_PREFIX)) != 0)
                return false;
        for (const char *p = s + STRLEN(MITM_PLACEHOLDER_PREFIX); *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static int grant_parse(json_t *o, size_t idx, struct grant *g, struct ak_err *err)
{
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *header = json_string_value(json_object_get(o, "header"));
        const char *prefix = json_string_value(json_object_get(o, "prefix"));
        const char *ph = json_string_value(json_object_get(o, "placeholder"));
        json_t *hosts = json_object_get(o, "hosts"), *body = json_object_get(o, "body"), *v;
        const char *k;
        size_t i;

        json_object_foreach (o, k, v) {
                if (!streq(k, "name") && !streq(k, "hosts") && !streq(k, "header") &&
                    !streq(k, "prefix") && !streq(k, "placeholder") && !streq(k, "body"))
                        return ak_err_set(err, -EINVAL, "secrets[%zu]: unknown key '%.64s'", idx,
                                          k);
        }
        if (!key_ok(name))
                return ak_err_set(err, -EINVAL,
                                  "secrets[%zu].name: 1..128 of [A-Za-z0-9_.-] needed", idx);
        if (!header_ok(header))
                return ak_err_set(err, -EINVAL, "secrets[%zu].header: an HTTP header name needed",
                                  idx);
        if (prefix && !prefix_ok(prefix))
                return ak_err_set(err, -EINVAL,
                                  "secrets[%zu].prefix: at most 64 printable ASCII bytes", idx);
        if (!placeholder_ok(ph))
                return ak_err_set(err, -EINVAL,
                                  "secrets[%zu].placeholder: " MITM_PLACEHOLDER_PREFIX
                                  "<32 lowercase hex digits> needed",
                                  idx);
        if (body && !json_is_boolean(body))
                return ak_err_set(err, -EINVAL, "secrets[%zu].body: a boolean needed", idx);
        if (!json_is_array(hosts) || json_array_size(hosts) == 0 ||
            json_array_size(hosts) > MITM_HOSTS_MAX)
                return ak_err_set(err, -EINVAL, "secrets[%zu].hosts: 1..16 host patterns needed",
                                  idx);
        snprintf(g->name, sizeof(g->name), "%s", name);
        snprintf(g->header, sizeof(g->header), "%s", header);
        snprintf(g->prefix, sizeof(g->prefix), "%s", prefix ? prefix : "");
        snprintf(g->placeholder, sizeof(g->placeholder), "%s", ph);
        g->body = json_is_true(body);
        g->hosts = net_policy_new(NET_DENY);
        if (!g->hosts)
                return ak_err_set(err, -ENOMEM, "out of memory");
        json_array_foreach (hosts, i, v) {
                const char *h = json_string_value(v);
                char text[NET_POLICY_HOST_MAX + 8];
                struct in_addr a;
                int r;
                /* a name or *.name: no port, no address (never intercepted), not everything */
                if (!h || !*h || strchr(h, ':') || strchr(h, '/') || streq(h, "*") ||
                    inet_pton(AF_INET, h, &a) == 1 || strlen(h) > NET_POLICY_HOST_MAX)
                        return ak_err_set(err, -EINVAL,
                                          "secrets[%zu].hosts[%zu]: a host name or *.name "
                                          "without a port needed",
                                          idx, i);
                snprintf(text, sizeof(text), "%s:*", h);
                struct ak_err e = {0};
                r = net_policy_insert_text(g->hosts, SIZE_MAX, NET_ALLOW, text, &e);
                if (r < 0)
                        return ak_err_set(err, r, "secrets[%zu].hosts[%zu]: %s", idx, i,
                                          ak_err_msg(&e));
        }
        return 0;
}

int grants_parse(const json_t *j, struct grant **ret, size_t *n_ret, struct ak_err *err)
{
        struct grant *g;
        size_t n, i;
        json_t *o;
        int r;

        *ret = NULL;
        *n_ret = 0;
        if (!j || json_is_null(j))
                return 0;
        if (!json_is_array(j))
                return ak_err_set(err, -EINVAL, "secrets: an array of grants needed");
        n = json_array_size(j);
        if (n > MITM_GRANTS_MAX)
                return ak_err_set(err, -E2BIG, "secrets: at most %d grants", MITM_GRANTS_MAX);
        if (n == 0)
                return 0;
        g = calloc(n, sizeof(*g));
        if (!g)
                return ak_err_set(err, -ENOMEM, "out of memory");
        json_array_foreach (j, i, o) {
                if (!json_is_object(o)) {
                        r = ak_err_set(err, -EINVAL, "secrets[%zu]: an object needed", i);
                        goto fail;
                }
                r = grant_parse(o, i, &g[i], err);
                if (r < 0)
                        goto fail;
                for (size_t k = 0; k < i; k++)
                        if (streq(g[k].name, g[i].name) ||
                            streq(g[k].placeholder, g[i].placeholder)) {
                                r = ak_err_set(err, -EINVAL,
                                               "secrets[%zu]: name or placeholder given twice", i);
                                goto fail;
                        }
        }
        *ret = g;
        *n_ret = n;
        return 0;
fail:
        grants_free(g, n);
        return r;
}

void grants_free(struct grant *g, size_t n)
{
        if (!g)
                return;
        for (size_t i = 0; i < n; i++) {
                net_policy_free(g[i].hosts);
                secret_free(g[i].value, g[i].value_len);
        }
        explicit_bzero(g, n * sizeof(*g));
        free(g);
}

struct grant *grants_find(struct grant *g, size_t n, const char *name)
{
        for (size_t i = 0; name && i < n; i++)
                if (streq(g[i].name, name))
                        return &g[i];
        return NULL;
}

bool grant_binds(const struct grant *g, const char *host)
{
        struct net_decision d;
        struct in_addr a;
        if (!host || !*host || inet_pton(AF_INET, host, &a) == 1)
                return false;
        return net_policy_decide(g->hosts, host, NULL, 443, NULL, &d) == NET_ALLOW;
}

bool mitm_x509_add_ext(X509 *issuer, X509 *cert, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        bool ok;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return false;
        ok = X509_add_ext(cert, ext, -1) == 1;
        X509_EXTENSION_free(ext);
        return ok;
}

int mitm_ca_new(const char *ou, char **cert_pem, uint8_t **key_der, size_t *key_len,
                struct ak_err *err)
{
        EVP_PKEY *key = EVP_EC_gen("P-256");
        X509 *cert = X509_new();
        X509_NAME *nm = NULL;
        BIO *bio = NULL;
        unsigned char *der = NULL, serial[16];
        BIGNUM *bn = NULL;
        char *pem = NULL;
        int der_len = 0, r = -ENOMEM;
        long pem_len;
        char *pem_data;

        if (!key || !cert || RAND_bytes(serial, sizeof(serial)) != 1)
                goto out;
        serial[0] &= 0x7f;
        bn = BN_bin2bn(serial, sizeof(serial), NULL);
        nm = X509_NAME_new();
        if (!bn || !nm || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) ||
            !X509_set_version(cert, 2) ||
            !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                        (const unsigned char *)"AgentKernel Proxy CA", -1, -1, 0) ||
            !X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"AgentKernel",
                                        -1, -1, 0) ||
            !X509_NAME_add_entry_by_txt(nm, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1, -1,
                                        0) ||
            !X509_set_subject_name(cert, nm) || !X509_set_issuer_name(cert, nm) ||
            !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 24 * 3600) ||
            !X509_set_pubkey(cert, key) ||
            !mitm_x509_add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
            !mitm_x509_add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
            !mitm_x509_add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
            !X509_sign(cert, key, EVP_sha256()))
                goto out;
        bio = BIO_new(BIO_s_mem());
        if (!bio || !PEM_write_bio_X509(bio, cert))
                goto out;
        pem_len = BIO_get_mem_data(bio, &pem_data);
        pem = strndup(pem_data, (size_t)pem_len);
        der_len = i2d_PrivateKey(key, &der);
        if (!pem || der_len <= 0)
                goto out;
        *key_der = secret_dup(der, (size_t)der_len);
        if (!*key_der)
                goto out;
        *key_len = (size_t)der_len;
        *cert_pem = TAKE_PTR(pem);
        r = 0;
out:
        if (der) {
                explicit_bzero(der, der_len > 0 ? (size_t)der_len : 0);
                OPENSSL_free(der);
        }
        free(pem);
        BIO_free(bio);
        BN_free(bn);
        X509_NAME_free(nm);
        X509_free(cert);
        EVP_PKEY_free(key);
        if (r < 0)
                return ak_err_set(err, r, "cannot make the sandbox's CA");
        return 0;
}
