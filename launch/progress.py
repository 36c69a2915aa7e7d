"""The one renderer of a sweep's events on stderr: a live view on a terminal, timestamped lines
otherwise (a pipe, a file, NO_COLOR), or JSON lines on stdout with `--json`.

Both backends produce `launch.events.Event`s, so a local sweep, a cluster sweep and a `watch`
that replays a journal look the same: each line carries the time of its event (a replay shows
when things happened, not when they were replayed), parameters in the spec's order (the journal
stores them with sorted keys) and the objective first among the metrics.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TextIO

from rich.live import Live
from rich.text import Text

from launch.events import Event, ExperimentStatus, TrialStatus, from_journal
from launch.terminal import Console


def _params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in params.items())


def in_order(values: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """`values` with the keys named in `order` first, in that order, then the others as given."""
    first = {k: values[k] for k in order if k in values}
    return {**first, **{k: v for k, v in values.items() if k not in first}}


def status_words(status: str) -> str:
    """`MetricsUnavailable` -> `metrics unavailable`, `Running` -> `running` (for counts)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", status).lower()


def param_order(spec: Any) -> list[str]:
    """A spec's order of trial values (parameters, then the seed axis), for progress lines."""
    order = [p.name for p in spec.parameters]
    return [*order, *(k for k in spec.fixed if k not in order)]


def _as_event(event: Event | Mapping[str, Any]) -> Event | None:
    """An event as given, or the one a journal record stands for (None: bookkeeping)."""
    return event if isinstance(event, Event) else from_journal(event)


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Shows events as they come (call it with each); call `close()` at the end.

    Also accepts the local journal's records (dicts), for callers that replay a journal."""

    STYLES: ClassVar[dict[str, str]] = {"warn": "yellow", "error": "red"}

    def __init__(
        self,
        *,
        experiment: str,
        objective: str,
        minimize: bool,
        total: int,
        quiet: bool = False,
        param_order: Sequence[str] = (),
    ) -> None:
        self.experiment = experiment
        self.param_order = tuple(param_order)
        self.objective = objective
        self.minimize = minimize
        self.total = total
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)
        self.plain = not self.console.is_terminal or "NO_COLOR" in os.environ
        self.running: dict[str, tuple[float, dict[str, Any]]] = {}
        self.numbers: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.best: tuple[float, str] | None = None
        self.waiting = ""  # the latest `progress` event's text (a build's state)
        self.started = time.time()
        self.live: Live | None = None
        if not self.plain and not quiet:
            self.live = Live(
                self._status(), console=self.console, refresh_per_second=4, transient=True
            )
            self.live.start()

    def _line(self, text: str, style: str = "", t: float | None = None) -> None:
        if self.quiet:
            return
        if self.plain:
            when = _clock(time.time() if t is None else t)
            self.console.print(f"{when} {text}", markup=False, soft_wrap=True)
        else:
            self.console.print(Text(text, style=style), soft_wrap=True)

    def _status(self) -> Text:
        if self.waiting and not self.running and not self.counts:
            return Text(self.waiting, style="bold")
        finished = sum(self.counts.values())
        parts = [
            f"{self.experiment}: {len(self.running)} running",
            f"{finished}/{self.total} finished",
        ]
        parts += [f"{n} {status_words(s)}" for s, n in sorted(self.counts.items())]
        if self.best is not None:
            parts.append(f"best {self.objective}={self.best[0]:.6g} ({self.best[1]})")
        parts.append(f"{int(time.time() - self.started)}s")
        text = Text(" · ".join(parts), style="bold")
        now = time.time()
        for name, (start, params) in list(self.running.items())[:8]:
            text.append(
                f"\n  {name} running {int(now - start)}s  {_params_text(params)}", style="dim"
            )
        return text

    def __call__(self, given: Event | Mapping[str, Any]) -> None:
        event = _as_event(given)
        if event is None:
            return
        if event.kind == "trial_started":
            self._started(event)
        elif event.kind == "trial_finished":
            self._finished(event)
        elif event.kind == "trial_state":
            self._line(f"{event.trial} {event.status}  {_params_text(event.params)}", t=event.t)
        elif event.kind == "trial_pending":
            self._line(f"{event.trial} pending: {event.reason}", "yellow", event.t)
        elif event.kind == "progress":
            if self.plain and event.text.split(" (")[0] != self.waiting.split(" (")[0]:
                # Elapsed seconds change every time: a line only when the state word changes.
                self._line(event.text, t=event.t)
            self.waiting = event.text
        elif event.kind == "note":
            self._line(event.text, self.STYLES.get(event.level, ""), event.t)
        elif event.kind == "experiment_ended":
            self._ended(event)
        if self.live is not None:
            self.live.update(self._status())

    def _started(self, event: Event) -> None:
        params = in_order(event.params, self.param_order)
        self.running[event.trial] = (event.t, params)
        self.numbers[event.trial] = event.number
        retry = f" (again, for {event.retry_of})" if event.retry_of else ""
        if self.plain:
            self._line(f"{event.trial} started{retry}  {_params_text(params)}", t=event.t)

    def _finished(self, event: Event) -> None:
        start, _ = self.running.pop(event.trial, (None, {}))
        status = event.status
        self.counts[status] = self.counts.get(status, 0) + 1
        took = f" in {event.t - start:.1f}s" if start is not None else ""
        metrics = in_order(event.metrics, (self.objective,))
        value = metrics.get(self.objective)
        number = event.number or self.numbers.get(event.trial, 0)
        if (
            status == TrialStatus.SUCCEEDED
            and value is not None
            and (
                self.best is None
                or (value < self.best[0] if self.minimize else value > self.best[0])
            )
        ):
            self.best = (value, f"trial {number}")
        shown = "  " + " ".join(f"{k}={v:.6g}" for k, v in metrics.items()) if metrics else ""
        if status == TrialStatus.SUCCEEDED:
            self._line(f"{event.trial} Succeeded{took}{shown}", "green", event.t)
            return
        reason = f": {event.reason}" if event.reason else ""
        killed = status == TrialStatus.KILLED
        logs = "" if killed else f"  (launch logs {self.experiment} --trial {number})"
        self._line(
            f"{event.trial} {status}{took}{reason}{logs}", "yellow" if killed else "red", event.t
        )

    def _ended(self, event: Event) -> None:
        best = f"; best {self.objective}={self.best[0]:.6g} ({self.best[1]})" if self.best else ""
        self.close()
        ok = event.status == ExperimentStatus.SUCCEEDED
        reason = f": {event.reason}" if event.reason else ""
        self._line(
            f"experiment {self.experiment} {event.status}{reason}{best}",
            "bold green" if ok else "bold red",
            event.t,
        )

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class JsonLines:
    """`--json`: each event as one JSON object per line on stdout, for scripts."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, given: Event | Mapping[str, Any]) -> None:
        event = _as_event(given)
        if event is None:
            return
        self.out.write(json.dumps(event.as_dict(), default=str) + "\n")
        self.out.flush()

    def close(self) -> None:
        return None
