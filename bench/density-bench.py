#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""density-bench: host memory per idle sandbox, agentkernel's native backend beside bubblewrap.

N sandboxes of each kind are kept alive at once, idle:
  agentkernel  `agentkernel create --no-network` (no network: bwrap gets none either), then one
               `exec true` in each, so that each holds what a used sandbox holds (PID 1 and its
               two handlers), and 3 s for a burst's extra handlers to be retired
  bwrap        `bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev sleep infinity`
               (bwrap's own process and the sleeping one)
For each: the summed PSS of the sandboxes' processes (/proc/PID/smaps_rollup) and the drop in the
host's MemAvailable (which also sees kernel memory: page tables, namespaces, cgroups, mounts),
per sandbox, and agentkernel's over bwrap's. MemAvailable moves with everything else on the host:
compare within one run. Needs root and bubblewrap.
Usage: bench/density-bench.py [--n N] [--build DIR]
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass  # gone meanwhile
    return total


def descendants(roots):
    """roots and every process below them."""
    children = {}
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def settle():
    subprocess.run(["sync"], check=False)
    time.sleep(1)


def measure_agentkernel(ak, agent, n):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ak-density-"))
    env = dict(os.environ, AGENTKERNEL_DATA_DIR=str(tmp), AGENTKERNEL_AGENT=agent)
    names = [f"d{i:03d}" for i in range(n)]
    try:
        settle()
        before = mem_available_kib()
        for name in names:
            subprocess.run([ak, "create", name, "--no-network"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([ak, "exec", name, "--", "true"], env=env, check=True)
        time.sleep(3)  # the retire window (2 s) has passed: what stays is what an idle one holds
        settle()
        after = mem_available_kib()
        agents = []
        for name in names:
            rt = (tmp / "run" / name / "runtime.json").read_text()
            agents.append(json.loads(rt)["pid"])
        procs = descendants(agents)
        return pss_kib(procs) / n, (before - after) / n, len(procs) / n
    finally:
        for name in names:
            subprocess.run([ak, "remove", name], env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def measure_bwrap(n):
    procs = []
    try:
        settle()
        before = mem_available_kib()
        for _ in range(n):
            procs.append(subprocess.Popen(
                ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                 "--proc", "/proc", "--dev", "/dev", "sleep", "infinity"]))
        time.sleep(3)
        settle()
        after = mem_available_kib()
        pids = descendants([p.pid for p in procs])
        return pss_kib(pids) / n, (before - after) / n, len(pids) / n
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--build", default=str(ROOT / "build"))
    a = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        sys.exit("density-bench: needs root and bubblewrap")
    ak = str(pathlib.Path(a.build) / "src" / "agentkernel")
    agent = str(pathlib.Path(a.build) / "src" / "agentkernel-agent")
    b = measure_bwrap(a.n)
    k = measure_agentkernel(ak, agent, a.n)
    print(f"density-bench: {a.n} idle sandboxes of each kind at once; KiB per sandbox")
    print(f"{'':34} {'processes':>9} {'PSS':>8} {'MemAvailable drop':>18}")
    print(f"{'bwrap (sleep infinity)':34} {b[2]:9.1f} {b[0]:8.0f} {b[1]:18.0f}")
    print(f"{'agentkernel native, idle':34} {k[2]:9.1f} {k[0]:8.0f} {k[1]:18.0f}")
    print(f"{'agentkernel / bwrap':34} {'':9} {k[0] / b[0]:8.2f} "
          f"{(k[1] / b[1]) if b[1] > 0 else float('nan'):18.2f}")


if __name__ == "__main__":
    main()
