#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A conformance double of Firecracker's API for the microvm backend's firecracker driver.

It is run where the driver runs `firecracker` ($AGENTKERNEL_FIRECRACKER) and behaves as
../shared/reference/firecracker-api.md describes Firecracker: `--api-sock PATH --id ID`, HTTP/1.1
over the unix socket, strict request bodies (unknown fields, wrong types, missing required fields
and id mismatches refused with 400 and {"fault_message": ...}), PUT/PATCH without a body refused,
pre-boot resources refused after InstanceStart, InstanceStart needing a boot source, files opened
when they are configured (as Firecracker opens them: a path the process cannot read is an error),
the vsock's socket bound by it and refused when it exists, and the hybrid vsock's
`CONNECT <port>\\n` / `OK <n>\\n` handshake.

Every request and its answer are appended as a JSON line to $FC_DOUBLE_LOG (when set), so a test
can check the calls and their order; a request the double refuses is logged with its reason.

With $FC_DOUBLE_QEMU (a qemu-system-x86_64) InstanceStart boots the configured kernel, initrd and
drive for real under QEMU's microvm machine with TCG, and a CONNECT to port 52000 is joined to the
guest's virtio-serial port: the backend's whole path (driver, relay, guest agent) runs through the
firecracker API; PATCH /vm Paused|Resumed stops and continues that QEMU (SIGSTOP/SIGCONT). One difference is known and written down: Firecracker closes a CONNECT while
nothing listens in the guest; the double accepts it once the machine runs (QEMU queues the bytes).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

PAYLOAD_MAX = 51200
GUEST_PORT = 52000

STR, BOOL, INT, OBJ = "string", "bool", "integer", "object"
SCHEMAS = {
    "boot-source": ({"kernel_image_path"}, {"kernel_image_path": STR, "boot_args": STR,
                                            "initrd_path": STR}),
    "drives": ({"drive_id", "is_root_device"},
               {"drive_id": STR, "is_root_device": BOOL, "path_on_host": STR,
                "is_read_only": BOOL, "partuuid": STR, "cache_type": STR, "io_engine": STR,
                "rate_limiter": OBJ, "socket": STR}),
    "machine-config": ({"vcpu_count", "mem_size_mib"},
                       {"vcpu_count": INT, "mem_size_mib": INT, "smt": BOOL,
                        "track_dirty_pages": BOOL, "cpu_template": STR, "huge_pages": STR}),
    "network-interfaces": ({"iface_id", "host_dev_name"},
                           {"iface_id": STR, "host_dev_name": STR, "guest_mac": STR, "mtu": INT,
                            "rx_rate_limiter": OBJ, "tx_rate_limiter": OBJ}),
    "vsock": ({"guest_cid", "uds_path"}, {"guest_cid": INT, "uds_path": STR, "vsock_id": STR}),
    "actions": ({"action_type"}, {"action_type": STR}),
    "vm": ({"state"}, {"state": STR}),
}
PRE_BOOT = {"boot-source", "drives", "machine-config", "network-interfaces", "vsock", "logger",
            "metrics", "serial", "entropy"}


class Refused(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def typed(value, kind):
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == STR:
        return isinstance(value, str)
    return isinstance(value, dict)


def check_body(resource, body):
    required, fields = SCHEMAS[resource]
    if not isinstance(body, dict):
        raise Refused("An error occurred when deserializing the json body of a request: "
                      "expected an object")
    for k, v in body.items():
        if k not in fields:
            raise Refused("An error occurred when deserializing the json body of a request: "
                          f"unknown field `{k}`")
        if not typed(v, fields[k]):
            raise Refused("An error occurred when deserializing the json body of a request: "
                          f"invalid type for `{k}`")
    for k in sorted(required - body.keys()):
        raise Refused("An error occurred when deserializing the json body of a request: "
                      f"missing field `{k}`")


def check_id(path_id, body, key):
    if not path_id:
        raise Refused("The ID cannot be empty.")
    if not all(c.isalnum() or c == "_" for c in path_id):
        raise Refused("API Resource IDs can only contain alphanumeric characters and "
                      "underscores.")
    if body.get(key) != path_id:
        raise Refused("The id from the path does not match the id from the body!")


class Machine:
    def __init__(self, ident):
        self.ident = ident
        self.state = "Not started"
        self.boot = None
        self.drives = {}
        self.machine = {"vcpu_count": 1, "mem_size_mib": 128, "smt": False}
        self.vsock = None
        self.vsock_listener = None
        self.files = []  # descriptors opened at configuration, handed to QEMU
        self.qemu = None
        # relative to the working directory: the path above it may not be this process's to walk
        self.chan = "qemu-chan.sock"

    def open_file(self, path, what):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise Refused(f"Unable to open the {what} file: {e.strerror} (os error {e.errno})")
        self.files.append(fd)
        return fd

    def handle(self, method, path, body):
        parts = [p for p in path.split("/") if p]
        resource = parts[0] if parts else ""
        if method == "GET" and path == "/":
            return 200, {"app_name": "Firecracker", "id": self.ident, "state": self.state,
                         "vmm_version": "1.7.0-double"}
        if method == "GET" and path == "/version":
            return 200, {"firecracker_version": "1.7.0-double"}
        if method == "GET" and path == "/machine-config":
            return 200, self.machine
        if method == "PUT" and resource in PRE_BOOT and self.state != "Not started":
            raise Refused("The requested operation is not supported after starting the microVM.")
        if method == "PUT" and path == "/boot-source":
            check_body("boot-source", body)
            for key, what in (("kernel_image_path", "kernel"), ("initrd_path", "initrd")):
                if key in body:
                    body["_" + key] = self.open_file(body[key], what)
            self.boot = body
            return 204, None
        if method == "PUT" and resource == "drives" and len(parts) == 2:
            check_body("drives", body)
            check_id(parts[1], body, "drive_id")
            if "socket" not in body and ("path_on_host" not in body or
                                         "is_read_only" not in body):
                raise Refused("An error occurred when deserializing the json body of a request: "
                              "missing field `path_on_host` or `is_read_only`")
            body["_fd"] = self.open_file(body["path_on_host"], "drive")
            self.drives[parts[1]] = body
            return 204, None
        if method == "PUT" and path == "/machine-config":
            check_body("machine-config", body)
            if not 1 <= body["vcpu_count"] <= 32 or body["mem_size_mib"] == 0:
                raise Refused("The vCPU number is invalid!" if not 1 <= body["vcpu_count"] <= 32
                              else "The memory size (MiB) is invalid.")
            self.machine.update(body)
            return 204, None
        if method == "PUT" and resource == "network-interfaces" and len(parts) == 2:
            check_body("network-interfaces", body)
            check_id(parts[1], body, "iface_id")
            raise Refused("Open tap device failed: no tap devices in the double")
        if method == "PUT" and path == "/vsock":
            check_body("vsock", body)
            if body["guest_cid"] < 3:
                raise Refused("Invalid guest CID: must be at least 3")
            if os.path.lexists(body["uds_path"]):
                raise Refused("Cannot create backend for vsock device: UnixBind(Os { code: 98, "
                              "kind: AddrInUse, message: \"Address in use\" })")
            self.vsock = body
            return 204, None
        if method == "PUT" and path == "/actions":
            check_body("actions", body)
            action = body["action_type"]
            if action not in ("InstanceStart", "SendCtrlAltDel", "FlushMetrics"):
                raise Refused("An error occurred when deserializing the json body of a request: "
                              f"unknown variant `{action}`")
            if action == "InstanceStart":
                if self.state != "Not started":
                    raise Refused("The requested operation is not supported after starting the "
                                  "microVM.")
                if not self.boot:
                    raise Refused("Cannot start microvm without kernel configuration.")
                self.start()
            return 204, None
        if method == "PATCH" and path == "/vm":
            check_body("vm", body)
            if self.state == "Not started":
                raise Refused("The requested operation is not supported before starting the "
                              "microVM.")
            if body["state"] not in ("Paused", "Resumed"):
                raise Refused("An error occurred when deserializing the json body of a request: "
                              f"unknown variant `{body['state']}`")
            self.state = "Paused" if body["state"] == "Paused" else "Running"
            if self.qemu:  # the booted machine stops (and goes on) as a whole
                os.kill(self.qemu.pid, signal.SIGSTOP if self.state == "Paused" else
                        signal.SIGCONT)
            return 204, None
        raise Refused(f"Invalid request method and/or path: {method} {resource}.")

    def start(self):
        if self.vsock:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.vsock["uds_path"])
            s.listen(8)
            self.vsock_listener = s
            threading.Thread(target=self.serve_vsock, daemon=True).start()
        qemu = os.environ.get("FC_DOUBLE_QEMU")
        if qemu:
            self.boot_qemu(qemu)
        self.state = "Running"

    def boot_qemu(self, qemu):
        fdpath = "/proc/self/fd/{}".format
        # Firecracker appends virtio_mmio.device=... to the boot args, as QEMU's microvm does
        # without ACPI: so for the minimal kernel (boot args with no "--", after which what is
        # appended would reach init) acpi=off; Debian's kernel finds its devices through ACPI
        args = self.boot.get("boot_args", "")
        machine = "microvm" if " -- " in f" {args} " else "microvm,acpi=off"
        argv = [qemu, "-M", machine, "-accel", "tcg", "-cpu", "max",
                "-m", str(self.machine["mem_size_mib"]), "-smp", str(self.machine["vcpu_count"]),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", fdpath(self.boot["_kernel_image_path"]),
                "-append", self.boot.get("boot_args", ""), "-serial", "stdio",
                "-device", "virtio-serial-device,max_ports=2",
                "-chardev", f"socket,id=ak,path={self.chan},server=on,wait=off",
                "-device", "virtserialport,chardev=ak,name=ak.0"]
        if "_initrd_path" in self.boot:
            argv += ["-initrd", fdpath(self.boot["_initrd_path"])]
        for i, d in enumerate(self.drives.values()):
            ro = ",readonly=on" if d.get("is_read_only") else ""
            argv += ["-drive", f"id=d{i},file={fdpath(d['_fd'])},format=raw,if=none{ro}",
                     "-device", f"virtio-blk-device,drive=d{i}"]
        self.qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=self.files)

        def reap():
            self.qemu.wait()
            os._exit(0)  # the machine ended: so does its Firecracker
        threading.Thread(target=reap, daemon=True).start()

    def serve_vsock(self):
        while True:
            conn, _ = self.vsock_listener.accept()
            threading.Thread(target=self.vsock_conn, args=(conn,), daemon=True).start()

    def vsock_conn(self, conn):
        line = b""
        while not line.endswith(b"\n") and len(line) < 32:
            b = conn.recv(1)
            if not b:
                break
            line += b
        log({"vsock": line.decode(errors="replace").strip()})
        parts = line.split()
        if (len(parts) != 2 or parts[0] != b"CONNECT" or not parts[1].isdigit() or
                int(parts[1]) != GUEST_PORT or not self.qemu):
            conn.close()  # nothing listens on that port in the guest
            return
        guest = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            guest.connect(self.chan)
        except OSError as e:
            log({"vsock_error": str(e)})
            conn.close()
            return
        conn.sendall(b"OK 1073741824\n")
        log({"vsock_ok": 1})

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pump, args=(guest, conn), daemon=True).start()
        pump(conn, guest)


def log(entry):
    path = os.environ.get("FC_DOUBLE_LOG")
    if path:
        try:
            with open(path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError as e:  # the console log says why a test then finds no entries
            print(f"firecracker double: cannot log to {path}: {e}", file=sys.stderr)


def read_request(f):
    line = f.readline(8192)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = f.readline(8192).decode("latin-1")
        if h in ("\r\n", "\n", ""):
            break
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    if length > PAYLOAD_MAX:
        f.read(length)
        return method, path, None, Refused("Request payload with size {} is larger than the "
                                           "limit of {} allowed by server.".format(length,
                                                                                   PAYLOAD_MAX),
                                           413)
    raw = f.read(length) if length else b""
    return method, path, raw, None


def answer(conn, status, body):
    reason = {200: "OK", 204: "No Content", 400: "Bad Request", 413: "Payload Too Large"}
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nServer: Firecracker API\r\n"
            f"Connection: keep-alive\r\nContent-Length: {len(data)}\r\n")
    if data:
        head += "Content-Type: application/json\r\n"
    conn.sendall(head.encode() + b"\r\n" + data)


def serve(machine, conn):
    f = conn.makefile("rb")
    while True:
        req = read_request(f)
        if req is None:
            return
        method, path, raw, early = req
        entry = {"method": method, "path": path}
        try:
            if early:
                raise early
            if method in ("PUT", "PATCH") and not raw:
                raise Refused(f"Empty {method} request.")
            if method == "GET" and raw:
                raise Refused("GET request cannot have a body.")
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise Refused("An error occurred when deserializing the json body of a "
                                  f"request: {e}")
                entry["body"] = body
            status, out = machine.handle(method, path, dict(body) if isinstance(body, dict)
                                         else body)
        except Refused as e:
            status, out = e.status, {"fault_message": str(e)}
        entry["status"] = status
        if status >= 400:
            entry["fault"] = out["fault_message"]
        log(entry)
        answer(conn, status, out)


def main():
    args = sys.argv[1:]
    if "--version" in args:
        print("Firecracker v1.7.0-double")
        return 0
    opts = {}
    while args:
        k = args.pop(0)
        if k not in ("--api-sock", "--id") or not args:
            print(f"Arguments parsing error: unexpected argument '{k}'", file=sys.stderr)
            return 1
        opts[k] = args.pop(0)
    api = opts.get("--api-sock", "/run/firecracker.socket")
    ident = opts.get("--id", "anonymous-instance")
    if not (1 <= len(ident) <= 64 and all(c.isalnum() or c == "-" for c in ident)):
        print("Invalid instance ID", file=sys.stderr)
        return 1
    machine = Machine(ident)
    signal.signal(signal.SIGTERM, lambda *_: (machine.qemu and machine.qemu.kill(), os._exit(0)))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(api)
    except OSError as e:
        print(f"Failed to open the API socket: {e}", file=sys.stderr)
        return 1
    s.listen(8)
    log({"started": {"api_sock": api, "id": ident, "uid": os.getuid()}})
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(machine, conn), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
