"""The emulator runs Katib trials whose trialSpec is a Kubeflow Trainer v2.3 TrainJob (issue 23).

The Experiment's trialTemplate is the one launch renders (launch.trainjob.render_trainjob and
trial_template_fields); everything is read back with the real `kubernetes` client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

# The typed APIs import slowly: pay it at collection, not in a test.
from kubernetes.client import CoreV1Api, CustomObjectsApi  # noqa: F401

from launch import contract, names, podspec, trainjob
from launch.spec import LaunchSpec
from tests import test_kube_emulator
from tests.emulator_trainjob import LABEL_JOBSET_NAME, TrainerController, pod_env
from tests.kube_emulator import (
    LABEL_EXPERIMENT,
    LABEL_JOB_NAME,
    LABEL_TRIAL,
    KatibController,
    KubeEmulator,
    running,
)

# The client fixture of test_kube_emulator: it talks to this module's `kube` (with the Trainer).
api = test_kube_emulator.api
NS = "default"
EXPERIMENT = "mn"
IMAGE = "registry.local:5000/proj@sha256:" + "3f" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
POD_LABELS = names.labels(user="ada", branch="multi-node", commit=COMMIT)
GPU_MESSAGE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
TRAINER = ("trainer.kubeflow.org", "v1alpha1")
JOBSET = ("jobset.x-k8s.io", "v1alpha2")
SPEC = LaunchSpec.model_validate(
    {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "parameters": [
            {"name": "optim.lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 1}}
        ],
        "maxTrialCount": 3,
    }
)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running(trainer=True) as emulator:
        yield emulator


def trainjob_trial_template(nodes: int = 2) -> dict[str, Any]:
    """What launch puts in the Experiment for `--nodes N --gpus 8`."""
    resources = podspec.trial_resources(
        gpus=8,
        shm_size="16Gi",
        volumes=["datasets:/data:ro"],
        node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        tolerations=["nvidia.com/gpu:NoSchedule"],
        queue="team-a",
    )
    args, _ = trainjob.trial_args(
        ["python", "train.py"], {"epochs": 3}, SPEC.parameters, nodes=nodes, procs_per_node=8
    )
    env = contract.trial_env(
        experiment=EXPERIMENT, namespace=NS, commit=COMMIT, image=IMAGE, tracking_uri=""
    )
    return {
        **trainjob.trial_template_fields(),
        "retain": True,
        "trialParameters": [
            {"name": p.trial_parameter_name, "description": f"--{p.name}", "reference": p.name}
            for p in SPEC.parameters
        ],
        "trialSpec": trainjob.render_trainjob(
            image=IMAGE, args=args, env=env, resources=resources, nodes=nodes, pod_labels=POD_LABELS
        ),
    }


def create_experiment(api: client.ApiClient, nodes: int = 2) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kubeflow.org",
        "v1beta1",
        NS,
        "experiments",
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": EXPERIMENT, "labels": dict(POD_LABELS)},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "parallelTrialCount": 2,
                "maxTrialCount": 3,
                "maxFailedTrialCount": 3,
                "parameters": [
                    {
                        "name": "optim.lr",
                        "parameterType": "double",
                        "feasibleSpace": {"min": "0.1", "max": "1"},
                    }
                ],
                "trialTemplate": trainjob_trial_template(nodes),
            },
        },
    )


def trial_pods(api: client.ApiClient, trial: str) -> list[Any]:
    """The trial's pods as the client lists them, by rank."""
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"{LABEL_TRIAL}={trial}")
    return sorted(
        pods.items, key=lambda p: int(p.metadata.labels["batch.kubernetes.io/job-completion-index"])
    )


def get_trainjob(api: client.ApiClient, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *TRAINER, NS, "trainjobs", name
    )
    return found


def true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c
        for c in (obj.get("status") or {}).get("conditions") or []
        if c["status"] == "True"
    }


def katib_condition(obj: dict[str, Any], path: str) -> bool:
    """Katib's success/failure condition (gjson `status.conditions.#(type=="X")#|#(status=="True")#`)."""
    kind = re.fullmatch(r'status\.conditions\.#\(type=="(\w+)"\)#\|#\(status=="True"\)#', path)
    assert kind is not None, path
    return kind[1] in true_conditions(obj)


# --------------------------------------------------------------------------- the API


def test_trainer_and_jobset_apis_are_served(kube: KubeEmulator, api: client.ApiClient) -> None:
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"trainer.kubeflow.org", "jobset.x-k8s.io"} <= groups
    listed = client.CustomObjectsApi(api).get_api_resources(*TRAINER).resources
    scope = {r.name: r.namespaced for r in listed}
    assert scope["trainjobs"] and not scope["clustertrainingruntimes"]
    assert "trainjobs/status" in scope
    runtimes = client.CustomObjectsApi(api).list_cluster_custom_object(
        *TRAINER, "clustertrainingruntimes"
    )["items"]
    assert [r["metadata"]["name"] for r in runtimes] == [trainjob.DEFAULT_RUNTIME]
    crd = (
        client.ApiextensionsV1Api(api)
        .read_custom_resource_definition("clustertrainingruntimes.trainer.kubeflow.org")
        .spec
    )
    assert crd.scope == "Cluster"

    doc = trainjob_trial_template(nodes=3)["trialSpec"]
    body = {**doc, "metadata": {**doc.get("metadata", {}), "name": "by-hand"}}
    objects = client.CustomObjectsApi(api)
    dry = objects.create_namespaced_custom_object(*TRAINER, NS, "trainjobs", body, dry_run="All")
    assert dry["metadata"]["name"] == "by-hand" and kube.objects("trainjobs") == []
    assert kube.objects("pods") == []
    objects.create_namespaced_custom_object(*TRAINER, NS, "trainjobs", body)
    # The Trainer reconciles any TrainJob: the JobSet and its three pods (no Katib labels).
    jobset = objects.get_namespaced_custom_object(*JOBSET, NS, "jobsets", "by-hand")
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"
    pods = TrainerController(kube).pods(NS, "by-hand")
    assert len(pods) == 3 and not any(LABEL_TRIAL in p["metadata"]["labels"] for p in pods)
    watcher = watch.Watch()
    stream = watcher.stream(
        objects.list_namespaced_custom_object, *TRAINER, NS, "trainjobs", timeout_seconds=5
    )
    event = next(stream)
    watcher.stop()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "by-hand")

    # The Trainer's webhook: the runtime must exist; PET_* are its own.
    missing = {**body, "metadata": {"name": "missing"}}
    missing["spec"] = {**body["spec"], "runtimeRef": {**body["spec"]["runtimeRef"], "name": "x"}}
    with pytest.raises(client.ApiException) as err:
        objects.create_namespaced_custom_object(*TRAINER, NS, "trainjobs", missing)
    assert err.value.status == 422
    assert "specified clusterTrainingRuntime must be created before" in str(err.value.body)
    reserved = {**body, "metadata": {"name": "reserved"}}
    reserved["spec"] = {
        **body["spec"],
        "trainer": {**body["spec"]["trainer"], "env": [{"name": "PET_NNODES", "value": "9"}]},
    }
    with pytest.raises(client.ApiException, match="must not have reserved envs"):
        objects.create_namespaced_custom_object(*TRAINER, NS, "trainjobs", reserved)


# --------------------------------------------------------------------------- a Katib trial


def test_two_node_trial_pods_labels_and_env(kube: KubeEmulator, api: client.ApiClient) -> None:
    create_experiment(api)
    (handle,) = KatibController(kube).create_trials(NS, EXPERIMENT, [{"optim.lr": 0.25}])
    name = handle.name
    tj = get_trainjob(api, name)
    assert tj["metadata"]["labels"] == {
        **POD_LABELS,
        LABEL_EXPERIMENT: EXPERIMENT,
        "kueue.x-k8s.io/queue-name": "team-a",
    }
    owner = tj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Trial", name, True)
    # Katib substituted the parameter (the TrainJob and the Trial's runSpec).
    assert "--optim.lr=0.25 " in tj["spec"]["trainer"]["args"][0]
    assert "${trialParameters." not in tj["spec"]["trainer"]["args"][0]
    trial = kube.get_object("trials", NS, name) or {}
    assert trial["spec"]["primaryPodLabels"] == trainjob.PRIMARY_POD_LABELS
    assert trial["spec"]["primaryContainerName"] == trainjob.NODE_CONTAINER

    pods = trial_pods(api, name)
    assert [p.metadata.name for p in pods] == list(handle.pods) and handle.pod == handle.pods[0]
    job = kube.get_object("jobs", NS, f"{name}-node-0") or {}
    assert job["metadata"]["ownerReferences"][0]["kind"] == "JobSet"
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    for rank, pod in enumerate(pods):
        assert re.fullmatch(rf"{name}-node-0-{rank}-[a-z0-9]{{5}}", pod.metadata.name)
        labels = pod.metadata.labels
        assert labels == labels | {
            **POD_LABELS,
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "jobset.sigs.k8s.io/jobset-name": name,
            "jobset.sigs.k8s.io/job-index": "0",
            "batch.kubernetes.io/job-completion-index": str(rank),
            LABEL_JOB_NAME: f"{name}-node-0",
            "job-name": f"{name}-node-0",
            "controller-uid": job["metadata"]["uid"],
            LABEL_TRIAL: name,
            LABEL_EXPERIMENT: EXPERIMENT,
        }
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"{name}-node-0-{rank}", name)
        (container,) = pod.spec.containers
        assert container.name == trainjob.NODE_CONTAINER and container.image == IMAGE
        assert container.command == ["sh", "-c"] and "--optim.lr=0.25 " in container.args[0]
        assert container.resources.limits["nvidia.com/gpu"] == "8"
        env = pod_env(kube.get_object("pods", NS, pod.metadata.name) or {})
        assert env == env | {
            "PET_NNODES": "2",
            "PET_NPROC_PER_NODE": "8",
            "PET_NODE_RANK": str(rank),
            "PET_MASTER_ADDR": f"{name}-node-0-0.{name}",
            "PET_MASTER_PORT": "29500",
            "KATIB_EXPERIMENT_NAME": EXPERIMENT,
        }
        # The runtimePatches' pod-level fields.
        assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert [(t.key, t.effect) for t in pod.spec.tolerations] == [
            ("nvidia.com/gpu", "NoSchedule")
        ]
        assert {v.name for v in pod.spec.volumes} == {"dshm", "pvc-datasets"}
        assert {(m.name, m.mount_path) for m in container.volume_mounts} == {
            ("dshm", "/dev/shm"),
            ("pvc-datasets", "/data"),
        }
        assert pod.metadata.annotations["sidecar.istio.io/inject"] == "false"

    # Katib's primaryPodLabels select rank 0 only (by the client's label selector too).
    primary = trainjob.trial_template_fields()["primaryPodLabels"]
    chosen = [p for p in pods if all(p.metadata.labels.get(k) == v for k, v in primary.items())]
    assert [p.metadata.name for p in chosen] == [handle.pod]
    selector = ",".join([f"{LABEL_TRIAL}={name}", *(f"{k}={v}" for k, v in primary.items())])
    listed = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=selector).items
    assert [p.metadata.name for p in listed] == [handle.pod]


def test_trial_runs_to_complete_with_per_rank_logs(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    create_experiment(api)
    katib = KatibController(kube)
    (handle,) = katib.create_trials(NS, EXPERIMENT, [{"optim.lr": 0.5}])
    name = handle.name
    tj = get_trainjob(api, name)
    assert tj["status"]["jobsStatus"][0] == tj["status"]["jobsStatus"][0] | {"active": 1}

    katib.run_trial(NS, name)
    assert [p.status.phase for p in trial_pods(api, name)] == ["Running", "Running"]
    assert get_trainjob(api, name)["status"]["jobsStatus"][0]["ready"] == 1
    kube.set_pod_log(NS, handle.pods[1], "rank 1 starting\n", closed=False)
    core = client.CoreV1Api(api)
    assert core.read_namespaced_pod_log(handle.pods[1], NS) == "rank 1 starting\n"

    katib.succeed_trial(NS, name, {"loss": 0.125}, log="rank 0: loss=0.125\n", logs={1: "rank 1 done\n"})  # fmt: skip
    assert [p.status.phase for p in trial_pods(api, name)] == ["Succeeded", "Succeeded"]
    tj = get_trainjob(api, name)
    assert katib_condition(tj, trainjob.SUCCESS_CONDITION)
    assert not katib_condition(tj, trainjob.FAILURE_CONDITION)
    assert true_conditions(tj)["Complete"]["reason"] == "AllJobsCompleted"
    assert tj["status"]["jobsStatus"][0]["succeeded"] == 1
    jobset = client.CustomObjectsApi(api).get_namespaced_custom_object(*JOBSET, NS, "jobsets", name)
    assert "Completed" in true_conditions(jobset)
    job = kube.get_object("jobs", NS, f"{name}-node-0") or {}
    assert job["status"]["succeeded"] == 2 and "Complete" in true_conditions(job)
    trial = kube.get_object("trials", NS, name) or {}
    assert "Succeeded" in true_conditions(trial)
    assert trial["status"]["observation"]["metrics"][0] == {
        "name": "loss",
        "latest": "0.125",
        "min": "0.125",
        "max": "0.125",
    }
    exp = kube.get_object("experiments", NS, EXPERIMENT) or {}
    assert exp["status"]["trialsSucceeded"] == 1
    assert exp["status"]["currentOptimalTrial"]["bestTrialName"] == name
    # Each rank's log, by pod name.
    assert core.read_namespaced_pod_log(handle.pods[0], NS) == "rank 0: loss=0.125\n"
    assert core.read_namespaced_pod_log(handle.pods[1], NS) == "rank 1 done\n"
    assert core.read_namespaced_pod_log(handle.pods[1], NS, follow=True) == "rank 1 done\n"


def test_a_failing_rank_fails_the_trainjob_and_the_trial(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    create_experiment(api)
    katib = KatibController(kube)
    (handle,) = katib.create_trials(NS, EXPERIMENT, [{"optim.lr": 0.5}])
    katib.run_trial(NS, handle.name)
    katib.fail_trial(
        NS, handle.name, rank=1, exit_code=1, log="torch.distributed.DistBackendError: NCCL\n"
    )
    rank0, rank1 = trial_pods(api, handle.name)
    assert (rank0.status.phase, rank1.status.phase) == ("Failed", "Failed")
    assert rank1.status.container_statuses[0].state.terminated.exit_code == 1
    assert rank0.status.container_statuses[0].state.terminated.exit_code == 143  # SIGTERM
    tj = get_trainjob(api, handle.name)
    assert katib_condition(tj, trainjob.FAILURE_CONDITION)
    failed = true_conditions(tj)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "FailedJobs",
        "jobset failed due to one or more job failures",
    )
    trial = kube.get_object("trials", NS, handle.name) or {}
    cond = true_conditions(trial)["Failed"]
    assert cond["reason"] == "TrialFailed. Job reason: FailedJobs"
    assert "Running" not in true_conditions(trial)
    assert (kube.get_object("experiments", NS, EXPERIMENT) or {})["status"]["trialsFailed"] == 1
    log = client.CoreV1Api(api).read_namespaced_pod_log(rank1.metadata.name, NS)
    assert "NCCL" in log


def test_a_pending_rank_is_unschedulable(kube: KubeEmulator, api: client.ApiClient) -> None:
    create_experiment(api, nodes=3)
    katib = KatibController(kube)
    (handle,) = katib.create_trials(NS, EXPERIMENT, [{"optim.lr": 0.5}])
    katib.run_trial(NS, handle.name, ranks=[0, 1])
    katib.unschedulable(NS, handle.name, rank=2, message=GPU_MESSAGE)
    pods = trial_pods(api, handle.name)
    assert [p.status.phase for p in pods] == ["Running", "Running", "Pending"]
    (scheduled,) = pods[2].status.conditions
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(NS, field_selector=f"involvedObject.name={pods[2].metadata.name}")
        .items
    )
    assert [(e.reason, e.type, e.message) for e in events] == [
        ("FailedScheduling", "Warning", GPU_MESSAGE)
    ]
    status = get_trainjob(api, handle.name)["status"]
    assert status["jobsStatus"][0] | {"ready": 0, "active": 1} == status["jobsStatus"][0]
    assert "conditions" not in status
    with pytest.raises(NotImplementedError, match="not modelled for TrainJob trials"):
        katib.preempt_trial(NS, handle.name)  # Job trials only, for now
    # It gets scheduled later: all three run.
    katib.run_trial(NS, handle.name, ranks=[2])
    assert get_trainjob(api, handle.name)["status"]["jobsStatus"][0]["ready"] == 1


# --------------------------------------------------------------------------- cancel


def test_deleting_the_experiment_removes_trainjob_jobset_and_pods(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    create_experiment(api)
    katib = KatibController(kube)
    first, second = katib.create_trials(NS, EXPERIMENT, [{"optim.lr": 0.5}, {"optim.lr": 0.2}])
    katib.run_trial(NS, first.name)
    objects = client.CustomObjectsApi(api)

    # Deleting one TrainJob takes its JobSet, Job and pods; its Trial stays.
    objects.delete_namespaced_custom_object(*TRAINER, NS, "trainjobs", second.name)
    assert kube.get_object("jobsets", NS, second.name) is None
    assert kube.get_object("jobs", NS, f"{second.name}-node-0") is None
    assert trial_pods(api, second.name) == []
    assert kube.get_object("trials", NS, second.name) is not None
    assert len(trial_pods(api, first.name)) == 2

    objects.delete_namespaced_custom_object(
        "kubeflow.org", "v1beta1", NS, "experiments", EXPERIMENT
    )
    for group, version, plural in [
        ("kubeflow.org", "v1beta1", "trials"),
        (*TRAINER, "trainjobs"),
        (*JOBSET, "jobsets"),
    ]:
        assert objects.list_namespaced_custom_object(group, version, NS, plural)["items"] == []
    assert client.BatchV1Api(api).list_namespaced_job(NS).items == []
    assert client.CoreV1Api(api).list_namespaced_pod(NS).items == []
    assert kube.objects("pods", NS, f"{LABEL_JOBSET_NAME}={first.name}") == []


def test_a_missing_runtime_leaves_the_trial_without_a_trainjob(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    kube.remove("clustertrainingruntimes", "", trainjob.DEFAULT_RUNTIME)
    create_experiment(api)
    (handle,) = KatibController(kube).create_trials(NS, EXPERIMENT, [{"optim.lr": 0.5}])
    assert handle.pods == () and kube.objects("trainjobs") == []
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(NS, field_selector=f"involvedObject.name={handle.name}")
        .items
    )
    assert [(e.reason, e.type) for e in events] == [("ReconcileFailed", "Warning")]
    assert "specified clusterTrainingRuntime must be created" in events[0].message
