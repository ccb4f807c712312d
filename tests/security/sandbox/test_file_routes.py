# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox against the file routes: `cp` both ways, the API's and MCP's file tools, and
exec's working directory.

The agent's handler that serves a file request still holds the agent's private state tmpfs
(detached commands' records) and its channel. The sandbox plants symlinks into /proc — magic
links: /proc/self/fd/N, /proc/thread-self/fd/N, /proc/1/fd/N, /proc/self/root, /proc/self/cwd —
so that the handler, resolving the path the host sent, would jump into its own fds: reading a
record, forging one (a finished status, another pid to kill), deleting one. It also links to
/proc files of the handler (its memory map) and offers special files (a FIFO, a device, setuid
and sticky modes) to the host's `cp`. What must hold: the agent refuses every path through a
magic link or into procfs, nothing of its state is read or changed, and the host gets no
special file, no setuid/setgid/sticky bit and no mode the umask would not allow.
"""
import json
import os
import socket
import stat
import subprocess
import time
import http.client

import pytest

from conftest import AK, mcp_call, needs_root

pytestmark = needs_root

API_KEY = "test-key-file-routes-0123456789abcdef"
MAGIC_FD_LINKS = ["/proc/self/fd/{fd}", "/proc/thread-self/fd/{fd}", "/proc/1/fd/{fd}"]
STATE_FD = 5  # the agent's state tmpfs (src/runtime/runtime.c: "state 5")


def sh(ak, box, script, check=True):
    res = ak("exec", box, "--", "sh", "-c", script)
    if check:
        assert res.rc == 0, res
    return res


def detached(ak, box):
    """Starts a detached command; returns its id and its record as exec-list shows it."""
    res = ak("exec", box, "-d", "--", "sleep", "300")
    assert res.rc == 0, res
    rec = json.loads(ak("exec-list", box, "--json", check=True).out)[0]
    assert rec["status"] == "running"
    return rec["id"], rec


def record_unchanged(ak, box, before):
    after = [r for r in json.loads(ak("exec-list", box, "--json", check=True).out)
             if r["id"] == before["id"]]
    assert after == [before], f"detached record changed: {before} -> {after}"


def plant(ak, box, link, target):
    sh(ak, box, f"ln -sfn '{target}' '{link}'")


class Api:
    """`agentkernel serve` on a free loopback port, with an API key (whatever the default)."""

    def __init__(self, ak):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = dict(ak.env, AGENTKERNEL_API_KEY=API_KEY)
        self.proc = subprocess.Popen([AK, "serve", "--port", str(self.port), "--api-key", API_KEY],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not come up")

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Authorization": f"Bearer {API_KEY}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def outdir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def api(ak, sandbox):
    a = Api(ak)
    yield a
    a.stop()


def mcp_text(doc):
    r = doc.get("result") or {}
    return json.dumps(r) + json.dumps(doc.get("error"))


# ---- cp, sandbox -> host ----

@pytest.mark.parametrize("link", MAGIC_FD_LINKS)
def test_cp_out_cannot_read_agent_state_through_fd_link(ak, sandbox, outdir, link):
    """cp NAME:/tmp/st/detached/ID/info where /tmp/st -> /proc/.../fd/5 (the state tmpfs): the
    agent must refuse; the host gets nothing of the record."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", link.format(fd=STATE_FD))
    res = ak("cp", f"{sandbox}:/tmp/st/detached/{rid}/info", "-")
    assert res.rc != 0 and res.out == b"", res
    res = ak("cp", f"{sandbox}:/tmp/st/detached/{rid}/info", outdir / "leak")
    assert res.rc != 0, res
    assert os.listdir(outdir) == [], "nothing may be left at the destination"
    record_unchanged(ak, sandbox, rec)


def test_cp_out_tries_every_handler_fd(ak, sandbox):
    """Whatever number the state fd has: /proc/self/fd/N for N in 0..15 never leads anywhere
    outside the sandbox's own tree (the handler's channel, pipes, state)."""
    rid, _ = detached(ak, sandbox)
    sh(ak, sandbox, "for n in $(seq 0 15); do ln -sfn /proc/self/fd/$n /tmp/fd$n; done")
    for n in range(16):
        for sub in (f"detached/{rid}/info", f"detached/{rid}/argv", ""):
            res = ak("cp", f"{sandbox}:/tmp/fd{n}/{sub}".rstrip("/"), "-", timeout=30)
            assert res.rc != 0 and res.out == b"", (n, sub, res)


@pytest.mark.parametrize("target", ["/proc/self/maps", "/proc/self/environ",
                                    "/proc/self/fdinfo/5", "/proc/1/maps", "/proc/self/exe",
                                    "/proc/self/map_files/400000-401000"])
def test_cp_out_cannot_read_the_handlers_proc_files(ak, sandbox, target):
    """/tmp/p -> /proc/self/maps: the handler's own /proc (its memory map defeats the agent's
    non-dumpable protection; its environ and fdinfo are the agent's; exe and map_files are
    magic links to the agent's binary on the host). Refused: the file routes never read procfs,
    however the path gets there."""
    plant(ak, sandbox, "/tmp/p", target)
    res = ak("cp", f"{sandbox}:/tmp/p", "-")
    assert res.rc != 0 and res.out == b"", res


@pytest.mark.parametrize("link", ["/proc/self/root", "/proc/self/cwd", "/proc/1/root"])
def test_cp_out_refuses_root_and_cwd_magic_links(ak, sandbox, link):
    """/tmp/r -> /proc/self/root: a magic link even where it leads back into the sandbox; the
    agent refuses all of them (RESOLVE_NO_MAGICLINKS), so none can lead anywhere else either."""
    plant(ak, sandbox, "/tmp/r", link)
    res = ak("cp", f"{sandbox}:/tmp/r/etc/hostname", "-")
    assert res.rc != 0 and res.out == b"", res


def test_cp_out_through_the_handlers_own_proc_entries(ak, sandbox):
    """The agent's handlers are processes the sandbox can see: /proc/<handler>/cwd and
    /proc/<handler>/fd/5 for each of them (one of them serves the request)."""
    rid, rec = detached(ak, sandbox)
    res = sh(ak, sandbox, "for p in /proc/[0-9]*; do [ \"$(cat $p/comm)\" = agentkernel-age ] && "
                          "[ ${p#/proc/} != 1 ] && echo ${p#/proc/}; done; true")
    pids = res.stdout.split()
    assert pids, res
    for pid in pids:
        plant(ak, sandbox, f"/tmp/cwd{pid}", f"/proc/{pid}/cwd")
        plant(ak, sandbox, f"/tmp/fd{pid}", f"/proc/{pid}/fd/{STATE_FD}")
    for _ in range(3):  # handlers are reused: whichever serves, it is one of these
        for pid in pids:
            res = ak("cp", f"{sandbox}:/tmp/cwd{pid}/etc/hostname", "-")
            assert res.rc != 0 and res.out == b"", (pid, res)
            res = ak("cp", f"{sandbox}:/tmp/fd{pid}/detached/{rid}/info", "-")
            assert res.rc != 0 and res.out == b"", (pid, res)
    record_unchanged(ak, sandbox, rec)


# ---- cp, host -> sandbox ----

@pytest.mark.parametrize("link", MAGIC_FD_LINKS)
def test_cp_in_cannot_forge_a_detached_record(ak, sandbox, link):
    """cp - NAME:/tmp/st/detached/ID/exit with /tmp/st -> /proc/.../fd/5: a forged exit file would
    make a running command look finished (and a forged info file would make exec-kill signal
    another process). Refused; the record is unchanged."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", link.format(fd=STATE_FD))
    for f, data in (("exit", b"0 0\n"), ("info", b"1 1 1\n")):
        res = ak("cp", "-", f"{sandbox}:/tmp/st/detached/{rid}/{f}", input=data)
        assert res.rc != 0, res
    record_unchanged(ak, sandbox, rec)


def test_cp_in_cannot_create_directories_in_agent_state(ak, sandbox):
    """cp creates missing parents: /tmp/st/planted/x with /tmp/st -> /proc/self/fd/5 would make
    directories in the state tmpfs. Refused, and the sandbox's own directories still work."""
    plant(ak, sandbox, "/tmp/st", f"/proc/self/fd/{STATE_FD}")
    res = ak("cp", "-", f"{sandbox}:/tmp/st/planted/x", input=b"x")
    assert res.rc != 0, res
    res = ak("cp", "-", f"{sandbox}:/tmp/st/detached/00000000/info", input=b"1 1 1\n")
    assert res.rc != 0, res
    assert ak("cp", "-", f"{sandbox}:/tmp/ok/a/b/x", input=b"fine").rc == 0
    assert ak("cp", f"{sandbox}:/tmp/ok/a/b/x", "-").out == b"fine"


def test_cp_in_through_an_ordinary_symlink_still_works(ak, sandbox):
    """Ordinary symlinks inside the sandbox keep working (only magic links are refused)."""
    sh(ak, sandbox, "mkdir -p /tmp/real && ln -sfn /tmp/real /tmp/alias")
    assert ak("cp", "-", f"{sandbox}:/tmp/alias/f", input=b"via link").rc == 0
    assert ak("cp", f"{sandbox}:/tmp/real/f", "-").out == b"via link"


# ---- the API and MCP file routes ----

def test_api_file_read_through_magic_link(ak, sandbox, api):
    """GET /sandboxes/NAME/files/tmp/st/detached/ID/info with /tmp/st -> /proc/self/fd/5."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", f"/proc/self/fd/{STATE_FD}")
    st, doc = api.request("GET", f"/sandboxes/{sandbox}/files/tmp/st/detached/{rid}/info")
    assert st >= 400 and not (isinstance(doc, dict) and doc.get("success")), (st, doc)
    assert str(rec["pid"]) + " " not in json.dumps(doc)


def test_api_file_write_through_magic_link(ak, sandbox, api):
    """PUT .../files/tmp/st/detached/ID/exit: would mark the running command finished."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", f"/proc/thread-self/fd/{STATE_FD}")
    st, doc = api.request("PUT", f"/sandboxes/{sandbox}/files/tmp/st/detached/{rid}/exit",
                          {"content": "0 0\n"})
    assert st >= 400, (st, doc)
    st, doc = api.request("POST", f"/sandboxes/{sandbox}/files",
                          {"files": {f"/tmp/st/detached/{rid}/exit": "0 0\n"}})
    assert not (isinstance(doc, dict) and doc.get("success")), (st, doc)
    record_unchanged(ak, sandbox, rec)


def test_api_file_delete_through_magic_link(ak, sandbox, api):
    """DELETE .../files/tmp/st/detached/ID/info: would make the record vanish."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", f"/proc/self/fd/{STATE_FD}")
    st, doc = api.request("DELETE", f"/sandboxes/{sandbox}/files/tmp/st/detached/{rid}/info")
    record_unchanged(ak, sandbox, rec)


def test_mcp_file_read_through_magic_link(ak, sandbox):
    """MCP sandbox_file_read of /tmp/st/detached/ID/info (/tmp/st -> /proc/self/fd/5)."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", f"/proc/self/fd/{STATE_FD}")
    doc = mcp_call(ak, "sandbox_file_read",
                   {"name": sandbox, "path": f"/tmp/st/detached/{rid}/info"})
    assert f"{rec['pid']} " not in mcp_text(doc), doc
    assert doc.get("error") or (doc.get("result") or {}).get("isError"), doc


def test_mcp_file_write_through_magic_link(ak, sandbox):
    """MCP sandbox_file_write of /tmp/st/detached/ID/exit: the record must stay as it was."""
    rid, rec = detached(ak, sandbox)
    plant(ak, sandbox, "/tmp/st", f"/proc/self/fd/{STATE_FD}")
    doc = mcp_call(ak, "sandbox_file_write",
                   {"name": sandbox, "path": f"/tmp/st/detached/{rid}/exit", "content": "0 0\n"})
    assert doc.get("error") or (doc.get("result") or {}).get("isError"), doc
    record_unchanged(ak, sandbox, rec)


# ---- exec's working directory ----

@pytest.mark.parametrize("link", ["/proc/self/root", "/proc/1/fd/5", "/proc/1/cwd",
                                  "/proc/thread-self/cwd"])
def test_exec_workdir_refuses_magic_links(ak, sandbox, link):
    """exec --workdir /tmp/w with /tmp/w -> a magic link: the command's process resolves it before
    execve, with the agent's privileges; it must not start there."""
    plant(ak, sandbox, "/tmp/w", link)
    res = ak("exec", sandbox, "--workdir", "/tmp/w", "--", "pwd")
    assert res.rc != 0 and res.out == b"", res


def test_api_exec_cwd_refuses_magic_links(ak, sandbox, api):
    """The API's exec cwd (and detached commands') take the same path as exec --workdir."""
    plant(ak, sandbox, "/tmp/w", "/proc/self/root")
    st, doc = api.request("POST", f"/sandboxes/{sandbox}/exec",
                          {"command": ["pwd"], "workdir": "/tmp/w"})
    assert not (isinstance(doc, dict) and doc.get("success")), (st, doc)
    res = ak("exec", sandbox, "-d", "--workdir", "/tmp/w", "--", "pwd")
    if res.rc == 0:  # a detached command is recorded, then fails to start
        rid = json.loads(ak("exec-list", sandbox, "--json", check=True).out)[-1]["id"]
        time.sleep(0.3)
        assert ak("exec-logs", sandbox, rid).out == b""


@pytest.mark.parametrize("target", [f"/proc/self/fd/{STATE_FD}", "/proc/self/fd/3",
                                    "/proc/thread-self/fd/4", "fifo"])
def test_terminal_allocation_ignores_a_planted_ptmx(ak, sandbox, target):
    """The sandbox's /dev is writable: /dev/ptmx replaced by a link to the handler's own fds (or a
    FIFO). exec -t / attach must still get a real terminal, never open one of the agent's fds."""
    if target == "fifo":
        sh(ak, sandbox, "rm -f /dev/ptmx && mkfifo /dev/ptmx")
    else:
        plant(ak, sandbox, "/dev/ptmx", target)
    res = ak("exec", "-t", sandbox, "--", "tty", input=b"")
    assert res.rc == 0 and res.stdout.startswith("/dev/pts/"), res
    res = ak("attach", sandbox, "--", "tty", input=b"")
    assert res.rc == 0 and "/dev/pts/" in res.stdout, res


def test_exec_workdir_ordinary_symlink_still_works(ak, sandbox):
    sh(ak, sandbox, "mkdir -p /tmp/wd && ln -sfn /tmp/wd /tmp/wl")
    assert ak("exec", sandbox, "--workdir", "/tmp/wl", "--", "pwd").out == b"/tmp/wd\n"


# ---- what cp brings to the host ----

def cp_with_umask(ak, mask, *args):
    return subprocess.run([AK, "cp", *map(str, args)], env=ak.env, capture_output=True,
                          timeout=60, preexec_fn=lambda: os.umask(mask))


def special_file(bit):
    """The smallest file under the host's /usr with bit (S_ISUID or S_ISGID) that everyone may
    read, or a skip. A sandbox cannot set these bits itself (its seccomp filter refuses them in
    every profile), but the host image shows the host's /usr, so it offers such files as they
    are."""
    found = subprocess.run(["find", "/usr", "-xdev", "-type", "f", "-perm", f"-{bit | 0o004:o}"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    if not found:
        pytest.skip(f"no file with mode bit {bit:o} under /usr on this host")
    return min(found, key=lambda p: (os.path.getsize(p), p))


@pytest.mark.parametrize("kind,mask", [("setuid", 0o022), ("setuid", 0o077), ("setgid", 0o000),
                                       ("setgid", 0o027), ("sticky", 0o027)])
def test_cp_out_drops_special_bits_and_applies_umask(ak, sandbox, outdir, kind, mask):
    """A sandbox file with setuid/setgid/sticky bits (a setuid or setgid file of the image,
    a sticky one it makes): the host copy has none of them, and the caller's umask applies (the
    sandbox does not choose the host file's permissions)."""
    if kind == "sticky":
        src, bit = "/tmp/m", stat.S_ISVTX
        sh(ak, sandbox, f"printf data > {src} && chmod 1777 {src}")
    else:
        bit = stat.S_ISUID if kind == "setuid" else stat.S_ISGID
        src = special_file(bit)
    mode = int(sh(ak, sandbox, f"stat -c %a {src}").stdout, 8)
    assert mode & bit, f"the sandbox sees {src} as {mode:o}"
    out = outdir / "m"
    res = cp_with_umask(ak, mask, f"{sandbox}:{src}", out)
    assert res.returncode == 0, res
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == mode & 0o777 & ~mask, oct(st.st_mode)
    assert st.st_uid == os.geteuid()


def test_cp_out_of_a_fifo_neither_hangs_nor_leaves_files(ak, sandbox, outdir):
    """A FIFO as the source (through a symlink, which the host cannot tell): refused at once,
    nothing created on the host."""
    sh(ak, sandbox, "mkfifo /tmp/fifo && ln -sfn /tmp/fifo /tmp/looks-like-a-file")
    for src in ("/tmp/fifo", "/tmp/looks-like-a-file"):
        t = time.time()
        res = ak("cp", f"{sandbox}:{src}", outdir / "out", timeout=30)
        assert res.rc != 0 and time.time() - t < 20, res
    assert os.listdir(outdir) == []


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_cp_out_of_a_device_is_refused(ak, sandbox, outdir, dev):
    """A device behind a symlink (/tmp/d -> /dev/zero): an endless source is refused, not streamed
    to the host's disk."""
    plant(ak, sandbox, "/tmp/d", dev)
    res = ak("cp", f"{sandbox}:/tmp/d", outdir / "out", timeout=30)
    assert res.rc != 0, res
    assert os.listdir(outdir) == []
