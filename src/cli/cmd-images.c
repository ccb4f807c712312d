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
#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/strv.h"
#include "shared/text-util.h"

struct images_flags {
        bool force, json, quiet;
};

static int images_opt(int c, const char *arg, void *ctx)
{
        struct images_flags *f = ctx;

        (void)arg;
        switch (c) {
        case 'f':
                f->force = true;
                return 0;
        case 'j':
                f->json = true;
                return 0;
        case 'q':
                f->quiet = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

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
        cleanup_state_list struct state_list l = {0};
        cleanup_strv char **ids = NULL;
        cleanup_strv char **users = NULL;
        size_t n = 0;

        if (!m)
                return NULL;
        if (manager_list(m, NULL, NULL, &l) < 0 || !(ids = calloc(l.n + 1, sizeof(*ids))) ||
            !(users = calloc(l.n + 1, sizeof(*users))))
                return NULL;
        for (size_t i = 0; i < l.n; i++) {
                struct image_ref ref;
                struct image_record rec;
                const char *img = l.items[i]->image;
                if (!img || streq(img, "host") || image_ref_parse(img, &ref, NULL) < 0)
                        continue;
                if (image_store_resolve(s, &ref, &rec, NULL) == 0) {
                        ids[n] = TAKE_PTR(rec.id);
                        users[n++] = strdup(l.items[i]->name);
                        image_record_done(&rec);
                }
                image_ref_done(&ref);
        }
        if (ret_users)
                *ret_users = TAKE_PTR(users);
        return TAKE_PTR(ids);
}

static int images_list(struct image_store *s, const struct images_flags *f)
{
        struct image_record *v = NULL;
        struct ak_err err = {0};
        size_t n = 0;

        if (image_store_list(s, &v, &n, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (f->json) {
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

static int images_pull(struct cli_args *a, const struct images_flags *f)
{
        char helper[PATH_MAX];
        struct ak_err err = {0};
        const char *argv[6];
        size_t k = 0;

        if (a->n_pos != 2)
                return cli_usage_error(cli_current, "'images pull' needs one image name");
        if (paths_helper("agentkernel-image", "AGENTKERNEL_IMAGE_HELPER", helper, sizeof(helper),
                         &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        argv[k++] = "agentkernel-image";
        argv[k++] = "pull";
        if (f->quiet)
                argv[k++] = "--quiet";
        if (f->json)
                argv[k++] = "--json";
        argv[k++] = a->pos[1];
        argv[k] = NULL;
        execv(helper, (char *const *)argv);
        cli_error("cannot run '%s': %s", helper, strerror(errno));
        return EXIT_ERROR;
}

int cmd_images(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"force", no_argument, NULL, 'f'},
            {"json", no_argument, NULL, 'j'},
            {"quiet", no_argument, NULL, 'q'},
            {NULL, 0, NULL, 0},
        };
        struct images_flags f = {0};
        const struct cli_spec spec = {.shortopts = "fjq",
                                      .longopts = longopts,
                                      .on_opt = images_opt,
                                      .ctx = &f,
                                      .min_pos = 1,
                                      .max_pos = 64,
                                      .missing = "an images command is required (pull, list, rm, "
                                                 "prune)"};
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_free char *data = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        const char *verb;
        int r = cli_parse(argc, argv, &spec, &a), rc = EXIT_OK;

        if (r)
                return CLI_PARSE_EXIT(r);
        verb = a.pos[0];
        if (streq(verb, "pull"))
                return images_pull(&a, &f);
        r = paths_data_dir_open(&data, &err);
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        close(r);
        if (streq(verb, "list") || streq(verb, "ls")) {
                if (a.n_pos != 1)
                        return cli_usage_error(cli_current, "list takes no name");
                if (image_store_open(data, IMAGE_STORE_SHARED, &s, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                rc = images_list(&s, &f);
        } else if (streq(verb, "rm") || streq(verb, "remove") || streq(verb, "delete")) {
                cleanup_strv char **ids = NULL;
                cleanup_strv char **users = NULL;
                if (a.n_pos < 2)
                        return cli_usage_error(cli_current, "'images rm' needs an image name");
                if (image_store_open(data, IMAGE_STORE_EXCLUSIVE, &s, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                ids = ids_in_use(&s, &users);
                for (size_t i = 1; i < a.n_pos; i++) {
                        struct image_ref ref;
                        struct image_record rec;
                        const char *user = NULL;
                        if (!f.force && image_ref_parse(a.pos[i], &ref, NULL) == 0) {
                                if (image_store_resolve(&s, &ref, &rec, NULL) == 0) {
                                        for (size_t k = 0; ids && ids[k]; k++)
                                                if (streq(ids[k], rec.id))
                                                        user = users[k];
                                        image_record_done(&rec);
                                }
                                image_ref_done(&ref);
                        }
                        if (user) {
                                cli_error("image '%s' is used by sandbox '%s'; remove the sandbox "
                                          "first, or use --force",
                                          a.pos[i], user);
                                rc = EXIT_ERROR;
                                continue;
                        }
                        if (image_store_remove(&s, a.pos[i], &err) < 0) {
                                rc = cli_fail(&err, EXIT_ERROR);
                                ak_err_clear(&err);
                                continue;
                        }
                        printf("Untagged %s\n", a.pos[i]);
                }
                /* Free the space now, as `docker rmi` does (what sandboxes use stays). */
                if (rc == EXIT_OK) {
                        uint64_t freed = 0;
                        char size[32];
                        if (image_store_prune(&s, ids, &freed, &err) < 0)
                                rc = cli_fail(&err, EXIT_ERROR);
                        format_bytes(freed, size, sizeof(size));
                        if (rc == EXIT_OK && !f.quiet)
                                printf("Freed %s\n", size);
                }
        } else if (streq(verb, "prune")) {
                cleanup_strv char **ids = NULL;
                uint64_t freed = 0;
                char size[32];
                if (a.n_pos != 1)
                        return cli_usage_error(cli_current, "prune takes no name");
                if (image_store_open(data, IMAGE_STORE_EXCLUSIVE, &s, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                ids = ids_in_use(&s, NULL);
                if (image_store_prune(&s, ids, &freed, &err) < 0)
                        rc = cli_fail(&err, EXIT_ERROR);
                format_bytes(freed, size, sizeof(size));
                if (rc == EXIT_OK)
                        printf("Freed %s\n", size);
        } else {
                return cli_usage_error(cli_current, "unknown images command '%s'", verb);
        }
        return rc;
}
