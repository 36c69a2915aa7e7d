"""Issue 22: on a shared GPU cluster preemption is normal. A trial whose pod the cluster ends
(preempted, evicted, node lost) is restarted by its Job (podFailurePolicy: DisruptionTarget ->
Ignore) and the experiment goes on; watch, status and results say what happened and the
GPU-hours it cost. A program's own failure (OOMKilled) still fails the trial at once.

End to end through the CLI against the API emulator (`lab` from tests/test_submit.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from launch import diagnosis, results
from launch.errors import ExitCode
from tests import test_submit
from tests.kube_emulator import KatibController, KubeEmulator, running
from tests.test_submit import NS, RUN, Lab, _once_watching, invoke

lab = test_submit.lab  # the fixture: a project, an emulated cluster, a real registry

PARAMS = {"optim.lr": 0.01, "hidden": 8, "activation": "relu"}
GPU_RUN = ["--gpus", "1", *RUN]
TICK = 1.1  # the emulator's times have whole seconds: a run this long lasts >= 1 s


def _drive(lab: Lab, disrupt: Callable[[str], Any], *, watching: str = "pods") -> threading.Thread:
    """Play Katib and the cluster: one trial runs, is disrupted (`disrupt(trial)`), its
    replacement pod runs and succeeds; then the experiment succeeds."""

    def play() -> None:
        name = _once_watching(lab, watching)
        (trial,) = lab.katib.create_trials(NS, name, [PARAMS])
        lab.katib.run_trial(NS, trial.name)
        time.sleep(TICK)
        new_pod = disrupt(trial.name)
        assert new_pod != trial.pod
        lab.katib.run_trial(NS, trial.name)
        time.sleep(TICK)
        lab.katib.succeed_trial(NS, trial.name, {"val_loss": 0.02, "train_loss": 0.03})
        lab.katib.finish(NS, name)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def _results(name: str) -> list[dict[str, Any]]:
    out = invoke("results", name, "--per-trial", "--format", "json")
    assert out.exit_code == 0, out.output
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def test_a_preempted_trial_restarts_succeeds_and_says_so(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    driver = _drive(lab, lambda trial: lab.katib.preempt_trial(NS, trial))
    result = invoke("--name", "pre", "--timeout", "60s", "--wait", "all", *GPU_RUN)
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "preempted by the scheduler (a higher-priority pod), restarted (1)" in result.stderr
    assert "Succeeded" in result.stderr and "Failed" not in result.stderr
    exp = lab.kube.get_object("experiments", NS, "pre")
    assert exp is not None and "trialsFailed" not in exp["status"]
    # Reattached later, `watch` tells the same story from the pods.
    watched = invoke("watch", "pre")
    assert watched.exit_code == 0, watched.output
    assert "trial 1 (pre-" in watched.stderr and "restarted (1)" in watched.stderr
    assert "preempted by the scheduler (a higher-priority pod)" in watched.stderr
    (row,) = _results("pre")
    assert row["status"] == "Succeeded" and row["restarts"] == 1
    # Both attempts count: the lost one ran >= 1 s on 1 GPU, and so did the replacement.
    assert row["gpu_hours"] >= 2 / 3600
    table = invoke("results", "pre", "--per-trial")
    assert table.exit_code == 0 and "restarts" in table.stdout and "gpu_hours" in table.stdout
    status = invoke("status", "pre", "--json")
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)
    assert doc["restarts"] == 1 and doc["gpuHours"] >= 2 / 3600
    text = invoke("status", "pre")
    assert "restarts: 1 (1 trial(s))" in text.stdout and "GPU-hours:" in text.stdout


def test_kueue_preemption_names_the_preempting_workload(lab: Lab) -> None:
    """Kueue preempts as it does for a batch Job: the Job is suspended and its pod deleted (no
    pod keeps a trace), the Workload records the eviction and the 30 minutes it was admitted.
    Watch names the preemptor from the Workload; results and status count the restart and the
    lost half GPU-hour besides the replacement's run."""
    lab.kaniko.auto("succeed")
    gone: list[str] = []

    def preempt(trial: str) -> str:
        (old,) = lab.katib.trial_pods(NS, trial)
        new = lab.katib.preempt_trial(NS, trial, by="llm-pretrain", priority="high",
                                      admitted_s=1800)  # fmt: skip
        if lab.kube.get_object("pods", NS, old["metadata"]["name"]) is None:
            gone.append(old["metadata"]["name"])
        return new

    driver = _drive(lab, preempt, watching="workloads")
    result = invoke("--name", "kq", "--queue", "default", "--timeout", "60s", "--wait", "all",
                    *GPU_RUN)  # fmt: skip
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert gone, "Kueue's preemption deletes the Job's pod"
    assert "preempted by llm-pretrain (priority high), restarted (1)" in result.stderr, (
        result.stderr
    )
    assert result.stderr.count("restarted (") == 1
    (row,) = _results("kq")
    assert row["restarts"] == 1 and row["status"] == "Succeeded"
    (pod,) = lab.katib.trial_pods(NS, row["name"])  # the replacement: it ran >= 1 s
    ran = diagnosis.pod_gpu_hours(pod, now=time.time())
    assert ran >= 1 / 3600
    assert row["gpu_hours"] == pytest.approx(0.5 + ran, abs=1e-6)
    doc = json.loads(invoke("status", "kq", "--json").stdout)
    assert doc["restarts"] == 1 and doc["gpuHours"] == pytest.approx(
        0.5 + ran, abs=1e-4
    )  # 4 places
    # Reattached later, `watch` tells the same story from the Workload.
    watched = invoke("watch", "kq")
    assert watched.exit_code == 0, watched.output
    assert "preempted by llm-pretrain (priority high), restarted (1)" in watched.stderr


def test_a_sweep_survives_repeated_preemption_with_exact_accounting(lab: Lab) -> None:
    """Two trials under Kueue, one preempted five times in every way the cluster has (two
    Kueue preemptions of 20 and 40 admitted minutes, the scheduler, an eviction, a lost node),
    the other twice: no trial fails, the experiment succeeds, each restart is said once with
    its running count, and results/status count 7 restarts and every GPU-hour: Kueue's 1 h
    plus each remaining pod's own run."""
    lab.kaniko.auto("succeed")
    katib = lab.katib
    made: list[Any] = []
    current: dict[str, list[str]] = {}  # each trial's pods since its last admission

    def play() -> None:
        name = _once_watching(lab, "workloads")
        first, second = katib.create_trials(NS, name, [PARAMS, {**PARAMS, "hidden": 16}])
        made.extend((first, second))

        def kueue(who: str, held: int) -> Callable[[str], str]:
            return lambda t: katib.preempt_trial(NS, t, by=who, priority="high", admitted_s=held)

        # (Kueue's? a Kueue eviction ends an admission: its pods' time is in Kueue's record)
        plan: dict[str, list[tuple[bool, Callable[[str], str]]]] = {
            first.name: [
                (True, kueue("pretrain-a", 1200)),
                (False, lambda t: katib.preempt_trial(NS, t)),
                (False, lambda t: katib.evict_trial(NS, t)),
                (True, kueue("pretrain-b", 2400)),
                (False, lambda t: katib.lose_node(NS, t)),
            ],
            second.name: [
                (False, lambda t: katib.preempt_trial(NS, t)),
                (False, lambda t: katib.evict_trial(NS, t)),
            ],
        }
        for trial, disruptions in plan.items():
            katib.run_trial(NS, trial)
            (pod,) = katib.trial_pods(NS, trial)
            current[trial] = [pod["metadata"]["name"]]
            for by_kueue, disrupt in disruptions:
                time.sleep(TICK)
                new_pod = disrupt(trial)
                current[trial] = [new_pod] if by_kueue else [*current[trial], new_pod]
                katib.run_trial(NS, trial)
            time.sleep(TICK)
            katib.succeed_trial(NS, trial, {"val_loss": 0.02, "train_loss": 0.03})
        katib.finish(NS, name)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    result = invoke("--name", "rep", "--queue", "default", "--timeout", "90s", "--wait", "all",
                    *GPU_RUN)  # fmt: skip
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "Failed" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "restarted (" in line]
    assert len(lines) == 7, result.stderr
    first_lines = [line for line in lines if f"({made[0].name})" in line]
    assert [line.rsplit("restarted ", 1)[1] for line in first_lines] == [
        f"({n})" for n in range(1, 6)
    ]
    assert "preempted by pretrain-a (priority high), restarted (1)" in first_lines[0]
    assert "preempted by pretrain-b (priority high), restarted (4)" in first_lines[3]
    exp = lab.kube.get_object("experiments", NS, "rep")
    assert exp is not None and "trialsFailed" not in exp["status"]
    rows = {row["name"]: row for row in _results("rep")}
    now = time.time()
    for trial, restarts, lost in zip(made, (5, 2), (1.0, 0.0), strict=True):
        pods = lab.katib.trial_pods(NS, trial.name)
        ran = sum(
            diagnosis.pod_gpu_hours(p, now=now)
            for p in pods
            if p["metadata"]["name"] in current[trial.name]
        )
        assert ran * 3600 >= len(current[trial.name]) - 1e-6  # each ran >= 1 s on 1 GPU
        assert rows[trial.name]["restarts"] == restarts
        assert rows[trial.name]["gpu_hours"] == pytest.approx(lost + ran, abs=1e-6)
    doc = json.loads(invoke("status", "rep", "--json").stdout)
    assert doc["restarts"] == 7 and doc["trials"]["Succeeded"] == 2
    total = sum(row["gpu_hours"] for row in rows.values())
    assert doc["gpuHours"] == pytest.approx(total, abs=1e-4)


def test_node_loss_restarts_the_trial(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    driver = _drive(lab, lambda trial: lab.katib.lose_node(NS, trial))
    result = invoke("--name", "lost", "--timeout", "60s", "--wait", "all", *GPU_RUN)
    driver.join(10)
    assert result.exit_code == 0, result.output
    assert "node lost" in result.stderr and "restarted (1)" in result.stderr
    (row,) = _results("lost")
    assert row["restarts"] == 1 and row["gpu_hours"] > 0


def test_an_oom_killed_trial_fails_at_once_with_the_reason(lab: Lab) -> None:
    lab.kaniko.auto("succeed")

    def play() -> None:
        name = _once_watching(lab, "pods")
        (trial,) = lab.katib.create_trials(NS, name, [PARAMS])
        lab.katib.run_trial(NS, trial.name)
        lab.katib.oom_kill_trial(NS, trial.name)
        lab.katib.finish(NS, name, succeeded=False)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    result = invoke("--name", "oom", "--timeout", "60s", *GPU_RUN)
    driver.join(10)
    assert result.exit_code == ExitCode.TRIAL_FAILED, result.output
    assert "OOMKilled (exit 137): out of memory" in result.stderr
    assert "restarted" not in result.stderr
    assert len(lab.katib.trial_pods(NS, lab.kube.objects("trials", NS)[0]["metadata"]["name"])) == 1
    (row,) = _results("oom")
    assert row["status"] == "Failed" and row["reason"] == "OOMKilled (exit 137): out of memory"
    assert "restarts" in row and row["restarts"] == 0


def test_a_gpu_fault_in_the_log_is_named(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    log = "step 10\nNVRM: Xid (PCI:0000:3b:00): 79, pid=812, GPU has fallen off the bus.\n"

    def play() -> None:
        name = _once_watching(lab, "pods")
        (trial,) = lab.katib.create_trials(NS, name, [PARAMS])
        lab.katib.run_trial(NS, trial.name)
        lab.katib.fail_trial(NS, trial.name, log=log)
        lab.katib.finish(NS, name, succeeded=False)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    result = invoke("--name", "xid", "--timeout", "60s", *GPU_RUN)
    driver.join(10)
    assert result.exit_code == ExitCode.TRIAL_FAILED, result.output
    assert "GPU fault (Xid 79: GPU has fallen off the bus)" in result.stderr


# --------------------------------------------------------------------------- the emulator alone


@pytest.fixture
def kube() -> Any:
    with running() as k:
        k.put("namespaces", {"metadata": {"name": NS}})
        yield k


def _experiment(kube: KubeEmulator) -> str:
    gpu = {"limits": {"nvidia.com/gpu": "2"}}
    kube.put(
        "experiments",
        {
            "apiVersion": "kubeflow.org/v1beta1",
            "metadata": {"name": "e", "namespace": NS},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "trialTemplate": {
                    "primaryContainerName": "training",
                    "trialSpec": {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "spec": {"template": {"spec": {"containers": [
                            {"name": "training", "image": "x", "resources": gpu}]}}},
                    },
                },
            },
        },
    )  # fmt: skip
    return "e"


@pytest.mark.parametrize(
    ("how", "reason", "words"),
    [
        ("preempt", "PreemptionByScheduler", "preempted by the scheduler"),
        ("evict", "EvictionByEvictionAPI", "evicted"),
        ("lose", "DeletionByTaintManager", "node lost"),
    ],
)
def test_a_disruption_fails_the_pod_and_the_job_makes_a_new_one(
    kube: KubeEmulator, how: str, reason: str, words: str
) -> None:
    katib = KatibController(kube)
    (trial,) = katib.create_trials(NS, _experiment(kube), [{"lr": 0.1}])
    katib.run_trial(NS, trial.name)
    time.sleep(TICK)
    new = {"preempt": katib.preempt_trial, "evict": katib.evict_trial, "lose": katib.lose_node}[
        how
    ](NS, trial.name)
    old_pod, new_pod = katib.trial_pods(NS, trial.name)
    assert old_pod["metadata"]["name"] == trial.pod and new_pod["metadata"]["name"] == new
    assert old_pod["status"]["phase"] == "Failed" and new_pod["status"]["phase"] == "Pending"
    condition = diagnosis.disruption_condition(old_pod)
    assert condition is not None and condition["reason"] == reason
    assert new_pod["metadata"]["labels"] == old_pod["metadata"]["labels"] | {
        k: v for k, v in new_pod["metadata"]["labels"].items() if "uid" in k
    }
    text = diagnosis.disruption_text(old_pod)
    assert text is not None and text.startswith(words)
    # The trial goes on: still Running, the Job still active and not failed.
    job = kube.get_object("jobs", NS, trial.name)
    assert job is not None and job["status"]["active"] == 1 and "failed" not in job["status"]
    katib.run_trial(NS, trial.name)
    time.sleep(TICK)
    katib.succeed_trial(NS, trial.name, {"loss": 0.5})
    pods = katib.trial_pods(NS, trial.name)
    restarts, hours = diagnosis.trial_usage(pods, now=time.time())
    assert restarts == 1 and hours is not None and hours >= 2 * 2 / 3600
    assert diagnosis.live_pod(pods) == pods[-1]


def test_oom_kill_fails_the_job_by_its_failjob_rule(kube: KubeEmulator) -> None:
    katib = KatibController(kube)
    (trial,) = katib.create_trials(NS, _experiment(kube), [{"lr": 0.1}])
    katib.run_trial(NS, trial.name)
    katib.oom_kill_trial(NS, trial.name)
    (pod,) = katib.trial_pods(NS, trial.name)
    assert diagnosis.failure_text(pod) == "OOMKilled (exit 137): out of memory"
    job = kube.get_object("jobs", NS, trial.name)
    assert job is not None
    assert {c["reason"] for c in job["status"]["conditions"]} == {"PodFailurePolicy"}
    obj = kube.get_object("trials", NS, trial.name)
    assert obj is not None and "FailJob rule" in obj["status"]["conditions"][-1]["message"]


# --------------------------------------------------------------------------- pure parts


def _pod(name: str, *, created: str, started: str | None, finished: str | None = None,
         condition: dict[str, Any] | None = None, gpus: str | None = "4") -> dict[str, Any]:  # fmt: skip
    state: dict[str, Any] = {}
    if started and finished:
        state = {"terminated": {"exitCode": 143, "startedAt": started, "finishedAt": finished}}
    elif started:
        state = {"running": {"startedAt": started}}
    resources = {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"containers": [{"name": "training", "resources": resources}]},
        "status": {
            "phase": "Failed" if finished else "Running" if started else "Pending",
            "conditions": [condition] if condition else [],
            "containerStatuses": [{"name": "training", "state": state}] if state else [],
        },
    }


PREEMPTED = {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
             "message": "default-scheduler: preempting to accommodate a higher priority pod"}  # fmt: skip


def test_gpu_hours_count_the_lost_attempt_and_the_running_one() -> None:
    lost = _pod("t-a", created="2026-01-01T00:00:00Z", started="2026-01-01T00:00:00Z",
                finished="2026-01-01T00:30:00Z", condition=PREEMPTED)  # fmt: skip
    now_running = _pod("t-b", created="2026-01-01T00:31:00Z", started="2026-01-01T00:31:00Z")
    waiting = _pod("t-c", created="2026-01-01T00:32:00Z", started=None)
    now = diagnosis.epoch_seconds("2026-01-01T01:01:00Z")
    assert now is not None
    restarts, hours = diagnosis.trial_usage([lost, now_running, waiting], now=now)
    assert restarts == 1 and hours == pytest.approx(4 * 0.5 + 4 * 0.5)
    assert diagnosis.live_pod([now_running, lost]) is now_running
    cpu_only = _pod(
        "t-d", created="2026-01-01T00:00:00Z", started="2026-01-01T00:00:00Z", gpus=None
    )
    assert diagnosis.trial_usage([cpu_only], now=now) == (0, None)
    # A multi-node (TrainJob) trial: every node's `node` container counts.
    nodes = [_pod(f"t-n{i}", created="2026-01-01T00:00:00Z", started="2026-01-01T00:00:00Z",
                  finished="2026-01-01T00:30:00Z") for i in range(2)]  # fmt: skip
    for pod in nodes:
        pod["spec"]["containers"][0]["name"] = "node"
    assert diagnosis.trial_usage(nodes, now=now) == (0, pytest.approx(2 * 4 * 0.5))


def test_kueue_preemption_names_the_preemptor_and_its_priority() -> None:
    message = ("Preempted to accommodate a workload (UID: u-1, JobUID: j-1) due to prioritization "
               "in the ClusterQueue; preemptor path: /q; preemptee path: /q")  # fmt: skip
    pod = _pod("t-a", created="2026-01-01T00:00:00Z", started=None, condition={
        "type": "TerminationTarget", "status": "True", "reason": "WorkloadEvictedDueToPreempted",
        "message": message})  # fmt: skip
    preemptor = {"metadata": {"name": "job-pretrain-x1", "uid": "u-1"},
                 "spec": {"priorityClassName": "high"}}  # fmt: skip
    # Re-admitted: the Evicted condition is False again but still says who preempted it.
    mine = {"status": {"conditions": [{"type": "Evicted", "status": "False", "reason": "Preempted",
                                        "message": message}]}}  # fmt: skip
    text = diagnosis.disruption_text(pod, workload=mine, workloads=[preemptor])
    assert text == "preempted by job-pretrain-x1 (priority high)"
    assert diagnosis.disruption_text(pod, workload=mine) == (
        "preempted by a higher-priority workload (Kueue)"
    )
    assert diagnosis.disruption_text(pod) == "evicted by Kueue (Preempted)"
    # Kueue's Job integration leaves no pod behind: the Workload tells the story.
    log = diagnosis.DisruptionLog()
    evicted = {"metadata": {"uid": "w-t"},
               "status": {"conditions": [{**mine["status"]["conditions"][0], "status": "True"}],
                          "schedulingStats": {"evictions": [
                              {"reason": "Preempted", "underlyingCause": "", "count": 1}]}}}  # fmt: skip
    log.add_workload(evicted, "t")
    # A watch may see the evicted Workload before its preemptor's: it lists them first.
    assert log.preemptor_unseen("t")
    log.add_workload(preemptor, None)
    assert not log.preemptor_unseen("t")
    assert log.notes("t", 3) == [
        "trial 3 (t) preempted by job-pretrain-x1 (priority high), restarted (1)"
    ]
    assert log.notes("t", 3) == []  # once
    # A later scheduler preemption of the new pod is the scheduler's, and counts on.
    log.add_pod("t", _pod("t-b", created="2026-01-01T00:00:00Z", started=None, condition=PREEMPTED))
    assert log.notes("t", 3) == [
        "trial 3 (t) preempted by the scheduler (a higher-priority pod), restarted (2)"
    ]


def _workload(*, accumulated: int | None, admitted_at: str | None, evictions: int,
              gpus: int = 4, count: int = 1) -> dict[str, Any]:  # fmt: skip
    template = {"spec": {"containers": [
        {"name": "training", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}},
        {"name": "metrics-logger-and-collector", "resources": {}}]}}  # fmt: skip
    status: dict[str, Any] = {
        "conditions": [{"type": "Admitted", "status": "True" if admitted_at else "False",
                        "lastTransitionTime": admitted_at or "2026-01-01T00:00:00Z"}],
        "schedulingStats": {"evictions": [
            {"reason": "Preempted", "underlyingCause": "", "count": evictions},
            {"reason": "Deactivated", "underlyingCause": "", "count": 5}]},
    }  # fmt: skip
    if accumulated is not None:
        status["accumulatedPastExecutionTimeSeconds"] = accumulated
    return {"spec": {"podSets": [{"name": "main", "count": count, "template": template}]},
            "status": status}  # fmt: skip


def test_kueue_evictions_count_by_kueues_admitted_time_and_pods_by_their_run() -> None:
    """Two Kueue evictions after 30 and 15 minutes admitted (Kueue keeps 2700 s), then a
    scheduler preemption and a running pod in the third admission: 4 GPUs x (0.75 h lost +
    0.5 h + 0.5 h). A failed pod of an earlier admission is not counted twice; deactivations
    are not restarts."""
    now = diagnosis.epoch_seconds("2026-01-01T03:00:00Z")
    assert now is not None
    earlier = _pod("t-0", created="2026-01-01T00:00:00Z", started="2026-01-01T00:00:00Z",
                   finished="2026-01-01T00:10:00Z", condition=PREEMPTED)  # fmt: skip
    lost = _pod("t-a", created="2026-01-01T02:00:00Z", started="2026-01-01T02:00:00Z",
                finished="2026-01-01T02:30:00Z", condition=PREEMPTED)  # fmt: skip
    running_pod = _pod("t-b", created="2026-01-01T02:30:00Z", started="2026-01-01T02:30:00Z")
    workload = _workload(accumulated=2700, admitted_at="2026-01-01T02:00:00Z", evictions=2)
    restarts, hours = diagnosis.trial_usage([earlier, lost, running_pod], now=now,
                                            workload=workload)  # fmt: skip
    assert restarts == 2 + 2 and hours == pytest.approx(4 * (0.75 + 0.5 + 0.5))
    # Evicted now, waiting for quota: no pod of this cycle; only Kueue's record counts.
    waiting = _workload(accumulated=2700, admitted_at=None, evictions=2)
    assert diagnosis.trial_usage([earlier], now=now, workload=waiting) == (
        3,
        pytest.approx(4 * 0.75),
    )
    # A 2-node TrainJob Workload holds count x GPUs; v1beta1's misspelt field is read too.
    nodes = _workload(accumulated=None, admitted_at="2026-01-01T02:00:00Z", evictions=1, count=2)
    nodes["status"]["accumulatedPastExexcutionTimeSeconds"] = 3600
    assert diagnosis.kueue_lost_gpu_hours(nodes) == pytest.approx(2 * 4 * 1.0)
    # Never evicted: the pods alone, as without Kueue.
    fresh = _workload(accumulated=None, admitted_at="2026-01-01T02:00:00Z", evictions=0)
    assert diagnosis.trial_usage([running_pod], now=now, workload=fresh) == (
        0,
        pytest.approx(4 * 0.5),
    )


def test_disruption_words_and_oom() -> None:
    def words(reason: str) -> str | None:
        condition = {"type": "DisruptionTarget", "status": "True", "reason": reason}
        pod = _pod("p", created="2026-01-01T00:00:00Z", started=None, condition=condition)
        return diagnosis.disruption_text(pod)

    assert words("EvictionByEvictionAPI") == "evicted (Eviction API: a node drain or an admin)"
    assert str(words("DeletionByPodGC")).startswith("node lost")
    assert str(words("Something")).startswith("disrupted (Something")
    healthy = _pod("p", created="2026-01-01T00:00:00Z", started="2026-01-01T00:00:00Z")
    assert diagnosis.disruption_text(healthy) is None and diagnosis.failure_text(healthy) is None
    healthy["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 137, "reason": "OOMKilled"}
    }
    assert diagnosis.failure_text(healthy) == "OOMKilled (exit 137): out of memory"


def test_restarts_and_gpu_hours_round_trip_and_show_only_when_set() -> None:
    plain = results.Trial("a", 1, {"lr": 0.1}, "Succeeded", 0.5)
    header, _ = results.to_rows([plain], "loss")
    assert "restarts" not in header and "gpu_hours" not in header
    assert "restarts" not in results.to_json([plain]) and "gpu_hours" not in results.to_json(
        [plain]
    )
    assert results.from_json(results.to_json([plain])) == [plain]
    cluster = [
        results.Trial("b", 2, {"lr": 0.2}, "Succeeded", 0.4, restarts=2, gpu_hours=1.25),
        results.Trial("c", 3, {"lr": 0.3}, "Succeeded", 0.3, gpu_hours=0.5),
    ]
    assert results.from_json(results.to_json(cluster)) == cluster
    assert json.loads(results.to_json(cluster))[1]["restarts"] == 0  # cluster rows say 0 too
    header, rows = results.to_rows(cluster, "loss")
    assert rows[0][header.index("restarts")] == "2"
    assert rows[0][header.index("gpu_hours")] == "1.2500"
    assert "restarts,gpu_hours" in results.to_csv(cluster, "loss").splitlines()[0]
