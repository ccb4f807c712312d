# SPDX-License-Identifier: Apache-2.0
"""Proxy-mode microvm sandboxes in the private egress world (tests/egress_world.py), for
tests/integration/test_microvm_net.py (what works) and tests/security/sandbox/test_microvm_net.py
(what a guest tries): the image and checks of tests/integration/test_microvm.py, a module-scoped
VM whose policy allows allowed.test only, and a rootless CLI.
"""
import json
import pathlib
import sys
import time

import pytest

from conftest import STATIC_AGENT, agent_pids, rootless_nobody
from egress_world import ALLOWED

_INTEGRATION = str(pathlib.Path(__file__).resolve().parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)
from test_microvm import _MISSING, assert_vm_gone, image, make_ak  # noqa: E402,F401

SKIP = pytest.mark.skipif(bool(_MISSING), reason="microvm needs " + ", ".join(_MISSING))


def proxy_vm(tmp_path_factory, image, world, name="nv"):  # noqa: F811
    """For a module fixture (`yield from`): (ak, name, image ref) of a running proxy-mode VM
    whose policy is allowed.test only, default deny; the CLI runs in the world's host
    namespace. Afterwards: removed, nothing of it left (no relay either)."""
    reg, ref = image
    before = set(agent_pids())
    tmp = tmp_path_factory.mktemp("vmnet")
    ak = make_ak(tmp / "data", reg)
    res = ak("images", "pull", ref, timeout=300)  # where the test registry listens
    assert res.rc == 0, res
    world.ak(ak)
    try:
        res = ak("create", name, "-B", "microvm", "--network=proxy", "--allow-host", ALLOWED,
                 "-i", ref, "--memory", "256", timeout=300)
        assert res.rc == 0, res
        pol = tmp / "policy.json"
        pol.write_text(json.dumps({"default": "deny",
                                   "rules": [{"action": "allow", "host": ALLOWED}]}))
        assert ak("network", "policy", name, "--set", pol).rc == 0
        yield ak, name, ref
    finally:
        for s in ak.list():
            ak("remove", s["name"], timeout=60)
        assert_vm_gone(ak, name)
        world.kill_strays()
        ak.prefix = []
        time.sleep(0.2)
        assert not set(agent_pids()) - before  # no relay left


def rootless_in_world(image, world):  # noqa: F811
    """For a fixture (`yield from`): (ak, image ref) for a CLI run as nobody, rootless, in the
    world's host namespace, the image pulled first in the root namespace."""
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


def sh(ak, name, script, timeout=60):
    """A busybox shell script in the VM."""
    return ak("exec", name, "--", "/bin/busybox", "sh", "-c", script, timeout=timeout)
