# SPDX-License-Identifier: Apache-2.0
"""agentkernel-proxy's secret injection (issue 15 part B), driven alone in the test world of
tests/proxy_world.py: a sandbox registered with grants (SECRETS-B.md's control protocol), values
sent after the registration, and an HTTPS test server with its own CA (given as upstream_ca) on
the private internet. Clients run inside the sandbox netns and trust the CA the proxy returned."""
import json
import os
import secrets as pysecrets
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import have, needs_root  # noqa: E402
import proxy_world  # noqa: E402

pytestmark = [needs_root, pytest.mark.skipif(
    not (have("ip") and have("nft") and have("curl") and have("openssl")
         and os.path.exists(proxy_world.PROXY)),
    reason="needs ip, nft, curl, openssl and a built agentkernel-proxy")]

POLICY = {
    "default": "deny",
    "rules": [{"action": "allow", "host": "*.allowed.test", "ports": [80, 443, 8081]},
              {"action": "allow", "host": "*.denied.test", "ports": [80, 443]}],
    "dns_servers": ["198.18.0.53"],
}


def placeholder():
    return "AGENTKERNEL_PLACEHOLDER_" + pysecrets.token_hex(16)


def grant(name, hosts, ph, header="Authorization", prefix="Bearer ", body=False):
    return {"name": name, "hosts": hosts, "header": header, "prefix": prefix,
            "placeholder": ph, "body": body}


def ctl_raw(world, msg, raw):
    c = proxy_world.Control(world.control)
    try:
        return c.call(msg, raw=raw)
    finally:
        c.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = proxy_world.World(tmp_path_factory.mktemp("mitm"), POLICY)
    yield w
    w.close()


def fresh(world, name, extra, check=True):
    """Registers name from a new sandbox netns (a netns's listeners are registered once)."""
    ns = world.sandbox_netns()
    return world.register(name, POLICY, ns=ns, holder=ns, extra=extra, check=check)


def test_register_with_secrets_returns_a_ca(world, tmp_path):
    """register with "secrets" answers with the sandbox's CA: EC P-256, CA:TRUE pathlen 0
    critical, keyCertSign/cRLSign, OU the sandbox's name, ~30 days; its key is in no reply."""
    ph = placeholder()
    reply = fresh(world, "sb2", {
        "secrets": [grant("API_KEY", ["secure.allowed.test"], ph)],
        "upstream_ca": (world.tmp / "ca.pem").read_text(),
        "values": {"API_KEY": b"v".hex()}})
    assert reply["ok"] and "PRIVATE" not in json.dumps(reply)
    pem = reply["ca"]
    (tmp_path / "ca.pem").write_text(pem)
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", tmp_path / "ca.pem"],
                          capture_output=True, text=True, check=True).stdout
    assert "CN = AgentKernel Proxy CA" in text and "OU = sb2" in text
    assert "prime256v1" in text or "P-256" in text
    assert "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign, CRL Sign" in text
    assert text.count("critical") >= 2
    # a new registration of the same name makes a new CA
    again = fresh(world, "sb2", {"secrets": [grant("API_KEY", ["secure.allowed.test"], ph)]})
    assert again["ca"] != pem
    assert world.ctl({"op": "unregister", "sandbox": "sb2"})["ok"]


def test_register_without_secrets_has_no_ca(world):
    """Without grants nothing changes: no CA in the reply."""
    assert fresh(world, "sb3", None) == {"ok": True}
    assert world.ctl({"op": "unregister", "sandbox": "sb3"})["ok"]


@pytest.mark.parametrize("bad", [
    [{"name": "K", "hosts": ["*"], "header": "Authorization", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test:443"], "header": "Authorization",
      "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["198.18.0.3"], "header": "Authorization",
      "placeholder": placeholder()}],
    [{"name": "K", "hosts": [], "header": "Authorization", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"], "header": "Bad Header", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "placeholder": "AGENTKERNEL_PLACEHOLDER_x"}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "placeholder": placeholder(),
      "extra": 1}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "prefix": "a\r\nb",
      "placeholder": placeholder()}],
    [{"name": "bad name", "hosts": ["a.test"], "header": "X", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"] * 17, "header": "X", "placeholder": placeholder()}],
    [{"name": "K%d" % i, "hosts": ["a.test"], "header": "X", "placeholder": placeholder()}
     for i in range(65)],
])
def test_register_refuses_bad_grants(world, bad):
    """Bad grants are refused with a message; nothing is registered then (the old
    registration stays)."""
    reply = fresh(world, "sb-bad", {"secrets": bad}, check=False)
    assert reply["ok"] is False
    assert world.ctl({"op": "get_policy", "sandbox": "sb-bad"})["ok"] is False


def test_register_refuses_bad_upstream_ca(world):
    reply = fresh(world, "sb-bad", {
        "secrets": [grant("K", ["a.test"], placeholder())], "upstream_ca": "not a pem"},
        check=False)
    assert reply["ok"] is False and "upstream_ca" in reply["error"]


def test_secret_value_messages(world):
    """secret_value: JSON, NUL, raw bytes (1..65536, no NUL) for a known grant; anything else
    refused; the value is never echoed."""
    fresh(world, "sb4", {"secrets": [grant("K1", ["secure.allowed.test"], placeholder())]})
    ok = ctl_raw(world, {"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"x" * 65536)
    assert ok == {"ok": True}
    for msg, raw in (({"op": "secret_value", "sandbox": "sb4", "name": "NOPE"}, b"v"),
                     ({"op": "secret_value", "sandbox": "nope", "name": "K1"}, b"v"),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b""),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"a\0b"),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"x" * 65537),
                     ({"op": "stats"}, b"v")):
        r = ctl_raw(world, msg, raw)
        assert r["ok"] is False, (msg, r)
        assert "xxxx" not in json.dumps(r)
    assert world.ctl({"op": "unregister", "sandbox": "sb4"})["ok"]
