# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox fills the disk: writes without end to every place it may write for itself
(/tmp, /var, /root, /run, /dev/shm, the writable root of an image), in ephemeral runs and kept
sandboxes, of the host image and of OCI images (overlay and copy fallback), rootful and rootless.

What must hold: all of a sandbox's private writable places share one limit, --disk MB (default:
half its memory), enforced by the kernel -- one tmpfs, whose pages also count against the
memory limit -- so a writer gets ENOSPC (or, past the memory limit, is contained by the OOM
killer in the sandbox's cgroup) and nothing lands on the host's disk; `info` and `list --json` show the limit; bad values
are refused, changing nothing. (The workspace and unsized volumes are the user's own directories
and are not limited: see docs/security.md.)"""
import json
import os

import pytest

import oci
from conftest import MCP_GRANTS, STATIC_AGENT, needs_root, needs_static_agent, rootless_nobody

pytestmark = needs_root

FILL = ("dd if=/dev/zero of={path} bs=1M count={mb} 2>&1 | grep -o 'No space left on device'; "
        "stat -c %s {path}")


def fill(ak, where, path, mb, *args, name=None, env=None):
    """Writes mb MiB to path in a sandbox (run, or exec into name); returns (ENOSPC?, bytes)."""
    script = FILL.format(path=path, mb=mb)
    if name:
        res = ak("exec", name, "--", "sh", "-c", script, env=env)
    else:
        res = ak("run", "--no-network", *args, "--", "sh", "-c", script, env=env)
    assert res.rc == 0, res
    lines = res.stdout.split()
    return "No" in res.stdout, int(lines[-1])


def du(path):
    """Bytes the host holds under path (allocated blocks, as a disk fills)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files + dirs:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


MB = 1 << 20


def test_ephemeral_host_image_fill_gets_enospc(ak):
    """`run --disk 32`, 64 MiB into /tmp: ENOSPC at 32 MiB."""
    full, size = fill(ak, "run", "/tmp/f", 64, "--disk", "32")
    assert full and 28 * MB <= size <= 32 * MB


def test_private_places_share_one_limit(ak):
    """One limit for all: 20 MiB to each of /tmp, /var, /root, /dev/shm and /run with --disk 48
    cannot total more than 48 MiB."""
    script = "; ".join(
        f"dd if=/dev/zero of={p}/f bs=1M count=20 2>/dev/null" for p in
        ("/tmp", "/var", "/root", "/dev/shm", "/run")) + \
        "; du -sck /tmp/f /var/f /root/f /dev/shm/f /run/f 2>/dev/null | tail -1"
    res = ak("run", "--no-network", "--disk", "48", "--", "sh", "-c", script)
    assert res.rc == 0, res
    total_kb = int(res.stdout.split()[0])
    assert 40 * 1024 <= total_kb <= 48 * 1024, res


def test_kept_host_image_fill_and_info(ak):
    """A kept sandbox with --disk 32: /root fills to 32 MiB; the sandbox lives on; `info` and
    `list --json` show the limit."""
    assert ak("create", "k", "--no-network", "--disk", "32").rc == 0
    full, size = fill(ak, "exec", "/root/f", 64, name="k")
    assert full and size <= 32 * MB
    assert ak("exec", "k", "--", "sh", "-c", "rm /root/f; echo ok").stdout == "ok\n"
    info = json.loads(ak("info", "--json", "k").out)
    assert info["disk_mb"] == 32 and "disk_limit" not in info
    assert "disk_mb" in ak("info", "k").stdout
    [listed] = ak.list()
    assert listed["disk_mb"] == 32
    assert ak.state("k")["x_agentkernel"]["disk_mb"] == 32


def test_default_disk_is_half_the_memory(ak):
    """Without --disk a sandbox may write half its memory (the places are tmpfs: ENOSPC comes
    before the OOM killer), and a fill stops there."""
    assert ak("create", "d", "--no-network", "--memory", "64").rc == 0
    assert json.loads(ak("info", "--json", "d").out)["disk_mb"] == 32
    full, size = fill(ak, "exec", "/tmp/f", 64, name="d")
    assert full and size <= 32 * MB
    assert ak("exec", "d", "--", "echo", "alive").stdout == "alive\n"


def test_disk_above_memory_is_contained(ak):
    """--disk 512 with --memory 64: tmpfs pages count against the memory limit, so the writer
    is stopped near 64 MiB (ENOSPC or the OOM killer, inside the sandbox's cgroup, which may end
    the sandbox); the host's disk is untouched and other sandboxes carry on."""
    assert ak("create", "other", "--no-network").rc == 0
    assert ak("create", "m", "--no-network", "--memory", "64", "--disk", "512").rc == 0
    before = du(ak.data_dir)
    res = ak("exec", "m", "--", "sh", "-c",
             "dd if=/dev/zero of=/tmp/f bs=1M count=300 2>/dev/null; stat -c %s /tmp/f",
             timeout=120)
    size = int(res.stdout.split()[-1]) if res.stdout.strip() else 0
    assert size < 80 * MB, res
    assert du(ak.data_dir) - before < 4 * MB
    assert ak("exec", "other", "--", "echo", "alive").stdout == "alive\n"


def test_bad_values_are_refused_and_change_nothing(ak, tmp_path):
    for bad in ("0", "15", "abc", "-5", "1048577", "1e3", ""):
        res = ak("create", "x", "--no-start", "--no-config", "--disk", bad)
        assert res.rc == 2 and "invalid disk" in res.stderr, (bad, res)
        res = ak("run", "--no-config", "--disk", bad, "--", "true")
        assert res.rc == 2 and "invalid disk" in res.stderr, (bad, res)
    p = tmp_path / "agentkernel.toml"
    for bad in ("8", "-1", '"lots"', "2000000"):
        p.write_text(f"[resources]\ndisk_mb = {bad}\n")
        os.chmod(p, 0o644)
        res = ak("create", "x", "--no-start", "--config", p)
        assert res.rc == 2 and "disk_mb" in res.stderr, (bad, res)
    assert ak.names() == []


def test_toml_disk_mb_is_applied(ak, tmp_path):
    p = tmp_path / "agentkernel.toml"
    p.write_text('[sandbox]\nname = "t"\n[resources]\ndisk_mb = 40\n[security]\nnetwork = false\n')
    os.chmod(p, 0o644)
    assert ak("trust", "--yes", p).rc == 0
    assert ak("create", "--config", p).rc == 0
    assert json.loads(ak("info", "--json", "t").out)["disk_mb"] == 40
    full, size = fill(ak, "exec", "/var/f", 64, name="t")
    assert full and size <= 40 * MB


def mcp(ak, *calls):
    """Runs mcp-server with these tools/call requests; returns the results by id."""
    msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}}, *MCP_GRANTS]
    for i, (tool, args) in enumerate(calls, 1):
        msgs.append({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": tool, "arguments": args}})
    data = "".join(json.dumps(m) + "\n" for m in msgs).encode()
    res = ak("mcp-server", input=data, timeout=120)
    out = {}
    for line in res.stdout.splitlines():
        m = json.loads(line)
        out[m.get("id")] = m
    return out


def test_mcp_and_api_create_take_disk_mb(ak):
    """The MCP sandbox_create tool (the API's create) records disk_mb and refuses bad ones."""
    out = mcp(ak, ("sandbox_create", {"name": "viamcp", "disk_mb": 40}),
              ("sandbox_create", {"name": "bad1", "disk_mb": 1}),
              ("sandbox_create", {"name": "bad2", "disk_mb": "big"}))
    assert not out[1]["result"].get("isError"), out[1]
    assert out[2]["result"].get("isError") and "disk_mb" in json.dumps(out[2])
    assert out[3]["result"].get("isError") and "disk_mb" in json.dumps(out[3])
    assert ak.names() == ["viamcp"]
    assert json.loads(ak("info", "--json", "viamcp").out)["disk_mb"] == 40


# ---- OCI images ----

@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if not oci.tools_present():
        pytest.skip("needs umoci, skopeo, docker-registry, zstd, busybox-static")
    tmp = tmp_path_factory.mktemp("oci-disk")
    reg = oci.Registry(tmp / "registry")
    layout = oci.Layout(tmp / "layout")
    oci.build_base(layout, "base", tmp / "bundles")
    ref = reg.push(layout.path, "base", "test/disk:1")
    yield ref
    reg.stop()


@pytest.fixture
def oak(ak, image):
    """ak with the image pulled and a static agent (image roots need one)."""
    if STATIC_AGENT:
        ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    oci.allow(ak.env, image.split("/")[0])  # the test's loopback registry, configured
    ak("images", "pull", image, check=True)
    return ak


@needs_static_agent
def test_ephemeral_image_root_fill_gets_enospc(oak, image):
    """An ephemeral image sandbox writes into its root (the overlay's upper layer)."""
    full, size = fill(oak, "run", "/srv/f", 64, "--disk", "32", "--image", image)
    assert full and size <= 32 * MB


@needs_static_agent
def test_kept_image_root_fill_stays_off_the_host_disk(oak, image):
    """The review's case: a kept image sandbox with --memory 64 wrote 301 MB to the host's disk.
    Now its root's writes are on its disk (half its memory by default): bounded, and the data
    directory does not grow."""
    assert oak("create", "big", "--no-network", "--memory", "64", "--image", image).rc == 0
    before = du(oak.data_dir)
    res = oak("exec", "big", "--", "sh", "-c",
              "dd if=/dev/zero of=/big bs=1M count=300 2>/dev/null; stat -c %s /big",
              timeout=120)
    size = int(res.stdout.split()[-1]) if res.stdout.strip() else 0
    assert size <= 32 * MB, res
    assert du(oak.data_dir) - before < 4 * MB
    oak("exec", "big", "--", "rm", "-f", "/big")
    assert oak("exec", "big", "--", "echo", "alive").stdout == "alive\n"


@needs_static_agent
def test_kept_image_fill_with_disk_flag(oak, image):
    assert oak("create", "kd", "--no-network", "--disk", "32", "--image", image).rc == 0
    full, size = fill(oak, "exec", "/root/f", 64, name="kd")
    assert full and size <= 32 * MB
    full, size = fill(oak, "exec", "/tmp/g", 8, name="kd")  # shared with /tmp
    assert full and size < 8 * MB


@needs_static_agent
def test_kept_image_writes_do_not_survive_a_restart(oak, image):
    """The root's writes live as long as the sandbox runs, as before (the upper layer was always
    deleted at stop): a restart starts from the image again."""
    assert oak("create", "r", "--no-network", "--image", image).rc == 0
    assert oak("exec", "r", "--", "sh", "-c", "echo x > /srv/mark").rc == 0
    assert oak("stop", "r").rc == 0 and oak("start", "r").rc == 0
    assert oak("exec", "r", "--", "test", "-e", "/srv/mark").rc != 0


@needs_static_agent
def test_copy_fallback_fill_stays_off_the_host_disk(oak, image):
    """Before Linux 6.13 image roots are copies on the host's disk (forced here): the copy is the
    overlay's read-only lower layer, so writes go to the sandbox's disk, never into the copy."""
    env = {"AGENTKERNEL_IMAGE_ROOTFS": "copy"}
    full, size = fill(oak, "run", "/srv/f", 64, "--disk", "32", "--image", image, env=env)
    assert full and size <= 32 * MB
    assert oak("create", "c", "--no-network", "--disk", "32", "--image", image, env=env).rc == 0
    copy = oak.data_dir / "run" / "c" / "rootfs"
    before = du(copy)
    full, size = fill(oak, "exec", "/srv/f", 64, name="c")
    assert full and size <= 32 * MB
    assert du(copy) - before < 1 * MB
    assert not (copy / "srv" / "f").exists()


# ---- rootless ----



@pytest.fixture
def rl():
    yield from rootless_nobody("ak-rootless-disk-")


def test_rootless_fill_gets_enospc(rl):
    """Rootless, often without a memory cgroup at all: the disk's size alone bounds the fill."""
    full, size = fill(rl, "run", "/tmp/f", 64, "--disk", "32")
    assert full and size <= 32 * MB
    assert rl("create", "rk", "--no-network", "--disk", "32").rc == 0
    full, size = fill(rl, "exec", "/var/f", 64, name="rk")
    assert full and size <= 32 * MB
