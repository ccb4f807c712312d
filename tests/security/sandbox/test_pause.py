# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox against `pause` (native: the cgroup freezer; issue 17).

The sandbox forks as fast as it can while it is being paused (on cgroup v1 its processes are moved
into a freezer cgroup: a child forked by a process not yet moved must not stay outside), tries to
thaw or un-freeze itself through cgroupfs, and tries to keep a process out of the freeze by
moving it to another cgroup. A pause that leaves something running, or that a sandbox can undo,
would let it go on working (and spending the user's budget) while the user believes it stopped.

What must hold: once `pause` says "Paused", nothing in the sandbox runs (a counter written by a
fork storm stays still), nothing in it can write a freezer or cgroup knob, and removing the
paused sandbox leaves nothing behind (the ak fixture checks processes and cgroups)."""
import json
import pathlib
import time

from conftest import needs_root

pytestmark = needs_root

# every loop round forks a short-lived child that appends one line
STORM = ("while :; do ( echo x >> /tmp/n ) & ( : ) & sleep 0.001 2>/dev/null || :; done")


def paused_file(ak, name, path):
    pid = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())["pid"]
    return pathlib.Path(f"/proc/{pid}/root{path}")


def test_fork_storm_is_frozen_whole(ak, sandbox):
    """Three fork storms run while `pause` moves and freezes: after it returns, the file the
    storms append to grows no more (before the fix there was no pause: the MCP tool said "not
    available")."""
    for _ in range(3):
        assert ak("exec", "-d", sandbox, "--", "sh", "-c", STORM).rc == 0
    time.sleep(0.5)
    res = ak("pause", sandbox)
    assert res.rc == 0, res
    f = paused_file(ak, sandbox, "/tmp/n")
    time.sleep(0.2)  # a write in flight when the last process froze may land
    before = f.stat().st_size
    time.sleep(1.0)
    assert f.stat().st_size == before, "a process of the paused sandbox kept running"
    assert ak("list", "--json").rc == 0
    assert ak("resume", sandbox).rc == 0
    time.sleep(0.3)
    assert f.stat().st_size > before
    assert ak("pause", sandbox).rc == 0
    assert ak("remove", sandbox).rc == 0


CGROUP_WRITES = r'''
import glob, os
hits = []
cands = ["/sys/fs/cgroup/cgroup.freeze", "/sys/fs/cgroup/freezer/freezer.state",
         "/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/freezer/cgroup.procs"]
cands += glob.glob("/sys/fs/cgroup/**/cgroup.freeze", recursive=True)
cands += glob.glob("/sys/fs/cgroup/**/freezer.state", recursive=True)
cands += glob.glob("/sys/fs/cgroup/**/cgroup.procs", recursive=True)
for p in cands:
    for v in ("0", "THAWED", str(os.getpid())):
        try:
            with open(p, "w") as f:
                f.write(v)
            hits.append(p)
        except OSError:
            pass
for d in ("/sys/fs/cgroup/escape", "/sys/fs/cgroup/freezer/escape"):
    try:
        os.mkdir(d)
        hits.append(d)
    except OSError:
        pass
print("HITS", sorted(set(hits)))
'''


def test_sandbox_cannot_write_freezer_or_cgroup_knobs(ak, sandbox):
    """From inside, every cgroup.freeze, freezer.state and cgroup.procs the sandbox can name is
    unwritable, and it cannot make a cgroup: it can neither thaw itself later nor move a process
    out of the cgroup that pause freezes."""
    res = ak("exec", sandbox, "--", "sh", "-c",
             "command -v python3 >/dev/null || exit 42; exec python3 -c \"$0\"", CGROUP_WRITES)
    if res.rc == 42:
        res = ak("exec", sandbox, "--", "sh", "-c",
                 "for p in /sys/fs/cgroup/cgroup.freeze /sys/fs/cgroup/freezer/freezer.state "
                 "/sys/fs/cgroup/cgroup.procs; do echo 0 > $p 2>/dev/null && echo HIT $p; done; "
                 "mkdir /sys/fs/cgroup/escape 2>/dev/null && echo HIT mkdir; echo HITS []")
    assert res.rc == 0, res
    assert "HITS []" in res.stdout and "HIT " not in res.stdout, res.stdout


def test_paused_sandbox_cannot_be_reached_through_its_agent(ak, sandbox, tmp_path):
    """A paused sandbox's agent is frozen: every host request that needs it is refused at once
    rather than left hanging (a request stuck on a frozen agent would hold the sandbox's lock
    and the caller for ever)."""
    assert ak("pause", sandbox).rc == 0
    t0 = time.time()
    for argv in (("exec", sandbox, "--", "true"), ("attach", sandbox),
                 ("exec-logs", sandbox, "0123456789abcdef"), ("export", sandbox, "-o",
                                                                 str(tmp_path / "x.tar"))):
        res = ak(*argv, timeout=30)
        assert res.rc != 0, (argv, res)
    assert time.time() - t0 < 15
    assert not (tmp_path / "x.tar").exists() or (tmp_path / "x.tar").stat().st_size == 0
