# SPDX-License-Identifier: Apache-2.0
"""A hostile container of the docker and podman backends plants files in the host directories it
is given (a workspace, volumes).

The container's root is the engine's root, which without a user namespace is host root; a plain
bind mount would make every file it writes root's on the host, setuid bits included, and the
image's users (uid 1000...) real host users. The container tries: files, directories, links,
fifos, copies, chown to root and to another user, writes as the image's own user, setuid and
setgid modes every way busybox offers (chmod, chown+chmod, mkdir -m, tar -p), in a user's
project directory, in a root-owned world-writable one, in volumes, read-only volumes included;
and a local user without root tries to have a rootful engine do it for them. What must hold,
checked from the host: nothing the container made is owned by uid or gid 0; in a user's
directory everything belongs to that user; elsewhere to the sandbox's own unprivileged ids
(never a real user's); and, once the seccomp filters that refuse setuid modes are in the build,
no file with S_ISUID or S_ISGID at all.
"""
import os
import shutil
import stat
import subprocess

import pytest

from conftest import STATIC_AGENT, needs_root, needs_static_agent
from .conftest import create, host_files, sh

pytestmark = [needs_root, needs_static_agent]

OWNER = 62003                # the owner of a user's project directory: a host user, not root
ID_RANGE_BASE = 0x40000000   # the sandboxes' own host ids (native.c, engine-backend.c)
VOLUME_ID_BASE = 0x3FFF0000  # volumes' ids in every sandbox (shared/bind-mount.h)

# Every way to leave a file there, then every way busybox has to make one setuid/setgid or
# root's. Runs as the container's root with the target directory as $1; failures are expected
# and ignored: the host judges what is there afterwards.
PLANT = r"""
T="$1"; cd "$T" || exit 1
echo x > plain; busybox mkdir dir; echo y > dir/inner; busybox ln -s plain link
busybox mkfifo fifo; busybox cp /bin/busybox copy
busybox chown 0:0 plain dir dir/inner copy
busybox chmod 4755 copy; busybox chmod 6755 dir/inner; busybox chmod g+s dir
busybox mkdir -m 2775 sgid-dir; busybox mkdir -m 4775 suid-dir
busybox cp /bin/busybox rootsuid; busybox chown 0:0 rootsuid; busybox chmod u+s rootsuid
busybox chown 1000:1000 plain; busybox chown 0:1000 dir/inner
busybox mknod dev-null c 1 3
cd /tmp && busybox cp /bin/busybox tsuid && busybox chmod 4755 tsuid && busybox tar cf t.tar tsuid
cd "$T" && busybox tar xpf /tmp/t.tar
busybox ln /etc/passwd hardlink
echo planted
"""


def project(tmp_path, owner=OWNER, mode=0o755, name="project"):
    d = tmp_path / name
    d.mkdir()
    os.chown(d, owner, owner)
    os.chmod(d, mode)
    return d


def plant(eak, name, target="/workspace"):
    res = sh(eak, name, PLANT, target)
    assert res.rc == 0 or "planted" in res.stdout, res
    return res


def roots(top):
    """What below top belongs to host root (uid or gid 0)."""
    return [f"{p}: {st.st_uid}:{st.st_gid}" for p, st in host_files(top).items()
            if st.st_uid == 0 or st.st_gid == 0]


def privileged(top):
    return [f"{p}: {oct(st.st_mode)}" for p, st in host_files(top).items()
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID)]


def in_sandbox_range(uid):
    return uid >= ID_RANGE_BASE or VOLUME_ID_BASE <= uid < VOLUME_ID_BASE + 65536


def test_workspace_files_belong_to_the_workspace_owner(eak, tmp_path):
    """In a user's project directory (-d), whatever the container's root makes, and whatever it
    chowns to root, belongs on the host to that user: never to root."""
    ws = project(tmp_path)
    create(eak, "w", "-d", str(ws))
    plant(eak, "w")
    files = host_files(ws)
    assert "%s/plain" % ws in files and "%s/dir/inner" % ws in files, files
    assert roots(ws) == []
    for p, st in files.items():
        if p.endswith(("/plain", "/dir/inner")):
            continue  # chowned to the image's uid 1000 inside: see the next test
        assert (st.st_uid, st.st_gid) == (OWNER, OWNER), (p, st.st_uid, st.st_gid)


def test_container_users_are_not_host_users(eak, tmp_path):
    """The image's users (uid 1000 here) and ids the container chowns to must not be real host
    users' ids on the host: they land in the sandbox's own range."""
    ws = project(tmp_path, mode=0o777)
    create(eak, "w", "-d", str(ws))
    res = eak("exec", "-u", "user", "w", "--", "sh", "-c",
              "echo u > /workspace/by-user; busybox mkdir /workspace/user-dir; id -u")
    assert res.rc == 0 and res.stdout.strip() == "1000", res
    sh(eak, "w", "echo c > /workspace/chowned; busybox chown 1000:1000 /workspace/chowned; "
       "busybox chown 4242:4242 /workspace/user-dir")
    for n in ("by-user", "chowned", "user-dir"):
        st = os.lstat(ws / n)
        assert in_sandbox_range(st.st_uid) and in_sandbox_range(st.st_gid), \
            (n, st.st_uid, st.st_gid)
    assert roots(ws) == []


def test_root_owned_workspace_gets_no_root_files(eak, tmp_path):
    """A root-owned directory as the workspace: the container's root must not write there as
    host root. Where only root may write (0755) it writes nothing; where everyone may (1777, like
    /tmp) whatever it manages to leave belongs to an unprivileged id of the sandbox. (Root has no
    id in the container's idmapped mount: the kernel refuses every change to what root owns
    there, so in practice nothing is written at all.)"""
    closed = project(tmp_path, owner=0, mode=0o755, name="closed")
    create(eak, "c", "-d", str(closed))
    res = sh(eak, "c", "echo x > /workspace/f && echo wrote")
    assert "wrote" not in res.stdout, res
    assert host_files(closed) == {}
    open_ = project(tmp_path, owner=0, mode=0o1777, name="open")
    create(eak, "o", "-d", str(open_))
    plant(eak, "o")
    files = host_files(open_)
    assert roots(open_) == []
    assert all(in_sandbox_range(st.st_uid) for st in files.values()), files


def test_setuid_files_are_never_roots(eak, tmp_path):
    """Setuid and setgid files made every way (chmod 4755/6755, chown 0 then chmod u+s, mkdir
    -m 4775/2775, tar -p of a setuid file): whatever survives on the host is not root's, so it
    gives nobody root. (The project is world-writable, so that a container whose root is host
    root could write there even without CAP_DAC_OVERRIDE.)"""
    ws = project(tmp_path, mode=0o777)
    create(eak, "w", "-d", str(ws))
    plant(eak, "w")
    for p, st in host_files(ws).items():
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            assert st.st_uid != 0 and st.st_gid != 0, (p, oct(st.st_mode), st.st_uid)
    assert roots(ws) == []


def seccomp_refuses_setuid(eak, name):
    """Whether this build's seccomp profile refuses setuid modes (the branch that adds those
    filters may not be merged yet): probed on the container's own /tmp, not a host mount."""
    res = sh(eak, name, "echo > /tmp/probe; busybox chmod 4755 /tmp/probe && echo allowed")
    return "allowed" not in res.stdout


def test_setuid_bits_do_not_survive(eak, tmp_path):
    """The same plants, judged strictly: no file in the workspace may carry S_ISUID or S_ISGID
    at all (not even the owner's own). The seccomp filters refuse setuid/setgid modes; without
    them in the build this cannot hold, and the test says so."""
    ws = project(tmp_path)
    create(eak, "w", "-d", str(ws))
    if not seccomp_refuses_setuid(eak, "w"):
        pytest.xfail("this build's seccomp profiles allow setuid modes (needs the seccomp "
                     "argument filters of the host-mount branch)")
    plant(eak, "w")
    assert privileged(ws) == []
    assert roots(ws) == []


def volume_dir(eak, name):
    return eak.data_dir / "volumes" / name


def test_volume_files_are_never_roots(eak):
    """A volume is a host directory too: the container plants there; nothing may be root's,
    and what it writes belongs to the volumes' own ids (where the volume is theirs)."""
    assert eak("volume", "create", "vol").rc == 0
    create(eak, "v", "-v", "vol:/data")
    plant(eak, "v", "/data")
    vd = volume_dir(eak, "vol")
    assert roots(vd) == []
    if os.stat(vd).st_uid == VOLUME_ID_BASE:  # volumes owned by their range (native's rule)
        files = host_files(vd)
        assert files, "the container could not write its volume"
        assert all(VOLUME_ID_BASE <= st.st_uid < VOLUME_ID_BASE + 65536
                   for st in files.values()), files
    assert eak("remove", "v").rc == 0
    assert eak("volume", "delete", "vol", "--force").rc == 0


def test_read_only_volume_stays_read_only(eak):
    """A volume given read-only (:ro) must refuse every write and chmod from the container."""
    assert eak("volume", "create", "rov").rc == 0
    vd = volume_dir(eak, "rov")
    before = host_files(vd)
    create(eak, "r", "-v", "rov:/data:ro")
    res = sh(eak, "r", "echo x > /data/f && echo wrote; busybox chmod 4777 /data && echo "
             "chmodded; busybox mkdir /data/d && echo made")
    assert not any(w in res.stdout for w in ("wrote", "chmodded", "made")), res
    assert host_files(vd) == before
    assert os.stat(vd).st_mode & 0o7000 == 0
    assert eak("remove", "r").rc == 0
    assert eak("volume", "delete", "rov", "--force").rc == 0


def test_a_local_user_cannot_have_a_rootful_engine_plant_root_files(eak, local_user, tmp_path):
    """Another local user who can reach a rootful engine's socket runs agentkernel with a
    workspace of their own. The engine's containers run as host root, which agentkernel without
    root cannot give host directories safely: it must refuse clearly, with no container and no
    file left behind."""
    eng = eak.engine
    ws = local_user.home / "proj"
    ws.mkdir()
    os.chown(ws, local_user.uid, local_user.uid)
    before = set(eng.containers())
    mode, dmode = os.stat(eng.sock).st_mode, os.stat(eng.dir).st_mode
    os.chmod(eng.sock, 0o666)  # the test's own engine: the user may talk to it
    os.chmod(eng.dir, dmode | 0o001)
    try:
        uak = local_user.ak()
        uak.env.update(eng.env)
        uak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
        res = uak("run", "-B", eng.name, "-i", eng.image, "--no-network", "--mount-cwd", "--",
                  "sh", "-c", "echo x > /workspace/planted; busybox chmod 4755 /workspace/planted",
                  timeout=120, cwd=ws)
        assert res.rc != 0, res
        assert "another user" in res.stderr or "host root" in res.stderr, res
    finally:
        os.chmod(eng.sock, stat.S_IMODE(mode))
        os.chmod(eng.dir, stat.S_IMODE(dmode))
    assert host_files(ws) == {}
    assert set(eng.containers()) == before
