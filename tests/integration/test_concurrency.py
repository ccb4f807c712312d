# SPDX-License-Identifier: Apache-2.0
"""Many agentkernel processes at once must never lose or corrupt a sandbox."""
import json
import subprocess
import time

import pytest

from conftest import AK, needs_root

pytestmark = needs_root


def spawn(ak, *args):
    return ak.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_twenty_concurrent_creates(ak):
    names = [f"c{i:02d}" for i in range(20)]
    procs = [spawn(ak, "create", n, "--no-network") for n in names]
    for n, p in zip(names, procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (n, out, err)
    listed = ak.list()
    assert sorted(s["name"] for s in listed) == names
    assert all(s["status"] == "running" for s in listed)
    states = [ak.state(n) for n in names]
    cids = [s["vsock_cid"] for s in states]
    assert len(set(cids)) == 20  # unique CIDs (and so unique uid ranges)
    assert len({s["uuid"] for s in states}) == 20
    # each really is its own sandbox
    for n in names[:3]:
        assert ak("exec", n, "--", "true").rc == 0


def test_concurrent_creates_and_removes(ak):
    keep = [f"k{i}" for i in range(8)]
    drop = [f"d{i}" for i in range(8)]
    for n in drop:
        assert ak("create", "--no-start", n).rc == 0
    procs = [spawn(ak, "create", "--no-start", n) for n in keep]
    procs += [spawn(ak, "remove", n) for n in drop]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (out, err)
    assert ak.names() == sorted(keep)
    # every file is valid JSON with the right name
    for n in keep:
        assert ak.state(n)["name"] == n


def test_same_name_race_has_one_winner(ak):
    procs = [spawn(ak, "create", "--no-start", "same") for _ in range(10)]
    rcs = []
    for p in procs:
        p.communicate(timeout=60)
        rcs.append(p.returncode)
    assert rcs.count(0) == 1 and rcs.count(1) == 9, rcs
    assert ak.names() == ["same"]


def test_concurrent_execs_into_one_sandbox(ak, sandbox):
    procs = [spawn(ak, "exec", sandbox, "--", "sh", "-c", f"echo {i}; exit {i % 5}") for i in range(30)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == i % 5 and out == f"{i}\n".encode(), (i, out, err)


def test_concurrent_runs(ak):
    procs = [spawn(ak, "run", "--no-network", "--", "sh", "-c", f"echo {i}") for i in range(10)]
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out == f"{i}\n".encode(), (out, err)
