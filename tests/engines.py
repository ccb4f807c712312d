# SPDX-License-Identifier: Apache-2.0
"""Real container engines, started by the tests: Debian's dockerd (data root in a temp dir, or a
given one) and podman's `system service` on a temp socket, each with a test image imported from a
rootfs built from busybox-static (no Docker Hub here). LoopFs makes a filesystem of a given type
in an image file on a loop device, for engines whose storage must be on it (quotas)."""
import os
import pathlib
import shutil
import subprocess
import time

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "echo", "id", "true", "false", "sleep", "env", "pwd", "touch", "rm",
           "mkdir", "ip", "ps", "grep", "head", "wc", "printf", "kill", "stat", "readlink",
           "ionice", "dd", "df", "du", "tail", "cut", "tr", "sort", "sync", "test", "[")


def make_rootfs(dest):
    root = pathlib.Path(dest)
    for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for a in APPLETS:
        os.symlink("busybox", root / "bin" / a)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "user:x:1000:1000:user:/tmp:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nuser:x:1000:\n")
    return root


def wait_socket(path, proc, log, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"engine did not start: {pathlib.Path(log).read_text()[-2000:]}")


class LoopFs:
    """A filesystem of fstype made by the test in a sparse image file of size_mb under tmp, on a
    loop device of its own, mounted at tmp/mnt with options. Raises OSError (with why) when this
    host cannot (no mkfs tool, the kernel lacks the filesystem or the option). cleanup() unmounts
    it (and everything the test's engines mounted below it) and frees the loop device."""

    MKFS = {"xfs": ["mkfs.xfs", "-q", "-f"], "btrfs": ["mkfs.btrfs", "-q", "-f"],
            "ext4": ["mkfs.ext4", "-q", "-F"]}

    def __init__(self, tmp, fstype, options="", size_mb=1024):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.image = self.dir / f"{fstype}.img"
        self.mnt = self.dir / "mnt"
        self.loop = None
        mkfs = self.MKFS[fstype]
        if not shutil.which(mkfs[0]):
            raise OSError(f"{mkfs[0]} is not installed")
        with open(self.image, "wb") as f:
            f.truncate(size_mb << 20)
        p = subprocess.run(mkfs + [str(self.image)], capture_output=True)
        if p.returncode != 0:
            raise OSError(f"{mkfs[0]}: {p.stderr.decode()[-300:]}")
        p = subprocess.run(["losetup", "--find", "--show", str(self.image)], capture_output=True)
        if p.returncode != 0:
            raise OSError(f"losetup: {p.stderr.decode()[-300:]}")
        self.loop = p.stdout.decode().strip()
        self.mnt.mkdir()
        args = ["mount", "-t", fstype] + (["-o", options] if options else [])
        p = subprocess.run(args + [self.loop, str(self.mnt)], capture_output=True)
        if p.returncode != 0:
            self.cleanup()
            raise OSError(f"mount -t {fstype} -o '{options}': {p.stderr.decode().strip()} "
                          "(does this kernel have it?)")

    def allocated(self):
        """Bytes of the host's disk the image file holds."""
        return os.stat(self.image).st_blocks * 512

    def cleanup(self):
        if self.mnt.exists() and os.path.ismount(self.mnt):
            # the engines' own mounts below it first (podman leaves its storage's binds)
            if subprocess.run(["umount", "-R", str(self.mnt)], capture_output=True).returncode:
                subprocess.run(["umount", "-R", "-l", str(self.mnt)], capture_output=True)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
            self.loop = None
        self.image.unlink(missing_ok=True)


class Docker:
    name = "docker"
    image = "akbusybox:1"

    def __init__(self, tmp, data_root=None, storage_driver=None):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "docker.sock"
        self.log = self.dir / "dockerd.log"
        self.data_root = pathlib.Path(data_root) if data_root else self.dir / "data"
        # In a mount namespace of its own. In the host's, with other test suites mounting and
        # unmounting beside it, a container started now and then without its image's files (its
        # root the bare overlay2 'merged' directory; seen with the old backend code too, about 1
        # start in 15 under load); dockerd makes its data root a shared mount, the likely path.
        # Not seen since in ~200 starts.
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "dockerd", "--data-root", str(self.data_root), "--exec-root",
             str(self.dir / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
             str(self.dir / "docker.pid")]
            + (["--storage-driver", storage_driver] if storage_driver else []),
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_socket(self.sock, self.proc, self.log)
        self.env = {"DOCKER_HOST": f"unix://{self.sock}"}
        root = make_rootfs(self.dir / "rootfs")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True).stdout
        self.cli("import", "-", self.image, input=tar)

    def import_image(self, ref, root, changes=()):
        """Imports the rootfs at root as image ref, with Dockerfile-like changes
        ("VOLUME /data")."""
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True).stdout
        extra = [a for c in changes for a in ("--change", c)]
        self.cli("import", *extra, "-", ref, input=tar)

    def cli(self, *args, input=None, check=True):
        p = subprocess.run(["docker", *args], input=input, capture_output=True,
                           env=dict(os.environ, **self.env))
        if check and p.returncode != 0:
            raise RuntimeError(f"docker {args}: {p.stderr.decode()}")
        return p.stdout.decode()

    def inspect(self, container):
        import json
        p = subprocess.run(["docker", "inspect", container], capture_output=True,
                           env=dict(os.environ, **self.env))
        return json.loads(p.stdout)[0] if p.returncode == 0 else None

    def containers(self):
        return sorted(self.cli("ps", "-a", "--format", "{{.Names}}").split())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Podman(Docker):
    name = "podman"
    image = "localhost/akbusybox:1"

    def __init__(self, tmp, data_root=None, storage_driver=None):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_root = pathlib.Path(data_root) if data_root else self.dir / "root"
        self.sock = self.dir / "podman.sock"
        self.log = self.dir / "podman.log"
        # Debian's crun refuses this host's hybrid cgroups (PLATFORM.md); runc, cgroupfs, and
        # rlimits within what root here may set.
        conf = self.dir / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                        '"nproc=32768:32768"]\n[engine]\nruntime = "runc"\n'
                        'cgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
        self.base = ["podman", "--root", str(self.data_root), "--runroot",
                     str(self.dir / "run"), "--storage-driver", storage_driver or "overlay"]
        self.penv = dict(os.environ, CONTAINERS_CONF=str(conf))
        self.proc = subprocess.Popen(self.base + ["system", "service", "--time=0",
                                                  f"unix://{self.sock}"],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     env=self.penv)
        wait_socket(self.sock, self.proc, self.log)
        self.env = {"CONTAINER_HOST": f"unix://{self.sock}"}
        root = make_rootfs(self.dir / "rootfs")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True).stdout
        self.cli("import", "-", self.image, input=tar)

    def cli(self, *args, input=None, check=True):
        p = subprocess.run(self.base + list(args), input=input, capture_output=True,
                           env=self.penv)
        if check and p.returncode != 0:
            raise RuntimeError(f"podman {args}: {p.stderr.decode()}")
        return p.stdout.decode()

    def inspect(self, container):
        import json
        p = subprocess.run(self.base + ["inspect", container], capture_output=True,
                           env=self.penv)
        return json.loads(p.stdout)[0] if p.returncode == 0 else None

    def containers(self):
        return sorted(self.cli("ps", "-a", "--format", "{{.Names}}").split())


def available(kind):
    if not os.path.exists(BUSYBOX):
        return False
    return shutil.which("dockerd") is not None and shutil.which("docker") is not None \
        if kind == "docker" else shutil.which("podman") is not None and shutil.which("runc")


def started(kind, tmp_path_factory):
    """For an engine fixture (`yield from`): the engine `kind` started in a fresh directory and
    stopped afterwards; the test is skipped where it is not installed."""
    import pytest

    if not available(kind):
        pytest.skip(f"{kind} is not installed")
    e = (Docker if kind == "docker" else Podman)(tmp_path_factory.mktemp(kind))
    yield e
    e.stop()


def cli_on(ak, engine, agent):
    """For an `eak` fixture (`yield from`): the CLI `ak` pointed at engine with the static agent
    (it runs inside the containers). Afterwards every sandbox of the test is removed, the pool
    cleared, and no container of the test's may be left behind."""
    ak.env.update(engine.env)
    ak.env["AGENTKERNEL_AGENT"] = agent
    ak.engine = engine
    before = set(engine.containers())
    yield ak
    for s in ak.list():
        ak("remove", s["name"])
    ak("pool", "clear")
    deadline = time.time() + 20  # --fast runs remove their container in the background
    while set(engine.containers()) != before and time.time() < deadline:
        time.sleep(0.2)
    assert set(engine.containers()) == before, "containers left behind"
