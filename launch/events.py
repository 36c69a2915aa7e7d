"""What both backends report while a sweep runs: one `Event` type, and the status words.

The local coordinator's journal records and the cluster watcher's observations become the same
events, so one renderer (`launch.progress`) shows both, `--json` prints them as JSON lines, and
tests assert on events rather than on terminal text. Pure: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class TrialStatus(StrEnum):
    """A trial's state, in Katib's words (the local backend uses the same)."""

    CREATED = "Created"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    KILLED = "Killed"  # stopped by Ctrl-C, cancel, a timeout or a lost coordinator
    EARLY_STOPPED = "EarlyStopped"


class ExperimentStatus(StrEnum):
    """An experiment's state; `Interrupted` and `Cancelled` are the local backend's."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"  # Ctrl-C or a killed coordinator: `launch watch` resumes it
    CANCELLED = "Cancelled"
    BROKEN = "Broken"  # its directory cannot be read (only in summaries)


TRIAL_FINISHED = frozenset(
    (
        TrialStatus.SUCCEEDED,
        TrialStatus.FAILED,
        TrialStatus.METRICS_UNAVAILABLE,
        TrialStatus.KILLED,
        TrialStatus.EARLY_STOPPED,
    )
)
EXPERIMENT_ENDED = frozenset(
    (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)
)

EventKind = Literal[
    "trial_started",  # a trial's process or pod started (params known)
    "trial_finished",  # a trial reached a final status (metrics, reason)
    "trial_pending",  # a trial waits, and why (scheduler, quota, image pull)
    "trial_state",  # another state change of a trial (Created, Pending, Deleted)
    "progress",  # a long wait's state (a build); shown as one live line
    "note",  # a line of narration (level info/warn/error)
    "experiment_ended",  # the experiment reached a final status
]
Level = Literal["info", "warn", "error"]


@dataclass(frozen=True)
class Event:
    """One thing that happened, with the time it happened (epoch seconds)."""

    kind: EventKind
    t: float = field(default_factory=time.time)
    trial: str = ""
    number: int = 0
    status: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    text: str = ""
    level: Level = "info"
    retry_of: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data, without empty fields."""
        doc: dict[str, Any] = {"event": self.kind, "t": self.t}
        for key in ("trial", "number", "status", "reason", "text", "retry_of"):
            value = getattr(self, key)
            if value:
                doc[key] = value
        if self.params:
            doc["params"] = dict(self.params)
        if self.metrics:
            doc["metrics"] = dict(self.metrics)
        if self.kind == "note":
            doc["level"] = self.level
        return doc


Sink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink that shows nothing (the default where no one watches)."""


def note(text: str, level: Level = "info") -> Event:
    return Event("note", text=text, level=level)


def from_journal(record: Mapping[str, Any]) -> Event | None:
    """The event a local journal record stands for (None for bookkeeping records)."""
    kind = record.get("event")
    t = record.get("t")
    when = float(t) if isinstance(t, int | float) and not isinstance(t, bool) else time.time()
    if kind == "trial_started":
        return Event(
            "trial_started",
            t=when,
            trial=str(record.get("trial", "")),
            number=int(record.get("number") or 0),
            status=TrialStatus.RUNNING,
            params=record.get("params") or {},
            retry_of=str(record.get("retry_of") or ""),
        )
    if kind == "trial_finished":
        return Event(
            "trial_finished",
            t=when,
            trial=str(record.get("trial", "")),
            number=int(record.get("number") or 0),
            status=str(record.get("status", "")),
            metrics=record.get("metrics") or {},
            reason=str(record.get("reason") or ""),
        )
    if kind == "trial_restarted":
        return Event(
            "note",
            t=when,
            level="warn",
            text=f"warning: {record.get('trial', '')} {record.get('reason', '')}; restarted "
            f"({record.get('attempt')}"
            + (f"/{record['retries']})" if record.get("retries") is not None else ")"),
        )
    if kind == "note":
        level = record.get("level")
        return Event(
            "note",
            t=when,
            text=f"warning: {record.get('text', '')}"
            if level == "warn"
            else str(record.get("text", "")),
            level="warn" if level == "warn" else "error" if level == "error" else "info",
        )
    if kind == "experiment" and record.get("status") not in (None, ExperimentStatus.RUNNING):
        return Event(
            "experiment_ended",
            t=when,
            status=str(record["status"]),
            reason=str(record.get("reason") or ""),
        )
    return None


def journal_sink(sink: Sink) -> Callable[[Mapping[str, Any]], None]:
    """Adapt an event sink to the coordinator's journal-record reports."""

    def report(record: Mapping[str, Any]) -> None:
        event = from_journal(record)
        if event is not None:
            sink(event)

    return report


def narration_sink(sink: Sink) -> Callable[[str, str], None]:
    """Adapt an event sink to `(level, text)` narration (the build and submit steps)."""

    levels: dict[str, Level] = {"warn": "warn", "error": "error"}

    def report(level: str, text: str) -> None:
        if level == "progress":
            sink(Event("progress", text=text))
        else:
            sink(Event("note", text=text, level=levels.get(level, "info")))

    return report
