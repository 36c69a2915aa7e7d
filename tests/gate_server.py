"""The registry's push gate for tests: Debian's nginx running launch's own nginx.conf.

    with running_registry(tmp_path) as reg, running_gate(tmp_path, reg.host, {"alice": tok}) as gate:
        requests.get(f"{gate.url}/v2/")                   # through the gate to the registry

The conf is `render_nginx_conf()` with this test's port, upstream and temp paths; nothing else
differs from what deploy/registry runs. Skipped with a clear reason when nginx is missing.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from launch.registry_gate import USERS_KEY, render_nginx_conf, render_users_map
from tests.registry_server import ServerProcess, free_port

__all__ = ["NGINX_BINARY", "Gate", "running_gate"]

NGINX_BINARY = os.environ.get("LAUNCH_TEST_NGINX_BINARY", "/usr/sbin/nginx")
_TIMEOUT_S = 10.0


@dataclass
class Gate(ServerProcess):
    """A running nginx (`nginx -c <conf>`, in the foreground)."""

    url: str  # "http://127.0.0.1:PORT"
    conf_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")  # "127.0.0.1:PORT"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])


def _start(workdir: Path, upstream: str) -> Gate:
    port = free_port()
    conf = render_nginx_conf(
        listen=f"127.0.0.1:{port}",
        upstream=upstream,
        users_map_path=str(workdir / "users" / "*.map"),
        pid_path=str(workdir / "nginx.pid"),
        temp_dir=str(workdir / "tmp"),
    )
    if os.geteuid() == 0:
        # As root, nginx's workers would switch to `nobody`, who cannot enter pytest's private
        # tmp directories. In the cluster the whole container runs as an unprivileged user.
        conf = "user root;\n" + conf
    conf_path = workdir / "nginx.conf"
    conf_path.write_text(conf)
    log_path = workdir / "nginx.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            # -e: nginx opens its compiled-in error log before reading the conf otherwise.
            [NGINX_BINARY, "-e", "stderr", "-p", str(workdir), "-c", str(conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gate = Gate(
        url=f"http://127.0.0.1:{port}", conf_path=conf_path, log_path=log_path, process=process
    )
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"nginx exited with {process.returncode} before answering:\n{gate.log()}"
            )
        try:
            requests.get(f"{gate.url}/launch/whoami", timeout=1)
            return gate
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            gate.stop()
            raise RuntimeError(f"nginx did not answer in {_TIMEOUT_S}s:\n{gate.log()}")
        time.sleep(0.02)


@contextmanager
def running_gate(
    tmp_path: Path, upstream: str, users: Mapping[str, str] | None = None
) -> Iterator[Gate]:
    """Start nginx on 127.0.0.1:<free port> in front of `upstream` ("host:port"), with `users`
    (prefix -> token) as its users map (none: no map file at all, as without the Secret)."""
    if not (os.path.isfile(NGINX_BINARY) and os.access(NGINX_BINARY, os.X_OK)):
        pytest.skip(
            f"{NGINX_BINARY} not found: install Debian's `nginx-light` package to run the "
            "registry gate tests"
        )
    workdir = Path(tmp_path) / f"gate-{time.monotonic_ns()}"
    (workdir / "users").mkdir(parents=True)
    (workdir / "tmp").mkdir()
    if users is not None:
        (workdir / "users" / USERS_KEY).write_text(render_users_map(users))
    gate = None
    for attempt in range(3):  # a free port can be taken between probing and binding
        try:
            gate = _start(workdir, upstream)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    assert gate is not None
    try:
        yield gate
    finally:
        gate.stop()
