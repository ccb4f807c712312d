# SPDX-License-Identifier: Apache-2.0
"""The security suite: attacks on agentkernel, one directory per attacker.

- sandbox/     a hostile command inside a sandbox (what it can leave on, or reach of, the host)
- local_user/  another local user on the same host (the API, the state directory, shared files)
- web/         a web page in the developer's browser (CSRF, DNS rebinding against `serve`)
- image/       a malicious OCI image from a registry
- container/   a hostile container of the docker and podman backends

Every test here is an attack that must fail; each says what it tries and what must hold. The
fixtures are the integration suite's (tests/conftest.py), plus `local_user`.
"""
