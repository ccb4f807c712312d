# SPDX-License-Identifier: Apache-2.0
"""Host directories in a microvm (src/backend/microvm-fs.c): the `host` image, a workspace and
volumes through one virtiofsd per share, detached like QEMU and recorded with it.

Each TCG boot costs seconds of CPU: one VM serves the functional checks; the lifecycle cases
(a virtiofsd killed, a CLI killed mid-create) boot their own. The attacks are
tests/security/sandbox/test_microvm_shares.py.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from conftest import STATIC_AGENT, Ak, agent_pids, assert_nothing_left, is_root, wait_for
from test_microvm import _kernel, assert_vm_gone, procs_naming  # noqa: E402


_MISSING = [what for what, ok in (
    ("root", is_root()),
    ("qemu-system-x86_64 (apt-get install qemu-system-x86)", shutil.which("qemu-system-x86_64")),
    ("a guest kernel (apt-get install linux-image-cloud-amd64)", _kernel()),
    ("virtiofsd (apt-get install qemu-system-x86)", os.access("/usr/lib/qemu/virtiofsd", os.X_OK)),
    ("a static agent (build ./build)", STATIC_AGENT),
) if not ok]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="microvm shares need " + ", ".join(_MISSING))


@pytest.fixture
def own(tmp_path):
    before = set(agent_pids())
    ak = Ak(tmp_path / "data", env={"AGENTKERNEL_AGENT": STATIC_AGENT})
    yield ak, tmp_path
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    assert not procs_naming(ak.data_dir), procs_naming(ak.data_dir)
    assert_nothing_left(ak, [])
    assert wait_for(lambda: not set(agent_pids()) - before)


def test_host_image_workspace_and_volumes(own):
    """`-B microvm` with the host image (the default): the guest's own kernel over the host's
    /usr (read-only), the workspace writable with the owner's ids, a volume writable in the
    volumes' range and a `:ro` one read-only; one virtiofsd per share, gone at remove."""
    ak, tmp = own
    ws = tmp / "ws"
    ws.mkdir()
    os.chown(ws, 4343, 4343)
    (ws / "hello.txt").write_text("from the host\n")
    assert ak("volume", "create", "v").rc == 0
    assert ak("volume", "create", "r").rc == 0
    res = ak("create", "h", "-B", "microvm", "--no-network", "-d", ws, "-v", "v:/data",
             "-v", "r:/ro:ro", "--memory", "256", timeout=300)
    assert res.rc == 0, res
    rt = json.loads((ak.data_dir / "run" / "h" / "runtime.json").read_text())
    assert len(rt["fs"]) == 4  # the host image, the workspace, two volumes
    res = ak("exec", "h", "--", "sh", "-c",
             "uname -r; cat /workspace/hello.txt; echo made > /workspace/new.txt; "
             "echo v > /data/v; echo r > /ro/r || echo ro-refused; echo x > /usr/x || "
             "echo usr-refused; echo t > /tmp/t && cat /tmp/t; cat /etc/hostname", timeout=60)
    assert res.rc == 0, res
    assert os.uname().release not in res.stdout.splitlines()[0] or "cloud" in res.stdout
    assert "from the host" in res.stdout and "ro-refused" in res.stdout and "usr-refused" in res.stdout
    assert "agentkernel" in res.stdout
    st = os.stat(ws / "new.txt")
    assert (st.st_uid, st.st_gid) == (4343, 4343)
    vol = pathlib.Path(json.loads(ak("volume", "info", "v", check=True).out)["path"])
    assert os.stat(vol / "v").st_uid == 0x3FFF0000
    assert ak("remove", "h").rc == 0
    assert_vm_gone(ak, "h")


def test_killed_virtiofsd_is_noticed_and_remove_cleans(own):
    """A share's virtiofsd killed from outside: the sandbox is no longer running, its info says
    which process died, and remove ends QEMU and the rest."""
    ak, tmp = own
    ws = tmp / "ws"
    ws.mkdir()
    assert ak("create", "k", "-B", "microvm", "--no-network", "-d", ws, "--memory", "192",
              timeout=300).rc == 0
    rt = json.loads((ak.data_dir / "run" / "k" / "runtime.json").read_text())
    os.kill(rt["fs"][1]["pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while ak.list()[0]["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.1)
    info = json.loads(ak("info", "k", "--json", check=True).out)
    assert info["status"] == "stopped", info
    assert info["vm"]["state"] == "crashed" and "virtiofsd" in info["vm"]["reason"], info
    assert ak("remove", "k").rc == 0
    assert_vm_gone(ak, "k")


def test_cli_killed_once_virtiofsd_runs_leaves_nothing_after_remove(own):
    """`kill -9` of the CLI as soon as a share's virtiofsd exists (before QEMU or its record):
    list reports the sandbox, and remove leaves no virtiofsd, qemu, relay or socket."""
    ak, tmp = own
    ws = tmp / "ws"
    ws.mkdir()
    p = ak.popen("create", "half", "-B", "microvm", "--no-network", "-d", ws,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = ak.data_dir / "run" / "half"
    deadline = time.time() + 120
    while not procs_naming(run_dir) and time.time() < deadline and p.poll() is None:
        time.sleep(0.005)
    p.kill()
    p.wait()
    assert "half" in ak.names()
    assert ak("remove", "half").rc == 0
    assert_vm_gone(ak, "half")


def test_what_cannot_share_is_refused_clearly(own):
    """Firecracker has no virtio-fs: the host image and host directories are refused naming it,
    before anything is recorded; so is a missing virtiofsd."""
    ak, tmp = own
    res = ak("create", "f", "-B", "microvm", "--no-network",
             env={"AGENTKERNEL_VM_DRIVER": "firecracker"})
    assert res.rc != 0 and "firecracker" in res.stderr and "virtio-fs" in res.stderr, res
    res = ak("create", "m", "-B", "microvm", "--no-network",
             env={"AGENTKERNEL_VIRTIOFSD": str(tmp / "missing")})
    assert res.rc != 0 and "virtiofsd is not installed" in res.stderr, res
    assert ak.names() == []
    assert not procs_naming(ak.data_dir)


def test_a_virtiofsd_dying_at_start_fails_the_start_fast_with_its_words(own):
    """A virtiofsd that exits while QEMU starts: the start fails at once (not after the boot
    timeout) with what it said, and nothing of the machine is left running."""
    ak, tmp = own
    bad = tmp / "bad-virtiofsd"
    bad.write_text("#!/bin/sh\necho 'virtiofsd-canary: cannot serve' >&2\nsleep 1\nexit 3\n")
    bad.chmod(0o755)
    t0 = time.monotonic()
    res = ak("create", "b", "-B", "microvm", "--no-network", env={"AGENTKERNEL_VIRTIOFSD": str(bad)},
             timeout=120)
    assert res.rc != 0 and "virtiofsd-canary" in res.stderr, res
    assert time.monotonic() - t0 < 30
    assert not procs_naming(ak.data_dir / "run" / "b")
