"""The backend interface, asked directly: a local sweep reports one event stream (the events the
CLI renders and `watch --json` prints), its status and trials come back typed, and trial pod
options from a settings file are refused naming the file and key, not a flag."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from launch import backends, config, git, spec
from launch.backends.base import LaunchRequest
from launch.errors import ExitCode
from tests.test_cli import invoke, quickstart, runner
from tests.test_local import SEARCH_RANDOM, project

__all__ = ["quickstart", "runner"]  # fixtures, used by name


def _request(cwd: Path, name: str) -> LaunchRequest:
    sweep = spec.load_sweep(str(cwd / "search.yaml"), seeds=None, seed_flag="seed", local=True)
    return LaunchRequest(
        spec=sweep.spec, command=[sys.executable, "train.py"], snap=git.snapshot(cwd),
        settings=config.load_settings({"backend": "local"}, cwd=cwd), name=name,
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_a_local_sweep_reports_one_event_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = project(tmp_path, SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 3"))
    monkeypatch.chdir(cwd)
    local = backends.named("local")
    created = local.create(_request(cwd, "events"))
    assert created is not None and created.experiment.name == "events"
    events: list = []
    ending = local.follow(created.experiment, events.append)
    assert (ending.kind, ending.status) == ("ended", "Succeeded")
    kinds = [e.kind for e in events]
    assert kinds.count("trial_started") == kinds.count("trial_finished") == 3
    assert kinds[-1] == "experiment_ended" and events[-1].status == "Succeeded"
    for event in (e for e in events if e.kind == "trial_finished"):
        start = next(e for e in events if e.kind == "trial_started" and e.trial == event.trial)
        assert event.status == "Succeeded" and "loss" in event.metrics
        assert start.t <= event.t and set(start.params) >= {"optim.lr", "layers", "act"}
    # Following an ended experiment says so, and changes nothing.
    again: list = []
    assert local.follow(created.experiment, again.append).kind == "already-ended"
    assert again == []
    report = local.status(created.experiment)
    assert report.status == "Succeeded" and report.counts == {"Succeeded": 3}
    assert report.best is not None and report.doc["best"]["trial"] == report.best.name
    _, rows = local.trials(created.experiment)
    assert [r.objective for r in rows] == sorted(r.objective for r in rows)  # minimize
    assert backends.of(created.experiment).name == "local"
    assert report.doc["restarts"] == 0 and report.doc["gpuHours"] is None  # no GPUs asked


def test_retries_reach_the_local_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from launch import podspec

    cwd = project(tmp_path)
    monkeypatch.chdir(cwd)
    request = dataclasses.replace(
        _request(cwd, "retry1"), resources=podspec.trial_resources(retries=1)
    )
    created = backends.named("local").create(request)
    assert created is not None and created.experiment.meta()["retries"] == 1


def test_a_bad_volume_from_the_project_file_names_the_file_and_key(
    runner: object, quickstart: Path
) -> None:
    (quickstart / ".launch.toml").write_text('volume = ["data"]\n')
    result = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.USAGE, result.output
    error = result.stderr.splitlines()[0]
    assert ".launch.toml` key volume 'data'" in error and "--volume" not in error
    (quickstart / ".launch.toml").unlink()
    flag = invoke(runner, ["render", "--volume", "x", "search.yaml", "--", "python", "train.py"])
    assert flag.exit_code == ExitCode.USAGE and "--volume 'x'" in flag.stderr.splitlines()[0]


def test_an_unknown_backend_is_a_usage_error() -> None:
    from launch.errors import UsageError

    with pytest.raises(UsageError) as caught:
        backends.named("slurm")
    assert "local" in str(caught.value.hint) and "katib" in str(caught.value.hint)
