"""Issue 20's rough edges: documented exit codes, a mistyped subcommand, doctor without a
cluster, watch's replayed lines, one order of `fixed` flags, status words and `launch config`
on a narrow terminal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from launch import local, plots, progress, state
from launch.cli import admin
from launch.cli import results as cli_results
from launch.errors import ExitCode, UsageError
from launch.spec import LaunchSpec
from tests.compose_lab import quickstart_files
from tests.test_cli import invoke, quickstart, runner
from tests.test_local import LAUNCH, SEARCH_RANDOM, _wait_for, experiment, project

__all__ = ["quickstart", "runner"]  # fixtures, used by name

# --------------------------------------------------------------------------- exit codes


def test_exit_codes_are_documented_in_help_and_readme(runner: CliRunner) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    help_text = invoke(runner, ["--help"]).output
    for code in ExitCode:
        assert f" {int(code)} " in " ".join(help_text.split()), code
        assert f" {int(code)} " in " ".join(readme.split()), code
    assert ExitCode.CANCELLED == 7


def test_missing_plot_library_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def refuse(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", refuse)
    with pytest.raises(UsageError) as caught:
        plots._need("matplotlib.pyplot")
    assert caught.value.exit_code == ExitCode.USAGE


def test_katib_backend_without_a_kubeconfig_exits_2(
    runner: CliRunner, quickstart: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = invoke(
        runner, ["--backend", "katib", "--yes", "search.yaml", "--", "python", "train.py"]
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "kubeconfig" in result.stderr and "--backend local" in result.stderr


def test_doctor_without_a_cluster_exits_2_and_says_local_needs_none(
    runner: CliRunner, quickstart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("LAUNCH_MLFLOW_URL", raising=False)
    result = invoke(runner, ["doctor"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stdout.startswith("No cluster is configured, and local sweeps need none")


def test_compare_with_too_few_trials_is_refused_with_exit_2(
    runner: CliRunner, quickstart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from launch import results

    def fake(name: str) -> Any:
        return type("Exp", (), {"name": name, "meta": lambda self: {}})()

    one = results.Trial(
        name="t-1", number=1, status="Succeeded", params={"lr": 0.1}, objective=0.5, metrics={}
    )
    spec = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.01, "max": 1}}
            ],
            "maxTrialCount": 2,
        }
    )
    backend = type("Backend", (), {"trials": lambda self, exp: (spec, [one])})()
    monkeypatch.setattr(cli_results, "open_experiment", lambda name: (fake(name), backend))
    result = invoke(runner, ["compare", "a", "b"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "not enough finished trials" in result.stderr and "--seeds" in result.stderr


def test_a_run_cancelled_from_another_shell_exits_7(tmp_path: Path) -> None:
    cwd = project(tmp_path, SEARCH_RANDOM)
    env = {**os.environ, "NO_COLOR": "1", "TRAINER_SLEEP": "30"}
    proc = subprocess.Popen(
        [LAUNCH, "--backend", "local", "--name", "gone", "search.yaml", "--", sys.executable, "train.py"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def running() -> int:
            path = cwd / ".launch" / "experiments" / "gone"
            if not (path / "journal.jsonl").exists():
                return 0
            trials = state.Experiment(path).state().trials.values()
            return sum(r.status == state.RUNNING for r in trials)

        _wait_for(lambda: running() == 2)
        cancel = subprocess.run(
            [LAUNCH, "cancel", "gone"], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=90,
        )  # fmt: skip
        assert cancel.returncode == 0, cancel.stderr
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == ExitCode.CANCELLED, err
    assert "cancelled" in err
    assert experiment(cwd, "gone").state().status == state.EXP_CANCELLED


# --------------------------------------------------------------------------- a mistyped command


def test_a_mistyped_subcommand_is_named(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(runner, ["reslts", "some-exp"])
    assert result.exit_code == ExitCode.USAGE
    assert "did you mean `launch results`" in result.stderr
    assert "no such file" not in result.stderr
    # A file of that name is still a spec; a path or a .yaml name is never a command.
    result = invoke(runner, ["reslts.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.USAGE and "did you mean" not in result.stderr
    (quickstart / "stauts").write_text((quickstart / "search.yaml").read_text())
    result = invoke(runner, ["--dry-run", "--backend", "local", "stauts", "--", "python", "t.py"])
    assert "did you mean" not in result.stderr


# --------------------------------------------------------------------------- watch's lines


def _progress(order: tuple[str, ...]) -> tuple[progress.Progress, io.StringIO]:
    out = io.StringIO()
    shown = progress.Progress(
        experiment="e", objective="loss", minimize=True, total=2, param_order=order
    )
    shown.plain, shown.live = True, None
    shown.console.file = out
    return shown, out


def test_replayed_events_show_their_own_time_spec_order_and_objective_first() -> None:
    shown, out = _progress(("zeta", "alpha"))
    when = 1_000_000.0  # long ago: a replay must not print the time of now
    shown({"event": "trial_started", "trial": "e-0001", "number": 1, "t": when,
           "params": {"alpha": 1, "zeta": 0.5}})  # fmt: skip
    shown({"event": "trial_finished", "trial": "e-0001", "status": "Succeeded", "t": when + 5,
           "metrics": {"accuracy": 0.9, "loss": 0.25}})  # fmt: skip
    lines = out.getvalue().splitlines()
    import time

    assert lines[0].startswith(time.strftime("%H:%M:%S", time.localtime(when)) + " ")
    assert lines[0].endswith("started  zeta=0.5 alpha=1")
    assert lines[1].startswith(time.strftime("%H:%M:%S", time.localtime(when + 5)) + " ")
    assert lines[1].endswith("in 5.0s  loss=0.25 accuracy=0.9")
    assert progress.in_order({"b": 1, "a": 2, "c": 3}, ["c", "a"]) == {"c": 3, "a": 2, "b": 1}


# --------------------------------------------------------------------------- fixed flag order


def test_fixed_flags_keep_the_spec_order_through_experiment_json(tmp_path: Path) -> None:
    spec = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.01, "max": 1}}
            ],
            "fixed": {"zeta": 1, "model.depth": 4, "alpha": "x"},
            "maxTrialCount": 2,
        }
    )
    meta = {
        "backend": "local", "name": "e", "spec": spec.model_dump(mode="json"),
        "command": ["python", "t.py"], "workdir": str(tmp_path), "commit": "0" * 40,
        "gpus_per_trial": 0, "parallel": 1, "max_trials": 2, "max_failed": 1,
        "tracking_uri": None,
    }  # fmt: skip
    exp = state.Experiment.create(tmp_path / ".launch", "e", meta)
    assert list(json.loads(exp.meta_path.read_text())["spec"]["fixed"]) == [
        "zeta", "model.depth", "alpha",
    ]  # fmt: skip
    job = local.LocalExperiment.from_meta(exp.meta())
    assert list(job.spec.fixed) == ["zeta", "model.depth", "alpha"]


# --------------------------------------------------------------------------- list and config


def test_status_counts_are_words_not_run_together() -> None:
    assert progress.status_words("MetricsUnavailable") == "metrics unavailable"


def test_config_fits_an_80_column_terminal_without_cutting_values() -> None:
    long_url = "https://mlflow.example.internal.company.com/some/long/path/to/the/server"
    rows = [
        ["mlflow_url", long_url, "env LAUNCH_MLFLOW_URL",
         "MLflow tracking server the trials log to; its UI links are printed by results"],
        ["namespace", "default", "default", "Kubernetes namespace of the experiments"],
    ]  # fmt: skip
    text = admin.config_text(rows, width=80)
    assert long_url in text  # whole, copy-pasteable
    lines = text.splitlines()
    assert lines[0] == f"mlflow_url  {long_url}  (env LAUNCH_MLFLOW_URL)"
    assert all(len(line) <= 80 for line in lines if long_url not in line)
    assert len(lines) <= 6
    wide = admin.config_text(rows, width=400)
    assert wide.splitlines()[0].split() == ["setting", "value", "source", "meaning"]


# --------------------------------------------------------------------------- a local-path remote


@pytest.fixture
def local_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The quickstart, clean and pushed to a bare repository at a local path (no URL)."""
    from tests.gitrepo import make_repo

    files = quickstart_files()
    repo = make_repo(tmp_path, "lab-project", files=files)
    monkeypatch.chdir(repo.path)
    for key in ("LAUNCH_BACKEND", "LAUNCH_NAMESPACE", "LAUNCH_HOME", "LAUNCH_CONTEXT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return repo.path


def test_a_local_path_remote_needs_nothing_since_builds_upload_the_commit(
    runner: CliRunner, local_remote: Path
) -> None:
    shown = invoke(runner, ["render", "search.yaml", "--json", "--", "python", "train.py"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["launchable"] is True and doc["build"]["path"] == "compose"
    whole = invoke(runner, ["render", "--build", "kaniko", "--json", "search.yaml", "--", "x"])
    job = json.loads(whole.stdout)["buildJob"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--context=tar:///kaniko/launch-context/context.tar.gz" in args  # no clone
    assert "env" not in job["spec"]["template"]["spec"]["containers"][0]  # no git credentials


def test_with_git_context_a_local_path_remote_shows_the_plan_marked_not_launchable(
    runner: CliRunner, local_remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setenv("LAUNCH_GIT_CONTEXT", "true")
    monkeypatch.setenv("LAUNCH_BUILD", "kaniko")
    shown = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("# NOT LAUNCHABLE as is: git remote")
    assert "--allow-dirty" in shown.stdout.splitlines()[0] and "warning:" in shown.stderr
    as_json = invoke(runner, ["render", "search.yaml", "--json", "--", "python", "train.py"])
    assert json.loads(as_json.stdout)["launchable"] is False
    # The hint is true: --allow-dirty builds the clean, pushed tree from an upload.
    allowed = invoke(runner, ["render", "search.yaml", "--allow-dirty", "--", "python", "t.py"])
    assert allowed.exit_code == 0, allowed.output
    assert "NOT LAUNCHABLE" not in allowed.output
    job = next(iter(yaml.safe_load_all(allowed.stdout)))
    env = {
        e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["initContainers"][0]["env"]
    }
    assert env["CONTEXT_URL"].endswith(env["CONTEXT_DIGEST"])
    doc = json.loads(
        invoke(runner, ["render", "search.yaml", "--allow-dirty", "--json", "--", "x"]).stdout
    )
    assert doc["launchable"] is True
    # A launch without it is refused before any cluster is contacted, with the same hint.
    refused = invoke(
        runner, ["--backend", "katib", "--yes", "search.yaml", "--", "python", "train.py"]
    )
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "--allow-dirty" in refused.stderr


def test_seeds_with_a_sampling_algorithm_run_locally_and_are_refused_on_katib() -> None:
    from launch import spec as spec_module
    from launch.errors import SpecError

    loaded = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.01, "max": 1}}
            ],
            "maxTrialCount": 2,
        }
    )
    assert spec_module.apply_seeds(loaded, seeds=3, local=True).seed_values == (0, 1, 2)
    with pytest.raises(SpecError, match="cannot be one Katib Experiment"):
        spec_module.apply_seeds(loaded, seeds=3, local=False)
    doc = (Path(__file__).resolve().parent.parent / "docs" / "search-yaml.md").read_text()
    assert "- **local** (`--backend local`" in doc and "refused on both backends" in doc


# --------------------------------------------------------------------------- install hints


def test_install_hints_match_how_this_copy_was_installed() -> None:
    from launch import install as inst

    reqs = {"plot": ("matplotlib>=3.9", "plotext>=5.3")}

    def hint(method: str, **kw: Any) -> str:
        return inst.extra_hint("plot", inst.Install(method, requirements=reqs, **kw))

    assert (
        hint(inst.UV_TOOL, source="/home/u/launch")
        == "uv tool install --force '/home/u/launch[plot]'"
    )
    assert hint(inst.UV_TOOL) == "uv tool install --force 'launch-sweep[plot]'"
    assert hint(inst.PIPX) == "pipx inject launch-sweep 'matplotlib>=3.9' 'plotext>=5.3'"
    assert hint(inst.VENV, python="/v/bin/python") == (
        "/v/bin/python -m pip install 'matplotlib>=3.9' 'plotext>=5.3'"
    )
    assert hint(inst.VENV, python="/v/bin/python", has_pip=False) == (
        "uv pip install --python /v/bin/python 'matplotlib>=3.9' 'plotext>=5.3'"
    )
    assert hint(inst.CHECKOUT, source="/w/main") == "cd /w/main && uv sync --frozen --all-extras"
    assert "uv tool install '.[plot]'" in hint(inst.SINGLE_FILE)
    for method in (inst.UV_TOOL, inst.PIPX, inst.VENV, inst.CHECKOUT, inst.SINGLE_FILE):
        assert "launch[" not in hint(method), method  # never the unrelated PyPI package
    # Requirements and the source come from the installed metadata.
    assert inst._extras_from_metadata(
        ["rich>=13.7", "mlflow-skinny>=3.5; extra == 'mlflow'", 'plotext>=5.3; extra == "plot"']
    ) == {"mlflow": ("mlflow-skinny>=3.5",), "plot": ("plotext>=5.3",)}
    assert inst._source_dir('{"url": "file:///w/my%20dir", "dir_info": {"editable": true}}') == (
        "/w/my dir", True,
    )  # fmt: skip
    assert inst._source_dir(None) == (None, False)


def test_the_distribution_is_not_the_unrelated_launch_on_pypi() -> None:
    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    from launch import install as inst

    assert project["name"] == inst.DIST_NAME == "launch-sweep"
    assert project["scripts"] == {"launch": "launch.cli:main"}
    for extra, reqs in project["optional-dependencies"].items():
        assert inst.EXTRAS[extra] == tuple(reqs)
    lock = (root / "uv.lock").read_text()
    assert '\nname = "launch-sweep"\nversion = ' in lock and '\nname = "launch"\n' not in lock
