"""Imported results (`launch import FILE`): an experiment whose trials are a saved export
(`launch results EXP --format export`), read-only. Results, compare and `launch seeds` work from
it without the cluster or the machine it ran on; anything that would touch trials says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn

from launch import state
from launch.backends.base import (
    Confirm,
    Created,
    Ending,
    LaunchRequest,
    Preview,
    Rerun,
    StatusReport,
    Until,
)
from launch.backends.links import best_doc, count_statuses
from launch.errors import UsageError
from launch.events import Sink
from launch.results import Trial
from launch.spec import LaunchSpec

RESULTS = "results.json"
STATUS = "Imported"


def _read_only(exp: state.Experiment, what: str) -> NoReturn:
    meta = exp.meta()
    raise UsageError(
        f"{exp.name} was imported from {meta.get('imported_from', 'a file')}: its trials cannot "
        f"be {what} here",
        hint=f"its results: `launch results {exp.name}`; rerun configs with "
        f"`launch seeds {exp.name} --top K --seeds N`",
    )


def import_export(
    home: Path, text: str, *, name: str | None, origin: str
) -> tuple[state.Experiment, str, int]:
    """Make a read-only experiment of an export (`results.to_export`): (it, the exported name,
    the number of trials). UsageError for a document that is not one, or a name in use."""
    import time

    from launch import names, private, results

    try:
        record, rows = results.from_export(text)
        LaunchSpec.model_validate(record["spec"])
    except (ValueError, TypeError, KeyError) as err:
        raise UsageError(
            f"{origin}: not a launch results export ({str(err).splitlines()[0][:200]})",
            hint="write one with `launch results EXP --format export > FILE`",
        ) from None
    exported = str(record.get("name") or "")
    target = name or exported
    names.validate_experiment_name(target)
    meta = {
        **{k: v for k, v in record.items() if k != "format"},
        "name": target, "backend": ArchiveBackend.name,
        "ran_on": record.get("backend") or "local", "imported_from": origin,
        "imported": time.time(),
    }  # fmt: skip
    exp = state.Experiment.create(home, target, meta)
    private.write_atomic(exp.path / RESULTS, (results.to_json(rows) + "\n").encode())
    return exp, exported, len(rows)


class ArchiveBackend:
    name = "archive"
    runs_here = True

    def caveats(self, request: LaunchRequest) -> list[str]:
        return []

    def preview(self, request: LaunchRequest) -> Preview:
        raise UsageError("imported experiments cannot be launched", hint="use --backend local")

    def create(
        self, request: LaunchRequest, *, confirm: Confirm | None = None, sink: Sink | None = None
    ) -> Created | None:
        raise UsageError("imported experiments cannot be launched", hint="use --backend local")

    def follow(
        self, exp: state.Experiment, sink: Sink, *, until: Until = "all",
        timeout_s: float | None = None,
    ) -> Ending:  # fmt: skip
        return Ending("already-ended", STATUS, f"imported from {exp.meta().get('imported_from')}")

    def trials(self, exp: state.Experiment) -> tuple[LaunchSpec, list[Trial]]:
        from launch import results

        meta = exp.meta()
        spec = LaunchSpec.model_validate(meta["spec"])
        rows = results.from_json((exp.path / RESULTS).read_text())
        return spec, results.rank(rows, minimize=spec.objective.type == "minimize")

    def links(self, exp: state.Experiment, rows: list[Trial]) -> tuple[list[Trial], str | None]:
        return rows, None  # the MLflow links, if any, were saved with the rows

    def status(self, exp: state.Experiment) -> StatusReport:
        spec, rows = self.trials(exp)
        meta = exp.meta()
        counts = count_statuses(rows)
        best = next((r for r in rows if r.objective is not None), None)
        reason = f"imported from {meta.get('imported_from')} (ran on {meta.get('ran_on')})"
        return StatusReport(
            name=exp.name, status=STATUS, reason=reason, counts=counts, best=best,
            objective=spec.objective.objectiveMetricName, title=exp.name,
            doc={"name": exp.name, "backend": self.name, "status": STATUS, "reason": reason,
                 "trials": counts, "best": best_doc(best)},
        )  # fmt: skip

    def logs(
        self, exp: state.Experiment, trial: int | None, *, follow: bool, out: IO[bytes],
        say: Callable[[str], None], rank: int | None = None,
    ) -> None:  # fmt: skip
        _read_only(exp, "logged (no logs were exported)")

    def cancel(self, exp: state.Experiment) -> str:
        return f"{exp.name} is imported: nothing runs; remove it with: rm -r {exp.path}"

    def rerun(self, exp: state.Experiment, row: Trial) -> Rerun:
        _read_only(exp, "rerun one by one")

    def problems(self, exp: state.Experiment) -> str | None:
        return None
