# SPDX-License-Identifier: Apache-2.0
"""Rootless: agentkernel run by an unprivileged user (here: nobody) still isolates."""
import json
import os
import pathlib
import shutil

import pytest

from conftest import AK, NOBODY, STATIC_AGENT, needs_root, needs_static_agent, rootless_nobody

pytestmark = [needs_root, pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")]


@pytest.fixture
def rl():
    yield from rootless_nobody("ak-rootless-")


def test_rootless_run(rl):
    res = rl("run", "--no-network", "--", "sh", "-c", "id -u; cat /proc/self/uid_map; hostname")
    assert res.rc == 0, res
    lines = res.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(NOBODY), "1"]  # only our own uid is mapped
    assert lines[2] == "agentkernel"


def test_rootless_lifecycle(rl):
    assert rl("create", "mine", "--no-network").rc == 0
    res = rl("exec", "mine", "--", "sh", "-c", "echo hi > /tmp/x; cat /tmp/x")
    assert res.stdout == "hi\n", res
    res = rl("exec", "mine", "--", "sh", "-c", "touch /usr/bin/x")
    assert res.rc != 0
    assert rl("stop", "mine").rc == 0
    assert rl("remove", "mine").rc == 0
    assert json.loads(rl("list", "--json").out) == []


def test_rootless_network_or_a_clear_reason(rl):
    res = rl("run", "--network", "full", "--", "true")
    if (os.stat("/dev/net/tun").st_mode & 0o006) == 0o006:  # world read-write
        assert res.rc == 0, res
    else:
        assert res.rc == 125 and "/dev/net/tun" in res.stderr, res


def test_rootless_doctor(rl):
    res = rl("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(res.out)["checks"]}
    assert checks["namespaces"]["status"] == "ok"
    assert checks["sandbox"]["status"] == "ok", checks["sandbox"]


def test_permissive_home_hides_credentials(rl):
    home = pathlib.Path(rl.env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_canary").write_text("CANARY-SSH-KEY")
    (home / ".netrc").write_text("machine x password CANARY-NETRC")
    (home / "notes.txt").write_text("visible")
    for p in (home / ".ssh", home / ".ssh" / "id_canary", home / ".netrc", home / "notes.txt"):
        os.chown(p, NOBODY, NOBODY)
    res = rl("run", "--no-network", "-p", "permissive", "--",
             "sh", "-c", "cat /home/user/notes.txt; echo; ls -A /home/user/.ssh; "
                         "cat /home/user/.netrc; cat /home/user/.ssh/id_canary; "
                         "echo x > /home/user/new 2>/dev/null && echo WROTE")
    assert "visible" in res.stdout, res
    assert "CANARY" not in res.stdout and "CANARY" not in res.stderr, res
    assert "id_canary" not in res.stdout
    assert "WROTE" not in res.stdout  # read-only


@needs_static_agent
def test_rootless_oci_image(rl, tmp_path):
    """An unprivileged user pulls into its own store and runs the image: the sandbox's user
    namespace mounts the overlay (user.overlay.* xattrs); whiteouts and opaque dirs hold."""
    import oci
    if not oci.tools_present():
        pytest.skip("needs umoci, skopeo, docker-registry, zstd, busybox-static")
    rl.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    lay = oci.Layout(tmp_path / "layout")
    oci.build_base(lay, "base", tmp_path / "bundles")
    reg = oci.Registry(tmp_path / "registry")
    try:
        reg.configure(rl.env)
        name = reg.push(lay.path, "base", "rl/base:1")
        res = rl("run", "--no-network", "-i", name, "--", "sh", "-c",
                 "id -u; ls /opq; ls /etc; stat -c '%u %a' /srv/owned /srv/setuid; "
                 "echo w > /etc/kept && cat /etc/kept")
        assert res.rc == 0, res
        out = res.stdout.splitlines()
        assert out[0] == "0"
        assert out[1] == "new"                        # opaque directory
        assert "gone" not in out and "added" in out   # file whiteout
        assert "0 644" in out and "0 4755" in out     # owners collapse to the one mapped id
        assert out[-1] == "w"
        assert rl("create", "img", "--no-network", "-i", name).rc == 0
        assert rl("exec", "img", "--", "cat", "/srv/marker").stdout == "amd64\n"
        assert rl("remove", "img").rc == 0
        res = rl("images", "rm", name)
        assert res.rc == 0, res
        store = pathlib.Path(rl.data_dir) / "images" / "layers"
        assert not any(store.iterdir())  # an unprivileged prune can delete what it unpacked
    finally:
        reg.stop()


def test_rootless_proxy_mode(rl):
    """Proxy mode rootless: the sandbox's child sets up the capture in its own namespace (AnyIP
    route, nf_tables) and the user's own proxy (in the data directory's cache: nobody has no
    runtime directory) takes every connection; a missing kernel feature would be named."""
    proxy = pathlib.Path(AK).with_name("agentkernel-proxy")
    if not proxy.exists():
        pytest.skip("agentkernel-proxy is not built")
    code = ("import socket\n"
            "try:\n s=socket.create_connection(('10.9.9.9',80),3); s.sendall(b'GET / HTTP/1.1\\r\\n"
            "Host: 10.9.9.9\\r\\n\\r\\n'); print(s.recv(200).split(b'\\r\\n')[0].decode())\n"
            "except OSError as e: print('error', e)\n"
            "print(open('/etc/resolv.conf').read().strip())\n")
    res = rl("run", "--network", "proxy", "--", "/usr/bin/python3", "-c", code)
    try:
        if res.rc == 125 and "nf_tables" in res.stderr:
            pytest.skip(f"this kernel lacks what proxy mode needs: {res.stderr.strip()}")
        assert res.rc == 0, res
        # the proxy answers (a private address: denied, with the rule's reason)
        assert res.stdout.splitlines() == ["HTTP/1.1 403 Forbidden", "nameserver 127.0.0.1"], res
    finally:
        ctl = rl.data_dir / "cache" / "proxy" / "control"
        if ctl.exists():
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(str(ctl))
                s.send(b'{"op":"stats"}')
                st = json.loads(s.recv(65536))
                for k in ("worker_pid", "supervisor_pid"):
                    os.kill(int(st[k]), 9)
            except (OSError, KeyError, ValueError):
                pass
            s.close()
