"""Why a trial is not running yet, in a user's words: a Kueue Workload not admitted, a pod the
scheduler cannot place, a container stuck waiting (image pull, missing Secret, crash loop), or
the latest Warning event.

Pure: the Pod, Event and Workload objects as plain dicts in, one line of text out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
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
