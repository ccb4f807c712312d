#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""vm-bench: the microvm backend beside native, on the same machine in the same run.

Rows (milliseconds; p50 and p99 where there are enough samples):
1. create -> agent ready: `agentkernel create` of a sandbox from a cached image (microvm: QEMU
   starts, the guest boots, its agent answers HELLO through the relay; native: the namespaces
   and the agent), then `remove`, repeated.
2. exec: `agentkernel exec NAME -- true` into one running sandbox of each.
3. `agentkernel run -- true` end to end (an ephemeral sandbox for one command).
4. host memory per idle sandbox (128 MB): the PSS (/proc/PID/smaps_rollup) of what runs on the host for
   it after 3 s idle: microvm, the hypervisor and the relay; native, the agent and its handlers.
5. microvm only: the guest's uptime at the first exec after `create` (kernel boot, the agent's
   setup and the first answer, in guest time).

microvm rows come once per guest kernel (docs/backends.md, "The guest kernel"): Debian's with
its modules in the initramfs (AGENTKERNEL_VM_KERNEL=debian), and the minimal kernel
(AGENTKERNEL_VM_KERNEL=minimal) when scripts/build-microvm-kernel.sh has built it. Upstream's
published Firecracker figures (KVM) are printed beside them.

Both backends use the same OCI image (tests/oci.py's busybox base, from a registry on
127.0.0.1), with --no-network. Under TCG (no usable KVM) the VM rows measure emulation: the
accelerator is printed. Usage: bench/vm-bench.py [--n N] [--boots N] [--build DIR] [--kernels debian,minimal]
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import oci  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def row(name, xs):
    print(f"  {name:<38} n={len(xs):<4} p50 {pct(xs, 50):8.1f}  p99 {pct(xs, 99):8.1f}  "
          f"mean {statistics.mean(xs):8.1f}", flush=True)


def pss_kb(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError):
                pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="exec samples per backend")
    ap.add_argument("--boots", type=int, default=8, help="create and run samples per backend")
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--kernels", default="debian,minimal",
                    help="guest kernels to measure (AGENTKERNEL_VM_KERNEL values)")
    a = ap.parse_args()
    ak_bin = str(pathlib.Path(a.build) / "src" / "agentkernel")
    if os.geteuid() != 0 or not oci.tools_present():
        sys.exit("vm-bench: needs root and umoci, skopeo, docker-registry, busybox-static")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ak-vm-bench-"))
    reg = oci.Registry(tmp / "registry")
    try:
        layout = oci.Layout(tmp / "layout")
        oci.build_base(layout, "base", tmp / "bundles")
        ref = reg.push(layout.path, "base", "test/base:1")
        env = dict(os.environ, AGENTKERNEL_DATA_DIR=str(tmp / "data"),
                   AGENTKERNEL_AGENT=str(pathlib.Path(a.build) / "src" / "agentkernel-agent"))
        reg.configure(env)

        def ak(*args, check=True, extra=None):
            p = subprocess.run([ak_bin, *args], env=dict(env, **(extra or {})),
                               capture_output=True, text=True)
            if check and p.returncode != 0:
                raise RuntimeError(f"{args}: {p.stderr}")
            return p

        def timed(*args, extra=None):
            t0 = time.perf_counter()
            ak(*args, extra=extra)
            return (time.perf_counter() - t0) * 1e3

        ak("images", "pull", ref)
        print(f"vm-bench: {time.strftime('%Y-%m-%d %H:%M:%S')}, load {os.getloadavg()}")
        print(f"  cpus {os.cpu_count()}, host kernel {os.uname().release}")
        # name: (flags, environment)
        backends = {"native": ([], {})}
        for k in a.kernels.split(","):
            extra = {"AGENTKERNEL_VM_KERNEL": k}
            doctor = ak("doctor", check=False, extra=extra).stdout
            line = next((l.strip() for l in doctor.splitlines()
                         if l.split("]", 1)[-1].split()[:1] == ["microvm"]), "microvm: ?")
            print(f"  {k}: {line}")
            if line.startswith("[ok"):
                backends[f"microvm, {k} kernel"] = (["-B", "microvm"], extra)
        # 128 MB: the size the memory goal is stated for
        common = ["--no-network", "-i", ref, "--memory", "128"]
        # warm the caches (the image's erofs, the initramfs, the KVM probe) outside the samples
        for b, (flag, extra) in backends.items():
            ak("create", "warm", *flag, *common, extra=extra)
            ak("remove", "warm", extra=extra)
        for b, (flag, extra) in backends.items():
            print(f"{b}:")
            xs, up = [], []
            for i in range(a.boots):
                xs.append(timed("create", f"c{i}", *flag, *common, extra=extra))
                if flag:
                    out = ak("exec", f"c{i}", "--", "cat", "/proc/uptime", extra=extra).stdout
                    up.append(float(out.split()[0]) * 1e3)
                ak("remove", f"c{i}", extra=extra)
            row("create -> agent ready", xs)
            if up:
                row("guest uptime at the first exec", up)
            ak("create", "idle", *flag, *common, extra=extra)
            xs = [timed("exec", "idle", "--", "true", extra=extra) for _ in range(a.n)]
            row("exec -- true", xs)
            xs = [timed("run", *flag, *common, "--", "true", extra=extra)
                  for _ in range(a.boots)]
            row("run -- true (end to end)", xs)
            time.sleep(3)
            if flag:
                rt = json.loads((tmp / "data/run/idle/runtime.json").read_text())
                pids = [rt["vmm"]["pid"], rt["relay"]["pid"]]
                what = "qemu + relay"
            else:
                st = json.loads((tmp / "data/run/idle/runtime.json").read_text())
                pids = [st["pid"]] + children(st["pid"])
                what = "agent + handlers"
            total = sum(pss_kb(p) for p in pids)
            print(f"  {'host PSS, idle (' + what + ')':<38} {total / 1024:8.1f} MiB "
                  f"({', '.join(f'{pss_kb(p) / 1024:.1f}' for p in pids)})", flush=True)
            ak("remove", "idle", extra=extra)
        print("upstream (Firecracker, KVM, published): boot 78 ms, agent ready 110 ms, "
              "exec over vsock 19 ms")
        print(f"  load at the end {os.getloadavg()}")
    finally:
        reg.stop()
        subprocess.run([ak_bin, "list"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
