#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""slab-bench: the kernel memory an idle native sandbox costs, per slab cache, build against build.

For each build given (an agentkernel binary; its agent beside it), rounds times, interleaved:
N sandboxes made with `create --no-network` and one `exec true` each, left until their agents
are dormant (AGENTKERNEL_DORMANT_MS=1000), then /proc/slabinfo and /proc/meminfo are read again.
Before each reading the dentry and inode caches are dropped (vm.drop_caches=2: what stays is
pinned, as a sandbox's mounts are) so that the deltas are what the sandboxes hold. Printed per
build: the growth per sandbox of meminfo's Slab, Percpu, PageTables, KernelStack, the summed
per-cache growth (objects in use x object size), the filesystems (superblocks) one sandbox
holds, and the caches that grew most, side by side. Kernel counters are global: other work on
the host shows in them, so compare builds within one invocation (interleaved), and read the
per-cache rows rather than the totals. Every sandbox made is removed (clean --all --force)
after each measurement, on an error or Ctrl-C too.

Why superblocks: each registers a memcg-aware shrinker, and every memory cgroup of the host
keeps a 520-byte unit (kmalloc-1k) per 64 shrinker ids up to the highest id ever used, never
shrunk (mm/shrinker.c). A sandbox brings a memory cgroup and its superblocks, so at N sandboxes
that is ~(N + other memory cgroups) x superblocks per sandbox / 64 KiB per sandbox; on a host
whose peak is behind it, a new memory cgroup costs (peak superblocks / 64) KiB, which the
"memcg" line measures (mkdir of 20 empty v1 memory cgroups).

Needs root. Usage: bench/slab-bench.py [--n N] [--rounds R] BINARY [BINARY...]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchutil

MEMINFO = ("Slab", "SUnreclaim", "Percpu", "PageTables", "KernelStack")


def meminfo():
    return benchutil.meminfo_kib(MEMINFO)


def slabinfo():
    """{cache: (objects in use, object size)}"""
    out = {}
    with open("/proc/slabinfo") as f:
        for line in f.readlines()[2:]:
            w = line.split()
            out[w[0]] = (int(w[1]), int(w[3]))
    return out


def settle():
    subprocess.run(["sync"], check=False)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    time.sleep(2)


def own_superblocks(pid):
    host = {line.split()[2] for line in open("/proc/self/mountinfo")}
    devs = {line.split()[2] for line in open(f"/proc/{pid}/mountinfo")} - host
    st = os.stat(f"/proc/{pid}/fd/5")  # the agent's state directory
    return len(devs | {f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"}) + 1  # + mqueue


def memcg_cost_kib():
    """What one new (empty) v1 memory cgroup costs in slab here: 20 made, measured, removed."""
    base = "/sys/fs/cgroup/memory"
    if not os.path.exists(f"{base}/cgroup.procs"):
        return None
    names = [f"{base}/slab-bench-{os.getpid()}-{i}" for i in range(20)]
    a = slabinfo()
    made = []
    try:
        for n in names:
            os.mkdir(n)
            made.append(n)
        b = slabinfo()
    finally:
        for n in made:
            os.rmdir(n)
    return sum((b[c][0] - a.get(c, (0, 0))[0]) * b[c][1] for c in b) / 1024 / len(names)


def measure(ak, n):
    tmp = tempfile.mkdtemp(prefix="slab-bench-")
    env = dict(os.environ, AGENTKERNEL_DATA_DIR=tmp, AGENTKERNEL_DORMANT_MS="1000")
    lock_dir = None
    try:
        settle()
        m0, s0 = meminfo(), slabinfo()
        for i in range(n):
            name = f"s{i:04d}"
            subprocess.run([ak, "create", name, "--no-network"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([ak, "exec", name, "--", "true"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        time.sleep(3)  # dormant: PID 1 alone
        settle()
        m1, s1 = meminfo(), slabinfo()
        pid = json.load(open(f"{tmp}/run/s0000/runtime.json"))["pid"]
        sbs = own_superblocks(pid)
        lock_dir = os.path.dirname(os.path.dirname(os.readlink(f"/proc/{pid}/fd/6")))
    finally:
        subprocess.run([ak, "clean", "--all", "--force"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        left = subprocess.run([ak, "list"], env=env, capture_output=True,
                              text=True).stdout.strip().splitlines()[1:]
        if left:
            print(f"slab-bench: sandboxes left in {tmp}: {left}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", tmp], check=False)
            if lock_dir and lock_dir.startswith("/run/agentkernel/"):
                subprocess.run(["rm", "-rf", lock_dir], check=False)  # its /etc snapshot
    caches = {c: (s1[c][0] - s0.get(c, (0, 0))[0]) * s1[c][1] / 1024 / n for c in s1}
    return {"meminfo": {k: (m1[k] - m0[k]) / n for k in MEMINFO}, "caches": caches,
            "superblocks": sbs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("builds", nargs="+")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("slab-bench: needs root")

    def on_term(*_):
        raise KeyboardInterrupt  # the measurement's cleanup runs
    signal.signal(signal.SIGTERM, on_term)
    runs = {b: [] for b in a.builds}
    cost = memcg_cost_kib()
    for r in range(a.rounds):
        for b in a.builds:
            load = open("/proc/loadavg").read().split()[0]
            runs[b].append(measure(b, a.n))
            print(f"round {r + 1} {b}: load {load}", file=sys.stderr)
    print(f"slab-bench: {a.n} dormant sandboxes per build, {a.rounds} rounds interleaved; "
          f"KiB per sandbox (mean of rounds)")
    if cost is not None:
        print(f"a new empty v1 memory cgroup costs {cost:.0f} KiB of slab here")
    for i, b in enumerate(a.builds):
        rs = runs[b]
        mi = {k: statistics.mean(x["meminfo"][k] for x in rs) for k in MEMINFO}
        tot = [sum(x["caches"].values()) for x in rs]
        print(f"[{i}] {b}: superblocks {rs[0]['superblocks']}, per-cache sum "
              + " / ".join(f"{t:.0f}" for t in tot) + ", meminfo "
              + ", ".join(f"{k} {v:.0f}" for k, v in mi.items()))
    avg = {b: {} for b in a.builds}
    for b in a.builds:
        for c in set().union(*(x["caches"] for x in runs[b])):
            avg[b][c] = statistics.mean(x["caches"].get(c, 0) for x in runs[b])
    allc = set().union(*avg.values())
    top = sorted(allc, key=lambda c: -max(avg[b].get(c, 0) for b in a.builds))[:a.top]
    print(f"{'cache':28s}" + "".join(f"{'[' + str(i) + ']':>9s}" for i in range(len(a.builds))))
    for c in top:
        print(f"{c:28s}" + "".join(f"{avg[b].get(c, 0):9.1f}" for b in a.builds))


if __name__ == "__main__":
    main()
