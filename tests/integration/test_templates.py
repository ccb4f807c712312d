# SPDX-License-Identifier: Apache-2.0
"""Templates (core/template.c): upstream's built-in catalog, the user's own in
<data dir>/templates (0600 files in a 0700 directory), create/run --template, init -t."""
import json
import os
import stat

import pytest

from conftest import needs_root

BUILTINS = ["claude-sandbox", "codex-sandbox", "gemini-sandbox", "opencode-sandbox",
            "amp-sandbox", "pi-sandbox", "bash", "c", "dotnet", "go", "java", "node", "python",
            "ruby", "rust", "typescript", "python-ml", "node-fullstack", "rust-ci", "secure",
            "vscode", "coder", "gitea"]


def listing(ak):
    res = ak("template", "list", "--json")
    assert res.rc == 0, res
    return {t["name"]: t for t in json.loads(res.stdout)}


def test_catalog_is_upstreams_and_every_template_parses(ak):
    got = listing(ak)
    assert sorted(got) == sorted(BUILTINS)
    assert all(t["source"] == "built-in" and t["help_text"] for t in got.values())
    assert got["secure"]["profile"] == "restrictive" and got["secure"]["memory_mb"] == 256
    assert got["python"]["image"] == "python:3.12-alpine"
    res = ak("template", "list")
    assert res.stdout.splitlines()[0].split() == ["NAME", "SOURCE", "IMAGE", "PROFILE", "MEMORY"]
    for name in BUILTINS:
        res = ak("template", "show", name)
        assert res.rc == 0 and f'name = "{name}"' in res.stdout, res


@needs_root
def test_create_and_run_from_a_template(ak, tmp_path):
    res = ak("create", "t1", "--template", "secure", "-i", "host")
    assert res.rc == 0 and "Template 'secure'" in res.stdout, res
    st = ak.state("t1")
    assert st["created_from_template"] == "secure" and "locked down" in st["template_help_text"]
    assert st["memory_mb"] == 256 and st["x_agentkernel"]["profile"] == "restrictive"
    assert st["x_agentkernel"]["network"] == "none"
    # claude mode mounts the current directory: a scratch one (not holding the data directory)
    ws = tmp_path / "ws"
    ws.mkdir()
    res = ak("run", "--template", "claude-sandbox", "-i", "host", "--",
             "sh", "-c", 'echo "$CLAUDE_CODE_SANDBOX"', cwd=ws)
    assert res.rc == 0 and res.stdout == "agentkernel\n", res


def test_save_add_remove(ak, tmp_path):
    assert ak("create", "src", "--no-start", "-i", "host", "--memory", "300").rc == 0
    res = ak("template", "save", "mine", "--from", "src")
    assert res.rc == 0 and "saved to" in res.stdout, res
    d = ak.data_dir / "templates"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / "mine.toml").st_mode) == 0o600
    t = listing(ak)["mine"]
    assert t["source"] == "local" and t["image"] == "host" and t["memory_mb"] == 300
    # a local template replaces the built-in of its name
    f = tmp_path / "python.toml"
    f.write_text('[sandbox]\nbase_image = "host"\n[resources]\nmemory_mb = 64\n')
    res = ak("template", "add", f)
    assert res.rc == 0, res
    assert listing(ak)["python"]["source"] == "local"
    assert ak("template", "remove", "python").rc == 0
    assert listing(ak)["python"]["source"] == "built-in"
    res = ak("template", "remove", "python")
    assert res.rc == 1 and "built-in template and cannot be removed" in res.stderr
    res = ak("template", "remove", "nope")
    assert res.rc == 1 and "not found in local templates" in res.stderr
    assert ak("template", "remove", "mine").rc == 0
    assert "mine" not in listing(ak)
    res = ak("template", "save", "x", "--from", "nosuch")
    assert res.rc == 1 and "not found" in res.stderr


def test_unknown_and_github_templates(ak):
    res = ak("create", "x", "--template", "nosuch", "--no-start")
    assert res.rc == 2 and "template 'nosuch' not found" in res.stderr, res
    res = ak("create", "x", "--template", "github:o/r/t", "--no-start")
    assert res.rc == 2 and "template add github:o/r/t" in res.stderr, res
    # (fetching works now: tests/security/web/test_template_github.py); an unreachable one:
    res = ak("template", "add", "github:o/r/t",
             env={"AGENTKERNEL_GITHUB_URL": "file:///nonexistent-agentkernel-test"})
    assert res.rc == 1 and "fetching 'file:///nonexistent-agentkernel-test/o/r' failed" in \
        res.stderr, res
    assert ak.list() == []


def test_init_from_a_template(ak, tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    res = ak("init", "-t", "python", "-n", "mypy", cwd=d)
    assert res.rc == 0, res
    text = (d / "agentkernel.toml").read_text()
    assert text.startswith("# Generated from template: python\n")
    assert 'name = "mypy"' in text and '"python"' not in text.split("[resources]")[0]
    assert "[template]" in text  # upstream dropped it
    res = ak("init", "-t", "python", cwd=d)
    assert res.rc == 1 and "already exists" in res.stderr


@needs_root
def test_config_wins_over_template(ak, tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "agentkernel.toml").write_text('[sandbox]\nname = "fromcfg"\n[resources]\nmemory_mb = 128\n')
    os.chmod(d / "agentkernel.toml", 0o644)
    assert ak("trust", "--yes", d / "agentkernel.toml").rc == 0
    res = ak("create", "--config", d / "agentkernel.toml", "--template", "secure", "--no-start")
    assert res.rc == 0 and "not used" in res.stderr, res
    assert ak.state("fromcfg")["memory_mb"] == 128
