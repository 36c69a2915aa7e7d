"""MLflow links for the launcher: experiment URL and each trial's run URL, without `mlflow`.

A tracking server is asked over REST: one `GET experiments/get-by-name`, then ONE
`POST runs/search` for every trial of the experiment (runs carry the `katib.trial` tag set by
`launch.mlflow_wrapper`; MLflow's search has no `IN` for tags or run names, so the search takes
the experiment's tagged runs and matches them here). A local `sqlite:///` store (the local
backend's default) is read directly, read-only, with the standard library; its links point at
`mlflow ui` (`ui_hint` gives the command). Problems never raise: they come back as `warning`.

The local store's health, also without `mlflow`: `local_store_problem` tells in about a
millisecond whether an existing `mlflow.db` is unusable (not SQLite, truncated, or left half-built
by an interrupted creation) and says so in a sentence; `broken_store_hint` says what to do.
`launch.mlflow_store.create_local_store` builds a new store beside its final path
(`store_temp_path`) and renames it into place, so an interrupted creation leaves only a temporary
file, which the next creation removes (`remove_stale_store_temps`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_UI",
    "ExperimentLink",
    "RunLink",
    "RunLookup",
    "broken_store_hint",
    "ensure_experiment",
    "experiment_url",
    "find_runs",
    "local_store_problem",
    "local_tracking_uri",
    "remove_stale_store_temps",
    "run_url",
    "sqlite_store_path",
    "store_temp_path",
    "ui",
    "ui_command",
    "ui_hint",
]

DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store
SEARCH_MAX_RESULTS = 50000  # MLflow's SEARCH_MAX_RESULTS_THRESHOLD: one page
# Tables every MLflow store has had since its first schema (MLflow 1.0).
CORE_TABLES = ("experiments", "runs", "metrics", "params", "tags")
STALE_TEMP_AGE_S = 3600.0  # a creation takes seconds: an older temporary file is a leftover
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class RunLink:
    run_id: str
    url: str | None
    status: str | None = None


@dataclass(frozen=True)
class ExperimentLink:
    experiment_id: str | None
    url: str | None
    warning: str | None = None  # why there is no link (server down, 403 ...)
    hint: str | None = None  # e.g. how to open a local store's UI


class RunLookup(dict[str, RunLink]):
    """trial name -> RunLink, plus the experiment link and a warning when the lookup failed."""

    def __init__(
        self,
        runs: Mapping[str, RunLink] | None = None,
        *,
        experiment: ExperimentLink | None = None,
    ) -> None:
        super().__init__(runs or {})
        self.experiment = experiment or ExperimentLink(None, None)

    @property
    def warning(self) -> str | None:
        return self.experiment.warning

    @property
    def hint(self) -> str | None:
        return self.experiment.hint


def experiment_url(ui_base: str, experiment_id: str) -> str:
    """`<ui>/#/experiments/<id>`."""
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}"


def run_url(ui_base: str, experiment_id: str, run_id: str) -> str:
    """`<ui>/#/experiments/<id>/runs/<run_id>`."""
    return f"{experiment_url(ui_base, experiment_id)}/runs/{run_id}"


def _sqlite_path(tracking_uri: str) -> str | None:
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = unquote(urlsplit(tracking_uri).path)  # sqlite:////abs -> //abs, sqlite:///rel -> /rel
    if path.startswith("//"):
        return path[1:]
    return path[1:] if path.startswith("/") else path


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The file of a `sqlite:///` tracking URI (relative paths as given), else None (a server,
    another scheme, an in-memory database)."""
    path = _sqlite_path(tracking_uri)
    if not path or path == ":memory:":
        return None
    return Path(path)


# --------------------------------------------------------------------------- local store health


def local_store_problem(path: str | os.PathLike[str]) -> str | None:
    """What makes the existing local MLflow store at `path` unusable, as a sentence; None when it
    looks sound, or does not exist (the next sweep creates it), or is busy (in use, not broken).

    Standard library only, reading at most a few pages (about a millisecond): no `mlflow` import.
    Finds a file that is not SQLite, a truncated one, and what an interrupted creation leaves (no
    tables, some of MLflow's tables but no schema version, no experiment at all). A store of
    another MLflow version is not judged here (MLflow says so itself). Writes nothing, except
    that SQLite rolls back a hot journal (a writer killed mid-transaction) on open, as any
    client of the store would.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the MLflow store {p} cannot be read: {exc.strerror or exc}"
    if not p.is_file():
        return f"the MLflow store {p} is not a file"
    if st.st_size == 0:
        return f"the MLflow store {p} is empty (0 bytes): its creation was interrupted"
    try:
        with p.open("rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        return f"the MLflow store {p} cannot be read: {exc.strerror or exc}"
    if not header.startswith(_SQLITE_MAGIC):
        return f"the MLflow store {p} is not an SQLite database"
    pending = any(_nonempty(Path(f"{p}{suffix}")) for suffix in ("-journal", "-wal"))
    if len(header) == 100 and not pending:  # a hot journal or a WAL may hold the missing pages
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        valid = header[24:28] == header[92:96]  # the in-header size is current
        if valid and pages and st.st_size < pages * page_size:
            return f"the MLflow store {p} is truncated ({st.st_size} of {pages * page_size} bytes)"
    try:
        return _schema_problem(p)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return None  # another process is writing to it: in use, so not broken
        return f"the MLflow store {p} is unreadable: {exc}"
    except sqlite3.DatabaseError as exc:
        return f"the MLflow store {p} is damaged: {exc}"


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _schema_problem(p: Path) -> str | None:
    # Read-write (not `mode=ro`), though it only reads: a hot journal, left by a writer killed
    # mid-transaction, is rolled back on open as any SQLite client does; read-only, it cannot be.
    try:
        con = sqlite3.connect(f"{p.absolute().as_uri()}?mode=rw", uri=True, timeout=2)
    except sqlite3.OperationalError:  # no write permission: read what can be read
        con = sqlite3.connect(f"{p.absolute().as_uri()}?mode=ro", uri=True, timeout=2)
    try:
        tables = {
            row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            return f"the MLflow store {p} has no tables: its creation was interrupted"
        missing = [t for t in CORE_TABLES if t not in tables]
        if len(missing) == len(CORE_TABLES):
            return f"{p} is an SQLite database but not an MLflow store (it has no `experiments`)"
        if missing:
            return (
                f"the MLflow store {p} lacks the table(s) {', '.join(missing)}: its creation was "
                "interrupted"
            )
        if "alembic_version" not in tables:
            return (
                f"the MLflow store {p} has no schema version (table alembic_version): its "
                "creation was interrupted before MLflow's migrations finished"
            )
        if con.execute("SELECT version_num FROM alembic_version").fetchone() is None:
            return (
                f"the MLflow store {p} has an empty alembic_version: its creation was "
                "interrupted during MLflow's migrations"
            )
        if con.execute("SELECT 1 FROM experiments LIMIT 1").fetchone() is None:
            return (
                f"the MLflow store {p} has no experiment, not even MLflow's Default: its "
                "creation was interrupted"
            )
        return None
    finally:
        con.close()


def broken_store_hint(path: str | os.PathLike[str]) -> str:
    """What to do about a store `local_store_problem` complains about."""
    import shlex

    p = shlex.quote(os.fspath(path))
    return f"move it aside: mv {p} {p}.broken; the next sweep creates a new one"


def store_temp_path(path: str | os.PathLike[str], pid: int | None = None) -> Path:
    """Where this process builds the store `path` before renaming it into place: a hidden file
    beside it, `.<name>.tmp-<host>-<pid>` (the host keeps creators on a shared disk apart)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{_host()}-{os.getpid() if pid is None else pid}")


def _host() -> str:
    name = os.uname().nodename.split(".")[0] if hasattr(os, "uname") else ""
    return "".join(c if c.isalnum() or c == "-" else "_" for c in name) or "host"


def remove_stale_store_temps(
    path: str | os.PathLike[str], *, max_age_s: float = STALE_TEMP_AGE_S
) -> list[Path]:
    """Remove what interrupted creations of the store `path` left beside it: temporary stores
    (and their journals) of processes of this host that are gone, any older than `max_age_s`.
    Returns what was removed; never raises."""
    import time

    p = Path(path)
    prefix = f".{p.name}.tmp-"
    removed: list[Path] = []
    try:
        entries = list(os.scandir(p.parent if str(p.parent) else "."))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        stem = entry.name[len(prefix) :]
        for suffix in ("-journal", "-wal", "-shm"):
            stem = stem.removesuffix(suffix)
        host, _, pid_text = stem.rpartition("-")
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age_s
        except OSError:
            continue
        stale = old
        if not stale and host == _host() and pid_text.isdigit():
            stale = int(pid_text) != os.getpid() and not _alive(int(pid_text))
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (owned by someone else)
    return True


def ui_hint(tracking_uri: str) -> str | None:
    """For a local store: the command that serves its UI (the links point there)."""
    if tracking_uri.startswith(("http://", "https://")):
        return None
    return f"open the links with: launch ui (or mlflow ui --backend-store-uri {tracking_uri})"


def _auth(env: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, str] | None]:
    token = env.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    return headers, (user, password or "") if user else None


def _http_error(base: str, exc_or_resp: Any) -> str:
    import requests  # ~140 ms: only for a tracking server, never for a local sqlite store

    if isinstance(exc_or_resp, requests.Response):
        r = exc_or_resp
        if r.status_code == 403 and "host" in r.text.lower():
            return (
                f"MLflow at {base} answered 403 Invalid Host header: start the server with "
                f"--allowed-hosts listing {urlsplit(base).netloc} (and localhost)"
            )
        return f"MLflow at {base} answered {r.status_code}: {' '.join(r.text.split())[:200]}"
    return f"MLflow at {base} unreachable: {type(exc_or_resp).__name__}: {exc_or_resp}"[:300]


def _http_experiment(
    session: requests.Session,
    base: str,
    name: str,
    *,
    timeout: float,
    env: Mapping[str, str],
) -> tuple[str | None, str | None]:
    """(experiment id or None, warning or None)."""
    import requests

    headers, auth = _auth(env)
    try:
        r = session.get(
            f"{base}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": name},
            headers=headers,
            auth=auth,
            timeout=timeout,
        )
    except requests.RequestException as exc:
        return None, _http_error(base, exc)
    if r.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in r.text:
        return None, None  # no trial has logged yet
    if r.status_code != 200:
        return None, _http_error(base, r)
    try:
        return str(r.json()["experiment"]["experiment_id"]), None
    except (ValueError, KeyError, TypeError):
        return None, f"MLflow at {base}: unexpected answer to experiments/get-by-name"


def _filter(katib_experiment: str | None) -> str:
    if katib_experiment:
        return "tags.`katib.experiment` = '" + katib_experiment.replace("'", "\\'") + "'"
    return "tags.`katib.trial` LIKE '%'"


def _sqlite_lookup(
    path: str, experiment_name: str, katib_experiment: str | None
) -> tuple[str | None, list[tuple[str, str, str | None]]]:
    """(experiment id, [(trial, run id, status)] newest first) from MLflow's sqlite schema."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute(
            "SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
            (experiment_name,),
        ).fetchone()
        if row is None:
            return None, []
        exp_id = str(row[0])
        sql = (
            "SELECT t.value, r.run_uuid, r.status FROM runs r JOIN tags t "
            "ON t.run_uuid = r.run_uuid AND t.key = 'katib.trial' "
        )
        args: list[Any] = [row[0]]
        if katib_experiment:
            sql += (
                "JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'katib.experiment' "
                "AND k.value = ? "
            )
            args.insert(0, katib_experiment)
        sql += "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' "
        sql += "ORDER BY r.start_time DESC"
        runs = [(str(t), str(r), s) for t, r, s in con.execute(sql, args)]
        return exp_id, runs
    finally:
        con.close()


def ensure_experiment(
    server: str,
    experiment_name: str,
    *,
    tags: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
) -> ExperimentLink:
    """The experiment's link on an MLflow server, created now when it does not exist yet (so
    launch can print its exact URL before any trial logs; trials find it by name). At most
    three requests: get-by-name, create, get-by-name again after losing a creation race.
    Never raises: a problem comes back as `warning`."""
    import requests

    env = os.environ if env is None else env
    base = server.rstrip("/")
    headers, auth = _auth(env)
    with requests.Session() as s:
        exp_id, problem = _http_experiment(s, base, experiment_name, timeout=timeout, env=env)
        if exp_id is None and problem is None:
            body = {
                "name": experiment_name,
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
            }
            try:
                r = s.post(f"{base}/api/2.0/mlflow/experiments/create", json=body,
                           headers=headers, auth=auth, timeout=timeout)  # fmt: skip
            except requests.RequestException as exc:
                return ExperimentLink(None, None, _http_error(base, exc))
            if r.status_code == 200:
                exp_id = str(r.json().get("experiment_id") or "") or None
            elif "RESOURCE_ALREADY_EXISTS" in r.text:  # a first trial was quicker
                exp_id, problem = _http_experiment(
                    s, base, experiment_name, timeout=timeout, env=env
                )
            else:
                problem = _http_error(base, r)
    return ExperimentLink(exp_id, experiment_url(base, exp_id) if exp_id else None, problem)


def find_runs(
    tracking_uri: str,
    experiment_name: str,
    trial_names: Iterable[str],
    *,
    katib_experiment: str | None = None,
    ui_base: str | None = None,
    session: requests.Session | None = None,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> RunLookup:
    """Each trial's MLflow run (the newest run tagged `katib.trial=<trial>`), with its UI link.

    `tracking_uri`: the server (http[s]) or a `sqlite:///` store. `ui_base`: where the UI is
    (default: the server itself, `DEFAULT_UI` for a local store). `katib_experiment` restricts
    the runs to that Katib experiment (when several share an MLflow experiment). At most two
    requests: get-by-name, and runs/search only when `trial_names` is not empty.
    Failures give an empty lookup with `.warning`; never raises.
    """
    env = os.environ if env is None else env
    wanted = set(trial_names)
    sqlite_path = _sqlite_path(tracking_uri)
    if sqlite_path is not None:
        ui = (ui_base or DEFAULT_UI).rstrip("/")
        hint = ui_hint(tracking_uri)
        if not os.path.exists(sqlite_path):
            return RunLookup(experiment=ExperimentLink(None, None, hint=hint))
        try:
            exp_id, rows = _sqlite_lookup(sqlite_path, experiment_name, katib_experiment)
        except sqlite3.Error as exc:
            warning = f"MLflow store {tracking_uri} unreadable: {exc}"
            return RunLookup(experiment=ExperimentLink(None, None, warning=warning, hint=hint))
        exp = ExperimentLink(exp_id, experiment_url(ui, exp_id) if exp_id else None, hint=hint)
        runs: dict[str, RunLink] = {}
        for trial, run_id, status in rows:
            if trial in wanted and trial not in runs and exp_id:
                runs[trial] = RunLink(run_id, run_url(ui, exp_id, run_id), status)
        return RunLookup(runs, experiment=exp)

    if not tracking_uri.startswith(("http://", "https://")):
        warning = f"no MLflow links for tracking URI {tracking_uri!r} (need http(s):// or sqlite:)"
        return RunLookup(experiment=ExperimentLink(None, None, warning=warning))

    import requests

    base = tracking_uri.rstrip("/")
    ui = (ui_base or base).rstrip("/")
    own = session is None
    s = requests.Session() if session is None else session
    try:
        exp_id, problem = _http_experiment(s, base, experiment_name, timeout=timeout, env=env)
        exp = ExperimentLink(exp_id, experiment_url(ui, exp_id) if exp_id else None, problem)
        if exp_id is None or not wanted:
            return RunLookup(experiment=exp)
        headers, auth = _auth(env)
        body = {
            "experiment_ids": [exp_id],
            "filter": _filter(katib_experiment),
            "run_view_type": "ACTIVE_ONLY",
            "max_results": SEARCH_MAX_RESULTS,
            "order_by": ["attributes.start_time DESC"],
        }
        try:
            r = s.post(
                f"{base}/api/2.0/mlflow/runs/search",
                json=body,
                headers=headers,
                auth=auth,
                timeout=timeout,
            )
        except requests.RequestException as exc:
            return RunLookup(experiment=_with_warning(exp, _http_error(base, exc)))
        if r.status_code != 200:
            return RunLookup(experiment=_with_warning(exp, _http_error(base, r)))
        try:
            data = r.json()
            found: dict[str, RunLink] = {}
            for run in data.get("runs", []):
                info = run["info"]
                tags = {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}
                trial = tags.get("katib.trial") or info.get("run_name")
                if trial in wanted and trial not in found:
                    run_id = info["run_id"]
                    found[trial] = RunLink(run_id, run_url(ui, exp_id, run_id), info.get("status"))
        except (ValueError, KeyError, TypeError, AttributeError):
            bad = f"MLflow at {base}: unexpected answer to runs/search"
            return RunLookup(experiment=_with_warning(exp, bad))
        if data.get("next_page_token"):
            exp = _with_warning(exp, f"more than {SEARCH_MAX_RESULTS} runs: some links missing")
        return RunLookup(found, experiment=exp)
    finally:
        if own:
            s.close()


def _with_warning(exp: ExperimentLink, warning: str) -> ExperimentLink:
    return ExperimentLink(exp.experiment_id, exp.url, warning, exp.hint)


# --------------------------------------------------------------------------- launch ui


def local_tracking_uri(home: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> str:
    """The tracking URI local sweeps of `home` use: `MLFLOW_TRACKING_URI`, else the embedded
    store `sqlite:///<home>/mlflow.db` (as `launch.local.create` decides)."""
    env = os.environ if env is None else env
    return env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(home).absolute() / 'mlflow.db'}"


def ui_command(
    tracking_uri: str, *, host: str, port: int, python: str | None = None
) -> list[str] | None:
    """`mlflow ui` for the store `tracking_uri` (artifacts beside a local store), or None when
    MLflow is not installed for `python` (default: this interpreter)."""
    import importlib.util
    import shutil
    import sys

    python = python or sys.executable
    exe = shutil.which("mlflow", path=os.path.dirname(python))
    if exe is None and (python != sys.executable or importlib.util.find_spec("mlflow") is None):
        return None
    cmd = [exe] if exe else [python, "-m", "mlflow"]
    cmd += ["ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]
    store = sqlite_store_path(tracking_uri)
    if store is not None:
        cmd += ["--default-artifact-root", str(store.absolute().parent / "mlartifacts")]
    return cmd


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ui(
    tracking_uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    say: Any = None,
    ready_timeout_s: float = 120.0,
) -> int:
    """`launch ui`: serve the MLflow UI of `tracking_uri` (the local store), print its URL once
    it answers, and run until Ctrl-C. Returns an exit status (0 after Ctrl-C, or for a server
    URI, which is only printed; 1 when MLflow is not installed, the store is broken, the port is
    taken, or the UI does not come up)."""
    import signal
    import subprocess

    status, proc = start_ui(
        tracking_uri, host=host, port=port, say=say, ready_timeout_s=ready_timeout_s
    )
    if proc is None:
        return status
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return 0


def start_ui(
    tracking_uri: str,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    say: Any = None,
    ready_timeout_s: float = 120.0,
) -> tuple[int, Any]:
    """`ui` up to the printed URL: (0, the running `mlflow ui` process, in its own process
    group), or (status, None) when there is nothing to run."""
    import signal
    import subprocess
    import sys
    import time

    def tell(text: str) -> None:
        (say or (lambda t: print(t, file=sys.stderr, flush=True)))(text)

    if tracking_uri.startswith(("http://", "https://")):
        tell(f"MLflow runs at {tracking_uri}: open it in a browser")
        return 0, None
    store = sqlite_store_path(tracking_uri)
    if store is not None:
        problem = local_store_problem(store)
        if problem:
            tell(f"error: {problem}\nhint: {broken_store_hint(store)}")
            return 1, None
        if not store.exists():
            tell(f"note: {store} does not exist yet; it appears with the first local sweep")
    cmd = ui_command(tracking_uri, host=host, port=port)
    if cmd is None:
        from launch import install

        tell(f"error: mlflow is not installed\nhint: {install.extra_hint('mlflow')}")
        return 1, None
    if not _port_free(host, port):
        tell(f"error: port {port} on {host} is in use (another `launch ui` or `mlflow ui`?)")
        tell(f"hint: open http://{host}:{port} if it is one, or pass another --port")
        return 1, None
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout_s
    import urllib.request

    while True:
        if proc.poll() is not None:
            tell(f"error: mlflow ui exited with status {proc.returncode}")
            return 1, None
        try:
            probe = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
            with urllib.request.urlopen(probe, timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            tell(f"error: mlflow ui did not answer at {url} in {ready_timeout_s:.0f} s")
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            return 1, None
        time.sleep(0.25)
    tell(f"MLflow UI for {tracking_uri}: {url}  (Ctrl-C stops it)")
    return 0, proc
