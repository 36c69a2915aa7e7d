"""An in-process HTTP Kubernetes API emulator for tests, spoken to by the real `kubernetes` client.

Serves discovery, namespaces, the Katib CRDs, batch Jobs, Pods (+ logs), Events, Services (+ a
service proxy to a real local server), Kueue Workloads and Kubeflow Trainer v2.3 (TrainJobs,
ClusterTrainingRuntimes) with JobSets, with resourceVersions, watch streams, server-side dry-run,
admission hooks, RBAC-like denials, owner-reference garbage collection and fault injection.
Small scripted controllers (`KanikoController`, `KatibController`, and for TrainJobs
`tests.emulator_trainjob.TrainerController`) move objects the way the real ones do.
Standard library only (plus PyYAML for the kubeconfig it writes).
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import random
import re
import socket
import string
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

if TYPE_CHECKING:
    from tests.emulator_trainjob import TrainerController

Obj = dict[str, Any]

# Katib (pkg/controller.v1beta1/consts/const.go) and Kubernetes label keys the controllers set.
LABEL_EXPERIMENT = "katib.kubeflow.org/experiment"
LABEL_TRIAL = "katib.kubeflow.org/trial"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_JOB_NAME_LEGACY = "job-name"
LABEL_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LABEL_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # an Indexed Job's pods
LABEL_KUEUE_JOB_UID = "kueue.x-k8s.io/job-uid"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
NAMESPACE_KATIB_LABEL = "katib.kubeflow.org/metrics-collector-injection"
KATIB_VALIDATOR = "validator.experiment.katib.kubeflow.org"


@dataclass(frozen=True)
class Resource:
    """One served resource: group ("" for core), version, plural, kind, scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`experiments.kubeflow.org`, or `pods` for core: how the API server names it in errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


CORE = [
    Resource("", "v1", "namespaces", "Namespace", namespaced=False),
    Resource("", "v1", "pods", "Pod"),
    Resource("", "v1", "events", "Event"),
    Resource("", "v1", "services", "Service"),
]
BATCH = [Resource("batch", "v1", "jobs", "Job")]
KATIB = [
    Resource("kubeflow.org", "v1beta1", "experiments", "Experiment"),
    Resource("kubeflow.org", "v1beta1", "trials", "Trial"),
    Resource("kubeflow.org", "v1beta1", "suggestions", "Suggestion"),
]
KUEUE = [Resource("kueue.x-k8s.io", "v1beta2", "workloads", "Workload")]
TRAINER = [
    Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"),
    Resource(
        "trainer.kubeflow.org",
        "v1alpha1",
        "clustertrainingruntimes",
        "ClusterTrainingRuntime",
        namespaced=False,
    ),
    Resource("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet"),
]
# Groups whose resources have a status subresource (create ignores `status`).
STATUS_GROUPS = (
    "kubeflow.org",
    "batch",
    "kueue.x-k8s.io",
    "trainer.kubeflow.org",
    "jobset.x-k8s.io",
)
CRDS = [
    Resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
    )
]


def node_index(pod: Obj) -> int:
    """A pod's completion index (an Indexed Job's; a TrainJob node's rank); 0 without one."""
    return int((pod["metadata"].get("labels") or {}).get(LABEL_COMPLETION_INDEX, "0"))


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A metav1.Status, as the API server sends with every error."""
    out: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        out["details"] = details
    return out


class ApiError(Exception):
    """Raised inside the emulator (and by admission hooks) to answer with a Status."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.status = status_obj(code, reason, message, details)
        self.code = code


class Denied(ApiError):
    """What an admission hook raises: the API server wraps it as a webhook denial."""

    def __init__(self, message: str, *, webhook: str = KATIB_VALIDATOR, code: int = 400) -> None:
        reason = {400: "BadRequest", 403: "Forbidden", 422: "Invalid"}.get(code, "")
        super().__init__(
            code, reason, f'admission webhook "{webhook}" denied the request: {message}'
        )


class _Drop(Exception):
    """Close the client connection without an answer."""


# --------------------------------------------------------------------------- selectors


_REQ_RE = re.compile(
    r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c`)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def match_labels(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, exists, !exists."""
    if not selector:
        return True
    labels = labels or {}
    for part in _split_selector(selector):
        m = _REQ_RE.match(part)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
        neg, key, op, value, setop, values = m.groups()
        if neg:
            if key in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        elif setop:
            options = {v.strip() for v in values.split(",")}
            if setop == "in" and labels.get(key) not in options:
                return False
            if setop == "notin" and labels.get(key) in options:
                return False
        elif key not in labels:
            return False
    return True


def _dig(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def match_fields(selector: str | None, obj: Obj) -> bool:
    """Field selectors: `a.b=v`, `a.b==v`, `a.b!=v`, comma-joined."""
    if not selector:
        return True
    for part in selector.split(","):
        m = re.match(r"^\s*([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        path, op, value = m.groups()
        actual = _dig(obj, path)
        actual_s = "" if actual is None else str(actual)
        if (op == "!=") == (actual_s == value):
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --------------------------------------------------------------------------- recording and faults


@dataclass(frozen=True)
class Request:
    """One request as the emulator saw it (also the unit benchmarks count)."""

    method: str
    path: str
    query: Mapping[str, str]
    verb: str  # get list watch create update patch delete proxy discovery
    resource: str  # plural, `pods/log`, `services/proxy`, or "" for discovery
    namespace: str | None = None
    name: str | None = None
    authorization: str | None = None  # the Authorization header, to check credentials flow
    body_bytes: int = 0  # the request body's length (bench/rebuild.py sums uploads)


@dataclass
class _Fault:
    verb: str
    resource: str
    count: int
    code: int | None = None  # answer with this Status code
    message: str | None = None
    drop: str | None = None  # "before": close without applying; "after": apply, then close
    dry_run: bool | None = None  # only dry-run (True) or only real (False) requests; None: both
    watch_events: int | None = None  # for watches: drop after this many events


@dataclass
class _HistoryItem:
    rv: int
    resource: Resource
    type: str
    obj: Obj


@dataclass
class _Log:
    text: str = ""
    closed: bool = False


AdmissionHook = Callable[[Obj, str, bool], None]  # (object, operation, dry_run); raise Denied


@dataclass
class KubeEmulator:
    """The API server. Start with `with KubeEmulator() as kube:`; `kube.url` is its address.

    `namespaces` maps namespace names to their labels; `katib`/`kueue`/`trainer` say whether those
    APIs are served (a missing API answers 404 "the server could not find the requested
    resource"); `trainer` (off by default) serves Kubeflow Trainer v2.3 and JobSet, with the
    `torch-distributed` ClusterTrainingRuntime installed.
    """

    namespaces: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: {"default": {NAMESPACE_KATIB_LABEL: "enabled"}}
    )
    katib: bool = True
    kueue: bool = True
    trainer: bool = False  # opt in: tests/test_doctor*.py model clusters without the Trainer
    user: str = "system:serviceaccount:default:launch"
    history_limit: int = 10_000
    # Pods labelled `launch/preflight` are run for real, as a kubelet would run the image: the
    # container's `command + args` as a process on this machine, in `image_workdir` (None: the
    # current directory, where the tests' "image" is the checked-out repo), with the container's
    # env over this machine's. "manual": tests drive those pods themselves.
    preflight_pods: str = "run"
    image_workdir: str | None = None

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._history: list[_HistoryItem] = []
        self._history_floor = 0  # watches from an RV below this get 410 Gone
        self._faults: list[_Fault] = []
        self._forbidden: list[tuple[str, str, str | None]] = []
        self._admission: dict[str, list[AdmissionHook]] = {}
        self._on_create: dict[str, list[Callable[[Obj], None]]] = {}
        self._proxies: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._logs: dict[tuple[str, str], _Log] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._callbacks: list[threading.Thread] = []
        self.requests: list[Request] = []
        for name, labels in self.namespaces.items():
            self.put(
                "namespaces",
                {"metadata": {"name": name, "labels": dict(labels)}, "status": {"phase": "Active"}},
            )
        if self.katib:
            self.add_admission("experiments", katib_validator(self))
        for res in self._custom_resources:
            self.put(
                "customresourcedefinitions",
                {
                    "metadata": {"name": res.qualified},
                    "spec": {
                        "group": res.group,
                        "names": {"plural": res.plural, "kind": res.kind},
                        "scope": "Namespaced" if res.namespaced else "Cluster",
                        "versions": [{"name": res.version, "served": True, "storage": True}],
                    },
                },
            )
        if self.trainer:
            from tests.emulator_trainjob import TORCH_DISTRIBUTED, trainer_validator

            self.add_admission("trainjobs", trainer_validator(self))
            self.put("clustertrainingruntimes", TORCH_DISTRIBUTED)

    # ----------------------------------------------------------------- lifecycle

    @property
    def _custom_resources(self) -> list[Resource]:
        return (
            (KATIB if self.katib else [])
            + (KUEUE if self.kueue else [])
            + (TRAINER if self.trainer else [])
        )

    @property
    def resources(self) -> list[Resource]:
        return CORE + BATCH + CRDS + self._custom_resources

    def start(self) -> KubeEmulator:
        emulator = self

        class Handler(_Handler):
            kube = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._callbacks:
            thread.join(timeout=2)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self, path: Path | str, *, context: str = "emulator", namespace: str = "default"
    ) -> Path:
        """A kubeconfig whose `context` points at this emulator (bearer-token auth)."""
        path = Path(path)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": context, "cluster": {"server": self.url}}],
                    "users": [{"name": context, "user": {"token": "emulator-token"}}],
                    "contexts": [
                        {
                            "name": context,
                            "context": {
                                "cluster": context,
                                "user": context,
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": context,
                }
            )
        )
        return path

    # ----------------------------------------------------------------- knobs for tests

    def fail_next(
        self,
        verb: str,
        resource: str,
        *,
        code: int = 500,
        count: int = 1,
        message: str | None = None,
        dry_run: bool | None = None,
    ) -> None:
        """Answer the next `count` requests matching (verb, resource) with a `code` Status.

        `dry_run`: match only dry-run (True) or only real (False) requests; None matches both.
        """
        with self._lock:
            self._faults.append(
                _Fault(verb, resource, count, code=code, message=message, dry_run=dry_run)
            )

    def drop_next(
        self,
        verb: str,
        resource: str,
        *,
        after_apply: bool = False,
        count: int = 1,
        dry_run: bool | None = None,
    ) -> None:
        """Close the connection of the next matching requests; `after_apply`: once the write is done."""
        with self._lock:
            self._faults.append(
                _Fault(
                    verb,
                    resource,
                    count,
                    drop="after" if after_apply else "before",
                    dry_run=dry_run,
                )
            )

    def drop_watch_after(self, resource: str, *, events: int, count: int = 1) -> None:
        """The next `count` watches on `resource` send `events` events, then lose the connection."""
        with self._lock:
            self._faults.append(_Fault("watch", resource, count, watch_events=events))

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """RBAC-like: `verb` on `resource` (plural, or `pods/log`) is forbidden (in `namespace`)."""
        with self._lock:
            self._forbidden.append((verb, resource, namespace))

    def add_admission(self, resource: str, hook: AdmissionHook) -> None:
        """Run `hook(obj, operation, dry_run)` on create/update of `resource`; it raises `Denied`."""
        with self._lock:
            self._admission.setdefault(resource, []).append(hook)

    def clear_admission(self, resource: str) -> None:
        with self._lock:
            self._admission.pop(resource, None)

    def on_create(self, resource: str, callback: Callable[[Obj], None]) -> None:
        """Call `callback(obj)` on a background thread after each real create of `resource`."""
        with self._lock:
            self._on_create.setdefault(resource, []).append(callback)

    def register_proxy(
        self, namespace: str, service: str, port: int | str, target: tuple[str, int]
    ) -> None:
        """Forward `services/<service>:<port>/proxy/...` to the real server at `target`."""
        with self._lock:
            self._proxies[(namespace, service, str(port))] = target
        if self.get_object("services", namespace, service) is None:
            self.put(
                "services",
                {
                    "metadata": {"name": service, "namespace": namespace},
                    "spec": {"ports": [{"port": int(port), "protocol": "TCP"}]},
                },
            )

    def compact(self) -> int:
        """Forget the watch history: watches from an older resourceVersion get 410 Gone."""
        with self._lock:
            self._history.clear()
            self._history_floor = self._rv + 1
            return self._rv

    def count(
        self, *, verb: str | None = None, resource: str | None = None, method: str | None = None
    ) -> int:
        """How many recorded requests match."""
        return len(self.matching(verb=verb, resource=resource, method=method))

    def matching(
        self, *, verb: str | None = None, resource: str | None = None, method: str | None = None
    ) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (verb is None or r.verb == verb)
                and (resource is None or r.resource == resource)
                and (method is None or r.method == method)
            ]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ----------------------------------------------------------------- direct store access

    def resource(self, plural: str) -> Resource:
        for res in self.resources:
            if res.plural == plural:
                return res
        raise KeyError(plural)

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def _bump(self, res: Resource, type_: str, obj: Obj) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._history.append(_HistoryItem(self._rv, res, type_, copy.deepcopy(obj)))
        if len(self._history) > self.history_limit:
            dropped = self._history.pop(0)
            self._history_floor = dropped.rv + 1
        self._changed.notify_all()

    def put(self, plural: str, obj: Obj) -> Obj:
        """Create or replace an object directly (what controllers do), with a new resourceVersion."""
        res = self.resource(plural)
        with self._lock:
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", res.kind)
            meta = obj.setdefault("metadata", {})
            ns = meta.get("namespace", "") if res.namespaced else ""
            if res.namespaced and not ns:
                raise ValueError(f"{plural} {meta.get('name')} needs a namespace")
            key = (ns, meta["name"])
            store = self._objects.setdefault(res.qualified, {})
            old = store.get(key)
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                meta.setdefault("generation", 1)
            else:
                meta["uid"] = old["metadata"]["uid"]
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            store[key] = obj
            self._bump(res, "ADDED" if old is None else "MODIFIED", obj)
            return copy.deepcopy(obj)

    def patch(self, plural: str, namespace: str, name: str, patch: Obj) -> Obj:
        """Merge-patch an object directly (controllers' status updates)."""
        with self._lock:
            current = self.get_object(plural, namespace, name)
            if current is None:
                raise KeyError(f"{plural} {namespace}/{name}")
            return self.put(plural, merge_patch(current, patch))

    def get_object(self, plural: str, namespace: str, name: str) -> Obj | None:
        res = self.resource(plural)
        with self._lock:
            obj = self._objects.get(res.qualified, {}).get(
                (namespace if res.namespaced else "", name)
            )
            return copy.deepcopy(obj) if obj is not None else None

    def objects(
        self, plural: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        res = self.resource(plural)
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects.get(res.qualified, {}).items())
                if (namespace is None or ns == namespace)
                and match_labels(label_selector, obj["metadata"].get("labels"))
            ]

    def remove(self, plural: str, namespace: str, name: str) -> Obj | None:
        res = self.resource(plural)
        with self._lock:
            obj = self._objects.get(res.qualified, {}).pop(
                (namespace if res.namespaced else "", name), None
            )
            if obj is not None:
                self._bump(res, "DELETED", obj)
            return obj

    def collect_garbage(self, owner: Obj) -> list[Obj]:
        """The garbage collector after `owner` is deleted (background propagation, at once):
        every object whose ownerReferences name its uid goes, and what those owned. The removed."""
        removed, uids = [], [owner["metadata"]["uid"]]
        with self._lock:
            while uids:
                uid = uids.pop()
                for res in self.resources:
                    for (ns, name), obj in list(self._objects.get(res.qualified, {}).items()):
                        refs = obj["metadata"].get("ownerReferences") or ()
                        if any(ref.get("uid") == uid for ref in refs):
                            self.remove(res.plural, ns, name)
                            removed.append(obj)
                            uids.append(obj["metadata"]["uid"])
        return removed

    def set_pod_log(self, namespace: str, pod: str, text: str, *, closed: bool = True) -> None:
        """Set a pod's log; `closed=False` keeps a `follow` stream open for `append_pod_log`."""
        with self._lock:
            self._logs[(namespace, pod)] = _Log(text, closed)
            self._changed.notify_all()

    def append_pod_log(self, namespace: str, pod: str, text: str, *, close: bool = False) -> None:
        with self._lock:
            log = self._logs.setdefault((namespace, pod), _Log())
            log.text += text
            log.closed = log.closed or close
            self._changed.notify_all()

    def add_event(
        self,
        namespace: str,
        *,
        involved_kind: str,
        involved_name: str,
        reason: str,
        message: str,
        type_: str = "Normal",
    ) -> Obj:
        """A core/v1 Event about an object (what kubelet, the scheduler and Katib record)."""
        name = f"{involved_name}.{uuid.uuid4().hex[:16]}"
        return self.put(
            "events",
            {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "kind": involved_kind,
                    "name": involved_name,
                    "namespace": namespace,
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": now_iso(),
                "lastTimestamp": now_iso(),
                "source": {"component": "emulator"},
            },
        )

    def wait_for(self, predicate: Callable[[], Any], *, timeout_s: float = 2.0) -> Any:
        """Block until `predicate()` is truthy (re-checked on every change); its value."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met in time")
                self._changed.wait(left)

    def _pod_created(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        if "launch/preflight" not in labels or self.preflight_pods != "run":
            return
        thread = threading.Thread(target=self._run_pod, args=(pod,), daemon=True)
        self._callbacks.append(thread)
        thread.start()

    def _run_pod(self, pod: Obj) -> None:
        """kubelet, for one container: run it, keep its log, record how it ended."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        env = dict(os.environ)
        # The image's Python is the one running the tests (it has the trainers' libraries).
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        defined: dict[str, str] = {}
        for item in container.get("env") or ():
            if "value" in item:
                defined[item["name"]] = expand_k8s(item["value"], defined)
        env.update(defined)
        argv = [
            expand_k8s(a, defined)
            for a in [*container.get("command", []), *container.get("args", [])]
        ]
        started = now_iso()
        running = {"name": container["name"], "ready": True, "restartCount": 0, "image": container.get("image", ""),
                   "imageID": "", "state": {"running": {"startedAt": started}}}  # fmt: skip
        try:
            self.patch("pods", ns, name, {"status": {"phase": "Running", "startTime": started,
                                                     "containerStatuses": [running]}})  # fmt: skip
        except KeyError:
            return  # deleted before it started
        deadline = pod["spec"].get("activeDeadlineSeconds") or 600
        try:
            done = subprocess.run(argv, cwd=self.image_workdir or os.getcwd(), env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=deadline)  # fmt: skip
            code, log = done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, log = None, ""
        self.set_pod_log(ns, name, log)
        if code is None:
            status: Obj = {"phase": "Failed", "reason": "DeadlineExceeded",
                           "message": "Pod was active on the node longer than the specified deadline"}  # fmt: skip
        else:
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                          "startedAt": started, "finishedAt": now_iso()}  # fmt: skip
            status = {"phase": "Succeeded" if code == 0 else "Failed",
                      "containerStatuses": [{**running, "ready": False, "state": {"terminated": terminated}}]}  # fmt: skip
        with contextlib.suppress(KeyError):  # deleted while it ran
            self.patch("pods", ns, name, {"status": status})

    def _job_created(self, job: Obj) -> None:
        """The Job controller's first step: a Pending pod with the Job's labels (unless suspended)."""
        meta, spec = job["metadata"], job.get("spec") or {}
        if spec.get("suspend"):
            return
        template = copy.deepcopy(spec.get("template") or {})
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                LABEL_JOB_NAME: meta["name"],
                LABEL_JOB_NAME_LEGACY: meta["name"],
                LABEL_CONTROLLER_UID: meta["uid"],
                "controller-uid": meta["uid"],
            }
        )
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        self.put(
            "pods",
            {
                "metadata": {
                    "name": f"{meta['name']}-{suffix}",
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": template.get("spec")
                or {"containers": [{"name": "main", "image": "busybox"}]},
                "status": {"phase": "Pending"},
            },
        )
        self.patch(
            "jobs",
            meta["namespace"],
            meta["name"],
            {"status": {"active": 1, "startTime": now_iso()}},
        )

    def _trainjob_created(self, trainjob: Obj) -> None:
        """The Trainer's (and JobSet's, and the Job controller's) first steps for a TrainJob."""
        from tests.emulator_trainjob import TrainerController

        TrainerController(self).reconcile(trainjob)

    # ----------------------------------------------------------------- request handling (internal)

    def _take_fault(
        self, verb: str, resource: str, *, watch: bool = False, dry_run: bool = False
    ) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                is_watch_fault = fault.watch_events is not None
                if (
                    fault.count > 0
                    and fault.verb == verb
                    and fault.resource == resource
                    and is_watch_fault == watch
                    and fault.dry_run in (None, dry_run)
                ):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _check_rbac(
        self, verb: str, resource: str, namespace: str | None, name: str | None
    ) -> None:
        with self._lock:
            hit = any(
                v == verb and r == resource and (n is None or n == namespace)
                for v, r, n in self._forbidden
            )
        if not hit:
            return
        plural = resource.partition("/")[0]
        try:
            res = self.resource(plural)
            qualified, group = res.qualified, res.group
        except KeyError:
            qualified, group = plural, ""
        what = f'{qualified} "{name}"' if name else qualified
        scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" '
            f'in API group "{group}"{scope}',
            {"name": name or "", "group": group, "kind": resource},
        )

    def _validate_new(self, res: Resource, namespace: str | None, obj: Any) -> Obj:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        if obj.get("kind") not in (None, res.kind) or obj.get("apiVersion") not in (
            None,
            res.api_version,
        ):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({obj.get('apiVersion')}) does not match the "
                f"expected API version ({res.api_version})",
            )
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                meta["name"] = meta["generateName"] + suffix
            else:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{res.kind} "" is invalid: metadata.name: Required value: name or '
                    "generateName is required",
                    {"kind": res.kind, "causes": [{"field": "metadata.name"}]},
                )
        if res.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            meta["namespace"] = namespace
            if self.get_object("namespaces", "", namespace or "") is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        return obj

    def _admit(self, res: Resource, obj: Obj, operation: str, dry_run: bool) -> None:
        with self._lock:
            hooks = list(self._admission.get(res.plural, []))
        for hook in hooks:
            hook(obj, operation, dry_run)

    def _fire_on_create(self, res: Resource, obj: Obj) -> None:
        with self._lock:
            callbacks = list(self._on_create.get(res.plural, []))
        for callback in callbacks:
            thread = threading.Thread(target=callback, args=(copy.deepcopy(obj),), daemon=True)
            self._callbacks.append(thread)
            thread.start()

    def _not_found(self, res: Resource, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{res.qualified} "{name}" not found',
            {"name": name, "group": res.group, "kind": res.plural},
        )


# --------------------------------------------------------------------------- HTTP


_PATH_RE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+)(?=/))?"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+)(?P<rest>/.*)?)?)?$"
)


class _Handler(BaseHTTPRequestHandler):
    kube: KubeEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # Each verb goes through one dispatcher.
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ----------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        content_type = "application/json"
        for key, value in (headers or {}).items():
            if key.lower() == "content-type":
                content_type = value
            else:
                self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drop(self) -> None:
        """Lose the connection: no answer, no clean close (the client sees a broken connection)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _start_stream(self, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _dispatch(self) -> None:
        kube = self.kube
        parts = urlsplit(self.path)
        # The API server keeps a proxied path's trailing slash (JoinPreservingTrailingSlash):
        # registries answer `/v2/` and `/blobs/uploads/` only with it.
        path = parts.path if "/proxy/" in parts.path else (parts.path.rstrip("/") or "/")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self._body()
        try:
            self._route(kube, path, query, body)
        except _Drop:
            self._drop()
        except ApiError as err:
            self._send(err.code, err.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # an emulator bug: answer like a server would, keep the message
            self._send(500, status_obj(500, "InternalError", f"emulator: {err!r}"))

    def _record(
        self,
        query: Mapping[str, str],
        verb: str,
        resource: str,
        ns: str | None = None,
        name: str | None = None,
        *,
        body_bytes: int = 0,
    ) -> Request:
        request = Request(
            self.command,
            urlsplit(self.path).path,
            dict(query),
            verb,
            resource,
            ns,
            name,
            self.headers.get("Authorization"),
            body_bytes,
        )
        with self.kube._lock:
            self.kube.requests.append(request)
        return request

    # ----------------------------------------------------------------- routes

    def _route(self, kube: KubeEmulator, path: str, query: dict[str, str], body: bytes) -> None:
        discovery = self._discovery(kube, path)
        if discovery is not None:
            self._record(query, "discovery", "")
            if discovery is False:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, discovery)
            return
        m = _PATH_RE.match(path)
        if not m:
            self._record(query, "unknown", "")
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        group = m["group"] or ""
        version = m["core"] or m["version"]
        ns, plural, name, sub, rest = m["ns"], m["plural"], m["name"], m["sub"], m["rest"]
        res = next(
            (
                r
                for r in kube.resources
                if r.group == group and r.version == version and r.plural == plural
            ),
            None,
        )
        method = self.command
        if res is None:
            self._record(query, "unknown", plural, ns, name)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = unquote(name) if name else None

        if sub == "log" and res.plural == "pods":
            self._record(query, "get", "pods/log", ns, name)
            kube._check_rbac("get", "pods/log", ns, name)
            self._fault_or_pass("get", "pods/log")
            self._pod_log(kube, ns or "", name or "", query)
            return
        if sub == "proxy" and res.plural == "services":
            # RBAC verbs of a proxied request (apiserver requestinfo.go): HEAD and GET are `get`;
            # a chunked blob upload's PATCHes need `patch`.
            verb = {
                "GET": "get",
                "HEAD": "get",
                "POST": "create",
                "PUT": "update",
                "PATCH": "patch",
                "DELETE": "delete",
            }.get(method, method.lower())
            self._record(query, "proxy", "services/proxy", ns, name, body_bytes=len(body))
            kube._check_rbac(verb, "services/proxy", ns, name)
            self._fault_or_pass("proxy", "services/proxy")
            self._proxy(
                kube,
                ns or "",
                name or "",
                rest or "/",
                parts_query=urlsplit(self.path).query,
                body=body,
            )
            return

        if name is None:
            if method == "GET":
                verb = "watch" if query.get("watch") in ("true", "1") else "list"
            elif method == "POST":
                verb = "create"
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        else:
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, ""
            )
            if not verb:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")
        resource_name = f"{res.plural}/{sub}" if sub else res.plural
        self._record(query, verb, resource_name, ns, name)
        kube._check_rbac(verb, resource_name, ns, name)
        if verb == "watch":
            fault = kube._take_fault("watch", res.plural, watch=True)
            if fault is None:
                self._fault_or_pass("watch", res.plural)
            self._watch(kube, res, ns, query, drop_after=fault.watch_events if fault else None)
            return
        fault = kube._take_fault(verb, resource_name, dry_run=query.get("dryRun") == "All")
        if fault is not None and fault.drop == "before":
            raise _Drop()
        if fault is not None and fault.code is not None:
            raise ApiError(
                fault.code,
                {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests"}.get(
                    fault.code, "InternalError"
                ),
                fault.message or f"emulated failure ({fault.code}) of {verb} {resource_name}",
            )
        answer = self._crud(kube, res, verb, ns, name, sub, query, body)
        if fault is not None and fault.drop == "after":
            raise _Drop()
        self._send(answer[0], answer[1])

    def _fault_or_pass(self, verb: str, resource: str) -> None:
        fault = self.kube._take_fault(verb, resource)
        if fault is None:
            return
        if fault.drop:
            raise _Drop()
        raise ApiError(fault.code or 500, "InternalError", fault.message or "emulated failure")

    def _discovery(self, kube: KubeEmulator, path: str) -> Any:
        """Discovery documents; None when `path` is not a discovery path, False for 404."""
        if path == "/version":
            return {
                "major": "1",
                "minor": "33",
                "gitVersion": "v1.33.0-emulator",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2025-04-23T00:00:00Z",
                "goVersion": "go1.24.2",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        groups: dict[str, list[Resource]] = {}
        for res in kube.resources:
            if res.group:
                groups.setdefault(res.group, []).append(res)
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": group,
                        "versions": [
                            {"groupVersion": f"{group}/{rs[0].version}", "version": rs[0].version}
                        ],
                        "preferredVersion": {
                            "groupVersion": f"{group}/{rs[0].version}",
                            "version": rs[0].version,
                        },
                    }
                    for group, rs in groups.items()
                ],
            }
        m = re.match(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
        if not m:
            return None
        group = m[2] or ""
        version = m[1] or m[3]
        served = [r for r in kube.resources if r.group == group and r.version == version]
        if not served:
            return False
        resources = []
        for r in served:
            resources.append(
                {
                    "name": r.plural,
                    "singularName": r.kind.lower(),
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": list(r.verbs),
                }
            )
            if r.plural == "pods":
                resources.append(
                    {
                        "name": "pods/log",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Pod",
                        "verbs": ["get"],
                    }
                )
            if r.plural == "services":
                resources.append(
                    {
                        "name": "services/proxy",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "ServiceProxyOptions",
                        "verbs": ["create", "delete", "get", "patch", "update"],
                    }
                )
            if r.group in STATUS_GROUPS and r.namespaced:
                resources.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": True,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _crud(
        self,
        kube: KubeEmulator,
        res: Resource,
        verb: str,
        ns: str | None,
        name: str | None,
        sub: str | None,
        query: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Obj]:
        dry_run = query.get("dryRun") == "All"
        if "dryRun" in query and not dry_run:
            raise ApiError(400, "BadRequest", f"unsupported dryRun value {query['dryRun']!r}")
        if res.namespaced and ns is None and verb != "list":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns_key = (ns or "") if res.namespaced else ""
        if verb == "list":
            with kube._lock:
                items = [
                    obj
                    for obj in kube.objects(
                        res.plural, ns if res.namespaced else None, query.get("labelSelector")
                    )
                    if match_fields(query.get("fieldSelector"), obj)
                ]
                rv = kube._rv
            return 200, {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        if verb == "get":
            obj = kube.get_object(res.plural, ns_key, name or "")
            if obj is None:
                raise kube._not_found(res, name or "")
            return 200, obj
        if verb == "create":
            try:
                new = json.loads(body or b"null")
            except ValueError as err:
                raise ApiError(400, "BadRequest", f"invalid JSON: {err}") from None
            new = kube._validate_new(res, ns, new)
            with kube._lock:
                if kube.get_object(res.plural, ns_key, new["metadata"]["name"]) is not None:
                    name = new["metadata"]["name"]
                    raise ApiError(
                        409,
                        "AlreadyExists",
                        f'{res.qualified} "{name}" already exists',
                        {"name": name, "group": res.group, "kind": res.plural},
                    )
                kube._admit(res, new, "CREATE", dry_run)
                if res.group in ("kubeflow.org", "trainer.kubeflow.org", "jobset.x-k8s.io"):
                    new.pop("status", None)  # the status subresource ignores it on create
                if dry_run:
                    meta = new["metadata"]
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault("creationTimestamp", now_iso())
                    return 201, new
                stored = kube.put(res.plural, new)
            if res.plural == "jobs":
                kube._job_created(stored)
            if res.plural == "pods":
                kube._pod_created(stored)
            if res.plural == "trainjobs" and kube.trainer:
                kube._trainjob_created(stored)
            kube._fire_on_create(res, stored)
            return 201, stored
        if verb in ("update", "patch"):
            with kube._lock:
                current = kube.get_object(res.plural, ns_key, name or "")
                if current is None:
                    raise kube._not_found(res, name or "")
                try:
                    change = json.loads(body or b"null")
                except ValueError as err:
                    raise ApiError(400, "BadRequest", f"invalid JSON: {err}") from None
                if verb == "update":
                    sent_rv = (change.get("metadata") or {}).get("resourceVersion")
                    if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                        raise ApiError(
                            409,
                            "Conflict",
                            f'Operation cannot be fulfilled on {res.qualified} "{name}": the object '
                            "has been modified; please apply your changes to the latest version and try again",
                            {"name": name, "group": res.group, "kind": res.plural},
                        )
                    new = change
                    if sub == "status":
                        new = {**current, "status": change.get("status")}
                else:
                    new = merge_patch(current, change)
                new.setdefault("metadata", {})["name"] = name
                if res.namespaced:
                    new["metadata"]["namespace"] = ns
                kube._admit(res, new, "UPDATE", dry_run)
                if dry_run:
                    return 200, new
                return 200, kube.put(res.plural, new)
        if verb == "delete":
            with kube._lock:
                current = kube.get_object(res.plural, ns_key, name or "")
                if current is None:
                    raise kube._not_found(res, name or "")
                if dry_run:
                    return 200, current
                kube.remove(res.plural, ns_key, name or "")
                if res.plural == "jobs":
                    # Foreground/background propagation: the Job's pods go too.
                    for pod in kube.objects("pods", ns_key, f"{LABEL_JOB_NAME}={name}"):
                        kube.remove("pods", ns_key, pod["metadata"]["name"])
                if res.plural == "experiments":
                    for trial in kube.objects("trials", ns_key, f"{LABEL_EXPERIMENT}={name}"):
                        kube.remove("trials", ns_key, trial["metadata"]["name"])
                        kube.collect_garbage(trial)
                options = json.loads(body or b"{}") if body.strip().startswith(b"{") else {}
                if options.get("propagationPolicy") != "Orphan":
                    kube.collect_garbage(current)
            return 200, status_obj(200, "", "") | {
                "status": "Success",
                "details": {
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "uid": current["metadata"]["uid"],
                },
            }
        raise ApiError(405, "MethodNotAllowed", verb)

    def _watch(
        self,
        kube: KubeEmulator,
        res: Resource,
        ns: str | None,
        query: Mapping[str, str],
        *,
        drop_after: int | None,
    ) -> None:
        label_selector = query.get("labelSelector")
        field_selector = query.get("fieldSelector")
        # Fractional timeoutSeconds are accepted (a real server wants an int) to keep tests fast.
        timeout_s = float(query.get("timeoutSeconds") or 30)
        deadline = time.monotonic() + min(timeout_s, 60)
        rv_text = query.get("resourceVersion") or ""
        sent = 0

        def visible(obj: Obj) -> bool:
            meta = obj["metadata"]
            return (
                (ns is None or not res.namespaced or meta.get("namespace") == ns)
                and match_labels(label_selector, meta.get("labels"))
                and match_fields(field_selector, obj)
            )

        def emit(type_: str, obj: Obj) -> bool:
            """Write one event; False when the connection must now be dropped."""
            nonlocal sent
            self._chunk(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
            sent += 1
            return drop_after is None or sent < drop_after

        with kube._lock:
            if rv_text in ("", "0"):
                start_rv = kube._rv
                initial = [
                    o
                    for o in kube.objects(res.plural, ns if res.namespaced else None)
                    if visible(o)
                ]
            else:
                try:
                    start_rv = int(rv_text)
                except ValueError:
                    raise ApiError(
                        400, "BadRequest", f"invalid resourceVersion {rv_text!r}"
                    ) from None
                initial = []
                if start_rv < kube._history_floor - 1 or start_rv > kube._rv:
                    gone = start_rv < kube._history_floor - 1
                    if not gone:
                        raise ApiError(504, "Timeout", "Too large resource version")
                    self._start_stream()
                    self._chunk(
                        json.dumps(
                            {
                                "type": "ERROR",
                                "object": status_obj(
                                    410,
                                    "Expired",
                                    f"too old resource version: {start_rv} ({kube._history_floor})",
                                ),
                            }
                        ).encode()
                        + b"\n"
                    )
                    self._end_stream()
                    return
        self._start_stream()
        if drop_after == 0:
            raise _Drop()
        for obj in initial:
            if not emit("ADDED", obj):
                raise _Drop()
        last = start_rv
        while True:
            with kube._lock:
                pending = [h for h in kube._history if h.rv > last and h.resource == res]
                if not pending:
                    left = deadline - time.monotonic()
                    if left <= 0 or kube._stopping:
                        break
                    kube._changed.wait(min(left, 0.5))
                    continue
            for item in pending:
                last = item.rv
                if visible(item.obj) and not emit(item.type, item.obj):
                    raise _Drop()
        self._end_stream()

    def _pod_log(self, kube: KubeEmulator, ns: str, name: str, query: Mapping[str, str]) -> None:
        pod = kube.get_object("pods", ns, name)
        if pod is None:
            raise kube._not_found(kube.resource("pods"), name)
        container = query.get("container") or pod["spec"]["containers"][0]["name"]
        with kube._lock:
            log = kube._logs.get((ns, name))
        if log is None:
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            waiting = next(
                (
                    s["state"]["waiting"]
                    for s in statuses
                    if s.get("name") == container and "waiting" in s.get("state", {})
                ),
                None,
            )
            if waiting or pod.get("status", {}).get("phase", "Pending") == "Pending":
                reason = (waiting or {}).get("reason", "ContainerCreating")
                raise ApiError(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: {reason}',
                )
            log = _Log("", closed=True)
        tail = query.get("tailLines")

        def cut(text: str) -> str:
            if tail is None:
                return text
            lines = text.splitlines(keepends=True)
            return "".join(lines[-int(tail) :]) if int(tail) > 0 else ""

        follow = query.get("follow") in ("true", "1")
        if not follow:
            self._send(200, cut(log.text).encode(), {"Content-Type": "text/plain"})
            return
        self._start_stream("text/plain")
        with kube._lock:
            text = kube._logs.get((ns, name), log).text
        sent = len(text)
        self._chunk(cut(text).encode())
        deadline = time.monotonic() + 30
        while True:
            with kube._lock:
                current = kube._logs.get((ns, name), log)
                if len(current.text) == sent:
                    if current.closed or kube._stopping or time.monotonic() > deadline:
                        break
                    kube._changed.wait(0.5)
                    continue
                new, sent = current.text[sent:], len(current.text)
            self._chunk(new.encode())
        self._end_stream()

    def _proxy(
        self, kube: KubeEmulator, ns: str, name: str, rest: str, *, parts_query: str, body: bytes
    ) -> None:
        service, _, port = name.partition(":")
        if kube.get_object("services", ns, service) is None:
            raise kube._not_found(kube.resource("services"), service)
        with kube._lock:
            target = kube._proxies.get((ns, service, port)) or (
                next(
                    (t for (n, s, _), t in kube._proxies.items() if n == ns and s == service), None
                )
                if not port
                else None
            )
        if target is None:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{service}"'
            )
        conn = http.client.HTTPConnection(*target, timeout=5)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower()
            not in ("host", "authorization", "connection", "content-length", "transfer-encoding")
        }
        try:
            conn.request(
                self.command,
                rest + (f"?{parts_query}" if parts_query else ""),
                body=body or None,
                headers=headers,
            )
            resp = conn.getresponse()
            data = resp.read()
        except OSError as err:
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: {err}"
            ) from None
        finally:
            conn.close()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in (
                "connection",
                "transfer-encoding",
                "content-length",
                "keep-alive",
            ):
                self.send_header(key, value)
        # A HEAD answer keeps the upstream's Content-Length (registry clients read it).
        length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


# --------------------------------------------------------------------------- Katib's webhook


def katib_validator(kube: KubeEmulator) -> AdmissionHook:
    """A subset of Katib v0.19's experiment validator (validation_webhook.go, validator.go)."""
    name_re = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

    def hook(obj: Obj, operation: str, dry_run: bool) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        ns = meta.get("namespace", "")
        namespace = kube.get_object("namespaces", "", ns) or {}
        if (namespace.get("metadata", {}).get("labels") or {}).get(
            NAMESPACE_KATIB_LABEL
        ) != "enabled":
            raise Denied(
                f'Cannot create the Experiment "{meta["name"]}" in namespace "{ns}": the namespace '
                f'lacks label "{NAMESPACE_KATIB_LABEL}: enabled"'
            )
        errors = []
        name = meta["name"]
        if not name_re.match(name) or len(name) > 40:
            errors.append(
                f'metadata.name: Invalid value: "{name}": name must consist of lower case '
                "alphanumeric characters or '-', start with an alphabetic character, and end with "
                "an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation "
                "is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 characters. "
            )
        max_trials, parallel = spec.get("maxTrialCount"), spec.get("parallelTrialCount")
        if max_trials is not None and max_trials <= 0:
            errors.append(
                f"spec.maxTrialCount: Invalid value: {max_trials}: must be greater than 0"
            )
        if parallel is not None and max_trials is not None and parallel > max_trials:
            errors.append(
                f"spec.parallelTrialCount: Invalid value: {parallel}: should be less than or "
                "equal to spec.maxTrialCount"
            )
        if not spec.get("parameters"):
            errors.append(
                "spec: Required value: spec.parameters or spec.nasConfig must be specified"
            )
        if not spec.get("objective"):
            errors.append("spec.objective: Required value: must be specified")
        if errors:
            raise Denied(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")

    return hook


# --------------------------------------------------------------------------- controllers


def _condition(type_: str, status: str, reason: str, message: str) -> Obj:
    stamp = now_iso()
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


def _set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    out = [c for c in conditions if c["type"] != new["type"]]
    out.append(new)
    return out


def _rand8() -> str:
    # Katib: fmt.Sprintf("%s-%s", instance.Name, utilrand.String(8)) (suggestionclient.go);
    # utilrand's alphabet is "bcdfghjklmnpqrstvwxz2456789".
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=8))


def _digest(seed: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


class KanikoController:
    """Moves a Kaniko build Job as the Job controller and kubelet would.

    `auto(outcome)` reacts to every Job create; or call `succeed`/`fail` yourself.
    `on_success(job, digest) -> digest | None` runs before the Job turns Complete (e.g. push a
    tiny image to a real registry and return its real digest).
    """

    def __init__(
        self,
        kube: KubeEmulator,
        *,
        on_success: Callable[[Obj, str], str | None] | None = None,
    ) -> None:
        self.kube = kube
        self.on_success = on_success

    def auto(self, outcome: str = "succeed", *, log: str = "", delay_s: float = 0.0) -> None:
        """React to each created Job: `succeed`, `fail`, or `run` (stays running)."""

        def react(job: Obj) -> None:
            if delay_s:
                time.sleep(delay_s)
            ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
            if outcome == "succeed":
                self.succeed(ns, name, log=log)
            elif outcome == "fail":
                self.fail(ns, name, log=log)
            else:
                self.run(ns, name)

        self.kube.on_create("jobs", react)

    def pod_name(self, ns: str, job: str) -> str:
        pods = self.kube.objects("pods", ns, f"{LABEL_JOB_NAME}={job}")
        if not pods:
            raise KeyError(f"no pod for job {ns}/{job}")
        return str(pods[0]["metadata"]["name"])

    def run(self, ns: str, job: str) -> None:
        pod = self.pod_name(ns, job)
        container = self._container(ns, job)
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Running",
                    "startTime": now_iso(),
                    "containerStatuses": [
                        {
                            "name": container,
                            "ready": True,
                            "restartCount": 0,
                            "image": "",
                            "imageID": "",
                            "state": {"running": {"startedAt": now_iso()}},
                        }
                    ],
                }
            },
        )
        self.kube.patch(
            "jobs", ns, job, {"status": {"active": 1, "ready": 1, "startTime": now_iso()}}
        )

    def _container(self, ns: str, job: str) -> str:
        obj = self.kube.get_object("jobs", ns, job) or {}
        return str(obj["spec"]["template"]["spec"]["containers"][0]["name"])

    def succeed(self, ns: str, job: str, *, digest: str | None = None, log: str = "") -> str:
        """Exit 0 with the digest as the termination message; the Job Complete. The digest."""
        obj = self.kube.get_object("jobs", ns, job)
        assert obj is not None, f"no job {ns}/{job}"
        digest = digest or _digest(job)
        if self.on_success is not None:
            digest = self.on_success(obj, digest) or digest
        self._terminate(
            ns,
            job,
            exit_code=0,
            message=digest,
            reason="Completed",
            log=log or "INFO Pushed image to 1 destinations\n",
        )
        self.kube.patch(
            "jobs",
            ns,
            job,
            {
                "status": {
                    "active": 0,
                    "ready": 0,
                    "succeeded": 1,
                    "completionTime": now_iso(),
                    "conditions": [
                        _condition(
                            "SuccessCriteriaMet",
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        ),
                        _condition(
                            "Complete",
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        ),
                    ],
                }
            },
        )
        return digest

    def fail(self, ns: str, job: str, *, log: str = "", exit_code: int = 1) -> None:
        """Exit non-zero with `log` as the pod's log; the Job Failed (BackoffLimitExceeded)."""
        self._terminate(
            ns,
            job,
            exit_code=exit_code,
            message="",
            reason="Error",
            log=log or "error building image\n",
        )
        self.kube.patch(
            "jobs",
            ns,
            job,
            {
                "status": {
                    "active": 0,
                    "ready": 0,
                    "failed": 1,
                    "conditions": [
                        _condition(
                            "FailureTarget",
                            "True",
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                        ),
                        _condition(
                            "Failed",
                            "True",
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                        ),
                    ],
                }
            },
        )

    def _terminate(
        self, ns: str, job: str, *, exit_code: int, message: str, reason: str, log: str
    ) -> None:
        pod = self.pod_name(ns, job)
        container = self._container(ns, job)
        self.kube.set_pod_log(ns, pod, log)
        terminated: Obj = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": now_iso(),
            "finishedAt": now_iso(),
        }
        if message:
            terminated["message"] = message
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": container,
                            "ready": False,
                            "restartCount": 0,
                            "image": "",
                            "imageID": "",
                            "state": {"terminated": terminated},
                        }
                    ],
                }
            },
        )


@dataclass
class TrialHandle:
    """What `KatibController.create_trials` made for one trial."""

    name: str
    job: str  # the trial's Job or TrainJob (named after the trial)
    pod: str  # its pod (a TrainJob's: node 0's, the primary pod)
    assignments: dict[str, str]
    pods: tuple[str, ...] = ()  # every pod it made, by rank (a TrainJob's nodes)


def substitute_trial_parameters(
    template: Obj, values: Mapping[str, Any], *, trial: str, namespace: str
) -> Obj:
    """The trial's run spec from the Experiment's trialTemplate: `${trialParameters.<name>}`
    replaced with the assigned value of the parameter its `reference` names, or the trial's
    metadata for `${trialSpec.Name}` and the like (experiment controller, GetRunSpec...). A
    placeholder without a value stays as it is (Katib would refuse the trial)."""
    replacements: dict[str, str] = {}
    for param in template.get("trialParameters") or ():
        ref = str(param.get("reference") or "")
        meta = {"${trialSpec.Name}": trial, "${trialSpec.Namespace}": namespace,
                "${trialSpec.Kind}": (template.get("trialSpec") or {}).get("kind", ""),
                "${trialSpec.APIVersion}": (template.get("trialSpec") or {}).get("apiVersion", "")}  # fmt: skip
        if ref in values:
            replacements["${trialParameters." + str(param["name"]) + "}"] = str(values[ref])
        elif ref in meta:
            replacements["${trialParameters." + str(param["name"]) + "}"] = str(meta[ref])

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str) and "${trialParameters." in node:
            for placeholder, value in replacements.items():
                node = node.replace(placeholder, value)
        return node

    run_spec: Obj = walk(copy.deepcopy(template["trialSpec"]))
    return run_spec


class KatibController:
    """Plays Katib's experiment and trial controllers (and its pod webhook's labels), step by step.

    Trials are named `<experiment>-<8 random>` and labelled like Katib's (the Experiment's labels
    plus `katib.kubeflow.org/experiment`); their Job is named after the trial and its pod carries
    `katib.kubeflow.org/trial`, the trial's labels, and the Job controller's `job-name` labels.

    A trialTemplate whose trialSpec is a Kubeflow Trainer `TrainJob` (on an emulator started with
    `trainer=True`) makes a TrainJob named after the trial instead, which `tests.emulator_trainjob.TrainerController` turns into a JobSet and one
    pod per node (Katib's trial label on each; the trialTemplate's primaryPodLabels select node
    0). The trial steps below then move every node's pod (`ranks`/`rank` pick some) and roll the
    statuses up to the TrainJob's Complete/Failed conditions, which the Trial follows.
    """

    def __init__(self, kube: KubeEmulator) -> None:
        self.kube = kube

    def start(self, ns: str, experiment: str) -> None:
        """Experiment Created then Running (what Katib does right after admission)."""
        self._exp_condition(
            ns, experiment, "Created", "True", "ExperimentCreated", "Experiment is created"
        )
        self._exp_condition(
            ns, experiment, "Running", "True", "ExperimentRunning", "Experiment is running"
        )

    def create_trials(
        self, ns: str, experiment: str, assignments: list[Mapping[str, Any]]
    ) -> list[TrialHandle]:
        """One Trial (+ Job + Pending pod) per assignment dict; the Experiment's counts follow."""
        exp = self.kube.get_object("experiments", ns, experiment)
        assert exp is not None, f"no experiment {ns}/{experiment}"
        if not any(
            c["type"] == "Running" for c in (exp.get("status") or {}).get("conditions") or []
        ):
            self.start(ns, experiment)
            exp = self.kube.get_object("experiments", ns, experiment) or exp
        labels = dict(exp["metadata"].get("labels") or {})
        labels[LABEL_EXPERIMENT] = experiment
        template = exp["spec"]["trialTemplate"]
        handles = []
        for values in assignments:
            name = f"{experiment}-{_rand8()}"
            assignment = [{"name": k, "value": str(v)} for k, v in values.items()]
            run_spec = substitute_trial_parameters(template, values, trial=name, namespace=ns)
            run_spec.setdefault("metadata", {}).update({"name": name, "namespace": ns})
            trial = self.kube.put(
                "trials",
                {
                    "apiVersion": "kubeflow.org/v1beta1",
                    "kind": "Trial",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": labels,
                        "ownerReferences": [
                            {
                                "apiVersion": "kubeflow.org/v1beta1",
                                "kind": "Experiment",
                                "name": experiment,
                                "uid": exp["metadata"]["uid"],
                                "controller": True,
                            }
                        ],
                    },
                    "spec": {
                        "objective": exp["spec"].get("objective"),
                        "parameterAssignments": assignment,
                        "runSpec": run_spec,
                        "retainRun": bool(template.get("retain")),
                        "metricsCollector": exp["spec"].get("metricsCollectorSpec", {}),
                        "primaryContainerName": template.get("primaryContainerName", "training"),
                        "successCondition": template.get("successCondition", ""),
                        "failureCondition": template.get("failureCondition", ""),
                        "labels": template.get("trialSpec", {})
                        .get("metadata", {})
                        .get("labels", {}),
                        **(
                            {"primaryPodLabels": dict(template["primaryPodLabels"])}
                            if template.get("primaryPodLabels")
                            else {}
                        ),
                    },
                    "status": {
                        "startTime": now_iso(),
                        "conditions": [
                            _condition("Created", "True", "TrialCreated", "Trial is created")
                        ],
                    },
                },
            )
            if run_spec.get("kind") == "TrainJob":
                from tests.emulator_trainjob import TrainerController

                pods = TrainerController(self.kube).create_for_trial(trial, run_spec, labels)
                handles.append(
                    TrialHandle(
                        name, name, pods[0] if pods else "",
                        {k: str(v) for k, v in values.items()}, tuple(pods),
                    )
                )  # fmt: skip
                continue
            pod_labels = dict(
                ((run_spec.get("spec") or {}).get("template") or {})
                .get("metadata", {})
                .get("labels")
                or {}
            )
            pod_labels.update(labels)
            pod_labels[LABEL_TRIAL] = name
            run_spec["spec"]["template"].setdefault("metadata", {})["labels"] = pod_labels
            job = self.kube.put(
                "jobs",
                {
                    **run_spec,
                    "metadata": {
                        **run_spec["metadata"],
                        "labels": dict(labels),
                        "ownerReferences": [
                            {
                                "apiVersion": "kubeflow.org/v1beta1",
                                "kind": "Trial",
                                "name": name,
                                "uid": trial["metadata"]["uid"],
                                "controller": True,
                            }
                        ],
                    },
                },
            )
            self.kube._job_created(job)
            pod = self.kube.objects("pods", ns, f"{LABEL_JOB_NAME}={name}")[0]
            self.kube.add_event(
                ns,
                involved_kind="Trial",
                involved_name=name,
                reason="JobCreated",
                message=f"Job {name} is created",
            )
            handles.append(
                TrialHandle(
                    name,
                    name,
                    pod["metadata"]["name"],
                    {k: str(v) for k, v in values.items()},
                    (pod["metadata"]["name"],),
                )
            )
        self._sync_experiment(ns, experiment)
        return handles

    # ---- trial steps

    def run_trial(self, ns: str, trial: str, *, ranks: Iterable[int] | None = None) -> None:
        """The trial's pod Running (a TrainJob's: every node's, or those of `ranks`)."""
        trainer = self._trainer(ns, trial)
        if trainer is None:
            self._run_pod(ns, trial, self._pod(ns, trial))
            self.kube.patch("jobs", ns, trial, {"status": {"active": 1, "ready": 1}})
        else:
            wanted = None if ranks is None else set(ranks)
            for pod in trainer.pods(ns, trial):
                if wanted is None or node_index(pod) in wanted:
                    self._run_pod(ns, trial, pod["metadata"]["name"])
            trainer.sync(ns, trial)
        self._trial_condition(ns, trial, "Running", "True", "TrialRunning", "Trial is running")
        self.kube.add_event(
            ns,
            involved_kind="Trial",
            involved_name=trial,
            reason="JobRunning",
            message=f"Job {trial} is running",
        )

    def _run_pod(self, ns: str, trial: str, pod: str) -> None:
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Running",
                    "startTime": now_iso(),
                    "conditions": [
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Ready", "status": "True"},
                    ],
                    "containerStatuses": [
                        {
                            "name": self._primary(ns, trial),
                            "ready": True,
                            "restartCount": 0,
                            "image": "",
                            "imageID": "",
                            "state": {"running": {"startedAt": now_iso()}},
                        }
                    ],
                }
            },
        )

    def succeed_trial(
        self,
        ns: str,
        trial: str,
        metrics: Mapping[str, float | Mapping[str, float]],
        *,
        log: str = "",
        logs: Mapping[int, str] | None = None,
    ) -> None:
        """Exit 0, observation from `metrics` ({name: value} or {name: {latest,min,max}}).
        `log` is the pod's log (a TrainJob's: node 0's); `logs` a TrainJob's by rank."""
        self._finish_run(ns, trial, 0, log, logs=logs)
        observed = []
        for name, value in metrics.items():
            if isinstance(value, Mapping):
                observed.append({"name": name, **{k: str(v) for k, v in value.items()}})
            else:
                observed.append(
                    {"name": name, "latest": str(value), "min": str(value), "max": str(value)}
                )
        self._end_trial(
            ns,
            trial,
            "Succeeded",
            "True",
            "TrialSucceeded",
            "Trial has succeeded",
            extra={"observation": {"metrics": observed}, "completionTime": now_iso()},
        )
        self.kube.add_event(
            ns,
            involved_kind="Trial",
            involved_name=trial,
            reason="JobSucceeded",
            message=f"Job {trial} has succeeded",
        )
        self._sync_experiment(ns, self._experiment_of(ns, trial))

    def metrics_unavailable(
        self, ns: str, trial: str, *, log: str = "", logs: Mapping[int, str] | None = None
    ) -> None:
        """Exit 0 but no objective metric found: Katib's MetricsUnavailable (counts as failed)."""
        self._finish_run(ns, trial, 0, log, logs=logs)
        self._end_trial(
            ns,
            trial,
            "MetricsUnavailable",
            "True",
            "MetricsUnavailable",
            "Metrics are not available",
            extra={
                "observation": {
                    "metrics": [
                        {
                            "name": self._objective(ns, trial),
                            "latest": "unavailable",
                            "min": "unavailable",
                            "max": "unavailable",
                        }
                    ]
                },
                "completionTime": now_iso(),
            },
        )
        self.kube.add_event(
            ns,
            involved_kind="Trial",
            involved_name=trial,
            reason="MetricsUnavailable",
            message=f"Metrics are not available for Job {trial}",
            type_="Warning",
        )
        self._sync_experiment(ns, self._experiment_of(ns, trial))

    def fail_trial(
        self,
        ns: str,
        trial: str,
        *,
        log: str = "Traceback (most recent call last):\nValueError: boom\n",
        exit_code: int = 1,
        rank: int = 0,
        logs: Mapping[int, str] | None = None,
    ) -> None:
        """The training container exits `exit_code` with `log`; the Job fails, and Katib the
        trial. A TrainJob trial: node `rank` fails (`log` is its log, `logs` others' by rank),
        the other nodes are terminated and the TrainJob is Failed (FailedJobs)."""
        reason, message = self._finish_run(ns, trial, exit_code, log, logs=logs, rank=rank)
        self._end_trial(
            ns,
            trial,
            "Failed",
            "True",
            f"TrialFailed. Job reason: {reason}",
            f"Trial has failed. Job message: {message}",
            extra={"completionTime": now_iso()},
        )
        self.kube.add_event(
            ns,
            involved_kind="Trial",
            involved_name=trial,
            reason="JobFailed",
            message=f"Job {trial} has failed",
        )
        self._sync_experiment(ns, self._experiment_of(ns, trial))

    # ---- pending scenarios

    def unschedulable(
        self,
        ns: str,
        trial: str,
        *,
        message: str = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
        rank: int | None = None,
    ) -> None:
        """The scheduler cannot place the trial's pod (a TrainJob's: node `rank`'s, node 0's by
        default): Pending, PodScheduled=False Unschedulable, a FailedScheduling event."""
        pod = self._pod(ns, trial, rank)
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastTransitionTime": now_iso(),
                        }
                    ],
                }
            },
        )
        self.kube.add_event(
            ns,
            involved_kind="Pod",
            involved_name=pod,
            reason="FailedScheduling",
            message=message,
            type_="Warning",
        )

    def image_pull_backoff(
        self,
        ns: str,
        trial: str,
        *,
        image: str = "127.0.0.1:30500/repo@sha256:" + "0" * 64,
        rank: int | None = None,
    ) -> None:
        pod = self._pod(ns, trial, rank)
        message = f'Back-off pulling image "{image}"'
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": [
                        {
                            "name": self._primary(ns, trial),
                            "ready": False,
                            "restartCount": 0,
                            "image": image,
                            "imageID": "",
                            "state": {
                                "waiting": {"reason": "ImagePullBackOff", "message": message}
                            },
                        }
                    ],
                }
            },
        )
        self.kube.add_event(
            ns,
            involved_kind="Pod",
            involved_name=pod,
            reason="Failed",
            type_="Warning",
            message=f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found',
        )
        self.kube.add_event(
            ns,
            involved_kind="Pod",
            involved_name=pod,
            reason="BackOff",
            message=message,
            type_="Warning",
        )

    def kueue_pending(
        self,
        ns: str,
        trial: str,
        *,
        queue: str = "default",
        message: str = "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor default-flavor, 8 more needed",
    ) -> Obj:
        """Kueue holds the trial Job: suspended, no pod, a Workload not admitted. The Workload.
        A TrainJob trial: Kueue's TrainJob integration suspends the TrainJob and owns the
        Workload by it (its pods are gone)."""
        trainer = self._trainer(ns, trial)
        if trainer is not None:
            return self._kueue_pending_trainjob(trainer, ns, trial, queue, message)
        job = self.kube.get_object("jobs", ns, trial)
        assert job is not None
        for pod in self.kube.objects("pods", ns, f"{LABEL_JOB_NAME}={trial}"):
            self.kube.remove("pods", ns, pod["metadata"]["name"])
        self.kube.patch(
            "jobs",
            ns,
            trial,
            {
                "spec": {"suspend": True},
                "status": {
                    "active": 0,
                    "conditions": [
                        _condition("Suspended", "True", "JobSuspended", "Job suspended")
                    ],
                },
            },
        )
        return self.kube.put(
            "workloads",
            {
                "metadata": {
                    "name": f"job-{trial}-{uuid.uuid4().hex[:5]}",
                    "namespace": ns,
                    "labels": {LABEL_KUEUE_JOB_UID: job["metadata"]["uid"]},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": trial,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {"queueName": queue, "podSets": [{"name": "main", "count": 1}]},
                "status": {
                    "conditions": [
                        _condition("QuotaReserved", "False", "Pending", message),
                        _condition(
                            "Admitted", "False", "NoReservation", "The workload has no reservation"
                        ),
                    ]
                },
            },
        )

    def _kueue_pending_trainjob(
        self, trainer: Any, ns: str, trial: str, queue: str, message: str
    ) -> Obj:
        trainjob = self.kube.get_object("trainjobs", ns, trial)
        assert trainjob is not None
        for pod in trainer.pods(ns, trial):
            self.kube.remove("pods", ns, pod["metadata"]["name"])
        self.kube.patch("trainjobs", ns, trial, {"spec": {"suspend": True}})
        uid = trainjob["metadata"]["uid"]
        nodes = trainjob["spec"]["trainer"].get("numNodes", 1)
        return self.kube.put("workloads", {
            "metadata": {
                "name": f"trainjob-{trial}-{uuid.uuid4().hex[:5]}", "namespace": ns,
                "ownerReferences": [{"apiVersion": "trainer.kubeflow.org/v1alpha1",
                                     "kind": "TrainJob", "name": trial, "uid": uid,
                                     "controller": True}],
            },
            "spec": {"queueName": queue, "podSets": [{"name": "node", "count": nodes}]},
            "status": {"conditions": [
                _condition("QuotaReserved", "False", "Pending", message),
                _condition("Admitted", "False", "NoReservation", "The workload has no reservation"),
            ]},
        })  # fmt: skip

    # ---- disruptions (issue 22): the cluster ends a running trial's pod, the Job replaces it

    def preempt_trial(
        self,
        ns: str,
        trial: str,
        *,
        by: str | None = None,
        priority: str | None = None,
        queue: str = "default",
        admitted_s: int | None = None,
    ) -> str:
        """Preempt the trial's running pod; the Job makes a new Pending pod. The new pod's name.

        `by=None`: kube-scheduler preemption (DisruptionTarget, reason PreemptionByScheduler).
        `by="<workload>"`: Kueue preemption, as Kueue v0.19 and the Job controller do it. The
        preemptor's Workload `by` (priorityClassName `priority`) is created admitted; the
        trial's Workload gets Evicted=True (reason Preempted) and Preempted=True with Kueue's
        message naming the preemptor's UID, and its `schedulingStats.evictions` count goes up.
        Kueue suspends the Job; the Job controller deletes its running pod (no
        DisruptionTarget, `status.failed` unchanged). With no active pod left Kueue releases
        the quota: Admitted=False, and `accumulatedPastExecutionTimeSeconds` grows by the time
        since the Admitted condition's last transition (`admitted_s` overrides it). The
        Workload is then admitted again at once and the Job unsuspended: a new Pending pod."""
        self._job_only(ns, trial, "preempt_trial")
        if by is None:
            return self._disrupt(
                ns, trial, "DisruptionTarget", "PreemptionByScheduler",
                "default-scheduler: preempting to accommodate a higher priority pod",
            )  # fmt: skip
        preemptor = self.kube.put(
            "workloads",
            {
                "metadata": {"name": by, "namespace": ns, "labels": {}},
                "spec": {
                    "queueName": queue,
                    "podSets": [{"name": "main", "count": 1}],
                    **({"priorityClassName": priority} if priority else {}),
                },
                "status": {"conditions": [_condition("Admitted", "True", "Admitted", "The workload is admitted")]},
            },
        )  # fmt: skip
        message = (
            f"Preempted to accommodate a workload (UID: {preemptor['metadata']['uid']}, JobUID: "
            "UNKNOWN) due to prioritization in the ClusterQueue; preemptor path: /"
            f"{queue}; preemptee path: /{queue}"
        )
        victim = self._workload(ns, trial, queue)
        with self.kube._lock:  # evict.Evict: the conditions and the eviction count together
            current = self.kube.get_object("workloads", ns, victim) or {}
            stats = (current.get("status") or {}).get("schedulingStats") or {}
            evictions = [dict(e) for e in stats.get("evictions") or []]
            mine = next((e for e in evictions if e["reason"] == "Preempted"), None)
            if mine is None:
                evictions.append(mine := {"reason": "Preempted", "underlyingCause": "", "count": 0})
            mine["count"] += 1
            conditions = (current.get("status") or {}).get("conditions") or []
            for cond in (_condition("Evicted", "True", "Preempted", message),
                         _condition("Preempted", "True", "InClusterQueue", message)):  # fmt: skip
                conditions = _set_condition(conditions, cond)
            self.kube.patch("workloads", ns, victim, {"status": {
                "schedulingStats": {"evictions": evictions}, "conditions": conditions}})  # fmt: skip
        # Kueue's Job Stop: suspend, startTime reset; the Job controller deletes active pods.
        self.kube.patch("jobs", ns, trial, {"spec": {"suspend": True}, "status": {
            "active": 0, "ready": 0, "startTime": None,
            "conditions": [_condition("Suspended", "True", "JobSuspended", "Job suspended")]}})  # fmt: skip
        for pod in self.kube.objects("pods", ns, f"{LABEL_JOB_NAME}={trial}"):
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self.kube.remove("pods", ns, pod["metadata"]["name"])
        # Quota released (SyncAdmittedCondition): the admitted time is accumulated.
        with self.kube._lock:
            current = self.kube.get_object("workloads", ns, victim) or {}
            status = current.get("status") or {}
            admitted = next(c for c in status.get("conditions") or [] if c["type"] == "Admitted")
            held = (
                admitted_s
                if admitted_s is not None
                else int(
                    time.time() - datetime.fromisoformat(admitted["lastTransitionTime"]).timestamp()
                )
            )
            total = int(status.get("accumulatedPastExecutionTimeSeconds") or 0) + int(held)
            self.kube.patch("workloads", ns, victim, {"status": {
                "accumulatedPastExecutionTimeSeconds": total, "admission": None}})  # fmt: skip
        no_quota = "The workload has no reservation"
        self._workload_conditions(
            ns, victim,
            _condition("Requeued", "True", "Preempted", message),
            _condition("QuotaReserved", "False", "Pending", message),
            _condition("Admitted", "False", "NoReservation", no_quota),
        )  # fmt: skip
        # Requeued and admitted again; Kueue unsuspends the Job, which makes a new pod.
        self._workload_conditions(
            ns, victim,
            _condition("Evicted", "False", "Preempted", message),
            _condition("Preempted", "False", "InClusterQueue", message),
            _condition("QuotaReserved", "True", "QuotaReserved", "Quota reserved"),
            _condition("Admitted", "True", "Admitted", "The workload is admitted"),
        )  # fmt: skip
        job = self.kube.patch("jobs", ns, trial, {"spec": {"suspend": False}, "status": {
            "conditions": [_condition("Suspended", "False", "JobResumed", "Job resumed")]}})  # fmt: skip
        self.kube._job_created(job)
        self.kube.patch("jobs", ns, trial, {"status": {"active": 1, "startTime": now_iso()}})
        return self._pod(ns, trial)

    def _workload_conditions(self, ns: str, name: str, *conditions: Obj) -> None:
        with self.kube._lock:
            current = self.kube.get_object("workloads", ns, name) or {}
            merged = (current.get("status") or {}).get("conditions") or []
            for cond in conditions:
                merged = _set_condition(merged, cond)
            self.kube.patch("workloads", ns, name, {"status": {"conditions": merged}})

    def evict_trial(self, ns: str, trial: str) -> str:
        """The Eviction API (kubectl drain, an admin): DisruptionTarget EvictionByEvictionAPI.
        The replacement pod's name."""
        return self._disrupt(
            ns, trial, "DisruptionTarget", "EvictionByEvictionAPI", "Eviction API: evicting"
        )

    def lose_node(self, ns: str, trial: str, *, reason: str = "DeletionByTaintManager") -> str:
        """The trial's node is lost: the taint manager deletes its pods for the NoExecute
        `node.kubernetes.io/unreachable` taint (or `reason="DeletionByPodGC"`: the node object
        is gone; `"TerminationByKubelet"`: node shutdown). The replacement pod's name."""
        messages = {
            "DeletionByTaintManager": "Taint manager: deleting due to NoExecute taint",
            "DeletionByPodGC": "PodGC: node no longer exists",
            "TerminationByKubelet": "Pod was terminated in response to imminent node shutdown.",
        }
        return self._disrupt(ns, trial, "DisruptionTarget", reason, messages.get(reason, reason))

    def oom_kill_trial(self, ns: str, trial: str, *, log: str = "Killed\n") -> None:
        """The training container is OOMKilled (exit 137): the Job's FailJob rule fails the Job
        at once, and Katib the trial."""
        self._job_only(ns, trial, "oom_kill_trial")
        self._finish_pod(ns, trial, 137, log, reason="OOMKilled")
        pod = self._pod(ns, trial)
        message = (
            f"Container {self._primary(ns, trial)} for pod {ns}/{pod} failed with exit code 137 "
            "matching FailJob rule at index 1"
        )
        self.kube.patch(
            "jobs",
            ns,
            trial,
            {
                "status": {
                    "active": 0,
                    "ready": 0,
                    "failed": 1,
                    "conditions": [
                        _condition("FailureTarget", "True", "PodFailurePolicy", message),
                        _condition("Failed", "True", "PodFailurePolicy", message),
                    ],
                }
            },
        )
        self._end_trial(
            ns, trial, "Failed", "True", "TrialFailed. Job reason: PodFailurePolicy",
            f"Trial has failed. Job message: {message}", extra={"completionTime": now_iso()},
        )  # fmt: skip
        self.kube.add_event(
            ns, involved_kind="Trial", involved_name=trial, reason="JobFailed",
            message=f"Job {trial} has failed",
        )  # fmt: skip
        self._sync_experiment(ns, self._experiment_of(ns, trial))

    def trial_pods(self, ns: str, trial: str) -> list[Obj]:
        """Every pod of the trial (replaced ones too), oldest first."""
        pods = self.kube.objects("pods", ns, f"{LABEL_TRIAL}={trial}")
        disrupted = {"DisruptionTarget", "TerminationTarget"}

        def key(pod: Obj) -> tuple[str, bool]:
            kinds = {c.get("type") for c in (pod.get("status") or {}).get("conditions") or []}
            return (pod["metadata"]["creationTimestamp"], not kinds & disrupted)

        return sorted(pods, key=key)

    def _workload(self, ns: str, trial: str, queue: str) -> str:
        """The name of the trial Job's Workload (made, admitted, when there is none)."""
        job = self.kube.get_object("jobs", ns, trial)
        assert job is not None
        uid = job["metadata"]["uid"]
        for workload in self.kube.objects("workloads", ns, f"{LABEL_KUEUE_JOB_UID}={uid}"):
            return str(workload["metadata"]["name"])
        name = f"job-{trial}-{uuid.uuid4().hex[:5]}"
        self.kube.put(
            "workloads",
            {
                "metadata": {
                    "name": name, "namespace": ns, "labels": {LABEL_KUEUE_JOB_UID: uid},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": trial,
                                         "uid": uid, "controller": True}],
                },
                "spec": {"queueName": queue, "podSets": [{"name": "main", "count": 1,
                         "template": copy.deepcopy(job["spec"].get("template") or {})}]},
                # Admitted before the Job's first pod (Kueue holds a Job until it admits it).
                "status": {"conditions": [{**_condition("Admitted", "True", "Admitted", "The workload is admitted"),
                                           "lastTransitionTime": job["metadata"]["creationTimestamp"]}]},
            },
        )  # fmt: skip
        return name

    def _disrupt(
        self, ns: str, trial: str, type_: str, reason: str, message: str,
        *, before_replacement: Callable[[], None] | None = None,
    ) -> str:  # fmt: skip
        """The pod gets the disruption condition, then ends Failed (SIGTERM: exit 143); the Job
        controller's podFailurePolicy Ignore rule does not count it and a new pod (new name, the
        same labels) replaces it, Pending. The trial stays Running (the Job is still active)."""
        self._job_only(ns, trial, "disruptions")
        pod_name = self._pod(ns, trial)
        pod = self.kube.get_object("pods", ns, pod_name) or {}
        status = pod.get("status") or {}
        conditions = [
            *(c for c in status.get("conditions") or [] if c.get("type") != "Ready"),
            {"type": "Ready", "status": "False", "reason": "PodFailed"},
            _condition(type_, "True", reason, message),
        ]
        self.kube.patch("pods", ns, pod_name, {"status": {"conditions": conditions}})
        started = next(
            (
                (c.get("state") or {}).get("running", {}).get("startedAt")
                for c in status.get("containerStatuses") or []
            ),
            None,
        )
        self._terminate(ns, trial, pod_name, exit_code=143, reason="Error", started=started)
        job = self.kube.get_object("jobs", ns, trial)
        assert job is not None, f"no job {ns}/{trial}"
        start = (job.get("status") or {}).get("startTime")
        if before_replacement is not None:
            before_replacement()
        self.kube._job_created(job)  # the replacement pod
        self.kube.patch(
            "jobs", ns, trial, {"status": {"active": 1, "ready": 0, "startTime": start}}
        )
        return self._pod(ns, trial)

    # ---- experiment end

    def finish(self, ns: str, experiment: str, *, succeeded: bool = True) -> None:
        self._exp_condition(
            ns, experiment, "Running", "False", "ExperimentRunning", "Experiment is running"
        )
        if succeeded:
            self._exp_condition(
                ns,
                experiment,
                "Succeeded",
                "True",
                "ExperimentMaxTrialsReached",
                "Experiment has succeeded because max trial count has reached",
            )
        else:
            self._exp_condition(
                ns,
                experiment,
                "Failed",
                "True",
                "ExperimentFailed",
                "Experiment has failed because max failed count has reached",
            )
        self.kube.patch("experiments", ns, experiment, {"status": {"completionTime": now_iso()}})

    # ---- internals

    def _pod(self, ns: str, trial: str, rank: int | None = None) -> str:
        """The trial's current pod: the one the cluster has not disrupted (the Job's newest);
        of a TrainJob trial, node `rank`'s (node 0's by default)."""
        selector = f"{LABEL_TRIAL}={trial}"
        if rank is not None:
            selector += f",{LABEL_COMPLETION_INDEX}={rank}"
        pods = self.kube.objects("pods", ns, selector)
        if not pods:
            raise KeyError(
                f"no pod for trial {ns}/{trial}" + ("" if rank is None else f" rank {rank}")
            )
        live = [
            p
            for p in pods
            if not any(
                c.get("type") in ("DisruptionTarget", "TerminationTarget")
                and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        # A TrainJob's node 0 (names sort by rank only up to 10 nodes); a Job's pod has no index.
        first = min(live or pods, key=node_index)
        return str(first["metadata"]["name"])

    def node_pods(self, ns: str, trial: str) -> list[str]:
        """The trial's pods by rank: a TrainJob trial's node pods (its Job trial's one pod)."""
        trainer = self._trainer(ns, trial)
        if trainer is None:
            return [self._pod(ns, trial)]
        return [p["metadata"]["name"] for p in trainer.pods(ns, trial)]

    def _trainer(self, ns: str, trial: str) -> TrainerController | None:
        """The Trainer's controller when the trial runs a TrainJob, else None (a batch Job)."""
        from tests.emulator_trainjob import TrainerController, is_trainjob_trial

        obj = self.kube.get_object("trials", ns, trial)
        if obj is None:
            raise KeyError(f"no trial {ns}/{trial}")
        return TrainerController(self.kube) if is_trainjob_trial(obj) else None

    def _job_only(self, ns: str, trial: str, what: str) -> None:
        if self._trainer(ns, trial) is not None:
            raise NotImplementedError(f"{what}: not modelled for TrainJob trials ({trial})")

    def _finish_run(
        self, ns: str, trial: str, exit_code: int, log: str,
        *, logs: Mapping[int, str] | None = None, rank: int = 0,
    ) -> tuple[str, str]:  # fmt: skip
        """The trial's training ends with `exit_code`: its pod terminates and its Job (or
        TrainJob) completes or fails. The reason and message of that end, as Katib reads them.

        A TrainJob: on success every node exits 0; on failure node `rank` exits `exit_code`.
        `log` is node 0's log (the failing node's), `logs` sets others' by rank."""
        trainer = self._trainer(ns, trial)
        if trainer is None:
            self._finish_pod(ns, trial, exit_code, log)
            self._job_done(ns, trial, ok=exit_code == 0)
            if exit_code == 0:
                return ("CompletionsReached", "Reached expected number of succeeded pods")
            return ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        from tests.emulator_trainjob import terminal_condition

        lead = 0 if exit_code == 0 else rank
        for pod in trainer.pods(ns, trial):
            name, index = pod["metadata"]["name"], node_index(pod)
            text = (logs or {}).get(index, log if index == lead else None)
            if text is not None:
                self.kube.set_pod_log(ns, name, text)
            else:  # whatever it printed stays; a follow stream ends
                self.kube.append_pod_log(ns, name, "", close=True)
            if exit_code == 0 or index == rank:
                self._terminate(
                    ns, trial, name, exit_code=exit_code,
                    reason="Completed" if exit_code == 0 else "Error",
                )  # fmt: skip
        cond = terminal_condition(trainer.sync(ns, trial)) or {}
        return str(cond.get("reason", "")), str(cond.get("message", ""))

    def _primary(self, ns: str, trial: str) -> str:
        obj = self.kube.get_object("trials", ns, trial) or {}
        return str(obj.get("spec", {}).get("primaryContainerName") or "training")

    def _objective(self, ns: str, trial: str) -> str:
        obj = self.kube.get_object("trials", ns, trial) or {}
        return str(
            ((obj.get("spec") or {}).get("objective") or {}).get("objectiveMetricName")
            or "objective"
        )

    def _experiment_of(self, ns: str, trial: str) -> str:
        obj = self.kube.get_object("trials", ns, trial)
        assert obj is not None
        return str(obj["metadata"]["labels"][LABEL_EXPERIMENT])

    def _finish_pod(
        self, ns: str, trial: str, exit_code: int, log: str, *, reason: str | None = None
    ) -> None:
        pod = self._pod(ns, trial)
        self.kube.set_pod_log(ns, pod, log)
        self._terminate(
            ns, trial, pod, exit_code=exit_code,
            reason=reason or ("Completed" if exit_code == 0 else "Error"),
        )  # fmt: skip

    def _terminate(
        self, ns: str, trial: str, pod: str, *, exit_code: int, reason: str,
        started: str | None = None,
    ) -> None:  # fmt: skip
        """The pod's training container terminated with `exit_code`: the pod Succeeded or Failed."""
        terminated = {"exitCode": exit_code, "reason": reason, "finishedAt": now_iso()}
        if started:
            terminated["startedAt"] = started
        self.kube.patch(
            "pods",
            ns,
            pod,
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": self._primary(ns, trial),
                            "ready": False,
                            "restartCount": 0,
                            "image": "",
                            "imageID": "",
                            "state": {"terminated": terminated},
                        }
                    ],
                }
            },
        )

    def _job_done(self, ns: str, trial: str, *, ok: bool) -> None:
        if ok:
            conditions = [
                _condition(
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                _condition(
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
            ]
            self.kube.patch(
                "jobs",
                ns,
                trial,
                {
                    "status": {
                        "active": 0,
                        "ready": 0,
                        "succeeded": 1,
                        "completionTime": now_iso(),
                        "conditions": conditions,
                    }
                },
            )
        else:
            conditions = [
                _condition(
                    "FailureTarget",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                _condition(
                    "Failed",
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
            ]
            self.kube.patch(
                "jobs",
                ns,
                trial,
                {"status": {"active": 0, "ready": 0, "failed": 1, "conditions": conditions}},
            )

    def _trial_condition(
        self,
        ns: str,
        trial: str,
        type_: str,
        status: str,
        reason: str,
        message: str,
        *,
        extra: Obj | None = None,
    ) -> None:
        with self.kube._lock:
            obj = self.kube.get_object("trials", ns, trial)
            assert obj is not None, f"no trial {ns}/{trial}"
            st = obj.setdefault("status", {})
            st["conditions"] = _set_condition(
                st.get("conditions") or [], _condition(type_, status, reason, message)
            )
            st.update(extra or {})
            self.kube.put("trials", obj)

    def _end_trial(
        self, ns: str, trial: str, type_: str, status: str, reason: str, message: str,
        *, extra: Obj | None = None,
    ) -> None:  # fmt: skip
        """Running=False and the final condition in one update, as Katib's reconcile writes it
        (two updates would show watchers a trial that is neither running nor finished)."""
        with self.kube._lock:
            obj = self.kube.get_object("trials", ns, trial)
            assert obj is not None, f"no trial {ns}/{trial}"
            st = obj.setdefault("status", {})
            conditions = _set_condition(
                st.get("conditions") or [],
                _condition("Running", "False", "TrialRunning", "Trial is running"),
            )
            st["conditions"] = _set_condition(
                conditions, _condition(type_, status, reason, message)
            )
            st.update(extra or {})
            self.kube.put("trials", obj)

    def _exp_condition(
        self, ns: str, experiment: str, type_: str, status: str, reason: str, message: str
    ) -> None:
        with self.kube._lock:
            obj = self.kube.get_object("experiments", ns, experiment)
            assert obj is not None, f"no experiment {ns}/{experiment}"
            st = obj.setdefault("status", {})
            st.setdefault("startTime", now_iso())
            st["conditions"] = _set_condition(
                st.get("conditions") or [], _condition(type_, status, reason, message)
            )
            self.kube.put("experiments", obj)

    def _sync_experiment(self, ns: str, experiment: str) -> None:
        """Experiment status counts, trial lists and currentOptimalTrial from its Trials."""
        with self.kube._lock:
            exp = self.kube.get_object("experiments", ns, experiment)
            if exp is None:
                return
            trials = self.kube.objects("trials", ns, f"{LABEL_EXPERIMENT}={experiment}")
            lists: dict[str, list[str]] = {
                k: [] for k in ("pending", "running", "succeeded", "failed", "metricsUnavailable")
            }
            for trial in trials:
                true = {
                    c["type"]
                    for c in trial.get("status", {}).get("conditions", [])
                    if c["status"] == "True"
                }
                state = (
                    "succeeded"
                    if "Succeeded" in true
                    else "failed"
                    if "Failed" in true
                    else "metricsUnavailable"
                    if "MetricsUnavailable" in true
                    else "running"
                    if "Running" in true
                    else "pending"
                )
                lists[state].append(trial["metadata"]["name"])
            st = exp.setdefault("status", {})
            st.update(
                {
                    "trials": len(trials),
                    "trialsSucceeded": len(lists["succeeded"]),
                    "trialsFailed": len(lists["failed"]),
                    "trialsRunning": len(lists["running"]),
                    "trialsPending": len(lists["pending"]),
                    "trialMetricsUnavailable": len(lists["metricsUnavailable"]),
                    "succeededTrialList": lists["succeeded"],
                    "failedTrialList": lists["failed"],
                    "runningTrialList": lists["running"],
                    "pendingTrialList": lists["pending"],
                    "metricsUnavailableTrialList": lists["metricsUnavailable"],
                }
            )
            st = {k: v for k, v in st.items() if v not in (0, [])}
            objective = exp["spec"].get("objective") or {}
            metric, goal_type = (
                objective.get("objectiveMetricName"),
                objective.get("type", "minimize"),
            )
            best: tuple[float, Obj] | None = None
            for trial in trials:
                if trial["metadata"]["name"] not in lists["succeeded"]:
                    continue
                for m in trial["status"].get("observation", {}).get("metrics", []):
                    if m["name"] == metric:
                        value = float(m["latest"])
                        if best is None or (
                            value < best[0] if goal_type == "minimize" else value > best[0]
                        ):
                            best = (value, trial)
            if best is not None:
                st["currentOptimalTrial"] = {
                    "bestTrialName": best[1]["metadata"]["name"],
                    "parameterAssignments": best[1]["spec"]["parameterAssignments"],
                    "observation": best[1]["status"]["observation"],
                }
            exp["status"] = st
            self.kube.put("experiments", exp)


def expand_k8s(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of command, args and env values: `$$` is `$`, `$(NAME)` a variable
    defined earlier in the container's env (left as it is when undefined)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i:]:
            end = text.index(")", i)
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[KubeEmulator]:
    """`with running() as kube:` — a started emulator, stopped on exit (for fixtures)."""
    kube = KubeEmulator(**kwargs).start()
    try:
        yield kube
    finally:
        kube.stop()
