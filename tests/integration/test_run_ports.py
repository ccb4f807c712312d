# SPDX-License-Identifier: Apache-2.0
"""A run-once command publishes ports while it runs (upstream's sandbox_run `ports`), through MCP
and the API's run parser; a bad port spec is refused with the reason (issue 17, item 7: MCP
sandbox_run with ports answered 400)."""
import json

from conftest import mcp_call, needs_root

pytestmark = needs_root


def result_text(doc):
    return "".join(c.get("text", "") for c in (doc.get("result") or {}).get("content", []))


def test_mcp_sandbox_run_with_ports_runs(ak):
    doc = mcp_call(ak, "sandbox_run", {"command": ["echo", "served"], "network": "full",
                                       "ports": ["18931:8000"]})
    assert "error" not in doc, doc
    assert not doc["result"].get("isError"), doc
    assert result_text(doc) == "served\n", doc


def test_mcp_sandbox_run_with_a_bad_port_is_refused(ak):
    doc = mcp_call(ak, "sandbox_run", {"command": ["echo", "no"], "ports": ["99999:1"]})
    text = json.dumps(doc)
    assert doc.get("error") or doc["result"].get("isError"), doc
    assert "port" in text and "no\\n" not in text, doc
