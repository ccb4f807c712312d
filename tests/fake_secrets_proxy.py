#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for agentkernel-proxy that speaks only its control protocol (EGRESS.md, and issue
15's additions in docs/secrets.md): for the tests of the registrant's side of secret injection
(tests/integration/test_secrets_inject.py), which must hold whatever the real proxy does with the
traffic. Started by agentkernel itself through AGENTKERNEL_PROXY, as the real one: `--dir DIR`,
detaches once DIR/control accepts.

It answers `register` with {"ok":true,"ca":PEM} (PEM: the file FAKE_PROXY_CA names, read at each
register, so a test can change it between starts), `secret_value`, `unregister`, `get_policy`,
`set_policy`, `stats`; and it records, one JSON object a line in DIR/fake.jsonl, each message:
a register as it came (fd count added), a secret_value as its JSON plus the SHA-256 and length of
the value bytes after the NUL (never the value). The fds it gets are closed at once: a sandbox
registered here has no way out (nothing listens for it).
"""
import hashlib
import json
import os
import socket
import sys

from fake_proxy_base import bind_control, detach


def main():
    d = sys.argv[sys.argv.index("--dir") + 1]
    s = bind_control(d, 16)  # before the detach: the registrant finds it listening
    detach()
    with open(os.path.join(d, "fake.pid"), "w") as f:
        f.write(str(os.getpid()))
    log = open(os.path.join(d, "fake.jsonl"), "a", buffering=1)
    policies = {}
    s.settimeout(120)  # no client for two minutes: gone (a test's world is short-lived)
    while True:
        try:
            c, _ = s.accept()
        except socket.timeout:
            break
        c.settimeout(10)
        try:
            while True:
                msg, anc, _, _ = c.recvmsg(1 << 20, socket.CMSG_SPACE(8 * 4))
                if not msg:
                    break
                fds = []
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds += list(memoryview(data).cast("i"))
                for fd in fds:
                    os.close(fd)
                head, nul, value = msg.partition(b"\0")
                req = json.loads(head)
                op = req.get("op")
                rec = dict(req, n_fds=len(fds))
                reply = {"ok": True}
                if op == "secret_value":
                    rec["value_sha256"] = hashlib.sha256(value).hexdigest()
                    rec["value_len"] = len(value)
                    rec["nul"] = bool(nul)
                elif op == "register":
                    policies[req.get("sandbox")] = req.get("policy")
                    if req.get("secrets"):
                        with open(os.environ["FAKE_PROXY_CA"]) as f:
                            reply["ca"] = f.read()
                elif op == "set_policy":
                    policies[req.get("sandbox")] = req.get("policy")
                elif op == "get_policy":
                    reply["policy"] = policies.get(req.get("sandbox"))
                elif op == "stats":
                    reply.update(worker_pid=None, supervisor_pid=os.getpid(), sandboxes={})
                log.write(json.dumps(rec) + "\n")
                c.send(json.dumps(reply).encode())
        except (OSError, ValueError):
            pass
        finally:
            c.close()


if __name__ == "__main__":
    main()
