"""What both backends compute the same way from trial rows: counts, the best trial, and the
MLflow run link of each trial."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from launch.results import Trial


def count_statuses(rows: Sequence[Trial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def best_doc(best: Trial | None) -> dict[str, Any] | None:
    if best is None:
        return None
    return {"trial": best.name, "objective": best.objective, "params": dict(best.params)}


def usage_doc(rows: Sequence[Trial]) -> dict[str, Any]:
    """Restarts (trials lost to the infrastructure and run again) and GPU-hours (every attempt,
    the lost ones too), summed over the experiment: `--json` keys of `status`."""
    hours = [r.gpu_hours for r in rows if r.gpu_hours is not None]
    return {
        "restarts": sum(r.restarts for r in rows),
        "gpuHours": round(sum(hours), 4) if hours else None,
    }


def usage_lines(rows: Sequence[Trial]) -> list[str]:
    """`status`'s line about restarts and GPU-hours, when there is something to say."""
    doc = usage_doc(rows)
    parts = []
    if doc["restarts"]:
        restarted = sum(1 for r in rows if r.restarts)
        parts.append(f"restarts: {doc['restarts']} ({restarted} trial(s))")
    if doc["gpuHours"] is not None:
        parts.append(f"GPU-hours: {doc['gpuHours']:.2f} (lost attempts included)")
    return [" · ".join(parts)] if parts else []


def with_mlflow_links(
    experiment: str, rows: list[Trial], *, uri: str, ui_base: str | None
) -> tuple[list[Trial], str | None]:
    """Each trial's MLflow run link, found by its `katib.trial` tag in one search request, and
    what to tell the user when the store could not say. Never fatal."""
    from launch import tracking

    found = tracking.find_runs(
        uri, experiment, [r.name for r in rows], katib_experiment=experiment, ui_base=ui_base
    )
    if found.warning:
        note: str | None = f"warning: {found.warning}"
    else:
        note = str(found.hint) if found and found.hint else None
    linked = [
        dataclasses.replace(r, mlflow_run_id=found[r.name].run_id, mlflow_url=found[r.name].url)
        if r.name in found
        else r
        for r in rows
    ]
    return linked, note
