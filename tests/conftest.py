# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the integration and security suites: the real agentkernel binary against real
namespaces.

Every test gets its own data directory. After each test the fixture removes whatever sandboxes
the test left and then checks that nothing of them remains on the host: no agent process, no
cgroup, no runtime directory.

Tests judge only what they started: the agent binary is copied once per test session to a path
of its own, and "our" agents are the processes executing that copy. Sandboxes of other users or
other test runs on the same machine are never counted (or touched).
"""
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
AK = os.environ.get("AGENTKERNEL_BIN", str(ROOT / "build" / "src" / "agentkernel"))


def _asan_build(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# The CLI under test is an AddressSanitizer build (scripts/test.sh's second run).
ASAN_BUILD = _asan_build(AK)
# What the sanitizer run leaves to the normal run: suites whose time goes to QEMU booting guests
# or to docker/podman, not to our code (their host-side code is still run under the sanitizers
# by tests/integration/test_microvm.py and tests/security/container's impostor tests), so that
# CI's two runs fit its time. scripts/test.sh runs everything else twice.
SANITIZER_RUN_LEAVES_OUT = (
    "tests/integration/test_engines.py",
    "tests/integration/test_microvm_",  # every microvm module but test_microvm.py itself
    "tests/security/sandbox/test_microvm_",
    "tests/security/container/test_engine_disk.py",
)
_BUILT_AGENT = os.environ.get("AGENTKERNEL_AGENT", str(ROOT / "build" / "src" / "agentkernel-agent"))
CGROUP_DIRS = [
    "/sys/fs/cgroup/agentkernel",
    "/sys/fs/cgroup/memory/agentkernel",
    "/sys/fs/cgroup/pids/agentkernel",
    "/sys/fs/cgroup/cpu/agentkernel",
]


def is_root():
    return os.geteuid() == 0


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def stdout(self):
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")

    def __repr__(self):
        return f"<rc={self.rc} out={self.out[:400]!r} err={self.err[:400]!r}>"


class Ak:
    """Runs the CLI with an isolated data directory."""

    def __init__(self, data_dir, env=None, prefix=None):
        self.data_dir = pathlib.Path(data_dir)
        self.env = dict(os.environ)
        self.env["AGENTKERNEL_DATA_DIR"] = str(self.data_dir)
        self.env["AGENTKERNEL_AGENT"] = AGENT
        self.env.pop("AGENTKERNEL_TEST_HOOK", None)
        self.env.pop("AGENTKERNEL_AUDIT_PATH", None)
        self.env.pop("AGENTKERNEL_AUDIT", None)
        if env:
            self.env.update(env)
        self.prefix = prefix or []

    def __call__(self, *args, input=None, timeout=120, env=None, check=False, cwd=None):
        e = dict(self.env)
        if env:
            e.update(env)
        proc = subprocess.run(
            self.prefix + [AK] + [str(a) for a in args],
            input=input,
            capture_output=True,
            timeout=timeout,
            env=e,
            cwd=cwd,
        )
        res = Result(proc)
        if check:
            assert res.rc == 0, res
        return res

    def popen(self, *args, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.Popen(self.prefix + [AK] + [str(a) for a in args], env=e, **kw)

    def list(self):
        res = self(  "list", "--json", check=True)
        return json.loads(res.out)

    def names(self):
        return sorted(s["name"] for s in self.list())

    def state_file(self, name):
        return self.data_dir / "sandboxes" / f"{name}.json"

    def state(self, name):
        return json.loads(self.state_file(name).read_text())


def _session_copy(path):
    """A copy of an agent binary at a path only this test session uses (see the module's doc).
    World-readable and executable: rootless tests run it as other users."""
    if not path or not os.path.exists(path):
        return path
    import atexit
    import tempfile
    d = tempfile.mkdtemp(prefix="ak-test-agent-")
    os.chmod(d, 0o755)
    dst = os.path.join(d, "agentkernel-agent")
    shutil.copy2(path, dst)
    os.chmod(dst, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return dst


AGENT = _session_copy(_BUILT_AGENT)
_OUR_AGENTS = {AGENT}


def wait_for(cond, timeout=10):
    """Polls cond until it is true or timeout seconds have passed; returns its last value. For
    what a test waits on (a process writing, a teardown in the background): a fixed sleep is
    either too long or, on a loaded machine, too short."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def agent_pids():
    """Host pids of the agents this test session started (the processes executing its copy of
    the agent binary), whatever user or sandbox they belong to."""
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            comm = (p / "comm").read_text().strip()
            if not comm.startswith("agentkernel-age"):
                continue
            exe = os.readlink(p / "exe")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if exe.removesuffix(" (deleted)") not in _OUR_AGENTS:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            pids.append(int(p.name))
    return pids


def sandbox_cgroups(uuid):
    found = []
    for d in CGROUP_DIRS:
        for prefix in ("", "run-"):
            p = pathlib.Path(d) / f"{prefix}{uuid}"
            if p.exists():
                found.append(str(p))
    return found


def assert_nothing_left(ak, uuids):
    """No agents of ours, no cgroups, no runtime dirs, no state files."""
    deadline = time.time() + 5
    while True:
        leftovers = []
        for u in uuids:
            leftovers += sandbox_cgroups(u)
        run_dir = ak.data_dir / "run"
        if run_dir.exists():
            leftovers += [str(p) for p in run_dir.iterdir() if p.name != ".ephemeral"]
            eph = run_dir / ".ephemeral"
            if eph.exists():  # the shared directory of ephemeral runs stays, empty
                leftovers += [str(p) for p in eph.iterdir()]
        sb = ak.data_dir / "sandboxes"
        if sb.exists():
            leftovers += [str(p) for p in sb.iterdir() if p.suffix == ".json"]
        if not leftovers or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not leftovers, f"left behind: {leftovers}"


def assert_no_new_agents(before):
    deadline = time.time() + 5
    while True:
        new = set(agent_pids()) - before
        if not new or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not new, f"agent processes left running: {sorted(new)}"


def snapshot_cache(data_dir):
    """Where an agentkernel run as root with this data directory keeps its /etc snapshots
    (src/backend/native-start.c, snapshot_cache): /run/agentkernel/<id>/etc, <id> the first 16 hex
    digits of the SHA-256 of the data directory's canonical path."""
    real = os.path.realpath(data_dir)
    return pathlib.Path("/run/agentkernel") / hashlib.sha256(real.encode()).hexdigest()[:16] / "etc"


@pytest.fixture
def ak(tmp_path):
    before = set(agent_pids())
    inst = Ak(tmp_path / "data")
    yield inst
    uuids = []
    try:
        for s in inst.list():
            uuids.append(s["uuid"])
            inst("remove", s["name"], timeout=60)
    except Exception:  # the test may have broken the store on purpose
        pass
    # the native warm pool's idle sandboxes (run --fast, the API's runs): its keepers end them
    inst("pool", "clear", "-B", "native", timeout=60)
    assert_nothing_left(inst, uuids)
    assert_no_new_agents(before)
    unmount_under(inst.data_dir)
    shutil.rmtree(snapshot_cache(inst.data_dir).parent, ignore_errors=True)


def unmount_under(root):
    """Sized volumes stay mounted by design; a test's data directory goes with the test."""
    root = str(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], check=False)


@pytest.fixture
def sandbox(ak):
    """A running sandbox named 'box' with network off (fast, and no host dependency)."""
    res = ak("create", "box", "--no-network")
    assert res.rc == 0, res
    return "box"


# What a user answers before an MCP client may create or remove sandboxes (upstream's
# interactive grants, enforced as upstream): session grants of both kinds, ids 9001 and 9002.
MCP_GRANTS = [
    {"jsonrpc": "2.0", "id": 9000 + i, "method": "tools/call",
     "params": {"name": "permission_grant",
                "arguments": {"kind": kind, "granted": True, "scope": "session"}}}
    for i, kind in enumerate(["sandbox_create", "sandbox_remove"], 1)
]


def mcp_call(ak, tool, args, grant=True):
    """One tools/call through `agentkernel mcp-server` (stdio JSON-RPC); with grant, after the
    user granted sandbox_create and sandbox_remove for the session (MCP_GRANTS)."""
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                    "clientInfo": {"name": "attack", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        *(MCP_GRANTS if grant else []),
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": tool, "arguments": args}},
    ]
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode(), timeout=60)
    for line in res.stdout.splitlines():
        doc = json.loads(line)
        if doc.get("id") == 2:
            return doc
    raise AssertionError(f"no answer from mcp-server: {res}")


needs_root = pytest.mark.skipif(not is_root(), reason="needs root (CI runs as root)")


def have(cmd):
    return shutil.which(cmd) is not None


def elf_is_dynamic(path):
    """Whether an ELF executable names a program interpreter (PT_INTERP): a dynamic one."""
    import struct
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", hdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


# The agent runs inside image roots that lack the host's libraries: only a static one can. The
# sanitizer build links its agent dynamically (image sandboxes then are refused clearly); its
# image tests borrow the static agent of the normal build, so the sanitized CLI, puller and
# backend still run them.
def _static_agent():
    if not elf_is_dynamic(AGENT):
        return AGENT
    other = ROOT / "build" / "src" / "agentkernel-agent"
    if not other.exists() or elf_is_dynamic(other):
        return None
    copy = _session_copy(str(other))
    _OUR_AGENTS.add(copy)
    return copy


STATIC_AGENT = _static_agent()
needs_static_agent = pytest.mark.skipif(
    STATIC_AGENT is None, reason="no statically linked agent (build ./build first)")


# ---- attackers (tests/security) ----

ATTACKER_UID = 62001  # a second local user: no passwd entry, no groups, no capabilities


class LocalUser:
    """Another local user on the host, made up by the test: an unprivileged uid with a home of
    its own. run() executes a command as that user (setpriv drops every capability and
    supplementary group); ak() runs agentkernel as that user with its own data directory."""

    def __init__(self, uid, home):
        self.uid = uid
        self.home = pathlib.Path(home)
        self.prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       "--inh-caps=-all", "--"]
        self.env = {"HOME": str(self.home), "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "LANG": "C.UTF-8"}

    def run(self, argv, env=None, timeout=60, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return Result(subprocess.run(self.prefix + [str(a) for a in argv], env=e,
                                     capture_output=True, timeout=timeout, **kw))

    def popen(self, argv, env=None, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.Popen(self.prefix + [str(a) for a in argv], env=e, **kw)

    def python(self, code, *args, **kw):
        """Runs Debian's python3 with code as that user."""
        return self.run(["/usr/bin/python3", "-c", code, *args], **kw)

    def ak(self):
        return Ak(self.home / "data", env=dict(self.env), prefix=list(self.prefix))


def _open_tmp_path(tmp_path):
    """The tmp_path chain (0700, root) would keep another user out of its home below it:
    search permission (no read, no write) for group and others."""
    for d in (tmp_path, *tmp_path.parents):
        if str(d) in ("/", "/tmp"):
            break
        os.chmod(d, os.stat(d).st_mode | 0o011)


@pytest.fixture
def local_user(tmp_path):
    """A second local user (see LocalUser) whose home is a fresh directory it owns."""
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    home = tmp_path / "attacker-home"
    home.mkdir()
    os.chown(home, ATTACKER_UID, ATTACKER_UID)
    _open_tmp_path(tmp_path)
    return LocalUser(ATTACKER_UID, home)


NOBODY = 65534


def rootless_nobody(prefix):
    """For a fixture (`yield from`): an Ak run as nobody, rootless, with a home of its own (a new
    directory under /tmp named with prefix, its data directory inside). Skips where setpriv or
    unprivileged user namespaces are missing. Afterwards its sandboxes are removed and the home
    deleted."""
    import tempfile

    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    home = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    os.chown(home, NOBODY, NOBODY)
    inst = Ak(home / "data", env={"HOME": str(home)},
              prefix=["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
    probe = subprocess.run(inst.prefix + ["unshare", "-Ur", "true"], capture_output=True)
    if probe.returncode != 0:
        shutil.rmtree(home)
        pytest.skip("unprivileged user namespaces are disabled on this host")
    try:
        yield inst
    finally:
        for s in json.loads(inst("list", "--json").out or b"[]"):
            inst("remove", s["name"])
        shutil.rmtree(home)


PROJECT_OWNER_UID = 62002  # the owner of a user's project directory: a host user, not root


@pytest.fixture
def rootless_owner(tmp_path):
    """PROJECT_OWNER_UID running agentkernel itself, rootless, with a home of its own (0700,
    its data directory inside): an Ak whose sandboxes' root is that very user, so what they
    write in its directories is the caller's own. Skips where unprivileged user namespaces
    are off. Afterwards, like `ak`: its sandboxes are removed and nothing of them is left."""
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    before = set(agent_pids())
    home = tmp_path / "owner-home"
    home.mkdir(mode=0o700)
    os.chown(home, PROJECT_OWNER_UID, PROJECT_OWNER_UID)
    _open_tmp_path(tmp_path)
    user = LocalUser(PROJECT_OWNER_UID, home)
    probe = user.run(["unshare", "-Ur", "true"])
    if probe.rc != 0:
        pytest.skip(f"unprivileged user namespaces are disabled here: {probe.stderr.strip()}")
    inst = user.ak()
    yield inst
    uuids = []
    try:
        for s in inst.list():
            uuids.append(s["uuid"])
            inst("remove", s["name"], timeout=60)
    except Exception:  # the test may have broken the store on purpose
        pass
    assert_nothing_left(inst, uuids)
    assert_no_new_agents(before)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "egress: egress policy tests (issue 14): they run in the private test world "
        "of tests/egress_world.py; `-m 'not egress'` leaves them out")


def pytest_collection_modifyitems(config, items):
    if not ASAN_BUILD:
        return
    skip = pytest.mark.skip(reason="left to the normal build's run (conftest.py, "
                            "SANITIZER_RUN_LEAVES_OUT: its time is QEMU's or an engine's)")
    for item in items:
        rel = pathlib.Path(str(item.fspath)).relative_to(ROOT).as_posix()
        if rel.startswith(SANITIZER_RUN_LEAVES_OUT):
            item.add_marker(skip)
