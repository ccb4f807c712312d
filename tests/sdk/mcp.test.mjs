// SPDX-License-Identifier: Apache-2.0
// `agentkernel mcp-server` driven by the official MCP TypeScript SDK over stdio.
// Env: AGENTKERNEL_BIN (the CLI), and the data directory variables it should use.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

let client;

before(async () => {
  client = new Client({ name: "agentkernel-tests", version: "1.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: process.env.AGENTKERNEL_BIN,
      args: ["mcp-server"],
      env: process.env,
      stderr: "pipe",
    }),
  );
});

after(async () => {
  await client.close();
});

const text = (r) => r.content.map((c) => c.text).join("");

test("server identity and protocol", () => {
  assert.equal(client.getServerVersion().name, "agentkernel");
  assert.ok(client.getServerCapabilities().tools);
});

test("tools are listed with schemas", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const n of ["sandbox_run", "sandbox_create", "sandbox_exec", "sandbox_list",
                   "sandbox_remove", "sandbox_file_read", "sandbox_file_write",
                   "sandbox_exec_detach", "sandbox_exec_logs", "sandbox_extend_ttl"])
    assert.ok(names.includes(n), n);
  const run = tools.find((t) => t.name === "sandbox_run");
  assert.deepEqual(run.inputSchema.required, ["command"]);
});

test("sandbox_run", async () => {
  const r = await client.callTool({ name: "sandbox_run", arguments: { command: ["echo", "a  b"], network: false } });
  assert.equal(r.isError, undefined);
  assert.equal(text(r), "a  b\n");
  const bad = await client.callTool({ name: "sandbox_run", arguments: { command: ["sh", "-c", "echo no; exit 4"] } });
  assert.equal(bad.isError, true);
  assert.match(text(bad), /exited with code 4/);
  assert.match(text(bad), /no/);
});

test("a sandbox's life through tools", async () => {
  const name = `mcp-${process.pid}`;
  // upstream's interactive grants: the user allows creating and removing this sandbox once
  for (const kind of ["sandbox_create", "sandbox_remove"]) {
    const g = await client.callTool({ name: "permission_grant", arguments: { kind, granted: true, sandbox: name } });
    assert.ok(!g.isError, text(g));
  }
  const c = await client.callTool({ name: "sandbox_create", arguments: { name } });
  assert.ok(!c.isError, text(c));
  assert.match(text((await client.callTool({ name: "sandbox_list", arguments: {} }))), new RegExp(name));
  const w = await client.callTool({ name: "sandbox_file_write", arguments: { name, path: "/tmp/n.txt", content: "note" } });
  assert.ok(!w.isError, text(w));
  assert.equal(text(await client.callTool({ name: "sandbox_file_read", arguments: { name, path: "/tmp/n.txt" } })), "note");
  assert.equal(text(await client.callTool({ name: "sandbox_exec", arguments: { name, command: ["cat", "/tmp/n.txt"] } })), "note");
  const d = JSON.parse(text(await client.callTool({ name: "sandbox_exec_detach", arguments: { name, command: ["sh", "-c", "echo bg"] } })));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(text(await client.callTool({ name: "sandbox_exec_logs", arguments: { id: d.id } })), JSON.stringify({ stdout: "bg\n" }, null, 2));
  const big = await client.callTool({ name: "sandbox_exec", arguments: { name, command: ["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' x"] } });
  assert.match(text(big), /bytes truncated/);
  assert.ok(text(big).length < 17000);
  const missing = await client.callTool({ name: "sandbox_exec", arguments: { name: "nosuch-sandbox", command: ["true"] } });
  assert.equal(missing.isError, true);
  const rm = await client.callTool({ name: "sandbox_remove", arguments: { name } });
  assert.ok(!rm.isError, text(rm));
});

test("upstream's tools: every name listed, unknown and missing tools are error results", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const n of ["sandbox_pause", "sandbox_resume", "sandbox_fork", "snapshot_list",
                   "snapshot_take", "snapshot_get", "snapshot_delete", "snapshot_restore",
                   "browser_create", "browser_goto", "browser_screenshot", "browser_evaluate",
                   "browser_remove", "browser_open", "browser_snapshot", "browser_click",
                   "browser_fill", "browser_close", "browser_events", "permission_grant",
                   "permission_list", "permission_revoke", "sandbox_exec_status",
                   "sandbox_exec_kill", "sandbox_exec_list", "sandbox_write_files",
                   "sandbox_start", "sandbox_stop"])
    assert.ok(names.includes(n), n);
  // upstream: a result with isError, which the SDK hands back (not a thrown protocol error)
  const unknown = await client.callTool({ name: "no_such_tool", arguments: {} });
  assert.equal(unknown.isError, true);
  assert.equal(text(unknown), "Error: Unknown tool: no_such_tool");
  const missing = await client.callTool({ name: "snapshot_list", arguments: {} });
  assert.equal(missing.isError, true);
  assert.match(text(missing), /not available/);
});

test("sandbox_run takes compatibility_mode", async () => {
  const r = await client.callTool({ name: "sandbox_run",
                                    arguments: { command: ["echo", "cm"], compatibility_mode: "claude" } });
  assert.ok(!r.isError, text(r));
  assert.equal(text(r), "cm\n");
  const bad = await client.callTool({ name: "sandbox_run",
                                      arguments: { command: ["true"], compatibility_mode: "emacs" } });
  assert.equal(bad.isError, true);
  assert.match(text(bad), /compatibility_mode/);
});
