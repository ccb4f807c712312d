# SPDX-License-Identifier: Apache-2.0
"""Sandbox lifecycle through the CLI, on the native backend."""
import json

import pytest

from conftest import needs_root

pytestmark = needs_root


def test_run_hello(ak):
    res = ak("run", "--", "sh", "-c", "echo hello from $(hostname)")
    assert res.rc == 0, res
    assert res.stdout == "hello from agentkernel\n"
    assert ak.list() == []  # an ephemeral run leaves no record


def test_full_lifecycle(ak):
    res = ak("create", "dev")
    assert res.rc == 0, res
    assert "Created and started sandbox 'dev'" in res.stdout
    # upstream's create auto-starts; starting again is harmless
    res = ak("start", "dev")
    assert res.rc == 0 and "already running" in res.stdout, res

    res = ak("exec", "dev", "--", "python3", "-c", "print(1)")
    assert res.rc == 0 and res.stdout == "1\n", res

    [info] = ak.list()
    assert info["name"] == "dev"
    assert info["status"] == "running"
    assert info["backend"] == "native"
    assert info["image"] == "host"
    assert info["vcpus"] == 1 and info["memory_mb"] == 512
    assert len(info["uuid"]) == 36

    res = ak("info", "dev", "--json")
    assert res.rc == 0 and json.loads(res.out)["status"] == "running", res
    res = ak("info", "dev")
    assert res.rc == 0 and "running" in res.stdout

    # state persists across execs in a named sandbox
    assert ak("exec", "dev", "--", "sh", "-c", "echo kept > /tmp/f").rc == 0
    assert ak("exec", "dev", "--", "cat", "/tmp/f").stdout == "kept\n"

    res = ak("stop", "dev")
    assert res.rc == 0, res
    assert ak.list()[0]["status"] == "stopped"
    res = ak("exec", "dev", "--", "true")
    assert res.rc == 125
    assert "sandbox 'dev' is not running; start it with: agentkernel start dev" in res.stderr

    assert ak("start", "dev").rc == 0
    # a stop ends every process: /tmp was private to the stopped instance
    assert ak("exec", "dev", "--", "cat", "/tmp/f").rc != 0
    res = ak("remove", "dev")
    assert res.rc == 0, res
    assert ak.list() == []
    assert not ak.state_file("dev").exists()


def test_sandbox_group_aliases(ak):
    assert ak("sandbox", "create", "g1", "--no-network").rc == 0
    assert ak("sb", "exec", "g1", "--", "true").rc == 0
    res = ak("sb", "list", "--json")
    assert [s["name"] for s in json.loads(res.out)] == ["g1"]
    assert ak("sandbox", "stop", "g1").rc == 0
    assert ak("sb", "remove", "g1").rc == 0


def test_create_no_start_and_errors(ak):
    res = ak("create", "--no-start", "idle")
    assert res.rc == 0 and "Start it with" in res.stdout, res
    assert ak.list()[0]["status"] == "stopped"
    res = ak("create", "idle")
    assert res.rc == 1 and "sandbox 'idle' already exists" in res.stderr
    res = ak("create", "bad name")
    assert res.rc == 1 and "invalid sandbox name" in res.stderr
    res = ak("start", "nosuch")
    assert res.rc == 1 and "sandbox 'nosuch' not found" in res.stderr
    res = ak("remove", "nosuch")
    assert res.rc == 1 and "not found" in res.stderr
    res = ak("exec", "nosuch", "--", "true")
    assert res.rc == 125
    # nothing was created by the failures
    assert ak.names() == ["idle"]


def test_too_many_names_says_the_limit(ak):
    """`remove` takes at most 64 names at once: the 65th is named with the limit, nothing is
    removed; a command with a fixed count still says which argument is extra."""
    assert ak("create", "keep", "--no-start").rc == 0
    res = ak("remove", "keep", *[f"n{i}" for i in range(64)])
    assert res.rc == 2 and "at most 64 names at once ('n63' is one more)" in res.stderr, res
    assert ak.names() == ["keep"]
    res = ak("cp", "a", "b", "c")
    assert res.rc == 2 and "unexpected argument 'c'" in res.stderr, res


def test_usage_errors(ak):
    for args in (["run"], ["exec", "x"], ["create"], ["frobnicate"], ["run", "--bogus", "--", "true"],
                 ["create", "x", "--ttl", "5w"], ["create", "x", "--profile", "lax"],
                 ["create", "x", "-p", "99999:1"], ["run", "-e", "=x", "--", "true"]):
        res = ak(*args)
        assert res.rc == 2, (args, res)
        assert res.stderr.startswith("error: "), res
    assert ak.list() == []


def test_help_for_every_verb(ak):
    res = ak("--help")
    assert res.rc == 0
    verbs = ["run", "create", "start", "stop", "remove", "list", "info", "exec", "attach",
             "exec-list", "exec-logs", "exec-kill", "cp", "doctor"]
    for v in verbs:
        assert v in res.stdout
        r = ak(v, "--help")
        assert r.rc == 0 and "Usage: agentkernel " + v in r.stdout, (v, r)
    r = ak("sandbox", "exec", "--help")
    assert r.rc == 0 and "Usage: agentkernel sandbox exec" in r.stdout
    assert ak("--version").stdout.startswith("agentkernel ")


def test_labels_and_filters(ak):
    assert ak("create", "--no-start", "s1", "-l", "env=prod").rc == 0
    assert ak("create", "--no-start", "s2", "-l", "env=staging", "-l", "team=ml").rc == 0
    assert ak("create", "--no-start", "s3", "-l", "env=prod", "-l", "team=ml").rc == 0
    got = json.loads(ak("list", "--json", "-l", "env=prod").out)
    assert sorted(s["name"] for s in got) == ["s1", "s3"]
    got = json.loads(ak("list", "--json", "-l", "env=prod", "-l", "team=ml").out)
    assert [s["name"] for s in got] == ["s3"]
    got = json.loads(ak("list", "--json", "-l", "team=none").out)
    assert got == []


def test_ttl_recorded(ak):
    assert ak("create", "--no-start", "t1", "--ttl", "2h30m").rc == 0
    st = ak.state("t1")
    assert st["ttl_seconds"] == 9000
    assert st["expires_at"] is not None
    assert ak("create", "--no-start", "t2", "--ttl", "1d").rc == 0  # upstream Q8 fixed
    assert ak.state("t2")["ttl_seconds"] == 86400
    assert ak("create", "--no-start", "t3", "--ttl", "0").rc == 0
    assert ak.state("t3")["ttl_seconds"] is None


def test_run_keep(ak):
    res = ak("run", "--keep", "--no-network", "--", "sh", "-c", "echo kept")
    assert res.rc == 0 and res.stdout == "kept\n", res
    [s] = ak.list()
    assert s["name"].startswith("run-") and s["status"] == "running"
    assert ak.state(s["name"])["ttl_seconds"] == 3600  # upstream's default for --keep


def test_create_branch_and_list_project(ak, tmp_path):
    """`create --branch` names the sandbox <git project>-<branch> (made a valid name), from any
    directory of the work tree; `list --project` shows only that project's; outside a git
    project both say so (upstream's flags)."""
    top = tmp_path / "My.Proj"
    (top / ".git").mkdir(parents=True)
    (top / ".git" / "HEAD").write_text("ref: refs/heads/feat/x-1\n")
    (top / "sub").mkdir()
    res = ak("create", "--branch", "--no-start", cwd=top / "sub")
    assert res.rc == 0 and "'My-Proj-feat-x-1'" in res.stdout, res
    assert ak("create", "other", "--no-start").rc == 0
    res = ak("list", "--project", cwd=top)
    assert "My-Proj-feat-x-1" in res.stdout and "other" not in res.stdout, res
    assert ak("create", "--branch", "named", cwd=top).rc == 2
    (top / ".git" / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    res = ak("create", "--branch", cwd=top)
    assert res.rc == 2 and "detached HEAD" in res.stderr, res
    res = ak("list", "--project", cwd=tmp_path)
    assert res.rc == 2 and "not in a git project" in res.stderr, res
