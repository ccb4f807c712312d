# SPDX-License-Identifier: Apache-2.0
"""The microvm backend's `proxy` network works (docs/network.md, "The microvm backend"): the
guest has no NIC; its connections travel over the agent's channel as DIALs that the host's relay
makes from a network namespace of its own with the native capture, so the user's policy proxy
decides them as any native sandbox's. What a hostile guest tries is in
tests/security/sandbox/test_microvm_net.py.

One VM (module scope: a TCG boot costs ~2 s of CPU) in the private test world of
tests/egress_world.py (tests/microvm_world.py): agentkernel and its proxy run in the world's
host namespace, nothing can reach the real network. Its policy: allowed.test only.
"""
import json
import time

import pytest

from egress_world import ALLOWED, ALLOWED_IP, DENIED, world  # noqa: F401 (fixture)
from microvm_world import SKIP, image, proxy_vm, rootless_in_world, sh  # noqa: F401 (fixture)

pytestmark = [pytest.mark.egress, SKIP]


@pytest.fixture(scope="module")
def nvm(tmp_path_factory, image, world):  # noqa: F811
    """A proxy-mode VM whose policy allows allowed.test and nothing else."""
    yield from proxy_vm(tmp_path_factory, image, world)


@pytest.fixture
def nobody(image, world):  # noqa: F811
    yield from rootless_in_world(image, world)


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
