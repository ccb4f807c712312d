# SPDX-License-Identifier: Apache-2.0
"""Another local user (or a sandbox that once wrote a loose data directory) plants templates
where agentkernel reads the user's own: <data dir>/templates. A template is configuration — an
image, a profile, a network policy, secrets bindings — so a planted one would choose a victim's
sandbox's security.

What must hold: the templates directory is used only when it is the caller's own, private
directory (never through a link, never another user's); a template file only when it is a
regular file of the caller's, not writable by others, at most 64 KiB, never reached through a
link (a link planted at a template's name is replaced by `save`, its target untouched); a FIFO
never blocks; names never leave the directory; a template cannot copy the caller's files in
([[files]] refused)."""
import json
import os
import stat
import subprocess

import pytest

from conftest import ATTACKER_UID, needs_root

pytestmark = needs_root

EVIL = '[sandbox]\nbase_image = "host"\n[security]\nprofile = "permissive"\n'


def tdir(ak):
    d = ak.data_dir / "templates"
    ak("template", "list")  # the data directory exists
    return d


def make_dir(ak):
    d = tdir(ak)
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def refuses_evil(ak, name="evil"):
    res = ak("create", "v", "--template", name, "--no-start")
    assert res.rc != 0, res
    assert ak.list() == []
    return res


def test_foreign_owned_templates_dir_is_refused(ak, local_user):
    """The templates directory belongs to another user who put a template in it."""
    d = make_dir(ak)
    (d / "evil.toml").write_text(EVIL)
    os.chown(d / "evil.toml", ATTACKER_UID, ATTACKER_UID)
    os.chown(d, ATTACKER_UID, ATTACKER_UID)
    refuses_evil(ak)
    assert ak("template", "list").rc != 0
    res = ak("template", "add", "/dev/null", "--name", "x")
    assert res.rc != 0 and not (d / "x.toml").exists()


def test_templates_dir_as_a_symlink_is_not_followed(ak, local_user, tmp_path):
    """templates is a link to a directory the attacker owns and fills."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "evil.toml").write_text(EVIL)
    os.chown(theirs, ATTACKER_UID, ATTACKER_UID)
    d = tdir(ak)
    os.symlink(theirs, d)
    refuses_evil(ak)
    mine = tmp_path / "mine.toml"
    mine.write_text('[sandbox]\nbase_image = "host"\n')
    res = ak("template", "add", mine, "--name", "x")
    assert res.rc != 0, res
    assert sorted(os.listdir(theirs)) == ["evil.toml"]


def test_planted_template_link_is_refused_and_save_replaces_it(ak, local_user, tmp_path):
    """A template name is a symlink to the attacker's file: not read; `template add` of that
    name replaces the link and leaves the attacker's file alone."""
    theirs = tmp_path / "theirs.toml"
    theirs.write_text(EVIL)
    os.chown(theirs, ATTACKER_UID, ATTACKER_UID)
    d = make_dir(ak)
    os.symlink(theirs, d / "evil.toml")
    res = refuses_evil(ak)
    assert "symbolic link" in res.stderr, res
    res = ak("template", "list")
    assert res.rc == 0 and "evil" not in res.stdout and "skipped" in res.stderr, res
    mine = tmp_path / "mine.toml"
    mine.write_text('[sandbox]\nbase_image = "host"\n')
    assert ak("template", "add", mine, "--name", "evil").rc == 0
    assert not (d / "evil.toml").is_symlink()
    assert theirs.read_text() == EVIL


@pytest.mark.parametrize("how", ["foreign", "writable"])
def test_foreign_or_writable_template_file_is_refused(ak, local_user, how):
    d = make_dir(ak)
    f = d / "evil.toml"
    f.write_text(EVIL)
    if how == "foreign":
        os.chown(f, ATTACKER_UID, ATTACKER_UID)
    else:
        os.chmod(f, 0o666)
    refuses_evil(ak)


def test_huge_template_is_refused_without_reading_it(ak):
    """A 1 GiB (sparse) template: refused at the bound, quickly."""
    d = make_dir(ak)
    with open(d / "big.toml", "wb") as f:
        f.truncate(1 << 30)
    os.chmod(d / "big.toml", 0o600)
    res = ak("create", "v", "--template", "big", "--no-start", timeout=20)
    assert res.rc != 0 and "larger than" in res.stderr, res
    res = ak("template", "list", timeout=20)
    assert res.rc == 0 and "big" not in res.stdout.split()


def test_fifo_template_does_not_block(ak, tmp_path):
    d = make_dir(ak)
    os.mkfifo(d / "fifo.toml", 0o600)
    res = ak("create", "v", "--template", "fifo", "--no-start", timeout=20)
    assert res.rc != 0, res
    assert ak("template", "list", timeout=20).rc == 0
    f = tmp_path / "f.toml"
    os.mkfifo(f)
    res = ak("template", "add", f, timeout=20)
    assert res.rc != 0 and "regular file" in res.stderr


@pytest.mark.parametrize("name", ["../escape", "..", ".hidden", "a/b", "-x", "x.toml",
                                  "a" * 65, "", "a b", "a\nb"])
def test_names_never_leave_the_directory(ak, tmp_path, name):
    f = tmp_path / "t.toml"
    f.write_text('[sandbox]\nbase_image = "host"\n')
    assert ak("template", "add", f, "--name", name).rc != 0
    assert ak("template", "remove", name).rc != 0
    assert not (ak.data_dir / "escape.toml").exists()
    assert not (ak.data_dir / "escape").exists()


def test_template_cannot_copy_the_callers_files(ak, tmp_path):
    """[[files]] in a template would copy files of wherever the victim runs `create` into the
    sandbox: refused at add and at use."""
    f = tmp_path / "t.toml"
    f.write_text('[[files]]\nsource = "secret.txt"\ndest = "/tmp/s"\n')
    res = ak("template", "add", f, "--name", "files")
    assert res.rc != 0 and "[[files]]" in res.stderr, res
    d = make_dir(ak)
    (d / "files.toml").write_text(f.read_text())
    os.chmod(d / "files.toml", 0o600)
    res = refuses_evil(ak, "files")
    assert "[[files]]" in res.stderr
