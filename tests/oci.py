# SPDX-License-Identifier: Apache-2.0
"""Real OCI test images and a real registry, built and started by the tests.

Images are made from Debian's busybox-static with umoci (layers, file whiteouts), plus layers
written here where umoci has no command for them (an opaque directory, a zstd layer, a
malicious layer), and pushed with skopeo to Debian's docker-registry on 127.0.0.1.
"""
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tarfile
import time

BUSYBOX = "/bin/busybox"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def tools_present():
    return all(shutil.which(t) for t in ("umoci", "skopeo", "docker-registry", "zstd")) and \
        os.path.exists(BUSYBOX)


def run(*cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: rc={p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class TokenServer:
    """A Bearer token service for docker-registry's `token` auth: checks basic credentials and
    issues RS256 JWTs (x5c-signed with a certificate the registry trusts). The registry verifies
    every token itself; this is the same flow as Docker Hub's auth.docker.io."""

    def __init__(self, workdir, user, password, service="test-registry", issuer="test-issuer"):
        import base64
        import http.server
        import threading

        import jwt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        import datetime

        self.service, self.issuer = service, issuer
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentkernel test token")])
        now = datetime.datetime.utcnow()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))
        self.cert_path = pathlib.Path(workdir) / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlparse
                q = parse_qs(urlparse(self.path).query)
                outer.requests.append(q)
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.end_headers()
                    return
                access = []
                for scope in q.get("scope", []):
                    typ, repo, actions = scope.split(":", 2)
                    access.append({"type": typ, "name": repo, "actions": actions.split(",")})
                t = int(time.time())
                tok = jwt.encode({"iss": outer.issuer, "sub": user, "aud": outer.service,
                                  "exp": t + 300, "nbf": t - 10, "iat": t, "jti": str(t),
                                  "access": access}, key, algorithm="RS256",
                                 headers={"x5c": [x5c]})
                body = json.dumps({"token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def allow(env, *hosts):
    """Adds hosts to env's AGENTKERNEL_INSECURE_REGISTRIES."""
    have = [h for h in env.get("AGENTKERNEL_INSECURE_REGISTRIES", "").split(",") if h]
    env["AGENTKERNEL_INSECURE_REGISTRIES"] = ",".join(have + [h for h in hosts if h not in have])


class Registry:
    """docker-registry on 127.0.0.1:<free port>, optionally with htpasswd basic auth or with
    Bearer-token auth (token=True: a TokenServer issues the tokens)."""

    def __init__(self, workdir, user=None, password=None, token=False):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user, self.password = user, password
        cfg = [
            "version: 0.1",
            "log:",
            "  level: error",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.dir / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        self.token = None
        if user and token:
            self.token = TokenServer(self.dir, user, password)
            cfg += ["auth:", "  token:", f"    realm: {self.token.realm}",
                    f"    service: {self.token.service}", f"    issuer: {self.token.issuer}",
                    f"    rootcertbundle: {self.token.cert_path}"]
        elif user:
            htpasswd = self.dir / "htpasswd"
            htpasswd.write_text(run("htpasswd", "-Bbn", user, password))
            cfg += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
        (self.dir / "config.yml").write_text("\n".join(cfg) + "\n")
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start: " +
                           (self.dir / "registry.log").read_text())

    def push(self, layout, tag, repo, all_=False):
        cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if all_:
            cmd.append("--all")
        if self.user:
            cmd += ["--dest-creds", f"{self.user}:{self.password}"]
        cmd += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}"]
        run(*cmd)
        return f"{self.host}/{repo}"

    @property
    def hosts(self):
        """What a user configures for this registry: the registry, and its token service."""
        return [self.host] + ([f"127.0.0.1:{self.token.port}"] if self.token else [])

    def configure(self, env):
        """Allows this loopback registry the way a user does: AGENTKERNEL_INSECURE_REGISTRIES
        (what [images] insecure_registries sets). Without it the puller refuses to connect to
        loopback, as it does for any request that names a private address."""
        allow(env, *self.hosts)

    def blob_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return self.dir / "data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self):
        if self.token:
            self.token.stop()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Layout:
    """An OCI image layout on disk, edited with umoci and, where umoci cannot, by hand."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        run("umoci", "init", "--layout", self.path)

    def blob(self, digest):
        return self.path / "blobs/sha256" / digest.split(":", 1)[1]

    def put_blob(self, data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blob(d).write_bytes(data)
        return d, len(data)

    def index(self):
        return json.loads((self.path / "index.json").read_text())

    def set_index(self, idx):
        (self.path / "index.json").write_text(json.dumps(idx))

    def desc(self, tag):
        for m in self.index()["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return m
        raise KeyError(tag)

    def manifest(self, tag):
        return json.loads(self.blob(self.desc(tag)["digest"]).read_bytes())

    def retag(self, tag, manifest, media_type=OCI_MANIFEST, platform=None):
        """Stores manifest and points tag at it (replacing the tag's old entry)."""
        d, n = self.put_blob(json.dumps(manifest).encode())
        idx = self.index()
        idx["manifests"] = [m for m in idx["manifests"]
                            if m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                            != tag]
        entry = {"mediaType": media_type, "digest": d, "size": n,
                 "annotations": {"org.opencontainers.image.ref.name": tag}}
        if platform:
            entry["platform"] = platform
        idx["manifests"].append(entry)
        self.set_index(idx)
        return d, n

    def add_tar_layer(self, tag, tar_bytes, compression="gzip"):
        """Appends a layer made here (umoci cannot write opaque whiteouts or zstd)."""
        diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
        if compression == "gzip":
            data, mt = gzip.compress(tar_bytes, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
        elif compression == "zstd":
            data = subprocess.run(["zstd", "-q", "-c"], input=tar_bytes, capture_output=True,
                                  check=True).stdout
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            data, mt = tar_bytes, "application/vnd.oci.image.layer.v1.tar"
        ld, ln = self.put_blob(data)
        man = self.manifest(tag)
        cfg = json.loads(self.blob(man["config"]["digest"]).read_bytes())
        cfg["rootfs"]["diff_ids"].append(diff_id)
        cd, cn = self.put_blob(json.dumps(cfg).encode())
        man["config"] = {"mediaType": man["config"]["mediaType"], "digest": cd, "size": cn}
        man["layers"].append({"mediaType": mt, "digest": ld, "size": ln})
        self.retag(tag, man)
        return ld

    def unpack(self, tag, dest):
        run("umoci", "unpack", "--image", f"{self.path}:{tag}", dest)
        return pathlib.Path(dest) / "rootfs"


def tar_of(entries):
    """entries: list of (name, kind, payload) with kind file|dir|symlink|hardlink|whiteout."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, payload
                t.addfile(ti)
            else:
                data = payload if isinstance(payload, bytes) else str(payload).encode()
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_base(layout, tag, bundle_dir, marker="amd64"):
    """Three umoci layers: busybox + files; deletions (file whiteouts); config (env, workdir)."""
    b = pathlib.Path(bundle_dir)
    run("umoci", "new", "--image", f"{layout.path}:{tag}")
    run("umoci", "unpack", "--image", f"{layout.path}:{tag}", b / "1")
    root = b / "1/rootfs"
    for d in ("bin", "etc", "opq/sub", "gone-dir/x", "srv", "tmp", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin/busybox")
    for applet in ("sh", "ls", "cat", "echo", "find", "stat", "md5sum", "id", "touch", "rm", "cut",
                   "mkdir", "sort", "env", "pwd", "true", "false", "wc", "readlink", "sleep"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    (root / "etc/gone").write_text("removed later\n")
    (root / "etc/kept").write_text("kept\n")
    (root / "opq/sub/old").write_text("hidden by an opaque dir\n")
    (root / "opq/keep-me-not").write_text("hidden too\n")
    (root / "gone-dir/x/f").write_text("x\n")
    (root / "srv/marker").write_text(marker + "\n")
    (root / "srv/setuid").write_text("#!/bin/sh\n")
    os.chmod(root / "srv/setuid", 0o4755)
    (root / "srv/owned").write_text("owned by 1000\n")
    os.chown(root / "srv/owned", 1000, 1000)
    os.link(root / "etc/kept", root / "srv/kept-link")
    run("umoci", "repack", "--image", f"{layout.path}:{tag}", b / "1")
    run("umoci", "unpack", "--image", f"{layout.path}:{tag}", b / "2")
    root = b / "2/rootfs"
    (root / "etc/gone").unlink()
    shutil.rmtree(root / "gone-dir")
    (root / "etc/added").write_text("added in layer 2\n")
    run("umoci", "repack", "--image", f"{layout.path}:{tag}", b / "2")
    run("umoci", "config", "--image", f"{layout.path}:{tag}",
        "--config.env=IMAGE_VAR=from-image", "--config.env=PATH=/bin",
        "--config.workingdir=/srv")
    shutil.rmtree(b)
    # An opaque directory: opq/ restarts empty with one new file.
    layout.add_tar_layer(tag, tar_of([("opq", "dir", None), ("opq/.wh..wh..opq", "file", b""),
                                      ("opq/new", "file", "after opaque\n")]))
