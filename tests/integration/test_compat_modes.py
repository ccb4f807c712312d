# SPDX-License-Identifier: Apache-2.0
"""[agent] compatibility_mode (core/compat.c): every part of upstream's modes is applied where the
caller said nothing (upstream applied only the permissions), and the caller's own settings win."""
import json
import os

import pytest

from tests.conftest import needs_root


def write(d, text, ak):
    (d / "agentkernel.toml").write_text(text)
    os.chmod(d / "agentkernel.toml", 0o644)
    res = ak("trust", "--yes", d / "agentkernel.toml")
    assert res.rc == 0, res


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    os.chmod(d, 0o777)
    (d / "hello.txt").write_text("hi\n")
    return d


def ext(ak, name):
    return ak.state(name)["x_agentkernel"]


def hosts(policy, action):
    return [r["host"] for r in policy["rules"] if r["action"] == action]


@needs_root
def test_claude_mode_applies_env_workspace_filter_and_its_hosts(ak, proj):
    write(proj, '[sandbox]\nname = "cl"\n[agent]\ncompatibility_mode = "Claude-Code"\n', ak)
    res = ak("create", cwd=proj)
    assert res.rc == 0, res
    x = ext(ak, "cl")
    assert x["compat_mode"] == "claude" and x["seccomp"] == "ai-agent"
    assert x["profile"] == "moderate" and x["mount_cwd"] is True
    assert "CLAUDE_CODE_SANDBOX=agentkernel" in x["env"]
    pol = x["network_policy"]
    assert pol["default"] == "deny"
    assert "api.anthropic.com" in hosts(pol, "allow") and "*.crates.io" in hosts(pol, "allow")
    assert "metadata.google.internal" in hosts(pol, "deny")
    res = ak("exec", "cl", "--", "sh", "-c", 'echo "$CLAUDE_CODE_SANDBOX"; cat /workspace/hello.txt')
    assert res.rc == 0 and res.stdout.split() == ["agentkernel", "hi"], res
    # the policy the sandbox runs with is the mode's
    res = ak("network", "policy", "cl")
    assert res.rc == 0 and "api.anthropic.com" in res.stdout and "registry.npmjs.org" not in res.stdout


@needs_root
def test_codex_mode_is_restrictive_with_network_on(ak, proj):
    write(proj, '[sandbox]\nname = "cx"\n[agent]\ncompatibility_mode = "openai-codex"\n', ak)
    assert ak("create", cwd=proj).rc == 0
    x = ext(ak, "cx")
    assert x["profile"] == "restrictive" and x["network"] == "proxy", x
    assert "*.internal" in hosts(x["network_policy"], "deny")
    assert "api.openai.com" in hosts(x["network_policy"], "allow")
    # restrictive's read-only root, the ai-agent filter's extra calls (ioprio_set)
    res = ak("exec", "cx", "--", "sh", "-c", "touch /usr/x 2>/dev/null; echo $?; ionice -c 3 true; echo $?")
    assert res.stdout.split() == ["1", "0"], res


@needs_root
def test_gemini_mode_and_native_mode(ak, proj):
    write(proj, '[sandbox]\nname = "gm"\n[agent]\ncompatibility_mode = "gemini-cli"\n', ak)
    assert ak("create", "--no-start", cwd=proj).rc == 0
    x = ext(ak, "gm")
    assert x["compat_mode"] == "gemini" and "*.googleapis.com" in hosts(x["network_policy"], "allow")
    assert not any(e.startswith("CLAUDE_") for e in x.get("env", []))
    write(proj, '[sandbox]\nname = "nt"\n[agent]\ncompatibility_mode = "default"\n', ak)
    assert ak("create", "--no-start", cwd=proj).rc == 0
    x = ext(ak, "nt")
    assert "compat_mode" not in x and "seccomp" not in x and "network_policy" not in x


@needs_root
def test_the_callers_settings_win_over_the_mode(ak, proj):
    write(proj, '[sandbox]\nname = "w"\n[agent]\ncompatibility_mode = "codex"\n'
                '[security]\nprofile = "moderate"\nseccomp = "moderate"\nmount_cwd = false\n', ak)
    assert ak("create", "--no-start", "--no-network", "-e", "X=1", cwd=proj).rc == 0
    x = ext(ak, "w")
    assert x["profile"] == "moderate" and x["seccomp"] == "moderate"
    assert x["network"] == "none" and x.get("mount_cwd") is False


@needs_root
def test_allow_host_refines_the_modes_hosts(ak, proj):
    write(proj, '[sandbox]\nname = "ah"\n[agent]\ncompatibility_mode = "claude"\n', ak)
    assert ak("create", "--no-start", "--allow-host", "git.example.org",
              "--deny-host", "*.npmjs.com", cwd=proj).rc == 0
    pol = ext(ak, "ah")["network_policy"]
    allow = hosts(pol, "allow")
    assert allow[0] == "git.example.org" and "api.anthropic.com" in allow
    assert hosts(pol, "deny")[0] == "*.npmjs.com" and pol["default"] == "deny"


def test_unknown_mode_is_refused_and_nothing_is_created(ak, proj):
    (proj / "agentkernel.toml").write_text('[sandbox]\nname = "bad"\n[agent]\n'
                                           'compatibility_mode = "copilot"\n')
    res = ak("trust", "--yes", proj / "agentkernel.toml")
    assert res.rc != 0 and "compatibility_mode" in res.stderr and "claude" in res.stderr, res
    res = ak("create", "--no-start", cwd=proj)
    assert res.rc == 2, res
    assert ak.list() == []


def test_ai_agent_is_a_seccomp_filter_name(ak, proj):
    write(proj, '[sandbox]\nname = "f"\n[security]\nseccomp = "ai-agent"\nnetwork = false\n', ak)
    assert ak("create", "--no-start", cwd=proj).rc == 0
    assert ext(ak, "f")["seccomp"] == "ai-agent"
