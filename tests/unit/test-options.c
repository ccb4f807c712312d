// SPDX-License-Identifier: Apache-2.0
/* The CLI's option parser (src/cli/parse-options.c): short and long options, values attached
 * and apart, abbreviations, "--", positionals and the command, and every usage error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/parse-options.h"

static int test_fn(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        return 0;
}

static const struct verb verb = {"test", test_fn, "[OPTIONS] NAME", "A verb to parse for", NULL,
                                 0,      NULL};

struct values {
        bool all, quiet, flag_d;
        int net;
        const char *name, *env;
        int callbacks;
        const char *cb_arg;
};

static int count_cb(const struct cli_option *o, const char *arg)
{
        struct values *v = o->value;

        v->callbacks++;
        v->cb_arg = arg;
        return 0;
}

static int refuse_cb(const struct cli_option *o, const char *arg)
{
        (void)o;
        return cli_usage_error(cli_current, "refused '%s'", arg);
}

/* Parses argv (a NULL-terminated list after the verb) into v and a; returns cli_parse's code
 * with stderr and stdout sent away. */
static int parse(struct values *v, struct cli_args *a, bool want_cmd, size_t max_pos, ...)
{
        const struct cli_option options[] = {
            OPT_BOOL('a', "all", &v->all, "all of them"),
            OPT_BOOL('q', "quiet", &v->quiet, "quietly"),
            OPT_BOOL('d', "detach", &v->flag_d, "in the background"),
            OPT_SET_INT(0, "network", &v->net, 1, "with a network"),
            OPT_SET_INT(0, "no-network", &v->net, 0, "without"),
            OPT_STRING('n', "name", &v->name, "NAME", "a name"),
            OPT_STRING('e', "env", &v->env, "KEY=VALUE", "a variable"),
            OPT_CALLBACK(0, "count", v, "N", "counted", count_cb),
            OPT_CALLBACK(0, "ping", v, NULL, "counted, no value", count_cb),
            OPT_CALLBACK(0, "refuse", v, "X", "always refused", refuse_cb),
            OPT_STRING(0, "hidden", &v->name, "X", NULL),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 1,
                                      .max_pos = max_pos,
                                      .missing = "NAME is required",
                                      .want_cmd = want_cmd,
                                      .missing_cmd = want_cmd ? "a command is required" : NULL};
        static char *argv[32]; /* static: a->cmd points into it after the return */
        int argc = 1, r, saved_out = dup(1), saved_err = dup(2);
        FILE *null = fopen("/dev/null", "w");
        va_list ap;

        memset(argv, 0, sizeof(argv));
        argv[0] = "test";
        va_start(ap, max_pos);
        for (char *s; (s = va_arg(ap, char *)) && argc < 31;)
                argv[argc++] = s;
        va_end(ap);
        memset(v, 0, sizeof(*v));
        v->net = -1;
        cli_current = &verb;
        fflush(stdout);
        fflush(stderr);
        dup2(fileno(null), 1);
        dup2(fileno(null), 2);
        r = cli_parse(argc, argv, &spec, a);
        fflush(stdout);
        fflush(stderr);
        dup2(saved_out, 1);
        dup2(saved_err, 2);
        close(saved_out);
        close(saved_err);
        fclose(null);
        return r;
}

static void test_short_and_long(void **unused)
{
        struct values v;
        struct cli_args a;

        (void)unused;
        assert_int_equal(parse(&v, &a, false, 2, "-a", "box", "--quiet", NULL), 0);
        assert_true(v.all && v.quiet && !v.flag_d);
        assert_int_equal(a.n_pos, 1);
        assert_string_equal(a.pos[0], "box");
        /* combined short flags; options before, between and after positionals */
        assert_int_equal(parse(&v, &a, false, 2, "x", "-qad", "y", NULL), 0);
        assert_true(v.all && v.quiet && v.flag_d);
        assert_int_equal(a.n_pos, 2);
        assert_string_equal(a.pos[1], "y");
        /* values: attached, apart, after '=', and a value that looks like an option */
        assert_int_equal(parse(&v, &a, false, 1, "-nfoo", "-e", "K=V", "b", NULL), 0);
        assert_string_equal(v.name, "foo");
        assert_string_equal(v.env, "K=V");
        assert_int_equal(parse(&v, &a, false, 1, "--name=a=b", "--env", "-x", "b", NULL), 0);
        assert_string_equal(v.name, "a=b");
        assert_string_equal(v.env, "-x");
        assert_int_equal(parse(&v, &a, false, 1, "b", "--name=", NULL), 0);
        assert_string_equal(v.name, "");
        /* a flag ending a cluster may take the next argument as its value */
        assert_int_equal(parse(&v, &a, false, 1, "-qn", "nm", "b", NULL), 0);
        assert_true(v.quiet);
        assert_string_equal(v.name, "nm");
        /* set-int: the last one wins */
        assert_int_equal(parse(&v, &a, false, 1, "--no-network", "--network", "b", NULL), 0);
        assert_int_equal(v.net, 1);
        assert_int_equal(parse(&v, &a, false, 1, "b", NULL), 0);
        assert_int_equal(v.net, -1);
        /* callbacks, with and without a value; hidden options still parse */
        assert_int_equal(parse(&v, &a, false, 1, "--count", "3", "--ping", "--hidden=h", "b", NULL),
                         0);
        assert_int_equal(v.callbacks, 2);
        assert_null(v.cb_arg);
        assert_string_equal(v.name, "h");
        /* "-" is a positional (stdin) */
        assert_int_equal(parse(&v, &a, false, 1, "-", NULL), 0);
        assert_string_equal(a.pos[0], "-");
}

static void test_abbreviations(void **unused)
{
        struct values v;
        struct cli_args a;

        (void)unused;
        assert_int_equal(parse(&v, &a, false, 1, "--qui", "--na", "x", "b", NULL), 0);
        assert_true(v.quiet);
        assert_string_equal(v.name, "x");
        /* an exact name wins over the longer ones it begins ("--network" vs "--no-network") */
        assert_int_equal(parse(&v, &a, false, 1, "--network", "b", NULL), 0);
        assert_int_equal(v.net, 1);
        /* "--n" could be --name, --network or --no-network */
        assert_int_equal(parse(&v, &a, false, 1, "--n", "b", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "--no", "b", NULL), 0);
        assert_int_equal(v.net, 0);
}

static void test_dashdash_and_command(void **unused)
{
        struct values v;
        struct cli_args a;

        (void)unused;
        /* the command's own options are its own */
        assert_int_equal(parse(&v, &a, true, 1, "-q", "box", "ls", "-a", "--name", NULL), 0);
        assert_true(v.quiet && !v.all && !v.name);
        assert_int_equal(a.n_cmd, 3);
        assert_string_equal(a.cmd[0], "ls");
        assert_string_equal(a.cmd[1], "-a");
        assert_int_equal(parse(&v, &a, true, 1, "box", "-a", "--", "-q", NULL), 0);
        assert_true(v.all && !v.quiet);
        assert_int_equal(a.n_cmd, 1);
        assert_string_equal(a.cmd[0], "-q");
        /* after "--", never positionals */
        assert_int_equal(parse(&v, &a, true, 1, "--", "box", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 2, "b", "--", "c", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, true, 1, "box", "--", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "b", "--", NULL), 0);
}

static void test_usage_errors(void **unused)
{
        struct values v;
        struct cli_args a;

        (void)unused;
        assert_int_equal(parse(&v, &a, false, 1, "--bogus", "b", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "-x", "b", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "-qx", "b", NULL), EXIT_USAGE);
        /* a value missing at the end */
        assert_int_equal(parse(&v, &a, false, 1, "b", "--name", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "b", "-n", NULL), EXIT_USAGE);
        /* a value given to a flag */
        assert_int_equal(parse(&v, &a, false, 1, "--quiet=yes", "b", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "--ping=1", "b", NULL), EXIT_USAGE);
        /* positionals: too few, too many */
        assert_int_equal(parse(&v, &a, false, 1, "-q", NULL), EXIT_USAGE);
        assert_int_equal(parse(&v, &a, false, 1, "b", "c", NULL), EXIT_USAGE);
        /* a command is wanted */
        assert_int_equal(parse(&v, &a, true, 1, "box", NULL), EXIT_USAGE);
        /* a callback's refusal stops the parse there */
        assert_int_equal(parse(&v, &a, false, 1, "--refuse", "x", "--count", "1", "b", NULL),
                         EXIT_USAGE);
        assert_int_equal(v.callbacks, 0);
}

static void test_help(void **unused)
{
        struct values v;
        struct cli_args a;

        (void)unused;
        assert_int_equal(parse(&v, &a, false, 1, "--help", NULL), CLI_HELP_SHOWN);
        assert_int_equal(parse(&v, &a, false, 1, "b", "-h", NULL), CLI_HELP_SHOWN);
        assert_int_equal(parse(&v, &a, false, 1, "-qh", NULL), CLI_HELP_SHOWN);
        assert_int_equal(CLI_PARSE_EXIT(CLI_HELP_SHOWN), EXIT_OK);
        /* --help=x is no help */
        assert_int_equal(parse(&v, &a, false, 1, "--help=x", NULL), EXIT_USAGE);
}

/* The help is made from the table: every listed option, a hidden one not. */
static void test_help_text(void **unused)
{
        bool b = false;
        const char *s = NULL;
        const struct cli_option options[] = {
            OPT_BOOL('k', "keep", &b, "keep it"),
            OPT_STRING(0, "ttl", &s, "DUR", "expiry\nin two lines"),
            OPT_STRING('v', "volume", &s, "V:/PATH[:ro]", "a long one"),
            OPT_STRING(0, "secret", &s, "X", NULL),
            OPT_END(),
        };
        char buf[4096] = "";
        FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

        (void)unused;
        cli_prog = "agentkernel";
        cli_print_help(&verb, options, f);
        fclose(f);
        assert_non_null(
            strstr(buf, "A verb to parse for\n\nUsage: agentkernel test [OPTIONS] NAME\n"));
        assert_non_null(strstr(buf, "\nOptions:\n  -k, --keep            keep it\n"));
        assert_non_null(strstr(buf, "      --ttl DUR         expiry\n"
                                    "                        in two lines\n"));
        assert_non_null(strstr(buf, "  -v, --volume V:/PATH[:ro]\n"
                                    "                        a long one\n"));
        assert_null(strstr(buf, "secret"));
}

static int sub_a(int argc, char **argv)
{
        (void)argv;
        return 10 + argc;
}

static int dflt_fn(int argc, char **argv)
{
        (void)argv;
        return 20 + argc;
}

static void test_dispatch(void **unused)
{
        static const struct verb a = {"alpha", sub_a, "", "Alpha", NULL, 0, NULL};
        static const struct verb al = {"al", sub_a, "", "Alpha", NULL, VERB_HIDDEN, NULL};
        static const struct verb *const subs[] = {&a, &al, NULL};
        static const struct verb parent = {"parent", test_fn, "alpha", "A parent", NULL, 0, subs};
        char *one[] = {"parent", "alpha", "x", NULL};
        char *alias[] = {"parent", "al", NULL};
        char *none[] = {"parent", NULL};
        char *flag[] = {"parent", "--json", NULL};
        char *unknown[] = {"parent", "beta", NULL};
        int saved = dup(2);
        FILE *null = fopen("/dev/null", "w");

        (void)unused;
        dup2(fileno(null), 2);
        cli_prog = "agentkernel";
        cli_current = &parent;
        assert_int_equal(cli_dispatch(3, one, NULL), 12);
        assert_ptr_equal(cli_current, &a);
        assert_string_equal(cli_prog, "agentkernel parent");
        cli_prog = "agentkernel";
        cli_current = &parent;
        assert_int_equal(cli_dispatch(2, alias, NULL), 11);
        cli_prog = "agentkernel";
        cli_current = &parent;
        assert_int_equal(cli_dispatch(1, none, NULL), EXIT_USAGE);
        assert_int_equal(cli_dispatch(2, unknown, NULL), EXIT_USAGE);
        assert_int_equal(cli_dispatch(2, unknown, dflt_fn), EXIT_USAGE);
        /* without a sub-command, the default gets it all */
        assert_int_equal(cli_dispatch(1, none, dflt_fn), 21);
        assert_int_equal(cli_dispatch(2, flag, dflt_fn), 22);
        dup2(saved, 2);
        close(saved);
        fclose(null);
        assert_ptr_equal(cli_find_verb(subs, "al", 0), &al);
        assert_null(cli_find_verb(subs, "al", VERB_HIDDEN));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_short_and_long),
            cmocka_unit_test(test_abbreviations),
            cmocka_unit_test(test_dashdash_and_command),
            cmocka_unit_test(test_usage_errors),
            cmocka_unit_test(test_help),
            cmocka_unit_test(test_help_text),
            cmocka_unit_test(test_dispatch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
