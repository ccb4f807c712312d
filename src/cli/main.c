// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel: run AI coding agents' commands in isolated sandboxes. The verb table and
 * dispatch; each verb lives in its own file. Verbs exist both at the top level (as upstream's
 * first CLI) and under `sandbox`/`sb` (as its current one).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "build-config.h"
#include "cli.h"
#include "cmd.h"

#define EXEC_OPTIONS                                                                               \
        "  -e, --env KEY=VALUE   set an environment variable (repeatable)\n"                       \
        "  -w, --workdir DIR     working directory inside the sandbox (absolute)\n"                \
        "  -u, --user USER       run as USER (name, uid or uid:gid); default root\n"               \
        "      --sudo            run as root\n"                                                    \
        "  -t, --tty             allocate a terminal (implies forwarding stdin)\n"                 \
        "  -i, --interactive     forward stdin even when it is a terminal\n"                       \
        "      --timeout DUR     kill the command after DUR (e.g. 30s, 5m)\n"

static const struct verb verbs[] = {
    {"run", cmd_run, "[OPTIONS] -- COMMAND [ARG...]",
     "Run a command in a new sandbox, removed afterwards unless --keep",
     "Options:\n"
     "  -k, --keep            keep the sandbox (named run-XXXXXXXX, TTL 1h by default)\n"
     "  -i, --image IMAGE     image to run (native: 'host', the default)\n"
     "  -p, --profile NAME    permissive, moderate (default) or restrictive\n"
     "      --no-network      no network at all (loopback only)\n"
     "      --network         outbound network even if the profile has none\n"
     "  -e, --env KEY=VALUE   environment variable (repeatable)\n"
     "  -w, --workdir DIR     working directory inside the sandbox\n"
     "      --ttl DUR         with --keep: expiry (0 = never; e.g. 30m, 2h30m, 1d)\n"
     "  -B, --backend NAME    native (default), docker or podman; see doctor\n"
     "  -P, --publish SPEC    publish a port: HOST:CONTAINER[/udp] (repeatable)\n"
     "  -l, --label KEY=VALUE label (with --keep)\n"
     "      --memory MB       memory limit (default: the profile's, 512)\n"
     "      --disk MB         what the sandbox may write to its own filesystems (/, /tmp,\n"
     "                        /var, ...) together; default: half of --memory (docker,\n"
     "                        podman: / and the scratch places each; see info)\n"
     "      --cpus N          CPU limit in CPUs (default 1)\n"
     "      --mount-cwd       mount the current directory at /workspace\n"
     "  -t, --tty             allocate a terminal\n"
     "      --interactive     forward stdin even when it is a terminal\n"
     "      --timeout DUR     kill the command after DUR\n"
     "  -F, --fast            docker/podman: take a pre-started container from the warm pool\n"
     "  -v, --volume V:/PATH[:ro] mount volume V (see 'volume') at PATH (repeatable)\n"
     "  -c, --config FILE     agentkernel.toml to read (default: ./agentkernel.toml if any;\n"
     "                        it must be approved: see 'trust')\n"
     "      --no-config       do not read ./agentkernel.toml\n"
     "\nThe command's exit status becomes agentkernel's; 125 means the sandbox failed; 2 an\n"
     "invalid or refused (unapproved) agentkernel.toml.\n"},
    {"create", cmd_create, "[OPTIONS] [NAME]", "Create a sandbox (and start it)",
     "Options:\n"
     "  -i, --image IMAGE     image (native: 'host', the default)\n"
     "      --profile NAME    permissive, moderate (default) or restrictive\n"
     "  -p, --publish SPEC    publish a port: HOST:CONTAINER[/udp] (repeatable)\n"
     "      --no-network      no network (loopback only)\n"
     "      --network         outbound network even if the profile has none\n"
     "  -e, --env KEY=VALUE   environment variable for every command (repeatable)\n"
     "      --ttl DUR         expire after DUR (e.g. 30m, 2h30m, 1d); 0 = never\n"
     "  -B, --backend NAME    native (default), docker or podman\n"
     "  -l, --label KEY=VALUE label (repeatable)\n"
     "  -a, --agent NAME      the coding agent this sandbox is for (recorded)\n"
     "  -d, --dir DIR         mount DIR read-write at /workspace\n"
     "      --mount-cwd       mount the current directory at /workspace\n"
     "      --memory MB       memory limit (default: the profile's, 512)\n"
     "      --disk MB         what the sandbox may write to its own filesystems (/, /tmp,\n"
     "                        /var, ...) together; default: half of --memory (docker,\n"
     "                        podman: / and the scratch places each; see info)\n"
     "      --cpus N          CPU limit in CPUs (default 1)\n"
     "      --description TEXT\n"
     "      --no-start        record the sandbox without starting it\n"
     "  -v, --volume V:/PATH[:ro] mount volume V (see 'volume') at PATH (repeatable)\n"
     "  -c, --config FILE     agentkernel.toml to read (default: ./agentkernel.toml if any;\n"
     "                        it must be approved: see 'trust'); flags win over the file.\n"
     "                        NAME defaults to its [sandbox] name\n"
     "      --no-config       do not read ./agentkernel.toml\n"},
    {"start", cmd_start, "NAME...", "Start sandboxes",
     "Starting a running sandbox is not an error.\n"},
    {"stop", cmd_stop, "NAME...", "Stop sandboxes (every process in them ends)", ""},
    {"remove", cmd_remove, "NAME...", "Stop and delete sandboxes; nothing of them remains", ""},
    {"rm", cmd_remove, "NAME...", "Alias of remove", ""},
    {"list", cmd_list, "[--json] [-l KEY=VALUE]...", "List sandboxes",
     "Options:\n"
     "      --json            machine-readable output\n"
     "  -l, --label KEY=VALUE only sandboxes with this label (repeatable: all must match)\n"},
    {"ls", cmd_list, "[--json] [-l KEY=VALUE]...", "Alias of list", ""},
    {"info", cmd_info, "[--json] NAME", "Show a sandbox's record and status", ""},
    {"exec", cmd_exec, "[OPTIONS] NAME -- COMMAND [ARG...]", "Run a command in a running sandbox",
     "Options:\n" EXEC_OPTIONS
     "  -d, --detach          run in the background; prints the command's id and record\n"
     "\nThe command's exit status becomes agentkernel's; 125 means the sandbox failed.\n"},
    {"attach", cmd_attach, "[OPTIONS] NAME [-- COMMAND...]",
     "Open an interactive shell (or COMMAND) on a terminal in a running sandbox",
     "Options:\n"
     "  -e, --env KEY=VALUE   environment variable (repeatable)\n"
     "  -u, --user USER       run as USER\n"
     "      --record FILE     record the session as asciicast v2\n"},
    {"exec-list", cmd_exec_list, "[--json] NAME", "List a sandbox's detached commands", ""},
    {"exec-logs", cmd_exec_logs, "[--stderr] NAME ID", "Print a detached command's output",
     "Options:\n  --stderr   print its standard error instead of its standard output\n"},
    {"exec-kill", cmd_exec_kill, "NAME ID",
     "Stop a detached command (SIGTERM, then SIGKILL after 2 s)", ""},
    {"extend-ttl", cmd_extend_ttl, "NAME [--by DUR]",
     "Move a sandbox's expiry later (from now if it has passed)",
     "Options:\n"
     "      --by DUR          how much later (default 1h; e.g. 30m, 2h30m, 1d)\n"
     "\nA sandbox created without a TTL never expires and has none to extend.\n"},
    {"gc", cmd_gc, "[--dry-run] [-l KEY=VALUE]...", "Remove expired sandboxes",
     "Options:\n"
     "      --dry-run         only list what would be removed\n"
     "  -l, --label KEY=VALUE only expired sandboxes that also have this label (repeatable)\n"},
    {"reconcile", cmd_reconcile, "[--dry-run] [--json]",
     "Apply lifecycle policies now: stop, archive or delete idle sandboxes",
     "Options:\n"
     "      --dry-run         only report the decisions\n"
     "      --json            machine-readable output\n"
     "\nPolicies are set with 'update --auto-stop/--auto-archive/--auto-delete'; 'serve'\n"
     "applies them continuously.\n"},
    {"archive", cmd_archive, "NAME [--reason TEXT]",
     "Stop a sandbox and archive it: it cannot start until recovered", ""},
    {"recover", cmd_recover, "NAME", "Clear a sandbox's archived state so it can start again", ""},
    {"resize", cmd_resize, "NAME [--cpus N] [--memory MB]",
     "Change a sandbox's CPU and memory limits (in place when it runs on native)",
     "Options:\n"
     "      --cpus N          CPUs, 1 to 64\n"
     "      --memory MB       memory in MB, 16 to 1048576\n"},
    {"update", cmd_update, "NAME [OPTIONS]", "Change a sandbox's labels, description or lifecycle",
     "Options:\n"
     "  -l, --label KEY=VALUE the new labels (repeatable; replaces all labels)\n"
     "      --clear-labels    remove all labels\n"
     "      --description TEXT\n"
     "      --clear-description\n"
     "      --auto-stop DUR   stop after DUR without activity\n"
     "      --auto-archive DUR archive (stopped, start refused) after DUR without activity\n"
     "      --auto-delete DUR remove DUR after being archived\n"
     "      --no-lifecycle    remove the lifecycle policy\n"
     "\nActivity is any start, exec, attach, detached command or file transfer.\n"},
    {"cp", cmd_cp, "SRC DST",
     "Copy a file between the host and a sandbox (NAME:/path on one side; - is stdio)", ""},
    {"init", cmd_init, "[-n NAME] [-a AGENT]", "Write a starter agentkernel.toml here",
     "Options:\n"
     "  -n, --name NAME       the sandbox's name (default: this directory's name)\n"
     "  -a, --agent AGENT     claude (default), codex, gemini, opencode, amp, pi or copilot\n"
     "\n'create' and 'run' read ./agentkernel.toml when it exists (or --config FILE). init\n"
     "approves the file it writes; after editing it, approve it again with 'trust'.\n"},
    {"trust", cmd_trust, "[-y] [--show] [FILE] | --list [--json]",
     "Review and approve an agentkernel.toml so that run, create and serve read it",
     "Options:\n"
     "  -y, --yes             approve without asking (asked only on a terminal)\n"
     "  -s, --show            only show what the file asks for\n"
     "  -l, --list            every approval: ok, changed (approve again), missing, refused\n"
     "      --json            with --list: machine-readable output\n"
     "\nFILE defaults to ./agentkernel.toml. A config is read only when you own it, group and\n"
     "others cannot write it, and you approved its exact bytes: a sandbox writes into its\n"
     "workspace, and a config there could copy host files in or widen the sandbox. Approvals\n"
     "are kept in ~/.agentkernel/trusted-configs.json (path and SHA-256).\n"},
    {"untrust", cmd_untrust, "FILE", "Remove the approval of an agentkernel.toml", ""},
    {"audit", cmd_audit, "[-s NAME] [-l N] [--json] [--path] | verify",
     "Show the audit log, or check that it was not altered",
     "Options:\n"
     "  -s, --sandbox NAME    only events of this sandbox\n"
     "  -l, --last N          the last N events (default 20; 0 = all)\n"
     "      --json            machine-readable output\n"
     "      --path            print where the log is and exit\n"
     "\n'audit verify' checks every entry's hash and its link to the one before, and that\n"
     "the log ends where it was last written: an edited, deleted, inserted or reordered line\n"
     "fails it. The log is at ~/.agentkernel/audit.jsonl (AGENTKERNEL_AUDIT_PATH overrides);\n"
     "AGENTKERNEL_AUDIT=0 turns logging off.\n"},
    {"volume", cmd_volume, "create NAME [-s SIZE] | list [--json] | info NAME | delete NAME [-f]",
     "Manage volumes: directories that outlive sandboxes",
     "Commands:\n"
     "  create NAME [-s SIZE] a new volume; SIZE (e.g. 512MB, 2GB) is a hard limit, enforced\n"
     "                        by an ext4 filesystem of that size (needs root)\n"
     "  list [--json]         every volume with its use\n"
     "  info NAME             one volume, as JSON\n"
     "  delete NAME [-f]      remove it; a non-empty volume needs --force, a volume a running\n"
     "                        sandbox mounts is refused\n"
     "\nMount one with: agentkernel create -v NAME:/data[:ro] ...\n"},
    {"images", cmd_images, "pull NAME | list [--json] | rm NAME... [-f] | prune",
     "Manage the local store of OCI images (native backend)",
     "Commands:\n"
     "  pull NAME [-q] [--json] fetch NAME (e.g. alpine:3.20, 127.0.0.1:5000/x@sha256:...)\n"
     "                        into the store, verifying every digest\n"
     "  list [--json]         every image with its size\n"
     "  rm NAME... [-f]       forget names; an image a sandbox uses needs --force\n"
     "  prune                 delete images no name points at, unused layers and leftovers\n"
     "\nShort names resolve as Docker does (alpine -> docker.io/library/alpine:latest).\n"
     "AGENTKERNEL_REGISTRY_MIRROR=URL pulls Docker Hub images from a mirror;\n"
     "AGENTKERNEL_INSECURE_REGISTRIES=host:port,... allows plain HTTP and loopback or private\n"
     "addresses for those registries (nothing else may use them).\n"
     "Credentials come from ~/.docker/config.json (or $DOCKER_CONFIG), as 'docker login' wrote.\n"},
    {"pool", cmd_pool, "clear [-B docker|podman]",
     "Remove the idle containers that run --fast keeps warm",
     "`run --fast -B docker|podman` takes a started container from a pool of identical\n"
     "ones (up to 5 per configuration, 20 per engine) and refills it in the background;\n"
     "each container serves one run and is then destroyed. 'pool clear' empties the pools.\n"},
    {"serve", cmd_serve, "[-H ADDR] [-p PORT] [--api-key KEY]... [--socket PATH]",
     "Serve the HTTP API used by the SDKs (default http://127.0.0.1:18888)",
     "Run 'agentkernel serve --help' for every option. Only you can use it: without a key of\n"
     "your own (--api-key, --api-key-file, AGENTKERNEL_API_KEY, [api] in agentkernel.toml) it\n"
     "makes one in ~/.agentkernel/api-key; clients:\n"
     "  export AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)\n"},
    {"mcp-server", cmd_mcp_server, "", "Serve MCP (Model Context Protocol) on stdin/stdout",
     "The sandbox_* tools for MCP clients (Claude Code, Codex, ...): register the command\n"
     "'agentkernel mcp-server' as a stdio server.\n"},
    {"doctor", cmd_doctor, "[--json]", "Check what works on this host and how to fix what does not",
     ""},
};

/* Verbs that are only top-level (not under `sandbox`). */
static bool top_only(const char *name)
{
        return streq(name, "run") || streq(name, "doctor") || streq(name, "audit") ||
               streq(name, "init") || streq(name, "trust") || streq(name, "untrust") ||
               streq(name, "volume") || streq(name, "images") || streq(name, "pool") ||
               streq(name, "serve") || streq(name, "mcp-server");
}

static const struct verb *find_verb(const char *name, bool in_group)
{
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
                if (streq(verbs[i].name, name) && !(in_group && top_only(name)))
                        return &verbs[i];
        return NULL;
}

static void usage(FILE *f, bool group)
{
        fprintf(f, "%s\n\nUsage: %s%s <COMMAND> [ARGS]\n\nCommands:\n",
                group ? "Manage sandboxes"
                      : "Run AI coding agents' commands in secure, isolated sandboxes",
                "agentkernel", group ? " sandbox" : "");
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
                if (group && top_only(verbs[i].name))
                        continue;
                if (streq(verbs[i].name, "rm") || streq(verbs[i].name, "ls"))
                        continue;
                fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
        }
        if (!group)
                fprintf(f, "  %-10s %s\n", "sandbox", "The same sandbox commands (alias: sb)");
        fprintf(f, "\nRun '%s%s <COMMAND> --help' for a command's options.\n", "agentkernel",
                group ? " sandbox" : "");
        if (!group)
                fprintf(f, "Exit codes: 0 ok, 1 failure, 2 usage error, 125 sandbox error, "
                           "else the command's own status.\n");
}

int main(int argc, char **argv)
{
        const struct verb *v;
        bool group = false;
        int first = 1;

        /* A closed pipe on stdout is an error to report, not a reason to die. */
        (void)signal(SIGPIPE, SIG_IGN);
        backends_init();
        if (argc < 2) {
                usage(stderr, false);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "--version") || streq(argv[1], "-V") || streq(argv[1], "version")) {
                printf("agentkernel %s\n", AK_VERSION);
                return EXIT_OK;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                if (argc > 2 && (v = find_verb(argv[2], false))) {
                        cli_current = v;
                        cli_print_help(v, stdout);
                } else {
                        usage(stdout, false);
                }
                return EXIT_OK;
        }
        if (streq(argv[1], "sandbox") || streq(argv[1], "sb")) {
                group = true;
                first = 2;
                cli_prog = "agentkernel sandbox";
                if (argc < 3 || streq(argv[2], "--help") || streq(argv[2], "-h")) {
                        usage(argc < 3 ? stderr : stdout, true);
                        return argc < 3 ? EXIT_USAGE : EXIT_OK;
                }
        }
        v = find_verb(argv[first], group);
        if (!v) {
                fprintf(stderr, "error: unknown command '%s'\n", argv[first]);
                usage(stderr, group);
                return EXIT_USAGE;
        }
        cli_current = v;
        return v->fn(argc - first, argv + first);
}
