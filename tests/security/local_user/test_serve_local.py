# SPDX-License-Identifier: Apache-2.0
"""Another local user attacks root's `agentkernel serve` (issue 12, findings 2, 5 and 13).

Loopback TCP carries no identity: before, a default (keyless) root server let every local user
run commands in root's sandboxes, which with a setuid file planted through a workspace was host
root. And 520 idle connections of that user made the API time out for its owner.

What must hold: the default server wants a key that only its owner can read; the unix socket
lets in only its owner (by mode, and by SO_PEERCRED and namespaces if the mode is loosened); a
key file someone else could know is never adopted; and the owner keeps being answered within a
second or two while another user holds or dribbles a thousand connections."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import AK, ATTACKER_UID, needs_root
from serve_client import Server, UnixHTTPConnection, free_port

pytestmark = needs_root

# The attacker's HTTP client: argv = port, method, path, body or "", extra headers as JSON.
CLIENT = r"""
import http.client, json, sys
port, method, path, body, extra = sys.argv[1:6]
h = json.loads(extra)
if body:
    h.setdefault("Content-Type", "application/json")
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=20)
c.request(method, path, body=body or None, headers=h)
r = c.getresponse()
print(r.status, r.read().decode())
"""


def attack(user, server, method, path, body=None, headers=None):
    res = user.python(CLIENT, str(server.port), method, path,
                      json.dumps(body) if body is not None else "", json.dumps(headers or {}))
    assert res.rc == 0, res
    status, _, text = res.stdout.partition(" ")
    return int(status), text


@pytest.fixture
def server(ak, local_user):
    """root's default server (no key given: it makes one), with a sandbox 'box' of root's."""
    assert ak("create", "box", "--no-network").rc == 0
    s = Server(ak)
    yield s
    s.stop()


def owner_latency(server, n=5):
    """The slowest of n authenticated requests of the owner, in seconds (inf when one fails)."""
    worst = 0.0
    for _ in range(n):
        t0 = time.time()
        try:
            st, _ = server.request("GET", "/sandboxes", timeout=10)
        except OSError:
            return float("inf")
        if st != 200:
            return float("inf")
        worst = max(worst, time.time() - t0)
    return worst


# ---- the keyless default ----

ROUTES = [
    ("POST", "/run", {"command": ["id"]}),
    ("POST", "/run/stream", {"command": ["id"]}),
    ("POST", "/batch/run", {"commands": [{"command": ["id"]}]}),
    ("GET", "/sandboxes", None),
    ("POST", "/sandboxes", {"name": "mine"}),
    ("POST", "/sandboxes/box/exec", {"command": ["id"]}),
    ("POST", "/sandboxes/box/exec/detach", {"command": ["sleep", "60"]}),
    ("PUT", "/sandboxes/box/files/tmp/planted", {"content": "x"}),
    ("GET", "/sandboxes/box/files/etc/hostname", None),
    ("POST", "/sandboxes/box/files", {"files": {"/tmp/planted2": "x"}}),
    ("DELETE", "/sandboxes/box", None),
    ("POST", "/sandboxes/box/stop", None),
    ("POST", "/sandboxes/box/pause", None),
    ("GET", "/metrics", None),
    ("GET", "/permissions", None),
    ("POST", "/permissions/grant", {"kind": "sandbox_create", "scope": "always"}),
    ("POST", "/permissions/check", {"kind": "sandbox_create"}),
    ("DELETE", "/permissions/grant_" + "0" * 32, None),
]


@pytest.mark.parametrize("method, path, body", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_other_user_cannot_use_default_server(server, local_user, ak, method, path, body):
    """Another user tries root's default server over loopback TCP: every route but /health is
    401 (before: it ran commands in root's sandboxes as root)."""
    st, text = attack(local_user, server, method, path, body)
    assert st == 401, text
    assert ak.names() == ["box"]
    st, resp = server.request("GET", "/sandboxes/box")
    assert st == 200 and resp["data"]["status"] == "running"
    st, resp = server.request("GET", "/sandboxes/box/files/tmp/planted")
    assert st == 404


def test_other_user_with_guessed_or_forwarded_identity(server, local_user):
    """Wrong keys, and headers claiming another identity (X-Forwarded-For, X-Remote-User:
    root, a localhost Origin), get the other user nothing."""
    for h in ({"Authorization": "Bearer " + "0" * 64}, {"X-API-Key": "root"},
              {"X-Forwarded-For": "127.0.0.1", "X-Remote-User": "root",
               "X-Forwarded-User": "root", "Origin": f"http://127.0.0.1:{server.port}"}):
        st, text = attack(local_user, server, "POST", "/run", {"command": ["id"]}, h)
        assert st == 401, (h, text)


def test_key_file_unreadable_by_other_user(server, local_user, ak):
    """The generated key is 0600 and root's: the other user cannot read it, even when it can
    reach the directory."""
    key = ak.data_dir / "api-key"
    st = key.stat()
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
    os.chmod(ak.data_dir, 0o755)  # as if the directory were open: the file alone must hold
    res = local_user.python("import sys; print(open(sys.argv[1]).read())", str(key))
    assert res.rc != 0 and "Permission denied" in res.stderr
    assert server.key not in res.stdout


def test_unauthenticated_body_is_not_read(server, local_user):
    """An unauthenticated request announcing a 16 MB body is answered 401 at once, from its
    headers: the server never buffers a body for a peer without the key (before: it waited for
    the whole body, per connection)."""
    res = local_user.python(r"""
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
c.sendall(b"POST /run HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
          b"Content-Length: 16000000\r\n\r\n{")
print(c.recv(100)[:12].decode())
""", str(server.port))
    assert res.rc == 0 and res.stdout.startswith("HTTP/1.1 401"), res


# ---- the unix socket ----

@pytest.fixture
def sock_server(ak, local_user, tmp_path):
    d = tmp_path / "sockdir"
    d.mkdir()
    os.chmod(d, 0o755)  # the other user can reach the directory; the socket's mode decides
    path = str(d / "ak.sock")
    s = Server(ak, "--socket", path)
    yield s
    s.stop()


def unix_attack(user, path, method, path_, body=None):
    res = user.python(r"""
import json, socket, sys
path, method, url, body = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(path)
except OSError as e:
    print("connect", e.errno)
    sys.exit(0)
h = "Host: localhost\r\n"
if body:
    h += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
s.sendall(("%s %s HTTP/1.1\r\n%s\r\n%s" % (method, url, h, body)).encode())
print("status", s.recv(100).split()[1].decode())
""", path, method, path_, json.dumps(body) if body is not None else "")
    assert res.rc == 0, res
    return res.stdout.split()


def test_socket_is_owner_only_by_mode(sock_server, local_user):
    """The socket is 0600 and root's: the other user's connect() is refused by the kernel."""
    st = os.stat(sock_server.socket)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
    out = unix_attack(local_user, sock_server.socket, "GET", "/sandboxes")
    assert out == ["connect", "13"], out  # EACCES


def test_socket_refuses_other_uid_by_peercred(sock_server, local_user, ak):
    """With the socket's mode loosened by mistake (0666), another uid still gets 401: the
    keyless trust is for the server's uid (or root), by SO_PEERCRED, not for whoever connects."""
    os.chmod(sock_server.socket, 0o666)
    for method, path, body in (("GET", "/sandboxes", None), ("POST", "/run", {"command": ["id"]}),
                               ("POST", "/sandboxes", {"name": "x"})):
        out = unix_attack(local_user, sock_server.socket, method, path, body)
        assert out == ["status", "401"], (path, out)
    assert ak.names() == []


def test_socket_owner_needs_no_key(sock_server):
    """Control: the owner, in its own namespaces, needs no key on the socket."""
    c = UnixHTTPConnection(sock_server.socket, timeout=10)
    c.request("GET", "/sandboxes")
    assert c.getresponse().status == 200


def test_socket_root_in_other_namespaces_needs_a_key(sock_server):
    """A process with the server's uid but in another mount namespace (as a container or a
    sandbox reaching the socket through a mount would be) is not trusted without the key."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    code = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(b"GET /sandboxes HTTP/1.1\r\nHost: localhost\r\n\r\n")
print(s.recv(100).split()[1].decode())
"""
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "/usr/bin/python3", "-c",
                          code, sock_server.socket], capture_output=True, timeout=30)
    assert res.returncode == 0, res
    assert res.stdout.decode().strip() == "401"


def test_socket_in_a_directory_others_can_write_is_refused(ak, tmp_path):
    """A socket in a directory others may write (not sticky) could be swapped under clients:
    serve refuses to create it there."""
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    res = subprocess.run([AK, "serve", "--no-tcp", "--socket", str(d / "s.sock")], env=ak.env,
                         capture_output=True, timeout=10)
    assert res.returncode != 0 and b"writable by other users" in res.stderr
    assert not (d / "s.sock").exists()


def test_socket_path_owned_by_someone_else_is_not_replaced(ak, tmp_path, local_user):
    """Something of another user at the socket path is neither removed nor replaced."""
    d = tmp_path / "sd"
    d.mkdir()
    victim = d / "s.sock"
    victim.write_text("theirs")
    os.chown(victim, ATTACKER_UID, ATTACKER_UID)
    res = subprocess.run([AK, "serve", "--no-tcp", "--socket", str(victim)], env=ak.env,
                         capture_output=True, timeout=10)
    assert res.returncode != 0 and b"not a socket of yours" in res.stderr
    assert victim.read_text() == "theirs"


# ---- key files someone else could know ----

def serve_must_refuse(ak, env=None):
    """Starts serve; it must exit non-zero within 10 s instead of serving."""
    e = dict(ak.env)
    e.update(env or {})
    p = subprocess.Popen([AK, "serve", "--port", str(free_port())], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("serve started with a key file someone else controls")
    assert p.returncode != 0
    return err.decode()


def test_planted_data_dir_with_known_key_refused(ak, local_user):
    """The other user prepares a directory with an api-key it knows and gets root to use it as
    AGENTKERNEL_DATA_DIR: serve refuses it (owned by someone else) instead of requiring a key
    the attacker knows (before: no key at all)."""
    d = local_user.home / "trap"
    res = local_user.run(["sh", "-c", f"mkdir -m 755 {d} && umask 077 && "
                                      f"echo attackerkey > {d}/api-key"])
    assert res.rc == 0, res
    err = serve_must_refuse(ak, {"AGENTKERNEL_DATA_DIR": str(d)})
    assert "uid" in err or "belongs" in err or "owned" in err, err


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602], ids=oct)
def test_key_file_with_loose_mode_refused(ak, mode):
    """A key file others could read or write (any group/other bit) is refused, not used."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    k = ak.data_dir / "api-key"
    k.write_text("k" * 64 + "\n")
    os.chmod(k, mode)
    err = serve_must_refuse(ak)
    assert "other users" in err, err


def test_key_file_owned_by_other_user_refused(ak, local_user):
    """A key file belonging to another uid (who therefore knows it) is refused."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    k = ak.data_dir / "api-key"
    k.write_text("k" * 64 + "\n")
    os.chmod(k, 0o600)
    os.chown(k, ATTACKER_UID, ATTACKER_UID)
    err = serve_must_refuse(ak)
    assert f"uid {ATTACKER_UID}" in err, err


def test_key_file_symlink_refused(ak, local_user):
    """api-key as a symlink to a file the other user controls is never followed."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    target = local_user.home / "known-key"
    res = local_user.run(["sh", "-c", f"umask 077; echo attackerkey > {target}"])
    assert res.rc == 0
    (ak.data_dir / "api-key").symlink_to(target)
    err = serve_must_refuse(ak)
    assert "symbolic link" in err, err


def test_key_file_fifo_refused(ak):
    """A FIFO at the key path neither hangs serve nor is used."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    os.mkfifo(ak.data_dir / "api-key", 0o600)
    err = serve_must_refuse(ak)
    assert "not a regular file" in err, err


# ---- connection exhaustion ----

HOLDER = r"""
import socket, sys, time
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if mode == "dribble":
            s.sendall(b"GET /sandboxes HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        socks.append(s)
    except OSError:
        pass
print("ready", len(socks), flush=True)
deadline = time.time() + float(sys.argv[4])
closed = 0
first_close = None
alive = list(socks)
while time.time() < deadline and alive:
    nxt = []
    for s in alive:
        try:
            if mode == "dribble":
                s.sendall(b"a")
            s.setblocking(False)
            try:
                s.recv(1)  # an answer (503) or the end: the server let go of it
                raise ConnectionResetError
            except BlockingIOError:
                pass  # nothing yet: still held open
            s.setblocking(True)
            nxt.append(s)
        except OSError:
            closed += 1
            first_close = first_close or time.time()
    alive = nxt
    time.sleep(0.25)
print("closed", closed, "open", len(alive), flush=True)
time.sleep(1)
"""


def hold(user, server, n, mode, seconds):
    p = user.popen(["/usr/bin/python3", "-c", HOLDER, str(server.port), str(n), mode,
                    str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode().split()
    assert line[:1] == ["ready"], (line, p.stderr.read())
    return p, int(line[1])


def finish(p):
    out, err = p.communicate(timeout=60)
    fields = out.decode().split()
    assert fields[:1] == ["closed"], (out, err)
    return int(fields[1]), int(fields[3])


def test_thousand_idle_connections_do_not_starve_owner(server, local_user):
    """The other user opens 1,000 TCP connections and keeps them: the owner is answered within
    2 s throughout (before: connection limit reached, the owner was refused or timed out)."""
    p, opened = hold(local_user, server, 1000, "idle", 8)
    try:
        assert owner_latency(server, 10) < 2.0
        time.sleep(2)
        assert owner_latency(server, 10) < 2.0
        assert server.request("GET", "/health", key=False)[0] == 200
    finally:
        closed, still_open = finish(p)
    # the server did not keep them: beyond the per-user cap they were refused at once, the rest
    # closed at the header deadline
    assert still_open == 0, (opened, closed, still_open)


def test_dribbled_headers_do_not_starve_owner(server, local_user):
    """The other user opens connections and dribbles its headers a byte at a time (each byte
    used to restart the idle timeout): the owner is answered within 2 s, and the dribbling
    connections are closed at the header deadline (a few seconds), not kept."""
    p, opened = hold(local_user, server, 300, "dribble", 12)
    try:
        for _ in range(4):
            assert owner_latency(server, 5) < 2.0
            time.sleep(1)
    finally:
        closed, still_open = finish(p)
    assert still_open == 0 and closed == opened, (opened, closed, still_open)


def test_other_user_gets_a_bounded_share(server, local_user):
    """One other uid holds at most its share of the server's connections (32): the rest are
    refused at once with 503, so the owner's reserve stays free."""
    res = local_user.python(r"""
import socket, sys
port = int(sys.argv[1])
socks, refused = [], 0
for i in range(100):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    socks.append(s)
import time; time.sleep(1)
for s in socks:
    s.setblocking(False)
    try:
        d = s.recv(100)
        if d.startswith(b"HTTP/1.1 503") or d == b"":
            refused += 1
    except BlockingIOError:
        pass
    except OSError:
        refused += 1
print(refused)
""", str(server.port))
    assert res.rc == 0, res
    assert int(res.stdout) >= 100 - 32, res.stdout


def test_owner_keeps_its_reserve(server):
    """Control: the owner itself may hold many more connections than another user's share."""
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    try:
        time.sleep(0.5)
        refused = 0
        for s in socks:
            s.setblocking(False)
            try:
                s.recv(100)  # a 503, or the end
                refused += 1
            except BlockingIOError:
                pass  # held open, as it should be
        assert refused == 0
        assert owner_latency(server, 3) < 2.0
    finally:
        for s in socks:
            s.close()


def test_key_on_the_command_line_is_not_left_in_ps(ak, local_user):
    """`serve --api-key KEY`: the other user reads the server's command line (ps,
    /proc/PID/cmdline, readable by everyone): the key is gone from it once serve runs."""
    secret = "s3cret-" + "9" * 40
    s = Server(ak, "--api-key", secret)
    try:
        res = local_user.run(["cat", f"/proc/{s.proc.pid}/cmdline"])
        assert res.rc == 0, res
        assert "serve" in res.stdout and secret not in res.stdout
        assert s.request("GET", "/sandboxes", headers={"Authorization": f"Bearer {secret}"})[0] \
            == 200
    finally:
        s.stop()
