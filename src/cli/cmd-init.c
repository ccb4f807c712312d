// SPDX-License-Identifier: Apache-2.0
/* `init`: write a starter agentkernel.toml in the current directory (never over an existing
 * one), and approve it: the user wrote it through us, so it is trusted as written. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/coding-agents.h"
#include "core/config.h"
#include "core/template.h"
#include "core/validate.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

static int opt_name(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (validate_name(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *(const char **)o->value = arg;
        return 0;
}

static int opt_agent(const struct cli_option *o, const char *arg)
{
        if (!coding_agent_find(arg))
                return cli_usage_error(cli_current,
                                       "unknown agent '%s' (claude, codex, gemini, opencode, amp, "
                                       "pi, copilot)",
                                       arg);
        *(const char **)o->value = arg;
        return 0;
}

/* The current directory's name, made into a valid sandbox name, or "sandbox". */
static void default_name(char *out, size_t len)
{
        char cwd[PATH_MAX];
        const char *base;
        size_t o = 0;

        (void)snprintf(out, len, "sandbox");
        if (!getcwd(cwd, sizeof(cwd)))
                return;
        base = strrchr(cwd, '/') ? strrchr(cwd, '/') + 1 : cwd;
        for (const char *p = base; *p && o + 1 < len && o < 63; p++) {
                char c = *p;
                bool ok =
                    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (ok)
                        out[o++] = c;
                else if (o && out[o - 1] != '-')
                        out[o++] = '-';
        }
        while (o && out[o - 1] == '-')
                o--;
        if (o)
                out[o] = '\0';
        if (validate_name(out, NULL) < 0)
                (void)snprintf(out, len, "sandbox");
}

/* A template's text with its [sandbox] name set to name (the line replaced, or added), after a
 * line saying where it came from. The [template] table stays (upstream dropped it). */
static int from_template(const char *tname, const char *text, const char *name, char **ret)
{
        struct buf b = BUF_INIT;
        bool in_sandbox = false, done = false, seen_sandbox = false;
        const char *p = text;
        int r = buf_printf(&b, "# Generated from template: %s\n", tname);

        while (r >= 0 && *p) {
                size_t n = strcspn(p, "\n");
                const char *line = p, *q = p + strspn(p, " \t");
                p += n + (p[n] == '\n');
                if (*q == '[') {
                        if (in_sandbox && !done) {
                                r = buf_printf(&b, "name = \"%s\"\n", name);
                                done = true;
                        }
                        in_sandbox = strncmp(q, "[sandbox]", 9) == 0;
                        seen_sandbox = seen_sandbox || in_sandbox;
                } else if (in_sandbox && !done && strncmp(q, "name", 4) == 0 &&
                           strspn(q + 4, " \t") + 4 < n && q[4 + strspn(q + 4, " \t")] == '=') {
                        r = buf_printf(&b, "name = \"%s\"\n", name);
                        done = true;
                        continue;
                }
                if (r >= 0)
                        r = buf_append(&b, line, (size_t)(p - line));
                if (r >= 0 && p[-1] != '\n')
                        r = buf_append(&b, "\n", 1);
        }
        if (r >= 0 && in_sandbox && !done)
                r = buf_printf(&b, "name = \"%s\"\n", name);
        else if (r >= 0 && !seen_sandbox)
                r = buf_printf(&b, "\n[sandbox]\nname = \"%s\"\n", name);
        if (r < 0 || buf_append(&b, "", 1) < 0) {
                buf_done(&b);
                return -ENOMEM;
        }
        *ret = buf_detach(&b, NULL);
        return 0;
}

static int cmd_init(int argc, char **argv)
{
        const char *want_name = NULL, *agent = "claude", *tspec = NULL;
        const struct cli_option options[] = {
            OPT_CALLBACK('n', "name", &want_name, "NAME",
                         "the sandbox's name (default: this directory's name)", opt_name),
            OPT_CALLBACK('a', "agent", &agent, "AGENT",
                         "claude (default), codex, gemini, opencode, amp, pi or copilot",
                         opt_agent),
            OPT_STRING('t', "template", &tspec, "TEMPLATE",
                       "start from a template (see 'template list')"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct cli_args a;
        cleanup_free char *text = NULL;
        cleanup_close int fd = -1;
        cleanup_config struct config *cfg = NULL;
        struct ak_err err = {0};
        char name[64], sha[CONFIG_SHA256_HEX];
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        default_name(name, sizeof(name));
        if (tspec) {
                cleanup_template struct template t = {0};
                if (template_resolve(tspec, &t, &err) < 0)
                        return cli_fail(&err, EXIT_USAGE);
                if (!t.text)
                        return cli_usage_error(cli_current,
                                               "-t takes a template's name; copy a file "
                                               "template instead (or 'template add FILE')");
                r = from_template(t.name, t.text, want_name ? want_name : name, &text);
        } else {
                r = config_starter(want_name ? want_name : name, agent, &text);
        }
        if (r < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        (void)SHA256Data((const uint8_t *)text, strlen(text), sha);
        fd = open(CONFIG_FILE_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
                cli_error(errno == EEXIST ? "%s already exists; not overwriting it"
                                          : "cannot create %s: %s",
                          CONFIG_FILE_NAME, strerror(errno));
                return EXIT_ERROR;
        }
        /* 0644 whatever the umask: a group-writable config would not be trusted */
        if (fchmod(fd, 0644) < 0 || write_all(fd, text, strlen(text)) < 0) {
                cli_error("cannot write %s: %s", CONFIG_FILE_NAME, strerror(errno));
                (void)unlink(CONFIG_FILE_NAME);
                return EXIT_ERROR;
        }
        /* approve what is on disk now, read back through the trusted reader's checks */
        if (config_inspect(CONFIG_FILE_NAME, &cfg, &err) < 0 || !streq(cfg->sha256, sha) ||
            !streq(cfg->name ? cfg->name : "", want_name ? want_name : name) ||
            config_approve(cfg, &err) < 0) {
                if (!err.code)
                        ak_err_set(&err, EAGAIN, "the file changed while it was written");
                cli_error("wrote %s but could not approve it: %s; approve it with: agentkernel "
                          "trust",
                          CONFIG_FILE_NAME, ak_err_msg(&err));
                return EXIT_ERROR;
        }
        printf("Wrote and approved %s (sandbox '%s'); create it with: agentkernel create\n",
               CONFIG_FILE_NAME, want_name ? want_name : name);
        return EXIT_OK;
}

const struct verb verb_init = {
    "init",
    cmd_init,
    "[-n NAME] [-a AGENT] [-t TEMPLATE]",
    "Write a starter agentkernel.toml here",
    "'create' and 'run' read ./agentkernel.toml when it exists (or --config FILE). init\n"
    "approves the file it writes; after editing it, approve it again with 'trust'.\n",
    VERB_TOP_ONLY,
    NULL};
