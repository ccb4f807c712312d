// SPDX-License-Identifier: Apache-2.0
/*
 * `agentkernel mcp-server`: the Model Context Protocol over stdio (newline-delimited JSON-RPC
 * 2.0), with upstream's sandbox_* tools (reference/upstream.md §3). One table of tools says
 * each one's schema and the API operation (api.h) that answers it, so that a tool and its HTTP
 * route behave the same. Tool failures are results with isError, as upstream; protocol failures
 * are JSON-RPC errors.
 */
#include "mcp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "core/manager.h"
#include "server/api.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"

#define LINE_MAX_BYTES (16u << 20)
#define TEXT_MAX 16000 /* upstream's tool output limit: head and tail kept */

static const char *const versions[] = {"2025-06-18", "2025-03-26", "2024-11-05"};

/* ---- output ---- */

static void emit(json_t *msg)
{
        char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);

        if (text) {
                size_t n = strlen(text);
                text[n] = '\n';
                (void)write_all(STDOUT_FILENO, text, n + 1);
                free(text);
        }
        json_decref(msg);
}

static json_t *reply(json_t *id, json_t *result)
{
        return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static json_t *reply_error(json_t *id, int code, const char *msg)
{
        return json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                         "error", "code", code, "message", msg);
}

/* Upstream's truncation: the first and last halves of TEXT_MAX bytes, with a marker. */
static json_t *text_content(const char *text, bool is_error)
{
        size_t n = strlen(text);
        cleanup_buf struct buf b = BUF_INIT;

        if (n > TEXT_MAX) {
                size_t head = TEXT_MAX / 2, tail = TEXT_MAX / 2;
                /* do not cut a UTF-8 sequence */
                while (head > 0 && ((unsigned char)text[head] & 0xC0) == 0x80)
                        head--;
                while (tail > 0 && ((unsigned char)text[n - tail] & 0xC0) == 0x80)
                        tail--;
                (void)buf_append(&b, text, head);
                buf_printf(&b, "\n... [%zu bytes truncated] ...\n", n - head - tail);
                (void)buf_append(&b, text + n - tail, tail);
                text = b.data;
        }
        {
                json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
                if (r && is_error)
                        json_object_set_new(r, "isError", json_true());
                return r;
        }
}

/* ---- tools that say more than their operation ---- */

/* The text a successful operation shows, from its data. */
static char *data_text(const struct api_result *r)
{
        json_t *out = json_object_get(r->data, "output");

        if (json_is_string(out))
                return strdup(json_string_value(out));
        if (json_is_string(r->data))
                return strdup(json_string_value(r->data));
        return json_dumps(r->data, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

static int tool_list(struct api_ctx *c, const struct api_args *a, struct api_result *r, char **text)
{
        const struct api_args none = {0};
        struct buf b = BUF_INIT;
        size_t i;
        json_t *s;

        (void)a;
        if (api_list(c, &none, r) < 0)
                return -1;
        buf_printf(&b, "NAME\tSTATUS\tBACKEND\tIP\tPORTS\n");
        json_array_foreach (r->data, i, s) {
                json_t *ports = json_object_get(s, "ports"), *p;
                size_t k;
                buf_printf(&b, "%s\t%s\t%s\t-\t", json_string_value(json_object_get(s, "name")),
                           json_string_value(json_object_get(s, "status")),
                           json_string_value(json_object_get(s, "backend")));
                json_array_foreach (ports, k, p)
                        buf_printf(&b, "%s%s", k ? "," : "", json_string_value(p));
                buf_printf(&b, "\n");
        }
        *text = b.data;
        return 0;
}

/* Without a name: the background commands of every running sandbox. */
static int tool_exec_list(struct api_ctx *c, const struct api_args *a, struct api_result *r,
                          char **text)
{
        cleanup_state_list struct state_list l = {0};
        json_t *all;

        (void)text;
        if (a->name)
                return api_detached_list(c, a, r);
        all = json_array();
        if (manager_list(c->m, NULL, NULL, &l) == 0) {
                for (size_t i = 0; i < l.n; i++) {
                        const struct api_args one = {.name = l.items[i]->name};
                        cleanup_api_result struct api_result res = {0};
                        if (manager_is_running(c->m, l.items[i]) &&
                            api_detached_list(c, &one, &res) == 0)
                                json_array_extend(all, res.data);
                }
        }
        r->status = 200;
        r->data = all;
        return 0;
}

/* A text file's content is the tool's text. */
static int tool_file_read(struct api_ctx *c, const struct api_args *a, struct api_result *r,
                          char **text)
{
        int e = api_file_read(c, a, r);

        if (e == 0 && !strcmp(json_string_value(json_object_get(r->data, "encoding")), "utf8"))
                *text = strdup(json_string_value(json_object_get(r->data, "content")));
        return e;
}

/* Text only: an "encoding" among the arguments is not the tool's. */
static int tool_file_write(struct api_ctx *c, const struct api_args *a, struct api_result *r,
                           char **text)
{
        cleanup_json json_t *body = json_deep_copy(a->body);
        struct api_args b = *a;

        (void)text;
        if (!body)
                return api_fail(r, 500, "out of memory");
        json_object_del(body, "encoding");
        b.body = body;
        return api_file_write(c, &b, r);
}

/* granted=false is the user's no: said as upstream says it, nothing stored. */
static int tool_perm_grant(struct api_ctx *c, const struct api_args *a, struct api_result *r,
                           char **text)
{
        json_t *granted = json_object_get(a->body, "granted");

        if (!json_is_boolean(granted))
                return api_fail(r, 400, "granted is required (true or false)");
        if (api_permission_grant(c, a, r) < 0)
                return -1;
        if (json_is_false(granted))
                *text = strdup("Permission denied by user.");
        return 0;
}

/* ---- the table ---- */

#define TOOL_NAME (1u << 0) /* "name" (a sandbox) is required */
#define TOOL_PATH (1u << 1) /* "path" is required and normalised into the args' path */
#define TOOL_ID (1u << 2)   /* "id": a background command, in whichever running sandbox has it */
#define TOOL_MISSING                                                                               \
        (1u << 3)                  /* upstream's, not here yet: listed with its schema, answered   \
                                      with an error result that says so (docs/api.md) */
#define TOOL_PERM_CREATE (1u << 4) /* needs a `sandbox_create` grant for "name" (upstream) */
#define TOOL_PERM_REMOVE (1u << 5) /* needs a `sandbox_remove` grant for "name" (upstream) */

struct tool {
        const char *name, *description, *schema;
        api_op op; /* the operation answering it, or: */
        int (*tool)(struct api_ctx *c, const struct api_args *a, struct api_result *r,
                    char **text); /* one that may also say its text */
        unsigned flags;
};

#define STR "{\"type\":\"string\"}"
#define STRS "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"
#define NAME_ONLY "{\"type\":\"object\",\"properties\":{\"name\":" STR "},\"required\":[\"name\"]}"
#define EXEC_SCHEMA                                                                                \
        "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"command\":" STRS ",\"env\":" STRS \
        ",\"workdir\":" STR                                                                        \
        ",\"sudo\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"command\"]}"
#define ID_ONLY "{\"type\":\"object\",\"properties\":{\"id\":" STR "},\"required\":[\"id\"]}"
#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "]}"
#define PAGE ",\"page\":" STR
#define MISSING(n, d, schema)                                                                      \
        {                                                                                          \
                n, d " (not available in this build yet)", schema, NULL, NULL, TOOL_MISSING        \
        }

static const struct tool tools[] = {
    {"sandbox_run", "Run a command in a new sandbox that is removed afterwards",
     "{\"type\":\"object\",\"properties\":{\"command\":" STRS ",\"image\":" STR
     ",\"fast\":{\"type\":\"boolean\",\"default\":true},\"cwd\":" STR
     ",\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
     "\"timeout_ms\":{\"type\":\"integer\",\"default\":30000},"
     "\"profile\":{\"type\":\"string\",\"enum\":[\"permissive\",\"moderate\",\"restrictive\"],"
     "\"default\":\"moderate\"},\"network\":{\"type\":[\"boolean\",\"string\"],"
     "\"enum\":[true,false,\"none\",\"proxy\",\"full\"]},"
     "\"compatibility_mode\":{\"type\":\"string\",\"enum\":[\"native\",\"claude\",\"codex\","
     "\"gemini\"],\"default\":\"native\"},\"ports\":" STRS "},\"required\":[\"command\"]}",
     api_run, NULL, 0},
    {"sandbox_create", "Create a sandbox and start it",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"image\":" STR ",\"ports\":" STRS
     ",\"source_url\":" STR ",\"source_ref\":" STR ",\"agent\":" STR
     ",\"disk_mb\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":1048576,"
     "\"description\":\"what the sandbox may write to its own filesystems, in MB\"},"
     "\"network\":{\"type\":[\"boolean\",\"string\"],\"enum\":[true,false,\"none\",\"proxy\","
     "\"full\"]},\"network_policy\":{\"type\":\"object\"}},"
     "\"required\":[\"name\"]}",
     api_create, NULL, TOOL_NAME | TOOL_PERM_CREATE},
    {"sandbox_exec", "Run a command in a running sandbox", EXEC_SCHEMA, api_exec, NULL, TOOL_NAME},
    {"sandbox_list", "List sandboxes", "{\"type\":\"object\",\"properties\":{}}", NULL, tool_list,
     0},
    {"sandbox_remove", "Stop and delete a sandbox", NAME_ONLY, api_delete, NULL,
     TOOL_NAME | TOOL_PERM_REMOVE},
    {"sandbox_start", "Start a sandbox", NAME_ONLY, api_start, NULL, TOOL_NAME},
    {"sandbox_stop", "Stop a sandbox", NAME_ONLY, api_stop, NULL, TOOL_NAME},
    {"sandbox_pause",
     "Pause a running sandbox: its processes stop where they are, keeping memory and files",
     NAME_ONLY, api_pause, NULL, TOOL_NAME},
    {"sandbox_resume", "Resume a paused sandbox", NAME_ONLY, api_resume, NULL, TOOL_NAME},
    {"sandbox_file_write", "Write a text file in a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"path\":" STR ",\"content\":" STR
     "},\"required\":[\"name\",\"path\",\"content\"]}",
     NULL, tool_file_write, TOOL_NAME | TOOL_PATH},
    {"sandbox_file_read", "Read a file from a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"path\":" STR
     "},\"required\":[\"name\",\"path\"]}",
     NULL, tool_file_read, TOOL_NAME | TOOL_PATH},
    {"sandbox_write_files", "Write several text files in a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR
     ",\"files\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}},"
     "\"required\":[\"name\",\"files\"]}",
     api_files_write, NULL, TOOL_NAME},
    {"sandbox_exec_detach", "Start a command in the background in a running sandbox", EXEC_SCHEMA,
     api_exec_detach, NULL, TOOL_NAME},
    {"sandbox_exec_status", "Status of a background command", ID_ONLY, api_detached_get, NULL,
     TOOL_ID},
    {"sandbox_exec_kill", "Stop a background command", ID_ONLY, api_detached_kill, NULL, TOOL_ID},
    {"sandbox_exec_logs", "Output of a background command",
     "{\"type\":\"object\",\"properties\":{\"id\":" STR
     ",\"stream\":{\"type\":\"string\",\"enum\":[\"stdout\",\"stderr\"]}},\"required\":[\"id\"]}",
     api_detached_logs, NULL, TOOL_ID},
    {"sandbox_exec_list", "List background commands (of one sandbox, or all)",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR "}}", NULL, tool_exec_list, 0},
    {"sandbox_extend_ttl", "Move a sandbox's expiry later",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"by\":{\"type\":\"string\","
     "\"default\":\"1h\"}},\"required\":[\"name\"]}",
     api_extend, NULL, TOOL_NAME},
    {"sandbox_network_policy", "Show a proxy-mode sandbox's egress policy (docs/network.md)",
     NAME_ONLY, api_network_policy_get, NULL, TOOL_NAME},
    {"sandbox_network_policy_set",
     "Replace a proxy-mode sandbox's egress policy: ordered rules, first match wins",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"policy\":{\"type\":\"object\","
     "\"properties\":{\"default\":{\"type\":\"string\",\"enum\":[\"allow\",\"deny\"]},"
     "\"rules\":{\"type\":\"array\"},\"hosts\":{\"type\":\"object\"}}}},"
     "\"required\":[\"name\",\"policy\"]}",
     api_network_policy_put, NULL, TOOL_NAME},
    /* upstream's tools that need what this build lacks (full-state fork, snapshots,
     * the in-sandbox browser): same names and schemas, so a
     * client written for upstream sees them and gets a clear error result */
    MISSING("sandbox_fork", "Fork a paused sandbox into a new one",
            OBJ("\"name\":" STR ",\"as_name\":" STR, "\"name\",\"as_name\"")),
    MISSING("snapshot_list", "List snapshots", "{\"type\":\"object\",\"properties\":{}}"),
    MISSING("snapshot_take", "Take a snapshot of a sandbox",
            OBJ("\"sandbox\":" STR ",\"name\":" STR, "\"sandbox\",\"name\"")),
    MISSING("snapshot_get", "Show a snapshot", NAME_ONLY),
    MISSING("snapshot_delete", "Delete a snapshot", NAME_ONLY),
    MISSING("snapshot_restore", "Restore a snapshot as a new sandbox",
            OBJ("\"name\":" STR ",\"as_name\":" STR, "\"name\"")),
    MISSING(
        "browser_create", "Create a sandbox with a headless browser",
        OBJ("\"name\":" STR ",\"memory_mb\":{\"type\":\"integer\",\"default\":2048}", "\"name\"")),
    MISSING("browser_goto", "Open a URL in a browser sandbox",
            OBJ("\"name\":" STR ",\"url\":" STR, "\"name\",\"url\"")),
    MISSING("browser_screenshot", "Screenshot a URL in a browser sandbox",
            OBJ("\"name\":" STR ",\"url\":" STR, "\"name\",\"url\"")),
    MISSING("browser_evaluate", "Evaluate JavaScript on a URL in a browser sandbox",
            OBJ("\"name\":" STR ",\"url\":" STR ",\"expression\":" STR,
                "\"name\",\"url\",\"expression\"")),
    MISSING("browser_remove", "Remove a browser sandbox", NAME_ONLY),
    MISSING("browser_open", "Open a page in a browser sandbox",
            OBJ("\"name\":" STR ",\"url\":" STR PAGE, "\"name\",\"url\"")),
    MISSING("browser_snapshot", "The ARIA snapshot of a page",
            OBJ("\"name\":" STR PAGE, "\"name\"")),
    MISSING("browser_click", "Click an element of a page",
            OBJ("\"name\":" STR ",\"ref\":" STR ",\"selector\":" STR PAGE, "\"name\"")),
    MISSING("browser_fill", "Fill an input of a page",
            OBJ("\"name\":" STR ",\"value\":" STR ",\"ref\":" STR ",\"selector\":" STR PAGE,
                "\"name\",\"value\"")),
    MISSING("browser_close", "Close a page", OBJ("\"name\":" STR PAGE, "\"name\"")),
    MISSING("browser_events", "A browser sandbox's events",
            OBJ("\"name\":" STR ",\"offset\":{\"type\":\"integer\",\"default\":0},"
                "\"limit\":{\"type\":\"integer\",\"default\":100}",
                "\"name\"")),
    {"permission_grant", "Grant or deny a pending permission request",
     OBJ("\"kind\":{\"type\":\"string\",\"enum\":[\"sandbox_remove\",\"sandbox_create\","
         "\"network_access\",\"mount_directory\",\"sudo_exec\",\"file_delete\"]},"
         "\"granted\":{\"type\":\"boolean\"},\"request_id\":" STR
         ",\"scope\":{\"type\":\"string\",\"enum\":[\"once\",\"session\",\"always\"],"
         "\"default\":\"once\"},\"sandbox\":" STR,
         "\"kind\",\"granted\""),
     NULL, tool_perm_grant, 0},
    {"permission_list", "List permission grants", "{\"type\":\"object\",\"properties\":{}}",
     api_permissions_list, NULL, 0},
    {"permission_revoke", "Revoke a permission grant", ID_ONLY, api_permission_revoke, NULL, 0},
};

static const struct tool *tool_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(tools); i++)
                if (!strcmp(tools[i].name, name))
                        return &tools[i];
        return NULL;
}

/* Upstream's detached tools take only an id: the running sandbox whose agent has it. */
static const char *sandbox_of(struct api_ctx *c, const char *id, char *out, size_t len)
{
        cleanup_state_list struct state_list l = {0};

        if (manager_list(c->m, NULL, NULL, &l) < 0)
                return NULL;
        for (size_t i = 0; i < l.n; i++) {
                const struct api_args a = {.name = l.items[i]->name, .id = id};
                cleanup_api_result struct api_result r = {0};
                if (!manager_is_running(c->m, l.items[i]))
                        continue;
                if (api_detached_get(c, &a, &r) == 0) {
                        (void)snprintf(out, len, "%s", l.items[i]->name);
                        return out;
                }
        }
        return NULL;
}

static const char *const secret_args[] = {"secrets", "secret_files", "placeholder_secrets",
                                          "secret_mappings"};

/* The arguments the tool's flags ask for, then its operation. */
static int call_tool(struct api_ctx *c, const struct tool *t, json_t *args, struct api_result *r,
                     char **text)
{
        const struct api_query q = api_query_json(args);
        struct api_args a = {.name = json_string_value(json_object_get(args, "name")),
                             .id = json_string_value(json_object_get(args, "id")),
                             .body = args,
                             .query = &q};
        char owner[64], path[4096];

        *text = NULL;
        if (t->flags & TOOL_MISSING)
                return api_fail(r, 501,
                                "'%s' is not available in this build of agentkernel (see "
                                "docs/api.md, MCP)",
                                t->name);
        if (t->flags & TOOL_ID) {
                if (!a.id)
                        return api_fail(r, 400, "id is required");
                if (!(a.name = sandbox_of(c, a.id, owner, sizeof(owner))))
                        return api_fail(r, 404, "no background command '%s' in a running sandbox",
                                        a.id);
        }
        if ((t->flags & TOOL_NAME) && !a.name)
                return api_fail(r, 400, "name is required");
        /* MCP is the agent's own door: it may not choose where the user's secrets go (which
         * host a vault secret is sent to), nor read one into a sandbox. Upstream's tools take
         * no secret either; the CLI and the HTTP API (the user's) do. */
        for (size_t i = 0; i < ARRAY_SIZE(secret_args); i++)
                if (json_object_get(args, secret_args[i]))
                        return api_fail(r, 400,
                                        "'%s' is not accepted over MCP: secrets are bound by "
                                        "their owner (agentkernel create -S, or the HTTP API)",
                                        secret_args[i]);
        if (t->flags & TOOL_PATH) {
                const char *raw = json_string_value(json_object_get(args, "path"));
                if (!raw || api_normalize_path(raw, path, sizeof(path)) < 0)
                        return api_fail(r, 400, "a valid path is required");
                a.path = path;
        }
        /* upstream's interactive grants, asked last: arguments refused above consume no
         * `once` grant */
        if ((t->flags & TOOL_PERM_CREATE) &&
            api_permission_require(c, PERM_SANDBOX_CREATE, a.name, r) < 0)
                return -1;
        if ((t->flags & TOOL_PERM_REMOVE) &&
            api_permission_require(c, PERM_SANDBOX_REMOVE, a.name, r) < 0)
                return -1;
        return t->tool ? t->tool(c, &a, r, text) : t->op(c, &a, r);
}

static json_t *tools_call(struct api_ctx *c, json_t *id, json_t *params)
{
        const struct tool *t = tool_find(json_string_value(json_object_get(params, "name")));
        json_t *args = json_object_get(params, "arguments");
        cleanup_api_result struct api_result r = {0};
        cleanup_free char *text = NULL;
        cleanup_json json_t *empty = NULL;

        if (!t) {
                /* upstream: a result with isError, not a protocol error */
                const char *n = json_string_value(json_object_get(params, "name"));
                char msg[256];
                (void)snprintf(msg, sizeof(msg), "Error: Unknown tool: %.200s", n ? n : "");
                return reply(id, text_content(msg, true));
        }
        if (!args)
                args = empty = json_object();
        else if (!json_is_object(args))
                return reply_error(id, -32602, "arguments must be an object");
        if (call_tool(c, t, args, &r, &text) < 0) {
                char msg[AK_ERR_MSG_MAX + 16];
                json_t *out = r.extra ? json_object_get(r.extra, "output") : NULL;
                (void)snprintf(msg, sizeof(msg), "Error: %s", r.error);
                /* a failed command: its whole output, not the message's excerpt */
                if (json_is_string(out)) {
                        cleanup_buf struct buf b = BUF_INIT;
                        buf_printf(
                            &b, "Error: Command exited with code %lld\n%s",
                            (long long)json_integer_value(json_object_get(r.extra, "exit_code")),
                            json_string_value(out));
                        return reply(id, text_content(b.data, true));
                }
                return reply(id, text_content(msg, true));
        }
        if (!text)
                text = data_text(&r);
        return reply(id, text_content(text ? text : "", false));
}

/* ---- methods ---- */

static json_t *m_initialize(struct api_ctx *c, json_t *id, json_t *params)
{
        const char *want = json_string_value(json_object_get(params, "protocolVersion"));
        const char *v = versions[0];

        (void)c;
        for (size_t i = 0; want && i < ARRAY_SIZE(versions); i++)
                if (!strcmp(want, versions[i]))
                        v = versions[i];
        return reply(id, json_pack("{s:s,s:{s:{}},s:{s:s,s:s}}", "protocolVersion", v,
                                   "capabilities", "tools", "serverInfo", "name", "agentkernel",
                                   "version", AK_VERSION));
}

static json_t *m_empty(struct api_ctx *c, json_t *id, json_t *params)
{
        (void)c;
        (void)params;
        return reply(id, json_object());
}

static json_t *m_tools_list(struct api_ctx *c, json_t *id, json_t *params)
{
        json_t *list = json_array();

        (void)c;
        (void)params;
        for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
                json_t *schema = json_loads(tools[i].schema, 0, NULL);
                json_array_append_new(list,
                                      json_pack("{s:s,s:s,s:o}", "name", tools[i].name,
                                                "description", tools[i].description, "inputSchema",
                                                schema ? schema : json_object()));
        }
        return reply(id, json_pack("{s:o}", "tools", list));
}

static json_t *m_tools_call(struct api_ctx *c, json_t *id, json_t *params)
{
        if (!json_is_object(params))
                return reply_error(id, -32602, "params must be an object");
        return tools_call(c, id, params);
}

static json_t *m_resources_list(struct api_ctx *c, json_t *id, json_t *params)
{
        (void)c;
        (void)params;
        return reply(id, json_pack("{s:[]}", "resources"));
}

static json_t *m_prompts_list(struct api_ctx *c, json_t *id, json_t *params)
{
        (void)c;
        (void)params;
        return reply(id, json_pack("{s:[]}", "prompts"));
}

static const struct {
        const char *name;
        json_t *(*fn)(struct api_ctx *c, json_t *id, json_t *params);
} methods[] = {
    {"initialize", m_initialize},
    {"ping", m_empty},
    {"shutdown", m_empty},
    {"tools/list", m_tools_list},
    {"tools/call", m_tools_call},
    {"resources/list", m_resources_list},
    {"prompts/list", m_prompts_list},
};

json_t *mcp_handle(struct api_ctx *c, json_t *msg)
{
        json_t *id = json_object_get(msg, "id");
        const char *method = json_string_value(json_object_get(msg, "method"));

        if (!json_is_object(msg) || !method)
                return id ? reply_error(id, -32600, "Invalid Request") : NULL;
        if (!id) /* a notification: initialized, cancelled, ... */
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
                if (!strcmp(method, methods[i].name))
                        return methods[i].fn(c, id, json_object_get(msg, "params"));
        return reply_error(id, -32601, "Method not found");
}

int mcp_serve(struct manager *m)
{
        static struct perm_store perms; /* this process's grants (upstream: per MCP server) */
        struct api_options opts = {.allow_sudo_exec = false, .perms = &perms};
        struct api_ctx c = {m, &opts};
        char warning[512];
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        perm_store_init(&perms, true);
        if (perm_store_warning(&perms, warning, sizeof(warning)))
                fprintf(stderr, "agentkernel: warning: %s\n", warning);
        fprintf(stderr, "agentkernel MCP server %s ready (stdio)\n", AK_VERSION);
        while ((n = getline(&line, &cap, stdin)) >= 0) {
                json_error_t e;
                json_t *msg;
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                if (n == 0)
                        continue;
                if ((size_t)n > LINE_MAX_BYTES) {
                        emit(reply_error(NULL, -32600, "message too large"));
                        continue;
                }
                msg = json_loadb(line, (size_t)n, 0, &e);
                if (!msg) {
                        emit(reply_error(NULL, -32700, "Parse error"));
                        continue;
                }
                if (json_is_array(msg)) { /* batches are not part of current MCP */
                        emit(reply_error(NULL, -32600, "batches are not supported"));
                } else {
                        json_t *out = mcp_handle(&c, msg);
                        if (out)
                                emit(out);
                }
                json_decref(msg);
        }
        free(line);
        perm_store_done(&perms);
        return 0;
}
