/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Distribution API client. One curl easy handle per repository (connection reuse); one request
 * at a time. A request that gets 401 learns the challenge from WWW-Authenticate, obtains a token
 * from the realm (or uses basic credentials) and is retried once. Redirects (blob storage on
 * another host) are followed here, hop by hop, and our Authorization header is sent only to the
 * origin it was meant for.
 *
 * Where it connects is not the request's choice: an image name, a redirect or a token realm may
 * name any host, and the puller must not become a way to reach loopback services, the private
 * network or a cloud metadata service (SSRF). Every socket curl opens goes through open_socket,
 * which sees the address actually connected (after DNS, on every hop) and refuses one that
 * image_addr_public() rejects unless the hop's host was configured by the user
 * (image_registry_may_be_private: the insecure list or the mirror) or it is a proxy the
 * environment names. Host names that are such addresses are refused before any connection.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sha256.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "image/manifest.h"
#include "image/ref.h"
#include "image/registry.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/text-util.h"

#define CONNECT_TIMEOUT_S 30L
#define STALL_TIMEOUT_S 60L /* a transfer under 1 byte/s for this long fails */
#define TOKEN_MAX_BYTES (1u << 20)
#define HEADER_VALUE_MAX 4096u
#define DOCKER_CONFIG_MAX (1u << 20)
#define REDIRECTS_MAX 5
#define PROXY_ADDRS_MAX 8

struct registry {
        CURL *curl;
        char *host;
        char *repository;
        char *bases[2]; /* endpoints to try, e.g. the mirror then the origin */
        size_t n_bases, base;
        char *authz; /* "Authorization: ..." for the registry, once known */
        char *basic; /* base64 user:pass from config.json, or NULL */
        /* the current response's status and headers */
        long status;
        char ctype[256];
        char digest[80];
        char challenge[HEADER_VALUE_MAX];
        /* the connection policy of the current hop (see the top of this file) */
        bool hop_private_ok;
        char hop_host[256];
        char refused[INET6_ADDRSTRLEN + 2]; /* an address open_socket refused, or "" */
        struct {
                struct sockaddr_storage addr;
                unsigned port; /* 0: none given (curl's 1080, or the scheme's) */
        } proxies[PROXY_ADDRS_MAX];
        size_t n_proxies;
};

/* Where a response body goes: memory (bounded) or a file, hashed on the way. */
struct sink {
        struct buf *mem;
        size_t max;
        int fd;
        SHA256_CTX sha;
        uint64_t got, limit;
        bool overflow;
        int write_err;
        const long *status; /* the response's status: a redirect's body is dropped */
};

static bool is_redirect(long status)
{
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static size_t sink_write(char *data, size_t sz, size_t nm, void *p)
{
        struct sink *s = p;
        size_t n = sz * nm;

        if (s->status && is_redirect(*s->status))
                return n;
        if (s->got + n > s->limit) {
                s->overflow = true;
                return 0;
        }
        if (s->mem) {
                if (buf_append(s->mem, data, n) < 0) {
                        s->write_err = ENOMEM;
                        return 0;
                }
        } else if (s->fd >= 0) {
                int r = write_all(s->fd, data, n);
                if (r < 0) {
                        s->write_err = -r;
                        return 0;
                }
        }
        SHA256Update(&s->sha, (const uint8_t *)data, n);
        s->got += n;
        return n;
}

static void copy_value(char *dst, size_t len, const char *v, size_t n)
{
        while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
                n--;
        while (n && *v == ' ') {
                v++;
                n--;
        }
        if (n >= len)
                n = len - 1;
        memcpy(dst, v, n);
        dst[n] = '\0';
}

static size_t on_header(char *data, size_t sz, size_t nm, void *p)
{
        struct registry *r = p;
        size_t n = sz * nm;
        static const struct {
                const char *name;
                size_t off, len;
        } keep[] = {
            {"content-type:", offsetof(struct registry, ctype),
             sizeof(((struct registry *)0)->ctype)},
            {"docker-content-digest:", offsetof(struct registry, digest),
             sizeof(((struct registry *)0)->digest)},
            {"www-authenticate:", offsetof(struct registry, challenge),
             sizeof(((struct registry *)0)->challenge)},
        };

        if (n >= 5 &&
            strncmp(data, "HTTP/", 5) == 0) { /* a new response (1xx, then the real one) */
                const char *sp = memchr(data, ' ', n);
                r->ctype[0] = r->digest[0] = r->challenge[0] = '\0';
                r->status = sp && sp + 4 <= data + n ? strtol(sp + 1, NULL, 10) : 0;
                return n;
        }
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
                size_t kl = strlen(keep[i].name);
                if (n > kl && strncasecmp(data, keep[i].name, kl) == 0)
                        copy_value((char *)r + keep[i].off, keep[i].len, data + kl, n - kl);
        }
        return n;
}

/* ---- credentials ---- */

/* The base64 "auth" of config.json for host, or NULL. Docker Hub is stored under its v1 URL. */
static char *docker_config_auth(const char *host)
{
        const char *dir = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
        cleanup_free char *path = NULL;
        cleanup_buf struct buf b = {0};
        json_t *root, *auths, *v;
        const char *k;
        char *out = NULL;

        if (dir && *dir ? asprintf(&path, "%s/config.json", dir) < 0
                        : !home || asprintf(&path, "%s/.docker/config.json", home) < 0)
                return NULL;
        if (read_file_at(AT_FDCWD, path, &b, DOCKER_CONFIG_MAX) < 0)
                return NULL;
        root = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        auths = json_object_get(root, "auths");
        json_object_foreach (auths, k, v) {
                const char *h = k, *a;
                size_t hl;
                if (strncmp(h, "https://", 8) == 0)
                        h += 8;
                else if (strncmp(h, "http://", 7) == 0)
                        h += 7;
                hl = strcspn(h, "/");
                if (streq(host, DOCKER_HUB) && hl == 15 && strncmp(h, "index.docker.io", 15) == 0)
                        hl = strlen(host), h = host;
                if (hl != strlen(host) || strncmp(h, host, hl) != 0)
                        continue;
                a = json_string_value(json_object_get(v, "auth"));
                if (a && *a) {
                        out = strdup(a);
                } else {
                        const char *u = json_string_value(json_object_get(v, "username"));
                        const char *pw = json_string_value(json_object_get(v, "password"));
                        cleanup_free char *plain = NULL;
                        if (u && pw && asprintf(&plain, "%s:%s", u, pw) >= 0) {
                                out = malloc(base64_encoded_len(strlen(plain)) + 1);
                                if (out)
                                        base64_encode(plain, strlen(plain), out);
                        }
                }
                break;
        }
        json_decref(root);
        return out;
}

/* ---- where connections may go ---- */

static void addr_string(const struct sockaddr *sa, char *out, size_t len)
{
        const void *a =
            sa->sa_family == AF_INET6
                ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
                : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        if (!inet_ntop(sa->sa_family, a, out, (socklen_t)len))
                (void)snprintf(out, len, "?");
}

static unsigned addr_port(const struct sockaddr *a)
{
        return ntohs(a->sa_family == AF_INET6
                         ? ((const struct sockaddr_in6 *)(const void *)a)->sin6_port
                         : ((const struct sockaddr_in *)(const void *)a)->sin_port);
}

/* Whether a is address b (any port). */
static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
        if (a->sa_family != b->ss_family)
                return false;
        if (a->sa_family == AF_INET)
                return !memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
                               &((const struct sockaddr_in *)(const void *)b)->sin_addr,
                               sizeof(struct in_addr));
        return a->sa_family == AF_INET6 &&
               !memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                       sizeof(struct in6_addr));
}

static bool is_proxy(const struct registry *r, const struct sockaddr *sa)
{
        unsigned port = addr_port(sa);

        for (size_t i = 0; i < r->n_proxies; i++) {
                unsigned want = r->proxies[i].port;
                if (same_addr(sa, &r->proxies[i].addr) &&
                    (want ? port == want : port == 1080 || port == 80 || port == 443))
                        return true;
        }
        return false;
}

/* The addresses of the proxies the environment names, as curl reads it (HTTP_PROXY in capitals
 * is ignored, as curl does): the user's choice, so reachable wherever they are. */
static void load_proxies(struct registry *r)
{
        static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                           "ALL_PROXY"};

        for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
                const char *v = getenv(vars[i]);
                CURLU *u;
                char *host = NULL, *port = NULL;
                struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;

                if (!v || !*v || !(u = curl_url()))
                        continue;
                if (curl_url_set(u, CURLUPART_URL, v,
                                 CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
                    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
                        size_t hl = strlen(host);
                        if (hl > 2 && host[0] == '[') {
                                memmove(host, host + 1, hl - 2);
                                host[hl - 2] = '\0';
                        }
                        unsigned p = curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK
                                         ? (unsigned)strtoul(port, NULL, 10)
                                         : 0;
                        if (getaddrinfo(host, NULL, &hints, &res) == 0) {
                                for (struct addrinfo *a = res; a && r->n_proxies < PROXY_ADDRS_MAX;
                                     a = a->ai_next) {
                                        if (a->ai_addrlen > sizeof(r->proxies[0].addr))
                                                continue;
                                        memcpy(&r->proxies[r->n_proxies].addr, a->ai_addr,
                                               a->ai_addrlen);
                                        r->proxies[r->n_proxies++].port = p;
                                }
                                freeaddrinfo(res);
                        }
                }
                curl_free(host);
                curl_free(port);
                curl_url_cleanup(u);
        }
}

/* Every socket curl opens: the address is the one actually connected, after DNS. */
static curl_socket_t open_socket(void *p, curlsocktype purpose, struct curl_sockaddr *a)
{
        struct registry *r = p;
        const struct sockaddr *sa = &a->addr;

        if (purpose == CURLSOCKTYPE_IPCXN && !r->hop_private_ok && !image_addr_public(sa) &&
            !is_proxy(r, sa)) {
                addr_string(sa, r->refused, sizeof(r->refused));
                return CURL_SOCKET_BAD;
        }
        return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* scheme://host:port of url (default ports filled in) into origin, its host and port. */
static int url_origin(const char *url, char *origin, size_t olen, char *host, size_t hlen,
                      unsigned *ret_port)
{
        CURLU *u = curl_url();
        char *sc = NULL, *h = NULL, *port = NULL;
        int r = -EINVAL;

        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_SCHEME, &sc, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
            strlen(h) < hlen) {
                (void)snprintf(origin, olen, "%s://%s:%s", sc, h, port);
                (void)snprintf(host, hlen, "%s", h);
                *ret_port = (unsigned)strtoul(port, NULL, 10);
                r = 0;
        }
        curl_free(sc);
        curl_free(h);
        curl_free(port);
        curl_url_cleanup(u);
        return r;
}

/* Sets the connection policy for a request to url; refuses a host that is itself a private
 * address or a loopback name (a proxy would otherwise resolve it for us). */
static int hop_begin(struct registry *r, const char *url, char *origin, size_t olen,
                     struct ak_err *err)
{
        char host[256], bare[256];
        unsigned port = 0;
        size_t hl;
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
        } a = {0};

        if (url_origin(url, origin, olen, host, sizeof(host), &port) < 0)
                return ak_err_set(err, EINVAL, "invalid URL '%.200s'", url);
        (void)snprintf(r->hop_host, sizeof(r->hop_host), "%s:%u", host, port);
        r->refused[0] = '\0';
        r->hop_private_ok = image_registry_may_be_private(host, port);
        if (r->hop_private_ok)
                return 0;
        hl = strlen(host);
        (void)snprintf(bare, sizeof(bare), "%.*s", (int)(host[0] == '[' ? hl - 2 : hl),
                       host[0] == '[' ? host + 1 : host);
        if (inet_pton(AF_INET, bare, &a.in.sin_addr) == 1)
                a.sa.sa_family = AF_INET;
        else if (inet_pton(AF_INET6, bare, &a.in6.sin6_addr) == 1)
                a.sa.sa_family = AF_INET6;
        hl = strlen(bare);
        if ((a.sa.sa_family && !image_addr_public(&a.sa)) || strcasecmp(bare, "localhost") == 0 ||
            (hl > 10 && strcasecmp(bare + hl - 10, ".localhost") == 0))
                return ak_err_set(err, EACCES,
                                  "refusing to contact '%s': a loopback or private address is "
                                  "used only for a registry you configured; add '%s' to "
                                  "[images] insecure_registries (or "
                                  "AGENTKERNEL_INSECURE_REGISTRIES)",
                                  r->hop_host, r->hop_host);
        return 0;
}

/* ---- requests ---- */

static char *base_url(const char *host)
{
        char *s = NULL;
        const char *h = streq(host, DOCKER_HUB) ? "registry-1.docker.io" : host;

        if (asprintf(&s, "%s://%s", image_registry_insecure(host) ? "http" : "https", h) < 0)
                return NULL;
        return s;
}

int registry_open(const char *host, const char *repository, struct registry **ret,
                  struct ak_err *err)
{
        cleanup_registry struct registry *r = calloc(1, sizeof(*r));
        const char *mirror = getenv("AGENTKERNEL_REGISTRY_MIRROR");

        if (!r)
                return ak_err_oom(err);
        r->host = strdup(host);
        r->repository = strdup(repository);
        if (mirror && *mirror && streq(host, DOCKER_HUB)) {
                if (strstr(mirror, "://"))
                        r->bases[r->n_bases] = strdup(mirror);
                else
                        r->bases[r->n_bases] = base_url(mirror);
                if (r->bases[r->n_bases]) {
                        size_t l = strlen(r->bases[r->n_bases]);
                        while (l && r->bases[r->n_bases][l - 1] == '/')
                                r->bases[r->n_bases][--l] = '\0';
                        r->n_bases++;
                }
        }
        r->bases[r->n_bases] = base_url(host);
        if (r->bases[r->n_bases])
                r->n_bases++;
        r->curl = curl_easy_init();
        r->basic = docker_config_auth(host);
        load_proxies(r);
        if (!r->host || !r->repository || !r->curl || r->n_bases == 0)
                return ak_err_oom(err);
        *ret = TAKE_PTR(r);
        return 0;
}

void registry_free(struct registry *r)
{
        if (!r)
                return;
        if (r->curl)
                curl_easy_cleanup(r->curl);
        free(r->host);
        free(r->repository);
        for (size_t i = 0; i < r->n_bases; i++)
                free(r->bases[i]);
        free(r->authz);
        free(r->basic);
        free(r);
}

/* The value of key="..." (or key=token) in a challenge's parameter list. */
static bool challenge_param(const char *ch, const char *key, char *out, size_t len)
{
        size_t kl = strlen(key);

        for (const char *p = ch; (p = strcasestr(p, key)); p += kl) {
                const char *v;
                size_t n;
                if (p != ch && p[-1] != ' ' && p[-1] != ',')
                        continue;
                if (p[kl] != '=')
                        continue;
                v = p + kl + 1;
                if (*v == '"') {
                        const char *e = strchr(++v, '"');
                        if (!e)
                                return false;
                        n = (size_t)(e - v);
                } else {
                        n = strcspn(v, ", ");
                }
                if (n >= len)
                        return false;
                memcpy(out, v, n);
                out[n] = '\0';
                return true;
        }
        return false;
}

struct progress_ctx {
        registry_progress_fn fn;
        void *ctx;
        uint64_t total;
};

static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult,
                       curl_off_t uln)
{
        struct progress_ctx *pc = p;
        (void)dltotal;
        (void)ult;
        (void)uln;
        if (pc && pc->fn)
                pc->fn(pc->ctx, (uint64_t)dlnow, pc->total);
        return 0;
}

/* One GET of one hop. Returns the HTTP status (>= 100) or a negative errno with err set. */
static long perform_once(struct registry *r, const char *url, const char *accept, const char *authz,
                         struct sink *s, struct progress_ctx *pc, struct ak_err *err)
{
        struct curl_slist *h = NULL;
        char accept_h[512];
        long status = 0;
        CURLcode c;

        curl_easy_reset(r->curl);
        if (accept) {
                (void)snprintf(accept_h, sizeof(accept_h), "Accept: %s", accept);
                h = curl_slist_append(h, accept_h);
        }
        if (authz)
                h = curl_slist_append(h, authz);
        curl_easy_setopt(r->curl, CURLOPT_URL, url);
        curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(r->curl, CURLOPT_FOLLOWLOCATION, 0L); /* followed by perform() */
        curl_easy_setopt(r->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(r->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(r->curl, CURLOPT_OPENSOCKETDATA, r);
        curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
        curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
        curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(r->curl, CURLOPT_USERAGENT,
                         "agentkernel/"
                         "0.1");
        curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(r->curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(r->curl, CURLOPT_HEADERDATA, r);
        if (pc && pc->fn) {
                curl_easy_setopt(r->curl, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(r->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(r->curl, CURLOPT_XFERINFODATA, pc);
        }
        r->status = 0;
        r->ctype[0] = r->digest[0] = r->challenge[0] = '\0';
        s->status = &r->status;
        c = curl_easy_perform(r->curl);
        s->status = NULL;
        curl_slist_free_all(h);
        if (r->refused[0])
                return ak_err_set(err, EACCES,
                                  "refusing to connect to %s for '%s': a loopback or private "
                                  "address is used only for a registry you configured; add '%s' "
                                  "to [images] insecure_registries (or "
                                  "AGENTKERNEL_INSECURE_REGISTRIES)",
                                  r->refused, r->hop_host, r->hop_host);
        if (s->write_err)
                return ak_err_errno(err, s->write_err, "writing download");
        if (s->overflow)
                return ak_err_set(err, EFBIG, "'%s' sent more than the %llu bytes expected", url,
                                  (unsigned long long)s->limit);
        if (c != CURLE_OK)
                return ak_err_set(err, c == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : ECONNREFUSED,
                                  "cannot reach '%s': %s", url, curl_easy_strerror(c));
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
        return status;
}

static int sink_reset(struct sink *s);

/* One GET, following redirects (blob storage on another host) hop by hop: each hop gets the
 * connection policy of its own host, and authz goes only to the origin of url. Returns the HTTP
 * status (>= 100) or a negative errno with err set. */
static long perform(struct registry *r, const char *url, const char *accept, const char *authz,
                    struct sink *s, struct progress_ctx *pc, struct ak_err *err)
{
        cleanup_free char *cur = strdup(url);
        char origin[600], hop_origin[600];
        long st;
        int k;

        if (!cur)
                return ak_err_oom(err);
        for (int hop = 0;; hop++) {
                char *next = NULL;
                k = hop_begin(r, cur, hop ? hop_origin : origin,
                              hop ? sizeof(hop_origin) : sizeof(origin), err);
                if (k < 0)
                        return k;
                st = perform_once(r, cur, accept, !hop || streq(hop_origin, origin) ? authz : NULL,
                                  s, pc, err);
                if (st < 0 || !is_redirect(st))
                        return st;
                if (curl_easy_getinfo(r->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next)
                        return st;
                if (hop == REDIRECTS_MAX)
                        return ak_err_set(err, ELOOP, "more than %d redirects from '%s'",
                                          REDIRECTS_MAX, url);
                if (strncmp(next, "https://", 8) != 0 && strncmp(next, "http://", 7) != 0)
                        return ak_err_set(err, EACCES, "'%s' redirected to a non-HTTP URL", url);
                free(cur);
                cur = strdup(next);
                if (!cur)
                        return ak_err_oom(err);
                k = sink_reset(s);
                if (k < 0)
                        return ak_err_errno(err, k, "reset download");
        }
}

static int sink_reset(struct sink *s)
{
        SHA256Init(&s->sha);
        s->got = 0;
        s->overflow = false;
        s->write_err = 0;
        if (s->mem)
                buf_reset(s->mem);
        if (s->fd >= 0) {
                if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
                        return -errno;
        }
        return 0;
}

/* Gets a token for the challenge in r->challenge (or sets basic auth). */
static int authenticate(struct registry *r, struct ak_err *err)
{
        char realm[1024], service[512], scope[1024], url[4096];
        cleanup_buf struct buf body = {0};
        struct sink s = {.mem = &body, .fd = -1, .limit = TOKEN_MAX_BYTES};
        cleanup_free char *basic_h = NULL;
        cleanup_free char *esc_service = NULL;
        cleanup_free char *esc_scope = NULL;
        char want_scope[1024];
        json_t *o;
        const char *tok;
        long st;

        if (strncasecmp(r->challenge, "Basic", 5) == 0) {
                if (!r->basic)
                        return ak_err_set(err, EACCES,
                                          "registry '%s' needs a login; add it to "
                                          "~/.docker/config.json (docker login %s)",
                                          r->host, r->host);
                free(r->authz);
                if (asprintf(&r->authz, "Authorization: Basic %s", r->basic) < 0)
                        r->authz = NULL;
                return r->authz ? 0 : -ENOMEM;
        }
        if (strncasecmp(r->challenge, "Bearer", 6) != 0 ||
            !challenge_param(r->challenge, "realm", realm, sizeof(realm)))
                return ak_err_set(err, EACCES, "registry '%s' refused access (challenge '%.200s')",
                                  r->host, r->challenge);
        if (strncmp(realm, "https://", 8) != 0 && strncmp(realm, "http://", 7) != 0)
                return ak_err_set(err, EACCES, "registry '%s' sent a bad token realm", r->host);
        (void)snprintf(want_scope, sizeof(want_scope), "repository:%s:pull", r->repository);
        if (!challenge_param(r->challenge, "scope", scope, sizeof(scope)))
                (void)snprintf(scope, sizeof(scope), "%s", want_scope);
        esc_scope = curl_easy_escape(r->curl, scope, 0);
        if (challenge_param(r->challenge, "service", service, sizeof(service)))
                esc_service = curl_easy_escape(r->curl, service, 0);
        (void)snprintf(url, sizeof(url), "%s%sscope=%s%s%s", realm, strchr(realm, '?') ? "&" : "?",
                       esc_scope ? esc_scope : "", esc_service ? "&service=" : "",
                       esc_service ? esc_service : "");
        if (r->basic && asprintf(&basic_h, "Authorization: Basic %s", r->basic) < 0)
                basic_h = NULL;
        SHA256Init(&s.sha);
        st = perform(r, url, "application/json", basic_h, &s, NULL, err);
        if (st < 0)
                return (int)st;
        if (st == 401 || st == 403)
                return ak_err_set(err, EACCES, "registry '%s' refused the credentials for '%s'%s",
                                  r->host, r->repository,
                                  r->basic ? "" : " (no login in ~/.docker/config.json)");
        if (st != 200)
                return ak_err_set(err, EACCES, "token service of '%s' answered HTTP %ld", r->host,
                                  st);
        o = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        tok = json_string_value(json_object_get(o, "token"));
        if (!tok || !*tok)
                tok = json_string_value(json_object_get(o, "access_token"));
        free(r->authz);
        r->authz = NULL;
        if (tok && *tok && strlen(tok) < 64 * 1024 &&
            asprintf(&r->authz, "Authorization: Bearer %s", tok) < 0)
                r->authz = NULL;
        json_decref(o);
        if (!r->authz)
                return ak_err_set(err, EACCES, "token service of '%s' sent no token", r->host);
        return 0;
}

/* GET base/v2/<repo>/<kind>/<ref> into s, authenticating as needed, over each endpoint. */
static int get(struct registry *r, const char *kind, const char *ref, const char *accept,
               struct sink *s, struct progress_ctx *pc, struct ak_err *err)
{
        char url[2048];
        long st = 0;
        int k = 0;

        for (; r->base < r->n_bases; r->base++) {
                (void)snprintf(url, sizeof(url), "%s/v2/%s/%s/%s", r->bases[r->base], r->repository,
                               kind, ref);
                for (int attempt = 0; attempt < 2; attempt++) {
                        k = sink_reset(s);
                        if (k < 0)
                                return ak_err_errno(err, k, "reset download");
                        st = perform(r, url, accept, r->authz, s, pc, err);
                        if (st == 401 && attempt == 0) {
                                k = authenticate(r, err);
                                if (k < 0)
                                        return k;
                                continue;
                        }
                        break;
                }
                if (st >= 200 && st < 300)
                        return 0;
                /* A mirror that fails or lacks the image: try the next endpoint. */
                if (r->base + 1 < r->n_bases && (st < 0 || st == 404 || st >= 500)) {
                        free(r->authz);
                        r->authz = NULL;
                        continue;
                }
                break;
        }
        if (st < 0)
                return (int)st;
        if (st == 404)
                return ak_err_set(err, ENOENT, "%s '%s' not found in %s/%s",
                                  streq(kind, "manifests") ? "image" : "blob", ref, r->host,
                                  r->repository);
        if (st == 401 || st == 403)
                return ak_err_set(err, EACCES, "registry '%s' denied access to '%s' (HTTP %ld)",
                                  r->host, r->repository, st);
        return ak_err_set(err, EIO, "registry '%s' answered HTTP %ld for %s '%s'", r->host, st,
                          kind, ref);
}

static void sink_digest(struct sink *s, char out[72])
{
        char hex[65];
        SHA256End(&s->sha, hex);
        (void)snprintf(out, 72, "sha256:%s", hex);
}

int registry_manifest(struct registry *r, const char *reference, struct buf *ret_body,
                      char **ret_type, char ret_digest[72], struct ak_err *err)
{
        struct sink s = {.mem = ret_body, .fd = -1, .limit = MANIFEST_MAX_BYTES};
        int k = get(r, "manifests", reference, MANIFEST_ACCEPT, &s, NULL, err);

        if (k < 0)
                return k;
        sink_digest(&s, ret_digest);
        if (strncmp(reference, "sha256:", 7) == 0 && !streq(reference, ret_digest))
                return ak_err_set(err, EBADMSG,
                                  "manifest '%s' from '%s' does not match its digest (got %s)",
                                  reference, r->host, ret_digest);
        if (ret_type)
                *ret_type = r->ctype[0] ? strdup(r->ctype) : NULL;
        return 0;
}

static int check_blob(struct sink *s, const char *digest, int64_t size, const char *host,
                      struct ak_err *err)
{
        char got[72];

        if (size >= 0 && s->got != (uint64_t)size)
                return ak_err_set(err, EBADMSG, "blob %s from '%s' has %llu bytes, not %lld",
                                  digest, host, (unsigned long long)s->got, (long long)size);
        sink_digest(s, got);
        if (!streq(got, digest))
                return ak_err_set(err, EBADMSG,
                                  "blob %s from '%s' does not match its digest (got %s); "
                                  "nothing was stored",
                                  digest, host, got);
        return 0;
}

int registry_blob(struct registry *r, const char *digest, int64_t size, int fd,
                  registry_progress_fn progress, void *ctx, struct ak_err *err)
{
        struct sink s = {.fd = fd, .limit = size >= 0 ? (uint64_t)size : UINT64_MAX};
        struct progress_ctx pc = {progress, ctx, size >= 0 ? (uint64_t)size : 0};
        int k = get(r, "blobs", digest, NULL, &s, &pc, err);

        return k < 0 ? k : check_blob(&s, digest, size, r->host, err);
}

int registry_blob_mem(struct registry *r, const char *digest, int64_t size, size_t max,
                      struct buf *ret, struct ak_err *err)
{
        struct sink s = {.mem = ret, .fd = -1};
        int k;

        if (size < 0 || (uint64_t)size > max)
                return ak_err_set(err, E2BIG, "blob %s is larger than %zu bytes", digest, max);
        s.limit = (uint64_t)size;
        k = get(r, "blobs", digest, NULL, &s, NULL, err);
        return k < 0 ? k : check_blob(&s, digest, size, r->host, err);
}
