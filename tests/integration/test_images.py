# SPDX-License-Identifier: Apache-2.0
"""OCI images on the native backend, against a real registry (Debian's docker-registry on
127.0.0.1) and images built here from busybox-static with umoci and pushed with skopeo."""
import base64
import json
import os
import pathlib
import signal
import stat
import subprocess
import time

import pytest

import oci
from conftest import AGENT, STATIC_AGENT, elf_is_dynamic, needs_root, needs_static_agent

pytestmark = [
    needs_root,
    pytest.mark.skipif(not oci.tools_present(),
                       reason="needs umoci, skopeo, docker-registry, zstd, busybox-static"),
]

# What a sandbox mounts or writes over the image: not part of the comparison with umoci.
NOT_IMAGE = {".", "./proc", "./dev", "./sys", "./tmp", "./run", "./etc/hosts", "./etc/hostname",
             "./etc/resolv.conf"}

LISTING = r"""
cd / && find . -xdev | sort | while read -r p; do
  if [ -L "$p" ]; then echo "$p|l|$(readlink "$p")|$(stat -c '%u:%g' "$p")"
  elif [ -f "$p" ]; then echo "$p|f|$(stat -c '%a|%u:%g|%s' "$p")|$(md5sum < "$p" | cut -d' ' -f1)"
  elif [ -d "$p" ]; then echo "$p|d|$(stat -c '%a|%u:%g' "$p")"
  else echo "$p|o"; fi
done
"""


def host_listing(root):
    """The same listing as LISTING, of a directory on the host."""
    import hashlib
    out = []
    root = pathlib.Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = pathlib.Path(dirpath) / name
            rel = "./" + str(p.relative_to(root))
            st = os.lstat(p)
            own = f"{st.st_uid}:{st.st_gid}"
            perm = format(stat.S_IMODE(st.st_mode), "o")
            if stat.S_ISLNK(st.st_mode):
                out.append(f"{rel}|l|{os.readlink(p)}|{own}")
            elif stat.S_ISREG(st.st_mode):
                md5 = hashlib.md5(p.read_bytes()).hexdigest()
                out.append(f"{rel}|f|{perm}|{own}|{st.st_size}|{md5}")
            elif stat.S_ISDIR(st.st_mode):
                out.append(f"{rel}|d|{perm}|{own}")
            else:
                out.append(f"{rel}|o")
    return sorted(out)


def strip(lines):
    return sorted(l for l in lines if l and l.split("|", 1)[0] not in NOT_IMAGE)


class World:
    """One registry and the test images, built once for the module."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.reg = oci.Registry(tmp / "registry")
        self.layout = oci.Layout(tmp / "layout")
        oci.build_base(self.layout, "base", tmp / "bundles")
        self.base = self.reg.push(self.layout.path, "base", "test/base:1")
        self.umoci_root = self.layout.unpack("base", tmp / "umoci-base")

    def variant(self, tag, entries, compression="gzip", repo=None):
        """base + one hand-made layer, pushed as test/<tag>:1."""
        oci.run("umoci", "tag", "--image", f"{self.layout.path}:base", tag)
        digest = self.layout.add_tar_layer(tag, oci.tar_of(entries), compression)
        return self.reg.push(self.layout.path, tag, f"test/{repo or tag}:1"), digest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("oci"))
    yield w
    w.reg.stop()


@pytest.fixture(autouse=True)
def static_agent(ak):
    """Image roots need a static agent (see conftest.STATIC_AGENT)."""
    if STATIC_AGENT:
        ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT


@pytest.fixture(autouse=True)
def registry_configured(ak, world):
    """The test registry is on loopback: configured as a user would (insecure_registries),
    since the puller never connects to a private address only because a request named it."""
    world.reg.configure(ak.env)


def store(ak):
    return ak.data_dir / "images"


@needs_static_agent
def test_pull_list_and_files_match_umoci(ak, world):
    res = ak("images", "pull", world.base)
    assert res.rc == 0, res
    assert res.stdout.strip().startswith("sha256:")
    listed = json.loads(ak("images", "list", "--json", check=True).out)
    assert [world.base + ""] == [n for n in listed[0]["names"] if "@" not in n]
    assert listed[0]["size"] > 1_000_000 and len(listed[0]["layers"]) == 3
    res = ak("run", "--no-network", "--image", world.base, "--", "sh", "-c", LISTING)
    assert res.rc == 0, res
    ours = strip(res.stdout.splitlines())
    theirs = strip(host_listing(world.umoci_root))
    assert ours == theirs
    # the whiteouts and the opaque directory did their work
    names = {l.split("|", 1)[0] for l in ours}
    assert "./etc/gone" not in names and "./gone-dir" not in names
    assert "./opq/new" in names and "./opq/sub" not in names and "./opq/keep-me-not" not in names
    assert any(l.startswith("./srv/setuid|f|4755|0:0|") for l in ours)
    assert any(l.startswith("./srv/owned|f|644|1000:1000|") for l in ours)


@needs_static_agent
def test_image_config_is_honoured(ak, world):
    res = ak("run", "--no-network", "--image", world.base, "--", "sh", "-c",
             'pwd; echo "$IMAGE_VAR"; echo "$PATH"')
    assert res.rc == 0, res
    assert res.stdout.splitlines() == ["/srv", "from-image", "/bin"]
    res = ak("run", "--no-network", "-e", "IMAGE_VAR=from-user", "--image", world.base, "--",
             "sh", "-c", 'echo "$IMAGE_VAR"')
    assert res.stdout.strip() == "from-user"


@needs_static_agent
def test_first_run_pulls_and_exit_codes_pass_through(ak, world):
    res = ak("run", "--no-network", "--image", world.base, "--", "sh", "-c", "exit 7")
    assert res.rc == 7, res
    assert "Pulling" in res.stderr


@needs_static_agent
def test_sandboxes_of_one_image_do_not_share_writes(ak, world):
    for name in ("a", "b"):
        assert ak("create", name, "--no-network", "--image", world.base).rc == 0
    assert ak("exec", "a", "--", "sh", "-c", "echo mine > /etc/kept; echo new > /srv/w").rc == 0
    res = ak("exec", "b", "--", "sh", "-c", "cat /etc/kept; ls /srv")
    assert res.rc == 0, res
    assert res.stdout.splitlines()[0] == "kept"
    assert "w" not in res.stdout.split()
    assert ak("exec", "a", "--", "cat", "/etc/kept").stdout == "mine\n"
    # the shared layer on the host is untouched
    layers = list((store(ak) / "layers").iterdir())
    kept = [l / "etc/kept" for l in layers if (l / "etc/kept").exists()]
    assert kept and all(k.read_text() == "kept\n" for k in kept)
    # what a kept sandbox writes lives on its own disk (a tmpfs of --disk MB), not on the host's
    # (issue 12, finding 9: an upper layer in the run directory filled the host's disk)
    assert not (ak.data_dir / "run" / "a" / "rootfs").exists()
    ak("remove", "a", check=True)
    assert not (ak.data_dir / "run" / "a").exists()


@needs_static_agent
def test_multiplatform_index_picks_this_machine(ak, world, tmp_path):
    lay = world.layout
    oci.run("umoci", "tag", "--image", f"{lay.path}:base", "amd")
    # an arm64 twin whose marker says so
    arm_dir = tmp_path / "arm"
    oci.run("umoci", "unpack", "--image", f"{lay.path}:base", arm_dir)
    (arm_dir / "rootfs/srv/marker").write_text("arm64\n")
    oci.run("umoci", "tag", "--image", f"{lay.path}:base", "arm")
    oci.run("umoci", "repack", "--image", f"{lay.path}:arm", arm_dir)
    entries = []
    for tag, arch in (("arm", "arm64"), ("amd", "amd64")):
        d = lay.desc(tag)
        entries.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                        "platform": {"os": "linux", "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}
    idx_digest, _ = lay.retag("multi", index, media_type=oci.OCI_INDEX)
    name = world.reg.push(lay.path, "multi", "test/multi:1", all_=True)
    res = ak("run", "--no-network", "--image", name, "--", "cat", "/srv/marker")
    assert res.rc == 0, res
    assert res.stdout == "amd64\n"
    # by the index digest too
    by_digest = f"{world.reg.host}/test/multi@{idx_digest}"
    res = ak("run", "--no-network", "--image", by_digest, "--", "cat", "/srv/marker")
    assert res.stdout == "amd64\n", res


@needs_static_agent
def test_zstd_and_uncompressed_layers(ak, world):
    name, _ = world.variant("zstd", [("zstd-file", "file", "from a zstd layer\n")], "zstd")
    res = ak("run", "--no-network", "--image", name, "--", "cat", "/zstd-file")
    assert res.rc == 0, res
    assert res.stdout == "from a zstd layer\n"
    name, _ = world.variant("plain", [("plain-file", "file", "plain tar\n")], "none")
    res = ak("run", "--no-network", "--image", name, "--", "cat", "/plain-file")
    assert res.stdout == "plain tar\n", res


def assert_store_clean(ak):
    s = store(ak)
    assert not any((s / "layers").iterdir()) if (s / "layers").exists() else True
    assert not any((s / "images").iterdir()) if (s / "images").exists() else True
    assert not any((s / "tmp").iterdir()) if (s / "tmp").exists() else True


def test_corrupted_blob_is_rejected_and_nothing_stored(ak, world):
    name, digest = world.variant("corrupt", [("big", "file", os.urandom(4096).hex())],
                                 repo="corrupt")
    blob = world.reg.blob_path(digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    res = ak("images", "pull", name)
    assert res.rc != 0
    assert "does not match its digest" in res.stderr
    # the base layers before it may be stored; the corrupt one and the image are not
    s = store(ak)
    assert not (s / "layers" / digest.split(":")[1]).exists()
    assert not any((s / "images").iterdir())
    assert not any((s / "tmp").iterdir())
    res = ak("run", "--no-network", "--image", name, "--", "true")
    assert res.rc != 0 and ak.list() == []


@needs_static_agent
@pytest.mark.parametrize("hook", ["image-layer-downloaded", "image-layer-unpacked"])
def test_pull_killed_halfway_then_rerun(ak, world, hook):
    p = ak.popen("images", "pull", world.base, env={"AGENTKERNEL_TEST_HOOK": hook},
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helper = None
    deadline = time.time() + 30
    while time.time() < deadline and helper is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                st = pathlib.Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if "(agentkernel-im" in st and st.rsplit(")", 1)[1].split()[0] == "T":
                helper = int(pid)
        time.sleep(0.02)
    assert helper, "the pull never reached " + hook
    os.kill(helper, signal.SIGKILL)
    p.wait(10)
    s = store(ak)
    assert not any((s / "layers").iterdir()), "a half-done layer became visible"
    assert not any((s / "images").iterdir())
    res = ak("images", "pull", world.base)
    assert res.rc == 0, res
    assert not any((s / "tmp").iterdir()), "leftovers of the killed pull stayed"
    assert ak("run", "--no-network", "--image", world.base, "--", "cat", "/etc/kept").stdout == "kept\n"


def test_concurrent_pulls_do_the_work_once(ak, world):
    procs = [ak.popen("images", "pull", world.base, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    fetched = {}
    for _, err in outs:
        for line in err.decode().splitlines():
            if line.strip().startswith("layer ") and "already present" not in line:
                key = line.split()[2]
                fetched[key] = fetched.get(key, 0) + 1
    assert len(fetched) == 3 and all(n == 1 for n in fetched.values()), outs
    assert len(list((store(ak) / "layers").iterdir())) == 3


MALICIOUS = {
    "traversal": [("../../../../../../../../tmp/{mark}/pwned", "file", "x")],
    "abs-symlink": [("evil", "symlink", "/tmp/{mark}"), ("evil/pwned", "file", "x")],
    "rel-symlink": [("evil2", "symlink", "../../../../../../../../tmp/{mark}"),
                    ("evil2/pwned", "file", "x")],
    "hardlink-out": [("h", "hardlink", "../../../../../../../../tmp/{mark}/target")],
    "hardlink-abs": [("h", "hardlink", "/tmp/{mark}/target")],
    "hardlink-via-symlink": [("l", "symlink", "/tmp/{mark}/target"), ("h", "hardlink", "l"),
                             ("h2", "file", "y")],
}


@needs_static_agent
@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_layer_cannot_touch_the_host(ak, world, case, tmp_path):
    mark = f"ak-mal-{os.getpid()}-{case}"
    outside = pathlib.Path("/tmp") / mark
    outside.mkdir(exist_ok=True)
    target = outside / "target"
    target.write_text("host file\n")
    try:
        entries = [(n.format(mark=mark), k, p.format(mark=mark) if isinstance(p, str) else p)
                   for n, k, p in MALICIOUS[case]]
        name, _ = world.variant(f"mal-{case}", entries)
        res = ak("images", "pull", name)
        if res.rc == 0:  # refused or contained: either way the host is untouched
            r2 = ak("run", "--no-network", "--image", name, "--", "sh", "-c",
                    "echo sandbox > /h 2>/dev/null; echo sandbox > /evil/pwned 2>/dev/null; true")
            assert r2.rc == 0, r2
        else:
            assert "layer entry" in res.stderr or "hard link" in res.stderr, res
            assert not any((store(ak) / "tmp").iterdir())
        assert sorted(p.name for p in outside.iterdir()) == ["target"]
        assert target.read_text() == "host file\n"
        assert os.stat(target).st_nlink == 1
    finally:
        for p in outside.iterdir():
            p.unlink()
        outside.rmdir()


def test_basic_auth_registry(ak, world, tmp_path):
    reg = oci.Registry(tmp_path / "authreg", user="alice", password="s3cret")
    try:
        reg.configure(ak.env)
        name = reg.push(world.layout.path, "base", "private/base:1")
        res = ak("images", "pull", name, env={"DOCKER_CONFIG": str(tmp_path / "nocreds")})
        assert res.rc != 0
        assert "needs a login" in res.stderr, res
        cfgdir = tmp_path / "docker"
        cfgdir.mkdir()
        auth = base64.b64encode(b"alice:s3cret").decode()
        (cfgdir / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        res = ak("images", "pull", name, env={"DOCKER_CONFIG": str(cfgdir)})
        assert res.rc == 0, res
        bad = base64.b64encode(b"alice:wrong").decode()
        (cfgdir / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": bad}}}))
        ak("images", "rm", name, check=True)
        res = ak("images", "pull", name, env={"DOCKER_CONFIG": str(cfgdir)})
        assert res.rc != 0 and "denied" in res.stderr, res
    finally:
        reg.stop()


def test_missing_image_and_unreachable_registry_change_nothing(ak, world):
    res = ak("run", "--image", f"{world.reg.host}/test/nope:1", "--", "true")
    assert res.rc != 0 and "not found" in res.stderr, res
    oci.allow(ak.env, "127.0.0.1:1")  # configured, so the puller tries, and cannot reach it
    res = ak("create", "x", "--image", "127.0.0.1:1/test/x:1")
    assert res.rc != 0 and "cannot reach" in res.stderr, res
    assert ak.list() == []
    res = ak("run", "--image", "Bad:Name", "--", "true")
    assert res.rc != 0 and "invalid image" in res.stderr.lower(), res
    assert_store_clean(ak)


@needs_static_agent
def test_rm_refuses_an_image_in_use_and_prune_frees(ak, world):
    assert ak("create", "user", "--no-network", "--image", world.base).rc == 0
    res = ak("images", "rm", world.base)
    assert res.rc != 0 and "used by sandbox 'user'" in res.stderr, res
    res = ak("images", "prune")
    assert res.rc == 0 and "Freed" in res.stdout
    assert len(list((store(ak) / "layers").iterdir())) == 3
    ak("remove", "user", check=True)
    res = ak("images", "rm", world.base)
    assert res.rc == 0, res
    assert ak("images", "list", "--json", check=True).out.strip() == b"[]"
    assert not any((store(ak) / "layers").iterdir())


def test_store_is_private(ak, world):
    ak("images", "pull", world.base, check=True)
    assert stat.S_IMODE(os.stat(store(ak)).st_mode) == 0o700


@needs_static_agent
def test_short_names_resolve_to_docker_hub_through_the_mirror(ak, world):
    world.reg.push(world.layout.path, "base", "library/alpine:3.20")
    env = {"AGENTKERNEL_REGISTRY_MIRROR": f"http://{world.reg.host}"}
    res = ak("run", "--no-network", "-i", "alpine:3.20", "--", "cat", "/etc/kept", env=env)
    assert res.rc == 0, res
    assert res.stdout == "kept\n"
    names = json.loads(ak("images", "list", "--json", check=True).out)[0]["names"]
    assert "docker.io/library/alpine:3.20" in names
    # cached: the same name now works without the mirror (and without any network)
    res = ak("run", "--no-network", "-i", "docker.io/library/alpine:3.20", "--", "true")
    assert res.rc == 0, res


@needs_static_agent
def test_api_create_with_an_image(ak, world):
    """The HTTP API takes an image a client names as named (the SDK passes it through)."""
    from test_serve import Server
    srv = Server(ak)
    try:
        st, doc = srv.request("POST", "/sandboxes", {"name": "api-img", "image": world.base})
        assert st in (200, 201) and doc["success"], doc
        assert doc["data"]["image"] == world.base
        st, doc = srv.request("POST", "/sandboxes/api-img/exec",
                              {"command": ["cat", "/srv/marker"]})
        assert st == 200 and doc["data"]["output"] == "amd64\n", doc
        st, doc = srv.request("POST", "/sandboxes", {"name": "api-bad",
                                                     "image": f"{world.reg.host}/test/nope:9"})
        assert not doc["success"] and "not found" in doc["error"], doc
        assert [s["name"] for s in ak.list()] == ["api-img"]
    finally:
        srv.stop()


@needs_static_agent
def test_image_user_runs_commands_and_sudo_is_root(ak, world):
    oci.run("umoci", "tag", "--image", f"{world.layout.path}:base", "user")
    oci.run("umoci", "config", "--image", f"{world.layout.path}:user", "--config.user=1000:1000")
    name = world.reg.push(world.layout.path, "user", "test/user:1")
    res = ak("run", "--no-network", "--image", name, "--", "sh", "-c",
             "id -u; id -g; touch /srv/x 2>&1 || echo denied")
    assert res.rc == 0, res
    assert res.stdout.splitlines()[:2] == ["1000", "1000"]
    assert "denied" in res.stdout
    assert ak("create", "u", "--no-network", "--image", name).rc == 0
    assert ak("exec", "u", "--", "id", "-u").stdout == "1000\n"
    assert ak("exec", "--sudo", "u", "--", "id", "-u").stdout == "0\n"


@needs_static_agent
def test_bearer_token_registry(ak, world, tmp_path):
    reg = oci.Registry(tmp_path / "tokreg", user="bob", password="t0ken", token=True)
    try:
        reg.configure(ak.env)  # the registry and its token service, both on loopback
        name = reg.push(world.layout.path, "base", "tok/base:1")
        res = ak("images", "pull", name, env={"DOCKER_CONFIG": str(tmp_path / "nocreds")})
        assert res.rc != 0 and "refused the credentials" in res.stderr, res
        cfgdir = tmp_path / "docker"
        cfgdir.mkdir()
        (cfgdir / "config.json").write_text(json.dumps(
            {"auths": {f"http://{reg.host}": {"username": "bob", "password": "t0ken"}}}))
        before = len(reg.token.requests)
        res = ak("run", "--no-network", "--image", name, "--", "cat", "/srv/marker",
                 env={"DOCKER_CONFIG": str(cfgdir)})
        assert res.rc == 0, res
        assert res.stdout == "amd64\n"
        # the client asked the realm for a pull scope of this repository
        asked = reg.token.requests[before:]
        assert asked and all(q["scope"] == ["repository:tok/base:pull"] for q in asked), asked
        assert all(q["service"] == ["test-registry"] for q in asked)
    finally:
        reg.stop()


@needs_static_agent
def test_mirror_from_agentkernel_toml(ak, world, tmp_path):
    world.reg.push(world.layout.path, "base", "library/alpine:3.19")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "agentkernel.toml").write_text(
        f'[images]\nmirror = "http://{world.reg.host}"\ninsecure_registries = ["reg.lan:5000"]\n')
    ak("trust", "--yes", proj / "agentkernel.toml", check=True)  # a config is read once approved
    res = ak("run", "--no-network", "-i", "alpine:3.19", "--", "cat", "/etc/kept", cwd=proj)
    assert res.rc == 0, res
    assert res.stdout == "kept\n"
    assert "unknown" not in res.stderr


@needs_static_agent
def test_insecure_registries_from_agentkernel_toml(ak, world, tmp_path):
    """[images] insecure_registries is how a project configures a loopback registry: without
    it the same run is refused (the puller never connects to loopback because a name says so)."""
    ak.env.pop("AGENTKERNEL_INSECURE_REGISTRIES", None)
    name = world.variant("tomlreg", [("srv/tomlreg", "file", "yes\n")])[0]
    res = ak("run", "--no-network", "-i", name, "--", "true")
    assert res.rc != 0 and "insecure_registries" in res.stderr, res
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "agentkernel.toml").write_text(
        f'[images]\ninsecure_registries = ["{world.reg.host}"]\n')
    ak("trust", "-y", proj / "agentkernel.toml", check=True)
    res = ak("run", "--no-network", "-i", name, "--", "cat", "/srv/tomlreg", cwd=proj)
    assert res.rc == 0, res
    assert res.stdout == "yes\n"


@needs_static_agent
def test_copy_fallback_gives_the_same_files_and_isolation(ak, world):
    """Where overlayfs cannot take idmapped layers (before Linux 6.13) the image is copied; forced
    here with AGENTKERNEL_IMAGE_ROOTFS=copy. Same files as umoci, same isolation, nothing left."""
    env = {"AGENTKERNEL_IMAGE_ROOTFS": "copy"}
    ak("images", "pull", world.base, check=True)
    res = ak("run", "--no-network", "--image", world.base, "--", "sh", "-c", LISTING, env=env)
    assert res.rc == 0, res
    assert strip(res.stdout.splitlines()) == strip(host_listing(world.umoci_root))
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not [p for p in eph.iterdir() if p.name.endswith(".rootfs")]
    for name in ("ca", "cb"):
        assert ak("create", name, "--no-network", "--image", world.base, env=env).rc == 0
    assert ak("exec", "ca", "--", "sh", "-c", "echo mine > /etc/kept").rc == 0
    assert ak("exec", "cb", "--", "cat", "/etc/kept").stdout == "kept\n"
    assert ak("exec", "ca", "--", "cat", "/etc/kept").stdout == "mine\n"
    # the copy on the host is the image, read-only to the sandbox: its writes go to its own disk
    # (issue 12, finding 9: writes into the copy filled the host's disk)
    assert (ak.data_dir / "run" / "ca" / "rootfs" / "etc" / "kept").read_text() == "kept\n"
    owner = os.stat(ak.data_dir / "run" / "ca" / "rootfs" / "srv" / "owned").st_uid
    assert owner > 0x40000000 and owner % 65536 == 1000  # the sandbox's range, not host 1000
    for name in ("ca", "cb"):
        ak("remove", name, check=True)
    assert not (ak.data_dir / "run" / "ca").exists()


@needs_static_agent
@pytest.mark.parametrize("point", ["native-root-copied", "native-spawned", "native-recorded"])
def test_failed_start_removes_the_copy(ak, world, point):
    """A start of an image copy (AGENTKERNEL_IMAGE_ROOTFS=copy) that fails once the copy is made
    removes it: an ephemeral run's <cgroup>.rootfs and lock, a kept sandbox's run directory
    (src/backend/native-start.c, start_undo)."""
    env = {"AGENTKERNEL_IMAGE_ROOTFS": "copy", "AGENTKERNEL_TEST_HOOK": f"fail:{point}"}
    ak("images", "pull", world.base, check=True)
    res = ak("run", "--no-network", "--image", world.base, "--", "true", env=env)
    assert res.rc != 0 and f"injected failure at '{point}'" in res.stderr, res
    assert list((ak.data_dir / "run" / ".ephemeral").iterdir()) == []
    assert ak("create", "--no-start", "cc", "--no-network", "--image", world.base).rc == 0
    res = ak("start", "cc", env=env)
    assert res.rc != 0 and f"injected failure at '{point}'" in res.stderr, res
    assert not (ak.data_dir / "run" / "cc").exists()
    assert ak("start", "cc", env={"AGENTKERNEL_IMAGE_ROOTFS": "copy"}).rc == 0
    assert ak("exec", "cc", "--", "true").rc == 0


@pytest.mark.skipif(not elf_is_dynamic(AGENT), reason="the agent of this build is static")
def test_a_dynamic_agent_is_refused_clearly(ak, world):
    ak.env["AGENTKERNEL_AGENT"] = AGENT
    res = ak("run", "--no-network", "--image", world.base, "--", "true")
    assert res.rc == 125 and "statically linked agent" in res.stderr, res
    assert ak.list() == []


@needs_static_agent
def test_clean_all_removes_the_images_no_sandbox_uses(ak, world):
    """`clean --all` (upstream's: docker rmi agentkernel-*): after the sandboxes that go, every
    image of the store that no remaining sandbox uses is forgotten and pruned; a running
    sandbox's image stays."""
    other, _ = world.variant("cleanall", [("cleanall-file", "file", "x\n")])
    assert ak("images", "pull", world.base).rc == 0
    assert ak("images", "pull", other).rc == 0
    assert ak("create", "keep", "--no-network", "--image", world.base).rc == 0
    assert ak("create", "gone", "--no-network", "--no-start", "--image", other).rc == 0
    res = ak("clean", "--all")
    assert res.rc == 0 and "Removed 'gone'" in res.stdout and "Images: 1 removed" in res.stdout, res
    names = [n for i in json.loads(ak("images", "list", "--json", check=True).out)
             for n in i["names"] if "@" not in n]
    assert names == [world.base], names
    assert ak("exec", "keep", "--", "true").rc == 0
