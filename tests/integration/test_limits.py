# SPDX-License-Identifier: Apache-2.0
"""Resource limits and PID 1 duties: reaping, fork bombs, memory hogs, CPU."""
import os
import time

import pytest

from conftest import needs_root

pytestmark = needs_root
PY = "/usr/bin/python3"


def zombies(ak, box):
    res = ak("exec", box, "--", "sh", "-c", "ps -e -o stat= | grep -c '^Z' || true")
    return int(res.stdout.strip())


def busy(ak, box):
    """Processes in the sandbox other than the agent and this probe."""
    res = ak("exec", box, "--", "ps", "-e", "-o", "stat=,comm=")
    lines = [l.split(None, 1) for l in res.stdout.splitlines()]
    return [l for l in lines if l[1] not in ("agentkernel-age", "ps")]


def test_thousand_orphans_leave_no_zombies(ak, sandbox):
    # 1,000 children whose parent exits at once: they are orphaned to PID 1, which must reap them
    code = ("import os, time\n"
            "for i in range(1000):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(0.5)\n"
            "        os._exit(0)\n"
            "os._exit(0)\n")
    res = ak("exec", sandbox, "--", PY, "-c", code)
    assert res.rc == 0, res
    deadline = time.time() + 30
    while time.time() < deadline and busy(ak, sandbox):
        time.sleep(0.2)
    assert busy(ak, sandbox) == []  # no orphan left running, no zombie left unreaped


def test_fork_bomb_is_contained(ak):
    assert ak("create", "bomb", "--no-network").rc == 0  # moderate: pids.max 1024
    uuid = ak.state("bomb")["uuid"]
    t0 = time.time()
    # the classic: every process starts two more, forever; the exec's timeout ends it
    res = ak("exec", "--timeout", "4s", "bomb", "--", "sh", "-c", "b() { b | b & }; b; sleep 30", timeout=120)
    assert res.rc == 137, res
    assert "Cannot fork" in res.stderr, res  # forks were refused by the pids limit
    for p in (f"/sys/fs/cgroup/pids/agentkernel/{uuid}/pids.max",
              f"/sys/fs/cgroup/agentkernel/{uuid}/pids.max"):
        if os.path.exists(p):
            assert open(p).read().strip() == "1024"
    # the host is fine, and the sandbox works again once the bomb's processes are gone
    deadline = time.time() + 60
    while time.time() < deadline:
        r = ak("exec", "bomb", "--", "echo", "alive")
        if r.rc == 0 and not busy(ak, "bomb"):
            break
        time.sleep(0.2)
    assert busy(ak, "bomb") == []
    assert ak("exec", "bomb", "--", "echo", "alive").stdout == "alive\n"
    assert time.time() - t0 < 90


def test_memory_hog_killed_inside_agent_survives(ak):
    assert ak("create", "hog", "--no-network", "--memory", "128").rc == 0
    code = ("chunks = []\n"
            "while True:\n"
            "    chunks.append(bytearray(16 << 20))\n")
    res = ak("exec", "hog", "--", PY, "-c", code, timeout=120)
    assert res.rc == 137, res  # the OOM killer took the hog
    # the agent (PID 1) and the sandbox survive; so does this host process
    res = ak("exec", "hog", "--", "sh", "-c", "echo still-here; cat /proc/1/comm")
    assert res.rc == 0 and res.stdout == "still-here\nagentkernel-age\n", res
    [info] = ak.list()
    assert info["status"] == "running"


def test_memory_limit_applies_to_the_cgroup(ak):
    assert ak("create", "mem", "--no-network", "--memory", "200").rc == 0
    uuid = ak.state("mem")["uuid"]
    for p in (f"/sys/fs/cgroup/agentkernel/{uuid}/memory.max",
              f"/sys/fs/cgroup/memory/agentkernel/{uuid}/memory.limit_in_bytes"):
        if os.path.exists(p):
            assert int(open(p).read()) == 200 << 20
            break
    else:
        pytest.fail("no memory cgroup for the sandbox")


def test_cpu_limit(ak):
    assert ak("create", "cpu", "--no-network", "--cpus", "1", "--profile", "restrictive").rc == 0
    uuid = ak.state("cpu")["uuid"]
    v2 = f"/sys/fs/cgroup/agentkernel/{uuid}/cpu.max"
    v1 = f"/sys/fs/cgroup/cpu/agentkernel/{uuid}/cpu.cfs_quota_us"
    if os.path.exists(v2):
        assert open(v2).read().split()[0] == "50000"
    else:
        assert int(open(v1).read()) == 50000  # restrictive: half of one CPU
    # a busy loop gets no more than its share
    code = ("import time, os\n"
            "t=time.time()\n"
            "while time.time()-t < 2: pass\n"
            "u=os.times()\n"
            "print(u.user+u.system)\n")
    res = ak("exec", "cpu", "--", PY, "-c", code)
    assert res.rc == 0
    assert float(res.stdout) < 1.4, res  # ~1.0 s of CPU in 2 s of wall time
