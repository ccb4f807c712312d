// SPDX-License-Identifier: Apache-2.0
// The official Node SDK (npm agentkernel@0.18.1) against `agentkernel serve --tls`, unchanged:
// AGENTKERNEL_BASE_URL=https://..., the certificate trusted through NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentKernel } from "agentkernel";

const client = new AgentKernel({ timeout: 60000 });

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
