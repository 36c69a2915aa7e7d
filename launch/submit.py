"""The cluster driver under `launch.backends.katib`: the image (`launch.build`: reused, composed in
the registry, or built in-cluster by Kaniko), the Katib Experiment
(checked, dry-run, created), and the watch until the first trial succeeds.

I/O through `cluster.py` (Kubernetes) and `registry.py` (Distribution) only; what to create comes
from the pure renderers (`plan`, `katib`, `kaniko`). The build narrates with `report(level,
text)`; the watch reports `launch.events.Event`s.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from launch import (
    build,
    compose,
    diagnosis,
    kaniko,
    katib,
    katib_status,
    podspec,
    registry,
    seed_study,
)
from launch.errors import LaunchError, TimedOutError, TrialFailedError, UsageError
from launch.events import Event, ExperimentStatus, Sink, TrialStatus, ignore, note
from launch.image_trust import TrustStore
from launch.kube_api import ClusterAPI
from launch.names import EXPERIMENT_LABEL, NAMESPACE_LABEL, TRIAL_LABEL, experiment_url
from launch.settings import Settings
from launch.spec import LaunchSpec

Report = Callable[[str, str], None]

TRIAL_LOG_LINES = 20


def _quiet(level: str, text: str) -> None:
    """The default reporter says nothing."""


# --------------------------------------------------------------------------- checks


def check_namespace(cluster: ClusterAPI, namespace: str) -> None:
    """Katib's metrics collector is injected only in labelled namespaces: refuse early."""
    key, value = NAMESPACE_LABEL
    labels = cluster.namespace_labels(namespace)
    if labels.get(key) != value:
        raise UsageError(
            f"namespace `{namespace}` lacks the label {key}={value}, so Katib would not collect "
            "any metric and every trial would end MetricsUnavailable",
            hint=f"kubectl label namespace {namespace} {key}={value}  (or pass --namespace)",
        )


def check_katib(cluster: ClusterAPI) -> None:
    if not cluster.katib_installed():
        raise UsageError(
            "Katib is not installed on this cluster (no kubeflow.org/v1beta1 experiments)",
            hint="install it: kubectl apply -k deploy/katib (see docs/cluster-setup.md)",
        )


# --------------------------------------------------------------------------- submit


# --------------------------------------------------------------------------- watch


@dataclass
class WatchResult:
    status: str  # first-succeeded | all-finished | failed | detached
    trials: dict[str, str] = field(default_factory=dict)


# Streams that only explain pending trials: a role without access to them costs precision, not
# the watch.
_ADVISORY = ("event", "workload")


def _pump(
    events: Iterator[Any], out: queue.Queue[tuple[str, Any]], tag: str, stop: threading.Event
) -> None:
    try:
        for event in events:
            if stop.is_set():
                return
            out.put((tag, event))
        out.put((tag, None))
    except BaseException as exc:  # handed to the main thread, which raises it
        if tag in _ADVISORY and getattr(exc, "status", None) == 403:
            out.put(("lost", exc))
            return
        out.put(("error", exc))


def watch(
    *,
    cluster: ClusterAPI,
    spec: LaunchSpec,
    namespace: str,
    name: str,
    until: str = "first",
    timeout_s: float | None = None,
    sink: Sink = ignore,
    kueue: bool = False,
    now: Callable[[], float] = time.monotonic,
    window_s: float = 300.0,
) -> WatchResult:
    """Follow the Experiment's trials (Kubernetes watches, no polling) until the first trial
    succeeds (`until="first"`), every trial has finished (`"all"`), or the experiment fails.

    Trials' state changes are reported; a failed or MetricsUnavailable trial shows its pod's last
    log lines and the metric tags expected; a pending trial says why (scheduler, image pull,
    Kueue). Raises TrialFailedError when the experiment fails, TimedOutError on timeout.
    """
    selector = f"{EXPERIMENT_LABEL}={name}"
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    # One long-lived watch request per stream and window (default 5 minutes), no polling.
    stop = threading.Event()  # set on return: the watch threads end with this call
    opts: dict[str, Any] = {"window_s": window_s, "stop": stop, "timeout_s": timeout_s}
    streams = [
        ("trial", cluster.watch("Trial", namespace, label_selector=selector, **opts)),
        ("pod", cluster.watch("Pod", namespace, label_selector=selector, **opts)),
        ("experiment", cluster.watch("Experiment", namespace, name=name, **opts)),
        # Warnings only: why a Job makes no pod (quota) or a pod cannot start (FailedMount).
        ("event", cluster.watch("Event", namespace, field_selector="type=Warning", **opts)),
    ]
    if kueue:
        streams.append(("workload", cluster.watch("Workload", namespace, **opts)))
    for tag, stream in streams:
        threading.Thread(target=_pump, args=(stream, events, tag, stop), daemon=True).start()
    try:
        return _follow(cluster, spec, namespace, name, events, until=until, timeout_s=timeout_s,
                       sink=sink, now=now, selector=selector, kueue=kueue)  # fmt: skip
    finally:
        stop.set()


def _follow(
    cluster: ClusterAPI,
    spec: LaunchSpec,
    namespace: str,
    name: str,
    events: queue.Queue[tuple[str, Any]],
    *,
    until: str,
    timeout_s: float | None,
    sink: Sink,
    now: Callable[[], float],
    selector: str,
    kueue: bool = False,
) -> WatchResult:
    """The watch loop of `watch`: Kubernetes events in, launch events out, until a verdict."""
    states: dict[str, str] = {}
    trials: dict[str, Mapping[str, Any]] = {}
    pods: dict[str, Mapping[str, Any]] = {}  # each trial's current pod
    disruptions = diagnosis.DisruptionLog()  # every pod and Workload: each restart said once
    workloads: dict[str, Mapping[str, Any]] = {}
    warnings: dict[str, list[Mapping[str, Any]]] = {}  # by involved Job or Pod name, newest last
    said_pending: dict[str, str] = {}
    deadline = None if timeout_s is None else now() + timeout_s
    while True:
        wait = None if deadline is None else max(0.0, deadline - now())
        try:
            tag, event = events.get(timeout=wait if wait is not None else 3600.0)
        except queue.Empty:
            if deadline is not None and now() >= deadline:
                raise TimedOutError(
                    f"no trial of {name} succeeded within {int(timeout_s or 0)}s; the experiment keeps running",
                    hint=f"follow it with `launch watch {name}`, or stop it with `launch cancel {name}`",
                ) from None
            continue
        if tag == "error":
            raise event
        if tag == "lost":
            sink(note(f"{event.message}: pending trials are explained without it", "warn"))
            continue
        if event is None:
            continue
        obj = event.object
        if tag == "experiment":
            state, reason = katib_status.experiment_status(obj)
            if state in (ExperimentStatus.FAILED, ExperimentStatus.SUCCEEDED):
                # The watches race: report every trial's restarts and last state before the
                # verdict (a watch that starts after the end sees the Experiment first).
                final = cluster.list("Trial", namespace, label_selector=selector)
                trials.update({t["metadata"]["name"]: t for t in final})  # numbers for all
                listed = cluster.list("Pod", namespace, label_selector=selector)
                for trial_name, group in diagnosis.pods_by_trial(listed, TRIAL_LABEL).items():
                    for pod in group:
                        disruptions.add_pod(trial_name, pod)
                if kueue:
                    _add_workloads(disruptions, cluster, namespace)
                for trial_name in trials:
                    _say_disruptions(disruptions, trial_name, trials, sink)
                for trial in final:
                    new = katib_status.trial_status(trial)
                    trial_name = trial["metadata"]["name"]
                    if states.get(trial_name) != new:
                        states[trial_name] = new
                        trials[trial_name] = trial
                        _report_trial(cluster, spec, namespace, trial, new, trials, sink)
                        if new == TrialStatus.SUCCEEDED and until == "first":
                            return WatchResult("first-succeeded", dict(states))
            if state == ExperimentStatus.FAILED:
                raise TrialFailedError(
                    f"experiment {name} failed: {reason}",
                    hint=f"see the failed trials: launch results {name}; logs: launch logs {name} --trial N",
                )
            if state == ExperimentStatus.SUCCEEDED and until == "all":
                return WatchResult("all-finished", dict(states))
            continue
        if tag == "pod":
            trial_name = str((obj.get("metadata", {}).get("labels") or {}).get(TRIAL_LABEL) or "")
            if trial_name:
                disruptions.add_pod(trial_name, obj, deleted=event.type == "DELETED")
                if (live := disruptions.live_pod(trial_name)) is not None:
                    pods[trial_name] = live
                _say_disruptions(disruptions, trial_name, trials, sink)
        elif tag == "event" and event.type != "DELETED":
            _keep_warnings(warnings, [obj])
        elif tag == "workload":
            owners = _by_job([obj])
            workloads.update(owners)
            disruptions.add_workload(obj, next(iter(owners), None))
            if any(disruptions.preemptor_unseen(job) for job in owners):
                _add_workloads(disruptions, cluster, namespace)
            for job in owners:
                _say_disruptions(disruptions, job, trials, sink)
        else:
            trial_name = event.name
            trials[trial_name] = obj
            _say_disruptions(disruptions, trial_name, trials, sink)  # any held back for it
            new = katib_status.trial_status(obj) if event.type != "DELETED" else "Deleted"
            old = states.get(trial_name)
            if new != old:
                states[trial_name] = new
                _report_trial(cluster, spec, namespace, obj, new, trials, sink)
            if new == TrialStatus.SUCCEEDED and until == "first":
                return WatchResult("first-succeeded", dict(states))
        # Pending trials: say why, once per distinct reason.
        reasons = diagnosis.pending_reasons(
            states, pods=pods, warnings=warnings, workloads=workloads
        )
        for trial_name, why in reasons.items():
            if said_pending.get(trial_name) != why:
                said_pending[trial_name] = why
                sink(
                    Event("trial_pending", trial=trial_name, status=TrialStatus.PENDING, reason=why)
                )


def _add_workloads(log: diagnosis.DisruptionLog, cluster: ClusterAPI, namespace: str) -> None:
    """Every Workload of the namespace into `log` (one list), each under the Job it belongs to."""
    for workload in _advisory_list(cluster, "Workload", namespace):
        log.add_workload(workload, next(iter(_by_job([workload])), None))


def _say_disruptions(
    log: diagnosis.DisruptionLog, trial: str, trials: Mapping[str, Any], sink: Sink
) -> None:
    """Each pod the cluster ended (preempted, evicted, node lost) as one warning, once. Held
    back until the trial itself has been seen, which names it by its number: the pod watch may
    answer before the trial watch does (the trial event says it then)."""
    if trial not in trials:
        return
    number = katib_status.trial_numbers(list(trials.values())).get(trial)
    for text in log.notes(trial, number):
        sink(note(text, "warn"))


_WARNINGS_KEPT = 5  # per object: pending_reason reads the latest


def _keep_warnings(
    warnings: dict[str, list[Mapping[str, Any]]],
    events: Sequence[Mapping[str, Any]],
    *,
    kept: int | None = _WARNINGS_KEPT,
) -> None:
    """File Warning Events about Jobs and Pods under the object's name; a long watch keeps the
    last few that arrived for each (a list comes in no particular order: keep it whole)."""
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") in ("Job", "Pod"):
            recent = warnings.setdefault(str(involved.get("name", "")), [])
            recent.append(event)
            if kept is not None:
                del recent[:-kept]


def _by_job(workloads: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Kueue Workloads by the name of the Job (or, for a multi-node trial, the TrainJob) that
    owns them: both are named after the trial."""
    return {
        str(owner["name"]): workload
        for workload in workloads
        for owner in workload.get("metadata", {}).get("ownerReferences") or []
        if owner.get("kind") in ("Job", "TrainJob")
    }


def pending_reasons(
    cluster: ClusterAPI, *, namespace: str, name: str, states: Mapping[str, str], kueue: bool
) -> dict[str, str]:
    """{trial: why it is not running} for the experiment's held-up trials, from one list each of
    its pods, the namespace's Warning Events and (with Kueue) Workloads: what `status` shows."""
    waiting = (TrialStatus.PENDING, TrialStatus.RUNNING, TrialStatus.CREATED)
    if not any(state in waiting for state in states.values()):
        return {}
    grouped = diagnosis.pods_by_trial(
        cluster.list("Pod", namespace, label_selector=f"{EXPERIMENT_LABEL}={name}"), TRIAL_LABEL
    )
    pods = {trial: pod for trial, group in grouped.items() if (pod := diagnosis.live_pod(group))}
    warnings: dict[str, list[Mapping[str, Any]]] = {}
    events = _advisory_list(cluster, "Event", namespace, field_selector="type=Warning")
    _keep_warnings(warnings, events, kept=None)
    workloads = _by_job(_advisory_list(cluster, "Workload", namespace)) if kueue else {}
    return diagnosis.pending_reasons(states, pods=pods, warnings=warnings, workloads=workloads)


def _advisory_list(cluster: ClusterAPI, kind: str, namespace: str, **options: Any) -> list[Any]:
    """Objects that only sharpen an explanation: none when the role may not list them (403)."""
    try:
        return list(cluster.list(kind, namespace, **options))
    except Exception as exc:
        if getattr(exc, "status", None) == 403:
            return []
        raise


def _report_trial(
    cluster: ClusterAPI,
    spec: LaunchSpec,
    namespace: str,
    trial: Mapping[str, Any],
    new: str,
    trials: Mapping[str, Mapping[str, Any]],
    sink: Sink,
) -> None:
    """A trial's new state as events: started, finished (with its metrics, or with its log's
    tail and, when no metrics came, the tags the collector looked for), or another state. A
    failed trial's pod says what killed it when the program did not end by itself (OOMKilled)."""
    name = str(trial.get("metadata", {}).get("name", ""))
    params = katib_status.trial_params(trial, spec=spec)
    if spec.configs is not None:  # a seed study: the config's flags, not its number
        params = seed_study.expand_params(params, spec.configs) or params
    number = katib_status.trial_numbers(list(trials.values())).get(name, 0)
    start, end = katib_status.trial_times(trial)
    if new == TrialStatus.RUNNING:
        sink(Event("trial_started", t=start or time.time(), trial=name, number=number,
                   status=new, params=params))  # fmt: skip
        return
    if new in (TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.METRICS_UNAVAILABLE):
        tail, reason = "", ""
        if new != TrialStatus.SUCCEEDED:  # the pod and its log say why: OOMKilled, a GPU fault
            listed = cluster.list("Pod", namespace, label_selector=f"{TRIAL_LABEL}={name}")
            pod = diagnosis.live_pod(listed)
            tail = _trial_log_tail(cluster, namespace, pod)
            reason = diagnosis.failure_text(pod) or diagnosis.gpu_fault_text(tail) or ""
            reason = reason or katib_status.trial_reason(trial)
        sink(Event(
            "trial_finished", t=end or time.time(), trial=name, number=number, status=new,
            params=params, metrics=katib_status.trial_metrics(trial, spec=spec), reason=reason,
        ))  # fmt: skip
        if tail:
            sink(note(tail, "error"))
        if new == TrialStatus.METRICS_UNAVAILABLE:
            sink(note(katib_status.expected_metrics_text(spec), "error"))
        return
    sink(Event("trial_state", trial=name, number=number, status=new, params=params))


def _trial_log_tail(cluster: ClusterAPI, namespace: str, pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return "  (no pod left for this trial)"
    container = _primary_container(pod)
    try:
        text = cluster.pod_logs(
            namespace, pod["metadata"]["name"], container=container, tail_lines=TRIAL_LOG_LINES
        )
    except LaunchError as exc:
        return f"  (no log: {exc.message})"
    return "\n".join(f"  | {line}" for line in text.rstrip("\n").splitlines()) or "  (empty log)"


def _primary_container(pod: Mapping[str, Any]) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    names = [c.get("name") for c in containers]
    return katib.PRIMARY_CONTAINER if katib.PRIMARY_CONTAINER in names else None


# --------------------------------------------------------------------------- results


def trial_rows(
    cluster: ClusterAPI,
    *,
    spec: LaunchSpec,
    namespace: str,
    name: str,
    seed_flag: str = "seed",
    kueue: bool = False,
) -> list[Any]:
    """The experiment's trials as `results.Trial` rows, numbered by creation time, with their
    restarts and GPU-hours from one list of the experiment's pods and (`kueue`) one of the
    namespace's Workloads, which keep what Kueue's evictions cost (an OOMKilled trial's
    reason says so)."""
    items = cluster.list("Trial", namespace, label_selector=f"{EXPERIMENT_LABEL}={name}")
    numbers = katib_status.trial_numbers(items)
    pods = diagnosis.pods_by_trial(
        cluster.list("Pod", namespace, label_selector=f"{EXPERIMENT_LABEL}={name}"), TRIAL_LABEL
    )
    workloads = _by_job(_advisory_list(cluster, "Workload", namespace)) if kueue else {}
    moment = time.time()
    rows = []
    for t in items:
        row = katib_status.trial_row(
            t, spec=spec, number=numbers[t["metadata"]["name"]], seed_flag=seed_flag
        )
        mine = pods.get(row.name, [])
        restarts, gpu_hours = diagnosis.trial_usage(
            mine, now=moment, workload=workloads.get(row.name)
        )
        oom = diagnosis.failure_text(diagnosis.live_pod(mine)) if row.reason else None
        rows.append(replace(row, restarts=restarts, gpu_hours=gpu_hours, reason=oom or row.reason))
    return sorted(rows, key=lambda r: r.number)


def delete_experiment(cluster: ClusterAPI, *, namespace: str, name: str) -> None:
    cluster.delete("Experiment", namespace, name)


# --------------------------------------------------------------------------- the whole launch


@dataclass
class Launched:
    name: str
    namespace: str
    image: str
    built: bool
    experiment: Mapping[str, Any]
    katib_url: str | None


def _trust_store(settings: Settings) -> TrustStore | None:
    """The record of images this clone made (`image_trust = local`), under the state home."""
    if settings.image_trust != "local":
        return None
    from launch import state

    return TrustStore(state.home_dir(settings.home))


def launch(
    *,
    cluster: ClusterAPI,
    settings: Settings,
    spec: LaunchSpec,
    command: Sequence[str],
    snap: Any,
    git_facts: Any,
    name: str,
    user: str,
    resources: podspec.TrialResources,
    rebuild: bool = False,
    dockerfile: str = "Dockerfile",
    context_dir: str | None = None,
    context_data: bytes | None = None,
    build_timeout_s: float = 3600.0,
    report: Report = _quiet,
    preflight: bool = True,
    choice: Any = None,
    archive: Callable[[], bytes] | None = None,
) -> Launched:
    """Every check that can run before a side effect, then the build (if needed), then the
    Experiment. Order: namespace label, Katib installed, Dockerfile at the commit, the
    Experiment's server-side dry-run (the webhook's verdict), the registry, the build, the
    preflight pod (`launch.preflight_pod`), create."""
    from launch import git
    from launch.plan import make_plan

    namespace = settings.namespace
    check_namespace(cluster, namespace)
    check_katib(cluster)
    transport = build.registry_transport(cluster, settings)
    settings = build.behind_gate(settings, transport)  # a push token: images under its prefix
    path = f"{context_dir}/{dockerfile}" if context_dir else dockerfile
    tag = git_facts.commit  # the commit, or for --allow-dirty the working tree's tree hash
    if not git.file_exists_at(snap.root, tag, path):
        what = f"at commit {tag[:12]}" if tag == snap.commit else "in the working tree"
        raise UsageError(
            f"{path} does not exist {what} (the image is built from it, not from what is on disk)",
            hint="commit it (and push), or pass --dockerfile PATH (relative to --context)",
        )

    def plan(
        digest: str | None, dependency: tuple[str, str] | None = None, facts: Any = git_facts
    ) -> Any:
        return make_plan(
            spec=spec, command=command, git=facts, settings=settings, name=name, user=user,
            image_digest=digest, dockerfile=dockerfile, context_dir=context_dir,
            resources=resources, dependency=dependency,
        )  # fmt: skip

    context_repo = kaniko.context_repository(
        registry=settings.registry, repo_name=git_facts.repo_name
    )

    def kaniko_plan() -> tuple[Any, tuple[str, bytes] | None]:
        """The plan whose Job builds the whole image by Kaniko, and the upload it builds (none
        when Kaniko clones the commit)."""
        data = context_data
        if data is None and git_facts.remote_url is None and archive is not None:
            data = archive()
        if data is None:
            return plan(None), None
        facts = replace(git_facts, context_digest=registry.digest_of(data))
        return plan(None, facts=facts), (context_repo, data)

    def whole_image() -> build.KanikoBuild:
        kaniko_build, upload = kaniko_plan()
        return build.KanikoBuild(kaniko_build.build_job, upload)

    if choice is None:
        choice = compose.Choice("kaniko", treeish=tag)
    dependency_job = None
    if choice.path == "compose":
        first = plan(None, (choice.dependency_tag, registry.digest_of(choice.context)))
        dependency_job = first.build_job
    else:
        first, _ = kaniko_plan()  # the upload is already made (`context_data`): no cost
    cluster.dry_run_create(first.experiment)
    sources = build.Sources(
        root=Path(snap.root), choice=choice, kaniko=whole_image, dependency_job=dependency_job,
        dependency_context_repository=context_repo, platform=settings.platform,
        trust=_trust_store(settings), registry=kaniko.registry_host(settings.registry).partition("/")[0],
        staged=bool(settings.gate_prefix),
    )  # fmt: skip
    repository = kaniko.repository_path(registry=settings.registry, repo_name=git_facts.repo_name)
    result = build.find_or_build(
        cluster=cluster, transport=transport, repository=repository, tag=tag, sources=sources,
        rebuild=rebuild, timeout_s=build_timeout_s, report=report,
    )  # fmt: skip
    final = plan(result.digest)
    if preflight:
        from launch import preflight_pod

        preflight_pod.check(
            cluster, final.experiment, spec=spec, command=command, subdir=git_facts.subdir,
            seed_flag=settings.seed_flag, report=report,
        )  # fmt: skip
    # The webhook already admitted this Experiment (only the image differs): create it directly.
    created = cluster.create(final.experiment, dry_run_first=False)
    url = experiment_url(settings.katib_url, namespace, name) if settings.katib_url else None
    return Launched(name, namespace, final.image, result.built, created, url)
