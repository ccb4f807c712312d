# SPDX-License-Identifier: Apache-2.0
"""A guest of a proxy-mode microvm sandbox (docs/network.md, "The microvm backend") tries to
get out around the policy proxy: denied names and bare addresses, UDP, the host's loopback
services, the way out of the relay's namespace, a flood of connections that would lock the host
out of its agent, and a proxy that is gone. Nothing may reach the world but what the policy
allows (tests/egress_world.py records everything that arrives there).

One VM per module in the private test world (tests/microvm_world.py); its policy: allowed.test
only. The test that kills the proxy runs last.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from egress_world import (ALLOWED, ALLOWED_IP, DENIED, HOST_PORTS, OTHER_IP, control,
                          world)  # noqa: F401 (fixture)
from microvm_world import SKIP, image, proxy_vm, sh  # noqa: F401 (fixture)

pytestmark = [pytest.mark.egress, SKIP]


@pytest.fixture(scope="module")
def nvm(tmp_path_factory, image, world):  # noqa: F811
    """A proxy-mode VM whose policy allows allowed.test and nothing else."""
    yield from proxy_vm(tmp_path_factory, image, world)


def test_denied_host_is_refused_and_never_reached(nvm, world):
    """A denied name, through the proxy variables and transparently, and a bare address are
    refused (403 from the proxy, or a reset); the world records nothing for any of them."""
    ak, name, _ = nvm
    m = world.mark()
    res = sh(ak, name, f"busybox wget -q -O - http://{DENIED}/x 2>&1; echo rc=$?")
    assert "rc=0" not in res.stdout, res
    res = sh(ak, name, f"unset http_proxy HTTP_PROXY; busybox wget -q -O - http://{DENIED}/y "
             "2>&1; echo rc=$?")
    assert "rc=0" not in res.stdout, res
    res = sh(ak, name, f"unset http_proxy HTTP_PROXY; busybox wget -q -O - http://{OTHER_IP}/z "
             "2>&1; echo rc=$?")
    assert "rc=0" not in res.stdout, res
    assert [e for e in world.events(m) if e["srv"] in ("http", "wire", "tcp")] == [], \
        world.events(m)


def test_udp_and_host_loopback_go_nowhere(nvm, world):
    """UDP to an outside address fails in the guest (the capture rejects it: there is no NIC
    anyway); TCP to 127.0.0.1 of the host's namespace (its services on HOST_PORTS) is a DIAL to
    the relay's own loopback, never the host's: nothing reaches the world or the host's
    services."""
    ak, name, _ = nvm
    m = world.mark()
    res = sh(ak, name, f"echo hi | busybox nc -u -w 1 {OTHER_IP} 9999; echo rc=$?")
    assert res.rc == 0, res
    for port in HOST_PORTS:
        res = sh(ak, name, f"unset http_proxy HTTP_PROXY; busybox wget -q -O - "
                 f"http://127.0.0.1:{port}/h 2>&1; echo rc=$?")
        assert "rc=0" not in res.stdout, res
    evs = world.events(m)
    assert [e for e in evs if e["srv"] not in ("dns",)] == [], evs


def test_relay_namespace_has_no_way_out(nvm, world):
    """The relay (the only host process that connects for the guest) runs in a network
    namespace of its own: not the host's, only loopback, no route but local ones."""
    ak, name, _ = nvm
    rt = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())
    pid = rt["relay"]["pid"]
    ns = os.stat(f"/proc/{pid}/ns/net").st_ino
    assert ns != os.stat("/proc/self/ns/net").st_ino
    assert ns != os.stat(f"/proc/{world.holder.pid}/ns/net").st_ino
    enter = ["nsenter", f"--target={pid}", "--net", "--"]
    links = subprocess.run(enter + ["ip", "-o", "link"], capture_output=True, text=True)
    assert [ln.split(":")[1].strip() for ln in links.stdout.splitlines()] == ["lo"], links
    for table in ("main", "local"):
        routes = subprocess.run(enter + ["ip", "route", "show", "table", table],
                                capture_output=True, text=True)
        for ln in routes.stdout.splitlines():
            assert ln.split()[0] in ("local", "broadcast") and "dev lo" in ln, routes.stdout


def test_guest_has_no_nic_and_undoing_its_capture_opens_nothing(nvm, world):
    """The guest has no interface but lo. A guest that removes its AnyIP route (and so its
    capture's reach) gets errors, not a way out: nothing reaches the world."""
    ak, name, _ = nvm
    res = sh(ak, name, "busybox ip -o link")
    assert res.rc == 0 and [ln.split(":")[1].strip() for ln in res.stdout.splitlines()] == \
        ["lo"], res
    m = world.mark()
    res = sh(ak, name, "busybox ip route del local default dev lo table local 2>&1; "
             f"unset http_proxy HTTP_PROXY; busybox wget -q -T 3 -O - http://{OTHER_IP}/x "
             f"2>&1; echo hi | busybox nc -u -w 1 {OTHER_IP} 53; echo rc=$?")
    assert "rc=" in res.stdout, res
    assert world.events(m) == [], world.events(m)


def test_connection_flood_leaves_the_agent_reachable(nvm):
    """The guest keeps opening connections and holds them (CONNECT tunnels to allowed.test
    through the proxy's own port: idle for minutes), more than the multiplexer's 256 channels:
    DIAL channels are capped below that (MUX_DIAL_MAX), so the host still opens channels to its
    agent: exec works all along, while every freed channel is taken again at once."""
    ak, name, _ = nvm
    connect = f"CONNECT {ALLOWED}:80 HTTP/1.1\\r\\nHost: {ALLOWED}:80\\r\\n\\r\\n"
    res = sh(ak, name, "(i=0; while [ $i -lt 320 ]; do i=$((i+1)); echo $i > /tmp/n; "
             f"( (printf '{connect}'; busybox sleep 60) | busybox nc 127.0.0.1 15001 &); done) "
             ">/dev/null 2>&1 </dev/null & echo started", timeout=60)
    assert res.rc == 0 and "started" in res.stdout, res
    try:
        deadline = time.time() + 90
        n = 0
        while n < 320 and time.time() < deadline:
            time.sleep(2)
            res = ak("exec", name, "--", "/bin/busybox", "cat", "/tmp/n", timeout=30)
            assert res.rc == 0, (n, res)
            n = int(res.stdout)
        assert n == 320, n
        time.sleep(2)
        for _ in range(3):
            res = ak("exec", name, "--", "/bin/busybox", "grep", "-c", " 01 ", "/proc/net/tcp",
                     timeout=30)
            assert res.rc == 0, res
        # established in the guest: both ends of each connection it holds, at most
        # MUX_DIAL_MAX (192) of them with a channel (the rest were reset)
        assert 2 * 150 < int(res.stdout) <= 2 * 192 + 8, res
    finally:
        sh(ak, name, "busybox pkill -f 'busybox sleep 60'; busybox pkill nc; true")


def test_killed_proxy_fails_closed(nvm, world):
    """(Last: it ends the proxy.) SIGKILL the proxy's supervisor and worker: the guest's
    connections, to allowed.test too, and its DNS get nowhere (the relay's capture ends at
    listeners nobody serves); nothing reaches the world."""
    ak, name, _ = nvm
    st = control(ak, {"op": "stats"})
    assert st.get("ok"), st
    for pid in (st["supervisor_pid"], st["worker_pid"]):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    m = world.mark()
    res = sh(ak, name, f"busybox wget -q -T 5 -O - http://{ALLOWED}/after 2>&1; echo rc=$?")
    assert "rc=0" not in res.stdout, res
    res = sh(ak, name, f"unset http_proxy HTTP_PROXY; busybox wget -q -T 5 -O - "
             f"http://{ALLOWED_IP}/after 2>&1; echo rc=$?")
    assert "rc=0" not in res.stdout, res
    res = sh(ak, name, f"busybox nslookup {ALLOWED} 2>&1; echo rc=$?")
    assert ALLOWED_IP not in res.stdout, res
    assert world.events(m) == [], world.events(m)
