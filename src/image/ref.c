/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image reference parsing with Docker's normalisation (distribution/reference): a first path
 * component with a dot, a colon or the name `localhost` is a registry; anything else is on
 * Docker Hub, where one-component names live under `library/`. Grammar as the distribution spec:
 * components [a-z0-9]+ joined by `.`, `_`, `__` or runs of `-`; tags [A-Za-z0-9_][A-Za-z0-9_.-]*.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/macro.h"

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c)
{
        return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

bool image_digest_valid(const char *s)
{
        if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + IMAGE_DIGEST_HEX)
                return false;
        for (size_t i = 7; s[i]; i++)
                if (!is_hex(s[i]))
                        return false;
        return true;
}

/* One path component of a repository: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
        size_t i = 0;

        if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
                return false;
        while (i < n) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                if (s[i] == '.' || (s[i] == '_' && (i + 1 >= n || s[i + 1] != '_')))
                        i++;
                else if (s[i] == '_')
                        i += 2;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return false;
                if (i >= n || !is_lower_alnum(s[i]))
                        return false;
        }
        return true;
}

static bool tag_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > IMAGE_TAG_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool word = (c >= 'A' && c <= 'Z') || is_lower_alnum(c) || c == '_';
                if (!word && (i == 0 || (c != '.' && c != '-')))
                        return false;
        }
        return true;
}

/* host[:port] with a DNS-ish host or a bracketed IPv6 address; port 1-65535. */
static bool registry_valid(const char *s)
{
        const char *colon;
        size_t hl;

        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (!end || end == s + 1)
                        return false;
                for (const char *p = s + 1; p < end; p++)
                        if (!is_hex((char)(*p | 0x20)) && *p != ':' && *p != '.')
                                return false;
                colon = end[1] == ':' ? end + 1 : NULL;
                if (!colon && end[1])
                        return false;
        } else {
                colon = strchr(s, ':');
                hl = colon ? (size_t)(colon - s) : strlen(s);
                if (hl == 0)
                        return false;
                for (size_t i = 0; i < hl; i++) {
                        char c = s[i];
                        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '.' || c == '-'))
                                return false;
                }
                if (s[0] == '-' || s[0] == '.' || s[hl - 1] == '-' || s[hl - 1] == '.')
                        return false;
        }
        if (colon) {
                char *end;
                long port;
                if (!colon[1])
                        return false;
                errno = 0;
                port = strtol(colon + 1, &end, 10);
                if (errno || *end || port < 1 || port > 65535 || colon[1] == '+' || colon[1] == '-')
                        return false;
        }
        return true;
}

void image_ref_done(struct image_ref *r)
{
        if (!r)
                return;
        free(r->registry);
        free(r->repository);
        free(r->tag);
        free(r->digest);
        *r = (struct image_ref){0};
}

int image_ref_parse(const char *s, struct image_ref *ret, struct ak_err *err)
{
        cleanup_free char *name = NULL;
        cleanup_image_ref struct image_ref r = {0};
        char *at, *slash, *colon, *rest;

        if (!s || !*s)
                return ak_err_set(err, EINVAL, "image name must not be empty");
        if (strlen(s) > IMAGE_REF_MAX)
                return ak_err_set(err, EINVAL, "image name is longer than %d characters",
                                  IMAGE_REF_MAX);
        name = strdup(s);
        if (!name)
                return -ENOMEM;
        at = strchr(name, '@');
        if (at) {
                *at++ = '\0';
                if (!image_digest_valid(at))
                        return ak_err_set(err, EINVAL,
                                          "invalid image '%s': a digest is sha256: and 64 "
                                          "lowercase hex digits",
                                          s);
        }
        /* The tag is after the last colon that follows the last slash. */
        slash = strrchr(name, '/');
        colon = strrchr(slash ? slash : name, ':');
        if (colon) {
                *colon++ = '\0';
                if (!tag_valid(colon))
                        return ak_err_set(err, EINVAL, "invalid image '%s': bad tag '%s'", s,
                                          colon);
        }
        slash = strchr(name, '/');
        if (slash &&
            (memchr(name, '.', (size_t)(slash - name)) ||
             memchr(name, ':', (size_t)(slash - name)) ||
             (slash - name == 9 && strncmp(name, "localhost", 9) == 0) || name[0] == '[')) {
                *slash = '\0';
                if (!registry_valid(name))
                        return ak_err_set(err, EINVAL, "invalid image '%s': bad registry '%s'", s,
                                          name);
                r.registry = strdup(streq(name, "index.docker.io") ? DOCKER_HUB : name);
                rest = slash + 1;
        } else {
                r.registry = strdup(DOCKER_HUB);
                rest = name;
        }
        if (!r.registry)
                return ak_err_oom(err);
        for (const char *p = rest;;) {
                const char *e = strchr(p, '/');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                if (!component_valid(p, n))
                        return ak_err_set(err, EINVAL,
                                          "invalid image '%s': repository names are lowercase "
                                          "letters, digits and single separators (. _ __ -)",
                                          s);
                if (!e)
                        break;
                p = e + 1;
        }
        if (streq(r.registry, DOCKER_HUB) && !strchr(rest, '/')) {
                if (asprintf(&r.repository, "library/%s", rest) < 0)
                        r.repository = NULL;
        } else {
                r.repository = strdup(rest);
        }
        if (!r.repository)
                return ak_err_oom(err);
        if (colon || !at) {
                r.tag = strdup(colon ? colon : "latest");
                if (!r.tag)
                        return ak_err_oom(err);
        }
        if (at && !(r.digest = strdup(at)))
                return ak_err_oom(err);
        *ret = TAKE_STRUCT(r);
        return 0;
}

char *image_ref_canonical(const struct image_ref *r)
{
        char *s = NULL;

        if (asprintf(&s, "%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "") < 0)
                return NULL;
        return s;
}

/* ---- which registries are configured, which addresses are private ---- */

/* One entry of AGENTKERNEL_INSECURE_REGISTRIES or the mirror: [scheme://]host[:port][/path]. */
struct reg_entry {
        char host[256];
        unsigned port; /* 0: none given */
        bool https;    /* "https://" given */
};

static bool entry_parse(const char *s, size_t n, struct reg_entry *e)
{
        const char *end = s + n, *hs, *he, *colon = NULL;

        memset(e, 0, sizeof(*e));
        while (s < end && *s == ' ')
                s++;
        while (end > s && end[-1] == ' ')
                end--;
        if (end - s > 8 && strncasecmp(s, "https://", 8) == 0) {
                e->https = true;
                s += 8;
        } else if (end - s > 7 && strncasecmp(s, "http://", 7) == 0) {
                s += 7;
        }
        for (const char *p = s; p < end; p++)
                if (*p == '/') {
                        end = p;
                        break;
                }
        if (s < end && *s == '[') {
                hs = s + 1;
                he = memchr(hs, ']', (size_t)(end - hs));
                if (!he)
                        return false;
                if (he + 1 < end && he[1] == ':')
                        colon = he + 1;
                else if (he + 1 != end)
                        return false;
        } else {
                hs = s;
                colon = memchr(s, ':', (size_t)(end - s));
                he = colon ? colon : end;
        }
        if (he == hs || (size_t)(he - hs) >= sizeof(e->host))
                return false;
        memcpy(e->host, hs, (size_t)(he - hs));
        if (colon) {
                unsigned long v = 0;
                const char *p = colon + 1;
                if (p == end)
                        return false;
                for (; p < end; p++) {
                        if (*p < '0' || *p > '9' ||
                            (v = v * 10 + (unsigned long)(*p - '0')) > 65535)
                                return false;
                }
                if (v == 0)
                        return false;
                e->port = (unsigned)v;
        }
        return true;
}

/* Calls fn for each configured entry (the insecure list, then the mirror); stops when fn does. */
static bool entries_any(bool (*fn)(const struct reg_entry *e, const void *ctx), const void *ctx)
{
        const char *list = getenv("AGENTKERNEL_INSECURE_REGISTRIES");
        const char *mirror = getenv("AGENTKERNEL_REGISTRY_MIRROR");
        struct reg_entry e;

        while (list && *list) {
                const char *c = strchr(list, ',');
                size_t l = c ? (size_t)(c - list) : strlen(list);
                if (l && entry_parse(list, l, &e) && fn(&e, ctx))
                        return true;
                list = c ? c + 1 : NULL;
        }
        if (mirror && *mirror && entry_parse(mirror, strlen(mirror), &e))
                return fn(&e, ctx);
        return false;
}

struct host_port {
        const char *host;
        size_t host_len;
        unsigned port;
};

static bool entry_covers(const struct reg_entry *e, const void *ctx)
{
        const struct host_port *h = ctx;

        if (strlen(e->host) != h->host_len || strncasecmp(e->host, h->host, h->host_len) != 0)
                return false;
        return e->port ? e->port == h->port : h->port == 80 || h->port == 443;
}

bool image_registry_may_be_private(const char *host, unsigned port)
{
        struct host_port h = {host, strlen(host), port};

        if (h.host_len > 1 && host[0] == '[' && host[h.host_len - 1] == ']') {
                h.host++;
                h.host_len -= 2;
        }
        return h.host_len && entries_any(entry_covers, &h);
}

static bool entry_names(const struct reg_entry *e, const void *ctx)
{
        const char *registry = ctx;
        char name[270];

        if (e->https)
                return false;
        if (strchr(e->host, ':'))
                (void)snprintf(name, sizeof(name), "[%s]", e->host);
        else
                (void)snprintf(name, sizeof(name), "%s", e->host);
        if (e->port)
                (void)snprintf(name + strlen(name), sizeof(name) - strlen(name), ":%u", e->port);
        return strcasecmp(name, registry) == 0;
}

bool image_registry_insecure(const char *registry)
{
        const char *list = getenv("AGENTKERNEL_INSECURE_REGISTRIES");
        struct reg_entry e;

        /* the list only (not the mirror, whose URL says its own scheme) */
        while (list && *list) {
                const char *c = strchr(list, ',');
                size_t l = c ? (size_t)(c - list) : strlen(list);
                if (l && entry_parse(list, l, &e) && entry_names(&e, registry))
                        return true;
                list = c ? c + 1 : NULL;
        }
        return false;
}

static bool v4_public(uint32_t a)
{
        static const struct {
                uint32_t net, mask;
        } reserved[] = {
            {0x00000000, 0xff000000}, /* 0/8: "this network", 0.0.0.0 reaches loopback */
            {0x0a000000, 0xff000000}, /* 10/8 (RFC 1918) */
            {0x64400000, 0xffc00000}, /* 100.64/10 (carrier-grade NAT) */
            {0x7f000000, 0xff000000}, /* 127/8 loopback */
            {0xa9fe0000, 0xffff0000}, /* 169.254/16 link-local, cloud metadata services */
            {0xac100000, 0xfff00000}, /* 172.16/12 (RFC 1918) */
            {0xc0000000, 0xffffff00}, /* 192.0.0/24 IETF protocol assignments */
            {0xc0000200, 0xffffff00}, /* 192.0.2/24 documentation */
            {0xc0586300, 0xffffff00}, /* 192.88.99/24 6to4 relays */
            {0xc0a80000, 0xffff0000}, /* 192.168/16 (RFC 1918) */
            {0xc6120000, 0xfffe0000}, /* 198.18/15 benchmarking */
            {0xc6336400, 0xffffff00}, /* 198.51.100/24 documentation */
            {0xcb007100, 0xffffff00}, /* 203.0.113/24 documentation */
            {0xe0000000, 0xf0000000}, /* 224/4 multicast */
            {0xf0000000, 0xf0000000}, /* 240/4 reserved, 255.255.255.255 broadcast */
        };

        for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
                if ((a & reserved[i].mask) == reserved[i].net)
                        return false;
        return true;
}

static uint32_t v4_at(const uint8_t *b)
{
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static bool v6_public(const uint8_t *b)
{
        static const uint8_t zero[12] = {0};
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const uint8_t siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
        static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

        /* IPv4 inside IPv6: compatible (::a.b.c.d, with :: and ::1), mapped (::ffff:a.b.c.d),
         * SIIT (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) */
        if (!memcmp(b, zero, 12) || !memcmp(b, mapped, 12) || !memcmp(b, siit, 12) ||
            !memcmp(b, nat64, 12))
                return v4_public(v4_at(b + 12));
        if (b[0] == 0x20 && b[1] == 0x02)
                return v4_public(v4_at(b + 2));
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
                return false;      /* 64:ff9b:1::/48 local-use NAT64 */
        if ((b[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
                return false;
        if (b[0] == 0xfe && (b[1] & 0x80) == 0x80) /* fe80::/10 link-local, fec0::/10 site-local */
                return false;
        if (b[0] == 0xff) /* multicast */
                return false;
        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 docs */
                return false;
        if (b[0] == 0x01 && !b[1] && !memcmp(b + 2, zero, 6)) /* 100::/64 discard */
                return false;
        return true;
}

bool image_addr_public(const struct sockaddr *sa)
{
        if (sa->sa_family == AF_INET)
                return v4_public(
                    ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
        if (sa->sa_family == AF_INET6)
                return v6_public(
                    ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
        return false; /* AF_UNIX and the rest: never for a registry */
}
