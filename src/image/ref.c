/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image reference parsing with Docker's normalisation (distribution/reference): a first path
 * component with a dot, a colon or the name `localhost` is a registry; anything else is on
 * Docker Hub, where one-component names live under `library/`. Grammar as the distribution spec:
 * components [a-z0-9]+ joined by `.`, `_`, `__` or runs of `-`; tags [A-Za-z0-9_][A-Za-z0-9_.-]*.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void image_ref_free(struct image_ref *r)
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
        struct image_ref r = {0};
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
                goto oom;
        for (const char *p = rest;;) {
                const char *e = strchr(p, '/');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                if (!component_valid(p, n)) {
                        image_ref_free(&r);
                        return ak_err_set(err, EINVAL,
                                          "invalid image '%s': repository names are lowercase "
                                          "letters, digits and single separators (. _ __ -)",
                                          s);
                }
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
                goto oom;
        if (colon || !at) {
                r.tag = strdup(colon ? colon : "latest");
                if (!r.tag)
                        goto oom;
        }
        if (at && !(r.digest = strdup(at)))
                goto oom;
        *ret = r;
        return 0;
oom:
        image_ref_free(&r);
        return ak_err_set(err, ENOMEM, "out of memory");
}

char *image_ref_canonical(const struct image_ref *r)
{
        char *s = NULL;

        if (asprintf(&s, "%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                     r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "") < 0)
                return NULL;
        return s;
}

static bool host_is_loopback(const char *registry)
{
        static const char *const loop[] = {"localhost", "127.", "[::1]"};

        for (size_t i = 0; i < ARRAY_SIZE(loop); i++)
                if (strncmp(registry, loop[i], strlen(loop[i])) == 0) {
                        const char *rest = registry + strlen(loop[i]);
                        if (loop[i][strlen(loop[i]) - 1] == '.')
                                return true;
                        return *rest == '\0' || *rest == ':';
                }
        return false;
}

bool image_registry_insecure(const char *registry)
{
        const char *list = getenv("AGENTKERNEL_INSECURE_REGISTRIES");
        size_t n = strlen(registry);

        if (host_is_loopback(registry))
                return true;
        while (list && *list) {
                const char *e = strchr(list, ',');
                size_t l = e ? (size_t)(e - list) : strlen(list);
                if (l == n && strncmp(list, registry, n) == 0)
                        return true;
                list = e ? e + 1 : NULL;
        }
        return false;
}
