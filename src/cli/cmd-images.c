// SPDX-License-Identifier: Apache-2.0
/* `images pull|list|rm|prune`: the local OCI image store. Pulls run the agentkernel-image helper.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/paths.h"
#include "image/image-store.h"
#include "image/image-use.h"
#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/strv.h"
#include "shared/text-util.h"

static uint64_t record_size(const struct image_record *r)
{
        uint64_t n = 0;
        for (size_t i = 0; i < r->n_layers; i++)
                n += r->layers[i].unpacked;
        return n;
}

static json_t *record_json(const struct image_record *r)
{
        json_t *names = json_array(), *layers = json_array();

        for (char **n = r->names; n && *n; n++)
                json_array_append_new(names, json_string(*n));
        for (size_t i = 0; i < r->n_layers; i++)
                json_array_append_new(layers,
                                      json_pack("{s:s,s:I,s:I}", "digest", r->layers[i].digest,
                                                "size", (json_int_t)r->layers[i].size, "unpacked",
                                                (json_int_t)r->layers[i].unpacked));
        return json_pack("{s:s,s:o,s:o,s:I,s:s?}", "id", r->id, "names", names, "layers", layers,
                         "size", (json_int_t)record_size(r), "pulled_at", r->pulled_at);
}

/* The image ids that sandboxes (any state) are built from: prune keeps them, rm refuses them. */
static char **ids_in_use(struct image_store *s, char ***ret_users)
{
        cleanup_manager struct manager *m = cli_manager();

        return image_ids_in_use(s, m, ret_users);
}

/* Opens the image store of the data directory. 0, or the exit code after printing why. */
static int open_store(int mode, struct image_store *s)
{
        cleanup_free char *data = NULL;
        struct ak_err err = {0};
        int fd = paths_data_dir_open(&data, &err);

        if (fd < 0)
                return cli_fail(&err, EXIT_ERROR);
        close(fd);
        if (image_store_open(data, mode, s, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        return 0;
}

static int cmd_images_list(int argc, char **argv)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        struct image_record *v = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        size_t n = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if ((r = open_store(IMAGE_STORE_SHARED, &s)) != 0)
                return r;
        if (image_store_list(&s, &v, &n, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, record_json(&v[i]));
                cli_print_json(arr);
        } else {
                printf("%-50s %-14s %-7s %-9s %s\n", "NAME", "ID", "LAYERS", "SIZE", "PULLED");
                for (size_t i = 0; i < n; i++) {
                        char size[32];
                        const char *name = "<none>";
                        /* The tag name when there is one; digest names are for scripts. */
                        for (char **nm = v[i].names; nm && *nm; nm++)
                                if (!strchr(*nm, '@')) {
                                        name = *nm;
                                        break;
                                }
                        if (streq(name, "<none>") && v[i].names && v[i].names[0])
                                name = v[i].names[0];
                        format_bytes(record_size(&v[i]), size, sizeof(size));
                        printf("%-50s %-14.12s %-7zu %-9s %s\n", name, v[i].id + 7, v[i].n_layers,
                               size, v[i].pulled_at ? v[i].pulled_at : "");
                }
        }
        image_records_free(v, n);
        return EXIT_OK;
}

static int cmd_images_pull(int argc, char **argv)
{
        char helper[PATH_MAX];
        struct ak_err err = {0};
        struct cli_args a;
        bool json = false, quiet = false;
        const struct cli_option options[] = {
            OPT_BOOL('q', "quiet", &quiet, "no progress"),
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "'images pull' needs one image name"};
        const char *hargv[6];
        size_t k = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (paths_helper("agentkernel-image", "AGENTKERNEL_IMAGE_HELPER", helper, sizeof(helper),
                         &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        hargv[k++] = "agentkernel-image";
        hargv[k++] = "pull";
        if (quiet)
                hargv[k++] = "--quiet";
        if (json)
                hargv[k++] = "--json";
        hargv[k++] = a.pos[0];
        hargv[k] = NULL;
        execv(helper, (char *const *)hargv);
        cli_error("cannot run '%s': %s", helper, strerror(errno));
        return EXIT_ERROR;
}

/* Frees what sandboxes do not use (as `docker rmi` does); prints how much unless quiet. */
static int prune(struct image_store *s, char **in_use, bool quiet, uint64_t already)
{
        struct ak_err err = {0};
        uint64_t freed = 0;
        char size[32];

        if (image_store_prune(s, in_use, &freed, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        format_bytes(freed + already, size, sizeof(size));
        if (!quiet)
                printf("Freed %s\n", size);
        return EXIT_OK;
}

static int cmd_images_rm(int argc, char **argv)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_strv char **ids = NULL;
        cleanup_strv char **users = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        bool force = false, quiet = false;
        const struct cli_option options[] = {
            OPT_BOOL('f', "force", &force, "an image a sandbox uses too"),
            OPT_BOOL('q', "quiet", &quiet, "do not say how much was freed"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 1,
                                      .max_pos = CLI_MAX_POS,
                                      .missing = "'images rm' needs an image name"};
        int r = cli_parse(argc, argv, &spec, &a), rc = EXIT_OK;
        uint64_t total = 0;

        if (r)
                return CLI_PARSE_EXIT(r);
        if ((r = open_store(IMAGE_STORE_EXCLUSIVE, &s)) != 0)
                return r;
        ids = ids_in_use(&s, &users);
        for (size_t i = 0; i < a.n_pos; i++) {
                /* the check and the removal are the API's too (DELETE /images/{id}) */
                uint64_t freed = 0;
                if (image_remove_checked(&s, ids, users, a.pos[i], force, &freed, &err) < 0) {
                        rc = cli_fail(&err, EXIT_ERROR);
                        ak_err_clear(&err);
                        continue;
                }
                total += freed;
                printf("Untagged %s\n", a.pos[i]);
        }
        /* Free the space now, as `docker rmi` does (what sandboxes use stays). */
        return rc == EXIT_OK ? prune(&s, ids, quiet, total) : rc;
}

int images_remove_unused(unsigned *ret_removed)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_strv char **ids = NULL;
        struct image_record *v = NULL;
        struct ak_err err = {0};
        size_t n = 0;
        int r;

        *ret_removed = 0;
        if ((r = open_store(IMAGE_STORE_EXCLUSIVE, &s)) != 0)
                return r;
        ids = ids_in_use(&s, NULL);
        if (!ids) {
                cli_error("cannot tell which images the sandboxes use: nothing removed");
                return EXIT_ERROR;
        }
        if (image_store_list(&s, &v, &n, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        for (size_t i = 0; i < n; i++) {
                bool used = false;
                for (char **id = ids; *id && !used; id++)
                        used = streq(*id, v[i].id);
                for (char **name = v[i].names; !used && name && *name; name++) {
                        struct ak_err one = {0};
                        if (image_store_remove(&s, *name, &one) < 0)
                                cli_warn("image '%s': %s", *name, ak_err_msg(&one));
                        else
                                ++*ret_removed;
                }
        }
        image_records_free(v, n);
        return prune(&s, ids, true, 0);
}

static int cmd_images_prune(int argc, char **argv)
{
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_strv char **ids = NULL;
        const struct cli_spec spec = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if ((r = open_store(IMAGE_STORE_EXCLUSIVE, &s)) != 0)
                return r;
        ids = ids_in_use(&s, NULL);
        return prune(&s, ids, false, 0);
}

static const struct verb images_pull_verb = {
    "pull",
    cmd_images_pull,
    "NAME [-q] [--json]",
    "Fetch NAME (e.g. alpine:3.20, 127.0.0.1:5000/x@sha256:...)\n"
    "into the store, verifying every digest",
    NULL,
    0,
    NULL};
static const struct verb images_list_verb = {
    "list", cmd_images_list, "[--json]", "List every image with its size", NULL, 0, NULL};
static const struct verb images_ls_verb = {
    "ls", cmd_images_list, "[--json]", "List every image with its size", NULL, VERB_HIDDEN, NULL};
static const struct verb images_rm_verb = {"rm",
                                           cmd_images_rm,
                                           "NAME... [-f]",
                                           "Forget names; an image a sandbox uses needs --force",
                                           NULL,
                                           0,
                                           NULL};
static const struct verb images_remove_verb = {
    "remove", cmd_images_rm, "NAME... [-f]", "Forget names", NULL, VERB_HIDDEN, NULL};
static const struct verb images_delete_verb = {
    "delete", cmd_images_rm, "NAME... [-f]", "Forget names", NULL, VERB_HIDDEN, NULL};
static const struct verb images_prune_verb = {
    "prune", cmd_images_prune,
    "",      "Delete images no name points at, unused layers and leftovers",
    NULL,    0,
    NULL};
static const struct verb *const images_verbs[] = {
    &images_pull_verb,   &images_list_verb,   &images_ls_verb,    &images_rm_verb,
    &images_remove_verb, &images_delete_verb, &images_prune_verb, NULL};

const struct verb verb_images = {
    "images",
    cli_dispatch_verb,
    "pull NAME | list [--json] | rm NAME... [-f] | prune",
    "Manage the local store of OCI images (native backend)",
    "Short names resolve as Docker does (alpine -> docker.io/library/alpine:latest).\n"
    "AGENTKERNEL_REGISTRY_MIRROR=URL pulls Docker Hub images from a mirror;\n"
    "AGENTKERNEL_INSECURE_REGISTRIES=host:port,... allows plain HTTP and loopback or private\n"
    "addresses for those registries (nothing else may use them).\n"
    "Credentials come from ~/.docker/config.json (or $DOCKER_CONFIG), as 'docker login' wrote.\n",
    VERB_TOP_ONLY,
    images_verbs};
