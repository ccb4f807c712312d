#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A test double of agentkernel-proxy (the real one is helper "proxy"'s, issue 14): it speaks the
control protocol (docs/network.md) on DIR/control, keeps each registration's policy, and serves a
registered sandbox's TCP listener by answering every connection with one line naming where the
connection was going (SO_ORIGINAL_DST) and whether it came as an explicit proxy client. It
forwards nothing anywhere: it only proves what reaches the proxy and what does not.

Usage (as agentkernel starts a proxy): fake_proxy.py --dir DIR. It detaches (double fork) and
writes its pid to DIR/fake-proxy.pid; the test that started it kills it by that pid."""
import json
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fake_proxy_base import bind_control, detach  # noqa: E402

SO_ORIGINAL_DST = 80


def serve_tcp(name, lfd, logfd):
    ls = socket.socket(fileno=lfd)
    ls.setblocking(True)
    while True:
        try:
            c, peer = ls.accept()
        except OSError:
            return
        try:
            raw = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, ip = struct.unpack("!2xH4s8x", raw)
            dst = f"{socket.inet_ntoa(ip)}:{port}"
            mine = c.getsockname()
            explicit = (socket.inet_ntoa(ip), port) == mine
            c.sendall(f"fake-proxy {name} {'explicit' if explicit else 'transparent'} {dst}\n"
                      .encode())
            os.write(logfd, (json.dumps({"sandbox": name, "kind": "tcp", "ip": socket.inet_ntoa(ip),
                                         "port": port, "action": "allow",
                                         "rule": "fake"}) + "\n").encode())
        except OSError:
            pass
        finally:
            c.close()


def main():
    d = sys.argv[sys.argv.index("--dir") + 1]
    detach()
    srv = bind_control(d, 64)
    with open(os.path.join(d, "fake-proxy.pid"), "w") as f:
        f.write(str(os.getpid()))
    sandboxes = {}
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, sandboxes), daemon=True).start()


def handle(conn, sandboxes):
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 8)
        except OSError:
            return
        if not msg:
            return
        req = json.loads(msg)
        op, name = req.get("op"), req.get("sandbox")
        reply = {"ok": True}
        if op == "register":
            if len(fds) != 5:
                reply = {"ok": False, "error": f"register wants 5 fds, got {len(fds)}"}
            else:
                old = sandboxes.get(name)
                sandboxes[name] = {"policy": req.get("policy"), "fds": fds}
                threading.Thread(target=serve_tcp, args=(name, fds[0], fds[4]),
                                 daemon=True).start()
                if old:
                    os.close(old["fds"][0])
        elif op in ("get_policy", "set_policy", "unregister"):
            sb = sandboxes.get(name)
            if not sb:
                reply = {"ok": False, "error": f"no sandbox '{name}'"}
            elif op == "get_policy":
                reply["policy"] = sb["policy"] if sb["policy"] is not None else {"default": "deny"}
            elif op == "set_policy":
                sb["policy"] = req.get("policy")
            else:
                for fd in sb["fds"]:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                del sandboxes[name]
        elif op == "stats":
            reply.update({"worker_pid": os.getpid(), "supervisor_pid": os.getpid(),
                          "sandboxes": {n: {} for n in sandboxes}})
        else:
            reply = {"ok": False, "error": f"unknown op '{op}'"}
        conn.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
