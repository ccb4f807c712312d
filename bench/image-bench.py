#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""image-bench: pulling and running OCI images, beside the peers, in the same run.

1. Pull-and-unpack of a multi-layer image from a registry on 127.0.0.1 (Debian's
   docker-registry): `agentkernel images pull` into an empty store, against `skopeo copy` to an
   OCI layout followed by `umoci unpack` (the two steps a rootfs takes with those tools). Rounds
   are interleaved; each round starts both from nothing.
2. `agentkernel run -- /bin/true` from the cached image against the `host` image: ak-bench's
   rows, with its --image row.

Usage: bench/image-bench.py [--rounds N] [--n N] [--build DIR]
Needs root, umoci, skopeo, docker-registry, busybox-static. Prints medians and ratios.
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
import oci  # noqa: E402

# Real files for realistic layers: many small ones, and some larger.
CONTENT = ["/usr/share/zoneinfo", "/usr/lib/python3.11", "/usr/share/doc"]


def build_image(tmp, layout):
    oci.build_base(layout, "bench", tmp / "bundles")
    for i, src in enumerate(CONTENT):
        if not os.path.isdir(src):
            continue
        b = tmp / f"layer{i}"
        oci.run("umoci", "unpack", "--image", f"{layout.path}:bench", b)
        shutil.copytree(src, b / "rootfs" / f"data{i}", symlinks=True)
        oci.run("umoci", "repack", "--image", f"{layout.path}:bench", b)
        shutil.rmtree(b)


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--build", default=str(ROOT / "build"))
    a = ap.parse_args()
    ak = pathlib.Path(a.build) / "src" / "agentkernel"
    if os.geteuid() != 0 or not oci.tools_present():
        sys.exit("image-bench: needs root and umoci, skopeo, docker-registry, zstd, busybox-static")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ak-image-bench-"))
    reg = None
    try:
        layout = oci.Layout(tmp / "layout")
        build_image(tmp, layout)
        reg = oci.Registry(tmp / "registry")
        name = reg.push(layout.path, "bench", "bench/image:1")
        man = layout.manifest("bench")
        size = sum(l["size"] for l in man["layers"])
        ours, peer = [], []
        for r in range(a.rounds):
            data = tmp / f"data{r}"
            env = dict(os.environ, AGENTKERNEL_DATA_DIR=str(data),
                       AGENTKERNEL_INSECURE_REGISTRIES=reg.host)
            ours.append(timed([str(ak), "images", "pull", "-q", name], env))
            dest = tmp / f"skopeo{r}"
            dest.mkdir()
            peer.append(timed(["sh", "-c",
                               f"skopeo copy --quiet --src-tls-verify=false docker://{name} "
                               f"oci:{dest}/layout:x && umoci unpack --image {dest}/layout:x "
                               f"{dest}/bundle"]))
            shutil.rmtree(data)
            shutil.rmtree(dest)
        mo, mp = statistics.median(ours), statistics.median(peer)
        print(f"image-bench: {len(man['layers'])} layers, {size / 2**20:.1f} MiB compressed, "
              f"{a.rounds} rounds interleaved; seconds")
        print(f"{'':40} {'median':>8} {'min':>8} {'max':>8} {'ratio':>8}")
        print(f"{'agentkernel images pull':40} {mo:8.3f} {min(ours):8.3f} {max(ours):8.3f} "
              f"{mo / mp:8.2f}")
        print(f"{'skopeo copy + umoci unpack':40} {mp:8.3f} {min(peer):8.3f} {max(peer):8.3f} "
              f"{1.0:8.2f}")
        print()
        sys.stdout.flush()
        data = tmp / "run-data"
        subprocess.run([str(pathlib.Path(a.build) / "bench" / "ak-bench"), "--agentkernel",
                        str(ak), "--n", str(a.n), "--image", name, "--data-dir", str(data)],
                       check=True, env=dict(os.environ, AGENTKERNEL_INSECURE_REGISTRIES=reg.host))
    finally:
        if reg:
            reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
