# SPDX-License-Identifier: Apache-2.0
"""agentkernel-proxy driven alone, in a world of network namespaces the test makes.

- "inet": a private internet on 198.18.0.0/24 (benchmark space, never routed outside): HTTP on
  198.18.0.2:80 and :8080, HTTPS on 198.18.0.3:443 (a throwaway CA made by openssl), another
  host on 198.18.0.4 (HTTP :80, HTTPS :443 with the same CA) that policies deny, a DNS server on
  198.18.0.53 that knows the test names, nothing else.
- "pxh": where the proxy runs; its only interface is a veth to inet (198.18.0.1), so no packet or
  DNS query of the proxy can leave the machine, and the proxy is always given the policy's
  "dns_servers" (never the host's resolv.conf).
- "sbx": a proxy-mode sandbox as docs/network.md sets it up: only lo, the AnyIP route, the nft
  rules, the three listeners (made inside, handed to the proxy with SCM_RIGHTS by a registrant
  that runs in the netns).

Also a small client of the control protocol (SOCK_SEQPACKET, JSON, fds by socket.send_fds).
Run as a script, this file is that registrant (`register`) or the test DNS server (`dns`).
"""
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid as uuidlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROXY = os.environ.get(
    "AGENTKERNEL_PROXY",
    str(pathlib.Path(os.environ.get("AGENTKERNEL_BUILD", ROOT / "build")) / "src" / "agentkernel-proxy"),
)
PY = "/usr/bin/python3"

NFT_RULES = """
table ip agentkernel {
  chain out { type nat hook output priority -100;
    udp dport 53 redirect to :15053
    tcp dport 53 redirect to :15053
    ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :15001
  }
  chain filter { type filter hook output priority 0;
    ct direction original ip daddr != 127.0.0.0/8 reject
  }
}
"""

NAMES = {
    "allowed.test": "198.18.0.2",
    "www.allowed.test": "198.18.0.2",
    "secure.allowed.test": "198.18.0.3",
    "denied.test": "198.18.0.4",
    "secure.denied.test": "198.18.0.4",
    "loop.allowed.test": "127.0.0.1",
    "meta.allowed.test": "169.254.169.254",
}


class Control:
    """A client of the proxy's control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(10)
        self.sock.connect(str(path))

    def call(self, msg, fds=(), raw=None):
        data = json.dumps(msg).encode()
        if raw is not None:
            data += b"\0" + raw
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)
        return json.loads(self.sock.recv(256 * 1024))

    def close(self):
        self.sock.close()


def run(cmd, check=True, timeout=60, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, **kw)


def ns_exec(ns, *cmd):
    """cmd inside the netns held by process ns (a pid): nsenter, not `ip netns`, so nothing of
    ours lives in /run/netns, and the namespaces die with their holders."""
    return ["nsenter", "-t", str(ns), "-n", *cmd]


def make_ca(d):
    d = pathlib.Path(d)
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=agentkernel test CA", "-keyout", d / "ca.key", "-out", d / "ca.pem"])
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:secure.allowed.test,DNS:allowed.test,DNS:*.allowed.test,"
        "DNS:denied.test,DNS:secure.denied.test,IP:198.18.0.3,IP:198.18.0.4\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=secure.allowed.test",
         "-keyout", d / "srv.key", "-out", d / "srv.csr"])
    run(["openssl", "x509", "-req", "-in", d / "srv.csr", "-CA", d / "ca.pem", "-CAkey",
         d / "ca.key", "-CAcreateserial", "-days", "2", "-extfile", d / "ext.cnf", "-out",
         d / "srv.pem"])


HTTPS_SERVER = r"""
import http.server, ssl, sys
addr, port, cert, key, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def __init__(self, *a, **k): super().__init__(*a, directory=root, **k)
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.startswith("/echo"):
            body = ("host=%s path=%s" % (self.headers.get("Host"), self.path)).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body); return
        return super().do_GET()
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0")); data = self.rfile.read(n)
        body = b"got %d" % len(data)
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
s = http.server.ThreadingHTTPServer((addr, port), H)
if cert != "-":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
"""


UPGRADE_SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: return
        head += d
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    rest = head.split(b"\r\n\r\n", 1)[1]
    if rest: c.sendall(rest)
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def dns_server(addr, names):
    """A tiny authoritative DNS server for the test names (A only; others: NXDOMAIN)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    log = open(os.environ.get("DNS_LOG", "/dev/null"), "a")
    while True:
        msg, peer = s.recvfrom(512)
        if len(msg) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", msg[:6])
        off, labels = 12, []
        while msg[off]:
            labels.append(msg[off + 1:off + 1 + msg[off]].decode())
            off += 1 + msg[off]
        name = ".".join(labels).lower()
        qtype, = struct.unpack("!H", msg[off + 1:off + 3])
        qend = off + 5
        log.write(f"{name} {qtype}\n")
        log.flush()
        ip = names.get(name)
        ans = b""
        rcode = 0
        if ip is None:
            rcode = 3
        elif qtype == 1:
            ans = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(ip)
        hdr = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 1 if ans else 0, 0, 0)
        s.sendto(hdr + msg[12:qend] + ans, peer)


def register_main(args):
    """Runs inside the sandbox netns: makes the listeners, registers them."""
    control, name, pid, logpath, policy_path = args[:5]
    extra = json.loads(pathlib.Path(args[5]).read_text()) if len(args) > 5 else {}
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 15001))
    tcp.listen(1024)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 15053))
    dtcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dtcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dtcp.bind(("127.0.0.1", 15053))
    dtcp.listen(64)
    pidfd = os.pidfd_open(int(pid))
    logfd = os.open(logpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    c = Control(control)
    msg = {"op": "register", "sandbox": name, "uuid": str(uuidlib.uuid4()),
           "policy": json.loads(pathlib.Path(policy_path).read_text())}
    for k in ("secrets", "upstream_ca"):
        if k in extra:
            msg[k] = extra[k]
    reply = c.call(msg, [tcp.fileno(), udp.fileno(), dtcp.fileno(), pidfd, logfd])
    # the values follow the registration, one message each (never argv or a file in real use:
    # here the test's own values come from its tmp dir)
    for key, hexval in extra.get("values", {}).items():
        r = c.call({"op": "secret_value", "sandbox": name, "name": key},
                   raw=bytes.fromhex(hexval))
        if not r.get("ok"):
            reply = r
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


class World:
    """The three namespaces, the servers, and the proxy. Everything it makes it removes."""

    def __init__(self, tmp, policy, proxy_args=(), extra=None):
        self.tmp = pathlib.Path(tmp)
        tag = uuidlib.uuid4().hex[:6]
        self.veth = f"akv{tag}"
        self.procs = []
        self.control = self.tmp / "proxy" / "control"
        self.log = self.tmp / "network.jsonl"
        self.dns_log = self.tmp / "dns.log"
        self.proxy = None
        self.holder = None
        try:
            self._setup(policy, proxy_args, extra)
        except BaseException:
            self.close()
            raise

    def _netns(self):
        """A new netns held by a process of ours; returns its pid."""
        p = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
        self.procs.insert(0, p)  # closed last
        mine = os.readlink("/proc/self/ns/net")
        for _ in range(100):
            try:
                if os.readlink(f"/proc/{p.pid}/ns/net") != mine:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        run(ns_exec(p.pid, "ip", "link", "set", "lo", "up"))
        return p.pid

    def _spawn(self, cmd, ready=None, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.procs.append(p)
        if ready:
            line = p.stdout.readline()
            if ready not in line.decode():
                p.kill()
                raise AssertionError((cmd, line, p.stderr.read()))
        return p

    def _setup(self, policy, proxy_args, extra=None):
        self.inet, self.pxh, self.sbx = self._netns(), self._netns(), self._netns()
        run(ns_exec(self.pxh, "ip", "link", "add", self.veth + "a", "type", "veth", "peer",
                    "name", self.veth + "b", "netns", str(self.inet)))
        run(ns_exec(self.pxh, "ip", "addr", "add", "198.18.0.1/24", "dev", self.veth + "a"))
        run(ns_exec(self.pxh, "ip", "link", "set", self.veth + "a", "up"))
        for a in ("198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.53"):
            run(ns_exec(self.inet, "ip", "addr", "add", a + "/24", "dev", self.veth + "b"))
        run(ns_exec(self.inet, "ip", "link", "set", self.veth + "b", "up"))
        # the sandbox: lo only, every IPv4 address local, the redirects
        run(ns_exec(self.sbx, "ip", "route", "add", "local", "default", "dev", "lo"))
        (self.tmp / "rules.nft").write_text(NFT_RULES)
        run(ns_exec(self.sbx, "nft", "-f", str(self.tmp / "rules.nft")))

        make_ca(self.tmp)
        www = self.tmp / "www"
        www.mkdir()
        (www / "index.html").write_text("hello from the test internet\n")
        with open(www / "big.bin", "wb") as f:
            f.truncate(64 << 20)
        srv = self.tmp / "server.py"
        srv.write_text(HTTPS_SERVER)
        cert, key = str(self.tmp / "srv.pem"), str(self.tmp / "srv.key")
        for addr, port, tls in (("198.18.0.2", 80, False), ("198.18.0.2", 8080, False),
                                ("198.18.0.3", 443, True), ("198.18.0.4", 80, False),
                                ("198.18.0.4", 443, True)):
            self._spawn(ns_exec(self.inet, PY, str(srv), addr, str(port),
                                cert if tls else "-", key if tls else "-", str(www)),
                        ready="ready")
        up = self.tmp / "upgrade.py"
        up.write_text(UPGRADE_SERVER)
        self._spawn(ns_exec(self.inet, PY, str(up), "198.18.0.2", "8081"), ready="ready")
        env = dict(os.environ, DNS_LOG=str(self.dns_log))
        self._spawn(ns_exec(self.inet, PY, __file__, "dns"), env=env)

        # denials are audited: into the test's own audit log, never the user's
        self.audit = self.tmp / "audit.jsonl"
        penv = dict(os.environ, AGENTKERNEL_AUDIT_PATH=str(self.audit),
                    AGENTKERNEL_DATA_DIR=str(self.tmp / "data"))
        self.proxy = self._spawn(ns_exec(self.pxh, PROXY, "--dir", str(self.tmp / "proxy"),
                                         "--foreground", "--idle-exit", "3600", *proxy_args),
                                 env=penv)
        for _ in range(100):
            if self.control.exists():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("proxy did not start: " + self.proxy.stderr.read().decode())
        time.sleep(0.2)  # the DNS server binds
        self.holder = self._spawn(ns_exec(self.sbx, "sleep", "3600"))
        self.first_reply = self.register("sb1", policy, extra=extra)

    def sandbox_netns(self):
        """Another sandbox netns set up as docs/network.md says; returns its holder's pid."""
        ns = self._netns()
        run(ns_exec(ns, "ip", "route", "add", "local", "default", "dev", "lo"))
        run(ns_exec(ns, "nft", "-f", str(self.tmp / "rules.nft")))
        return ns

    def register(self, name, policy, ns=None, holder=None, log=None, extra=None, check=True):
        """Registers the listeners of netns ns (default: the sandbox's) for name; holder is
        the process whose pidfd says when the sandbox is gone. extra: "secrets",
        "upstream_ca" for the registration and "values" ({KEY: hex}) sent after it."""
        (self.tmp / "policy.json").write_text(json.dumps(policy))
        cmd = [PY, __file__, "register", str(self.control), name,
               str(holder or self.holder.pid), str(log or self.log),
               str(self.tmp / "policy.json")]
        if extra is not None:
            xp = self.tmp / "extra.json"
            xp.write_text(json.dumps(extra))
            xp.chmod(0o600)
            cmd.append(str(xp))
        r = run(ns_exec(ns or self.sbx, *cmd), check=False)
        if extra is not None:
            (self.tmp / "extra.json").unlink()
        if check:
            assert r.returncode == 0, r
        return json.loads(r.stdout) if r.stdout.strip() else {"ok": False, "error": r.stderr}

    def ctl(self, msg):
        c = Control(self.control)
        try:
            return c.call(msg)
        finally:
            c.close()

    def sh(self, *cmd, timeout=30, check=False):
        """Runs a command in the sandbox."""
        return run(ns_exec(self.sbx, *cmd), check=check, timeout=timeout)

    def curl(self, *args, timeout=20):
        return self.sh("curl", "-sS", "--max-time", "10", "--cacert", str(self.tmp / "ca.pem"),
                       *args, timeout=timeout)

    def log_lines(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def wait_log(self, pred, timeout=3):
        """True once a decision log line satisfies pred (connections are logged at their end,
        which the proxy may see a moment after the client)."""
        end = time.time() + timeout
        while time.time() < end:
            if any(pred(line) for line in self.log_lines()):
                return True
            time.sleep(0.05)
        return False

    def worker_pid(self):
        return self.ctl({"op": "stats"})["worker_pid"]

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


if __name__ == "__main__":
    if sys.argv[1] == "dns":
        dns_server("198.18.0.53", NAMES)
    elif sys.argv[1] == "register":
        sys.exit(register_main(sys.argv[2:]))
