// SPDX-License-Identifier: Apache-2.0
/* Shared plumbing of the CLI verbs. This is a top-level module: it may print. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

const struct verb *cli_current;
const char *cli_prog = "agentkernel";

void cli_error(const char *fmt, ...)
{
        va_list ap;
        fputs("error: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void __attribute__((format(printf, 2, 0)))
vmessage(const char *prefix, const char *fmt, va_list ap)
{
        fputs(prefix, stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

void cli_warn(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vmessage("warning: ", fmt, ap);
        va_end(ap);
}

void cli_note(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vmessage("note: ", fmt, ap);
        va_end(ap);
}

int cli_fail(const struct ak_err *err, int code)
{
        cli_error("%s", ak_err_msg(err));
        return code;
}

int cli_exec_fail(const struct ak_err *err)
{
        return cli_fail(err, err->code == EPERM ? EXIT_CANNOT_EXEC : EXIT_RUN_ERROR);
}

void cli_print_help(const struct verb *v, FILE *f)
{
        fprintf(f, "%s\n\nUsage: %s %s %s\n", v->summary, cli_prog, v->name, v->usage);
        if (v->help && *v->help)
                fprintf(f, "\n%s", v->help);
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

int cli_parse(int argc, char **argv, const struct cli_spec *spec, struct cli_args *ret)
{
        char sopts[128];
        struct option lopts[64];
        size_t nl = 0;
        int c;

        memset(ret, 0, sizeof(*ret));
        (void)snprintf(sopts, sizeof(sopts), "+:h%s", spec->shortopts ? spec->shortopts : "");
        for (const struct option *o = spec->longopts; o && o->name && nl < ARRAY_SIZE(lopts) - 2;
             o++)
                lopts[nl++] = *o;
        lopts[nl++] = (struct option){"help", no_argument, NULL, 'h'};
        lopts[nl] = (struct option){NULL, 0, NULL, 0};
        optind = 0; /* full re-initialisation of GNU getopt */
        opterr = 0;
        for (;;) {
                c = getopt_long(argc, argv, sopts, lopts, NULL);
                if (c == -1) {
                        bool dashdash =
                            optind > 1 && optind <= argc && streq(argv[optind - 1], "--");
                        if (optind >= argc)
                                break;
                        if (!dashdash && ret->n_pos < MIN(spec->max_pos, (size_t)CLI_MAX_POS)) {
                                ret->pos[ret->n_pos++] = argv[optind++];
                                continue;
                        }
                        if (!spec->want_cmd)
                                return cli_usage_error(cli_current, "unexpected argument '%s'",
                                                       argv[optind]);
                        ret->cmd = argv + optind;
                        ret->n_cmd = (size_t)(argc - optind);
                        break;
                }
                if (c == 'h') {
                        cli_print_help(cli_current, stdout);
                        return CLI_HELP_SHOWN;
                }
                if (c == '?')
                        return cli_usage_error(cli_current, "unknown option '%s'",
                                               argv[optind - 1]);
                if (c == ':')
                        return cli_usage_error(cli_current, "option '%s' needs a value",
                                               argv[optind - 1]);
                if (!spec->on_opt || spec->on_opt(c, optarg, spec->ctx) != 0)
                        return EXIT_USAGE;
        }
        if (ret->n_pos < spec->min_pos)
                return cli_usage_error(cli_current, "%s", spec->missing);
        if (spec->want_cmd && ret->n_cmd == 0 && spec->missing_cmd)
                return cli_usage_error(cli_current, "%s", spec->missing_cmd);
        return 0;
}

int cli_opt_workdir(const char *arg, const char **ret)
{
        if (arg[0] != '/')
                return cli_usage_error(cli_current, "working directory '%s' must be absolute", arg);
        *ret = arg;
        return 0;
}

int cli_opt_timeout(const char *arg, uint64_t *ret_ms)
{
        struct ak_err err = {0};
        uint64_t secs;

        if (parse_ttl(arg, false, &secs, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *ret_ms = secs * 1000;
        return 0;
}

static void print_notice(void *ctx, const char *msg)
{
        (void)ctx;
        fprintf(stderr, "%s\n", msg);
}

struct manager *cli_manager(void)
{
        struct manager *m = NULL;
        struct ak_err err = {0};

        if (manager_open(&m, &err) < 0) {
                cli_error("%s", ak_err_msg(&err));
                return NULL;
        }
        manager_set_notify(m, print_notice, NULL);
        return m;
}

int cli_output(void *ctx, int stream, const void *data, size_t len)
{
        (void)ctx;
        /* A closed stdout (e.g. `| head`) must not kill us: stop the output, keep the status. */
        return write_all(stream == 1 ? STDOUT_FILENO : STDERR_FILENO, data, len) < 0 ? 0 : 0;
}

int cli_tty_raw(struct cli_tty *t, int fd)
{
        struct termios tio, raw;

        _Static_assert(sizeof(tio) <= sizeof(t->saved), "termios too large");
        t->fd = fd;
        t->active = false;
        if (!isatty(fd) || tcgetattr(fd, &tio) < 0)
                return -ENOTTY;
        memcpy(t->saved, &tio, sizeof(tio));
        raw = tio;
        cfmakeraw(&raw);
        if (tcsetattr(fd, TCSANOW, &raw) < 0)
                return -errno;
        t->active = true;
        return 0;
}

void cli_tty_restore(struct cli_tty *t)
{
        if (t->active) {
                struct termios tio;
                memcpy(&tio, t->saved, sizeof(tio));
                (void)tcsetattr(t->fd, TCSANOW, &tio);
                t->active = false;
        }
}

int cli_signalfd(void)
{
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGINT);
        sigaddset(&m, SIGTERM);
        sigaddset(&m, SIGHUP);
        sigaddset(&m, SIGQUIT);
        sigaddset(&m, SIGWINCH);
        sigprocmask(SIG_BLOCK, &m, NULL);
        return signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cli_exit_code(const struct agent_exit *e)
{
        if (e->code < 0 || e->code > 255)
                return EXIT_RUN_ERROR;
        return e->code;
}

void cli_print_json(json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) {
                fputs(s, stdout);
                fputc('\n', stdout);
                free(s);
        }
}

int cli_add_env(char ***env, const char *entry)
{
        struct ak_err err = {0};
        if (validate_env_entry(entry, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (strv_push(env, entry) < 0) {
                cli_error("out of memory");
                return EXIT_USAGE;
        }
        return 0;
}
