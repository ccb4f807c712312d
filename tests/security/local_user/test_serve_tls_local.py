# SPDX-License-Identifier: Apache-2.0
"""Another local user attacks root's `serve --tls` and its webhooks (issue 17 item 6): it plants
or shares the TLS key or the webhook signing key (a key it knows lets it impersonate the server
or forge events), or reads the event stream over loopback.

What must hold: a key file that another user owns, that others can read, or that is a link, is
refused and serve does not start; the generated webhook key is root's alone (0600); the
other user gets 401 on /events and the host routes, over TLS too."""
import os
import subprocess

import pytest

from conftest import AK, ATTACKER_UID, needs_root
from serve_client import Server, free_port, https_request, make_cert

pytestmark = needs_root

# The attacker's HTTPS client: argv = port, cafile, path.
CLIENT = r"""
import http.client, ssl, sys
port, cafile, path = sys.argv[1:4]
c = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=20,
                                context=ssl.create_default_context(cafile=cafile))
c.request("GET", path)
r = c.getresponse()
print(r.status, r.read().decode())
"""


def start(ak, *args):
    return subprocess.run([AK, "serve", "--port", str(free_port()), *args], env=ak.env,
                          capture_output=True, timeout=15)


def test_tls_key_planted_by_another_user_refused(ak, local_user, tmp_path):
    """A key file owned by the attacker (it could have kept a copy) is refused, even at 0600."""
    cert, key = make_cert(tmp_path)
    os.chown(key, ATTACKER_UID, ATTACKER_UID)
    r = start(ak, "--tls-cert", str(cert), "--tls-key", str(key))
    assert r.returncode == 2 and b"uid" in r.stderr, r


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_tls_key_others_can_read_or_write_refused(ak, tmp_path, mode):
    """A key with any group or other permission bit may be known (or replaced): refused."""
    cert, key = make_cert(tmp_path)
    key.chmod(mode)
    r = start(ak, "--tls-cert", str(cert), "--tls-key", str(key))
    assert r.returncode == 2 and b"other users" in r.stderr, r


def test_tls_key_link_to_attacker_file_refused(ak, local_user, tmp_path):
    """A link (the attacker's, or to the attacker's file) is not followed."""
    cert, key = make_cert(tmp_path)
    theirs = local_user.home / "k.pem"
    theirs.write_bytes(key.read_bytes())
    os.chown(theirs, ATTACKER_UID, ATTACKER_UID)
    theirs.chmod(0o600)
    link = tmp_path / "link.pem"
    link.symlink_to(theirs)
    r = start(ak, "--tls-cert", str(cert), "--tls-key", str(link))
    assert r.returncode == 2, r


def test_webhook_secret_of_another_user_refused(ak, local_user, tmp_path):
    """A signing key the attacker owns would let it forge events the receiver trusts."""
    f = local_user.home / "hook.key"
    f.write_text("attacker-knows-this\n")
    os.chown(f, ATTACKER_UID, ATTACKER_UID)
    f.chmod(0o600)
    r = start(ak, "--webhook-url", "http://127.0.0.1:9/", "--webhook-secret-file", str(f))
    assert r.returncode == 2 and b"uid" in r.stderr, r


def test_generated_webhook_secret_is_private(ak, local_user):
    s = Server(ak, "--webhook-url", "http://127.0.0.1:9/")
    try:
        key = ak.data_dir / "webhook-secret"
        assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_uid == os.geteuid()
        r = local_user.run(["cat", str(key)])
        assert r.rc != 0
    finally:
        s.stop()


def test_other_user_gets_401_on_events_over_tls(ak, local_user, tmp_path):
    """Over HTTPS the gate is the same: another uid without the key is 401 on the event stream
    and the host routes."""
    cert, key = make_cert(tmp_path)
    cert.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    s = Server(ak, "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    try:
        import time
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if https_request(s.port, cert, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        for path in ("/events", "/doctor", "/images", "/agents", "/backends", "/stats"):
            res = local_user.python(CLIENT, str(s.port), str(cert), path)
            assert res.rc == 0, res
            status, _, text = res.stdout.partition(" ")
            assert int(status) == 401, (path, text)
    finally:
        s.stop()


def test_self_signed_pair_planted_by_another_user_refused(ak, local_user, tmp_path):
    """`serve --tls` reuses the pair it keeps in the data directory: a certificate or key there
    that another user owns (its key: it could impersonate the server), or a key that is a link,
    is refused, never adopted."""
    cert, key = make_cert(tmp_path)
    ak.data_dir.mkdir(parents=True, exist_ok=True)
    dc, dk = ak.data_dir / "tls-cert.pem", ak.data_dir / "tls-key.pem"
    dc.write_bytes(cert.read_bytes())
    dk.write_bytes(key.read_bytes())
    dk.chmod(0o600)
    os.chown(dk, ATTACKER_UID, ATTACKER_UID)
    r = start(ak, "--tls")
    assert r.returncode == 2 and b"uid" in r.stderr, r
    os.chown(dk, 0, 0)
    os.chown(dc, ATTACKER_UID, ATTACKER_UID)
    r = start(ak, "--tls")
    assert r.returncode == 2, r
    os.chown(dc, 0, 0)
    dk.unlink()
    dk.symlink_to(key)
    r = start(ak, "--tls")
    assert r.returncode == 2 and b"link" in r.stderr, r


def tls_config(ak, d, cert, key):
    f = d / "agentkernel.toml"
    f.write_text(f'[api.tls]\nenabled = true\ncert = "{cert}"\nkey = "{key}"\n')
    os.chmod(f, 0o644)
    assert ak("trust", "--yes", f).rc == 0
    return f


def test_config_tls_key_of_another_user_refused(ak, local_user, tmp_path):
    """[api.tls] key is checked as --tls-key is: a key the attacker owns (it keeps a copy and
    impersonates the server) is refused and serve does not start (before: [api.tls] was
    ignored with a warning, and the server came up in plain HTTP)."""
    cert, key = make_cert(tmp_path)
    os.chown(key, ATTACKER_UID, ATTACKER_UID)
    r = start(ak, "-c", str(tls_config(ak, tmp_path, cert, key)))
    assert r.returncode == 2 and b"[api.tls] key" in r.stderr and b"uid" in r.stderr, r


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_config_tls_key_readable_by_others_refused(ak, tmp_path, mode):
    cert, key = make_cert(tmp_path)
    key.chmod(mode)
    r = start(ak, "-c", str(tls_config(ak, tmp_path, cert, key)))
    assert r.returncode == 2 and b"other users" in r.stderr, r


def test_config_tls_key_link_refused(ak, local_user, tmp_path):
    """A key path in the config that is a link to the attacker's file is not followed."""
    cert, key = make_cert(tmp_path)
    theirs = local_user.home / "k.pem"
    theirs.write_bytes(key.read_bytes())
    os.chown(theirs, ATTACKER_UID, ATTACKER_UID)
    theirs.chmod(0o600)
    link = tmp_path / "link.pem"
    link.symlink_to(theirs)
    r = start(ak, "-c", str(tls_config(ak, tmp_path, cert, link)))
    assert r.returncode == 2, r


def test_untrusted_config_tls_not_used(ak, local_user, tmp_path):
    """A config the attacker wrote (not approved) cannot choose the server's TLS identity."""
    cert, key = make_cert(tmp_path)
    d = local_user.home / "proj"
    d.mkdir()
    f = d / "agentkernel.toml"
    f.write_text(f'[api.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    os.chown(d, ATTACKER_UID, ATTACKER_UID)
    os.chown(f, ATTACKER_UID, ATTACKER_UID)
    r = start(ak, "-c", str(f))
    assert r.returncode == 2, r
