# SPDX-License-Identifier: Apache-2.0
"""The microvm backend against real QEMU guests (TCG where KVM cannot run a guest).

Each VM boot costs ~2 s of CPU under emulation, so one VM (module scope) serves every test that
only works inside it; the tests that stop, crash or kill something boot their own. The image is
tests/oci.py's busybox base, pushed to a local registry and pulled by the backend itself.

What a test judges is only what it started: processes are ours when their command line names
this module's data directory (the VM's run directory sockets are in it).
"""
import hashlib
import json
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import time

import pytest

import oci
from conftest import STATIC_AGENT, Ak, agent_pids, assert_nothing_left, is_root


def _kernel():
    boot = pathlib.Path("/boot")
    return any(p.name.startswith("vmlinuz-") and
               (pathlib.Path("/usr/lib/modules") / p.name[8:]).is_dir()
               for p in boot.glob("vmlinuz-*")) if boot.is_dir() else False


_MISSING = [what for what, ok in (
    ("root", is_root()),
    ("qemu-system-x86_64 (apt-get install qemu-system-x86)", shutil.which("qemu-system-x86_64")),
    ("a guest kernel (apt-get install linux-image-cloud-amd64)", _kernel()),
    ("mkfs.erofs (apt-get install erofs-utils)", shutil.which("mkfs.erofs")),
    ("umoci, skopeo, docker-registry (scripts/deps.sh)", oci.tools_present()),
    ("a static agent (build ./build)", STATIC_AGENT),
) if not ok]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))


def procs_naming(path):
    """Pids of processes whose command line mentions path (ours: path is a test directory)."""
    found = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmd and int(d.name) != os.getpid():
            found.append(int(d.name))
    return found


def assert_vm_gone(ak, name):
    run_dir = ak.data_dir / "run" / name
    deadline = time.time() + 10
    while (procs_naming(run_dir) or run_dir.exists()) and time.time() < deadline:
        time.sleep(0.1)
    assert not procs_naming(run_dir), f"processes left: {procs_naming(run_dir)}"
    assert not run_dir.exists(), list(run_dir.iterdir())


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vm-oci")
    reg = oci.Registry(tmp / "registry")
    layout = oci.Layout(tmp / "layout")
    oci.build_base(layout, "base", tmp / "bundles")
    ref = reg.push(layout.path, "base", "test/base:1")
    yield reg, ref
    reg.stop()


def make_ak(path, reg):
    ak = Ak(path)
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    reg.configure(ak.env)
    return ak


@pytest.fixture(scope="module")
def vm(tmp_path_factory, image):
    """One running VM (2 vCPUs, 256 MB) for the tests that only work inside it."""
    reg, ref = image
    before = set(agent_pids())
    ak = make_ak(tmp_path_factory.mktemp("vm") / "data", reg)
    res = ak("create", "vm", "-B", "microvm", "--no-network", "-i", ref, "--memory", "256",
             "--cpus", "2", timeout=300)
    assert res.rc == 0, res
    yield ak, "vm"
    uuid = ak.state("vm")["uuid"]
    assert ak("remove", "vm").rc == 0
    assert_vm_gone(ak, "vm")
    assert_nothing_left(ak, [uuid])
    time.sleep(0.2)
    assert not set(agent_pids()) - before  # no relay left


@pytest.fixture
def own(tmp_path, image):
    """A data directory for a test that boots its own VM; checks nothing of it is left."""
    reg, ref = image
    before = set(agent_pids())
    ak = make_ak(tmp_path / "data", reg)
    yield ak, ref
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    assert not procs_naming(ak.data_dir), procs_naming(ak.data_dir)
    assert_nothing_left(ak, [])
    time.sleep(0.2)
    assert not set(agent_pids()) - before  # no relay left


def test_refusals_are_clear_and_record_nothing(own):
    """What the backend cannot do is refused with the reason: a direct network (`full`: the VM's
    network is `proxy` only, test_microvm_net.py) at the start (the record stays, stopped, as
    for any start that fails), with no VM started. (The host image and host directories work
    through virtiofsd: test_microvm_shares.py.)"""
    ak, ref = own
    res = ak("create", "n", "-B", "microvm", "--network=full", "-i", ref, timeout=300)
    assert res.rc != 0 and "no direct network" in res.stderr, res
    assert [s["status"] for s in ak.list()] == ["stopped"]
    # a dynamically linked agent cannot be a guest's /init (nothing there loads its libraries)
    res = ak("run", "-B", "microvm", "--no-network", "-i", ref, "--", "true",
             env={"AGENTKERNEL_AGENT": "/bin/true"})
    assert res.rc != 0 and "dynamic" in res.stderr, res
    assert not procs_naming(ak.data_dir)


def test_exec_argv_exit_codes_signals_stdin_streams(vm):
    """Exact argv (spaces, empty strings), exit codes, a signal as 128+n, stdin, and stdout and
    stderr kept apart: the same product as every backend, through the guest's agent."""
    ak, name = vm
    res = ak("exec", name, "--", "sh", "-c", 'for a in "$@"; do echo "[$a]"; done', "x",
             "a b", "", "  c")
    assert res.rc == 0 and res.stdout == "[a b]\n[]\n[  c]\n", res
    res = ak("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (res.rc, res.stdout, res.stderr) == (7, "out\n", "err\n"), res
    res = ak("exec", name, "--", "sh", "-c", "kill -TERM $$")
    assert res.rc == 128 + signal.SIGTERM, res
    data = os.urandom(300_000)
    res = ak("exec", name, "--", "md5sum", input=data)
    assert res.rc == 0 and res.stdout.split()[0] == hashlib.md5(data).hexdigest(), res


def test_files_in_and_out(vm, tmp_path):
    """`cp` both ways, byte for byte (a multi-frame binary file)."""
    ak, name = vm
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(1_500_000))
    assert ak("cp", src, f"{name}:/tmp/in.bin").rc == 0
    assert ak("exec", name, "--", "cat", "/tmp/in.bin", check=True).out == src.read_bytes()
    back = tmp_path / "back.bin"
    assert ak("cp", f"{name}:/tmp/in.bin", back).rc == 0
    assert back.read_bytes() == src.read_bytes()


def test_tty_and_detached_commands(vm):
    """A terminal (the guest's devpts: `tty`, its size) and a detached command whose record and
    output outlive the connection that started it (the agent's private state in the guest)."""
    import pty
    ak, name = vm
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(ak_bin(), ["agentkernel", "exec", "-t", name, "--", "sh", "-c",
                             "tty; busybox stty size; exit 4"], ak.env)
    out = b""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 4, out
    assert out.startswith(b"/dev/pts/") and b"24 80" in out, out
    res = ak("exec", "-d", name, "--", "sh", "-c", "echo bg; sleep 0.5; echo done")
    assert res.rc == 0, res
    cid = json.loads(res.out)["id"]
    deadline = time.time() + 30
    while "completed" not in ak("exec-list", name).stdout and time.time() < deadline:
        time.sleep(0.2)
    assert ak("exec-logs", name, cid, check=True).stdout == "bg\ndone\n"


def ak_bin():
    from conftest import AK
    return AK


def test_guest_has_its_own_kernel_processes_and_files(vm, tmp_path):
    """The guest runs its own kernel (its /proc/version is not the host's), sees none of the
    host's processes (its PID 1 is our agent, /init) and none of the host's files."""
    ak, name = vm
    host_version = pathlib.Path("/proc/version").read_text()
    guest_version = ak("exec", name, "--", "cat", "/proc/version", check=True).stdout
    assert guest_version != host_version
    assert guest_version.startswith("Linux version")
    marker = tmp_path / "host-only-marker"
    marker.write_text("host\n")
    res = ak("exec", name, "--", "sh", "-c",
             f"cat /proc/1/cmdline | busybox tr '\\0' ' '; echo; ls /proc | busybox grep -c "
             f"'^[0-9]'; test -e {marker} && echo SEEN || echo unseen")
    lines = res.stdout.splitlines()
    assert res.rc == 0 and lines[0].startswith("/init --guest"), res
    assert int(lines[1]) < 150, res  # a fresh guest: kernel threads and the agent's
    assert lines[2] == "unseen", res
    # no host process is there: not this test, not the hypervisor
    res = ak("exec", name, "--", "sh", "-c", "cat /proc/*/cmdline 2>/dev/null | busybox tr '\\0' ' '")
    assert "pytest" not in res.stdout and "qemu" not in res.stdout, res


def test_vm_size_and_memory_hog_killed_inside_while_the_vm_survives(vm):
    """--cpus and --memory size the VM. A command that wants more memory than the VM (256 MB) has left is OOM-killed by the
    guest's kernel; the VM and its agent go on; the hypervisor's resident memory stays near
    the VM's size."""
    ak, name = vm
    sizes = ak("exec", name, "--", "sh", "-c", "busybox nproc; busybox head -1 /proc/meminfo",
               check=True).stdout.split()
    assert sizes[0] == "2", sizes  # --cpus
    assert 200 * 1024 < int(sizes[2]) <= 256 * 1024, sizes  # --memory: MemTotal in kB
    # dd's one buffer (touched by the read) is a little less than the guest's RAM, so the
    # allocation succeeds and the guest's OOM killer ends it (sized from MemTotal: a guest
    # kernel with less of its own, the minimal one, has 200 MB free in 256 MB)
    buf_mb = int(sizes[2]) // 1024 - 8
    res = ak("exec", name, "--", "busybox", "dd", "if=/dev/zero", "of=/dev/null",
             f"bs={buf_mb}M", "count=1", timeout=300)
    assert res.rc == 128 + signal.SIGKILL, res
    assert ak("exec", name, "--", "echo", "alive", check=True).stdout == "alive\n"
    rt = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())
    status = pathlib.Path(f"/proc/{rt['vmm']['pid']}/status").read_text()
    rss_kb = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
    assert rss_kb < (256 + buf_mb) * 1024, rss_kb


def _metrics(ak, name):
    from serve_client import Server
    s = Server(ak)
    try:
        st, _, raw = s.exchange("GET", "/metrics")
        stats_st, _, stats_raw = s.exchange("GET", "/stats")
    finally:
        s.stop()
    assert st == 200 and stats_st == 200, raw
    values = {}
    for line in raw.decode().splitlines():
        if line.startswith("agentkernel_sandbox_") and f'sandbox="{name}"' in line:
            values[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return values, json.loads(stats_raw)["data"]


def _wait_pids(ak, name, at_least):
    deadline = time.time() + 20
    while True:
        after, _ = _metrics(ak, name)
        if after["agentkernel_sandbox_pids"] >= at_least:
            return
        assert time.time() < deadline, (at_least, after)
        time.sleep(0.5)


def test_stats_are_the_hosts_processes_and_the_guests_own_view(vm):
    """/metrics for a VM: memory and CPU are the host processes' (QEMU and the relay: their
    PSS and CPU time, what the VM costs the host, tens of MiB at least under TCG), pids and the
    guest_* figures the guest's as its agent counts them (user-space processes, the agent
    included; the guest's MemTotal within its 256 MB). A command left running in the guest is
    one more process; /stats sums the host memory."""
    ak, name = vm
    before, stats = _metrics(ak, name)
    assert 8 << 20 < before["agentkernel_sandbox_memory_bytes"] < 2 << 30, before
    assert before["agentkernel_sandbox_cpu_seconds_total"] > 0, before
    assert 1 <= before["agentkernel_sandbox_pids"] < 64, before
    assert 128 << 20 < before["agentkernel_sandbox_guest_memory_total_bytes"] <= 256 << 20, before
    assert 0 < before["agentkernel_sandbox_guest_memory_bytes"] < \
        before["agentkernel_sandbox_guest_memory_total_bytes"], before
    assert stats["resource_usage"]["memory_used_mb"] >= 8, stats
    res = ak("exec", "-d", name, "--", "sleep", "300")
    assert res.rc == 0, res
    try:
        _wait_pids(ak, name, before["agentkernel_sandbox_pids"] + 1)
    finally:
        ak("exec", name, "--", "sh", "-c", "busybox pkill -f 'sleep 300' || true")


def test_a_guest_process_named_like_a_kernel_thread_is_counted(vm):
    """A command cannot hide from the VM's process count by its name: a process whose name
    holds ')' and a forged rest of a /proc stat line (state, parents, PF_KTHREAD flags) is
    still counted (the agent parses the stat after the last ')'; parsed after the first, the
    forged line does not parse and the process went uncounted)."""
    ak, name = vm
    before, _ = _metrics(ak, name)
    fake = "/tmp/x) S 2 0 0 0 -1 2129984 "
    res = ak("exec", "-d", name, "--", "sh", "-c",
             f"printf '#!/bin/sh\\nbusybox sleep 300\\n' > '{fake}' && chmod +x '{fake}' && "
             f"exec '{fake}'")
    assert res.rc == 0, res
    try:
        # the detached command's supervisor, the renamed script and its sleep
        _wait_pids(ak, name, before["agentkernel_sandbox_pids"] + 3)
    finally:
        ak("exec", name, "--", "sh", "-c", "busybox pkill -f 'x) S' || true")


def test_host_processes_of_a_vm_run_without_root(vm):
    """What the guest talks to on the host runs with no host privilege: the relay, which parses
    the guest's frames (an id of the sandbox's own range, no groups, no_new_privs), and QEMU,
    whose device models the guest drives (another id of that range, QEMU's seccomp filter)."""
    ak, name = vm
    rt = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())
    status = pathlib.Path(f"/proc/{rt['vmm']['pid']}/status").read_text()
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    uids = fields["Uid"].split()
    assert all(u == uids[0] for u in uids) and int(uids[0]) >= 0x40000000, fields["Uid"]
    assert fields["Seccomp"].strip() == "2", fields["Seccomp"]
    status = pathlib.Path(f"/proc/{rt['relay']['pid']}/status").read_text()
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    uids = fields["Uid"].split()
    assert all(u == uids[0] for u in uids) and int(uids[0]) >= 0x40000000, fields["Uid"]
    assert fields["Groups"].strip() == "" and fields["NoNewPrivs"].strip() == "1"


def test_guest_console_flood_is_bounded(own):
    """A guest that writes its serial console without end cannot fill the host's disk: the
    host keeps at most 1 MiB of it, and the VM goes on. Commands have no console device (their
    /dev is minimal: tests/security/sandbox/test_microvm_escape.py), so this guest's commands
    run as a broken-out guest root would (AGENTKERNEL_TEST_VM_GUEST_ROOT: every capability, no
    filter) and make the node themselves."""
    ak, ref = own
    ak.env["AGENTKERNEL_TEST_VM_GUEST_ROOT"] = "1"
    res = ak("create", "flood", "-B", "microvm", "--no-network", "-i", ref, "--memory", "256",
             timeout=300)
    assert res.rc == 0, res
    res = ak("exec", "flood", "--", "sh", "-c",
             "busybox mknod /dev/ttyS0 c 4 64 && busybox dd if=/dev/zero of=/dev/ttyS0 bs=64k "
             "count=40", timeout=300)
    assert res.rc == 0, res
    assert (ak.data_dir / "run" / "flood" / "console.log").stat().st_size <= 1 << 20
    assert ak("exec", "flood", "--", "echo", "alive", check=True).stdout == "alive\n"


def test_run_is_ephemeral(own):
    """`run` boots a VM for one command and leaves nothing: no process, no run directory."""
    ak, ref = own
    res = ak("run", "-B", "microvm", "--no-network", "-i", ref, "--", "sh", "-c",
             "busybox uname -r; exit 5", timeout=300)
    assert res.rc == 5 and res.stdout.strip() != os.uname().release, res
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not eph.exists() or list(eph.iterdir()) == []
    assert not procs_naming(ak.data_dir)


def test_stop_start_remove_leave_nothing(own):
    """stop ends the hypervisor and the relay and removes the run directory (sockets, initrd,
    console); start boots again; remove leaves nothing."""
    ak, ref = own
    assert ak("create", "life", "-B", "microvm", "--no-network", "-i", ref, timeout=300).rc == 0
    run_dir = ak.data_dir / "run" / "life"
    assert (run_dir / "agent.sock").exists() and len(procs_naming(run_dir)) == 1  # qemu
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    for sock in ("agent.sock", "vm.sock"):
        assert oct((run_dir / sock).stat().st_mode & 0o777) == "0o600", sock
    ak("exec", "life", "--", "touch", "/tmp/scratch", check=True)
    assert ak("stop", "life").rc == 0
    assert_vm_gone(ak, "life")
    assert ak.list()[0]["status"] == "stopped"
    assert ak("start", "life", timeout=300).rc == 0
    # the writable layer is the VM's memory: a start begins from the image again
    assert ak("exec", "life", "--", "sh", "-c", "test -e /tmp/scratch").rc == 1
    assert ak("remove", "life").rc == 0
    assert_vm_gone(ak, "life")


def test_qemu_killed_from_outside_is_noticed(own):
    """A hypervisor killed by someone else: the sandbox shows as stopped, its info says the VM
    crashed and why, exec says it is not running, and remove cleans everything (the relay too)."""
    ak, ref = own
    assert ak("create", "crash", "-B", "microvm", "--no-network", "-i", ref, timeout=300).rc == 0
    rt = json.loads((ak.data_dir / "run" / "crash" / "runtime.json").read_text())
    os.kill(rt["vmm"]["pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while ak.list()[0]["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.1)
    info = json.loads(ak("info", "crash", "--json", check=True).out)
    assert info["status"] == "stopped", info
    assert info["vm"]["state"] == "crashed" and "exited" in info["vm"]["reason"], info
    res = ak("exec", "crash", "--", "true")
    assert res.rc != 0 and "not running" in res.stderr, res
    assert ak("remove", "crash").rc == 0
    assert_vm_gone(ak, "crash")


def test_cli_killed_mid_create_is_cleaned_by_remove(own):
    """`kill -9` of the CLI while the VM boots: list reports the sandbox, and remove leaves no
    qemu, relay, socket or disk."""
    ak, ref = own
    assert ak("images", "pull", ref, timeout=300).rc == 0
    p = ak.popen("create", "half", "-B", "microvm", "--no-network", "-i", ref,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = ak.data_dir / "run" / "half"
    deadline = time.time() + 120
    while not procs_naming(run_dir) and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.kill()
    p.wait()
    assert "half" in ak.names()
    assert ak("remove", "half").rc == 0
    assert_vm_gone(ak, "half")


def test_run_fast_takes_a_booted_machine_and_pool_clear_ends_the_rest(own):
    """run --fast: the first run boots its own machine and has the pool filled behind it; the
    next takes a machine booted before it started (the guest's uptime exceeds the run's whole
    duration, which a fresh boot cannot), used once; `pool clear` ends the idle ones and leaves
    no process or directory."""
    ak, ref = own
    assert ak("images", "pull", ref, timeout=300).rc == 0
    run = ["run", "--fast", "-B", "microvm", "--no-network", "-i", ref, "--memory", "192", "--",
           "cat", "/proc/uptime"]
    res = ak(*run, timeout=300)
    assert res.rc == 0, res
    eph = ak.data_dir / "run" / ".ephemeral"
    deadline = time.time() + 240
    while len(list(eph.glob("pv-*/vm-*/pool-ready"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(list(eph.glob("pv-*/vm-*/pool-ready"))) == 2, list(eph.rglob("*"))
    t0 = time.monotonic()
    res = ak(*run, timeout=300)
    took = time.monotonic() - t0
    assert res.rc == 0, res
    assert float(res.stdout.split()[0]) > took, (res.stdout, took)
    # used once: that machine is gone, its run directory too; the refill brings the pool back
    res = ak("pool", "clear", "-B", "microvm")
    assert res.rc == 0 and "microvm: removed" in res.stdout, res
    assert not list(eph.glob("pv-*")), list(eph.rglob("*"))
    assert not list(eph.glob("vm-*")), list(eph.iterdir())
    deadline = time.time() + 10
    while procs_naming(ak.data_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert not procs_naming(ak.data_dir), [
        pathlib.Path(f"/proc/{p}/cmdline").read_bytes()[:300] for p in procs_naming(ak.data_dir)]


TICKER = "echo $$ > /tmp/c.pid; while :; do echo . >> /tmp/c; sleep 0.1; done"


def guest_count_and_uptime(ak, name):
    """The ticker's count (bytes of /tmp/c) and the guest's uptime, in one exec."""
    res = ak("exec", name, "--", "sh", "-c", "busybox wc -c < /tmp/c; cut -d' ' -f1 /proc/uptime")
    assert res.rc == 0, res
    count, uptime = res.stdout.split()
    return int(count), float(uptime)


def test_pause_stops_the_guest_and_resume_continues_it(vm):
    """pause stops every vCPU through QEMU's QMP (`stop`): the guest's clock does not advance
    while paused (its uptime across a 2 s pause grows by less than the host's time minus 1.5 s)
    nor does a detached counter loop; list/info say paused; work for the agent is refused at
    once; the monitor's socket is the owner's only. resume (`cont`) goes on with the same
    processes."""
    ak, name = vm
    run_dir = ak.data_dir / "run" / name
    assert ak("exec", "-d", name, "--", "sh", "-c", TICKER).rc == 0
    deadline = time.time() + 30
    while ak("exec", name, "--", "sh", "-c", "test -s /tmp/c").rc != 0 and time.time() < deadline:
        time.sleep(0.2)
    qmp = run_dir / "qmp.sock"
    st = qmp.lstat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    h0 = time.monotonic()
    c0, u0 = guest_count_and_uptime(ak, name)
    res = ak("pause", name)
    try:
        assert res.rc == 0 and res.stdout == f"Paused sandbox '{name}'\n", res
        [s] = [s for s in ak.list() if s["name"] == name]
        assert s["status"] == "paused", s
        info = json.loads(ak("info", name, "--json", check=True).out)
        assert info["status"] == "paused" and info["vm"]["state"] == "paused", info
        t = time.time()
        res = ak("exec", name, "--", "true", timeout=30)
        assert res.rc != 0 and "paused" in res.stderr, res
        assert time.time() - t < 10, "a paused VM's exec waited"
        assert "already paused" in ak("pause", name).stdout
        time.sleep(2)
    finally:
        res = ak("resume", name)
    assert res.rc == 0 and res.stdout == f"Resumed sandbox '{name}'\n", res
    c1, u1 = guest_count_and_uptime(ak, name)
    host = time.monotonic() - h0
    assert u1 - u0 < host - 1.5, (u0, u1, host)  # the guest's time stood still
    assert c1 - c0 <= (u1 - u0) / 0.1 + 3, (c0, c1, u0, u1)
    assert not (run_dir / "paused").exists()
    assert [s["status"] for s in ak.list() if s["name"] == name] == ["running"]
    time.sleep(1)
    c2, _ = guest_count_and_uptime(ak, name)
    assert c2 > c1, (c1, c2)  # the same loop goes on
    assert "not paused" in ak("resume", name).stdout
    ak("exec", name, "--", "sh", "-c", "kill $(cat /tmp/c.pid); rm -f /tmp/c /tmp/c.pid")


def test_a_paused_marker_that_is_not_the_hosts_is_not_believed(vm):
    """status reads the host's paused marker back: one that names another hypervisor process,
    or is not a private file of the owner's, does not make a running VM 'paused'."""
    ak, name = vm
    run_dir = ak.data_dir / "run" / name
    marker = run_dir / "paused"
    rt = json.loads((run_dir / "runtime.json").read_text())
    real = f"{rt['vmm']['pid']} {rt['vmm']['start_time']}\n"
    try:
        for text, mode, uid in ((f"{rt['vmm']['pid']} 1\n", 0o600, 0), ("1 1\n", 0o600, 0),
                                (real, 0o666, 0), (real, 0o600, 65534)):
            marker.write_text(text)
            marker.chmod(mode)
            os.chown(marker, uid, uid)
            [s] = [s for s in ak.list() if s["name"] == name]
            assert s["status"] == "running", (text, oct(mode), uid, s)
        os.chown(marker, 0, 0)  # the real one: believed (the check is not simply 'never')
        [s] = [s for s in ak.list() if s["name"] == name]
        assert s["status"] == "paused", s
    finally:
        marker.unlink()
    assert ak("exec", name, "--", "true").rc == 0
