// SPDX-License-Identifier: Apache-2.0
/*
 * `secret set|get|list|delete`: the vault (core/vault.h), as upstream's CLI. A value is read
 * from standard input (a prompt without echo on a terminal), never needed on the command line:
 * upstream's `secret set KEY VALUE` still works, with a warning, and the value is wiped from
 * this process's arguments at once. Nothing here prints a value but `get`, to stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/strv.h"

static int backend(enum vault_backend *ret)
{
        struct ak_err err = {0};

        if (vault_backend_default(ret, &err) < 0) {
                cli_fail(&err, EXIT_USAGE);
                return -1;
        }
        return 0;
}

/* Reads a value: one line typed at a prompt without echo, or all of a non-terminal standard
 * input (a file, a pipe: multi-line values work) less one final newline. */
static int read_value(const char *key, char **ret, size_t *ret_len)
{
        size_t cap = VAULT_VALUE_MAX + 3, len = 0;
        char *buf = malloc(cap);
        bool tty = isatty(STDIN_FILENO);
        struct termios saved, quiet;
        bool echo_off = false;

        if (!buf)
                return -ENOMEM;
        if (tty) {
                /* echo goes off before the prompt shows: what is typed (or pasted) once it shows
                 * is neither echoed nor flushed away; only what was typed before it is */
                if (tcgetattr(STDIN_FILENO, &saved) == 0) {
                        quiet = saved;
                        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
                        echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
                }
                fprintf(stderr, "Enter value for %s: ", key);
                fflush(stderr);
        }
        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == cap || (tty && memchr(buf, '\n', len)))
                        break;
        }
        if (echo_off) {
                (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
                fputc('\n', stderr);
        }
        if (tty) {
                char *nl = memchr(buf, '\n', len);
                if (nl)
                        len = (size_t)(nl - buf) + 1;
        }
        if (len > VAULT_VALUE_MAX + 2) {
                vault_value_free(buf, cap);
                return -EFBIG;
        }
        if (len && buf[len - 1] == '\n')
                len--;
        if (len && buf[len - 1] == '\r')
                len--;
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        return 0;
}

static int opt_host(const struct cli_option *o, const char *arg)
{
        if (strv_push(o->value, arg) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        return 0;
}

static int cmd_secret_set(int argc, char **argv)
{
        cleanup_strv char **hosts = NULL;
        const struct cli_option options[] = {
            OPT_CALLBACK(0, "host", &hosts, "HOST",
                         "the secret may be bound only to HOST (repeatable; *.domain for a\n"
                         "domain and the names under it); default: any host, or the list\n"
                         "it had",
                         opt_host),
            OPT_END(),
        };
        const struct cli_spec spec = {
            .options = options, .min_pos = 1, .max_pos = 2, .missing = "a secret name is required"};
        struct ak_err err = {0};
        enum vault_backend b;
        struct cli_args a;
        char *value = NULL;
        size_t len = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (backend(&b) < 0)
                return EXIT_USAGE;
        if (vault_name_check(a.pos[0], &err) < 0)
                return cli_fail(&err, EXIT_USAGE);
        if (a.n_pos == 2) {
                /* upstream's form: kept, but the value was visible in ps and stays in history */
                len = strlen(a.pos[1]);
                value = strdup(a.pos[1]);
                explicit_bzero(a.pos[1], len);
                cli_warn("a value on the command line is visible to other local users (ps, "
                         "/proc) and stays in your shell's history; prefer: %s secret set %s "
                         "(reads it from standard input)",
                         "agentkernel", a.pos[0]);
                if (!value) {
                        cli_error("out of memory");
                        return EXIT_ERROR;
                }
        } else {
                r = read_value(a.pos[0], &value, &len);
                if (r == -EFBIG) {
                        cli_error("a secret's value is at most %u bytes", VAULT_VALUE_MAX);
                        return EXIT_USAGE;
                }
                if (r < 0) {
                        cli_error("cannot read the value: %s", strerror(-r));
                        return EXIT_ERROR;
                }
        }
        r = vault_set(b, a.pos[0], value, len, &err);
        vault_value_free(value, len);
        if (r >= 0 && hosts)
                r = vault_set_hosts(b, a.pos[0], hosts, &err);
        if (r < 0)
                return cli_fail(&err, r == -EINVAL || r == -EFBIG ? EXIT_USAGE : EXIT_ERROR);
        printf("Stored '%s' (backend: %s)\n", a.pos[0], vault_backend_name(b));
        return EXIT_OK;
}

static int cmd_secret_hosts(int argc, char **argv)
{
        const struct cli_spec spec = {
            .min_pos = 1, .max_pos = 1 + VAULT_HOSTS_MAX, .missing = "a secret name is required"};
        struct ak_err err = {0};
        enum vault_backend b;
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (backend(&b) < 0)
                return EXIT_USAGE;
        a.pos[a.n_pos] = NULL;
        r = vault_set_hosts(b, a.pos[0], a.pos + 1, &err);
        if (r < 0)
                return cli_fail(&err, r == -EINVAL ? EXIT_USAGE : EXIT_ERROR);
        if (a.n_pos == 1)
                printf("'%s' may be bound to any host\n", a.pos[0]);
        else
                printf("'%s' may be bound only to the %zu host(s) given\n", a.pos[0], a.n_pos - 1);
        return EXIT_OK;
}

static int cmd_secret_get(int argc, char **argv)
{
        const struct cli_spec spec = {
            .min_pos = 1, .max_pos = 1, .missing = "a secret name is required"};
        struct ak_err err = {0};
        enum vault_backend b;
        struct cli_args a;
        char *value = NULL;
        size_t len = 0;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (backend(&b) < 0)
                return EXIT_USAGE;
        if (vault_get(b, a.pos[0], &value, &len, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        fwrite(value, 1, len, stdout);
        putchar('\n');
        fflush(stdout);
        vault_value_free(value, len);
        return EXIT_OK;
}

static int cmd_secret_list(int argc, char **argv)
{
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        cleanup_json json_t *all = NULL;
        struct ak_err err = {0};
        enum vault_backend b;
        struct cli_args a;
        const char *k;
        json_t *v;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (backend(&b) < 0)
                return EXIT_USAGE;
        if (vault_list(b, &all, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cli_print_json(all);
                return EXIT_OK;
        }
        if (json_object_size(all) == 0) {
                printf("No secrets stored.\n");
                return EXIT_OK;
        }
        printf("%-30s %-10s %s\n", "KEY", "BACKEND", "SET AT");
        json_object_foreach (all, k, v) {
                json_t *hosts = json_object_get(v, "hosts"), *h;
                size_t i;
                printf("%-30s %-10s %s", k, json_string_value(json_object_get(v, "backend")),
                       json_string_value(json_object_get(v, "set_at")));
                json_array_foreach (hosts, i, h)
                        printf("%s%s", i ? ", " : "  (only to ", json_string_value(h));
                printf("%s\n", json_array_size(hosts) ? ")" : "");
        }
        return EXIT_OK;
}

static int cmd_secret_delete(int argc, char **argv)
{
        const struct cli_spec spec = {
            .min_pos = 1, .max_pos = 1, .missing = "a secret name is required"};
        struct ak_err err = {0};
        enum vault_backend b;
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (backend(&b) < 0)
                return EXIT_USAGE;
        if (vault_delete(b, a.pos[0], &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Deleted '%s'\n", a.pos[0]);
        return EXIT_OK;
}

static const struct verb secret_set_verb = {
    "set",
    cmd_secret_set,
    "KEY [--host HOST]...",
    "Store a secret; the value is read from standard input (a prompt\n"
    "without echo on a terminal)",
    NULL,
    0,
    NULL};
static const struct verb secret_hosts_verb = {
    "hosts",
    cmd_secret_hosts,
    "KEY [HOST...]",
    "Restrict where a secret may be bound (no HOST: anywhere)",
    NULL,
    0,
    NULL};
static const struct verb secret_get_verb = {
    "get", cmd_secret_get, "KEY", "Print a secret's value", NULL, 0, NULL};
static const struct verb secret_list_verb = {
    "list", cmd_secret_list, "[--json]", "List the stored secrets (names, never values)", NULL, 0,
    NULL};
static const struct verb secret_ls_verb = {
    "ls", cmd_secret_list, "[--json]", "List the stored secrets", NULL, VERB_HIDDEN, NULL};
static const struct verb secret_delete_verb = {
    "delete", cmd_secret_delete, "KEY", "Remove a secret", NULL, 0, NULL};
static const struct verb secret_rm_verb = {"rm", cmd_secret_delete, "KEY", "Remove a secret",
                                           NULL, VERB_HIDDEN,       NULL};
static const struct verb *const secret_verbs[] = {
    &secret_set_verb, &secret_get_verb,    &secret_hosts_verb, &secret_list_verb,
    &secret_ls_verb,  &secret_delete_verb, &secret_rm_verb,    NULL};

const struct verb verb_secret = {
    "secret",
    cli_dispatch_verb,
    "set KEY [--host HOST]... | get KEY | hosts KEY [HOST...] | list [--json] | delete KEY",
    "Manage the secrets vault (encrypted, in ~/.agentkernel)",
    "Bind a secret to a host with: agentkernel create -S KEY:host[:header] ...\n"
    "Inside the sandbox KEY holds a placeholder, never the value (docs/secrets.md).\n"
    "AGENTKERNEL_SECRETS_BACKEND=env reads values from the environment instead.\n",
    VERB_TOP_ONLY,
    secret_verbs};
