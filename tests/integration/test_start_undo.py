# SPDX-License-Identifier: Apache-2.0
"""A native start that fails at any of its steps leaves nothing: no process, no cgroup, no lock
file, no run directory, no mount, no published port (src/backend/native-start.c: named steps,
one undo). Each step ends at a test point; AGENTKERNEL_TEST_HOOK=fail:<point> makes the start
fail right there, after the step has acquired what it acquires."""
import pathlib
import re
import socket

import pytest

from conftest import agent_pids, assert_no_new_agents, have, needs_root, sandbox_cgroups

pytestmark = needs_root

# Every step's point, in the order of start_steps (the last step, commit, has none: from there
# the sandbox outlives the starter).
POINTS = ["native-run-dir-made", "native-locked", "native-cgroup-created",
          "native-root-planned", "native-agent-prepared", "native-root-copied", "native-spawned",
          "native-network-ready", "native-recorded"]


def fail_at(point):
    return {"AGENTKERNEL_TEST_HOOK": f"fail:{point}"}


def injected(res, point):
    """The cgroup name the failed start reports (its uuid, 'run-' first when ephemeral)."""
    assert res.rc != 0, res
    m = re.search(rf"injected failure at '{point}' \(cgroup '([^']+)'\)", res.stderr)
    assert m, res
    return m.group(1)


def processes_naming(path):
    """Pids of processes whose command line names path (slirp4netns names its API socket in
    the sandbox's run directory): only ever what this test's sandboxes started."""
    found = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmdline = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            found.append(int(p.name))
    return found


def mounts_naming(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("point", POINTS)
def test_failed_start_of_a_kept_sandbox_leaves_nothing(ak, point):
    """A kept sandbox (network and a published port where slirp4netns is installed) fails to
    start at `point`: the record stays, stopped, and nothing of the attempt is left: no agent,
    no slirp4netns, no cgroup, no run directory, no mount, the port free. It then starts."""
    before = set(agent_pids())
    net = ["--network=full", "-p", f"{free_port()}:8000"] if have("slirp4netns") else ["--no-network"]
    assert ak("create", "--no-start", "undo", *net).rc == 0
    uuid = ak.state("undo")["uuid"]
    res = ak("start", "undo", env=fail_at(point))
    assert injected(res, point) == uuid
    assert ak.list()[0]["status"] == "stopped"
    assert_no_new_agents(before)
    assert sandbox_cgroups(uuid) == []
    run_dir = ak.data_dir / "run" / "undo"
    assert not run_dir.exists()
    assert processes_naming(run_dir) == []
    assert mounts_naming(ak.data_dir) == []
    if net[0] == "--network=full":
        assert port_free(int(net[2].split(":")[0]))
    assert ak("start", "undo").rc == 0
    assert ak("exec", "undo", "--", "echo", "ok").stdout == "ok\n"


@pytest.mark.parametrize("point", POINTS)
def test_failed_run_leaves_nothing(ak, point):
    """An ephemeral run fails at `point`: no agent, no cgroup of it, nothing in the shared
    directory of ephemeral runs (its lock file), no mount; the next run works."""
    before = set(agent_pids())
    res = ak("run", "--no-network", "--", "true", env=fail_at(point))
    cgid = injected(res, point)
    assert cgid.startswith("run-")
    assert_no_new_agents(before)
    assert sandbox_cgroups(cgid[len("run-"):]) == []
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not eph.exists() or list(eph.iterdir()) == []
    assert mounts_naming(ak.data_dir) == []
    assert ak("run", "--no-network", "--", "true").rc == 0


def test_failed_create_keeps_a_stopped_record(ak):
    """create reports the failed start and keeps the sandbox, stopped, as before the steps."""
    res = ak("create", "half", "--no-network", env=fail_at("native-spawned"))
    injected(res, "native-spawned")
    assert "created but not started" in res.stderr
    assert ak.list()[0]["status"] == "stopped"
    assert not (ak.data_dir / "run" / "half").exists()


@pytest.mark.parametrize("point", ["native-root-planned", "native-locked", "native-spawned",
                                   "native-recorded"])
def test_failed_rootless_start_leaves_nothing(rootless_owner, point):
    """The same undo when a user starts sandboxes of their own (rootless): a kept sandbox's
    and an ephemeral run's failed starts leave no agent, run directory or lock file."""
    ak = rootless_owner
    before = set(agent_pids())
    assert ak("create", "--no-start", "mine", "--no-network").rc == 0
    injected(ak("start", "mine", env=fail_at(point)), point)
    injected(ak("run", "--no-network", "--", "true", env=fail_at(point)), point)
    assert_no_new_agents(before)
    assert not (ak.data_dir / "run" / "mine").exists()
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not eph.exists() or list(eph.iterdir()) == []
    assert ak("start", "mine").rc == 0


def test_failed_cgroup_join_runs_nothing(ak):
    """The thread that puts the sandbox's PID 1 into its cgroups (while it sets itself up) fails:
    the child must not execute the agent (nothing of the sandbox's may run outside its cgroups),
    the start fails with the join's error, and nothing is left, for a run and a kept sandbox."""
    before = set(agent_pids())
    env = {"AGENTKERNEL_TEST_HOOK": "fail:runtime-cgroup-join"}
    res = ak("run", "--no-network", "--", "true", env=env)
    assert res.rc != 0 and "join cgroup" in res.stderr, res
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not eph.exists() or list(eph.iterdir()) == []
    assert ak("create", "--no-start", "nojoin", "--no-network").rc == 0
    uuid = ak.state("nojoin")["uuid"]
    res = ak("start", "nojoin", env=env)
    assert res.rc != 0 and "join cgroup" in res.stderr, res
    assert ak.list()[0]["status"] == "stopped"
    assert sandbox_cgroups(uuid) == []
    assert not (ak.data_dir / "run" / "nojoin").exists()
    assert_no_new_agents(before)
    assert mounts_naming(ak.data_dir) == []
    assert ak("start", "nojoin").rc == 0
