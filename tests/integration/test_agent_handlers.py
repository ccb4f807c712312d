# SPDX-License-Identifier: Apache-2.0
"""The agent's handler processes serve many connections each: nothing one request did may show in
the next, a burst's extra handlers go away, and a handler killed from inside the sandbox costs
nothing but itself."""
import json
import os
import pathlib
import socket
import subprocess
import time

from conftest import needs_root, wait_for

pytestmark = needs_root

# the agent's handlers and PID 1, seen from inside the sandbox (a command's own comm is its own)
COUNT_AGENTS = "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^agentkernel-age'"


def sh(ak, name, script, *opts):
    return ak("exec", *opts, name, "--", "sh", "-c", script)


def agents_inside(ak, name):
    res = sh(ak, name, COUNT_AGENTS)
    assert res.rc == 0, res
    return int(res.stdout)


def test_one_after_another_reuses_a_handler(ak, sandbox):
    # $PPID of the command is the handler that started it
    parents = [sh(ak, sandbox, "echo $PPID").stdout.strip() for _ in range(12)]
    assert all(p.isdigit() for p in parents), parents
    # a fresh process per connection would give 12 different parents
    assert len(set(parents)) <= 2, parents
    # PID 1, the handler serving this exec, and one free handler for the next connection
    assert agents_inside(ak, sandbox) <= 3


def test_no_fork_per_request_even_after_a_pause(ak, sandbox):
    # pids in the sandbox's namespace are handed out in order: an exec that creates nothing but
    # its command moves the next pid by one; a handler forked for it would move it by two
    sh(ak, sandbox, "true")  # the first request has PID 1 fork a second handler
    pids = []
    for pause in (0, 0, 0, 2.5, 2.5):  # an agent thinks between commands (2 s: the retire window)
        time.sleep(pause)
        res = sh(ak, sandbox, "echo $$")
        assert res.rc == 0, res
        pids.append(int(res.stdout))
    steps = [b - a for a, b in zip(pids, pids[1:])]
    assert steps == [1, 1, 1, 1], pids


def test_nothing_carries_over_between_requests(ak, sandbox):
    fds = "ls /proc/self/fd | sort -n | tr '\\n' ' '"
    clean = sh(ak, sandbox, f'echo "[$FOO]"; pwd; id -u; umask; {fds}')
    assert clean.rc == 0, clean
    # requests that change what a process carries: env, cwd, user, a terminal, stdin, a failed
    # start, a timeout, a detached command (whose supervisor is a child of its handler), files
    assert sh(ak, sandbox, "cd /tmp; umask 077; true", "-e", "FOO=leak", "-w", "/tmp").rc == 0
    assert ak("exec", "-u", "nobody", sandbox, "--", "true").rc == 0
    assert ak("exec", "-t", sandbox, "--", "true").rc == 0
    assert ak("exec", sandbox, "--", "cat", input=b"some input").stdout == "some input"
    assert ak("exec", sandbox, "--", "/nonexistent").rc == 127
    assert ak("exec", "--timeout", "1s", sandbox, "--", "sleep", "30").rc == 137
    assert ak("exec", "--detach", sandbox, "--", "sleep", "2").rc == 0
    assert ak("exec", sandbox, "--", "sh", "-c", "echo hi > /tmp/f").rc == 0
    for _ in range(4):  # whichever handler serves it
        after = sh(ak, sandbox, f'echo "[$FOO]"; pwd; id -u; umask; {fds}')
        assert after.rc == 0, after
        assert after.stdout == clean.stdout, (clean.stdout, after.stdout)
    assert clean.stdout.startswith("[]\n/\n0\n")


def test_a_burst_leaves_no_handlers_behind(ak, sandbox):
    procs = [ak.popen("exec", sandbox, "--", "sleep", "1", stdout=subprocess.PIPE)
             for _ in range(8)]
    time.sleep(0.5)
    during = agents_inside(ak, sandbox)
    for p in procs:
        p.communicate(timeout=60)
        assert p.returncode == 0
    # eight busy at once: eight handlers at least, plus PID 1
    assert during >= 9, during
    deadline = time.time() + 10
    while time.time() < deadline and agents_inside(ak, sandbox) > 3:
        time.sleep(0.5)
    assert agents_inside(ak, sandbox) <= 3


def test_killing_handlers_from_inside_costs_only_them(ak, sandbox):
    # every agent process but PID 1 and the handler of this very command
    kill_others = ("for p in /proc/[0-9]*; do n=${p#/proc/}; "
                   "if [ \"$n\" != 1 ] && [ \"$n\" != \"$PPID\" ] && "
                   "grep -q '^agentkernel-age' $p/comm 2>/dev/null; then kill -%s $n; fi; done")
    for sig in ("KILL", "USR1", "TERM", "STOP"):
        assert sh(ak, sandbox, kill_others % sig).rc == 0
        time.sleep(0.2)
        if sig == "STOP":  # a stopped free handler: the connection goes to another one, or waits
            assert sh(ak, sandbox, kill_others % "CONT").rc == 0
        for _ in range(3):
            res = ak("exec", sandbox, "--", "echo", "still here")
            assert res.rc == 0 and res.stdout == "still here\n", (sig, res)
    assert agents_inside(ak, sandbox) <= 3


def test_silent_connections_do_not_hold_up_others(ak, sandbox):
    # host processes that connect and then say nothing (stopped, stuck): each holds a handler
    # for up to the first-frame timeout (30 s); the next request must not wait behind them
    path = ak.data_dir / "run" / sandbox / "agent.sock"
    silent = []
    try:
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))
            silent.append(s)
        time.sleep(0.3)
        t0 = time.time()
        res = ak("exec", sandbox, "--", "echo", "served", timeout=20)
        assert res.rc == 0 and res.stdout == "served\n", res
        assert time.time() - t0 < 5
    finally:
        for s in silent:
            s.close()


def handlers_of(ak, name):
    """The agent's free handlers, seen from the host: PID 1's children that are agents and have
    no child (a detached command's supervisor is an agent process with its command below)."""
    pid = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())["pid"]
    kids = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = []
    for k in kids:
        try:
            if (pathlib.Path(f"/proc/{k}/comm").read_text().startswith("agentkernel-age") and
                    not pathlib.Path(f"/proc/{k}/task/{k}/children").read_text().split()):
                out.append(int(k))
        except OSError:
            pass  # gone meanwhile
    return out


def test_a_dormant_sandbox_keeps_pid1_alone_and_serves_the_next_request(ak):
    """An idle sandbox whose dormancy passed (AGENTKERNEL_DORMANT_MS, 1 s here) keeps no
    handler (PID 1 alone); the next request is still served, and handlers come back for it;
    a command that runs through the dormancy window is not cut (its handler is busy) and a
    detached one survives it."""
    env = {"AGENTKERNEL_DORMANT_MS": "1000"}
    assert ak("create", "dz", "--no-network", env=env).rc == 0
    assert ak("exec", "dz", "--", "true").rc == 0
    assert wait_for(lambda: handlers_of(ak, "dz") == [])
    res = ak("exec", "dz", "--", "echo", "awake")
    assert res.rc == 0 and res.stdout == "awake\n", res
    assert len(handlers_of(ak, "dz")) >= 1
    res = ak("exec", "dz", "--", "sh", "-c", "sleep 2.5; echo slept")  # longer than the window
    assert res.rc == 0 and res.stdout == "slept\n", res
    assert ak("exec", "--detach", "dz", "--", "sleep", "30").rc == 0
    assert wait_for(lambda: handlers_of(ak, "dz") == [])
    res = sh(ak, "dz", "pgrep -x sleep >/dev/null && echo still")
    assert res.rc == 0 and res.stdout == "still\n", res
    # many at once after a dormancy: each is served
    assert wait_for(lambda: handlers_of(ak, "dz") == [])
    procs = [ak.popen("exec", "dz", "--", "echo", "one", stdout=subprocess.PIPE)
             for _ in range(6)]
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and out == b"one\n"


def test_dormancy_off_keeps_the_handlers(ak):
    """AGENTKERNEL_DORMANT_MS=0 (what a warm pool's sandbox gets): the handlers stay."""
    assert ak("create", "dk", "--no-network", env={"AGENTKERNEL_DORMANT_MS": "0"}).rc == 0
    assert ak("exec", "dk", "--", "true").rc == 0
    time.sleep(2.5)
    # the used handler's replacement may still be on its way on a loaded host; none goes away
    assert wait_for(lambda: len(handlers_of(ak, "dk")) == 2), handlers_of(ak, "dk")


def test_a_pooled_sandbox_never_goes_dormant(ak):
    """A warm pool's sandbox is started with --dormant-ms 0 (its one run must not wait for a
    fork), whatever AGENTKERNEL_DORMANT_MS says."""
    env = {"AGENTKERNEL_DORMANT_MS": "500"}
    assert ak("run", "--fast", "--no-network", "--", "true", env=env).rc == 0
    pool = ak.data_dir  # no named sandbox here: every runtime record is a pooled one
    found = []

    def pooled_agents():
        found.clear()
        # os.walk, not rglob: a refill renames its hidden entry as it publishes it, and a
        # directory gone mid-walk is skipped there (rglob raises FileNotFoundError)
        for d, _, files in os.walk(pool):
            if "runtime.json" not in files:
                continue
            try:
                pid = json.loads(pathlib.Path(d, "runtime.json").read_text())["pid"]
                found.append(pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
            except (OSError, ValueError, KeyError):
                pass
        return found
    assert wait_for(pooled_agents, timeout=20), "no pooled sandbox made"
    for argv in found:
        assert b"--dormant-ms" in argv
        assert argv[argv.index(b"--dormant-ms") + 1] == b"0"
