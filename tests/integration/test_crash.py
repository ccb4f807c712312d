# SPDX-License-Identifier: Apache-2.0
"""A CLI killed with SIGKILL halfway through start leaves a state that list reports honestly and
remove cleans up completely (the fixture then checks that nothing at all is left)."""
import os
import signal
import subprocess
import time

import pytest

from conftest import agent_pids, needs_root, sandbox_cgroups, wait_for

pytestmark = needs_root

POINTS = ["native-cgroup-created", "native-spawned", "native-recorded"]


def wait_stopped(pid, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "T":
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("network", ["--no-network", "--network"])
def test_kill9_during_create_then_remove(ak, point, network):
    before = set(agent_pids())
    p = ak.popen("create", "crashy", network, env={"AGENTKERNEL_TEST_HOOK": point},
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_stopped(p.pid), f"never reached {point}"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    uuid = ak.state("crashy")["uuid"]
    # the sandbox's processes die with the starter that never committed them
    deadline = time.time() + 10
    while time.time() < deadline and set(agent_pids()) - before:
        time.sleep(0.05)
    assert not set(agent_pids()) - before
    [info] = ak.list()
    assert info["name"] == "crashy" and info["status"] == "stopped"
    res = ak("remove", "crashy")
    assert res.rc == 0, res
    assert sandbox_cgroups(uuid) == []


@pytest.mark.parametrize("point", POINTS)
def test_kill9_during_start_then_start_again(ak, point):
    assert ak("create", "--no-start", "again", "--no-network").rc == 0
    p = ak.popen("start", "again", env={"AGENTKERNEL_TEST_HOOK": point},
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_stopped(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # its init dies with the starter that never committed it (a moment later)
    assert wait_for(lambda: ak.list()[0]["status"] == "stopped"), ak.list()
    # a later start cleans the leftovers first and works
    assert ak("start", "again").rc == 0
    assert ak("exec", "again", "--", "echo", "ok").stdout == "ok\n"


def test_kill9_during_run_leaves_nothing(ak):
    before = set(agent_pids())
    p = ak.popen("run", "--no-network", "--", "sleep", "100",
                 env={"AGENTKERNEL_TEST_HOOK": "native-spawned"},
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_stopped(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and set(agent_pids()) - before:
        time.sleep(0.05)
    assert not set(agent_pids()) - before
    # the next run sweeps the empty cgroup the killed one left (and its own teardown, which
    # finishes after it has exited, removes its own lock file within moments)
    assert ak("run", "--no-network", "--", "true").rc == 0
    eph = ak.data_dir / "run" / ".ephemeral"
    deadline = time.time() + 5
    while time.time() < deadline and list(eph.iterdir()):
        time.sleep(0.02)
    assert list(eph.iterdir()) == []


def test_kill9_of_exec_cli_leaves_sandbox_usable(ak, sandbox):
    p = ak.popen("exec", sandbox, "--", "sleep", "100", stdout=subprocess.PIPE)
    time.sleep(0.5)
    p.kill()
    p.wait()
    assert ak("exec", sandbox, "--", "echo", "fine").stdout == "fine\n"


def test_corrupt_state_file_is_reported_and_removable(ak):
    assert ak("create", "good", "--no-network").rc == 0
    (ak.data_dir / "sandboxes" / "broken.json").write_text('{"name": "broken", "image": ')
    res = ak("list")
    assert res.rc == 0 and "good" in res.stdout
    assert "skipping invalid state file" in res.stderr and "broken.json" in res.stderr
    assert ak("remove", "broken").rc == 0
    assert not (ak.data_dir / "sandboxes" / "broken.json").exists()
    assert ak.names() == ["good"]
