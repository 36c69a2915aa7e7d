"""launch.katib_status and launch.diagnosis: what Katib's Trial and Experiment objects, and the
Pods, Events and Kueue Workloads behind a pending trial, mean; checked on hand-made objects and on
the ones tests/kube_emulator.py makes.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from launch import diagnosis, katib_status, names, results
from launch.spec import LaunchSpec
from tests.test_katib import NAME, NAMESPACE, load_spec, render

# --------------------------------------------------------------------------- Katib status objects

T0 = "2025-03-01T10:00:00Z"
T1 = "2025-03-01T10:01:00Z"
T2 = "2025-03-01T10:05:30Z"
EPOCH_T0 = 1740823200.0


def cond(
    type_: str, status: str = "True", at: str = T0, reason: str = "", message: str = ""
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason or f"Trial{type_}",
        "message": message,
        "lastUpdateTime": at,
        "lastTransitionTime": at,
    }


def trial_obj(
    conditions: list[dict[str, Any]],
    *,
    name: str = "proj-0123456-a1b2-x7k2m9pq",
    assignments: dict[str, str] | None = None,
    metrics: list[dict[str, str]] | None = None,
    objective: dict[str, Any] | None = None,
    start: str | None = T0,
    completion: str | None = None,
) -> dict[str, Any]:
    """A Trial shaped like Katib's (and tests/kube_emulator.py's KatibController)."""
    status: dict[str, Any] = {"conditions": conditions}
    if start:
        status["startTime"] = start
    if completion:
        status["completionTime"] = completion
    if metrics is not None:
        status["observation"] = {"metrics": metrics}
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "creationTimestamp": start or T0,
            "labels": {names.EXPERIMENT_LABEL: "proj-0123456-a1b2"},
        },
        "spec": {
            "objective": objective
            or {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["eval/accuracy"],
                "metricStrategies": [
                    {"name": "loss", "value": "min"},
                    {"name": "eval/accuracy", "value": "max"},
                ],
            },
            "parameterAssignments": [
                {"name": k, "value": v} for k, v in (assignments or {"lr": "0.001"}).items()
            ],
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([], "Pending"),
        ([cond("Created")], "Pending"),
        ([cond("Created"), cond("Running", at=T1)], "Running"),
        (
            [cond("Created"), cond("Running", "False", T2), cond("Succeeded", at=T2)],
            "Succeeded",
        ),
        ([cond("Created"), cond("Running", "False", T2), cond("Failed", at=T2)], "Failed"),
        (
            [cond("Created"), cond("Running", "False", T2), cond("MetricsUnavailable", at=T2)],
            "MetricsUnavailable",
        ),
        ([cond("Created"), cond("Running", "False", T2), cond("Killed", at=T2)], "Killed"),
        ([cond("Created"), cond("EarlyStopped", at=T2)], "EarlyStopped"),
        # A terminal condition wins even over a Running=True that was never turned off.
        ([cond("Created"), cond("Running", at=T2), cond("Succeeded", at=T1)], "Succeeded"),
        # Between terminal ones, the latest; unknown and False conditions are ignored.
        ([cond("Failed", at=T1), cond("Killed", at=T2)], "Killed"),
        ([cond("Created"), cond("Succeeded", "False", T2), cond("Bogus", at=T2)], "Pending"),
        # Equal times (Katib's have whole seconds): the later in the list.
        ([cond("Created", at=T1), cond("Running", at=T1)], "Running"),
    ],
)
def test_trial_status(conditions: list[dict[str, Any]], state: str) -> None:
    assert katib_status.trial_status(trial_obj(conditions)) == state


def test_trial_status_tolerates_a_bare_object() -> None:
    assert katib_status.trial_status({}) == "Pending"
    assert katib_status.trial_status({"status": None}) == "Pending"


OBSERVED = [
    {"name": "loss", "min": "0.25", "max": "1.5", "latest": "0.3"},
    {"name": "eval/accuracy", "min": "0.5", "max": "0.9", "latest": "0.875"},
]


def pod_options_spec() -> LaunchSpec:
    return load_spec("pod_options")  # loss (min) + eval/accuracy (max)


def test_trial_metrics_use_each_metrics_strategy() -> None:
    trial = trial_obj([cond("Succeeded")], metrics=OBSERVED)
    assert katib_status.trial_metrics(trial, spec=pod_options_spec()) == {
        "loss": 0.25,
        "eval/accuracy": 0.9,
    }
    latest = LaunchSpec.model_validate(
        {
            "objective": {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "metricStrategies": [{"name": "loss", "value": "latest"}],
            },
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 1}}
            ],
        }
    )
    # eval/accuracy is not in this spec: the direction's default (min) applies.
    assert katib_status.trial_metrics(trial, spec=latest) == {"loss": 0.3, "eval/accuracy": 0.5}
    # Without a spec: the strategies Katib copied onto the Trial.
    assert katib_status.trial_metrics(trial) == {"loss": 0.25, "eval/accuracy": 0.9}


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        (
            [{"name": "loss", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}],
            {},
        ),
        ([{"name": "loss", "min": "oops"}], {}),
        ([{"name": "loss"}], {}),
        ([{"min": "1"}], {}),
        ([{"name": "loss", "min": "1e-3"}], {"loss": 0.001}),
        (None, {}),
    ],
)
def test_trial_metrics_skip_what_is_not_a_number(
    metrics: list[dict[str, str]] | None, expected: dict[str, float]
) -> None:
    trial = trial_obj([cond("MetricsUnavailable")], metrics=metrics)
    assert katib_status.trial_metrics(trial, spec=pod_options_spec()) == expected


def test_trial_metrics_keep_nan() -> None:
    trial = trial_obj([cond("Succeeded")], metrics=[{"name": "loss", "min": "nan"}])
    assert math.isnan(katib_status.trial_metrics(trial, spec=pod_options_spec())["loss"])


def test_trial_params_are_typed_by_the_spec() -> None:
    spec_ = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"},
            "parameters": [
                {
                    "name": "optim.lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": 0.1, "max": 0.3, "step": 0.1},
                },
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 4}},
                {
                    "name": "act",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["relu", "1e3"]},
                },
                {
                    "name": "width",
                    "parameterType": "discrete",
                    "feasibleSpace": {"list": [64, 128]},
                },
            ],
            "seeds": 3,
        }
    )
    trial = trial_obj(
        [cond("Running")],
        assignments={
            "optim.lr": "0.2",
            "layers": "3",
            "act": "1e3",
            "width": "128",
            "seed": "2",
            "unknown": "0.5",
        },
    )
    params = katib_status.trial_params(trial, spec=spec_)
    assert params == {
        "optim.lr": 0.2,
        "layers": 3,
        "act": "1e3",
        "width": "128",
        "seed": 2,
        "unknown": "0.5",
    }
    assert isinstance(params["layers"], int) and isinstance(params["optim.lr"], float)
    assert isinstance(params["seed"], int)
    # The seed parameter under another name, and a spec-less read (text, seed still an int).
    renamed = trial_obj([cond("Running")], assignments={"train.seed": "4", "layers": "3"})
    assert katib_status.trial_params(renamed, spec=spec_, seed_flag="train.seed") == {
        "train.seed": 4,
        "layers": 3,
    }
    assert katib_status.trial_params(trial) == {
        "optim.lr": "0.2",
        "layers": "3",
        "act": "1e3",
        "width": "128",
        "seed": 2,
        "unknown": "0.5",
    }


def test_trial_params_of_a_seed_list_sweep() -> None:
    """Seeds given as a list become a discrete parameter in Katib; the row still gets ints."""
    spec_ = load_spec("seeds").model_copy(update={"seeds": (7, 11)})
    trial = trial_obj([cond("Running")], assignments={"seed": "11"})
    assert katib_status.trial_params(trial, spec=spec_) == {"seed": 11}


def test_trial_row_of_a_succeeded_trial() -> None:
    trial = trial_obj(
        [cond("Created"), cond("Running", "False", T2), cond("Succeeded", at=T2)],
        metrics=OBSERVED,
        assignments={"lr": "0.001", "batch_size": "32"},
        completion=T2,
    )
    row = katib_status.trial_row(trial, spec=pod_options_spec(), number=3)
    assert row == results.Trial(
        name="proj-0123456-a1b2-x7k2m9pq",
        number=3,
        params={"lr": 0.001, "batch_size": 32},
        status="Succeeded",
        objective=0.25,
        metrics={"loss": 0.25, "eval/accuracy": 0.9},
        start=EPOCH_T0,
        end=EPOCH_T0 + 330,
        reason="",
    )
    assert row.duration_s == 330


def test_trial_row_of_failed_and_running_trials() -> None:
    failed = trial_obj(
        [
            cond("Created"),
            cond("Running", "False", T1),
            cond(
                "Failed",
                at=T1,
                reason="TrialFailed. Job reason: BackoffLimitExceeded",
                message="Trial has failed. Job message: Job has reached the specified backoff limit",
            ),
        ],
        start=None,  # no startTime: the Created condition's time; no completionTime: Failed's
    )
    row = katib_status.trial_row(failed, spec=pod_options_spec(), number=1)
    assert row.status == "Failed" and row.objective is None and row.metrics == {}
    assert (
        row.reason == "Trial has failed. Job message: Job has reached the specified backoff limit"
    )
    assert (row.start, row.end) == (EPOCH_T0, EPOCH_T0 + 60)

    unavailable = trial_obj(
        [
            cond(
                "MetricsUnavailable",
                reason="MetricsUnavailable",
                message="Metrics are not available",
            )
        ],
        metrics=[
            {"name": "loss", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}
        ],
        completion=T2,
    )
    row = katib_status.trial_row(unavailable, spec=pod_options_spec(), number=2)
    assert (row.status, row.reason, row.objective) == (
        "MetricsUnavailable",
        "Metrics are not available",
        None,
    )

    running = trial_obj([cond("Created"), cond("Running", at=T1)])
    row = katib_status.trial_row(running, spec=pod_options_spec(), number=4)
    assert (row.status, row.start, row.end, row.reason) == ("Running", EPOCH_T0, None, "")


def test_trial_numbers_follow_creation_time() -> None:
    trials = [
        trial_obj([], name="b", start=T1),
        trial_obj([], name="c", start=T0),
        trial_obj([], name="a", start=T1),
    ]
    assert katib_status.trial_numbers(trials) == {"c": 1, "a": 2, "b": 3}


def experiment_obj(conditions: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "status": {"conditions": conditions, **status},
    }


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ({"metadata": {"name": NAME}}, ("Pending", "")),
        (
            experiment_obj([cond("Created", message="Experiment is created")]),
            ("Created", "Experiment is created"),
        ),
        (
            experiment_obj(
                [cond("Created"), cond("Running", at=T1, message="Experiment is running")]
            ),
            ("Running", "Experiment is running"),
        ),
        (
            experiment_obj(
                [
                    cond("Created"),
                    cond("Running", "False", T2),
                    cond(
                        "Succeeded",
                        at=T2,
                        reason="ExperimentMaxTrialsReached",
                        message="Experiment has succeeded because max trial count has reached",
                    ),
                ],
                trials=4,
                trialsSucceeded=4,
            ),
            (
                "Succeeded",
                "Experiment has succeeded because max trial count has reached (4 Succeeded of 4)",
            ),
        ),
        (
            experiment_obj(
                [
                    cond("Created"),
                    cond("Running", "False", T2),
                    cond(
                        "Failed",
                        at=T2,
                        reason="ExperimentFailed",
                        message="Experiment has failed because max failed count has reached",
                    ),
                ],
                trials=5,
                trialsSucceeded=1,
                trialsFailed=2,
                trialMetricsUnavailable=1,
                trialsRunning=1,
            ),
            (
                "Failed",
                "Experiment has failed because max failed count has reached "
                "(1 Succeeded, 2 Failed, 1 MetricsUnavailable, 1 Running of 5)",
            ),
        ),
        (
            experiment_obj([cond("Restarting", at=T1, message="")]),
            ("Restarting", "TrialRestarting"),
        ),
    ],
)
def test_experiment_status(experiment: dict[str, Any], expected: tuple[str, str]) -> None:
    assert katib_status.experiment_status(experiment) == expected


# --------------------------------------------------------------------------- why a trial is Pending

UNSCHEDULABLE = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
    "available: 3 No preemption victims found for incoming pod."
)
PULL_IMAGE = "127.0.0.1:30500/repo@sha256:" + "0" * 64


def pod_obj(phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "t1-abcde", "namespace": NAMESPACE},
        "status": {"phase": phase, **status},
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {
        "containerStatuses": [
            {
                "name": "training",
                "ready": False,
                "state": {"waiting": {"reason": reason, "message": message}},
            }
        ]
    }


def event(reason: str, message: str, *, type_: str = "Warning", at: str = T1) -> dict[str, Any]:
    return {
        "metadata": {"name": f"t1-abcde.{reason}", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Pod", "name": "t1-abcde"},
        "reason": reason,
        "message": message,
        "type": type_,
        "firstTimestamp": at,
        "lastTimestamp": at,
    }


def workload_obj(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": "job-t1-1a2b3", "namespace": NAMESPACE},
        "spec": {"queueName": "research"},
        "status": {"conditions": list(conditions)},
    }


KUEUE_MESSAGE = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in "
    "flavor default-flavor, 8 more needed"
)


@pytest.mark.parametrize(
    ("pod", "events", "workload", "reason"),
    [
        # Kueue holds the Job: no pod at all, Katib says Running.
        (
            None,
            [],
            workload_obj(
                cond("QuotaReserved", "False", reason="Pending", message=KUEUE_MESSAGE),
                cond(
                    "Admitted",
                    "False",
                    reason="NoReservation",
                    message="The workload has no reservation",
                ),
            ),
            f"queued in Kueue, not admitted: {KUEUE_MESSAGE}",
        ),
        (None, [], workload_obj(), "queued in Kueue, not admitted yet"),
        (
            None,
            [],
            workload_obj(
                cond("Evicted", reason="Preempted", message="Preempted to accommodate a workload")
            ),
            "evicted by Kueue: Preempted to accommodate a workload",
        ),
        # Admitted: Kueue is not the reason; the pod is.
        (
            pod_obj(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": UNSCHEDULABLE,
                    }
                ]
            ),
            [event("FailedScheduling", UNSCHEDULABLE)],
            workload_obj(cond("QuotaReserved"), cond("Admitted")),
            "unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu",
        ),
        (
            pod_obj(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "SchedulingGated",
                        "message": "Scheduling is blocked due to non-empty scheduling gates",
                    }
                ]
            ),
            [],
            None,
            "not scheduled (SchedulingGated): Scheduling is blocked due to non-empty scheduling gates",
        ),
        (
            pod_obj(
                conditions=[{"type": "PodScheduled", "status": "True"}],
                **waiting("ImagePullBackOff", f'Back-off pulling image "{PULL_IMAGE}"'),
            ),
            [
                event(
                    "Failed",
                    f'Failed to pull image "{PULL_IMAGE}": rpc error: code = NotFound desc = not found',
                ),
                event("BackOff", f'Back-off pulling image "{PULL_IMAGE}"', at=T2),
            ],
            None,
            f'image pull failed (ImagePullBackOff): Failed to pull image "{PULL_IMAGE}": rpc error: code = NotFound desc = not found',
        ),
        (
            pod_obj(**waiting("ErrImagePull", "manifest unknown")),
            [],
            None,
            "image pull failed (ErrImagePull): manifest unknown",
        ),
        (
            pod_obj(**waiting("CreateContainerConfigError", 'secret "hf-token" not found')),
            [],
            None,
            'CreateContainerConfigError: secret "hf-token" not found',
        ),
        (
            pod_obj(
                "Running",
                **waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
            ),
            [],
            None,
            "CrashLoopBackOff: back-off 5m0s restarting failed container",
        ),
        # Waiting to be created: the latest Warning event says why (a missing PVC).
        (
            pod_obj(**waiting("ContainerCreating")),
            [
                event("FailedMount", "old", at=T0),
                event("Pulling", "Pulling image", type_="Normal", at=T2),
                event(
                    "FailedMount",
                    'MountVolume.SetUp failed for volume "pvc-datasets": persistentvolumeclaim "datasets" not found',
                    at=T1,
                ),
            ],
            None,
            'FailedMount: MountVolume.SetUp failed for volume "pvc-datasets": persistentvolumeclaim "datasets" not found',
        ),
        (
            pod_obj(**waiting("ContainerCreating")),
            [event("Pulling", "Pulling", type_="Normal")],
            None,
            None,
        ),
        # Nothing wrong.
        (
            pod_obj("Running", conditions=[{"type": "PodScheduled", "status": "True"}]),
            [event("Old", "old warning")],
            None,
            None,
        ),
        (None, [], None, None),
        (
            None,
            [event("FailedCreate", "Error creating: pods is forbidden: exceeded quota")],
            None,
            "FailedCreate: Error creating: pods is forbidden: exceeded quota",
        ),
        (None, [], workload_obj(cond("Admitted")), None),
    ],
)
def test_pending_reason(
    pod: dict[str, Any] | None,
    events: list[dict[str, Any]],
    workload: dict[str, Any] | None,
    reason: str | None,
) -> None:
    assert diagnosis.pending_reason(pod=pod, events=events, workload=workload) == reason


def test_expected_metrics_text_names_the_tags_and_the_directory() -> None:
    text = katib_status.expected_metrics_text(pod_options_spec())
    assert "/var/log/katib/tfevent/" in text and "--tensorboard_dir=/var/log/katib/tfevent/" in text
    assert "`loss` (objective, min value): a scalar tag starting with `loss`" in text
    assert (
        "`eval/accuracy` (additional metric, max value): a scalar tag starting with `accuracy` "
        "in an event file whose directory ends in `eval`"
    ) in text
    assert "a tag `eval/accuracy` written at the top level does not match" in text


# --------------------------------------------------------------------------- with the emulator


def test_status_functions_read_the_emulators_objects() -> None:
    """The objects tests/kube_emulator.py's KatibController makes (shaped after Katib's)."""
    from tests.kube_emulator import KatibController, KubeEmulator

    kube = KubeEmulator(
        namespaces={NAMESPACE: {"katib.kubeflow.org/metrics-collector-injection": "enabled"}}
    )
    katib_ctl = KatibController(kube)
    doc = render("pod_options")
    kube.put("experiments", doc)
    ok, bad, none, held, unsched, pull = katib_ctl.create_trials(
        NAMESPACE,
        NAME,
        [{"lr": 0.001, "batch_size": b} for b in (16, 32, 48, 64, 20, 24)],
    )

    def trial(handle: Any) -> dict[str, Any]:
        found = kube.get_object("trials", NAMESPACE, handle.name)
        assert found is not None
        return found

    def pod(handle: Any) -> dict[str, Any] | None:
        pods = kube.objects("pods", NAMESPACE, f"{names.TRIAL_LABEL}={handle.name}")
        return pods[0] if pods else None

    def events(handle: Any) -> list[dict[str, Any]]:
        p = pod(handle)
        names = {handle.name} | ({p["metadata"]["name"]} if p else set())
        return [
            e for e in kube.objects("events", NAMESPACE) if e["involvedObject"]["name"] in names
        ]

    assert katib_status.trial_status(trial(ok)) == "Pending"
    before = {h.name: katib_status.trial_status(trial(h)) for h in (ok, bad, none)}
    for handle in (ok, bad, none):
        katib_ctl.run_trial(NAMESPACE, handle.name)
    katib_ctl.succeed_trial(
        NAMESPACE, ok.name, {"loss": {"min": 0.2, "max": 0.9, "latest": 0.3}, "eval/accuracy": 0.8}
    )
    katib_ctl.fail_trial(NAMESPACE, bad.name)
    katib_ctl.metrics_unavailable(NAMESPACE, none.name)
    after = {h.name: katib_status.trial_status(trial(h)) for h in (ok, bad, none)}
    assert [(before[h.name], after[h.name]) for h in (ok, bad, none)] == [
        ("Pending", "Succeeded"),
        ("Pending", "Failed"),
        ("Pending", "MetricsUnavailable"),
    ]

    row = katib_status.trial_row(trial(ok), spec=pod_options_spec(), number=1)
    assert (row.status, row.objective, row.params) == (
        "Succeeded",
        0.2,
        {"lr": 0.001, "batch_size": 16},
    )
    assert row.metrics == {"loss": 0.2, "eval/accuracy": 0.8}
    assert row.start is not None and row.end is not None and row.end >= row.start
    failed = katib_status.trial_row(trial(bad), spec=pod_options_spec(), number=2)
    assert failed.status == "Failed" and "backoff limit" in failed.reason
    unavailable = katib_status.trial_row(trial(none), spec=pod_options_spec(), number=3)
    assert (unavailable.status, unavailable.objective) == ("MetricsUnavailable", None)

    workload = katib_ctl.kueue_pending(NAMESPACE, held.name, queue="research")
    reason = diagnosis.pending_reason(pod=pod(held), events=events(held), workload=workload)
    assert (
        reason
        and reason.startswith("queued in Kueue, not admitted: ")
        and "nvidia.com/gpu" in reason
    )
    katib_ctl.unschedulable(NAMESPACE, unsched.name)
    assert diagnosis.pending_reason(pod=pod(unsched), events=events(unsched), workload=None) == (
        "unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
    )
    katib_ctl.image_pull_backoff(NAMESPACE, pull.name)
    reason = diagnosis.pending_reason(pod=pod(pull), events=events(pull), workload=None)
    assert reason and reason.startswith(
        "image pull failed (ImagePullBackOff): Failed to pull image"
    )

    katib_ctl.finish(NAMESPACE, NAME, succeeded=False)
    exp = kube.get_object("experiments", NAMESPACE, NAME)
    assert exp is not None
    state, message = katib_status.experiment_status(exp)
    assert state == "Failed"
    assert "1 Succeeded, 1 Failed, 1 MetricsUnavailable" in message
    numbers = katib_status.trial_numbers(kube.objects("trials", NAMESPACE))
    assert sorted(numbers.values()) == [1, 2, 3, 4, 5, 6]
