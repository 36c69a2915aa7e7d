"""Progress on stderr from journal events: a live line on a terminal, timestamped lines otherwise.

Both the coordinator and `launch watch` feed it the same events, so the view is the same: each
line carries the time of its event (a `watch` that replays the journal shows when things
happened, not when they were replayed), parameters in the spec's order (the journal stores them
with sorted keys) and the objective first among the metrics.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.live import Live
from rich.text import Text

from launch.terminal import Console


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in params.items())


def in_order(values: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """`values` with the keys named in `order` first, in that order, then the others as given."""
    first = {k: values[k] for k in order if k in values}
    return {**first, **{k: v for k, v in values.items() if k not in first}}


def status_words(status: str) -> str:
    """`MetricsUnavailable` -> `metrics unavailable`, `Running` -> `running` (for counts)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", status).lower()


def _clock(t: Any) -> str:
    """HH:MM:SS of an event's time (`t`, epoch seconds), or of now when it has none."""
    when = t if isinstance(t, int | float) and not isinstance(t, bool) else time.time()
    return time.strftime("%H:%M:%S", time.localtime(when))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """Consumes journal events (dicts) and shows them; call `close()` at the end."""

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
        self.started = time.time()
        self.live: Live | None = None
        if not self.plain and not quiet:
            self.live = Live(
                self._status(), console=self.console, refresh_per_second=4, transient=True
            )
            self.live.start()

    def _line(self, text: str, style: str = "", t: Any = None) -> None:
        if self.quiet:
            return
        if self.plain:
            self.console.print(f"{_clock(t)} {text}", markup=False, soft_wrap=True)
        else:
            self.console.print(Text(text, style=style), soft_wrap=True)

    def _status(self) -> Text:
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

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        t = event.get("t")
        if kind == "trial_started":
            params = in_order(event.get("params") or {}, self.param_order)
            self.running[event["trial"]] = (event.get("t", time.time()), params)
            self.numbers[event["trial"]] = event.get("number", 0)
            retry = f" (again, for {event['retry_of']})" if event.get("retry_of") else ""
            if self.plain:
                self._line(f"{event['trial']} started{retry}  {_params_text(params)}", t=t)
        elif kind == "trial_finished":
            start, _ = self.running.pop(event["trial"], (event.get("t", time.time()), {}))
            status = event["status"]
            self.counts[status] = self.counts.get(status, 0) + 1
            took = f" in {event.get('t', time.time()) - start:.1f}s"
            metrics = in_order(event.get("metrics") or {}, (self.objective,))
            value = metrics.get(self.objective)
            if (
                status == "Succeeded"
                and value is not None
                and (
                    self.best is None
                    or (value < self.best[0] if self.minimize else value > self.best[0])
                )
            ):
                self.best = (value, f"trial {self.numbers.get(event['trial'], 0)}")
            shown = "  " + " ".join(f"{k}={v:.6g}" for k, v in metrics.items()) if metrics else ""
            if status == "Succeeded":
                self._line(f"{event['trial']} Succeeded{took}{shown}", "green", t)
            else:
                number = self.numbers.get(event["trial"], 0)
                reason = f": {event['reason']}" if event.get("reason") else ""
                logs = (
                    f"  (launch logs {self.experiment} --trial {number})"
                    if status != "Killed"
                    else ""
                )
                self._line(
                    f"{event['trial']} {status}{took}{reason}{logs}",
                    "red" if status != "Killed" else "yellow",
                    t,
                )
        elif kind == "experiment" and event.get("status") != "Running":
            best = (
                f"; best {self.objective}={self.best[0]:.6g} ({self.best[1]})" if self.best else ""
            )
            self.close()
            style = "bold green" if event["status"] == "Succeeded" else "bold red"
            self._line(
                f"experiment {self.experiment} {event['status']}: {event.get('reason', '')}{best}",
                style,
                t,
            )
        if self.live is not None:
            self.live.update(self._status())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class Narrator:
    """The cluster backend's narration: `(level, text)` lines on stderr; `progress` lines update
    one live status line on a terminal and are printed only when their text changes otherwise."""

    STYLES: ClassVar[dict[str, str]] = {"trial": "green", "warn": "yellow", "error": "red"}

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)
        self.plain = not self.console.is_terminal or "NO_COLOR" in os.environ
        self.status: Any = None
        self.last_progress = ""

    def __call__(self, level: str, text: str) -> None:
        if self.quiet and level != "error":
            return
        if level == "progress":
            if self.plain:
                # Elapsed seconds change every line: print only when the state word changes.
                key = text.split(" (")[0]
                if key != self.last_progress:
                    self.last_progress = key
                    self.console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False)
            elif self.status is None:
                self.status = self.console.status(text)
                self.status.start()
            else:
                self.status.update(text)
            return
        self.close()
        if self.plain:
            self.console.print(f"{time.strftime('%H:%M:%S')} {text}", markup=False, soft_wrap=True)
        else:
            self.console.print(Text(text, style=self.STYLES.get(level, "")), soft_wrap=True)

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
