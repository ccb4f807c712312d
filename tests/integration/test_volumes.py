# SPDX-License-Identifier: Apache-2.0
"""Volumes: named directories that outlive sandboxes, with size limits that hold; and the
workspace. Both are idmapped so that the sandbox's root can write, but never as host root: a
workspace's owner is the sandbox's root, a volume's files belong to the volumes' own id range
(tests/security/sandbox/test_host_mounts.py attacks this)."""
import json
import os
import pathlib

import pytest

from conftest import needs_root


def vinfo(ak, name):
    res = ak("volume", "info", name)
    assert res.rc == 0, res
    return json.loads(res.out)


def test_create_list_info_delete(ak):
    assert ak("volume", "create", "cache").rc == 0
    res = ak("volume", "create", "cache")
    assert res.rc == 1 and "already exists" in res.stderr
    for bad in ("-x", "a/b", "", "x" * 64, "a b"):
        assert ak("volume", "create", bad).rc in (1, 2), bad
    info = vinfo(ak, "cache")
    assert info["slug"] == "cache" and info["size_bytes"] == 0
    assert info["enforced_limit"] is False
    assert pathlib.Path(info["path"]).is_dir()
    meta = json.loads((ak.data_dir / "volume-metadata" / "cache.json").read_text())
    assert set(meta) == {"slug", "size_bytes", "created_at", "last_used", "mount_count"}
    listed = json.loads(ak("volume", "list", "--json").out)
    assert [v["slug"] for v in listed] == ["cache"]
    assert ak("volume", "delete", "cache").rc == 0
    assert ak("volume", "info", "cache").rc == 1
    assert ak("volume", "delete", "cache").rc == 1


def test_volume_outlives_sandboxes_and_ro_holds(ak):
    assert ak("volume", "create", "shared").rc == 0
    assert ak("create", "w", "--no-network", "-v", "shared:/data").rc == 0
    assert ak("exec", "w", "--", "sh", "-c", "echo kept > /data/f").rc == 0
    assert ak("remove", "w").rc == 0
    assert ak("create", "r", "--no-network", "-v", "shared:/data:ro").rc == 0
    assert ak("exec", "r", "--", "cat", "/data/f").stdout == "kept\n"
    res = ak("exec", "r", "--", "sh", "-c", "echo x > /data/g")
    assert res.rc != 0 and "Read-only" in res.stderr
    assert vinfo(ak, "shared")["mount_count"] == 2
    # in use by a running sandbox: refused; non-empty: needs --force
    res = ak("volume", "delete", "shared", "-f")
    assert res.rc == 1 and "running sandbox 'r'" in res.stderr
    assert ak("stop", "r").rc == 0
    res = ak("volume", "delete", "shared")
    assert res.rc == 1 and "not empty" in res.stderr
    assert ak("volume", "delete", "shared", "--force").rc == 0


def test_bad_volume_specs_are_refused_and_nothing_is_created(ak):
    assert ak("volume", "create", "v").rc == 0
    for spec in ("nosuch:/data", "v", "v:relative", "v:/proc/x", "v:/", "v:/data:rx",
                 "v:/usr/local"):
        res = ak("create", "s", "--no-start", "-v", spec)
        assert res.rc in (1, 2), (spec, res)
    res = ak("create", "s", "--no-start", "-v", "v:/a", "-v", "v:/a")
    assert res.rc == 1 and "two volumes" in res.stderr
    assert ak.names() == []
    # a volume deleted after the sandbox was created: the start says which one
    assert ak("create", "s", "--no-start", "-v", "v:/a").rc == 0
    assert ak("volume", "delete", "v").rc == 0
    res = ak("start", "s")
    assert res.rc == 1 and "volume 'v' not found" in res.stderr


def test_run_mounts_volumes(ak):
    assert ak("volume", "create", "r").rc == 0
    assert ak("run", "--no-network", "-v", "r:/out", "--", "sh", "-c", "echo 1 > /out/x").rc == 0
    assert (pathlib.Path(vinfo(ak, "r")["path"]) / "x").read_text() == "1\n"


@needs_root
def test_size_limit_is_enforced(ak):
    res = ak("volume", "create", "tiny", "-s", "16MB")
    assert res.rc == 0, res
    assert vinfo(ak, "tiny")["size_bytes"] == 16 << 20
    assert ak("create", "t", "--no-network", "-v", "tiny:/t").rc == 0
    res = ak("exec", "t", "--", "sh", "-c", "head -c 40000000 /dev/zero > /t/big")
    assert res.rc != 0 and "No space left" in res.stderr, res
    used = vinfo(ak, "tiny")["used_bytes"]
    assert used <= 16 << 20
    assert ak("volume", "create", "huge", "-s", "17TB").rc == 2
    assert ak("volume", "create", "mini", "-s", "1MB").rc == 2
    assert ak("remove", "t").rc == 0
    assert ak("volume", "delete", "tiny", "-f").rc == 0
    assert not (ak.data_dir / "volumes" / ".tiny.img").exists()


@needs_root
def test_workspace_is_writable_and_keeps_ownership(ak, tmp_path):
    # The directory's owner (here uid 1000) is the sandbox's root: what the sandbox creates is
    # 1000's on the host. Before, the sandbox's root was host root on this mount, which let a
    # sandbox plant setuid-root files (issue 12, finding 1): this test pinned that.
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, 1000, 1000)
    (ws / "mine").write_text("x")
    os.chown(ws / "mine", 1000, 1000)
    (ws / "other").write_text("x")
    os.chown(ws / "other", 1001, 1001)
    assert ak("create", "w", "--no-network", "-d", ws).rc == 0
    res = ak("exec", "w", "--", "sh", "-c",
             "touch /workspace/new && stat -c '%u' /workspace/ /workspace/new /workspace/mine "
             "/workspace/other")
    assert res.rc == 0, res
    assert res.stdout.split() == ["0", "0", "0", "65534"], res
    st = os.stat(ws / "new")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    # the user's files are the sandbox root's to change; another user's are not (no
    # CAP_DAC_OVERRIDE in moderate, and unmapped ids are beyond any capability)
    assert ak("exec", "w", "--", "sh", "-c", "echo y >> /workspace/mine").rc == 0
    assert (ws / "mine").read_text() == "xy\n"
    res = ak("exec", "w", "--", "sh", "-c", "echo y >> /workspace/other")
    assert res.rc != 0 and "Permission denied" in res.stderr
    assert (ws / "other").read_text() == "x"
