"""Local experiment state: `<home>/experiments/<name>/` with `experiment.json` (written once,
atomically), `journal.jsonl` (append-only trial events) and per-trial directories.

Never a shared SQLite file: one coordinator appends, any number of readers tail. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from launch.errors import UsageError

# Trial states: Katib's names where Katib has one.
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
METRICS_UNAVAILABLE = "MetricsUnavailable"
KILLED = "Killed"  # stopped by Ctrl-C, cancel or a lost coordinator; re-run on resume
FINISHED_STATES = (SUCCEEDED, FAILED, METRICS_UNAVAILABLE, KILLED)

# Experiment states.
EXP_RUNNING = "Running"
EXP_SUCCEEDED = "Succeeded"
EXP_FAILED = "Failed"
EXP_INTERRUPTED = "Interrupted"  # Ctrl-C or a killed coordinator: `launch watch` resumes it
EXP_CANCELLED = "Cancelled"


def home_dir(setting: str, *, cwd: Path | None = None) -> Path:
    """Resolve the state directory: `$LAUNCH_HOME`/setting as given, relative ones against the
    enclosing git repository's root (so `launch list` works from any subdirectory)."""
    path = Path(setting).expanduser()
    if path.is_absolute():
        return path
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory / path
    return start / path


def ensure_home(home: Path) -> None:
    """Create the state directory and keep it out of `git status` (a dirty tree blocks launches)."""
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# launch's local state; never committed\n*\n")


def experiments_dir(home: Path) -> Path:
    return home / "experiments"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@dataclass
class TrialRecord:
    """A trial as the journal tells it (the local backend's view; results.Trial is the shared schema)."""

    name: str
    number: int
    params: dict[str, Any]
    status: str = RUNNING
    start: float | None = None
    end: float | None = None
    exit_code: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    found_tags: list[str] = field(default_factory=list)
    reason: str = ""
    pid: int | None = None
    proc_start: str | None = None  # kernel start time, to tell our pid from a reused one
    gpus: str = ""
    retry_of: str | None = None
    argv: list[str] | None = None  # exactly what ran (the journal's params lose their order)


@dataclass
class JournalState:
    trials: dict[str, TrialRecord]
    status: str
    reason: str
    ended: float | None


class Experiment:
    """One local experiment directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path / "journal.jsonl"
        self.meta_path = path / "experiment.json"
        self.lock_path = path / "coordinator.lock"

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, home: Path, name: str, meta: dict[str, Any]) -> Experiment:
        """Make the directory and write experiment.json; refuse an existing name."""
        ensure_home(home)
        root = experiments_dir(home)
        root.mkdir(exist_ok=True)
        path = root / name
        try:
            path.mkdir()
        except FileExistsError:
            raise UsageError(
                f"experiment `{name}` already exists in {root}",
                hint=f"pick another --name, or `launch watch {name}` to resume it",
            ) from None
        exp = cls(path)
        write_json_atomic(exp.meta_path, meta)
        exp.journal_path.touch()
        return exp

    @classmethod
    def open(cls, home: Path, name: str) -> Experiment:
        path = experiments_dir(home) / name
        if not (path / "experiment.json").is_file():
            known = list_names(home)
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = (
                f"did you mean `{close[0]}`?" if close else "run `launch list` to see experiments"
            )
            raise UsageError(f"no local experiment `{name}` in {experiments_dir(home)}", hint=hint)
        return cls(path)

    def meta(self) -> dict[str, Any]:
        with self.meta_path.open() as handle:
            data: dict[str, Any] = json.load(handle)
        return data

    def trial_dir(self, trial: str) -> Path:
        return self.path / "trials" / trial

    # -- journal -------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> None:
        """Append one event durably (a killed coordinator loses nothing it wrote)."""
        line = json.dumps({"t": round(time.time(), 3), **event}, sort_keys=True) + "\n"
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events from byte `offset`; a torn last line (a crash mid-write) is left for later."""
        with self.journal_path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a torn last line stays for the next read
        whole = data[:end]
        try:
            # One parse for the whole journal: per-line json.loads dominates at 10k trials.
            events: list[dict[str, Any]] = json.loads(
                b"[" + whole.rstrip(b"\n").replace(b"\n", b",") + b"]"
            )
        except json.JSONDecodeError:
            events = []
            for raw in whole.splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(raw))
        return events, offset + end

    def state(self) -> JournalState:
        """The journal folded into trial records. An ended experiment's fold is cached in
        `state.snapshot.json`, keyed by the journal's size (any append makes it stale), so
        `launch results` on 10k trials skips replaying 20k events."""
        snapshot = self.path / "state.snapshot.json"
        try:
            size = self.journal_path.stat().st_size
            cached = _state_from_snapshot(json.loads(snapshot.read_bytes()), size)
        except (OSError, ValueError, KeyError, TypeError):
            cached = None
        if cached is not None:
            return cached
        events, end = self.events()
        current = reduce_events(events)
        if current.status != EXP_RUNNING:
            with contextlib.suppress(OSError):  # a cache: never worth an error
                tmp = snapshot.with_name(f".{snapshot.name}.tmp{os.getpid()}")
                tmp.write_text(json.dumps(_snapshot_of(current, end)))
                os.replace(tmp, snapshot)
        return current

    # -- coordinator lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def coordinator_lock(self) -> Iterator[None]:
        """Held while a coordinator runs; a dead coordinator's lock is released by the kernel."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"experiment `{self.name}` is already being run by another launch process",
                    hint=f"follow it with `launch status {self.name}`, or stop it with `launch cancel {self.name}`",
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            os.close(fd)

    def coordinator_pid(self) -> int | None:
        """The pid of a live coordinator, or None when nobody holds the lock."""
        if not self.lock_path.exists():
            return None
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


_RECORD_FIELDS = tuple(f.name for f in fields(TrialRecord))


def _snapshot_of(current: JournalState, journal_size: int) -> dict[str, Any]:
    return {
        "journal_size": journal_size,
        "fields": list(_RECORD_FIELDS),  # another launch version's records: not used
        "status": current.status,
        "reason": current.reason,
        "ended": current.ended,
        "trials": [[getattr(r, n) for n in _RECORD_FIELDS] for r in current.trials.values()],
    }


def _state_from_snapshot(data: dict[str, Any], journal_size: int) -> JournalState | None:
    if data["journal_size"] != journal_size or tuple(data["fields"]) != _RECORD_FIELDS:
        return None
    trials = {}
    for values in data["trials"]:
        record = TrialRecord(**dict(zip(_RECORD_FIELDS, values, strict=True)))
        trials[record.name] = record
    return JournalState(trials, data["status"], data["reason"], data["ended"])


def reduce_events(events: list[dict[str, Any]]) -> JournalState:
    """Fold journal events into trial records and the experiment status (pure)."""
    trials: dict[str, TrialRecord] = {}
    status, reason, ended = EXP_RUNNING, "", None
    for event in events:
        kind = event.get("event")
        if kind == "trial_started":
            trials[event["trial"]] = TrialRecord(
                name=event["trial"],
                number=event["number"],
                params=event["params"],
                start=event["t"],
                gpus=event.get("gpus", ""),
                retry_of=event.get("retry_of"),
                argv=event.get("argv"),
            )
        elif kind == "trial_running" and event["trial"] in trials:
            trials[event["trial"]].pid = event.get("pid")
            trials[event["trial"]].proc_start = event.get("proc_start")
        elif kind == "trial_finished" and event["trial"] in trials:
            record = trials[event["trial"]]
            record.status = event["status"]
            record.end = event["t"]
            record.exit_code = event.get("exit_code")
            record.metrics = event.get("metrics", {})
            record.found_tags = event.get("found_tags", [])
            record.reason = event.get("reason", "")
        elif kind == "experiment":
            status, reason = event["status"], event.get("reason", "")
            ended = event["t"] if status != EXP_RUNNING else None
    return JournalState(trials, status, reason, ended)


def list_names(home: Path) -> list[str]:
    root = experiments_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "experiment.json").is_file())
