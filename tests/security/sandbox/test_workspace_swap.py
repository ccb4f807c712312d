# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox whose workspace contains another sandbox's workspace (a project and one of
its subdirectories) swaps that directory, or one above it, for a symlink to a host directory,
and waits for the other sandbox's next start: its recorded workspace path would now lead to the
host directory, mounted read-write (as root, idmapped) at /workspace.

The project is a user's (PROJECT_OWNER_UID's, the realistic case): a workspace is idmapped to
its directory's owner, so the sandbox working there is that user and may rename what the user
may; in a root-owned directory it could not write at all.

What must hold: a workspace is reached at every start without following any symlink, and bound
from the very directory checked (rootful), so the swapped start is refused and the host directory
is neither shown nor written."""
import os

import pytest

from conftest import PROJECT_OWNER_UID, needs_root

pytestmark = needs_root

OWNER = PROJECT_OWNER_UID


@pytest.fixture
def layout(tmp_path):
    """The user's project (proj, proj/sub, proj/sub/inner: all PROJECT_OWNER_UID's) and a host
    directory of root's with a secret."""
    proj = tmp_path / "proj"
    (proj / "sub" / "inner").mkdir(parents=True)
    for d in (proj, proj / "sub", proj / "sub" / "inner"):
        os.chown(d, OWNER, OWNER)
    host = tmp_path / "host-only"
    host.mkdir()
    (host / "secret").write_text("HOST-ONLY-3b1d\n")
    os.chmod(host / "secret", 0o600)
    return proj, host


def attack(ak, proj, victim_dir, host, swap):
    """Sandbox 'victim' works in victim_dir; 'evil' (workspace: proj) replaces swap with a
    symlink to host; the victim is restarted."""
    assert ak("create", "victim", "--no-network", "--no-config", "-d", victim_dir).rc == 0
    assert ak("create", "evil", "--no-network", "--no-config", "-d", proj).rc == 0
    rel = os.path.relpath(swap, proj)
    res = ak("exec", "evil", "--", "sh", "-c",
             f"mv /workspace/{rel} /workspace/{rel}.old && ln -s {host} /workspace/{rel}")
    assert res.rc == 0, res
    assert os.lstat(swap).st_uid == OWNER and os.path.islink(swap)  # the user's symlink now
    assert ak("stop", "victim").rc == 0
    return ak("start", "victim")


def test_swapped_workspace_is_refused(ak, layout):
    proj, host = layout
    res = attack(ak, proj, proj / "sub", host, proj / "sub")
    assert res.rc != 0 and ("symlink" in res.stderr or "a link" in res.stderr), res
    out = ak("exec", "victim", "--", "sh", "-c", "cat /workspace/secret; touch /workspace/w")
    assert "HOST-ONLY" not in out.stdout
    assert sorted(os.listdir(host)) == ["secret"]


def test_swapped_parent_of_the_workspace_is_refused(ak, layout):
    """Any directory of the path counts, not only the last one."""
    proj, host = layout
    (host / "inner").mkdir()
    res = attack(ak, proj, proj / "sub" / "inner", host, proj / "sub")
    assert res.rc != 0 and ("symlink" in res.stderr or "a link" in res.stderr), res
    assert sorted(os.listdir(host / "inner")) == []


def test_unswapped_workspace_still_starts(ak, layout):
    """The check does not get in the way of a workspace nobody touched."""
    proj, _ = layout
    assert ak("create", "ok", "--no-network", "--no-config", "-d", proj / "sub").rc == 0
    assert ak("exec", "ok", "--", "sh", "-c", "echo x > /workspace/f").rc == 0
    assert ak("stop", "ok").rc == 0 and ak("start", "ok").rc == 0
    assert ak("exec", "ok", "--", "cat", "/workspace/f").stdout == "x\n"
    assert (proj / "sub" / "f").read_text() == "x\n"
    assert os.stat(proj / "sub" / "f").st_uid == OWNER
