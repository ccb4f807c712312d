# SPDX-License-Identifier: Apache-2.0
"""A hostile command in a sandbox made for a coding agent (a compatibility mode: the `ai-agent`
seccomp filter, the current directory at /workspace) reaches for what the filter must refuse.

The ai-agent filter is an allow-list (upstream's ai-agent.json with its accidental omissions
fixed): namespaces, mounts, tracing, io_uring, bpf, keyrings stay refused, and a sandbox with a
host directory keeps the host-files refusals (no setuid or setgid file on the host) in this
profile as in every other."""
import json
import os
import stat

import pytest

from conftest import needs_root

pytestmark = needs_root

PY = "/usr/bin/python3"

CALLS = r"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, nr, args in [("unshare", 272, (0x10000000,)), ("mount", 165, (0, 0, 0, 0, 0)),
                       ("ptrace", 101, (16, 1, 0, 0)), ("io_uring_setup", 425, (1, 0)),
                       ("bpf", 321, (0, 0, 0)), ("keyctl", 250, (0, 0)),
                       ("setns", 308, (0, 0)), ("personality", 135, (0x0400000,)),
                       ("process_vm_readv", 310, (1, 0, 0, 0, 0, 0)),
                       ("open_by_handle_at", 304, (0, 0, 0)), ("fsopen", 430, (0, 0))]:
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    out[name] = "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
print(json.dumps(out))
"""


def make(ak, tmp_path, mode):
    d = tmp_path / "proj"
    d.mkdir()
    os.chmod(d, 0o777)
    (d / "agentkernel.toml").write_text(
        f'[sandbox]\nname = "m"\n[agent]\ncompatibility_mode = "{mode}"\n')
    os.chmod(d / "agentkernel.toml", 0o644)
    assert ak("trust", "--yes", d / "agentkernel.toml").rc == 0
    res = ak("create", cwd=d)
    assert res.rc == 0, res
    return d


@pytest.mark.parametrize("mode", ["claude", "codex", "gemini"])
def test_ai_agent_filter_refuses_the_escape_syscalls(ak, tmp_path, mode):
    """Namespaces, mounts, ptrace, io_uring, bpf, keyctl, setns, personality flags, another
    process's memory, file handles and the new mount API: each refused inside the mode's
    sandbox."""
    make(ak, tmp_path, mode)
    res = ak("exec", "m", "--", PY, "-c", CALLS)
    assert res.rc == 0, res
    out = json.loads(res.stdout)
    assert all(v != "ok" for v in out.values()), out


def test_ai_agent_keeps_the_host_files_refusals(ak, tmp_path):
    """A claude-mode sandbox writes the user's directory: a setuid or setgid file made there
    (chmod, open with O_CREAT and the bit, mknod) must be refused, and nothing on the host gets
    the bit."""
    d = make(ak, tmp_path, "claude")
    script = ("touch /workspace/f; chmod 4755 /workspace/f; echo chmod=$?; "
              "chmod 2755 /workspace/f; echo chmodg=$?; "
              f"{PY} -c 'import os; os.open(\"/workspace/g\", os.O_CREAT|os.O_WRONLY, 0o4755)'; "
              "echo open=$?; mkfifo -m 6777 /workspace/p; echo fifo=$?")
    res = ak("exec", "m", "--", "sh", "-c", script)
    lines = dict(x.split("=") for x in res.stdout.split())
    assert lines["chmod"] != "0" and lines["chmodg"] != "0" and lines["open"] != "0", res
    for p in d.iterdir():
        st = os.lstat(p)
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), p
