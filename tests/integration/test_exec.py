# SPDX-License-Identifier: Apache-2.0
"""Running commands: exit codes, signals, exact argv, separate streams, stdin, env, users."""
import subprocess

import pytest

from conftest import needs_root

pytestmark = needs_root


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 126, 127, 128, 200, 255])
def test_exit_codes_propagate(ak, sandbox, code):
    assert ak("exec", sandbox, "--", "sh", "-c", f"exit {code}").rc == code


def test_exit_codes_of_run(ak):
    assert ak("run", "--no-network", "--", "sh", "-c", "exit 7").rc == 7
    assert ak("run", "--no-network", "--", "false").rc == 1


@pytest.mark.parametrize("sig,num", [("KILL", 9), ("TERM", 15), ("SEGV", 11), ("INT", 2)])
def test_signals_become_128_plus_n(ak, sandbox, sig, num):
    res = ak("exec", sandbox, "--", "sh", "-c", f"kill -{sig} $$")
    assert res.rc == 128 + num, res


def test_command_not_found_and_not_executable(ak, sandbox):
    res = ak("exec", sandbox, "--", "no-such-command-xyz")
    assert res.rc == 127
    assert "no-such-command-xyz" in res.stderr and "not found" in res.stderr
    res = ak("exec", sandbox, "--", "/etc/hostname")
    assert res.rc == 126, res
    res = ak("run", "--no-network", "--", "no-such-command-xyz")
    assert res.rc == 127


def test_argv_is_exact(ak, sandbox):
    args = ["a  b", "c*d", "$HOME", "'q'", '"dq"', "new\nline", "tab\there", "", "-n", "--", ";", "|", "`id`"]
    res = ak("exec", sandbox, "--", "printf", "[%s]\\n", *args)
    assert res.rc == 0, res
    assert res.stdout == "".join(f"[{a}]\n" for a in args)


def test_argv_non_utf8_bytes(ak, sandbox):
    raw = b"\xff\xfe\x80-not-utf8"
    proc = subprocess.run([ak.prefix and ak.prefix[0] or __import__("conftest").AK, "exec", sandbox,
                           "--", "printf", "%s", raw], capture_output=True, env=ak.env)
    assert proc.returncode == 0, proc
    assert proc.stdout == raw


def test_stdout_and_stderr_kept_apart(ak, sandbox):
    res = ak("exec", sandbox, "--", "sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
    assert res.stdout == "out1\nout2\n"
    assert res.stderr == "err1\nerr2\n"


def test_binary_output_is_exact(ak, sandbox):
    res = ak("exec", sandbox, "--", "sh", "-c", "head -c 3000000 /dev/urandom | tee /tmp/r | sha256sum; cat /tmp/r")
    assert res.rc == 0
    digest = res.out[:64].decode()
    import hashlib
    body = res.out.split(b"\n", 1)[1]
    assert len(body) == 3000000
    assert hashlib.sha256(body).hexdigest() == digest


def test_stdin_is_forwarded(ak, sandbox):
    data = bytes(range(256)) * 4000
    res = ak("exec", sandbox, "--", "sh", "-c", "cat | wc -c", input=data)
    assert res.stdout.strip() == str(len(data))
    res = ak("exec", sandbox, "--", "cat", input=data)
    assert res.out == data
    res = ak("run", "--no-network", "--", "tr", "a-z", "A-Z", input=b"hello\n")
    assert res.stdout == "HELLO\n"


def test_env_workdir_user(ak, sandbox):
    res = ak("exec", "-e", "FOO=bar baz", "-e", "EMPTY=", sandbox, "--", "sh", "-c", 'echo "$FOO|$EMPTY|$HOME"')
    assert res.stdout == "bar baz||/root\n"
    res = ak("exec", "-w", "/tmp", sandbox, "--", "pwd")
    assert res.stdout == "/tmp\n"
    res = ak("exec", "-w", "/nonexistent", sandbox, "--", "pwd")
    assert res.rc == 126 and "does not exist" in res.stderr
    res = ak("exec", "-u", "nobody", sandbox, "--", "id", "-un")
    assert res.stdout == "nobody\n", res
    res = ak("exec", "-u", "1000:1000", sandbox, "--", "id", "-u")
    assert res.stdout == "1000\n"
    res = ak("exec", "--sudo", sandbox, "--", "id", "-u")
    assert res.stdout == "0\n"
    res = ak("exec", "-u", "ghost", sandbox, "--", "true")
    assert res.rc == 125 and "user 'ghost' not found" in res.stderr


def test_sandbox_env_from_create(ak):
    assert ak("create", "envbox", "--no-network", "-e", "GREETING=hi").rc == 0
    assert ak("exec", "envbox", "--", "sh", "-c", "echo $GREETING").stdout == "hi\n"
    # an exec's own env wins over the sandbox's
    assert ak("exec", "-e", "GREETING=yo", "envbox", "--", "sh", "-c", "echo $GREETING").stdout == "yo\n"


def test_timeout_kills_the_command(ak, sandbox):
    res = ak("exec", "--timeout", "1s", sandbox, "--", "sh", "-c", "sleep 30 & sleep 30")
    assert res.rc == 137 and "timed out" in res.stderr, res
    # the whole process group went, so the sandbox is quiet again
    res = ak("exec", sandbox, "--", "sh", "-c", "ps -e -o comm= | grep -c sleep || true")
    assert res.stdout.strip() == "0"


def test_client_gone_kills_the_command(ak, sandbox):
    p = ak.popen("exec", sandbox, "--", "sleep", "1000", stdout=subprocess.PIPE)
    import time
    deadline = time.time() + 5
    while time.time() < deadline:
        if "sleep" in ak("exec", sandbox, "--", "ps", "-e", "-o", "comm=").stdout:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    deadline = time.time() + 5
    while time.time() < deadline:
        if "sleep" not in ak("exec", sandbox, "--", "ps", "-e", "-o", "comm=").stdout:
            break
        time.sleep(0.05)
    assert "sleep" not in ak("exec", sandbox, "--", "ps", "-e", "-o", "comm=").stdout


def test_ctrl_c_is_forwarded(ak, sandbox):
    import signal, time
    p = ak.popen("exec", sandbox, "--", "sh", "-c", "trap 'echo got-int; exit 5' INT; sleep 30 & wait",
                 stdout=subprocess.PIPE)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 5 and out == b"got-int\n"
