"""`--nodes N` end to end through the CLI (issue 23): the Experiment a multi-node launch renders
and creates (a TrainJob trial, rank 0 the primary pod, torchrun in front of the command), what
`--nodes 1` leaves alone, and what is refused before anything is created."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from launch import trainjob
from launch.errors import ExitCode
from tests import test_submit
from tests.test_submit import NS, RUN, Lab, creates, invoke
from tests.test_trainjob import validate_trainjob

lab = test_submit.lab  # the cluster lab fixture: emulated API, real registry, quickstart repo

ROOT = Path(__file__).resolve().parents[1]
MULTI = ["--nodes", "2", "--gpus", "8"]
PARAMS = {"optim.lr": 0.01, "hidden": 8, "activation": "relu"}


def _render(*flags: str) -> dict[str, Any]:
    result = invoke("render", "--json", "--no-preflight", *flags, *RUN)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)["experiment"])


def test_two_nodes_render_a_trainjob_trial_whose_rank_0_is_the_primary_pod(lab: Lab) -> None:
    doc = _render(*MULTI, "--queue", "team-a")
    template = doc["spec"]["trialTemplate"]
    assert {k: template[k] for k in trainjob.trial_template_fields()} == (
        trainjob.trial_template_fields()
    )
    job = template["trialSpec"]
    assert job["kind"] == "TrainJob" and job["apiVersion"] == trainjob.API_VERSION
    assert job["spec"]["runtimeRef"]["name"] == "launch-torch"  # the `trainer_runtime` default
    assert job["metadata"]["labels"] == {"kueue.x-k8s.io/queue-name": "team-a"}
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["image"].startswith("127.0.0.1:30500/lab-project")
    # torchrun in front of the user's `python train.py`, under the same interpreter.
    words = shlex.split(trainer["args"][0].replace("$$", "$"))
    assert words[:5] == [
        "python",
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=8",
    ]
    assert words[5] == "train.py" and words[-1] == "--tensorboard_dir=/var/log/katib/tfevent/"
    params = [tp["name"] for tp in template["trialParameters"]]
    for name in params:  # Katib's webhook: every trialParameter appears in the trialSpec
        assert "${trialParameters." + name + "}" in json.dumps(job)
    text = json.dumps(job)
    for name in params:  # substituted, as Katib does before it creates the TrainJob
        text = text.replace("${trialParameters." + name + "}", "1")
    validate_trainjob(json.loads(text))
    assert creates(lab.kube, "experiments") == 0


def test_render_says_which_launcher_starts_the_command(lab: Lab) -> None:
    text = invoke("render", "--no-preflight", *MULTI, *RUN).stdout
    assert "each trial: a TrainJob of 2 nodes" in text and "torch.distributed.run" in text
    own = invoke("render", "--no-preflight", *MULTI, "search.yaml", "--", "torchrun",
                 "train.py").stdout  # fmt: skip
    assert "each trial: a TrainJob of 2 nodes" in own


def test_one_node_is_the_batch_job_exactly(lab: Lab) -> None:
    same = ("--name", "one", "--gpus", "8")
    assert _render("--nodes", "1", *same) == _render(*same)


def test_a_multi_node_launch_creates_the_trainjob_experiment(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    result = invoke("--name", "multi", "--detach", "--no-preflight", *MULTI, *RUN)
    assert result.exit_code == 0, result.output
    exp = lab.kube.get_object("experiments", NS, "multi")
    assert exp is not None
    assert exp["spec"]["trialTemplate"]["trialSpec"]["kind"] == "TrainJob"
    assert "@sha256:" in exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["trainer"]["image"]


def test_what_a_multi_node_trial_cannot_take_is_refused_before_anything(lab: Lab) -> None:
    for flags, words in (
        (["--volume", "ckpt:/ckpt", "--checkpoint-dir", "/ckpt"], "--checkpoint-dir with --nodes"),
        (["--env", "PET_NNODES=3"], "--env PET_NNODES"),
    ):
        result = invoke("--name", "refused", "--detach", *MULTI, *flags, *RUN)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert words in result.stderr and "hint:" in result.stderr
    assert creates(lab.kube, "experiments") == 0 and creates(lab.kube, "jobs") == 0


def test_the_local_backend_refuses_more_than_one_node(lab: Lab) -> None:
    result = invoke("--backend", "local", "--nodes", "2", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--nodes 2: the local backend runs each trial on this one machine" in result.stderr
    assert "torchrun" in result.stderr


def _play(lab: Lab, name: str, outcome: Callable[[str], None]) -> threading.Thread:
    """Katib and the Trainer: once the Experiment exists, one trial whose two nodes run, then
    `outcome(trial)`."""

    # The runtime deploy/trainer installs (launch's default `trainer_runtime`), as shipped.
    runtime = yaml.safe_load((ROOT / "deploy/trainer/runtimes/launch-torch.yaml").read_text())
    lab.kube.put("clustertrainingruntimes", runtime)

    def play() -> None:
        lab.kube.wait_for(lambda: lab.kube.get_object("experiments", NS, name), timeout_s=60)
        (trial,) = lab.katib.create_trials(NS, name, [PARAMS])
        lab.katib.run_trial(NS, trial.name)
        outcome(trial.name)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


@pytest.mark.trainer
def test_a_two_node_sweep_runs_to_its_first_success_with_per_rank_logs_then_cancels(
    lab: Lab,
) -> None:
    lab.kaniko.auto("succeed")
    logs = {0: "rank 0: epoch 1 loss 0.5\n", 1: "rank 1: epoch 1 loss 0.5\n"}
    driver = _play(lab, "multi", lambda trial: lab.katib.succeed_trial(
        NS, trial, {"val_loss": 0.02, "train_loss": 0.03}, logs=logs))  # fmt: skip
    result = invoke("--name", "multi", "--no-preflight", "--timeout", "60s", *MULTI, *RUN)
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "Succeeded" in result.stderr and "val_loss=0.02" in result.stderr
    trainjobs = lab.kube.objects("trainjobs", NS)
    assert len(trainjobs) == 1 and trainjobs[0]["spec"]["trainer"]["numNodes"] == 2

    status = invoke("status", "multi")
    assert status.exit_code == 0, status.output
    assert "trials: 1 succeeded" in status.stdout and "best: multi-" in status.stdout
    rank1 = invoke("logs", "multi", "--trial", "1", "--rank", "1")
    assert rank1.exit_code == 0, rank1.output
    assert rank1.stdout == logs[1] and " rank 1 pod " in rank1.stderr
    rank0 = invoke("logs", "multi", "--trial", "1")
    assert rank0.stdout == logs[0]
    missing = invoke("logs", "multi", "--trial", "1", "--rank", "5")
    assert missing.exit_code == ExitCode.USAGE and "ranks 0, 1" in missing.stderr

    cancelled = invoke("cancel", "multi")
    assert cancelled.exit_code == 0, cancelled.output
    assert lab.kube.objects("trainjobs", NS) == []
    assert [p for p in lab.kube.objects("pods", NS) if "katib.kubeflow.org/trial" in p["metadata"]
            .get("labels", {})] == []  # fmt: skip
    results = invoke("results", "multi", "--format", "json")  # kept after the cancel
    assert results.exit_code == 0, results.output
    assert json.loads(results.stdout)[0]["metrics"]["val_loss"] == 0.02


@pytest.mark.trainer
def test_a_failing_rank_fails_the_trial_and_its_log_is_there(lab: Lab) -> None:
    lab.kaniko.auto("succeed")

    def fail(trial: str) -> None:
        lab.katib.fail_trial(NS, trial, rank=1, exit_code=1, logs={1: "RuntimeError: NCCL error\n"})
        lab.katib.finish(NS, "broken", succeeded=False)  # maxFailedTrialCount reached

    driver = _play(lab, "broken", fail)
    result = invoke("--name", "broken", "--no-preflight", "--timeout", "60s", *MULTI, *RUN)
    driver.join(10)
    assert result.exit_code == ExitCode.TRIAL_FAILED, result.output
    assert "RuntimeError: NCCL error" in result.stderr  # the failing rank's log tail
    rank1 = invoke("logs", "broken", "--trial", "1", "--rank", "1")
    assert "NCCL error" in rank1.stdout


@pytest.mark.trainer
def test_a_rank_that_cannot_be_placed_is_explained(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    said: list[str] = []

    def pending(trial: str) -> None:
        lab.katib.unschedulable(NS, trial, rank=1)
        said.append(trial)

    driver = _play(lab, "tight", pending)
    result = invoke("--name", "tight", "--no-preflight", "--timeout", "8s", *MULTI, *RUN)
    driver.join(10)
    assert said and result.exit_code == ExitCode.TIMED_OUT, result.output
    assert "Insufficient nvidia.com/gpu" in result.stderr


@pytest.mark.trainer
def test_a_multi_node_trial_kueue_holds_back_is_explained(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    quota = ("couldn't assign flavors to pod set node: insufficient unused quota for "
             "nvidia.com/gpu in flavor default-flavor, 16 more needed")  # fmt: skip
    driver = _play(lab, "queued", lambda trial: lab.katib.kueue_pending(
        NS, trial, queue="team-a", message=quota))  # fmt: skip
    result = invoke("--name", "queued", "--no-preflight", "--timeout", "8s", "--queue", "team-a",
                    *MULTI, *RUN)  # fmt: skip
    driver.join(10)
    assert result.exit_code == ExitCode.TIMED_OUT, result.output
    assert "16 more needed" in result.stderr
