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

static int opt_size(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (volume_parse_size(arg, o->value, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        return 0;
}

/* NAME, the one argument of create, info and delete. */
static int parse_name(int argc, char **argv, const struct cli_option *options, struct cli_args *ret)
{
        const struct cli_spec spec = {
            .options = options, .min_pos = 1, .max_pos = 1, .missing = "a volume name is required"};
        return cli_parse(argc, argv, &spec, ret);
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

static int cmd_volume_create(int argc, char **argv)
{
        uint64_t size = 0;
        const struct cli_option options[] = {
            OPT_CALLBACK('s', "size", &size, "SIZE",
                         "a hard limit (e.g. 512MB, 2GB), enforced by an ext4 filesystem of\n"
                         "that size (needs root)",
                         opt_size),
            OPT_END(),
        };
        struct volume_info v;
        struct ak_err err = {0};
        struct cli_args a;
        int r = parse_name(argc, argv, options, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (volume_create(a.pos[0], size, &v, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Created volume '%s'%s\n", v.slug, size ? " (size limit enforced)" : "");
        return EXIT_OK;
}

static int cmd_volume_list(int argc, char **argv)
{
        cleanup_free struct volume_info *all = NULL;
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct ak_err err = {0};
        struct cli_args a;
        size_t n = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (volume_list(&all, &n, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, volume_json(&all[i]));
                cli_print_json(arr);
                return EXIT_OK;
        }
        printf("%-24s %-10s %-10s %-7s %s\n", "NAME", "SIZE", "USED", "MOUNTS", "CREATED");
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
        return EXIT_OK;
}

static int cmd_volume_info(int argc, char **argv)
{
        cleanup_json json_t *j = NULL;
        struct volume_info v;
        struct ak_err err = {0};
        struct cli_args a;
        int r = parse_name(argc, argv, NULL, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (volume_get(a.pos[0], &v, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        j = volume_json(&v);
        cli_print_json(j);
        return EXIT_OK;
}

static int cmd_volume_delete(int argc, char **argv)
{
        cleanup_state_list struct state_list l = {0};
        cleanup_manager struct manager *m = NULL;
        bool force = false;
        const struct cli_option options[] = {
            OPT_BOOL('f', "force", &force, "a volume with files in it too"),
            OPT_END(),
        };
        struct ak_err err = {0};
        struct cli_args a;
        const char *user;
        int r = parse_name(argc, argv, options, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        user = used_by_running(m, a.pos[0], &l);
        if (user) {
                cli_error("volume '%s' is mounted by running sandbox '%s'; stop it first", a.pos[0],
                          user);
                return EXIT_ERROR;
        }
        if (volume_delete(a.pos[0], force, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Deleted volume '%s'\n", a.pos[0]);
        return EXIT_OK;
}

static const struct verb volume_create_verb = {"create",
                                               cmd_volume_create,
                                               "NAME [-s SIZE]",
                                               "Create a volume (-s: a size limit, enforced)",
                                               NULL,
                                               0,
                                               NULL};
static const struct verb volume_list_verb = {
    "list", cmd_volume_list, "[--json]", "List every volume with its use", NULL, 0, NULL};
static const struct verb volume_ls_verb = {
    "ls", cmd_volume_list, "[--json]", "List every volume with its use", NULL, VERB_HIDDEN, NULL};
static const struct verb volume_info_verb = {
    "info", cmd_volume_info, "NAME", "Show one volume, as JSON", NULL, 0, NULL};
static const struct verb volume_inspect_verb = {
    "inspect", cmd_volume_info, "NAME", "Show one volume, as JSON", NULL, VERB_HIDDEN, NULL};
static const struct verb volume_delete_verb = {
    "delete",
    cmd_volume_delete,
    "NAME [-f]",
    "Remove a volume; a non-empty one needs --force, one a running\n"
    "sandbox mounts is refused",
    NULL,
    0,
    NULL};
static const struct verb volume_rm_verb = {"rm", cmd_volume_delete, "NAME [-f]", "Remove a volume",
                                           NULL, VERB_HIDDEN,       NULL};
static const struct verb *const volume_verbs[] = {
    &volume_create_verb,  &volume_list_verb,   &volume_ls_verb, &volume_info_verb,
    &volume_inspect_verb, &volume_delete_verb, &volume_rm_verb, NULL};

const struct verb verb_volume = {
    "volume",
    cli_dispatch_verb,
    "create NAME [-s SIZE] | list [--json] | info NAME | delete NAME [-f]",
    "Manage volumes: directories that outlive sandboxes",
    "Mount one with: agentkernel create -v NAME:/data[:ro] ...\n",
    VERB_TOP_ONLY,
    volume_verbs};
