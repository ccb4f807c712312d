# SPDX-License-Identifier: Apache-2.0
"""A webhook receiver for tests: an HTTP server on loopback, in a thread, that records every
request (path, headers, body) and answers what the test tells it to (a status, a redirect, a
delay)."""
import http.server
import threading


class Sink:
    def __init__(self, status=200, location=None, delay=0.0):
        self.hits = []
        self.status = status
        self.location = location
        self.delay = delay
        self.cond = threading.Condition()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with sink.cond:
                    sink.hits.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                                      body))
                    sink.cond.notify_all()
                if sink.delay:
                    threading.Event().wait(sink.delay)
                self.send_response(sink.status)
                if sink.location:
                    self.send_header("Location", sink.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n, timeout=15):
        """The hits, once there are at least n (or the timeout passed)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.hits) >= n, timeout)
            return list(self.hits)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
