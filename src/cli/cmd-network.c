// SPDX-License-Identifier: Apache-2.0
/* `network policy NAME [--set FILE]` and `network log NAME [-f]`: a proxy-mode sandbox's egress
 * policy and decision log (docs/network.md), through the manager. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"

#define POLICY_FILE_MAX (1u << 20)

/* The policy in FILE ("-": stdin), at most POLICY_FILE_MAX bytes of JSON. */
static json_t *read_policy(const char *file, struct ak_err *err)
{
        cleanup_free char *buf = malloc(POLICY_FILE_MAX + 1);
        json_error_t je;
        json_t *j;
        size_t n;
        FILE *f = streq(file, "-") ? stdin : fopen(file, "re");

        if (!f || !buf) {
                if (f && f != stdin)
                        fclose(f);
                return f ? (ak_err_oom(err), NULL)
                         : (ak_err_errno(err, errno, "open '%s'", file), NULL);
        }
        n = fread(buf, 1, POLICY_FILE_MAX + 1, f);
        if (f != stdin)
                fclose(f);
        if (n > POLICY_FILE_MAX) {
                ak_err_set(err, E2BIG, "'%s': larger than %u bytes", file, POLICY_FILE_MAX);
                return NULL;
        }
        j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
        if (!j)
                ak_err_set(err, EINVAL, "'%s': not JSON: %s (line %d)", file, je.text, je.line);
        return j;
}

static int cmd_network_policy(int argc, char **argv)
{
        const char *set = NULL;
        const struct cli_option options[] = {
            OPT_STRING(0, "set", &set, "FILE",
                       "replace the policy with FILE's (JSON; '-': stdin): recorded, and\n"
                       "applied to new connections of a running sandbox at once"),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        cleanup_manager struct manager *m = NULL;
        cleanup_json json_t *p = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (set) {
                p = read_policy(set, &err);
                if (!p)
                        return cli_fail(&err, EXIT_USAGE);
                if (manager_network_set_policy(m, a.pos[0], p, &err) < 0)
                        return cli_fail(&err, err.code == EINVAL ? EXIT_USAGE : EXIT_ERROR);
                return EXIT_OK;
        }
        if (manager_network_policy(m, a.pos[0], &p, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        cli_print_json(p);
        return EXIT_OK;
}

/* Copies what fd has from its offset on to stdout. */
static int copy_out(int fd)
{
        char buf[65536];
        ssize_t n;

        while ((n = read(fd, buf, sizeof(buf))) > 0)
                if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
                        return -EIO;
        fflush(stdout);
        return n < 0 && errno != EAGAIN ? -errno : 0;
}

static int cmd_network_log(int argc, char **argv)
{
        bool follow = false;
        const struct cli_option options[] = {
            OPT_BOOL('f', "follow", &follow, "keep printing new lines as they come (Ctrl-C ends)"),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        cleanup_manager struct manager *m = NULL;
        cleanup_close int fd = -1;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_network_log_open(m, a.pos[0], &fd, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        for (;;) {
                if (fd >= 0 && copy_out(fd) < 0) {
                        cli_error("reading the log of '%s': %s", a.pos[0], strerror(errno));
                        return EXIT_ERROR;
                }
                if (!follow)
                        return EXIT_OK;
                /* a regular file never polls as empty: look again every 200 ms; the log is
                 * made at the sandbox's first proxy-mode start */
                (void)nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
                if (fd < 0 && manager_network_log_open(m, a.pos[0], &fd, &err) < 0)
                        return cli_fail(&err, EXIT_ERROR);
        }
}

static const struct verb network_policy_verb = {
    "policy",
    cmd_network_policy,
    "NAME [--set FILE]",
    "Show or replace a proxy-mode sandbox's egress policy",
    "The policy is JSON (docs/network.md): {\"default\": \"deny\", \"rules\": [{\"action\":\n"
    "\"allow\", \"host\": \"*.example.com\", \"ports\": [443]}], \"hosts\": {...}}. Rules are\n"
    "ordered, first match wins. A running sandbox's new connections follow a new policy\n"
    "within 100 ms.\n",
    0,
    NULL};
static const struct verb network_log_verb = {
    "log",
    cmd_network_log,
    "NAME [-f]",
    "Print a sandbox's egress decisions (JSON lines)",
    "One line per connection, request and DNS answer: host, address, port, rule, allowed\n"
    "or denied, bytes each way. Denials are in the audit log too.\n",
    0,
    NULL};
static const struct verb *const network_verbs[] = {&network_policy_verb, &network_log_verb, NULL};

const struct verb verb_network = {
    "network",
    cli_dispatch_verb,
    "policy NAME [--set FILE] | log NAME [-f]",
    "A proxy-mode sandbox's egress policy and decision log",
    "Network modes (--network none|proxy|full on run and create): none has loopback only;\n"
    "proxy sends every connection through agentkernel's policy proxy; full is direct and\n"
    "unfiltered. See docs/network.md.\n",
    0,
    network_verbs};
