# SPDX-License-Identifier: Apache-2.0
"""A hostile container of the docker and podman backends fills the disk: it writes without end to
every place it can write -- its scratch places (/tmp, /var/tmp, /run, /dev/shm), its root, the
image's VOLUMEs, the files the engine binds from its own storage (/etc/hosts, /etc/hostname,
/etc/resolv.conf), /dev and v1's /sys/fs/cgroup -- in kept sandboxes, ephemeral runs and pooled
(--fast) runs.

What must hold: every writable place has a limit the kernel enforces, and `info` says which and
why. The scratch places share one tmpfs of --disk MB (charged to the container's memory, so
nothing of it lands on the engine's disk); the root has the storage driver's quota of --disk MB
where the driver has one (tested on a filesystem with quotas that the test makes on a loop
device), and otherwise `info` says it has none and why (the engine's refusal); an image's VOLUME
is the root's own directory, never an unbounded engine volume; every other writable mount of the
engine's is read-only. The workspace and volumes are the user's own directories and are not
limited (docs/security.md)."""
import json
import os
import pathlib
import shutil
import subprocess
import time
import tempfile

import pytest

import engines
from conftest import STATIC_AGENT, needs_root, needs_static_agent
from .conftest import create, sh

pytestmark = [needs_root, needs_static_agent]

MB = 1 << 20
FULL = ("No space left on device", "Disk quota exceeded")
SCRATCH = ("/tmp", "/var/tmp", "/run", "/dev/shm")


def fill_script(path, mb):
    return (f"dd if=/dev/zero of={path} bs=1M count={mb} 2>&1 | "
            f"grep -oE 'No space left on device|Disk quota exceeded' | head -1; "
            f"stat -c %s {path} 2>/dev/null || echo 0")


def fill(eak, name, path, mb):
    """Writes mb MiB to path in kept sandbox name: (the error that stopped it or None, bytes)."""
    res = sh(eak, name, fill_script(path, mb), timeout=180)
    assert res.rc == 0, res
    lines = res.stdout.strip().splitlines()
    return (lines[0] if len(lines) > 1 else None), int(lines[-1])


def du(path):
    """Bytes of the host's disk allocated under path (not following links)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files + dirs:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def info(eak, name):
    res = eak("info", "--json", name)
    assert res.rc == 0, res
    return json.loads(res.out)


# ---- the scratch places (every engine, every storage driver) ----

def test_scratch_fill_meets_enospc_and_stays_off_the_engines_disk(eak):
    """64 MiB into /tmp of a --disk 32 sandbox: ENOSPC at 32 MiB; the engine's storage (data
    root) does not grow (before, /tmp was the root layer: 64 MiB on the host's disk)."""
    create(eak, "fill", "--disk", "32")
    before = du(eak.engine.data_root)
    err, size = fill(eak, "fill", "/tmp/f", 64)
    assert err == "No space left on device" and 28 * MB <= size <= 32 * MB, (err, size)
    assert du(eak.engine.data_root) - before < 4 * MB
    assert sh(eak, "fill", "rm /tmp/f; echo alive").stdout == "alive\n"


def test_scratch_places_share_one_limit(eak):
    """20 MiB into each of /tmp, /var/tmp, /run and /dev/shm with --disk 32 cannot total more
    than 32 MiB: one tmpfs, not four (the engines' own would be per place, /dev/shm 64 MiB)."""
    create(eak, "shared", "--disk", "32")
    script = "; ".join(f"dd if=/dev/zero of={p}/f bs=1M count=20 2>/dev/null" for p in SCRATCH)
    script += "; du -sck " + " ".join(f"{p}/f" for p in SCRATCH) + " | tail -1 | cut -f1"
    res = sh(eak, "shared", script)
    assert res.rc == 0, res
    total_kb = int(res.stdout.split()[-1])
    assert 28 * 1024 <= total_kb <= 32 * 1024, res
    res = sh(eak, "shared", "df -k " + " ".join(SCRATCH) + " | tail -n +2 | tr -s ' ' | "
                            "cut -d' ' -f2 | sort -u")
    assert res.stdout.split() == ["32768"], res


def test_scratch_places_are_writable_as_usual(eak):
    """Modes as the images and programs expect: /tmp, /var/tmp and /dev/shm sticky and
    world-writable, /run root's; /dev/shm noexec, as the engines mount it."""
    create(eak, "modes", "--disk", "32")
    res = sh(eak, "modes", "stat -c '%a %u' " + " ".join(SCRATCH))
    assert res.stdout.split("\n")[:4] == ["1777 0", "1777 0", "755 0", "1777 0"], res
    res = sh(eak, "modes", "grep -E ' /dev/shm ' /proc/self/mountinfo")
    assert "noexec" in res.stdout.split()[5], res


def test_ephemeral_runs_are_bounded(eak):
    """`run --disk 32`: the same disk for a run-once container."""
    res = eak("run", "-B", eak.engine.name, "-i", eak.engine.image, "--no-network", "--disk",
              "32", "--", "sh", "-c", fill_script("/var/tmp/f", 64), timeout=180)
    assert res.rc == 0, res
    lines = res.stdout.split("\n")
    assert lines[0] == "No space left on device" and int(lines[1]) <= 32 * MB, res


def test_pooled_runs_are_bounded(eak):
    """`run --fast --disk 32`: containers of the warm pool get the disk too (the pool's key holds
    it: a pool of another size never serves this run)."""
    args = ["run", "--fast", "-B", eak.engine.name, "-i", eak.engine.image, "--no-network",
            "--disk", "32", "--", "sh", "-c", fill_script("/dev/shm/f", 64)]
    for _ in range(2):  # the first fills the pool, the second takes from it
        res = eak(*args, timeout=180)
        assert res.rc == 0, res
        lines = res.stdout.split("\n")
        assert lines[0] == "No space left on device" and int(lines[1]) <= 32 * MB, res


def test_default_disk_is_half_the_memory(eak):
    create(eak, "half", "--memory", "64")
    assert info(eak, "half")["disk_mb"] == 32
    err, size = fill(eak, "half", "/run/f", 64)
    assert err and size <= 32 * MB


def test_scratch_above_the_memory_is_contained(eak):
    """--disk 512 with --memory 64: the scratch tmpfs's pages are the container's memory, so the
    writer is stopped near 64 MiB (ENOSPC or the OOM killer in the container's cgroup), the
    engine's disk untouched."""
    create(eak, "mem", "--memory", "64", "--disk", "512")
    before = du(eak.engine.data_root)
    res = sh(eak, "mem", "dd if=/dev/zero of=/tmp/f bs=1M count=300 2>/dev/null; "
                         "stat -c %s /tmp/f", timeout=180)
    size = int(res.stdout.split()[-1]) if res.stdout.strip() else 0
    assert size < 80 * MB, res
    assert du(eak.engine.data_root) - before < 4 * MB


# ---- the engine's other writable mounts ----

ACCOUNTED = ("/", "/.agentkernel") + SCRATCH
KERNEL_FS = {"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"}


def writable_mounts(eak, name):
    """Mount points the container can write, from its own mountinfo, that no limit of ours
    accounts for."""
    res = sh(eak, name, "cat /proc/self/mountinfo")
    out = []
    for line in res.stdout.splitlines():
        f = line.split()
        point, opts, fstype = f[4], f[5], f[f.index("-") + 1]
        if opts.split(",")[0] == "ro" or fstype in KERNEL_FS:
            continue
        if point == "/" or any(point == a or point.startswith(a.rstrip("/") + "/")
                               for a in ACCOUNTED[1:]) or point.startswith("/proc/"):
            continue
        out.append(point)
    return out


def test_no_writable_engine_mount_is_left(eak):
    """Every mount the engine gave the container beyond the root and our scratch disk -- the
    files it binds from its own storage, /dev, /sys/fs/cgroup -- is read-only (before,
    /etc/hosts took any amount, on the engine's disk)."""
    create(eak, "mounts", "--disk", "32")
    assert writable_mounts(eak, "mounts") == []


def test_engine_files_cannot_be_filled(eak):
    """50 MiB into /etc/hosts, /etc/hostname, /dev and /sys/fs/cgroup: refused, and the engine's
    storage does not grow."""
    create(eak, "hosts", "--disk", "32")
    before = du(eak.engine.data_root)
    for target in ("/etc/hosts", "/etc/hostname", "/dev/fill", "/sys/fs/cgroup/fill"):
        res = sh(eak, "hosts", f"dd if=/dev/zero of={target} bs=1M count=50 2>&1")
        assert "Read-only file system" in res.stdout or "Permission denied" in res.stdout, \
            (target, res)
    assert du(eak.engine.data_root) - before < 4 * MB
    res = sh(eak, "hosts", "cat /etc/hosts /etc/hostname >/dev/null && echo readable")
    assert res.stdout == "readable\n", res


def test_image_volume_is_the_roots_directory(eak, tmp_path):
    """An image declaring VOLUME /data (with a file in it): the engine makes no volume of its own
    (unbounded, on its disk, outside the root's quota); /data is the root's directory, its files
    there, as with native."""
    ref = ("localhost/akvolume:1" if eak.engine.name == "podman" else "akvolume:1")
    root = engines.make_rootfs(tmp_path / "rootfs")
    (root / "data").mkdir()
    (root / "data" / "keep").write_text("kept\n")
    eak.engine.import_image(ref, root, ["VOLUME /data"])
    volumes = set(eak.engine.cli("volume", "ls", "-q").split())
    res = eak("create", "vol", "-B", eak.engine.name, "-i", ref, "--no-network", "--disk", "32")
    assert res.rc == 0, res
    assert sh(eak, "vol", "cat /data/keep").stdout == "kept\n"
    assert sh(eak, "vol", "grep -c ' /data ' /proc/self/mountinfo").stdout.strip() == "0"
    assert sh(eak, "vol", "echo more > /data/new && cat /data/new").stdout == "more\n"
    assert set(eak.engine.cli("volume", "ls", "-q").split()) == volumes
    assert info(eak, "vol")["disk_limit"]["image_volumes"]["places"] == ["/data"]


def image_with(eak, tmp_path, tag, volumes, files=()):
    ref = (f"localhost/akvol{tag}:1" if eak.engine.name == "podman" else f"akvol{tag}:1")
    root = engines.make_rootfs(tmp_path / f"rootfs-{tag}")
    for path, text in files:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    eak.engine.import_image(ref, root, [f"VOLUME {v}" for v in volumes])
    return ref


def test_image_volume_over_the_engines_files(eak, tmp_path):
    """VOLUME /etc: the engine makes its /etc/hosts mount point inside the volume's placeholder;
    /etc is then the root's directory (the image's files), and no engine mount is left
    writable, no engine volume made."""
    ref = image_with(eak, tmp_path, "etc", ["/etc"], [("etc/motd", "hi\n")])
    volumes = set(eak.engine.cli("volume", "ls", "-q").split())
    res = eak("create", "etc", "-B", eak.engine.name, "-i", ref, "--no-network", "--disk", "32")
    assert res.rc == 0, res
    assert sh(eak, "etc", "cat /etc/motd").stdout == "hi\n"
    assert writable_mounts(eak, "etc") == []
    assert set(eak.engine.cli("volume", "ls", "-q").split()) == volumes


@pytest.mark.parametrize("volume", ["/.agentkernel", "/.agentkernel/state", "/proc/sys",
                                    "/dev/x", "/sys/fs/cgroup"])
def test_image_volume_in_ours_or_the_kernels_is_refused(eak, tmp_path, volume):
    """A hostile image declares a VOLUME over the agent's own directory (its state, its socket)
    or the kernel's: the start is refused, saying why, and nothing is left running."""
    ref = image_with(eak, tmp_path, "bad", [volume])
    before = set(eak.engine.containers())
    res = eak("run", "-B", eak.engine.name, "-i", ref, "--no-network", "--", "true")
    assert res.rc != 0 and "declares a volume" in res.stderr and volume in res.stderr, res
    assert set(eak.engine.containers()) == before


# ---- what info says ----

def test_info_says_what_is_enforced_and_what_is_not(eak):
    """info and list --json: the root's limit or why it has none (these engines' data roots are
    on ext4: no quota), the scratch disk, the mounts made read-only. A stopped sandbox: decided
    at its start."""
    create(eak, "said", "--disk", "40")
    d = info(eak, "said")
    assert d["disk_mb"] == 40
    dl = d["disk_limit"]
    assert dl["scratch"]["enforced"] == "tmpfs" and dl["scratch"]["mb"] == 40
    assert dl["scratch"]["places"] == list(SCRATCH) and dl["scratch"]["shared"] is True
    assert "/etc/hosts" in dl["read_only"] and "/dev" in dl["read_only"]
    root = dl["root"]
    assert root["enforced"] in ("storage driver quota", "none"), root
    if root["enforced"] == "none":
        assert root["driver"] and "size" in root["why"] and root["driver"] in root["why"], root
    else:
        assert root["mb"] == 40
    [listed] = [s for s in eak.list() if s["name"] == "said"]
    assert listed["disk_limit"] == dl
    assert "disk_limit" in eak("info", "said").stdout
    assert eak("stop", "said").rc == 0
    assert info(eak, "said")["disk_limit"] == {"enforced": "decided when it starts"}
    assert eak("start", "said").rc == 0
    again = info(eak, "said")["disk_limit"]
    for d in (again, dl):  # podman's refusal names the layer it could not make
        d["root"].pop("why", None)
        d["read_only"] = sorted(d["read_only"])
    assert again == dl
    err, size = fill(eak, "said", "/tmp/f", 64)
    assert err and size <= 40 * MB


def test_restrictive_root_is_read_only_and_scratch_still_writable(eak):
    """The restrictive profile's read-only root: info says so; /tmp is the scratch disk."""
    create(eak, "ro", "--profile", "restrictive", "--disk", "32")
    assert info(eak, "ro")["disk_limit"]["root"]["enforced"] == "read-only"
    res = sh(eak, "ro", "(echo x > /x) 2>&1; echo y > /tmp/y && cat /tmp/y")
    assert "Read-only file system" in res.stdout and res.stdout.endswith("y\n"), res
    err, size = fill(eak, "ro", "/tmp/f", 64)
    assert err and size <= 32 * MB


def test_a_stale_disk_record_is_not_believed(eak):
    """The disk record (engine-disk.json, in the host-only run directory) is believed only as a
    private file of ours: one another user could write is not shown."""
    create(eak, "rec", "--disk", "32")
    rec = eak.data_dir / "run" / "rec" / "engine-disk.json"
    assert rec.exists() and (rec.stat().st_mode & 0o777) == 0o600
    os.chmod(rec, 0o666)
    assert info(eak, "rec")["disk_limit"]["enforced"].startswith("unknown")
    os.chmod(rec, 0o600)
    assert info(eak, "rec")["disk_limit"]["scratch"]["mb"] == 32


# ---- the root's quota: engines on a filesystem with quotas, made by the test ----

# (engine, filesystem, mount options, storage driver): where each engine has a per-container
# size for the root. xfs needs a kernel with CONFIG_XFS_QUOTA (project quotas); the btrfs drivers
# use btrfs quota groups (podman's through its API; its CLI says "unknown option size").
QUOTA_SETUPS = [
    ("docker", "xfs", "pquota", "overlay2"),
    ("docker", "btrfs", "", "btrfs"),
    ("podman", "xfs", "pquota", "overlay"),
    ("podman", "btrfs", "", "btrfs"),
]
# where the engine has none: it refuses a size, the root is unbounded and info says why (the
# engines of the package's other tests have their storage on ext4: the same, with overlay)
NO_QUOTA_SETUPS = [
    ("podman", "btrfs", "", "overlay"),  # "--storage-opt is supported only for overlay over xfs"
]


def start_engine(kind, fstype, options, driver, tmp):
    if not engines.available(kind):
        pytest.skip(f"{kind} is not installed")
    try:
        fs = engines.LoopFs(tmp / "fs", fstype, options)
    except OSError as e:
        pytest.skip(f"no {fstype} with '{options}' here: {e}")
    try:
        cls = engines.Docker if kind == "docker" else engines.Podman
        eng = cls(tmp / "e", data_root=fs.mnt / "storage", storage_driver=driver)
    except Exception:
        fs.cleanup()
        raise
    return fs, eng


@pytest.fixture(scope="module", params=QUOTA_SETUPS + NO_QUOTA_SETUPS,
                ids=lambda p: "-".join(x for x in p if x))
def quota_engine(request):
    kind, fstype, options, driver = request.param
    # short: podman refuses a run root of more than 50 characters
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="akq-"))
    try:
        fs, eng = start_engine(kind, fstype, options, driver, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    eng.fs = fs
    eng.quota = request.param in QUOTA_SETUPS
    yield eng
    try:
        eng.stop()
    finally:
        fs.cleanup()
        assert not os.path.ismount(fs.mnt)
        losetup = subprocess.run(["losetup", "-j", str(fs.image)], capture_output=True)
        assert losetup.stdout == b""
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def qak(ak, quota_engine):
    ak.env.update(quota_engine.env)
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    ak.engine = quota_engine
    before = set(quota_engine.containers())
    yield ak
    for s in ak.list():
        ak("remove", s["name"])
    ak("pool", "clear")
    deadline = time.time() + 20  # runs remove their container in the background
    while set(quota_engine.containers()) != before and time.time() < deadline:
        time.sleep(0.2)
    assert set(quota_engine.containers()) == before, "containers left behind"


def test_root_fill_meets_the_storage_drivers_quota(qak):
    """100 MiB into the root of a --disk 32 container: where the storage driver has quotas, the
    write stops at 32 MiB (EDQUOT or ENOSPC) and the engine's filesystem (the test's loop image,
    on the host's disk) grows by about that much, not 100 MiB; info says "storage driver quota".
    Where it has none, info says so, with the engine's reason, and the scratch disk still holds."""
    create(qak, "q", "--disk", "32")
    root = info(qak, "q")["disk_limit"]["root"]
    if not qak.engine.quota:
        assert root["enforced"] == "none" and "size" in root["why"], root
        err, size = fill(qak, "q", "/tmp/f", 64)
        assert err == "No space left on device" and size <= 32 * MB
        return
    assert root == {"enforced": "storage driver quota", "mb": 32,
                    "driver": qak.engine.inspect("agentkernel-q")["GraphDriver"]["Name"]}, root
    subprocess.run(["sync"])
    before = qak.engine.fs.allocated()
    err, size = fill(qak, "q", "/big", 100)
    assert err in FULL and size <= 33 * MB, (err, size)
    sh(qak, "q", "sync")
    subprocess.run(["sync"])
    assert qak.engine.fs.allocated() - before < 48 * MB
    # the rest of the root shares the quota
    err, size = fill(qak, "q", "/root/more", 16)
    assert err in FULL and size < 4 * MB, (err, size)
    assert sh(qak, "q", "rm /big /root/more; echo alive").stdout == "alive\n"


def test_ephemeral_root_fill_meets_the_quota(qak):
    if not qak.engine.quota:
        pytest.skip("this storage driver has no per-container size")
    res = qak("run", "-B", qak.engine.name, "-i", qak.engine.image, "--no-network", "--disk",
              "32", "--", "sh", "-c", fill_script("/big", 100), timeout=180)
    assert res.rc == 0, res
    lines = res.stdout.split("\n")
    assert lines[0] in FULL and int(lines[1]) <= 33 * MB, res
