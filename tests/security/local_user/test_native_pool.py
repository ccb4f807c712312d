# SPDX-License-Identifier: Apache-2.0
"""The native warm pool (run --fast, src/backend/native-pool.c) against what another local user
could have put in its place: every file the claim reads back is trusted only as a private file of
the caller's with the exact key, so a planted, altered, foreign or linked entry is never handed to
a run, and nothing it names is ever signalled."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import ATTACKER_UID, needs_root

pytestmark = needs_root

FAST = ["run", "--fast", "--no-network"]
TAIL = re.compile(r"^[0-9a-f]{12}$")
WHO = "tr '\\0' ' ' </proc/1/cmdline; echo; echo real"


def eph(ak):
    return ak.data_dir / "run" / ".ephemeral"


def pools(ak):
    d = eph(ak)
    return sorted(p for p in d.iterdir() if p.name.startswith("np-")) if d.exists() else []


def entries(ak):
    return {e.name: p for p in pools(ak) for e in p.iterdir() if TAIL.match(e.name)}


def fill(ak):
    assert ak(*FAST, "--", "true").rc == 0
    deadline = time.time() + 20
    while time.time() < deadline and len(entries(ak)) < 2:
        time.sleep(0.05)
    e = entries(ak)
    assert len(e) == 2, e
    return e


def used(res):
    """The entry name (uuid tail) of the sandbox a run ran in."""
    assert res.rc == 0 and "real" in res.stdout, res
    return re.search(r"--uuid ([0-9a-f-]{36})", res.stdout).group(1)[-12:]


def run_fast(ak):
    return used(ak(*FAST, "--", "sh", "-c", WHO))


def test_entry_key_owned_by_another_user_is_refused(ak):
    """An entry whose key file another user owns (planted there) is never claimed."""
    pooled = fill(ak)
    for t, p in pooled.items():
        os.chown(p / t / "key", ATTACKER_UID, ATTACKER_UID)
    assert run_fast(ak) not in pooled


def test_entry_key_writable_by_others_is_refused(ak):
    """An entry whose key file others may write is never claimed."""
    pooled = fill(ak)
    for t, p in pooled.items():
        os.chmod(p / t / "key", 0o666)
    assert run_fast(ak) not in pooled


def test_altered_entry_key_is_refused(ak):
    """An entry whose key is not byte for byte the run's (another configuration's, or edited) is
    never claimed: the hash in the pool's name is not enough."""
    pooled = fill(ak)
    for t, p in pooled.items():
        with open(p / t / "key", "a") as f:
            f.write("env 5:A=B=C\n")
    assert run_fast(ak) not in pooled


def test_altered_pool_key_refuses_the_whole_pool(ak):
    """A pool whose own key differs from the run's: none of its entries is claimed, and no refill
    adds to it."""
    pooled = fill(ak)
    pool = next(iter(pooled.values()))
    (pool / "key").write_text("agentkernel native pool 1\nids 0:0\n")
    assert run_fast(ak) not in pooled
    time.sleep(0.5)
    assert set(entries(ak)) == set(pooled)


def test_symlinked_lock_is_refused(ak, tmp_path):
    """An entry whose lock is a symbolic link (to a file someone else holds, or controls) is never
    claimed, and the link's target is left as it was."""
    pooled = fill(ak)
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    for t, p in pooled.items():
        (p / t / "lock").unlink()
        (p / t / "lock").symlink_to(target)
    assert run_fast(ak) not in pooled
    assert target.read_text() == "untouched"


def test_symlinked_entry_is_refused(ak, tmp_path):
    """An entry that is a symbolic link to a directory that looks like one is never claimed."""
    pooled = fill(ak)
    t, p = next(iter(pooled.items()))
    other = [x for x in pooled if x != t][0]
    # the real other entry, renamed away, linked under a fresh name
    hidden = p / ".moved"
    os.rename(p / other, hidden)
    os.symlink(hidden, p / "aaaaaaaaaaaa")
    os.chown(p / t / "key", ATTACKER_UID, ATTACKER_UID)  # and the only real one refused too
    got = run_fast(ak)
    assert got not in pooled and got != "aaaaaaaaaaaa"
    os.unlink(p / "aaaaaaaaaaaa")
    os.rename(hidden, p / other)


def test_pool_dir_owned_by_another_user_is_refused(ak):
    """A pool directory another user owns (planted in the caller's ephemeral directory) is never
    claimed from, nor refilled."""
    pooled = fill(ak)
    pool = next(iter(pooled.values()))
    os.chown(pool, ATTACKER_UID, ATTACKER_UID)
    try:
        assert run_fast(ak) not in pooled
        time.sleep(0.3)
        assert set(entries(ak)) == set(pooled)
    finally:
        os.chown(pool, 0, 0)


def test_forged_runtime_record_signals_nothing(ak):
    """An entry whose runtime.json names another process (a live one of the caller's, with its
    true start time) is not claimed, and that process is never signalled."""
    pooled = fill(ak)
    victim = subprocess.Popen(["sleep", "300"])
    try:
        start = open(f"/proc/{victim.pid}/stat").read().rsplit(")", 1)[1].split()[19]
        for t, p in pooled.items():
            rt = json.loads((p / t / "runtime.json").read_text())
            rt["pid"] = victim.pid
            rt["start_time"] = int(start)
            (p / t / "runtime.json").write_text(json.dumps(rt))
            os.chmod(p / t / "runtime.json", 0o600)
        assert run_fast(ak) not in pooled
        time.sleep(0.3)
        assert victim.poll() is None, "a forged record got a host process signalled"
        assert ak("pool", "clear", "-B", "native").rc == 0
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_agent_socket_of_another_user_is_refused(ak, tmp_path):
    """An entry whose agent.sock is a socket another user bound (a fake agent that would answer
    with output of its own) is never connected to."""
    pooled = fill(ak)
    listeners = []
    for t, p in pooled.items():
        path = p / t / "agent.sock"
        path.unlink()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        here = os.getcwd()
        os.chdir(path.parent)  # bound by its name: a test directory's path may be too long
        try:
            s.bind(path.name)
        finally:
            os.chdir(here)
        s.listen(4)
        s.setblocking(False)
        os.chown(path, ATTACKER_UID, ATTACKER_UID)
        listeners.append(s)
    try:
        assert run_fast(ak) not in pooled
        for s in listeners:
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        for s in listeners:
            s.close()


def test_another_users_pool_is_never_claimed(ak, local_user):
    """Another user plants a complete pool, with the exact key the caller's next run will use, in
    the caller's ephemeral directory (made writable for them), with a fake agent and keeper
    listening: a run refuses the writable directory, and once it is private again, never takes
    the foreign pool; the fake agent is never connected to."""
    pooled = fill(ak)
    pool = next(iter(pooled.values()))
    key = (pool / "key").read_text()
    assert ak("pool", "clear", "-B", "native").rc == 0
    e = eph(ak)
    os.chmod(e, 0o1777)
    for d in (e.parent, e.parent.parent):
        os.chmod(d, os.stat(d).st_mode | 0o011)
    plant = f"""
import os, socket, sys, time
pool = {str(pool)!r}
os.mkdir(pool, 0o700)
open(pool + "/key", "w").write({key!r})
entry = pool + "/bbbbbbbbbbbb"
os.mkdir(entry, 0o700)
open(entry + "/key", "w").write({key!r})
open(entry + "/lock", "w").close()
socks = []
os.chdir(entry)  # bound by name: a test directory's path may be too long for sun_path
for name in ("agent.sock", "keeper.sock"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    s.listen(4)
    socks.append(s)
print("ready", flush=True)
s = socks[0]
s.settimeout(20)
try:
    c, _ = s.accept()
    print("CONNECTED", flush=True)
except socket.timeout:
    print("no one came", flush=True)
"""
    p = local_user.popen(["/usr/bin/python3", "-c", plant], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n", p.stderr.read()
        # a run refuses a directory others can write outright
        res = ak(*FAST, "--", "sh", "-c", WHO)
        assert res.rc != 0 and "writable" in res.stderr, res
        # the plant outlives its window: the ephemeral directory is private again
        os.chmod(e, 0o700)
        assert used(ak(*FAST, "--", "sh", "-c", WHO)) != "bbbbbbbbbbbb"
    finally:
        p.kill()
        out, _ = p.communicate()
        subprocess.run(["rm", "-rf", str(pool)])
        os.chmod(e, 0o700)
    assert b"CONNECTED" not in out
