#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything CI checks, from a fresh Debian 12 machine: dependencies, build, formatting, unit
# tests, fuzz-corpus replays, integration tests on real sandboxes, and the unit and fuzz suites
# again under AddressSanitizer + UndefinedBehaviorSanitizer. Ends with "N passed, M failed".
# Integration tests need root (namespaces and cgroups for real); as non-root they are skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
logs=$root/build/test-logs
status=0

scripts/deps.sh || exit 1
scripts/build.sh build || exit 1
mkdir -p "$logs"

step() { echo "==> $* (at ${SECONDS}s)" >&2; }

step "format"
if command -v clang-format >/dev/null; then
        if ! git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>"$logs/format.txt"; then
                cat "$logs/format.txt" >&2
                echo "format: FAILED" >&2
                status=1
        fi
fi

step "unit tests and fuzz replays"
meson test -C build --suite unit --suite fuzz --print-errorlogs >"$logs/meson.txt" 2>&1 || status=1
tail -n 8 "$logs/meson.txt" >&2

step "SDK test dependencies (npm)"
# the official Node SDK and the MCP SDK, at the versions package-lock.json pins
if ! (cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error) >"$logs/npm.txt" 2>&1; then
        cat "$logs/npm.txt" >&2
        echo "npm ci: FAILED" >&2
        status=1
fi
export AK_REQUIRE_SDK=1

# the host prepared as `setup -y` prepares it for a user (for native as root: cgroup joins
# favored, cgroup2 remounted with favordynmods); the tests' own data directories are their own.
# Only speed depends on it (tests/integration/test_setup.py checks setup itself): a host where
# it cannot be done runs the tests as it is, with a warning.
if [[ $(id -u) -eq 0 ]]; then
        step "setup"
        if ! build/src/agentkernel setup -y -q -B native >"$logs/setup.txt" 2>&1; then
                cat "$logs/setup.txt" >&2
                echo "setup: not done (the tests run on the host as it is)" >&2
        fi
fi

# Each test is bounded (a hang fails that test, with its stack, instead of holding CI up), and
# so is each run; the log ends with the slowest tests. stdin is /dev/null whatever the caller's
# is (a terminal or a pipe left open would be every command's stdin that a test does not set).
pytest_run() {
        local xml=$1 log=$2
        shift 2
        timeout -k 60 45m /usr/bin/python3 -m pytest -q -p no:cacheprovider -rfEs --timeout=240 \
                --durations=30 --junitxml="$xml" "$@" tests/integration tests/security \
                </dev/null >"$log" 2>&1
}

# What a pytest log says of the run: each failure and error, and the counts (warnings printed
# after them, such as pytest's own cleanup of old temporary directories, would push them out of
# a tail); its tail where there are no counts (pytest itself failed).
pytest_summary() {
        if grep -qE '^[0-9]+ (passed|failed|errors?|skipped)' "$1"; then
                grep -E '^(FAILED|ERROR) |^[0-9]+ (passed|failed|errors?|skipped)' "$1" >&2
        else
                tail -n 15 "$1" >&2
        fi
}

step "integration tests"
pytest_run "$logs/integration.xml" "$logs/pytest.txt" || status=1
pytest_summary "$logs/pytest.txt"

step "sanitizers (ASan + UBSan): unit tests and fuzz replays"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dagent_static=false -Dstatic_cli=false -Dbuildtype=debug || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build-asan --suite unit --suite fuzz --print-errorlogs \
        >"$logs/meson-asan.txt" 2>&1 || status=1
tail -n 8 "$logs/meson-asan.txt" >&2

step "sanitizers (ASan + UBSan): integration tests"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        AGENTKERNEL_BIN=$root/build-asan/src/agentkernel \
        AGENTKERNEL_AGENT=$root/build-asan/src/agentkernel-agent \
        pytest_run "$logs/integration-asan.xml" "$logs/pytest-asan.txt" || status=1
pytest_summary "$logs/pytest-asan.txt"

step "valgrind: unit tests"
meson test -C build --suite unit --logbase valgrind --print-errorlogs \
        --wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite -q' \
        >"$logs/meson-valgrind.txt" 2>&1 || status=1
tail -n 8 "$logs/meson-valgrind.txt" >&2

/usr/bin/python3 scripts/summarize.py build/meson-logs/testlog.json \
        build-asan/meson-logs/testlog.json build/meson-logs/valgrind-valgrind.json \
        "$logs/integration.xml" "$logs/integration-asan.xml" || status=1
exit $status
