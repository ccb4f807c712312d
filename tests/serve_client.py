# SPDX-License-Identifier: Apache-2.0
"""`agentkernel serve` for tests: a server on a free port (and optionally a unix socket) run by
the test, and plain HTTP clients over TCP or the socket that send exactly the headers they are
given (a browser's, an attacker's)."""
import http.client
import json
import socket
import ssl
import subprocess
import time

from conftest import AK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Server:
    """`serve` on a free port. Without keys of the test's own it makes one for its owner in the
    data directory (api-key); requests then carry it, as a user's client would."""

    def __init__(self, ak, *args, env=None, prefix=None, wait=True, cwd=None):
        self.port = free_port()
        self.key = None
        self.socket = None
        if "--socket" in args:
            self.socket = args[list(args).index("--socket") + 1]
        e = dict(ak.env)
        e.update(env or {})
        self.proc = subprocess.Popen((prefix or []) + [AK, "serve", "--port", str(self.port),
                                                       *args],
                                     env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd)
        if not wait:
            return
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if "--no-tcp" in args:
                    socket.socket(socket.AF_UNIX).connect(self.socket)
                    break
                if self.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("server did not come up")
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited: {self.stop()}")
        key_file = ak.data_dir / "api-key"
        if not any(a.startswith("--api-key") or a in ("--insecure-no-auth", "--no-tcp")
                   for a in args):
            # (none: a server older than the generated key, which the attack tests then show)
            self.key = key_file.read_text().strip() if key_file.exists() else None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def auth(self):
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60, key=True,
                unix=False):
        """(status, decoded JSON or bytes). The owner's key unless key=False or headers give
        an Authorization; Content-Type: application/json with a body unless headers say
        otherwise."""
        status, _, text = self.exchange(method, path, body, headers, raw, timeout, key, unix)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def exchange(self, method, path, body=None, headers=None, raw=None, timeout=60, key=True,
                 unix=False):
        """(status, response headers as a lower-cased dict, body bytes)."""
        c = (UnixHTTPConnection(self.socket, timeout=timeout) if unix else
             http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout))
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if key:
            h.update(self.auth())
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}  # None: leave the header out
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return err.decode()


def make_cert(d, name="localhost"):
    """A self-signed certificate for name and 127.0.0.1 (openssl), its key 0600: (cert, key)."""
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
                    "-days", "2"], check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def https_request(port, cert, method, path, key=None, body=None):
    """(status, JSON) of one HTTPS request to 127.0.0.1:port, trusting only cert."""
    ctx = ssl.create_default_context(cafile=str(cert))
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    h = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    return r.status, data
