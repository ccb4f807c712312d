// SPDX-License-Identifier: Apache-2.0
/* `volume create|list|info|delete`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/volume.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/text-util.h"

struct volume_flags {
        uint64_t size;
        bool force, json;
};

static int volume_opt(int c, const char *arg, void *ctx)
{
        struct volume_flags *f = ctx;
        struct ak_err err = {0};

        switch (c) {
        case 's':
                if (volume_parse_size(arg, &f->size, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                return 0;
        case 'f':
                f->force = true;
                return 0;
        case 'j':
                f->json = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

/* The running sandbox that mounts slug, if any (deleting under it would lose its writes). */
static const char *used_by_running(struct manager *m, const char *slug, struct state_list *l)
{
        if (manager_list(m, NULL, NULL, l) < 0)
                return NULL;
        for (size_t i = 0; i < l->n; i++)
                for (char **v = l->items[i]->volumes; v && *v; v++) {
                        struct volume_spec vs;
                        if (volume_parse_spec(*v, &vs, NULL) == 0 && streq(vs.slug, slug) &&
                            manager_is_running(m, l->items[i]))
                                return l->items[i]->name;
                }
        return NULL;
}

int cmd_volume(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"size", required_argument, NULL, 's'},
            {"force", no_argument, NULL, 'f'},
            {"json", no_argument, NULL, 'j'},
            {NULL, 0, NULL, 0},
        };
        struct volume_flags f = {0};
        const struct cli_spec spec = {.shortopts = "s:fj",
                                      .longopts = longopts,
                                      .on_opt = volume_opt,
                                      .ctx = &f,
                                      .min_pos = 1,
                                      .max_pos = 2,
                                      .missing = "a volume command is required (create, list, "
                                                 "info, delete)"};
        struct cli_args a;
        struct ak_err err = {0};
        struct volume_info v;
        const char *verb;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        verb = a.pos[0];
        if (streq(verb, "list") || streq(verb, "ls")) {
                struct volume_info *all = NULL;
                size_t n = 0;
                if (a.n_pos != 1)
                        return cli_usage_error(cli_current, "list takes no name");
                if (volume_list(&all, &n, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                if (f.json) {
                        cleanup_json json_t *arr = json_array();
                        for (size_t i = 0; i < n; i++)
                                json_array_append_new(arr, volume_json(&all[i]));
                        cli_print_json(arr);
                } else {
                        printf("%-24s %-10s %-10s %-7s %s\n", "NAME", "SIZE", "USED", "MOUNTS",
                               "CREATED");
                        for (size_t i = 0; i < n; i++) {
                                char size[32], used[32];
                                format_bytes(all[i].used_bytes, used, sizeof(used));
                                if (all[i].size_bytes)
                                        format_bytes(all[i].size_bytes, size, sizeof(size));
                                else
                                        (void)snprintf(size, sizeof(size), "unlimited");
                                printf("%-24s %-10s %-10s %-7llu %s\n", all[i].slug, size, used,
                                       (unsigned long long)all[i].mount_count, all[i].created_at);
                        }
                }
                free(all);
                return EXIT_OK;
        }
        if (a.n_pos != 2)
                return cli_usage_error(cli_current, "'volume %s' needs a volume name", verb);
        if (streq(verb, "create")) {
                if (volume_create(a.pos[1], f.size, &v, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                printf("Created volume '%s'%s\n", v.slug, f.size ? " (size limit enforced)" : "");
                return EXIT_OK;
        }
        if (streq(verb, "info") || streq(verb, "inspect")) {
                cleanup_json json_t *j = NULL;
                if (volume_get(a.pos[1], &v, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                j = volume_json(&v);
                cli_print_json(j);
                return EXIT_OK;
        }
        if (streq(verb, "delete") || streq(verb, "rm")) {
                cleanup_state_list struct state_list l = {0};
                cleanup_manager struct manager *m = cli_manager();
                const char *user;
                if (!m)
                        return EXIT_ERROR;
                user = used_by_running(m, a.pos[1], &l);
                if (user) {
                        cli_error("volume '%s' is mounted by running sandbox '%s'; stop it first",
                                  a.pos[1], user);
                        return EXIT_ERROR;
                }
                if (volume_delete(a.pos[1], f.force, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                printf("Deleted volume '%s'\n", a.pos[1]);
                return EXIT_OK;
        }
        return cli_usage_error(cli_current, "unknown volume command '%s'", verb);
}
