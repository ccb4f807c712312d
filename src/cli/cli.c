// SPDX-License-Identifier: Apache-2.0
/* Shared plumbing of the CLI verbs: messages, the option values several verbs take, the manager,
 * the terminal. This is a top-level module: it may print. */
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
#include "shared/parse-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

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

/* ---- option values ---- */

int cli_opt_env(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (validate_env_entry(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (strv_push(o->value, arg) < 0) {
                cli_error("out of memory");
                return EXIT_USAGE;
        }
        return 0;
}

int cli_opt_workdir(const struct cli_option *o, const char *arg)
{
        if (arg[0] != '/')
                return cli_usage_error(cli_current, "working directory '%s' must be absolute", arg);
        *(const char **)o->value = arg;
        return 0;
}

int cli_opt_timeout(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};
        uint64_t secs;

        if (parse_ttl(arg, false, &secs, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *(uint64_t *)o->value = secs * 1000;
        return 0;
}

int cli_opt_duration(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (parse_ttl(arg, false, o->value, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        return 0;
}

int cli_opt_label(const struct cli_option *o, const char *arg)
{
        json_t **labels = o->value;
        cleanup_free char *k = NULL, *v = NULL;
        struct ak_err err = {0};

        if (parse_label(arg, '=', &k, &v, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        if (!*labels && !(*labels = json_object())) {
                cli_error("out of memory");
                return EXIT_USAGE;
        }
        json_object_set_new(*labels, k, json_string(v));
        return 0;
}

int cli_opt_cpus(const struct cli_option *o, const char *arg)
{
        uint32_t *v = o->value;

        if (safe_atou32(arg, v) < 0 || *v < 1 || *v > 64)
                return cli_usage_error(cli_current, "invalid cpus '%s': 1 to 64", arg);
        return 0;
}

int cli_opt_memory(const struct cli_option *o, const char *arg)
{
        uint64_t *v = o->value;

        if (safe_atou64(arg, v) < 0 || *v < 16 || *v > (1u << 20))
                return cli_usage_error(cli_current,
                                       "invalid memory '%s': a number of MB, 16 to 1048576", arg);
        return 0;
}

int cli_opt_backend(const struct cli_option *o, const char *arg)
{
        if (!backend_find(arg))
                return cli_usage_error(cli_current,
                                       "unknown backend '%s' (this build has: native, docker, "
                                       "podman)",
                                       arg);
        *(const char **)o->value = arg;
        return 0;
}

/* ---- the manager ---- */

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

int cli_parse_open(int argc, char **argv, const struct cli_spec *spec, struct cli_args *a,
                   struct manager **ret_m)
{
        int r = cli_parse(argc, argv, spec, a);

        if (r)
                return r;
        *ret_m = cli_manager();
        return *ret_m ? 0 : EXIT_ERROR;
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
