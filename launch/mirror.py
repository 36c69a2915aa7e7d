"""The local backend's MLflow mirror, seen from the coordinator (no `mlflow` here).

A sweep's MLflow runs are written by ONE child process per coordinator (`python -m
launch.mlflow_wrapper --mirror <experiment dir>`), which imports MLflow once, creates the store
and experiment, and turns every finished trial into its run: named after the trial, with its
params (the trial's `--name=value` flags), tags, the TensorBoard scalars of its event files with
their steps, its status and times, plus whatever the trial's `trial_run` added (it writes those to
`trials/<t>/mlflow-spool.jsonl` instead of talking to MLflow itself). A trial whose run is
complete gets `trials/<t>/mlflow-run.json`; a finished trial without it is mirrored by the next
mirror (on resume, or `mirror_pending`), so a killed coordinator or mirror loses no run.

The coordinator only starts the child, pokes it when a trial ends (one byte on its stdin, never
blocking) and, at the end, closes that pipe and waits a bounded time. The child follows the
journal itself, outlives a coordinator that dies or stops waiting, and finishes on its own;
nothing it does can stop or stall the sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from launch import private

__all__ = [
    "ENV_MIRROR_WAIT_S",
    "ENV_SPOOL",
    "LOG_NAME",
    "MARKER_NAME",
    "SPOOL_NAME",
    "MirrorProcess",
    "enabled",
    "mirrored",
    "pending",
]

ENV_SPOOL = "LAUNCH_MLFLOW_SPOOL"  # set for local trials: where `trial_run` writes what it adds
ENV_MIRROR_WAIT_S = "LAUNCH_MLFLOW_MIRROR_WAIT_S"  # how long a sweep's end waits (default 120)
SPOOL_NAME = "mlflow-spool.jsonl"
MARKER_NAME = "mlflow-run.json"
LOG_NAME = "mlflow-mirror.log"
LOCK_NAME = "mlflow-mirror.lock"
_DISABLE = "LAUNCH_MLFLOW_DISABLE"

# Finished trial states that the mirror turns into runs (Running ones wait).

BOOT = """
import importlib.util, os, sys
os.umask(0o077)  # what it writes (runs, markers, the store) is launch's private state
sys.path.append(sys.argv[2])  # launch's own source, when the trials' Python lacks it
if importlib.util.find_spec("mlflow") is None:
    print("launch mirror: mlflow is not installed for " + sys.executable, file=sys.stderr)
    sys.exit(3)
from launch import mlflow_mirror
sys.exit(mlflow_mirror.serve_mirror(sys.argv[1]))
"""


def enabled(env: Mapping[str, str]) -> bool:
    """Tracking on (not `LAUNCH_MLFLOW_DISABLE=1`)?"""
    return env.get(_DISABLE, "").lower() not in ("1", "true", "yes")


def mirrored(trial_dir: Path) -> bool:
    return (trial_dir / MARKER_NAME).exists()


def pending(exp_path: Path, trials: Iterable[Any]) -> list[str]:
    """Names of finished trials (records with `.name`, `.status`) whose run is not complete."""
    # Here, not at the top: the in-trial wrapper imports this module and must stay light.
    from launch.events import TrialStatus

    finished = (
        TrialStatus.SUCCEEDED,
        TrialStatus.FAILED,
        TrialStatus.METRICS_UNAVAILABLE,
        TrialStatus.KILLED,
    )
    return [
        t.name
        for t in trials
        if t.status in finished and not mirrored(exp_path / "trials" / t.name)
    ]


def _launch_root() -> str:
    return str(Path(__file__).resolve().parents[1])


class MirrorProcess:
    """The running mirror child of one coordinator."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log
        self._stdin: IO[bytes] | None = proc.stdin
        if self._stdin is not None:
            os.set_blocking(self._stdin.fileno(), False)

    @classmethod
    def start(
        cls, python: str, exp_path: Path, *, cwd: Path, env: Mapping[str, str]
    ) -> MirrorProcess | None:
        """Start the mirror for the experiment at `exp_path` (its own session: Ctrl-C is the
        coordinator's to handle). None, with one warning, when it cannot start."""
        log = exp_path / LOG_NAME
        try:
            with open(private.open_file(log, os.O_WRONLY | os.O_APPEND), "ab") as out:
                proc = subprocess.Popen(
                    [python, "-c", BOOT, str(exp_path), _launch_root()],
                    cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        except OSError as exc:
            _say(f"warning: cannot start the MLflow mirror ({python}): {exc}\n")
            return None
        return cls(proc, log)

    def poke(self) -> None:
        """A trial ended: wake the mirror (never blocks; a dead or busy mirror is ignored)."""
        if self._stdin is None:
            return
        try:
            os.write(self._stdin.fileno(), b"\n")
        except BlockingIOError:
            pass  # its pipe is full of pokes: it will look anyway
        except OSError:
            self._close()

    def _close(self) -> None:
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.close()
            self._stdin = None

    def finish(self, wait_s: float, *, left: int = 0) -> bool:
        """No more trials: let it mirror what is left, waiting at most `wait_s`. True when it
        ended cleanly. A mirror still working after that goes on in the background (its runs
        appear when it is done); one that failed is one warning naming its log."""
        self._close()
        try:
            code = self.proc.wait(timeout=max(wait_s, 0.0))
        except subprocess.TimeoutExpired:
            _say(
                f"note: MLflow runs are still being written in the background (pid "
                f"{self.proc.pid}, log {self.log})\n"
            )
            return False
        if code != 0:
            why = _last_line(self.log) or f"exit status {code}"
            _say(f"warning: MLflow mirror: {why} (log: {self.log})\n")
            return False
        return True


def wait_seconds(env: Mapping[str, str], default: float = 120.0) -> float:
    try:
        return float(env.get(ENV_MIRROR_WAIT_S, "") or default)
    except ValueError:
        return default


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(text)
        sys.stderr.flush()


# --------------------------------------------------------------------------- the trial's spool


def read_spool(path: Path) -> dict[str, Any]:
    """What a trial's `trial_run` added: {"params": {}, "tags": {}, "metrics": [(k, v, ms, step)],
    "artifacts": [path]}. Bad lines (a trial killed mid-write) are skipped."""
    out: dict[str, Any] = {"params": {}, "tags": {}, "metrics": [], "artifacts": []}
    try:
        data = path.read_bytes()
    except OSError:
        return out
    for line in data.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("params"), dict):
            out["params"].update({str(k): str(v) for k, v in item["params"].items()})
        if isinstance(item.get("tags"), dict):
            out["tags"].update({str(k): str(v) for k, v in item["tags"].items()})
        for point in item.get("metrics") or ():
            with contextlib.suppress(TypeError, ValueError):
                k, v, ms, step = point
                out["metrics"].append((str(k), float(v), int(ms), int(step)))
        if isinstance(item.get("artifact"), str):
            out["artifacts"].append(item["artifact"])
    return out


class Spool:
    """The in-trial writer of the spool (used by `launch.mlflow_wrapper.trial_run` on the local
    backend): appends JSON lines, buffered, flushed at close (and every 10k metric values)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lines: list[str] = []
        self._pending = 0

    def add(self, item: Mapping[str, Any]) -> None:
        self._lines.append(json.dumps(item, separators=(",", ":")))
        self._pending += len(item.get("metrics") or ()) + 1
        if self._pending >= 10_000:
            self.flush()

    def add_metrics(self, points: Sequence[tuple[str, float, int, int]]) -> None:
        if points:
            self.add({"metrics": [list(p) for p in points]})

    def flush(self) -> None:
        if not self._lines:
            return
        text = "".join(line + "\n" for line in self._lines)
        self._lines, self._pending = [], 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, private.FILE_MODE)
            with open(fd, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            _say(f"launch.mlflow_wrapper: warning: cannot write {self.path}: {exc}\n")


def write_marker(trial_dir: Path, data: Mapping[str, Any]) -> None:
    """`trials/<t>/mlflow-run.json`, atomically: this trial's run is complete."""
    tmp = trial_dir / f".{MARKER_NAME}.{os.getpid()}.{time.monotonic_ns()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private.FILE_MODE)
    with open(fd, "w") as handle:
        handle.write(json.dumps(dict(data)))
    os.replace(tmp, trial_dir / MARKER_NAME)


# --------------------------------------------------------------------------- the fast path


class SqliteWriter:
    """Runs written straight into an existing local MLflow store with the standard library.

    Importing MLflow costs ~5 s of CPU here, more than a small sweep's training; the mirror's
    work is a few INSERTs per trial. So when the store exists and its tables have the columns
    written here (and no other required one), the mirror writes them itself, as MLflow's
    SqlAlchemyStore would: a run row, its tags, params, metrics and latest_metrics, in one
    transaction per trial. Any other store (a server, a new or different schema) goes through
    MLflow's client (`launch.mlflow_mirror.serve_mirror`). Tests read the result back with
    MLflow's own client.
    """

    COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "experiments": (
            "name", "artifact_location", "lifecycle_stage", "creation_time", "last_update_time",
        ),
        "runs": (
            "run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id",
            "status", "start_time", "end_time", "source_version", "lifecycle_stage",
            "artifact_uri", "experiment_id", "deleted_time",
        ),
        "tags": ("key", "value", "run_uuid"),
        "params": ("key", "value", "run_uuid"),
        "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
        "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
    }  # fmt: skip

    def __init__(self, con: Any, path: Path) -> None:
        self.con = con
        self.path = path

    @classmethod
    def open(cls, path: Path) -> SqliteWriter | None:
        """A writer for the store at `path`, or None when its schema is not the one known here."""
        import sqlite3

        try:
            con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            for table, wanted in cls.COLUMNS.items():
                info = con.execute(f'PRAGMA table_info("{table}")').fetchall()
                have = {row[1] for row in info}
                if not info or not set(wanted) <= have:
                    raise LookupError(table)
                for _, col, ctype, notnull, default, pk in info:
                    rowid = pk and str(ctype).upper() == "INTEGER"
                    if notnull and default is None and col not in wanted and not rowid:
                        raise LookupError(f"{table}.{col}")
        except (LookupError, sqlite3.Error):
            con.close()
            return None
        return cls(con, path)

    def close(self) -> None:
        self.con.close()

    def experiment_id(self, name: str) -> str:
        """The active experiment `name`, created (artifacts beside the store) when missing."""
        row = self.con.execute(
            "SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = ?", (name,)
        ).fetchone()
        if row is not None:
            if row[1] != "active":
                self.con.execute(
                    "UPDATE experiments SET lifecycle_stage = 'active' WHERE experiment_id = ?",
                    (row[0],),
                )
            return str(row[0])
        now = int(time.time() * 1000)
        self.con.execute("BEGIN IMMEDIATE")
        try:
            cur = self.con.execute(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                "creation_time, last_update_time) VALUES (?, '', 'active', ?, ?)",
                (name, now, now),
            )
            exp_id = int(cur.lastrowid or 0)
            self.con.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (str(artifact_root(self.path) / str(exp_id)), exp_id),
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return str(exp_id)

    def write_run(
        self,
        exp_id: str,
        *,
        trial: str,
        start_ms: int | None,
        end_ms: int | None,
        status: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        points: Sequence[tuple[str, float, int, int]],
    ) -> str:
        """This trial's run, replacing (soft-deleting) any earlier run of the same trial."""
        import math
        import uuid

        run_id = uuid.uuid4().hex
        now = int(time.time() * 1000)
        (location,) = self.con.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = ?", (int(exp_id),)
        ).fetchone()
        all_tags = {**tags, "mlflow.runName": trial}
        latest: dict[str, tuple[int, int, float, int]] = {}
        rows = []
        for key, raw, ms, step in points:
            nan = math.isnan(raw)
            value = 0.0 if nan else max(min(raw, _FLOAT_MAX), -_FLOAT_MAX)  # as MLflow stores
            rows.append((key, value, ms, run_id, step, int(nan)))
            if key not in latest or (step, ms, value) > latest[key][:3]:
                latest[key] = (step, ms, value, int(nan))
        self.con.execute("BEGIN IMMEDIATE")
        try:
            self.con.execute(
                "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE "
                "experiment_id = ? AND lifecycle_stage = 'active' AND run_uuid IN (SELECT "
                "run_uuid FROM tags WHERE key = 'katib.trial' AND value = ?)",
                (now, int(exp_id), trial),
            )
            self.con.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id, deleted_time) VALUES "
                "(?, ?, 'UNKNOWN', '', '', ?, ?, ?, ?, '', 'active', ?, ?, NULL)",
                (run_id, trial, _user(), status, start_ms or now, end_ms or now,
                 f"{location}/{run_id}/artifacts", int(exp_id)),
            )  # fmt: skip
            self.con.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in all_tags.items()],
            )
            self.con.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in params.items()],
            )
            self.con.executemany(
                "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.con.executemany(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(k, v, ms, step, nan, run_id) for k, (step, ms, v, nan) in latest.items()],
            )
            self.con.execute(
                "UPDATE experiments SET last_update_time = ? WHERE experiment_id = ?",
                (now, int(exp_id)),
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return run_id


_FLOAT_MAX = 1.7976931348623157e308


def artifact_root(store: Path) -> Path:
    """Where a local store's runs keep their artifacts: beside the store (not in a worktree
    that is removed when the sweep ends)."""
    return store.absolute().parent / "mlartifacts"


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
