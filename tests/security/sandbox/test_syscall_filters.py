# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox reaches past its namespaces with syscalls the filter should have refused.

vsock is not namespaced: a socket(AF_VSOCK) in a sandbox with the network off still talks to the
hypervisor and the host. Other families (packet, alg, key, bluetooth, xdp...) are kernel attack
surface a sandbox has no use for. personality() flags weaken the sandbox's own exploit
mitigations (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE). A syscall newer than the filter's review, or
one libseccomp cannot name, must not be allowed by default. io_uring's operations bypass
seccomp. TIOCSTI with high bits set reaches the kernel as TIOCSTI.
"""
import json
import os
import time

import pytest

from conftest import needs_root

pytestmark = needs_root

PY = "/usr/bin/python3"
PROFILES = ["restrictive", "moderate", "permissive"]

# (family, type) pairs no sandbox gets, whatever its network mode
REFUSED_FAMILIES = {
    "AF_VSOCK": (40, 1), "AF_PACKET": (17, 3), "AF_KEY": (15, 3), "AF_ALG": (38, 5),
    "AF_BLUETOOTH": (31, 1), "AF_CAN": (29, 3), "AF_TIPC": (30, 2), "AF_XDP": (44, 3),
    "AF_RDS": (21, 5), "AF_LLC": (26, 2), "AF_UNSPEC": (0, 1), "AF_NFC": (39, 2),
    "AF_MAX+1": (47, 1), "negative": (-1, 1),
    # the family with high bits set: the kernel would read the low 32 bits (AF_VSOCK)
    "high-bits-vsock": ((1 << 32) | 40, 1),
}

SOCKETS = r"""
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, (fam, typ) in json.loads(sys.argv[1]).items():
    fd = libc.syscall(41, ctypes.c_long(fam), ctypes.c_long(typ), ctypes.c_long(0))
    out[name] = "ok" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
pair = (ctypes.c_int * 2)()
for name, fam in (("socketpair-unix", 1), ("socketpair-vsock", 40), ("socketpair-inet", 2)):
    r = libc.syscall(53, ctypes.c_long(fam), ctypes.c_long(1), ctypes.c_long(0), pair)
    out[name] = "ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
for name, fam, typ in (("unix", 1, 1), ("inet", 2, 2), ("inet6", 10, 2), ("netlink", 16, 3)):
    fd = libc.syscall(41, ctypes.c_long(fam), ctypes.c_long(typ), ctypes.c_long(0))
    out[name] = "ok" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
print(json.dumps(out))
"""


@pytest.mark.parametrize("network", ["off", "on"])
@pytest.mark.parametrize("profile", PROFILES)
def test_socket_families_beyond_the_network_are_refused(ak, profile, network):
    """socket() of vsock, packet, alg, key, bluetooth and every other family a sandbox does not
    need fails with EAFNOSUPPORT in every profile, network on or off (a family smuggled in the
    high bits included); unix, inet, inet6 and netlink keep working."""
    import json
    net = ["--no-network"] if network == "off" else ["--network"]
    if network == "on":
        from conftest import have
        if not have("slirp4netns"):
            pytest.skip("needs slirp4netns")
    res = ak("run", "-p", profile, *net, "--", PY, "-c", SOCKETS, json.dumps(REFUSED_FAMILIES))
    assert res.rc == 0, res
    out = json.loads(res.stdout)
    for name in REFUSED_FAMILIES:
        assert out[name] == "EAFNOSUPPORT", (name, out)
    assert out["socketpair-vsock"] == "EAFNOSUPPORT" and out["socketpair-inet"] == "EAFNOSUPPORT"
    for name in ("unix", "inet", "inet6", "netlink", "socketpair-unix"):
        assert out[name] == "ok", (name, out)


def test_tools_that_need_netlink_still_work(ak):
    """ip (netlink) and python's getaddrinfo (AI_ADDRCONFIG reads netlink) inside a sandbox."""
    res = ak("run", "--no-network", "--", "sh", "-c",
             "ip -o link show lo | grep -c LOOPBACK; "
             f"{PY} -c \"import socket; print(len(socket.getaddrinfo('localhost', 80)) > 0)\"")
    assert res.rc == 0 and res.stdout.split() == ["1", "True"], res


PERSONA = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def p(v):
    r = libc.syscall(135, ctypes.c_ulong(v))
    return "ok" if r != -1 else errno.errorcode.get(ctypes.get_errno(), "?")
res = {}
for name, v in (("READ_IMPLIES_EXEC", 0x0400000), ("ADDR_NO_RANDOMIZE", 0x0040000),
                ("ADDR_COMPAT_LAYOUT", 0x0200000), ("MMAP_PAGE_ZERO", 0x0100000),
                ("ADDR_LIMIT_3GB", 0x8000000), ("high-bit-query-like", 0x80400000),
                ("RIE-in-high-bits", (1 << 32) | 0x0400000 | 0x8),
                ("PER_LINUX32", 0x8), ("UNAME26", 0x20000), ("both", 0x20008), ("PER_LINUX", 0),
                ("query", 0xffffffff)):
    res[name] = p(v)
    libc.syscall(135, ctypes.c_ulong(0))
import os
res["still-randomized"] = open("/proc/self/personality").read().strip()
print(res)
"""


@pytest.mark.parametrize("profile", ["moderate", "permissive"])
def test_personality_flags_are_refused(ak, profile):
    """READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE and every other personality flag are refused (as in
    Docker's default profile); PER_LINUX, PER_LINUX32, UNAME26 and the query stay allowed."""
    res = ak("run", "-p", profile, "--no-network", "--", PY, "-c", PERSONA)
    assert res.rc == 0, res
    out = eval(res.stdout)
    for name in ("READ_IMPLIES_EXEC", "ADDR_NO_RANDOMIZE", "ADDR_COMPAT_LAYOUT", "MMAP_PAGE_ZERO",
                 "ADDR_LIMIT_3GB", "high-bit-query-like"):
        assert out[name] == "EPERM", (name, out)
    # high bits are ignored by the kernel: the low word is what counts, and it is refused
    assert out["RIE-in-high-bits"] == "EPERM", out
    for name in ("PER_LINUX32", "UNAME26", "both", "PER_LINUX", "query"):
        assert out[name] == "ok", (name, out)
    assert out["still-randomized"] == "00000000", out


def test_restrictive_refuses_personality_entirely(ak):
    res = ak("run", "-p", "restrictive", "--", PY, "-c", PERSONA)
    assert res.rc == 0, res
    out = eval(res.stdout)
    assert out["READ_IMPLIES_EXEC"] == "EPERM" and out["query"] == "EPERM", out


UNKNOWN = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, nr, args in (("nr-470", 470, ()), ("nr-511", 511, ()), ("nr-1000", 1000, ()),
                       ("open_tree_attr", 467, (-100, b"/", 1, 0, 0)),
                       ("io_uring_setup", 425, (1, 0)), ("io_uring_enter", 426, (0, 0, 0, 0)),
                       ("openat2", 437, (-100, b"/", 0, 0)), ("clone3", 435, (0, 0)),
                       ("pidfd_getfd", 438, (0, 0, 0))):
    r = libc.syscall(nr, *args)
    out[name] = "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
print(out)
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_syscalls_newer_than_the_review_are_refused(ak, profile):
    """Numbers above the newest reviewed syscall fail with ENOSYS in the deny-list profiles (so
    libc falls back) and EPERM in restrictive; the new mount API's open_tree_attr, io_uring (all
    profiles now: its operations bypass seccomp) are refused too."""
    res = ak("run", "-p", profile, "--no-network", "--", PY, "-c", UNKNOWN)
    assert res.rc == 0, res
    out = eval(res.stdout)
    absent = "EPERM" if profile == "restrictive" else "ENOSYS"
    for name in ("nr-470", "nr-511", "nr-1000"):
        assert out[name] == absent, (name, out)
    for name in ("open_tree_attr", "io_uring_setup", "io_uring_enter"):
        assert out[name] in ("EPERM",), (name, out)
    assert out["clone3"] == "ENOSYS", out
    # openat2: see test_openat2_is_refused_to_commands_started_every_way (permissive mounts the
    # current directory, a host directory; the others have none)
    assert (out["openat2"] == "ENOSYS") == (profile == "permissive"), out
    if profile == "moderate":
        assert out["pidfd_getfd"] == "EPERM", out  # a ptrace sibling


TIOCSTI = r"""
import ctypes, fcntl, os, pty, sys, termios
libc = ctypes.CDLL(None, use_errno=True)
m, s = pty.openpty()
name = os.ttyname(s)
pid = os.fork()
if pid == 0:  # a new session, whose controlling terminal the pty becomes
    os.setsid()
    t = os.open(name, os.O_RDWR)
    fcntl.ioctl(t, termios.TIOCSCTTY, 0)
    c = ctypes.c_char(b"x")
    for label, req in (("plain", termios.TIOCSTI), ("high-bits", (1 << 32) | termios.TIOCSTI),
                       ("tioclinux-high", (7 << 32) | 0x541C)):
        r = libc.syscall(16, t, ctypes.c_ulong(req), ctypes.byref(c))
        print(label, "injected" if r == 0 else "refused", ctypes.get_errno(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_terminal_injection_with_high_bits_is_refused(ak, profile):
    """TIOCSTI on the sandbox's own controlling terminal, with the request's high 32 bits set
    (the kernel ignores them): the filter compares the low 32 bits, so it is refused like the
    plain request. (Where the kernel refuses TIOCSTI itself, dev.tty.legacy_tiocsti=0, this
    proves less.)"""
    res = ak("run", "-p", profile, "--no-network", "--", PY, "-c", TIOCSTI)
    assert res.rc == 0, res
    assert "injected" not in res.stdout, res
    assert res.stdout.count("refused 1") == 3, res


def test_engine_profiles_carry_the_same_rules(tmp_path):
    """The JSON given to docker and podman comes from the same rules: vsock, personality flags,
    setuid modes and unknown syscalls are refused there too."""
    import json
    import os
    import subprocess
    build = os.environ.get("AGENTKERNEL_BUILD", str(pytest.importorskip("conftest").ROOT / "build"))
    src = os.path.join(build, "src", "seccomp-bpf.c")
    if not os.path.exists(src):
        pytest.skip("no build directory")
    text = open(src).read()
    for i in range(3):
        for host_files in (0, 1):
            var = f"oci_{i}_{host_files}"
            start = text.index(f"static const char {var}[] = \"") + len(f"static const char {var}[] = \"")
            end = text.index("\";\n", start)
            prof = json.loads(text[start:end].replace('\\"', '"'))
            assert prof["defaultAction"] == "SCMP_ACT_ERRNO"
            rules = prof["syscalls"]
            names = {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
                     for n in r["names"]}
            assert "socket" not in names and "personality" not in names
            assert "io_uring_setup" not in names
            # openat2 is the agent's (RESOLVE_NO_MAGICLINKS); commands are refused it by the
            # filter the agent adds for each of them, in containers too
            assert "openat2" in names
            sock = [r for r in rules if r["names"] == ["socket"]]
            assert any(r["action"] == "SCMP_ACT_ERRNO" and r["errnoRet"] == 97 and
                       r["args"][0]["op"] == "SCMP_CMP_GT" for r in sock)
            chmod = [r for r in rules
                     if r["names"] == ["chmod"] and r["action"] == "SCMP_ACT_ALLOW"]
            if host_files:  # a container that writes host directories: no setuid/setgid modes
                assert "chmod" not in names and "openat" not in names
                assert chmod and chmod[0]["args"][0] == {"index": 1, "value": 0o6000,
                                                         "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            else:
                assert "chmod" in names and "openat" in names and not chmod


@pytest.mark.parametrize("profile", PROFILES)
def test_setuid_modes_without_host_directories_stay_inside(ak, profile):
    """A sandbox that writes no host directory may set setuid/setgid bits on its own disk (what
    dpkg does when a package ships such a program): nothing it writes reaches the host but
    through cp, which drops the bits, and inside they are inert (nosuid, no_new_privs). The same
    chmod with any writable host directory mounted is refused (test_host_mounts.py): permissive
    mounts the current directory."""
    res = ak("run", "-p", profile, "--no-network", "--", "sh", "-c",
             "cp /bin/true /tmp/t && chmod 4755 /tmp/t && stat -c %a /tmp/t && "
             "/tmp/t && grep -q nosuid /proc/self/mountinfo && echo inert")
    if profile == "permissive":  # it mounts the current directory: a host directory
        assert res.rc != 0 and "Operation not permitted" in res.stderr, res
        return
    assert res.rc == 0, res
    assert res.stdout.split() == ["4755", "inert"], res


OPENAT2 = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(437, -100, b"/", 0, 0)
print("ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
"""


@pytest.mark.parametrize("profile", PROFILES)
def test_openat2_is_refused_to_commands_started_every_way(ak, profile, tmp_path):
    """In a sandbox that writes a host directory, the filter refuses setuid/setgid modes, but
    openat2 takes its mode behind a pointer no filter can read. The agent keeps openat2 for
    itself (RESOLVE_NO_MAGICLINKS) and refuses it to each command with a filter of its own: a
    command started by run, by exec, detached (exec -d), as the init script, or by a command
    that re-executes itself must not get it. Without a host directory commands keep it (the bits
    are inert there)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, 62002, 62002)
    res = ak("run", "-p", profile, "--no-network", "--mount-cwd", "--", PY, "-c", OPENAT2, cwd=ws)
    assert res.rc == 0 and res.stdout == "ENOSYS\n", res
    if profile != "permissive":  # which mounts its current directory
        res = ak("run", "-p", profile, "--no-network", "--", PY, "-c", OPENAT2, cwd=tmp_path)
        assert res.rc == 0 and res.stdout == "EINVAL\n", res  # the kernel: size 0 is invalid
    proj = tmp_path / "proj"
    proj.mkdir()
    (ws / "check.py").write_text(
        "import ctypes, sys\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.syscall(437, -100, b'/', 0, 0)\nsys.exit(0 if r < 0 and ctypes.get_errno() == 38 else 7)\n")
    (proj / "agentkernel.toml").write_text(
        f'[sandbox]\ninit_script = "{PY} /workspace/check.py"\n')
    assert ak("trust", "-y", proj / "agentkernel.toml").rc == 0
    res = ak("create", "box", "--profile", profile, "--no-network", "-d", ws, cwd=proj)
    assert res.rc == 0, res  # the init script exits 7 unless openat2 answered ENOSYS
    res = ak("exec", "box", "--", PY, "-c", OPENAT2)
    assert res.rc == 0 and res.stdout == "ENOSYS\n", res
    res = ak("exec", "box", "--", "sh", "-c", f"exec {PY} -c '{OPENAT2}'")
    assert res.stdout == "ENOSYS\n", res
    rec = json.loads(ak("exec", "-d", "box", "--", PY, "-c", OPENAT2).out)
    deadline = time.time() + 20
    while time.time() < deadline:
        out = ak("sandbox", "exec-logs", "box", rec["id"]).out
        if out:
            break
        time.sleep(0.1)
    assert out == b"ENOSYS\n", out
