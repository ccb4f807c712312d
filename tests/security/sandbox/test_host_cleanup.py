# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox against the host's cleanup of what it wrote: a volume (`volume delete`),
which the host removes with rm_rf after the sandbox is gone.

The sandbox builds a directory chain deeper than the host process's fd limit (the old rm_rf held
one fd per level and gave up, leaving the tree behind for good), locks directories (mode 000),
and plants symlinks to host paths. What must hold: the host removes all of it, whatever its
depth, with a handful of fds, and never follows a symlink out of it.
"""
import os
import resource
import subprocess

import pytest

from conftest import AK, needs_root

pytestmark = needs_root

DEEP = r'''
import os
os.chdir("/data")
for i in range(3000):
    os.mkdir("d")
    if i % 500 == 0:
        os.mkdir("locked")
        open("locked/f", "w").close()
        os.chmod("locked", 0)
        os.symlink(os.environ["VICTIM"], "victim-link")
    os.chdir("d")
open("bottom", "w").write("x")
'''


def low_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def test_volume_delete_removes_a_tree_deeper_than_the_fd_limit(ak, tmp_path):
    """3000 nested directories, locked ones and symlinks to a host directory, in a volume; the
    host deletes the volume under a 256-fd limit: nothing remains, the host directory is
    untouched."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    assert ak("volume", "create", "deep").rc == 0
    assert ak("create", "vb", "--no-network", "-v", "deep:/data").rc == 0
    res = ak("exec", "-e", f"VICTIM={victim}", "vb", "--", "/usr/bin/python3", "-c", DEEP,
             timeout=300)
    assert res.rc == 0, res
    assert ak("remove", "vb").rc == 0
    try:
        res = subprocess.run([AK, "volume", "delete", "-f", "deep"], env=ak.env,
                             capture_output=True, timeout=300, preexec_fn=low_fd_limit)
        assert res.returncode == 0, res
        assert not (ak.data_dir / "volumes" / "deep").exists()
    finally:  # pytest's own cleanup of old temp dirs recurses and would choke on the chain
        subprocess.run(["rm", "-rf", str(ak.data_dir / "volumes" / "deep")], check=False)
    assert (victim / "keep").read_text() == "keep"
    assert ak("volume", "list", "--json").stdout.strip() in ("[]", "")
