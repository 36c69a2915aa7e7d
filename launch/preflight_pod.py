"""Preflight on the cluster: `CMD --help` once, in the built image, in one CPU-only pod made
from the trials' own pod template (same volumes, env, secrets, node selector, tolerations), before
the Experiment exists. It also pulls the image onto a node ahead of the trials.

The image has no launch in it: the hook's source travels in an environment variable and a shell
line writes it to a temporary directory put first on PYTHONPATH; the answer comes back as one
marked line of the pod's log (`launch.preflight.MARKER`). The pod is deleted whatever happens.
"""

from __future__ import annotations

import contextlib
import copy
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from launch import diagnosis
from launch.contract import TFEVENT_DIR
from launch.errors import LaunchError
from launch.katib import PRIMARY_CONTAINER
from launch.kube_api import AlreadyExistsError, ClusterAPI
from launch.podspec import escape_dollar
from launch.preflight import REQUEST_VAR, Outcome, Plan, find_answer, last_message
from launch.spec import LaunchSpec

Report = Callable[[str, str], None]

PREFLIGHT_LABEL = "launch/preflight"
HOOK_VAR = "LAUNCH_PREFLIGHT_HOOK"
# The image pull is part of it (a first pull of a CUDA image takes minutes on a cold node).
POD_TIMEOUT_S = 900
# Small, so the pod schedules beside running trials; the trials' memory limit (if any) still
# applies, because importing the program (torch) needs what it needs.
REQUESTS = {"cpu": "250m", "memory": "256Mi"}
DEFAULT_MEMORY_LIMIT = "8Gi"
# kubelet's words for a pod that will not start by itself.
_STUCK = ("image pull failed", "CreateContainerConfigError", "CreateContainerError",
          "InvalidImageName", "ErrImageNeverPull", "RunContainerError")  # fmt: skip

_SCRIPT = (
    'd=$(mktemp -d 2>/dev/null || echo /tmp/launch-preflight) && mkdir -p "$d" && '
    f'printf "%s" "${HOOK_VAR}" > "$d/sitecustomize.py" && unset {HOOK_VAR} && '
    'export PYTHONPATH="$d${PYTHONPATH:+:$PYTHONPATH}" && '
)


def pod_manifest(
    experiment: Mapping[str, Any],
    *,
    plan: Plan,
    command: Sequence[str],
    subdir: str,
    hook: str,
) -> dict[str, Any]:
    """The preflight pod, from the Experiment's trial pod template: the training container runs
    `CMD --help` with the hook, without GPUs, with small requests and a deadline."""
    meta = experiment["metadata"]
    job = experiment["spec"]["trialTemplate"]["trialSpec"]
    template = copy.deepcopy(job["spec"]["template"])
    spec = template.get("spec") or {}
    containers = [c for c in spec.get("containers") or () if c.get("name") == PRIMARY_CONTAINER]
    container = containers[0]
    cd = f"cd {shlex.quote(subdir)} && " if subdir else ""
    # Kubernetes expands `$(VAR)` in args and env values: every `$` is doubled (`$$` is `$`).
    container["args"] = [escape_dollar(_SCRIPT + cd + shlex.join([*command, "--help"]))]
    env = [e for e in container.get("env") or () if e.get("name") not in (REQUEST_VAR, HOOK_VAR)]
    env += [
        {"name": "KATIB_TRIAL_NAME", "value": f"{meta['name']}-preflight"},
        {"name": "CUDA_VISIBLE_DEVICES", "value": ""},
        # CUDA base images set NVIDIA_VISIBLE_DEVICES=all: without this, a node whose default
        # runtime is nvidia's would hand this pod every GPU of the node.
        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
        {"name": REQUEST_VAR, "value": escape_dollar(plan.request())},
        {"name": HOOK_VAR, "value": escape_dollar(hook)},
    ]
    container["env"] = env
    limits = dict((container.get("resources") or {}).get("limits") or {})
    container["resources"] = {
        "requests": dict(REQUESTS),
        "limits": {"memory": limits.get("memory", DEFAULT_MEMORY_LIMIT)},
    }
    spec["containers"] = [container]
    spec["restartPolicy"] = "Never"
    spec["activeDeadlineSeconds"] = POD_TIMEOUT_S
    spec.pop("priorityClassName", None)  # never preempt a running trial for a check
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[PREFLIGHT_LABEL] = meta["name"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-preflight",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": (template.get("metadata") or {}).get("annotations") or {},
        },
        "spec": spec,
    }


def run(
    cluster: ClusterAPI,
    pod: Mapping[str, Any],
    *,
    timeout_s: float = POD_TIMEOUT_S + 60,
    report: Report,
    now: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Create the pod, wait for it to end, read its answer; delete it on every path."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    where = f"pod {namespace}/{name}"
    start = now()
    try:
        try:
            cluster.create(pod, dry_run_first=False)
        except AlreadyExistsError:  # left by a launch of this name that was killed: replace it
            cluster.delete("Pod", namespace, name)
            cluster.create(pod, dry_run_first=False)
    except LaunchError as err:  # a quota, an admission webhook, RBAC: the API server's words
        return Outcome(blocked=f"{where} was refused: {err.message}", where=where)
    report("info", f"preflight: `{shlex.join(_shown(pod))}` in {where} (CPU only)")
    try:
        return _wait(cluster, namespace, name, where, timeout_s, report, now, start)
    finally:
        with contextlib.suppress(LaunchError):
            cluster.delete("Pod", namespace, name)


def _shown(pod: Mapping[str, Any]) -> list[str]:
    text = pod["spec"]["containers"][0]["args"][0].replace("$$", "$")
    return shlex.split(text[len(_SCRIPT) :].split("&& ")[-1])


def _wait(
    cluster: ClusterAPI, namespace: str, name: str, where: str, timeout_s: float,
    report: Report, now: Callable[[], float], start: float,
) -> Outcome:  # fmt: skip
    said = ""
    for event in cluster.watch("Pod", namespace, name=name, timeout_s=timeout_s):
        obj = event.object
        if event.type == "DELETED":
            return Outcome(blocked=f"{where} was deleted before it ended", where=where)
        phase = (obj.get("status") or {}).get("phase") or "Pending"
        if phase in ("Succeeded", "Failed"):
            return _ended(cluster, namespace, name, obj, where, now() - start)
        why = diagnosis.pending_reason(pod=obj, events=[], workload=None)
        if why and any(why.startswith(s) for s in _STUCK):
            return Outcome(blocked=f"{where}: {why}", where=where, seconds=now() - start)
        line = f"preflight: {phase.lower()}" + (f": {why}" if why else "")
        if line != said:
            report("progress", f"{line} ({int(now() - start)}s)")
            said = line
    return Outcome(timed_out=True, where=where, seconds=now() - start)


def _ended(
    cluster: ClusterAPI, namespace: str, name: str, pod: Mapping[str, Any], where: str,
    seconds: float,
) -> Outcome:  # fmt: skip
    try:
        log = cluster.pod_logs(namespace, name, container=PRIMARY_CONTAINER)
    except LaunchError:
        log = ""
    answer = find_answer(log)
    code = _exit_code(pod)
    if answer is None and code == 127:  # the shell's "not found"
        return Outcome(cannot_start=f"{last_message(log) or 'not found'} (in {where})",
                       where=where, seconds=seconds)  # fmt: skip
    if answer is None and code is None:
        reason = (pod.get("status") or {}).get("reason") or "ended"
        if reason == "DeadlineExceeded":
            return Outcome(timed_out=True, where=where, seconds=seconds)
        message = (pod.get("status") or {}).get("message") or ""
        return Outcome(blocked=f"{where} {reason}: {message}".rstrip(": "), where=where,
                       seconds=seconds)  # fmt: skip
    return Outcome(answer=answer, output=log, returncode=code, where=where, seconds=seconds)


def _exit_code(pod: Mapping[str, Any]) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") == PRIMARY_CONTAINER:
            terminated = (status.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            return int(code) if isinstance(code, int) else None
    return None


def check(
    cluster: ClusterAPI,
    experiment: Mapping[str, Any],
    *,
    spec: LaunchSpec,
    command: Sequence[str],
    subdir: str,
    seed_flag: str,
    report: Report,
) -> None:
    """The whole cluster preflight: plan, pod, verdict; PreflightError (exit 2) on a problem."""
    from launch import preflight, preflight_local

    plan = preflight.plan(spec, seed_flag=seed_flag, tensorboard_dir=TFEVENT_DIR)
    pod = pod_manifest(
        experiment, plan=plan, command=command, subdir=subdir, hook=preflight_local.hook_source()
    )
    outcome = run(cluster, pod, report=report)
    verdict = preflight.verdict(spec, plan, outcome, command=command, timeout_s=POD_TIMEOUT_S)
    preflight.refuse(verdict, outcome.seconds)
    for warning in verdict.warnings:
        report("warn", f"preflight: {warning}")
    report("info", f"preflight: {verdict.summary}: no problems ({outcome.seconds:.1f}s)")
