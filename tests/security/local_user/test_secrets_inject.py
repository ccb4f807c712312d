# SPDX-License-Identifier: Apache-2.0
"""Secret injection, attacked by another local user (issue 15 part B).

`[network] ca_file` names extra trust anchors for the egress proxy's TLS connections to the bound
hosts: whoever chooses that file's contents can make the proxy hand the user's secrets to a server
of their own. Another user plants such a file (its own, or one it can still write) where the
user's config points: the start must refuse it, naming the file, before anything is registered,
and the proxy must never open a path itself.
"""
import os

import pytest

from conftest import ATTACKER_UID, needs_root
from secrets_inject import fake_env, fake_log, make_ca, stop_fake

pytestmark = needs_root


@pytest.fixture
def fak(ak, tmp_path):
    ak.env.update(fake_env(tmp_path))
    yield ak
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    stop_fake(ak)


def config(ak, tmp_path, ca_file):
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    cfg = proj / "agentkernel.toml"
    cfg.write_text(f'[sandbox]\nname = "victim"\n[network]\nca_file = "{ca_file}"\n')
    assert ak("trust", "--yes", cfg).rc == 0
    return cfg


@pytest.mark.parametrize("how", ["owned-by-attacker", "attacker-writable",
                                 "attacker-symlink"])
def test_ca_file_another_user_controls_is_refused(fak, local_user, tmp_path, how):
    """The attacker owns the CA file, may write it (group/other write bit), or put a symlink of
    its own there pointing at its CA: the user's start with a binding is refused naming the
    file, and the proxy got no registration (so no secret went anywhere)."""
    evil = make_ca(tmp_path / "evil", cn="attacker CA")
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777 | 0o1000)
    target = d / "ca.pem"
    if how == "owned-by-attacker":
        target.write_bytes(evil.read_bytes())
        os.chown(target, ATTACKER_UID, ATTACKER_UID)
        os.chmod(target, 0o644)
    elif how == "attacker-writable":
        target.write_bytes(evil.read_bytes())
        os.chmod(target, 0o666)
    else:
        os.chmod(tmp_path / "evil", 0o755)
        res = local_user.run(["ln", "-s", str(evil), str(target)])
        assert res.rc == 0, res
    assert fak("secret", "set", "K", input=b"victim-value").rc == 0
    cfg = config(fak, tmp_path, target)
    res = fak("create", "--config", cfg, "--network", "proxy", "-S", "K:api.example.com",
              cwd=cfg.parent)
    assert res.rc != 0 and str(target) in res.stderr and "ca_file" in res.stderr, res
    assert not [m for m in fake_log(fak) if m["op"] in ("register", "secret_value")]
    assert not fak.state_file("victim").exists()
    assert b"victim-value" not in res.out + res.err
