// SPDX-License-Identifier: Apache-2.0
// The official Node SDK (npm agentkernel@0.18.1) against `agentkernel serve`, unchanged.
// Env: AGENTKERNEL_BASE_URL, AGENTKERNEL_API_KEY (when the server wants one), AK_EXPECT_AUTH=1.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AgentKernel,
  AgentKernelError,
  AuthError,
  NotFoundError,
  ServerError,
  SandboxSession,
  ValidationError,
} from "agentkernel";

const client = new AgentKernel({ timeout: 60000 });
const uniq = (p) => `${p}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;

test("health", async () => {
  assert.equal(await client.health(), "ok");
});

test("auth", { skip: process.env.AK_EXPECT_AUTH !== "1" }, async () => {
  const noKey = new AgentKernel({ apiKey: "", timeout: 10000 });
  await assert.rejects(noKey.listSandboxes(), AuthError);
  const wrong = new AgentKernel({ apiKey: "wrong-key", timeout: 10000 });
  await assert.rejects(wrong.run(["true"]), AuthError);
  assert.equal(await noKey.health(), "ok"); // health stays open
});

test("run: argv exactly, output, failure carries the exit code", async () => {
  const out = await client.run(["echo", "a  b", "c*d", "$HOME", "'q'"]);
  assert.equal(out.output.trim(), "a  b c*d $HOME 'q'");
  const both = await client.run(["sh", "-c", "echo out; echo err >&2"], { fast: false });
  assert.ok(both.output.includes("out") && both.output.includes("err"));
  await assert.rejects(client.run(["sh", "-c", "echo boom; exit 7"]), (e) => {
    assert.ok(e instanceof AgentKernelError);
    assert.ok(e instanceof ServerError);
    assert.match(e.message, /7/);
    return true;
  });
  await assert.rejects(client.run([]), ValidationError);
  await assert.rejects(client.run(["true"], { profile: "nope" }), ValidationError);
});

test("runStream: events as the command writes them", async () => {
  const events = [];
  const seen = [];
  const t0 = Date.now();
  for await (const ev of client.runStream(["sh", "-c", "echo one; sleep 1; echo two >&2"])) {
    events.push(ev);
    if (ev.type === "output") seen.push([String(ev.data.data), Date.now() - t0, ev.data.stream]);
  }
  assert.equal(events[0].type, "started");
  assert.deepEqual(events[0].data.command, ["sh", "-c", "echo one; sleep 1; echo two >&2"]);
  const last = events[events.length - 1];
  assert.equal(last.type, "done");
  assert.equal(last.data.exit_code, 0);
  assert.equal(seen.map((s) => s[0]).join(""), "one\ntwo\n");
  assert.equal(seen[1][2], "stderr");
  // streamed, not buffered: "one" arrived well before "two"
  assert.ok(seen[1][1] - seen[0][1] >= 700, `output was buffered: ${JSON.stringify(seen)}`);

  const failed = [];
  for await (const ev of client.runStream(["sh", "-c", "exit 3"])) failed.push(ev);
  const end = failed[failed.length - 1];
  assert.ok(end.type === "error" || (end.type === "done" && end.data.exit_code === 3));
  assert.match(JSON.stringify(end.data), /3/);

  const empty = [];
  for await (const ev of client.runStream([])) empty.push(ev);
  assert.equal(empty.length, 1);
  assert.equal(empty[0].type, "error");
});

test("sandbox CRUD", async () => {
  const name = uniq("crud");
  const info = await client.createSandbox(name);
  assert.equal(info.name, name);
  assert.equal(info.status, "running");
  assert.equal(typeof info.backend, "string");
  assert.ok(info.uuid && info.created_at);
  const got = await client.getSandbox(name);
  assert.equal(got.uuid, info.uuid);
  assert.equal((await client.getSandboxByUuid(info.uuid)).name, name);
  assert.ok((await client.listSandboxes()).some((s) => s.name === name));
  await assert.rejects(client.createSandbox(name), ServerError); // duplicate
  await assert.rejects(client.createSandbox("bad name!"), ValidationError);
  await client.removeSandbox(name);
  await assert.rejects(client.getSandbox(name), NotFoundError);
  assert.ok(!(await client.listSandboxes()).some((s) => s.name === name));
});

test("exec: env, workdir, state persists, failure", async () => {
  const name = uniq("exec");
  await client.createSandbox(name);
  try {
    const r = await client.execInSandbox(name, ["sh", "-c", "echo $FOO; pwd"], {
      env: ["FOO=bar"],
      workdir: "/tmp",
    });
    assert.equal(r.output, "bar\n/tmp\n");
    await client.execInSandbox(name, ["sh", "-c", "echo kept > /tmp/state"]);
    assert.equal((await client.execInSandbox(name, ["cat", "/tmp/state"])).output, "kept\n");
    await assert.rejects(client.execInSandbox(name, ["sh", "-c", "exit 5"]), (e) => {
      assert.ok(e instanceof ServerError);
      assert.match(e.message, /5/);
      return true;
    });
    await assert.rejects(client.execInSandbox(uniq("none"), ["true"]), NotFoundError);
  } finally {
    await client.removeSandbox(name);
  }
});

test("files: text, binary, nested paths, batch, delete", async () => {
  const name = uniq("files");
  await client.createSandbox(name);
  try {
    assert.match(await client.writeFile(name, "/tmp/a/b/c.txt", "héllo\n"), /Wrote 7 bytes/);
    const t = await client.readFile(name, "/tmp/a/b/c.txt");
    assert.deepEqual(t, { content: "héllo\n", encoding: "utf8", size: 7 });
    // the same file without the leading slash
    assert.equal((await client.readFile(name, "tmp/a/b/c.txt")).content, "héllo\n");
    const bin = Buffer.from([0, 1, 2, 255, 254, 0x80]);
    await client.writeFile(name, "/tmp/bin", bin.toString("base64"), { encoding: "base64" });
    const b = await client.readFile(name, "/tmp/bin");
    assert.equal(b.encoding, "base64");
    assert.equal(b.size, 6);
    assert.deepEqual(Buffer.from(b.content, "base64"), bin);
    await client.writeFile(name, "/tmp/dir with space/ü.txt", "x");
    assert.equal((await client.readFile(name, "/tmp/dir with space/ü.txt")).content, "x");
    const w = await client.writeFiles(name, { "/tmp/p/one.py": "1", "tmp/p/two.py": "2" });
    assert.equal(w.written, 2);
    assert.equal((await client.execInSandbox(name, ["cat", "/tmp/p/one.py", "/tmp/p/two.py"])).output, "12");
    await client.deleteFile(name, "/tmp/p/one.py");
    await assert.rejects(client.readFile(name, "/tmp/p/one.py"), NotFoundError);
    await assert.rejects(client.readFile(name, "/proc/self/environ"), ValidationError);
  } finally {
    await client.removeSandbox(name);
  }
});

test("secrets: createSandbox's secrets and secret_files, as the SDK sends them", {
  skip: !process.env.AK_SDK_SECRET,
}, async () => {
  // SDK_KEY is in the vault (the test put it there); SDK_INLINE comes inline, the SDK's
  // documented "KEY=value:host" form
  const name = uniq("sec");
  const inline = `inline-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const info = await client.createSandbox(name, {
    secrets: ["SDK_KEY:api.example.com", `SDK_INLINE=${inline}:api.example.com`],
    secret_files: ["SDK_KEY:/tmp/sdk-key"],
  });
  try {
    assert.equal(info.status, "running");
    assert.ok(!JSON.stringify(info).includes(process.env.AK_SDK_SECRET));
    assert.ok(!JSON.stringify(info).includes(inline));
    const out = await client.execInSandbox(name, ["sh", "-c", 'echo "$SDK_KEY $SDK_INLINE"; cat /tmp/sdk-key']);
    const [env1, env2, file] = out.output.trim().split(/\s+/);
    assert.match(env1, /^AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}$/);
    assert.match(env2, /^AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}$/);
    assert.equal(file, process.env.AK_SDK_SECRET); // the secret file: asked for, so there
    // bound secrets: the sandbox trusts the egress proxy's CA (docs/secrets.md)
    const trust = await client.execInSandbox(name, ["sh", "-c",
      'echo "$SSL_CERT_FILE $NODE_EXTRA_CA_CERTS"; grep -c "BEGIN CERTIFICATE" "$NODE_EXTRA_CA_CERTS"']);
    const [bundle, alone, count] = trust.output.trim().split(/\s+/);
    assert.match(bundle, /agentkernel-combined\.crt$/);
    assert.match(alone, /agentkernel-proxy\.crt$/);
    assert.equal(count, "1");
    const got = JSON.stringify(await client.getSandbox(name));
    assert.ok(!got.includes(inline) && !got.includes(process.env.AK_SDK_SECRET));
    await assert.rejects(
      client.createSandbox(uniq("sec-bad"), { secrets: ["NOT_IN_VAULT:api.example.com"] }),
      ValidationError,
    );
  } finally {
    await client.removeSandbox(name);
  }
});

test("detached commands", async () => {
  const name = uniq("det");
  await client.createSandbox(name);
  try {
    const d = await client.execDetached(name, ["sh", "-c", "echo started; echo oops >&2; sleep 30"]);
    assert.equal(d.status, "running");
    assert.equal(d.sandbox, name);
    assert.match(d.id, /^[0-9a-f]{8}$/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await client.detachedStatus(name, d.id)).status, "running");
    assert.equal((await client.detachedLogs(name, d.id)).stdout, "started\n");
    assert.equal((await client.detachedLogs(name, d.id, "stderr")).stderr, "oops\n");
    assert.ok((await client.detachedList(name)).some((x) => x.id === d.id));
    await client.detachedKill(name, d.id);
    const after = await client.detachedStatus(name, d.id);
    assert.notEqual(after.status, "running");
    const quick = await client.execDetached(name, ["true"]);
    for (let i = 0; i < 50; i++) {
      const s = await client.detachedStatus(name, quick.id);
      if (s.status !== "running") {
        assert.equal(s.status, "completed");
        assert.equal(s.exit_code, 0);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await client.removeSandbox(name);
  }
});

test("session helper and extras", async () => {
  const name = uniq("sess");
  const s = await client.sandbox(name);
  assert.ok(s instanceof SandboxSession);
  assert.equal((await s.run(["echo", "in session"])).output, "in session\n");
  assert.equal((await s.writeFiles({ "/tmp/x": "y" })).written, 1);
  assert.equal((await s.info()).status, "running");
  const logs = await client.getSandboxLogs(name);
  assert.ok(Array.isArray(logs) && logs.length > 0);
  const batch = await client.batchRun([{ command: ["echo", "1"] }, { command: ["sh", "-c", "exit 2"] }]);
  assert.equal(batch.results[0].output.trim(), "1");
  assert.equal(batch.results[0].error, null);
  assert.match(batch.results[1].error, /2/);
  await s.remove();
  await s.remove(); // idempotent client-side
  await assert.rejects(client.getSandbox(name), NotFoundError);
});
