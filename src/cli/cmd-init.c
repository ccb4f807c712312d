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
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

struct init_flags {
        const char *name, *agent;
};

static int init_opt(int c, const char *arg, void *ctx)
{
        struct init_flags *f = ctx;
        struct ak_err err = {0};

        switch (c) {
        case 'n':
                if (validate_name(arg, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->name = arg;
                return 0;
        case 'a':
                if (!coding_agent_find(arg))
                        return cli_usage_error(cli_current,
                                               "unknown agent '%s' (claude, codex, gemini, "
                                               "opencode, amp, pi, copilot)",
                                               arg);
                f->agent = arg;
                return 0;
        default:
                return EXIT_USAGE;
        }
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

int cmd_init(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"name", required_argument, NULL, 'n'},
            {"agent", required_argument, NULL, 'a'},
            {NULL, 0, NULL, 0},
        };
        struct init_flags f = {.agent = "claude"};
        const struct cli_spec spec = {
            .shortopts = "n:a:", .longopts = longopts, .on_opt = init_opt, .ctx = &f};
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
        if (config_starter(f.name ? f.name : name, f.agent, &text) < 0) {
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
            config_approve(cfg, &err) < 0) {
                if (!err.code)
                        ak_err_set(&err, EAGAIN, "the file changed while it was written");
                cli_error("wrote %s but could not approve it: %s; approve it with: agentkernel "
                          "trust",
                          CONFIG_FILE_NAME, ak_err_msg(&err));
                return EXIT_ERROR;
        }
        printf("Wrote and approved %s (sandbox '%s'); create it with: agentkernel create\n",
               CONFIG_FILE_NAME, f.name ? f.name : name);
        return EXIT_OK;
}
