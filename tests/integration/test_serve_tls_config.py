# SPDX-License-Identifier: Apache-2.0
"""`[api.tls]` of agentkernel.toml (upstream's enabled, cert, key, require_tls): what `serve
--tls --tls-cert --tls-key --require-tls` does, the flags winning over the file."""
import os
import subprocess
import time

from conftest import AK, needs_root
from serve_client import Server, free_port, https_request, make_cert

pytestmark = needs_root


def config(ak, d, body):
    f = d / "agentkernel.toml"
    f.write_text(body)
    os.chmod(f, 0o644)
    assert ak("trust", "--yes", f).rc == 0
    return f


def wait_https(s, cert):
    deadline = time.time() + 10
    while time.time() < deadline:
        if s.proc.poll() is not None:
            raise AssertionError(s.stop())
        try:
            if https_request(s.port, cert, "GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("no HTTPS")


def start(ak, *args):
    return subprocess.run([AK, "serve", "--port", str(free_port()), *args], env=ak.env,
                          capture_output=True, timeout=15)


def test_api_tls_from_config(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    f = config(ak, tmp_path, f'[api.tls]\nenabled = true\ncert = "{cert}"\nkey = "{key}"\n'
                             'require_tls = true\n')
    s = Server(ak, "-c", str(f), wait=False)
    try:
        wait_https(s, cert)
        k = (ak.data_dir / "api-key").read_text().strip()
        st, body = https_request(s.port, cert, "POST", "/run", k, {"command": ["echo", "c"]})
        assert (st, body["data"]["output"]) == (200, "c\n")
    finally:
        s.stop()


def test_cert_and_key_alone_mean_tls_and_enabled_false_means_plain(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    f = config(ak, tmp_path, f'[api.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    s = Server(ak, "-c", str(f), wait=False)
    try:
        wait_https(s, cert)
    finally:
        s.stop()
    f = config(ak, tmp_path, f'[api.tls]\nenabled = false\ncert = "{cert}"\nkey = "{key}"\n')
    s = Server(ak, "-c", str(f))  # plain HTTP: Server's own check
    s.stop()


def test_flags_win_over_config(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    other = tmp_path / "o"
    other.mkdir()
    cert2, key2 = make_cert(other, "localhost")
    f = config(ak, tmp_path, f'[api.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    s = Server(ak, "-c", str(f), "--tls-cert", str(cert2), "--tls-key", str(key2), wait=False)
    try:
        wait_https(s, cert2)  # trusts only the flags' certificate
    finally:
        s.stop()


def test_config_errors_are_clear(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    f = config(ak, tmp_path, f'[api.tls]\ncert = "{cert}"\n')
    r = start(ak, "-c", str(f))
    assert r.returncode == 2 and b"[api.tls] cert and key go together" in r.stderr, r
    # a file that does not load is not even approved
    for body, word in (('[api.tls]\ncert = "cert.pem"\nkey = "key.pem"\n', "absolute path"),
                       ('[api.tls]\nenabled = "yes"\n', "enabled")):
        (tmp_path / "agentkernel.toml").write_text(body)
        res = ak("trust", "--yes", tmp_path / "agentkernel.toml")
        assert res.rc != 0 and "[api.tls]" in res.stderr and word in res.stderr, res
    f = config(ak, tmp_path, '[api.tls]\nrequire_tls = true\n')
    r = start(ak, "-c", str(f))
    assert r.returncode == 2 and b"--require-tls" in r.stderr, r
