# SPDX-License-Identifier: Apache-2.0
"""The native escape probes against the microvm backend: a hostile command inside a VM.

The guest's agent applies the sandbox's profile to every command it starts, as `native` applies
it to the whole sandbox: the profile's seccomp filter (after no_new_privs), its capabilities,
`pids_max` (one cgroup v2 for the commands) and `read_only_root`; the guest's kernel knobs
(/proc/sys, sysrq-trigger, /sys) are read-only and it runs no usermode modprobe. A guest has no
Python, so the probes are tests/security/sandbox/escape_probe.c, compiled static here and copied
into the VM. Each TCG boot costs ~2 s of CPU: two module VMs (restrictive, moderate) serve every
probe, and one more checks that a `[security] seccomp` override reaches the guest.
Which of the native suite's probes apply inside a VM, and why the others do not: docs/backends.md.
"""
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from conftest import agent_pids, assert_nothing_left

HERE = pathlib.Path(__file__).parent
_INTEGRATION = str(HERE.parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
from test_microvm import _MISSING as _VM_MISSING, image, make_ak  # noqa: E402,F401


_CC = shutil.which("musl-gcc") or shutil.which("gcc")
_MISSING = _VM_MISSING + ([] if _CC else ["a C compiler for the probe (musl-gcc or gcc)"])
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """escape_probe.c, static (the guest has no libraries of ours)."""
    out = tmp_path_factory.mktemp("probe") / "escape-probe"
    subprocess.run([_CC, "-static", "-O1", "-o", str(out), str(HERE / "escape_probe.c")],
                   check=True, capture_output=True)
    return out


def _boot(ak, name, ref, probe, *flags, cwd=None):
    res = ak("create", name, "-B", "microvm", "-i", ref, "--cpus", "2", *flags, timeout=300,
             cwd=cwd)
    assert res.rc == 0, res
    assert ak("cp", probe, f"{name}:/tmp/probe").rc == 0
    return name


def _remove_all(ak, names):
    uuids = [ak.state(n)["uuid"] for n in names]
    for n in names:
        assert ak("remove", n, timeout=60).rc == 0
    assert_nothing_left(ak, uuids)


@pytest.fixture(scope="module")
def vms(tmp_path_factory, image, probe):
    """Two VMs of one data directory: `tight` (restrictive: allow-list filter, no
    capabilities, 256 pids, read-only root) and `mod` (moderate: deny-list filter, CHOWN,
    SETUID and SETGID, 1024 pids, writable root)."""
    reg, ref = image
    before = set(agent_pids())
    ak = make_ak(tmp_path_factory.mktemp("vms") / "data", reg)
    names = []
    try:
        names.append(_boot(ak, "tight", ref, probe, "--profile", "restrictive", "--memory", "256"))
        names.append(_boot(ak, "mod", ref, probe, "--profile", "moderate", "--no-network",
                           "--memory", "256"))
        yield ak
    finally:
        _remove_all(ak, names)
        time.sleep(0.2)
        assert not set(agent_pids()) - before  # no relay left


def sh(ak, name, script, **kw):
    return ak("exec", name, "--", "sh", "-c", script, timeout=120, **kw)


def probes(ak, name):
    res = ak("exec", name, "--", "/tmp/probe", timeout=120)
    assert res.rc == 0, res
    return dict(l.split(" ", 1) for l in res.stdout.splitlines())


# Refused by every profile's filter (or, where a filter allows the call, by the missing
# capability): the native suite's SYSCALL_PROBE and more that only matter with a kernel of one's
# own (kexec, modules, reboot, swap).
REFUSED = ["unshare-user", "unshare-mount", "unshare-net", "setns", "mount", "umount",
           "pivot_root", "chroot", "ptrace", "process_vm_readv", "bpf", "keyctl", "add_key",
           "open_tree", "fsopen", "move_mount", "perf_event_open", "userfaultfd", "io_uring_setup",
           "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
           "reboot", "swapon", "mknod-mem", "socket-raw", "tiocsti", "tiocsti-high"]
# What the filter alone decides (the same in a native sandbox of the same profile and image).
FILTER_DECIDES = REFUSED + ["clone3", "socket-packet", "socket-vsock", "vmsplice", "mq_open"]
PROFILE_OF = {"tight": "restrictive", "mod": "moderate"}


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_escape_syscalls_are_refused_in_the_guest(vms, name):
    """A command in the VM tries to leave its profile by the kernel's door: namespaces, mounts
    (old and new API), ptrace and process_vm_readv of PID 1 (the agent), bpf, keys, perf,
    userfaultfd, io_uring, kexec, module loading and unloading, reboot, swap, mknod of /dev/mem,
    raw, packet and vsock sockets, TIOCSTI (high bits too). Every one fails with EPERM/EACCES (sockets of a family a
    sandbox does not need: EAFNOSUPPORT; clone3: ENOSYS so libc falls back to clone, whose flags
    the filter checks), as in a native sandbox."""
    out = probes(vms, name)
    for p in REFUSED:
        assert out[p] in ("EPERM", "EACCES"), (p, out)
    assert out["clone3"] == "ENOSYS", out
    assert out["socket-packet"] == "EAFNOSUPPORT" and out["socket-vsock"] == "EAFNOSUPPORT", out
    if PROFILE_OF[name] == "restrictive":  # an allow-list: what it does not name is refused
        assert out["vmsplice"] == "EPERM" and out["mq_open"] == "EPERM", out
    else:  # a deny-list: the rest works
        assert out["vmsplice"] == "EBADF" and out["mq_open"] == "ok", out


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_same_profile_same_filter_as_native(vms, image, probe, name):
    """The same profile means the same filter inside a VM as in a native sandbox: every probe the
    filter decides has the same outcome in both (the VM's guest applies the program the host
    compiled for the profile, not a copy of its own)."""
    _, ref = image
    ak, profile = vms, PROFILE_OF[name]
    native = f"native-{name}"
    flags = ["--no-network"] if profile != "restrictive" else []
    assert ak("create", native, "-B", "native", "-i", ref, "--profile", profile, *flags,
              timeout=300).rc == 0
    try:
        assert ak("cp", probe, f"{native}:/tmp/probe").rc == 0
        theirs = probes(ak, native)
    finally:
        assert ak("remove", native).rc == 0
    ours = probes(ak, name)
    assert {p: ours[p] for p in FILTER_DECIDES} == {p: theirs[p] for p in FILTER_DECIDES}


@pytest.mark.parametrize("name,caps", [("tight", 0), ("mod", 0xc1)])
def test_commands_have_no_new_privs_the_filter_and_the_profiles_caps(vms, name, caps):
    """Every command the guest's agent starts has no_new_privs, a seccomp filter (mode 2), the
    profile's capabilities and nothing ambient, and sits in the commands' cgroup (not the
    agent's): what a native sandbox's commands have."""
    res = sh(vms, name, "grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status;"
                        " cat /proc/self/cgroup")
    lines = res.stdout.splitlines()
    fields = dict(l.split(":\t") for l in lines if ":\t" in l)
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", res
    assert int(fields["CapBnd"], 16) == caps and int(fields["CapEff"], 16) == caps, res
    assert int(fields["CapAmb"], 16) == 0, res
    assert "0::/commands" in lines, res
    # a detached command too (another path through the agent)
    res = vms("exec", "-d", name, "--", "sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' "
              "/proc/self/status > /tmp/detached; cat /proc/self/cgroup >> /tmp/detached")
    assert res.rc == 0, res
    deadline = time.time() + 30
    while time.time() < deadline:
        out = sh(vms, name, "cat /tmp/detached 2>/dev/null").stdout
        if "/commands" in out:
            break
        time.sleep(0.2)
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out and "0::/commands" in out, out


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_agent_cannot_be_read_or_traced(vms, name):
    """PID 1 is the agent (the guest's init, outside the commands' cgroup, with capabilities no
    command has): a command (root in the guest too) may see its fd numbers but cannot follow or
    open them (its channel port, its detached private directory), nor read its environment or
    memory: each needs ptrace access to PID 1."""
    res = sh(vms, name, "for f in /proc/1/fd/*; do readlink $f; ls $f/ 2>/dev/null;"
                        " cat $f </dev/null | head -c 1; done 2>&1;"
                        " cat /proc/1/environ 2>&1 | head -c 50; echo;"
                        " head -c 1 /proc/1/mem 2>&1; ls /proc/1/root/ 2>&1")
    out = res.stdout
    assert "PATH=" not in out and "/dev/" not in out and "agent.sock" not in out, res
    assert out.count("Permission denied") >= 4, res


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_foreign_architecture_syscall_kills_the_command(vms, name):
    """An x32 system call (a second syscall table a filter written for x86_64 could miss) kills
    the command with SIGSYS before it returns, as natively."""
    res = vms("exec", name, "--", "/tmp/probe", "x32", timeout=120)
    assert res.rc == 128 + 31 and "returned" not in res.stdout, res


def test_read_only_root_refuses_writes_outside_the_writable_places(vms, probe):
    """restrictive has a read-only root: a command (root in the guest, no capabilities) cannot
    write /etc, /bin, /srv, / or replace a program; /tmp, /run and /dev/shm stay writable, as
    natively. The agent's own file routes meet the same read-only root. The moderate VM's root
    stays writable (the control)."""
    for path in ("/etc/passwd", "/etc/new", "/bin/sh", "/srv/marker", "/new", "/root/x"):
        res = sh(vms, "tight", f"echo pwned > {path}")
        assert res.rc != 0 and "Read-only file system" in res.stderr, (path, res)
    for cmd in ("mkdir /x", "rm /bin/cat", "ln -s /tmp /evil", "mv /srv /srv2", "chmod 777 /etc",
                "touch /etc/passwd"):
        res = sh(vms, "tight", cmd)
        assert res.rc != 0 and "Read-only file system" in res.stderr, (cmd, res)
    assert sh(vms, "tight", "cat /etc/passwd").stdout.startswith("root:x:0:0:"), "unchanged"
    res = sh(vms, "tight", "for d in /tmp /run /dev/shm; do echo ok > $d/w && cat $d/w; done")
    assert res.rc == 0 and res.stdout == "ok\nok\nok\n", res
    assert vms("cp", probe, "tight:/etc/planted").rc != 0
    assert sh(vms, "tight", "test -e /etc/planted").rc != 0
    res = sh(vms, "mod", "echo written > /etc/new && cat /etc/new")
    assert res.rc == 0 and res.stdout == "written\n", res


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_guest_kernel_knobs_are_read_only(vms, name):
    """A command cannot reconfigure the guest's kernel, which would run programs of its choosing
    as full root outside the profile (core_pattern, modprobe, uevent_helper) or end the VM
    (sysrq): /proc/sys, /proc/sysrq-trigger and /sys are read-only, as natively, and the kernel
    runs no usermode modprobe (its path is empty)."""
    out = probes(vms, name)
    # the minimal guest kernel has no sysrq at all (CONFIG_MAGIC_SYSRQ off): nothing to open
    sysrq = "EROFS" if sh(vms, name, "test -e /proc/sysrq-trigger").rc == 0 else "ENOENT"
    assert out["proc-sys-write"] == "EROFS" and out["sysrq-trigger-open"] == sysrq, out
    for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
                 "/proc/sys/vm/drop_caches", "/sys/kernel/uevent_helper", "/proc/sysrq-trigger"):
        if sh(vms, name, f"test -e {path}").rc != 0:
            continue  # not in this kernel (uevent_helper: CONFIG_UEVENT_HELPER)
        res = sh(vms, name, f"echo '|/tmp/probe' > {path}")
        assert res.rc != 0 and "Read-only file system" in res.stderr, (path, res)
    res = sh(vms, name, "cat /proc/sys/kernel/modprobe; cat /proc/sys/kernel/core_pattern")
    # the minimal guest kernel has no modules, hence no usermode modprobe and no such file
    modprobe = "\n" if sh(vms, name, "test -e /proc/sys/kernel/modprobe").rc == 0 else ""
    assert res.stdout == modprobe + "core\n", res


def test_guest_sees_no_host_network(vms):
    """No host network: the guest has no network device but loopback (there is none to reach the
    host through; the channel to the host is the agent's virtio-serial port, which the agent
    holds open and no command can open: virtio_console allows one opener)."""
    res = sh(vms, "mod", "ls /sys/class/net; for p in /dev/vport*; do cat $p; echo rc=$?; done")
    assert res.stdout.split()[0] == "lo" and "rc=0" not in res.stdout, res


@pytest.mark.parametrize("name,limit", [("tight", 256), ("mod", 1024)])
def test_pids_max_holds_and_the_vm_stays_usable(vms, name, limit):
    """A fork bomb in the VM stops at the profile's pids_max (the commands' cgroup, the bomb
    included: limit - 1 children), and while the bomb holds every slot the VM still answers: a
    new command starts (the agent is outside the cgroup) but cannot fork; after it the VM
    forks again."""
    bomb = vms.popen("exec", name, "--", "/tmp/probe", "bomb", "hold",
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = bomb.stdout.readline().decode()
        assert line.split()[:1] == ["forked"], (line, bomb.stderr.read1() if bomb.poll() else "")
        n, err = int(line.split()[1]), line.split()[2]
        assert n == limit - 1 and err == "EAGAIN", line
        res = vms("exec", name, "--", "echo", "alive", timeout=120)
        assert res.rc == 0 and res.stdout == "alive\n", res
        res = sh(vms, name, "sleep 0 & wait $!; echo forked=$?")
        assert "forked=0" not in res.stdout, res
    finally:
        bomb.stdin.close()
        assert bomb.wait(timeout=120) == 0
    res = sh(vms, name, "sleep 0 & wait $!; echo forked=$?")
    assert res.stdout == "forked=0\n", res


def test_seccomp_override_reaches_the_guest(tmp_path, image, probe):
    """`[security] seccomp = "ai-agent"` on a moderate sandbox: the guest applies ai-agent's
    allow-list, not moderate's deny-list (vmsplice refused, mq_open allowed: ai-agent's extra),
    as a native sandbox would."""
    reg, ref = image
    ak = make_ak(tmp_path / "data", reg)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "agentkernel.toml").write_text('[security]\nseccomp = "ai-agent"\nnetwork = false\n')
    assert ak("trust", "--yes", proj / "agentkernel.toml").rc == 0
    try:
        _boot(ak, "ai", ref, probe, "--profile", "moderate", cwd=proj)
        out = probes(ak, "ai")
    finally:
        if ak.state_file("ai").exists():
            _remove_all(ak, ["ai"])
    assert out["vmsplice"] == "EPERM" and out["mq_open"] == "ok", out
    for p in REFUSED:
        assert out[p] in ("EPERM", "EACCES"), (p, out)


def test_guest_cannot_reach_the_hypervisors_monitor(vms):
    """pause/resume drive QEMU through its QMP monitor. A command in the guest tries to reach
    it: QMP commands written to every serial and virtio console it can open (none: its /dev is
    minimal) (`stop` would
    freeze its own VM, `quit` end it, `human-monitor-command` more). The monitor is a unix socket
    in the host's private run directory and no guest device is wired to it: the guest's only
    virtio port is the agent's channel, and afterwards the VM still runs, unpaused."""
    ak = vms
    qmp = '{"execute":"qmp_capabilities"}\\n{"execute":"stop"}\\n{"execute":"quit"}\\n'
    res = sh(ak, "mod", f"for d in /dev/ttyS* /dev/hvc* /dev/console; do "
                        f"[ -c $d ] && printf '{qmp}' > $d; done 2>/dev/null; "
                        "cat /sys/class/virtio-ports/*/name; true")
    assert res.rc == 0, res
    assert res.stdout.split() == ["ak.0"], res  # the agent's channel, nothing else
    time.sleep(0.5)
    [s] = [s for s in ak.list() if s["name"] == "mod"]
    assert s["status"] == "running", s
    assert sh(ak, "mod", "echo alive").stdout == "alive\n"
    # on the host: the monitor is the run directory's socket, no stdio or serial monitor
    rt = (ak.data_dir / "run" / "mod" / "runtime.json").read_text()
    import json
    pid = json.loads(rt)["vmm"]["pid"]
    argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"-monitor" not in argv and not any(a.startswith(b"mon:") for a in argv), argv
    assert argv[argv.index(b"-mon") + 1] == b"chardev=qmp,mode=control", argv
    assert b"socket,id=qmp,path=qmp.sock,server=on,wait=off" in argv, argv


# What the kernel's devtmpfs gives and a command must not reach: the image's disk (and any other
# disk) raw, physical memory and I/O ports, the kernel's log (write: forged messages; read: its
# addresses), the consoles, the agent's own channel (a second writer would corrupt the host's
# stream), the hypervisor-facing devices.
GUEST_DEVICES = ["/dev/vda", "/dev/vdb", "/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg",
                 "/dev/ttyS0", "/dev/console", "/dev/hvc0", "/dev/vport0p1", "/dev/vport1p1",
                 "/dev/vsock", "/dev/vhost-vsock", "/dev/cpu_dma_latency", "/dev/snapshot",
                 "/dev/loop0", "/dev/loop-control", "/dev/fuse", "/dev/nvram", "/dev/hwrng"]
DEV_ALLOWED = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd",
               "stdin", "stdout", "stderr"}


@pytest.mark.parametrize("name", ["tight", "mod"])
def test_guest_commands_get_a_minimal_dev(vms, name):
    """A command lists /dev and tries to open each device the guest kernel has (the root image
    /dev/vda, /dev/mem, /dev/port, /dev/kmsg, the consoles, the agent's virtio port...) for
    reading: /dev holds only native's harmless nodes, none of those exists, every open fails, and making
    the node itself (mknod, block and character, in /tmp, /dev/shm and /dev) is refused by the
    profile. The harmless nodes still work, and so does a terminal (test_microvm.py)."""
    ak = vms
    res = sh(ak, name, "ls -a /dev")
    assert res.rc == 0, res
    assert set(res.stdout.split()) - {".", ".."} == DEV_ALLOWED, res.stdout
    opened = []
    for dev in GUEST_DEVICES:
        # (no `<>`: it would create a regular file where the node is missing)
        r = sh(ak, name, f"[ -e {dev} ] && echo EXISTS; exec 3<{dev} && echo OPENED")
        if "OPENED" in r.stdout or "EXISTS" in r.stdout:
            opened.append(dev)
    assert not opened, opened
    for path in ("/tmp/vda", "/dev/shm/vda", "/dev/vda"):
        for kind, mm in (("b", "254 0"), ("c", "1 1")):
            r = sh(ak, name, f"busybox mknod {path} {kind} {mm} && echo MADE; ls -l {path}")
            assert "MADE" not in r.stdout, (path, kind, r)
    r = sh(ak, name, "head -c 4 /dev/urandom | busybox wc -c; echo x > /dev/null; "
                     "busybox head -c 2 /dev/zero | busybox wc -c; echo x > /dev/full || echo FULL")
    assert r.stdout.split() == ["4", "2", "FULL"], r
