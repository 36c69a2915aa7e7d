"""launch.tracking against a real `mlflow server`: one search request, links, warnings."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from launch import tracking
from tests.mlflow_server import MlflowServer, shared_mlflow_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server() -> MlflowServer:
    return shared_mlflow_server()


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.hooks["response"].append(self._count)

    def _count(self, r: requests.Response, *args: Any, **kwargs: Any) -> None:
        assert r.request.method and r.request.path_url
        self.calls.append((r.request.method, r.request.path_url.split("?")[0]))


@pytest.fixture(scope="module")
def runs(server: MlflowServer) -> dict[str, Any]:
    """MLflow experiment `shared` holding trials of Katib experiments `ka` and `kb`."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(server.uri)
    exp_id = c.create_experiment("shared")
    made: dict[str, Any] = {"exp_id": exp_id}
    for kexp, trial in [("ka", "ka-1"), ("ka", "ka-2"), ("ka", "ka-2"), ("kb", "kb-1")]:
        run = c.create_run(
            exp_id, run_name=trial, tags={"katib.trial": trial, "katib.experiment": kexp}
        )
        made[trial] = run.info.run_id  # ka-2: the second (newest) run wins
        time.sleep(0.01)
    c.set_terminated(made["ka-1"], "FINISHED")
    c.create_run(exp_id, run_name="untagged")
    return made


def test_one_search_request_for_all_trials(server: MlflowServer, runs: dict[str, Any]) -> None:
    s = CountingSession()
    trials = ["ka-1", "ka-2", "ka-3"]
    found = tracking.find_runs(server.uri, "shared", trials, katib_experiment="ka", session=s)
    assert s.calls == [
        ("GET", "/api/2.0/mlflow/experiments/get-by-name"),
        ("POST", "/api/2.0/mlflow/runs/search"),
    ]
    assert found.warning is None
    exp_id = runs["exp_id"]
    assert found == {
        "ka-1": tracking.RunLink(
            runs["ka-1"], f"{server.uri}/#/experiments/{exp_id}/runs/{runs['ka-1']}", "FINISHED"
        ),
        "ka-2": tracking.RunLink(
            runs["ka-2"], f"{server.uri}/#/experiments/{exp_id}/runs/{runs['ka-2']}", "RUNNING"
        ),
    }
    assert found.experiment.url == f"{server.uri}/#/experiments/{exp_id}"


def test_ui_base_and_no_katib_filter(server: MlflowServer, runs: dict[str, Any]) -> None:
    ui = "https://mlflow.lab.example/"
    found = tracking.find_runs(server.uri, "shared", ["kb-1", "ka-1"], ui_base=ui)
    exp_id = runs["exp_id"]
    assert set(found) == {"kb-1", "ka-1"}
    assert (
        found["kb-1"].url
        == f"https://mlflow.lab.example/#/experiments/{exp_id}/runs/{runs['kb-1']}"
    )
    assert tracking.experiment_url(ui, "7") == "https://mlflow.lab.example/#/experiments/7"
    assert tracking.run_url(ui, "7", "abc") == "https://mlflow.lab.example/#/experiments/7/runs/abc"


def test_experiment_link_only_needs_one_request(server: MlflowServer, runs: dict[str, Any]) -> None:
    s = CountingSession()
    link = tracking.find_runs(server.uri, "shared", (), session=s).experiment
    assert len(s.calls) == 1
    assert link.experiment_id == runs["exp_id"] and link.warning is None
    missing = tracking.find_runs(server.uri, "no-such-experiment", ["t-1"], session=s)
    assert len(s.calls) == 2  # no search when the experiment does not exist yet
    assert dict(missing) == {} and missing.warning is None and missing.experiment.url is None


def test_invalid_host_header_is_a_warning_naming_allowed_hosts(server: MlflowServer) -> None:
    s = requests.Session()
    s.headers["Host"] = "mlflow.mlflow.svc.cluster.local:5000"  # as an in-cluster name would
    found = tracking.find_runs(server.uri, "shared", ["ka-1"], session=s)
    assert dict(found) == {}
    assert found.warning is not None
    assert "403" in found.warning and "--allowed-hosts" in found.warning


def test_server_down_is_a_warning_not_a_crash() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    found = tracking.find_runs(f"http://127.0.0.1:{port}", "e", ["t"], timeout=2)
    assert dict(found) == {}
    assert found.warning and "unreachable" in found.warning


def test_local_stores(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    nothing_yet = tracking.find_runs(uri, "e", ["t"])
    assert dict(nothing_yet) == {} and nothing_yet.warning is None
    assert (
        nothing_yet.hint
        == f"open the links with: launch ui (or mlflow ui --backend-store-uri {uri})"
    )
    (tmp_path / "bad.db").write_text("not a database")
    bad = tracking.find_runs(f"sqlite:///{tmp_path / 'bad.db'}", "e", ["t"])
    assert bad.warning and "unreadable" in bad.warning
    other = tracking.find_runs(str(tmp_path / "mlruns"), "e", ["t"])
    assert other.warning and "no MLflow links" in other.warning


def test_sqlite_store_path() -> None:
    assert tracking.sqlite_store_path("sqlite:////home/u/.launch/mlflow.db") == Path(
        "/home/u/.launch/mlflow.db"
    )
    assert tracking.sqlite_store_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert tracking.sqlite_store_path("sqlite:////a%20b/mlflow.db") == Path("/a b/mlflow.db")
    for uri in ("http://127.0.0.1:5000", "file:///tmp/mlruns", "sqlite://", "sqlite:///:memory:"):
        assert tracking.sqlite_store_path(uri) is None, uri


def test_stale_temporary_stores_are_removed(tmp_path: Path) -> None:
    """What killed creations left beside the store goes; a live creator's file stays."""
    import os
    import subprocess
    import sys

    store = tmp_path / "mlflow.db"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = [
            tracking.store_temp_path(store, dead_pid),
            Path(f"{tracking.store_temp_path(store, dead_pid)}-journal"),
            store.with_name(f".{store.name}.tmp-otherhost-{os.getpid()}"),  # old, other host
        ]
        kept = [
            tracking.store_temp_path(store, live.pid),
            tracking.store_temp_path(store),  # this process's own
            store.with_name(f".{store.name}.tmp-otherhost-1"),  # another host's, recent
            tracking.store_temp_path(tmp_path / "other.db", dead_pid),  # another store's
        ]
        for path in gone + kept:
            path.write_bytes(b"x")
        old = time.time() - tracking.STALE_TEMP_AGE_S - 60
        os.utime(gone[2], (old, old))
        assert sorted(tracking.remove_stale_store_temps(store)) == sorted(gone)
        assert sorted(p for p in tmp_path.iterdir()) == sorted(kept)
    finally:
        live.kill()
        live.wait()
    assert tracking.store_temp_path(store, 7).name.startswith(".mlflow.db.tmp-")
    assert tracking.store_temp_path(store, 7).name.endswith("-7")
    assert tracking.remove_stale_store_temps(tmp_path / "missing" / "mlflow.db") == []


def test_launch_ui_serves_the_local_store_and_prints_its_url(tmp_path: Path) -> None:
    import os
    import signal

    from launch import mlflow_store
    from tests.mlflow_server import free_port

    store = tmp_path / "home" / "mlflow.db"
    uri = tracking.local_tracking_uri(tmp_path / "home", env={})
    assert uri == f"sqlite:///{store}"
    assert mlflow_store.prepare(uri, "exp-ui") is not None
    said: list[str] = []
    port = free_port()
    status, proc = tracking.start_ui(uri, port=port, say=said.append)
    try:
        assert status == 0 and proc is not None
        url = f"http://127.0.0.1:{port}"
        assert said == [f"MLflow UI for {uri}: {url}  (Ctrl-C stops it)"]
        r = requests.get(
            f"{url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": "exp-ui"}, timeout=10,
        )  # fmt: skip
        assert r.status_code == 200 and r.json()["experiment"]["name"] == "exp-ui"
        # the same port again: one clear error, nothing started
        again: list[str] = []
        assert tracking.start_ui(uri, port=port, say=again.append) == (1, None)
        assert f"port {port}" in again[0]
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    broken = tmp_path / "broken.db"
    broken.write_bytes(b"x" * 200)
    said.clear()
    assert tracking.ui(f"sqlite:///{broken}", port=free_port(), say=said.append) == 1
    assert "is not an SQLite database" in said[0] and "mv " in said[0]
