/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest, index and config parsing with jansson. Every count and size is bounded before it is
 * used; every digest is checked for form (its content is verified where the bytes are fetched).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "core/validate.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/strv.h"

static void descriptor_done(struct descriptor *d)
{
        free(d->media_type);
        free(d->digest);
        free(d->os);
        free(d->arch);
        free(d->variant);
        *d = (struct descriptor){0};
}

void manifest_done(struct manifest *m)
{
        if (!m)
                return;
        descriptor_done(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                descriptor_done(&m->layers[i]);
        for (size_t i = 0; i < m->n_manifests; i++)
                descriptor_done(&m->manifests[i]);
        free(m->layers);
        free(m->manifests);
        *m = (struct manifest){0};
}

static char *dup_str(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

static int layer_compression(const char *mt, enum layer_compression *ret)
{
        static const struct {
                const char *type;
                enum layer_compression c;
        } known[] = {
            {"application/vnd.oci.image.layer.v1.tar", LAYER_TAR},
            {"application/vnd.oci.image.layer.v1.tar+gzip", LAYER_GZIP},
            {"application/vnd.oci.image.layer.v1.tar+zstd", LAYER_ZSTD},
            {"application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_GZIP},
            {"application/vnd.docker.image.rootfs.diff.tar", LAYER_TAR},
        };
        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                if (streq(mt, known[i].type)) {
                        *ret = known[i].c;
                        return 0;
                }
        return -EMEDIUMTYPE;
}

static int descriptor_parse(json_t *o, bool layer, const char *what, struct descriptor *ret,
                            struct ak_err *err)
{
        struct descriptor d = {0};
        const char *mt = json_string_value(json_object_get(o, "mediaType"));
        const char *dg = json_string_value(json_object_get(o, "digest"));
        json_t *size = json_object_get(o, "size");
        json_t *plat = json_object_get(o, "platform");

        if (!json_is_object(o))
                return ak_err_set(err, EBADMSG, "%s is not an object", what);
        if (!dg || !image_digest_valid(dg))
                return ak_err_set(err, EBADMSG, "%s has no valid sha256 digest", what);
        if (!json_is_integer(size) || json_integer_value(size) < 0)
                return ak_err_set(err, EBADMSG, "%s has no valid size", what);
        if (layer) {
                if (!mt)
                        return ak_err_set(err, EBADMSG, "%s has no media type", what);
                if (layer_compression(mt, &d.compression) < 0)
                        return ak_err_set(err, EMEDIUMTYPE,
                                          "%s has media type '%s', which is not a layer this "
                                          "version can unpack (foreign or encrypted layers are "
                                          "not supported)",
                                          what, mt);
        }
        d.size = json_integer_value(size);
        d.digest = strdup(dg);
        d.media_type = mt ? strdup(mt) : NULL;
        if (json_is_object(plat)) {
                d.os = dup_str(plat, "os");
                d.arch = dup_str(plat, "architecture");
                d.variant = dup_str(plat, "variant");
        }
        if (!d.digest || (mt && !d.media_type)) {
                descriptor_done(&d);
                return ak_err_oom(err);
        }
        *ret = d;
        return 0;
}

static int descriptors_parse(json_t *arr, size_t max, bool layer, const char *what,
                             struct descriptor **ret, size_t *ret_n, struct ak_err *err)
{
        struct descriptor *v;
        size_t n = json_array_size(arr);
        int r;

        if (!json_is_array(arr))
                return ak_err_set(err, EBADMSG, "manifest has no '%s' list", what);
        if (n > max)
                return ak_err_set(err, E2BIG, "manifest has %zu %s; at most %zu are accepted", n,
                                  what, max);
        v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return ak_err_oom(err);
        for (size_t i = 0; i < n; i++) {
                char name[64];
                (void)snprintf(name, sizeof(name), "%s[%zu]", what, i);
                r = descriptor_parse(json_array_get(arr, i), layer, name, &v[i], err);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                descriptor_done(&v[j]);
                        free(v);
                        return r;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int manifest_parse(const char *buf, size_t len, const char *content_type, struct manifest *ret,
                   struct ak_err *err)
{
        cleanup_manifest struct manifest m = {0};
        cleanup_json json_t *root = NULL;
        json_error_t je;
        const char *mt;
        int r;

        if (len > MANIFEST_MAX_BYTES)
                return ak_err_set(err, E2BIG, "manifest is larger than %u bytes",
                                  MANIFEST_MAX_BYTES);
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
                return ak_err_set(err, EBADMSG, "manifest is not valid JSON: %s (line %d)", je.text,
                                  je.line);
        if (!json_is_object(root))
                return ak_err_set(err, EBADMSG, "manifest is not a JSON object");
        mt = json_string_value(json_object_get(root, "mediaType"));
        if (!mt && content_type && *content_type)
                mt = content_type;
        if (json_integer_value(json_object_get(root, "schemaVersion")) == 1)
                return ak_err_set(err, EMEDIUMTYPE,
                                  "the registry served a Docker schema 1 manifest, which is "
                                  "deprecated and not supported; push the image again with a "
                                  "current client");
        if (mt && (streq(mt, MT_OCI_INDEX) || streq(mt, MT_DOCKER_LIST)))
                m.kind = MANIFEST_INDEX;
        else if (mt && (streq(mt, MT_OCI_MANIFEST) || streq(mt, MT_DOCKER_MANIFEST)))
                m.kind = MANIFEST_IMAGE;
        else if (json_object_get(root, "manifests"))
                m.kind = MANIFEST_INDEX;
        else if (json_object_get(root, "layers"))
                m.kind = MANIFEST_IMAGE;
        else
                return ak_err_set(err, EMEDIUMTYPE, "unknown manifest type '%s'",
                                  mt ? mt : "(none)");
        if (m.kind == MANIFEST_INDEX) {
                r = descriptors_parse(json_object_get(root, "manifests"), INDEX_MAX_ENTRIES, false,
                                      "manifests", &m.manifests, &m.n_manifests, err);
        } else {
                r = descriptor_parse(json_object_get(root, "config"), false, "config", &m.config,
                                     err);
                if (r >= 0)
                        r = descriptors_parse(json_object_get(root, "layers"), MANIFEST_MAX_LAYERS,
                                              true, "layers", &m.layers, &m.n_layers, err);
        }
        if (r < 0)
                return r;
        *ret = TAKE_STRUCT(m);
        return 0;
}

void manifest_host_platform(const char **ret_arch, const char **ret_variant)
{
        static const struct {
                const char *uname, *arch, *variant;
        } map[] = {
            {"x86_64", "amd64", NULL}, {"aarch64", "arm64", NULL},   {"armv7l", "arm", "v7"},
            {"armv6l", "arm", "v6"},   {"i686", "386", NULL},        {"ppc64le", "ppc64le", NULL},
            {"s390x", "s390x", NULL},  {"riscv64", "riscv64", NULL},
        };
        struct utsname u;

        *ret_arch = "amd64";
        *ret_variant = NULL;
        if (uname(&u) < 0)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (streq(u.machine, map[i].uname)) {
                        *ret_arch = map[i].arch;
                        *ret_variant = map[i].variant;
                        return;
                }
}

int manifest_pick(const struct manifest *index, const char *os, const char *arch,
                  const char *variant, const struct descriptor **ret, struct ak_err *err)
{
        char have[512] = "";
        size_t used = 0;

        for (size_t i = 0; i < index->n_manifests; i++) {
                const struct descriptor *d = &index->manifests[i];
                if (d->os && d->arch && streq(d->os, os) && streq(d->arch, arch) &&
                    (!variant || !d->variant || streq(d->variant, variant))) {
                        *ret = d;
                        return 0;
                }
        }
        for (size_t i = 0; i < index->n_manifests && used < sizeof(have) - 1; i++) {
                const struct descriptor *d = &index->manifests[i];
                int n = snprintf(have + used, sizeof(have) - used, "%s%s/%s%s%s", used ? ", " : "",
                                 d->os ? d->os : "?", d->arch ? d->arch : "?",
                                 d->variant ? "/" : "", d->variant ? d->variant : "");
                if (n < 0)
                        break;
                used += (size_t)n;
                if (used >= sizeof(have))
                        used = sizeof(have) - 1;
        }
        return ak_err_set(err, ENOENT, "the image has no %s/%s%s%s variant (it has: %s)", os, arch,
                          variant ? "/" : "", variant ? variant : "", *have ? have : "nothing");
}

void image_config_done(struct image_config *c)
{
        if (!c)
                return;
        strv_free(c->env);
        strv_free(c->cmd);
        strv_free(c->entrypoint);
        strv_free(c->diff_ids);
        free(c->workdir);
        free(c->user);
        free(c->os);
        free(c->arch);
        *c = (struct image_config){0};
}

/* A NULL-terminated copy of an array of strings (NULL for a missing or null value). */
static int strv_from_json(json_t *arr, size_t max, const char *what, char ***ret, size_t *ret_n,
                          struct ak_err *err)
{
        cleanup_strv char **v = NULL;
        size_t n;

        *ret = NULL;
        if (ret_n)
                *ret_n = 0;
        if (!arr || json_is_null(arr))
                return 0;
        if (!json_is_array(arr))
                return ak_err_set(err, EBADMSG, "image config: '%s' is not a list", what);
        n = json_array_size(arr);
        if (n > max)
                return ak_err_set(err, E2BIG, "image config: more than %zu entries in '%s'", max,
                                  what);
        v = calloc(n + 1, sizeof(*v));
        if (!v)
                return ak_err_oom(err);
        for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_array_get(arr, i));
                if (!s)
                        return ak_err_set(err, EBADMSG, "image config: '%s' holds a non-string",
                                          what);
                v[i] = strdup(s);
                if (!v[i])
                        return ak_err_oom(err);
        }
        *ret = TAKE_PTR(v);
        if (ret_n)
                *ret_n = n;
        return 0;
}

int image_workdir_normalize(char *dir, struct ak_err *err)
{
        size_t len = strlen(dir), out = 0;

        if (len > CONFIG_WORKDIR_MAX)
                return ak_err_set(err, EINVAL, "image config: WorkingDir is longer than %u bytes",
                                  CONFIG_WORKDIR_MAX);
        if (dir[0] != '/')
                return ak_err_set(err, EINVAL,
                                  "image config: WorkingDir '%s' is not an absolute path", dir);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)dir[i] < 0x20 || dir[i] == 0x7f)
                        return ak_err_set(err, EINVAL,
                                          "image config: WorkingDir holds a control character");
        /* component by component: "" and "." dropped, ".." refused */
        for (size_t i = 0; i < len;) {
                size_t n;
                while (i < len && dir[i] == '/')
                        i++;
                n = strcspn(dir + i, "/");
                if (n == 0)
                        break;
                if (n == 2 && dir[i] == '.' && dir[i + 1] == '.')
                        return ak_err_set(err, EINVAL,
                                          "image config: WorkingDir '%s' contains '..'", dir);
                if (!(n == 1 && dir[i] == '.')) {
                        dir[out++] = '/';
                        memmove(dir + out, dir + i, n);
                        out += n;
                }
                i += n;
        }
        if (out == 0)
                dir[out++] = '/';
        dir[out] = '\0';
        return 0;
}

static bool user_part_ok(const char *s, size_t n)
{
        if (n == 0 || n > CONFIG_USER_MAX || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
                        return false;
        return true;
}

int image_user_check(const char *user, struct ak_err *err)
{
        const char *colon = strchr(user, ':');
        size_t n = colon ? (size_t)(colon - user) : strlen(user);

        if (!user_part_ok(user, n) || (colon && !user_part_ok(colon + 1, strlen(colon + 1))))
                return ak_err_set(err, EINVAL,
                                  "image config: User '%.64s' is not NAME, UID, NAME:GROUP or "
                                  "UID:GID (letters, digits, '_', '.', '-'; at most %u each)",
                                  user, CONFIG_USER_MAX);
        return 0;
}

int image_env_check(char *const *env, struct ak_err *err)
{
        size_t total = 0, i = 0;

        for (; env && env[i]; i++) {
                size_t n = strlen(env[i]);
                if (i >= CONFIG_MAX_ENV)
                        return ak_err_set(err, E2BIG, "image config: more than %u entries in 'Env'",
                                          CONFIG_MAX_ENV);
                if (n > CONFIG_ENV_ENTRY_MAX || validate_env_entry(env[i], err) < 0)
                        return n > CONFIG_ENV_ENTRY_MAX
                                   ? ak_err_set(err, E2BIG,
                                                "image config: Env[%zu] is longer than %u bytes", i,
                                                CONFIG_ENV_ENTRY_MAX)
                                   : ak_err_prefix(err, "image config: Env[%zu]", i);
                total += n + 1;
                if (total > CONFIG_ENV_BYTES_MAX)
                        return ak_err_set(err, E2BIG,
                                          "image config: 'Env' holds more than %u bytes",
                                          CONFIG_ENV_BYTES_MAX);
        }
        return 0;
}

int image_config_parse(const char *buf, size_t len, struct image_config *ret, struct ak_err *err)
{
        cleanup_image_config struct image_config c = {0};
        cleanup_json json_t *root = NULL;
        json_error_t je;
        json_t *cfg, *rootfs;
        const char *s;
        int r;

        if (len > CONFIG_MAX_BYTES)
                return ak_err_set(err, E2BIG, "image config is larger than %u bytes",
                                  CONFIG_MAX_BYTES);
        root = json_loadb(buf, len, 0, &je);
        if (!root || !json_is_object(root))
                return ak_err_set(err, EBADMSG, "image config is not a JSON object");
        cfg = json_object_get(root, "config");
        rootfs = json_object_get(root, "rootfs");
        r = strv_from_json(json_object_get(cfg, "Env"), CONFIG_MAX_ENV, "Env", &c.env, NULL, err);
        if (r >= 0)
                r = strv_from_json(json_object_get(cfg, "Cmd"), CONFIG_MAX_ENV, "Cmd", &c.cmd, NULL,
                                   err);
        if (r >= 0)
                r = strv_from_json(json_object_get(cfg, "Entrypoint"), CONFIG_MAX_ENV, "Entrypoint",
                                   &c.entrypoint, NULL, err);
        if (r >= 0)
                r = strv_from_json(json_object_get(rootfs, "diff_ids"), MANIFEST_MAX_LAYERS,
                                   "diff_ids", &c.diff_ids, &c.n_diff_ids, err);
        for (size_t i = 0; r >= 0 && i < c.n_diff_ids; i++)
                if (!image_digest_valid(c.diff_ids[i]))
                        r = ak_err_set(err, EBADMSG,
                                       "image config: diff_ids[%zu] is not a "
                                       "sha256 digest",
                                       i);
        if (r >= 0 && (s = json_string_value(json_object_get(cfg, "WorkingDir"))) && *s &&
            !(c.workdir = strdup(s)))
                r = ak_err_oom(err);
        if (r >= 0 && (s = json_string_value(json_object_get(cfg, "User"))) && *s &&
            !(c.user = strdup(s)))
                r = ak_err_oom(err);
        if (r >= 0)
                r = image_env_check(c.env, err);
        if (r >= 0 && c.workdir)
                r = image_workdir_normalize(c.workdir, err);
        if (r >= 0 && c.user)
                r = image_user_check(c.user, err);
        if (r >= 0 && (s = json_string_value(json_object_get(root, "os"))) && !(c.os = strdup(s)))
                r = ak_err_oom(err);
        if (r >= 0 && (s = json_string_value(json_object_get(root, "architecture"))) &&
            !(c.arch = strdup(s)))
                r = ak_err_oom(err);
        if (r < 0)
                return r;
        *ret = TAKE_STRUCT(c);
        return 0;
}
