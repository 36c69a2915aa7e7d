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
    if spec.configs is not None or stats.has_seed_axis(rows, seed_flag):
        groups = stats.group_by_config(
            rows, minimize=spec.objective.type == "minimize", seed_flag=seed_flag,
            objective_name=spec.objective.objectiveMetricName,
        )  # fmt: skip
        _print_groups(exp, groups, n_trials=len(rows), fmt=fmt, spec=spec)
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


def _print_groups(
    exp: Any, groups: list[Any], *, n_trials: int, fmt: str, spec: Any = None
) -> None:
    """A seed sweep's distribution per config, as a table, CSV or JSON; a seed study's configs
    carry their number (`config`: their rank in the search, as `launch compare STUDY:N` names
    them)."""
    from launch import stats, tables

    numbers = _study_numbers(exp, groups, spec)
    if fmt == "json":
        extra = None if numbers is None else [{"config": n} for n in numbers]
        sys.stdout.write(stats.to_json(groups, extra=extra) + "\n")
        return
    header, text_rows = tables.to_rows(groups) if fmt == "csv" else tables.to_table_rows(groups)
    if numbers is not None:
        header = [header[0], "config", *header[1:]]
        text_rows = [[r[0], str(n or ""), *r[1:]] for r, n in zip(text_rows, numbers, strict=True)]
    if fmt == "csv":
        sys.stdout.write(tables.rows_csv(header, text_rows))
        return
    study = exp.meta().get("study") if numbers is not None else None
    if isinstance(study, dict):
        stderr().print(
            f"{exp.name}: seed study of {study.get('source')}: its {study.get('top')} best configs"
            f" x {len(study.get('seeds') or ())} seeds (config N = rank N in {study.get('source')}"
            f"; compare two: launch compare {exp.name}:1 {exp.name}:2)",
            highlight=False,
        )
    stderr().print(
        f"{exp.name}: {n_trials} trials in {len(groups)} configs, best mean first",
        highlight=False,
    )
    sys.stdout.write(tables.text_table(header, text_rows) + "\n")


def _study_numbers(exp: Any, groups: list[Any], spec: Any) -> list[int | None] | None:
    """Each group's config number in a seed study; None for another experiment."""
    if spec is None or spec.configs is None:
        return None
    from launch import seed_study

    seed_flag = exp.meta().get("seed_flag", "seed")
    return [seed_study.config_number(g.params, spec.configs, seed_flag) for g in groups]


@app.command(
    "results",
    help="Trial results, best first (table, CSV or JSON on stdout). Seed sweeps and seed studies "
    "(`launch seeds`) are grouped by config: n, mean, std, 95% CI, min, median, max (a study's "
    "configs numbered as `launch compare STUDY:N` names them). `--format export` saves "
    "everything for `launch import`.",
)
@guard
def results_cmd(
    experiment: ExpArg,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, csv or json; or export: the spec, the record and every trial as one JSON "
            "document, which `launch import FILE` loads back (results that outlive the cluster).",
        ),
    ] = "table",
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

    if fmt not in ("table", "csv", "json", "export"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table, csv, json or export")
    fmt = "json" if as_json else fmt
    exp, backend = open_experiment(experiment)
    spec, rows = backend.trials(exp)
    if fmt == "export":
        from launch import results

        rows = _linked(exp, backend, rows)
        sys.stdout.write(results.to_export(exp.meta(), spec.model_dump(mode="json"), rows) + "\n")
        return
    if rerun or trial is not None:
        _print_rerun(exp, backend, rows, trial)
        return
    seed_flag = exp.meta().get("seed_flag", "seed")
    minimize = spec.objective.type == "minimize"
    objective = spec.objective.objectiveMetricName
    grouped = not per_trial and (
        plot is not None
        or metric is not None
        or spec.configs is not None
        or stats.has_seed_axis(rows, seed_flag)
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
    _print_groups(exp, groups, n_trials=len(rows), fmt=fmt, spec=spec)


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


@app.command(
    "compare",
    help="Does B beat A? Welch's t-test on the best config of each experiment; `STUDY:N` names "
    "config N of a seed study (`launch compare STUDY:1 STUDY:2`, or `EXP STUDY:1`).",
)
@guard
def compare_cmd(
    experiment_a: Annotated[str, typer.Argument(help="The baseline: EXP, or STUDY:N.")],
    experiment_b: Annotated[str, typer.Argument(help="The candidate: EXP, or STUDY:N.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Compare this metric.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from launch import stats, tables

    name_a, spec, rows_a, seed_flag = _side(experiment_a)
    name_b, _, rows_b, _ = _side(experiment_b)
    comparison, _, _ = stats.compare_trials(
        rows_a, rows_b, minimize=spec.objective.type == "minimize", seed_flag=seed_flag,
        metric=metric, objective_name=spec.objective.objectiveMetricName, name_a=name_a,
        name_b=name_b,
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
            "values (`launch seeds EXP --top K --seeds N`), or wait until more trials finish",
        )
    if not as_json:
        stdout().print(comparison.verdict, highlight=False)


def _side(ref: str) -> tuple[str, Any, list[Any], str]:
    """(label, spec, rows, seed flag) of one side of `compare`: an experiment, or `STUDY:N`."""
    from launch import seed_study

    name, number = seed_study.parse_ref(ref)
    exp, backend = open_experiment(name)
    spec, rows = backend.trials(exp)
    seed_flag = str(exp.meta().get("seed_flag") or "seed")
    if number is None:
        return exp.name, spec, rows, seed_flag
    rows = seed_study.config_trials(rows, spec.configs, number, name=exp.name, seed_flag=seed_flag)
    return f"{exp.name}:{number}", spec, rows, seed_flag


@app.command(
    "import",
    help="Load results saved by `launch results EXP --format export > FILE` as a read-only "
    "experiment: `launch results`, `compare` and `seeds` then work from the file, without the "
    "cluster (a seed study survives the deletion of its Katib Experiments).",
)
@guard
def import_cmd(
    path: Annotated[str, typer.Argument(metavar="FILE", help="The export (JSON); - for stdin.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name it this (default: the exported name).")
    ] = None,
) -> None:
    from pathlib import Path

    from launch import config, state
    from launch.backends import archive

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(
            f"{path}: cannot be read ({err.strerror or err})",
            hint="pass the file `launch results EXP --format export` wrote",
        ) from None
    home = state.home_dir(config.load_settings().home)
    exp, source, count = archive.import_export(home, text, name=name, origin=path)
    stderr().print(
        f"imported {count} trials of {source} as {exp.name}: launch results {exp.name}",
        highlight=False,
    )
