# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox writes agentkernel's state (issue 12, finding 4, from inside).

A sandbox whose workspace contains the data directory (here: `-d` of the directory above it, as
`cd ~ && agentkernel run --mount-cwd` would do) can write records and runtime files there, and
the host reads them back on its next `stop`, `remove` or `start`. Must hold: what it writes is
believed no further than it can prove: no host process signalled, no foreign cgroup touched, no
host directory mounted into the next sandbox.
"""
import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import needs_root

pytestmark = needs_root


def start_time(pid):
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def boot_id():
    return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@pytest.fixture
def victim():
    p = subprocess.Popen(["sleep", "600"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def attacker(ak, tmp_path):
    """A kept sandbox with the test's directory (the data directory's parent) at /workspace,
    and a stopped sandbox 'target' whose files it will rewrite."""
    assert ak("create", "target", "--no-network").rc == 0
    assert ak("stop", "target").rc == 0
    assert ak("create", "evil", "--no-network", "-d", str(tmp_path)).rc == 0
    rel = os.path.relpath(ak.data_dir, tmp_path)
    return lambda script: ak("exec", "evil", "--", "sh", "-c",
                             f"cd /workspace/{rel} && {script}")


def test_sandbox_forged_runtime_does_not_kill_a_host_process(ak, attacker, victim):
    """From inside, the sandbox writes run/target/runtime.json naming a host process (its pid,
    start time and this boot's id are easy to learn or guess). Must hold: stopping and
    removing 'target' leaves the process alive."""
    uuid = ak.state("target")["uuid"]
    doc = json.dumps({"pid": victim.pid, "start_time": start_time(victim.pid),
                      "boot_id": boot_id(), "uuid": uuid, "cgroup_mode": 0, "cgroups": []})
    res = attacker(f"mkdir -p run/target && printf '%s' '{doc}' > run/target/runtime.json "
                   "&& chmod 600 run/target/runtime.json")
    assert res.rc == 0, res  # the write itself is the sandbox's to make: it owns the workspace
    ak("stop", "target")
    ak("remove", "target")
    time.sleep(0.1)
    assert victim.poll() is None


def test_sandbox_forged_workspace_is_refused_at_the_next_start(ak, attacker):
    """From inside, the sandbox rewrites 'target''s record to mount the host's / read-write at
    /workspace. Must hold: starting 'target' is refused and says why."""
    res = attacker("sed -i 's/\"x_agentkernel\": {/\"x_agentkernel\": {\"mount_cwd\": true, "
                   "\"work_dir\": \"\\/\", /' sandboxes/target.json && cat sandboxes/target.json")
    assert res.rc == 0 and '"work_dir": "/"' in res.stdout, res
    res = ak("start", "target")
    assert res.rc != 0 and "workspace '/'" in res.stderr, res


def test_sandbox_forged_cgroups_are_not_destroyed(ak, attacker):
    """From inside, the sandbox points 'target''s runtime file at its own running neighbour's
    cgroups (it could name any). Must hold: removing 'target' leaves the neighbour running."""
    assert ak("create", "neighbour", "--no-network").rc == 0
    real = json.loads((ak.data_dir / "run" / "neighbour" / "runtime.json").read_text())
    doc = json.dumps({"pid": real["pid"], "start_time": real["start_time"],
                      "uuid": ak.state("target")["uuid"], "cgroup_mode": real["cgroup_mode"],
                      "cgroups": real["cgroups"]})
    res = attacker(f"mkdir -p run/target && printf '%s' '{doc}' > run/target/runtime.json")
    assert res.rc == 0, res
    ak("remove", "target")
    assert ak("exec", "neighbour", "--", "true").rc == 0
