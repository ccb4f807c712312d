# SPDX-License-Identifier: Apache-2.0
"""Another local user against the files root's `cp` and `attach --record` write on the host.

Root copies a file out of a sandbox into a directory the other user can write (the user's home,
a sticky /tmp-like directory), or records a session there, or copies a file the other user named
into a sandbox. The attacker plants what it can guess beforehand: a symlink at DEST, at
DEST.ak-partial (the old temporary name) and at other likely names, its own regular file under
those names, a symlink to a directory, a FIFO as a source. What must hold: root never writes
through a symlink another user owns nor into a file another user created, never changes the
mode of anything but its own new file, never follows another user's symlink to read a source,
and never hangs on a planted FIFO. The copy is a new file owned by root, with the umask applied.
"""
import os
import pathlib
import stat
import subprocess

import pytest

from conftest import AK, needs_root

pytestmark = needs_root

SANDBOX_DATA = b"data from the sandbox\n"
ORIGINAL = b"root's secret, mode 0600\n"


@pytest.fixture
def box(ak, sandbox):
    res = ak("exec", sandbox, "--", "sh", "-c",
             f"printf '{SANDBOX_DATA.decode().strip()}\\n' > /tmp/secret && chmod 0777 /tmp/secret")
    assert res.rc == 0, res
    return sandbox


@pytest.fixture
def victim(tmp_path):
    """A root-only file the attacker wants overwritten (or read), in a root-only directory."""
    d = tmp_path / "victim"
    d.mkdir(mode=0o700)
    f = d / "shadow"
    f.write_bytes(ORIGINAL)
    os.chmod(f, 0o600)
    return f


@pytest.fixture
def sticky(tmp_path):
    """A /tmp-like directory: world-writable and sticky."""
    d = tmp_path / "sticky"
    d.mkdir()
    os.chmod(d, 0o1777)
    return d


def assert_victim_intact(victim):
    st = os.lstat(victim)
    assert victim.read_bytes() == ORIGINAL, "root wrote through the attacker's link"
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, oct(st.st_mode)
    assert sorted(os.listdir(victim.parent)) == ["shadow"], os.listdir(victim.parent)


def assert_roots_copy(path):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode), f"{path} is not a regular file"
    assert st.st_uid == 0, f"{path} is owned by uid {st.st_uid}, not by root"
    assert path.read_bytes() == SANDBOX_DATA
    assert stat.S_IMODE(st.st_mode) & 0o7000 == 0


def plant(user, *argv):
    res = user.run(list(argv))
    assert res.rc == 0, res


def where(local_user, sticky, kind):
    return local_user.home if kind == "home" else sticky


@pytest.mark.parametrize("kind", ["home", "sticky"])
def test_symlink_at_old_partial_name(ak, box, local_user, victim, sticky, kind):
    """DEST.ak-partial -> root's 0600 file: the old cp opened it O_TRUNC and fchmod'ed it to the
    sandbox's 0777."""
    d = where(local_user, sticky, kind)
    plant(local_user, "ln", "-s", victim, d / "out.ak-partial")
    res = ak("cp", f"{box}:/tmp/secret", d / "out")
    assert res.rc == 0, res
    assert_victim_intact(victim)
    assert_roots_copy(d / "out")


@pytest.mark.parametrize("kind", ["home", "sticky"])
def test_symlink_at_dest_is_replaced_not_followed(ak, box, local_user, victim, sticky, kind):
    """DEST itself -> root's file: replaced by the copy; the victim is untouched."""
    d = where(local_user, sticky, kind)
    plant(local_user, "ln", "-s", victim, d / "out")
    res = ak("cp", f"{box}:/tmp/secret", d / "out")
    if kind == "sticky" and res.rc != 0:
        # root may not be allowed to replace another user's entry in a sticky directory on a
        # hardened kernel: then the copy fails, but still nothing is written through
        assert os.path.islink(d / "out")
    else:
        assert res.rc == 0, res
        assert_roots_copy(d / "out")
    assert_victim_intact(victim)


@pytest.mark.parametrize("kind", ["home", "sticky"])
def test_symlink_to_a_directory_at_dest(ak, box, local_user, victim, sticky, kind):
    """DEST -> root's private directory: the old cp saw a directory and wrote DEST/secret there
    (a file of the sandbox's choosing in root's directory)."""
    d = where(local_user, sticky, kind)
    plant(local_user, "ln", "-s", victim.parent, d / "outdir")
    ak("cp", f"{box}:/tmp/secret", d / "outdir")
    assert_victim_intact(victim)


def test_symlink_to_a_directory_with_trailing_slash(ak, box, local_user, victim):
    """DEST/ (the caller insists on a directory) that is another user's symlink: refused."""
    d = local_user.home
    plant(local_user, "ln", "-s", victim.parent, d / "outdir")
    res = ak("cp", f"{box}:/tmp/secret", f"{d / 'outdir'}/")
    assert res.rc != 0 and "not followed" in res.stderr, res
    assert_victim_intact(victim)


@pytest.mark.parametrize("kind", ["home", "sticky"])
def test_symlink_in_the_middle_of_dest(ak, box, local_user, victim, sticky, kind):
    """DEST is d/sub/shadow where d/sub is the attacker's symlink to root's private directory:
    the old cp renamed its copy over root's shadow file. No symlink of another user is followed
    anywhere on DEST's way."""
    d = where(local_user, sticky, kind)
    plant(local_user, "ln", "-s", victim.parent, d / "sub")
    res = ak("cp", f"{box}:/tmp/secret", d / "sub" / "shadow")
    assert res.rc != 0 and "not followed" in res.stderr, res
    assert_victim_intact(victim)


def test_roots_own_symlink_to_a_directory_is_followed(ak, box, tmp_path):
    """Usability: a symlink root made (nobody else can) to a directory still means 'into'."""
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "alias")
    assert ak("cp", f"{box}:/tmp/secret", tmp_path / "alias").rc == 0
    assert_roots_copy(real / "secret")


@pytest.mark.parametrize("kind", ["home", "sticky"])
def test_attackers_own_file_at_partial_name(ak, box, local_user, sticky, kind):
    """The attacker creates DEST.ak-partial as its own 0666 file and keeps it open: the old cp
    wrote the sandbox's data into that file and renamed it, so DEST stayed the attacker's (who
    can then change what root copied)."""
    d = where(local_user, sticky, kind)
    plant(local_user, "sh", "-c", f"printf mine > '{d}/out.ak-partial'; chmod 666 "
                                  f"'{d}/out.ak-partial'")
    ino = os.lstat(d / "out.ak-partial").st_ino
    res = ak("cp", f"{box}:/tmp/secret", d / "out")
    assert res.rc == 0, res
    assert_roots_copy(d / "out")
    assert os.lstat(d / "out").st_ino != ino
    assert (d / "out.ak-partial").read_bytes() == b"mine"


def test_every_guessable_temporary_name(ak, box, local_user, victim):
    """Symlinks to the victim at every name a cp implementation might use for its temporary
    file: none is used (the temporary file has no name, or a random one made O_EXCL)."""
    d = local_user.home
    names = ["out.ak-partial", ".out.ak-partial", "out.tmp", ".out.tmp", "out~", ".out",
             "out.part", ".out.swp"] + [f".out.ak-{i:016x}" for i in range(8)]
    for n in names:
        plant(local_user, "ln", "-s", victim, d / n)
    res = ak("cp", f"{box}:/tmp/secret", d / "out")
    assert res.rc == 0, res
    assert_victim_intact(victim)
    assert_roots_copy(d / "out")
    for n in names:
        assert os.path.islink(d / n), n
    assert sorted(os.listdir(d)) == sorted(names + ["out"])


def test_umask_applies_and_nothing_else_changes_mode(ak, box, local_user, victim):
    """cp under umask 077 makes a 0700 file (the sandbox said 0777); root's other files keep
    their modes."""
    d = local_user.home
    plant(local_user, "ln", "-s", victim, d / "out.ak-partial")
    res = subprocess.run([AK, "cp", f"{box}:/tmp/secret", str(d / "out")], env=ak.env,
                         capture_output=True, timeout=60, preexec_fn=lambda: os.umask(0o077))
    assert res.returncode == 0, res
    assert stat.S_IMODE(os.lstat(d / "out").st_mode) == 0o700
    assert_victim_intact(victim)


# ---- --record ----

def test_record_through_attackers_symlink(ak, box, local_user, victim):
    """attach --record FILE where FILE is the attacker's symlink to root's file: the old code
    fopen()ed it and truncated the victim."""
    d = local_user.home
    plant(local_user, "ln", "-s", victim, d / "rec.cast")
    res = ak("attach", "--record", d / "rec.cast", box, "--", "echo", "recorded", input=b"")
    assert res.rc == 0, res
    assert_victim_intact(victim)
    st = os.lstat(d / "rec.cast")
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert b'"version": 2' in (d / "rec.cast").read_bytes()


def test_record_into_attackers_file(ak, box, local_user):
    """FILE is the attacker's own regular file: the recording is a new file of root's, not
    written into the attacker's (which it could then edit)."""
    d = local_user.home
    plant(local_user, "sh", "-c", f"printf mine > '{d}/rec.cast'; chmod 666 '{d}/rec.cast'")
    ino = os.lstat(d / "rec.cast").st_ino
    res = ak("attach", "--record", d / "rec.cast", box, "--", "echo", "recorded", input=b"")
    assert res.rc == 0, res
    st = os.lstat(d / "rec.cast")
    assert st.st_uid == 0 and st.st_ino != ino
    assert b"recorded" in (d / "rec.cast").read_bytes()


# ---- cp, host -> sandbox: the source is the attacker's ----

def test_source_symlink_of_another_user_is_not_followed(ak, box, local_user, victim):
    """root runs `cp ~user/report.txt NAME:/tmp/r`; report.txt is the user's symlink to root's
    secret: the old cp copied the secret into the sandbox."""
    d = local_user.home
    plant(local_user, "ln", "-s", victim, d / "report.txt")
    res = ak("cp", d / "report.txt", f"{box}:/tmp/r")
    assert res.rc != 0 and "not followed" in res.stderr, res
    got = ak("exec", box, "--", "cat", "/tmp/r")
    assert ORIGINAL not in got.out


def test_source_symlink_in_the_middle_is_not_followed(ak, box, local_user, victim):
    """SRC is ~user/dir/shadow where dir is the user's symlink to root's private directory."""
    d = local_user.home
    plant(local_user, "ln", "-s", victim.parent, d / "dir")
    res = ak("cp", d / "dir" / "shadow", f"{box}:/tmp/r")
    assert res.rc != 0, res
    assert ORIGINAL not in ak("exec", box, "--", "cat", "/tmp/r").out


def test_source_fifo_does_not_hang(ak, box, local_user):
    """The source is the attacker's FIFO with no writer: the old cp blocked in open() forever."""
    d = local_user.home
    plant(local_user, "mkfifo", d / "report.txt")
    try:
        res = ak("cp", d / "report.txt", f"{box}:/tmp/r", timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("cp hung on a FIFO")
    assert res.rc in (0, 1), res
