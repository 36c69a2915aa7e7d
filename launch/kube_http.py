"""HTTP to one API server through the `kubernetes` client's `ApiClient` (its auth, TLS and
connection pool), without importing `kubernetes`: `ApiSession` sends one request and turns
connection failures and error answers into `ClusterError`s, retrying (with backoff) only where
repeating is safe; `ServiceProxy` reaches a Service through the API server. urllib3 (the client's
own transport) is imported lazily. `launch.cluster.Cluster` builds on `ApiSession`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import parse_qsl

from launch.kube_api import ClusterError, Obj, Op, cut, is_api_status, proxy_path, translate

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Transient(Exception):
    """A failure worth retrying when the request is safe to repeat."""

    def __init__(self, error: ClusterError) -> None:
        super().__init__(error.message)
        self.error = error


def connection_error(err: BaseException, host: str, op: Op) -> ClusterError | Transient:
    """urllib3/socket errors: unreachable (give up at once) or broken mid-request (retryable)."""
    import urllib3.exceptions as u3

    inner: BaseException = err
    if isinstance(err, u3.MaxRetryError) and err.reason is not None:
        inner = err.reason
    text = cut(str(inner), 300)
    if isinstance(inner, u3.NewConnectionError | u3.ConnectTimeoutError | ConnectionRefusedError):
        return ClusterError(
            f"cannot reach the Kubernetes API server at {host} to {op.describe()}: {text}",
            hint="check the kubeconfig context (`launch config` shows it; "
            "`kubectl cluster-info` tests it) and your network/VPN",
        )
    return Transient(
        ClusterError(
            f"lost the connection to the API server at {host} during {op.describe()}: {text}",
            hint="retry; a flaky network or an overloaded API server causes this",
        )
    )


class ApiSession:
    """Requests to one API server over a `kubernetes.client.ApiClient` (`api_client`)."""

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

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Self:
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

        Raises ClusterError for an unreachable server and Transient for a broken connection.
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
            if isinstance(body, bytes):
                # Bytes go as they are: the client would JSON-encode a body whose Content-Type
                # ends in +json (a registry manifest, through the service proxy).
                raw = self._api.rest_client.pool_manager.request(
                    method, url, body=body, headers=header_params, preload_content=False,
                    timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                )  # fmt: skip
            else:
                raw = self._api.call_api(
                    method, url, header_params, body, _request_timeout=timeout
                ).response
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise connection_error(err, self.host, op) from None
        if not stream:
            try:
                raw.data  # noqa: B018 - read the whole body now, so a broken one is seen here
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise connection_error(err, self.host, op) from None
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
                    if raw.status in RETRY_STATUSES:
                        raise Transient(error)
                    raise error
                result: Obj = json.loads(raw.data or b"{}")
                return result
            except Transient as transient:
                attempt += 1
                if not safe or attempt > self.retries:
                    raise transient.error from None
                self.sleep(self.backoff_s * 2 ** (attempt - 1))

    # ----------------------------------------------------------------- service proxy

    def service_proxy(self, namespace: str, service: str, port: int | str) -> ServiceProxy:
        """HTTP to `service:port` through the API server's service proxy, with this client's
        credentials (so a kubeconfig is all a user needs to reach the in-cluster registry)."""
        return ServiceProxy(self, namespace, service, str(port))

    def service_proxy_url(
        self, namespace: str, service: str, port: int | str, path: str = "/"
    ) -> str:
        return self.host + proxy_path(namespace, service, str(port), path)


class ServiceProxy:
    """`request(method, path, headers, body=None) -> (status, headers, body)` to one Service, via
    the API server. Upstream answers (a registry's 404 included) come back as they are; the API
    server's own refusals (RBAC, no endpoints) raise ClusterError. A `body` is sent as raw bytes
    (`Content-Type` application/octet-stream unless `headers` name one)."""

    def __init__(self, cluster: ApiSession, namespace: str, service: str, port: str) -> None:
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
        full = proxy_path(self.namespace, self.service, self.port, path)
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
            if is_api_status(bytes(again.data or b"")):
                raise translate(again.status, again.data, op)
        elif raw.status >= 400 and is_api_status(data):
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
        except Transient as transient:
            raise transient.error from None


def finish(raw: Any) -> None:
    """Close a stream that may be unread (its connection must not serve another request)."""
    raw.close()
    raw.release_conn()


def json_lines(raw: Any, host: str, op: Op) -> Iterator[Obj]:
    """Newline-delimited JSON from a watch stream; a broken stream raises Transient."""
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
        failure = connection_error(err, host, op)
        raise (failure if isinstance(failure, Transient) else Transient(failure)) from None
    if pending.strip():
        yield json.loads(pending)
