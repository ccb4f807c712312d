// SPDX-License-Identifier: Apache-2.0
/*
 * The docker and podman backends' images, through the Engine API (upstream's GET /images and
 * DELETE /images/{id} list and remove `docker|podman images`): the engine's list, and removing a
 * name unless a sandbox's record or any container uses that image. The engine is never asked to
 * force: a container of anyone's keeps its image.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "backend/engine-private.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"

/* The image ids that containers (any, running or not) are made of. */
static int container_images(const struct engine *e, json_t **ret, struct ak_err *err)
{
        cleanup_json json_t *list = NULL;
        json_t *ids = json_object(), *c;
        size_t i;
        int st = engine_call(e, "GET", "/containers/json?all=1", NULL, &list, err);

        if (!ids)
                return ak_err_oom(err);
        if (st < 0 || st >= 400 || !json_is_array(list)) {
                json_decref(ids);
                return st < 0 ? st : ak_err_set(err, EIO, "the engine did not list its containers");
        }
        json_array_foreach (list, i, c) {
                const char *id = json_string_value(json_object_get(c, "ImageID"));
                if (id)
                        json_object_set_new(ids, id, json_true());
        }
        *ret = ids;
        return 0;
}

int engine_images_list(enum engine_kind kind, json_t **ret, struct ak_err *err)
{
        struct engine e;
        cleanup_json json_t *imgs = NULL, *used = NULL;
        json_t *out, *img;
        size_t i;
        int r = engine_open(kind, &e, err), st;

        if (r < 0)
                return r;
        st = engine_call(&e, "GET", "/images/json", NULL, &imgs, err);
        if (st < 0 || st >= 400 || !json_is_array(imgs))
                return st < 0 ? st : ak_err_set(err, EIO, "the engine did not list its images");
        if ((r = container_images(&e, &used, err)) < 0)
                return r;
        if (!(out = json_array()))
                return ak_err_oom(err);
        json_array_foreach (imgs, i, img) {
                const char *id = json_string_value(json_object_get(img, "Id"));
                json_t *tags = json_object_get(img, "RepoTags"), *names = json_array(), *t;
                size_t k;
                if (!id || !names) {
                        json_decref(names);
                        continue;
                }
                json_array_foreach (tags, k, t)
                        if (json_is_string(t) && strcmp(json_string_value(t), "<none>:<none>"))
                                json_array_append(names, t);
                json_array_append_new(
                    out, json_pack("{s:s,s:o,s:I,s:I,s:b}", "id", id, "names", names, "size",
                                   json_integer_value(json_object_get(img, "Size")), "created",
                                   json_integer_value(json_object_get(img, "Created")), "in_use",
                                   json_object_get(used, id) != NULL));
        }
        *ret = out;
        return 0;
}

/* A reference as the engines spell it alike: without "docker.io/" or "localhost/", "library/",
 * and with ":latest" where it names no tag or digest. */
static void normalize(const char *ref, char *out, size_t len)
{
        const char *last;

        if (!strncmp(ref, "docker.io/", 10))
                ref += 10;
        else if (!strncmp(ref, "localhost/", 10))
                ref += 10;
        if (!strncmp(ref, "library/", 8))
                ref += 8;
        last = strrchr(ref, '/') ? strrchr(ref, '/') + 1 : ref;
        (void)snprintf(out, len, "%s%s", ref, strpbrk(last, ":@") ? "" : ":latest");
}

/* The engine's id of image name, and in *ret_tags (may be NULL) how many tags the image has and
 * whether name is one of them: 0, or -ENOENT (with a message) when it has none. */
static int image_id(const struct engine *e, const char *name, char *out, size_t len,
                    size_t *ret_tags, bool *ret_is_tag, struct ak_err *err)
{
        cleanup_json json_t *j = NULL;
        char path[1024], want[1024];
        const char *id;
        json_t *t;
        size_t i, n = 0;
        int st;

        if ((size_t)snprintf(path, sizeof(path), "/images/%s/json", name) >= sizeof(path))
                return ak_err_set(err, EINVAL, "image name too long");
        st = engine_call(e, "GET", path, NULL, &j, err);
        if (st == 404) {
                ak_err_clear(err);
                return ak_err_set(err, ENOENT, "no image '%s' in %s", name, engine_name(e->kind));
        }
        if (st < 0 || st >= 400)
                return st < 0 ? st : -err->code;
        id = json_string_value(json_object_get(j, "Id"));
        if (!id || strlen(id) >= len)
                return ak_err_set(err, EIO, "the engine gave no id for image '%s'", name);
        (void)snprintf(out, len, "%s", id);
        normalize(name, want, sizeof(want));
        if (ret_is_tag)
                *ret_is_tag = false;
        json_array_foreach (json_object_get(j, "RepoTags"), i, t) {
                char have[1024];
                if (!json_is_string(t) || !strcmp(json_string_value(t), "<none>:<none>"))
                        continue;
                n++;
                normalize(json_string_value(t), have, sizeof(have));
                if (ret_is_tag && streq(have, want))
                        *ret_is_tag = true;
        }
        if (ret_tags)
                *ret_tags = n;
        return 0;
}

int engine_image_remove(enum engine_kind kind, const char *name, char *const *used,
                        char *const *users, struct ak_err *err)
{
        struct engine e;
        cleanup_json json_t *in_containers = NULL;
        char id[256], path[1024], want[1024];
        size_t tags = 0;
        bool is_tag = false, whole;
        int r = engine_open(kind, &e, err), st;

        if (r < 0)
                return r;
        if ((r = image_id(&e, name, id, sizeof(id), &tags, &is_tag, err)) < 0)
                return r;
        /* one tag of several only untags: the image stays for whoever uses another name */
        whole = !is_tag || tags <= 1;
        normalize(name, want, sizeof(want));
        /* a sandbox's record names it (stopped sandboxes too: their next start needs it) */
        for (size_t i = 0; used && used[i]; i++) {
                char other[256], ref[1024];
                struct ak_err ignored = {0};
                normalize(used[i], ref, sizeof(ref));
                if (image_id(&e, used[i], other, sizeof(other), NULL, NULL, &ignored) == 0 &&
                    streq(other, id) && (whole || streq(ref, want)))
                        return ak_err_set(err, EBUSY,
                                          "image '%s' is used by sandbox '%s'; remove the "
                                          "sandbox first",
                                          name, users && users[i] ? users[i] : used[i]);
        }
        if (whole) {
                if ((r = container_images(&e, &in_containers, err)) < 0)
                        return r;
                if (json_object_get(in_containers, id))
                        return ak_err_set(err, EBUSY, "image '%s' is used by a %s container", name,
                                          engine_name(kind));
        }
        (void)snprintf(path, sizeof(path), "/images/%s", name);
        st = engine_call(&e, "DELETE", path, NULL, NULL, err);
        if (st == 404)
                return ak_err_set(err, ENOENT, "no image '%s' in %s", name, engine_name(kind));
        if (st == 409)
                return ak_err_set(err, EBUSY, "%s", ak_err_msg(err));
        return st < 0 ? st : st >= 400 ? -err->code : 0;
}
