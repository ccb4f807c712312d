# SPDX-License-Identifier: Apache-2.0
"""The microvm backend's `proxy` network (docs/network.md, "The microvm backend"): the guest has
no NIC; its connections travel over the agent's channel as DIALs that the host's relay makes from
a network namespace of its own with the native capture, so the user's policy proxy decides them
as any native sandbox's.

One VM (module scope: a TCG boot costs ~2 s of CPU) in the private test world of
tests/egress_world.py: agentkernel and its proxy run in the world's host namespace, nothing can
reach the real network. Its policy: allowed.test only (default deny). The image is the busybox
base of tests/oci.py, pulled in the root namespace (where the test registry listens) before the
CLI moves into the world.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import STATIC_AGENT, agent_pids
from egress_world import (ALLOWED, ALLOWED_IP, DENIED, HOST_PORTS, OTHER_IP, control,
                          world)  # noqa: F401 (fixture)
from test_microvm import _MISSING, assert_vm_gone, image, make_ak  # noqa: F401 (fixture)

pytestmark = [pytest.mark.egress,
              pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))]


@pytest.fixture(scope="module")
def nvm(tmp_path_factory, image, world):  # noqa: F811
    """A proxy-mode VM whose policy allows allowed.test and nothing else."""
    reg, ref = image
    before = set(agent_pids())
    tmp = tmp_path_factory.mktemp("vmnet")
    ak = make_ak(tmp / "data", reg)
    res = ak("images", "pull", ref, timeout=300)
    assert res.rc == 0, res
    world.ak(ak)
    try:
        res = ak("create", "nv", "-B", "microvm", "--network=proxy", "--allow-host", ALLOWED,
                 "-i", ref, "--memory", "256", timeout=300)
        assert res.rc == 0, res
        pol = tmp / "policy.json"
        pol.write_text(json.dumps({"default": "deny",
                                   "rules": [{"action": "allow", "host": ALLOWED}]}))
        assert ak("network", "policy", "nv", "--set", pol).rc == 0
        yield ak, "nv", ref
    finally:
        for s in ak.list():
            ak("remove", s["name"], timeout=60)
        assert_vm_gone(ak, "nv")
        world.kill_strays()
        ak.prefix = []
        time.sleep(0.2)
        assert not set(agent_pids()) - before  # no relay left


def sh(ak, name, script, timeout=60):
    return ak("exec", name, "--", "/bin/busybox", "sh", "-c", script, timeout=timeout)


def test_allowed_host_is_reached_through_the_proxy(nvm, world):
    """wget inside the guest (the proxy variables set, and with them unset: the capture takes
    it) reaches allowed.test by name; the world sees each request come from the proxy with Host
    allowed.test, at allowed.test's address."""
    ak, name, _ = nvm
    m = world.mark()
    res = sh(ak, name, f"busybox wget -q -O - http://{ALLOWED}/via-env")
    assert res.rc == 0 and json.loads(res.stdout)["target"] == "/via-env", res
    res = sh(ak, name, "unset http_proxy HTTP_PROXY; "
             f"busybox wget -q -O - http://{ALLOWED}/transparent")
    assert res.rc == 0 and json.loads(res.stdout)["target"] == "/transparent", res
    got = [e for e in world.events(m, srv="http")]
    assert sorted(e["target"] for e in got) == ["/transparent", "/via-env"], got
    assert all(e["dst"] == ALLOWED_IP and e["host"].split(":")[0] == ALLOWED for e in got), got


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


def test_dns_of_a_denied_name_is_nxdomain(nvm):
    """The guest's resolver (127.0.0.1, bridged over the channel to the proxy's DNS): the
    allowed name resolves to its address, the denied one is NXDOMAIN."""
    ak, name, _ = nvm
    res = sh(ak, name, f"busybox nslookup {ALLOWED}")
    assert res.rc == 0 and ALLOWED_IP in res.stdout, res
    res = sh(ak, name, f"busybox nslookup {DENIED} 2>&1; echo rc=$?")
    assert "NXDOMAIN" in res.stdout and "198.18.0.11" not in res.stdout, res


def test_network_log_shows_the_guests_connections(nvm):
    """`agentkernel network log NAME` has the guest's allowed request and its denied one."""
    ak, name, _ = nvm
    sh(ak, name, f"busybox wget -q -O /dev/null http://{ALLOWED}/logged")
    sh(ak, name, f"busybox wget -q -O /dev/null http://{DENIED}/logged")
    deadline = time.time() + 5
    while True:
        res = ak("network", "log", name)
        lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]
        hosts = {(e.get("action"), e.get("host")) for e in lines}
        if ("allow", ALLOWED) in hosts and ("deny", DENIED) in hosts or time.time() > deadline:
            break
        time.sleep(0.2)
    assert ("allow", ALLOWED) in hosts and ("deny", DENIED) in hosts, lines


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


def test_ephemeral_run_with_fast(nvm, world):
    """`run --fast` in proxy mode (a pooled machine is never taken: it was booted before the
    run's policy existed) boots its own VM, reaches allowed.test and leaves nothing (the
    module's teardown checks no relay is left)."""
    ak, _, ref = nvm
    m = world.mark()
    res = ak("run", "-B", "microvm", "--fast", "--network=proxy", "--allow-host", ALLOWED,
             "-i", ref, "--", "/bin/busybox", "wget", "-q", "-O", "-", f"http://{ALLOWED}/run",
             timeout=300)
    assert res.rc == 0 and json.loads(res.stdout)["target"] == "/run", res
    assert [e["target"] for e in world.events(m, srv="http")] == ["/run"]
    time.sleep(1)  # a refill would have begun by now
    assert not list((ak.data_dir / "run" / ".ephemeral").glob("pv-*")), "a pool was filled"


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


@pytest.fixture
def nobody(image, world):  # noqa: F811
    """An Ak run as nobody (rootless), its image pulled in the root namespace (the registry's)."""
    from conftest import rootless_nobody
    reg, ref = image
    gen = rootless_nobody("ak-vmnet-")
    ak = next(gen)
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    reg.configure(ak.env)
    assert ak("images", "pull", ref, timeout=300).rc == 0
    setpriv = ak.prefix
    ak.prefix = world.prefix() + setpriv
    try:
        yield ak, ref
    finally:
        for s in ak.list():
            ak("remove", s["name"], timeout=60)
        world.kill_strays()
        ak.prefix = setpriv
        try:
            next(gen)
        except StopIteration:
            pass


def test_rootless_vm_reaches_allowed_and_nothing_else(nobody, world):
    """Rootless (the relay's capture namespace inside a user namespace of its own): the guest
    reaches allowed.test through the proxy, a denied name gets nothing, the world sees only the
    allowed request."""
    ak, ref = nobody
    m = world.mark()
    script = (f"busybox wget -q -O - http://{ALLOWED}/rootless; echo; "
              f"busybox wget -q -O - http://{DENIED}/rootless 2>&1; echo rc=$?")
    res = ak("run", "-B", "microvm", "--network=proxy", "--allow-host", ALLOWED, "-i", ref,
             "--", "/bin/busybox", "sh", "-c", script, timeout=300)
    assert res.rc == 0, res
    first = res.stdout.splitlines()[0]
    assert json.loads(first)["target"] == "/rootless", res
    assert "rc=0" not in res.stdout, res
    assert [e["target"] for e in world.events(m, srv="http")] == ["/rootless"], world.events(m)
