#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""density-bench: host memory per idle sandbox, agentkernel's native backend beside bubblewrap.

N sandboxes of each kind are kept alive at once, idle:
  agentkernel  `agentkernel create --no-network` (no network: bwrap gets none either), then one
               `exec true` in each, so that each holds what a used sandbox holds (PID 1 and its
               two handlers), and 3 s for a burst's extra handlers to be retired; then again
               once the agents are dormant (no request for a minute: their handlers retired,
               PID 1 alone; --dormant-wait, 0 skips it)
  bwrap        `bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev sleep infinity`
               (bwrap's own process and the sleeping one)
For each: the summed PSS of the sandboxes' processes (/proc/PID/smaps_rollup) and the drop in the
host's MemAvailable (which also sees kernel memory: page tables, namespaces, cgroups, mounts),
per sandbox, and agentkernel's over bwrap's. MemAvailable moves with everything else on the host:
compare within one run.

How it scales with N (issue 18's density goal: 2,000 idle sandboxes at <= 0.5 MiB of
MemAvailable each, `create` p99 of the last creates <= 1.5x that of the first ones, `list` of all
in <= 100 ms): each `create` is timed; the p99 of the first and of the last window of creates
(N/20 each, at least 10) are printed with their ratio, then `list` (and `list --json`) of all N,
median of 5. bwrap's start is timed the same way (to its sandbox's process running), beside it.
Every sandbox the bench made is removed at the end, on an error or Ctrl-C/SIGTERM too.
Needs root and bubblewrap.
Usage: bench/density-bench.py [--n N] [--build DIR] [--dormant-wait SECONDS]
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchutil

ROOT = pathlib.Path(__file__).resolve().parents[1]


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


MEMINFO_PARTS = ("PageTables", "KernelStack", "Slab", "Percpu", "AnonPages")


def meminfo_kib():
    """The /proc/meminfo fields where an idle sandbox's kernel memory shows (KiB)."""
    return benchutil.meminfo_kib(MEMINFO_PARTS)


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


def window(n):
    return max(10, n // 20)


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def timed_ms(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure_agentkernel(ak, agent, n, dormant_wait):
    """[(PSS, MemAvailable drop, processes) per sandbox: idle, then dormant], create times (ms,
    in order), list and list --json of all (median ms of 5)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ak-density-"))
    env = dict(os.environ, AGENTKERNEL_DATA_DIR=str(tmp), AGENTKERNEL_AGENT=agent)
    names = [f"d{i:04d}" for i in range(n)]
    made = []
    creates = []
    try:
        settle()
        before = mem_available_kib()
        parts_before = meminfo_kib()
        for name in names:
            made.append(name)  # before: an interrupted create may have made it
            creates.append(timed_ms(lambda: subprocess.run(
                [ak, "create", name, "--no-network"], env=env, check=True,
                stdout=subprocess.DEVNULL)))
            subprocess.run([ak, "exec", name, "--", "true"], env=env, check=True)
        last = time.monotonic()
        time.sleep(3)  # the retire window (2 s) has passed: what stays is what an idle one holds
        settle()
        after = mem_available_kib()
        parts = meminfo_kib()
        agents = []
        for name in names:
            rt = (tmp / "run" / name / "runtime.json").read_text()
            agents.append(json.loads(rt)["pid"])
        procs = descendants(agents)
        share = {k: (parts[k] - parts_before[k]) / n for k in MEMINFO_PARTS}
        rows = [(pss_kib(procs) / n, (before - after) / n, len(procs) / n, share)]
        if dormant_wait > 0:
            # the agent's default dormancy (a minute without a request) has passed for all
            time.sleep(max(0.0, last + dormant_wait - time.monotonic()))
            settle()
            after = mem_available_kib()
            parts = meminfo_kib()
            procs = descendants(agents)
            share = {k: (parts[k] - parts_before[k]) / n for k in MEMINFO_PARTS}
            rows.append((pss_kib(procs) / n, (before - after) / n, len(procs) / n, share))
        lists = {}
        for args in (["list"], ["list", "--json"]):
            t = []
            for _ in range(5):
                t.append(timed_ms(lambda: subprocess.run(
                    [ak] + args, env=env, check=True, stdout=subprocess.DEVNULL)))
            lists[" ".join(args)] = statistics.median(t)
        return rows, creates, lists
    finally:
        cleanup_agentkernel(ak, env, made, tmp)


def cleanup_agentkernel(ak, env, made, tmp):
    # not interruptible: every sandbox made goes, whatever signal comes meanwhile
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for i in range(0, len(made), 50):
            procs = [subprocess.Popen([ak, "remove", name], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for name in made[i:i + 50]]
            for p in procs:
                p.wait()
        left = subprocess.run([ak, "list", "--json"], env=env, capture_output=True, text=True)
        try:
            for s in json.loads(left.stdout or "[]"):
                subprocess.run([ak, "remove", s["name"]], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        except ValueError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, old)


def bwrap_start():
    """Starts an idle bwrap sandbox and waits until its `sleep` runs (bwrap's --info-fd names
    the sandbox's process: no scan of /proc, whose cost would grow with N)."""
    r, w = os.pipe()
    p = subprocess.Popen(
        ["bwrap", "--unshare-all", "--die-with-parent", "--info-fd", str(w), "--ro-bind", "/",
         "/", "--proc", "/proc", "--dev", "/dev", "sleep", "infinity"], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r) as f:
        info = json.loads(f.read() or "{}")
    child = info.get("child-pid")
    deadline = time.time() + 30
    while child and time.time() < deadline:
        # the sandbox's PID 1 (bwrap, with --unshare-pid) or the command below it
        try:
            kids = pathlib.Path(f"/proc/{child}/task/{child}/children").read_text().split()
            for c in [child] + [int(k) for k in kids]:
                if pathlib.Path(f"/proc/{c}/comm").read_text().strip() == "sleep":
                    return p
        except OSError:
            pass
        time.sleep(0.0002)
    p.kill()
    p.wait()
    raise RuntimeError("bwrap's sandbox did not start")


def measure_bwrap(n):
    procs = []
    starts = []
    try:
        settle()
        before = mem_available_kib()
        parts_before = meminfo_kib()
        for _ in range(n):
            t0 = time.perf_counter()
            procs.append(bwrap_start())
            starts.append((time.perf_counter() - t0) * 1000)
        time.sleep(3)
        settle()
        after = mem_available_kib()
        parts = meminfo_kib()
        pids = descendants([p.pid for p in procs])
        share = {k: (parts[k] - parts_before[k]) / n for k in MEMINFO_PARTS}
        return (pss_kib(pids) / n, (before - after) / n, len(pids) / n, share), starts
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--dormant-wait", type=float, default=62.0,
                    help="seconds after the last exec before the dormant row (0: none)")
    a = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        sys.exit("density-bench: needs root and bubblewrap")
    ak = str(pathlib.Path(a.build) / "src" / "agentkernel")
    agent = str(pathlib.Path(a.build) / "src" / "agentkernel-agent")
    # SIGTERM as Ctrl-C: the finally blocks remove what was made
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    b, bstarts = measure_bwrap(a.n)
    ks, creates, lists = measure_agentkernel(ak, agent, a.n, a.dormant_wait)
    w = window(a.n)
    print(f"density-bench: {a.n} idle sandboxes of each kind at once; KiB per sandbox")
    print(f"{'':34} {'processes':>9} {'PSS':>8} {'MemAvailable drop':>18}")
    print(f"{'bwrap (sleep infinity)':34} {b[2]:9.1f} {b[0]:8.0f} {b[1]:18.0f}")
    print("  meminfo growth per sandbox (KiB): " +
          ", ".join(f"{name} {v:.0f}" for name, v in b[3].items()))
    for label, k in zip(("agentkernel native, idle (3 s)", "agentkernel native, dormant"), ks):
        print(f"{label:34} {k[2]:9.1f} {k[0]:8.0f} {k[1]:18.0f}")
        print(f"{'  / bwrap':34} {'':9} {k[0] / b[0]:8.2f} "
              f"{(k[1] / b[1]) if b[1] > 0 else float('nan'):18.2f}")
        print("  meminfo growth per sandbox (KiB): " +
              ", ".join(f"{name} {v:.0f}" for name, v in k[3].items()))
    print(f"start as N grows (ms; first and last {w} of {a.n}): "
          f"{'p50 first':>9} {'p99 first':>9} {'p50 last':>9} {'p99 last':>9} "
          f"{'p99 last/first':>15}")
    for label, v in (("bwrap (to its sleep running)", bstarts),
                     ("agentkernel create --no-network", creates)):
        f, l = v[:w], v[-w:]
        print(f"{label:47} {statistics.median(f):9.1f} {p99(f):9.1f} {statistics.median(l):9.1f} "
              f"{p99(l):9.1f} {p99(l) / p99(f):15.2f}")
    for k_, v in lists.items():
        print(f"agentkernel {k_} of {a.n}: {v:.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
