// SPDX-License-Identifier: Apache-2.0
/* `template list|show|save|add|remove` (core/template.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/manager.h"
#include "core/portable.h"
#include "core/template.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/strv.h"

static const char *image_of(const struct config *c)
{
        return c->base_image ? c->base_image : c->runtime ? c->runtime : "-";
}

static int cmd_template_list(int argc, char **argv)
{
        bool as_json = false;
        const struct cli_option options[] = {
            OPT_BOOL(0, "json", &as_json, "as JSON"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct template *t = NULL;
        cleanup_strv char **warnings = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        size_t n = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (template_list(&t, &n, &warnings, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        for (char **w = warnings; *w; w++)
                cli_warn("template: %s", *w);
        if (as_json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; arr && i < n; i++)
                        json_array_append_new(
                            arr, json_pack("{s:s,s:s,s:s,s:s?,s:I,s:s?}", "name", t[i].name,
                                           "source", template_source_name(t[i].source), "image",
                                           image_of(t[i].cfg), "profile", t[i].cfg->profile,
                                           "memory_mb", (json_int_t)t[i].cfg->memory_mb,
                                           "help_text", t[i].cfg->template_help_text));
                cli_print_json(arr);
        } else {
                printf("%-20s %-10s %-28s %-14s %6s\n", "NAME", "SOURCE", "IMAGE", "PROFILE",
                       "MEMORY");
                for (size_t i = 0; i < n; i++)
                        printf(
                            "%-20s %-10s %-28s %-14s %4lluMB\n", t[i].name,
                            template_source_name(t[i].source), image_of(t[i].cfg),
                            t[i].cfg->profile ? t[i].cfg->profile : "moderate",
                            (unsigned long long)(t[i].cfg->memory_mb ? t[i].cfg->memory_mb : 512));
        }
        template_list_free(t, n);
        return EXIT_OK;
}

static int cmd_template_show(int argc, char **argv)
{
        const struct cli_spec spec = {.min_pos = 1, .max_pos = 1, .missing = "a template name"};
        cleanup_template struct template t = {0};
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (template_resolve(a.pos[0], &t, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (t.text)
                fputs(t.text, stdout);
        else if (t.cfg->template_help_text)
                fputs(t.cfg->template_help_text, stdout);
        return EXIT_OK;
}

static int cmd_template_save(int argc, char **argv)
{
        const char *from = NULL;
        const struct cli_option options[] = {
            OPT_STRING(0, "from", &from, "SANDBOX", "the sandbox to make it from (required)"),
            OPT_END(),
        };
        const struct cli_spec spec = {
            .options = options, .min_pos = 1, .max_pos = 1, .missing = "a template name"};
        cleanup_manager struct manager *m = NULL;
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_free char *text = NULL, *path = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (!from)
                return cli_usage_error(cli_current, "--from SANDBOX is required");
        if (template_name_check(a.pos[0], &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        /* the sandbox's own record (upstream read a path that does not exist and lost the
         * image): what export-config says of it */
        if (manager_get(m, from, &st, &err) < 0 || portable_export(st, &text, &err) < 0 ||
            template_save(a.pos[0], text, strlen(text), &path, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Template '%s' saved to %s\n", a.pos[0], path);
        return EXIT_OK;
}

static int cmd_template_add(int argc, char **argv)
{
        const char *name = NULL;
        const struct cli_option options[] = {
            OPT_STRING(0, "name", &name, "NAME", "its name (default: the file's, without .toml)"),
            OPT_END(),
        };
        const struct cli_spec spec = {
            .options = options, .min_pos = 1, .max_pos = 1, .missing = "a template file"};
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_free char *path = NULL, *base = NULL;
        cleanup_close int fd = -1;
        struct ak_err err = {0};
        struct cli_args a;
        struct stat sb;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (strncmp(a.pos[0], "github:", 7) == 0) {
                cleanup_free char *fetched = NULL;
                if (template_fetch_github(a.pos[0], &fetched, &b, &err) < 0)
                        return cli_fail(&err, err.code == EINVAL ? EXIT_USAGE : EXIT_ERROR);
                if (!name)
                        name = fetched;
                if (template_name_check(name, &err) < 0)
                        return cli_fail(&err, EXIT_USAGE);
                if (template_save(name, b.data ? b.data : "", b.len, &path, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
                printf("Template '%s' fetched and cached (github)\n", name);
                return EXIT_OK;
        }
        if (!name) {
                const char *s = strrchr(a.pos[0], '/') ? strrchr(a.pos[0], '/') + 1 : a.pos[0];
                size_t n = strlen(s);
                base = strndup(s, n > 5 && streq(s + n - 5, ".toml") ? n - 5 : n);
                if (!base) {
                        cli_error("out of memory");
                        return EXIT_ERROR;
                }
                name = base;
        }
        if (template_name_check(name, &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        /* a regular file, read without blocking on a FIFO, at most the template bound */
        fd = open(a.pos[0], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &sb) < 0) {
                cli_error("cannot read '%s': %s", a.pos[0], strerror(errno));
                return EXIT_ERROR;
        }
        if (!S_ISREG(sb.st_mode)) {
                cli_error("'%s' is not a regular file", a.pos[0]);
                return EXIT_ERROR;
        }
        r = read_fd_full(fd, &b, TEMPLATE_MAX_BYTES);
        if (r < 0) {
                cli_error("'%s': %s", a.pos[0],
                          r == -EFBIG ? "larger than a template may be (64 KiB)" : strerror(-r));
                return EXIT_ERROR;
        }
        if (template_save(name, b.data ? b.data : "", b.len, &path, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Template '%s' added (%s)\n", name, path);
        return EXIT_OK;
}

static int cmd_template_remove(int argc, char **argv)
{
        const struct cli_spec spec = {.min_pos = 1, .max_pos = 1, .missing = "a template name"};
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (template_remove(a.pos[0], &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Template '%s' removed\n", a.pos[0]);
        return EXIT_OK;
}

static const struct verb template_list_verb = {
    "list", cmd_template_list, "[--json]", "List templates (built-in and yours)", NULL, 0, NULL};
static const struct verb template_show_verb = {
    "show", cmd_template_show, "NAME", "Print a template", NULL, 0, NULL};
static const struct verb template_save_verb = {"save",
                                               cmd_template_save,
                                               "NAME --from SANDBOX",
                                               "Save a sandbox's configuration as a template",
                                               NULL,
                                               0,
                                               NULL};
static const struct verb template_add_verb = {
    "add",
    cmd_template_add,
    "FILE|github:OWNER/REPO[/PATH][@REF] [--name NAME]",
    "Add a template from a TOML file, or from a git repository",
    "github: fetches PATH (default agentkernel.toml; .toml added) of the branch or tag REF\n"
    "(default: the default branch) with git (a shallow clone, nothing checked out or run),\n"
    "a regular file of at most 64 KiB, stored as a local template named after the file.\n"
    "AGENTKERNEL_GITHUB_URL replaces https://github.com (https, http, git or file URL).\n",
    0,
    NULL};
static const struct verb template_remove_verb = {
    "remove", cmd_template_remove, "NAME", "Remove one of your templates", NULL, 0, NULL};
static const struct verb template_rm_verb = {
    "rm", cmd_template_remove, "NAME", "Remove one of your templates", NULL, VERB_HIDDEN, NULL};
static const struct verb *const template_verbs[] = {&template_list_verb,
                                                    &template_show_verb,
                                                    &template_save_verb,
                                                    &template_add_verb,
                                                    &template_remove_verb,
                                                    &template_rm_verb,
                                                    NULL};

const struct verb verb_template = {
    "template",
    cli_dispatch_verb,
    "list | show NAME | save NAME --from SANDBOX | add FILE | remove NAME",
    "Manage sandbox templates",
    "Use one with: agentkernel create NAME --template T, run --template T, init -t T.\n"
    "Yours live in <data dir>/templates/NAME.toml (0600, in a 0700 directory).\n",
    VERB_TOP_ONLY,
    template_verbs};
