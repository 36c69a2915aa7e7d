"""Local experiment state: `<home>/experiments/<name>/` with `experiment.json` (written once,
atomically), `journal.jsonl` (append-only trial events) and per-trial directories.

Never a shared SQLite file: one coordinator appends, any number of readers tail. Standard library only.

The journal is a log a crash cannot corrupt. Each event is one line, written by one `os.write` with
O_APPEND and fsynced; `append` first ends a torn last line (a crash mid-write, a full disk) with a
newline, so the fragment becomes one invalid line and never swallows the next event. Readers never
raise on journal content: a line that is not UTF-8, not JSON, not an object, or not a well-formed
event is skipped, and the fold (`JournalState.problems`) names it, e.g.
`journal.jsonl:17: not a JSON object; skipped`, for the CLI to print as one warning
(`problems_warning`). Line numbers count from 1 over the whole file, blank lines included.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard

from launch.errors import LaunchError, UsageError

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
EXP_BROKEN = "Broken"  # only in `Summary`: the experiment cannot be read (see `Summary.problem`)

JOURNAL = "journal.jsonl"


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
    """Create the state directory and keep it out of `git status` (a dirty tree blocks launches)."""
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# launch's local state; never committed\n*\n")


def experiments_dir(home: Path) -> Path:
    return home / "experiments"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON in its own key order: experiment.json keeps the spec's order of
    `fixed` flags, the order render and --dry-run show and the local trials pass them in."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w") as handle:
        json.dump(data, handle, indent=2)
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
    # What the fold skipped or could not read, each naming its line: `journal.jsonl:17: ...`.
    problems: list[str] = field(default_factory=list)


@dataclass
class JournalChunk:
    """What one read of the journal gave (`Experiment.read`)."""

    events: list[dict[str, Any]]  # well-formed events only (see `check_event`)
    lines: Sequence[int]  # the journal line number of each event
    offset: int  # byte offset just past the last whole line read: where the next read starts
    line: int  # the number of the line at `offset`: pass it to the next read with `offset`
    problems: list[str]  # lines skipped, a missing journal, ...
    pending: int = 0  # bytes of an unfinished last line (no newline yet) left for the next read


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

    # -- journal -------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> None:
        """Append one event durably (a killed coordinator loses nothing it wrote): one line, one
        `os.write` with O_APPEND (whole, even with another writer), fsynced. A journal that does not
        end with a newline (a torn line: a crash or a full disk mid-write) is ended first, in the
        same write, so the fragment stays one invalid line and this event starts a fresh one."""
        line = (json.dumps({"t": round(time.time(), 3), **event}, sort_keys=True) + "\n").encode()
        fd = os.open(self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):  # the disk filled up: the next append ends the fragment
                raise OSError(
                    errno.ENOSPC,
                    f"short write to {self.journal_path} ({written} of {len(line)} bytes; disk full?)",
                )
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Well-formed events from byte `offset`, and the offset to read from next; an unfinished
        last line (being written) is left for later. Never raises on the journal's content: bad
        lines are skipped silently here, `read` (which `state` uses) names them."""
        chunk = self._read(offset, 1)  # numbering unused: no need to count the lines before
        return chunk.events, chunk.offset

    def read(self, offset: int = 0, line: int | None = None) -> JournalChunk:
        """The journal from byte `offset` (a line start), its bad lines skipped and named.

        `line` is the number of the line at `offset`; to tail, pass back the previous chunk's
        `offset` and `line`. Left out, it is counted (reading the journal up to `offset`), so line
        numbers are always those of the whole file. A missing journal reads as empty, with a
        problem. Never raises."""
        if line is None:
            line = 1
            if offset > 0:
                try:
                    with self.journal_path.open("rb") as handle:
                        line += handle.read(offset).count(b"\n")
                except OSError:
                    pass  # _read reports it
        return self._read(offset, line)

    def _read(self, offset: int, line: int) -> JournalChunk:
        try:
            with self.journal_path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return JournalChunk([], [], offset, line, [f"{JOURNAL}: missing; read as empty"])
        except OSError as err:
            problem = f"{JOURNAL}: cannot be read ({err.strerror or err}); read as empty"
            return JournalChunk([], [], offset, line, [problem])
        end = data.rfind(b"\n") + 1  # an unfinished last line stays for the next read
        whole = data[:end]
        count = whole.count(b"\n")
        chunk = JournalChunk([], [], offset + end, line + count, [], len(data) - end)
        fast = _parse_whole(whole, count) if count else None
        if fast is not None:
            chunk.events, chunk.lines = fast, range(line, line + count)
        elif count:
            chunk.events, chunk.lines, chunk.problems = _parse_blocks(whole, line)
        return chunk

    def state(self) -> JournalState:
        """The journal folded into trial records. An ended experiment's fold is cached in
        `state.snapshot.json`, keyed by the journal's size (any append makes it stale), so
        `launch results` on 10k trials skips replaying 20k events. Never raises on the journal's
        content (a missing journal included): what was skipped is in `problems`."""
        snapshot = self.path / "state.snapshot.json"
        try:
            size = self.journal_path.stat().st_size
            cached = _state_from_snapshot(json.loads(snapshot.read_bytes()), size)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            cached = None
        if cached is not None:
            return cached
        chunk = self.read()
        problems = chunk.problems
        if chunk.pending:
            problems.append(
                f"{JOURNAL}:{chunk.line}: unfinished last line ({chunk.pending} bytes, no newline: "
                "being written, or a crash mid-write); not read"
            )
        current = reduce_events(chunk.events, lines=chunk.lines, problems=problems, checked=True)
        if current.status != EXP_RUNNING:
            with contextlib.suppress(OSError, ValueError):  # a cache: never worth an error
                tmp = snapshot.with_name(f".{snapshot.name}.tmp{os.getpid()}")
                tmp.write_text(json.dumps(_snapshot_of(current, chunk.offset + chunk.pending)))
                os.replace(tmp, snapshot)
        return current

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
        created = float(created) if _is_time(created) else None
        try:
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


def problems_warning(name: str, problems: Sequence[str], *, shown: int = 3) -> str | None:
    """The one warning line for an experiment's journal problems (None when there are none):
    `exp: 2 journal problems: journal.jsonl:3: not a JSON object; skipped | journal.jsonl:9: ...`."""
    if not problems:
        return None
    count = len(problems)
    text = " | ".join(problems[:shown])
    more = f" | and {count - shown} more" if count > shown else ""
    return f"{name}: {count} journal problem{'s' if count > 1 else ''}: {text}{more}"


# -- reading and checking events ---------------------------------------------------------------


def _parse_whole(whole: bytes, count: int) -> list[dict[str, Any]] | None:
    """The fast path: one json.loads for every line (per-line parsing dominates at 10k trials).
    None when any line is bad, or the values are not one per line: then `_parse_lines` says which.
    (Lines that only parse joined, like `{"a": [{}` then `{}]}`, can be crafted; a crash, which
    leaves a prefix of one line, cannot write them.)"""
    if whole[:1] == b"\0":
        return None  # json.loads would take the bytes for UTF-16
    try:
        parsed: list[Any] = json.loads(b"[" + whole[:-1].replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        return None
    if len(parsed) != count:
        return None
    for event in parsed:
        # `_well_formed` is `check_event` without the messages, twice as fast: it matters here.
        if type(event) is not dict or not _well_formed(event):
            return None
    return parsed


_BLOCK = 256  # lines


def _parse_blocks(whole: bytes, line: int) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """A journal with bad lines: blocks of lines the fast way, those with a bad line one line at a
    time (a torn line left by a crash must not make every later read of 10k trials slow)."""
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[str] = []
    raws = whole.split(b"\n")[:-1]
    for start in range(0, len(raws), _BLOCK):
        block = b"\n".join(raws[start : start + _BLOCK]) + b"\n"
        count = min(_BLOCK, len(raws) - start)
        fast = _parse_whole(block, count)
        if fast is not None:
            events += fast
            lines += range(line + start, line + start + count)
            continue
        slow = _parse_lines(block, line + start)
        events += slow[0]
        lines += slow[1]
        problems += slow[2]
    return events, lines, problems


def _parse_lines(whole: bytes, line: int) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """The slow path: each line on its own, bad ones skipped and named."""
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[str] = []
    for number, raw in enumerate(whole.split(b"\n")[:-1], start=line):
        if not raw.strip():
            continue  # a blank line hides nothing (two writers ending the same torn line)
        where = f"{JOURNAL}:{number}"
        try:
            text = raw.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        except UnicodeDecodeError as err:
            problems.append(
                f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                "skipped"
            )
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not valid JSON ({err.msg}: column {err.colno}); skipped")
            continue
        except (ValueError, RecursionError) as err:
            problems.append(f"{where}: not valid JSON ({type(err).__name__}); skipped")
            continue
        event = check_event(value, number, problems)
        if event is not None:
            events.append(event)
            lines.append(number)
    return events, lines, problems


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> TypeGuard[int | float]:
    return _is_number(value) and 0 <= value < 1e11  # a Unix time (not NaN, not year 5000)


def _is_name(value: Any) -> bool:
    """A trial name: also a directory name under trials/, and printed (no control characters)."""
    return (
        isinstance(value, str)
        and value.isprintable()
        and "/" not in value
        and value not in ("", ".", "..")
    )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_opt_int(value: Any) -> bool:
    return value is None or _is_int(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_opt_str_list(value: Any) -> bool:
    return value is None or _is_str_list(value)


def _is_metrics(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_number(item) for item in value.values())


_Check = tuple[str, Callable[[Any], bool], str]
# event kind -> (required fields: the line is skipped without them, optional fields: ignored when bad)
_EVENTS: dict[str, tuple[tuple[_Check, ...], tuple[_Check, ...]]] = {
    "trial_started": (
        (
            ("trial", _is_name, "a trial name"),
            ("number", _is_int, "an integer"),
            ("params", _is_dict, "an object"),
            ("t", _is_time, "a timestamp"),
        ),
        (
            ("gpus", _is_str, "a string"),
            ("retry_of", _is_opt_str, "a trial name"),
            ("argv", _is_opt_str_list, "a list of strings"),
        ),
    ),
    "trial_running": (
        (("trial", _is_name, "a trial name"),),
        (("pid", _is_opt_int, "an integer"), ("proc_start", _is_opt_str, "a string")),
    ),
    "trial_finished": (
        (
            ("trial", _is_name, "a trial name"),
            ("status", _is_str, "a string"),
            ("t", _is_time, "a timestamp"),
        ),
        (
            ("exit_code", _is_opt_int, "an integer"),
            ("metrics", _is_metrics, "an object of numbers"),
            ("found_tags", _is_str_list, "a list of strings"),
            ("reason", _is_str, "a string"),
        ),
    ),
    "experiment": (
        (("status", _is_str, "a string"), ("t", _is_time, "a timestamp")),
        (("reason", _is_str, "a string"),),
    ),
}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_event(event: Any, line: int, problems: list[str]) -> dict[str, Any] | None:
    """`event` when it is a well-formed journal event; a copy without its bad optional fields; or
    None when it cannot be used (not an object, an unknown kind, a required field missing or of the
    wrong type). Each problem, naming `line`, goes to `problems`."""
    if not isinstance(event, dict):
        problems.append(f"{JOURNAL}:{line}: not a JSON object; skipped")
        return None
    kind = event.get("event")
    checks = _EVENTS.get(kind) if isinstance(kind, str) else None
    if checks is None:
        what = "no `event` field" if kind is None else f"unknown event {_shown(kind)}"
        problems.append(f"{JOURNAL}:{line}: {what}; skipped")
        return None
    required, optional = checks
    for key, valid, what in required:
        if key not in event:
            problems.append(f"{JOURNAL}:{line}: {kind} without `{key}`; skipped")
            return None
        if not valid(event[key]):
            problems.append(
                f"{JOURNAL}:{line}: {kind} `{key}` is not {what} ({_shown(event[key])}); skipped"
            )
            return None
    cleaned = event
    for key, valid, what in optional:
        if key in event and not valid(event[key]):
            problems.append(
                f"{JOURNAL}:{line}: {kind} `{key}` is not {what} ({_shown(event[key])}); "
                "field ignored"
            )
            if cleaned is event:
                cleaned = dict(event)  # never change the caller's event
            del cleaned[key]
    return cleaned


def _well_formed(event: dict[str, Any]) -> bool:
    """True when `check_event` would take `event` as it is, with no problem (the fast path's
    check; when in doubt False, and `check_event` says why). Exact types: JSON gives no others."""
    get = event.get
    kind = get("event")
    if kind == "trial_running":
        pid, proc_start = get("pid"), get("proc_start")
        return (
            _is_name(get("trial"))
            and (pid is None or type(pid) is int)
            and (proc_start is None or type(proc_start) is str)
        )
    t = get("t")
    if not ((type(t) is float or type(t) is int) and 0 <= t < 1e11):
        return False
    if kind == "trial_finished":
        code, metrics, tags = get("exit_code"), get("metrics", _NO_METRICS), get("found_tags", [])
        return (
            _is_name(get("trial"))
            and type(get("status")) is str
            and (code is None or type(code) is int)
            and type(metrics) is dict
            and _NUMBER_TYPES.issuperset(map(type, metrics.values()))
            and type(tags) is list
            and _STR_TYPE.issuperset(map(type, tags))
            and type(get("reason", "")) is str
        )
    if kind == "trial_started":
        retry_of, argv = get("retry_of"), get("argv")
        return (
            _is_name(get("trial"))
            and type(get("number")) is int
            and type(get("params")) is dict
            and type(get("gpus", "")) is str
            and (retry_of is None or type(retry_of) is str)
            and (argv is None or (type(argv) is list and _STR_TYPE.issuperset(map(type, argv))))
        )
    if kind == "experiment":
        return type(get("status")) is str and type(get("reason", "")) is str
    return False


_NO_METRICS: dict[str, Any] = {}
_NUMBER_TYPES = frozenset((int, float))  # exact types: no bool
_STR_TYPE = frozenset((str,))


_RECORD_FIELDS = tuple(f.name for f in fields(TrialRecord))


def _snapshot_of(current: JournalState, journal_size: int) -> dict[str, Any]:
    return {
        "journal_size": journal_size,
        "fields": list(_RECORD_FIELDS),  # another launch version's records: not used
        "status": current.status,
        "reason": current.reason,
        "ended": current.ended,
        "problems": current.problems,  # the warning stays while the journal does
        "trials": [[getattr(r, n) for n in _RECORD_FIELDS] for r in current.trials.values()],
    }


def _state_from_snapshot(data: dict[str, Any], journal_size: int) -> JournalState | None:
    if data["journal_size"] != journal_size or tuple(data["fields"]) != _RECORD_FIELDS:
        return None
    problems = data["problems"]  # a snapshot from before problems were kept: KeyError, refold
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        return None
    trials = {}
    for values in data["trials"]:
        record = TrialRecord(**dict(zip(_RECORD_FIELDS, values, strict=True)))
        trials[record.name] = record
    return JournalState(trials, data["status"], data["reason"], data["ended"], problems)


def reduce_events(
    events: Iterable[Any],
    *,
    lines: Iterable[int] | None = None,
    problems: Iterable[str] = (),
    checked: bool = False,
) -> JournalState:
    """Fold journal events into trial records and the experiment status (pure; never raises).

    `lines` are the events' journal line numbers (1, 2, ... when left out), for the problems;
    `problems` (the reader's) come first in the result's. Unless `checked` (events from
    `Experiment.read`, already checked), each event goes through `check_event`. A trial started
    twice keeps its first start (a coordinator never reuses a name: the second is corruption);
    events for a trial never started are skipped; each is a problem naming its line."""
    found = list(problems)
    trials: dict[str, TrialRecord] = {}
    first: dict[str, int] = {}  # trial -> the line that started it
    status, reason, ended = EXP_RUNNING, "", None
    # Never shorter than the events: a shorter `lines` leaves the rest numbered 0 (unknown).
    numbers = itertools.count(1) if lines is None else itertools.chain(lines, itertools.repeat(0))
    for event, line in zip(events, numbers, strict=False):
        if not checked:
            event = check_event(event, line, found)
            if event is None:
                continue
        kind = event["event"]
        if kind == "experiment":
            status, reason = event["status"], event.get("reason", "")
            ended = event["t"] if status != EXP_RUNNING else None
            continue
        name = event["trial"]
        if kind == "trial_started":
            if name in trials:
                found.append(
                    f"{JOURNAL}:{line}: trial `{name}` started again (first on line "
                    f"{first[name]}); skipped"
                )
                continue
            first[name] = line
            trials[name] = TrialRecord(
                name=name,
                number=event["number"],
                params=event["params"],
                start=event["t"],
                gpus=event.get("gpus", ""),
                retry_of=event.get("retry_of"),
                argv=event.get("argv"),
            )
            continue
        record = trials.get(name)
        if record is None:
            found.append(f"{JOURNAL}:{line}: {kind} for unknown trial `{name}`; skipped")
        elif kind == "trial_running":
            record.pid = event.get("pid")
            record.proc_start = event.get("proc_start")
        else:  # trial_finished
            record.status = event["status"]
            record.end = event["t"]
            record.exit_code = event.get("exit_code")
            record.metrics = event.get("metrics", {})
            record.found_tags = event.get("found_tags", [])
            record.reason = event.get("reason", "")
    return JournalState(trials, status, reason, ended, found)


def list_names(home: Path) -> list[str]:
    root = experiments_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "experiment.json").is_file())
