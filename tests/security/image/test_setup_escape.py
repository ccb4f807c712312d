# SPDX-License-Identifier: Apache-2.0
"""A malicious image escapes its root while the sandbox is being set up.

The setup creates files and mount points inside the image's root before pivot_root, while the
host's tree is still reachable (at /oldroot). An image whose /etc, /tmp, /run, /dev, /sys, /var
or /workspace is a symlink out of the root, or whose WorkingDir climbs with "..", must not make
the setup write, create, chmod or mount anything on the host; configs with a WorkingDir, User or
Env that is not what it claims to be are refused at pull time, saying which field is wrong.
"""
import json
import os
import pathlib
import stat

import pytest

import oci
from conftest import STATIC_AGENT, needs_root, needs_static_agent

pytestmark = [
    needs_root,
    needs_static_agent,
    pytest.mark.skipif(not oci.tools_present(),
                       reason="needs umoci, skopeo, docker-registry, zstd, busybox-static"),
]


class World:
    def __init__(self, tmp):
        self.reg = oci.Registry(tmp / "registry")
        self.layout = oci.Layout(tmp / "layout")
        oci.build_base(self.layout, "base", tmp / "bundles")

    def variant(self, tag, entries=(), config=None):
        """base + one layer of entries, config fields replaced; pushed as test/<tag>:1."""
        oci.run("umoci", "tag", "--image", f"{self.layout.path}:base", tag)
        if entries:
            self.layout.add_tar_layer(tag, oci.tar_of(list(entries)))
        if config:
            man = self.layout.manifest(tag)
            cfg = json.loads(self.layout.blob(man["config"]["digest"]).read_bytes())
            cfg["config"].update(config)
            d, n = self.layout.put_blob(json.dumps(cfg).encode())
            man["config"] = {"mediaType": man["config"]["mediaType"], "digest": d, "size": n}
            self.layout.retag(tag, man)
        return self.reg.push(self.layout.path, tag, f"test/{tag}:1")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("oci-escape"))
    yield w
    w.reg.stop()


@pytest.fixture(autouse=True)
def static_agent(ak, world):
    if STATIC_AGENT:
        ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    world.reg.configure(ak.env)  # the test's loopback registry, allowed as a user does


@pytest.fixture
def outside():
    """A host directory the image aims at, writable by everyone like /tmp (the setup runs as the
    sandbox's unprivileged host id): its contents and mode must not change."""
    mark = f"ak-escape-{os.getpid()}-{os.urandom(4).hex()}"
    d = pathlib.Path("/tmp") / mark
    d.mkdir()
    os.chmod(d, 0o1777)
    (d / "target").write_text("host file\n")
    yield mark, d
    for p in sorted(d.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()
    d.rmdir()


def assert_untouched(d):
    assert sorted(p.name for p in d.iterdir()) == ["target"], list(d.iterdir())
    assert (d / "target").read_text() == "host file\n"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o1777
    assert not os.path.ismount(d)


# name -> (layer entries, config, extra run args). {mark} is the host directory's name.
ESCAPES = {
    "etc-absolute": ([("etc", "symlink", "/oldroot/tmp/{mark}")], None, []),
    "etc-relative": ([("etc", "symlink", "../../../../../oldroot/tmp/{mark}")], None, []),
    "etc-hostname": ([("etc/hostname", "symlink", "/oldroot/tmp/{mark}/hostname")], None, []),
    "etc-hosts-file": ([("etc/hosts", "symlink", "/oldroot/tmp/{mark}/target")], None, []),
    "tmp": ([("tmp", "symlink", "/oldroot/tmp/{mark}")], None, []),
    "run": ([("run", "symlink", "/oldroot/tmp/{mark}")], None, []),
    "dev": ([("dev", "symlink", "/oldroot/tmp/{mark}")], None, []),
    "sys": ([("sys", "symlink", "/oldroot/tmp/{mark}")], None, []),
    "var-workdir": ([("var", "symlink", "/oldroot/tmp/{mark}")], {"WorkingDir": "/var/wd"}, []),
    "workdir-through-link": ([("srv/up", "symlink", "../../../oldroot/tmp/{mark}")],
                             {"WorkingDir": "/srv/up/wd"}, []),
    "workspace": ([("workspace", "symlink", "/oldroot/tmp/{mark}")], None, ["--mount-cwd"]),
    "volume-dest": ([("data", "symlink", "/oldroot/tmp/{mark}")], None, ["-v", "v:/data"]),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_image_symlinks_cannot_reach_the_host_during_setup(ak, world, outside, case, tmp_path):
    """The setup follows an image's symlinks only inside the image's root: it either starts
    the sandbox with the link resolved inside, or refuses to start; the host directory the link
    names gets nothing (no file, no directory, no mode change, no mount)."""
    mark, d = outside
    entries, config, extra = ESCAPES[case]
    entries = [(n, k, p.format(mark=mark)) for n, k, p in entries]
    name = world.variant(f"esc-{case}", entries, config)
    if "-v" in extra:
        assert ak("volume", "create", "v").rc == 0
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    os.chown(cwd, 62002, 62002)
    res = ak("run", "--no-network", "--image", name, *extra, "--",
             "sh", "-c", "echo sandbox > /h 2>/dev/null; echo ran", cwd=cwd)
    if res.rc == 0:
        assert "ran" in res.stdout
    else:
        assert "sandbox setup failed" in res.stderr, res
    assert_untouched(d)


def test_symlinks_inside_the_image_still_work(ak, world):
    """A link that stays inside the image is followed as the image means it: /etc ->
    /usr/etc gets the generated hostname there."""
    name = world.variant("inside-link", [("usr/etc", "dir", None), ("etc", "symlink", "/usr/etc")])
    res = ak("run", "--no-network", "--image", name, "--", "sh", "-c",
             "cat /usr/etc/hostname; readlink /etc")
    assert res.rc == 0, res
    assert res.stdout.split() == ["agentkernel", "/usr/etc"], res


BAD_CONFIGS = {
    "workdir-dotdot": ({"WorkingDir": "../../x"}, "WorkingDir"),
    "workdir-escape": ({"WorkingDir": "/../../oldroot/tmp/x"}, "WorkingDir"),
    "workdir-middle": ({"WorkingDir": "/srv/../../../x"}, "WorkingDir"),
    "workdir-relative": ({"WorkingDir": "srv"}, "WorkingDir"),
    "workdir-newline": ({"WorkingDir": "/srv\n/x"}, "WorkingDir"),
    "workdir-long": ({"WorkingDir": "/" + "a" * 2000}, "WorkingDir"),
    "user-path": ({"User": "../../etc/shadow"}, "User"),
    "user-shell": ({"User": "root;id"}, "User"),
    "user-three": ({"User": "a:b:c"}, "User"),
    "user-long": ({"User": "u" * 40}, "User"),
    "env-no-equals": ({"Env": ["PATH=/bin", "NOEQUALS"]}, "Env"),
    "env-empty-key": ({"Env": ["=value"]}, "Env"),
    "env-bad-key": ({"Env": ["A B=1"]}, "Env"),
    "env-too-many": ({"Env": [f"K{i}=v" for i in range(5000)]}, "Env"),
    "env-too-big": ({"Env": [f"K{i}=" + "v" * 30000 for i in range(10)]}, "Env"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_image_configs_are_refused_at_pull(ak, world, case):
    """WorkingDir (absolute, no '..', no control characters, bounded), User (NAME|UID[:GROUP|
    GID], bounded charset) and Env (KEY=VALUE, bounded count and size) are checked when the
    image is pulled: a bad one is refused with the field named, and nothing is stored."""
    config, field = BAD_CONFIGS[case]
    name = world.variant(f"cfg-{case}", (), config)
    res = ak("images", "pull", name)
    assert res.rc != 0, res
    assert field in res.stderr, res
    listed = json.loads(ak("images", "list", "--json", check=True).out)
    assert not any(name in n for i in listed for n in i.get("names", [])), listed
    res = ak("run", "--no-network", "--image", name, "--", "true")
    assert res.rc != 0 and field in res.stderr, res


def test_workdir_is_normalised(ak, world):
    """A WorkingDir with '.' and repeated or trailing slashes is accepted in its canonical
    form."""
    name = world.variant("cfg-canonical", (), {"WorkingDir": "//srv/./sub//"})
    res = ak("run", "--no-network", "--image", name, "--", "pwd")
    assert res.rc == 0 and res.stdout.strip() == "/srv/sub", res
