# SPDX-License-Identifier: Apache-2.0
"""A sandbox given a view of agentkernel's own directories (the data directory: records, runtime
files; the user directory: the API key, the approved configs).

A workspace is read-write: one that contains those directories (`cd ~ && agentkernel run
--mount-cwd` with the data directory under ~, or `-d` of the directory above it) would let the
sandbox rewrite what the host trusts next, or read the API key. The permissive profile's view of
the home is read-only, but a data directory moved under the home by AGENTKERNEL_DATA_DIR is not
one of the credential places it masks by name. Must hold: such a workspace is refused at create,
at run and at every start (a record is read back like any input); the home view hides the data
directory wherever it lies in it.
"""
import json

import pytest

from conftest import _open_tmp_path, needs_root

pytestmark = needs_root

REFUSED = "contains agentkernel's own directory"


def test_create_with_a_workspace_above_the_data_dir_is_refused(ak, tmp_path):
    """`create -d DIR` where DIR holds the data directory. Must hold: refused, saying why, and
    nothing recorded."""
    res = ak("create", "evil", "--no-network", "-d", str(tmp_path))
    assert res.rc != 0 and REFUSED in res.stderr, res
    assert not ak.state_file("evil").exists()


def test_run_mount_cwd_above_the_data_dir_is_refused(ak, tmp_path):
    """`cd DIR && agentkernel run --mount-cwd` where DIR holds the data directory: the command
    must not run."""
    res = ak("run", "--no-network", "--mount-cwd", "--", "sh", "-c", "echo RAN", cwd=tmp_path)
    assert res.rc != 0 and REFUSED in res.stderr, res
    assert "RAN" not in res.stdout


def test_forged_record_with_a_containing_workspace_is_refused_at_start(ak, tmp_path):
    """A record rewritten (by whatever wrote it) to mount the directory above the data
    directory. Must hold: `start` refuses it."""
    assert ak("create", "box", "--no-network").rc == 0
    assert ak("stop", "box").rc == 0
    f = ak.state_file("box")
    doc = json.loads(f.read_text())
    doc.setdefault("x_agentkernel", {}).update(mount_cwd=True, work_dir=str(tmp_path))
    f.write_text(json.dumps(doc, indent=2))
    res = ak("start", "box")
    assert res.rc != 0 and REFUSED in res.stderr, res


def test_permissive_home_hides_a_data_dir_inside_it(ak, tmp_path):
    """HOME holds the data directory (AGENTKERNEL_DATA_DIR=$HOME/data). A permissive sandbox
    sees the home read-only. Must hold: the data directory shows empty there (no records, no
    key) while the rest of the home shows."""
    _open_tmp_path(tmp_path)  # the home must be reachable by the sandbox's ids
    (tmp_path / "notes.txt").write_text("visible")
    (tmp_path / "proj").mkdir()
    assert ak("create", "kept", "--no-network").rc == 0  # a record to find
    res = ak("run", "--no-network", "-p", "permissive", "--", "sh", "-c",
             "cat /home/user/notes.txt; echo; ls -A /home/user/data; echo END; "
             "cat /home/user/data/sandboxes/kept.json 2>&1 | head -c 200",
             env={"HOME": str(tmp_path)}, cwd=tmp_path / "proj")
    assert res.rc == 0, res
    assert "visible" in res.stdout, res
    listing = res.stdout.split("END")[0].split("visible", 1)[1]
    assert listing.strip() == "", res
    assert "uuid" not in res.stdout, res


@pytest.mark.parametrize("rel", ["", "deeper"])
def test_permissive_home_inside_the_data_dir_shows_nothing(ak, tmp_path, rel):
    """HOME is the data directory itself or inside it. Must hold: the sandbox's home view shows
    nothing of it."""
    _open_tmp_path(tmp_path)
    (tmp_path / "proj").mkdir()
    assert ak("create", "kept", "--no-network").rc == 0
    home = ak.data_dir / rel if rel else ak.data_dir
    home.mkdir(exist_ok=True)
    res = ak("run", "--no-network", "-p", "permissive", "--", "sh", "-c",
             "ls -A /home/user; echo END", env={"HOME": str(home)}, cwd=tmp_path / "proj")
    assert res.rc == 0, res
    assert res.stdout.split("END")[0].strip() == "", res
