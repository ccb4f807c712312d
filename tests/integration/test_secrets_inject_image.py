# SPDX-License-Identifier: Apache-2.0
"""Trust in the proxy's CA inside an image sandbox (native backend, an OCI image built here from
busybox-static and pulled from a registry on loopback; issue 15 part B, docs/secrets.md).

The image is the sandbox's own: its system bundle is appended to, the CA goes where
update-ca-certificates looks and next to the system bundle. The image's content is the attacker's
(whoever made the image, or the sandbox itself for roots that persist): a system "bundle" that
also holds a private key, and /usr/local/share/ca-certificates planted as a symlink to another
directory. Only certificates are copied, and no write follows the link; the files the variables
name (/run/agentkernel/trust) are written whatever the image holds.
"""
import pathlib

import pytest

import oci
from conftest import STATIC_AGENT, needs_root
from secrets_inject import fake_env, fake_log, make_ca, stop_fake

pytestmark = [needs_root,
              pytest.mark.skipif(not oci.tools_present(),
                                 reason="needs umoci, skopeo, docker-registry, zstd, "
                                 "busybox-static"),
              pytest.mark.skipif(STATIC_AGENT is None, reason="image roots need a static agent")]

RUN_TRUST = "/run/agentkernel/trust"


class World:
    def __init__(self, tmp):
        self.reg = oci.Registry(tmp / "registry")
        self.layout = oci.Layout(tmp / "layout")
        oci.build_base(self.layout, "base", tmp / "bundles")
        sys_ca = make_ca(tmp / "image-ca", cn="image system CA")
        self.sys_cert = sys_ca.read_text()
        key = (tmp / "image-ca" / "ca.key").read_text()
        bundle = ("# the image's bundle\n" + self.sys_cert + "junk between\n" + key)
        oci.run("umoci", "tag", "--image", f"{self.layout.path}:base", "trust")
        self.layout.add_tar_layer("trust", oci.tar_of([
            ("etc/ssl", "dir", None), ("etc/ssl/certs", "dir", None),
            ("etc/ssl/certs/ca-certificates.crt", "file", bundle.encode()),
            ("usr", "dir", None), ("usr/local", "dir", None), ("usr/local/share", "dir", None),
            ("planted", "dir", None),
            ("usr/local/share/ca-certificates", "symlink", "/planted"),
        ]))
        self.image = self.reg.push(self.layout.path, "trust", "test/trust:1")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("oci-trust"))
    yield w
    w.reg.stop()


@pytest.fixture
def fak(ak, tmp_path, world):
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    world.reg.configure(ak.env)
    ak.env.update(fake_env(tmp_path))
    yield ak
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    stop_fake(ak)


def test_image_trust_files_bundle_and_planted_link(fak, world):
    """In an image sandbox with a binding: /run/agentkernel/trust holds the CA and the image's
    certificates plus the CA (the variables name them); /etc/ssl/certs/agentkernel-combined.crt
    and the image's own bundle hold the same; the private key in the image's "bundle" is in no
    file we wrote; the planted /usr/local/share/ca-certificates link is not followed (a note
    says the CA is not there), /planted stays empty."""
    ca = pathlib.Path(fak.env["FAKE_PROXY_CA"]).read_text().strip()
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    res = fak("create", "img", "--no-config", "--network", "proxy", "-i", world.image,
              "-S", "K:api.example.com", timeout=300)
    assert res.rc == 0, res
    assert "/usr/local/share/ca-certificates/agentkernel-proxy.crt" in res.stderr, res

    def cat(path):
        r = fak("exec", "img", "--", "cat", path)
        assert r.rc == 0, (path, r)
        return r.stdout

    env = dict(ln.split("=", 1) for ln in fak("exec", "img", "--", "env").stdout.splitlines()
               if "=" in ln)
    assert env["SSL_CERT_FILE"] == f"{RUN_TRUST}/agentkernel-combined.crt"
    assert env["NODE_EXTRA_CA_CERTS"] == f"{RUN_TRUST}/agentkernel-proxy.crt"
    assert cat(f"{RUN_TRUST}/agentkernel-proxy.crt").strip() == ca
    for path in (f"{RUN_TRUST}/agentkernel-combined.crt", "/etc/ssl/certs/agentkernel-combined.crt",
                 "/etc/ssl/certs/ca-certificates.crt"):
        text = cat(path)
        assert world.sys_cert.strip() in text and ca in text, (path, text)
        assert "PRIVATE KEY" not in text and "junk" not in text, (path, text)
        assert text.count("BEGIN CERTIFICATE") == 2, (path, text)
    r = fak("exec", "img", "--", "ls", "-A", "/planted")
    assert r.rc == 0 and r.stdout.strip() == "", r
    r = fak("exec", "img", "--", "readlink", "/usr/local/share/ca-certificates")
    assert r.stdout.strip() == "/planted", r
    # a second start: the bundle holds the new CA once, the old one is gone
    assert fak("stop", "img").rc == 0
    new = make_ca(pathlib.Path(fak.env["FAKE_PROXY_CA"]).parent.parent / "ca2").read_text()
    pathlib.Path(fak.env["FAKE_PROXY_CA"]).write_text(new)
    assert fak("start", "img", timeout=300).rc == 0
    text = cat("/etc/ssl/certs/ca-certificates.crt")
    assert new.strip() in text and ca not in text and text.count("BEGIN CERTIFICATE") == 2, text
    assert [m for m in fake_log(fak) if m["op"] == "register"]
