# SPDX-License-Identifier: Apache-2.0
"""What the tests of secret injection (issue 15 part B, docs/secrets.md) share.

A sandbox with secret bindings needs proxy mode, and its start hands the grants and the values to
the egress proxy, which answers with the CA the sandbox then trusts. Tests that judge only what
agentkernel itself puts into the sandbox (the canary hunts, the trust files, the registration's
contents) may run against tests/fake_secrets_proxy.py, a stand-in that speaks the control
protocol and records what it got (values as SHA-256 only); the end-to-end tests need the real
agentkernel-proxy with interception (`injecting_proxy()`).
"""
import json
import os
import pathlib
import signal
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
FAKE = HERE / "fake_secrets_proxy.py"
REAL = pathlib.Path(os.environ.get("AGENTKERNEL_PROXY_BIN",
                                   str(ROOT / "build" / "src" / "agentkernel-proxy")))


def make_ca(d, cn="agentkernel test proxy CA"):
    """A throwaway CA certificate (and its key) in d; returns the certificate's path."""
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d / "ca.key", "-out",
                    d / "ca.pem", "-days", "2", "-subj", "/CN=" + cn], check=True,
                   capture_output=True)
    os.chmod(d / "ca.pem", 0o644)
    return d / "ca.pem"


def injecting_proxy():
    """Whether the built agentkernel-proxy takes secrets (issue 15 part B, branch mitm): its
    binary knows the control protocol's `secret_value`."""
    try:
        return b"secret_value" in REAL.read_bytes()
    except OSError:
        return False


def intercepting_proxy():
    """Whether the built agentkernel-proxy also intercepts bound hosts (the rest of branch mitm):
    its binary knows the audit event of a misdirected placeholder."""
    try:
        return b"secret_misdirected" in REAL.read_bytes()
    except OSError:
        return False


def fake_env(tmp):
    """The environment that makes agentkernel start the stand-in proxy (its CA made in tmp)."""
    ca = make_ca(pathlib.Path(tmp) / "fake-proxy-ca")
    return {"AGENTKERNEL_PROXY": str(FAKE), "FAKE_PROXY_CA": str(ca)}


def proxy_dir(ak):
    from egress_world import proxy_dir as pd
    return pd(ak)


def fake_log(ak):
    """What the stand-in proxy of ak's data directory was sent, one dict a message."""
    p = proxy_dir(ak) / "fake.jsonl"
    if not p.exists():
        return []
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]


def stop_fake(ak):
    """Ends the stand-in proxy this test's agentkernel started (by the pid it wrote)."""
    d = proxy_dir(ak)
    try:
        pid = int((d / "fake.pid").read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
