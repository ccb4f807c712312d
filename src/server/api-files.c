// SPDX-License-Identifier: Apache-2.0
/* The API's files in a running sandbox: read, write (one, or a batch whose paths are all checked
 * first), delete; and the normalisation of the paths they take. */
#include "api-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/text-util.h"

#define FILES_BATCH_MAX 1024

int api_normalize_path(const char *raw, char *out, size_t len)
{
        size_t o = 0;
        const char *p = raw;

        while (*p) {
                const char *end = strchr(p, '/');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (n && !(n == 1 && p[0] == '.')) {
                        if (o + 1 + n + 1 > len)
                                return -ENAMETOOLONG;
                        out[o++] = '/';
                        memcpy(out + o, p, n);
                        o += n;
                }
                p += n;
                if (*p == '/')
                        p++;
        }
        if (o == 0) {
                if (len < 2)
                        return -ENAMETOOLONG;
                out[o++] = '/';
        }
        out[o] = '\0';
        return 0;
}

static int want_path(const char *path, struct api_result *r)
{
        struct ak_err err = {0};
        if (validate_sandbox_path(path, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        return 0;
}

int api_file_read(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *path = a->path;
        cleanup_buf struct buf b = BUF_INIT;
        struct agent_file_info info;
        struct ak_err err = {0};

        if (want_path(path, r) < 0 || api_running(c, name, r) < 0)
                return -1;
        if (manager_file_read(c->m, name, path, API_OUTPUT_MAX, api_to_buf, &b, &info, &err) < 0) {
                if (err.code == ENOENT || err.code == EISDIR || err.code == EACCES)
                        return api_fail(r, 404, "%s", ak_err_msg(&err));
                return api_fail_err(r, &err);
        }
        if (utf8_valid(b.data ? b.data : "", b.len))
                return api_ok(r, 200,
                              json_pack("{s:s%,s:s,s:I}", "content", b.data ? b.data : "", b.len,
                                        "encoding", "utf8", "size", (json_int_t)b.len));
        {
                cleanup_free char *enc = malloc(base64_encoded_len(b.len) + 1);
                if (!enc)
                        return api_fail(r, 500, "out of memory");
                base64_encode(b.data, b.len, enc);
                return api_ok(r, 200,
                              json_pack("{s:s,s:s,s:I}", "content", enc, "encoding", "base64",
                                        "size", (json_int_t)b.len));
        }
}

static int write_one(struct api_ctx *c, const char *name, const char *path, const void *data,
                     size_t len, struct api_result *r)
{
        const struct manager_write w = {
            .mode = 0644, .parents = true, .src_fd = -1, .data = data, .len = len};
        struct ak_err err = {0};

        if (manager_file_write(c->m, name, path, &w, NULL, &err) < 0)
                return api_fail_err(r, &err);
        return 0;
}

int api_file_write(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *path = a->path;
        json_t *body = a->body;
        json_t *content = json_object_get(body, "content");
        const char *enc = json_string_value(json_object_get(body, "encoding"));
        cleanup_free unsigned char *decoded = NULL;
        const void *data;
        size_t len;

        if (want_path(path, r) < 0 || api_running(c, name, r) < 0)
                return -1;
        if (!json_is_string(content))
                return api_fail(r, 400, "content (a string) is required");
        if (json_object_get(body, "encoding") && !enc)
                return api_fail(r, 400, "encoding must be \"utf8\" or \"base64\"");
        data = json_string_value(content);
        len = json_string_length(content);
        if (enc && strcmp(enc, "base64") == 0) {
                long n;
                decoded = malloc(len / 4 * 3 + 3);
                if (!decoded)
                        return api_fail(r, 500, "out of memory");
                n = base64_decode(data, len, decoded);
                if (n < 0)
                        return api_fail(r, 400, "content is not valid base64");
                data = decoded;
                len = (size_t)n;
        } else if (enc && strcmp(enc, "utf8") != 0 && strcmp(enc, "utf-8") != 0) {
                return api_fail(r, 400, "encoding must be \"utf8\" or \"base64\"");
        }
        if (write_one(c, name, path, data, len, r) < 0)
                return -1;
        return api_ok_text(r, "Wrote %zu bytes to %s", len, path);
}

int api_file_delete(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *path = a->path;
        struct ak_err err = {0};

        if (want_path(path, r) < 0 || api_running(c, name, r) < 0)
                return -1;
        if (manager_file_remove(c->m, name, path, false, &err) < 0 && err.code != ENOENT)
                return api_fail_err(r, &err);
        return api_ok_text(r, "Deleted %s", path);
}

int api_files_write(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        json_t *body = a->body;
        json_t *files = json_object_get(body, "files"), *v;
        const char *k;
        char path[4096];
        size_t n = 0;

        if (!json_is_object(files))
                return api_fail(r, 400, "files must be an object of path: content");
        if (json_object_size(files) > FILES_BATCH_MAX)
                return api_fail(r, 400, "at most %d files at once", FILES_BATCH_MAX);
        if (api_running(c, name, r) < 0)
                return -1;
        /* all paths are checked before anything is written */
        json_object_foreach (files, k, v) {
                if (!json_is_string(v))
                        return api_fail(r, 400, "the content of '%s' must be a string", k);
                if (api_normalize_path(k, path, sizeof(path)) < 0)
                        return api_fail(r, 400, "invalid path '%s'", k);
                if (want_path(path, r) < 0)
                        return -1;
        }
        json_object_foreach (files, k, v) {
                (void)api_normalize_path(k, path, sizeof(path));
                if (write_one(c, name, path, json_string_value(v), json_string_length(v), r) < 0)
                        return -1;
                n++;
        }
        return api_ok(r, 200, json_pack("{s:I}", "written", (json_int_t)n));
}
