// SPDX-License-Identifier: Apache-2.0
/*
 * `trust` and `untrust`: approving agentkernel.toml files (as direnv's `allow`). `trust FILE`
 * shows what the file asks for -- profile, network, mounts, files, command policy, API keys --
 * and records its canonical path with the SHA-256 of its bytes; `run`, `create` and `serve` then
 * honour it until a byte changes. It never approves a file it could not read under config_load's
 * rules (owner, mode, syntax, sources).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/config.h"
#include "core/profile.h"
#include "core/trust.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/net-mode.h"
#include "shared/strv.h"

static void row(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void row(const char *what, const char *fmt, ...)
{
        va_list ap;

        printf("  %-16s ", what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
}

static void strv_row(const char *what, char **v)
{
        if (!v || !v[0])
                return;
        printf("  %-16s ", what);
        for (size_t i = 0; v[i]; i++)
                printf("%s%s", i ? ", " : "", v[i]);
        putchar('\n');
}

/* The first line of a script, for a one-line summary. */
static void script_row(const char *what, const char *s)
{
        size_t n = strcspn(s, "\n");
        row(what, "%.*s%s", (int)(n > 100 ? 100 : n), s, s[n] || n > 100 ? " ..." : "");
}

/* What the file asks for: everything that widens or changes a sandbox, or the API server. */
static void show(const struct config *c)
{
        const struct profile *p = profile_get(c->profile);
        const char *image = config_image(c);

        printf("%s (sha256 %.16s...) asks for:\n", c->path, c->sha256);
        if (c->name)
                row("sandbox name", "%s", c->name);
        row("image", "%s", image ? image : "the backend's default (native: host)");
        row("profile", "%s%s", p ? p->name : "moderate",
            p && streq(p->name, "permissive")
                ? " (network, the current directory read-write, $HOME read-only)"
                : "");
        if (c->network >= 0)
                row("network", "%s",
                    c->network == NET_MODE_FULL    ? "full (direct outbound, unfiltered)"
                    : c->network == NET_MODE_PROXY ? "proxy (outbound through the policy proxy)"
                                                   : "none");
        if (c->has_domains)
                row("egress policy", "%s, %zu allowed, %zu blocked",
                    c->domains.allowlist_only ? "allow-list only" : "block-list",
                    strv_len(c->domains.allow), strv_len(c->domains.block));
        if (c->hosts && json_object_size(c->hosts))
                row("static names", "%zu ([network] hosts)", json_object_size(c->hosts));
        if (c->mount_cwd >= 0)
                row("workspace", "%s",
                    c->mount_cwd ? "the current directory at /workspace, "
                                   "read-write"
                                 : "none");
        if (c->seccomp)
                row("seccomp", "%s", c->seccomp);
        if (c->vcpus)
                row("vcpus", "%u", c->vcpus);
        if (c->memory_mb)
                row("memory", "%llu MB", (unsigned long long)c->memory_mb);
        if (c->disk_mb)
                row("disk", "%llu MB", (unsigned long long)c->disk_mb);
        for (size_t i = 0; i < c->n_ports; i++)
                row(i ? "" : "published ports", "%d:%u%s on 127.0.0.1",
                    c->ports[i].host_port >= 0 ? c->ports[i].host_port
                                               : (int)c->ports[i].container_port,
                    c->ports[i].container_port, c->ports[i].udp ? "/udp" : "");
        for (size_t i = 0; i < c->n_files; i++)
                row(i ? "" : "files copied in", "%s/%s -> %s (mode %04o)", c->dir,
                    c->files[i].source, c->files[i].dest, c->files[i].mode);
        strv_row("commands allowed", c->commands.allow);
        strv_row("commands blocked", c->commands.block);
        if (c->commands.allowlist_only)
                row("", "only allowed commands may run");
        if (c->init_script)
                script_row("init script", c->init_script);
        strv_row("secrets bound", c->secrets);
        if (c->agent)
                row("agent", "%s", c->agent);
        if (c->git_name && c->git_email)
                row("git identity", "%s <%s>", c->git_name, c->git_email);
        if (c->api_key)
                row("serve API key", "set in the file (whoever wrote it knows the key)");
        if (c->api_key_env)
                row("serve API key", "from the environment variable %s", c->api_key_env);
        if (c->allow_sudo_exec)
                row("serve", "allow_sudo_exec = true");
        if (c->registry_mirror)
                row("image mirror", "%s (images are pulled from there)", c->registry_mirror);
        strv_row("plain-HTTP regs", c->insecure_registries);
        for (char **w = c->warnings; *w; w++)
                row("warning", "%s", *w);
}

static bool confirm(void)
{
        char line[16];

        fprintf(stderr, "Approve it? [y/N] ");
        fflush(stderr);
        if (!fgets(line, sizeof(line), stdin))
                return false;
        return line[0] == 'y' || line[0] == 'Y';
}

static int list(bool json)
{
        struct ak_err err = {0};
        cleanup_json json_t *all = NULL;
        cleanup_json json_t *out = json_array();
        const char *path;
        json_t *e;

        if (trust_list(&all, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (!json)
                printf("%-8s %-16s %-20s %s\n", "STATUS", "SHA256", "APPROVED", "PATH");
        json_object_foreach (all, path, e) {
                const char *want = json_string_value(json_object_get(e, "sha256"));
                const char *at = json_string_value(json_object_get(e, "approved_at"));
                struct config *c = NULL;
                struct ak_err ignore = {0};
                struct stat st;
                const char *status;

                if (lstat(path, &st) < 0)
                        status = "missing";
                else if (config_inspect(path, &c, &ignore) < 0)
                        status = "refused";
                else
                        status = streq(c->sha256, want) ? "ok" : "changed";
                config_free(c);
                if (json)
                        json_array_append_new(out, json_pack("{s:s,s:s,s:s?,s:s}", "path", path,
                                                             "sha256", want, "approved_at", at,
                                                             "status", status));
                else
                        printf("%-8s %.16s %-20.19s %s\n", status, want, at ? at : "-", path);
        }
        if (json)
                cli_print_json(out);
        return EXIT_OK;
}

static int cmd_trust(int argc, char **argv)
{
        struct {
                bool list, yes, show, json;
        } f = {0};
        const struct cli_option options[] = {
            OPT_BOOL('y', "yes", &f.yes, "approve without asking (asked only on a terminal)"),
            OPT_BOOL('s', "show", &f.show, "only show what the file asks for"),
            OPT_BOOL('l', "list", &f.list,
                     "every approval: ok, changed (approve again), missing, refused"),
            OPT_BOOL(0, "json", &f.json, "with --list: machine-readable output"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options, .max_pos = 1};
        struct ak_err err = {0};
        cleanup_config struct config *c = NULL;
        struct cli_args a;
        const char *path;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (f.list) {
                if (a.n_pos)
                        return cli_usage_error(cli_current, "--list takes no FILE");
                return list(f.json);
        }
        path = a.n_pos ? a.pos[0] : CONFIG_FILE_NAME;
        if (config_inspect(path, &c, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        show(c);
        if (f.show)
                return EXIT_OK;
        if (!f.yes && isatty(STDIN_FILENO) && !confirm()) {
                printf("Not approved\n");
                return EXIT_ERROR;
        }
        r = config_approve(c, &err);
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Approved %s; 'run', 'create' and 'serve' use it until it changes\n", c->path);
        return EXIT_OK;
}

/* The key an approval of path has: its canonical directory and name, or (when the directory is
 * gone) the absolute path as given. */
static char *approval_key(const char *path)
{
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        cleanup_free char *dir =
            slash ? (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path)))
                  : strdup(".");
        cleanup_free char *real = dir ? realpath(dir, NULL) : NULL;
        char cwd[PATH_MAX], *out = NULL;

        if (real)
                return asprintf(&out, "%s%s%s", real, streq(real, "/") ? "" : "/", base) < 0 ? NULL
                                                                                             : out;
        if (path[0] == '/')
                return strdup(path);
        if (!getcwd(cwd, sizeof(cwd)))
                return NULL;
        return asprintf(&out, "%s/%s", cwd, path) < 0 ? NULL : out;
}

static int cmd_untrust(int argc, char **argv)
{
        const struct cli_spec spec = {.min_pos = 1, .max_pos = 1, .missing = "a FILE is required"};
        struct ak_err err = {0};
        struct cli_args a;
        cleanup_free char *key = NULL;
        bool found;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        key = approval_key(a.pos[0]);
        if (!key) {
                cli_error("cannot resolve '%s': %s", a.pos[0], strerror(errno));
                return EXIT_ERROR;
        }
        if (trust_remove(key, &found, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (!found) {
                cli_error("'%s' is not approved (see: agentkernel trust --list)", key);
                return EXIT_ERROR;
        }
        printf("Removed the approval of %s\n", key);
        return EXIT_OK;
}

const struct verb verb_trust = {
    "trust",
    cmd_trust,
    "[-y] [--show] [FILE] | --list [--json]",
    "Review and approve an agentkernel.toml so that run, create and serve read it",
    "FILE defaults to ./agentkernel.toml. A config is read only when you own it, group and\n"
    "others cannot write it, and you approved its exact bytes: a sandbox writes into its\n"
    "workspace, and a config there could copy host files in or widen the sandbox. Approvals\n"
    "are kept in ~/.agentkernel/trusted-configs.json (path and SHA-256).\n",
    VERB_TOP_ONLY,
    NULL};
const struct verb verb_untrust = {
    "untrust", cmd_untrust,   "FILE", "Remove the approval of an agentkernel.toml",
    NULL,      VERB_TOP_ONLY, NULL};
