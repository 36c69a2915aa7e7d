"""The Kubernetes API's vocabulary, pure (no `kubernetes`, no I/O): kinds and their paths, what
was being done (`Op`), and how an error answer becomes a `ClusterError` with the server's words and
a hint (`translate`). `launch.cluster` talks to the server with it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from launch.errors import LaunchError

Obj = dict[str, Any]
# Marks the objects `create` makes: after a lost answer, a 409 for an object carrying our id
# means our own earlier attempt landed (the uid is unknown until an answer arrives).
REQUEST_ID_ANNOTATION = "launch/request-id"
KATIB_INSTALL = (
    "kubectl apply -k "
    '"github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=v0.19.0"'
)
_MESSAGE_MAX = 600
_NOT_SERVED = "the server could not find the requested resource"


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: group ("" for core), version, plural, scope."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.plural} are namespaced: give a namespace")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base


KINDS: dict[str, Kind] = {
    "Namespace": Kind("", "v1", "namespaces", namespaced=False),
    "Pod": Kind("", "v1", "pods"),
    "Event": Kind("", "v1", "events"),
    "Service": Kind("", "v1", "services"),
    "Secret": Kind("", "v1", "secrets"),
    "ConfigMap": Kind("", "v1", "configmaps"),
    "Job": Kind("batch", "v1", "jobs"),
    "Experiment": Kind("kubeflow.org", "v1beta1", "experiments"),
    "Trial": Kind("kubeflow.org", "v1beta1", "trials"),
    "Suggestion": Kind("kubeflow.org", "v1beta1", "suggestions"),
    "Workload": Kind("kueue.x-k8s.io", "v1beta2", "workloads"),
    "LocalQueue": Kind("kueue.x-k8s.io", "v1beta2", "localqueues"),
    "ServiceAccount": Kind("", "v1", "serviceaccounts"),
    "DaemonSet": Kind("apps", "v1", "daemonsets"),  # doctor: kube-proxy's flags
    "NetworkPolicy": Kind("networking.k8s.io", "v1", "networkpolicies"),  # doctor
    "TrainJob": Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs"),  # multi-node trials
    "ClusterTrainingRuntime": Kind(  # doctor: the runtime TrainJobs name
        "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes", namespaced=False
    ),
    "CustomResourceDefinition": Kind(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False
    ),
}
_KATIB_PLURALS = frozenset({"experiments", "trials", "suggestions"})


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}") from None


# --------------------------------------------------------------------------- errors


class ClusterError(LaunchError):
    """An API or connection error: the server's message, a hint, and the HTTP status (0: none)."""

    def __init__(
        self, message: str, *, hint: str | None = None, status: int = 0, reason: str = ""
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class NotFoundError(ClusterError):
    """404: the object (or, for a whole kind, its API) does not exist."""


class AlreadyExistsError(ClusterError):
    """409 AlreadyExists on create."""


@dataclass(frozen=True)
class Op:
    """What was being done, for error messages: `create experiments in namespace ml`."""

    verb: str
    kind: str
    namespace: str | None = None
    name: str | None = None

    def describe(self) -> str:
        what = f"{self.kind} {self.name}" if self.name else self.kind
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.verb} {what}{where}"


def cut(text: str, limit: int = _MESSAGE_MAX) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15] + " ... (cut)"


def _status_of(body: bytes | str | None) -> tuple[str, str, Obj]:
    """(message, reason, details) of a metav1.Status body; the raw body as message otherwise."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        doc = json.loads(text)
    except ValueError:
        return cut(text), "", {}
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return (
            cut(str(doc.get("message") or "")),
            str(doc.get("reason") or ""),
            doc.get("details") or {},
        )
    return cut(text), "", {}


_RBAC_RE = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)" in API group "(?P<group>[^"]*)"'
    r'(?: in the namespace "(?P<ns>[^"]+)")?'
)


def translate(status: int, body: bytes | str | None, op: Op) -> ClusterError:
    """An HTTP error answer as a ClusterError with the server's words and what to do about it."""
    message, reason, details = _status_of(body)
    message = message or f"HTTP {status}"
    if "admission webhook" in message:
        # Katib's validator answers 400 (admission.Errored); other webhooks use 403 or 422.
        return ClusterError(
            f"the cluster refused to {op.describe()}: {message}",
            hint="the webhook's words above name the field to fix (in search.yaml or the flags)",
            status=status,
            reason=reason,
        )
    if status == 401:
        return ClusterError(
            f"the API server did not accept the credentials to {op.describe()}: {message}",
            hint="log in again or pick another kubeconfig context (`launch config` shows it)",
            status=status,
            reason=reason,
        )
    if status == 403:
        m = _RBAC_RE.search(message)
        verb = m["verb"] if m else op.verb
        resource = m["resource"] if m else op.kind
        group = m["group"] if m else str(details.get("group") or "")
        ns = (m["ns"] if m else None) or op.namespace
        full = f"{resource}.{group}" if group else resource
        where = f" -n {ns}" if ns else ""
        return ClusterError(
            f"not allowed to {op.describe()}: {message}",
            hint=(
                f"RBAC: your account needs `{verb}` on `{full}`"
                + (f" in namespace {ns}" if ns else "")
                + f"; ask a cluster admin (check: kubectl auth can-i {verb} {full}{where})"
            ),
            status=status,
            reason=reason,
        )
    if status == 404:
        if message == _NOT_SERVED or (reason == "NotFound" and not details):
            if op.kind in _KATIB_PLURALS:
                return NotFoundError(
                    f"Katib is not installed on this cluster (no kubeflow.org/v1beta1 {op.kind} API)",
                    hint=f"install Katib v0.19 (see deploy/): {KATIB_INSTALL}",
                    status=status,
                    reason=reason,
                )
            if op.kind == "workloads":
                return NotFoundError(
                    "Kueue is not installed on this cluster (no kueue.x-k8s.io/v1beta2 workloads API)",
                    hint="install Kueue v0.19 (see deploy/), or leave out --queue",
                    status=status,
                    reason=reason,
                )
        if details.get("kind") == "namespaces" and op.kind != "namespaces":
            return NotFoundError(
                f"cannot {op.describe()}: {message}",
                hint="create the namespace or pick another one with --namespace",
                status=status,
                reason=reason,
            )
        return NotFoundError(f"cannot {op.describe()}: {message}", status=status, reason=reason)
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(
            f"cannot {op.describe()}: {message}",
            hint=(
                f"pick another name with --name, or remove the old one (launch cancel {op.name})"
                if op.kind == "experiments"
                else "pick another name"
            ),
            status=status,
            reason=reason,
        )
    if status in (400, 422):
        return ClusterError(
            f"the API server refused to {op.describe()}: {message}",
            hint="the field named above is invalid; this is likely a launch bug if it persists "
            "(run with --debug and report it)",
            status=status,
            reason=reason,
        )
    if status >= 500 or status == 429:
        return ClusterError(
            f"the API server failed to {op.describe()} (HTTP {status}): {message}",
            hint="retry in a moment; if it persists check the cluster (kubectl get --raw /readyz)",
            status=status,
            reason=reason,
        )
    return ClusterError(
        f"cannot {op.describe()} (HTTP {status}): {message}", status=status, reason=reason
    )


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED or DELETED, and the object as it is now."""

    type: str
    object: Obj

    @property
    def name(self) -> str:
        return str(self.object.get("metadata", {}).get("name", ""))


def annotation(obj: Mapping[str, Any], key: str) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def rv_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def is_api_status(body: bytes) -> bool:
    """The API server's own error (a metav1.Status), not the upstream service's answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1"


def proxy_path(namespace: str, service: str, port: str, path: str) -> str:
    """The API server's path that proxies `path` to `service:port` in `namespace`."""
    target = quote(f"{service}:{port}", safe=":")
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/services/{target}/proxy/" + path.lstrip(
        "/"
    )


class ClusterAPI(Protocol):
    """The cluster calls the drivers make (`launch.cluster.Cluster` implements them; a test may
    pass anything that does): objects by kind, watches, pod logs, the service proxy."""

    def __enter__(self) -> ClusterAPI: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...

    def get(self, kind: str, namespace: str | None, name: str) -> Obj: ...

    def find(self, kind: str, namespace: str | None, name: str) -> Obj | None: ...

    def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]: ...

    def create(self, obj: Mapping[str, Any], *, dry_run_first: bool = True) -> Obj: ...

    def dry_run_create(self, obj: Mapping[str, Any]) -> Obj: ...

    def delete(
        self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> None: ...

    def namespace_labels(self, namespace: str) -> dict[str, str]: ...

    def katib_installed(self) -> bool: ...

    def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        name: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_s: float | None = None,
        window_s: float = 300.0,
        max_failures: int = 5,
        stop: threading.Event | None = None,
    ) -> Iterator[WatchEvent]: ...

    def pod_logs(
        self, namespace: str, pod: str, *, container: str | None = None,
        tail_lines: int | None = None,
    ) -> str: ...  # fmt: skip

    def stream_pod_logs(
        self, namespace: str, pod: str, *, container: str | None = None,
        tail_lines: int | None = None,
    ) -> Iterator[str]: ...  # fmt: skip

    def service_proxy(self, namespace: str, service: str, port: int | str) -> Any: ...
