#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job, from a fresh Debian 12 machine: install dependencies, build, and run a command
# in a real sandbox on the default (native) backend. Extra arguments replace the command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --build # what it takes to build and run, not the test suite's engines and tools
scripts/build.sh
if (($# == 0)); then
        set -- sh -c 'echo hello from $(hostname)'
fi
exec ./build/src/agentkernel run -- "$@"
