# SPDX-License-Identifier: Apache-2.0
"""The servers of the egress test world (tests/egress_world.py): stdlib Python only.

Run inside a network namespace the test created; every server records what it received, one JSON
object a line, in the log file named by the configuration, so that a test can assert what did
NOT arrive. Usage: egress_world_server.py CONFIG.json (role "world" or "host").

World role (the private internet, AnyIP: every IPv4 address is local there, so a stray packet to
any address ends here and is recorded):
- TCP 80 HTTP/1.1 (keep-alive; echo of the request as JSON; /big?bytes=N streamed download;
  /ws WebSocket echo; /git/... git smart HTTP through `git http-backend`; /dns-query DoH);
  TCP 443 and 8443 the same over TLS (the test CA's leaf; the SNI of every handshake recorded);
  TCP 853 DNS over TLS; TCP and UDP 53 DNS; UDP 7, 123, 443 and 9999 echo; TCP 7777, 8080, 22,
  25, 6379 raw echo; TCP 1080 a SOCKS5-ish listener; ICMP by the kernel (the wire recorder sees
  it).
- "wire": an AF_PACKET recorder on the world's side of the veth: the first packet of every flow
  that arrives from the host side (proto, src, dst, ports; ICMP type).
Host role (the private host network namespace, where agentkernel and its proxy run): TCP
recorders on 127.0.0.1 and the host's veth address, a UDP recorder on 127.0.0.1, an abstract
unix socket recorder.
"""
import base64
import hashlib
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

CFG = json.load(open(sys.argv[1]))
_LOG_LOCK = threading.Lock()
_LOG = open(CFG["log"], "a", buffering=1)


def record(srv, **fields):
    fields = {"ts": time.time(), "srv": srv, **fields}
    line = json.dumps(fields, default=str)
    with _LOG_LOCK:
        _LOG.write(line + "\n")


def norm(addr):
    """'::ffff:1.2.3.4' -> '1.2.3.4'."""
    a = addr[0] if isinstance(addr, tuple) else addr
    return a[7:] if isinstance(a, str) and a.startswith("::ffff:") else a


# ---------------------------------------------------------------- the streamed download

BIG_CHUNK = 65536


def big_chunk(k, _base=[]):
    """Chunk k of the large download: its 8-byte index, then a fixed pseudo-random block (the
    test computes the same stream: tests/egress_world.py, big_sha256)."""
    if not _base:
        _base.append(hashlib.shake_256(b"agentkernel-egress").digest(BIG_CHUNK - 8))
    return struct.pack(">Q", k) + _base[0]


# ---------------------------------------------------------------- DNS

def zone_lookup(name, qtype):
    """(rcode, [rdata bytes]) for a name from the configured zone; '*.x' entries match below x."""
    name = name.rstrip(".").lower()
    zone = CFG.get("zone", {})
    entry = zone.get(name)
    if entry is None:
        parts = name.split(".")
        for i in range(1, len(parts)):
            entry = zone.get("*." + ".".join(parts[i:]))
            if entry is not None:
                break
    if entry is None:
        return 3, []
    if qtype == 1 and "A" in entry:
        return 0, [socket.inet_aton(entry["A"])]
    if qtype == 28 and "AAAA" in entry:
        return 0, [socket.inet_pton(socket.AF_INET6, entry["AAAA"])]
    if qtype == 16:
        txt = entry.get("TXT", "world-txt").encode()
        return 0, [bytes([len(txt)]) + txt]
    return 0, []


def dns_answer(query, transport, peer, dst):
    """The answer to one DNS message (or None if it cannot be parsed); the query is recorded."""
    if len(query) < 12:
        record("dns", transport=transport, peer=peer, dst=dst, error="short")
        return None
    qid, flags, qd = struct.unpack(">HHH", query[:6])
    off, names = 12, []
    try:
        for _ in range(max(1, min(qd, 16))):  # every question is recorded, the first answered
            labels = []
            while True:
                n = query[off]
                off += 1
                if n == 0:
                    break
                if n >= 0xC0:  # a compression pointer: the name is elsewhere
                    off += 1
                    labels.append("<ptr>")
                    break
                labels.append(query[off:off + n].decode("latin-1"))
                off += n
            t, = struct.unpack(">H", query[off:off + 2])
            if not names:
                qtype, qend = t, off + 4
            names.append(".".join(labels))
            off += 4
    except (IndexError, struct.error):
        record("dns", transport=transport, peer=peer, dst=dst, error="malformed",
               qnames=names)
        return None
    qname = names[0]
    question = query[12:qend]
    rcode, rdatas = zone_lookup(qname, qtype)
    record("dns", transport=transport, peer=peer, dst=dst, qname=qname, qtype=qtype, rcode=rcode,
           qnames=names)
    out = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(rdatas), 0, 0) + question
    for rd in rdatas:
        out += struct.pack(">HHHIH", 0xC00C, qtype, 1, 30, len(rd)) + rd
    return out


def udp_recv(sock):
    """(data, peer, local address the datagram was sent to, cmsg to reply from that address)."""
    data, anc, _, peer = sock.recvmsg(65536, 256)
    dst, reply = "?", []
    for level, typ, val in anc:
        if level == socket.IPPROTO_IP and typ == 8:  # IP_PKTINFO: ifindex, spec_dst, addr
            dst = socket.inet_ntoa(val[8:12])
            reply = [(socket.IPPROTO_IP, 8, struct.pack("i", 0) + val[8:12] + bytes(4))]
        elif level == socket.IPPROTO_IPV6 and typ == 50:  # IPV6_PKTINFO: addr, ifindex
            dst = socket.inet_ntop(socket.AF_INET6, val[:16])
            reply = [(socket.IPPROTO_IPV6, 50, val[:16] + struct.pack("i", 0))]
    return data, peer, dst, reply


def serve_dns_udp(sock):
    while True:
        data, peer, dst, reply = udp_recv(sock)
        ans = dns_answer(data, "udp", norm(peer), dst)
        if ans:
            sock.sendmsg([ans], reply, 0, peer)


def read_exact(f, n):
    buf = b""
    while len(buf) < n:
        got = f.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def dns_stream(conn, transport, peer, dst):
    """DNS over a stream (TCP or TLS): 2-byte length prefixed messages."""
    try:
        while True:
            n, = struct.unpack(">H", read_exact(conn, 2))
            ans = dns_answer(read_exact(conn, n), transport, peer, dst)
            if ans is None:
                return
            conn.sendall(struct.pack(">H", len(ans)) + ans)
    except (EOFError, OSError, ssl.SSLError):
        pass


# ---------------------------------------------------------------- TLS

def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CFG["cert"], CFG["key"])
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(sslsock, name, _ctx):
        sslsock.sni = name
    ctx.sni_callback = on_sni
    return ctx


def tls_accept(conn, ctx, srv, peer, dst, port):
    """The handshake, recorded with the SNI the ClientHello named (also when it fails)."""
    conn.settimeout(10)
    s = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        s.do_handshake()
    except (ssl.SSLError, OSError) as e:
        record("tls", peer=peer, dst=dst, port=port, sni=getattr(s, "sni", None),
               error=str(e)[:120], srv_for=srv)
        s.close()
        return None
    record("tls", peer=peer, dst=dst, port=port, sni=getattr(s, "sni", None), srv_for=srv)
    s.settimeout(60)
    return s


# ---------------------------------------------------------------- HTTP

class Conn:
    """A buffered reader over a socket (plain or TLS)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        got = self.sock.recv(65536)
        if not got:
            raise EOFError
        self.buf += got

    def line(self, limit=1 << 20):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise EOFError
            self.fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def http_session(sock, peer, dst, port, tls, sni):
    c = Conn(sock)
    while True:
        try:
            start = c.line()
        except (EOFError, OSError, ssl.SSLError):
            return
        if not start:
            continue
        headers, raw = {}, []
        try:
            while True:
                ln = c.line()
                if not ln:
                    break
                raw.append(ln.decode("latin-1"))
                k, _, v = ln.decode("latin-1").partition(":")
                headers.setdefault(k.strip().lower(), v.strip())
        except (EOFError, OSError, ssl.SSLError):
            record("http", peer=peer, dst=dst, port=port, tls=tls, sni=sni,
                   start=start.decode("latin-1")[:300], incomplete=True)
            return
        parts = start.decode("latin-1").split(" ")
        method = parts[0]
        target = parts[1] if len(parts) > 1 else ""
        version = parts[2] if len(parts) > 2 else "HTTP/0.9"
        body = b""
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    n = int(c.line().split(b";")[0], 16)
                    if n == 0:
                        while c.line():
                            pass
                        break
                    body += c.read(n)
                    c.line()
            elif "content-length" in headers:
                body = c.read(int(headers["content-length"]))
        except (EOFError, OSError, ValueError, ssl.SSLError):
            pass
        record("http", peer=peer, dst=dst, port=port, tls=tls, sni=sni, method=method,
               target=target[:2000], version=version, host=headers.get("host"),
               headers=[h[:300] for h in raw[:50]], nheaders=len(raw), body_len=len(body))
        path = urllib.parse.urlsplit(target).path if "://" in target else target.split("?")[0]
        query = urllib.parse.urlsplit(target).query
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            if headers.get("upgrade", "").lower() == "websocket":
                websocket(sock, c, headers, peer, dst)
                return
            if path.startswith("/git/"):
                git_cgi(sock, method, path[4:], query, headers, body)
            elif path == "/big":
                big(sock, query)
            elif path == "/dns-query":
                doh(sock, method, query, body, peer, dst)
            else:
                reply = json.dumps({"world": True, "host": headers.get("host"), "dst": dst,
                                    "port": port, "sni": sni, "method": method,
                                    "target": target[:200]}).encode() + b"\n"
                send_response(sock, 200, "application/json", reply, keep)
        except (OSError, ssl.SSLError, EOFError):
            return
        if not keep:
            return


def send_response(sock, status, ctype, body, keep=True, extra=()):
    head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
            "Connection: " + ("keep-alive" if keep else "close"), *extra]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


def big(sock, query):
    n = int(urllib.parse.parse_qs(query).get("bytes", ["1048576"])[0])
    sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {n}\r\n\r\n".encode())
    k, left = 0, n
    while left > 0:
        chunk = big_chunk(k)[:left]
        sock.sendall(chunk)
        left -= len(chunk)
        k += 1


def doh(sock, method, query, body, peer, dst):
    if method == "GET":
        q = urllib.parse.parse_qs(query).get("dns", [""])[0]
        msg = base64.urlsafe_b64decode(q + "=" * (-len(q) % 4))
    else:
        msg = body
    ans = dns_answer(msg, "doh", peer, dst) or b""
    send_response(sock, 200, "application/dns-message", ans)


def git_cgi(sock, method, path_info, query, headers, body):
    env = {"GIT_PROJECT_ROOT": CFG["git_root"], "GIT_HTTP_EXPORT_ALL": "1",
           "PATH_INFO": path_info, "REQUEST_METHOD": method, "QUERY_STRING": query,
           "CONTENT_TYPE": headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
           "REMOTE_ADDR": "198.18.0.1", "PATH": "/usr/bin:/bin"}
    if "content-encoding" in headers:
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    if "git-protocol" in headers:
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                         timeout=60).stdout
    head, _, payload = out.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = out.partition(b"\n\n")
    status, ctype, extra = 200, "text/plain", []
    for ln in head.decode("latin-1").splitlines():
        k, _, v = ln.partition(":")
        if k.lower() == "status":
            status = int(v.split()[0])
        elif k.lower() == "content-type":
            ctype = v.strip()
        elif k.strip():
            extra.append(f"{k}: {v.strip()}")
    send_response(sock, status, ctype, payload, extra=extra)


def websocket(sock, c, headers, peer, dst):
    key = headers.get("sec-websocket-key", "")
    acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                        .encode()).digest()).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n\r\n").encode())
    while True:
        try:
            b0, b1 = c.read(2)
        except (EOFError, OSError, ssl.SSLError):
            return
        op, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n, = struct.unpack(">H", c.read(2))
        elif n == 127:
            n, = struct.unpack(">Q", c.read(8))
        mask = c.read(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(c.read(n)))
        record("ws", peer=peer, dst=dst, op=op, data=data[:200].decode("latin-1"))
        if op == 8:
            sock.sendall(b"\x88\x00")
            return
        hdr = bytes([0x80 | op])
        if len(data) < 126:
            hdr += bytes([len(data)])
        elif len(data) < 65536:
            hdr += bytes([126]) + struct.pack(">H", len(data))
        else:
            hdr += bytes([127]) + struct.pack(">Q", len(data))
        sock.sendall(hdr + data)


# ---------------------------------------------------------------- raw TCP, SOCKS, UDP

def tcp_echo(conn, peer, dst, port, srv="tcp"):
    """Says who it is, echoes what the first read brings, records it and closes."""
    conn.settimeout(5)
    got = b""
    try:
        conn.sendall(f"{srv}-{port}\n".encode())
        got = conn.recv(4096)
        conn.sendall(got)
    except OSError:
        pass
    record(srv, peer=peer, dst=dst, port=port, data=got[:300].decode("latin-1"))
    conn.close()


def socks(conn, peer, dst, port):
    conn.settimeout(10)
    got = b""
    try:
        got = conn.recv(512)
        conn.sendall(b"\x05\x00")
        got += conn.recv(512)
        conn.sendall(b"\x05\x01\x00\x01\0\0\0\0\0\0")  # "general failure": it records only
    except OSError:
        pass
    record("socks", peer=peer, dst=dst, port=port, data=got.hex())


def udp_echo(sock, port, srv="udp"):
    while True:
        data, peer, dst, reply = udp_recv(sock)
        record(srv, peer=norm(peer), dst=dst, port=port, data=data[:300].decode("latin-1"))
        sock.sendmsg([data], reply, 0, peer)


# ---------------------------------------------------------------- the wire recorder

def wire(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind((ifname, 0))
    seen = set()
    while True:
        pkt, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        et, = struct.unpack(">H", pkt[12:14])
        p = pkt[14:]
        if et == 0x0800 and len(p) >= 20:
            ihl = (p[0] & 15) * 4
            proto, src, dst = p[9], socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])
            l4 = p[ihl:]
        elif et == 0x86DD and len(p) >= 40:
            proto = p[6]
            src = socket.inet_ntop(socket.AF_INET6, p[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, p[24:40])
            l4 = p[40:]
            if dst.startswith("ff02:"):  # link-local multicast: MLD, neighbour discovery
                continue
        else:
            continue
        ev = {"proto": {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}.get(proto, str(proto)),
              "src": src, "dst": dst}
        if proto in (6, 17) and len(l4) >= 4:
            ev["sport"], ev["dport"] = struct.unpack(">HH", l4[:4])
            key = (proto, src, ev["sport"], dst, ev["dport"])
            if proto == 6 and len(l4) >= 14:
                ev["syn"] = bool(l4[13] & 2) and not l4[13] & 16
        elif proto in (1, 58) and l4:
            ev["type"] = l4[0]
            if proto == 58 and l4[0] in (133, 135, 136, 143):  # neighbour discovery, MLD
                continue
            key = (proto, src, dst, l4[0], l4[4:6])
        else:
            key = (proto, src, dst)
        if key in seen:
            continue
        if len(seen) < 200000:
            seen.add(key)
        record("wire", **ev)


# ---------------------------------------------------------------- listeners

def spawn(fn, *a):
    threading.Thread(target=fn, args=a, daemon=True).start()


def listen_tcp(addr, port, handler, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(4096)

    def loop():
        while True:
            conn, peer = s.accept()
            dst = norm(conn.getsockname())
            spawn(handler, conn, norm(peer), dst, port)
    spawn(loop)


def listen_udp(addr, port, handler, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.IPPROTO_IPV6, 49, 1)  # IPV6_RECVPKTINFO
    else:
        s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
    s.bind((addr, port))
    spawn(handler, s)


def world():
    ctx = tls_context()

    def http_plain(conn, peer, dst, port):
        conn.settimeout(60)
        with conn:
            http_session(conn, peer, dst, port, False, None)

    def http_tls(conn, peer, dst, port):
        s = tls_accept(conn, ctx, "https", peer, dst, port)
        if s:
            with s:
                http_session(s, peer, dst, port, True, getattr(s, "sni", None))

    def dot(conn, peer, dst, port):
        s = tls_accept(conn, ctx, "dot", peer, dst, port)
        if s:
            with s:
                dns_stream(s, "dot", peer, dst)

    def dns_tcp(conn, peer, dst, port):
        conn.settimeout(10)
        with conn:
            dns_stream(conn, "tcp", peer, dst)

    def udp_handler(port):
        return lambda s: udp_echo(s, port)

    for fam, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        listen_tcp(any_addr, 80, http_plain, fam)
        for p in (443, 8443):
            listen_tcp(any_addr, p, http_tls, fam)
        listen_tcp(any_addr, 853, dot, fam)
        listen_tcp(any_addr, 53, dns_tcp, fam)
        for p in (7777, 8080, 22, 25, 6379):
            listen_tcp(any_addr, p, lambda c, a, d, p: tcp_echo(c, a, d, p), fam)
        listen_tcp(any_addr, 1080, socks, fam)
        listen_udp(any_addr, 53, serve_dns_udp, fam)
        for p in (7, 123, 443, 9999):
            listen_udp(any_addr, p, udp_handler(p), fam)
    spawn(wire, CFG["ifname"])


def host():
    for addr in CFG["host_addrs"]:
        for p in CFG["host_ports"]:
            listen_tcp(addr, p, lambda c, a, d, p: tcp_echo(c, a, d, p, "host"))
    listen_udp("127.0.0.1", CFG["host_ports"][0],
               lambda s: udp_echo(s, CFG["host_ports"][0], "host-udp"))
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.bind("\0" + CFG["abstract"])
    u.listen(16)

    def uloop():
        while True:
            c, _ = u.accept()
            spawn(tcp_echo, c, "unix", "@" + CFG["abstract"], 0, "host-unix")
    spawn(uloop)


if __name__ == "__main__":
    (world if CFG["role"] == "world" else host)()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
