// SPDX-License-Identifier: Apache-2.0
/*
 * `agentkernel mcp-server`: the Model Context Protocol over stdio (newline-delimited JSON-RPC
 * 2.0), with upstream's sandbox_* tools (reference/upstream.md §3). Tool failures are results
 * with isError, as upstream; protocol failures are JSON-RPC errors. The tools run the same
 * operations as the HTTP API.
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

/* ---- tool schemas ---- */

struct tool {
        const char *name, *description, *schema;
};

#define STR "{\"type\":\"string\"}"
#define STRS "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}"
#define NAME_ONLY "{\"type\":\"object\",\"properties\":{\"name\":" STR "},\"required\":[\"name\"]}"

static const struct tool tools[] = {
    {"sandbox_run", "Run a command in a new sandbox that is removed afterwards",
     "{\"type\":\"object\",\"properties\":{\"command\":" STRS ",\"image\":" STR
     ",\"fast\":{\"type\":\"boolean\",\"default\":true},\"cwd\":" STR
     ",\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
     "\"timeout_ms\":{\"type\":\"integer\",\"default\":30000},"
     "\"profile\":{\"type\":\"string\",\"enum\":[\"permissive\",\"moderate\",\"restrictive\"],"
     "\"default\":\"moderate\"},\"network\":{\"type\":\"boolean\"},"
     "\"compatibility_mode\":{\"type\":\"string\",\"enum\":[\"native\",\"claude\",\"codex\","
     "\"gemini\"],\"default\":\"native\"},\"ports\":" STRS "},\"required\":[\"command\"]}"},
    {"sandbox_create", "Create a sandbox and start it",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"image\":" STR ",\"ports\":" STRS
     ",\"source_url\":" STR ",\"source_ref\":" STR
     ",\"disk_mb\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":1048576,"
     "\"description\":\"what the sandbox may write to its own filesystems, in MB\"}},"
     "\"required\":[\"name\"]}"},
    {"sandbox_exec", "Run a command in a running sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"command\":" STRS ",\"env\":" STRS
     ",\"workdir\":" STR ",\"sudo\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"command\"]}"},
    {"sandbox_list", "List sandboxes", "{\"type\":\"object\",\"properties\":{}}"},
    {"sandbox_remove", "Stop and delete a sandbox", NAME_ONLY},
    {"sandbox_start", "Start a sandbox", NAME_ONLY},
    {"sandbox_stop", "Stop a sandbox", NAME_ONLY},
    {"sandbox_file_write", "Write a text file in a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"path\":" STR ",\"content\":" STR
     "},\"required\":[\"name\",\"path\",\"content\"]}"},
    {"sandbox_file_read", "Read a file from a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"path\":" STR
     "},\"required\":[\"name\",\"path\"]}"},
    {"sandbox_write_files", "Write several text files in a sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR
     ",\"files\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}},"
     "\"required\":[\"name\",\"files\"]}"},
    {"sandbox_exec_detach", "Start a command in the background in a running sandbox",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"command\":" STRS ",\"env\":" STRS
     ",\"workdir\":" STR ",\"sudo\":{\"type\":\"boolean\"}},\"required\":[\"name\",\"command\"]}"},
    {"sandbox_exec_status", "Status of a background command",
     "{\"type\":\"object\",\"properties\":{\"id\":" STR "},\"required\":[\"id\"]}"},
    {"sandbox_exec_kill", "Stop a background command",
     "{\"type\":\"object\",\"properties\":{\"id\":" STR "},\"required\":[\"id\"]}"},
    {"sandbox_exec_logs", "Output of a background command",
     "{\"type\":\"object\",\"properties\":{\"id\":" STR
     ",\"stream\":{\"type\":\"string\",\"enum\":[\"stdout\",\"stderr\"]}},\"required\":[\"id\"]}"},
    {"sandbox_exec_list", "List background commands (of one sandbox, or all)",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR "}}"},
    {"sandbox_extend_ttl", "Move a sandbox's expiry later",
     "{\"type\":\"object\",\"properties\":{\"name\":" STR ",\"by\":{\"type\":\"string\","
     "\"default\":\"1h\"}},\"required\":[\"name\"]}"},
};

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

static void reply(json_t *id, json_t *result)
{
        emit(json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void reply_error(json_t *id, int code, const char *msg)
{
        emit(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                       "error", "code", code, "message", msg));
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

/* ---- tools ---- */

static json_t *args_with(json_t *args, const char *drop)
{
        json_t *o = json_deep_copy(args);
        if (o && drop)
                json_object_del(o, drop);
        return o;
}

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

static char *list_text(struct api_ctx *c)
{
        cleanup_api_result struct api_result r = {0};
        struct buf b = BUF_INIT;
        size_t i;
        json_t *s;

        if (api_list(c, NULL, &r) < 0) {
                buf_printf(&b, "%s", r.error);
                return b.data;
        }
        buf_printf(&b, "NAME\tSTATUS\tBACKEND\tIP\tPORTS\n");
        json_array_foreach (r.data, i, s) {
                json_t *ports = json_object_get(s, "ports"), *p;
                size_t k;
                buf_printf(&b, "%s\t%s\t%s\t-\t", json_string_value(json_object_get(s, "name")),
                           json_string_value(json_object_get(s, "status")),
                           json_string_value(json_object_get(s, "backend")));
                json_array_foreach (ports, k, p)
                        buf_printf(&b, "%s%s", k ? "," : "", json_string_value(p));
                buf_printf(&b, "\n");
        }
        return b.data;
}

/* Upstream's detached tools take only an id: find the running sandbox whose agent has it. */
static const char *sandbox_of(struct api_ctx *c, const char *id, char *out, size_t len)
{
        cleanup_state_list struct state_list l = {0};

        if (manager_list(c->m, NULL, NULL, &l) < 0)
                return NULL;
        for (size_t i = 0; i < l.n; i++) {
                cleanup_api_result struct api_result r = {0};
                if (!manager_is_running(c->m, l.items[i]))
                        continue;
                if (api_detached_get(c, l.items[i]->name, id, &r) == 0) {
                        (void)snprintf(out, len, "%s", l.items[i]->name);
                        return out;
                }
        }
        return NULL;
}

static int call_tool(struct api_ctx *c, const char *tool, json_t *args, struct api_result *r,
                     char **text)
{
        const char *name = json_string_value(json_object_get(args, "name"));
        const char *id = json_string_value(json_object_get(args, "id"));
        cleanup_json json_t *body = NULL;
        char owner[64];

        *text = NULL;
        if (!strcmp(tool, "sandbox_list")) {
                *text = list_text(c);
                return 0;
        }
        if (!strcmp(tool, "sandbox_run"))
                return api_run(c, args, r);
        if (!strcmp(tool, "sandbox_exec_list") && !name) {
                struct state_list l;
                json_t *all = json_array();
                if (manager_list(c->m, NULL, NULL, &l) == 0) {
                        for (size_t i = 0; i < l.n; i++) {
                                struct api_result one = {0};
                                if (manager_is_running(c->m, l.items[i]) &&
                                    api_detached_list(c, l.items[i]->name, &one) == 0)
                                        json_array_extend(all, one.data);
                                api_result_done(&one);
                        }
                        state_list_done(&l);
                }
                r->status = 200;
                r->data = all;
                return 0;
        }
        if (!strncmp(tool, "sandbox_exec_", 13) && strcmp(tool, "sandbox_exec_detach") != 0 &&
            strcmp(tool, "sandbox_exec_list") != 0) {
                if (!id)
                        return api_fail(r, 400, "id is required");
                if (!sandbox_of(c, id, owner, sizeof(owner)))
                        return api_fail(r, 404, "no background command '%s' in a running sandbox",
                                        id);
                if (!strcmp(tool, "sandbox_exec_status"))
                        return api_detached_get(c, owner, id, r);
                if (!strcmp(tool, "sandbox_exec_kill"))
                        return api_detached_kill(c, owner, id, r);
                if (!strcmp(tool, "sandbox_exec_logs")) {
                        const char *st = json_string_value(json_object_get(args, "stream"));
                        return api_detached_logs(c, owner, id, st && !strcmp(st, "stderr"), r);
                }
        }
        if (!name)
                return api_fail(r, 400, "name is required");
        if (!strcmp(tool, "sandbox_create"))
                return api_create(c, args, r);
        if (!strcmp(tool, "sandbox_exec"))
                return api_exec(c, name, args, r);
        if (!strcmp(tool, "sandbox_exec_detach"))
                return api_exec_detach(c, name, args, r);
        if (!strcmp(tool, "sandbox_exec_list"))
                return api_detached_list(c, name, r);
        if (!strcmp(tool, "sandbox_remove"))
                return api_delete(c, name, r);
        if (!strcmp(tool, "sandbox_start"))
                return api_start(c, name, r);
        if (!strcmp(tool, "sandbox_stop"))
                return api_stop(c, name, r);
        if (!strcmp(tool, "sandbox_extend_ttl"))
                return api_extend(c, name, args, r);
        if (!strcmp(tool, "sandbox_write_files"))
                return api_files_write(c, name, args, r);
        if (!strcmp(tool, "sandbox_file_read") || !strcmp(tool, "sandbox_file_write")) {
                const char *raw = json_string_value(json_object_get(args, "path"));
                char path[4096];
                if (!raw || api_normalize_path(raw, path, sizeof(path)) < 0)
                        return api_fail(r, 400, "a valid path is required");
                if (!strcmp(tool, "sandbox_file_read")) {
                        int e = api_file_read(c, name, path, r);
                        if (e == 0 &&
                            !strcmp(json_string_value(json_object_get(r->data, "encoding")),
                                    "utf8")) {
                                *text =
                                    strdup(json_string_value(json_object_get(r->data, "content")));
                        }
                        return e;
                }
                body = args_with(args, "encoding");
                return api_file_write(c, name, path, body, r);
        }
        return api_fail(r, 404, "unknown tool '%s'", tool);
}

static void tools_call(struct api_ctx *c, json_t *id, json_t *params)
{
        const char *tool = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "arguments");
        struct api_result r = {0};
        cleanup_free char *text = NULL;
        cleanup_json json_t *empty = NULL;
        bool known = false;

        for (size_t i = 0; tool && i < ARRAY_SIZE(tools); i++)
                known = known || !strcmp(tools[i].name, tool);
        if (!known) {
                reply_error(id, -32602, "unknown tool");
                return;
        }
        if (!args) {
                args = empty = json_object();
        } else if (!json_is_object(args)) {
                reply_error(id, -32602, "arguments must be an object");
                return;
        }
        if (call_tool(c, tool, args, &r, &text) < 0) {
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
                        reply(id, text_content(b.data, true));
                } else {
                        reply(id, text_content(msg, true));
                }
        } else {
                if (!text)
                        text = data_text(&r);
                reply(id, text_content(text ? text : "", false));
        }
        api_result_done(&r);
}

static void handle(struct api_ctx *c, json_t *msg)
{
        json_t *id = json_object_get(msg, "id");
        const char *method = json_string_value(json_object_get(msg, "method"));
        json_t *params = json_object_get(msg, "params");

        if (!json_is_object(msg) || !method) {
                if (id)
                        reply_error(id, -32600, "Invalid Request");
                return;
        }
        if (!id) /* a notification: initialized, cancelled, ... */
                return;
        if (!strcmp(method, "initialize")) {
                const char *want = json_string_value(json_object_get(params, "protocolVersion"));
                const char *v = versions[0];
                for (size_t i = 0; want && i < ARRAY_SIZE(versions); i++)
                        if (!strcmp(want, versions[i]))
                                v = versions[i];
                reply(id, json_pack("{s:s,s:{s:{}},s:{s:s,s:s}}", "protocolVersion", v,
                                    "capabilities", "tools", "serverInfo", "name", "agentkernel",
                                    "version", AK_VERSION));
        } else if (!strcmp(method, "ping") || !strcmp(method, "shutdown")) {
                reply(id, json_object());
        } else if (!strcmp(method, "tools/list")) {
                json_t *list = json_array();
                for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
                        json_t *schema = json_loads(tools[i].schema, 0, NULL);
                        json_array_append_new(list, json_pack("{s:s,s:s,s:o}", "name",
                                                              tools[i].name, "description",
                                                              tools[i].description, "inputSchema",
                                                              schema ? schema : json_object()));
                }
                reply(id, json_pack("{s:o}", "tools", list));
        } else if (!strcmp(method, "tools/call")) {
                if (!json_is_object(params))
                        reply_error(id, -32602, "params must be an object");
                else
                        tools_call(c, id, params);
        } else if (!strcmp(method, "resources/list")) {
                reply(id, json_pack("{s:[]}", "resources"));
        } else if (!strcmp(method, "prompts/list")) {
                reply(id, json_pack("{s:[]}", "prompts"));
        } else {
                reply_error(id, -32601, "Method not found");
        }
}

int mcp_serve(struct manager *m)
{
        struct api_options opts = {.allow_sudo_exec = false};
        struct api_ctx c = {m, &opts};
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        fprintf(stderr, "agentkernel MCP server %s ready (stdio)\n", AK_VERSION);
        while ((n = getline(&line, &cap, stdin)) >= 0) {
                json_error_t e;
                json_t *msg;
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                if (n == 0)
                        continue;
                if ((size_t)n > LINE_MAX_BYTES) {
                        reply_error(NULL, -32600, "message too large");
                        continue;
                }
                msg = json_loadb(line, (size_t)n, 0, &e);
                if (!msg) {
                        reply_error(NULL, -32700, "Parse error");
                        continue;
                }
                if (json_is_array(msg)) /* batches are not part of current MCP */
                        reply_error(NULL, -32600, "batches are not supported");
                else
                        handle(&c, msg);
                json_decref(msg);
        }
        free(line);
        return 0;
}
