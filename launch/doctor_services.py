"""`launch doctor`'s checks of the services trials and builds use: the registry (push and pull
names, a manifest HEAD through `registry_url` or the API server's service proxy) and MLflow (a real
API path for the tracking URI's host name; `/health` skips MLflow's Host-header check). HTTP goes
through `launch.registry` and `requests`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from launch import cluster as kube
from launch import registry
from launch.doctor_checks import Check, State, cluster_internal
from launch.errors import LaunchError
from launch.settings import Settings

PROBE_REPOSITORY = "launch-doctor/probe"  # a manifest HEAD for it proves a registry answers
_MLFLOW_PROBE = "/api/2.0/mlflow/experiments/search"
_INVALID_HOST = "Invalid Host header"


# --------------------------------------------------------------------------- 5. registry


def _split_name(name: str) -> tuple[str, str]:
    """`host[:port][/path]` -> (host[:port], path)."""
    host, _, path = name.strip().removeprefix("http://").removeprefix("https://").partition("/")
    return host, path.strip("/")


def registry_service(push_host: str) -> tuple[str, str, int] | None:
    """(service, namespace, port) of `<svc>.<ns>.svc[.cluster.local]:<port>`, else None."""
    host, _, port = push_host.rpartition(":")
    parts = host.split(".")
    if not port.isdigit() or len(parts) < 3 or parts[2] != "svc":
        return None
    return parts[0], parts[1], int(port)


def check_registry(settings: Settings, state: State, timeout_s: float) -> Check:
    push, pull = str(settings.registry), str(settings.registry_pull)
    push_host, push_path = _split_name(push)
    pull_host, pull_path = _split_name(pull)
    problems: list[str] = []
    fixes: list[str] = []
    if push_path != pull_path:
        problems.append(
            f"push name `{push}` and pull name `{pull}` name different repositories "
            f"(`/{push_path}` vs `/{pull_path}`): images pushed as {push}/<repo> would be "
            f"pulled as {pull}/<repo>"
        )
        fixes.append(
            f"set registry_pull = {pull_host}{'/' + push_path if push_path else ''} "
            "(LAUNCH_REGISTRY_PULL)"
        )
    if cluster_internal(pull_host):
        problems.append(
            f"pull name `{pull_host}` is a cluster-internal name: containerd on the nodes cannot "
            "resolve it"
        )
        fixes.append(
            "set registry_pull to the registry's NodePort address, e.g. 127.0.0.1:30500 "
            "(LAUNCH_REGISTRY_PULL=127.0.0.1:30500), with the nodes' registry mirror for it "
            "(deploy/talos/patches/registry-mirror.yaml)"
        )
    elif ":" not in pull_host and pull_host != push_host:
        problems.append(
            f"pull name `{pull_host}` has no port: nodes would pull over HTTPS on 443, while "
            "the in-cluster registry's NodePort is 30500"
        )
        fixes.append("set registry_pull = 127.0.0.1:30500 (LAUNCH_REGISTRY_PULL)")
    names = f"push {push}, pull {pull}" + (
        f" (nodes must map {pull_host} to the registry: a registry mirror for `{pull_host}`, "
        "deploy/talos/patches/registry-mirror.yaml; not checkable from here)"
        if pull_host != push_host
        else ""
    )

    url = settings.registry_url
    transport: registry.Transport
    if url:
        transport = registry.HttpTransport(str(url), timeout_s=timeout_s)
        where = f"registry_url {transport.base_url}"
        down_fix = (
            "check that the registry runs and that registry_url is right (LAUNCH_REGISTRY_URL; "
            "unset it to go through the API server's service proxy)"
        )
    else:
        service = registry_service(push_host)
        if service is None:
            scheme = "http" if settings.registry_insecure else "https"
            transport = registry.HttpTransport(f"{scheme}://{push_host}", timeout_s=timeout_s)
            where = transport.base_url
            down_fix = "set registry_url to an address of the registry this machine can reach"
        elif not state.api_ok or state.cluster is None:
            if problems:
                return Check(
                    "registry",
                    False,
                    "; ".join(problems) + f"; registry not asked ({state.skip_reason})",
                    "; ".join(fixes),
                )
            return Check("registry", None, state.skip_reason)
        else:
            svc, ns, port = service
            transport = state.cluster.service_proxy(ns, svc, port)
            where = f"the API server's proxy to service {ns}/{svc}:{port}"
            down_fix = (
                f"kubectl -n {ns} get svc,endpoints,pods (the Service `{svc}` and a ready pod "
                f"behind it; deploy: kubectl apply -k deploy/registry), or set registry_url to a "
                "direct address (LAUNCH_REGISTRY_URL)"
            )
    try:
        # The request a launch makes first (the image-reuse check): a HEAD of a manifest. A
        # Distribution registry answers 404 with its API header; anything else raises.
        registry.manifest_digest(repository=PROBE_REPOSITORY, tag="doctor", transport=transport)
    except LaunchError as err:
        problems.append(f"the registry did not answer through {where}: {err.message}")
        rbac = isinstance(err, kube.ClusterError) and err.status == 403
        fixes.append(err.hint if rbac and err.hint else down_fix)
    if problems:
        return Check("registry", False, "; ".join(problems), "; ".join(fixes))
    return Check("registry", True, f"a manifest HEAD answers through {where}; {names}")


# --------------------------------------------------------------------------- 7. mlflow


def check_mlflow(settings: Settings, timeout_s: float) -> Check:
    uri = settings.mlflow_tracking_uri
    if not uri:
        return Check(
            "mlflow",
            None,
            "skipped: mlflow_tracking_uri is not set (trials get no MLflow server)",
        )
    parts = urlsplit(str(uri))
    if parts.scheme not in ("http", "https"):
        if parts.scheme in ("", "file", "sqlite"):
            return Check(
                "mlflow",
                False,
                f"mlflow_tracking_uri `{uri}` is a local store: trial pods cannot reach it",
                "set mlflow_tracking_uri to the in-cluster server, e.g. "
                "LAUNCH_MLFLOW_TRACKING_URI=http://mlflow.launch-system.svc.cluster.local:5000",
            )
        return Check("mlflow", None, f"skipped: `{parts.scheme}:` tracking URIs are not checked")
    host_header = parts.netloc.rpartition("@")[2]
    hostname = parts.hostname or host_header
    base = f"{parts.scheme}://{host_header}{parts.path.rstrip('/')}"
    ui_url = settings.mlflow_url

    probes: list[tuple[str, str, str | None]] = []  # (what, base URL, Host header)
    if cluster_internal(host_header) and ui_url:
        # This machine cannot resolve the in-cluster name: ask the server at mlflow_url,
        # sending the Host header trials will send.
        probes.append(
            (f"{uri} (via mlflow_url {ui_url}, Host: {host_header})", ui_url, host_header)
        )
    else:
        probes.append((str(uri), base, None))
    if ui_url and str(ui_url).rstrip("/") != base:
        probes.append((f"mlflow_url {ui_url}", str(ui_url), None))

    server = _mlflow_server_ref(hostname)
    for what, url, host in probes:
        asked_host = host or urlsplit(url).netloc.rpartition("@")[2]
        try:
            status, body = _http_get(
                url.rstrip("/") + _MLFLOW_PROBE,
                params={"max_results": "1"},
                headers={"Host": host} if host else {},
                timeout=timeout_s,
            )
        except OSError as err:
            unresolvable = cluster_internal(urlsplit(url).netloc)
            timed_out = str(err) == "timed out"
            return Check(
                "mlflow",
                False,
                f"MLflow at {what} did not answer within {timeout_s:g} s"
                if timed_out
                else f"cannot reach MLflow at {what}: {err}",
                (
                    f"this machine cannot resolve `{urlsplit(url).hostname}`: "
                    "kubectl -n launch-system port-forward svc/mlflow 5000:5000, then "
                    "LAUNCH_MLFLOW_URL=http://localhost:5000 (`mlflow_url`, used for links too)"
                    if unresolvable
                    else f"check the server ({server['check']}) and mlflow_tracking_uri / "
                    "mlflow_url (`launch config`)"
                ),
            )
        if status == 403 and _INVALID_HOST in body:
            name = asked_host.rsplit(":", 1)[0] if asked_host.count(":") == 1 else asked_host
            return Check(
                "mlflow",
                False,
                f"MLflow at {what} answered 403 Invalid Host header: MLflow >= 3.5 refuses "
                f"host names missing from its --allowed-hosts, and `{asked_host}` is missing",
                f"add `{name}` and `{name}:*` to the server's --allowed-hosts "
                f"({server['edit']}; the flag replaces the defaults, so keep localhost and "
                "127.0.0.1 in it)",
            )
        if status != 200:
            return Check(
                "mlflow",
                False,
                f"MLflow at {what}: GET {_MLFLOW_PROBE} answered {status}: {body[:200].strip()}",
                "is this an MLflow server (and the URI without a path prefix)? Check "
                "mlflow_tracking_uri / mlflow_url (`launch config`)"
                if status == 404
                else f"check the server: {server['check']}",
            )
    return Check(
        "mlflow",
        True,
        "the MLflow API answers for " + " and ".join(what for what, _, _ in probes),
    )


def _mlflow_server_ref(hostname: str) -> dict[str, str]:
    """How to look at / edit the server behind an in-cluster name (deploy/mlflow otherwise)."""
    parts = hostname.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        svc, ns = parts[0], parts[1]
    else:
        svc, ns = "mlflow", "launch-system"
    return {
        "check": f"kubectl -n {ns} get pods,svc,endpoints {svc}; kubectl -n {ns} logs "
        f"deployment/{svc}",
        "edit": f"deploy/mlflow/deployment.yaml, then kubectl apply -k deploy/mlflow; or "
        f"kubectl -n {ns} edit deployment {svc}",
    }


def _http_get(
    url: str, *, params: Mapping[str, str], headers: Mapping[str, str], timeout: float
) -> tuple[int, str]:
    """GET with requests; connection problems become OSError (requests' own subclass it)."""
    import requests

    try:
        response = requests.get(
            url, params=params, headers=dict(headers), timeout=timeout, allow_redirects=False
        )
    except requests.exceptions.RequestException as err:
        raise OSError(_short_reason(err)) from None
    return response.status_code, response.text


def _short_reason(err: Exception) -> str:
    text = str(err)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Temporary failure in name resolution",
        "No address associated with hostname",
        "No route to host",
        "timed out",
    ):
        if marker in text:
            return marker.lower()
    return text[:200]
