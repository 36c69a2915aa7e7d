"""One results schema for both backends: `Trial` rows, and their table / CSV / JSON forms.

Pure (no I/O): backends turn their records into rows; the CLI prints what these functions return.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from launch.contract import ParamValue
from launch.events import TrialStatus


@dataclass(frozen=True)
class Trial:
    """One trial, whichever backend ran it."""

    name: str
    number: int
    params: Mapping[str, ParamValue]
    status: (
        str  # Katib's trial conditions: Running, Succeeded, Failed, MetricsUnavailable, Killed, ...
    )
    objective: float | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    start: float | None = None  # epoch seconds
    end: float | None = None
    reason: str = ""
    exit_code: int | None = None
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None
    # hyperband: the resource value the trial got (`num_epochs=3`); trials are ranked within it.
    resource: str = ""
    # cluster: pods the cluster ended (preempted, evicted, node lost) and the Job replaced.
    restarts: int = 0
    # cluster: GPU-hours the trial's pods held, lost attempts included (None: not known).
    gpu_hours: float | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start


def from_local(record: Any, objective_name: str, *, gpus: int = 0) -> Trial:
    """A row from the local backend's journal record (`state.TrialRecord`); with `gpus` per
    trial, its GPU-hours (first start to end: restarted attempts included)."""
    hours = None
    if gpus and record.start is not None and record.end is not None:
        hours = round(gpus * max(0.0, record.end - record.start) / 3600, 6)
    return Trial(
        name=record.name,
        number=record.number,
        params=dict(record.params),
        status=record.status,
        objective=record.metrics.get(objective_name),
        metrics=dict(record.metrics),
        start=record.start,
        end=record.end,
        reason=record.reason,
        exit_code=record.exit_code,
        restarts=int(getattr(record, "restarts", 0) or 0),
        gpu_hours=hours,
    )


def rank(trials: Iterable[Trial], *, minimize: bool) -> list[Trial]:
    """Trials with an objective first, best first; then the rest by number.

    Hyperband trials are grouped by their resource value, the largest first (an objective after
    9 epochs is not comparable with one after 1), and ranked within each group.
    """
    rows = list(trials)
    if not any(t.resource for t in rows):
        return _rank_flat(rows, minimize=minimize)
    groups: dict[str, list[Trial]] = {}
    for t in rows:
        groups.setdefault(t.resource, []).append(t)
    order = sorted(groups, key=_resource_key, reverse=True)
    return [t for key in order for t in _rank_flat(groups[key], minimize=minimize)]


def _rank_flat(rows: list[Trial], *, minimize: bool) -> list[Trial]:
    sign = 1.0 if minimize else -1.0
    scored = sorted(
        (t for t in rows if t.objective is not None), key=lambda t: sign * (t.objective or 0.0)
    )
    rest = sorted((t for t in rows if t.objective is None), key=lambda t: t.number)
    return scored + rest


def _resource_key(label: str) -> tuple[int, float, str]:
    """Sort key of a resource label: its number (`num_epochs=9` above `num_epochs=3`); a label
    without one (no resource) below every number."""
    try:
        return (1, float(label.rpartition("=")[2]), label)
    except ValueError:
        return (0, -math.inf, label)


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def format_number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.6g}"


def param_names(trials: Sequence[Trial]) -> list[str]:
    names: list[str] = []
    for trial in trials:
        names.extend(n for n in trial.params if n not in names)
    return names


def metric_names(trials: Sequence[Trial], objective_name: str) -> list[str]:
    names: list[str] = []
    for trial in trials:
        names.extend(n for n in trial.metrics if n != objective_name and n not in names)
    return names


def _param_text(value: ParamValue | None, *, precise: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not precise:
        return format_number(value)
    return str(value)


def _metric_text(value: float | None, *, precise: bool) -> str:
    # CSV keeps every digit (repr round-trips); the table shows 6 significant ones.
    if value is None:
        return ""
    return repr(value) if precise else format_number(value)


def to_rows(
    trials: Sequence[Trial], objective_name: str, *, precise: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows, shared by the CSV form and the table (precise=False: short
    numbers, and no `start` column: the table is for reading)."""
    params, metrics = param_names(trials), metric_names(trials, objective_name)
    grouped = any(t.resource for t in trials)  # hyperband: the resource value of each trial
    restarted = any(t.restarts for t in trials)
    gpu = any(t.gpu_hours is not None for t in trials)
    header = ["trial", "status", *(["resource"] if grouped else [])]
    header += [objective_name, *metrics, *params, "duration_s"]
    header += [*(["restarts"] if restarted else []), *(["gpu_hours"] if gpu else [])]
    header += ["start", "mlflow_run", "reason"] if precise else ["mlflow_run", "reason"]
    rows = []
    for t in trials:
        duration = t.duration_s
        row = [
            str(t.number),
            t.status,
            *([t.resource] if grouped else []),
            _metric_text(t.objective, precise=precise),
            *(_metric_text(t.metrics.get(m), precise=precise) for m in metrics),
            *(_param_text(t.params.get(p), precise=precise) for p in params),
            "" if duration is None else f"{duration:.1f}",
        ]
        if restarted:
            row.append(str(t.restarts))
        if gpu:
            row.append("" if t.gpu_hours is None else f"{t.gpu_hours:.{4 if precise else 2}f}")
        if precise:
            row.append(_iso(t.start))
        row.append(t.mlflow_url or t.mlflow_run_id or "")
        row.append(
            t.reason if t.status != TrialStatus.SUCCEEDED else ""
        )  # why it failed, in a word
        rows.append(row)
    return header, rows


def to_csv(trials: Sequence[Trial], objective_name: str) -> str:
    header, rows = to_rows(trials, objective_name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def json_lines_array(items: Iterable[Any]) -> str:
    """A JSON array with one item per line: readable, greppable, and encoded by json's C
    encoder (`indent=` switches to the pure-Python one, 3x slower on 10k trials)."""
    body = ",\n".join(json.dumps(item) for item in items)
    return f"[\n{body}\n]" if body else "[]"


_OPTIONAL = ("resource", "restarts", "gpu_hours")  # only when set, so old readers see no change
_NAMES = [f.name for f in fields(Trial) if f.name not in _OPTIONAL]


def trial_dict(t: Trial) -> dict[str, Any]:
    """One row as JSON data (`to_json`'s items)."""
    # Field by field: dataclasses.asdict deep-copies recursively and dominates at 10k trials.
    return {
        **{n: getattr(t, n) for n in _NAMES},
        "params": dict(t.params),
        "metrics": dict(t.metrics),
        **({"resource": t.resource} if t.resource else {}),  # hyperband only
        # cluster rows (GPU-hours known) say their restarts even when 0
        **({"restarts": t.restarts} if t.restarts or t.gpu_hours is not None else {}),
        **({"gpu_hours": t.gpu_hours} if t.gpu_hours is not None else {}),
    }


def to_json(trials: Sequence[Trial]) -> str:
    return json_lines_array(trial_dict(t) for t in trials)


def from_json(text: str) -> list[Trial]:
    return [Trial(**item) for item in json.loads(text)]


# --------------------------------------------------------------------------- export / import

EXPORT_FORMAT = "launch-results/1"  # `launch results EXP --format export`; `launch import FILE`
# What an export keeps of the experiment's record, besides its trials.
EXPORT_KEYS = ("name", "backend", "spec", "seed_flag", "command", "commit", "study", "created")


def to_export(meta: Mapping[str, Any], spec: Mapping[str, Any], trials: Sequence[Trial]) -> str:
    """One self-contained JSON document: the experiment's spec and record, and every trial row,
    so results, compare and `launch seeds` work from it without the cluster (`from_export`)."""
    doc = {k: meta.get(k) for k in EXPORT_KEYS if meta.get(k) is not None}
    doc.update({"format": EXPORT_FORMAT, "spec": dict(spec)})
    doc["backend"] = meta.get("ran_on") or meta.get("backend") or "local"
    head = json.dumps(doc)[:-1]
    return head + ', "trials": ' + json_lines_array(trial_dict(t) for t in trials) + "}"


def from_export(text: str) -> tuple[dict[str, Any], list[Trial]]:
    """(the record, the rows) of a `to_export` document; ValueError (with what is wrong) for
    anything else."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not a `launch results --format export` document ({EXPORT_FORMAT})")
    if not isinstance(doc.get("spec"), dict) or not isinstance(doc.get("trials"), list):
        raise ValueError("the document lacks `spec` or `trials`")
    rows = [Trial(**item) for item in doc.pop("trials")]
    return doc, rows
