# SPDX-License-Identifier: Apache-2.0
"""Host directories in a microvm, attacked by a hostile guest (root in its own kernel).

The microvm backend serves the `host` image, the workspace, the home and volumes through one
virtiofsd per share (src/backend/microvm-fs.c). The guest sends virtiofsd whatever it likes, so
every rule is the host's: virtiofsd runs in a user namespace of the share's ids (the workspace's
owner is its 0, the sandbox's unprivileged range the rest, volumes their own range), in a mount
namespace holding the share alone (nosuid, nodev, read-only where asked), under a seccomp filter
that refuses setuid/setgid modes, device nodes, FIFOs, sockets and xattrs, without CAP_FSETID.

The guest's commands here run with AGENTKERNEL_TEST_VM_GUEST_ROOT=1: every capability and no
seccomp filter inside the guest (what a guest kernel exploit gives), so nothing below is stopped
by the guest's own confinement: each assertion is about the file the host ends up with. One VM
(TCG: a boot costs seconds) serves every case; each case works in a directory of its own.
"""
import json
import os
import pathlib
import shutil
import sys
import stat
import time

import pytest

from conftest import STATIC_AGENT, Ak, agent_pids, assert_nothing_left, is_root

_INTEGRATION = str(pathlib.Path(__file__).resolve().parent.parent.parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
from test_microvm import _kernel, procs_naming  # noqa: E402

VOLUME_ID_BASE = 0x3FFF0000
ID_RANGE_BASE = 0x40000000
OWNER = 4242  # the workspace's owner: an id no one on the host has
SECRET = "agentkernel-share-canary-7d1f"


_MISSING = [what for what, ok in (
    ("root", is_root()),
    ("qemu-system-x86_64 (apt-get install qemu-system-x86)", shutil.which("qemu-system-x86_64")),
    ("a guest kernel (apt-get install linux-image-cloud-amd64)", _kernel()),
    ("virtiofsd (apt-get install qemu-system-x86)", os.access("/usr/lib/qemu/virtiofsd", os.X_OK)),
    ("python3 in the host image", shutil.which("python3", path="/usr/bin")),
    ("a static agent (build ./build)", STATIC_AGENT),
) if not ok]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason="microvm shares need " + ", ".join(_MISSING))


def volume_path(ak, name):
    return pathlib.Path(json.loads(ak("volume", "info", name, check=True).out)["path"])


class Vm:
    def __init__(self, ak, name, top, ws, home, vol, rovol):
        self.ak, self.name, self.top, self.ws, self.home = ak, name, top, ws, home
        self.vol, self.rovol = vol, rovol

    def sh(self, script, timeout=120):
        return self.ak("exec", self.name, "--", "sh", "-c", script, timeout=timeout)

    def py(self, code, timeout=120):
        return self.ak("exec", self.name, "--", "python3", "-c", code, timeout=timeout)

    def case(self, name):
        """A directory of the workspace for one case (the guest sees it as /workspace/NAME)."""
        d = self.ws / name
        d.mkdir()
        os.chown(d, OWNER, OWNER)
        return d, f"/workspace/{name}"

    def base(self):
        """The sandbox's host id range (its hypervisor runs as base + 65534)."""
        rt = json.loads((self.ak.data_dir / "run" / self.name / "runtime.json").read_text())
        return os.stat(f"/proc/{rt['vmm']['pid']}").st_uid - 65534


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    top = tmp_path_factory.mktemp("vmshares")
    os.chmod(top, 0o755)
    ws = top / "ws"
    ws.mkdir()
    os.chown(ws, OWNER, OWNER)
    home = top / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(SECRET + "\n")
    (home / ".netrc").write_text(f"machine x login y password {SECRET}\n")
    (home / "notes.txt").write_text("shown\n")
    (top / "outside.txt").write_text(SECRET + "\n")
    before = set(agent_pids())
    ak = Ak(top / "data", env={"AGENTKERNEL_AGENT": STATIC_AGENT,
                               "AGENTKERNEL_TEST_VM_GUEST_ROOT": "1", "HOME": str(home)})
    assert ak("volume", "create", "rw").rc == 0
    assert ak("volume", "create", "ro").rc == 0
    res = ak("create", "vm", "-B", "microvm", "--profile", "permissive", "--no-network",
             "-d", ws, "-v", "rw:/data", "-v", "ro:/rodata:ro", "--memory", "256", timeout=300)
    assert res.rc == 0, res
    yield Vm(ak, "vm", top, ws, home, volume_path(ak, "rw"), volume_path(ak, "ro"))
    uuid = ak.state("vm")["uuid"]
    assert ak("remove", "vm").rc == 0
    run_dir = ak.data_dir / "run" / "vm"
    deadline = time.time() + 10
    while procs_naming(run_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert not procs_naming(run_dir), procs_naming(run_dir)  # no qemu, relay or virtiofsd
    assert_nothing_left(ak, [uuid])
    time.sleep(0.2)
    assert not set(agent_pids()) - before


def host_tree(d):
    """(relative path, lstat) of everything below d, never following a link."""
    out = []
    for root, dirs, files in os.walk(d, followlinks=False):
        for n in dirs + files:
            p = pathlib.Path(root) / n
            out.append((str(p.relative_to(d)), os.lstat(p)))
    return out


def assert_no_privileged_files(d, base=None):
    for rel, st in host_tree(d):
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID) or stat.S_ISDIR(st.st_mode), \
            (rel, oct(st.st_mode))
        assert stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or \
            stat.S_ISLNK(st.st_mode), (rel, oct(st.st_mode))
        assert st.st_uid != 0 and st.st_gid != 0, (rel, st.st_uid, st.st_gid)
        if base is not None:  # never the hypervisor's or the relay's id
            assert st.st_uid not in (base + 65534, base + 65535), (rel, st.st_uid)


def test_guest_root_cannot_make_setuid_or_setgid_files(vm):
    """chmod 4755/2755/6755, open(O_CREAT, 04755), mkdir -m 2755 and `cp -p` of the host
    image's setuid `su`, as guest root with every capability: virtiofsd's filter refuses the
    bits, so no file of the share is setuid or setgid on the host."""
    d, g = vm.case("suid")
    res = vm.py(f"""
import os, shutil, subprocess
open("{g}/a", "w").write("x")
for m in (0o4755, 0o2755, 0o6755):
    try: os.chmod("{g}/a", m)
    except OSError as e: print("chmod", oct(m), e.errno)
try: os.close(os.open("{g}/b", os.O_CREAT | os.O_WRONLY, 0o4755))
except OSError as e: print("open", e.errno)
try: os.mkdir("{g}/c", 0o2755)
except OSError as e: print("mkdir", e.errno)
subprocess.call(["cp", "-p", "/usr/bin/su", "{g}/su"])
subprocess.call(["install", "-m", "4755", "/usr/bin/su", "{g}/su2"])
""")
    assert res.rc == 0, res
    assert (d / "a").exists()
    assert_no_privileged_files(d, vm.base())


def test_guest_root_cannot_make_device_nodes_fifos_or_sockets(vm):
    """mknod of a character device (/dev/mem's 1:1, /dev/null's 1:3) and a block device, a
    FIFO and a bound unix socket in the workspace: none exists on the host."""
    d, g = vm.case("nodes")
    res = vm.py(f"""
import os, socket, stat
for name, mode, dev in (("mem", stat.S_IFCHR | 0o666, os.makedev(1, 1)),
                        ("null", stat.S_IFCHR | 0o666, os.makedev(1, 3)),
                        ("blk", stat.S_IFBLK | 0o666, os.makedev(7, 0)),
                        ("fifo", stat.S_IFIFO | 0o666, 0)):
    try: os.mknod("{g}/" + name, mode, dev); print("made", name)
    except OSError as e: print(name, e.errno)
s = socket.socket(socket.AF_UNIX)
try: s.bind("{g}/sock"); print("made sock")
except OSError as e: print("sock", e.errno)
""")
    assert res.rc == 0, res
    assert "made" not in res.stdout, res
    assert [rel for rel, _ in host_tree(d)] == []


def test_guest_chown_to_root_lands_as_the_owner(vm):
    """chown to 0:0 lands as the workspace's owner (the guest's root is the owner); chown to
    another guest id lands in the sandbox's own unprivileged range; the ids of the sandbox's
    hypervisor and relay (65534, 65535 of its range) cannot be given at all. Never host root."""
    d, g = vm.case("chown")
    res = vm.sh(f"cd {g} && for f in r u n m; do echo x > $f; done && chown 0:0 r && "
                f"chown 1234:1234 u; chown 65534:65534 n; chown 65535:65535 m; true")
    assert res.rc == 0, res
    base = vm.base()
    assert (os.stat(d / "r").st_uid, os.stat(d / "r").st_gid) == (OWNER, OWNER)
    assert (os.stat(d / "u").st_uid, os.stat(d / "u").st_gid) == (base + 1234, base + 1234)
    assert base >= ID_RANGE_BASE
    for f in ("n", "m"):
        assert os.stat(d / f).st_uid == OWNER, f
    assert_no_privileged_files(d, base)


def test_a_setuid_file_of_the_owner_loses_its_bit_when_the_guest_writes_it(vm):
    """A setuid program the owner keeps in the workspace, rewritten by the guest: virtiofsd has
    no CAP_FSETID, so the write clears the bit (the guest's content never runs as the owner
    through it)."""
    d, g = vm.case("ownsuid")
    p = d / "prog"
    p.write_text("#!/bin/sh\n")
    os.chown(p, OWNER, OWNER)
    os.chmod(p, 0o4755)
    assert os.stat(p).st_mode & stat.S_ISUID
    assert vm.sh(f"echo 'echo pwned' >> {g}/prog").rc == 0
    assert "pwned" in p.read_text()
    assert not os.stat(p).st_mode & (stat.S_ISUID | stat.S_ISGID), oct(os.stat(p).st_mode)


def test_file_capabilities_and_xattrs_are_refused(vm):
    """security.capability (a file capability the host would honour) and any other xattr: the
    share has no xattrs; the host file carries none."""
    d, g = vm.case("xattr")
    res = vm.py(f"""
import os
open("{g}/f", "w").write("x")
for k, v in (("security.capability", b"\\x01\\x00\\x00\\x02" + bytes(16)),
             ("trusted.x", b"1"), ("user.x", b"1")):
    try: os.setxattr("{g}/f", k, v); print("set", k)
    except OSError as e: print(k, e.errno)
""")
    assert res.rc == 0 and "set" not in res.stdout, res
    assert os.listxattr(d / "f") == [] or "security.capability" not in os.listxattr(d / "f")


def test_hard_links_never_reach_host_files_outside(vm):
    """A hard link to a host file outside the share: through the guest's paths the file is not
    there (`..` of /workspace is the guest's root), and the guest's own files are another
    filesystem (EXDEV). The host file keeps one link and no link appears in the share."""
    d, g = vm.case("hardlink")
    outside = vm.top / "outside.txt"
    res = vm.sh(f"ln {g}/../../outside.txt {g}/hl1; ln /workspace/../outside.txt {g}/hl2; "
                f"ln /etc/hostname {g}/hl3; ln /usr/bin/su {g}/hl4; ls {g}")
    assert res.rc == 0, res
    assert os.stat(outside).st_nlink == 1
    assert [rel for rel, _ in host_tree(d)] == []


def test_symlinks_never_lead_the_host_out(vm):
    """Symlinks the guest plants (absolute to the host path of a file outside, relative `../..`)
    and writes or reads through them: the guest's kernel resolves them in the guest, so nothing
    outside the share is read or written; on the host they stay links the share holds."""
    d, g = vm.case("symlink")
    outside = vm.top / "outside.txt"
    res = vm.sh(f"cd {g} && ln -s {vm.top} abs && ln -s ../../.. rel && "
                f"cat abs/outside.txt; cat rel/outside.txt; echo pwn > abs/pwned; "
                f"echo pwn > rel/pwned; echo pwn > abs/outside.txt; true")
    assert res.rc == 0, res
    assert SECRET not in res.stdout, res
    assert outside.read_text() == SECRET + "\n"
    assert not (vm.top / "pwned").exists() and not (vm.top.parent / "pwned").exists()
    assert sorted(rel for rel, _ in host_tree(d)) == ["abs", "rel"]
    assert all(stat.S_ISLNK(st.st_mode) for _, st in host_tree(d))


def test_renames_never_move_files_out_of_the_share(vm):
    """rename(2) to `..` of the share and to the guest's other directories: the file never
    appears outside the workspace on the host (the guest's `..` is its own tree; across
    filesystems a move is a copy inside the guest)."""
    d, g = vm.case("rename")
    (d / "f").write_text("data\n")
    res = vm.py(f"""
import os
for dst in ("{g}/../../renamed", "/workspace/../renamed", "/tmp/renamed", "/renamed"):
    try: os.rename("{g}/f", dst); print("moved", dst)
    except OSError as e: print(dst, e.errno)
""")
    assert res.rc == 0, res
    assert not (vm.top / "renamed").exists() and not (vm.top.parent / "renamed").exists()
    assert not pathlib.Path("/tmp/renamed").exists() or \
        pathlib.Path("/tmp/renamed").read_text() != "data\n"


def test_read_only_volume_stays_read_only_for_guest_root(vm):
    """A volume mounted `:ro`: guest root writes, remounts it read-write, unmounts it and writes
    to what is beneath: the host volume stays empty (read-only is virtiofsd's own mount, not
    the guest's flag)."""
    res = vm.sh("echo a > /rodata/a; mount -o remount,rw /rodata && echo remounted; "
                "echo b > /rodata/b; mkdir /rodata/d; touch /rodata; true")
    assert res.rc == 0, res
    assert list(vm.rovol.iterdir()) == []


def test_read_write_volume_files_belong_to_the_volumes_range(vm):
    """What the guest writes into a volume is owned by the volumes' range (VOLUME_ID_BASE + k),
    as on native, whatever id the guest uses; never host root."""
    res = vm.sh("echo a > /data/a && chown 7:7 /data/a && echo b > /data/b && "
                "chown 0:0 /data/b && mkdir /data/d")
    assert res.rc == 0, res
    assert os.stat(vm.vol / "a").st_uid == VOLUME_ID_BASE + 7
    assert os.stat(vm.vol / "b").st_uid == VOLUME_ID_BASE
    assert_no_privileged_files(vm.vol)


def test_home_credentials_are_masked_on_the_host_side(vm):
    """The permissive profile's home (read-only at /home/user) hides its credentials as native's
    does (.ssh, .netrc, ...): the masks are mounts in virtiofsd's namespace, so guest root
    unmounting anything in the guest, or mounting the share's tag again, reaches nothing; the
    home is read-only for it."""
    res = vm.sh("cat /home/user/notes.txt; cat /home/user/.ssh/id_ed25519 /home/user/.netrc; "
                "grep -r . /home/user; echo x > /home/user/new; echo x >> /home/user/notes.txt; "
                "umount /home/user/.ssh; umount /home/user/.netrc; "
                "cat /home/user/.ssh/id_ed25519 /home/user/.netrc; "
                "for t in 0 1 2 3 4; do mkdir -p /mnt/$t; mount -t virtiofs fs$t /mnt/$t; done; "
                "grep -r . /mnt/2; cat /mnt/*/.ssh/id_ed25519 /mnt/*/.netrc; true")
    assert res.rc == 0, res
    assert "shown" in res.stdout, res
    assert SECRET not in res.stdout + res.stderr, res
    assert not (vm.home / "new").exists()
    assert (vm.home / "notes.txt").read_text() == "shown\n"


def test_host_image_hides_what_native_hides(vm):
    """The `host` image's share is read-only and shows what native's host image shows: /usr and
    its links, the /etc allow-list (no shadow, no ssh host keys, generated passwd), nothing of
    /root, /home's users, /tmp, /var or the data directory; writes to it fail on the host."""
    canary = pathlib.Path("/tmp") / f"ak-vmshare-canary-{os.getpid()}"
    canary.write_text(SECRET)
    mine = [pathlib.Path(d) / f"ak-vmshare-pwned-{os.getpid()}-{i}"
            for i, d in enumerate(("/usr", "/etc", "/usr"))]
    try:
        res = vm.sh(f"ls /usr/bin/env; cat /etc/passwd; cat /etc/shadow; ls /etc/ssh; "
                    f"ls -A /root /var; ls /home; cat {canary}; ls {vm.ak.data_dir}; "
                    f"cat /etc/ssl/private/* 2>&1 | head -1; echo x > {mine[0]}; "
                    f"echo x > {mine[1]}; mount -o remount,rw / ; echo x > {mine[2]}; true")
        assert res.rc == 0, res
        assert "/usr/bin/env" in res.stdout
        assert "user:x:1000:1000" in res.stdout  # native's generated passwd, not the host's
        assert SECRET not in res.stdout, res
        assert not any(p.exists() for p in mine)
        out = vm.sh("test -e /etc/shadow || echo no-shadow; ls /home | wc -l").stdout
        assert "no-shadow" in out
        assert out.split()[-1] == "1" or out.split()[-1] == "0"  # at most the home share's /home/user
    finally:
        canary.unlink()
        for p in mine:  # only what this test would have made
            if p.exists():
                p.unlink()
