# SPDX-License-Identifier: Apache-2.0
"""Secret injection into a microVM (docs/secrets.md, docs/network.md "The microvm backend"): a
proxy-mode VM with a binding, in the private test world of tests/egress_world.py (its own CA,
namespaces the fixture makes; nothing can leave). The guest has no NIC: its TLS connection
travels over the agent's channel to the host's relay, whose capture hands it to the user's proxy,
which intercepts the bound host with the sandbox's own CA. The guest's client trusts that CA only
through what agentkernel put into the guest (/run/agentkernel/trust, SSL_CERT_FILE): the busybox
image has no curl or python, so the client is tests/security/sandbox/tls_get.c, static.

What must hold: the CA files and the variables are in the guest; the guest holds a placeholder,
never the value (environment, output); the world's server receives the real value; a client that
trusts only the real server's CA fails verification (the connection was intercepted, not
tunnelled).
"""
import pathlib
import re
import secrets
import shutil
import subprocess

import pytest

from egress_world import ALLOWED, ALLOWED_IP, world  # noqa: F401 (fixture)
from microvm_world import SKIP, assert_vm_gone, image, make_ak, sh  # noqa: F401 (fixture)

HERE = pathlib.Path(__file__).resolve().parent
CLIENT = HERE.parent / "security" / "sandbox" / "tls_get.c"
PLACEHOLDER = re.compile(r"AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}")
_LIBSSL = pathlib.Path("/usr/lib/x86_64-linux-gnu/libssl.a")

pytestmark = [pytest.mark.egress, SKIP,
              pytest.mark.skipif(not (shutil.which("gcc") and _LIBSSL.exists()),
                                 reason="the guest's TLS client needs gcc and libssl-dev")]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    out = tmp_path_factory.mktemp("tls-get") / "tls_get"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(CLIENT), "-lssl", "-lcrypto",
                    "-lpthread"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def svm(tmp_path_factory, image, world, client):  # noqa: F811
    """(ak, name, value): VM 'sv', BEARER bound to allowed.test (Authorization: Bearer), the
    policy *.allowed.test, the world's CA as [network] ca_file; the client copied in."""
    reg, ref = image
    tmp = tmp_path_factory.mktemp("vmsec")
    ak = make_ak(tmp / "data", reg)
    assert ak("images", "pull", ref, timeout=300).rc == 0
    world.ak(ak)
    value = "sk-vm-" + secrets.token_hex(20)
    try:
        assert ak("secret", "set", "BEARER", input=value.encode()).rc == 0
        proj = tmp / "proj"
        proj.mkdir()
        cfg = proj / "agentkernel.toml"
        cfg.write_text(f'[sandbox]\nname = "sv"\n[network]\nca_file = "{world.ca}"\n'
                       f'hosts = {{ "{ALLOWED}" = "{ALLOWED_IP}" }}\n')
        assert ak("trust", "--yes", cfg).rc == 0
        res = ak("create", "--config", cfg, "-B", "microvm", "--network", "proxy",
                 "--allow-host", "*." + ALLOWED, "-S", f"BEARER:{ALLOWED}", "-i", ref,
                 "--memory", "256", cwd=proj, timeout=300)
        assert res.rc == 0, res
        assert ak("cp", client, "sv:/tmp/tls_get").rc == 0
        yield ak, "sv", value
    finally:
        for s in ak.list():
            ak("remove", s["name"], timeout=60)
        assert_vm_gone(ak, "sv")
        world.kill_strays()
        ak.prefix = []


def test_trust_files_and_variables_are_in_the_guest(svm):
    """The proxy's CA is in /run/agentkernel/trust (alone and combined with the system's), the
    variables name it, and $BEARER is a placeholder."""
    ak, name, value = svm
    res = sh(ak, name, "cat /run/agentkernel/trust/agentkernel-proxy.crt; "
             "echo SSL=$SSL_CERT_FILE; echo REQ=$REQUESTS_CA_BUNDLE; echo B=$BEARER")
    assert res.rc == 0, res
    assert res.stdout.startswith("-----BEGIN CERTIFICATE-----"), res
    assert "SSL=/run/agentkernel/trust/agentkernel-combined.crt" in res.stdout, res
    assert "REQ=/run/agentkernel/trust/agentkernel-combined.crt" in res.stdout, res
    ph = res.stdout.split("B=")[1].strip()
    assert PLACEHOLDER.fullmatch(ph), res
    assert value not in res.stdout and value not in res.stderr


def test_the_server_gets_the_value_and_the_guest_never_holds_it(svm, world):
    """tls_get sends 'Authorization: Bearer $BEARER' to allowed.test: the handshake verifies
    against the guest's trust file, the world's server receives the real value, and the echo that
    comes back to the guest carries the placeholder. Nothing in the guest's environment or
    output holds the value."""
    ak, name, value = svm
    m = world.mark()
    res = sh(ak, name, f'/tmp/tls_get {ALLOWED_IP} 443 {ALLOWED} /vm-secret '
             '"Authorization: Bearer $BEARER"; echo rc=$?; cat /proc/self/environ | tr "\\0" "\\n"',
             timeout=90)
    assert "rc=0" in res.stdout, res
    got = [e for e in world.events(m, srv="http") if e.get("target") == "/vm-secret"]
    assert got and any(f"Bearer {value}" in h for h in got[0]["headers"]), got
    assert value not in res.stdout and value not in res.stderr, res
    assert PLACEHOLDER.search(res.stdout), res


def test_a_client_that_trusts_only_the_real_ca_fails(svm, world):
    """With SSL_CERT_FILE naming the world's own CA (the real server's), verification fails:
    the guest's connection to a bound host was intercepted by the proxy, never tunnelled, and
    nothing reached the server."""
    ak, name, _ = svm
    ca = pathlib.Path(world.ca).read_text()
    m = world.mark()
    res = sh(ak, name, f"printf '%s\\n' '{ca}' > /tmp/world.pem; "
             f"SSL_CERT_FILE=/tmp/world.pem /tmp/tls_get {ALLOWED_IP} 443 {ALLOWED} /pinned; "
             "echo rc=$?", timeout=90)
    assert "rc=2" in res.stdout, res
    assert not [e for e in world.events(m, srv="http") if e.get("target") == "/pinned"]
