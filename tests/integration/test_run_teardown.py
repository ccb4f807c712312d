# SPDX-License-Identifier: Apache-2.0
"""`run` returns as soon as the command's result is in, and its sandbox's teardown (waiting for
PID 1 to die, removing the cgroups and the lock file) finishes in a worker process after the CLI
has exited (src/backend/native-teardown.c). That teardown must complete: nothing of the sandbox
is left once it has; and a worker killed with SIGKILL before it finished leaves only what a sweep
(the next run, or gc) removes."""
import os
import pathlib
import signal

import pytest

from conftest import agent_pids, needs_root, sandbox_cgroups, wait_for

pytestmark = needs_root

_workers = []


@pytest.fixture(autouse=True)
def _no_stopped_worker_left():
    """A failed test must not leave its worker stopped: it is let go at the end."""
    yield
    while _workers:
        pid = _workers.pop()
        if state_of(pid) == "T":
            os.kill(pid, signal.SIGCONT)

HOOK = {"AGENTKERNEL_TEST_HOOK": "native-teardown-detached"}


def eph_dir(ak):
    return ak.data_dir / "run" / ".ephemeral"


def lock_files(ak):
    d = eph_dir(ak)
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def uuid_of(lock):
    assert lock.startswith("run-") and lock.endswith(".lock"), lock
    return lock[len("run-"):-len(".lock")]


def holders(path):
    """Pids of the processes holding path open: only ever the worker of this test's run (the
    path is in the test's private data directory)."""
    found = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for fd in (p / "fd").iterdir():
                if os.readlink(fd) == str(path):
                    found.append(int(p.name))
                    break
        except OSError:
            continue
    return found


def state_of(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def mounts_naming(path):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line]


def stopped_worker(ak, *args):
    """Runs `run ... -- true` with the worker stopped before its teardown: the run's uuid and
    the worker's pid."""
    before = set(agent_pids())
    res = ak("run", "--no-network", *args, "--", "true", env=HOOK)
    assert res.rc == 0, res
    locks = lock_files(ak)
    assert len(locks) == 1, locks
    (worker,) = holders(eph_dir(ak) / locks[0])
    _workers.append(worker)
    assert wait_for(lambda: state_of(worker) == "T")
    # the sandbox itself is dead already: only its cgroups and lock file wait for the worker
    assert wait_for(lambda: not set(agent_pids()) - before)
    return uuid_of(locks[0]), worker


def test_run_returns_before_teardown_and_teardown_completes(ak):
    """The run's result comes back while its cgroups still exist (the worker is stopped), and
    once the worker goes on nothing is left: no cgroup, no lock file, no agent, no mount."""
    uuid, worker = stopped_worker(ak)
    assert sandbox_cgroups(uuid) != []
    os.kill(worker, signal.SIGCONT)
    assert wait_for(lambda: sandbox_cgroups(uuid) == [] and lock_files(ak) == [])
    assert wait_for(lambda: state_of(worker) in (None, "Z"))
    assert mounts_naming(ak.data_dir) == []


def test_plain_runs_leave_nothing(ak):
    """Back-to-back runs, each torn down after its CLI exits: within moments nothing of any of
    them is left, and a concurrent `list` never shows an ephemeral run."""
    before = set(agent_pids())
    seen = set()
    for _ in range(5):
        assert ak("run", "--no-network", "--", "true").rc == 0
        seen.update(uuid_of(n) for n in lock_files(ak))
        assert ak.list() == []
    assert wait_for(lambda: lock_files(ak) == [])
    assert all(sandbox_cgroups(u) == [] for u in seen)
    assert wait_for(lambda: not set(agent_pids()) - before)
    assert mounts_naming(ak.data_dir) == []


def test_killed_worker_is_cleaned_by_gc(ak):
    """The worker is killed (SIGKILL) before its teardown: the run's cgroups and lock file stay,
    unlocked, and `gc` removes them."""
    uuid, worker = stopped_worker(ak)
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: state_of(worker) in (None, "Z"))
    assert sandbox_cgroups(uuid) != []
    assert ak("gc").rc == 0
    assert sandbox_cgroups(uuid) == []
    assert lock_files(ak) == []


def test_killed_worker_is_cleaned_by_the_next_run(ak):
    """The same, cleaned by the next run's sweep, which itself leaves nothing."""
    uuid, worker = stopped_worker(ak)
    os.kill(worker, signal.SIGKILL)
    assert wait_for(lambda: state_of(worker) in (None, "Z"))
    assert ak("run", "--no-network", "--", "true").rc == 0
    assert sandbox_cgroups(uuid) == []
    assert wait_for(lambda: lock_files(ak) == [])


def test_a_sweep_leaves_a_tearing_down_run_alone(ak):
    """While the worker holds the run's lock (stopped), a sweep (gc) must not take the run for
    a dead one: its lock file and cgroups stay until the worker removes them itself."""
    uuid, worker = stopped_worker(ak)
    assert ak("gc").rc == 0
    assert lock_files(ak) == [f"run-{uuid}.lock"]
    assert sandbox_cgroups(uuid) != []
    os.kill(worker, signal.SIGCONT)
    assert wait_for(lambda: sandbox_cgroups(uuid) == [] and lock_files(ak) == [])


def test_exit_status_and_output_are_not_held_up(ak):
    """The run's own stdout reaches end of file when the CLI exits, even with the worker
    stopped (it holds none of the CLI's fds), and the command's status is the CLI's."""
    res = ak("run", "--no-network", "--", "sh", "-c", "echo out; exit 7", env=HOOK)
    assert res.rc == 7 and res.stdout == "out\n"
    (worker,) = holders(eph_dir(ak) / lock_files(ak)[0])
    _workers.append(worker)
    assert wait_for(lambda: state_of(worker) == "T")
    fds = sorted(int(fd.name) for fd in pathlib.Path(f"/proc/{worker}/fd").iterdir())
    assert len(fds) <= 3 and 0 not in fds and 1 not in fds and 2 not in fds
    os.kill(worker, signal.SIGCONT)
    assert wait_for(lambda: lock_files(ak) == [])
