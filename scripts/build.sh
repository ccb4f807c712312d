#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures (once) and builds agentkernel into ./build (or $1). Quiet when all is well; when
# configuring or building fails, what meson or ninja said (compiler errors included) is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [[ ! -f "$dir/build.ninja" ]]; then
        if ! meson setup "$dir" "$@" >"$log" 2>&1; then
                cat "$log" >&2
                exit 1
        fi
fi
if ! ninja -C "$dir" >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
fi
