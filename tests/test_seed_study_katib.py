"""Seed studies on Katib, end to end through the API emulator (the real `kubernetes` client, the
real registry, the quickstart project): a search, `launch seeds` of its best configs as one grid
Experiment that Katib's webhook admits, each trial's argv, and the results grouped by config;
`--seeds` with a non-grid search on Katib (a plan, not a refusal); export and import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from launch import contract, katib
from launch.spec import CONFIG_PARAM, LaunchSpec
from tests import test_submit
from tests.kube_emulator import KubeEmulator
from tests.test_katib import assert_katib_facts, kubernetes_expand
from tests.test_submit import NS, RUN, Lab, creates, invoke

lab = test_submit.lab  # the cluster lab fixture: emulated API, real registry, quickstart repo

# The search's trials as Katib would report them: val_loss is the objective (minimize).
SOURCE = [
    ({"optim.lr": 0.01, "hidden": 8, "activation": "relu"}, 0.30),
    ({"optim.lr": 0.05, "hidden": 16, "activation": "tanh"}, 0.10),
    ({"optim.lr": 0.02, "hidden": 4, "activation": "relu"}, 0.20),
    ({"optim.lr": 0.08, "hidden": 32, "activation": "tanh"}, None),  # fails: not ranked
]


def _search(lab: Lab, name: str = "src") -> None:
    lab.kaniko.auto("succeed")
    result = invoke("--name", name, "--detach", *RUN)
    assert result.exit_code == 0, result.output
    handles = lab.katib.create_trials(NS, name, [params for params, _ in SOURCE])
    for handle, (_, loss) in zip(handles, SOURCE, strict=True):
        lab.katib.run_trial(NS, handle.name)
        if loss is None:
            lab.katib.fail_trial(NS, handle.name, log="ValueError: diverged\n")
        else:
            lab.katib.succeed_trial(NS, handle.name, {"val_loss": loss, "train_loss": loss})


def _argv(kube: KubeEmulator, experiment: dict[str, Any], assignment: dict[str, str],
          bin_dir: Path) -> list[str]:  # fmt: skip
    """What the program receives in a trial with `assignment`: Katib substitutes the placeholders,
    Kubernetes expands `$(...)`, the pod webhook appends `&& echo completed`, `sh -c` runs it
    (with a `python` that prints its argv)."""
    args = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"][0]
    for name, value in assignment.items():
        args = args.replace("${trialParameters." + name + "}", value)
    args = kubernetes_expand(args, {})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["sh", "-c", args + " && :"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def _printer(tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c "
        "'import sys, json; print(json.dumps(sys.argv[1:]))' \"$@\"\n"
    )
    python.chmod(0o755)
    return bin_dir


def test_seeds_on_katib_is_one_admitted_grid_whose_trials_get_their_config(
    lab: Lab, tmp_path: Path
) -> None:
    _search(lab)
    result = invoke("seeds", "src", "--top", "2", "--seeds", "3", "--name", "st", "--detach")
    assert result.exit_code == 0, result.output
    assert "seed study of src: its 2 best configs by mean val_loss" in result.stderr
    assert "1 trials of src had no finished value (1 Failed): not ranked" in result.stderr
    # One Experiment, admitted by the webhook (server-side dry run, then the create).
    assert creates(lab.kube, "experiments") == 2
    doc = lab.kube.get_object("experiments", NS, "st")
    assert doc is not None
    # Katib's validator: every trialParameter is used, and no other placeholder is left.
    template = doc["spec"]["trialTemplate"]
    text = json.dumps(template["trialSpec"])
    for param in template["trialParameters"]:
        assert "${trialParameters." + param["name"] + "}" in text
        text = text.replace("${trialParameters." + param["name"] + "}", "1")
    assert "${trialParameters." not in text
    spec = doc["spec"]
    assert spec["algorithm"] == {"algorithmName": "grid"}
    assert spec["maxTrialCount"] == 6
    assert [(p["name"], p["parameterType"]) for p in spec["parameters"]] == [
        (CONFIG_PARAM, "discrete"),
        ("seed", "int"),
    ]
    assert spec["parameters"][0]["feasibleSpace"] == {"list": ["1", "2"]}
    assert spec["parameters"][1]["feasibleSpace"] == {"min": "0", "max": "2", "step": "1"}

    # Each trial's argv carries its config (best first) and its seed, as any trial's would.
    best, second = SOURCE[1][0], SOURCE[2][0]
    bin_dir = _printer(tmp_path)
    for number, config in ((1, best), (2, second)):
        for seed in range(3):
            argv = _argv(lab.kube, doc, {CONFIG_PARAM: str(number), "seed": str(seed)}, bin_dir)
            expected = contract.trial_argv(
                ["train.py"],
                contract.merge_params({"epochs": 200}, {**config, "seed": seed}),
                contract.TFEVENT_DIR,
            )
            assert argv == expected
    # An unknown config number fails the trial before the program runs.
    args = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    text = kubernetes_expand(
        args["args"][0]
        .replace("${trialParameters.launch_config}", "9")
        .replace("${trialParameters.seed}", "0"),
        {},
    )
    done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "no config number 9" in done.stderr

    # Katib runs the grid; results come back grouped by config, with the config's flags.
    values = {(1, 0): 0.11, (1, 1): 0.13, (1, 2): 0.12, (2, 0): 0.2, (2, 1): 0.22, (2, 2): 0.24}
    handles = lab.katib.create_trials(
        NS, "st", [{CONFIG_PARAM: str(c), "seed": str(s)} for c, s in values]
    )
    for handle, loss in zip(handles, values.values(), strict=True):
        lab.katib.run_trial(NS, handle.name)
        lab.katib.succeed_trial(NS, handle.name, {"val_loss": loss, "train_loss": loss})
    lab.katib.finish(NS, "st")
    # Watched (here reattached), each trial shows the flags it ran, not its config number.
    watched = invoke("watch", "st", "--json")
    assert watched.exit_code == 0, watched.output
    finished = [e for e in map(json.loads, watched.stdout.splitlines())
                if e.get("event") == "trial_finished"]  # fmt: skip
    assert len(finished) == 6 and all(CONFIG_PARAM not in e["params"] for e in finished)
    assert {json.dumps({k: v for k, v in e["params"].items() if k != "seed"}, sort_keys=True)
            for e in finished} == {json.dumps(c, sort_keys=True) for c in (best, second)}  # fmt: skip
    shown = invoke("results", "st", "--format", "json")
    assert shown.exit_code == 0, shown.output
    groups = json.loads(shown.stdout)
    assert [g["config"] for g in groups] == [1, 2]
    assert groups[0]["params"] == best and groups[1]["params"] == second
    assert groups[0]["n_succeeded"] == 3 and groups[0]["mean"] == pytest.approx(0.12)
    assert groups[0]["median"] == pytest.approx(0.12) and groups[0]["std"] == pytest.approx(0.01)
    assert groups[1]["mean"] == pytest.approx(0.22)
    table = invoke("results", "st")
    assert "seed study of src" in table.stderr and "3/3" in table.stdout
    per_trial = json.loads(invoke("results", "st", "--per-trial", "--json").stdout)
    assert all(CONFIG_PARAM not in r["params"] for r in per_trial)
    compare = invoke("compare", "st:1", "st:2")
    assert compare.exit_code == 0, compare.output
    assert "st:1 is better than st:2" in compare.stdout

    # Exported, the study survives the deletion of its Experiment.
    exported = invoke("results", "st", "--format", "export")
    assert exported.exit_code == 0, exported.output
    (tmp_path / "st.json").write_text(exported.stdout)
    assert invoke("cancel", "st").exit_code == 0
    assert lab.kube.get_object("experiments", NS, "st") is None
    loaded = invoke("import", str(tmp_path / "st.json"), "--name", "st-saved")
    assert loaded.exit_code == 0, loaded.output
    again = json.loads(invoke("results", "st-saved", "--format", "json").stdout)
    assert [(g["config"], g["mean"]) for g in again] == [(g["config"], g["mean"]) for g in groups]
    assert invoke("compare", "st-saved:1", "st-saved:2").exit_code == 0


def test_seeds_refuses_bad_input_with_a_hint(lab: Lab) -> None:
    _search(lab)
    too_many = invoke("seeds", "src", "--top", "4", "--seeds", "2")
    assert too_many.exit_code == 2
    assert "error: --top 4: src has only 3 configs with a finished value" in too_many.stderr
    assert "hint: pass --top 3 or less" in too_many.stderr
    unknown = invoke("seeds", "nosuch", "--top", "1")
    assert unknown.exit_code == 2 and "error: no local experiment `nosuch`" in unknown.stderr
    assert "hint:" in unknown.stderr
    assert creates(lab.kube, "experiments") == 1  # only the search


def test_seeds_with_a_random_search_on_katib_is_a_plan_not_a_refusal(lab: Lab) -> None:
    rendered = invoke("render", "--seeds", "5", *RUN)
    assert rendered.exit_code == 0, rendered.output
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    experiment = next(d for d in docs if d.get("kind") == "Experiment")
    assert experiment["spec"]["algorithm"]["algorithmName"] == "random"
    assert "seed" not in [p["name"] for p in experiment["spec"]["parameters"]]
    assert "--top 3 --seeds 5" in rendered.stdout and "cannot be one Katib" in rendered.stderr

    lab.kaniko.auto("succeed")
    run = invoke("--name", "plan", "--seeds", "5", "--detach", *RUN)
    assert run.exit_code == 0, run.output
    assert "launch seeds plan --top 3 --seeds 5" in run.stdout
    created = lab.kube.get_object("experiments", NS, "plan")
    assert created is not None
    assert "seed" not in [p["name"] for p in created["spec"]["parameters"]]

    detached = invoke("--name", "plan2", "--seeds", "2", "--then-seeds", "2", "--detach", *RUN)
    assert detached.exit_code == 0, detached.output
    assert "will not start" in detached.stderr
    assert "launch seeds plan2 --top 2 --seeds 2" in detached.stdout


def test_study_specs_render_like_any_spec() -> None:
    """The study's trial command quotes the configs' values as every trial command does."""
    from launch import spec as spec_module

    search = LaunchSpec.model_validate(
        {
            "objective": {"type": "maximize", "objectiveMetricName": "acc"},
            "fixed": {"note": "costs $5 & $(HOME)"},
        }
    )
    configs = [
        {"act": "a b*", "lr": 0.5, "flag": True},
        {"act": "it's", "lr": 1e-05, "flag": False},
    ]
    study = spec_module.study_spec(search, configs, seeds=(3, 17))
    doc = katib.render_experiment(
        spec=study, name="tricky", namespace=NS, image="img", command=["python", "t.py"],
        commit="c" * 40, branch="main", user="u", mlflow_tracking_uri="http://mlflow:5000",
    )  # fmt: skip
    assert_katib_facts(doc, gpus=0)
    assert doc["spec"]["parameters"][1]["feasibleSpace"] == {"list": ["3", "17"]}
    lines = katib.trial_command_lines(study, ["python", "t.py"], seed_flag="seed")
    assert [line[3:7] for line in lines][:2] == [
        ["--act=a b*", "--lr=0.5", "--flag=true", "--seed=3"],
        ["--act=a b*", "--lr=0.5", "--flag=true", "--seed=17"],
    ]


def test_then_seeds_on_katib_runs_the_search_then_the_study_in_one_command(lab: Lab) -> None:
    """`--seeds 2 --then-seeds 1`: the search to its end, then its best config x 2 seeds as one
    grid Experiment, both followed by the same launch."""
    lab.kaniko.auto("succeed")

    def play() -> None:
        lab.kube.wait_for(lambda: lab.kube.get_object("experiments", NS, "auto"), timeout_s=60)
        handles = lab.katib.create_trials(NS, "auto", [p for p, _ in SOURCE[:3]])
        for handle, (_, loss) in zip(handles, SOURCE[:3], strict=True):
            lab.katib.run_trial(NS, handle.name)
            lab.katib.succeed_trial(NS, handle.name, {"val_loss": loss, "train_loss": loss})
        lab.katib.finish(NS, "auto", succeeded=True)
        lab.kube.wait_for(
            lambda: lab.kube.get_object("experiments", NS, "auto-seeds"), timeout_s=60
        )
        study = lab.katib.create_trials(
            NS, "auto-seeds", [{CONFIG_PARAM: "1", "seed": "0"}, {CONFIG_PARAM: "1", "seed": "1"}]
        )
        for handle, loss in zip(study, (0.11, 0.13), strict=True):
            lab.katib.run_trial(NS, handle.name)
            lab.katib.succeed_trial(NS, handle.name, {"val_loss": loss, "train_loss": loss})
        lab.katib.finish(NS, "auto-seeds", succeeded=True)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    result = invoke("--name", "auto", "--seeds", "2", "--then-seeds", "1", "--timeout", "60s", *RUN)
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "launch seeds auto --top 1 --seeds 2" in result.stdout
    assert "seed study of auto: its 1 best configs" in result.stderr
    study = lab.kube.get_object("experiments", NS, "auto-seeds")
    assert study is not None and study["spec"]["maxTrialCount"] == 2
    assert [p["name"] for p in study["spec"]["parameters"]] == [CONFIG_PARAM, "seed"]
    # The study's table, printed at its end: one config (the search's best), two seeds.
    assert "2/2" in result.stdout and "0.12" in result.stdout
