// SPDX-License-Identifier: Apache-2.0
/* The option parser, the help it prints from option tables, and dispatch from verb tables
 * (parse-options.h). A top-level module: it prints. */
#include "parse-options.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/macro.h"

#define HELP_COLUMN 24 /* where an option's help starts */

const struct verb *cli_current;
const char *cli_prog = "agentkernel";

/* ---- help ---- */

/* "  -k, --keep", "      --ttl DUR", "  -e, --env KEY=VALUE", "  -q" */
static int option_left(const struct cli_option *o, char *buf, size_t len)
{
        int n = snprintf(buf, len, "  %c%c%s", o->short_name ? '-' : ' ',
                         o->short_name ? o->short_name : ' ',
                         o->short_name && o->long_name ? ", " : "  ");
        if (o->long_name)
                n += snprintf(buf + n, len - (size_t)n, "--%s", o->long_name);
        if (o->argh)
                n += snprintf(buf + n, len - (size_t)n, " %s", o->argh);
        return n;
}

/* text, its lines after the first indented to HELP_COLUMN */
static void print_indented(FILE *f, const char *text)
{
        for (const char *p = text; *p;) {
                size_t n = strcspn(p, "\n");
                if (p != text)
                        fprintf(f, "%*s", HELP_COLUMN, "");
                fprintf(f, "%.*s\n", (int)n, p);
                p += n;
                if (*p)
                        p++;
        }
}

static void print_options(const struct cli_option *options, FILE *f)
{
        bool any = false;

        for (const struct cli_option *o = options; o && o->type != CLI_OPT_END; o++) {
                char left[128];
                int n;
                if (!o->help)
                        continue;
                if (!any)
                        fputs("\nOptions:\n", f);
                any = true;
                n = option_left(o, left, sizeof(left));
                fputs(left, f);
                if (n >= HELP_COLUMN)
                        fprintf(f, "\n%*s", HELP_COLUMN, "");
                else
                        fprintf(f, "%*s", HELP_COLUMN - n, "");
                print_indented(f, o->help);
        }
}

void cli_list_verbs(const struct verb *const *table, unsigned skip_flags, bool with_usage, FILE *f)
{
        for (const struct verb *const *v = table; *v; v++) {
                char left[128];
                int n;
                if ((*v)->flags & (skip_flags | VERB_HIDDEN))
                        continue;
                n = snprintf(left, sizeof(left), "  %s%s%s", (*v)->name,
                             with_usage && *(*v)->usage ? " " : "", with_usage ? (*v)->usage : "");
                if (!with_usage) {
                        fprintf(f, "  %-10s %s\n", (*v)->name, (*v)->summary);
                        continue;
                }
                fputs(left, f);
                if (n >= HELP_COLUMN)
                        fprintf(f, "\n%*s", HELP_COLUMN, "");
                else
                        fprintf(f, "%*s", HELP_COLUMN - n, "");
                print_indented(f, (*v)->summary);
        }
}

void cli_print_help(const struct verb *v, const struct cli_option *options, FILE *f)
{
        fprintf(f, "%s\n\nUsage: %s %s %s\n", v->summary, cli_prog, v->name, v->usage);
        print_options(options, f);
        if (v->subverbs) {
                fputs("\nCommands:\n", f);
                cli_list_verbs(v->subverbs, 0, true, f);
                fprintf(f, "\nRun '%s %s COMMAND --help' for a command's options.\n", cli_prog,
                        v->name);
        }
        if (v->notes && *v->notes)
                fprintf(f, "\n%s", v->notes);
}

int cli_usage_error(const struct verb *v, const char *fmt, ...)
{
        va_list ap;

        fputs("error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nUsage: %s %s %s\nTry '%s %s --help' for more information.\n", cli_prog,
                v->name, v->usage, cli_prog, v->name);
        return EXIT_USAGE;
}

/* ---- parsing ---- */

/* Sets o's target; arg is its value (NULL for an option without one). */
static int apply(const struct cli_option *o, const char *arg)
{
        switch (o->type) {
        case CLI_OPT_BOOL:
                *(bool *)o->value = true;
                return 0;
        case CLI_OPT_SET_INT:
                *(int *)o->value = (int)o->defval;
                return 0;
        case CLI_OPT_STRING:
                *(const char **)o->value = arg;
                return 0;
        case CLI_OPT_CALLBACK:
                return o->cb(o, arg) != 0 ? EXIT_USAGE : 0;
        case CLI_OPT_END:
        default:
                return EXIT_USAGE;
        }
}

/* The option "--name" (or a unique abbreviation of it) stands for; NULL after printing why not.
 * len: the name's length (up to a '='). */
static const struct cli_option *find_long(const struct cli_option *options, const char *name,
                                          size_t len, const char *given)
{
        const struct cli_option *found = NULL;
        int candidates = 0;

        for (const struct cli_option *o = options; o && o->type != CLI_OPT_END; o++) {
                if (!o->long_name || strncmp(o->long_name, name, len) != 0)
                        continue;
                if (o->long_name[len] == '\0')
                        return o; /* exact */
                found = o;
                candidates++;
        }
        if (candidates == 1)
                return found;
        if (candidates > 1)
                cli_usage_error(cli_current, "option '%s' is ambiguous", given);
        else
                cli_usage_error(cli_current, "unknown option '%s'", given);
        return NULL;
}

static const struct cli_option *find_short(const struct cli_option *options, int c)
{
        for (const struct cli_option *o = options; o && o->type != CLI_OPT_END; o++)
                if (o->short_name == c)
                        return o;
        return NULL;
}

/* An option whose argument is optional says so with an argh of "[a|b|c]": the value is taken
 * with '=' (--network=full), or from the next argument when it is one of those words
 * (--network full); otherwise the callback gets NULL. */
static bool optional_arg(const struct cli_option *o)
{
        return o->argh && o->argh[0] == '[';
}

static bool optional_arg_word(const struct cli_option *o, const char *next)
{
        size_t n = strlen(next);

        for (const char *p = o->argh + 1; n && *p && *p != ']';) {
                size_t w = strcspn(p, "|]");
                if (w == n && !strncmp(p, next, n))
                        return true;
                p += w + (p[w] == '|');
        }
        return false;
}

/* One argument that starts with "--" (not "--" itself). *i is advanced past what it used. */
static int parse_long(const struct cli_spec *spec, int argc, char **argv, int *i)
{
        const char *given = argv[*i], *name = given + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cli_option *o;

        if (len == 4 && !strncmp(name, "help", 4) && !eq) {
                cli_print_help(cli_current, spec->options, stdout);
                return CLI_HELP_SHOWN;
        }
        o = find_long(spec->options, name, len, given);
        if (!o)
                return EXIT_USAGE;
        (*i)++;
        if (!o->argh) {
                if (eq)
                        return cli_usage_error(cli_current, "option '--%s' takes no value",
                                               o->long_name);
                return apply(o, NULL);
        }
        if (eq)
                return apply(o, eq + 1);
        if (optional_arg(o))
                return apply(o, *i < argc && optional_arg_word(o, argv[*i]) ? argv[(*i)++] : NULL);
        if (*i >= argc)
                return cli_usage_error(cli_current, "option '%s' needs a value", given);
        return apply(o, argv[(*i)++]);
}

/* One argument that starts with '-' and a letter: one or several short options. */
static int parse_short(const struct cli_spec *spec, int argc, char **argv, int *i)
{
        const char *p = argv[*i] + 1;

        (*i)++;
        for (; *p; p++) {
                const struct cli_option *o = find_short(spec->options, *p);
                int r;
                if (*p == 'h' && !o) {
                        cli_print_help(cli_current, spec->options, stdout);
                        return CLI_HELP_SHOWN;
                }
                if (!o)
                        return cli_usage_error(cli_current, "unknown option '-%c'", *p);
                if (!o->argh) {
                        r = apply(o, NULL);
                        if (r)
                                return r;
                        continue;
                }
                if (p[1])
                        return apply(o, p + 1); /* -eKEY=VALUE */
                if (*i >= argc)
                        return cli_usage_error(cli_current, "option '-%c' needs a value", *p);
                return apply(o, argv[(*i)++]);
        }
        return 0;
}

/* Shell completion (cli_complete_env): the options a verb takes, one per line, listed ones
 * only. */
static void list_options(const struct cli_option *options)
{
        for (const struct cli_option *o = options; o && o->type != CLI_OPT_END; o++) {
                if (!o->help)
                        continue;
                if (o->long_name)
                        printf("--%s\n", o->long_name);
                if (o->short_name)
                        printf("-%c\n", o->short_name);
        }
        printf("--help\n");
}

int cli_parse(int argc, char **argv, const struct cli_spec *spec, struct cli_args *ret)
{
        size_t max_pos = MIN(spec->max_pos, (size_t)CLI_MAX_POS);
        int i = 1, r;

        memset(ret, 0, sizeof(*ret));
        if (getenv(CLI_COMPLETE_ENV)) {
                list_options(spec->options);
                return CLI_HELP_SHOWN;
        }
        while (i < argc) {
                const char *a = argv[i];
                if (!strcmp(a, "--")) {
                        i++; /* what follows is the command, never positionals */
                        break;
                }
                if (a[0] == '-' && a[1] == '-')
                        r = parse_long(spec, argc, argv, &i);
                else if (a[0] == '-' && a[1])
                        r = parse_short(spec, argc, argv, &i);
                else if (ret->n_pos < max_pos) {
                        ret->pos[ret->n_pos++] = argv[i++];
                        continue;
                } else
                        break; /* the command, or one argument too many */
                if (r)
                        return r;
        }
        if (i < argc) {
                if (!spec->want_cmd && spec->max_pos >= CLI_MAX_POS && ret->n_pos == max_pos)
                        return cli_usage_error(cli_current,
                                               "at most %zu names at once ('%s' is one more)",
                                               max_pos, argv[i]);
                if (!spec->want_cmd)
                        return cli_usage_error(cli_current, "unexpected argument '%s'", argv[i]);
                ret->cmd = argv + i;
                ret->n_cmd = (size_t)(argc - i);
        }
        if (ret->n_pos < spec->min_pos)
                return cli_usage_error(cli_current, "%s", spec->missing);
        if (spec->want_cmd && ret->n_cmd == 0 && spec->missing_cmd)
                return cli_usage_error(cli_current, "%s", spec->missing_cmd);
        return 0;
}

/* ---- verbs ---- */

const struct verb *cli_find_verb(const struct verb *const *table, const char *name,
                                 unsigned skip_flags)
{
        for (const struct verb *const *v = table; *v; v++)
                if (!((*v)->flags & skip_flags) && !strcmp((*v)->name, name))
                        return *v;
        return NULL;
}

int cli_dispatch(int argc, char **argv, int (*dflt)(int argc, char **argv))
{
        static char prog[128];
        const struct verb *parent = cli_current, *v;
        char names[256] = "";
        size_t o = 0;

        if (argc >= 2 && (v = cli_find_verb(parent->subverbs, argv[1], 0))) {
                (void)snprintf(prog, sizeof(prog), "%s %s", cli_prog, parent->name);
                cli_prog = prog;
                cli_current = v;
                return v->fn(argc - 1, argv + 1);
        }
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) && !dflt) {
                cli_print_help(parent, NULL, stdout);
                return EXIT_OK;
        }
        if (dflt && (argc < 2 || argv[1][0] == '-'))
                return dflt(argc, argv);
        for (const struct verb *const *s = parent->subverbs; *s; s++)
                if (!((*s)->flags & VERB_HIDDEN))
                        o += (size_t)snprintf(names + o, o < sizeof(names) ? sizeof(names) - o : 0,
                                              "%s%s", o ? ", " : "", (*s)->name);
        if (argc < 2)
                return cli_usage_error(parent, "a command is required (%s)", names);
        return cli_usage_error(parent, "unknown %s command '%s' (try: %s)", parent->name, argv[1],
                               names);
}

int cli_dispatch_verb(int argc, char **argv)
{
        return cli_dispatch(argc, argv, NULL);
}
