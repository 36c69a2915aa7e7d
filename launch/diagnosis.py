"""Why a trial is not running yet, in a user's words: a Kueue Workload not admitted, a pod the
scheduler cannot place, a container stuck waiting (image pull, missing Secret, crash loop), or
the latest Warning event.

Pure: the Pod, Event and Workload objects as plain dicts in, one line of text out.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from launch.katib_status import conditions_of, epoch_seconds, status_of

# Container waiting reasons that will not go away by themselves (kubelet's images and
# kuberuntime packages); ContainerCreating and PodInitializing are progress, not problems.
_IMAGE_PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
_BAD_WAITING_REASONS = (
    *_IMAGE_PULL_REASONS,
    "CrashLoopBackOff",
    "CreateContainerConfigError",  # e.g. a --secret-env Secret or key that does not exist
    "CreateContainerError",
    "RunContainerError",
)


def _event_time(event: Mapping[str, Any]) -> float:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        stamp = epoch_seconds(event.get(key))
        if stamp is not None:
            return stamp
    series = event.get("series")
    if isinstance(series, Mapping):
        stamp = epoch_seconds(series.get("lastObservedTime"))
        if stamp is not None:
            return stamp
    stamp = epoch_seconds((event.get("metadata") or {}).get("creationTimestamp"))
    return -math.inf if stamp is None else stamp


def _latest_warning(
    events: Sequence[Mapping[str, Any]], reasons: Sequence[str] | None = None
) -> Mapping[str, Any] | None:
    warnings = [
        (index, event)
        for index, event in enumerate(events)
        if event.get("type") == "Warning" and (reasons is None or event.get("reason") in reasons)
    ]
    if not warnings:
        return None
    return max(warnings, key=lambda item: (_event_time(item[1]), item[0]))[1]


def _scheduler_message(message: str) -> str:
    """The scheduler's message without its trailing preemption report."""
    return re.split(r"\s*preemption:", message, maxsplit=1)[0].strip().rstrip(".")


def _workload_reason(workload: Mapping[str, Any]) -> str | None:
    """Kueue v0.19 (apis/kueue/v1beta2 workload_types.go): a Workload runs once Admitted=True."""
    conditions = conditions_of(workload)
    by_type = {c.get("type"): c for c in conditions}
    admitted = by_type.get("Admitted")
    if admitted is not None and admitted.get("status") == "True":
        return None
    evicted = by_type.get("Evicted")
    if evicted is not None and evicted.get("status") == "True":
        return f"evicted by Kueue: {evicted.get('message') or evicted.get('reason') or ''}".rstrip(
            ": "
        )
    # QuotaReserved=False carries the scheduler's words ("insufficient unused quota ...").
    for kind in ("QuotaReserved", "Admitted", "PodsReady"):
        condition = by_type.get(kind)
        if condition is not None and condition.get("status") != "True" and condition.get("message"):
            return f"queued in Kueue, not admitted: {condition['message']}"
    return "queued in Kueue, not admitted yet"


def pending_reason(
    *,
    pod: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    workload: Mapping[str, Any] | None,
) -> str | None:
    """Why a trial is not running yet, in a user's words, or None when nothing is wrong.

    In order: a Kueue Workload not admitted (Katib knows nothing of Kueue and counts the held
    Job as Running against parallelTrialCount); the pod not scheduled (the scheduler's message,
    e.g. `0/3 nodes are available: 3 Insufficient nvidia.com/gpu`); a container stuck waiting
    (image pull, bad config such as a missing Secret, crash loop); else the latest Warning event
    (e.g. FailedMount of a missing PVC) for a pod still Pending or with no pod at all.
    """
    if workload is not None:
        reason = _workload_reason(workload)
        if reason is not None:
            return reason
    status = status_of(pod) if pod is not None else {}
    for condition in status.get("conditions") or ():
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
        ):
            why = str(condition.get("reason") or "Unschedulable")
            message = _scheduler_message(str(condition.get("message") or ""))
            if why == "Unschedulable":
                return f"unschedulable: {message}" if message else "unschedulable"
            return f"not scheduled ({why}): {message}" if message else f"not scheduled ({why})"
    container_statuses = [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]
    for container in container_statuses:
        state = container.get("state") if isinstance(container, Mapping) else None
        waiting = state.get("waiting") if isinstance(state, Mapping) else None
        if not isinstance(waiting, Mapping) or waiting.get("reason") not in _BAD_WAITING_REASONS:
            continue
        why = str(waiting["reason"])
        message = str(waiting.get("message") or "")
        if why in _IMAGE_PULL_REASONS:
            # kubelet's `Failed` event says why the pull failed (not found, unauthorized, ...);
            # the waiting message only says it backs off.
            failed = _latest_warning(events, ("Failed",))
            if failed is not None and "pull" in str(failed.get("message", "")).lower():
                message = str(failed["message"])
            return f"image pull failed ({why}): {message}".rstrip(": ")
        return f"{why}: {message}".rstrip(": ")
    if pod is not None and status.get("phase") not in (None, "Pending"):
        return None
    warning = _latest_warning(events)
    if warning is not None:
        return f"{warning.get('reason') or 'Warning'}: {warning.get('message') or ''}".rstrip(": ")
    return None


def pending_reasons(
    states: Mapping[str, str],
    *,
    pods: Mapping[str, Mapping[str, Any]],
    warnings: Mapping[str, Sequence[Mapping[str, Any]]],
    workloads: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """{trial: why it is not running} for the unfinished trials in `states` ({trial: state})
    that are held up; `pods` by trial, `warnings` (Warning Events) by involved object name,
    `workloads` by Job name. Katib names a trial's Job after the trial; its pod has its own name.
    """
    out: dict[str, str] = {}
    for trial, state in states.items():
        if state not in ("Pending", "Running", "Created"):
            continue
        pod = pods.get(trial)
        pod_name = str((pod or {}).get("metadata", {}).get("name", "")) if pod else ""
        about = [*warnings.get(trial, ()), *(warnings.get(pod_name, ()) if pod_name else ())]
        why = pending_reason(pod=pod, events=about, workload=workloads.get(trial))
        if why:
            out[trial] = why
    return out


# --------------------------------------------------------------------------- disruptions


# Pod condition types that mark a pod ended by the cluster, not by the program: Kubernetes'
# DisruptionTarget (core/v1 types.go, reasons below) and Kueue's TerminationTarget (its pod
# integration; for Jobs Kueue suspends the Job instead).
_DISRUPTION_TYPES = ("DisruptionTarget", "TerminationTarget")
_DISRUPTION_WORDS = {
    "PreemptionByScheduler": "preempted by the scheduler (a higher-priority pod)",
    "PreemptionByKubeScheduler": "preempted by the scheduler (a higher-priority pod)",  # <= 1.26
    "EvictionByEvictionAPI": "evicted (Eviction API: a node drain or an admin)",
    "DeletionByTaintManager": "node lost (NoExecute taint: the node is unreachable or drained)",
    "DeletionByPodGC": "node lost (the node no longer exists)",
    "TerminationByKubelet": "stopped by the kubelet (node shutdown or resource pressure)",
}
_KUEUE_UID = re.compile(r"Preempted to accommodate a workload \(UID: ([^,)\s]+)")
GPU_RESOURCE = "nvidia.com/gpu"


def disruption_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's True DisruptionTarget (or Kueue TerminationTarget) condition, or None."""
    for condition in conditions_of(pod):
        if condition.get("type") in _DISRUPTION_TYPES and condition.get("status") == "True":
            return condition
    return None


def _kueue_preemptor(
    workload: Mapping[str, Any] | None, workloads: Sequence[Mapping[str, Any]]
) -> str | None:
    """`preempted by <workload> (priority <class>)` from a Workload evicted for preemption
    (Kueue: Evicted=True, reason Preempted, message `Preempted to accommodate a workload (UID:
    <uid>, JobUID: <uid>) due to ...`), naming the preemptor when its Workload is known."""
    if workload is None:
        return None
    # True while evicted; once re-admitted, a False condition may still carry the message.
    evictions = sorted(
        (
            c
            for c in conditions_of(workload)
            if c.get("type") in ("Evicted", "Preempted")
            and (c.get("reason") == "Preempted" or _KUEUE_UID.search(str(c.get("message") or "")))
        ),
        key=lambda c: c.get("status") == "True",
    )
    if not evictions:
        return None
    uid = _preemptor_uid(evictions[-1])
    preemptor = next(
        (w for w in workloads if uid and (w.get("metadata") or {}).get("uid") == uid), None
    )
    if preemptor is None:
        return "preempted by a higher-priority workload (Kueue)"
    name = str((preemptor.get("metadata") or {}).get("name", ""))
    priority = (preemptor.get("spec") or {}).get("priorityClassName")
    return f"preempted by {name}" + (f" (priority {priority})" if priority else "")


def _preemptor_uid(condition: Mapping[str, Any]) -> str | None:
    """The preemptor's Workload UID in Kueue's eviction message, if any."""
    match = _KUEUE_UID.search(str(condition.get("message") or ""))
    return match[1] if match else None


def disruption_text(
    pod: Mapping[str, Any],
    *,
    workload: Mapping[str, Any] | None = None,
    workloads: Sequence[Mapping[str, Any]] = (),
) -> str | None:
    """What ended a disrupted pod, in words (`preempted by <who> (priority <class>)`, `evicted
    (...)`, `node lost (...)`), or None when the pod was not disrupted. `workload` is the trial
    Job's Kueue Workload, `workloads` the namespace's (to name a Kueue preemptor)."""
    condition = disruption_condition(pod)
    if condition is None:
        return None
    reason = str(condition.get("reason") or "")
    kueue = _kueue_preemptor(workload, workloads)
    # Only Kueue's own condition is about the Workload: a scheduler preemption of the
    # trial's pod is not, whatever its Workload went through before.
    if kueue is not None and reason.startswith("WorkloadEvicted"):
        return kueue
    if reason.startswith("WorkloadEvicted"):
        return f"evicted by Kueue ({reason.removeprefix('WorkloadEvictedDueTo')})"
    words = _DISRUPTION_WORDS.get(reason)
    if words is None:
        message = str(condition.get("message") or "")
        words = f"disrupted ({reason}: {message})" if message else f"disrupted ({reason})"
    return words


def _pod_start(pod: Mapping[str, Any]) -> float | None:
    status = status_of(pod)
    for container in status.get("containerStatuses") or ():
        state = container.get("state") if isinstance(container, Mapping) else None
        for key in ("running", "terminated"):
            inner = state.get(key) if isinstance(state, Mapping) else None
            if isinstance(inner, Mapping) and epoch_seconds(inner.get("startedAt")) is not None:
                return epoch_seconds(inner["startedAt"])
    if status.get("phase") in (None, "Pending"):
        return None  # not started: no GPU held by the program yet
    return epoch_seconds(status.get("startTime"))


def _pod_end(pod: Mapping[str, Any]) -> float | None:
    status = status_of(pod)
    ends = []
    for container in status.get("containerStatuses") or ():
        state = container.get("state") if isinstance(container, Mapping) else None
        done = state.get("terminated") if isinstance(state, Mapping) else None
        if isinstance(done, Mapping):
            stamp = epoch_seconds(done.get("finishedAt"))
            if stamp is not None:
                ends.append(stamp)
    if ends:
        return max(ends)
    if status.get("phase") in ("Succeeded", "Failed"):
        condition = disruption_condition(pod)
        return epoch_seconds((condition or {}).get("lastTransitionTime"))
    return None


def _container_gpus(container: Mapping[str, Any]) -> int:
    """GPUs one container asks for (limits, else requests)."""
    resources = container.get("resources") or {}
    for key in ("limits", "requests"):
        value = (resources.get(key) or {}).get(GPU_RESOURCE)
        with contextlib.suppress(ValueError):
            if value is not None:
                return int(str(value))
    return 0


def pod_gpus(pod: Mapping[str, Any], container: str = "training") -> int:
    """GPUs the training container asks for (limits, else requests; the only container when
    none is named `container`)."""
    containers = [
        c for c in (pod.get("spec") or {}).get("containers") or () if isinstance(c, Mapping)
    ]
    chosen = [c for c in containers if c.get("name") == container] or containers[:1]
    return next((_container_gpus(c) for c in chosen), 0)


def pod_gpu_hours(pod: Mapping[str, Any], *, now: float, container: str = "training") -> float:
    """(end, or `now` while it runs, - start) x GPUs of one pod, in hours; 0 before it starts."""
    gpus = pod_gpus(pod, container)
    start = _pod_start(pod)
    if not gpus or start is None:
        return 0.0
    end = _pod_end(pod)
    return max(0.0, (now if end is None else end) - start) * gpus / 3600.0


def _creation(pod: Mapping[str, Any]) -> tuple[float, str]:
    meta = pod.get("metadata") or {}
    stamp = epoch_seconds(meta.get("creationTimestamp"))
    return (-math.inf if stamp is None else stamp, str(meta.get("name", "")))


def live_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The trial's current pod: the newest one not disrupted (the Job's replacement), else the
    newest."""
    ordered = sorted(pods, key=_creation)
    kept = [p for p in ordered if disruption_condition(p) is None]
    chosen = kept or ordered
    return chosen[-1] if chosen else None


def kueue_evicted(workload: Mapping[str, Any]) -> bool:
    """A Workload Kueue has evicted now (Evicted=True)."""
    return any(
        c.get("type") == "Evicted" and c.get("status") == "True" for c in conditions_of(workload)
    )


def new_disruptions(
    pods: Sequence[Mapping[str, Any]],
    said: Set[str],
    *,
    workload: Mapping[str, Any] | None = None,
    workloads: Sequence[Mapping[str, Any]] = (),
) -> list[tuple[str, str]]:
    """(pod name, what ended it) for the trial's disrupted pods not in `said`, oldest first."""
    out = []
    for pod in sorted(pods, key=_creation):
        name = str((pod.get("metadata") or {}).get("name", ""))
        if name in said or disruption_condition(pod) is None:
            continue
        text = disruption_text(pod, workload=workload, workloads=workloads)
        out.append((name, text or "disrupted"))
    return out


def failure_text(pod: Mapping[str, Any] | None) -> str | None:
    """A training container killed for memory: `OOMKilled (exit 137): out of memory`; else None."""
    for container in status_of(pod or {}).get("containerStatuses") or ():
        state = container.get("state") if isinstance(container, Mapping) else None
        done = state.get("terminated") if isinstance(state, Mapping) else None
        if isinstance(done, Mapping) and done.get("reason") == "OOMKilled":
            return f"OOMKilled (exit {done.get('exitCode', 137)}): out of memory"
    return None


# NVIDIA's Xid catalogue (docs.nvidia.com/deploy/xid-errors): the ones that mean the hardware,
# not the program.
_XID_WORDS = {
    "48": "double-bit ECC error",
    "63": "ECC page retirement",
    "64": "ECC page retirement failed",
    "74": "NVLink error",
    "79": "GPU has fallen off the bus",
    "92": "high single-bit ECC error rate",
    "94": "contained ECC error",
    "95": "uncontained ECC error",
}
_XID = re.compile(r"NVRM: Xid \([^)]*\): (\d+)|\bXid (\d+)\b")
_GPU_PHRASES = ("uncorrectable ECC error", "GPU has fallen off the bus")


def gpu_fault_text(log: str) -> str | None:
    """A GPU fault named in a failed trial's log: `GPU fault (Xid 79: GPU has fallen off the
    bus)`, or `GPU fault: uncorrectable ECC error` (CUDA's words); else None."""
    match = _XID.search(log)
    if match:
        xid = match[1] or match[2]
        words = _XID_WORDS.get(xid)
        return f"GPU fault (Xid {xid}: {words})" if words else f"GPU fault (Xid {xid})"
    lowered = log.lower()
    for phrase in _GPU_PHRASES:
        if phrase.lower() in lowered:
            return f"GPU fault: {phrase}"
    return None


def pods_by_trial(
    pods: Sequence[Mapping[str, Any]], label: str
) -> dict[str, list[Mapping[str, Any]]]:
    """Pods grouped by the value of their trial label (`label`)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        trial = ((pod.get("metadata") or {}).get("labels") or {}).get(label)
        if trial:
            out.setdefault(str(trial), []).append(pod)
    return out


def trial_usage(
    pods: Sequence[Mapping[str, Any]],
    *,
    now: float,
    container: str = "training",
    workload: Mapping[str, Any] | None = None,
) -> tuple[int, float | None]:
    """(restarts, GPU-hours) of one trial from all its pods and its Kueue Workload.

    Restarts: the pods the cluster ended (DisruptionTarget) plus Kueue's evictions. GPU-hours:
    every pod's run x its GPUs, lost attempts included (None when nothing asks for a GPU). A
    Kueue eviction deletes the Job's pods (it suspends the Job), so the admission cycles before
    the current one count as Kueue measured them (`kueue_lost_gpu_hours`), and only pods made
    since the current admission count by their own run."""
    restarts = sum(1 for pod in pods if disruption_condition(pod) is not None)
    lost = 0.0
    if workload is not None:
        restarts += kueue_evictions(workload)
        lost = kueue_lost_gpu_hours(workload)
        since = kueue_admitted_since(workload)
        # Pods of earlier cycles (failed ones stay) are in Kueue's admitted time already.
        pods = [p for p in pods if since is not None and _creation(p)[0] >= since - _CLOCK_SLACK_S]
    mains = [(pod, _main_container(pod, container)) for pod in pods]
    if not lost and not any(pod_gpus(pod, name) for pod, name in mains):
        return restarts, None
    return restarts, lost + sum(pod_gpu_hours(pod, now=now, container=name) for pod, name in mains)


# --------------------------------------------------------------------------- Kueue's record

_CLOCK_SLACK_S = 1.0  # Kueue's and the API server's clocks, at one-second resolution


def kueue_evictions(workload: Mapping[str, Any]) -> int:
    """How often Kueue evicted the Workload, each eviction a restart with new pods: its
    `schedulingStats.evictions` counts (a deactivation, which does not requeue, aside); 1 while
    Evicted=True on a Kueue that keeps no such counts."""
    stats = (status_of(workload).get("schedulingStats") or {}).get("evictions") or ()
    total = 0
    for entry in stats:
        if isinstance(entry, Mapping) and entry.get("reason") != "Deactivated":
            with contextlib.suppress(TypeError, ValueError):
                total += int(entry.get("count") or 0)
    return total or int(kueue_evicted(workload))


def kueue_gpus(workload: Mapping[str, Any]) -> int:
    """GPUs the Workload holds while admitted: each pod set's count x its template's GPUs."""
    total = 0
    for pod_set in (workload.get("spec") or {}).get("podSets") or ():
        if not isinstance(pod_set, Mapping):
            continue
        template = (pod_set.get("template") or {}).get("spec") or {}
        gpus = sum(
            _container_gpus(c) for c in template.get("containers") or () if isinstance(c, Mapping)
        )
        with contextlib.suppress(TypeError, ValueError):
            total += gpus * int(pod_set.get("count") or 1)
    return total


def kueue_lost_gpu_hours(workload: Mapping[str, Any]) -> float:
    """GPU-hours of the Workload's earlier admission cycles: Kueue's
    `accumulatedPastExecutionTimeSeconds` (time admitted before each eviction released its
    quota; v1beta1's misspelt name too) x its GPUs."""
    status = status_of(workload)
    seconds = status.get("accumulatedPastExecutionTimeSeconds")
    if seconds is None:
        seconds = status.get("accumulatedPastExexcutionTimeSeconds")
    try:
        return max(0.0, float(seconds or 0)) * kueue_gpus(workload) / 3600.0
    except (TypeError, ValueError):
        return 0.0


def kueue_admitted_since(workload: Mapping[str, Any]) -> float | None:
    """When the Workload's current admission began (Admitted=True), or None when it is not
    admitted now."""
    for condition in conditions_of(workload):
        if condition.get("type") == "Admitted" and condition.get("status") == "True":
            return epoch_seconds(condition.get("lastTransitionTime")) or -math.inf
    return None


def eviction_text(workload: Mapping[str, Any], workloads: Sequence[Mapping[str, Any]] = ()) -> str:
    """What Kueue's last eviction of `workload` was, in words: `preempted by <who> (priority
    <class>)`, else `evicted by Kueue (<reason>)`."""
    preemptor = _kueue_preemptor(workload, workloads)
    if preemptor is not None:
        return preemptor
    evicted = next((c for c in conditions_of(workload) if c.get("type") == "Evicted"), {})
    stats = (status_of(workload).get("schedulingStats") or {}).get("evictions") or ()
    reasons = [str(e.get("reason")) for e in stats if isinstance(e, Mapping) and e.get("reason")]
    return f"evicted by Kueue ({evicted.get('reason') or ', '.join(reasons) or 'no reason given'})"


def _main_container(pod: Mapping[str, Any], default: str) -> str:
    """The container that asks for the GPUs: `default`, or a multi-node trial's `node` (every
    node of a TrainJob counts: a 2 x 8 GPU trial uses 16)."""
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    return "node" if default not in names and "node" in names else default


@dataclass
class DisruptionLog:
    """What a watch has seen of disruptions, to say each once: every pod of each trial (the
    replaced ones too), the Workloads (by UID, to name a Kueue preemptor; by owning Job or
    TrainJob, for its evictions) and how many restarts of each trial were said."""

    pods: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)
    workloads: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    owned: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    said: set[str] = field(default_factory=set)
    evictions_said: dict[str, int] = field(default_factory=dict)
    restarts_said: dict[str, int] = field(default_factory=dict)

    def add_pod(self, trial: str, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        mine = self.pods.setdefault(trial, {})
        name = str((pod.get("metadata") or {}).get("name", ""))
        if deleted:
            mine.pop(name, None)
        else:
            mine[name] = pod

    def live_pod(self, trial: str) -> Mapping[str, Any] | None:
        return live_pod(list(self.pods.get(trial, {}).values()))

    def add_workload(self, workload: Mapping[str, Any], job: str | None) -> None:
        uid = (workload.get("metadata") or {}).get("uid")
        if uid:
            self.workloads[str(uid)] = workload
        if job:
            self.owned[job] = workload

    def preemptor_unseen(self, trial: str) -> bool:
        """An eviction of `trial` not said yet names a preemptor whose Workload was not seen
        (a watch's first events come in no particular order): list the Workloads first."""
        workload = self.owned.get(trial)
        if workload is None or kueue_evictions(workload) <= self.evictions_said.get(trial, 0):
            return False
        uids = {_preemptor_uid(c) for c in conditions_of(workload) if c.get("type") == "Evicted"}
        return any(uid and uid not in self.workloads for uid in uids)

    def notes(self, trial: str, number: int | None) -> list[str]:
        """`trial 3 (<name>) preempted by <who> (priority high), restarted (1)` for each
        restart of `trial` not said yet: a pod the cluster ended (the Job's podFailurePolicy
        ignores it, so it does not use the --retries budget), or a Kueue eviction (Kueue
        suspends the Job, its pods are deleted and new ones come once it is admitted again).
        The count is the trial's restarts so far."""
        who = f"trial {number} ({trial})" if number else f"trial {trial}"
        workload = self.owned.get(trial)
        disrupted = new_disruptions(
            list(self.pods.get(trial, {}).values()),
            self.said,
            workload=workload,
            workloads=list(self.workloads.values()),
        )
        self.said.update(name for name, _ in disrupted)
        ended = [text for _, text in disrupted]
        if workload is not None:
            total = kueue_evictions(workload)
            said = self.evictions_said.get(trial, 0)
            if total > said:
                text = eviction_text(workload, list(self.workloads.values()))
                ended += [text] * (total - said)
                self.evictions_said[trial] = total
        out = []
        for text in ended:
            count = self.restarts_said.get(trial, 0) + 1
            self.restarts_said[trial] = count
            out.append(f"{who} {text}, restarted ({count})")
        return out
