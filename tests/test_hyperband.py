"""Katib's hyperband: its arithmetic, its rules at load, the rendered trials and brackets, the
local refusal, results grouped by resource value, and a launch through the API emulator."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from launch import cli, hyperband, katib, katib_status, results, sampling, spec
from launch.errors import ExitCode, SpecError
from tests import test_submit
from tests.compose_lab import quickstart_files
from tests.gitrepo import make_repo

SPECS = Path(__file__).parent / "specs"
EXAMPLE = SPECS / "hyperband.yaml"  # Katib's examples/v1beta1/hp-tuning/hyperband.yaml
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart"

# Line numbers below refer to this text: 5 resource_name, 6 r_l, 7 eta, 8 parameters,
# 9 lr, 10 num_epochs, 11 the first added line.
BASE = """\
objective: {type: minimize, objectiveMetricName: loss}
algorithm:
  algorithmName: hyperband
  algorithmSettings:
    - {name: resource_name, value: num_epochs}
    - {name: r_l, value: "9"}
    - {name: eta, value: "3"}
parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: 0.01, max: 0.1}}
  - {name: num_epochs, parameterType: int, feasibleSpace: {min: 1, max: 9}}
"""


def base(*, replace: tuple[str, str] | None = None, add: str = "") -> str:
    text = BASE
    if replace is not None:
        assert replace[0] in text, replace
        text = text.replace(*replace)
    return text + add


def load(text: str) -> spec.LaunchSpec:
    return spec.parse(text, filename="search.yaml")


# --------------------------------------------------------------------------- arithmetic


def test_brackets_follow_the_service_formulas() -> None:
    hb = hyperband.Hyperband("num_epochs", 9.0, 3)
    assert (hb.s_max, hb.first_bracket, hb.max_extra_trials) == (2, 9, 1)
    table = [[(r.trials, r.resource) for r in rungs] for rungs in hb.brackets()]
    assert table == [[(9, 1), (3, 3), (1, 9)], [(5, 3), (2, 9)], [(3, 9)]]


def test_s_max_is_truncated_like_katibs_float_log_ratio() -> None:
    # int(log(1000)/log(10)) is 2 (2.9999999999999996), not 3: Katib's parallel rule and the
    # resource values follow the truncated value.
    assert hyperband.Hyperband("e", 1000.0, 10).s_max == 2
    assert hyperband.Hyperband("e", 1000.0, 10).first_bracket == 100
    assert hyperband.Hyperband("e", 243.0, 3).s_max == 4
    assert hyperband.Hyperband("e", 2.0, 3).s_max == 0  # r_l < eta: one bracket, one round


def test_resource_values_scale_the_truncated_start() -> None:
    # `r` round-trips through the Suggestion's status as int(float(r)): 10/9 -> 1, then 3, 9.
    hb = hyperband.Hyperband("e", 10.0, 3)
    assert [hb.resource(2, i) for i in range(3)] == [1, 3, 9]
    assert hb.resource(1, 0) == 3 and hb.resource(0, 0) == 10


# (eta, r_l, parallelTrialCount, maxTrialCount) -> the resource value of each trial Katib creates,
# and for a stalled Experiment Katib's request and the service's reply. Recorded by driving
# Katib v0.19.0's pkg/suggestion/v1beta1/hyperband/service.py with the request arithmetic of its
# experiment controller (ReconcileTrials) and suggestion client (SyncAssignments).
RECORDED = [
    (2, 2, 2, 2, [1, 1], None),  # Katib's example
    (2, 2, 2, 3, [1, 1, 2], None),
    (2, 2, 2, 4, [1, 1], (2, 1)),
    (3, 9, 9, 9, [1] * 9, None),
    (3, 9, 9, 10, [1] * 9 + [3], None),
    (3, 9, 9, 23, [1] * 9, (9, 3)),
    (3, 9, 12, 13, [1] * 12 + [3], None),
    (3, 2, 1, 2, [2], (1, 0)),  # one bracket: the service has nothing more to give
    (5, 100, 25, 30, [4] * 25, (5, 1)),
]


@pytest.mark.parametrize(("eta", "r_l", "parallel", "max_trials", "values", "stall"), RECORDED)
def test_what_katib_v019_runs(
    eta: int,
    r_l: int,
    parallel: int,
    max_trials: int,
    values: list[int],
    stall: tuple[int, int] | None,
) -> None:
    hb = hyperband.Hyperband("num_epochs", float(r_l), eta)
    runs = hb.runs(parallel, max_trials)
    ran = [rung.resource for rung in runs for _ in range(rung.trials)]
    if stall is None:
        assert max_trials <= parallel + hb.max_extra_trials
        assert ran == values
    else:
        assert max_trials > parallel + hb.max_extra_trials
        assert ran[: len(values)] == values
        assert hb.stalled_reply(parallel, max_trials) == stall


def test_from_settings() -> None:
    hb = hyperband.from_settings({"resource_name": "n", "r_l": "9"})
    assert hb == hyperband.Hyperband("n", 9.0, 3)  # eta defaults to 3, as in the service
    assert hyperband.from_settings({"resource_name": "n"}) is None
    assert hyperband.from_settings({"resource_name": "n", "r_l": "0.5"}) is None
    assert hyperband.from_settings({"resource_name": "n", "r_l": "9", "eta": "1"}) is None


# --------------------------------------------------------------------------- rules at load


def _case(
    case_id: str, text: str, path: str, line: int, hint: str, message: str
) -> Any:  # pytest.param
    return pytest.param(text, path, line, hint, message, id=case_id)


CASES = [
    _case(
        "eta-one",
        base(replace=('value: "3"}', 'value: "1"}')),
        "algorithm.algorithmSettings[2].value",
        7,
        "eta",
        "eta: expected a whole number >= 2",
    ),
    _case(
        "eta-fraction",  # validated as int(float()) = 2, run as float 2.5
        base(replace=('value: "3"}', 'value: "2.5"}')),
        "algorithm.algorithmSettings[2].value",
        7,
        "eta",
        "got '2.5'",
    ),
    _case(
        "r_l-below-one",
        base(replace=('value: "9"}', 'value: "0.5"}')),
        "algorithm.algorithmSettings[1].value",
        6,
        "r_l",
        "r_l: expected a number >= 1",
    ),
    _case(
        "r_l-not-a-number",
        base(replace=('value: "9"}', "value: many}")),
        "algorithm.algorithmSettings[1].value",
        6,
        "r_l",
        "got 'many'",
    ),
    _case(
        "r_l-missing",
        base(replace=('    - {name: r_l, value: "9"}\n', "")),
        "algorithm.algorithmSettings",
        4,
        "name: r_l",
        "hyperband needs the setting r_l",
    ),
    _case(
        "state-setting",
        base(replace=('value: "3"}\n', 'value: "3"}\n    - {name: s_max, value: "1"}\n')),
        "algorithm.algorithmSettings[3].name",
        8,
        "remove it",
        "`s_max` is hyperband's own state",
    ),
    _case(
        "unknown-setting",
        base(replace=("name: eta,", "name: etta,")),
        "algorithm.algorithmSettings[2].name",
        7,
        "`eta`",
        "unknown setting `etta` for algorithm hyperband",
    ),
    _case(
        "resource-not-a-parameter",
        base(replace=("value: num_epochs}", "value: epochs}")),
        "algorithm.algorithmSettings[0].value",
        5,
        "did you mean `num_epochs`?",
        "resource_name `epochs` names no parameter",
    ),
    _case(
        "resource-fixed",
        base(
            replace=(
                "  - {name: num_epochs, parameterType: int, feasibleSpace: {min: 1, max: 9}}\n",
                "",
            ),
            add="fixed: {num_epochs: 9}\n",
        ),
        "fixed.num_epochs",
        10,
        "move it to parameters",
        "cannot be fixed",
    ),
    _case(
        "resource-categorical",
        base(
            replace=(
                "{name: num_epochs, parameterType: int, feasibleSpace: {min: 1, max: 9}}",
                "{name: num_epochs, parameterType: categorical, feasibleSpace: {list: [a, b]}}",
            )
        ),
        "parameters[1].parameterType",
        10,
        "parameterType: int",
        "must be int or double, not categorical",
    ),
    _case(
        "nothing-else-to-search",
        base(
            replace=(
                "  - {name: lr, parameterType: double, feasibleSpace: {min: 0.01, max: 0.1}}\n",
                "",
            )
        ),
        "parameters",
        8,
        "lr",
        "nothing to search besides `num_epochs`",
    ),
    _case(
        "discrete-not-whole",
        base(add="  - {name: batch, parameterType: discrete, feasibleSpace: {list: [16, 32.5]}}\n"),
        "parameters[2].feasibleSpace.list[1]",
        11,
        "whole numbers",
        "reads discrete values with int(), which fails on '32.5'",
    ),
    _case(
        "log-distribution",
        base(replace=("max: 0.1}}", "max: 0.1, distribution: logUniform}}")),
        "parameters[0].feasibleSpace.distribution",
        9,
        "algorithmName: tpe",
        "ignores distribution logUniform",
    ),
    _case(
        "step",
        base(replace=("max: 0.1}}", "max: 0.1, step: 0.01}}")),
        "parameters[0].feasibleSpace.step",
        9,
        "remove `step`",
        "ignores `step`",
    ),
    _case(
        "parallel-below-first-bracket",
        base(add="parallelTrialCount: 3\n"),
        "parallelTrialCount",
        11,
        "set parallelTrialCount to 9 or more",
        "`parallelTrialCount must be not less than 9.`",
    ),
    _case(
        "max-below-first-bracket",
        base(add="maxTrialCount: 5\n"),
        "maxTrialCount",
        11,
        "set maxTrialCount to 9 (the first round) or 10 (then the best config again at "
        "num_epochs=3)",
        "maxTrialCount (5) is below parallelTrialCount (9, hyperband's first bracket)",
    ),
    _case(
        "max-would-stall",
        base(add="maxTrialCount: 23\n"),
        "maxTrialCount",
        11,
        "set maxTrialCount to 9",
        "after 10 trials Katib asks its service for 9 at once, the service answers with 3",
    ),
    _case(
        "max-would-stall-one-bracket",
        base(replace=('value: "9"}', 'value: "2"}'), add="maxTrialCount: 2\n"),
        "maxTrialCount",
        11,
        "set maxTrialCount to 1",
        "the service answers with 0 (its only bracket is done)",
    ),
    _case(
        "failure-budget-would-stall",
        base(add="maxTrialCount: 10\nmaxFailedTrialCount: 3\n"),
        "maxFailedTrialCount",
        12,
        "maxFailedTrialCount: 1",
        "a failed first-round trial stalls Katib's hyperband service",
    ),
    _case(
        "resource-range-excludes-the-first-round",
        base(replace=("{min: 1, max: 9}", "{min: 2, max: 9}")),
        "parameters[1].feasibleSpace.min",
        10,
        "min: 1 and max: 1",
        "hyperband sets `num_epochs` itself (1), outside feasibleSpace 2..9",
    ),
    _case(
        "resource-range-excludes-the-promotion",
        base(replace=("{min: 1, max: 9}", "{min: 1, max: 2}"), add="maxTrialCount: 10\n"),
        "parameters[1].feasibleSpace.max",
        10,
        "min: 1 and max: 3",
        "(1, then 3)",
    ),
    _case(
        "r_l-rounds-to-zero",
        base(replace=('value: "9"}', 'value: "3.9999999999999996"}')).replace(
            'value: "3"}', 'value: "2"}'
        ),
        "algorithm.algorithmSettings[1].value",
        6,
        "use a whole r_l such as 4",
        "gives the first round num_epochs=0",
    ),
    _case(
        "first-bracket-past-int32",
        base(replace=('value: "9"}', 'value: "1e12"}')).replace('value: "3"}', 'value: "2"}'),
        "algorithm.algorithmSettings[1].value",
        6,
        "lower r_l",
        "2**39 configs, more than Katib's parallelTrialCount can hold",
    ),
    _case(
        "seeds",
        base(add="seeds: 3\n"),
        "seeds",
        11,
        "fixed:",
        "seeds with algorithm hyperband cannot be one Katib Experiment",
    ),
    _case(
        "placeholder-only-for-the-resource",
        base(replace=("{min: 0.01, max: 0.1}", "{min: 0.1, max: 0.1}")),
        "parameters[0].feasibleSpace.min",
        9,
        "fixed",
        "min (0.1) must be less than max (0.1)",
    ),
]


@pytest.mark.parametrize(("text", "path", "line", "hint", "message"), CASES)
def test_rule(text: str, path: str, line: int, hint: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(text)
    error = caught.value
    assert error.exit_code == ExitCode.USAGE == 2
    assert error.message.startswith(f"search.yaml:{line}: {path}: "), error.message
    assert message in error.message, error.message
    assert error.hint and hint in error.hint, (error.message, error.hint)


def test_katibs_example_loads_with_its_counts() -> None:
    loaded = spec.load(str(EXAMPLE))
    assert loaded.algorithm.algorithmName == "hyperband"
    assert spec.resolve_counts(loaded) == spec.Counts(parallel=2, max_trials=2, max_failed=2)
    # Its resource parameter is a min = max placeholder that the service overwrites.
    (epochs,) = [p for p in loaded.parameters if p.name == "num_epochs"]
    assert (epochs.feasibleSpace.min, epochs.feasibleSpace.max) == ("1", "1")


def test_default_counts() -> None:
    # The first bracket's configs, the first round only, and the usual failure budget.
    assert spec.resolve_counts(load(BASE)) == spec.Counts(9, 9, 3)
    # One trial more: the best config again; a failure must end it rather than stall it.
    assert spec.resolve_counts(load(base(add="maxTrialCount: 10\n"))) == spec.Counts(9, 10, 1)
    assert spec.resolve_counts(load(base(add="parallelTrialCount: 12\n"))) == spec.Counts(12, 12, 3)


def test_resource_may_be_a_double_placeholder() -> None:
    loaded = load(
        base(
            replace=(
                "{name: num_epochs, parameterType: int, feasibleSpace: {min: 1, max: 9}}",
                "{name: num_epochs, parameterType: double, feasibleSpace: {min: 1, max: 1}}",
            )
        )
    )
    lines = katib.trial_command_lines(loaded, ["python", "train.py"], seed_flag="seed")
    # The service writes str(int(r)) whatever the parameter's type.
    assert all("--num_epochs=1" in line for line in lines)


def test_cli_seeds_are_refused_with_the_reason() -> None:
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(load(BASE), seeds=3)
    assert caught.value.message.startswith(
        "--seeds: seeds with algorithm hyperband cannot be one Katib Experiment"
    )
    assert "promotes single trials to more num_epochs" in caught.value.message
    assert "fixed:" in (caught.value.hint or "")


# --------------------------------------------------------------------------- trials and brackets


def test_trial_lines_carry_the_round_resource_value() -> None:
    loaded = spec.load(str(EXAMPLE))
    lines = katib.trial_command_lines(loaded, ["python", "train.py"], seed_flag="seed")
    assert len(lines) == 2
    for line in lines:
        assert line[-2] == "--num_epochs=1" and line[-1].startswith("--tensorboard_dir=")
        lr = float(next(a for a in line if a.startswith("--lr=")).split("=")[1])
        assert 0.01 <= lr <= 0.05


def test_trial_lines_show_the_promotion() -> None:
    loaded = load(base(add="maxTrialCount: 10\n"))
    lines = katib.trial_command_lines(loaded, ["python", "train.py"], seed_flag="seed")
    # A sample of the first round (5 of its 9 configs), then the best config at 3 epochs.
    assert [line[-2] for line in lines] == ["--num_epochs=1"] * 5 + ["--num_epochs=3"]
    assert lines[-1][:-2] == lines[0][:-2]


def test_explanation_text() -> None:
    hb = hyperband.Hyperband("num_epochs", 9.0, 3)
    assert hyperband.explain(hb, parallel=9, max_trials=10) == [
        "hyperband (Katib's suggestion service): eta=3, r_l=9, resource num_epochs",
        "  s_max = int(log(r_l)/log(eta)) = 2: 3 brackets; the first starts eta**s_max = 9 "
        "configs, so parallelTrialCount >= 9",
        "  bracket s=2: 9 configs at num_epochs=1, the best 3 at num_epochs=3, the best 1 at "
        "num_epochs=9",
        "  bracket s=1: 5 configs at num_epochs=3, the best 2 at num_epochs=9",
        "  bracket s=0: 3 configs at num_epochs=9",
        "this Experiment (parallelTrialCount 9, maxTrialCount 10) runs 10 trials:",
        "  9 random configs at num_epochs=1 (bracket s=2, round 0: Katib's service samples as "
        "many configs as parallelTrialCount)",
        "  then the best of them again at num_epochs=3 (bracket s=2, round 1)",
        "  Katib v0.19 gets no further: its service answers the next request with fewer trials "
        "than Katib asks for, and Katib refuses the reply (docs/search-yaml.md, hyperband)",
    ]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The quickstart example as a clean, pushed project, with Katib's hyperband example."""
    files = quickstart_files()
    files["hyperband.yaml"] = EXAMPLE.read_text()
    repo = make_repo(tmp_path, "lab-project", files=files, remote=False)
    repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    repo.git("branch", "--set-upstream-to=origin/main")
    monkeypatch.chdir(repo.path)
    for key in ("LAUNCH_BACKEND", "LAUNCH_NAMESPACE", "LAUNCH_HOME", "LAUNCH_CONTEXT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return repo.path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, cli.with_default_command(list(args)), prog_name="launch")


def test_render_explains_the_brackets(project: Path) -> None:
    result = invoke("render", "hyperband.yaml", "--", "python", "train.py")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert (
        "# hyperband (Katib's suggestion service): eta=2, r_l=2, resource num_epochs\n"
        "#   s_max = int(log(r_l)/log(eta)) = 1: 2 brackets; the first starts eta**s_max = 2 "
        "configs, so parallelTrialCount >= 2\n"
        "#   bracket s=1: 2 configs at num_epochs=1, the best 1 at num_epochs=2\n"
        "#   bracket s=0: 2 configs at num_epochs=2\n"
        "# this Experiment (parallelTrialCount 2, maxTrialCount 2) runs 2 trials:\n"
        "#   2 random configs at num_epochs=1 (bracket s=1, round 0: Katib's service samples as "
        "many configs as parallelTrialCount)\n"
        "#   (maxTrialCount 3 would add the best of them at num_epochs=2)\n"
    ) in out
    trials = [line for line in out.splitlines() if line.startswith("#   python")]
    assert len(trials) == 2 and all("--num_epochs=1 " in line for line in trials)
    docs = list(yaml.safe_load_all(out))  # the explanation is YAML comments
    assert docs[-1]["spec"]["algorithm"]["algorithmName"] == "hyperband"


def test_dry_run_json_has_the_notes(project: Path) -> None:
    result = invoke(
        "--backend", "katib", "--dry-run", "--json", "hyperband.yaml", "--", "python", "train.py"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["notes"][0].startswith("hyperband (Katib's suggestion service): eta=2")
    assert doc["trialsComplete"] is False


def test_local_backend_refuses_and_names_the_cluster(project: Path) -> None:
    for extra in ((), ("--dry-run",)):
        result = invoke("--backend", "local", *extra, "hyperband.yaml", "--", "python", "train.py")
        assert result.exit_code == 2, result.output
        assert "error: algorithm `hyperband` runs on the cluster only" in result.stderr
        assert "sets num_epochs for each trial itself" in result.stderr
        assert "hint: run it on the cluster (--backend katib" in result.stderr
        assert not (project / ".launch").exists()
    assert "hyperband" not in sampling.LOCAL_ALGORITHMS


def test_render_with_seeds_is_refused(project: Path) -> None:
    result = invoke("render", "hyperband.yaml", "--seeds", "3", "--", "python", "train.py")
    assert result.exit_code == 2
    assert "--seeds: seeds with algorithm hyperband cannot be one Katib Experiment" in (
        result.stderr
    )


# --------------------------------------------------------------------------- results


def _katib_trial(name: str, epochs: str, lr: str, loss: float | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": "Succeeded" if loss is not None else "Running",
                "status": "True",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ]
    }
    if loss is not None:
        status["observation"] = {
            "metrics": [{"name": "loss", "min": str(loss), "max": str(loss), "latest": str(loss)}]
        }
    return {
        "metadata": {"name": name},
        "spec": {
            "parameterAssignments": [
                {"name": "lr", "value": lr},
                {"name": "momentum", "value": "0.7"},
                {"name": "num_epochs", "value": epochs},
            ]
        },
        "status": status,
    }


def test_results_are_grouped_by_resource_value() -> None:
    loaded = spec.load(str(EXAMPLE))
    trials = [
        _katib_trial("t1", "1", "0.01", 0.30),
        _katib_trial("t2", "1", "0.02", 0.20),
        _katib_trial("t3", "2", "0.02", 0.25),  # the best config, trained twice as long
        _katib_trial("t4", "1", "0.03", None),
    ]
    rows = [katib_status.trial_row(t, spec=loaded, number=i) for i, t in enumerate(trials, 1)]
    assert [r.resource for r in rows] == ["num_epochs=1"] * 2 + ["num_epochs=2", "num_epochs=1"]
    assert rows[2].params["num_epochs"] == 2
    ranked = results.rank(rows, minimize=True)
    # The longest-trained round first (its 0.25 is not comparable with 0.2 after one epoch).
    assert [r.name for r in ranked] == ["t3", "t2", "t1", "t4"]
    header, table = results.to_rows(ranked, "loss", precise=False)
    assert header[:4] == ["trial", "status", "resource", "loss"]
    assert [row[2] for row in table] == ["num_epochs=2"] + ["num_epochs=1"] * 3
    back = results.from_json(results.to_json(ranked))
    assert back == ranked
    assert json.loads(results.to_json(ranked))[0]["resource"] == "num_epochs=2"


def test_other_algorithms_keep_their_schema() -> None:
    row = results.Trial(name="t", number=1, params={"lr": 0.1}, status="Succeeded", objective=0.1)
    assert "resource" not in json.loads(results.to_json([row]))[0]
    assert "resource" not in results.to_rows([row], "loss")[0]
    assert "resource" not in results.to_csv([row], "loss")


# --------------------------------------------------------------------------- the API emulator

lab = test_submit.lab  # a project, the API emulator with Katib's webhook, a real registry
NS = test_submit.NS


def _first_round(experiment: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """What Katib v0.19's hyperband service answers the first request with: as many random
    configs as asked (parallelTrialCount), the resource parameter set to int(r_l * eta**-s_max)
    (service.py _make_master_bracket, HyperBandParam.convert)."""
    spec_ = experiment["spec"]
    settings = {s["name"]: s["value"] for s in spec_["algorithm"]["algorithmSettings"]}
    eta, r_l = int(float(settings["eta"])), float(settings["r_l"])
    s_max = int(math.log(r_l) / math.log(eta))
    assert spec_["parallelTrialCount"] >= math.ceil(eta**s_max)  # ValidateAlgorithmSettings
    out = []
    for _ in range(spec_["parallelTrialCount"]):
        values: dict[str, Any] = {}
        for param in spec_["parameters"]:
            space = param["feasibleSpace"]
            value = rng.uniform(float(space["min"]), float(space["max"]))
            values[param["name"]] = round(value) if param["parameterType"] == "int" else value
        values[settings["resource_name"]] = int(r_l * eta ** (-s_max))
        out.append(values)
    return out


def test_katibs_example_runs_to_its_first_trial(lab: test_submit.Lab) -> None:
    (lab.repo / "hyperband.yaml").write_text(EXAMPLE.read_text())
    for args in (
        ["add", "hyperband.yaml"],
        ["-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "hyperband"],
        ["update-ref", "refs/remotes/origin/main", "HEAD"],  # pushed
    ):
        subprocess.run(["git", *args], cwd=lab.repo, check=True)
    lab.kaniko.auto("succeed")
    rng = random.Random(1)

    def play() -> None:
        name = test_submit._once_watching(lab, "trials")
        experiment = lab.kube.get_object("experiments", NS, name)
        assert experiment is not None
        first, second = lab.katib.create_trials(NS, name, _first_round(experiment, rng))
        lab.katib.run_trial(NS, first.name)
        lab.katib.succeed_trial(NS, first.name, {"loss": 0.4})
        lab.katib.run_trial(NS, second.name)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    # Katib's example sweeps --lr/--momentum/--num_epochs, which the quickstart's train.py does
    # not have: the preflight would refuse it (rightly); this test is about Katib's side.
    result = test_submit.invoke("--name", "hb", "--timeout", "60s", "--no-preflight",
                                "hyperband.yaml", "--", "python", "train.py")  # fmt: skip
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "a first trial of hb succeeded" in result.stderr
    # The Experiment passed the webhook (dry-run, then create) as rendered: hyperband's settings
    # and the min = max placeholder of its resource parameter.
    created = lab.kube.get_object("experiments", NS, "hb")
    assert created is not None
    assert created["spec"]["algorithm"]["algorithmSettings"] == [
        {"name": "resource_name", "value": "num_epochs"},
        {"name": "eta", "value": "2"},
        {"name": "r_l", "value": "2"},
    ]
    assert (created["spec"]["parallelTrialCount"], created["spec"]["maxTrialCount"]) == (2, 2)
    trials = lab.kube.objects("trials", NS)
    assigned = [{a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]} for t in trials]
    assert [a["num_epochs"] for a in assigned] == ["1", "1"]
    table = test_submit.invoke("results", "hb", "--per-trial")
    assert table.exit_code == 0, table.output
    assert re.search(r"\bresource\b", table.stdout.splitlines()[0])
    assert table.stdout.count("num_epochs=1") == 2
