// SPDX-License-Identifier: Apache-2.0
/* Sources (core/source.h): the URL and ref checks, and the clone inside the sandbox. */
#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/manager.h"
#include "core/state.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/net-mode.h"
#include "shared/net-policy.h"

#define CLONE_OUTPUT_MAX (64u << 10)

static const struct {
        const char *prefix;
        uint16_t port;
} schemes[] = {
    {"https://", 443},
    {"http://", 80},
    {"ssh://", 22},
    {"git://", 9418},
};

const char *source_url_strip(const char *url)
{
        return strncmp(url, "git:", 4) == 0 && strncmp(url, "git://", 6) != 0 ? url + 4 : url;
}

static bool host_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.';
}

/* Characters a URL's path, user or query may have (RFC 3986's, less the space and '\'). */
static bool url_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               strchr("-._~:/?#[]@!$&'()*+,;=%", c);
}

/* Parses host[:port] at s up to the first '/' (URL form) or ':' (scp form: no port). */
static int parse_host(const char *s, bool scp, char *host, size_t len, uint16_t *port,
                      const char **end)
{
        size_t n = 0;

        while (host_char(s[n]))
                n++;
        if (n == 0 || n >= len || s[0] == '-' || s[0] == '.')
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        s += n;
        if (!scp && *s == ':') {
                char *e;
                unsigned long p = strtoul(s + 1, &e, 10);
                if (e == s + 1 || p == 0 || p > 65535)
                        return -EINVAL;
                *port = (uint16_t)p;
                s = e;
        }
        *end = s;
        return 0;
}

/* A user name before '@': letters, digits, -_. and not an option (ssh reads "-o..." as one). */
static bool user_ok(const char *s, const char *at)
{
        if (s == at || *s == '-')
                return false;
        for (const char *u = s; u < at; u++)
                if (!host_char(*u) && *u != '_')
                        return false;
        return true;
}

int source_url_host(const char *url, char *host, size_t len, uint16_t *ret_port)
{
        const char *s = source_url_strip(url), *rest, *at;
        uint16_t port = 0;

        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
                size_t pl = strlen(schemes[i].prefix);
                if (strncmp(s, schemes[i].prefix, pl) != 0)
                        continue;
                s += pl;
                port = schemes[i].port;
                /* user@ (userinfo) before the host, within the authority */
                at = strchr(s, '@');
                if (at && at < s + strcspn(s, "/")) {
                        if (!user_ok(s, at))
                                return -EINVAL;
                        s = at + 1;
                }
                if (parse_host(s, false, host, len, &port, &rest) < 0 ||
                    (*rest != '/' && *rest != '\0'))
                        return -EINVAL;
                *ret_port = port;
                return 0;
        }
        /* scp-like user@host:path (ssh) */
        at = strchr(s, '@');
        if (!at || at == s || strchr(s, '/') < at)
                return -EINVAL;
        if (!user_ok(s, at))
                return -EINVAL;
        if (parse_host(at + 1, true, host, len, &port, &rest) < 0 || *rest != ':' || !rest[1])
                return -EINVAL;
        *ret_port = 22;
        return 0;
}

static int check_url(const char *url, struct ak_err *err)
{
        const char *s = source_url_strip(url);
        char host[256];
        uint16_t port;
        size_t n = strlen(url);

        if (n == 0 || n > SOURCE_URL_MAX)
                return ak_err_set(err, EINVAL, "source URL: must be 1 to %d bytes", SOURCE_URL_MAX);
        for (const char *p = s; *p; p++)
                if (!url_char(*p))
                        return ak_err_set(err, EINVAL,
                                          "source URL: character 0x%02x is not allowed",
                                          (unsigned char)*p);
        if (s[0] == '-')
                return ak_err_set(err, EINVAL, "source URL: must not start with '-'");
        if (strstr(s, "::"))
                return ak_err_set(err, EINVAL,
                                  "source URL '%.64s': git transports (ext::, fd::, ...) are not "
                                  "allowed: use https://, http://, ssh://, git:// or "
                                  "user@host:path",
                                  s);
        if (source_url_host(s, host, sizeof(host), &port) < 0)
                return ak_err_set(err, EINVAL,
                                  "source URL '%.64s': use https://HOST/PATH, http://, ssh://, "
                                  "git:// or user@host:path (no local paths or file://)",
                                  s);
        return 0;
}

static int check_ref(const char *ref, struct ak_err *err)
{
        size_t n = strlen(ref);

        if (n == 0 || n > SOURCE_REF_MAX)
                return ak_err_set(err, EINVAL, "git ref: must be 1 to %d bytes", SOURCE_REF_MAX);
        if (ref[0] == '-' || ref[0] == '/' || ref[0] == '.' || ref[n - 1] == '/' ||
            ref[n - 1] == '.' || strstr(ref, "..") || strstr(ref, "//") || strstr(ref, "@{") ||
            strstr(ref, "/.") || (n >= 5 && strcmp(ref + n - 5, ".lock") == 0))
                return ak_err_set(err, EINVAL,
                                  "git ref '%.64s' is not a valid branch, tag or "
                                  "commit name",
                                  ref);
        for (const char *p = ref; *p; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '/'))
                        return ak_err_set(err, EINVAL,
                                          "git ref '%.64s': only letters, digits and -_./ are "
                                          "allowed",
                                          ref);
        }
        return 0;
}

int source_check(const char *url, const char *ref, struct ak_err *err)
{
        int r;

        if (ref && !url)
                return ak_err_set(err, EINVAL, "--git-ref requires --source");
        if (url && (r = check_url(url, err)) < 0)
                return r;
        if (ref && (r = check_ref(ref, err)) < 0)
                return r;
        return 0;
}

int source_check_reachable(const struct sandbox_state *st, int net_mode, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL;
        struct net_decision d;
        char host[256];
        uint16_t port;
        int r;

        if (!st->source_url)
                return 0;
        if (net_mode == NET_MODE_NONE)
                return ak_err_set(err, EPERM,
                                  "--source needs the network to clone '%.64s', and this sandbox "
                                  "has none: use --network proxy --allow-host HOST (or its "
                                  "profile's network)",
                                  st->source_url);
        if (net_mode != NET_MODE_PROXY)
                return 0;
        if (source_url_host(st->source_url, host, sizeof(host), &port) < 0)
                return ak_err_set(err, EINVAL, "source URL: no host");
        r = st->network_policy ? net_policy_from_json(st->network_policy, &p, err)
                               : net_policy_builtin(&p, err);
        if (r < 0)
                return r;
        if (net_policy_decide(p, host, NULL, port, NULL, &d) == NET_ALLOW)
                return 0;
        return ak_err_set(err, EPERM,
                          "the sandbox's network policy does not allow '%s' port %u (%s), where "
                          "--source clones from: add --allow-host %s:%u (or allow it in "
                          "[security.domains])",
                          host, port, d.why, host, port);
}

/* The last line or two of git's message, for the error. */
static const char *tail_of(struct buf *b)
{
        char *s;
        size_t n;

        if (!b->len || buf_append(b, "", 1) < 0)
                return "no output";
        s = b->data;
        n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
                s[--n] = '\0';
        for (size_t lines = 0; n; n--)
                if (s[n - 1] == '\n' && ++lines == 2)
                        break;
        return s + n;
}

static int run(struct manager *m, const char *name, char *const *argv, char *const *env,
               const char *what, struct ak_err *err)
{
        cleanup_exec_capture struct exec_capture c = EXEC_CAPTURE_INIT;
        struct agent_exec_opts x = {
            .argv = argv,
            .env = env,
            .timeout_ms = SOURCE_CLONE_TIMEOUT_MS,
        };
        int r = manager_exec_capture(m, name, &x, CLONE_OUTPUT_MAX, &c, err);

        if (r < 0 || !what)
                return r;
        if (c.exit.code != 0)
                return ak_err_set(err, EIO, "%s failed%s: %s", what,
                                  c.exit.timed_out ? " (timed out)" : "", tail_of(&c.err));
        return 0;
}

int manager_clone_source(struct manager *m, const char *name, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        char *const install[] = {
            "sh", "-c",
            "command -v git >/dev/null 2>&1 || apk add --no-cache git >/dev/null 2>&1 || "
            "{ apt-get update -qq && apt-get install -y -qq git; } >/dev/null 2>&1 || "
            "yum install -y git >/dev/null 2>&1 || true",
            NULL};
        /* only these transports, whatever the URL says; no prompt for credentials */
        char *const env[] = {"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
                             "GIT_SSH_COMMAND=ssh -o BatchMode=yes", NULL};
        const char *url;
        char msg[96];
        int r;

        if ((r = manager_get(m, name, &st, err)) < 0)
                return r;
        if (!st->source_url)
                return 0;
        if ((r = source_check(st->source_url, st->source_ref, err)) < 0)
                return r;
        url = source_url_strip(st->source_url);
        if ((r = run(m, name, install, NULL, NULL, err)) < 0)
                return r;
        {
                char *const clone[] = {"git",
                                       "-c",
                                       "protocol.allow=never",
                                       "-c",
                                       "protocol.https.allow=always",
                                       "-c",
                                       "protocol.http.allow=always",
                                       "-c",
                                       "protocol.ssh.allow=always",
                                       "-c",
                                       "protocol.git.allow=always",
                                       "clone",
                                       "--quiet",
                                       "--no-recurse-submodules",
                                       "--",
                                       (char *)url,
                                       "/workspace",
                                       NULL};
                snprintf(msg, sizeof(msg), "cloning '%.64s'", url);
                if ((r = run(m, name, clone, env, msg, err)) < 0)
                        return r;
        }
        if (st->source_ref) {
                char *const checkout[] = {
                    "git",      "-C",      "/workspace",   "-c", "advice.detachedHead=false",
                    "checkout", "--quiet", st->source_ref, "--", NULL};
                snprintf(msg, sizeof(msg), "checking out '%.64s'", st->source_ref);
                if ((r = run(m, name, checkout, env, msg, err)) < 0)
                        return r;
        }
        return 0;
}
