# SPDX-License-Identifier: Apache-2.0
"""A command in a pooled native sandbox (run --fast, src/backend/native-pool.c) against the runs
after it: each pooled sandbox serves one run and is destroyed with everything in it, so nothing
run 1 leaves (processes, files) reaches run 2, and the pool's own files are out of its reach."""
import os
import re
import time

import pytest

from conftest import needs_root

pytestmark = needs_root

FAST = ["run", "--fast", "--no-network"]
TAIL = re.compile(r"^[0-9a-f]{12}$")
MARK = "31415926"


def eph(ak):
    return ak.data_dir / "run" / ".ephemeral"


def entries(ak):
    d = eph(ak)
    if not d.exists():
        return {}
    return {e.name: p for p in d.iterdir() if p.name.startswith("np-")
            for e in p.iterdir() if TAIL.match(e.name)}


def fill(ak, n=2):
    assert ak(*FAST, "--", "true").rc == 0
    deadline = time.time() + 20
    while time.time() < deadline and len(entries(ak)) < n:
        time.sleep(0.05)
    assert len(entries(ak)) >= n


def uuid(res):
    return re.search(r"--uuid ([0-9a-f-]{36})", res.stdout).group(1)


def host_procs_with(mark):
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if mark.encode() in open(f"/proc/{p}/cmdline", "rb").read():
                    found.append(int(p))
            except OSError:
                pass
    return found


def test_background_process_does_not_outlive_its_run(ak):
    """Run 1 starts a detached daemon (setsid, double fork, SIGHUP ignored) and returns: the
    daemon dies with run 1's sandbox on the host, and run 2 sees no trace of it."""
    fill(ak)
    one = ak(*FAST, "--", "sh", "-c",
             f"setsid sh -c 'trap \"\" HUP; (sleep {MARK} &) ; exit 0' </dev/null >/dev/null 2>&1;"
             f" sleep 0.1; ps -eo args | grep -c '^sleep {MARK}'; tr '\\0' ' ' </proc/1/cmdline")
    assert one.rc == 0 and one.stdout.startswith("1\n"), one
    deadline = time.time() + 10
    while time.time() < deadline and host_procs_with(f"sleep\0{MARK}"):
        time.sleep(0.05)
    assert not host_procs_with(f"sleep\0{MARK}")
    two = ak(*FAST, "--", "sh", "-c",
             f"ps -eo args | grep -c '^sleep {MARK}'; tr '\\0' ' ' </proc/1/cmdline")
    assert two.stdout.startswith("0\n"), two
    assert uuid(one) != uuid(two)


def test_files_do_not_reach_the_next_run(ak):
    """Whatever run 1 writes wherever it can write (/tmp, /var/tmp, /dev/shm, /root, /run) is
    gone in run 2."""
    fill(ak)
    places = ["/tmp/m", "/var/tmp/m", "/dev/shm/m", "/root/m", "/run/m", "/m"]
    w = "; ".join(f"echo planted >{p} 2>/dev/null" for p in places)
    one = ak(*FAST, "--", "sh", "-c", w + "; tr '\\0' ' ' </proc/1/cmdline")
    assert one.rc == 0, one
    fill(ak, 1)
    two = ak(*FAST, "--", "sh", "-c",
             "cat " + " ".join(places) + " 2>/dev/null; echo; tr '\\0' ' ' </proc/1/cmdline")
    assert "planted" not in two.stdout, two
    assert uuid(one) != uuid(two)


def test_pool_files_are_out_of_reach(ak):
    """A pooled sandbox's command cannot see the pool (its directory, the other entries' sockets
    and keys): the data directory is hidden from it."""
    fill(ak)
    e = eph(ak)
    res = ak(*FAST, "--", "sh", "-c", f"ls -a {e} 2>&1; ls {ak.data_dir} 2>&1; echo end")
    assert res.rc == 0, res
    for t in entries(ak):
        assert t not in res.stdout, res
    assert "np-" not in res.stdout and "keeper.sock" not in res.stdout, res


def test_killing_everything_in_run1_spares_the_pool(ak):
    """Run 1 kills every process it can see (kill -9 -1): the other pooled sandboxes and their
    keepers are out of its pid namespace, and the next run still gets a pooled sandbox."""
    fill(ak)
    before = set(entries(ak))
    ak(*FAST, "--", "sh", "-c", "kill -9 -1; echo survived")
    time.sleep(0.2)
    remaining = set(entries(ak))
    assert remaining & before, (before, remaining)
    two = ak(*FAST, "--", "sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; echo; echo ok")
    assert two.rc == 0 and "ok" in two.stdout, two
