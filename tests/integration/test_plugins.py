# SPDX-License-Identifier: Apache-2.0
"""`plugin install|list` and `agents`: the files coding agents read to find our MCP server,
merged into what is there and never written through a link a repository planted (a cloned
project is not trusted to say where its `.mcp.json` really is)."""
import json
import os
import stat

import pytest

from conftest import needs_root

pytestmark = needs_root

ENTRY = {"command": "agentkernel", "args": ["mcp-server"], "env": {}}


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    return d


def install(ak, proj, *args):
    return ak("plugin", "install", *args, cwd=proj)


def test_claude_creates_its_files_and_merges_mcp_json(ak, proj):
    (proj / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}},
                                                "keep": [1, 2]}))
    os.chmod(proj / ".mcp.json", 0o600)
    res = install(ak, proj, "claude")
    assert res.rc == 0, res
    assert "+ .claude/skills/agentkernel/SKILL.md" in res.stdout
    assert "~ .mcp.json (merged)" in res.stdout
    doc = json.loads((proj / ".mcp.json").read_text())
    assert doc["mcpServers"] == {"other": {"command": "x"}, "agentkernel": ENTRY}
    assert doc["keep"] == [1, 2]
    assert stat.S_IMODE(os.stat(proj / ".mcp.json").st_mode) == 0o600  # its mode kept
    assert "sandbox_run" in (proj / ".claude/skills/agentkernel/SKILL.md").read_text()
    again = install(ak, proj, "claude")
    assert again.rc == 0 and "already configured" in again.stdout, again
    listing = ak("plugin", "list", cwd=proj).stdout
    assert [ln.split()[-1] for ln in listing.splitlines() if ln.startswith("claude")] == \
        ["installed"]


def test_each_target_and_all(ak, proj):
    res = install(ak, proj, "all")
    assert res.rc == 0, res
    assert json.loads((proj / ".gemini/settings.json").read_text())["mcpServers"]["agentkernel"] \
        == ENTRY
    assert "[mcp_servers.agentkernel]" in (proj / ".codex/config.toml").read_text()
    assert "@opencode-ai/plugin" in (proj / ".opencode/package.json").read_text()
    assert (proj / ".opencode/plugins/agentkernel.ts").exists()
    assert "not installed" not in ak("plugin", "list", cwd=proj).stdout


def test_dry_run_writes_nothing(ak, proj):
    res = install(ak, proj, "claude", "--dry-run")
    assert res.rc == 0 and "(dry run)" in res.stdout and "+ .mcp.json" in res.stdout, res
    assert os.listdir(proj) == []


def test_what_is_not_ours_is_kept_without_force(ak, proj):
    (proj / ".mcp.json").write_text(json.dumps({"mcpServers": {"agentkernel": {"command": "y"}}}))
    (proj / ".claude/commands").mkdir(parents=True)
    (proj / ".claude/commands/sandbox.md").write_text("mine")
    res = install(ak, proj, "claude")
    assert res.rc == 0, res
    assert "another configuration" in res.stdout and "--force" in res.stdout
    assert (proj / ".claude/commands/sandbox.md").read_text() == "mine"
    assert json.loads((proj / ".mcp.json").read_text())["mcpServers"]["agentkernel"] == \
        {"command": "y"}
    res = install(ak, proj, "claude", "--force")
    assert res.rc == 0, res
    assert (proj / ".claude/commands/sandbox.md").read_text() != "mine"
    assert json.loads((proj / ".mcp.json").read_text())["mcpServers"]["agentkernel"] == ENTRY


def test_a_codex_table_of_the_users_is_never_rewritten(ak, proj):
    (proj / ".codex").mkdir()
    text = '# mine\n[mcp_servers.agentkernel]\ncommand = "/opt/ak"\n'
    (proj / ".codex/config.toml").write_text(text)
    res = install(ak, proj, "codex", "--force")
    assert "edit it by hand" in res.stdout, res
    assert (proj / ".codex/config.toml").read_text() == text


def test_invalid_json_is_reported_and_left_alone(ak, proj):
    (proj / ".mcp.json").write_text("{not json")
    res = install(ak, proj, "mcp")
    assert res.rc == 1 and "not valid JSON" in res.stdout, res
    assert (proj / ".mcp.json").read_text() == "{not json"


@pytest.mark.parametrize("where", [".mcp.json", ".claude", ".gemini/settings.json"])
def test_planted_symlinks_are_never_followed(ak, proj, tmp_path, where):
    """A repository plants `.mcp.json` (or `.claude`, or `.gemini/settings.json`) as a link to a
    file or directory elsewhere: the user's global config, their shell's rc file. Must hold: the
    install refuses that file, the link's target is untouched and no file appears there."""
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim = victim_dir / "settings.json"
    victim.write_text('{"secret": "do not copy me"}')
    target = victim_dir if where == ".claude" else victim
    link = proj / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    res = install(ak, proj, "all")
    assert res.rc == 1 and "symbolic link" in res.stdout, res
    assert victim.read_text() == '{"secret": "do not copy me"}'
    assert os.listdir(victim_dir) == ["settings.json"]
    assert link.is_symlink()
    # and no copy of the target's content lands in the project
    for root, _, files in os.walk(proj):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                assert "do not copy me" not in open(p, errors="replace").read(), p


def test_a_fifo_or_a_huge_file_does_not_hang_or_load(ak, proj):
    os.mkfifo(proj / ".mcp.json")
    res = ak("plugin", "install", "mcp", cwd=proj, timeout=20)
    assert res.rc == 1 and "not a regular file" in res.stdout, res
    os.unlink(proj / ".mcp.json")
    with open(proj / ".mcp.json", "wb") as f:
        f.truncate(2 << 20)
    res = install(ak, proj, "mcp")
    assert res.rc == 1 and "too large" in res.stdout.lower(), res


def test_global_goes_to_home_and_opencode_is_per_project(ak, proj, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    res = ak("plugin", "install", "gemini", "--global", cwd=proj, env={"HOME": str(home)})
    assert res.rc == 0, res
    assert (home / ".gemini/settings.json").exists() and not (proj / ".gemini").exists()
    res = ak("plugin", "install", "opencode", "--global", cwd=proj, env={"HOME": str(home)})
    assert res.rc == 2 and "per project" in res.stderr, res
    res = ak("plugin", "install", "vim", cwd=proj)
    assert res.rc == 2 and "unknown plugin target 'vim'" in res.stderr, res


def test_agents_lists_installation_and_keys(ak, proj, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "claude").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(bindir / "claude", 0o755)
    res = ak("agents", env={"PATH": f"{bindir}:/usr/bin:/bin", "ANTHROPIC_API_KEY": "k",
                            "OPENAI_API_KEY": ""})
    assert res.rc == 0, res
    rows = {ln[:20].strip(): ln[20:].split() for ln in res.stdout.splitlines()[1:]}
    assert rows["Claude Code"][:2] == ["installed", "set"], res
    assert rows["Codex"][:3] == ["not", "installed", "missing"], res  # empty is missing
    assert rows["OpenCode"][2] == "set", res  # any of its providers' keys
