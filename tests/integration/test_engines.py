# SPDX-License-Identifier: Apache-2.0
"""The docker and podman backends against real engines started here (engines.py): one suite,
run against both. Lifecycle, exec, files, exit codes, isolation and hardening, crash recovery."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

import engines
from conftest import STATIC_AGENT, needs_root, needs_static_agent

pytestmark = [needs_root, needs_static_agent]

KINDS = [k for k in ("docker", "podman")]


@pytest.fixture(scope="module", params=KINDS)
def engine(request, tmp_path_factory):
    yield from engines.started(request.param, tmp_path_factory)


@pytest.fixture
def eak(ak, engine):
    """The CLI pointed at the engine (engines.cli_on): no container of the test's left behind."""
    yield from engines.cli_on(ak, engine, STATIC_AGENT)


def run(eak, *cmd, **kw):
    return eak("run", "-B", eak.engine.name, "-i", eak.engine.image, "--no-network", "--",
               *cmd, **kw)


def test_run_exit_codes_argv_and_streams(eak):
    res = run(eak, "sh", "-c", 'echo out; echo err >&2; exit 7')
    assert res.rc == 7, res
    assert res.stdout == "out\n" and res.stderr.endswith("err\n")
    odd = ["a b", "it's", 'q"uote', "new\nline", "$HOME", "*"]
    res = run(eak, "sh", "-c", 'for a in "$@"; do printf "[%s]" "$a"; done', "sh", *odd)
    assert res.rc == 0, res
    assert res.stdout == "".join(f"[{a}]" for a in odd)
    res = run(eak, "sh", "-c", "kill -TERM $$")
    assert res.rc == 128 + signal.SIGTERM, res
    res = run(eak, "/nonexistent")
    assert res.rc == 127, res


def test_lifecycle_exec_and_files(eak, tmp_path):
    name = eak.engine.name
    res = eak("create", "box", "-B", name, "-i", eak.engine.image, "--no-network")
    assert res.rc == 0, res
    [s] = eak.list()
    assert s["status"] == "running" and s["backend"] == name
    res = eak("exec", "box", "--", "sh", "-c", "echo $HOSTNAME; hostname; id -u")
    assert res.stdout.split() == ["agentkernel", "agentkernel", "0"], res
    data = os.urandom(3 << 20)
    src = tmp_path / "blob"
    src.write_bytes(data)
    assert eak("cp", str(src), "box:/tmp/blob").rc == 0
    back = tmp_path / "back"
    assert eak("cp", "box:/tmp/blob", str(back)).rc == 0
    assert back.read_bytes() == data
    res = eak("exec", "-d", "box", "--", "sleep", "30")
    assert res.rc == 0, res
    assert "sleep" in eak("sandbox", "exec-list", "box").stdout
    c = eak.engine.inspect("agentkernel-box")
    assert c["Config"]["Labels"]["agentkernel.sandbox"] == "box"
    assert eak("stop", "box").rc == 0
    assert eak.list()[0]["status"] == "stopped"
    assert eak.engine.inspect("agentkernel-box") is None
    assert eak("start", "box").rc == 0
    assert eak("exec", "box", "--", "true").rc == 0
    assert eak("remove", "box").rc == 0
    assert eak.engine.inspect("agentkernel-box") is None
    assert not (eak.data_dir / "run" / "box").exists()


def test_every_container_is_hardened(eak):
    name = eak.engine.name
    assert eak("create", "hard", "-B", name, "-i", eak.engine.image, "--no-network").rc == 0
    c = eak.engine.inspect("agentkernel-hard")
    hc = c["HostConfig"]
    if name == "docker":
        assert [x.upper().removeprefix("CAP_") for x in hc["CapDrop"]] == ["ALL"]
        assert sorted(x.upper().removeprefix("CAP_") for x in hc["CapAdd"]) == \
            ["CHOWN", "SETGID", "SETUID"]
    else:  # podman reports what remains
        assert sorted(c["BoundingCaps"]) == ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID"]
        assert sorted(c["EffectiveCaps"]) == ["CAP_CHOWN", "CAP_SETGID", "CAP_SETUID"]
    assert any("no-new-privileges" in o for o in hc["SecurityOpt"])
    assert hc["PidsLimit"] > 0 and hc["Memory"] == 512 << 20 and hc["NanoCpus"] > 0
    assert hc["NetworkMode"] == "none" and not hc["Privileged"]
    # the same, seen from inside an ephemeral run (never inspected from outside)
    res = run(eak, "sh", "-c", "grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; ls /sys/class/net")
    assert res.rc == 0, res
    lines = dict(l.split(":\t") for l in res.stdout.splitlines() if ":\t" in l)
    assert lines["CapBnd"] == "00000000000000c1" and lines["NoNewPrivs"] == "1"
    assert res.stdout.split()[-1] == "lo"  # network none: loopback only
    res = eak("create", "ro", "-B", name, "-i", eak.engine.image, "--profile", "restrictive")
    assert res.rc == 0, res
    assert eak.engine.inspect("agentkernel-ro")["HostConfig"]["ReadonlyRootfs"] is True
    res = eak("exec", "ro", "--", "touch", "/x")
    assert res.rc != 0


def test_pids_limit_holds(eak):
    name = eak.engine.name
    assert eak("create", "fork", "-B", name, "-i", eak.engine.image, "--no-network").rc == 0
    res = eak("exec", "fork", "--", "sh", "-c",
              "for i in $(seq 3000); do sleep 5 & done 2>/dev/null; wait; echo done")
    assert eak("exec", "fork", "--", "true").rc == 0  # still usable


def test_cli_killed_during_start_then_a_new_process_removes(eak):
    name = eak.engine.name
    p = eak.popen("create", "crash", "-B", name, "-i", eak.engine.image, "--no-network",
                  env={"AGENTKERNEL_TEST_HOOK": "engine-container-started"},
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        st = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0]
        if st == "T":
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert eak.engine.inspect("agentkernel-crash") is not None  # the container outlived it
    assert [s["name"] for s in eak.list()] == ["crash"]
    res = eak("remove", "crash")
    assert res.rc == 0, res
    assert eak.engine.inspect("agentkernel-crash") is None


def test_a_foreign_container_of_the_same_name_is_never_touched(eak):
    eng = eak.engine
    eng.cli("create", "--name", "agentkernel-theirs", eng.image, "sleep", "1")
    try:
        res = eak("create", "theirs", "-B", eng.name, "-i", eng.image, "--no-network")
        assert res.rc != 0 and "not this sandbox's" in res.stderr, res
        eak("remove", "theirs")
        assert eng.inspect("agentkernel-theirs") is not None
    finally:
        eng.cli("rm", "-f", "agentkernel-theirs")


def test_host_image_and_missing_engine_are_clear_errors(eak):
    res = eak("run", "-B", eak.engine.name, "--", "true")
    assert res.rc != 0 and "not the 'host' image" in res.stderr, res
    var = "DOCKER_HOST" if eak.engine.name == "docker" else "CONTAINER_HOST"
    res = eak("run", "-B", eak.engine.name, "-i", eak.engine.image, "--", "true",
              env={var: "unix:///nonexistent.sock"})
    assert res.rc != 0 and "nonexistent.sock" in res.stderr, res
    assert eak.list() == []


def test_a_killed_run_is_swept_by_the_next(eak):
    eng = eak.engine
    p = eak.popen("run", "-B", eng.name, "-i", eng.image, "--no-network", "--", "sleep", "60",
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not [c for c in eng.containers()
                                          if c.startswith("agentkernel-run-")]:
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    left = [c for c in eng.containers() if c.startswith("agentkernel-run-")]
    assert left, "the run's container should outlive its killed CLI until a sweep"
    assert run(eak, "true").rc == 0
    assert not [c for c in eng.containers() if c in left]
    eph = eak.data_dir / "run" / ".ephemeral"
    # the killed run's directory went with the sweep; the sweeping run's own goes with its
    # container, in the background after its exit status
    deadline = time.time() + 20
    while [d for d in eph.iterdir() if "agentkernel-run-" in d.name] and time.time() < deadline:
        time.sleep(0.1)
    assert not [d for d in eph.iterdir() if "agentkernel-run-" in d.name]


def _lock_holders(lock):
    """Pids of processes with lock (a file of the test's own data dir) open."""
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd) == str(lock):
                    out.append(int(d.name))
                    break
        except OSError:
            pass
    return out


def test_run_returns_before_removal_and_a_killed_remover_is_swept(eak):
    """An ephemeral run's container is removed after the run has returned its exit status, by a
    detached process holding the run's lock; that process killed before it removed anything
    (stopped at a test hook, then SIGKILLed) leaves the container and its directory to the next
    run's sweep: nothing is leaked."""
    eng = eak.engine
    eph = eak.data_dir / "run" / ".ephemeral"
    res = eak("run", "-B", eng.name, "-i", eng.image, "--no-network", "--", "sh", "-c", "exit 7",
              env={"AGENTKERNEL_TEST_HOOK": "engine-remove-detached"})
    assert res.rc == 7, res  # the status came back with the removal still to do
    dirs = [d for d in eph.iterdir() if d.name.startswith(f"{eng.name}-agentkernel-run-")]
    assert len(dirs) == 1, dirs
    name = dirs[0].name[len(eng.name) + 1:]
    assert eng.inspect(name) is not None
    holders = []
    deadline = time.time() + 10
    while not holders and time.time() < deadline:
        holders = _lock_holders(dirs[0] / "lock")
        time.sleep(0.05)
    assert len(holders) == 1, holders
    os.kill(holders[0], signal.SIGKILL)  # the remover dies (here before it did anything)
    deadline = time.time() + 10
    while _lock_holders(dirs[0] / "lock") and time.time() < deadline:
        time.sleep(0.05)
    assert eng.inspect(name) is not None  # left: the lock is free for a sweep
    assert run(eak, "true").rc == 0  # its sweep removes what the dead remover left
    assert eng.inspect(name) is None
    deadline = time.time() + 20
    while [d for d in eph.iterdir() if "agentkernel-run-" in d.name] and time.time() < deadline:
        time.sleep(0.1)
    assert not [d for d in eph.iterdir() if "agentkernel-run-" in d.name]


def test_ports_and_volumes(eak):
    import urllib.request
    import socket
    eng = eak.engine
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert eak("volume", "create", "vol").rc == 0
    # the engine's own port bindings: full mode's (proxy mode, the default now, publishes
    # through the port relay: test_proxy_mode_published_port)
    res = eak("create", "net", "-B", eng.name, "-i", eng.image, "--network", "full", "-p",
              f"{port}:8080", "-v", "vol:/data")
    assert res.rc == 0, res
    assert eng.inspect("agentkernel-net")["HostConfig"]["PortBindings"]["8080/tcp"][0] == \
        {"HostIp": "127.0.0.1", "HostPort": str(port)}
    res = eak("exec", "net", "--", "sh", "-c",
              'echo kept > /data/f; (printf "HTTP/1.0 200 OK\\r\\n\\r\\nfrom-box" | '
              'busybox nc -l -p 8080 &); sleep 0.3')
    assert res.rc == 0, res
    deadline = time.time() + 10
    body = None
    while body is None and time.time() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3).read()
        except OSError:
            time.sleep(0.2)
    assert body == b"from-box"
    assert eak("remove", "net").rc == 0
    res = eak("run", "-B", eng.name, "-i", eng.image, "--no-network", "-v", "vol:/data", "--",
              "cat", "/data/f")
    assert res.stdout == "kept\n", res
    assert eak("volume", "delete", "vol", "--force").rc == 0


def test_images_are_pulled_through_the_engine(eak, tmp_path):
    """An image the engine lacks is pulled by the engine itself (from a loopback registry)."""
    import oci
    eng = eak.engine
    if eng.name != "docker" or not oci.tools_present():
        pytest.skip("docker pulls from loopback registries without configuration; podman "
                    "would need registries.conf")
    lay = oci.Layout(tmp_path / "layout")
    oci.build_base(lay, "base", tmp_path / "bundles")
    reg = oci.Registry(tmp_path / "registry")
    try:
        name = reg.push(lay.path, "base", "eng/base:1")
        res = eak("run", "-B", eng.name, "-i", name, "--no-network", "--", "cat", "/srv/marker")
        assert res.rc == 0, res
        assert res.stdout == "amd64\n"
        res = eak("create", "x", "-B", eng.name, "-i", f"{reg.host}/eng/missing:1")
        assert res.rc != 0 and "cannot pull" in res.stderr, res
        assert eak.list() == []
    finally:
        reg.stop()


def pool_names(eng):
    return {c for c in eng.containers() if c.startswith("agentkernel-pool-")}


def wait_pool(eng, n, timeout=60):
    deadline = time.time() + timeout
    while len(pool_names(eng)) < n and time.time() < deadline:
        time.sleep(0.2)
    return pool_names(eng)


def test_fast_runs_use_each_pooled_container_once(eak):
    eng = eak.engine
    fast = ["run", "--fast", "-B", eng.name, "-i", eng.image, "--no-network", "--"]
    res = eak(*fast, "true")  # fills the pool in the background
    assert res.rc == 0, res
    seen = set()
    for i in range(8):
        ready = wait_pool(eng, 2)
        res = eak(*fast, "sh", "-c", "test ! -e /tmp/seen && touch /tmp/seen && echo fresh; "
                  "exit 3")
        assert res.rc == 3 and res.stdout == "fresh\n", res  # exit status kept
        used = ready - pool_names(eng)
        seen |= used
        for c in used:  # a claimed container is destroyed, never returned to the pool
            deadline = time.time() + 20
            while eng.inspect(c) is not None and time.time() < deadline:
                time.sleep(0.2)
            assert eng.inspect(c) is None, c
    # a run removes its claimed container in the background, under its pool name until it is
    # gone: what stays, once those removals are done, is at most the pool's target
    deadline = time.time() + 20
    while len(pool_names(eng)) > 5 and time.time() < deadline:
        time.sleep(0.2)
    assert len(pool_names(eng)) <= 5
    res = eak("pool", "clear")
    assert res.rc == 0 and f"{eng.name}: removed" in res.stdout, res
    assert not pool_names(eng)


def test_fast_runs_in_proxy_mode_are_pooled_and_captured(eak):
    """run --fast in proxy mode (the profile's default now): a pooled container (made with no
    network, the mode in the pool's key) gets its capture at the claim, before the command: a
    connect to any address ends at the user's proxy (fake_proxy.py), and it has only lo."""
    import pathlib
    from conftest import snapshot_cache
    eng = eak.engine
    eak.env["AGENTKERNEL_PROXY"] = str(pathlib.Path(__file__).with_name("fake_proxy.py"))
    pidfile = snapshot_cache(eak.data_dir).parent / "proxy" / "fake-proxy.pid"
    fast = ["run", "--fast", "-B", eng.name, "-i", eng.image, "--network", "proxy", "--"]
    probe = "ip -o link | cut -d: -f2; busybox nc -w 3 93.184.216.34 443 </dev/null"
    try:
        res = eak(*fast, "sh", "-c", probe)  # fills the pool in the background
        assert res.rc == 0 and "transparent 93.184.216.34:443" in res.stdout, res
        ready = wait_pool(eng, 1)
        assert ready
        res = eak(*fast, "sh", "-c", probe)
        assert res.rc == 0, res
        assert res.stdout.split("\n")[0].strip() == "lo", res
        assert "transparent 93.184.216.34:443" in res.stdout, res
        # the claimed container is removed in the background, under its pool name until gone
        deadline = time.time() + 20
        while not ready - pool_names(eng) and time.time() < deadline:
            time.sleep(0.2)
        assert ready - pool_names(eng), "the second run was not taken from the pool"
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_the_pool_never_hands_out_another_configuration(eak):
    eng = eak.engine
    assert eak("run", "--fast", "-B", eng.name, "-i", eng.image, "--no-network", "--",
               "true").rc == 0
    made_for_512 = wait_pool(eng, 5)
    res = eak("run", "--fast", "-B", eng.name, "-i", eng.image, "--no-network", "--memory",
              "256", "--", "sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert res.rc == 0, res
    assert int(res.stdout.split()[0]) == 256 << 20
    assert made_for_512 <= pool_names(eng) | made_for_512  # none of them was taken
    assert made_for_512 & pool_names(eng) == made_for_512


def test_our_seccomp_profile_is_the_containers(eak):
    """The profile's own seccomp rules (src/runtime/seccomp-rules.c), not the engine's default:
    restrictive is an allow-list, so ioprio_set (which the engines' defaults allow) fails."""
    eng = eak.engine
    fast = ["run", "-B", eng.name, "-i", eng.image, "--no-network"]
    res = eak(*fast, "--", "sh", "-c", "grep '^Seccomp:' /proc/self/status; ionice -c 3 -p $$ && "
              "echo allowed")
    assert res.rc == 0 and "allowed" in res.stdout and "\t2" in res.stdout, res
    res = eak(*fast, "--profile", "restrictive", "--", "sh", "-c", "ionice -c 3 -p $$ && echo allowed")
    assert res.rc != 0 and "allowed" not in res.stdout and "not permitted" in res.stderr, res
    assert eak("create", "sc", "-B", eng.name, "-i", eng.image, "--no-network").rc == 0
    opts = eng.inspect("agentkernel-sc")["HostConfig"]["SecurityOpt"]
    sc = [o for o in opts if o.startswith("seccomp")]
    assert sc, opts
    assert "io_uring_setup" in sc[0] or sc[0].endswith(".json"), sc


def test_proxy_mode(eak):
    """Proxy mode on a container (rootful): the engine makes it with no network, the host installs
    the capture in its namespace, and the user's proxy (fake_proxy.py, a test double) takes every
    connection; the proxy variables are in the environment; UDP ports are refused; stop
    unregisters."""
    import pathlib
    from conftest import snapshot_cache
    name = eak.engine.name
    eak.env["AGENTKERNEL_PROXY"] = str(pathlib.Path(__file__).with_name("fake_proxy.py"))
    pidfile = snapshot_cache(eak.data_dir).parent / "proxy" / "fake-proxy.pid"
    try:
        res = eak("create", "px", "-B", name, "-i", eak.engine.image, "--network", "proxy",
                  "--allow-host", "example.com")
        assert res.rc == 0, res
        res = eak("exec", "px", "--", "sh", "-c", "env | grep -i _proxy= | sort")
        assert "HTTPS_PROXY=http://127.0.0.1:15001" in res.stdout, res
        assert "no_proxy=localhost,127.0.0.1,::1" in res.stdout, res
        pid = eak.engine.inspect(f"agentkernel-px")["State"]["Pid"]
        code = ("import socket\ns=socket.create_connection(('93.184.216.34',443),3)\n"
                "print(s.recv(200).decode().strip())\n")
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "/usr/bin/python3", "-c", code],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout.strip() == "fake-proxy px transparent 93.184.216.34:443", out
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link"],
                             capture_output=True, text=True)
        assert [l.split(":")[1].strip() for l in out.stdout.splitlines()] == ["lo"], out
        # published ports: refused here before the port relay; now they work (published_port)
        res = eak("create", "pp", "-B", name, "-i", eak.engine.image, "--network", "proxy",
                  "-p", "18089:53/udp")
        assert res.rc != 0 and "--network full" in res.stderr, res
        assert eak("remove", "px").rc == 0
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_profile_network_on_is_proxy(eak):
    """A profile's network "on" (no --network) is proxy mode on docker and podman too, as on
    native: the container has no network of its own and the proxy variables; full stays opt-in."""
    import pathlib
    from conftest import snapshot_cache
    name = eak.engine.name
    eak.env["AGENTKERNEL_PROXY"] = str(pathlib.Path(__file__).with_name("fake_proxy.py"))
    pidfile = snapshot_cache(eak.data_dir).parent / "proxy" / "fake-proxy.pid"
    try:
        res = eak("create", "on", "-B", name, "-i", eak.engine.image, "--profile", "moderate")
        assert res.rc == 0, res
        assert eak.engine.inspect("agentkernel-on")["HostConfig"]["NetworkMode"] == "none"
        res = eak("exec", "on", "--", "sh", "-c", "env | grep -cE '^HTTPS?_PROXY=http://127.0.0.1:15001$'")
        assert res.stdout.strip() == "2", res  # HTTP_PROXY and HTTPS_PROXY
        res = eak("create", "full", "-B", name, "-i", eak.engine.image, "--network", "full")
        assert res.rc == 0, res
        assert eak.engine.inspect("agentkernel-full")["HostConfig"]["NetworkMode"] != "none"
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_answer(port, timeout=15):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                c.settimeout(3)
                d = c.recv(100)
                if d:
                    return d
        except OSError:
            pass
        time.sleep(0.2)
    return b""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_proxy_mode_published_port(eak):
    """A container in proxy mode (no network of its own) publishes a port: a server inside
    answers on the host's 127.0.0.1 through the relay and the agent's TCP_CONNECT; removing the
    sandbox closes the port."""
    import pathlib
    from conftest import snapshot_cache
    name = eak.engine.name
    eak.env["AGENTKERNEL_PROXY"] = str(pathlib.Path(__file__).with_name("fake_proxy.py"))
    pidfile = snapshot_cache(eak.data_dir).parent / "proxy" / "fake-proxy.pid"
    port = free_port()
    try:
        res = eak("create", "pub", "-B", name, "-i", eak.engine.image, "--network", "proxy",
                  "-p", f"{port}:8000")
        assert res.rc == 0, res
        assert eak("exec", "-d", "pub", "--", "busybox", "nc", "-ll", "-p", "8000", "-e",
                   "echo", "hello").rc == 0
        assert wait_answer(port) == b"hello\n"
        assert eak("remove", "pub").rc == 0
        time.sleep(0.5)
        assert wait_answer(port, timeout=1) == b""
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def processes_with_home(uid, home):
    """The pids of uid's processes whose environment has HOME=home: what a rootless podman the
    test started with that (fresh, unique) home left running (its service re-executes itself,
    and its pause process holds the user namespace)."""
    want = f"HOME={home}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat(f"/proc/{d}").st_uid != uid:
                continue
            with open(f"/proc/{d}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


@pytest.fixture
def rootless_podman():
    """podman's API service run by nobody (rootless: its containers in podman's own user
    namespace, one uid mapped), with the busybox test image, and an Ak as nobody pointed at it.
    Afterwards the service, its containers and every process of nobody's that carries the
    test's own HOME (the service's re-executed self, its pause process) are gone."""
    import shutil
    from conftest import rootless_nobody, NOBODY
    if not shutil.which("podman"):
        pytest.skip("needs podman")
    gen = rootless_nobody("ak-rlpodman-")
    ak = next(gen)
    home = ak.data_dir.parent
    conf = home / "containers.conf"
    conf.write_text('[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
                    'events_logger = "file"\n')
    env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(home / "run"),
               CONTAINERS_CONF=str(conf))
    user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    (home / "run").mkdir(mode=0o700)
    os.chown(home / "run", NOBODY, NOBODY)
    sock = home / "podman.sock"
    svc = subprocess.Popen(user + ["podman", "system", "service", "--time=0", f"unix://{sock}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not sock.exists() and svc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if not sock.exists():
            pytest.skip("rootless podman does not start here")
        root = engines.make_rootfs(home / "rootfs")
        for a in ("wget", "nc"):
            os.symlink("busybox", root / "bin" / a)
        tar = subprocess.run(["tar", "--owner=0", "--group=0", "-C", str(root), "-c", "."],
                             capture_output=True, check=True).stdout
        p = subprocess.run(user + ["podman", "import", "-", "localhost/akbusybox:1"], input=tar,
                           env=env, capture_output=True)
        if p.returncode != 0:
            pytest.skip(f"rootless podman cannot import here: {p.stderr.decode()[-300:]}")
        ak.env.update(XDG_RUNTIME_DIR=str(home / "run"), CONTAINER_HOST=f"unix://{sock}",
                      AGENTKERNEL_AGENT=STATIC_AGENT)
        ak.podman = lambda *a: subprocess.run(user + ["podman", *a], env=env,
                                              capture_output=True, text=True)
        yield ak
    finally:
        for s in ak.list():
            ak("remove", s["name"])
        subprocess.run(user + ["podman", "rm", "-af", "-t", "0"], env=env, capture_output=True)
        svc.terminate()
        svc.wait(30)
        for pid in processes_with_home(NOBODY, home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            next(gen)
        except StopIteration:
            pass


def test_rootless_podman_proxy_mode(rootless_podman):
    """Rootless podman in proxy mode (the default): the starter's forked helper joins podman's
    user namespace, then the container's network namespace, installs the capture there and hands
    the listeners back; the container reaches nothing directly — an IP connect gets the real
    proxy's 403 (the built-in policy) — and has no interface but lo; a published port answers
    through the relay (the relay's namespace check works on podman's user namespace too)."""
    ak = rootless_podman
    res = ak("run", "-B", "podman", "-i", "localhost/akbusybox:1", "--", "sh", "-c",
             "ip -o link | cut -d: -f2; env | grep -c '^HTTPS_PROXY=http://127.0.0.1:15001$'; "
             "wget -q -O- http://93.184.216.34/ 2>&1; echo done")
    assert res.rc == 0, res
    out = res.stdout.split("\n")
    assert out[0].strip() == "lo" and out[1].strip() == "1", res
    assert "403 Forbidden" in res.stdout and "done" in res.stdout, res
    assert ak("create", "rl", "-B", "podman", "-i", "localhost/akbusybox:1").rc == 0
    res = ak("exec", "rl", "--", "wget", "-q", "-O-", "http://example.invalid/")
    assert res.rc != 0 and "403" in res.stderr, res
    port = free_port()
    res = ak("create", "rlpub", "-B", "podman", "-i", "localhost/akbusybox:1", "-p",
             f"{port}:8000")
    assert res.rc == 0, res
    assert ak("exec", "-d", "rlpub", "--", "busybox", "nc", "-ll", "-p", "8000", "-e", "echo",
              "hello").rc == 0
    assert wait_answer(port) == b"hello\n"


def test_engine_pause_and_resume(eak):
    """pause/resume through the engine's pause: list shows paused, exec is refused at once,
    resume continues the same processes, remove of a paused container is complete."""
    name = eak.engine.name
    assert eak("create", "pz", "-B", name, "-i", eak.engine.image, "--no-network").rc == 0
    assert eak("exec", "pz", "--", "sh", "-c", "echo 1 > /tmp/mark").rc == 0
    res = eak("pause", "pz")
    assert res.rc == 0 and res.stdout == "Paused sandbox 'pz'\n", res
    [s] = eak.list()
    assert s["status"] == "paused"
    t0 = time.time()
    res = eak("exec", "pz", "--", "true")
    assert res.rc != 0 and "is paused" in res.stderr, res
    assert time.time() - t0 < 10
    assert eak("pause", "pz").stdout == "Sandbox 'pz' is already paused\n"
    assert eak("resume", "pz").rc == 0
    res = eak("exec", "pz", "--", "cat", "/tmp/mark")
    assert res.rc == 0 and res.stdout == "1\n", res
    assert eak("pause", "pz").rc == 0
    assert eak("remove", "pz").rc == 0
    assert eak.names() == []


def test_images_routes_through_the_engine(eak):
    """GET /images?backend=X lists the engine's images; DELETE removes a name nothing uses,
    refuses (409) the image a sandbox's record or a container uses, never forces."""
    from serve_client import Server
    eng = eak.engine
    eng.cli("tag", eng.image, "aktest/spare:1")
    assert eak("create", "img", "-B", eng.name, "-i", eng.image, "--no-network").rc == 0
    s = Server(eak)
    try:
        st, body = s.request("GET", f"/images?backend={eng.name}")
        assert st == 200, body
        names = {n for i in body["data"] for n in i["names"]}
        assert any("akbusybox:1" in n for n in names), names
        assert all(set(i) == {"id", "names", "size", "created", "in_use"} for i in body["data"])
        assert any(i["in_use"] for i in body["data"])
        st, body = s.request("DELETE", f"/images/{eng.image}?backend={eng.name}")
        assert st == 409 and "sandbox 'img'" in body["error"], body
        st, body = s.request("DELETE", f"/images/{eng.image}?backend={eng.name}&force=true")
        assert st == 400, body
        st, body = s.request("DELETE", f"/images/aktest/spare:1?backend={eng.name}")
        assert st == 200 and body["data"]["removed"] == "aktest/spare:1", body
        st, body = s.request("DELETE", f"/images/aktest/spare:1?backend={eng.name}")
        assert st == 404, body
        assert s.request("GET", "/images?backend=nosuch")[0] == 400
        assert s.request("GET", "/images?backend=microvm")[0] == 400
        assert s.request("DELETE", f"/images/-rf?backend={eng.name}")[0] == 400
    finally:
        s.stop()
    assert eng.image in eng.cli("images", "--format", "{{.Repository}}:{{.Tag}}")
