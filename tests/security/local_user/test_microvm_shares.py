# SPDX-License-Identifier: Apache-2.0
"""A microvm's workspace belongs to another local user: that user must not reach the VM.

The share's virtiofsd (src/backend/microvm-fs.c) writes the workspace as its owner, so it runs
with the owner's uid on the host; it also maps the guest's whole memory. It keeps capabilities
the owner lacks (in its own user namespace), and its real uid is another id of the share's map,
so the owner cannot ptrace it, read its memory, environment or descriptors (the guest's RAM is a
memfd it holds), whatever the host's Yama setting. (The owner can signal it, as any process of theirs: that only stops the sandbox that
shares their directory.)
"""
import json
import os
import pathlib
import shutil
import time

import pytest

from conftest import STATIC_AGENT, Ak, is_root

_MISSING = [what for what, ok in (
    ("root", is_root()),
    ("qemu-system-x86_64", shutil.which("qemu-system-x86_64")),
    ("virtiofsd", os.access("/usr/lib/qemu/virtiofsd", os.X_OK)),
    ("a static agent (build ./build)", STATIC_AGENT),
    ("a guest kernel", any(pathlib.Path("/boot").glob("vmlinuz-*"))),
) if not ok]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="needs " + ", ".join(_MISSING))

PROBE = r"""
import ctypes, os, sys
pid = int(sys.argv[1])
got = []
for f in ("environ", "mem", "maps", "auxv"):
    try:
        with open(f"/proc/{pid}/{f}", "rb") as fh:
            got.append((f, fh.read(64)))
    except OSError:
        pass
try:  # the numbers show (its user namespace's root is the owner), the files must not open
    fds = os.listdir(f"/proc/{pid}/fd")
except OSError:
    fds = [str(n) for n in range(64)]
for n in fds:
    for how in (lambda p: open(p, "rb").close(), os.readlink):
        try:
            how(f"/proc/{pid}/fd/{n}")
            got.append(("fd", n))
        except OSError:
            pass
for link in ("root", "cwd", "exe"):
    try:
        os.listdir(f"/proc/{pid}/{link}/") if link != "exe" else os.readlink(f"/proc/{pid}/exe")
        got.append((link, "reached"))
    except OSError:
        pass
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
    got.append(("ptrace", b"attached"))
print(repr(got))
"""


def euid_and_fsuid(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            ids = [int(x) for x in line.split()[1:]]
            return ids[1], ids[3]
    return ()


def test_workspace_owner_cannot_reach_the_share_server(tmp_path, local_user):
    """The workspace's owner reads /proc/PID/{environ,mem,maps,auxv} of its virtiofsd, opens
    and reads the links of its descriptors (the guest's RAM among them), root, cwd and exe, and
    tries PTRACE_ATTACH: every attempt fails."""
    ws = local_user.home / "project"
    ws.mkdir()
    os.chown(ws, local_user.uid, local_user.uid)
    ak = Ak(tmp_path / "data", env={"AGENTKERNEL_AGENT": STATIC_AGENT})
    res = ak("create", "w", "-B", "microvm", "--no-network", "-d", ws, "--memory", "192",
             timeout=300)
    assert res.rc == 0, res
    try:
        rt = json.loads((ak.data_dir / "run" / "w" / "runtime.json").read_text())
        pids = [p["pid"] for p in rt["fs"]]
        owned = [p for p in pids if local_user.uid in euid_and_fsuid(p)]
        assert owned, "the workspace's server writes as its owner"
        for pid in owned:
            r = local_user.python(PROBE, str(pid))
            assert r.rc == 0, r
            assert r.stdout.strip() == "[]", (pid, r.stdout)
    finally:
        assert ak("remove", "w").rc == 0
        time.sleep(0.2)
