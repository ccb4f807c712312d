# SPDX-License-Identifier: Apache-2.0
"""Real container engines, started by the tests: Debian's dockerd (data root in a temp dir) and
podman's `system service` on a temp socket, each with a test image imported from a rootfs built
from busybox-static (no Docker Hub here)."""
import os
import pathlib
import shutil
import subprocess
import time

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "echo", "id", "true", "false", "sleep", "env", "pwd", "touch", "rm",
           "mkdir", "ip", "ps", "grep", "head", "wc", "printf", "kill", "stat", "readlink",
           "ionice")


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


class Docker:
    name = "docker"
    image = "akbusybox:1"

    def __init__(self, tmp):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "docker.sock"
        self.log = self.dir / "dockerd.log"
        # In a mount namespace of its own. In the host's, with other test suites mounting and
        # unmounting beside it, a container started now and then without its image's files (its
        # root the bare overlay2 'merged' directory; seen with the old backend code too, about 1
        # start in 15 under load); dockerd makes its data root a shared mount, the likely path.
        # Not seen since in ~200 starts.
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "dockerd", "--data-root", str(self.dir / "data"), "--exec-root",
             str(self.dir / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
             str(self.dir / "docker.pid")],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_socket(self.sock, self.proc, self.log)
        self.env = {"DOCKER_HOST": f"unix://{self.sock}"}
        root = make_rootfs(self.dir / "rootfs")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True).stdout
        self.cli("import", "-", self.image, input=tar)

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

    def __init__(self, tmp):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "podman.sock"
        self.log = self.dir / "podman.log"
        # Debian's crun refuses this host's hybrid cgroups (PLATFORM.md); runc, cgroupfs, and
        # rlimits within what root here may set.
        conf = self.dir / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                        '"nproc=32768:32768"]\n[engine]\nruntime = "runc"\n'
                        'cgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
        self.base = ["podman", "--root", str(self.dir / "root"), "--runroot",
                     str(self.dir / "run"), "--storage-driver", "overlay"]
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
