#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""engine-bench: the docker and podman backends beside the engines' own CLIs, in the same run.

For each engine (started here, as the tests do: tests/engines.py):
  run   `agentkernel run -B ENGINE -i IMG --no-network -- /bin/true`, and with --fast (a
        container from the warm pool; the pool refills in the background between rounds)
        against `docker|podman run --rm --network none IMG /bin/true`
  exec  `agentkernel exec BOX -- /bin/true` into a running sandbox (through our agent)
        against `docker|podman exec agentkernel-BOX /bin/true`
Rounds are interleaved; medians and ratios are printed. A run returns its exit status before its
container is removed (in the background): the bench waits, untimed, for that removal before the
next row, so that the engine's CLI is not timed while it is busy with our removal. Needs root,
docker.io, podman, runc, busybox-static. Usage: bench/engine-bench.py [--n N] [--build DIR] [--engines docker,podman]
"""
import argparse
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
import engines  # noqa: E402


def timed(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def removed(data, timeout=30):
    """Waits until no ephemeral run of ours is left (its directory goes after its container)."""
    eph = pathlib.Path(data) / "run" / ".ephemeral"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not eph.is_dir() or not [d for d in eph.iterdir() if "-agentkernel-" in d.name]:
            return
        time.sleep(0.005)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--engines", default="docker,podman")
    a = ap.parse_args()
    ak = str(pathlib.Path(a.build) / "src" / "agentkernel")
    agent = str(pathlib.Path(a.build) / "src" / "agentkernel-agent")
    print(f"engine-bench: {a.n} rounds per row, interleaved; milliseconds")
    print(f"{'':52} {'p50':>8} {'p90':>8} {'ratio':>8}")
    for kind in a.engines.split(","):
        if not engines.available(kind):
            print(f"{kind}: not installed, skipped")
            continue
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"ak-engine-bench-{kind}-"))
        eng = (engines.Docker if kind == "docker" else engines.Podman)(tmp / "engine")
        env = dict(os.environ, **eng.env, AGENTKERNEL_DATA_DIR=str(tmp / "data"),
                   AGENTKERNEL_AGENT=agent)
        # the engine's own CLI: docker talks to DOCKER_HOST; podman runs locally on its store
        own = ["docker"] if kind == "docker" else eng.base
        own_env = dict(os.environ, **eng.env) if kind == "docker" else eng.penv
        try:
            subprocess.run([ak, "create", "box", "-B", kind, "-i", eng.image, "--no-network"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            rows = {
                f"agentkernel run -B {kind}": ([ak, "run", "-B", kind, "-i", eng.image,
                                                "--no-network", "--", "/bin/true"], env),
                f"{kind} run --rm": (own + ["run", "--rm", "--network", "none", eng.image,
                                            "/bin/true"], own_env),
                f"agentkernel run --fast -B {kind} (warm pool)": (
                    [ak, "run", "--fast", "-B", kind, "-i", eng.image, "--no-network", "--",
                     "/bin/true"], env),
                f"{kind} run --rm ": (own + ["run", "--rm", "--network", "none", eng.image,
                                             "/bin/true"], own_env),
                f"agentkernel exec (agent in the container)": (
                    [ak, "exec", "box", "--", "/bin/true"], env),
                f"{kind} exec": (own + ["exec", "agentkernel-box", "/bin/true"], own_env),
            }
            times = {k: [] for k in rows}
            for _ in range(2):  # warm-up
                for cmd, e in rows.values():
                    timed(cmd, e)
                    removed(tmp / "data")
            for _ in range(a.n):
                for k, (cmd, e) in rows.items():
                    times[k].append(timed(cmd, e))
                    removed(tmp / "data")
            names = list(rows)
            for i, k in enumerate(names):
                v = sorted(times[k])
                peer = sorted(times[names[i | 1]])
                p50 = statistics.median(v)
                print(f"{k:52} {p50:8.1f} {v[int(0.9 * (len(v) - 1))]:8.1f} "
                      f"{p50 / statistics.median(peer):8.2f}")
            subprocess.run([ak, "remove", "box"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run([ak, "pool", "clear"], env=env, stdout=subprocess.DEVNULL)
        finally:
            eng.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
