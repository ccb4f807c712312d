# SPDX-License-Identifier: Apache-2.0
"""A microvm's QMP monitor (pause/resume: QMP stop/cont) against another local user.

QMP is the hypervisor's whole control: a user who reached it could stop, inspect or end another
user's VM. Its socket is in the sandbox's private run directory and is itself the owner's only
(0600, like the guest's channel); the paused marker the host reads back is a private file there.
"""
import errno
import os
import stat
import sys
import pathlib

import pytest

_INTEGRATION = str(pathlib.Path(__file__).resolve().parent.parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
from test_microvm import _MISSING, assert_vm_gone, image, make_ak  # noqa: E402,F401

pytestmark = pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))

CONNECT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno)
else:
    s.settimeout(5)
    print("connected", s.recv(200))
"""


def test_another_user_cannot_reach_a_vms_monitor(tmp_path, image, local_user):
    """The attacker (a second local user) connects to the VM's QMP socket by its path: EACCES;
    the socket is 0600 and the owner's (not only hidden behind the run directory), and the VM
    can still be paused and resumed by its owner."""
    reg, ref = image
    ak = make_ak(tmp_path / "data", reg)
    res = ak("create", "v", "-B", "microvm", "--no-network", "-i", ref, "--memory", "256",
             timeout=300)
    assert res.rc == 0, res
    try:
        run_dir = ak.data_dir / "run" / "v"
        sock = run_dir / "qmp.sock"
        st = sock.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
        out = local_user.run(["/usr/bin/python3", "-c", CONNECT, str(sock)])
        assert out.stdout.split()[:2] == ["refused", str(errno.EACCES)], out
        assert ak("pause", "v").rc == 0
        assert ak("resume", "v").rc == 0
        assert ak("exec", "v", "--", "echo", "ok", check=True).stdout == "ok\n"
    finally:
        assert ak("remove", "v", timeout=60).rc == 0
    assert_vm_gone(ak, "v")
