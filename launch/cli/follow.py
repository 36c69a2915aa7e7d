"""Following an experiment for `run` and `watch`: the backend reports events, one renderer
shows them, and how the following stopped becomes the exit code."""

from __future__ import annotations

import contextlib
from typing import Any

import typer

from launch.cli.root import discard_output, stderr
from launch.errors import ExitCode
from launch.events import ExperimentStatus


def event_sink(request: Any, *, quiet: bool) -> Any:
    """The renderer for a launch's own steps (building, submitting), before trials exist."""
    from launch.progress import Progress

    return Progress(
        experiment=request.name or "launch", objective="", minimize=True, total=0, quiet=quiet,
        param_order=(),
    )  # fmt: skip


def renderer(exp: Any, backend: Any, *, quiet: bool, as_json: bool = False) -> Any:
    from launch.progress import JsonLines, Progress, param_order

    if as_json:
        return JsonLines()
    from launch import spec as spec_module

    spec = _spec_of(exp)
    counts = spec_module.resolve_counts(spec)
    return Progress(
        experiment=exp.name, objective=spec.objective.objectiveMetricName,
        minimize=spec.objective.type == "minimize",
        total=int(exp.meta().get("max_trials") or counts.max_trials), quiet=quiet,
        param_order=param_order(spec),
    )  # fmt: skip


def _spec_of(exp: Any) -> Any:
    from launch.spec import LaunchSpec

    return LaunchSpec.model_validate(exp.meta()["spec"])


def follow_and_finish(
    backend: Any, exp: Any, *, quiet: bool, until: str = "all", timeout_s: float | None = None,
    results: bool = True, as_json: bool = False,
) -> None:  # fmt: skip
    """Follow `exp` until it ends (or `until`), print its results when `results`, and exit
    with the code that says how it ended."""
    show = renderer(exp, backend, quiet=quiet, as_json=as_json)
    try:
        ending = backend.follow(exp, show, until=until, timeout_s=timeout_s)
    finally:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr ends narration only
            show.close()
    name = exp.name
    if ending.kind == "already-ended":
        stderr().print(f"{name} already ended: {ending.status} ({ending.reason})", highlight=False)
    if ending.kind == "detached":
        stderr().print(
            f"detached; {name} keeps running. Follow it with: launch watch {name}", highlight=False
        )
        raise typer.Exit(int(ExitCode.DETACHED))
    if ending.kind == "first-succeeded":
        stderr().print(
            f"a first trial of {name} succeeded; the sweep goes on. Results: launch results {name}",
            highlight=False,
        )
        return
    if results and not as_json:
        from launch.cli.results import print_results

        try:
            print_results(exp, backend, fmt="table")
        except BrokenPipeError:  # the exit code still tells how the sweep ended
            discard_output()
    if ending.kind == "timed-out":
        stderr().print(
            f"timed out (--timeout); running trials were stopped. Resume with: launch watch {name}",
            highlight=False,
        )
        raise typer.Exit(int(ExitCode.TIMED_OUT))
    if ending.kind == "interrupted":
        stderr().print(f"interrupted; resume with: launch watch {name}", highlight=False)
        raise typer.Exit(int(ExitCode.DETACHED))
    if ending.kind == "already-ended":
        return
    if ending.status == ExperimentStatus.CANCELLED:  # by `launch cancel` from another shell
        stderr().print(f"{name} was cancelled (launch cancel)", highlight=False)
        raise typer.Exit(int(ExitCode.CANCELLED))
    if ending.status == ExperimentStatus.FAILED:
        raise typer.Exit(int(ExitCode.TRIAL_FAILED))
