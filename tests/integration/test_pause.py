# SPDX-License-Identifier: Apache-2.0
"""`pause`/`resume` (upstream's `sandbox pause|resume`, POST /sandboxes/{n}/pause|resume, MCP
sandbox_pause/sandbox_resume) on the native backend: the cgroup freezer (v1 here, v2 elsewhere).
A paused sandbox keeps its processes and files, shows "paused", refuses work that needs its agent
with a clear error, and stop/remove/gc still end it completely."""
import json
import time

import pytest

from conftest import mcp_call, needs_root, wait_for
from serve_client import Server

pytestmark = needs_root

TICKER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done"


def tick(ak, name):
    """The ticker's count, or 0 before its first write (or in the instant a write truncated
    the file)."""
    res = ak("exec", name, "--", "cat", "/tmp/tick")
    assert res.rc == 0 or "No such file" in res.stderr, res
    return int(res.stdout) if res.stdout.strip() else 0


def status(ak, name):
    [s] = [s for s in ak.list() if s["name"] == name]
    return s["status"]


def state_file_tick(ak, name):
    """/tmp/tick of a paused sandbox, read from the host through its init's root (the agent
    cannot answer while paused)."""
    import pathlib
    run = ak.data_dir / "run" / name / "runtime.json"
    pid = json.loads(run.read_text())["pid"]
    text = pathlib.Path(f"/proc/{pid}/root/tmp/tick").read_text()
    return int(text) if text.strip() else 0  # frozen between a write's truncation and its bytes


def test_pause_stops_processes_and_resume_continues_them(ak, sandbox):
    assert ak("exec", "-d", sandbox, "--", "sh", "-c", TICKER).rc == 0
    assert wait_for(lambda: tick(ak, sandbox) > 0)
    res = ak("pause", sandbox)
    assert res.rc == 0 and res.stdout == "Paused sandbox 'box'\n", res
    assert status(ak, sandbox) == "paused"
    info = json.loads(ak("info", sandbox, "--json").stdout)
    assert info["status"] == "paused"
    frozen = state_file_tick(ak, sandbox)
    time.sleep(0.5)
    assert state_file_tick(ak, sandbox) == frozen, "a paused sandbox's process went on"
    res = ak("resume", sandbox)
    assert res.rc == 0 and res.stdout == "Resumed sandbox 'box'\n", res
    assert status(ak, sandbox) == "running"
    assert wait_for(lambda: tick(ak, sandbox) > frozen)  # the same process, going on


def test_paused_sandbox_refuses_agent_work_clearly(ak, sandbox, tmp_path):
    assert ak("pause", sandbox).rc == 0
    t0 = time.time()
    res = ak("exec", sandbox, "--", "true")
    assert res.rc != 0 and "is paused" in res.stderr and "agentkernel resume box" in res.stderr
    (tmp_path / "f").write_text("x")
    res = ak("cp", str(tmp_path / "f"), "box:/tmp/f")
    assert res.rc != 0 and "is paused" in res.stderr, res
    res = ak("exec-list", sandbox)
    assert res.rc != 0 and "is paused" in res.stderr, res
    assert time.time() - t0 < 10, "a refusal waited on the frozen agent"
    assert ak("resume", sandbox).rc == 0
    assert ak("exec", sandbox, "--", "true").rc == 0


def test_pause_and_resume_are_idempotent_and_need_a_running_sandbox(ak, sandbox):
    assert ak("resume", sandbox).stdout == "Sandbox 'box' is not paused\n"
    assert ak("pause", sandbox).rc == 0
    res = ak("pause", sandbox)
    assert res.rc == 0 and res.stdout == "Sandbox 'box' is already paused\n", res
    assert ak("stop", sandbox).rc == 0
    res = ak("pause", sandbox)
    assert res.rc == 1 and "not running" in res.stderr, res
    res = ak("resume", sandbox)
    assert res.rc == 1 and "not running" in res.stderr, res
    res = ak("pause", "nosuch")
    assert res.rc == 1 and "not found" in res.stderr, res
    assert ak("pause").rc == 2


def test_stop_and_remove_of_a_paused_sandbox_are_complete_and_quick(ak):
    for name in ("p1", "p2"):
        assert ak("create", name, "--no-network").rc == 0
        assert ak("exec", "-d", name, "--", "sleep", "600").rc == 0
        assert ak("pause", name).rc == 0
    t0 = time.time()
    assert ak("stop", "p1").rc == 0
    assert ak("remove", "p2").rc == 0
    assert time.time() - t0 < 8, "stop waited for a frozen agent"
    assert status(ak, "p1") == "stopped"
    assert ak("start", "p1").rc == 0
    assert ak("exec", "p1", "--", "true").rc == 0
    # (the ak fixture then checks that no cgroup, freezer's included, and no process remain)


def test_gc_removes_an_expired_paused_sandbox(ak):
    assert ak("create", "old", "--no-network", "--ttl", "1").rc == 0
    assert ak("pause", "old").rc == 0
    time.sleep(1.2)
    res = ak("gc")
    assert res.rc == 0 and res.stdout == "Removed old\n", res
    assert ak.names() == []


def test_suspend_alias_and_sandbox_group(ak, sandbox):
    assert ak("sandbox", "suspend", sandbox).rc == 0
    assert status(ak, sandbox) == "paused"
    assert ak("sb", "resume", sandbox).rc == 0
    assert "pause" in ak("--help").stdout and "resume" in ak("--help").stdout


def test_http_pause_resume_as_upstream(ak, sandbox):
    s = Server(ak)
    try:
        st, body = s.request("POST", "/sandboxes/box/pause")
        assert st == 200 and body["data"] == "Sandbox paused", body
        st, body = s.request("GET", "/sandboxes/box")
        assert body["data"]["status"] == "paused"
        st, body = s.request("POST", "/sandboxes/box/exec", {"command": ["true"]})
        assert st == 409 and "is paused" in body["error"], body
        st, body = s.request("POST", "/sandboxes/box/pause")
        assert st == 409 and "already paused" in body["error"], body
        st, body = s.request("POST", "/sandboxes/box/resume")
        assert st == 200 and body["data"] == "Sandbox resumed", body
        st, body = s.request("POST", "/sandboxes/box/resume")
        assert st == 409 and "not paused" in body["error"], body
        st, body = s.request("POST", "/sandboxes/nosuch/pause")
        assert st == 404, body
        st, body = s.request("POST", "/sandboxes/box/pause", key=False)
        assert st == 401, body
        st, body = s.request("GET", "/sandboxes/box")
        assert body["data"]["status"] == "running"
        assert s.request("GET", "/sandboxes/box/pause")[0] in (404, 405)
    finally:
        s.stop()


def test_mcp_pause_resume_tools(ak, sandbox):
    r = mcp_call(ak, "sandbox_pause", {"name": sandbox})["result"]
    assert r.get("isError") is not True and r["content"][0]["text"] == "Sandbox paused", r
    r = mcp_call(ak, "sandbox_list", {})["result"]
    assert "box\tpaused\tnative" in r["content"][0]["text"], r
    r = mcp_call(ak, "sandbox_exec", {"name": sandbox, "command": ["true"]})["result"]
    assert r["isError"] is True and "is paused" in r["content"][0]["text"], r
    r = mcp_call(ak, "sandbox_resume", {"name": sandbox})["result"]
    assert r.get("isError") is not True and r["content"][0]["text"] == "Sandbox resumed", r
    r = mcp_call(ak, "sandbox_resume", {"name": sandbox})["result"]
    assert r["isError"] is True and "not paused" in r["content"][0]["text"], r
    r = mcp_call(ak, "sandbox_pause", {})["result"]
    assert r["isError"] is True and "name is required" in r["content"][0]["text"], r


def test_compat_flag_sets_the_mode_and_is_checked(ak):
    res = ak("create", "cx", "--no-start", "--compat", "OpenAI-Codex")
    assert res.rc == 0, res
    x = ak.state("cx")["x_agentkernel"]
    assert x["compat_mode"] == "codex" and x["seccomp"] == "ai-agent"
    res = ak("create", "bad", "--no-start", "--compat", "vim")
    assert res.rc == 2 and "vim" in res.stderr, res
    assert ak.names() == ["cx"]
    res = ak("run", "--compat", "claude", "--no-network", "--", "sh", "-c",
             'echo "$CLAUDE_CODE_SANDBOX"')
    assert res.rc == 0 and res.stdout == "agentkernel\n", res
    assert "--compat" in ak("run", "--help").stdout


def test_compat_flag_wins_over_the_config(ak, tmp_path):
    import os
    d = tmp_path / "proj"
    d.mkdir()
    (d / "agentkernel.toml").write_text('[sandbox]\nname = "cm"\n[agent]\n'
                                       'compatibility_mode = "claude"\n')
    os.chmod(d / "agentkernel.toml", 0o644)
    assert ak("trust", "--yes", d / "agentkernel.toml").rc == 0
    res = ak("create", "--no-start", "--compat", "gemini", cwd=d)
    assert res.rc == 0, res
    assert ak.state("cm")["x_agentkernel"]["compat_mode"] == "gemini"


@pytest.mark.parametrize("tool", ["sandbox_create"])
def test_mcp_create_lists_agent(ak, tool):
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode())
    out = {m["id"]: m for m in map(json.loads, res.stdout.splitlines())}
    tools = {t["name"]: t for t in out[2]["result"]["tools"]}
    assert "agent" in tools[tool]["inputSchema"]["properties"]
    assert "not available" not in tools["sandbox_pause"]["description"]
