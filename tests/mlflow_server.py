"""A real `mlflow server` on a loopback port with a sqlite store, for tests and benchmarks.

    with mlflow_server(tmp_path) as server:
        server.uri  # http://127.0.0.1:<port>

Ready means a real API path answers (`experiments/get-by-name`), not `/health`, which skips the
Host-header check (DESIGN "Draccus and MLflow facts"). Stopped by terminating its process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    port: int
    db: Path
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_cmd() -> list[str]:
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "mlflow"]


@contextlib.contextmanager
def mlflow_server(workdir: Path, *, timeout: float = 240.0) -> Iterator[MlflowServer]:
    """Start `mlflow server` (1 worker) on a free port; yield once its REST API answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    db = workdir / "mlflow.db"
    log = workdir / "mlflow-server.log"
    cmd = [
        *_mlflow_cmd(),
        "server",
        "--backend-store-uri", f"sqlite:///{db}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {proc.returncode}:\n{log.read_text()}")
            try:
                r = requests.get(
                    f"{uri}/api/2.0/mlflow/experiments/get-by-name",
                    params={"experiment_name": "Default"},
                    timeout=2,
                )
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready in {timeout} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield MlflowServer(uri=uri, port=port, db=db, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_shared: list[tuple[MlflowServer, contextlib.ExitStack]] = []


def shared_mlflow_server() -> MlflowServer:
    """One server per test process (started on first use, stopped at exit): startup is slow."""
    if not _shared:
        import atexit
        import tempfile

        stack = contextlib.ExitStack()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-srv-")))
        server = stack.enter_context(mlflow_server(workdir))
        atexit.register(stack.close)
        _shared.append((server, stack))
    return _shared[0][0]
