# ruff: noqa: F811  (`lab`, the fixture shared with test_submit, is every test's argument)
"""Preflight on the cluster backend: the real `kubernetes` client, the API emulator (which runs
the preflight pod's container as a process here, as a kubelet runs it in the image: the image
is the checked-out repo), the real registry, a real Draccus trainer (the quickstart's)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from launch import preflight, preflight_local, preflight_pod
from launch import spec as spec_module
from launch.contract import TFEVENT_DIR
from launch.errors import ExitCode
from tests.kube_emulator import expand_k8s
from tests.test_submit import RUN, Lab, creates, invoke, lab  # noqa: F401

PREFLIGHT = "launch/preflight"


def _commit_spec(lab: Lab, text: str) -> None:
    """A new search.yaml, committed and 'pushed' (the remote ref follows HEAD)."""
    (lab.repo / "search.yaml").write_text(text)
    subprocess.run(["git", "commit", "-qam", "spec"], cwd=lab.repo, check=True)
    subprocess.run(
        ["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=lab.repo, check=True
    )


def _preflight_pods(lab: Lab) -> list[dict[str, Any]]:
    return [
        o
        for o in lab.kube.objects("pods", "default")
        if PREFLIGHT in o["metadata"].get("labels", {})
    ]


def _mistaken_spec(lab: Lab) -> str:
    spec = yaml.safe_load((lab.repo / "search.yaml").read_text())
    spec["fixed"] = {"epoch": 5, "hidden": "1e3"}  # a typo, and a value an int field refuses
    spec["parameters"] = [p for p in spec["parameters"] if p["name"] != "hidden"]
    spec["maxTrialCount"] = 2
    return yaml.safe_dump(spec, sort_keys=False)


def test_a_mistake_is_refused_in_the_pod_and_no_experiment_is_created(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    _commit_spec(lab, _mistaken_spec(lab))
    result = invoke("--name", "typo", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    out = result.output
    assert "search.yaml:" in out and "fixed.epoch: the program's config has no field `epoch`" in out
    assert "hint: did you mean `epochs`?" in out
    assert "fixed.hidden: the program refuses `--hidden=1e3`" in out
    assert "hint: the field `hidden` is an int: write 1000" in out
    assert "nothing was launched" in out
    # The check ran in a pod (created once, deleted after), and nothing else was created.
    assert creates(lab.kube, "pods") == 1
    assert _preflight_pods(lab) == []
    assert creates(lab.kube, "experiments") == 0
    assert not (Path(lab.env["LAUNCH_HOME"]) / "experiments" / "typo").exists()


def test_a_correct_sweep_passes_the_pod_check_and_is_created(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    result = invoke("--name", "fine", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "preflight: the program's Draccus parser read 4 flag sets" in result.output
    assert "no problems" in result.output
    assert creates(lab.kube, "pods") == 1 and _preflight_pods(lab) == []
    assert creates(lab.kube, "experiments") == 1


def test_no_preflight_creates_no_pod(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    _commit_spec(lab, _mistaken_spec(lab))
    result = invoke("--name", "skipped", "--detach", "--no-preflight", *RUN)
    assert result.exit_code == 0, result.output
    assert creates(lab.kube, "pods") == 0
    assert creates(lab.kube, "experiments") == 1


def test_an_image_that_cannot_be_pulled_is_reported_with_kubelets_words(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    lab.kube.preflight_pods = "manual"
    message = 'rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:30500/lab-project": not found'

    def stuck(pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        lab.kube.add_event("default", involved_kind="Pod", involved_name=name, reason="Failed",
                           message=f"Failed to pull image: {message}", type_="Warning")  # fmt: skip
        waiting = {"reason": "ErrImagePull", "message": message}
        lab.kube.patch("pods", "default", name, {"status": {"phase": "Pending", "containerStatuses": [
            {"name": "training", "ready": False, "restartCount": 0, "image": "", "imageID": "",
             "state": {"waiting": waiting}}]}})  # fmt: skip

    lab.kube.on_create("pods", stuck)
    result = invoke("--name", "nopull", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert (
        "the preflight could not run: pod default/nopull-preflight: image pull failed (ErrImagePull)"
        in result.output
    )
    assert "not found" in result.output
    assert creates(lab.kube, "experiments") == 0 and _preflight_pods(lab) == []


def test_a_quota_that_refuses_the_pod_is_reported(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    lab.kube.fail_next("create", "pods", code=403, message='pods "quota-preflight" is forbidden: exceeded quota: compute, requested: cpu=250m, used: cpu=64, limited: cpu=64')  # fmt: skip
    result = invoke("--name", "quota", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "the preflight could not run: pod default/quota-preflight was refused" in result.output
    assert "exceeded quota" in result.output
    assert creates(lab.kube, "experiments") == 0


def test_render_says_the_preflight_would_run(lab: Lab) -> None:
    result = invoke("render", "--json", *RUN)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["preflight"]["enabled"] is True and doc["preflight"]["flagSets"] == 4
    text = invoke("render", *RUN).stdout
    assert "# preflight (one CPU-only pod of the image, before the Experiment)" in text
    assert (
        "# preflight: skipped (--no-preflight)" in invoke("render", "--no-preflight", *RUN).stdout
    )


def _experiment(lab: Lab, *extra: str) -> dict[str, Any]:
    result = invoke("render", "--json", *extra, *RUN)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout)["experiment"])


def test_the_pod_is_the_trial_pod_without_gpus_and_is_valid(lab: Lab) -> None:
    experiment = _experiment(
        lab, "--gpus", "8", "--memory", "64Gi", "--env", "WANDB_MODE=off", "--secret-env", "hf-token",
        "--node-selector", "gpu=h100", "--toleration", "nvidia.com/gpu=present:NoSchedule",
        "--volume", "datasets:/data", "--priority", "high",
    )  # fmt: skip
    spec = experiment["spec"]
    plan = preflight.plan(
        spec_module.load("search.yaml"), seed_flag="seed", tensorboard_dir=TFEVENT_DIR
    )
    pod = preflight_pod.pod_manifest(
        experiment, plan=plan, command=["python", "train.py"], subdir="sub dir",
        hook=preflight_local.hook_source(),
    )  # fmt: skip
    kubernetes_validate.validate(pod, "1.30", strict=True)
    trial_pod = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod_spec = pod["spec"]
    for key in ("volumes", "nodeSelector", "tolerations"):
        assert pod_spec[key] == trial_pod[key], key
    assert "priorityClassName" not in pod_spec and pod_spec["restartPolicy"] == "Never"
    assert pod_spec["activeDeadlineSeconds"] == preflight_pod.POD_TIMEOUT_S
    (container,) = pod_spec["containers"]
    (trial_container,) = [c for c in trial_pod["containers"] if c["name"] == "training"]
    assert container["image"] == trial_container["image"]
    assert container["envFrom"] == trial_container["envFrom"]
    assert container["volumeMounts"] == trial_container["volumeMounts"]
    assert container["resources"] == {
        "requests": preflight_pod.REQUESTS,
        "limits": {"memory": "64Gi"},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WANDB_MODE"] == "off" and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    # After Kubernetes' `$(...)` expansion: the request and the hook as launch wrote them.
    assert json.loads(expand_k8s(env[preflight.REQUEST_VAR], {})) == json.loads(plan.request())
    assert expand_k8s(env[preflight_pod.HOOK_VAR], {}) == preflight_local.hook_source()
    script = expand_k8s(container["args"][0], {})
    assert script.endswith("cd 'sub dir' && python train.py --help")
    assert pod["metadata"]["labels"][PREFLIGHT] == experiment["metadata"]["name"]


@pytest.mark.parametrize("text", ["a$b", "$(HOME)", "$$", "x$(NOPE)y", ""])
def test_expand_k8s_undoes_escape_dollar(text: str) -> None:
    from launch.podspec import escape_dollar

    assert expand_k8s(escape_dollar(text), {"HOME": "/root"}) == text
