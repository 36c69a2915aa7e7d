"""The commands about experiments that exist: list, status, watch, logs, cancel."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from launch.cli.follow import follow_and_finish
from launch.cli.options import ExpArg, JsonOpt, QuietOpt
from launch.cli.root import app, guard, open_experiment, stderr, stdout, warn


@app.command("list", help="List experiments (local ones in .launch/).")
@guard
def list_cmd(as_json: JsonOpt = False) -> None:
    from launch import config, state
    from launch.progress import status_words

    home = state.home_dir(config.load_settings().home)
    # One broken experiment is a row saying why, never the end of the list.
    rows = state.summaries(home)
    items = [row.as_dict() for row in rows]
    for row in rows:
        if row.problem:
            warn(f"{row.name}: {row.problem}", row.hint)
        else:
            warn(state.problems_warning(row.name, row.warnings))
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    if not items:
        stderr().print(f"no experiments in {state.experiments_dir(home)}", highlight=False)
        return
    from rich.table import Table

    table = Table("name", "backend", "status", "trials", box=None)
    for item in items:
        trials = ", ".join(f"{n} {status_words(s)}" for s, n in sorted(item["trials"].items()))
        table.add_row(
            item["name"], item["backend"], item["status"], trials or item["problem"] or ""
        )
    stdout().print(table)


@app.command("status", help="Show an experiment's state, trial counts and best trial.")
@guard
def status_cmd(experiment: ExpArg, as_json: JsonOpt = False) -> None:
    from launch.progress import status_words

    exp, backend = open_experiment(experiment)
    report = backend.status(exp)
    if as_json:
        sys.stdout.write(json.dumps(report.doc, indent=2) + "\n")
        return
    out = stdout()
    out.print(
        f"{report.title}: {report.status}" + (f" ({report.reason})" if report.reason else ""),
        highlight=False,
    )
    counted = ", ".join(f"{n} {status_words(s)}" for s, n in sorted(report.counts.items()))
    of = f" of {report.max_trials}" if report.max_trials is not None else ""
    out.print(f"trials: {counted or 'none yet'}{of}", highlight=False)
    if report.best is not None:
        params = " ".join(f"{k}={v}" for k, v in report.best.params.items())
        out.print(
            f"best: {report.best.name} {report.objective}={report.best.objective:.6g}  {params}",
            highlight=False,
        )
    for trial_name, why in report.pending.items():
        number = report.numbers.get(trial_name, 0)
        out.print(f"trial {number} ({trial_name}) pending: {why}", highlight=False)
    for line in report.footer:
        out.print(line, highlight=False)


@app.command("watch", help="Follow an experiment until it ends; resumes an interrupted local one.")
@guard
def watch_cmd(
    experiment: ExpArg,
    quiet: QuietOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Events as JSON lines on stdout (no results table).")
    ] = False,
) -> None:
    exp, backend = open_experiment(experiment)
    follow_and_finish(backend, exp, quiet=quiet, until="all", as_json=as_json)


@app.command(
    "logs", help="Print a trial's output (stdout and stderr); the latest trial by default."
)
@guard
def logs_cmd(
    experiment: ExpArg,
    trial: Annotated[
        int | None, typer.Option("--trial", "-t", help="Trial number (see `launch results`).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the trial ends.")
    ] = False,
    rank: Annotated[
        int | None,
        typer.Option("--rank", min=0, help="A multi-node trial's node (0 by default: rank 0)."),
    ] = None,
) -> None:
    exp, backend = open_experiment(experiment)
    backend.logs(
        exp, trial, follow=follow, out=sys.stdout.buffer,
        say=lambda text: stderr().print(text, highlight=False), rank=rank,
    )  # fmt: skip


@app.command("cancel", help="Stop an experiment: running trials are stopped, results are kept.")
@guard
def cancel_cmd(experiment: ExpArg) -> None:
    exp, backend = open_experiment(experiment)
    stderr().print(backend.cancel(exp), highlight=False)
