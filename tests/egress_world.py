# SPDX-License-Identifier: Apache-2.0
"""The egress test world (issue 14): a private "internet" that no packet can leave.

Layout (all made by the fixture, all removed afterwards, even when a test fails):

    [root netns: pytest]          nothing of the world is reachable from here
    [host-ns]                     lo (127.0.0.1: the "host loopback services"), veth 198.18.0.1
                                  and 2001:db8:18::1, default routes into the world; a mount
                                  namespace of its own where /etc/resolv.conf names 198.18.0.53.
                                  agentkernel (CLI, sandboxes, slirp4netns, the egress proxy)
                                  runs here: `world.ak(ak)` makes an Ak whose every command runs
                                  inside it (setns, see _ENTER).
    [world]                       veth 198.18.0.2 / 2001:db8:18::2, AnyIP: every IPv4 and IPv6
                                  address is local, so any stray packet ends here. Servers:
                                  tests/egress_world_server.py (HTTP, HTTPS with a throwaway CA,
                                  WebSocket, large download, git smart HTTP, DNS UDP/TCP, DoH,
                                  DoT, UDP echo, raw TCP echo on odd ports, SOCKS-ish, ICMP by the
                                  kernel) and a packet recorder on the veth.

Neither namespace has an interface to the machine's own network, so nothing can leave by
construction; tests/security/sandbox/test_egress_world.py checks that (interfaces, routes, and a
query to the machine's real resolver that lands in the world's DNS log instead).

Every server records what it received in one JSONL log; `mark()` then `events(mark, srv=...)`
lets a test assert what did NOT arrive.
"""
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SERVER = HERE / "egress_world_server.py"
PY = "/usr/bin/python3"

HOST_IP = "198.18.0.1"
GW_IP = "198.18.0.2"
DNS_IP = "198.18.0.53"
ALLOWED = "allowed.test"
ALLOWED_IP = "198.18.0.10"
ALLOWED_IP6 = "2001:db8:19::10"
DENIED = "denied.test"
DENIED_IP = "198.18.0.11"
DENIED_IP6 = "2001:db8:19::11"
OTHER_IP = "198.18.0.12"
DOH_HOST = "doh.test"
DOH_IP = "198.18.0.13"
HOST_PORTS = [18080, 18443]  # the host's loopback (and 198.18.0.1) services
BIG = 256 << 20

ZONE = {
    ALLOWED: {"A": ALLOWED_IP, "AAAA": ALLOWED_IP6, "TXT": "allowed-txt"},
    "*." + ALLOWED: {"A": ALLOWED_IP, "AAAA": ALLOWED_IP6},
    DENIED: {"A": DENIED_IP, "AAAA": DENIED_IP6, "TXT": "denied-txt"},
    "*." + DENIED: {"A": DENIED_IP, "AAAA": DENIED_IP6},
    "other.test": {"A": OTHER_IP},
    DOH_HOST: {"A": DOH_IP},
    "dot.test": {"A": DOH_IP},
    # lookalikes and tricks: all lead to the denied address
    "allowed.test.denied.test": {"A": DENIED_IP},
    "allowed.evil.test": {"A": DENIED_IP},
    "xn--llowed-2nf.test": {"A": DENIED_IP},  # "ɑllowed.test" (Latin alpha)
    "xn--llowed-9of.test": {"A": DENIED_IP},  # "аllowed.test" (Cyrillic a)
    "allowedtest.test": {"A": DENIED_IP},
    # names that resolve into ranges the policy must refuse
    "metadata.test": {"A": "169.254.169.254"},
    "loop.test": {"A": "127.0.0.1"},
    "private.test": {"A": "10.1.2.3"},
    "hostaddr.test": {"A": HOST_IP},
}


def big_sha256(n):
    """The SHA-256 of the first n bytes of the world's /big stream (egress_world_server.big)."""
    base = hashlib.shake_256(b"agentkernel-egress").digest(65536 - 8)
    h, k, left = hashlib.sha256(), 0, n
    while left > 0:
        chunk = (k.to_bytes(8, "big") + base)[:left]
        h.update(chunk)
        left -= len(chunk)
        k += 1
    return h.hexdigest()


def _run(*argv, check=True, **kw):
    res = subprocess.run([str(a) for a in argv], capture_output=True, timeout=60, **kw)
    if check and res.returncode != 0:
        raise RuntimeError(f"{argv}: {res.stderr.decode(errors='replace')}")
    return res


def make_ca(d):
    """A throwaway CA and one leaf for every test name and address (EC P-256: fast)."""
    d = pathlib.Path(d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run("openssl", "req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem",
         "-days", "3", "-subj", "/CN=agentkernel egress test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _run("openssl", "req", *ec, "-keyout", d / "leaf.key", "-out", d / "leaf.csr",
         "-subj", "/CN=" + ALLOWED)
    names = [n for n in ZONE] + ["localhost"]
    ips = [ALLOWED_IP, DENIED_IP, OTHER_IP, DOH_IP, DNS_IP, ALLOWED_IP6, DENIED_IP6]
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    (d / "leaf.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                "extendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", d / "leaf.csr", "-CA", d / "ca.pem",
         "-CAkey", d / "ca.key", "-CAcreateserial", "-out", d / "leaf.pem", "-days", "3",
         "-extfile", d / "leaf.ext")
    os.chmod(d / "ca.pem", 0o644)


def make_git_repo(root):
    """A bare repository <root>/repo.git with one commit whose README says 'egress-git-ok'."""
    root = pathlib.Path(root)
    work = root / "work"
    work.mkdir(parents=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", HOME=str(root))
    (work / "README").write_text("egress-git-ok\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "README"], ["commit", "-q", "-m", "one"]):
        _run("git", "-C", work, *argv, env=env)
    _run("git", "clone", "-q", "--bare", work, root / "repo.git", env=env)


# setns() into a process's network and mount namespaces, back to the working directory, exec
_ENTER = """import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
cwd = os.getcwd()
for ns, flag in (("net", 0x40000000), ("mnt", 0x00020000)):
    fd = os.open(f"/proc/{sys.argv[1]}/ns/{ns}", os.O_RDONLY)
    if libc.setns(fd, flag) != 0:
        sys.exit(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
os.chdir(cwd)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _ns_inode(pid_or_path):
    p = f"/proc/{pid_or_path}/ns/net" if isinstance(pid_or_path, int) else pid_or_path
    return os.stat(p).st_ino


class World:
    def __init__(self, base):
        self.base = pathlib.Path(base)
        n = os.getpid() % 100000
        self.hif, self.wif = f"akeg{n}h0", f"akeg{n}w0"
        self.log = self.base / "world.jsonl"
        self.ca = self.base / "ca.pem"
        self.git_root = self.base / "git"
        self.abstract = f"akeg-host-{n}"
        self.holder = self.wholder = None
        self.procs = []
        self.inodes = set()
        self.real_resolver = None

    # ---- building and tearing down

    def up(self):
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self):
        make_ca(self.base)
        make_git_repo(self.git_root)
        self.log.touch()
        for ln in open("/etc/resolv.conf"):
            if ln.split()[:1] == ["nameserver"]:
                self.real_resolver = ln.split()[1]
                break
        resolv = self.base / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:1 attempts:1\n")
        resolv.chmod(0o644)
        # Both namespaces are held by processes, never named in /run/netns (other tests on
        # this machine may sweep it). The host-ns gets a mount namespace of its own too, where
        # resolv.conf names the world's resolver.
        self.wholder = subprocess.Popen(
            ["unshare", "--net", "--", "/bin/sh", "-c", "echo up && exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "slave", "--", "/bin/sh", "-c",
             'mount --bind "$0" /etc/resolv.conf && echo up && exec sleep infinity', resolv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for p in (self.wholder, self.holder):
            if p.stdout.readline().strip() != b"up":
                raise RuntimeError("cannot make the world's namespaces: "
                                   + p.stderr.read().decode(errors="replace"))
        self.our_netns()
        _run("ip", "link", "add", self.hif, "netns", self.holder.pid, "type", "veth", "peer",
             "name", self.wif, "netns", self.wholder.pid)
        h = ["nsenter", f"--target={self.holder.pid}", "--net", "--"]
        w = ["nsenter", f"--target={self.wholder.pid}", "--net", "--"]
        for cmd in (
            h + ["ip", "link", "set", "lo", "up"],
            h + ["ip", "link", "set", self.hif, "up"],
            h + ["ip", "addr", "add", HOST_IP, "peer", GW_IP, "dev", self.hif],
            h + ["ip", "route", "add", "default", "via", GW_IP],
            h + ["ip", "-6", "addr", "add", "2001:db8:18::1/64", "dev", self.hif, "nodad"],
            h + ["ip", "-6", "route", "add", "default", "via", "2001:db8:18::2"],
            w + ["ip", "link", "set", "lo", "up"],
            w + ["ip", "link", "set", self.wif, "up"],
            w + ["ip", "addr", "add", GW_IP, "peer", HOST_IP, "dev", self.wif],
            w + ["ip", "-6", "addr", "add", "2001:db8:18::2/64", "dev", self.wif, "nodad"],
            # AnyIP: every address is local in the world (main table, so replies to the host
            # side still take the veth)
            w + ["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "main"],
            w + ["ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "main"],
        ):
            _run(*cmd)
        common = {"log": str(self.log), "cert": str(self.base / "leaf.pem"),
                  "key": str(self.base / "leaf.key"), "git_root": str(self.git_root),
                  "zone": ZONE}
        self._server(["nsenter", f"--target={self.wholder.pid}", "--net", "--"],
                     dict(common, role="world", ifname=self.wif))
        self._server(self.prefix(),
                     dict(common, role="host", host_addrs=["127.0.0.1", HOST_IP],
                          host_ports=HOST_PORTS, abstract=self.abstract))
        self.our_netns()

    def _server(self, prefix, cfg):
        path = self.base / f"{cfg['role']}.json"
        path.write_text(json.dumps(cfg))
        p = subprocess.Popen(prefix + [PY, str(SERVER), str(path)], stdout=subprocess.PIPE,
                             stderr=open(self.base / f"{cfg['role']}.err", "w"))
        self.procs.append(p)
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the {cfg['role']} server did not start: "
                               + (self.base / f"{cfg['role']}.err").read_text())

    def our_netns(self):
        """The inodes of the two network namespaces (taken from the processes that hold
        them)."""
        for p in (self.holder, self.wholder):
            if p is not None and p.poll() is None:
                self.inodes.add(_ns_inode(p.pid))
        return self.inodes

    def kill_strays(self, keep=()):
        """Kills every process left in the world's or the host-ns's network namespace but the
        world's own (keep): only our fixtures and the agentkernel they ran ever entered them
        (sandboxes in proxy mode have network namespaces of their own; their agents are
        removed by `agentkernel remove` first)."""
        inodes = self.our_netns()
        keep = set(keep)
        keep |= {p.pid for p in (self.holder, self.wholder) if p}
        keep |= {p.pid for p in self.procs if p.poll() is None}
        for _ in range(50):
            left = []
            for p in pathlib.Path("/proc").iterdir():
                if not p.name.isdigit() or int(p.name) in keep or int(p.name) == os.getpid():
                    continue
                try:
                    if os.stat(p / "ns/net").st_ino in inodes:
                        left.append(int(p.name))
                except OSError:
                    pass
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)

    def down(self):
        self.our_netns()
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []
        self.kill_strays()
        for p in (self.holder, self.wholder):
            if p:
                p.kill()
                p.wait()
        self.holder = self.wholder = None  # the namespaces (and the veth pair) go with them

    # ---- running things in it

    def prefix(self):
        """argv prefix that runs a command in the host-ns (network and mounts), in the
        caller's working directory (nsenter would leave it at /)."""
        return [PY, "-c", _ENTER, str(self.holder.pid)]

    def host(self, *argv, timeout=60, input=None):
        """Runs a command in the host-ns (where agentkernel and its proxy run)."""
        return subprocess.run(self.prefix() + [str(a) for a in argv], capture_output=True,
                              timeout=timeout, input=input)

    def in_world(self, *argv, timeout=60):
        return subprocess.run(["nsenter", f"--target={self.wholder.pid}", "--net", "--"]
                              + [str(a) for a in argv], capture_output=True, timeout=timeout)

    def ak(self, ak):
        """Points an Ak (the `ak` fixture's) at the host-ns; wak's teardown undoes it."""
        ak.prefix = self.prefix()
        return ak

    # ---- the recorders

    def mark(self):
        return self.log.stat().st_size

    def events(self, since=0, srv=None, settle=0.3):
        """Recorded events after mark `since` (after `settle` seconds for late packets)."""
        if settle:
            time.sleep(settle)
        with open(self.log, "rb") as f:
            f.seek(since)
            data = f.read()
        out = []
        for ln in data.splitlines():
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            if srv is None or ev["srv"] == srv or (isinstance(srv, (set, tuple, list))
                                                  and ev["srv"] in srv):
                out.append(ev)
        return out

    def wait_event(self, since, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev in self.events(since, settle=0):
                if pred(ev):
                    return ev
            time.sleep(0.05)
        return None

    def links(self, where):
        """The interface names of the host-ns ('host') or the world ('world')."""
        run = self.host if where == "host" else self.in_world
        out = run("ip", "-o", "link").stdout.decode()
        return sorted(ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines())

    def routes(self, where):
        run = self.host if where == "host" else self.in_world
        return (run("ip", "route", "show", "table", "all").stdout.decode()
                + run("ip", "-6", "route", "show", "table", "all").stdout.decode())


_COUNT = [0]


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def world_fixture(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the egress world needs root (network namespaces)")
    import shutil
    missing = [t for t in ("ip", "nsenter", "unshare", "openssl", "git") if not shutil.which(t)]
    if missing:
        pytest.skip(f"the egress world needs {', '.join(missing)}")
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # `timeout` (or CI) ending pytest with SIGTERM: unwind, so the world is torn down
        signal.signal(signal.SIGTERM, _terminated)
    _COUNT[0] += 1
    w = World(tmp_path_factory.mktemp("egress-world"))
    n = (os.getpid() * 7 + _COUNT[0]) % 100000
    w.hif, w.wif = f"akeg{n}h0", f"akeg{n}w0"
    w.abstract = f"akeg-host-{n}"
    w.up()
    try:  # sealed, or no egress verdict means anything (test_egress_world.py says more)
        assert w.links("host") == sorted(["lo", w.hif]), w.links("host")
        assert w.links("world") == sorted(["lo", w.wif]), w.links("world")
    except BaseException:
        w.down()
        raise
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The private internet (see the module's doc), one per test module."""
    w = world_fixture(tmp_path_factory)
    try:
        yield w
    finally:
        w.down()


@pytest.fixture
def wak(ak, world):
    """The `ak` fixture's CLI, run in the world's host namespace. Afterwards its sandboxes are
    removed there, and what agentkernel left running in that namespace (its egress proxy,
    slirp4netns) is ended before `ak`'s own checks run."""
    world.ak(ak)
    try:
        yield ak
    finally:
        try:
            for s in ak.list():
                ak("remove", s["name"], timeout=60)
        except Exception:  # the test may have broken the store on purpose
            pass
        world.kill_strays()
        ak.prefix = []


# ---- clients run inside sandboxes (Debian's python3, stdlib only)

WS_CLIENT = r"""
import base64, os, socket, ssl, struct, sys
host, port, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "tls"
s = socket.create_connection((host, port), 10)
if tls:
    ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))
    s = ctx.wrap_socket(s, server_hostname=host)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d:
        sys.exit("closed during the handshake")
    buf += d
head, buf = buf.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
msg = b"egress-ws-" + os.urandom(4).hex().encode()
mask = os.urandom(4)
s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
while len(buf) < 2 + len(msg):
    buf += s.recv(4096)
assert buf[2:2 + len(msg)] == msg, buf
print("ws-ok")
"""

# ICMP echo to argv[1]: a ping socket, else a raw one; prints "reply", "noreply" or the error
PING = r"""
import socket, sys, time
for typ in (socket.SOCK_DGRAM, socket.SOCK_RAW):
    try:
        s = socket.socket(socket.AF_INET, typ, socket.IPPROTO_ICMP)
        break
    except OSError as e:
        err = e
else:
    print("socket:", err.__class__.__name__); sys.exit(0)
s.settimeout(2)
try:
    pkt = b"\x08\x00\x00\x00\x12\x34\x00\x01akeg"
    c = sum(pkt[i] << 8 | pkt[i + 1] for i in range(0, len(pkt), 2))
    c = (c & 0xFFFF) + (c >> 16)
    c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
    s.sendto(pkt[:2] + bytes([c >> 8, c & 255]) + pkt[4:], (sys.argv[1], 0))
    s.recv(200)
    print("reply")
except OSError as e:
    print("send/recv:", e.__class__.__name__)
"""

# A DNS query (argv: server, port, name, qtype number, "udp"|"tcp"): prints the rcode and the
# answer count, or the error
DNS_QUERY = r"""
import os, socket, struct, sys
server, port, name, qtype, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\0" + struct.pack(">HH", qtype, 1)
try:
    if proto == "udp":
        s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (server, port))
        a = s.recv(4096)
    else:
        s = socket.create_connection((server, port), 3)
        s.settimeout(3)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2))[0]
        a = s.recv(n)
    print("rcode", a[3] & 15, "answers", struct.unpack(">H", a[6:8])[0])
except OSError as e:
    print("error", e.__class__.__name__)
"""

# Connect (TCP) to argv[1]:argv[2], send argv[3] (escapes allowed), print what came back
TCP_SEND = r"""
import socket, sys
host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape").encode("latin-1")
payload = payload.replace(b"@PAD@", b"a" * (256 << 10))
try:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(4)
    s.connect((host, port))
except OSError as e:
    print("error", e.__class__.__name__, e)
    sys.exit(0)
got = b""
try:
    s.sendall(payload)
    s.settimeout(float(sys.argv[4]) if len(sys.argv) > 4 else 2)
    while len(got) < 65536:
        d = s.recv(65536)
        if not d:
            break
        got += d
except OSError as e:
    pass
print("connected", repr(got[:400]))
"""


# Send a UDP datagram to argv[1]:argv[2] and wait for a reply
UDP_SEND = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(b"akeg-udp", (host, port))
    print("reply", s.recv(100))
except OSError as e:
    print("error", e.__class__.__name__)
"""


def ca_env(world):
    """`-e` options that hand the test CA to a sandbox's command (the host's /tmp is not
    visible inside); a command starts with CA_PREP to write it to /tmp/ca.pem."""
    return ["-e", "AKEG_CA=" + world.ca.read_text(), "-e", "SSL_CERT_FILE=/tmp/ca.pem",
            "-e", "GIT_SSL_CAINFO=/tmp/ca.pem", "-e", "NODE_EXTRA_CA_CERTS=/tmp/ca.pem",
            "-e", "CURL_CA_BUNDLE=/tmp/ca.pem"]


CA_PREP = 'printf "%s\\n" "$AKEG_CA" > /tmp/ca.pem; '


# ---- proxy mode (issue 14): what a test needs, and whether this build has it

PROXY = "127.0.0.1"
PROXY_PORT = 15001  # EGRESS.md: the sandbox's own 127.0.0.1:15001 is the proxy's listener


def proxy_missing():
    """What of issue 14's interfaces (EGRESS.md) this build lacks: [] when everything the
    egress tests drive is there. Only --help is asked: no sandbox, no proxy is started."""
    from conftest import AK
    if not os.path.exists(AK):
        return [f"the agentkernel binary ({AK}: build it first)"]
    missing = []

    def helptext(*argv):
        r = subprocess.run([AK, *argv], capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    rc, out = helptext("run", "--help")
    line = next((ln for ln in out.splitlines() if "--network" in ln and "no-network" not in ln),
                "")
    if "proxy" not in line and "MODE" not in line:
        missing.append("`run --network proxy` (run --help: " + (line.strip() or "no --network")
                       + ")")
    if "--allow-host" not in out:
        missing.append("`--allow-host`")
    for sub in ("policy", "log"):
        rc, out = helptext("network", sub, "--help")
        if rc != 0:
            missing.append(f"`agentkernel network {sub}` ({out.strip().splitlines()[0][:60]})")
    return missing


def leaks(world, mark, ok=None, names=(ALLOWED,)):
    """The events since mark that mean something left the sandbox: everything but the proxy's
    own A/AAAA lookups of an allowed name (and their packets to the world's resolver), and what
    `ok(event)` accepts."""
    out = []
    for e in world.events(mark):
        if e["srv"] == "dns" and e.get("qtype") in (1, 28) \
                and e.get("transport") in ("udp", "tcp") \
                and all(q.lower().rstrip(".") in names for q in e.get("qnames") or ["?"]):
            continue
        if e["srv"] == "wire" and e.get("dst") == DNS_IP and e.get("dport") == 53:
            continue
        if ok and ok(e):
            continue
        out.append(e)
    return out


def to_allowed(e):
    """An event of a legitimate request to the allowed host (for `leaks(ok=...)`)."""
    if e["srv"] == "http":
        return (e.get("host") or "").lower().split(":")[0].rstrip(".") == ALLOWED \
            and e.get("dst") == ALLOWED_IP
    if e["srv"] in ("tls", "ws"):
        return e.get("dst") == ALLOWED_IP and (e["srv"] == "ws" or e.get("sni") == ALLOWED)
    if e["srv"] == "wire":
        return e.get("dst") == ALLOWED_IP and e.get("dport") in (80, 443)
    return False


def proxy_dir(ak):
    """The proxy's directory (EGRESS.md, docs/network.md): /run/agentkernel/<id>/proxy as root,
    <id> the first 16 hex digits of the SHA-256 of the data directory's canonical path."""
    real = os.path.realpath(ak.data_dir)
    return pathlib.Path("/run/agentkernel") / hashlib.sha256(real.encode()).hexdigest()[:16] \
        / "proxy"


def control(ak, msg, timeout=10):
    """One request on the proxy's control socket (SOCK_SEQPACKET, one JSON object a message)."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(str(proxy_dir(ak) / "control"))
        s.send(json.dumps(msg).encode())
        return json.loads(s.recv(1 << 20))
    finally:
        s.close()


def only_policy(ak, name, rules, tmp):
    """Replaces the sandbox's policy by exactly these rules, default deny (the built-in list
    that --allow-host adds to is gone)."""
    f = pathlib.Path(tmp) / f"policy-{name}.json"
    f.write_text(json.dumps({"default": "deny", "rules": rules}))
    res = ak("network", "policy", name, "--set", f)
    assert res.rc == 0, res
