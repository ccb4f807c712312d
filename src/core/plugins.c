// SPDX-License-Identifier: Apache-2.0
/*
 * `plugin install|list`: the files that tell a coding agent where our MCP server is. Three kinds:
 * files we own whole (Claude Code's skill and command, OpenCode's plugin: created, replaced only
 * with --force), JSON files with an `mcpServers` table (our entry merged in, every other key
 * kept), and Codex's config.toml (our table appended; one that differs is left to the user: we do
 * not rewrite a TOML file we did not write). Every path is walked from the root one component at
 * a time without following a symbolic link (a repository's `.mcp.json` may point anywhere), and a
 * file is replaced only by rename of a complete new one.
 */
#include "plugins.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/toml.h"

#define PLUGIN_FILE_MAX (1u << 20) /* an existing file we merge into */

enum file_kind {
        FILE_OURS,       /* created whole */
        FILE_MCP_JSON,   /* {"mcpServers": {"agentkernel": ...}} merged */
        FILE_CODEX_TOML, /* [mcp_servers.agentkernel] appended */
};

struct plugin_file {
        const char *path;
        enum file_kind kind;
        const char *content; /* FILE_OURS */
};

/* ---- what the files say ---- */

static const char claude_skill[] =
    "---\n"
    "name: agentkernel\n"
    "description: Run commands in an isolated agentkernel sandbox instead of on the host: "
    "untrusted code, installs, builds and tests, anything that could touch files or the network "
    "it should not.\n"
    "---\n"
    "\n"
    "# agentkernel sandboxes\n"
    "\n"
    "Use the `agentkernel` MCP server's tools, or its CLI:\n"
    "\n"
    "- One command, in a fresh sandbox removed afterwards: the `sandbox_run` tool, or\n"
    "  `agentkernel run [--profile restrictive] [--no-network] -- COMMAND ARGS...`\n"
    "- A sandbox kept between commands: `sandbox_create` (name), then `sandbox_exec`,\n"
    "  `sandbox_file_write`, `sandbox_file_read`; `sandbox_remove` when done. CLI:\n"
    "  `agentkernel create NAME`, `agentkernel exec NAME -- COMMAND`, `agentkernel rm NAME`.\n"
    "- Long-running work: `sandbox_exec_detach`, then `sandbox_exec_logs`.\n"
    "\n"
    "The project directory is not inside a sandbox unless asked for (`--mount-cwd`, or `-d DIR` "
    "at create). Network is filtered by the sandbox's policy; `--no-network` turns it off.\n";

static const char claude_command[] =
    "---\n"
    "description: Run a command in an agentkernel sandbox\n"
    "argument-hint: COMMAND [ARGS...]\n"
    "---\n"
    "\n"
    "Run `$ARGUMENTS` in a fresh agentkernel sandbox with the `sandbox_run` tool of the "
    "`agentkernel` MCP server (or `agentkernel run -- $ARGUMENTS`), and report its output and "
    "exit code. Do not run it on the host.\n";

static const char opencode_package[] = "{\n  \"dependencies\": {\n    \"@opencode-ai/plugin\": "
                                       "\"latest\"\n  }\n}\n";

static const char opencode_plugin[] =
    "// agentkernel for OpenCode: a sandbox per session, and tools that run commands in it.\n"
    "// Talks to `agentkernel serve` (AGENTKERNEL_BASE_URL, default http://127.0.0.1:18888) with\n"
    "// AGENTKERNEL_API_KEY (`agentkernel serve --print-api-key`).\n"
    "import type { Plugin } from \"@opencode-ai/plugin\";\n"
    "import { tool } from \"@opencode-ai/plugin\";\n"
    "\n"
    "const base = process.env.AGENTKERNEL_BASE_URL ?? \"http://127.0.0.1:18888\";\n"
    "\n"
    "async function api(method: string, path: string, body?: unknown): Promise<any> {\n"
    "  const headers: Record<string, string> = { \"user-agent\": "
    "\"agentkernel-opencode-plugin/0.2.0\" };\n"
    "  if (process.env.AGENTKERNEL_API_KEY)\n"
    "    headers.authorization = `Bearer ${process.env.AGENTKERNEL_API_KEY}`;\n"
    "  if (body !== undefined) headers[\"content-type\"] = \"application/json\";\n"
    "  const res = await fetch(base + path, { method, headers,\n"
    "    body: body === undefined ? undefined : JSON.stringify(body) });\n"
    "  const doc = await res.json().catch(() => ({}));\n"
    "  if (!res.ok || doc.success === false)\n"
    "    throw new Error(doc.error ?? `agentkernel: HTTP ${res.status}`);\n"
    "  return doc.data ?? doc;\n"
    "}\n"
    "\n"
    "export const AgentkernelPlugin: Plugin = async () => {\n"
    "  const sandboxes = new Map<string, string>(); // session id -> sandbox name\n"
    "  const nameOf = (id: string) => `opencode-${id.slice(0, 8).toLowerCase()}`;\n"
    "  return {\n"
    "    event: async ({ event }) => {\n"
    "      const id = (event as any).properties?.info?.id;\n"
    "      if (!id) return;\n"
    "      if (event.type === \"session.created\") {\n"
    "        await api(\"POST\", \"/sandboxes\", { name: nameOf(id) });\n"
    "        sandboxes.set(id, nameOf(id));\n"
    "      } else if (event.type === \"session.deleted\" && sandboxes.has(id)) {\n"
    "        await api(\"DELETE\", `/sandboxes/${sandboxes.get(id)}`);\n"
    "        sandboxes.delete(id);\n"
    "      }\n"
    "    },\n"
    "    tool: {\n"
    "      sandbox_run: tool({\n"
    "        description: \"Run a command in a fresh agentkernel sandbox (removed afterwards)\",\n"
    "        args: { command: tool.schema.array(tool.schema.string()) },\n"
    "        async execute(args) {\n"
    "          return (await api(\"POST\", \"/run\", { command: args.command })).output;\n"
    "        },\n"
    "      }),\n"
    "      sandbox_exec: tool({\n"
    "        description: \"Run a command in this session's agentkernel sandbox\",\n"
    "        args: { command: tool.schema.array(tool.schema.string()) },\n"
    "        async execute(args, ctx) {\n"
    "          const name = sandboxes.get((ctx as any).sessionID) ?? [...sandboxes.values()][0];\n"
    "          if (!name) throw new Error(\"no agentkernel sandbox for this session\");\n"
    "          return (await api(\"POST\", `/sandboxes/${name}/exec`, { command: args.command }))"
    ".output;\n"
    "        },\n"
    "      }),\n"
    "    },\n"
    "  };\n"
    "};\n";

static const char codex_table[] = "\n[mcp_servers.agentkernel]\n"
                                  "command = \"agentkernel\"\n"
                                  "args = [\"mcp-server\"]\n";

/* ---- the targets ---- */

static const struct plugin_file claude_files[] = {
    {".claude/skills/agentkernel/SKILL.md", FILE_OURS, claude_skill},
    {".claude/commands/sandbox.md", FILE_OURS, claude_command},
    {".mcp.json", FILE_MCP_JSON, NULL},
};
static const struct plugin_file codex_files[] = {
    {".mcp.json", FILE_MCP_JSON, NULL},
    {".codex/config.toml", FILE_CODEX_TOML, NULL},
};
static const struct plugin_file gemini_files[] = {
    {".gemini/settings.json", FILE_MCP_JSON, NULL},
};
static const struct plugin_file opencode_files[] = {
    {".opencode/package.json", FILE_OURS, opencode_package},
    {".opencode/plugins/agentkernel.ts", FILE_OURS, opencode_plugin},
};
static const struct plugin_file mcp_files[] = {
    {".mcp.json", FILE_MCP_JSON, NULL},
};

static const char *const claude_aliases[] = {"claude-code", NULL};
static const char *const gemini_aliases[] = {"gemini-cli", NULL};
static const char *const opencode_aliases[] = {"open-code", NULL};
static const char *const no_aliases[] = {NULL};

static const struct plugin_target targets[] = {
    {"claude", claude_aliases, "Claude Code skill + MCP server config", false, claude_files,
     ARRAY_SIZE(claude_files),
     "Restart Claude Code in this directory: /mcp lists 'agentkernel', /sandbox runs a command."},
    {"codex", no_aliases, "Codex MCP server config", false, codex_files, ARRAY_SIZE(codex_files),
     "Restart Codex: its MCP servers now include 'agentkernel'."},
    {"gemini", gemini_aliases, "Gemini CLI MCP server config", false, gemini_files,
     ARRAY_SIZE(gemini_files), "Restart Gemini CLI: /mcp lists 'agentkernel'."},
    {"opencode", opencode_aliases, "OpenCode TypeScript plugin", true, opencode_files,
     ARRAY_SIZE(opencode_files),
     "Start 'agentkernel serve' (the plugin talks to it; export AGENTKERNEL_API_KEY=$(agentkernel "
     "serve --print-api-key)), then restart OpenCode."},
    {"mcp", no_aliases, "Generic MCP server config", false, mcp_files, ARRAY_SIZE(mcp_files),
     "Point your MCP client at .mcp.json (command 'agentkernel', args ['mcp-server'])."},
};

const struct plugin_target *plugin_targets(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(targets);
        return targets;
}

const struct plugin_target *plugin_target_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(targets); i++) {
                if (!strcasecmp(name, targets[i].name))
                        return &targets[i];
                for (const char *const *a = targets[i].aliases; *a; a++)
                        if (!strcasecmp(name, *a))
                                return &targets[i];
        }
        return NULL;
}

/* ---- paths, without links ---- */

/* Opens the directory that holds rel (relative to rootfd), one component at a time with
 * O_NOFOLLOW: a symbolic link anywhere is refused (-ELOOP). Missing directories are made (0755)
 * when create, else -ENOENT. *ret_name: rel's last component. */
static int open_parent(int rootfd, const char *rel, bool create, const char **ret_name)
{
        char buf[PATH_MAX];
        char *p = buf, *slash;
        int fd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        (void)snprintf(buf, sizeof(buf), "%s", rel);
        *ret_name = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
        while ((slash = strchr(p, '/'))) {
                int next;
                *slash = '\0';
                next = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOENT && create &&
                    (mkdirat(fd, p, 0755) == 0 || errno == EEXIST))
                        next = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        int e = errno;
                        struct stat st;
                        if (e == ENOTDIR && fstatat(fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                            S_ISLNK(st.st_mode))
                                e = ELOOP;
                        close(fd);
                        return -e;
                }
                close(fd);
                fd = next;
                p = slash + 1;
        }
        return fd;
}

/* Reads the file name in dirfd: a regular file, not a link, at most PLUGIN_FILE_MAX. 1 when it
 * exists (b filled, *ret_mode its permissions), 0 when it does not, or -errno. */
static int read_existing(int dirfd, const char *name, struct buf *b, mode_t *ret_mode)
{
        cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        int r;

        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (st.st_size > PLUGIN_FILE_MAX)
                return -EFBIG;
        r = read_fd_full(fd, b, PLUGIN_FILE_MAX);
        if (r < 0)
                return r;
        *ret_mode = st.st_mode & 0777;
        return 1;
}

/* Records the outcome of a file and why; returns 0 (the steps below return what it returns). */
static int say(struct plugin_report *rep, enum plugin_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(struct plugin_report *rep, enum plugin_outcome o, const char *fmt, ...)
{
        va_list ap;

        rep->outcome = o;
        va_start(ap, fmt);
        (void)vsnprintf(rep->why, sizeof(rep->why), fmt, ap);
        va_end(ap);
        return 0;
}

/* ---- the merges ---- */

static json_t *mcp_entry(void)
{
        return json_pack("{s:s,s:[s],s:{}}", "command", "agentkernel", "args", "mcp-server", "env");
}

/* Our entry merged into a JSON file's text (old: NULL when there is none). Sets the outcome;
 * *ret_text is the new text where one is to be written. */
static int merge_mcp_json(const struct buf *old, bool force, char **ret_text,
                          struct plugin_report *rep)
{
        cleanup_json json_t *doc = NULL, *entry = mcp_entry();
        json_error_t jerr;
        json_t *servers, *have;

        *ret_text = NULL;
        if (old) {
                doc =
                    json_loadb(old->data ? old->data : "", old->len, JSON_REJECT_DUPLICATES, &jerr);
                if (!doc)
                        return say(rep, PLUGIN_FAILED, "not valid JSON (line %d: %s)", jerr.line,
                                   jerr.text);
                if (!json_is_object(doc))
                        return say(rep, PLUGIN_FAILED, "not a JSON object");
        } else {
                doc = json_object();
        }
        servers = json_object_get(doc, "mcpServers");
        if (servers && !json_is_object(servers))
                return say(rep, PLUGIN_FAILED, "its \"mcpServers\" is not an object");
        have = servers ? json_object_get(servers, "agentkernel") : NULL;
        if (have && json_equal(have, entry))
                return say(rep, PLUGIN_UP_TO_DATE, "already configured");
        if (have && !force)
                return say(rep, PLUGIN_SKIPPED,
                           "an 'agentkernel' entry with another configuration is there "
                           "(--force replaces it)");
        if (!servers) {
                servers = json_object();
                if (json_object_set_new(doc, "mcpServers", servers) < 0)
                        return say(rep, PLUGIN_FAILED, "out of memory");
        }
        if (json_object_set(servers, "agentkernel", entry) < 0)
                return say(rep, PLUGIN_FAILED, "out of memory");
        *ret_text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!*ret_text)
                return say(rep, PLUGIN_FAILED, "out of memory");
        return say(rep, old ? PLUGIN_MERGED : PLUGIN_CREATED, "%s", "");
}

/* Our table appended to Codex's config.toml (old: NULL when there is none). A table that is
 * there already is ours only when it says exactly what we would; anything else is the user's. */
static int merge_codex_toml(const struct buf *old, char **ret_text, struct plugin_report *rep)
{
        cleanup_json json_t *doc = NULL, *want = json_pack("{s:s,s:[s]}", "command", "agentkernel",
                                                           "args", "mcp-server");
        struct ak_err err = {0};
        json_t *have;

        *ret_text = NULL;
        if (old && toml_parse(old->data ? old->data : "", old->len, &doc, &err) < 0)
                return say(rep, PLUGIN_FAILED, "not valid TOML: %s", ak_err_msg(&err));
        have = json_object_get(json_object_get(doc, "mcp_servers"), "agentkernel");
        if (have && json_equal(have, want))
                return say(rep, PLUGIN_UP_TO_DATE, "already configured");
        if (have)
                return say(rep, PLUGIN_SKIPPED,
                           "[mcp_servers.agentkernel] is there with another configuration: edit "
                           "it by hand (a TOML file we did not write is not rewritten)");
        if (asprintf(ret_text, "%.*s%s%s", old ? (int)old->len : 0,
                     old && old->data ? old->data : "",
                     old && old->len && old->data[old->len - 1] != '\n' ? "\n" : "",
                     old ? codex_table : codex_table + 1) < 0) {
                *ret_text = NULL;
                return say(rep, PLUGIN_FAILED, "out of memory");
        }
        return say(rep, old ? PLUGIN_MERGED : PLUGIN_CREATED, "%s", "");
}

/* ---- installing ---- */

static int install_file(int rootfd, const struct plugin_file *f, bool force, bool dry_run,
                        struct plugin_report *rep)
{
        cleanup_buf struct buf old = BUF_INIT;
        cleanup_free char *text = NULL;
        cleanup_close int dirfd = -1;
        const char *name;
        mode_t mode = 0644;
        int exists = 0, r;

        (void)snprintf(rep->path, sizeof(rep->path), "%s", f->path);
        dirfd = open_parent(rootfd, f->path, !dry_run, &name);
        if (dirfd == -ELOOP)
                return say(rep, PLUGIN_FAILED,
                           "a symbolic link is on its way: not followed (a project's links may "
                           "point anywhere)");
        if (dirfd < 0 && !(dirfd == -ENOENT && dry_run))
                return say(rep, PLUGIN_FAILED, "%s", strerror(-dirfd));
        if (dirfd >= 0) {
                exists = read_existing(dirfd, name, &old, &mode);
                if (exists == -ELOOP)
                        return say(rep, PLUGIN_FAILED,
                                   "it is a symbolic link: not followed (a project's links may "
                                   "point anywhere)");
                if (exists == -EINVAL)
                        return say(rep, PLUGIN_FAILED, "it is not a regular file");
                if (exists < 0)
                        return say(rep, PLUGIN_FAILED, "%s", strerror(-exists));
        }
        switch (f->kind) {
        case FILE_OURS:
                if (exists && old.len == strlen(f->content) &&
                    !memcmp(old.data, f->content, old.len))
                        return say(rep, PLUGIN_UP_TO_DATE, "already up to date");
                if (exists && !force)
                        return say(rep, PLUGIN_SKIPPED, "it exists (--force replaces it)");
                text = strdup(f->content);
                if (!text)
                        return say(rep, PLUGIN_FAILED, "out of memory");
                say(rep, exists ? PLUGIN_MERGED : PLUGIN_CREATED, "%s", "");
                break;
        case FILE_MCP_JSON:
                (void)merge_mcp_json(exists ? &old : NULL, force, &text, rep);
                break;
        case FILE_CODEX_TOML:
                (void)merge_codex_toml(exists ? &old : NULL, &text, rep);
                break;
        default:
                return say(rep, PLUGIN_FAILED, "unknown kind of file");
        }
        if (!text || dry_run)
                return 0;
        if (f->kind == FILE_MCP_JSON && (!*text || text[strlen(text) - 1] != '\n')) {
                char *t = NULL;
                if (asprintf(&t, "%s\n", text) < 0)
                        return say(rep, PLUGIN_FAILED, "out of memory");
                free(text);
                text = t;
        }
        r = write_file_atomic_at(dirfd, name, text, strlen(text), mode, false);
        return r < 0 ? say(rep, PLUGIN_FAILED, "cannot write it: %s", strerror(-r)) : 0;
}

int plugin_install(const struct plugin_target *t, const char *root, bool force, bool dry_run,
                   struct plugin_report reps[PLUGIN_FILES_MAX], size_t *ret_n, struct ak_err *err)
{
        cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

        *ret_n = 0;
        if (rootfd < 0)
                return ak_err_errno(err, -errno, "cannot open '%s'", root);
        for (size_t i = 0; i < t->n_files && i < PLUGIN_FILES_MAX; i++) {
                memset(&reps[i], 0, sizeof(reps[i]));
                (void)install_file(rootfd, &t->files[i], force, dry_run, &reps[i]);
                *ret_n = i + 1;
        }
        return 0;
}

bool plugin_installed(const struct plugin_target *t, const char *root)
{
        cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (rootfd < 0)
                return false;
        for (size_t i = 0; i < t->n_files; i++) {
                struct plugin_report rep = {0};
                /* there, with our entry (upstream: any configuration of it) */
                (void)install_file(rootfd, &t->files[i], false, true, &rep);
                if (rep.outcome != PLUGIN_UP_TO_DATE && rep.outcome != PLUGIN_SKIPPED)
                        return false;
        }
        return true;
}
