# SPDX-License-Identifier: Apache-2.0
"""agentkernel-proxy alone (issue 14, part 1): a sandbox netns with the AnyIP route, the nft
redirects and its listeners registered over the control socket; a private internet on
198.18.0.0/24 in a netns of its own; the proxy in a third netns whose only way out is that
internet (tests/proxy_world.py). Real clients (curl, openssl, python sockets) run inside the
sandbox netns. Nothing here can reach a real network: every namespace is the test's, and the
proxy resolves only through the test's DNS server."""
import json
import os
import signal
import socket
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import have, needs_root  # noqa: E402
import proxy_world  # noqa: E402

pytestmark = [needs_root, pytest.mark.skipif(
    not (have("ip") and have("nft") and have("curl") and have("openssl")
         and os.path.exists(proxy_world.PROXY)),
    reason="needs ip, nft, curl, openssl and a built agentkernel-proxy")]

PROXY = "http://127.0.0.1:15001"
POLICY = {
    "default": "deny",
    "rules": [
        {"action": "deny", "host": "www.allowed.test"},
        {"action": "allow", "host": "*.allowed.test", "ports": [80, 443, 8081]},
    ],
    "dns_servers": ["198.18.0.53"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = proxy_world.World(tmp_path_factory.mktemp("proxy"), POLICY,
                          proxy_args=("--header-timeout", "1500", "--max-conns-per-sandbox",
                                      "300"))
    yield w
    w.close()


@pytest.fixture
def policy(world):
    """Restores the module's policy after a test that replaces it."""
    yield
    assert world.ctl({"op": "set_policy", "sandbox": "sb1", "policy": POLICY})["ok"]


def py_in(world, code, timeout=30):
    """Runs python code inside the sandbox netns; returns its stdout."""
    r = world.sh(proxy_world.PY, "-c", code, timeout=timeout)
    assert r.returncode == 0, r
    return r.stdout.decode()


def raw_exchange(world, payload, read_until_close=True):
    """Sends bytes to the explicit proxy and returns what comes back (until close or 3 s)."""
    code = f"""
import socket, sys
s = socket.create_connection(("127.0.0.1", 15001), timeout=3)
s.sendall({payload!r})
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
        if {not read_until_close!r} and b"\\r\\n\\r\\n" in out: break
except socket.timeout:
    pass
except ConnectionResetError:
    out += b"<RESET>"
sys.stdout.write(repr(out))
"""
    return eval(py_in(world, code))


def dns_query(world, name, qtype=1, tcp=False, server="127.0.0.1"):
    """Asks name's qtype of server port 53 from the sandbox; returns (rcode, [addresses])."""
    code = f"""
import socket, struct, sys
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for l in {name!r}.split("."):
    q += bytes([len(l)]) + l.encode()
q += b"\\0" + struct.pack("!HH", {qtype}, 1)
if {tcp!r}:
    s = socket.create_connection(({server!r}, 53), timeout=5)
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2))[0]
    r = b""
    while len(r) < n:
        r += s.recv(n - len(r))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, ({server!r}, 53))
    r = s.recv(512)
rcode = r[3] & 15
an = struct.unpack("!H", r[6:8])[0]
addrs = []
off = len(q)
for _ in range(an):
    typ, cls, ttl, rdlen = struct.unpack("!HHIH", r[off + 2:off + 12])
    if typ == 1:
        addrs.append(socket.inet_ntoa(r[off + 12:off + 16]))
    off += 12 + rdlen
print(rcode, " ".join(addrs))
"""
    out = py_in(world, code).split()
    return int(out[0]), out[1:]


def upstream_asked(world, name):
    return world.dns_log.exists() and any(
        line.split()[0] == name for line in world.dns_log.read_text().splitlines())


def test_http_allowed_via_proxy(world):
    """An allowed host over the explicit proxy (absolute-URI): the page comes back, logged."""
    r = world.curl("-x", PROXY, "http://allowed.test/index.html")
    assert r.returncode == 0, r
    assert b"hello from the test internet" in r.stdout
    assert world.wait_log(lambda l: l["kind"] == "http" and l["host"] == "allowed.test" and
                          l["action"] == "allow" and l["method"] == "GET" and l["bytes_in"] > 0)


def test_https_allowed_via_connect(world):
    """An allowed host over CONNECT: TLS to the real server, verified with the test CA."""
    r = world.curl("-x", PROXY, "https://secure.allowed.test/index.html")
    assert r.returncode == 0, r
    assert b"hello from the test internet" in r.stdout


def test_denied_host_gets_403_naming_the_rule(world):
    """A denied host over HTTP and CONNECT: 403 whose body names the rule; the denial logged."""
    r = world.curl("-x", PROXY, "-i", "http://denied.test/index.html")
    assert b"403 Forbidden" in r.stdout and b"default deny" in r.stdout, r
    r = world.curl("-x", PROXY, "-i", "http://www.allowed.test/")
    assert b"403" in r.stdout and b"rule 1: deny www.allowed.test" in r.stdout, r
    r = world.curl("-x", PROXY, "-v", "https://secure.denied.test/")
    assert r.returncode != 0 and b"403" in r.stderr, r
    assert world.wait_log(lambda l: l["host"] == "denied.test" and l["action"] == "deny" and
                          l["rule"] == "default deny")
    audit = [json.loads(x) for x in world.audit.read_text().splitlines()]
    assert any("network_denied" in json.dumps(e) and "denied.test" in json.dumps(e)
               for e in audit), audit[-3:]


def test_odd_port_denied(world):
    """A port the rule does not list (8080; the rule names 80, 443, 8081) is refused."""
    r = world.curl("-x", PROXY, "-i", "http://allowed.test:8080/index.html")
    assert b"403" in r.stdout, r


def test_transparent_https_by_sni(world):
    """No proxy variables: DNS from the responder, TCP captured, destination from TLS SNI."""
    r = world.curl("https://secure.allowed.test/index.html")
    assert r.returncode == 0, r
    assert b"hello from the test internet" in r.stdout
    assert world.wait_log(lambda l: l["kind"] == "tls" and l["host"] == "secure.allowed.test" and
                          l["action"] == "allow" and l["bytes_in"] > 0)


def test_transparent_http_by_host(world):
    """Transparent plain HTTP: the destination is the Host header."""
    r = world.curl("http://allowed.test/echo/x")
    assert r.returncode == 0, r
    assert r.stdout.startswith(b"host=allowed.test"), r


def test_transparent_denied_name_is_reset(world):
    """A denied name with a forced address (curl --resolve): transparent TLS is reset, and the
    denied server is never reached (its name is not the SNI's)."""
    r = world.curl("--resolve", "secure.denied.test:443:198.18.0.4",
                   "https://secure.denied.test/index.html")
    assert r.returncode in (35, 56), r  # TLS handshake reset / recv failure


def test_direct_ip_to_undeclared_address_fails(world):
    """A connect to an IP no name led to: the default denies it (plain HTTP: 403; anything
    else: a reset)."""
    r = world.curl("-i", "http://198.18.0.4/index.html")
    assert b"403" in r.stdout and b"default deny" in r.stdout, r
    out = py_in(world, """
import socket
s = socket.socket(); s.settimeout(3)
s.connect(("198.18.0.4", 5555))
try:
    print(repr(s.recv(10)))
except Exception as e:
    print(type(e).__name__)
""")
    assert "ConnectionResetError" in out or "b''" in out, out


def test_udp_and_ipv6_fail_at_once(world):
    """UDP to anywhere but DNS is refused locally; IPv6 has no route."""
    out = py_in(world, """
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("198.18.0.2", 9)); print("sent")
except OSError as e:
    print("udp", e.errno)
s6 = socket.socket(socket.AF_INET6)
s6.settimeout(2)
try:
    s6.connect(("2001:db8::1", 80)); print("connected")
except OSError as e:
    print("v6", e.errno)
""")
    assert "sent" not in out and "connected" not in out, out


def test_dns_answers_allowed_and_refuses_denied(world):
    """A for an allowed name: the real address; a denied name: NXDOMAIN and no upstream query;
    AAAA: empty; TXT (tunnelling): REFUSED and not asked upstream; over TCP as well; a name that
    resolves to loopback or metadata is not answered."""
    assert dns_query(world, "secure.allowed.test") == (0, ["198.18.0.3"])
    assert dns_query(world, "secure.allowed.test", tcp=True) == (0, ["198.18.0.3"])
    # whatever server the program names, port 53 reaches the responder
    assert dns_query(world, "allowed.test", server="8.8.8.8") == (0, ["198.18.0.2"])
    assert dns_query(world, "allowed.test", server="8.8.8.8", tcp=True) == (0, ["198.18.0.2"])
    assert dns_query(world, "exfil-aGVsbG8.denied.test") == (3, [])
    assert not upstream_asked(world, "exfil-agvsbg8.denied.test")
    assert dns_query(world, "secure.allowed.test", qtype=28) == (0, [])
    assert dns_query(world, "tunnel.allowed.test", qtype=16) == (5, [])
    assert not upstream_asked(world, "tunnel.allowed.test")
    assert dns_query(world, "loop.allowed.test") == (3, [])
    assert dns_query(world, "meta.allowed.test") == (3, [])
    stats = world.ctl({"op": "stats"})["sandboxes"]["sb1"]
    assert stats["dns_queries"] > 0 and stats["dns_denied"] > 0


def test_private_destinations_denied(world):
    """A name resolving to loopback or link-local, and the proxy host's own address, are denied
    even by a rule that allows the name."""
    r = world.curl("-x", PROXY, "-i", "http://loop.allowed.test/")
    assert b"403" in r.stdout and b"loopback address" in r.stdout, r
    r = world.curl("-x", PROXY, "-i", "http://meta.allowed.test/")
    assert b"403" in r.stdout and b"link-local" in r.stdout, r
    out = raw_exchange(world, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"403" in out, out


def test_connect_domain_fronting_refused(world):
    """CONNECT to an allowed name, TLS inside naming another: the tunnel is cut (reset)."""
    r = world.sh("sh", "-c",
                 "echo | timeout 10 openssl s_client -proxy 127.0.0.1:15001 -connect "
                 "secure.allowed.test:443 -servername secure.denied.test "
                 f"-CAfile {world.tmp}/ca.pem 2>&1", timeout=20)
    assert b"no peer certificate available" in r.stdout, r
    assert world.wait_log(lambda l: l["kind"] == "connect" and l["action"] == "deny" and
                          "TLS server name" in l["rule"])


def test_transparent_domain_fronting_refused(world):
    """Transparent: an address the sandbox resolved for one name, TLS naming another: reset."""
    assert dns_query(world, "secure.allowed.test") == (0, ["198.18.0.3"])
    r = world.curl("--resolve", "secure.denied.test:443:198.18.0.3",
                   "https://secure.denied.test/index.html")
    assert r.returncode != 0, r
    assert world.wait_log(lambda l: l["kind"] == "tls" and l["action"] == "deny" and
                          "TLS server name" in l["rule"])


def test_url_tricks_refused(world):
    """Userinfo in the URL, a Host header other than the URL's, https:// absolute-URI, an
    origin-form request to the proxy: none reaches the denied host."""
    out = raw_exchange(world, b"GET http://allowed.test@denied.test/ HTTP/1.1\r\n"
                              b"Host: denied.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out
    out = raw_exchange(world, b"GET http://allowed.test/echo HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403") and b"Host header" in out, out
    out = raw_exchange(world, b"GET https://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out
    out = raw_exchange(world, b"GET / HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out


def test_keep_alive_decides_each_request(world):
    """Two requests on one kept-alive connection: the first allowed, the second denied."""
    out = raw_exchange(world, b"GET http://allowed.test/echo/1 HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
                              b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out
    assert b"host=allowed.test path=/echo/1" in out
    assert b"HTTP/1.1 403" in out and b"denied.test" in out.split(b"HTTP/1.1 403")[1], out


def test_post_body_streams(world):
    """A request body (1 MiB) goes through to an allowed host."""
    r = world.sh("sh", "-c", "head -c 1048576 /dev/zero | curl -sS --max-time 10 -x "
                 f"{PROXY} --data-binary @- http://allowed.test/upload")
    assert r.stdout == b"got 1048576", r


def test_websocket_upgrade_tunnels(world):
    """An Upgrade request to an allowed host: 101, then bytes both ways."""
    out = py_in(world, """
import socket
s = socket.create_connection(("127.0.0.1", 15001), timeout=5)
s.sendall(b"GET http://allowed.test:8081/ws HTTP/1.1\\r\\nHost: allowed.test:8081\\r\\n"
          b"Upgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n")
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(4096)
assert b" 101 " in head.split(b"\\r\\n")[0], head
s.sendall(b"ping-frame")
got = b""
while len(got) < 10:
    got += s.recv(100)
print(got.decode())
""")
    assert "ping-frame" in out


def test_large_download_bounded_memory(world):
    """A 64 MiB download, transparent and through CONNECT, arrives whole; the worker's RSS
    stays small."""
    r = world.sh("curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{size_download}",
                 "http://allowed.test/big.bin", timeout=90)
    assert r.stdout == str(64 << 20).encode(), r
    # the same through a CONNECT tunnel (which moves to splice once it is a bulk transfer)
    r = world.sh("curl", "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{size_download}",
                 "-p", "-x", PROXY, "http://allowed.test/big.bin", timeout=90)
    assert r.stdout == str(64 << 20).encode(), r
    assert world.ctl({"op": "stats"})["rss_kb"] < 32 * 1024


def test_policy_replaced_while_running(world, policy):
    """set_policy holds for the next connection once it returns (the 100 ms rule), and
    get_policy reads it back; '*' never opens the proxy host's own address."""
    assert world.curl("-x", PROXY, "http://allowed.test/index.html").returncode == 0
    new = {"default": "deny", "rules": [{"action": "deny", "host": "allowed.test"},
                                        {"action": "allow", "host": "*", "ports": "*"}],
           "dns_servers": ["198.18.0.53"]}
    t0 = time.monotonic()
    assert world.ctl({"op": "set_policy", "sandbox": "sb1", "policy": new})["ok"]
    assert time.monotonic() - t0 < 0.1
    r = world.curl("-x", PROXY, "-i", "http://allowed.test/index.html")
    assert b"403" in r.stdout and b"rule 1: deny allowed.test" in r.stdout, r
    r = world.curl("-x", PROXY, "http://denied.test/index.html")
    assert b"hello" in r.stdout, r
    r = world.curl("-x", PROXY, "-i", "http://198.18.0.1/")
    assert b"403" in r.stdout and b"host's own address" in r.stdout, r
    got = world.ctl({"op": "get_policy", "sandbox": "sb1"})
    assert got["ok"] and got["policy"]["rules"][0]["host"] == "allowed.test"
    bad = world.ctl({"op": "set_policy", "sandbox": "sb1",
                     "policy": {"rules": [{"action": "allow", "host": "a*b"}]}})
    assert not bad["ok"] and "rules[0]" in bad["error"], bad
    # the bad one changed nothing
    assert world.ctl({"op": "get_policy", "sandbox": "sb1"})["policy"] == got["policy"]


def test_control_protocol_refuses_bad_requests(world):
    """Unknown ops, missing sandboxes, registrations without the right fds, oversized messages:
    clear errors, nothing changed."""
    assert world.ctl({"op": "dance"}) == {"ok": False, "error": "unknown op"}
    assert not world.ctl({"op": "get_policy", "sandbox": "nope"})["ok"]
    assert "5 fds" in world.ctl({"op": "register", "sandbox": "x", "policy": {}})["error"]
    c = proxy_world.Control(world.control)
    try:
        c.sock.send(b"{" + b" " * (70 * 1024) + b"}")
        assert "64 KiB" in json.loads(c.sock.recv(65536))["error"]
    finally:
        c.close()
    r, w = os.pipe()
    try:
        c = proxy_world.Control(world.control)
        reply = c.call({"op": "register", "sandbox": "x", "policy": {}}, [r, w, r, w, w])
        c.close()
        assert not reply["ok"] and "listening TCP" in reply["error"], reply
    finally:
        os.close(r)
        os.close(w)
    assert list(world.ctl({"op": "stats"})["sandboxes"]) == ["sb1"]


def test_slow_loris_closed_at_header_timeout(world):
    """A request head that trickles in is cut at the header timeout (1.5 s here)."""
    out = py_in(world, """
import socket, time
s = socket.create_connection(("127.0.0.1", 15001), timeout=6)
t0 = time.monotonic()
s.sendall(b"GET http://allowed.test/ HTTP/1.1\\r\\n")
try:
    for i in range(20):
        s.sendall(b"X-%d: y\\r\\n" % i)
        time.sleep(0.25)
        s.setblocking(False)
        try:
            d = s.recv(100)
            print("closed", round(time.monotonic() - t0, 1), d[:12]); break
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
    else:
        print("open")
except (BrokenPipeError, ConnectionResetError):
    print("closed", round(time.monotonic() - t0, 1))
""", timeout=30)
    assert out.startswith("closed"), out
    assert float(out.split()[1]) < 3.5, out


def test_connection_limit_per_sandbox(world):
    """Past the per-sandbox limit (300 here) new connections are reset; the rest still work."""
    out = py_in(world, """
import socket
socks, refused = [], 0
for i in range(320):
    try:
        socks.append(socket.create_connection(("127.0.0.1", 15001), timeout=3))
    except ConnectionResetError:  # the reset can beat connect() back on loopback
        refused += 1
import time; time.sleep(0.5)
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"": refused += 1
    except BlockingIOError:
        pass
    except ConnectionResetError:
        refused += 1
print(refused)
""", timeout=60)
    assert int(out) >= 15, out
    time.sleep(0.5)
    assert world.curl("-x", PROXY, "http://allowed.test/index.html").returncode == 0


def test_killed_worker_lets_nothing_out_and_comes_back(world):
    """A stopped worker: connections wait and fail, nothing reaches the internet; killed: the
    supervisor starts a new one, re-registers the sandbox, and traffic flows again."""
    pid = world.worker_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        r = world.sh("curl", "-sS", "--max-time", "2", "http://allowed.test/index.html")
        assert r.returncode != 0, r
    finally:
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        time.sleep(0.1)
        try:
            new = world.worker_pid()
        except (OSError, KeyError):
            continue
        if new and new != pid:
            break
    else:
        pytest.fail("worker did not come back")
    r = world.curl("-x", PROXY, "http://allowed.test/index.html")
    assert r.returncode == 0 and b"hello" in r.stdout, r
    r = world.curl("-x", PROXY, "-i", "http://denied.test/index.html")
    assert b"403" in r.stdout, r


def test_second_sandbox_isolated_and_gone_with_its_pidfd(world):
    """A second sandbox on the same proxy has its own policy, DNS table and log (sb1's allowed
    names are nothing to it), and disappears from the proxy when its holder process exits."""
    ns = world.sandbox_netns()
    holder = world._spawn(proxy_world.ns_exec(ns, "sleep", "3600"))
    log2 = world.tmp / "sb2.jsonl"
    deny_all = {"default": "deny", "rules": [], "dns_servers": ["198.18.0.53"]}
    assert world.register("sb2", deny_all, ns=ns, holder=holder.pid, log=log2)["ok"]
    r = proxy_world.run(proxy_world.ns_exec(ns, "curl", "-sS", "-i", "--max-time", "5", "-x",
                                            PROXY, "http://allowed.test/index.html"),
                        check=False)
    assert b"403" in r.stdout and b"default deny" in r.stdout, r
    # sb1 resolved secure.allowed.test; for sb2 its address is just a denied address
    assert dns_query(world, "secure.allowed.test") == (0, ["198.18.0.3"])
    r = proxy_world.run(proxy_world.ns_exec(ns, "curl", "-sS", "--max-time", "5",
                                            "--resolve", "secure.allowed.test:443:198.18.0.3",
                                            "https://secure.allowed.test/"), check=False)
    assert r.returncode != 0, r
    assert "allowed.test" in log2.read_text()
    stats = world.ctl({"op": "stats"})["sandboxes"]
    assert set(stats) == {"sb1", "sb2"}
    holder.terminate()
    holder.wait()
    for _ in range(50):
        if "sb2" not in world.ctl({"op": "stats"})["sandboxes"]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("sb2 still registered after its holder exited")
    assert not world.ctl({"op": "get_policy", "sandbox": "sb2"})["ok"]
    # its listeners are closed with it: a connection there now fails
    r = proxy_world.run(proxy_world.ns_exec(ns, "curl", "-sS", "--max-time", "3",
                                            "http://allowed.test/"), check=False)
    assert r.returncode != 0, r
    assert world.curl("-x", PROXY, "http://allowed.test/index.html").returncode == 0


def test_worker_is_confined(world):
    """The worker, which parses every sandbox byte, runs with no_new_privs and its seccomp
    filter (no exec, no fork, no namespaces, IPv4 sockets only)."""
    status = open(f"/proc/{world.worker_pid()}/status").read()
    assert "NoNewPrivs:\t1" in status, status
    assert "Seccomp:\t2" in status, status


def test_connect_with_client_hello_sent_early(world):
    """A client that sends its ClientHello right behind the CONNECT (before the 200) is served
    (and checked), not left waiting."""
    out = py_in(world, f"""
import socket, ssl
ctx = ssl.create_default_context(cafile="{world.tmp}/ca.pem")
i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
t = ctx.wrap_bio(i, o, server_hostname="secure.allowed.test")
try:
    t.do_handshake()
except ssl.SSLWantReadError:
    pass
s = socket.create_connection(("127.0.0.1", 15001), timeout=5)
s.sendall(b"CONNECT secure.allowed.test:443 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" + o.read())
buf = b""
while b"\\r\\n\\r\\n" not in buf:
    buf += s.recv(4096)
head, rest = buf.split(b"\\r\\n\\r\\n", 1)
assert b" 200 " in head, head
i.write(rest)
while True:
    try:
        t.do_handshake()
        break
    except ssl.SSLWantReadError:
        s.sendall(o.read())
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed")
        i.write(d)
s.sendall(o.read())
print("handshake", t.version())
""")
    assert out.startswith("handshake TLS"), out


def test_lifecycle_lock_detach_idle_exit(tmp_path):
    """Detached start returns once the control socket accepts; a second start for the same
    directory says it is already running and leaves the first alone; with no sandbox the proxy
    exits after its idle time; the directory and socket are private."""
    d = tmp_path / "proxy"
    env = dict(os.environ, AGENTKERNEL_AUDIT="0")
    r = proxy_world.run([proxy_world.PROXY, "--dir", str(d), "--idle-exit", "2"], env=env)
    assert r.returncode == 0, r
    c = proxy_world.Control(d / "control")  # accepts at once
    pid = c.call({"op": "stats"})["supervisor_pid"]
    c.close()
    assert oct(os.stat(d).st_mode & 0o777) == "0o700"
    assert oct(os.stat(d / "control").st_mode & 0o777) == "0o600"
    r = proxy_world.run([proxy_world.PROXY, "--dir", str(d)], env=env)
    assert r.returncode == 0 and b"already running" in r.stderr, r
    assert os.path.exists(f"/proc/{pid}")
    for _ in range(60):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the proxy did not exit when idle")
    r = proxy_world.run([proxy_world.PROXY, "--dir", str(d), "--max-conns", "0"], check=False)
    assert r.returncode == 2 and b"--max-conns" in r.stderr, r


def test_connect_to_ip_literal_and_socks_refused(world):
    """CONNECT to an address literal no rule names: 403. A SOCKS5 greeting to the proxy port is
    no HTTP request: it is cut (at the header timeout at the latest), nothing is relayed."""
    out = raw_exchange(world, b"CONNECT 198.18.0.4:443 HTTP/1.1\r\nHost: 198.18.0.4:443\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403") and b"default deny" in out, out
    out = raw_exchange(world, b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 4"), out
    out = raw_exchange(world, b"\x05\x01\x00")
    assert b"\x05\x00" not in out, out
    out = raw_exchange(world, b"\x05\x01\x00\x05\x01\x00\x03\x0callowed.test\x00\x50" + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out


def test_policy_defaults_to_the_builtin_list(world, policy):
    """No "rules" in a policy (only hosts, say) means the built-in allow list, spelled out in
    the normalised policy; "rules": [] means none; no policy means the built-in one."""
    assert world.ctl({"op": "set_policy", "sandbox": "sb1",
                      "policy": {"hosts": {"api.internal": "198.18.0.2"},
                                 "dns_servers": ["198.18.0.53"]}})["ok"]
    got = world.ctl({"op": "get_policy", "sandbox": "sb1"})["policy"]
    assert got["default"] == "deny" and got["hosts"] == {"api.internal": "198.18.0.2"}
    assert any(r["host"] == "api.anthropic.com" for r in got["rules"]), got
    r = world.curl("-x", PROXY, "-i", "http://allowed.test/")
    assert b"403" in r.stdout and b"default deny" in r.stdout, r
    assert world.ctl({"op": "set_policy", "sandbox": "sb1",
                      "policy": {"rules": [], "dns_servers": ["198.18.0.53"]}})["ok"]
    assert world.ctl({"op": "get_policy", "sandbox": "sb1"})["policy"]["rules"] == []
    # no policy at all: the built-in one
    assert world.ctl({"op": "set_policy", "sandbox": "sb1"})["ok"]
    got = world.ctl({"op": "get_policy", "sandbox": "sb1"})["policy"]
    assert got["default"] == "deny" and any(r["host"] == "github.com" for r in got["rules"])
