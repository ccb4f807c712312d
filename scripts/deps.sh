#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what agentkernel needs to build, run and test on Debian 12, from Debian's archive only.
# Idempotent: packages already installed are not touched, and apt is not even updated when
# nothing is missing. Usage: scripts/deps.sh [--runtime-only | --build]
#   (nothing)       everything: run, build and test (what scripts/test.sh needs)
#   --build         run and build (what scripts/demo.sh needs)
#   --runtime-only  run only
set -euo pipefail

# e2fsprogs: mkfs.ext4 for sized volumes; libmicrohttpd12: `serve`
# libc-ares2: agentkernel-proxy's asynchronous resolver (docs/network.md says why)
# libssl3: agentkernel-proxy's TLS interception for secret injection (docs/network.md,
# "Interception"); the proxy links libssl statically today, like libcrypto, so this is for a
# dynamic build; ca-certificates is the store it verifies upstreams against
# libnghttp2-14: HTTP/2 through the proxy's interception (docs/network.md, "HTTP/2")
runtime=(slirp4netns iproute2 util-linux procps e2fsprogs libmicrohttpd12 libcurl4 libarchive13 ca-certificates
        libc-ares2 libssl3 libnghttp2-14)
# musl-tools: the in-sandbox agent is linked with musl (docs/performance.md says why);
# libnftnl-dev, libmnl-dev: the proxy-mode capture's nft batch, built at build time (nft-gen);
# libssl-dev: libcrypto's AES-GCM for the secrets vault (docs/secrets.md says why not libsodium),
# and libssl for the proxy's TLS interception (only agentkernel-proxy links it);
# libnghttp2-dev: HTTP/2 through that interception, a server session towards the sandbox and a
# client session towards upstream (nghttp2 is the HTTP/2 of curl and Apache: its flood
# protections are maintained, which a protocol of our own would not be); only the proxy links it
build=(gcc make pkg-config meson ninja-build libjansson-dev libseccomp-dev libcmocka-dev libmd-dev
        libmicrohttpd-dev libcurl4-openssl-dev libarchive-dev libhttp-parser-dev musl-tools libc-ares-dev
        libnftnl-dev libmnl-dev libssl-dev libnghttp2-dev)
# nodejs: the official SDKs' tests (npm comes with nodesource builds, separately in Debian's);
# xfsprogs, btrfs-progs: filesystems with quotas for the container engines' storage
# (tests/security/container/test_engine_disk.py); python3-h2: the HTTP/2 test server and the
# hostile HTTP/2 client of the interception's tests (tests/mitm_world.py); python3-pytest-timeout:
# a test that hangs fails on its own instead of holding CI up to its limit
tests=(python3-pytest python3-pytest-timeout bubblewrap time clang-format valgrind golang-github-burntsushi-toml-dev
        nodejs docker-registry skopeo umoci apache2-utils busybox-static zstd python3-jwt
        python3-cryptography docker.io podman runc xfsprogs btrfs-progs nftables curl openssl python3-h2)
# the microvm backend and its tests: QEMU's microvm machine, a guest kernel (Debian's cloud
# kernel: its virtio drivers are modules the guest's initramfs loads), mkfs.erofs for images;
# linux-source-6.1 and what building it needs (flex, bison, bc, libelf-dev for objtool, xz-utils)
# for the minimal guest kernel (scripts/build-microvm-kernel.sh: CI only checks its config)
vm=(qemu-system-x86 linux-image-cloud-amd64 erofs-utils linux-source-6.1 flex bison bc libelf-dev
        xz-utils)

mode=${1:-all}
case $mode in
all | --build | --runtime-only) ;;
*)
        echo "usage: scripts/deps.sh [--runtime-only | --build]" >&2
        exit 2
        ;;
esac
want=("${runtime[@]}")
if [[ $mode != --runtime-only ]]; then
        want+=("${build[@]}")
fi
if [[ $mode == all ]]; then
        want+=("${tests[@]}" "${vm[@]}")
        if ! command -v npm >/dev/null; then
                want+=(npm)
        fi
fi

missing=()
for p in "${want[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing+=("$p")
        fi
done
if ((${#missing[@]} == 0)); then
        exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Packages with daemons (docker.io, docker-registry) must not start them: the tests start their
# own, on private sockets. A policy-rc.d that says "no" for the install, unless one exists.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
