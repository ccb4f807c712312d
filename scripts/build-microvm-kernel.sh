#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the microvm backend's minimal guest kernel (docs/backends.md, "The guest kernel") once
# and caches it: Debian's linux-source-6.1, `make allnoconfig`, microvm/kernel.config merged on
# top, `make olddefconfig`, then a check that every line of the fragment survived (a symbol
# renamed or with an unmet dependency fails here instead of vanishing silently), then bzImage.
#
# The result is KERNEL_DIR/vmlinuz-<source version>-<config hash> (KERNEL_DIR is
# /var/cache/agentkernel/kernels: root-owned, 0755, what agentkernel checks before it boots a
# file from it), with its .config beside it as config-<same key>. The config hash is the first
# 16 hex digits of the fragment's SHA-256 (what meson embeds into agentkernel, so a changed
# fragment is a different kernel and an old build is never taken for it). Installed by rename:
# a build killed halfway leaves no file of that name. When the file exists, nothing is built.
#
# Usage: scripts/build-microvm-kernel.sh [--check-config] [--print-path]
#   --check-config  only the config steps (allnoconfig, merge, olddefconfig, the survival check)
#                   on the part of the source Kconfig reads: ~30 s, not the build's many
#                   minutes; what CI runs (tests/integration/test_microvm_kernel.py)
#   --print-path    print the path the kernel has (or would have) and exit
# Environment: AK_KERNEL_SRC (default /usr/src/linux-source-6.1.tar.xz), AK_KERNEL_DIR (default
# /var/cache/agentkernel/kernels), AK_KERNEL_JOBS (default: the number of CPUs), AK_KERNEL_WORK
# (the build tree's parent, default /var/tmp).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fragment=$root/microvm/kernel.config
src=${AK_KERNEL_SRC:-/usr/src/linux-source-6.1.tar.xz}
kdir=${AK_KERNEL_DIR:-/var/cache/agentkernel/kernels}
jobs=${AK_KERNEL_JOBS:-$(nproc)}
work_parent=${AK_KERNEL_WORK:-/var/tmp}

check_only=0
print_only=0
for a in "$@"; do
        case $a in
        --check-config) check_only=1 ;;
        --print-path) print_only=1 ;;
        *)
                echo "usage: scripts/build-microvm-kernel.sh [--check-config] [--print-path]" >&2
                exit 2
                ;;
        esac
done

if [[ ! -r $src ]]; then
        echo "no kernel source '$src' (apt-get install linux-source-6.1)" >&2
        exit 1
fi
# the source's version: the Debian package's, else the tarball's own name
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
if [[ -z $srcver || -n ${AK_KERNEL_SRC:-} ]]; then
        srcver=$(basename "$src" .tar.xz)
fi
srcver=${srcver//[^A-Za-z0-9.+-]/_}
hash=$(sha256sum "$fragment" | cut -c1-16)
key=$srcver-$hash
out=$kdir/vmlinuz-$key

if ((print_only)); then
        echo "$out"
        exit 0
fi
if ((!check_only)) && [[ -f $out ]]; then
        echo "$out (cached)"
        exit 0
fi

work=$(mktemp -d "$work_parent/ak-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "unpacking $src" >&2
if ((check_only)); then
        # what Kconfig reads, and the kconfig tools' sources: a third of the tree
        tar -C "$work" -xf "$src" --wildcards '*Kconfig*' '*/Makefile' '*/scripts/*' \
                '*/arch/x86/Makefile*' '*/kernel/configs/*' '*/arch/x86/configs/*'
else
        tar -C "$work" -xf "$src"
fi
tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
mk=(nice -n 10 make -C "$tree" -s ARCH=x86_64)
"${mk[@]}" allnoconfig >/dev/null
(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null)
"${mk[@]}" olddefconfig >/dev/null
# every symbol of the fragment as it was asked for
lost=0
while IFS= read -r line; do
        [[ $line =~ ^CONFIG_ || $line =~ ^#\ CONFIG_[A-Z0-9_]+\ is\ not\ set$ ]] || continue
        if ! grep -qxF "$line" "$tree/.config"; then
                sym=${line#\# }
                sym=${sym%%[= ]*}
                echo "kernel config: '$line' did not survive olddefconfig (got: $(grep -E "^(# )?$sym[= ]" "$tree/.config" || echo absent))" >&2
                lost=1
        fi
done <"$fragment"
if ((lost)); then
        exit 1
fi
# and nothing as a module
if grep -q '=m$' "$tree/.config"; then
        echo "kernel config: modules enabled: $(grep '=m$' "$tree/.config" | tr '\n' ' ')" >&2
        exit 1
fi
if ((check_only)); then
        echo "kernel config ok ($key)"
        exit 0
fi

echo "building $key with $jobs jobs" >&2
"${mk[@]}" -j"$jobs" bzImage
install -d -m 0755 -o root -g root "$kdir"
tmp=$(mktemp "$kdir/.vmlinuz.XXXXXX")
install -m 0644 -o root -g root "$tree/arch/x86/boot/bzImage" "$tmp"
install -m 0644 -o root -g root "$tree/.config" "$kdir/config-$key"
mv -f "$tmp" "$out"
echo "$out"
