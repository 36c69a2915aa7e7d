"""launch.trainjob: multi-node trials as Kubeflow Trainer v2.3 TrainJobs, checked offline.

- the rendered TrainJob against the v2.3.0 CRD's openAPIV3Schema (../shared/schemas/trainer-v2.3),
  strictly: a field the API server would prune fails the test;
- the runtime it references (`torch-distributed`) and the parts of it the patch names;
- rank 0 is the one pod per trial that Katib's primaryPodLabels select;
- the launcher decision, the args string run through Katib, Kubernetes and `sh -c`;
- the golden tests/golden/trainjob_2x8.yaml (`make goldens` / LAUNCH_UPDATE_GOLDENS=1, never CI).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from launch import contract, katib, names, podspec, spec, trainjob, yamltext
from launch.contract import ParamValue
from launch.errors import UsageError
from launch.spec import LaunchSpec
from tests import goldens
from tests.test_katib import TRICKY, kubernetes_expand

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
TRAINER = ROOT.parent / "shared" / "schemas" / "trainer-v2.3"

COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "registry.local:5000/proj@sha256:" + "3f" * 32
NAMESPACE = "research"
EXPERIMENT = names.experiment_name(stem="proj", commit=COMMIT, suffix="a1b2")
TRIAL = f"{EXPERIMENT}-x7k2m9qd"  # Katib's trial name: <experiment>-<8 random characters>
POD_LABELS = names.labels(user="ada", branch="feature/multi-node", commit=COMMIT)
ENV = contract.trial_env(
    experiment=EXPERIMENT,
    namespace=NAMESPACE,
    commit=COMMIT,
    image=IMAGE,
    tracking_uri="http://mlflow.mlflow.svc.cluster.local:5000",
)
FULL_OPTIONS: dict[str, Any] = {
    "gpus": 8,
    "cpus": 96,
    "memory": "1024Gi",
    "shm_size": "64Gi",
    "extra_env": {"HF_HOME": "/data/hf", "NOTE": "costs $5 & $(HOME)"},
    "secret_env": ["wandb", "hf-token"],
    "volumes": ["datasets:/data:ro", "checkpoints:/ckpt"],
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "tolerations": ["nvidia.com/gpu:NoSchedule", "dedicated=ml:NoExecute"],
    "queue": "team-a",
    "priority": "high",
    "service_account": "trainer",
    "trial_timeout_s": 6 * 3600,
}
SECRET_KEYS = {"wandb": ["WANDB_API_KEY"], "hf-token": ["HF_TOKEN", "not a name"]}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} missing: clone the shared/ checkout beside the repository")
    return path


def _one(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(_need(path).read_text()) if d]
    assert isinstance(doc, dict)
    return doc


def _strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever the API server prunes unknown
    fields (a structural schema with properties and no preserve-unknown-fields), so that a field
    it would silently drop fails validation here."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and schema.get("type") == "object"
    ):
        out["additionalProperties"] = False
    return out


@cache
def _validator(file: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_strict(_crd_schema(file)))


@cache
def _crd_schema(file: str) -> dict[str, Any]:
    crd = _one(TRAINER / file)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    assert version["served"] and version["storage"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def validate_trainjob(doc: dict[str, Any], *, name: str = TRIAL) -> None:
    """As the API server would see it once Katib has named it after the trial."""
    named = copy.deepcopy(doc)
    named.setdefault("metadata", {})["name"] = name
    named["metadata"]["namespace"] = NAMESPACE
    _validator("trainer.kubeflow.org_trainjobs.yaml").validate(named)
    schema = _crd_schema("trainer.kubeflow.org_trainjobs.yaml")
    # The CRD's CEL rules on the name (x-kubernetes-validations at the root).
    rules = [rule["rule"] for rule in schema["x-kubernetes-validations"]]
    assert "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')" in rules
    assert "size(self.metadata.name) <= 63" in rules
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


def render(
    command: list[str] | None = None,
    *,
    nodes: int = 2,
    options: dict[str, Any] | None = None,
    secret_keys: dict[str, list[str]] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    resources = podspec.trial_resources(**(FULL_OPTIONS if options is None else options))
    procs = max(resources.gpus, 1)
    args, _ = trainjob.trial_args(
        command or ["python", "train.py"],
        {"epochs": 3},
        [],
        nodes=nodes,
        procs_per_node=procs,
    )
    return trainjob.render_trainjob(
        image=IMAGE,
        args=args,
        env=ENV,
        resources=resources,
        nodes=nodes,
        pod_labels=POD_LABELS,
        secret_keys=SECRET_KEYS if secret_keys is None else secret_keys,
        **kwargs,
    )


def golden_document() -> dict[str, Any]:
    """What the Experiment's trialTemplate gets for `--nodes 2 --gpus 8` (less trialParameters)."""
    return {**trainjob.trial_template_fields(), "trialSpec": render()}


def node_patch(doc: dict[str, Any]) -> dict[str, Any]:
    (patch,) = doc["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == trainjob.NODE_JOB
    template: dict[str, Any] = job["template"]["spec"]["template"]
    return template


# --------------------------------------------------------------------------- golden


def test_golden_2x8() -> None:
    text = yamltext.to_yaml(golden_document())
    path = GOLDEN / "trainjob_2x8.yaml"
    if goldens.update_requested():
        path.write_text(text)
    assert path.exists(), f"{path} missing: run `make goldens`"
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"
    assert yaml.safe_load(path.read_text()) == golden_document()


def experiment_2x8() -> dict[str, Any]:
    """The whole Experiment of `--nodes 2 --gpus 8` (test_katib's `gpus8` case), with the
    Trainer runtime launch's deploy/ ships and a Secret, which comes as files."""
    from tests.test_katib import render as render_experiment

    return render_experiment("gpus8", gpus=8, nodes=2, queue="research", priority="high",
                             secret_env=["wandb"], trainer_runtime="launch-torch")  # fmt: skip


def test_golden_2x8_experiment() -> None:
    doc = experiment_2x8()
    text = yamltext.to_yaml(doc)
    path = GOLDEN / "experiment_trainjob_2x8.yaml"
    if goldens.update_requested():
        path.write_text(text)
    assert path.exists(), f"{path} missing: run `make goldens`"
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"
    assert yaml.safe_load(path.read_text()) == doc
    template = doc["spec"]["trialTemplate"]
    assert template["primaryPodLabels"] == trainjob.PRIMARY_POD_LABELS
    assert template["primaryContainerName"] == "node"
    assert template["trialSpec"]["spec"]["trainer"]["args"][0].startswith(
        trainjob.secret_prelude(podspec.trial_resources(secret_env=["wandb"]))
    )


# --------------------------------------------------------------------------- the CRD schema


@pytest.mark.parametrize(
    "options",
    [FULL_OPTIONS, {}, {"gpus": 8}, {"cpus": 4, "memory": "16Gi", "queue": "q"}],
    ids=["full", "bare", "gpus", "cpu-only"],
)
def test_trainjob_validates_against_the_v2_3_crd(options: dict[str, Any]) -> None:
    validate_trainjob(render(options=options))


def test_strict_schema_catches_what_the_api_server_would_prune() -> None:
    doc = render()
    node_patch(doc)["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "wandb"}}]
    with pytest.raises(jsonschema.ValidationError, match="envFrom"):
        validate_trainjob(doc)
    doc = render()
    doc["spec"]["trainer"]["imagePullPolicy"] = "Always"
    with pytest.raises(jsonschema.ValidationError, match="imagePullPolicy"):
        validate_trainjob(doc)


def test_trainjob_is_a_katib_trial_spec() -> None:
    """No name or namespace (Katib sets them); the one container command of the batch Job."""
    doc = render()
    assert doc["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and doc["kind"] == "TrainJob"
    assert set(doc["metadata"]) == {"labels"}
    assert doc["metadata"]["labels"] == {
        names.KUEUE_QUEUE_LABEL: "team-a",
        names.KUEUE_PRIORITY_LABEL: "high",
    }
    trainer = doc["spec"]["trainer"]
    assert trainer["command"] == ["sh", "-c"] and len(trainer["args"]) == 1
    assert trainer["image"] == IMAGE and "@sha256:" in trainer["image"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "96", "memory": "1024Gi"},
        "limits": {"memory": "1024Gi", "nvidia.com/gpu": "8"},
    }
    assert doc["spec"]["activeDeadlineSeconds"] == 6 * 3600
    assert doc["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }


def test_pod_options_go_to_the_node_pods() -> None:
    template = node_patch(render())
    assert template["metadata"]["labels"] == POD_LABELS
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    spec = template["spec"]
    assert spec["serviceAccountName"] == "trainer"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
    ]
    assert [v["name"] for v in spec["volumes"]] == ["dshm", "pvc-datasets", "pvc-checkpoints"]
    (container,) = spec["containers"]
    assert container == {
        "name": "node",
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "pvc-datasets", "mountPath": "/data", "readOnly": True},
            {"name": "pvc-checkpoints", "mountPath": "/ckpt"},
        ],
    }


def test_no_pod_options_means_no_keys() -> None:
    doc = render(options={}, secret_keys={})
    assert "metadata" not in doc and "activeDeadlineSeconds" not in doc["spec"]
    assert "resourcesPerNode" not in doc["spec"]["trainer"]
    assert doc["spec"]["trainer"]["numProcPerNode"] == 1
    template = node_patch(doc)
    assert "spec" not in template
    assert template["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}


def test_env_is_the_contract_then_the_users_then_secret_keys() -> None:
    env = render()["spec"]["trainer"]["env"]
    names_ = [item["name"] for item in env]
    assert names_ == [*ENV, "HF_HOME", "NOTE", "WANDB_API_KEY", "HF_TOKEN"]
    assert contract.ENV_TRIAL_NAME not in names_  # Katib's pod webhook injects it
    assert {"name": "NOTE", "value": "costs $$5 & $$(HOME)"} in env
    assert env[-1] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "HF_TOKEN"}},
    }


def test_secret_keys_follow_envfrom_precedence() -> None:
    options = {"extra_env": {"TOKEN": "explicit"}, "secret_env": ["a", "b"]}
    keys = {"a": ["TOKEN", "SHARED", "ONLY_A"], "b": ["SHARED"]}
    env = render(options=options, secret_keys=keys)["spec"]["trainer"]["env"]
    by_name = {item["name"]: item for item in env}
    assert by_name["TOKEN"] == {"name": "TOKEN", "value": "explicit"}
    assert by_name["SHARED"]["valueFrom"]["secretKeyRef"]["name"] == "b"
    assert by_name["ONLY_A"]["valueFrom"]["secretKeyRef"]["name"] == "a"
    assert len(by_name) == len(env)  # env is a list map keyed by name: no duplicates


def test_secret_env_with_some_keys_missing_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="hf-token"):
        render(secret_keys={"wandb": ["WANDB_API_KEY"]})


def test_secrets_without_their_keys_come_as_files_exported_like_envfrom(tmp_path: Path) -> None:
    """Launch may not read a Secret: each is mounted, and the prelude exports its files as
    envFrom would (run here by a real shell over a directory laid out as the kubelet does)."""
    resources = podspec.trial_resources(
        secret_env=["wandb", "hf.token"], extra_env={"HF_TOKEN": "explicit"}
    )
    job = trainjob.render_trainjob(image=IMAGE, args="true", env=ENV, resources=resources,
                                   nodes=2)  # fmt: skip
    assert not [e for e in job["spec"]["trainer"]["env"] if "valueFrom" in e]
    pod = node_patch(job)["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == [
        "wandb",
        "hf.token",
    ]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {f"{trainjob.SECRETS_DIR}/wandb", f"{trainjob.SECRETS_DIR}/hf.token"} <= mounts
    validate_trainjob(job)
    # The kubelet's layout: one file per key, plus its own dot-entries.
    root = tmp_path / "secrets"
    for secret, keys in {"wandb": {"WANDB_API_KEY": "w-1\n", "SHARED": "from wandb"},
                         "hf.token": {"HF_TOKEN": "h-1", "SHARED": "from hf",
                                      "not-a-name": "x", "..data": "y"}}.items():  # fmt: skip
        (root / secret).mkdir(parents=True)
        for key, value in keys.items():
            (root / secret / key).write_text(value)
    prelude = trainjob.secret_prelude(resources).replace(trainjob.SECRETS_DIR, str(root))
    program = 'printf "%s|%s|%s|%s" "$WANDB_API_KEY" "$HF_TOKEN" "$SHARED" "${not_a_name-unset}"'
    done = subprocess.run(["sh", "-c", kubernetes_expand(prelude, {}) + program],
                          env={"PATH": "/usr/bin:/bin", "HF_TOKEN": "explicit"},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # --env wins over a key; a later Secret over an earlier one; odd names are left out.
    assert done.stdout == "w-1|explicit|from hf|unset"


@pytest.mark.parametrize(
    ("options", "kwargs", "says"),
    [
        ({"extra_env": {"PET_NNODES": "4"}}, {}, "--env PET_NNODES"),
        ({"image_pull_policy": "Always"}, {}, "--image-pull-policy Always"),
        ({}, {"runtime": "Torch_Distributed"}, "--runtime"),
        ({}, {"nodes": 0}, "--nodes"),
        ({}, {"procs_per_node": 0}, "--gpus"),
    ],
)
def test_what_a_trainjob_cannot_carry_is_refused(
    options: dict[str, Any], kwargs: dict[str, Any], says: str
) -> None:
    resources = podspec.trial_resources(**options)
    call: dict[str, Any] = {"nodes": 2, **kwargs}
    with pytest.raises(UsageError, match=re.escape(says)):
        trainjob.render_trainjob(image=IMAGE, args="true", env=ENV, resources=resources, **call)


def test_if_not_present_is_what_a_digest_gets_anyway() -> None:
    resources = podspec.trial_resources(image_pull_policy="IfNotPresent")
    doc = trainjob.render_trainjob(image=IMAGE, args="true", env={}, resources=resources, nodes=2)
    validate_trainjob(doc)


def test_runtime_name_is_configurable() -> None:
    doc = render(runtime="launch-torch")
    assert doc["spec"]["runtimeRef"]["name"] == "launch-torch"


# --------------------------------------------------------------------------- the runtime


def test_the_referenced_runtime_has_what_the_trainjob_names() -> None:
    """torch-distributed (Trainer v2.3.0 manifests/base/runtimes): a ClusterTrainingRuntime with
    the torch policy, whose trainer Job and container are `node`; the patch names only those
    (the Trainer's webhook refuses others: plugins/jobset/jobset.go Validate)."""
    runtime = _one(TRAINER / "torch_distributed.runtime.yaml")
    doc = render()
    assert runtime["apiVersion"] == doc["apiVersion"]
    assert runtime["kind"] == doc["spec"]["runtimeRef"]["kind"]
    assert runtime["metadata"]["name"] == doc["spec"]["runtimeRef"]["name"]
    assert "torch" in runtime["spec"]["mlPolicy"]
    jobs = {job["name"]: job for job in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    node = jobs[trainjob.NODE_JOB]
    assert node["template"]["metadata"]["labels"][
        "trainer.kubeflow.org/trainjob-ancestor-step"
    ] == ("trainer")
    runtime_containers = {
        c["name"] for c in node["template"]["spec"]["template"]["spec"]["containers"]
    }
    assert trainjob.NODE_CONTAINER in runtime_containers
    for patch in doc["spec"]["runtimePatches"]:
        for job in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            assert job["name"] in jobs
            pod = job["template"]["spec"]["template"].get("spec", {})
            assert {c["name"] for c in pod.get("containers", [])} <= runtime_containers
            assert all("env" not in c for c in pod.get("containers", []))
        # IsDomainPrefixedPath: a DNS subdomain, `/`, a path.
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[-A-Za-z0-9_./]+", patch["manager"])


def test_the_runtime_validates_against_its_crd() -> None:
    runtime = _one(TRAINER / "torch_distributed.runtime.yaml")
    _validator("trainer.kubeflow.org_clustertrainingruntimes.yaml").validate(runtime)


# --------------------------------------------------------------------------- Katib's primary pod


def jobset_pod_labels(doc: dict[str, Any], trainjob_name: str, index: int) -> dict[str, str]:
    """The labels of node `index`'s pod: the patch's, JobSet's (its one trainer Job, replica 0)
    and the Job controller's for an Indexed Job (the completion index, Kubernetes >= 1.28)."""
    return {
        **node_patch(doc)["metadata"].get("labels", {}),
        "jobset.sigs.k8s.io/jobset-name": trainjob_name,
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "jobset.sigs.k8s.io/replicatedjob-replicas": "1",
        "jobset.sigs.k8s.io/job-index": "0",
        "jobset.sigs.k8s.io/job-global-index": "0",
        "batch.kubernetes.io/job-name": f"{trainjob_name}-node-0",
        "job-name": f"{trainjob_name}-node-0",
        "batch.kubernetes.io/job-completion-index": str(index),
        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer",
    }


def is_primary_pod(pod: dict[str, str], primary: dict[str, str]) -> bool:
    """Katib v0.19 pkg/webhook/v1beta1/pod/utils.go isPrimaryPod: every label, equal."""
    return all(pod.get(key) == value for key, value in primary.items())


@pytest.mark.parametrize("nodes", [1, 2, 3, 8])
def test_primary_pod_labels_select_rank_zero_only(nodes: int) -> None:
    doc = render(nodes=nodes)
    primary = trainjob.trial_template_fields()["primaryPodLabels"]
    trials = [TRIAL, f"{EXPERIMENT}-b4n8c2rw"]
    pods = [(t, i, jobset_pod_labels(doc, t, i)) for t in trials for i in range(nodes)]
    chosen = [(t, i) for t, i, labels in pods if is_primary_pod(labels, primary)]
    assert chosen == [(t, 0) for t in trials]  # one pod per trial (Katib adds its trial label)
    # The patch's pod labels cannot shadow the keys Katib matches.
    assert not set(primary) & set(node_patch(doc)["metadata"].get("labels", {}))


def test_trial_template_fields_are_katibs_trainjob_defaults() -> None:
    """pkg/apis/controller/experiments/v1beta1/constants.go (v0.19.0): DefaultTrainJob*."""
    assert trainjob.trial_template_fields() == {
        "primaryContainerName": "node",
        "primaryPodLabels": {
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "batch.kubernetes.io/job-completion-index": "0",
        },
        "successCondition": 'status.conditions.#(type=="Complete")#|#(status=="True")#',
        "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#',
    }
    # A TrainJob's conditions are named like a batch Job's (trainjob_types.go Complete/Failed).
    assert trainjob.SUCCESS_CONDITION == katib.JOB_SUCCESS_CONDITION
    assert trainjob.FAILURE_CONDITION == katib.JOB_FAILURE_CONDITION


def test_trial_template_fields_are_fresh_copies() -> None:
    trainjob.trial_template_fields()["primaryPodLabels"]["x"] = "y"
    assert "x" not in trainjob.trial_template_fields()["primaryPodLabels"]


# --------------------------------------------------------------------------- the launcher

TORCH = ["-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=8"]


@pytest.mark.parametrize(
    ("command", "argv", "name", "added", "says"),
    [
        (
            ["python", "train.py", "--x=1"],
            ["python", *TORCH, "train.py", "--x=1"],
            "torchrun",
            True,
            "python -m torch.distributed.run",
        ),
        (
            ["python3.12", "-m", "pkg.train"],
            ["python3.12", *TORCH, "-m", "pkg.train"],
            "torchrun",
            True,
            "-m torch.distributed.run -m",
        ),
        (
            ["/opt/venv/bin/python", "train.py"],
            ["/opt/venv/bin/python", *TORCH, "train.py"],
            "torchrun",
            True,
            "torch.distributed.run",
        ),
        (
            ["python", "-u", "train.py"],
            ["python", *TORCH, "--no-python", "python", "-u", "train.py"],
            "torchrun",
            True,
            "--no-python",
        ),
        (
            ["uv", "run", "train.py"],
            ["torchrun", *TORCH[2:], "--no-python", "uv", "run", "train.py"],
            "torchrun",
            True,
            "torchrun must be on the image's PATH",
        ),
        (
            ["./train.sh", "deepspeed"],
            ["torchrun", *TORCH[2:], "--no-python", "./train.sh", "deepspeed"],
            "torchrun",
            True,
            "--no-python",
        ),
        (
            ["torchrun", "--nproc-per-node=4", "train.py"],
            ["torchrun", "--nproc-per-node=4", "train.py"],
            "torchrun",
            False,
            "flags you pass win",
        ),
        (
            ["uv", "run", "torchrun", "train.py"],
            ["uv", "run", "torchrun", "train.py"],
            "torchrun",
            False,
            "already starts torchrun",
        ),
        (
            ["python", "-m", "torch.distributed.run", "train.py"],
            ["python", "-m", "torch.distributed.run", "train.py"],
            "torchrun",
            False,
            "PET_NNODES",
        ),
        (
            ["accelerate", "launch", "train.py"],
            ["accelerate", "launch", "train.py"],
            "accelerate launch",
            False,
            "does not read the PET_* variables",
        ),
        (
            ["deepspeed", "train.py"],
            ["deepspeed", "train.py"],
            "deepspeed",
            False,
            "$PET_NODE_RANK",
        ),
        (
            ["python", "train.py", "--launcher=torchrun", "torchrun"],
            ["python", *TORCH, "train.py", "--launcher=torchrun", "torchrun"],
            "torchrun",
            True,
            "launch runs your command with torchrun",
        ),
    ],
)
def test_launcher(command: list[str], argv: list[str], name: str, added: bool, says: str) -> None:
    found = trainjob.launcher(command, nodes=2, procs_per_node=8)
    assert (list(found.argv), found.name, found.added) == (argv, name, added)
    assert says in found.why
    assert "rank 0" in found.why  # the event-file rule, every time


def test_launcher_refuses_an_empty_command() -> None:
    with pytest.raises(UsageError, match="no command"):
        trainjob.launcher([], nodes=2, procs_per_node=8)


# --------------------------------------------------------------------------- the args string


def fake_program(directory: Path, name: str) -> Path:
    """An executable that prints its argv as JSON."""
    path = directory / name
    printer = "import sys, json; print(json.dumps(sys.argv[1:]))"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -c '{printer}' \"$@\"\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("via", ["python", "torchrun"])
def test_args_string_gives_the_launcher_exactly_the_users_argv(tmp_path: Path, via: str) -> None:
    """Render, let Katib substitute and Kubernetes expand, then run it with `sh -c`: the launcher
    (a fake `python` or `torchrun` on PATH) gets its flags, then exactly the user's argv."""
    fake_program(tmp_path, "python")
    fake_program(tmp_path, "torchrun")
    command = ["python", "train.py", *TRICKY] if via == "python" else ["./run", *TRICKY]
    spec_ = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "parameters": [
                {
                    "name": "optim.lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": 0.1, "max": 1},
                },
                {
                    "name": "act",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["a b*", "relu"]},
                },
            ],
            "maxTrialCount": 3,
            "fixed": {"note": "costs $5 & $(HOME)", "flag": True},
        }
    )
    args, found = trainjob.trial_args(
        command, spec_.fixed, spec_.parameters, nodes=2, procs_per_node=8, workdir="sub dir"
    )
    (tmp_path / "sub dir").mkdir()
    doc = trainjob.render_trainjob(
        image=IMAGE, args=args, env={}, resources=podspec.trial_resources(gpus=8), nodes=2
    )
    text = doc["spec"]["trainer"]["args"][0]
    sampled: dict[str, ParamValue] = {"optim.lr": 0.25, "act": "a b*"}
    for param, value in sampled.items():
        safe = param.replace(".", "__")
        text = text.replace("${trialParameters." + safe + "}", contract.format_value(value))
    text = kubernetes_expand(text, {"HOME": "/EXPANDED", "VAR": "EXPANDED"})
    result = subprocess.run(
        ["sh", "-c", text + " && :"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"},
    )
    expected = contract.trial_argv(
        list(found.argv), contract.merge_params(spec_.fixed, sampled), contract.TFEVENT_DIR
    )
    assert json.loads(result.stdout) == expected[1:]
    if via == "python":
        assert expected[1:6] == [*TORCH, "train.py"]
    else:
        assert expected[:5] == [
            "torchrun",
            "--nnodes=2",
            "--nproc-per-node=8",
            "--no-python",
            "./run",
        ]


def test_seed_study_configs_work_behind_torchrun() -> None:
    """The config `case` prefix and `"$$@"` of a seed study sit around the launcher's argv."""
    spec_ = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "parameters": [
                {
                    "name": spec.CONFIG_PARAM,
                    "parameterType": "int",
                    "feasibleSpace": {"min": 1, "max": 2},
                },
            ],
            "maxTrialCount": 2,
        }
    )
    configs = [{"lr": 0.1}, {"lr": 0.2}]
    args, _ = trainjob.trial_args(
        ["python", "train.py"], {}, spec_.parameters, nodes=2, procs_per_node=8, configs=configs
    )
    assert args.startswith(
        "case ${trialParameters." + spec.CONFIG_PARAM + "} in 1) set -- --lr=0.1;;"
    )
    assert "esac && python -m torch.distributed.run --nnodes=2 --nproc-per-node=8 train.py" in args
    assert '"$$@"' in args
