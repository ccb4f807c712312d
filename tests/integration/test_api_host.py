# SPDX-License-Identifier: Apache-2.0
"""`serve`'s routes about the host (upstream's /doctor, /backends, /agents, /images, /stats) and
MCP's tool list as upstream has it."""
import json
import subprocess
import time

import pytest

from conftest import mcp_call
from serve_client import Server


@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


def test_doctor(server):
    st, body = server.request("GET", "/doctor")
    assert st == 200, body
    checks = body["data"]["checks"]
    assert isinstance(body["data"]["healthy"], bool)
    assert all(set(c) == {"name", "status", "message"} for c in checks)
    assert all(c["status"] in ("ok", "info", "warning", "error") for c in checks)
    assert any(c["name"] == "native" for c in checks)


def test_backends(server):
    st, body = server.request("GET", "/backends")
    assert st == 200, body
    names = [b["name"] for b in body["data"]]
    assert names[0] == "native" and "docker" in names and "podman" in names
    assert sum(b["default"] for b in body["data"]) == 1
    assert all(isinstance(b["available"], bool) and "exec" in b["capabilities"]
               for b in body["data"])


def test_agents(server):
    st, body = server.request("GET", "/agents")
    assert st == 200, body
    by = {a["name"]: a for a in body["data"]}
    assert {"claude", "codex", "gemini", "opencode", "amp", "pi", "copilot"} <= set(by)
    c = by["claude"]
    for k in ("display_name", "enabled", "description", "package", "cli_installed",
              "install_command", "compatibility_status"):
        assert k in c, k
    assert c["install_command"] == "npm install -g @anthropic-ai/claude-code"
    # names of key variables only, never whether they are set or what they hold
    assert c["api_key_env"] == ["ANTHROPIC_API_KEY"]


def test_stats_as_upstream(server):
    st, body = server.request("GET", "/stats")
    assert st == 200
    d = body["data"]
    assert d["sandbox_limit"] == 0 and "uptime_seconds" in d and "version" in d
    ru = d["resource_usage"]
    assert set(ru) == {"cpu_percent", "memory_used_mb", "memory_total_mb", "disk_used_mb"}
    assert 0 <= ru["cpu_percent"] <= 100 and ru["memory_total_mb"] > 0


def test_images_list_and_delete(server):
    st, body = server.request("GET", "/images")
    assert st == 200 and isinstance(body["data"], list)
    st, body = server.request("DELETE", "/images/docker.io/library/nosuch:1")
    assert st == 404, body
    for bad in ("/images/-rf", "/images/a%20b", "/images/x;y", "/images/" + "a" * 600):
        assert server.request("DELETE", bad)[0] == 400, bad
    assert server.request("DELETE", "/images/x?force=maybe")[0] == 400
    assert server.request("POST", "/images/x")[0] == 405


def test_compatibility_mode_accepted(server):
    st, body = server.request("POST", "/run", {"command": ["true"], "compatibility_mode": "claude"})
    assert st == 200, body
    st, body = server.request("POST", "/run", {"command": ["true"], "compatibility_mode": "x"})
    assert st == 400 and "compatibility_mode" in body["error"]
    st, body = server.request("POST", "/sandboxes", {"name": "cm", "compatibility_mode": 3})
    assert st == 400 and "compatibility_mode" in body["error"]


def test_mcp_tools_as_upstream(ak):
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
             "params": {"name": "nosuch_tool", "arguments": {}}},
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
             "params": {"name": "snapshot_take", "arguments": {"sandbox": "a", "name": "b"}}},
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
             "params": {"name": "sandbox_run",
                        "arguments": {"command": ["echo", "ok"], "compatibility_mode": "codex"}}}]
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode(), timeout=60)
    out = {m["id"]: m for m in map(json.loads, res.stdout.splitlines())}
    tools = {t["name"]: t for t in out[2]["result"]["tools"]}
    upstream = ["sandbox_run", "sandbox_create", "sandbox_exec", "sandbox_list", "sandbox_remove",
                "sandbox_start", "sandbox_stop", "sandbox_pause", "sandbox_resume", "sandbox_fork",
                "sandbox_file_write", "sandbox_file_read", "sandbox_write_files",
                "sandbox_exec_detach", "sandbox_exec_status", "sandbox_exec_kill",
                "sandbox_exec_logs", "sandbox_exec_list", "sandbox_extend_ttl", "snapshot_list",
                "snapshot_take", "snapshot_get", "snapshot_delete", "snapshot_restore",
                "browser_create", "browser_goto", "browser_screenshot", "browser_evaluate",
                "browser_remove", "browser_open", "browser_snapshot", "browser_click",
                "browser_fill", "browser_close", "browser_events", "permission_grant",
                "permission_list", "permission_revoke"]
    assert set(upstream) <= set(tools), set(upstream) - set(tools)
    assert tools["sandbox_fork"]["inputSchema"]["required"] == ["name", "as_name"]
    assert tools["permission_grant"]["inputSchema"]["required"] == ["kind", "granted"]
    assert tools["sandbox_run"]["inputSchema"]["properties"]["compatibility_mode"]["enum"] == \
        ["native", "claude", "codex", "gemini"]
    # upstream: an unknown tool is a result with isError, not a JSON-RPC error
    assert "error" not in out[3]
    assert out[3]["result"]["isError"] is True
    assert out[3]["result"]["content"][0]["text"] == "Error: Unknown tool: nosuch_tool"
    assert out[4]["result"]["isError"] is True
    assert "not available" in out[4]["result"]["content"][0]["text"]
    assert out[5]["result"].get("isError") is not True, out[5]
    assert out[5]["result"]["content"][0]["text"] == "ok\n"
    bad = mcp_call(ak, "sandbox_run", {"command": ["true"], "compatibility_mode": "vim"})["result"]
    assert bad["isError"] is True and "compatibility_mode" in bad["content"][0]["text"]


def fake_cli(d, name, body):
    f = d / name
    f.write_text("#!/bin/sh\n" + body + "\n")
    f.chmod(0o755)


def test_agents_newest_fields(ak, tmp_path):
    """upstream's newest /agents fields: cli_version from `CLI --version`, tested_version (none
    tested here: null), the plugin integration's support and where it is installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_cli(bin_dir, "claude", 'echo "2.0.14 (Claude Code)"')
    fake_cli(bin_dir, "codex", "echo codex-cli 0.46.0-alpha.3")
    fake_cli(bin_dir, "gemini", "echo no version here")
    proj = tmp_path / "proj"
    proj.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    assert ak("plugin", "install", "gemini", cwd=proj).rc == 0
    assert ak("plugin", "install", "claude", "--global", env={"HOME": str(home)}).rc == 0
    s = Server(ak, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home)}, cwd=proj)
    try:
        st, body = s.request("GET", "/agents")
    finally:
        s.stop()
    assert st == 200, body
    by = {a["name"]: a for a in body["data"]}
    fields = {"name", "display_name", "enabled", "description", "package", "cli_installed",
              "cli_version", "tested_version", "compatibility_status", "install_command",
              "integration_supported", "integration_project_installed",
              "integration_global_installed", "integration_global_supported"}
    for a in by.values():
        assert fields <= set(a), fields - set(a)
    assert by["claude"]["cli_version"] == "2.0.14" and by["claude"]["cli_installed"] is True
    assert by["codex"]["cli_version"] == "0.46.0-alpha.3"
    assert by["gemini"]["cli_installed"] is True and by["gemini"]["cli_version"] is None
    assert by["opencode"]["cli_installed"] is False and by["opencode"]["cli_version"] is None
    assert by["claude"]["tested_version"] is None
    assert by["claude"]["compatibility_status"] == "untested_version"
    assert by["opencode"]["compatibility_status"] == "not_installed"
    assert by["gemini"]["integration_project_installed"] is True
    assert by["claude"]["integration_project_installed"] is False
    assert by["claude"]["integration_global_installed"] is True
    assert by["claude"]["integration_supported"] and by["claude"]["integration_global_supported"]
    assert by["amp"]["integration_supported"] is False


def test_agents_version_probe_is_bounded_and_gets_no_secrets(ak, tmp_path):
    """A CLI that hangs, one that floods its output, and one whose child keeps the pipe open:
    GET /agents still answers within its budget (4 s for all) and nothing they started
    survives it. The probe's environment is PATH and HOME only: the server's key and a
    provider key in its environment never reach a `--version`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    fake_cli(bin_dir, "claude", f"env > {marks}/env; exec sleep 60")
    fake_cli(bin_dir, "codex", "exec yes 1.0.0")
    fake_cli(bin_dir, "gemini", f"(sleep 60; touch {marks}/late) & echo 3.1.4")
    s = Server(ak, env={"PATH": f"{bin_dir}:/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-secret-1",
                        "AGENTKERNEL_API_KEY": "k" * 40})
    try:
        t0 = time.time()
        st, body = s.request("GET", "/agents", headers={"Authorization": "Bearer " + "k" * 40},
                             key=False)
        took = time.time() - t0
    finally:
        s.stop()
    assert st == 200, body
    assert took < 8, took
    by = {a["name"]: a for a in body["data"]}
    assert by["claude"]["cli_version"] is None
    assert by["codex"]["cli_version"] in (None, "1.0.0")
    env = (marks / "env").read_text()
    assert "sk-secret-1" not in env and "k" * 40 not in env, env
    assert set(line.split("=")[0] for line in env.splitlines()) <= {"PATH", "HOME", "PWD", "SHLVL",
                                                                    "_", "OLDPWD"}, env
    out = subprocess.run(["pgrep", "-f", str(bin_dir)], capture_output=True, text=True).stdout
    assert out == "", "a probe's process outlived the request: " + out
