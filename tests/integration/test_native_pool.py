# SPDX-License-Identifier: Apache-2.0
"""run --fast on the native backend (src/backend/native-pool.c): sandboxes started ahead per
configuration, each used once, destroyed after its run by its keeper, refilled behind it, and
cleared by `pool clear`."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import agent_pids, needs_root, sandbox_cgroups

pytestmark = needs_root

FAST = ["run", "--fast", "--no-network"]
TAIL = re.compile(r"^[0-9a-f]{12}$")
WHO = "tr '\\0' ' ' </proc/1/cmdline"  # the sandbox's init: its --uuid names it


def eph(ak):
    return ak.data_dir / "run" / ".ephemeral"


def pools(ak):
    d = eph(ak)
    return sorted(p for p in d.iterdir() if p.name.startswith("np-")) if d.exists() else []


def entries(ak):
    """The ready entries of every pool: {tail: pool dir}. A pool removed while it is listed (a
    refill evicting it) has none."""
    found = {}
    for p in pools(ak):
        try:
            found.update({e.name: p for e in p.iterdir() if TAIL.match(e.name)})
        except FileNotFoundError:
            pass
    return found


def wait_entries(ak, n, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(entries(ak)) >= n:
            return entries(ak)
        time.sleep(0.05)
    raise AssertionError(f"the pool has {len(entries(ak))} entries, not {n}")


def uuid_of(output):
    m = re.search(r"--uuid ([0-9a-f-]{36})", output)
    assert m, output
    return m.group(1)


def fill(ak, n=2, *extra):
    """A first --fast run starts its own sandbox and has the pool filled behind it."""
    res = ak(*FAST, *extra, "--", "true")
    assert res.rc == 0, res
    return wait_entries(ak, n)


def test_fast_run_takes_a_pooled_sandbox(ak):
    """A --fast run after the pool is filled runs in one of the pooled sandboxes (its init's uuid
    ends in an entry's name), which leaves the pool."""
    pooled = fill(ak)
    res = ak(*FAST, "--", "sh", "-c", WHO)
    assert res.rc == 0, res
    tail = uuid_of(res.stdout)[-12:]
    assert tail in pooled
    assert tail not in entries(ak)


def test_used_once_second_run_gets_a_fresh_sandbox(ak):
    """A file written by run 1 (in /tmp, /root, /) is absent in run 2, and run 2's init is
    another sandbox's."""
    fill(ak)
    one = ak(*FAST, "--", "sh", "-c",
             f"echo x >/tmp/mark; echo x >/root/mark; echo x >/mark 2>/dev/null; {WHO}")
    assert one.rc == 0, one
    wait_entries(ak, 1)
    two = ak(*FAST, "--", "sh", "-c", f"ls /tmp/mark /root/mark /mark 2>&1; {WHO}")
    assert uuid_of(one.stdout) != uuid_of(two.stdout)
    assert "No such file" in two.stdout and two.stdout.count("No such file") == 3, two


def test_exit_codes_and_streams_match_a_plain_run(ak):
    """Exit status, stdout, stderr and stdin are what a plain run gives."""
    fill(ak)
    cmd = ["sh", "-c", "cat; echo out; echo err >&2; exit 7"]
    for argv in (FAST, ["run", "--no-network"]):
        res = ak(*argv, "--", *cmd, input=b"from stdin\n")
        assert res.rc == 7, res
        assert res.out == b"from stdin\nout\n", res
        assert res.err == b"err\n", res
    assert ak(*FAST, "--", "false").rc == 1
    assert ak(*FAST, "--", "/nonexistent").rc == ak("run", "--no-network", "--", "/nonexistent").rc


def test_configurations_never_share_a_pool(ak):
    """Runs that differ in environment or profile get pools of their own, and each run sees its
    own configuration."""
    fill(ak, 2, "-e", "A=1")
    first = set(entries(ak))
    fill(ak, 4, "-e", "A=2")
    assert len(pools(ak)) == 2
    res = ak(*FAST, "-e", "A=2", "--", "sh", "-c", f"echo A=$A; {WHO}")
    assert "A=2" in res.stdout, res
    assert uuid_of(res.stdout)[-12:] not in first
    res = ak(*FAST, "-e", "A=1", "--", "sh", "-c", f"echo A=$A; {WHO}")
    assert "A=1" in res.stdout, res
    assert uuid_of(res.stdout)[-12:] in first
    res = ak(*FAST, "-p", "restrictive", "--", "sh", "-c", WHO)
    assert res.rc == 0, res
    assert uuid_of(res.stdout)[-12:] not in first


def test_refill_after_a_run(ak):
    """The claimed sandbox's keeper tops the pool up again, with new sandboxes."""
    before = fill(ak)
    used = set()
    for _ in range(2):
        res = ak(*FAST, "--", "sh", "-c", WHO)
        assert res.rc == 0, res
        used.add(uuid_of(res.stdout)[-12:])
    # a run may take an entry the first run's refill made (then one of before stays): what a
    # run used never comes back, and the pool is full again with at least one new sandbox
    after = wait_entries(ak, 2)
    assert not set(after) & used and set(after) - set(before), (before, used, after)


def test_pool_clear(ak):
    """pool clear removes the idle sandboxes (their agents, cgroups and directories) and the
    pool itself."""
    fill(ak)
    res = ak("pool", "clear", "-B", "native")
    assert res.rc == 0, res
    assert "native: removed 2 idle sandboxes" in res.stdout, res
    assert pools(ak) == []
    assert ak("pool", "clear", "-B", "native").stdout.strip() == "native: removed 0 idle sandboxes"


def test_clean_all_clears_native_pools(ak):
    """clean --all empties the native pool too."""
    fill(ak)
    res = ak("clean", "--all")
    assert res.rc == 0, res
    assert pools(ak) == []


def _runtime_pid(entry):
    import json
    return json.loads((entry / "runtime.json").read_text())["pid"]


def _our_keepers(ak):
    """The keepers of this test's pools: processes named ak-pool-keeper holding a file of its
    data directory."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if open(f"/proc/{p}/comm").read().strip() != "ak-pool-keeper":
                continue
            fds = os.listdir(f"/proc/{p}/fd")
            if any(os.readlink(f"/proc/{p}/fd/{f}").startswith(str(ak.data_dir)) for f in fds):
                found.append(int(p))
        except OSError:
            continue
    return found


def _wait_keepers(ak, n):
    """This test's n keepers, once each has named itself (just after its fork)."""
    deadline = time.time() + 10
    while len(_our_keepers(ak)) < n and time.time() < deadline:
        time.sleep(0.02)
    keepers = _our_keepers(ak)
    assert len(keepers) == n
    return keepers


def test_dead_pooled_sandbox_is_skipped(ak):
    """A pooled sandbox whose init died, and one whose keeper died, are never handed to a run:
    the run gets a working sandbox and both are destroyed."""
    pooled = fill(ak)
    keepers = _wait_keepers(ak, 2)
    for k in keepers:
        os.kill(k, signal.SIGKILL)
    tails = sorted(pooled)
    os.kill(_runtime_pid(pooled[tails[0]] / tails[0]), signal.SIGKILL)
    res = ak(*FAST, "--", "sh", "-c", f"echo ok; {WHO}")
    assert res.rc == 0 and "ok" in res.stdout, res
    assert uuid_of(res.stdout)[-12:] not in pooled
    for t in tails:
        assert not (pooled[t] / t).exists()


def test_killed_run_leaves_nothing(ak):
    """A --fast run killed (SIGKILL) while its command runs: its sandbox is ended and removed by
    its keeper (no agent, no claimed directory)."""
    fill(ak)
    before = set(agent_pids())
    p = ak.popen(*FAST, "--", "sh", "-c", "echo up; exec sleep 300", stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"up\n"
    claimed = [d for d in eph(ak).iterdir() if d.name.startswith("npc-")]
    assert len(claimed) == 1
    init = _runtime_pid(claimed[0])
    p.kill()
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and (claimed[0].exists() or os.path.exists(f"/proc/{init}")):
        time.sleep(0.05)
    assert not claimed[0].exists()
    assert not os.path.exists(f"/proc/{init}") or \
        open(f"/proc/{init}/stat").read().split(")")[1].split()[0] == "Z"
    # what runs now besides what ran before: only the refilled pool's sandboxes
    wait_entries(ak, 2)
    time.sleep(0.3)
    pooled = {_runtime_pid(p / t) for t, p in entries(ak).items()}

    def ppid(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])

    stray = [a for a in set(agent_pids()) - before if a not in pooled and ppid(a) not in pooled]
    assert not stray, (stray, pooled)


def test_not_pooled_configurations_still_run(ak):
    """--fast with what is not pooled (proxy mode, ports, a workspace) runs the ordinary way."""
    res = ak("run", "--fast", "--network", "proxy", "--", "echo", "proxied")
    assert res.rc == 0 and res.stdout == "proxied\n", res
    assert pools(ak) == []


def test_pool_list_and_doctor_show_native_pools(ak):
    """pool list (text and --json) and doctor show each native pool with its idle sandboxes."""
    fill(ak)
    fill(ak, 4, "-p", "restrictive")
    import json
    pl = json.loads(ak("pool", "list", "--json", check=True).out)
    assert sorted((p["profile"], p["network"], p["idle"]) for p in pl) == \
        [("moderate", "none", 2), ("restrictive", "none", 2)]
    assert all(p["backend"] == "native" and p["target"] == 2 for p in pl)
    text = ak("pool", "list", check=True).stdout
    assert "restrictive" in text and "2/2" in text, text
    doc = ak("doctor")
    assert "native warm pools (run --fast): 2, 4 idle sandboxes" in doc.stdout, doc
    ak("pool", "clear", "-B", "native", check=True)
    assert "no native pools" in ak("pool", "list", check=True).stdout


@pytest.mark.skipif(not __import__("shutil").which("slirp4netns"), reason="needs slirp4netns")
def test_full_network_is_pooled(ak):
    """--network full pools too: the pooled sandbox has its interface and resolver."""
    assert ak("run", "--fast", "--network", "full", "--", "true").rc == 0
    wait_entries(ak, 2)
    pooled = entries(ak)
    res = ak("run", "--fast", "--network", "full", "--", "sh", "-c",
             f"cat /proc/net/dev; cat /etc/resolv.conf; {WHO}")
    assert res.rc == 0, res
    assert "tap0" in res.stdout or "eth0" in res.stdout, res
    assert "nameserver" in res.stdout
    assert uuid_of(res.stdout)[-12:] in pooled


def test_bounds_evict_the_least_recently_used_pool(ak):
    """At most 8 idle sandboxes in all (2 per configuration): a fifth configuration's refill
    removes the pool refilled least recently, never goes beyond the bound."""
    for i in range(1, 5):
        fill(ak, 2 * i, "-e", f"A={i}")
        time.sleep(0.05)
    first = {p.name for p in pools(ak)}
    assert len(first) == 4 and len(entries(ak)) == 8
    oldest = min(pools(ak), key=lambda p: (p / "key").stat().st_mtime_ns).name
    assert ak(*FAST, "-e", "A=5", "--", "true").rc == 0
    deadline = time.time() + 20
    while time.time() < deadline and oldest in {p.name for p in pools(ak)}:
        time.sleep(0.05)
    wait_entries(ak, 8)
    names = {p.name for p in pools(ak)}
    assert oldest not in names and len(names) == 4
    assert len(entries(ak)) <= 8


def test_orphaned_claim_is_ended_by_gc(ak):
    """A claimed sandbox whose run and keeper both died (an npc- directory with a free lock) is
    ended by the next sweep: gc runs one."""
    fill(ak)
    p = ak.popen(*FAST, "--", "sh", "-c", "echo up; exec sleep 300", stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"up\n"
    claimed = [d for d in eph(ak).iterdir() if d.name.startswith("npc-")]
    assert len(claimed) == 1
    init = _runtime_pid(claimed[0])
    # the claimed sandbox's keeper and the other entry's (the refill comes after the run); a
    # keeper names itself just after its fork
    deadline = time.time() + 10
    while time.time() < deadline and len(_our_keepers(ak)) < 2:
        time.sleep(0.02)
    assert len(_our_keepers(ak)) == 2, _our_keepers(ak)
    for k in _our_keepers(ak):
        os.kill(k, signal.SIGKILL)
    p.kill()
    p.wait()
    time.sleep(0.2)
    assert claimed[0].exists() and os.path.exists(f"/proc/{init}")
    assert ak("gc").rc == 0
    assert not claimed[0].exists()
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{init}") and \
            open(f"/proc/{init}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{init}") or \
        open(f"/proc/{init}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_deleted_data_dir_ends_idle_pooled_sandboxes(ak):
    """The data directory deleted under idle pooled sandboxes (`rm -rf`): their keepers notice,
    end each init and remove its cgroups, and exit; nothing of the pool runs on."""
    pooled = fill(ak)
    keepers = _wait_keepers(ak, 2)
    inits = [_runtime_pid(p / t) for t, p in pooled.items()]
    uuids = [uuid_of(open(f"/proc/{pid}/cmdline").read().replace("\0", " ")) for pid in inits]
    assert all(sandbox_cgroups(u) for u in uuids), uuids
    subprocess.run(["rm", "-rf", str(ak.data_dir)], check=True)

    def alive(pid):
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 15
    while time.time() < deadline and (any(alive(p) for p in keepers + inits) or
                                      any(sandbox_cgroups(u) for u in uuids)):
        time.sleep(0.05)
    assert not [p for p in keepers + inits if alive(p)]
    assert not [c for u in uuids for c in sandbox_cgroups(u)]
