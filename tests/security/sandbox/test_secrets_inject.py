# SPDX-License-Identifier: Apache-2.0
"""Secret injection, attacked from inside the sandbox (issue 15 part B).

The sandbox trusts a CA the egress proxy made for it: whoever holds that CA's key can read every
intercepted request (the values in them). The key must exist only in the proxy's memory: never in
a file the sandbox can read (its trust files hold the certificate only), never on the host's disk
where agentkernel keeps its things; and the proxy's control socket, where values travel, must not
be reachable from inside.
"""
import json
import os
import pathlib

import pytest

from conftest import needs_root
from secrets_inject import injecting_proxy, proxy_dir

pytestmark = [needs_root,
              pytest.mark.skipif(not injecting_proxy(), reason="agentkernel-proxy of this build "
                                 "does not take secrets (issue 15 part B, branch mitm)")]

TRUST = "/run/agentkernel/trust"


@pytest.fixture
def box(ak):
    assert ak("secret", "set", "K", input=b"sk-sandbox-attack-value").rc == 0
    res = ak("create", "box", "--no-config", "--network", "proxy", "-S", "K:api.example.com")
    assert res.rc == 0, res
    yield "box"
    ak("remove", "box", timeout=60)


def test_trust_files_hold_a_certificate_never_a_key(ak, box):
    """The sandbox reads its trust files: the CA alone is one certificate (CA:TRUE, made for this
    sandbox), and neither file holds a private key."""
    res = ak("exec", box, "--", "sh", "-c",
             f"cat {TRUST}/agentkernel-proxy.crt {TRUST}/agentkernel-combined.crt")
    assert res.rc == 0 and b"PRIVATE KEY" not in res.out, res
    res = ak("exec", box, "--", "sh", "-c",
             f"openssl x509 -in {TRUST}/agentkernel-proxy.crt -noout -subject -ext "
             "basicConstraints")
    assert res.rc == 0 and "OU = box" in res.stdout and "CA:TRUE" in res.stdout, res


def test_no_ca_key_on_the_hosts_disk(ak, box):
    """Nothing agentkernel or its proxy wrote on the host (the data directory, the proxy's
    runtime directory) holds a private key."""
    for root in (ak.data_dir, proxy_dir(ak)):
        for p in pathlib.Path(root).rglob("*"):
            try:
                if p.is_file() and not p.is_symlink():
                    assert b"PRIVATE KEY" not in p.read_bytes(), p
            except PermissionError:
                pass


def test_control_socket_not_reachable_inside(ak, box):
    """The proxy's control socket (values travel there) is on the host's /run: inside, the
    sandbox's own /run/agentkernel has only what it was given, and no path reaches the socket."""
    d = proxy_dir(ak)
    res = ak("exec", box, "--", "sh", "-c",
             f"ls -A /run/agentkernel; ls {d}/control 2>&1 || echo absent")
    assert res.rc == 0, res
    assert set(res.stdout.split("\n")[0].split()) <= {"trust", "secrets"}, res
    assert "absent" in res.stdout, res
    pid = json.loads((ak.data_dir / "run" / box / "runtime.json").read_text())["pid"]
    assert not os.path.exists(f"/proc/{pid}/root{d}/control")
