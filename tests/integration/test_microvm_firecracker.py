# SPDX-License-Identifier: Apache-2.0
"""The microvm backend's firecracker driver against tests/firecracker_double.py.

No Firecracker can be installed on these machines, so the driver is checked against a conformance
double that refuses what Firecracker refuses (tested here first, so the double itself is held to
the API's rules) and logs every call. With FC_DOUBLE_QEMU the double boots the configured guest
under QEMU, which lets the backend's whole path (driver, hybrid vsock handshake, relay, agent) run
through Firecracker's API. The driver's claim is only this: conformant to the published API;
unverified against a real Firecracker (docs/backends.md).
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from test_microvm import _MISSING, assert_vm_gone, image, make_ak, procs_naming  # noqa: F401

DOUBLE = pathlib.Path(__file__).resolve().parent.parent / "firecracker_double.py"


def api(sock, method, path, body=None, raw=None):
    """One request to the double's API socket: (status, parsed body or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(sock))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(data)}\r\n"
              f"\r\n".encode() + data)
    f = s.makefile("rb")
    status = int(f.readline().split()[1])
    length = 0
    while True:
        h = f.readline().decode()
        if h in ("\r\n", ""):
            break
        if h.lower().startswith("content-length:"):
            length = int(h.split(":")[1])
    out = json.loads(f.read(length)) if length else None
    s.close()
    return status, out


@pytest.fixture
def double(tmp_path):
    # a unix socket's path is at most 107 bytes: the API socket lives in a short directory
    short = pathlib.Path(tempfile.mkdtemp(prefix="fcd-"))
    sock = short / "api.sock"
    env = dict(os.environ, FC_DOUBLE_LOG=str(tmp_path / "log.jsonl"))
    env.pop("FC_DOUBLE_QEMU", None)
    p = subprocess.Popen(["/usr/bin/python3", str(DOUBLE), "--api-sock", str(sock), "--id", "t1"],
                         env=env, cwd=tmp_path)
    deadline = time.time() + 10
    while not sock.exists() and time.time() < deadline:
        time.sleep(0.02)
    yield sock, tmp_path
    p.kill()
    p.wait()
    shutil.rmtree(short)


def test_double_refuses_what_firecracker_refuses(double):
    """The double holds a driver to the API's rules: strict bodies, ids, phases, empty bodies."""
    sock, tmp = double
    kernel = tmp / "vmlinux"
    kernel.write_bytes(b"\0" * 16)
    cases = [
        ("PUT", "/boot-source", None, b"", "Empty PUT request."),
        ("PUT", "/boot-source", {"kernel_image_path": str(kernel), "bogus": 1}, None,
         "unknown field `bogus`"),
        ("PUT", "/machine-config", {"vcpu_count": 1}, None, "missing field `mem_size_mib`"),
        ("PUT", "/machine-config", {"vcpu_count": "1", "mem_size_mib": 128}, None,
         "invalid type"),
        ("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 128}, None, "vCPU"),
        ("PUT", "/drives/root", {"drive_id": "other", "is_root_device": False,
                                 "path_on_host": str(kernel), "is_read_only": True}, None,
         "does not match"),
        ("PUT", "/drives/ro-ot", {"drive_id": "ro-ot", "is_root_device": False,
                                  "path_on_host": str(kernel), "is_read_only": True}, None,
         "alphanumeric"),
        ("PUT", "/drives/root", {"drive_id": "root", "is_root_device": False,
                                 "path_on_host": str(tmp / "missing"), "is_read_only": True},
         None, "Unable to open"),
        ("PUT", "/vsock", {"guest_cid": 2, "uds_path": str(tmp / "v.sock")}, None, "CID"),
        ("PUT", "/actions", {"action_type": "Pause"}, None, "unknown variant"),
        ("PUT", "/actions", {"action_type": "InstanceStart"}, None, "without kernel"),
        ("GET", "/nothing", None, None, "Invalid request method and/or path: GET nothing."),
        ("PATCH", "/vm", {"state": "Paused"}, None, "before starting"),
    ]
    for method, path, body, raw, fault in cases:
        status, out = api(sock, method, path, body, raw)
        assert status == 400 and fault in out["fault_message"], (method, path, status, out)
    assert api(sock, "PUT", "/boot-source", {"kernel_image_path": str(kernel)}) == (204, None)
    assert api(sock, "PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    assert api(sock, "GET", "/")[1]["state"] == "Running"
    status, out = api(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
    assert status == 400 and "after starting" in out["fault_message"]
    status, _ = api(sock, "PUT", "/boot-source", raw=b"x" * 60000)
    assert status == 413


def read_log(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


needs_vm = pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))


@pytest.fixture
def fc_ak(tmp_path, image):
    """A data directory whose microvm sandboxes use the firecracker driver and the double."""
    reg, ref = image
    # the double runs as the sandbox's hypervisor id: its log is where that id can write
    logdir = pathlib.Path(tempfile.mkdtemp(prefix="ak-fc-double-"))
    logdir.chmod(0o755)
    log = logdir / "log.jsonl"
    log.touch()
    log.chmod(0o666)
    ak = make_ak(tmp_path / "data", reg)
    ak.env.update(AGENTKERNEL_VM_DRIVER="firecracker", AGENTKERNEL_FIRECRACKER=str(DOUBLE),
                  FC_DOUBLE_LOG=str(log), FC_DOUBLE_QEMU=shutil.which("qemu-system-x86_64"))
    yield ak, ref, log
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    shutil.rmtree(logdir)
    assert not procs_naming(ak.data_dir), procs_naming(ak.data_dir)


@needs_vm
def test_a_sandbox_boots_and_runs_through_the_firecracker_api(fc_ak):
    """create -B microvm with the firecracker driver: every call conformant, in Firecracker's
    order (configuration, then InstanceStart), the hypervisor dropped to the sandbox's id, the
    agent reached over the hybrid vsock; exec works; remove leaves no process or directory."""
    ak, ref, log = fc_ak
    res = ak("create", "fc", "-B", "microvm", "--no-network", "-i", ref, "--memory", "256",
             timeout=300)
    assert res.rc == 0, (res.stderr[-3000:], log.read_text()[-3000:])
    res = ak("exec", "fc", "--", "sh", "-c", "uname -r; echo hi >&2; exit 7")
    assert res.rc == 7 and res.stdout.strip() != os.uname().release, res
    assert res.stderr.strip() == "hi"
    info = json.loads(ak("info", "fc", "--json", check=True).out)
    assert info.get("vm", {}).get("driver") == "firecracker", info
    entries = read_log(log)
    started = [e for e in entries if "started" in e]
    calls = [e for e in entries if "method" in e]
    assert len(started) == 1 and started[0]["started"]["uid"] != 0  # not root
    assert all(e["status"] in (200, 204) for e in calls), calls
    paths = [(e["method"], e["path"]) for e in calls]
    assert paths[-1] == ("PUT", "/actions") and calls[-1]["body"] == {
        "action_type": "InstanceStart"}
    assert {("PUT", "/boot-source"), ("PUT", "/machine-config"), ("PUT", "/drives/root"),
            ("PUT", "/vsock")} <= set(paths[:-1])
    machine = next(e["body"] for e in calls if e["path"] == "/machine-config")
    assert machine["mem_size_mib"] == 256
    drive = next(e["body"] for e in calls if e["path"] == "/drives/root")
    assert drive["is_read_only"] is True and drive["is_root_device"] is False
    assert any(e.get("vsock") == "CONNECT 52000" for e in entries)
    uuid = ak.state("fc")["uuid"]
    assert ak("remove", "fc").rc == 0
    assert_vm_gone(ak, "fc")
    assert not [p for p in procs_naming(uuid)], "firecracker left running"


@needs_vm
def test_a_hypervisor_that_refuses_the_configuration_leaves_nothing(fc_ak, tmp_path):
    """A call Firecracker refuses (here: a kernel the hypervisor's id cannot read, in a private
    directory) fails the start with Firecracker's own message; the record stays, stopped, as for
    any failed start, and no process, socket or file of the machine is left."""
    ak, ref, log = fc_ak
    kernel = tmp_path / "private" / "vmlinuz-custom"
    kernel.parent.mkdir(mode=0o700)
    shutil.copy(max(pathlib.Path("/boot").glob("vmlinuz-*")), kernel)
    ak.env["AGENTKERNEL_VM_KERNEL"] = str(kernel)
    res = ak("create", "bad", "-B", "microvm", "--no-network", "-i", ref, timeout=120)
    assert res.rc != 0
    assert "firecracker refused PUT /boot-source" in res.stderr, res.stderr
    assert "Unable to open the kernel file" in res.stderr, res.stderr
    refused = [e for e in read_log(log) if e.get("status") == 400]
    assert [e["path"] for e in refused] == ["/boot-source"]
    assert not [s for s in ak.list() if s["name"] == "bad" and s.get("status") == "running"]
    assert not procs_naming(ak.data_dir)
    assert not procs_naming(ak.state("bad")["uuid"])  # Firecracker's --id
    run_dir = ak.data_dir / "run" / "bad"
    assert not run_dir.exists() or not list(run_dir.glob("fc/*.sock"))
    assert ak("remove", "bad").rc == 0
    assert_vm_gone(ak, "bad")


@needs_vm
def test_cli_killed_once_firecracker_runs_is_cleaned_by_remove(fc_ak):
    """`kill -9` of the CLI as soon as Firecracker runs (before anything recorded it): remove
    finds the hypervisor by its working directory and ends it; nothing is left."""
    ak, ref, _ = fc_ak
    assert ak("images", "pull", ref, timeout=300).rc == 0
    p = ak.popen("create", "half", "-B", "microvm", "--no-network", "-i", ref,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    uuid = None
    while time.time() < deadline and p.poll() is None:
        try:
            uuid = uuid or ak.state("half")["uuid"]
        except Exception:  # not written yet
            pass
        if uuid and procs_naming(uuid):
            break
        time.sleep(0.005)
    p.kill()
    p.wait()
    assert uuid and "half" in ak.names()
    assert ak("remove", "half").rc == 0
    assert_vm_gone(ak, "half")
    deadline = time.time() + 10
    while procs_naming(uuid) and time.time() < deadline:
        time.sleep(0.1)
    assert not procs_naming(uuid), "firecracker left running"


@needs_vm
def test_pause_and_resume_through_the_firecracker_api(fc_ak):
    """pause is PATCH /vm {"state": "Paused"} (conformant: the double checks the body), status
    then says paused and exec is refused at once; resume is PATCH /vm {"state": "Resumed"} and
    exec works again; a paused machine is removed (the manager resumes it first, then ends it)
    and nothing is left."""
    ak, ref, log = fc_ak
    res = ak("create", "fcp", "-B", "microvm", "--no-network", "-i", ref, "--memory", "256",
             timeout=300)
    assert res.rc == 0, (res.stderr[-3000:], log.read_text()[-3000:])
    assert ak("pause", "fcp").rc == 0
    assert [s["status"] for s in ak.list() if s["name"] == "fcp"] == ["paused"]
    t = time.time()
    res = ak("exec", "fcp", "--", "true", timeout=30)
    assert res.rc != 0 and "paused" in res.stderr and time.time() - t < 10, res
    assert ak("resume", "fcp").rc == 0
    assert [s["status"] for s in ak.list() if s["name"] == "fcp"] == ["running"]
    assert ak("exec", "fcp", "--", "echo", "on", check=True).stdout == "on\n"
    vm_calls = [(e["body"], e["status"]) for e in read_log(log) if e.get("path") == "/vm"]
    assert vm_calls == [({"state": "Paused"}, 204), ({"state": "Resumed"}, 204)], vm_calls
    assert ak("pause", "fcp").rc == 0
    uuid = ak.state("fcp")["uuid"]
    assert ak("remove", "fcp", timeout=60).rc == 0
    assert_vm_gone(ak, "fcp")
    assert not procs_naming(uuid), "firecracker left running"
    vm_calls = [e["body"]["state"] for e in read_log(log) if e.get("path") == "/vm"]
    assert vm_calls == ["Paused", "Resumed", "Paused", "Resumed"], vm_calls
