"""The command line through Typer's CliRunner (in-process) on real git repos."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from launch import cli, git, spec
from launch.errors import ExitCode, LaunchError
from tests.compose_lab import quickstart_files
from tests.gitrepo import make_repo
from tests.test_spec_bad_input import CASES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str]) -> Any:
    return runner.invoke(cli.app, cli.with_default_command(args), prog_name="launch")


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The quickstart example as a user's clean, pushed project (https remote, no network)."""
    files = quickstart_files()
    repo = make_repo(tmp_path, "lab-project", files=files, remote=False)
    repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    repo.git("branch", "--set-upstream-to=origin/main")
    monkeypatch.chdir(repo.path)
    for key in (
        "LAUNCH_BACKEND",
        "LAUNCH_NAMESPACE",
        "LAUNCH_HOME",
        "LAUNCH_KATIB_URL",
        "LAUNCH_CONTEXT",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return repo.path


def test_help_lists_commands_examples_and_exit_codes(runner: CliRunner) -> None:
    result = invoke(runner, ["--help"])
    assert result.exit_code == 0
    for word in ("run", "render", "results", "watch", "cancel", "logs", "list", "status", "config"):
        assert re.search(rf"^\s+{word}\s", result.output, re.M), word
    assert "launch --gpus 8 search.yaml -- python train.py" in result.output
    assert "130" in result.output and "Exit codes" in result.output
    assert invoke(runner, []).exit_code in (0, 2)  # no args: help


def test_default_command_is_run() -> None:
    assert cli.with_default_command(["--gpus", "8", "s.yaml", "--", "python", "t.py"])[0] == "run"
    assert cli.with_default_command(["s.yaml"]) == ["run", "s.yaml"]
    assert cli.with_default_command(["--debug", "s.yaml"]) == ["--debug", "run", "s.yaml"]
    assert cli.with_default_command(["render", "s.yaml"]) == ["render", "s.yaml"]
    assert cli.with_default_command(["--help"]) == ["--help"]


def test_render_prints_job_experiment_and_trials(
    runner: CliRunner, quickstart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(
        runner,
        ["render", "search.yaml", "--name", "qs-1", "--gpus", "2", "--", "python", "train.py"],
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Job", "Experiment"]
    job, experiment = docs
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    sha = git.snapshot(quickstart).commit
    # The quickstart's Dockerfile has the fast shape: the Job builds its dependency image from
    # an uploaded context, and the commit's image is composed on it.
    assert "--context=tar:///kaniko/launch-context/context.tar.gz" in args
    assert any(a.startswith("--destination=") and ":deps-" in a for a in args)
    assert "# image: composed in the registry" in result.stdout
    # A whole-image build uploads the commit too; Kaniko clones it only with git_context.
    kaniko = invoke(runner, ["render", "--build", "kaniko", "search.yaml", "--", "python", "t.py"])
    job = next(yaml.safe_load_all(kaniko.stdout))
    assert (
        "--context=tar:///kaniko/launch-context/context.tar.gz"
        in (job["spec"]["template"]["spec"]["containers"][0]["args"])
    )
    monkeypatch.setenv("LAUNCH_GIT_CONTEXT", "true")
    cloned = invoke(runner, ["render", "--build", "kaniko", "search.yaml", "--", "t.py"])
    job = next(yaml.safe_load_all(cloned.stdout))
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--context=git://git.example.com/lab/lab-project.git#refs/heads/main#{sha}" in args
    assert experiment["metadata"]["name"] == "qs-1"
    container = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"  # a quantity string
    assert container["image"].endswith(f"/lab-project:{sha}")
    trial_lines = [
        line for line in result.stdout.splitlines() if line.startswith("#   python train.py")
    ]
    assert len(trial_lines) == 5  # a sample for random search
    assert all("--tensorboard_dir=/var/log/katib/tfevent/" in line for line in trial_lines)


def test_render_without_a_dockerfile_still_shows_the_plan(
    runner: CliRunner, quickstart: Path
) -> None:
    import subprocess

    subprocess.run(["git", "rm", "-q", "Dockerfile"], cwd=quickstart, check=True)
    subprocess.run(["git", "commit", "-qm", "no Dockerfile"], cwd=quickstart, check=True)
    subprocess.run(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=quickstart,
                   check=True)  # fmt: skip
    result = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert result.exit_code == 0, result.output
    assert "# image: a full Kaniko build (Dockerfile does not exist in" in result.stdout
    strict = invoke(runner, ["render", "--build", "compose", "search.yaml", "--", "x"])
    assert strict.exit_code == 2 and "hint:" in strict.stderr


def test_render_json(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(runner, ["render", "search.yaml", "--json", "--", "python", "train.py"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["experiment"]["kind"] == "Experiment" and doc["buildJob"]["kind"] == "Job"
    assert len(doc["experiment"]["metadata"]["name"]) <= 40


def test_grid_and_seed_dry_run_lists_every_trial(runner: CliRunner, quickstart: Path) -> None:
    (quickstart / "seeds.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: val_loss}\n"
    )
    result = invoke(
        runner,
        ["render", "seeds.yaml", "--allow-dirty", "--seeds", "4", "--", "python", "train.py"],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("#   python")]
    assert [re.search(r"--seed=(\d+)", line).group(1) for line in lines] == ["0", "1", "2", "3"]  # type: ignore[union-attr]
    assert "every trial" in result.stdout


def test_local_dry_run_touches_nothing(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(
        runner, ["--backend", "local", "--dry-run", "search.yaml", "--", "python", "train.py"]
    )
    assert result.exit_code == 0, result.output
    assert "backend: local" in result.stderr
    assert "# 6 trials, 2 at a time" in result.stdout
    assert not (quickstart / ".launch").exists()


def test_backend_auto_says_why(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(runner, ["--dry-run", "search.yaml", "--", "python", "train.py"])
    assert "backend: local (no cluster configured" in result.stderr


def test_spec_error_is_error_hint_exit_2(runner: CliRunner, quickstart: Path) -> None:
    (quickstart / "bad.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: loss}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1, stp: 0.1}\n"
    )
    result = invoke(runner, ["render", "bad.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.USAGE
    assert "error: bad.yaml:5: parameters[0].feasibleSpace.stp" in result.stderr
    assert "hint: did you mean `step`?" in result.stderr
    assert result.stdout == ""


def test_error_text_is_printed_verbatim_not_as_markup(
    runner: CliRunner, quickstart: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (quickstart / "bad.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: loss}\n"
        '"alg[red]orithm": {algorithmName: random}\n'
    )
    result = invoke(runner, ["render", "bad.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.USAGE
    assert "error: bad.yaml:2: alg[red]orithm: unknown field `alg[red]orithm`" in result.stderr
    # A hint quoting an install extra keeps its brackets (rich markup would eat `[plot]`).
    from launch import install

    hint = install.extra_hint("plot", install.Install(install.UV_TOOL, source="/src/launch"))
    with pytest.raises(typer.Exit):
        cli.fail(LaunchError("--plot needs matplotlib, [bold]not[/] installed", hint=hint))
    err = capsys.readouterr().err
    assert "error: --plot needs matplotlib, [bold]not[/] installed" in err
    assert "hint: uv tool install --force '/src/launch[plot]'" in err


def test_missing_command_and_missing_file(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(runner, ["render", "search.yaml"])
    assert result.exit_code == ExitCode.USAGE and "no training command" in result.stderr
    result = invoke(runner, ["render", "nope.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.USAGE and "nope.yaml" in result.stderr


def test_dirty_tree_exit_3_with_a_real_flag(runner: CliRunner, quickstart: Path) -> None:
    (quickstart / "train.py").write_text("# changed\n")
    result = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert result.exit_code == ExitCode.GIT_STATE
    assert "--allow-dirty" in result.stderr
    assert (
        invoke(
            runner, ["render", "search.yaml", "--allow-dirty", "--", "python", "train.py"]
        ).exit_code
        == 0
    )


def test_bad_name(runner: CliRunner, quickstart: Path) -> None:
    result = invoke(
        runner, ["render", "search.yaml", "--name", "Bad_Name", "--", "python", "train.py"]
    )
    assert result.exit_code == ExitCode.USAGE and "hint:" in result.stderr


def test_config_shows_sources(
    runner: CliRunner, quickstart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAUNCH_NAMESPACE", "team-a")
    (quickstart / ".launch.toml").write_text('katib_url = "http://katib.lab"\n')
    result = invoke(runner, ["config", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["namespace"] == {"value": "team-a", "source": "env LAUNCH_NAMESPACE"}
    assert doc["katib_url"]["source"].endswith(".launch.toml")
    assert doc["registry"]["source"] == "default"


def _all_options() -> set[str]:
    command = typer.main.get_command(cli.app)
    assert hasattr(command, "commands")  # Typer vendors its own click: duck-type the group
    names: set[str] = set()
    for group_param in command.params:
        names.update(group_param.opts)
    for sub in command.commands.values():
        for param in sub.params:
            names.update(getattr(param, "opts", []))
    return names


def _hints_from_spec_errors() -> list[str]:
    hints = []
    for case in CASES:
        text = case.values[0]
        try:
            spec.apply_seeds(spec.parse(text, filename="search.yaml"))
        except LaunchError as exc:
            hints.append(exc.hint or "")
    return hints


def test_every_flag_a_hint_names_exists(runner: CliRunner, quickstart: Path) -> None:
    hints = _hints_from_spec_errors()
    # Hints from the CLI paths themselves.
    (quickstart / "train.py").write_text("# changed\n")
    for args in (
        ["render", "search.yaml", "--", "python", "train.py"],
        [
            "--backend",
            "local",
            "--gpus",
            "3",
            "search.yaml",
            "--allow-dirty",
            "--",
            "python",
            "train.py",
        ],
        ["render", "search.yaml", "--allow-dirty"],
    ):
        result = invoke(runner, args)
        hints += [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    flags = {
        flag for hint in hints for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*(?![\w.=])", hint)
    }
    assert flags, "expected some hints to name flags"
    missing = flags - _all_options()
    assert not missing, f"hints name flags that do not exist: {missing}"


def test_render_trial_resources_from_flags_and_settings(
    runner: CliRunner, quickstart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAUNCH_SHM_SIZE", "8Gi")
    monkeypatch.setenv("LAUNCH_ENV", "FROM_CONFIG=1")
    result = invoke(
        runner,
        ["render", "search.yaml", "--cpus", "4", "--memory", "16Gi", "--env", "A=1",
         "--volume", "datasets:/data:ro", "--node-selector", "gpu=a100", "--toleration",
         "nvidia.com/gpu:NoSchedule", "--queue", "launch", "--priority", "high", "--", "python", "train.py"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    experiment = list(yaml.safe_load_all(result.stdout))[-1]
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["A"] == "1" and env["FROM_CONFIG"] == "1"  # flags add to the configured list
    assert container["resources"]["requests"]["cpu"] == "4"
    assert container["resources"]["limits"]["memory"] == "16Gi"
    assert {"mountPath": "/dev/shm", "name": "dshm"}.items() <= {
        **container["volumeMounts"][0]
    }.items() or any(m["mountPath"] == "/dev/shm" for m in container["volumeMounts"])
    assert any(m["mountPath"] == "/data" and m.get("readOnly") for m in container["volumeMounts"])
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "launch"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "high"
    bad = invoke(
        runner,
        ["render", "search.yaml", "--allow-dirty", "--env", "NOEQUALS", "--", "python", "train.py"],
    )
    assert bad.exit_code == ExitCode.USAGE and "--env" in bad.stderr


def test_unpushed_clean_commit_with_allow_dirty_builds_from_an_upload(
    runner: CliRunner, quickstart: Path
) -> None:
    (quickstart / "notes.txt").write_text("new\n")
    subprocess.run(["git", "add", "notes.txt"], cwd=quickstart, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "local"],
                   cwd=quickstart, check=True)  # fmt: skip
    refused = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert refused.exit_code == ExitCode.GIT_STATE  # clean but not pushed
    result = invoke(runner, ["render", "search.yaml", "--allow-dirty", "--", "python", "train.py"])
    assert result.exit_code == 0, result.output
    job = next(iter(yaml.safe_load_all(result.stdout)))
    fetch = job["spec"]["template"]["spec"]["initContainers"][0]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env["CONTEXT_DIGEST"] != "sha256:" + "0" * 64
    assert env["CONTEXT_URL"].endswith(env["CONTEXT_DIGEST"])


def test_the_layers_contract_places_every_module() -> None:
    """A new module must join a layer of pyproject's import-linter contract (lint-imports also
    refuses an unplaced one: the contract is exhaustive); the CLI is the top layer alone."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in contracts["contracts"] if c["type"] == "layers"]
    assert layers["exhaustive"] is True and layers["layers"][:2] == ["cli", "backends"]
    placed = {name.strip() for layer in layers["layers"] for name in layer.split(":")}
    children = {p.stem for p in (root / "launch").glob("*.py")} - {"__init__"}
    children |= {p.parent.name for p in (root / "launch").glob("*/__init__.py")}
    assert placed == children


def test_render_trial_timeout_is_the_trial_jobs_active_deadline(
    runner: CliRunner, quickstart: Path
) -> None:
    result = invoke(
        runner, ["render", "search.yaml", "--trial-timeout", "30m", "--", "python", "train.py"]
    )
    assert result.exit_code == 0, result.output
    _, experiment = list(yaml.safe_load_all(result.stdout))
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    assert job["spec"]["activeDeadlineSeconds"] == 1800
    bad = invoke(
        runner, ["render", "search.yaml", "--trial-timeout", "soon", "--", "python", "t.py"]
    )
    assert bad.exit_code == 2 and "--trial-timeout soon: not a duration" in bad.output


def test_retries_come_from_the_flag_or_the_setting_and_bound_the_trial_job(
    runner: CliRunner, quickstart: Path
) -> None:
    def backoff(*args: str) -> Any:
        result = invoke(runner, ["render", *args, "search.yaml", "--", "python", "train.py"])
        assert result.exit_code == 0, result.output
        _, experiment = list(yaml.safe_load_all(result.stdout))
        spec = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]
        assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
        return spec["backoffLimit"]

    assert backoff() == 3
    assert backoff("--retries", "0") == 0
    (quickstart / ".git" / "info").mkdir(exist_ok=True)
    (quickstart / ".git" / "info" / "exclude").write_text(".launch.toml\n")  # a clean tree
    (quickstart / ".launch.toml").write_text("retries = 7\n")
    assert backoff() == 7 and backoff("--retries", "1") == 1
    (quickstart / ".launch.toml").write_text("retries = 70\n")
    bad = invoke(runner, ["render", "search.yaml", "--", "python", "train.py"])
    assert bad.exit_code == 2 and ".launch.toml` key retries" in bad.stderr


def test_a_large_grid_shows_its_first_thousand_trials(runner: CliRunner, quickstart: Path) -> None:
    (quickstart / "grid.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: val_loss}\n"
        "algorithm: {algorithmName: grid}\n"
        "parameters:\n"
        "  - {name: n, parameterType: int, feasibleSpace: {min: 1, max: 5000}}\n"
    )
    result = invoke(runner, ["render", "grid.yaml", "--allow-dirty", "--", "python", "train.py"])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.stdout.splitlines() if line.startswith("#   python")]
    assert len(shown) == 1000 and shown[-1].startswith("#   python train.py --n=1000 ")
    assert "#   ... and 4,000 more (--json lists every one)" in result.stdout
    as_json = invoke(
        runner, ["render", "grid.yaml", "--allow-dirty", "--json", "--", "python", "t.py"]
    )
    assert len(json.loads(as_json.stdout)["trials"]) == 5000


def test_the_goldens_switch_refuses_to_run_under_ci() -> None:
    from tests import goldens

    assert goldens.update_requested({"LAUNCH_UPDATE_GOLDENS": "1"}) is True
    assert goldens.update_requested({"CI": "true"}) is False
    with pytest.raises(RuntimeError, match="never by CI"):
        goldens.update_requested({"LAUNCH_UPDATE_GOLDENS": "1", "CI": "true"})


def test_the_cli_holds_no_backend_logic() -> None:
    """The command modules parse, ask a backend, render: no process, signal or cluster calls."""
    import ast

    root = Path(__file__).resolve().parents[1] / "launch" / "cli"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in (
                node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
            )
        }
        assert not imported & {"subprocess", "signal", "kubernetes"}, path.name
        calls = {
            f"{node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        }
        assert not calls & {"os.kill", "exp.append", "meta.get"}, path.name
        text = path.read_text()
        assert "_is_cluster" not in text and 'get("backend")' not in text, path.name
        assert 'chosen == "local"' not in text, path.name
