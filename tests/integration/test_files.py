# SPDX-License-Identifier: Apache-2.0
"""Files: binary-safe, streamed (memory does not grow with the file), path rules."""
import hashlib
import os
import subprocess

import pytest

from conftest import AK, needs_root

pytestmark = needs_root


def max_rss_kib_of(cmd, env):
    """Runs cmd and returns its peak RSS in KiB. GNU time forks it from a small process, so the
    figure is the command's own, not inherited from this (large) Python process."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, capture_output=True)
    assert proc.returncode == 0, proc
    return int(proc.stderr.decode().strip().splitlines()[-1])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_100_mib_binary_round_trip(ak, sandbox, tmp_path):
    src = tmp_path / "big.bin"
    size = 100 << 20
    with open(src, "wb") as f:
        # incompressible, with every byte value, and not a multiple of any chunk size
        for _ in range(100):
            f.write(os.urandom(1 << 20))
        f.truncate(size - 7)
    want = sha256_file(src)

    rss_in = max_rss_kib_of([AK, "cp", str(src), f"{sandbox}:/tmp/big.bin"], ak.env)
    res = ak("exec", sandbox, "--", "sha256sum", "/tmp/big.bin")
    assert res.stdout.split()[0] == want
    out = tmp_path / "back.bin"
    rss_out = max_rss_kib_of([AK, "cp", f"{sandbox}:/tmp/big.bin", str(out)], ak.env)
    assert sha256_file(out) == want
    # streamed: the CLI never holds the file (its RSS stays far below 100 MiB)
    assert rss_in < 32 * 1024 and rss_out < 32 * 1024, (rss_in, rss_out)  # ASan needs ~20


def test_copy_into_directory_and_stdio(ak, sandbox, tmp_path):
    f = tmp_path / "note.txt"
    f.write_text("hello\n")
    assert ak("cp", f, f"{sandbox}:/tmp/").rc == 0
    assert ak("exec", sandbox, "--", "cat", "/tmp/note.txt").stdout == "hello\n"
    assert ak("cp", "-", f"{sandbox}:/tmp/deep/er/x.txt", input=b"from stdin").rc == 0
    assert ak("exec", sandbox, "--", "cat", "/tmp/deep/er/x.txt").stdout == "from stdin"
    res = ak("cp", f"{sandbox}:/tmp/deep/er/x.txt", "-")
    assert res.out == b"from stdin"
    d = tmp_path / "dir"
    d.mkdir()
    assert ak("cp", f"{sandbox}:/tmp/note.txt", d).rc == 0
    assert (d / "note.txt").read_text() == "hello\n"


def test_file_modes_kept(ak, sandbox, tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho ran\n")
    f.chmod(0o750)
    assert ak("cp", f, f"{sandbox}:/tmp/script.sh").rc == 0
    assert ak("exec", sandbox, "--", "/tmp/script.sh").stdout == "ran\n"
    assert ak("exec", sandbox, "--", "stat", "-c", "%a", "/tmp/script.sh").stdout == "750\n"


def test_path_rules_and_errors(ak, sandbox, tmp_path):
    f = tmp_path / "x"
    f.write_text("x")
    for bad in ["/etc/shadow", "/proc/1/mem", "/tmp/../etc/passwd", "relative"]:
        res = ak("cp", f, f"{sandbox}:{bad}")
        assert res.rc != 0, (bad, res)
    res = ak("cp", f"{sandbox}:/nonexistent", tmp_path / "y")
    assert res.rc == 1 and "No such file" in res.stderr
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.ak-partial").exists()
    res = ak("cp", f"{sandbox}:/tmp", tmp_path / "z")
    assert res.rc == 1 and "directory" in res.stderr
    res = ak("cp", f, f"{sandbox}:/usr/bin/x")  # read-only host image
    assert res.rc == 1
    res = ak("cp", f, "nosuch:/tmp/x")
    assert res.rc == 1 and "not found" in res.stderr
    res = ak("cp", f, tmp_path / "local")
    assert res.rc == 2


def test_write_to_a_read_only_place_says_why(ak, sandbox):
    res = ak("cp", "-", f"{sandbox}:/usr/new-dir/file", input=b"x")
    assert res.rc == 1
    assert "Read-only file system" in res.stderr, res
