# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox maps the host's layout from /proc/self/mountinfo.

Every mount's entry shows where its root lies in its filesystem, its source and its options.
What a sandbox must not learn there: the data directory (and so the user's home), the image
store's layer paths, a kept sandbox's run directory. What the kernel shows regardless, pinned
here exactly (docs/security.md, "What /proc/self/mountinfo shows"): a bind mount's root is its
path within its filesystem, so the workspace the user chose and a plain volume's directory appear
with their host paths. The /etc snapshot (shared by all sandboxes) is kept in the runtime
directory (/run/agentkernel/<id>/etc/<name>) under a name keyed with a secret: it names neither
the data directory nor anything of the host's /etc.
"""
import json
import os
import pathlib

import pytest

import oci
from conftest import STATIC_AGENT, needs_root

pytestmark = needs_root


def mountinfo(ak, *args, cwd=None):
    res = ak("run", "--no-network", *args, "--", "cat", "/proc/self/mountinfo", cwd=cwd)
    assert res.rc == 0, res
    return res.stdout.splitlines()


def entry(lines, point):
    found = [l for l in lines if l.split()[4] == point]
    assert len(found) == 1, (point, lines)
    return found[0]


def test_host_image_shows_only_what_it_must(ak, tmp_path):
    """tmpfs, proc, devpts and device mounts show no host path; sized volumes show their own
    filesystem's root; the data directory appears only in the entry the kernel cannot hide (a
    plain volume), the workspace's path only in its own; /etc comes from the runtime directory."""
    ws = tmp_path / "secret-project-name"
    ws.mkdir()
    os.chown(ws, 62002, 62002)
    assert ak("volume", "create", "plain").rc == 0
    assert ak("volume", "create", "sized", "-s", "16MB").rc == 0
    lines = mountinfo(ak, "--mount-cwd", "-v", "plain:/plain", "-v", "sized:/sized", cwd=ws)
    data = str(ak.data_dir)
    with_data = sorted(l.split()[4] for l in lines if data in l)
    assert with_data == ["/plain"], lines
    etc = entry(lines, "/etc").split()[3]
    assert etc.startswith("/run/agentkernel/") or etc.startswith("/agentkernel/"), etc
    with_ws = [l.split()[4] for l in lines if "secret-project-name" in l]
    assert with_ws == ["/workspace"], lines
    assert entry(lines, "/sized").split()[3] == "/"
    for point in ("/", "/dev", "/proc", "/dev/pts"):
        fields = entry(lines, point).split()
        assert fields[3] == "/", fields
    # the sandbox's own places are directories of its disk (one tmpfs, source "none"): the root
    # field names that directory of the disk, nothing of the host
    for point in ("/tmp", "/run", "/dev/shm", "/var", "/root"):
        fields = entry(lines, point).split()
        assert fields[3] == "/" + point.rsplit("/", 1)[1], fields
        assert fields[fields.index("-") + 2] == "none", fields
    # nothing else of the host's private places
    for l in lines:
        assert "/home/" not in l and "/root/" not in l.split()[3], l


@pytest.mark.skipif(not oci.tools_present() or not STATIC_AGENT,
                    reason="needs the OCI tools and a static agent")
@pytest.mark.parametrize("keep", [False, True])
def test_image_root_hides_the_store_and_run_directory(ak, tmp_path_factory, keep):
    """An image root is an overlay of layers given by file descriptor: its options name "/"
    for each layer and "/upper" for a kept sandbox's writable layer, never the image store or
    the sandbox's run directory; its source is "none"."""
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    tmp = tmp_path_factory.mktemp("oci-mi")
    reg = oci.Registry(tmp / "registry")
    reg.configure(ak.env)
    try:
        lay = oci.Layout(tmp / "layout")
        oci.build_base(lay, "base", tmp / "bundles")
        name = reg.push(lay.path, "base", "test/mi:1")
        res = ak("run", "--no-network", *(["--keep"] if keep else []), "--image", name, "--",
                 "cat", "/proc/self/mountinfo")
        assert res.rc == 0, res
        lines = res.stdout.splitlines()
        root = entry(lines, "/")
        assert " - overlay none " in root, root
        assert "lowerdir+=/," in root and ("upperdir=/upper" in root), root
        for l in lines:
            assert str(ak.data_dir) not in l, l
            assert "sha256" not in l, l
    finally:
        reg.stop()
