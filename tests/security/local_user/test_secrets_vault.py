# SPDX-License-Identifier: Apache-2.0
"""The secrets vault, attacked by another local user (issue 15).

The attacker is an unprivileged uid (`local_user`). It reads other processes' command lines in
/proc (as `ps` does), tries to read the vault's files, and plants or loosens them: a key of its
own making (so that it could decrypt what is stored next), a store it could have written, a
directory it can write. The vault must never take a value on a command line that it leaves
visible, never be readable by another user, and refuse (with a message naming the file and never
a value) any file another user could have written or chosen.
"""
import fcntl
import select
import signal
import os
import secrets
import subprocess
import time

import pytest

from conftest import AK, ATTACKER_UID, needs_root

pytestmark = needs_root


def value():
    return "sk-test-" + secrets.token_hex(24)


def store(ak, name, v):
    res = ak("secret", "set", name, input=v.encode())
    assert res.rc == 0, res
    return res


def test_value_argument_is_warned_and_wiped_from_ps(ak, local_user):
    """`secret set K VALUE` (upstream's form) while it waits for the vault's lock: another user
    reading /proc/PID/cmdline (ps) does not see VALUE; a warning says why the form is unsafe."""
    v = value()
    store(ak, "FIRST", value())  # the vault exists
    lock = open(ak.data_dir / ".secrets.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    p = ak.popen("secret", "set", "ARGV", v, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.8)
        seen = local_user.run(["cat", f"/proc/{p.pid}/cmdline"])
        assert seen.rc == 0 and b"ARGV" in seen.out, seen
        assert v.encode() not in seen.out, seen
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b"warning" in err and b"visible" in err and v.encode() not in out + err
    assert ak("secret", "get", "ARGV").out.strip() == v.encode()


def test_value_from_stdin_is_stored_without_argv(ak):
    """`secret set K` reads standard input (a pipe: all of it, one final newline dropped)."""
    v = value()
    res = ak("secret", "set", "PIPED", input=(v + "\n").encode())
    assert res.rc == 0 and b"warning" not in res.err, res
    assert ak("secret", "get", "PIPED").out == (v + "\n").encode()


def test_inline_binding_value_wiped_from_ps(ak, local_user):
    """`create -S K=VALUE:host` while it waits: the value is gone from its command line."""
    v = value()
    store(ak, "FIRST", value())
    lock = open(ak.data_dir / ".secrets.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    p = ak.popen("create", "argvbox", "--no-config", "--no-start", "-S",
                 f"INLINE={v}:api.example.com", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.8)
        seen = local_user.run(["cat", f"/proc/{p.pid}/cmdline"])
        assert b"argvbox" in seen.out and v.encode() not in seen.out, seen
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert v.encode() not in ak.state_file("argvbox").read_bytes()


def test_other_user_cannot_read_the_vault(ak, local_user):
    """secrets.json and secrets.key are 0600 in a 0700 directory: the other user reads neither,
    nor lists the directory."""
    store(ak, "PRIVATE", value())
    d = ak.data_dir
    assert os.stat(d).st_mode & 0o777 == 0o700
    for f in ("secrets.json", "secrets.key"):
        assert os.stat(d / f).st_mode & 0o777 == 0o600
        res = local_user.run(["cat", str(d / f)])
        assert res.rc != 0 and res.out == b"", res
    assert local_user.run(["ls", str(d)]).rc != 0


@pytest.mark.parametrize("f,mode", [("secrets.json", 0o620), ("secrets.json", 0o606),
                                    ("secrets.key", 0o660), ("secrets.key", 0o644)])
def test_loosened_vault_file_is_refused(ak, f, mode):
    """A vault file group or others could write (or read: its key, or what the key opens, may
    be known) is refused by get, list, set and create -S, with a message naming it and no
    value."""
    v = value()
    store(ak, "LOOSE", v)
    os.chmod(ak.data_dir / f, mode)
    for args in (("secret", "get", "LOOSE"), ("secret", "set", "OTHER", "x"),
                 ("create", "loosebox", "--no-config", "--no-start", "-S",
                  "LOOSE:api.example.com")):
        res = ak(*args, input=b"y")
        assert res.rc != 0, (args, res)
        assert f.encode() in res.err and v.encode() not in res.out + res.err, (args, res)
    if f == "secrets.json":
        assert ak("secret", "list").rc != 0
    assert not ak.state_file("loosebox").exists()


def test_key_planted_by_another_user_is_refused(ak):
    """A key file owned by another user (who then knows the key) is never used to encrypt: set
    fails and the store is not written."""
    store(ak, "BEFORE", value())
    before = (ak.data_dir / "secrets.json").read_bytes()
    os.chown(ak.data_dir / "secrets.key", ATTACKER_UID, ATTACKER_UID)
    res = ak("secret", "set", "AFTER", input=b"new-value")
    assert res.rc != 0 and b"not owned by you" in res.err, res
    assert (ak.data_dir / "secrets.json").read_bytes() == before


def test_key_replaced_by_a_symlink_is_refused(ak, local_user, tmp_path):
    """secrets.key replaced by a link to a key the attacker wrote: refused, not followed."""
    store(ak, "BEFORE", value())
    planted = tmp_path / "attacker.key"
    planted.write_text("A" * 43 + "=")
    os.chown(planted, ATTACKER_UID, ATTACKER_UID)
    (ak.data_dir / "secrets.key").unlink()
    os.symlink(planted, ak.data_dir / "secrets.key")
    for args in (("secret", "set", "AFTER"), ("secret", "get", "BEFORE")):
        res = ak(*args, input=b"new-value")
        assert res.rc != 0 and b"symbolic link" in res.err, (args, res)


def test_store_owned_by_another_user_is_refused(ak):
    """A secrets.json another user owns (it chose what the store says) is refused."""
    store(ak, "BEFORE", value())
    os.chown(ak.data_dir / "secrets.json", ATTACKER_UID, ATTACKER_UID)
    for args in (("secret", "list"), ("secret", "get", "BEFORE")):
        res = ak(*args)
        assert res.rc != 0 and b"not owned by you" in res.err, (args, res)


def test_vault_in_a_directory_others_can_write_is_refused(ak, local_user, tmp_path):
    """AGENTKERNEL_DATA_DIR under a directory the other user may write (not sticky): the vault
    is never made or read there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    env = {"AGENTKERNEL_DATA_DIR": str(shared / "data")}
    res = ak("secret", "set", "K", input=b"value-in-shared", env=env)
    assert res.rc != 0, res
    assert not (shared / "data" / "secrets.json").exists()
    assert not (shared / "data" / "secrets.key").exists()


def test_prompt_on_a_terminal_does_not_echo(ak):
    """`secret set K` on a terminal prompts and reads one line without echoing it: what the
    terminal shows (a screen share, a recording, a shoulder) holds no value."""
    import pty
    v = value()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(AK,
                  ["agentkernel", "secret", "set", "TYPED"], ak.env)
    out = b""
    deadline = time.time() + 30

    def read_some():
        # bounded: a CLI that lost the line (it once flushed what was typed right after its
        # prompt showed) fails the test instead of hanging it
        if not select.select([fd], [], [], max(0.0, deadline - time.time()))[0]:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"no output within the deadline: {out!r}")
        try:
            return os.read(fd, 1000)
        except OSError:
            return b""
    while b"Enter value for TYPED" not in out:
        chunk = read_some()
        assert chunk, out
        out += chunk
    os.write(fd, (v + "\n").encode())  # at once, as a paste
    while chunk := read_some():
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"Stored 'TYPED'" in out and v.encode() not in out, out
    assert ak("secret", "get", "TYPED").out.strip() == v.encode()
