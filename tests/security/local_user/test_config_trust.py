# SPDX-License-Identifier: Apache-2.0
"""Another local user plants agentkernel.toml where root works (a shared, world-writable
directory), makes root's config writable for others, or approves a config in their own trust
store, hoping root's next `run`/`create` honours it.

What must hold: a config is honoured only when owned by the caller and not writable by group or
others (checked on the file actually read), and approved in the caller's own trust store; a
refusal says why and changes nothing."""
import os

import pytest

from conftest import needs_root

pytestmark = needs_root

SECRET = "root-secret-51c0"


@pytest.fixture
def shared(tmp_path):
    """A directory everyone can write (like a shared checkout or /tmp/project)."""
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "root-secret"
    p.write_text(SECRET + "\n")
    os.chmod(p, 0o600)
    return p


def plant(user, path, text):
    res = user.run(["sh", "-c", f"cat > '{path}' && chmod 644 '{path}'"], input=text.encode())
    assert res.rc == 0, res
    assert os.stat(path).st_uid == user.uid


def test_config_owned_by_another_user_is_refused(ak, shared, local_user, secret):
    """The other user writes agentkernel.toml into a directory root runs in."""
    plant(local_user, shared / "agentkernel.toml",
          f'[[files]]\nsource = "{secret.name}"\ndest = "/tmp/loot"\n')
    res = ak("run", "--no-network", "--", "cat", "/tmp/loot", cwd=shared)
    assert res.rc == 2 and "not owned by you" in res.stderr, res
    assert SECRET not in res.stdout
    assert ak.names() == []


def test_approving_another_users_config_is_refused(ak, shared, local_user):
    """`trust` will not approve a file someone else owns (it could change it afterwards, and the
    next approval prompt would be theirs to trigger)."""
    plant(local_user, shared / "agentkernel.toml", '[security]\nprofile = "permissive"\n')
    res = ak("trust", "--yes", shared / "agentkernel.toml")
    assert res.rc != 0 and "not owned by you" in res.stderr, res
    res = ak("trust", "--list")
    assert str(shared) not in res.stdout


def test_world_writable_config_is_refused_even_when_approved(ak, tmp_path):
    """Root's own approved config made writable by others (anyone could change it between the
    check and the next edit): refused until the mode is fixed."""
    d = tmp_path / "p"
    d.mkdir()
    p = d / "agentkernel.toml"
    p.write_text('[sandbox]\nname = "w"\n')
    os.chmod(p, 0o644)
    assert ak("trust", "--yes", p).rc == 0
    os.chmod(p, 0o666)
    res = ak("create", "--no-start", cwd=d)
    assert res.rc == 2 and "writable by" in res.stderr and "chmod go-w" in res.stderr, res
    os.chmod(p, 0o664)
    res = ak("create", "--no-start", cwd=d)
    assert res.rc == 2 and "writable by" in res.stderr, res
    assert ak.names() == []
    os.chmod(p, 0o644)
    assert ak("create", "--no-start", cwd=d).rc == 0


def test_replacing_roots_approved_config_in_a_shared_directory(ak, shared, local_user):
    """Root approved its config in a world-writable directory; the other user renames their own
    file over it: owner and bytes differ, refused."""
    p = shared / "agentkernel.toml"
    p.write_text('[sandbox]\nname = "r"\n')
    os.chmod(p, 0o644)
    assert ak("trust", "--yes", p).rc == 0
    res = local_user.run(["sh", "-c", f"printf '[sandbox]\\nname = \"r\"\\n' > '{shared}/.x' && "
                                      f"mv -f '{shared}/.x' '{p}'"])
    assert res.rc == 0, res
    res = ak("create", "--no-start", cwd=shared)
    assert res.rc == 2 and "not owned by you" in res.stderr, res
    assert ak.names() == []


def test_files_symlink_planted_next_to_roots_config(ak, shared, local_user, secret):
    """Root's approved config in a shared directory copies notes.txt; the other user replaces
    notes.txt with a symlink to a root-only file outside the directory."""
    (shared / "notes.txt").write_text("notes\n")
    p = shared / "agentkernel.toml"
    p.write_text('[security]\nnetwork = false\n[[files]]\nsource = "notes.txt"\n'
                 'dest = "/tmp/notes"\n')
    os.chmod(p, 0o644)
    assert ak("trust", "--yes", p).rc == 0
    assert ak("run", "--", "cat", "/tmp/notes", cwd=shared).stdout == "notes\n"
    res = local_user.run(["sh", "-c", f"rm -f '{shared}/notes.txt' && "
                                      f"ln -s '{secret}' '{shared}/notes.txt'"])
    assert res.rc == 0, res
    res = ak("run", "--", "cat", "/tmp/notes", cwd=shared)
    assert res.rc == 2 and "outside" in res.stderr, res
    assert SECRET not in res.stdout


def test_another_users_approval_does_not_count_for_root(ak, shared, local_user):
    """The other user approves their planted config in their own trust store: root's store is
    separate, so root still refuses it."""
    plant(local_user, shared / "agentkernel.toml", '[sandbox]\nname = "theirs"\n')
    mine = local_user.ak()
    res = mine("trust", "--yes", shared / "agentkernel.toml")
    assert res.rc == 0, res
    res = ak("create", "--no-start", cwd=shared)
    assert res.rc == 2 and "not owned by you" in res.stderr, res
    assert ak.names() == []


def test_trust_store_writable_by_others_is_not_believed(ak, tmp_path):
    """An approval store someone else could have written approves nothing."""
    d = tmp_path / "p"
    d.mkdir()
    p = d / "agentkernel.toml"
    p.write_text('[sandbox]\nname = "s"\n')
    os.chmod(p, 0o644)
    assert ak("trust", "--yes", p).rc == 0
    store = ak.data_dir / "trusted-configs.json"
    assert store.exists() and (store.stat().st_mode & 0o777) == 0o600
    os.chmod(store, 0o666)
    res = ak("create", "--no-start", cwd=d)
    assert res.rc == 2 and "trusted-configs.json" in res.stderr, res
    assert ak.names() == []
