"""The Kubernetes API: create (server-side dry-run first), get, list, watch, logs, delete, proxy.

The only module importing `kubernetes` (lazily, in `Cluster.connect`, so importing this module
stays cheap). Objects are plain dicts; every API or connection error becomes a `ClusterError`
carrying the server's words and a hint. Retry loops take injected `sleep`/`now`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from launch.errors import LaunchError

Obj = dict[str, Any]
Items = list[Obj]  # (a method named `list` shadows the builtin inside Cluster)

# Marks the objects `create` makes: after a lost answer, a 409 for an object carrying our id
# means our own earlier attempt landed (the uid is unknown until an answer arrives).
REQUEST_ID_ANNOTATION = "launch/request-id"
KATIB_INSTALL = (
    "kubectl apply -k "
    '"github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=v0.19.0"'
)
_MESSAGE_MAX = 600
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
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


class _Transient(Exception):
    """A failure worth retrying when the request is safe to repeat."""

    def __init__(self, error: ClusterError) -> None:
        super().__init__(error.message)
        self.error = error


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


def _cut(text: str, limit: int = _MESSAGE_MAX) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 15] + " ... (cut)"


def _status_of(body: bytes | str | None) -> tuple[str, str, Obj]:
    """(message, reason, details) of a metav1.Status body; the raw body as message otherwise."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        doc = json.loads(text)
    except ValueError:
        return _cut(text), "", {}
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return (
            _cut(str(doc.get("message") or "")),
            str(doc.get("reason") or ""),
            doc.get("details") or {},
        )
    return _cut(text), "", {}


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


def _connection_error(err: BaseException, host: str, op: Op) -> ClusterError | _Transient:
    """urllib3/socket errors: unreachable (give up at once) or broken mid-request (retryable)."""
    import urllib3.exceptions as u3

    inner: BaseException = err
    if isinstance(err, u3.MaxRetryError) and err.reason is not None:
        inner = err.reason
    text = _cut(str(inner), 300)
    if isinstance(inner, u3.NewConnectionError | u3.ConnectTimeoutError | ConnectionRefusedError):
        return ClusterError(
            f"cannot reach the Kubernetes API server at {host} to {op.describe()}: {text}",
            hint="check the kubeconfig context (`launch config` shows it; "
            "`kubectl cluster-info` tests it) and your network/VPN",
        )
    return _Transient(
        ClusterError(
            f"lost the connection to the API server at {host} during {op.describe()}: {text}",
            hint="retry; a flaky network or an overloaded API server causes this",
        )
    )


# --------------------------------------------------------------------------- data


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


# --------------------------------------------------------------------------- the service


class Cluster:
    """A connection to one API server. Build it with `Cluster.connect`."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str = "default",
        context: str | None = None,
        request_timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        self.context = context
        self.host: str = api_client.configuration.host
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.now = now

    @classmethod
    def connect(
        cls,
        context: str | None = None,
        *,
        kubeconfig: str | None = None,
        request_timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.monotonic,
    ) -> Cluster:
        """Load the kubeconfig (`kubeconfig`, else $KUBECONFIG merged as kubectl does, else
        ~/.kube/config; the in-cluster service account when there is none) for `context`
        (default: the current one). The namespace is the context's. No request is made."""
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        config: Any = kube_config  # untyped functions

        namespace = "default"
        configuration = client.Configuration()
        try:
            # The client merges a `:`-separated $KUBECONFIG list like kubectl (read now: the
            # client's own default is frozen when it is imported).
            path = kubeconfig or os.environ.get("KUBECONFIG") or None
            if (
                path is None
                and not os.path.exists(os.path.expanduser("~/.kube/config"))
                and os.environ.get("KUBERNETES_SERVICE_HOST")
            ):
                config.load_incluster_config(client_configuration=configuration)
                sa_ns = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
                if os.path.exists(sa_ns):
                    with open(sa_ns) as handle:
                        namespace = handle.read().strip() or namespace
            else:
                config.load_kube_config(
                    config_file=path, context=context, client_configuration=configuration
                )
                contexts, active = config.list_kube_config_contexts(config_file=path)
                chosen = next((c for c in contexts if c.get("name") == context), None)
                chosen = active if context is None else chosen
                namespace = ((chosen or {}).get("context") or {}).get("namespace") or namespace
        except (ConfigException, OSError, TypeError, ValueError) as err:
            raise ClusterError(
                f"cannot load the kubeconfig{f' context {context!r}' if context else ''}: {err}",
                hint="check `kubectl config get-contexts` and the `context` setting (`launch config`)",
            ) from None
        # Retries are ours (counted, with backoff, only where repeating is safe): urllib3 would
        # silently repeat reads and hide a dropped connection.
        configuration.retries = False
        return cls(
            client.ApiClient(configuration),
            namespace=namespace,
            context=context,
            request_timeout_s=request_timeout_s,
            connect_timeout_s=connect_timeout_s,
            sleep=sleep,
            now=now,
        )

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- HTTP core

    def _send(
        self,
        method: str,
        path: str,
        op: Op,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        read_timeout_s: float | None = None,
    ) -> Any:
        """One request through the client's auth and connection pool: the raw urllib3 response.

        Raises ClusterError for an unreachable server and _Transient for a broken connection.
        """
        import urllib3

        header_params = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            header_params.setdefault("Content-Type", "application/json")
        _, url, header_params, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=header_params,
            body=body,
            auth_settings=["BearerToken"],
        )
        timeout = (self.connect_timeout_s, read_timeout_s or self.request_timeout_s)
        try:
            response = self._api.call_api(
                method, url, header_params, body, _request_timeout=timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _connection_error(err, self.host, op) from None
        raw = response.response
        if not stream:
            try:
                raw.data  # noqa: B018 - read the whole body now, so a broken one is seen here
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise _connection_error(err, self.host, op) from None
        return raw

    def _call(
        self,
        method: str,
        path: str,
        op: Op,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        safe: bool = True,
    ) -> Obj:
        """A JSON request; transient failures are retried (with backoff) only when `safe`."""
        attempt = 0
        while True:
            try:
                raw = self._send(method, path, op, query=query, body=body)
                if raw.status >= 400:
                    error = translate(raw.status, raw.data, op)
                    if raw.status in _RETRY_STATUSES:
                        raise _Transient(error)
                    raise error
                result: Obj = json.loads(raw.data or b"{}")
                return result
            except _Transient as transient:
                attempt += 1
                if not safe or attempt > self.retries:
                    raise transient.error from None
                self.sleep(self.backoff_s * 2 ** (attempt - 1))

    # ----------------------------------------------------------------- objects

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        """The object; NotFoundError when it does not exist."""
        k = kind_of(kind)
        return self._call("GET", k.path(namespace, name), Op("get", k.plural, namespace, name))

    def find(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(kind, namespace, name)
        except NotFoundError as err:
            if "not installed" in err.message:
                raise
            return None

    def list_with_version(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[Items, str]:
        """The items and the list's resourceVersion (where a watch can start)."""
        k = kind_of(kind)
        query: dict[str, str | int] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        doc = self._call("GET", k.path(namespace), Op("list", k.plural, namespace), query=query)
        return list(doc.get("items") or []), str(
            (doc.get("metadata") or {}).get("resourceVersion") or ""
        )

    def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Items:
        return self.list_with_version(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )[0]

    def delete(
        self, kind: str, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> None:
        """Delete (the object's dependents go too: `propagation` Background or Foreground)."""
        k = kind_of(kind)
        self._call(
            "DELETE",
            k.path(namespace, name),
            Op("delete", k.plural, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )

    def create(self, obj: Mapping[str, Any], *, dry_run_first: bool = True) -> Obj:
        """Create `obj` (a manifest dict): server-side dry-run first (webhooks run, nothing is
        stored), then the real create. A lost answer or a 5xx is retried; a 409 for an object
        carrying this call's `launch/request-id` annotation is our earlier attempt: success."""
        k, namespace, name = self._where(obj)
        doc = copy.deepcopy(dict(obj))
        meta = doc.setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        request_id = annotations.setdefault(REQUEST_ID_ANNOTATION, uuid.uuid4().hex)
        op = Op("create", k.plural, namespace, name)
        path = k.path(namespace)
        if dry_run_first:
            self._call("POST", path, op, query={"dryRun": "All"}, body=doc)
        try:
            # Without a name (generateName) a repeated create could make a second object.
            return self._call("POST", path, op, body=doc, safe=name is not None)
        except AlreadyExistsError:
            existing = self.find(doc["kind"], namespace, name) if name else None
            if existing is not None and annotation(existing, REQUEST_ID_ANNOTATION) == request_id:
                return existing
            raise

    def dry_run_create(self, obj: Mapping[str, Any]) -> Obj:
        """Only the server-side dry-run: admission webhooks judge `obj`, nothing is stored."""
        k, namespace, name = self._where(obj)
        return self._call(
            "POST",
            k.path(namespace),
            Op("create", k.plural, namespace, name),
            query={"dryRun": "All"},
            body=dict(obj),
        )

    def _where(self, obj: Mapping[str, Any]) -> tuple[Kind, str | None, str | None]:
        k = kind_of(str(obj.get("kind")))
        if obj.get("apiVersion") != k.api_version:
            raise ValueError(f"{obj.get('kind')} must have apiVersion {k.api_version}")
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or (self.namespace if k.namespaced else None)
        return k, namespace, meta.get("name")

    # ----------------------------------------------------------------- cluster facts

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The namespace's labels (e.g. Katib's metrics-collector-injection=enabled)."""
        doc = self.get("Namespace", None, namespace)
        return dict((doc.get("metadata") or {}).get("labels") or {})

    def katib_installed(self) -> bool:
        """Whether the API server serves Katib's Experiments (one discovery request, which every
        authenticated user may read, unlike CRDs)."""
        return self._serves("Experiment")

    def kueue_installed(self) -> bool:
        return self._serves("Workload")

    def _serves(self, kind: str) -> bool:
        k = kind_of(kind)
        path = f"/apis/{k.group}/{k.version}"
        try:
            doc = self._call("GET", path, Op("discover", path))
        except NotFoundError:
            return False
        return any(r.get("name") == k.plural for r in doc.get("resources") or [])

    # ----------------------------------------------------------------- watch

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
    ) -> Iterator[WatchEvent]:
        """Events for `kind` (one object with `name`), until `timeout_s` (None: forever).

        Without `resource_version` it first lists and yields ADDED for every current object.
        A dropped stream resumes from the last resourceVersion seen; 410 Gone (history compacted)
        relists and yields what changed meanwhile (DELETED for what vanished). Each watch request
        lasts at most `window_s` (server-side timeoutSeconds), so one request serves minutes.
        """
        k = kind_of(kind)
        if name:
            field_selector = ",".join(filter(None, (f"metadata.name={name}", field_selector)))
        op = Op("watch", k.plural, namespace, name)
        deadline = None if timeout_s is None else self.now() + timeout_s
        known: dict[str, Obj] = {}

        def key(obj: Obj) -> str:
            meta = obj.get("metadata") or {}
            return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

        def relist() -> Iterator[WatchEvent | str]:
            items, rv = self.list_with_version(
                kind, namespace, label_selector=label_selector, field_selector=field_selector
            )
            seen = set()
            for item in items:
                item_key = key(item)
                seen.add(item_key)
                old = known.get(item_key)
                if old is None or _rv(old) != _rv(item):
                    known[item_key] = item
                    yield WatchEvent("ADDED" if old is None else "MODIFIED", item)
            for gone in [k_ for k_ in known if k_ not in seen]:
                yield WatchEvent("DELETED", known.pop(gone))
            yield rv

        rv = resource_version
        if rv is None:
            for item in relist():
                if isinstance(item, str):
                    rv = item
                else:
                    yield item
        failures = 0
        while True:
            left = None if deadline is None else deadline - self.now()
            if (left is not None and left <= 0) or (stop is not None and stop.is_set()):
                return
            window = window_s if left is None else min(window_s, left)
            query: dict[str, str | int] = {
                "watch": "true",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": max(1, math.ceil(window)),
            }
            if rv:
                query["resourceVersion"] = rv
            if label_selector:
                query["labelSelector"] = label_selector
            if field_selector:
                query["fieldSelector"] = field_selector
            gone = False
            try:
                raw = self._send(
                    "GET",
                    k.path(namespace),
                    op,
                    query=query,
                    stream=True,
                    read_timeout_s=window + self.request_timeout_s,
                )
                if raw.status == 410:
                    _finish(raw)
                    gone = True
                elif raw.status >= 400:
                    data = raw.data
                    error = translate(raw.status, data, op)
                    if raw.status in _RETRY_STATUSES:
                        raise _Transient(error)
                    raise error
                else:
                    try:
                        for event in _lines(raw, self.host, op):
                            type_, obj = event.get("type"), event.get("object") or {}
                            if type_ == "ERROR":
                                if obj.get("code") == 410:
                                    gone = True
                                    break
                                raise translate(int(obj.get("code") or 500), json.dumps(obj), op)
                            rv = _rv(obj) or rv
                            failures = 0
                            if type_ == "BOOKMARK":
                                continue
                            if type_ == "DELETED":
                                known.pop(key(obj), None)
                            else:
                                known[key(obj)] = obj
                            yield WatchEvent(str(type_), obj)
                    finally:
                        _finish(raw)
            except _Transient as transient:
                failures += 1
                if failures > max_failures:
                    raise transient.error from None
                self.sleep(min(self.backoff_s * 2 ** (failures - 1), 10.0))
                continue
            if gone:
                rv = None
                for item in relist():
                    if isinstance(item, str):
                        rv = item
                    else:
                        yield item

    # ----------------------------------------------------------------- logs

    def pod_logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        tail_lines: int | None = None,
    ) -> str:
        """The pod's log (the last `tail_lines` lines)."""
        raw = self._log_request(namespace, pod, container, tail_lines, follow=False)
        return bytes(raw.data).decode("utf-8", "replace")

    def stream_pod_logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        tail_lines: int | None = None,
    ) -> Iterator[str]:
        """Log lines (without newline) as the container writes them, until it ends."""
        op = Op("follow the log of", "pod", namespace, pod)
        raw = self._log_request(namespace, pod, container, tail_lines, follow=True)
        import urllib3

        pending = b""
        try:
            for chunk in raw.stream(8192, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
        except (urllib3.exceptions.HTTPError, OSError) as err:
            failure = _connection_error(err, self.host, op)
            raise (failure.error if isinstance(failure, _Transient) else failure) from None
        finally:
            _finish(raw)
        if pending:
            yield pending.decode("utf-8", "replace")

    def _log_request(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        tail_lines: int | None,
        *,
        follow: bool,
    ) -> Any:
        op = Op("read the log of", "pod", namespace, pod)
        query: dict[str, str | int] = {}
        if container:
            query["container"] = container
        if tail_lines is not None:
            query["tailLines"] = tail_lines
        if follow:
            query["follow"] = "true"
        path = KINDS["Pod"].path(namespace, pod) + "/log"
        try:
            raw = self._send(
                "GET",
                path,
                op,
                query=query,
                headers={"Accept": "*/*"},
                stream=follow,
                read_timeout_s=None if not follow else 3600.0,
            )
        except _Transient as transient:
            raise transient.error from None
        if raw.status >= 400:
            raise translate(raw.status, raw.data, op)
        return raw

    # ----------------------------------------------------------------- service proxy

    def service_proxy(self, namespace: str, service: str, port: int | str) -> ServiceProxy:
        """HTTP to `service:port` through the API server's service proxy, with this client's
        credentials (so a kubeconfig is all a user needs to reach the in-cluster registry)."""
        return ServiceProxy(self, namespace, service, str(port))

    def service_proxy_url(
        self, namespace: str, service: str, port: int | str, path: str = "/"
    ) -> str:
        return self.host + _proxy_path(namespace, service, str(port), path)


def _proxy_path(namespace: str, service: str, port: str, path: str) -> str:
    target = quote(f"{service}:{port}", safe=":")
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/services/{target}/proxy/" + path.lstrip(
        "/"
    )


class ServiceProxy:
    """`request(method, path, headers, body=None) -> (status, headers, body)` to one Service, via
    the API server. Upstream answers (a registry's 404 included) come back as they are; the API
    server's own refusals (RBAC, no endpoints) raise ClusterError. A `body` is sent as raw bytes
    (`Content-Type` application/octet-stream unless `headers` name one)."""

    def __init__(self, cluster: Cluster, namespace: str, service: str, port: str) -> None:
        self._cluster = cluster
        self.namespace, self.service, self.port = namespace, service, port
        self.base_url = cluster.service_proxy_url(namespace, service, port, "/")

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        op = Op(f"{method} {path} through the proxy of", "service", self.namespace, self.service)
        full = _proxy_path(self.namespace, self.service, self.port, path)
        query: dict[str, str] = {}
        if "?" in full:
            full, _, qs = full.partition("?")
            query = dict(parse_qsl(qs, keep_blank_values=True))
        if body is not None and not any(k.lower() == "content-type" for k in headers or {}):
            headers = {**(headers or {}), "Content-Type": "application/octet-stream"}
        raw = self._send(method, full, op, query, headers, body)
        data = bytes(raw.data or b"")
        from_upstream = any(k.lower() == "docker-distribution-api-version" for k in raw.headers)
        if raw.status >= 400 and method == "HEAD" and not from_upstream:
            # A HEAD answer has no body to tell the API server's refusal (RBAC, no such Service)
            # from the upstream's own 404: ask again with GET, only on this error path.
            again = self._send("GET", full, op, query, headers)
            if _is_api_status(bytes(again.data or b"")):
                raise translate(again.status, again.data, op)
        elif raw.status >= 400 and _is_api_status(data):
            raise translate(raw.status, data, op)
        return raw.status, {k.lower(): v for k, v in raw.headers.items()}, data

    def _send(
        self,
        method: str,
        path: str,
        op: Op,
        query: Mapping[str, str],
        headers: Any,
        body: bytes | None = None,
    ) -> Any:
        try:
            return self._cluster._send(
                method, path, op, query=query, body=body, headers=dict(headers or {})
            )
        except _Transient as transient:
            raise transient.error from None


def _event_order(event: Obj) -> tuple[str, int]:
    """Timestamps have one-second resolution; the resourceVersion orders events within one."""
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    rv = _rv(event)
    return str(stamp or ""), int(rv) if rv.isdigit() else 0


def _is_api_status(body: bytes) -> bool:
    """The API server's own error (a metav1.Status), not the upstream service's answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1"


def _finish(raw: Any) -> None:
    """Close a stream that may be unread (its connection must not serve another request)."""
    raw.close()
    raw.release_conn()


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _lines(raw: Any, host: str, op: Op) -> Iterator[Obj]:
    """Newline-delimited JSON from a watch stream; a broken stream raises _Transient."""
    import urllib3

    pending = b""
    try:
        for chunk in raw.stream(65536, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        failure = _connection_error(err, host, op)
        raise (failure if isinstance(failure, _Transient) else _Transient(failure)) from None
    if pending.strip():
        yield json.loads(pending)
