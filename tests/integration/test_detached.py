# SPDX-License-Identifier: Apache-2.0
"""Detached commands are kept by the sandbox's agent: any later process sees them (upstream Q4)."""
import json
import time

from conftest import needs_root, wait_for

pytestmark = needs_root


def wait_status(ak, box, cid, want, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        entries = {e["id"]: e for e in json.loads(ak("exec-list", "--json", box).out)}
        if entries[cid]["status"] != "running":
            return entries[cid]
        time.sleep(0.05)
    return entries[cid]


def test_detach_list_logs_kill_from_other_processes(ak, sandbox):
    res = ak("exec", "-d", sandbox, "--", "sh", "-c", "echo out; echo err >&2; sleep 30")
    assert res.rc == 0, res
    rec = json.loads(res.out)
    assert set(rec) == {"id", "sandbox", "command", "pid", "status", "exit_code", "started_at"}
    assert rec["status"] == "running" and rec["exit_code"] is None
    assert rec["command"] == ["sh", "-c", "echo out; echo err >&2; sleep 30"]
    assert len(rec["id"]) == 8

    # every command below is a new agentkernel process
    listed = json.loads(ak("sandbox", "exec-list", "--json", sandbox).out)
    assert [e["id"] for e in listed] == [rec["id"]]
    def logs(*opt):
        return ak("sandbox", "exec-logs", *opt, sandbox, rec["id"]).out

    wait_for(lambda: logs() and logs("--stderr"))  # the shell has written both
    assert logs() == b"out\n"
    assert logs("--stderr") == b"err\n"
    res = ak("sandbox", "exec-kill", sandbox, rec["id"])
    assert res.rc == 0
    killed = json.loads(res.out)
    assert killed["status"] == "failed" and killed["exit_code"] == 143  # SIGTERM
    # the process group is gone
    assert "sleep" not in ak("exec", sandbox, "--", "ps", "-e", "-o", "comm=").stdout


def test_detached_exit_codes(ak, sandbox):
    ok = json.loads(ak("exec", "-d", sandbox, "--", "true").out)
    bad = json.loads(ak("exec", "-d", sandbox, "--", "sh", "-c", "exit 3").out)
    missing = json.loads(ak("exec", "-d", sandbox, "--", "no-such-cmd").out)
    assert wait_status(ak, sandbox, ok["id"], "completed")["exit_code"] == 0
    assert wait_status(ak, sandbox, ok["id"], "completed")["status"] == "completed"
    assert wait_status(ak, sandbox, bad["id"], "failed")["exit_code"] == 3
    e = wait_status(ak, sandbox, missing["id"], "failed")
    assert e["status"] == "failed" and e["exit_code"] == 127
    assert b"not found" in ak("exec-logs", "--stderr", sandbox, missing["id"]).out


def test_detached_survive_the_starter_and_end_with_the_sandbox(ak, sandbox):
    rec = json.loads(ak("exec", "-d", sandbox, "--", "sleep", "300").out)
    assert wait_status(ak, sandbox, rec["id"], "running", timeout=0.5)["status"] == "running"
    assert ak("stop", sandbox).rc == 0
    assert ak("start", sandbox).rc == 0
    assert json.loads(ak("exec-list", "--json", sandbox).out) == []


def test_detached_errors(ak, sandbox):
    res = ak("exec-logs", sandbox, "deadbeef")
    assert res.rc == 1 and "not found" in res.stderr
    res = ak("exec-kill", sandbox, "../../x")
    assert res.rc == 1 and "invalid" in res.stderr
    res = ak("exec", "-d", "-t", sandbox, "--", "true")
    assert res.rc == 2


def test_detached_log_is_large_and_binary_safe(ak, sandbox):
    rec = json.loads(ak("exec", "-d", sandbox, "--", "sh", "-c",
                        "head -c 5000000 /dev/zero | tr '\\0' 'z'; printf '\\377\\000end'").out)
    wait_status(ak, sandbox, rec["id"], "completed")
    out = ak("exec-logs", sandbox, rec["id"]).out
    assert len(out) == 5000000 + 5 and out.endswith(b"\xff\x00end")
