# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox plants privileged files in the host directories it writes.

A workspace (`-d DIR`, `--mount-cwd`, the permissive profile's current directory) and volumes
are host directories: whatever a sandbox leaves there is a file on the host, which any local
user who reaches the directory can execute. The sandbox tries, in every profile and every kind
of mount, to leave a file owned by host root, a setuid or setgid file, or a file capability:
chmod u+s/g+s, open(O_CREAT, 04755), mknod(S_IFREG|04755), install -m 4755, chmod through
/proc/self/fd, fchmodat2, cp -p and tar -p of a setuid file, setxattr security.capability, a hard
link or rename of a setuid file across mounts. What must hold, checked from the host: nothing it
made is owned by uid or gid 0 (a workspace's new files belong to the directory's owner), no file
has S_ISUID or S_ISGID, none has security.capability; and another local user who runs whatever
was planted gains nothing.
"""
import os
import pathlib
import stat
import subprocess

import pytest

from conftest import needs_root

pytestmark = needs_root

PY = "/usr/bin/python3"
OWNER = 62002  # the owner of the user's project directory: a host user, not root
VOLUME_ID_BASE = 0x3FFF0000  # shared/bind-mount.h
PROFILES = ["restrictive", "moderate", "permissive"]
# dir: -d DIR of a user; mount-cwd: --mount-cwd there; permissive-cwd: the permissive profile's
# own cwd mount; root-cwd: the current directory is root's and world-writable (like /tmp): the
# sandbox writes there as an unprivileged id; volume and sized-volume.
KINDS = ["dir", "mount-cwd", "permissive-cwd", "root-cwd", "volume", "sized-volume"]

# Runs inside the sandbox as its root, with the target directory as argv[1]: every way to make
# a privileged file there. Prints one line per attempt (for the failure message); the host
# judges the result, not these lines.
ATTACK = r"""
import ctypes, errno, os, shutil, stat, subprocess, sys, tarfile, io
T = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
def report(what, fn):
    try:
        r = fn()
        print(what, "ok" if r is None or r >= 0 else errno.errorcode.get(ctypes.get_errno()))
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, e.errno))
    except subprocess.CalledProcessError as e:
        print(what, "failed", e.stderr.decode(errors="replace").strip().replace("\n", " "))
def p(n): return os.path.join(T, n)
open(p("plain"), "w").write("#!/bin/sh\nid -u\n")
os.mkdir(p("subdir"))
report("chmod-u+s", lambda: os.chmod(p("plain"), 0o4755))
report("chmod-g+s", lambda: os.chmod(p("plain"), 0o2755))
report("chmod-dir-g+s", lambda: os.chmod(p("subdir"), 0o2775))
report("mkdir-02775", lambda: os.mkdir(p("sgid-dir"), 0o2775))
report("open-creat-04755", lambda: os.close(os.open(p("created"), os.O_CREAT | os.O_WRONLY, 0o4755)))
report("open-creat-02755", lambda: os.close(os.open(p("created-g"), os.O_CREAT | os.O_WRONLY, 0o2755)))
report("mknod-reg-04755", lambda: os.mknod(p("mknoded"), stat.S_IFREG | 0o4755))
report("creat-04755", lambda: libc.creat(p("creat").encode(), 0o4755))
def via_proc():
    fd = os.open(p("viaproc"), os.O_CREAT | os.O_WRONLY, 0o755)
    try:
        os.chmod(f"/proc/self/fd/{fd}", 0o4755)
    finally:
        os.close(fd)
report("chmod-proc-fd", via_proc)
def fchmod():
    fd = os.open(p("fchmod"), os.O_CREAT | os.O_WRONLY, 0o755)
    try:
        os.fchmod(fd, 0o6755)
    finally:
        os.close(fd)
report("fchmod", fchmod)
open(p("fchmodat2"), "w").close()
report("fchmodat2", lambda: libc.syscall(452, -100, p("fchmodat2").encode(), 0o4755, 0))
report("install-m-4755", lambda: subprocess.run(["install", "-m", "4755", "/usr/bin/id", p("installed")], check=True, capture_output=True) and None)
report("cp-p-setuid", lambda: subprocess.run(["cp", "-p", "/usr/bin/su", p("su-copy")], check=True, capture_output=True) and None)
def tar_p():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("tarred"); data = b"#!/bin/sh\nid -u\n"; ti.size = len(data); ti.mode = 0o6755
        t.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        t.extractall(T, filter="fully_trusted") if hasattr(tarfile, "data_filter") else t.extractall(T)
report("tar-extract-6755", tar_p)
report("tar-p", lambda: subprocess.run(["sh", "-c", f"cd /tmp && cp /usr/bin/id tid && chmod 755 tid && tar cf t.tar tid && cd {T} && tar xpf /tmp/t.tar"], check=True, capture_output=True) and None)
open(p("capped"), "w").close()
# a v2 file capability: cap_setuid+ep
cap = (0x02000000 | 1).to_bytes(4, "little") + (1 << 7).to_bytes(4, "little") + bytes(12)
report("setxattr-capability", lambda: os.setxattr(p("capped"), "security.capability", cap))
report("setcap", lambda: subprocess.run(["setcap", "cap_setuid+ep", p("capped")], check=True, capture_output=True) and None)
report("link-setuid-across-mounts", lambda: os.link("/usr/bin/su", p("su-link")))
report("rename-across-mounts", lambda: os.rename("/tmp/tid" if os.path.exists("/tmp/tid") else "/etc/hostname", p("renamed")))
report("chown-to-root", lambda: os.chown(p("plain"), 0, 0))
print("done")
"""


def host_owned_by(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def planted(top):
    """Everything below top, as the host sees it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            out.append(pathlib.Path(dirpath) / n)
    return out


def assert_nothing_privileged(top, owner_uid=None):
    bad = []
    for f in planted(top):
        st = os.lstat(f)
        if st.st_uid == 0 or st.st_gid == 0:
            bad.append(f"{f}: owned by {st.st_uid}:{st.st_gid}")
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            bad.append(f"{f}: mode {oct(st.st_mode)}")
        if not stat.S_ISLNK(st.st_mode):
            try:
                os.getxattr(f, "security.capability", follow_symlinks=False)
                bad.append(f"{f}: has security.capability")
            except OSError:
                pass
        if owner_uid is not None and st.st_uid != owner_uid and f.name in ("plain", "created"):
            bad.append(f"{f}: owned by {st.st_uid}, not the directory's owner {owner_uid}")
    assert not bad, bad


def owned_dir(path, uid=OWNER):
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid)
    os.chmod(path, 0o755)
    return path


def volume_path(ak, name):
    import json
    return pathlib.Path(json.loads(ak("volume", "info", name, check=True).out)["path"])


def attack(ak, kind, profile, tmp_path):
    """Runs ATTACK in a sandbox of profile against a mount of kind; returns (host dir, the
    owner new files must have or None, the sandbox's output)."""
    args = ["--no-network"] if profile != "restrictive" else []
    if kind == "root-cwd":
        top = tmp_path / "shared-tmp"
        top.mkdir()
        os.chmod(top, 0o1777)
        res = ak("run", "-p", profile, *args, "--mount-cwd", "--", PY, "-c", ATTACK, "/workspace",
                 cwd=top)
        return top, None, res
    if kind in ("dir", "mount-cwd", "permissive-cwd"):
        top = owned_dir(tmp_path / "project")
        if kind == "permissive-cwd" and profile != "permissive":
            pytest.skip("only the permissive profile mounts the current directory by itself")
        if kind == "dir":
            res = ak("create", "box", "--profile", profile, *args, "-d", top)
            assert res.rc == 0, res
            res = ak("exec", "box", "--", PY, "-c", ATTACK, "/workspace")
        else:
            extra = ["--mount-cwd"] if kind == "mount-cwd" else []
            res = ak("run", "-p", profile, *args, *extra, "--", PY, "-c", ATTACK, "/workspace",
                     cwd=top)
        return top, OWNER, res
    sized = kind == "sized-volume"
    res = ak("volume", "create", "vol", *(["-s", "32MB"] if sized else []))
    assert res.rc == 0, res
    res = ak("run", "-p", profile, *args, "-v", "vol:/data", "--", PY, "-c", ATTACK, "/data")
    return volume_path(ak, "vol"), VOLUME_ID_BASE, res


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("profile", PROFILES)
def test_no_privileged_file_survives_on_the_host(ak, local_user, tmp_path, profile, kind):
    """Every way to plant a root-owned, setuid/setgid or file-capability file in a workspace or
    volume, from a sandbox of each profile: the host sees none of them, and the sandbox's files
    are owned by the directory's owner (workspace) or the volumes' range (volume)."""
    top, owner, res = attack(ak, kind, profile, tmp_path)
    assert res.rc == 0 and "done" in res.stdout, res
    out = dict(l.split(" ", 1) for l in res.stdout.splitlines() if " " in l)
    # the bits are refused outright, not silently dropped
    for what in ("chmod-u+s", "chmod-g+s", "open-creat-04755", "mknod-reg-04755",
                 "chmod-proc-fd", "fchmod", "fchmodat2", "setxattr-capability"):
        assert out.get(what) in ("EPERM", "EACCES"), (what, res.stdout)
    assert out.get("link-setuid-across-mounts") == "EXDEV", res.stdout
    assert (top / "plain").exists()
    assert_nothing_privileged(top, owner_uid=owner)
    if owner is None:  # root's directory: the sandbox's own unprivileged ids
        assert os.lstat(top / "plain").st_uid >= 0x40000000
    # another local user runs whatever is there: it runs as that user, nothing more
    if kind in ("volume", "sized-volume"):
        return  # the data directory is the caller's alone: no other user reaches a volume
    for f in planted(top):
        if f.is_file() and os.access(f, os.X_OK) and not f.is_symlink():
            r = local_user.run([f], timeout=20, stdin=subprocess.DEVNULL)
            assert str(local_user.uid) in r.stdout or r.rc != 0 or r.stdout.strip() == "", (f, r)
            assert "uid=0" not in r.stdout and r.stdout.strip() != "0", (f, r)


@pytest.mark.parametrize("profile", PROFILES)
def test_workspace_files_belong_to_its_owner(ak, tmp_path, profile):
    """The directory's owner is the sandbox's root: the sandbox works there as the user (reads,
    writes, chowns its own files) and what it creates is the user's on the host; files of other
    host users (root included) stay nobody's inside and cannot be taken over."""
    top = owned_dir(tmp_path / "proj")
    (top / "users").write_text("mine\n")
    os.chown(top / "users", OWNER, OWNER)
    (top / "roots").write_text("root's\n")
    os.chmod(top / "roots", 0o644)
    args = ["--no-network"] if profile != "restrictive" else []
    res = ak("run", "-p", profile, *args, "--mount-cwd", "--", "sh", "-c",
             "stat -c '%u %g' /workspace /workspace/users /workspace/roots; "
             "echo more >> /workspace/users; mkdir /workspace/made; touch /workspace/made/f; "
             "echo x >> /workspace/roots 2>/dev/null || echo denied; "
             "chown 0 /workspace/roots 2>/dev/null || echo chown-denied", cwd=top)
    assert res.rc == 0, res
    lines = res.stdout.splitlines()
    assert lines[:3] == ["0 0", "0 0", "65534 65534"], res
    assert "denied" in lines and "chown-denied" in lines, res
    assert (top / "users").read_text() == "mine\nmore\n"
    assert (top / "roots").read_text() == "root's\n"
    assert host_owned_by(top / "made") == (OWNER, OWNER)
    assert host_owned_by(top / "made" / "f") == (OWNER, OWNER)
    assert host_owned_by(top / "roots") == (0, 0)


def test_other_sandbox_users_get_the_sandboxs_own_ids(ak, tmp_path):
    """Sandbox users other than root write as the sandbox's own unprivileged host ids, never as
    a host user's id (uid 1000 inside is not uid 1000 of the host)."""
    top = owned_dir(tmp_path / "proj")
    os.chmod(top, 0o777)
    assert ak("create", "u", "--no-network", "-d", top).rc == 0
    res = ak("exec", "u", "-u", "1000", "--", "sh", "-c", "touch /workspace/by-1000; id -u")
    assert res.rc == 0 and res.stdout.strip() == "1000", res
    uid, gid = host_owned_by(top / "by-1000")
    assert uid >= 0x40000000 and uid % 65536 == 1000 and uid != 1000, uid
    assert gid >= 0x40000000, gid


def test_root_owned_workspace_is_written_as_an_unprivileged_id(ak, tmp_path):
    """A workspace owned by root: no sandbox id maps to host root. The sandbox writes only where
    everyone may (here a world-writable directory), its files are its own unprivileged id's,
    root's files are nobody's inside; the CLI says what happens and how to change it."""
    top = tmp_path / "rootdir"
    top.mkdir()
    os.chmod(top, 0o1777)
    (top / "roots").write_text("root's\n")
    os.chmod(top / "roots", 0o644)
    res = ak("run", "--no-network", "--mount-cwd", "--", "sh", "-c",
             "touch /workspace/new; stat -c '%u' /workspace/roots; "
             "echo x >> /workspace/roots 2>/dev/null || echo denied", cwd=top)
    assert res.rc == 0, res
    assert res.stdout.split() == ["65534", "denied"], res
    assert "belongs to root" in res.stderr and "chown" in res.stderr, res
    uid, gid = host_owned_by(top / "new")
    assert uid >= 0x40000000 and gid >= 0x40000000, (uid, gid)
    # a root-owned directory that is not world-writable: nothing can be written at all
    ro = tmp_path / "rootonly"
    ro.mkdir()
    os.chmod(ro, 0o755)
    res = ak("run", "--no-network", "--mount-cwd", "--", "sh", "-c",
             "touch /workspace/x 2>/dev/null || echo denied", cwd=ro)
    assert res.stdout.strip() == "denied", res
    assert list(ro.iterdir()) == []


def test_group_of_the_workspace_is_the_sandboxs_group(ak, tmp_path):
    """The directory's group is the sandbox's group 0, so new files get the project's group,
    and group 0 of the host is never handed out."""
    top = tmp_path / "shared"
    top.mkdir()
    os.chown(top, OWNER, OWNER + 1)
    os.chmod(top, 0o775)
    res = ak("run", "--no-network", "--mount-cwd", "--", "sh", "-c",
             "touch /workspace/f; chgrp 0 /workspace/f; stat -c '%g' /workspace/f", cwd=top)
    assert res.rc == 0, res
    assert host_owned_by(top / "f") == (OWNER, OWNER + 1)


def test_hard_link_and_rename_across_mounts_are_refused(ak, tmp_path):
    """A setuid file of the image (the host's /usr/bin/su) cannot be linked or moved into the
    workspace: other mounts are other mounts (EXDEV); mv falls back to a copy, which loses the
    bit."""
    top = owned_dir(tmp_path / "proj")
    res = ak("run", "--no-network", "--mount-cwd", "--", "sh", "-c",
             "ln /usr/bin/su /workspace/su 2>&1 | grep -c 'cross-device'; "
             "cp /usr/bin/id /tmp/id && mv /tmp/id /workspace/id && echo moved; "
             "mv /usr/bin/su /workspace/su2 2>/dev/null; "
             "cp -a /usr/bin/su /workspace/su3 2>/dev/null; ls /workspace", cwd=top)
    assert res.rc == 0, res
    assert res.stdout.splitlines()[0] == "1" and "moved" in res.stdout, res
    assert not (top / "su").exists()
    assert_nothing_privileged(top, owner_uid=OWNER)


def test_old_root_owned_volume_is_converted_when_mounted(ak, tmp_path):
    """A volume an earlier version left owned by root, holding a setuid-root file, a file with
    a capability, a setgid directory and a symlink to /etc/shadow: mounting it converts it once
    (ids shifted to the volumes' range, bits and capabilities removed) and never follows the
    link."""
    assert ak("volume", "create", "old").rc == 0
    v = volume_path(ak, "old")
    os.chown(v, 0, 0)  # as earlier versions made it
    (v / "suid").write_text("#!/bin/sh\n")
    os.chmod(v / "suid", 0o4755)
    (v / "d" / "e").mkdir(parents=True)
    os.chmod(v / "d", 0o2775)
    (v / "d" / "e" / "capped").write_text("x")
    os.chown(v / "d" / "e" / "capped", 1000, 1000)
    cap = (0x02000000 | 1).to_bytes(4, "little") + (1 << 7).to_bytes(4, "little") + bytes(12)
    os.setxattr(v / "d" / "e" / "capped", "security.capability", cap)
    os.symlink("/etc/shadow", v / "shadow-link")
    shadow = os.stat("/etc/shadow")
    res = ak("run", "--no-network", "-v", "old:/data", "--", "sh", "-c",
             "stat -c '%n %u %a' /data /data/suid /data/d/e/capped; touch /data/new")
    assert res.rc == 0, res
    assert res.stdout.split() == ["/data", "0", "755", "/data/suid", "0", "755",
                                  "/data/d/e/capped", "1000", "644"], res
    assert_nothing_privileged(v)
    assert host_owned_by(v / "d" / "e" / "capped") == (VOLUME_ID_BASE + 1000,) * 2
    assert host_owned_by(v / "new") == (VOLUME_ID_BASE,) * 2
    assert host_owned_by(v / "shadow-link") == (VOLUME_ID_BASE,) * 2
    after = os.stat("/etc/shadow")
    assert (after.st_uid, after.st_gid, after.st_mode) == (shadow.st_uid, shadow.st_gid,
                                                          shadow.st_mode)


def test_volume_ids_agree_between_sandboxes(ak):
    """Volumes are shared by sandboxes with different host ranges: a file of user 1000 in one is
    user 1000's in the next, and none of them is a host user's."""
    assert ak("volume", "create", "shared").rc == 0
    assert ak("run", "--no-network", "-v", "shared:/s", "--", "sh", "-c",
              "mkdir /s/u && chown 1000:1000 /s/u").rc == 0
    assert ak("create", "b", "--no-network", "-v", "shared:/s").rc == 0
    res = ak("exec", "b", "-u", "1000", "--", "sh", "-c", "touch /s/u/f && stat -c '%u' /s/u/f")
    assert res.rc == 0 and res.stdout.strip() == "1000", res
    v = volume_path(ak, "shared")
    assert host_owned_by(v / "u" / "f") == (VOLUME_ID_BASE + 1000,) * 2


def test_rootless_sandbox_cannot_plant_setuid_files(local_user, tmp_path):
    """Rootless, the caller's own uid is the sandbox's root, so a setuid file would run as the
    caller for anyone: the filter refuses the bit there too."""
    home = local_user.home
    proj = home / "proj"
    local_user.run(["mkdir", "-p", proj], check=False)
    ak = local_user.ak()
    res = ak("run", "--no-network", "--mount-cwd", "--", PY, "-c", ATTACK, "/workspace",
             cwd=proj, timeout=60)
    if res.rc != 0 and ("user namespace" in res.stderr or "not available" in res.stderr):
        pytest.skip(f"rootless sandboxes unavailable here: {res.stderr.strip()}")
    assert res.rc == 0 and "done" in res.stdout, res
    for f in planted(proj):
        st = os.lstat(f)
        assert not (st.st_mode & (stat.S_ISUID | stat.S_ISGID)) or stat.S_ISLNK(st.st_mode), f
