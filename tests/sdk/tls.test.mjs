// SPDX-License-Identifier: Apache-2.0
// The official Node SDK (npm agentkernel@0.18.1) against `agentkernel serve --tls`, unchanged:
// AGENTKERNEL_BASE_URL=https://..., the certificate trusted through NODE_EXTRA_CA_CERTS. And
// GET /events read with the SDK's own server-sent events parser (eventsource-parser, WHATWG).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentKernel } from "agentkernel";
import { createParser } from "eventsource-parser";

const client = new AgentKernel({ timeout: 60000 });
const base = process.env.AGENTKERNEL_BASE_URL;
const auth = { Authorization: `Bearer ${process.env.AGENTKERNEL_API_KEY}` };

test("health, run and a sandbox's life over TLS", async () => {
  assert.equal(await client.health(), "ok");
  const out = await client.run(["echo", "over tls"]);
  assert.equal(out.output, "over tls\n");
  const name = `tls-${process.pid}`;
  await client.createSandbox(name, {});
  const r = await client.execInSandbox(name, ["echo", "in"]);
  assert.equal(r.output, "in\n");
  await client.removeSandbox(name);
});

test("/events over TLS, parsed as a browser's EventSource would", async () => {
  const name = `ev-${process.pid}`;
  const ctl = new AbortController();
  const res = await fetch(`${base}/events?sandbox=${name}`, { headers: auth, signal: ctl.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const events = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const created = client.createSandbox(name, {});
  while (!events.some((e) => e.event === "sandbox.started")) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  await created;
  ctl.abort();
  await client.removeSandbox(name);
  assert.deepEqual(events.map((e) => e.event), ["sandbox.created", "sandbox.started"]);
  const data = JSON.parse(events[0].data);
  assert.equal(data.sandbox, name);
  assert.equal(data.event, "sandbox.created");
  assert.ok(events[0].id);
  // the other routes of this issue answer over TLS too
  for (const path of ["/doctor", "/backends", "/agents", "/images", "/stats"]) {
    const r = await fetch(base + path, { headers: auth });
    assert.equal(r.status, 200, path);
    assert.equal((await r.json()).success, true, path);
  }
});
