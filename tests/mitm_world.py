# SPDX-License-Identifier: Apache-2.0
"""The test world of secret injection at the proxy (issue 15 part B): tests/proxy_world.py's
namespaces and proxy, plus an HTTPS echo server with its own test CA on 198.18.0.3:8443
(secure.allowed.test) and 198.18.0.4:8443 (secure.denied.test) that records what it received
(so a test sees the real value arrive even though the proxy scrubs it from the echo), and a
sandbox "sb1" registered with grants, their values and the test CA as upstream_ca."""
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
    "rules": [{"action": "allow", "host": "*.allowed.test", "ports": [80, 443, 8081, 8443]},
              {"action": "allow", "host": "*.denied.test", "ports": [80, 443, 8443]},
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
        # sb1 again, now with grants (a netns of its own: sb1's listeners stay registered)
        self.sbx = self.sandbox_netns()
        self.holder = self._spawn(proxy_world.ns_exec(self.sbx, "sleep", "3600"))
        reply = self.register("sb1", policy, extra=secrets_extra(self))
        self.proxy_ca = self.tmp / "proxy-ca.pem"
        self.proxy_ca.write_text(reply["ca"])

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
