# SPDX-License-Identifier: Apache-2.0
"""A tiny OTLP/HTTP collector on loopback for the tests: records every POST (path, headers,
JSON body); delay makes it slow, status makes it refuse."""
import http.server
import json
import threading
import time


class Collector:
    def __init__(self, delay=0.0, status=200):
        self.posts = []
        self.delay = delay
        self.status = status
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if outer.delay:
                    time.sleep(outer.delay)
                with outer.lock:
                    outer.posts.append((self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def spans(self):
        out = []
        with self.lock:
            posts = list(self.posts)
        for _, _, body in posts:
            doc = json.loads(body)
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    out.extend(ss["spans"])
        return out

    def wait(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.spans()):
                return True
            time.sleep(0.1)
        return False

    def raw(self):
        with self.lock:
            return b"".join(h.__repr__().encode() + b for _, h, b in self.posts)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
