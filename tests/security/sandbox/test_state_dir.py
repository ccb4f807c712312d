# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox writes agentkernel's state (issue 12, finding 4, from inside).

A sandbox whose workspace contains the data directory (`-d` of the directory above it, as
`cd ~ && agentkernel run --mount-cwd` would do) would write records and runtime files there, and
the host reads them back on its next `stop`, `remove` or `start`. Such a workspace is now refused
at create and at every start (it contains agentkernel's own directory: the records, the API key,
the approved configs). The attacks below check that refusal, then write what that sandbox's root
would have written, as the id it would have written with, so the second line holds too: what is
written is believed no further than it can prove: no host process signalled, no foreign cgroup
touched, no host directory mounted into the next sandbox.

Since a workspace is idmapped to its directory's owner (finding 1), the attack runs from the two
seats where such a workspace exists (the `seat` fixture):
- root: root's data directory lies in root's own directory (`cd /root && agentkernel run
  --mount-cwd`; here the test's directory). That directory is root's, so the sandbox works
  there as an unprivileged id and cannot even enter the 0700 data directory: the tests show
  that the writes fail, and that the commands that would read them back still harm nothing.
  (The other way for root to get there, a data directory below a directory some user owns and
  mounts, is refused by the data directory checks themselves: tests/security/local_user/
  test_state_dir.py::test_data_dir_below_the_attackers_directory_is_refused.)
- owner: a user runs agentkernel rootless with the workspace being their home, which holds
  their data directory. The sandbox's root is that user, so it writes the records for real:
  only the host's checks of what it reads back stand in the way. Where the owner's sandboxes
  have no cgroups (rootless without a delegated subtree), being a pid namespace init of the
  caller's is not enough: the pid must also be the agent started for that sandbox (its --uuid),
  so the two cases that name another init (a neighbour's agent, the caller's own container)
  must hold there too.
"""
import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import PROJECT_OWNER_UID, needs_root

pytestmark = needs_root

OWNER = PROJECT_OWNER_UID


def start_time(pid):
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def boot_id():
    return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()


class Seat:
    """kind ("root" or "owner"), the caller's Ak, the workspace holding its data directory, and
    the prefix that runs a command as the caller."""

    def __init__(self, kind, ak, workspace):
        self.kind, self.ak, self.workspace = kind, ak, workspace
        self.prefix = ak.prefix

    def wrote(self, res):
        """Whether the sandbox's write went through: it must for the owner (it is the data
        directory's owner there), and must not for root (not even the directory is open to
        it)."""
        if self.kind == "root":
            assert res.rc != 0 and "Permission denied" in res.stderr, res
            return False
        assert res.rc == 0, res
        return True


@pytest.fixture(params=["root", "owner"])
def seat(request, tmp_path):
    if request.param == "root":
        ak = request.getfixturevalue("ak")
        assert ak.data_dir.parent == tmp_path
        return Seat("root", ak, tmp_path)
    ak = request.getfixturevalue("rootless_owner")
    return Seat("owner", ak, ak.data_dir.parent)


@pytest.fixture
def victim(seat):
    """A host process of the caller's own (one it could signal) that nothing may kill."""
    p = subprocess.Popen(seat.prefix + ["sleep", "600"])
    for _ in range(200):  # setpriv execs sleep: its start time is the one to forge
        try:
            if pathlib.Path(f"/proc/{p.pid}/comm").read_text().strip() == "sleep":
                break
        except OSError:
            pass
        time.sleep(0.01)
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def ns_victim(seat):
    """PID 1 of a user and pid namespace the caller made (what a sandbox's init looks like from
    outside, and what a rootless container, a browser's or a flatpak's sandbox is), but no
    sandbox's: (the unshare process, its child)."""
    p = subprocess.Popen(seat.prefix + ["unshare", "-Upf", "--map-root-user", "sleep", "600"])
    child = None
    for _ in range(200):
        try:
            kids = pathlib.Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
            if kids and pathlib.Path(f"/proc/{kids[0]}/comm").read_text().strip() == "sleep":
                child = int(kids[0])
                break
        except OSError:
            pass
        time.sleep(0.01)
    assert child, "unshare did not start its child"
    yield p, child
    try:
        os.kill(child, 9)  # ours: PID 1 of the namespace this fixture made
    except ProcessLookupError:  # killed by the attack
        pass
    p.wait()


NOBODY_PREFIX = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def attacker(seat):
    """A stopped sandbox 'target' whose files the attack rewrites. A sandbox with the directory
    above the data directory at /workspace is refused at create (the workspace contains
    agentkernel's own directory); the attack is then what such a sandbox's root would have
    written, as the id it would have written with (the owner: the caller itself; root: an
    unprivileged id), so the host's checks of what it reads back are still put to the test."""
    ak = seat.ak
    assert ak("create", "target", "--no-network").rc == 0
    assert ak("stop", "target").rc == 0
    res = ak("create", "evil", "--no-network", "-d", str(seat.workspace))
    assert res.rc != 0 and "contains agentkernel's own directory" in res.stderr, res
    assert "evil" not in [s["name"] for s in ak.list()]
    prefix = seat.prefix if seat.kind == "owner" else NOBODY_PREFIX

    def write(script):
        p = subprocess.run(prefix + ["sh", "-c", script], cwd=ak.data_dir, capture_output=True,
                           text=True)
        p.rc = p.returncode
        return p
    return write


def test_sandbox_forged_runtime_does_not_kill_a_host_process(seat, attacker, victim):
    """From inside, the sandbox writes run/target/runtime.json naming a host process of the
    caller (its pid, start time and this boot's id are easy to learn or guess). Must hold:
    stopping and removing 'target' leaves the process alive."""
    ak = seat.ak
    uuid = ak.state("target")["uuid"]
    doc = json.dumps({"pid": victim.pid, "start_time": start_time(victim.pid),
                      "boot_id": boot_id(), "uuid": uuid, "cgroup_mode": 0, "cgroups": []})
    res = attacker(f"mkdir -p run/target && printf '%s' '{doc}' > run/target/runtime.json "
                   "&& chmod 600 run/target/runtime.json")
    if not seat.wrote(res):
        assert not (ak.data_dir / "run" / "target" / "runtime.json").exists()
    ak("stop", "target")
    ak("remove", "target")
    time.sleep(0.1)
    assert victim.poll() is None


def test_sandbox_forged_runtime_does_not_kill_a_namespace_init(seat, attacker, ns_victim,
                                                              request):
    """The same with a host process that looks like a sandbox's init: PID 1 of a pid namespace
    in a user namespace the caller made, but no sandbox's (a rootless container, a browser's
    sandbox). Must hold: stopping and removing 'target' leaves it alive."""
    ak = seat.ak
    parent, child = ns_victim
    doc = json.dumps({"pid": child, "start_time": start_time(child), "boot_id": boot_id(),
                      "uuid": ak.state("target")["uuid"], "cgroup_mode": 0, "cgroups": []})
    res = attacker(f"mkdir -p run/target && printf '%s' '{doc}' > run/target/runtime.json "
                   "&& chmod 600 run/target/runtime.json")
    if not seat.wrote(res):
        assert not (ak.data_dir / "run" / "target" / "runtime.json").exists()
    ak("stop", "target")
    ak("remove", "target")
    time.sleep(0.1)
    assert parent.poll() is None and pathlib.Path(f"/proc/{child}").exists()


def test_sandbox_forged_workspace_is_refused_at_the_next_start(seat, attacker):
    """From inside, the sandbox rewrites 'target''s record to mount the host's / read-write at
    /workspace. Must hold: starting 'target' is refused and says why (or, where the sandbox
    could not write the record, starts as recorded)."""
    ak = seat.ak
    before = ak.state_file("target").read_bytes()
    res = attacker("sed -i 's/\"x_agentkernel\": {/\"x_agentkernel\": {\"mount_cwd\": true, "
                   "\"work_dir\": \"\\/\", /' sandboxes/target.json && cat sandboxes/target.json")
    if not seat.wrote(res):
        assert ak.state_file("target").read_bytes() == before
        assert ak("start", "target").rc == 0
        out = ak("exec", "target", "--", "sh", "-c", "ls /workspace 2>&1; true")
        assert "etc" not in out.stdout.split(), out
        return
    assert '"work_dir": "/"' in res.stdout, res
    res = ak("start", "target")
    assert res.rc != 0 and "workspace '/'" in res.stderr, res


def test_sandbox_forged_cgroups_are_not_destroyed(seat, attacker, request):
    """From inside, the sandbox points 'target''s runtime file at its own running neighbour's
    cgroups and agent (it could name any). Must hold: removing 'target' leaves the neighbour
    running. (Rootless without cgroups there are none to name: the neighbour's agent, a pid
    namespace init of the caller's, is what the forgery names.)"""
    ak = seat.ak
    assert ak("create", "neighbour", "--no-network").rc == 0
    real = json.loads((ak.data_dir / "run" / "neighbour" / "runtime.json").read_text())
    doc = json.dumps({"pid": real["pid"], "start_time": real["start_time"],
                      "uuid": ak.state("target")["uuid"], "cgroup_mode": real["cgroup_mode"],
                      "cgroups": real["cgroups"]})
    res = attacker(f"mkdir -p run/target && printf '%s' '{doc}' > run/target/runtime.json")
    if not seat.wrote(res):
        assert not (ak.data_dir / "run" / "target" / "runtime.json").exists()
    ak("remove", "target")
    assert ak("exec", "neighbour", "--", "true").rc == 0
