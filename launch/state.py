"""A local experiment's directory: `<home>/experiments/<name>/` with `experiment.json` (written
once, atomically), `journal.jsonl` (append-only trial events, see `launch.journal`), per-trial
directories and the coordinator's lock; and the experiments of a home, as `launch list` shows them.

Never a shared SQLite file: one coordinator appends, any number of readers tail. `Experiment.state`
folds the journal once per change: the fold is kept in the object, keyed by the journal's size,
inode and mtime, and an ended experiment's fold is cached on disk (`journal.SNAPSHOT`).
Standard library only. The journal's names (states, records, `reduce_events`, ...) are also
importable from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import journal, private
from launch.errors import LaunchError, UsageError
from launch.events import ExperimentStatus
from launch.journal import (
    EXP_CANCELLED,
    EXP_FAILED,
    EXP_INTERRUPTED,
    EXP_RUNNING,
    EXP_SUCCEEDED,
    FAILED,
    FINISHED_STATES,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    JournalChunk,
    JournalState,
    TrialRecord,
    problems_warning,
)
from launch.journal_events import JOURNAL, is_time

__all__ = [  # the journal's names are re-exported for the modules that use them from here
    "EXP_BROKEN",
    "EXP_CANCELLED",
    "EXP_FAILED",
    "EXP_INTERRUPTED",
    "EXP_RUNNING",
    "EXP_SUCCEEDED",
    "FAILED",
    "FINISHED_STATES",
    "KILLED",
    "METRICS_UNAVAILABLE",
    "RUNNING",
    "SUCCEEDED",
    "Experiment",
    "JournalChunk",
    "JournalState",
    "StateError",
    "Summary",
    "TrialRecord",
    "ensure_home",
    "experiments_dir",
    "home_dir",
    "list_names",
    "problems_warning",
    "summaries",
    "write_json_atomic",
]

EXP_BROKEN = (
    ExperimentStatus.BROKEN
)  # only in `Summary`: the experiment cannot be read (see `Summary.problem`)


class StateError(LaunchError):
    """An experiment directory that cannot be read: a missing, truncated or invalid experiment.json."""


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
    """Create the state directory (0700, `launch.private`) and keep it out of `git status` (a
    dirty tree blocks launches). A home made by an older launch is tightened: the home itself,
    its `.gitignore`, `experiments/` and the local MLflow store."""
    home.parent.mkdir(parents=True, exist_ok=True)  # outside the home: the user's modes
    private.mkdir(home)
    ignore = home / ".gitignore"
    if not ignore.exists():
        fd = private.open_file(ignore, os.O_WRONLY)
        try:
            os.write(fd, b"# launch's local state; never committed\n*\n")
        finally:
            os.close(fd)
    private.tighten(ignore)
    private.tighten(experiments_dir(home))
    for store in home.glob("mlflow.db*"):
        private.tighten(store)


def experiments_dir(home: Path) -> Path:
    return home / "experiments"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON in its own key order: experiment.json keeps the spec's order of
    `fixed` flags, the order render and --dry-run show and the local trials pass them in."""
    private.write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


@dataclass
class Summary:
    """One experiment as `launch list` shows it (`summaries`); never raises for a broken one."""

    name: str
    backend: str  # "local" or "katib"; "?" when experiment.json cannot be read
    # EXP_*, Interrupted when Running with no live coordinator, EXP_BROKEN; katib: where it runs
    status: str
    trials: dict[str, int]  # trial status -> count
    created: float | None
    problem: str | None = None  # why it cannot be read (status EXP_BROKEN); hint in `hint`
    hint: str | None = None
    warnings: list[str] = field(default_factory=list)  # journal problems (lines skipped)

    def as_dict(self) -> dict[str, Any]:
        """The `launch list --json` item."""
        return {
            "name": self.name,
            "backend": self.backend,
            "status": self.status,
            "trials": self.trials,
            "created": self.created,
            "problem": self.problem,
            "warnings": self.warnings,
        }


_LOCAL_META_KEYS = (
    "name", "spec", "command", "workdir", "commit", "gpus_per_trial", "parallel", "max_trials",
    "max_failed", "tracking_uri",
)  # fmt: skip
_KATIB_META_KEYS = ("name", "namespace")
_META_KEYS = {"local": _LOCAL_META_KEYS, "katib": _KATIB_META_KEYS}  # the keys each backend reads


class Experiment:
    """One local experiment directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path / JOURNAL
        self.meta_path = path / "experiment.json"
        self.lock_path = path / "coordinator.lock"
        # The last fold (`state`) and the journal's (device, inode, size, mtime) it was made from.
        self._folded: tuple[tuple[int, int, int, int], JournalState] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, home: Path, name: str, meta: dict[str, Any]) -> Experiment:
        """Make the directory and write experiment.json; refuse an existing name."""
        ensure_home(home)
        root = experiments_dir(home)
        private.mkdir(root)
        path = root / name
        try:
            private.mkdir(path, exist_ok=False)
        except FileExistsError:
            raise UsageError(
                f"experiment `{name}` already exists in {root}",
                hint=f"pick another --name, or `launch watch {name}` to resume it",
            ) from None
        exp = cls(path)
        write_json_atomic(exp.meta_path, meta)
        os.close(private.open_file(exp.journal_path, os.O_WRONLY))
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
        """experiment.json; a missing, truncated or invalid one (or one without the keys its
        backend needs) raises StateError naming the file, with a hint to remove the experiment."""
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            raise self._meta_error("is missing") from None
        except OSError as err:
            raise self._meta_error(f"cannot be read ({err.strerror or err})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
            raise self._meta_error("is not valid JSON (truncated?)") from None
        if not isinstance(data, dict):
            raise self._meta_error("is not a JSON object")
        backend = data.get("backend")
        needed = _META_KEYS.get(backend, ()) if isinstance(backend, str) else ()
        missing = [key for key in needed if key not in data]
        if missing:
            raise self._meta_error(f"lacks {', '.join(f'`{key}`' for key in missing)}")
        return data

    def _meta_error(self, what: str) -> StateError:
        return StateError(
            f"{self.path}: experiment.json {what}",
            hint=f"a crash or a full disk may have damaged it; its trials' logs are in "
            f"{self.path / 'trials'}; to drop the experiment: rm -r {shlex.quote(str(self.path))}",
        )

    def trial_dir(self, trial: str) -> Path:
        return self.path / "trials" / trial

    def make_private(self) -> None:
        """Tighten this experiment's directory and files (all but its worktree) and its home's
        (`launch.private`): a home made by an older launch was 0755/0644."""
        home = self.path.parent.parent
        private.tighten(home)
        private.tighten(home / ".gitignore")
        private.tighten(self.path.parent)
        for store in home.glob("mlflow.db*"):
            private.tighten(store)
        private.tighten_tree(self.path)

    # -- journal -------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> None:
        """Append one event durably (`journal.append`)."""
        journal.append(self.journal_path, event)

    def events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Well-formed events from byte `offset`, and the offset to read from next
        (`journal.events`: bad lines skipped silently, an unfinished last line left for later)."""
        return journal.events(self.journal_path, offset)

    def read(self, offset: int = 0, line: int | None = None) -> JournalChunk:
        """The journal from byte `offset` (a line start), its bad lines skipped and named; `line`
        is the number of the line at `offset` (`journal.read`). Never raises."""
        return journal.read(self.journal_path, offset, line)

    def state(self) -> JournalState:
        """The journal folded into trial records. Never raises on the journal's content (a missing
        journal included): what was skipped is in `problems`. Each call returns a copy the caller
        may change.

        A journal unchanged since the last call (same size, inode and mtime) is neither read nor
        folded again: this object keeps its last fold. An ended experiment's fold is also cached
        in `state.snapshot.json`, keyed by the journal's size (any append makes it stale), so
        `launch results` on 10k trials skips replaying 20k events."""
        try:
            info = os.stat(self.journal_path)
        except OSError:
            info = None  # `journal.fold` names the problem
        key = None if info is None else (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if key is not None and self._folded is not None and self._folded[0] == key:
            return journal.copy_state(self._folded[1])
        snapshot = self.path / journal.SNAPSHOT
        current = None if info is None else journal.load_snapshot(snapshot, info.st_size)
        if current is None:
            current, size = journal.fold(self.journal_path)
            if current.status != EXP_RUNNING:
                journal.save_snapshot(snapshot, current, size)
            if info is None or size != info.st_size:
                key = None  # it grew while being read: the fold is not that of `key`'s journal
        if key is None:
            return current
        self._folded = (key, current)
        return journal.copy_state(current)

    def live_status(self, current: JournalState | None = None) -> str:
        """The experiment's status as commands show it: a journal still Running with no live
        coordinator is EXP_INTERRUPTED (its coordinator died; `launch watch` resumes it)."""
        status = (current or self.state()).status
        if status == EXP_RUNNING and self.coordinator_pid() is None:
            return EXP_INTERRUPTED
        return status

    def summary(self) -> Summary:
        """This experiment as `launch list` shows it; one that cannot be read comes back with
        status EXP_BROKEN and the reason in `problem`, never an exception."""
        try:
            meta = self.meta()
        except StateError as err:
            return Summary(self.name, "?", EXP_BROKEN, {}, None, problem=err.message, hint=err.hint)
        created = meta.get("created")
        created = float(created) if is_time(created) else None
        try:
            if meta.get("backend") == "archive":  # `launch import`: saved results, read-only
                return Summary(self.name, "archive", "imported", {}, created)
            if meta.get("backend") == "katib":
                # Offline: where it runs; `launch status NAME` asks the cluster.
                where = "deleted" if meta.get("deleted") else f"on cluster ({meta['namespace']})"
                return Summary(self.name, "katib", where, {}, created)
            current = self.state()
            counts: dict[str, int] = {}
            for record in current.trials.values():
                counts[record.status] = counts.get(record.status, 0) + 1
            status = self.live_status(current)
            return Summary(self.name, "local", status, counts, created, warnings=current.problems)
        except Exception as err:  # listing many experiments: one that cannot be read never stops it
            return Summary(
                self.name, str(meta.get("backend", "local")), EXP_BROKEN, {}, created,
                problem=f"{self.path}: cannot be read ({type(err).__name__}: {err})",
            )  # fmt: skip

    # -- coordinator lock ----------------------------------------------------------------------

    @contextlib.contextmanager
    def coordinator_lock(self) -> Iterator[None]:
        """Held while a coordinator runs; a dead coordinator's lock is released by the kernel."""
        fd = private.open_file(self.lock_path, os.O_RDWR)
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
        """The pid of a live coordinator, or None when nobody holds the lock (-1: held, pid unknown)."""
        if not self.lock_path.exists():
            return None
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() and text.isascii() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def summaries(home: Path) -> list[Summary]:
    """Every experiment in `home`, by name, as `launch list` shows it: one that cannot be read
    (a damaged experiment.json, or a directory a crash left without one) is an EXP_BROKEN row
    with its reason, never an exception."""
    root = experiments_dir(home)
    try:
        paths = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise StateError(
            f"{root}: cannot list experiments ({err.strerror or err})",
            hint=f"check the permissions of {root}",
        ) from None
    return [Experiment(path).summary() for path in paths]


def list_names(home: Path) -> list[str]:
    root = experiments_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "experiment.json").is_file())
