# SPDX-License-Identifier: Apache-2.0
"""attach: an interactive shell on a real pseudo-terminal, with resize and exit status."""
import fcntl
import json
import os
import pty
import select
import struct
import termios
import time

import pytest

from conftest import AK, needs_root

pytestmark = needs_root


class Term:
    def __init__(self, argv, env, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""

    def read_until(self, needle, timeout=10):
        deadline = time.time() + timeout
        while needle not in self.out and time.time() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    break
        return needle in self.out

    def send(self, data):
        os.write(self.fd, data)

    def resize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, 28)  # SIGWINCH, as a terminal emulator would

    def wait(self):
        self.read_until(b"\x00never", timeout=1)
        _, st = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(st)


def test_attach_shell(ak, sandbox, tmp_path):
    rec = tmp_path / "session.cast"
    t = Term([AK, "attach", "--record", str(rec), sandbox], ak.env, rows=30, cols=100)
    assert t.read_until(b"#"), t.out
    t.send(b"tty; stty size; echo $((6*7))\n")
    assert t.read_until(b"42"), t.out
    assert b"/dev/pts/" in t.out and b"30 100" in t.out
    t.resize(40, 120)
    time.sleep(0.3)
    t.send(b"stty size\n")
    assert t.read_until(b"40 120"), t.out
    t.send(b"exit 5\n")
    assert t.wait() == 5
    lines = rec.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] == 100 and header["height"] == 30
    assert any("42" in json.loads(l)[2] for l in lines[1:])


def test_exec_tty(ak, sandbox):
    t = Term([AK, "exec", "-t", sandbox, "--", "sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; exit 3"],
             ak.env)
    assert t.read_until(b"is-a-tty"), t.out
    assert t.wait() == 3


def test_attach_needs_running_sandbox(ak):
    assert ak("create", "--no-start", "off").rc == 0
    res = ak("attach", "off")
    assert res.rc == 125 and "is not running" in res.stderr
