"""A local experiment's append-only journal (`journal.jsonl`): its events, read and folded.

One event per line, written by one `os.write` with O_APPEND and fsynced (`append`); a torn last
line (a crash, a full disk) is ended first, so the fragment becomes one invalid line and never
swallows the next event. Reading never raises on content (`read`, `events`; what a well-formed
event is: `launch.journal_events`): bad lines are skipped and named, e.g.
`journal.jsonl:17: not a JSON object; skipped`, for the CLI to print as one warning
(`problems_warning`). Line numbers count from 1 over the whole file, blank lines included.
`reduce_events` folds events into trial records (`TrialRecord`, with its `restarts`) and the
experiment's status (`JournalState`, whose `restarts` sums them); an ended experiment's fold is cached beside the journal (`SNAPSHOT`).
Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from launch import private
from launch.events import ExperimentStatus, TrialStatus
from launch.journal_events import JOURNAL, check_event, parse

# The journal's words for states: `launch.events`' enums, named as the journal has always named them.
RUNNING = TrialStatus.RUNNING
SUCCEEDED = TrialStatus.SUCCEEDED
FAILED = TrialStatus.FAILED
METRICS_UNAVAILABLE = TrialStatus.METRICS_UNAVAILABLE
KILLED = TrialStatus.KILLED  # stopped by Ctrl-C, cancel or a lost coordinator; re-run on resume
FINISHED_STATES = (SUCCEEDED, FAILED, METRICS_UNAVAILABLE, KILLED)
EXP_RUNNING = ExperimentStatus.RUNNING
EXP_SUCCEEDED = ExperimentStatus.SUCCEEDED
EXP_FAILED = ExperimentStatus.FAILED
EXP_INTERRUPTED = (
    ExperimentStatus.INTERRUPTED
)  # Ctrl-C or a killed coordinator: `launch watch` resumes it
EXP_CANCELLED = ExperimentStatus.CANCELLED


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
    restarts: int = 0  # times it was killed from outside and started again in place


@dataclass
class JournalState:
    trials: dict[str, TrialRecord]
    status: str
    reason: str
    ended: float | None
    # What the fold skipped or could not read, each naming its line: `journal.jsonl:17: ...`.
    problems: list[str] = field(default_factory=list)

    @property
    def restarts(self) -> int:
        """The experiment's restarts: trials killed from outside and started again, all told."""
        return sum(record.restarts for record in self.trials.values())


@dataclass
class JournalChunk:
    """What one read of the journal gave (`Experiment.read`)."""

    events: list[dict[str, Any]]  # well-formed events only (see `check_event`)
    lines: Sequence[int]  # the journal line number of each event
    offset: int  # byte offset just past the last whole line read: where the next read starts
    line: int  # the number of the line at `offset`: pass it to the next read with `offset`
    problems: list[str]  # lines skipped, a missing journal, ...
    pending: int = 0  # bytes of an unfinished last line (no newline yet) left for the next read


SNAPSHOT = "state.snapshot.json"  # an ended experiment's cached fold, beside its journal


# -- appending and reading ---------------------------------------------------------------------


def append(path: Path, event: dict[str, Any]) -> None:
    """Append one event durably (a killed coordinator loses nothing it wrote): one line, one
    `os.write` with O_APPEND (whole, even with another writer), fsynced. A journal that does not
    end with a newline (a torn line: a crash or a full disk mid-write) is ended first, in the
    same write, so the fragment stays one invalid line and this event starts a fresh one."""
    line = (json.dumps({"t": round(time.time(), 3), **event}, sort_keys=True) + "\n").encode()
    fd = private.open_file(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):  # the disk filled up: the next append ends the fragment
            raise OSError(
                errno.ENOSPC,
                f"short write to {path} ({written} of {len(line)} bytes; disk full?)",
            )
        os.fsync(fd)
    finally:
        os.close(fd)


def events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Well-formed events from byte `offset`, and the offset to read from next; an unfinished
    last line (being written) is left for later. Never raises on the journal's content: bad
    lines are skipped silently here, `read` (which `fold` uses) names them."""
    chunk = _read(path, offset, 1)  # numbering unused: no need to count the lines before
    return chunk.events, chunk.offset


def read(path: Path, offset: int = 0, line: int | None = None) -> JournalChunk:
    """The journal from byte `offset` (a line start), its bad lines skipped and named.

    `line` is the number of the line at `offset`; to tail, pass back the previous chunk's
    `offset` and `line`. Left out, it is counted (reading the journal up to `offset`), so line
    numbers are always those of the whole file. A missing journal reads as empty, with a
    problem. Never raises."""
    if line is None:
        line = 1
        if offset > 0:
            try:
                with path.open("rb") as handle:
                    line += handle.read(offset).count(b"\n")
            except OSError:
                pass  # _read reports it
    return _read(path, offset, line)


def _read(path: Path, offset: int, line: int) -> JournalChunk:
    try:
        with path.open("rb") as handle:
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
    chunk.events, chunk.lines, chunk.problems = parse(whole, line)
    return chunk


def fold(path: Path) -> tuple[JournalState, int]:
    """The whole journal read and folded (`reduce_events`), and how many bytes of it that was.
    Never raises on the journal's content (a missing journal included): what was skipped, an
    unfinished last line included, is in `problems`."""
    chunk = read(path)
    problems = chunk.problems
    if chunk.pending:
        problems.append(
            f"{JOURNAL}:{chunk.line}: unfinished last line ({chunk.pending} bytes, no newline: "
            "being written, or a crash mid-write); not read"
        )
    current = reduce_events(chunk.events, lines=chunk.lines, problems=problems, checked=True)
    return current, chunk.offset + chunk.pending


def copy_state(current: JournalState) -> JournalState:
    """A copy whose records and lists a caller may change without changing `current`
    (the records' own values, such as `params`, are shared: callers replace them, never edit)."""
    trials = {}
    for name, record in current.trials.items():
        twin = object.__new__(TrialRecord)
        twin.__dict__.update(record.__dict__)
        trials[name] = twin
    return JournalState(
        trials, current.status, current.reason, current.ended, list(current.problems)
    )


# -- the cached fold of an ended experiment -----------------------------------------------------


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


def load_snapshot(path: Path, journal_size: int) -> JournalState | None:
    """The fold cached in `path` when it is that of a journal of `journal_size` bytes, written by
    this version of launch; None otherwise (missing, stale, damaged: never raises)."""
    try:
        return _state_from_snapshot(json.loads(path.read_bytes()), journal_size)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def save_snapshot(path: Path, current: JournalState, journal_size: int) -> None:
    """Cache the fold `current` of a journal of `journal_size` bytes in `path`, atomically; a
    failure is ignored (a cache is never worth an error)."""
    with contextlib.suppress(OSError, ValueError):
        private.write_atomic(path, json.dumps(_snapshot_of(current, journal_size)).encode())


# -- folding events into records --------------------------------------------------------------


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
        elif kind == "trial_restarted":  # still Running: its next process comes with trial_running
            record.restarts += 1
            record.pid = record.proc_start = None
        else:  # trial_finished
            record.status = event["status"]
            record.end = event["t"]
            record.exit_code = event.get("exit_code")
            record.metrics = event.get("metrics", {})
            record.found_tags = event.get("found_tags", [])
            record.reason = event.get("reason", "")
    return JournalState(trials, status, reason, ended, found)


def problems_warning(name: str, problems: Sequence[str], *, shown: int = 3) -> str | None:
    """The one warning line for an experiment's journal problems (None when there are none):
    `exp: 2 journal problems: journal.jsonl:3: not a JSON object; skipped | journal.jsonl:9: ...`."""
    if not problems:
        return None
    count = len(problems)
    text = " | ".join(problems[:shown])
    more = f" | and {count - shown} more" if count > shown else ""
    return f"{name}: {count} journal problem{'s' if count > 1 else ''}: {text}{more}"
