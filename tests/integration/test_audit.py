# SPDX-License-Identifier: Apache-2.0
"""The audit log: upstream's events and fields, and a hash chain that finds any altered line."""
import json

import pytest


def entries(ak, *extra):
    res = ak("audit", "--json", "--last", "0", *extra)
    assert res.rc == 0, res
    return json.loads(res.out)


def log_path(ak):
    return ak.data_dir / "audit.jsonl"


def test_lifecycle_exec_and_files_are_audited(ak, sandbox):
    assert ak("exec", sandbox, "--", "sh", "-c", "exit 3").rc == 3
    assert ak("cp", "-", f"{sandbox}:/tmp/f", input=b"x").rc == 0
    assert ak("cp", f"{sandbox}:/tmp/f", "-").rc == 0
    assert ak("exec", sandbox, "-d", "--", "true").rc == 0
    assert ak("stop", sandbox).rc == 0
    assert ak("remove", sandbox).rc == 0
    got = entries(ak, "-s", sandbox)
    types = [e["type"] for e in got]
    assert types == ["sandbox_created", "sandbox_started", "command_executed", "file_written",
                     "file_read", "command_executed", "sandbox_stopped", "sandbox_removed"]
    for e in got:
        assert set(["timestamp", "pid", "user", "type", "seq", "prev", "hash"]) <= set(e)
        assert e["timestamp"].endswith("+00:00")
    created = got[0]
    assert created["name"] == sandbox and created["image"] == "host"
    assert created["backend"] == "native"
    assert got[1]["profile"] == "moderate"
    assert got[2]["sandbox"] == sandbox
    assert got[2]["command"] == ["sh", "-c", "exit 3"] and got[2]["exit_code"] == 3
    assert got[3]["path"] == "/tmp/f" and got[4]["path"] == "/tmp/f"
    assert got[5]["exit_code"] is None  # detached: no exit code yet, as upstream
    seqs = [e["seq"] for e in entries(ak)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_run_and_labels(ak):
    assert ak("run", "--no-network", "--", "true").rc == 0
    assert ak("create", "lab", "--no-start", "-l", "team=a").rc == 0
    got = entries(ak)
    assert got[0]["type"] == "command_executed" and got[0]["sandbox"].startswith("run-")
    assert got[1]["labels"] == {"team": "a"}
    res = ak("audit", "--last", "1")
    assert res.rc == 0 and "sandbox_created" in res.stdout and "lab" in res.stdout


def test_failed_start_is_audited_as_error(ak):
    assert ak("create", "bad", "--no-start", "--no-network").rc == 0
    state = ak.state("bad")
    state["x_agentkernel"]["work_dir"] = "/nonexistent/dir"
    state["x_agentkernel"]["mount_cwd"] = True
    ak.state_file("bad").write_text(json.dumps(state))
    assert ak("start", "bad").rc != 0
    last = entries(ak)[-1]
    assert last["type"] == "sandbox_error" and last["name"] == "bad" and last["error"]


def test_disabled(ak, sandbox):
    n = len(entries(ak))
    for v in ("0", "false"):
        assert ak("exec", sandbox, "--", "true", env={"AGENTKERNEL_AUDIT": v}).rc == 0
    assert len(entries(ak)) == n


def test_path_and_env_override(ak, tmp_path):
    assert ak("audit", "--path").stdout.strip() == str(log_path(ak))
    other = tmp_path / "elsewhere.jsonl"
    assert ak("audit", "--path", env={"AGENTKERNEL_AUDIT_PATH": str(other)}).stdout.strip() == \
        str(other)


def make_log(ak):
    for i in range(4):
        assert ak("create", f"s{i}", "--no-start").rc == 0
    res = ak("audit", "verify")
    assert res.rc == 0, res
    return log_path(ak).read_text().splitlines(keepends=True)


@pytest.mark.parametrize("how", ["edit", "delete", "swap", "insert", "truncate", "edit-rehash"])
def test_verify_finds_any_altered_line(ak, how):
    lines = make_log(ak)
    assert len(lines) == 4
    if how == "edit":
        lines[1] = lines[1].replace('"s1"', '"s9"')
    elif how == "delete":
        del lines[2]
    elif how == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif how == "insert":
        lines.insert(2, lines[1])
    elif how == "truncate":
        del lines[-1]
    elif how == "edit-rehash":
        # An editor who also fixes the edited line's own hash still breaks the next link.
        import hashlib
        e = json.loads(lines[1])
        e["name"] = "s9"
        del e["hash"]
        text = json.dumps(e, separators=(",", ":"))
        h = hashlib.sha256((e["prev"] + text).encode()).hexdigest()
        lines[1] = text[:-1] + f',"hash":"{h}"}}\n'
    log_path(ak).write_text("".join(lines))
    res = ak("audit", "verify")
    assert res.rc == 1, res
    assert "not intact" in res.stderr


def test_verify_accepts_legacy_lines_before_the_chain(ak):
    legacy = '{"timestamp":"2025-01-01T00:00:00+00:00","pid":1,"user":null,' \
             '"type":"sandbox_removed","name":"old"}\n'
    log_path(ak).parent.mkdir(parents=True, exist_ok=True)
    log_path(ak).write_text(legacy)
    assert ak("create", "new", "--no-start").rc == 0
    res = ak("audit", "verify")
    assert res.rc == 0, res
    assert [e["type"] for e in entries(ak)] == ["sandbox_removed", "sandbox_created"]


def test_malformed_lines_are_skipped_when_reading(ak):
    assert ak("create", "one", "--no-start").rc == 0
    with log_path(ak).open("a") as f:
        f.write("not json\n")
    assert ak("create", "two", "--no-start").rc == 0
    assert [e.get("name") for e in entries(ak)] == ["one", "two"]
    assert ak("audit", "verify").rc == 1


def test_stats_count_what_the_log_says(ak):
    """`stats` (upstream's): executions (all, and of the last 30 days), sandboxes created,
    removed and left, the images and backends used most, the first and last day."""
    assert ak("create", "s1", "--no-network").rc == 0
    assert ak("create", "s2", "--no-network").rc == 0
    assert ak("exec", "s1", "--", "true").rc == 0
    assert ak("run", "--no-network", "--", "true").rc == 0
    assert ak("remove", "s2").rc == 0
    st = json.loads(ak("stats", "--json").out)
    assert st["total_executions"] == 2 and st["executions_last_30d"] == 2, st
    assert (st["sandboxes_created"], st["sandboxes_removed"], st["sandboxes_active"]) == (2, 1, 1)
    assert st["top_images"] == [["host", 2]] and st["top_backends"] == [["native", 2]], st
    assert len(st["first_entry"]) == 10 and st["first_entry"] <= st["last_entry"]
    text = ak("stats").stdout
    assert "2 total (last 30d: 2)" in text and "2 created, 1 removed, 1 active" in text, text


def test_stats_of_an_empty_log(ak):
    st = json.loads(ak("stats", "--json").out)
    assert st["total_executions"] == 0 and st["first_entry"] is None, st
