// SPDX-License-Identifier: Apache-2.0
/*
 * Secret bindings, secret files and placeholders (secrets.h). Parsers of text from the command
 * line and the API: bounded, and silent about values (an error never quotes the text after '=').
 */
#include "secrets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"
#include "core/vault.h"
#include "shared/random-util.h"

#define BINDING_TEXT_MAX (VAULT_NAME_MAX + 1 + VAULT_VALUE_MAX + 1 + SECRET_HOST_MAX + 1 + 64)

void secret_binding_done(struct secret_binding *b)
{
        free(b->key);
        free(b->host);
        free(b->header);
        free(b->prefix);
        vault_value_free(b->value, b->value_len);
        memset(b, 0, sizeof(*b));
}

static int check_host(const char *key, const char *host, struct ak_err *err)
{
        size_t n = strlen(host);

        if (n == 0)
                return ak_err_set(err, EINVAL, "secret binding for '%s': the host is empty", key);
        if (n > SECRET_HOST_MAX ||
            strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n ||
            host[0] == '.' || host[0] == '-' || host[n - 1] == '.' || strstr(host, ".."))
                return ak_err_set(err, EINVAL,
                                  "secret binding for '%s': '%.*s' is not a host name (a DNS name "
                                  "or an IPv4 address, without port or path)",
                                  key, (int)(n > 80 ? 80 : n), host);
        if (!strchr(host, '.'))
                return ak_err_set(err, EINVAL,
                                  "secret binding for '%s': host '%s' has no dot: a binding names "
                                  "a full host name (KEY=value:host cannot name a header: store "
                                  "the value with 'agentkernel secret set %s' and bind "
                                  "%s:host:header)",
                                  key, host, key, key);
        return 0;
}

static int check_header(const char *key, const char *h, struct ak_err *err)
{
        size_t n = strlen(h);

        if (n > 0 && strspn(h, "0123456789") == n)
                return ak_err_set(err, EINVAL,
                                  "secret binding for '%s': '%s' looks like a port, but the third "
                                  "part is a header name; a binding's host has no port",
                                  key, h);
        if (n == 0 || n > SECRET_HEADER_MAX ||
            strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                      "!#$%&'*+-.^_`|~") != n)
                return ak_err_set(err, EINVAL,
                                  "secret binding for '%s': '%.*s' is not an HTTP header name", key,
                                  (int)(n > 80 ? 80 : n), h);
        return 0;
}

int secret_binding_parse(const char *s, struct secret_binding *ret, struct ak_err *err)
{
        cleanup_secret_binding struct secret_binding b = {0};
        const char *eq = strchr(s, '='), *colon;
        size_t n = strnlen(s, BINDING_TEXT_MAX + 1);
        int r;

        if (n > BINDING_TEXT_MAX)
                return ak_err_set(err, EINVAL, "a secret binding is at most %u bytes",
                                  (unsigned)BINDING_TEXT_MAX);
        if (eq) {
                /* KEY=value:host: the last ':' ends the value (which may hold ':') */
                b.key = strndup(s, (size_t)(eq - s));
                if (!b.key)
                        return ak_err_oom(err);
                if ((r = vault_name_check(b.key, err)) < 0) {
                        (void)ak_err_prefix(err, "secret binding");
                        return r;
                }
                colon = strrchr(eq + 1, ':');
                if (!colon)
                        return ak_err_set(err, EINVAL,
                                          "invalid secret binding for '%s': expected "
                                          "KEY=value:host",
                                          b.key);
                b.value_len = (size_t)(colon - (eq + 1));
                if (b.value_len == 0)
                        return ak_err_set(err, EINVAL,
                                          "invalid secret binding for '%s': the value is empty",
                                          b.key);
                b.value = strndup(eq + 1, b.value_len);
                b.host = strdup(colon + 1);
                if (!b.value || !b.host)
                        return ak_err_oom(err);
                if ((r = vault_value_check(b.value, b.value_len, err)) < 0) {
                        (void)ak_err_prefix(err, "secret binding for '%s'", b.key);
                        return r;
                }
        } else {
                const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c1)
                        return ak_err_set(err, EINVAL,
                                          "invalid secret binding '%.*s': expected KEY:host or "
                                          "KEY=value:host",
                                          (int)(n > 80 ? 80 : n), s);
                b.key = strndup(s, (size_t)(c1 - s));
                b.host = c2 ? strndup(c1 + 1, (size_t)(c2 - c1 - 1)) : strdup(c1 + 1);
                if (!b.key || !b.host)
                        return ak_err_oom(err);
                if ((r = vault_name_check(b.key, err)) < 0) {
                        (void)ak_err_prefix(err, "secret binding");
                        return r;
                }
                if (c2) {
                        if (!(b.header = strdup(c2 + 1)))
                                return ak_err_oom(err);
                        if ((r = check_header(b.key, b.header, err)) < 0)
                                return r;
                }
        }
        if ((r = check_host(b.key, b.host, err)) < 0)
                return r;
        /* upstream: Authorization with "Bearer ", or the named header with the raw value */
        if (!(b.prefix = strdup(b.header ? "" : "Bearer ")) ||
            (!b.header && !(b.header = strdup("Authorization"))))
                return ak_err_oom(err);
        *ret = b;
        memset(&b, 0, sizeof(b));
        return 0;
}

char *secret_binding_format(const struct secret_binding *b)
{
        char *s = NULL;
        bool named = b->prefix && !b->prefix[0];

        if (asprintf(&s, "%s:%s%s%s", b->key, b->host, named ? ":" : "", named ? b->header : "") <
            0)
                return NULL;
        return s;
}

int secret_file_parse(const char *s, char **ret_key, char **ret_path, struct ak_err *err)
{
        const char *colon = strchr(s, ':');
        cleanup_free char *key = colon ? strndup(s, (size_t)(colon - s)) : strdup(s);
        cleanup_free char *path = NULL;
        int r;

        if (!key)
                return ak_err_oom(err);
        if ((r = vault_name_check(key, err)) < 0 ||
            (colon && (r = validate_sandbox_path(colon + 1, err)) < 0)) {
                (void)ak_err_prefix(err, "secret file");
                return r;
        }
        if (colon)
                path = strdup(colon + 1);
        else if (asprintf(&path, "%s/%s", SECRET_FILES_DIR, key) < 0)
                path = NULL;
        if (!path)
                return ak_err_oom(err);
        *ret_key = TAKE_PTR(key);
        *ret_path = TAKE_PTR(path);
        return 0;
}

void secret_placeholder(char out[SECRET_PLACEHOLDER_LEN + 1])
{
        memcpy(out, SECRET_PLACEHOLDER_PREFIX, sizeof(SECRET_PLACEHOLDER_PREFIX) - 1);
        random_hex(out + sizeof(SECRET_PLACEHOLDER_PREFIX) - 1, 16);
}

bool secret_has_placeholder(const char *s)
{
        for (const char *p = strstr(s, SECRET_PLACEHOLDER_PREFIX); p;
             p = strstr(p + 1, SECRET_PLACEHOLDER_PREFIX)) {
                const char *h = p + sizeof(SECRET_PLACEHOLDER_PREFIX) - 1;
                if (strspn(h, "0123456789abcdef") >= 32)
                        return true;
        }
        return false;
}
