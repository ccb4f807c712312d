# SPDX-License-Identifier: Apache-2.0
"""The state directory, attacked by another local user (issue 12, findings 4 and 7).

The attacker is an unprivileged uid (the `local_user` fixture). It pre-creates the places root's
agentkernel would use (/tmp/agentkernel without HOME, a data directory named by
AGENTKERNEL_DATA_DIR) and plants forged records there: a runtime.json naming a host process, a
cgroup outside agentkernel's, a workspace of "/", an /etc snapshot of its own. Root must refuse
those places or not believe what they say: no host process killed, no foreign cgroup touched, no
host directory mounted, /etc not replaced.

A second line of tests plants the forgeries in root's own data directory: a record is input
read back from disk, and is believed no further than it can prove (a sandbox with a workspace
above the data directory, or an older version's 0755 directory, could have written it).

Victims are processes and cgroups the test itself made; nothing else is ever killed or touched.
Whatever must not reach the host's /tmp or /root runs in a private mount namespace with fresh
tmpfs mounted there.
"""
import json
import os
import pathlib
import shlex
import stat
import subprocess
import time
import uuid

import pytest

from conftest import AK, ATTACKER_UID, Result, needs_root, snapshot_cache

pytestmark = needs_root

NO_PASSWD_UID = 62002  # a uid without a passwd entry (no home to fall back on)


# ---- helpers ----

def start_time(pid):
    """Field 22 of /proc/<pid>/stat: what a runtime record pairs with the pid."""
    return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def boot_id():
    return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def alive(proc):
    return proc.poll() is None


@pytest.fixture
def victim():
    """A host process of the test's own that nothing may kill."""
    p = subprocess.Popen(["sleep", "600"])
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def ns_victim():
    """PID 1 of a user and pid namespace root made (what a sandbox's init looks like from
    outside, but no sandbox's): the forged record names it."""
    p = subprocess.Popen(["unshare", "-Upf", "--map-root-user", "sleep", "600"])
    child = None
    for _ in range(200):
        try:
            kids = pathlib.Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            child = int(kids[0])
            break
        time.sleep(0.01)
    assert child, "unshare did not start its child"
    yield p, child
    os.kill(child, 9)  # ours: PID 1 of the namespace this fixture made
    p.wait()


def cgroup_v2():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@pytest.fixture
def victim_cgroup(victim):
    """A cgroup of the test's own, outside agentkernel's hierarchy, with the victim in it."""
    name = f"ak-test-victim-{uuid.uuid4().hex[:12]}"
    base = pathlib.Path("/sys/fs/cgroup") if cgroup_v2() else pathlib.Path("/sys/fs/cgroup/pids")
    d = base / name
    d.mkdir()
    (d / "cgroup.procs").write_text(str(victim.pid))
    yield d, (2 if cgroup_v2() else 1)
    victim.kill()
    victim.wait()
    for _ in range(100):
        try:
            d.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.02)


def forge_runtime(ak, name, pid, cgroups=(), mode=None, boot=None, sandbox_uuid=None):
    """Writes <data>/run/<name>/runtime.json as root would have: a private file of root's."""
    run = ak.data_dir / "run" / name
    run.mkdir(mode=0o700, exist_ok=True)
    doc = {"pid": pid, "start_time": start_time(pid),
           "cgroup_mode": mode if mode is not None else (2 if cgroup_v2() else 1),
           "cgroups": list(cgroups)}
    if boot is not False:
        doc["boot_id"] = boot or boot_id()
    if sandbox_uuid:
        doc["uuid"] = sandbox_uuid
    f = run / "runtime.json"
    f.write_text(json.dumps(doc))
    os.chmod(f, 0o600)
    return f


def own_cgroups(sandbox_uuid):
    """The cgroup directories a sandbox of this uuid has on this host (what a genuine
    runtime.json lists)."""
    if cgroup_v2():
        return [f"/sys/fs/cgroup/agentkernel/{sandbox_uuid}"]
    return [f"/sys/fs/cgroup/{c}/agentkernel/{sandbox_uuid}" for c in ("memory", "pids", "cpu")]


def stopped_box(ak, name="box"):
    """A recorded, stopped sandbox; returns its uuid."""
    assert ak("create", name, "--no-network").rc == 0
    assert ak("stop", name).rc == 0
    return ak.state(name)["uuid"]


def running(ak, name):
    return {s["name"]: s for s in ak.list()}[name]["status"] == "running"


def record(name, sandbox_uuid=None, **ext):
    doc = {"name": name, "uuid": sandbox_uuid or str(uuid.uuid4()), "image": "host", "vcpus": 1,
           "memory_mb": 256, "vsock_cid": 3, "created_at": "2024-01-01T00:00:00+00:00"}
    if ext:
        doc["x_agentkernel"] = ext
    return doc


def plant_code(root, victim_pid, victim_start, name="forged", mode=0o755):
    """Python run as the attacker: a data directory with a forged record and runtime file."""
    rec = json.dumps(record(name, mount_cwd=True, work_dir="/"))
    rt = json.dumps({"pid": victim_pid, "start_time": victim_start, "cgroup_mode": 0,
                     "cgroups": []})
    return (f"import os\nr={root!r}\n"
            f"os.makedirs(r + '/sandboxes', exist_ok=True)\n"
            f"os.makedirs(r + '/run/{name}', exist_ok=True)\n"
            f"os.makedirs(r + '/locks', exist_ok=True)\n"
            f"open(r + '/sandboxes/{name}.json', 'w').write({rec!r})\n"
            f"open(r + '/run/{name}/runtime.json', 'w').write({rt!r})\n"
            f"for d, _, fs in os.walk(r):\n"
            f"    if os.stat(d).st_uid == os.getuid():\n"
            f"        os.chmod(d, {mode})\n")


# agentkernel as the scripts below run it: through an fd opened before /tmp and /root are
# covered (the checkout may live under either)
AKX = "/proc/self/fd/9"


def in_private_ns(script, timeout=120):
    """Runs a bash script as root in a mount namespace of its own where /tmp and /root are fresh
    tmpfs: what the test plants there, and what agentkernel creates there, never reaches the
    host's /tmp or /root. The script runs agentkernel as `env -i {AKX} ...`."""
    full = (f"set -u\nexec 9<{shlex.quote(AK)}\nmount --make-rprivate /\n"
            "mount -t tmpfs -o mode=1777 ak-test-tmp /tmp\n"
            "mount -t tmpfs -o mode=0700 ak-test-root /root\n" + script)
    return Result(subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", full],
                                 capture_output=True, timeout=timeout))


def as_attacker(code, uid=ATTACKER_UID):
    return (f"setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all -- "
            f"/usr/bin/python3 -c {shlex.quote(code)}\n")


# ---- where the data directory is ----

def test_no_home_never_adopts_tmp_agentkernel(victim):
    """Without HOME (systemd, cron, env -i) root used /tmp/agentkernel even when another user
    had made it: the attacker's record named a host process, and `stop` killed it. Must hold:
    the data directory is root's passwd home, /tmp/agentkernel is never read, nobody dies."""
    script = (as_attacker(plant_code("/tmp/agentkernel", victim.pid, start_time(victim.pid))) +
              f"echo LIST; env -i {AKX} list --json; echo RC=$?\n"
              f"env -i {AKX} stop forged; echo STOP=$?\n"
              f"env -i {AKX} remove forged; echo REMOVE=$?\n"
              "stat -c 'DATA %a %u' /root/.local/share/agentkernel\n"
              "stat -c 'TMP %u' /tmp/agentkernel/sandboxes/forged.json\n")
    res = in_private_ns(script)
    assert "forged" not in res.stdout.split("LIST", 1)[1].split("RC=", 1)[0], res
    assert "STOP=0" not in res.stdout and "REMOVE=0" not in res.stdout, res
    assert "DATA 700 0" in res.stdout, res
    assert f"TMP {ATTACKER_UID}" in res.stdout, res  # left as it was
    assert alive(victim)


def test_no_home_uses_the_passwd_home():
    """The fallback without HOME is the effective uid's home from /etc/passwd, made 0700:
    nothing lands in a shared directory."""
    res = in_private_ns(f"env -i {AKX} list >/dev/null; "
                        "stat -c '%a %u' /root/.local/share/agentkernel "
                        "/root/.local/share/agentkernel/sandboxes; ls -A /tmp; echo END\n")
    lines = res.stdout.split("\n")
    assert "700 0" in lines, res
    assert lines.count("700 0") == 2, res
    assert lines[-2] == "END", res  # /tmp stayed empty


def test_no_home_and_no_passwd_entry_is_refused():
    """A uid without a passwd entry and without HOME has no private place: refused, with a
    message that names HOME and AGENTKERNEL_DATA_DIR, and nothing is created in /tmp."""
    res = in_private_ns(
        f"setpriv --reuid={NO_PASSWD_UID} --regid={NO_PASSWD_UID} --clear-groups "
        f"--inh-caps=-all -- env -i {AKX} list; echo RC=$?; ls -A /tmp; echo END\n")
    assert "RC=0" not in res.stdout, res
    assert "HOME" in res.stderr and "AGENTKERNEL_DATA_DIR" in res.stderr, res
    assert res.stdout.rstrip().endswith("END") and "agentkernel" not in res.stdout, res


def test_data_dir_of_another_user_is_refused(ak, local_user, victim):
    """AGENTKERNEL_DATA_DIR names a directory the attacker made, with a forged record whose
    runtime file names a host process. Must hold: every verb refuses the directory (saying
    whose it is), the victim lives, root writes nothing there."""
    data = local_user.home / "data"
    res = local_user.python(plant_code(str(data), victim.pid, start_time(victim.pid), mode=0o700))
    assert res.rc == 0, res
    env = {"AGENTKERNEL_DATA_DIR": str(data)}
    for verb in (["list"], ["stop", "forged"], ["remove", "forged"], ["start", "forged"],
                 ["create", "mine", "--no-network"]):
        res = ak(*verb, env=env)
        assert res.rc != 0, (verb, res)
        assert f"uid {ATTACKER_UID}" in res.stderr, (verb, res)
    assert alive(victim)
    for dirpath, dirs, files in os.walk(data):
        for n in dirs + files:
            assert os.lstat(os.path.join(dirpath, n)).st_uid == ATTACKER_UID, n


def test_world_writable_data_dir_is_refused(ak, local_user, victim, tmp_path):
    """Root's own data directory left 0777: the attacker plants a record in it. Must hold: the
    directory is refused (writable by others) and the victim lives."""
    data = tmp_path / "open-data"
    data.mkdir()
    os.chmod(data, 0o777)
    res = local_user.python(plant_code(str(data), victim.pid, start_time(victim.pid), mode=0o777))
    assert res.rc == 0, res
    env = {"AGENTKERNEL_DATA_DIR": str(data)}
    for verb in (["list"], ["stop", "forged"], ["remove", "forged"]):
        res = ak(*verb, env=env)
        assert res.rc != 0 and "writable by" in res.stderr, (verb, res)
    assert alive(victim)


def test_data_dir_below_the_attackers_directory_is_refused(ak, local_user):
    """Root's data directory, 0700 and root's, but inside the attacker's home: the attacker can
    rename it away and put its own in its place. Must hold: refused (an ancestor belongs to
    another user)."""
    data = local_user.home / "roots-data"
    data.mkdir(mode=0o700)
    res = ak("list", env={"AGENTKERNEL_DATA_DIR": str(data)})
    assert res.rc != 0 and "above the data directory" in res.stderr, res
    assert f"uid {ATTACKER_UID}" in res.stderr, res
    assert list(data.iterdir()) == []


def test_data_dir_below_a_world_writable_directory_is_refused(ak, tmp_path):
    """A parent writable by everyone and not sticky lets anyone swap the data directory.
    Must hold: refused; the same parent made sticky (as /tmp) is fine, but there the next
    component must be root's or the caller's."""
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)
    env = {"AGENTKERNEL_DATA_DIR": str(parent / "data")}
    res = ak("list", env=env)
    assert res.rc != 0 and "not sticky" in res.stderr, res
    assert not (parent / "data").exists()
    os.chmod(parent, 0o1777)
    assert ak("list", env=env).rc == 0
    assert stat.S_IMODE(os.stat(parent / "data").st_mode) == 0o700


def test_symlinked_data_dir_is_refused(ak, tmp_path):
    """The data directory named through a symlink: whoever owns the link can re-point it
    between two commands. Must hold: refused, with a message naming the link."""
    real = tmp_path / "real-data"
    real.mkdir(mode=0o700)
    link = tmp_path / "link-data"
    link.symlink_to(real)
    res = ak("list", env={"AGENTKERNEL_DATA_DIR": str(link)})
    assert res.rc != 0 and "symbolic link" in res.stderr, res


def test_sticky_dir_entry_of_another_user_is_refused(ak, local_user, tmp_path):
    """In a sticky shared directory (like /tmp) the attacker creates the directory root's
    data directory will be made in. Must hold: refused, nothing created by root inside."""
    shared = tmp_path / "sticky"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    res = local_user.run(["mkdir", "-m", "0755", str(shared / "agentkernel")])
    assert res.rc == 0, res
    res = ak("list", env={"AGENTKERNEL_DATA_DIR": str(shared / "agentkernel" / "data")})
    assert res.rc != 0 and f"uid {ATTACKER_UID}" in res.stderr, res
    assert list((shared / "agentkernel").iterdir()) == []


# ---- forged runtime files (pids and cgroups read back) ----

@pytest.mark.parametrize("cgroups", ["none", "own"])
def test_forged_runtime_pid_of_a_host_process_is_not_killed(ak, victim, cgroups):
    """runtime.json names a host process (pid and true start time, this boot), listing no
    cgroups or the sandbox's own. Must hold: `stop` and `remove` do not signal it, and the
    sandbox is not reported running."""
    u = stopped_box(ak)
    forge_runtime(ak, "box", victim.pid, sandbox_uuid=u,
                  cgroups=own_cgroups(u) if cgroups == "own" else ())
    assert not running(ak, "box")
    assert ak("exec", "box", "--", "true").rc != 0
    ak("stop", "box")
    assert alive(victim)
    assert ak("remove", "box").rc == 0
    assert alive(victim)


@pytest.mark.parametrize("cgroups", ["none", "own"])
def test_forged_runtime_pid_of_a_namespace_init_is_not_killed(ak, ns_victim, cgroups):
    """The named process looks like a sandbox's init (PID 1 of a pid namespace in a user
    namespace root created) but is in no sandbox's cgroup. Must hold: not killed, whether the
    file lists no cgroups or the sandbox's own (then membership is what tells them apart)."""
    parent, child = ns_victim
    u = stopped_box(ak)
    forge_runtime(ak, "box", child, sandbox_uuid=u,
                  cgroups=own_cgroups(u) if cgroups == "own" else ())
    assert not running(ak, "box")
    ak("stop", "box")
    assert ak("remove", "box").rc == 0
    assert alive(parent) and pathlib.Path(f"/proc/{child}").exists()


def test_forged_runtime_naming_another_sandbox_does_not_stop_it(ak):
    """Sandbox a's runtime.json is rewritten with b's agent (pid, start time, boot). Must hold:
    stopping and removing a leaves b running."""
    assert ak("create", "a", "--no-network").rc == 0
    assert ak("create", "b", "--no-network").rc == 0
    real_b = json.loads((ak.data_dir / "run" / "b" / "runtime.json").read_text())
    f = ak.data_dir / "run" / "a" / "runtime.json"
    doc = json.loads(f.read_text())
    doc.update(pid=real_b["pid"], start_time=real_b["start_time"])
    f.write_text(json.dumps(doc))
    ak("stop", "a")
    assert ak("remove", "a").rc == 0
    assert running(ak, "b")
    assert ak("exec", "b", "--", "true").rc == 0


def test_forged_cgroup_outside_agentkernel_is_not_touched(ak, victim, victim_cgroup):
    """runtime.json lists a cgroup of the test's own outside agentkernel/. Must hold: `remove`
    neither kills what is in it nor removes it."""
    d, mode = victim_cgroup
    u = stopped_box(ak)
    forge_runtime(ak, "box", victim.pid, cgroups=[str(d)], mode=mode, sandbox_uuid=u)
    ak("stop", "box")
    assert ak("remove", "box").rc == 0
    assert d.is_dir() and alive(victim)


def test_forged_cgroup_with_dotdot_is_not_touched(ak, victim, victim_cgroup):
    """The listed cgroup starts inside agentkernel/<uuid> and climbs out with '..'. Must hold:
    not followed, the victim cgroup and process stay."""
    d, mode = victim_cgroup
    u = stopped_box(ak)
    sneaky = f"{d.parent}/agentkernel/{u}/../../{d.name}"
    forge_runtime(ak, "box", victim.pid, cgroups=[sneaky], mode=mode, sandbox_uuid=u)
    assert ak("remove", "box").rc == 0
    assert d.is_dir() and alive(victim)


def test_forged_cgroup_of_another_sandbox_is_not_touched(ak):
    """a's runtime.json lists b's cgroups (agentkernel/<b's uuid>). Must hold: removing a
    leaves b and its cgroups alone."""
    assert ak("create", "a", "--no-network").rc == 0
    assert ak("create", "b", "--no-network").rc == 0
    real_b = json.loads((ak.data_dir / "run" / "b" / "runtime.json").read_text())
    f = ak.data_dir / "run" / "a" / "runtime.json"
    doc = json.loads(f.read_text())
    doc["cgroups"] = real_b["cgroups"]
    f.write_text(json.dumps(doc))
    assert ak("remove", "a").rc == 0
    assert running(ak, "b")
    assert all(pathlib.Path(c).is_dir() for c in real_b["cgroups"])


def test_runtime_file_through_a_symlink_is_not_read(ak, victim, tmp_path):
    """runtime.json is a symlink to a file elsewhere naming the victim. Must hold: the link
    is not followed, the victim lives."""
    u = stopped_box(ak)
    elsewhere = forge_runtime(ak, "box", victim.pid, sandbox_uuid=u)
    target = tmp_path / "elsewhere.json"
    target.write_text(elsewhere.read_text())
    os.chmod(target, 0o600)
    elsewhere.unlink()
    elsewhere.symlink_to(target)
    ak("stop", "box")
    assert ak("remove", "box").rc == 0
    assert alive(victim)


def test_runtime_file_of_another_user_is_not_believed(ak, victim):
    """runtime.json belongs to the attacker's uid (planted while the directory was open, or
    handed over). Must hold: not believed, the victim lives."""
    u = stopped_box(ak)
    f = forge_runtime(ak, "box", victim.pid, sandbox_uuid=u)
    os.chown(f, ATTACKER_UID, ATTACKER_UID)
    ak("stop", "box")
    assert ak("remove", "box").rc == 0
    assert alive(victim)


def test_runtime_file_of_another_boot_is_not_believed(ak):
    """Pid reuse across a reboot: start times repeat, so a record from another boot names
    whatever process has that pid and start time now. Must hold: the sandbox's real agent,
    recorded with another boot's id, is not taken for running (nothing is signalled by pid)."""
    assert ak("create", "box", "--no-network").rc == 0
    f = ak.data_dir / "run" / "box" / "runtime.json"
    doc = json.loads(f.read_text())
    doc["boot_id"] = str(uuid.uuid4())
    f.write_text(json.dumps(doc))
    assert not running(ak, "box")
    assert ak("exec", "box", "--", "true").rc != 0


# ---- forged workspaces (mounted read-write into root's sandboxes) ----

def forge_workspace(ak, work_dir):
    stopped_box(ak)
    f = ak.state_file("box")
    doc = json.loads(f.read_text())
    doc.setdefault("x_agentkernel", {}).update(mount_cwd=True, work_dir=work_dir)
    f.write_text(json.dumps(doc, indent=2))


@pytest.mark.parametrize("work_dir", ["/", "/tmp/../", "/etc/../", "relative/dir"])
def test_forged_workspace_is_refused_at_start(ak, work_dir):
    """A record's work_dir of '/' (or a path that is not absolute and normalised) would mount
    the host's root read-write at /workspace. Must hold: `start` refuses it and says why."""
    forge_workspace(ak, work_dir)
    res = ak("start", "box")
    assert res.rc != 0 and "workspace" in res.stderr, res
    assert not running(ak, "box")


def test_forged_workspace_through_a_symlink_is_refused(ak, tmp_path):
    """work_dir is a symlink to /etc: a link can be re-pointed between create and start.
    Must hold: refused."""
    link = tmp_path / "ws-link"
    link.symlink_to("/etc")
    forge_workspace(ak, str(link))
    res = ak("start", "box")
    assert res.rc != 0 and "symbolic link" in res.stderr, res


def test_forged_workspace_in_the_data_dir_is_refused(ak):
    """work_dir is the data directory (or inside it): the sandbox could rewrite the records
    and runtime files root trusts. Must hold: refused."""
    forge_workspace(ak, str(ak.data_dir))
    res = ak("start", "box")
    assert res.rc != 0 and "agentkernel's own directory" in res.stderr, res
    forge_workspace_path = str(ak.data_dir / "sandboxes")
    doc = json.loads(ak.state_file("box").read_text())
    doc["x_agentkernel"]["work_dir"] = forge_workspace_path
    ak.state_file("box").write_text(json.dumps(doc))
    res = ak("start", "box")
    assert res.rc != 0 and "agentkernel's own directory" in res.stderr, res


def test_create_refuses_the_same_workspaces(ak):
    """The rules at create are the rules at start: -d / and -d <data dir> are refused and
    nothing is recorded."""
    for d in ("/", str(ak.data_dir)):
        res = ak("create", "x", "--no-network", "-d", d)
        assert res.rc != 0 and "workspace" in res.stderr, (d, res)
    assert "x" not in ak.names()


# ---- /etc snapshots ----

def snapshot_dirs(ak):
    d = snapshot_cache(ak.data_dir)
    return [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]


@pytest.mark.parametrize("how", ["other-owner", "writable"])
def test_planted_etc_snapshot_is_not_used(ak, how):
    """Anyone could compute the name of the next /etc snapshot (now a secret of the cache is
    hashed into it); one the attacker made (or one others can write) was bound as /etc of root's
    sandboxes. Must hold: it is not used (a
    snapshot of root's replaces it) and the planted file is not visible in /etc."""
    assert ak("run", "--no-network", "--", "true").rc == 0
    [snap] = snapshot_dirs(ak)
    (snap / "ak-planted").write_text("planted\n")
    if how == "other-owner":
        for dirpath, dirs, files in os.walk(snap):
            for n in [dirpath] + [os.path.join(dirpath, x) for x in dirs + files]:
                os.lchown(n, ATTACKER_UID, ATTACKER_UID)
    else:
        os.chmod(snap, 0o777)
    res = ak("run", "--no-network", "--", "sh", "-c", "cat /etc/ak-planted || echo clean")
    assert res.rc == 0 and res.stdout == "clean\n", res
    [snap] = snapshot_dirs(ak)
    st = os.stat(snap)
    assert st.st_uid == 0 and not st.st_mode & 0o022
    assert not (snap / "ak-planted").exists()


# ---- volumes ----

def test_volume_image_symlink_is_not_loop_mounted(ak, tmp_path):
    """A sized volume's filesystem image replaced by a symlink to another image (or a disk):
    root would loop-mount whatever it names into the sandbox. Must hold: refused, the target
    not mounted."""
    other = tmp_path / "other.img"
    with open(other, "wb") as f:
        f.truncate(8 << 20)
    assert subprocess.run(["mkfs.ext4", "-q", "-F", str(other)], capture_output=True).returncode == 0
    assert ak("volume", "create", "v", "--size", "8MB").rc == 0
    vdir = ak.data_dir / "volumes" / "v"
    subprocess.run(["umount", str(vdir)], check=True)
    img = ak.data_dir / "volumes" / ".v.img"
    img.unlink()
    img.symlink_to(other)
    res = ak("run", "--no-network", "-v", "v:/data", "--", "ls", "/data")
    assert res.rc != 0, res
    mounts = pathlib.Path("/proc/self/mountinfo").read_text()
    assert str(vdir) not in mounts


def test_volume_dir_symlink_is_not_bound(ak, tmp_path):
    """A volume's directory replaced by a symlink to a host directory (here one of the test's
    own, standing for /etc): the bind would give the sandbox that directory read-write. Must
    hold: refused, the directory neither seen nor written."""
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "marker").write_text("host\n")
    assert ak("volume", "create", "v").rc == 0
    vdir = ak.data_dir / "volumes" / "v"
    vdir.rmdir()
    vdir.symlink_to(host_dir)
    res = ak("run", "--no-network", "-v", "v:/data", "--", "sh", "-c",
             "cat /data/marker; touch /data/planted")
    assert res.rc != 0 and "host" not in res.stdout, res
    assert sorted(p.name for p in host_dir.iterdir()) == ["marker"]


def test_volume_metadata_of_another_user_is_refused(ak):
    """Volume metadata decides what is loop-mounted where: a file of another uid is not
    believed. Must hold: the volume is refused with a message saying whose the file is."""
    assert ak("volume", "create", "v").rc == 0
    meta = ak.data_dir / "volume-metadata" / "v.json"
    os.chown(meta, ATTACKER_UID, ATTACKER_UID)
    res = ak("run", "--no-network", "-v", "v:/data", "--", "true")
    assert res.rc != 0 and f"uid {ATTACKER_UID}" in res.stderr, res


# ---- audit log ----

def test_audit_log_owned_by_another_user_is_not_written(ak, local_user):
    """AGENTKERNEL_AUDIT_PATH names a file the attacker made (to read root's commands, or to
    feed `audit verify`). Must hold: root neither appends to it nor reads it."""
    log = local_user.home / "audit.jsonl"
    res = local_user.run(["sh", "-c", f"echo '{{}}' > {log}; chmod 644 {log}"])
    assert res.rc == 0, res
    env = {"AGENTKERNEL_AUDIT_PATH": str(log)}
    assert ak("run", "--no-network", "--", "echo", "SECRET-ARG", env=env).rc == 0
    assert "SECRET-ARG" not in log.read_text()
    res = ak("audit", env=env)
    assert res.rc != 0 and f"uid {ATTACKER_UID}" in res.stderr, res


# ---- modes (finding 7) ----

EXEMPT = ("cache/etc/", "volumes/", "images/layers/")  # host /etc copies, volume and image contents
VOLUME_ID_BASE = 0x3FFF0000  # shared/bind-mount.h: the host owner of a volume's root


def test_records_are_private(ak, local_user):
    """Records hold -e values. Must hold: the attacker can read no file under the data
    directory, and every directory there is 0700 and every file 0600 (contents of /etc
    snapshots, volumes and image layers excepted), all root's; except a volume's own directory
    (volumes/NAME), which belongs to the volumes' id range by design (the sandbox's root writes
    there) and is not writable by others."""
    assert ak("create", "box", "--no-network", "-e", "TOKEN=s3cret-value").rc == 0
    assert ak("exec", "box", "--", "true").rc == 0
    assert ak("volume", "create", "vol").rc == 0
    assert ak("audit").rc == 0
    res = local_user.run(["sh", "-c", f"cat {ak.state_file('box')}; grep -r s3cret {ak.data_dir}"])
    assert "s3cret-value" not in res.stdout, res
    bad = []
    for dirpath, dirs, files in os.walk(ak.data_dir):
        rel = os.path.relpath(dirpath, ak.data_dir)
        rel = "" if rel == "." else rel + "/"
        if any(rel.startswith(e) and rel != e for e in EXEMPT):
            continue
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if rel == "volumes/" and n in dirs:  # a volume: checked below, its contents not
                continue
            if st.st_uid != 0:
                bad.append((p, "owner", st.st_uid))
            if any((rel + n + "/").startswith(e) and rel + n + "/" != e for e in EXEMPT):
                continue
            if stat.S_ISDIR(st.st_mode):
                if stat.S_IMODE(st.st_mode) != 0o700:
                    bad.append((p, oct(stat.S_IMODE(st.st_mode))))
            elif stat.S_ISREG(st.st_mode):
                if stat.S_IMODE(st.st_mode) & 0o077:
                    bad.append((p, oct(stat.S_IMODE(st.st_mode))))
    assert not bad, bad
    assert stat.S_IMODE(os.stat(ak.data_dir).st_mode) == 0o700
    vols = [d for d in (ak.data_dir / "volumes").iterdir() if d.is_dir()]
    assert [d.name for d in vols] == ["vol"]
    st = os.lstat(vols[0])
    assert stat.S_ISDIR(st.st_mode) and (st.st_uid, st.st_gid) == (VOLUME_ID_BASE,) * 2, st
    assert not st.st_mode & 0o002, oct(st.st_mode)


def test_upstream_records_still_load_and_are_tightened(ak):
    """Upstream writes sandboxes/ 0755 and records 0644. Must hold: such a record loads, the
    directory becomes 0700 at the next open, and the record 0600 when it is rewritten."""
    sb = ak.data_dir / "sandboxes"
    sb.mkdir(parents=True)
    os.chmod(ak.data_dir, 0o755)
    os.chmod(sb, 0o755)
    f = sb / "up.json"
    f.write_text(json.dumps(record("up"), indent=2))
    os.chmod(f, 0o644)
    assert ak.names() == ["up"]
    assert stat.S_IMODE(os.stat(sb).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ak.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o644
    assert ak("start", "up").rc == 0
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
