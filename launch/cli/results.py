"""`launch results` and `launch compare`: rows from the backend, tables and plots from the pure
`results`/`stats` modules."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from launch.cli.options import ExpArg, JsonOpt
from launch.cli.root import app, guard, open_experiment, stderr, stdout
from launch.errors import UsageError


def print_results(exp: Any, backend: Any, *, fmt: str) -> None:
    """What `launch results EXP` prints by default: a seed sweep's distribution per config,
    else one row per trial with its MLflow link."""
    from launch import stats

    spec, rows = backend.trials(exp)
    seed_flag = exp.meta().get("seed_flag", "seed")
    if stats.has_seed_axis(rows, seed_flag):
        groups = stats.group_by_config(
            rows, minimize=spec.objective.type == "minimize", seed_flag=seed_flag,
            objective_name=spec.objective.objectiveMetricName,
        )  # fmt: skip
        _print_groups(exp.name, groups, n_trials=len(rows), fmt=fmt)
        return
    _print_rows(exp.name, spec, _linked(exp, backend, rows), fmt=fmt)


def _linked(exp: Any, backend: Any, rows: list[Any]) -> list[Any]:
    rows, note = backend.links(exp, rows)
    if note:
        stderr().print(note, highlight=False)
    return list(rows)


def _print_rows(name: str, spec: Any, rows: list[Any], *, fmt: str) -> None:
    from launch import results, tables

    objective = spec.objective.objectiveMetricName
    if fmt == "json":
        sys.stdout.write(results.to_json(rows) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(results.to_csv(rows, objective))
        return
    header, text_rows = results.to_rows(rows, objective, precise=False)
    # The table is for reading: start times and empty link columns live in --format csv/json.
    keep = [
        i
        for i, h in enumerate(header)
        if h != "start" and (h not in ("mlflow_run", "reason") or any(r[i] for r in text_rows))
    ]
    stderr().print(f"{name}: {len(rows)} trials, best first", highlight=False)
    # A plain aligned table: rich costs ~1 ms a row, too slow for 10k-trial sweeps.
    table = tables.text_table([header[i] for i in keep], [[r[i] for i in keep] for r in text_rows])
    sys.stdout.write(table + "\n")


def _print_groups(name: str, groups: list[Any], *, n_trials: int, fmt: str) -> None:
    """A seed sweep's distribution per config, as a table, CSV or JSON."""
    from launch import stats, tables

    if fmt == "json":
        sys.stdout.write(stats.to_json(groups) + "\n")
    elif fmt == "csv":
        sys.stdout.write(tables.to_csv(groups))
    else:
        header, text_rows = tables.to_table_rows(groups)
        stderr().print(
            f"{name}: {n_trials} trials in {len(groups)} configs, best mean first",
            highlight=False,
        )
        sys.stdout.write(tables.text_table(header, text_rows) + "\n")


@app.command(
    "results",
    help="Trial results, best first (table, CSV or JSON on stdout). Seed sweeps are grouped by "
    "config: n, mean, std, 95% CI, min, median, max.",
)
@guard
def results_cmd(
    experiment: ExpArg,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    as_json: JsonOpt = False,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Summarise this metric instead of the objective.")
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot", help="Draw the distribution per config: FILE.png, or - for the terminal."
        ),
    ] = None,
    per_trial: Annotated[
        bool, typer.Option("--per-trial", help="One row per trial, even for a seed sweep.")
    ] = False,
    trial: Annotated[
        int | None, typer.Option("--trial", "-t", help="With --rerun: the trial number.")
    ] = None,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Print a copy-paste command that reruns --trial N.")
    ] = False,
) -> None:
    from launch import stats

    if fmt not in ("table", "csv", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table, csv or json")
    fmt = "json" if as_json else fmt
    exp, backend = open_experiment(experiment)
    spec, rows = backend.trials(exp)
    if rerun or trial is not None:
        _print_rerun(exp, backend, rows, trial)
        return
    seed_flag = exp.meta().get("seed_flag", "seed")
    minimize = spec.objective.type == "minimize"
    objective = spec.objective.objectiveMetricName
    grouped = not per_trial and (
        plot is not None or metric is not None or stats.has_seed_axis(rows, seed_flag)
    )
    if metric is not None and metric not in spec.objective.metric_names:
        raise UsageError(
            f"{exp.name} has no metric `{metric}`",
            hint="use one of " + ", ".join(spec.objective.metric_names),
        )
    if not grouped:
        _print_rows(exp.name, spec, _linked(exp, backend, rows), fmt=fmt)
        return
    groups = stats.group_by_config(
        rows, minimize=minimize, seed_flag=seed_flag, metric=metric, objective_name=objective
    )
    if plot is not None:
        from launch import plots

        title = f"{exp.name} · {metric or objective} by config, best first"
        if plot == "-":
            color = sys.stdout.isatty() and "NO_COLOR" not in __import__("os").environ
            sys.stdout.write(plots.plot_terminal(groups, objective=metric or objective, title=title,
                                                 minimize=minimize, color=color) + "\n")  # fmt: skip
        else:
            drawn = plots.plot_png(
                groups, plot, objective=metric or objective, title=title, minimize=minimize
            )
            stderr().print(f"wrote {plot} ({drawn} configs)", highlight=False)
        return
    _print_groups(exp.name, groups, n_trials=len(rows), fmt=fmt)


def _print_rerun(exp: Any, backend: Any, rows: list[Any], trial: int | None) -> None:
    if trial is None:
        raise UsageError("--rerun needs the trial", hint="pass --trial N (see `launch results`)")
    row = next((r for r in rows if r.number == trial), None)
    if row is None:
        raise UsageError(
            f"{exp.name} has no trial {trial}", hint="see `launch results " + exp.name + "`"
        )
    rerun = backend.rerun(exp, row)
    if rerun.comment:
        stderr().print(rerun.comment, highlight=False)
    sys.stdout.write(rerun.command + "\n")


@app.command("compare", help="Does experiment B beat A? Welch's t-test on the best config of each.")
@guard
def compare_cmd(
    experiment_a: Annotated[str, typer.Argument(help="The baseline experiment.")],
    experiment_b: Annotated[str, typer.Argument(help="The candidate experiment.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Compare this metric.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from launch import stats, tables

    (exp_a, backend_a), (exp_b, backend_b) = (
        open_experiment(experiment_a),
        open_experiment(experiment_b),
    )
    spec, rows_a = backend_a.trials(exp_a)
    _, rows_b = backend_b.trials(exp_b)
    comparison, _, _ = stats.compare_trials(
        rows_a, rows_b, minimize=spec.objective.type == "minimize",
        seed_flag=exp_a.meta().get("seed_flag", "seed"), metric=metric,
        objective_name=spec.objective.objectiveMetricName, name_a=exp_a.name, name_b=exp_b.name,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(stats.comparison_to_json(comparison) + "\n")
    else:
        header, text_rows = tables.comparison_rows(comparison)
        sys.stdout.write(tables.text_table(header, text_rows) + "\n")
    if comparison.p is None:  # refused: too few finished trials for a t-test
        raise UsageError(
            comparison.verdict,
            hint="run each experiment with --seeds N (N >= 2) so its best config has several "
            "values, or wait until more trials finish",
        )
    if not as_json:
        stdout().print(comparison.verdict, highlight=False)
