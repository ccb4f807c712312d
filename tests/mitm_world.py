# SPDX-License-Identifier: Apache-2.0
"""The test world of secret injection at the proxy (issue 15 part B): tests/proxy_world.py's
namespaces and proxy, plus an HTTPS echo server with its own test CA on 198.18.0.3:8443
(secure.allowed.test) and 198.18.0.4:8443 (secure.denied.test) that records what it received
(so a test sees the real value arrive even though the proxy scrubs it from the echo), the same
in HTTP/2 on port 8444 of both (H2_SERVER: Debian's python3-h2), and a sandbox "sb1" registered with grants, their values and the test CA as upstream_ca."""
import json
import pathlib
import secrets as pysecrets

import proxy_world


def placeholder():
    return "AGENTKERNEL_PLACEHOLDER_" + pysecrets.token_hex(16)


def grant(name, hosts, ph, header="Authorization", prefix="Bearer ", body=False):
    return {"name": name, "hosts": hosts, "header": header, "prefix": prefix,
            "placeholder": ph, "body": body}


POLICY = {
    "default": "deny",
    "rules": [{"action": "allow", "host": "*.allowed.test", "ports": [80, 443, 8081, 8443, 8444]},
              {"action": "allow", "host": "*.denied.test", "ports": [80, 443, 8443, 8444]},
              {"action": "allow", "host": "wrongname.test", "ports": [8443]}],
    "hosts": {"wrongname.test": "198.18.0.3"},
    "dns_servers": ["198.18.0.53"],
}

# the test's secrets: random, so that a search for them finds only what leaked
V_BEARER = "sk-test-" + pysecrets.token_hex(20)
V_OTHER = "other-" + pysecrets.token_hex(12)
V_WRONG = "wrong-" + pysecrets.token_hex(12)
V_BODY = "body-" + pysecrets.token_hex(12)
P_BEARER, P_OTHER, P_WRONG, P_NOVAL, P_BODY = (
    "AGENTKERNEL_PLACEHOLDER_" + pysecrets.token_hex(16) for _ in range(5))
HOST = "secure.allowed.test"
OTHER = "secure.denied.test"

# an HTTPS server that says what it got (headers, target, body), chunked and streamed forms,
# and a WebSocket-like upgrade that echoes bytes
ECHO_SERVER = r"""
import http.server, json, socket, ssl, sys, time
addr, port, cert, key, rec = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def said(self, body=b""):
        d = json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                        "body": body.decode("latin-1")})
        with open(rec, "a") as f:
            f.write(d + "\n")
        return d.encode()
    def do_GET(self):
        if self.headers.get("Upgrade"):
            self.send_response(101); self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade"); self.end_headers(); self.wfile.flush()
            self.close_connection = True
            while True:
                d = self.connection.recv(65536)
                if not d: return
                self.connection.sendall(d)
        data = self.said()
        if self.path.startswith("/chunked"):
            self.send_response(200); self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 7):
                part = data[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part)); self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n"); return
        if self.path.startswith("/sse"):
            self.send_response(200); self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            ev = b"data: " + self.headers.get("Authorization", "").encode() + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev)); self.wfile.flush()
            time.sleep(3)
            self.wfile.write(b"0\r\n\r\n"); return
        if self.path.startswith("/close"):
            self.send_response(200); self.send_header("Connection", "close"); self.end_headers()
            self.wfile.write(data); self.close_connection = True; return
        if self.path.startswith("/big"):
            # 4 MiB with the Authorization it got at places that straddle any 64 KiB boundary
            auth = self.headers.get("Authorization", "").encode()
            blob = bytearray(b"z" * (4 << 20))
            for off in range(1000, len(blob) - 200, 65536 - 13):
                blob[off:off + len(auth)] = auth
            self.send_response(200); self.send_header("Content-Length", str(len(blob)))
            self.end_headers(); self.wfile.write(bytes(blob)); return
        if self.path.startswith("/header"):
            self.send_response(200); self.send_header("X-Echo", self.headers.get("Authorization", ""))
            self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
            return
        self.send_response(200); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.said(self.rfile.read(n))
        self.send_response(200); self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
s = http.server.ThreadingHTTPServer((addr, port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
"""

# An HTTP/2-only HTTPS server (ALPN h2) that says what it got, as ECHO_SERVER does: /echo (the
# request as JSON), /header (X-Echo: the Authorization it got), /sse (an event with the
# Authorization it got at once, the end 3 s later), /big (1 MiB with the Authorization it got
# across DATA frames), /trailers (a trailer with the Authorization it got)
H2_SERVER = r"""
import json, socket, ssl, sys, threading, time
import h2.config, h2.connection, h2.events
addr, port, cert, key, rec = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
def serve(raw):
    try:
        sock = ctx.wrap_socket(raw, server_side=True)
    except Exception:
        return
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding="latin-1"))
    lock = threading.Lock()
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 24)
    reqs = {}
    pending = {}
    def flush():
        d = conn.data_to_send()
        if d:
            sock.sendall(d)
    def pump(sid):
        # what waits for window goes out as it opens
        d = pending.get(sid)
        while d:
            n = min(len(d), conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if n <= 0:
                return
            conn.send_data(sid, d[:n]); d = d[n:]; pending[sid] = d
        if sid in pending:
            del pending[sid]; conn.end_stream(sid)
    def later(sid, data):
        time.sleep(3)
        with lock:
            try:
                conn.send_data(sid, data, end_stream=True); flush()
            except Exception:
                pass
    def respond(sid):
        r = reqs.pop(sid)
        h = r["headers"]; path = h.get(":path", "")
        d = json.dumps({"path": path, "headers": h, "body": r["body"].decode("latin-1")})
        with open(rec, "a") as f:
            f.write(d + "\n")
        auth = h.get("authorization", "")
        if path.startswith("/sse"):
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
            conn.send_data(sid, ("data: " + auth + "\n\n").encode("latin-1"))
            threading.Thread(target=later, args=(sid, b"data: end\n\n"), daemon=True).start()
        elif path.startswith("/header"):
            conn.send_headers(sid, [(":status", "200"), ("x-echo", auth), ("content-length", "2")])
            conn.send_data(sid, b"ok", end_stream=True)
        elif path.startswith("/trailers"):
            conn.send_headers(sid, [(":status", "200")])
            conn.send_data(sid, b"ok")
            conn.send_headers(sid, [("x-trailer", auth)], end_stream=True)
        elif path.startswith("/big"):
            blob = bytearray(b"z" * (1 << 20))
            for off in range(1000, len(blob) - 200, 16384 - 13):
                blob[off:off + len(auth)] = auth.encode("latin-1")
            conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(blob)))])
            pending[sid] = bytes(blob); pump(sid)
        else:
            body = d.encode()
            conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body))),
                                    ("content-type", "application/json")])
            pending[sid] = body; pump(sid)
    try:
        with lock:
            flush()
        while True:
            data = sock.recv(65536)
            if not data:
                break
            with lock:
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        reqs[ev.stream_id] = {"headers": dict(ev.headers), "body": b""}
                        if ev.stream_ended:
                            respond(ev.stream_id)
                    elif isinstance(ev, h2.events.DataReceived):
                        if ev.stream_id in reqs:
                            reqs[ev.stream_id]["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        if ev.stream_id in reqs:
                            respond(ev.stream_id)
                    elif isinstance(ev, h2.events.WindowUpdated):
                        for sid in list(pending):
                            pump(sid)
                    elif isinstance(ev, h2.events.StreamReset):
                        pending.pop(ev.stream_id, None)
                flush()
    except Exception:
        pass
    finally:
        sock.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def secrets_extra(world, upstream_ca=True, values=True):
    x = {"secrets": [
        grant("K_BEARER", [HOST], P_BEARER),
        grant("K_OTHER", [OTHER], P_OTHER, header="x-api-key", prefix=""),
        grant("K_WRONG", ["wrongname.test"], P_WRONG),
        grant("K_NOVAL", [HOST], P_NOVAL),
        grant("K_BODY", [HOST], P_BODY, header="x-body", prefix="", body=True)]}
    if upstream_ca:
        x["upstream_ca"] = (world.tmp / "ca.pem").read_text()
    if values:
        x["values"] = {"K_BEARER": V_BEARER.encode().hex(), "K_OTHER": V_OTHER.encode().hex(),
                       "K_WRONG": V_WRONG.encode().hex(), "K_BODY": V_BODY.encode().hex()}
    return x


def ctl_raw(world, msg, raw):
    c = proxy_world.Control(world.control)
    try:
        return c.call(msg, raw=raw)
    finally:
        c.close()


class MitmWorld(proxy_world.World):
    def _setup(self, policy, proxy_args, extra=None):
        super()._setup(policy, proxy_args, None)
        self.received = self.tmp / "received.jsonl"
        srv = self.tmp / "echo.py"
        srv.write_text(ECHO_SERVER)
        for addr in ("198.18.0.3", "198.18.0.4"):
            self._spawn(proxy_world.ns_exec(self.inet, proxy_world.PY, str(srv), addr, "8443",
                                            str(self.tmp / "srv.pem"), str(self.tmp / "srv.key"),
                                            str(self.received)),
                        ready="ready")
        h2srv = self.tmp / "echo_h2.py"
        h2srv.write_text(H2_SERVER)
        for addr in ("198.18.0.3", "198.18.0.4"):
            self._spawn(proxy_world.ns_exec(self.inet, proxy_world.PY, str(h2srv), addr, "8444",
                                            str(self.tmp / "srv.pem"), str(self.tmp / "srv.key"),
                                            str(self.received)),
                        ready="ready")
        # sb1 again, now with grants (a netns of its own: sb1's listeners stay registered)
        self.sbx = self.sandbox_netns()
        self.holder = self._spawn(proxy_world.ns_exec(self.sbx, "sleep", "3600"))
        reply = self.register("sb1", policy, extra=secrets_extra(self))
        self.proxy_ca = self.tmp / "proxy-ca.pem"
        self.proxy_ca.write_text(reply.get("ca", ""))  # none: an old proxy (the tests fail)

    def https(self, url, *args, explicit=False, timeout=20):
        """curl inside the sandbox trusting the proxy's CA; returns the CompletedProcess."""
        extra = ["-x", "http://127.0.0.1:15001"] if explicit else []
        return self.sh("curl", "-sS", "--max-time", "10", "--cacert", str(self.proxy_ca),
                       *extra, *args, url, timeout=timeout)


    def last_received(self):
        """What the echo server got last (headers, path, body) as it got it."""
        lines = self.received.read_text().splitlines() if self.received.exists() else []
        return json.loads(lines[-1]) if lines else None

    def audit_lines(self):
        if not self.audit.exists():
            return []
        return [json.loads(x) for x in self.audit.read_text().splitlines() if x]


def said(r):
    assert r.returncode == 0, r
    return json.loads(r.stdout)
