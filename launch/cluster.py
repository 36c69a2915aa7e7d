"""The Kubernetes API through the `kubernetes` client: kubeconfig loading, create (server-side
dry-run first), get, list, watch, logs, delete, service proxy.

The only module importing `kubernetes` (lazily, in `Cluster.connect` and `read_kubeconfig`, so
importing this module stays cheap). Objects are plain dicts; every API or connection error
becomes a `ClusterError` carrying the server's words and a hint (`launch.kube_api`); requests go
through `launch.kube_http.ApiSession`. Retry loops take injected `sleep`/`now`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from launch.kube_api import (
    KATIB_INSTALL,
    KINDS,
    REQUEST_ID_ANNOTATION,
    AlreadyExistsError,
    ClusterError,
    Kind,
    NotFoundError,
    Obj,
    Op,
    WatchEvent,
    annotation,
    kind_of,
    rv_of,
    translate,
)
from launch.kube_http import (
    RETRY_STATUSES,
    ApiSession,
    ServiceProxy,
    Transient,
    connection_error,
    finish,
    json_lines,
)

# Names other modules and tests import from here (they live in kube_api / kube_http).
__all__ = [
    "KATIB_INSTALL",
    "REQUEST_ID_ANNOTATION",
    "AlreadyExistsError",
    "Cluster",
    "ClusterError",
    "Kubeconfig",
    "NotFoundError",
    "ServiceProxy",
    "WatchEvent",
    "read_kubeconfig",
]

Items = list[Obj]  # (a method named `list` shadows the builtin inside Cluster)
Names = list[str]  # (likewise)


# --------------------------------------------------------------------------- kubeconfig


@dataclass(frozen=True)
class Kubeconfig:
    """A kubeconfig (list) as the client's loader merges it: the files read (those that exist, in
    order), every context's name and namespace, and the current context as kubectl picks it (the
    first file that sets `current-context` wins; the client alone would take the last)."""

    files: tuple[str, ...] = ()
    contexts: tuple[str, ...] = ()
    current: str | None = None
    namespaces: Mapping[str, str] = field(default_factory=dict)


def read_kubeconfig(kubeconfig: str | None = None) -> Kubeconfig:
    """Load `kubeconfig` (a path or an `os.pathsep`-separated list; None: $KUBECONFIG, else
    ~/.kube/config) with the `kubernetes` client's loader, without connecting. Missing files are
    skipped (no file at all: an empty Kubeconfig); an unreadable, garbled or non-mapping file
    raises ClusterError naming that file."""
    from kubernetes.config import kube_config

    loader: Any = kube_config  # untyped
    spec = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    paths = [os.path.expanduser(p) for p in spec.split(os.pathsep) if p]
    # The client's merger, fed one file at a time (as its constructor would) to name a bad one.
    merger = loader.KubeConfigMerger("")
    for path in dict.fromkeys(p for p in paths if os.path.exists(p)):
        try:
            merger.paths.append(path)
            merger.load_config(path)
        except KeyError as err:
            raise ClusterError(
                f"cannot read the kubeconfig {path}: an entry has no {err}",
                hint="fix or replace the file (`kubectl config view` shows what kubectl reads)",
            ) from None
        except (TypeError, AttributeError):
            raise ClusterError(
                f"{path} is not a kubeconfig (not a YAML mapping)",
                hint="replace it with the kubeconfig your cluster admin gave you",
            ) from None
        except Exception as err:  # yaml, OS, decoding and the loader's own ConfigException
            raise ClusterError(
                f"cannot read the kubeconfig {path}: {err}",
                hint="fix or replace the file (`kubectl config view` shows what kubectl reads)",
            ) from None
    merged = merger.config
    if merged is None:
        return Kubeconfig()
    names: list[str] = []
    namespaces: dict[str, str] = {}
    for node in merged.value.get("contexts") or []:
        entry = node.value  # the merger wraps each entry in a ConfigNode
        name = str(entry.get("name") or "")
        if not name:
            continue
        names.append(name)
        context = entry.get("context")
        if isinstance(context, Mapping) and context.get("namespace"):
            namespaces[name] = str(context["namespace"])
    current = next(
        (
            str(doc["current-context"])
            for path in merger.paths
            if isinstance(doc := merger.config_files.get(path), Mapping)
            and doc.get("current-context")
        ),
        None,
    )
    return Kubeconfig(tuple(merger.paths), tuple(names), current, namespaces)


# --------------------------------------------------------------------------- the service


class Cluster(ApiSession):
    """A connection to one API server. Build it with `Cluster.connect`."""

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
        (default: the current one, as kubectl picks it). The namespace is the context's. No
        request is made."""
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        config: Any = kube_config  # untyped functions

        namespace = "default"
        configuration = client.Configuration()
        try:
            # A `:`-separated list is merged like kubectl does, current context included
            # (`read_kubeconfig`). $KUBECONFIG is read now: the client's default is frozen when
            # it is imported.
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
                path = path or os.path.expanduser("~/.kube/config")
                found = read_kubeconfig(path)
                chosen = context or found.current
                config.load_kube_config(
                    config_file=path, context=chosen, client_configuration=configuration
                )
                namespace = found.namespaces.get(chosen or "", namespace)
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

    def trainer_installed(self) -> bool:
        """Kubeflow Trainer v2 serves TrainJobs (discovery: every user may read it)."""
        return self._serves("TrainJob")

    def _serves(self, kind: str) -> bool:
        k = kind_of(kind)
        path = f"/apis/{k.group}/{k.version}"
        try:
            doc = self._call("GET", path, Op("discover", path))
        except NotFoundError:
            return False
        return any(r.get("name") == k.plural for r in doc.get("resources") or [])

    def server_version(self) -> str:
        """The server's `gitVersion` (e.g. v1.33.1) from `/version`, which needs no credentials."""
        doc = self._call("GET", "/version", Op("get", "the server version"))
        return str(doc.get("gitVersion") or "?")

    def api_versions(self) -> Names:
        """The core API's versions (`/api`): the cheapest request that needs accepted
        credentials (401 otherwise)."""
        doc = self._call("GET", "/api", Op("discover", "the core API"))
        return [str(v) for v in doc.get("versions") or []]

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
                if old is None or rv_of(old) != rv_of(item):
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
                    finish(raw)
                    gone = True
                elif raw.status >= 400:
                    data = raw.data
                    error = translate(raw.status, data, op)
                    if raw.status in RETRY_STATUSES:
                        raise Transient(error)
                    raise error
                else:
                    try:
                        for event in json_lines(raw, self.host, op):
                            type_, obj = event.get("type"), event.get("object") or {}
                            if type_ == "ERROR":
                                if obj.get("code") == 410:
                                    gone = True
                                    break
                                raise translate(int(obj.get("code") or 500), json.dumps(obj), op)
                            rv = rv_of(obj) or rv
                            failures = 0
                            if type_ == "BOOKMARK":
                                continue
                            if type_ == "DELETED":
                                known.pop(key(obj), None)
                            else:
                                known[key(obj)] = obj
                            yield WatchEvent(str(type_), obj)
                    finally:
                        finish(raw)
            except Transient as transient:
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
            failure = connection_error(err, self.host, op)
            raise (failure.error if isinstance(failure, Transient) else failure) from None
        finally:
            finish(raw)
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
        except Transient as transient:
            raise transient.error from None
        if raw.status >= 400:
            raise translate(raw.status, raw.data, op)
        return raw
