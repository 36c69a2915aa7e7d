"""`launch doctor`: check, in order, what a cluster run needs, and say what to fix.

Checks (each a `Check`; `ok` is None when skipped):

1. kubeconfig  - which file(s), which context, and that the context exists
2. api         - the API server answers (`/version`) and accepts the credentials (`/api`)
3. katib       - Katib's API is served and its webhook admits a tiny valid Experiment
                 (server-side dry-run create: nothing is stored)
4. namespace   - the namespace exists and carries Katib's metrics-collector label
5. registry    - push and pull names agree and nodes can resolve the pull name; a manifest
                 HEAD (launch's image-reuse request) gets a registry's answer through
                 `registry_url` or the API server's service proxy
6. builds      - the build ServiceAccount exists; the git Secret exists (when readable: users
                 normally may not read Secrets, and then doctor says it did not check)
7. mlflow      - a real MLflow API path answers for the tracking URI's host name (`/health`
                 skips MLflow's Host-header check, so it proves nothing)
8. queue       - the Kueue LocalQueue named by the `queue` setting exists and is active

A failed early check skips the checks that depend on it. Nothing is created on the cluster:
the only write is a dry-run. Every request has a short timeout, so doctor ends in seconds
even when everything is down. I/O goes through `cluster` (Kubernetes), `registry` and
`requests` (MLflow); this module never imports `kubernetes`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from launch import cluster as kube
from launch import katib, registry
from launch.errors import LaunchError

__all__ = ["Check", "no_cluster", "passed", "render", "run_checks", "to_json"]

DEFAULT_TIMEOUT_S = 3.0
KATIB_NAMESPACE = "kubeflow"

PROBE_REPOSITORY = "launch-doctor/probe"  # a manifest HEAD for it proves a registry answers
_MLFLOW_PROBE = "/api/2.0/mlflow/experiments/search"
_INVALID_HOST = "Invalid Host header"
_TINY_SPEC = """\
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random}
parameters:
  - name: lr
    parameterType: double
    feasibleSpace: {min: 0.001, max: 0.1}
maxTrialCount: 1
parallelTrialCount: 1
maxFailedTrialCount: 1
"""


@dataclass(frozen=True)
class Check:
    """One line of the report. `ok`: True passed, False failed, None skipped."""

    name: str
    ok: bool | None
    detail: str
    fix: str | None = None

    @property
    def status(self) -> str:
        return {True: "pass", False: "fail", None: "skip"}[self.ok]


def passed(checks: list[Check]) -> bool:
    """Exit 0 only when this is True: no check failed (skipped-as-not-configured is fine; a
    check skipped because another failed comes with that failure)."""
    return not any(c.ok is False for c in checks)


NO_CLUSTER_NOTE = (
    "No cluster is configured, and local sweeps need none: `launch --backend local search.yaml "
    "-- python train.py` runs the trials on this machine. What a cluster run needs, in order:"
)


def no_cluster(checks: list[Check]) -> bool:
    """True when no kubeconfig was found at all: the user may only want local sweeps."""
    return (
        bool(checks)
        and checks[0].name == "kubeconfig"
        and checks[0].ok is False
        and (checks[0].detail.startswith("no kubeconfig"))
    )


def render(checks: list[Check]) -> str:
    """One line per check, `fix:` under each failure, and a summary line. Without any
    kubeconfig, first a note that local sweeps need no cluster."""
    width = max((len(c.name) for c in checks), default=0)
    lines = [NO_CLUSTER_NOTE] if no_cluster(checks) else []
    for c in checks:
        lines.append(f"{c.status.upper():4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.ok is not True:
            lines.append(f"{'':4}  {'':<{width}}  fix: {c.fix}")
    failed = sum(c.ok is False for c in checks)
    skipped = sum(c.ok is None for c in checks)
    good = len(checks) - failed - skipped
    lines.append(
        f"{good} passed, {failed} failed, {skipped} skipped"
        + ("" if failed else " - ready for cluster runs")
    )
    return "\n".join(lines) + "\n"


def to_json(checks: list[Check]) -> dict[str, Any]:
    """`{"ok": bool, "checks": [{name, status, ok, detail, fix}, ...]}` for `--json`."""
    return {
        "ok": passed(checks),
        "noCluster": no_cluster(checks),
        "checks": [{"name": c.name, "status": c.status, **asdict(c)} for c in checks],
    }


# --------------------------------------------------------------------------- the run


@dataclass
class _State:
    """What earlier checks learned, for the later ones."""

    cluster: kube.Cluster | None = None
    api_ok: bool = False
    skip_reason: str = "skipped: no usable kubeconfig"
    namespace_labels: dict[str, str] | None = None
    namespace_error: kube.ClusterError | None = None


def run_checks(
    settings: Any,
    *,
    kubeconfig: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Check]:
    """Run every check in order (see the module docstring) and return them all.

    `settings` is a `launch.config.Settings` (read with `[key]`, `.get` and `.sources`);
    `kubeconfig` (a path, or a `:`-separated list) overrides $KUBECONFIG; `env` (for $KUBECONFIG,
    $HOME, $KUBERNETES_SERVICE_HOST) defaults to os.environ; `timeout_s` bounds every request
    (`DEFAULT_TIMEOUT_S`: a healthy server answers in well under a second; tests on a loaded
    machine pass more).
    No exception escapes for a broken cluster: each problem is a failed Check.
    """
    env = os.environ if env is None else env
    state = _State()
    namespace = str(settings["namespace"])
    checks: list[Check] = []
    try:
        checks.append(
            _guard("kubeconfig", lambda: _kubeconfig(settings, kubeconfig, env, state, timeout_s))
        )
        if state.cluster is None:
            checks.append(Check("api", None, state.skip_reason))
        else:
            checks.append(_guard("api", lambda: _api(state)))
        if state.api_ok:
            _read_namespace(state, namespace)
        checks.append(_guard("katib", lambda: _katib(state, namespace)))
        checks.append(_guard("namespace", lambda: _namespace(state, namespace)))
        checks.append(_guard("registry", lambda: _registry(settings, state, timeout_s)))
        checks.append(_guard("builds", lambda: _builds(settings, state, namespace)))
        checks.append(_guard("mlflow", lambda: _mlflow(settings, timeout_s)))
        checks.append(_guard("queue", lambda: _queue(settings, state, namespace)))
    finally:
        if state.cluster is not None:
            state.cluster.close()
    return checks


def _guard(name: str, check: Callable[[], Check]) -> Check:
    """A check that raised is a failed check (with the error's hint), never a crash."""
    try:
        return check()
    except LaunchError as err:
        return Check(name, False, err.message, err.hint)
    except Exception as err:  # a launch bug: still report the other checks
        return Check(
            name,
            False,
            f"unexpected {type(err).__name__}: {err}",
            "this is a launch bug: run `launch --debug doctor` and report it",
        )


# --------------------------------------------------------------------------- 1. kubeconfig


def _kubeconfig_paths(kubeconfig: str | None, env: Mapping[str, str]) -> tuple[list[Path], str]:
    """The files kubectl would read, and where that choice came from."""
    if kubeconfig:
        return [Path(p).expanduser() for p in kubeconfig.split(os.pathsep) if p], "--kubeconfig"
    if env.get("KUBECONFIG"):
        paths = [Path(p).expanduser() for p in env["KUBECONFIG"].split(os.pathsep) if p]
        return paths, "$KUBECONFIG"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return [home / ".kube" / "config"], "default"


def _read_contexts(paths: list[Path]) -> tuple[list[str], str | None]:
    """Context names and the current context, merged the way kubectl merges a KUBECONFIG list
    (the first file that sets current-context wins)."""
    import yaml

    names: list[str] = []
    current: str | None = None
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise LaunchError(
                f"cannot read the kubeconfig {path}: {err}",
                hint="fix or replace the file (`kubectl config view` shows what kubectl reads)",
            ) from None
        if not isinstance(doc, dict):
            raise LaunchError(
                f"{path} is not a kubeconfig (not a YAML mapping)",
                hint="replace it with the kubeconfig your cluster admin gave you",
            )
        for entry in doc.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") and entry["name"] not in names:
                names.append(str(entry["name"]))
        if current is None and doc.get("current-context"):
            current = str(doc["current-context"])
    return names, current


def _kubeconfig(
    settings: Any,
    kubeconfig: str | None,
    env: Mapping[str, str],
    state: _State,
    timeout_s: float,
) -> Check:
    paths, origin = _kubeconfig_paths(kubeconfig, env)
    existing = [p for p in paths if p.is_file()]
    shown = os.pathsep.join(str(p) for p in paths)
    if not existing:
        if origin == "default" and env.get("KUBERNETES_SERVICE_HOST"):
            state.cluster = _connect(None, None, timeout_s)
            state.skip_reason = "skipped: API unreachable"
            return Check("kubeconfig", True, "no kubeconfig: using this pod's service account")
        return Check(
            "kubeconfig",
            False,
            f"no kubeconfig: {shown} does not exist"
            + (f" ({origin})" if origin != "default" else ""),
            "save your cluster's kubeconfig as ~/.kube/config or point KUBECONFIG at it "
            "(export KUBECONFIG=/path/to/kubeconfig); docs/cluster-setup.md says how to get one",
        )
    names, current = _read_contexts(existing)
    wanted = settings.get("context")
    source = settings.sources.get("context", "default")
    files = os.pathsep.join(str(p) for p in existing)
    choices = ", ".join(names) or "none"
    if not wanted:
        if current is None:
            return Check(
                "kubeconfig",
                False,
                f"{files}: no current context and the `context` setting is unset "
                f"(contexts: {choices})",
                "pick one: kubectl config use-context NAME, or LAUNCH_CONTEXT=NAME "
                "(`context` in ~/.config/launch/config.toml)",
            )
        wanted, why = current, "current context"
    else:
        why = f"`context` from {source}"
    if wanted not in names:
        return Check(
            "kubeconfig",
            False,
            f"context `{wanted}` ({why}) is not in {files} (contexts: {choices})",
            "set `context` to one of those (LAUNCH_CONTEXT=NAME or ~/.config/launch/config.toml; "
            "`launch config` shows where the value comes from), or add it to the kubeconfig",
        )
    state.cluster = _connect(wanted, files, timeout_s)
    state.skip_reason = "skipped: API unreachable"
    return Check(
        "kubeconfig",
        True,
        f"{files}, context `{wanted}` ({why}), server {state.cluster.host}",
    )


def _connect(context: str | None, files: str | None, timeout_s: float) -> kube.Cluster:
    connected = kube.Cluster.connect(
        context, kubeconfig=files, request_timeout_s=timeout_s, connect_timeout_s=timeout_s
    )
    connected.retries = 0  # doctor reports, it does not wait for a flaky server
    return connected


# --------------------------------------------------------------------------- 2. api


def _api(state: _State) -> Check:
    assert state.cluster is not None
    c = state.cluster
    # /version is public (no credentials needed); /api needs an authenticated user.
    version = c._call("GET", "/version", kube.Op("get", "the server version"))
    c._call("GET", "/api", kube.Op("discover", "the core API"))
    state.api_ok = True
    return Check(
        "api",
        True,
        f"{c.host} answers (Kubernetes {version.get('gitVersion', '?')}), credentials accepted",
    )


def _read_namespace(state: _State, namespace: str) -> None:
    assert state.cluster is not None
    try:
        state.namespace_labels = state.cluster.namespace_labels(namespace)
    except kube.ClusterError as err:
        state.namespace_error = err


def _namespace_missing(state: _State) -> bool:
    return isinstance(state.namespace_error, kube.NotFoundError)


# --------------------------------------------------------------------------- 3. katib


def _tiny_experiment(namespace: str, pull_host: str) -> dict[str, Any]:
    from launch import spec

    return katib.render_experiment(
        spec=spec.parse(_TINY_SPEC, filename="launch doctor"),
        name=f"launch-doctor-{secrets.token_hex(4)}",
        namespace=namespace,
        image=f"{pull_host}/launch-doctor@sha256:{'0' * 64}",
        command=["true"],
        gpus=0,
        commit="0" * 40,
        branch=None,
        user="launch-doctor",
        mlflow_tracking_uri=None,
    )


def _katib(state: _State, namespace: str) -> Check:
    if not state.api_ok or state.cluster is None:
        return Check("katib", None, state.skip_reason)
    c = state.cluster
    if not c.katib_installed():
        return Check(
            "katib",
            False,
            "Katib is not installed: the API server does not serve kubeflow.org/v1beta1 "
            "experiments",
            f"kubectl apply -k deploy/katib (Katib v0.19 and the namespace label; or: "
            f"{kube.KATIB_INSTALL})",
        )
    if _namespace_missing(state):
        return Check(
            "katib",
            None,
            f"Katib's API is served; webhook not tested: namespace `{namespace}` does not exist "
            "(see namespace)",
        )
    key, value = katib.NAMESPACE_LABEL
    try:
        c.dry_run_create(_tiny_experiment(namespace, "127.0.0.1:30500"))
    except kube.ClusterError as err:
        labelled = (state.namespace_labels or {}).get(key) == value
        if "admission webhook" in err.message and not labelled and key in err.message:
            return Check(
                "katib",
                True,
                "Katib's API is served and its webhook answers (it refused the test Experiment "
                "for the missing namespace label: see namespace)",
            )
        if "failed calling webhook" in err.message or "no endpoints" in err.message:
            return Check(
                "katib",
                False,
                f"Katib's webhook does not answer: {err.message}",
                f"kubectl -n {KATIB_NAMESPACE} get pods,endpoints; "
                f"kubectl -n {KATIB_NAMESPACE} rollout restart deployment/katib-controller",
            )
        if "admission webhook" in err.message:
            return Check(
                "katib",
                False,
                f"Katib's webhook refused a minimal valid Experiment: {err.message}",
                f"is it Katib v0.19 (kubectl -n {KATIB_NAMESPACE} get deploy katib-controller "
                f"-o jsonpath='{{..image}}')? Its log says more: "
                f"kubectl -n {KATIB_NAMESPACE} logs deployment/katib-controller",
            )
        return Check("katib", False, err.message, err.hint)
    return Check(
        "katib",
        True,
        f"Katib's API is served; its webhook admits a test Experiment in `{namespace}` "
        "(dry-run, nothing created)",
    )


# --------------------------------------------------------------------------- 4. namespace


def _namespace(state: _State, namespace: str) -> Check:
    if not state.api_ok:
        return Check("namespace", None, state.skip_reason)
    key, value = katib.NAMESPACE_LABEL
    label_cmd = f"kubectl label namespace {namespace} {key}={value}"
    if state.namespace_error is not None:
        err = state.namespace_error
        if _namespace_missing(state):
            return Check(
                "namespace",
                False,
                f"namespace `{namespace}` does not exist",
                f"kubectl create namespace {namespace} && {label_cmd}; or use another one: "
                "LAUNCH_NAMESPACE=NAME (`namespace` setting, `launch config`)",
            )
        return Check("namespace", False, err.message, err.hint)
    labels = state.namespace_labels or {}
    if labels.get(key) == value:
        return Check("namespace", True, f"namespace `{namespace}` has {key}={value}")
    has = f" (it is `{labels[key]}`)" if key in labels else ""
    return Check(
        "namespace",
        False,
        f"namespace `{namespace}` lacks the label {key}={value}{has}: Katib would not inject "
        "its metrics collector and every trial would end MetricsUnavailable",
        label_cmd + (" --overwrite" if key in labels else ""),
    )


# --------------------------------------------------------------------------- 5. registry


def _split_name(name: str) -> tuple[str, str]:
    """`host[:port][/path]` -> (host[:port], path)."""
    host, _, path = name.strip().removeprefix("http://").removeprefix("https://").partition("/")
    return host, path.strip("/")


def _cluster_internal(host: str) -> bool:
    """A name only cluster DNS resolves (nodes' containerd and laptops cannot)."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return hostname.endswith((".svc", ".svc.cluster.local", ".cluster.local")) or (
        "." not in hostname and ":" not in hostname and hostname != "localhost"
    )


def registry_service(push_host: str) -> tuple[str, str, int] | None:
    """(service, namespace, port) of `<svc>.<ns>.svc[.cluster.local]:<port>`, else None."""
    host, _, port = push_host.rpartition(":")
    parts = host.split(".")
    if not port.isdigit() or len(parts) < 3 or parts[2] != "svc":
        return None
    return parts[0], parts[1], int(port)


def _registry(settings: Any, state: _State, timeout_s: float) -> Check:
    push, pull = str(settings["registry"]), str(settings["registry_pull"])
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
    if _cluster_internal(pull_host):
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

    url = settings.get("registry_url")
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
            scheme = "http" if settings.get("registry_insecure") else "https"
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


# --------------------------------------------------------------------------- 6. builds


def _builds(settings: Any, state: _State, namespace: str) -> Check:
    if not state.api_ok or state.cluster is None:
        return Check("builds", None, state.skip_reason)
    if _namespace_missing(state):
        return Check("builds", None, f"skipped: namespace `{namespace}` does not exist")
    c = state.cluster
    account, secret = str(settings["build_service_account"]), str(settings["git_secret"])
    try:
        found = c.find("ServiceAccount", namespace, account)
    except kube.ClusterError as err:
        return Check(
            "builds",
            False,
            f"cannot check the build ServiceAccount `{account}`: {err.message}",
            err.hint,
        )
    if found is None:
        return Check(
            "builds",
            False,
            f"the build ServiceAccount `{account}` does not exist in namespace `{namespace}`: "
            "Kaniko build Jobs would not start",
            f"kubectl apply -k deploy/registry (it creates `{account}` in `{namespace}`), or set "
            "build_service_account to an existing one (LAUNCH_BUILD_SERVICE_ACCOUNT)",
        )
    detail = f"ServiceAccount `{account}` exists in `{namespace}`"
    try:
        # What a launch creates, refused or admitted without being created: RBAC on Jobs,
        # quotas and admission policies speak now, not after the user waited for a build.
        c.dry_run_create(_tiny_build_job(settings, namespace, account))
    except kube.ClusterError as err:
        return Check(
            "builds", False, f"{detail}; a build Job is refused (dry-run): {err.message}", err.hint
        )
    detail += "; a build Job is admitted (dry-run)"
    try:
        has_secret = c.find("Secret", namespace, secret) is not None
    except kube.ClusterError as err:
        if err.status != 403:
            return Check("builds", False, f"{detail}; Secret `{secret}`: {err.message}", err.hint)
        return Check(
            "builds",
            True,
            f"{detail}; git Secret `{secret}` not checked (users may not read Secrets; an admin "
            f"can: kubectl -n {namespace} get secret {secret})",
        )
    if not has_secret:
        return Check(
            "builds",
            False,
            f"{detail}; the git Secret `{secret}` does not exist in `{namespace}`: builds of "
            "private repositories cannot clone them",
            f"kubectl -n {namespace} create secret generic {secret} "
            "--type=kubernetes.io/basic-auth --from-literal=username=USER "
            "--from-literal=password=TOKEN (deploy/registry/git-credentials.secret.template.yaml)",
        )
    return Check("builds", True, f"{detail}; git Secret `{secret}` exists")


def _tiny_build_job(settings: Any, namespace: str, account: str) -> dict[str, Any]:
    from launch import kaniko

    registry_name = str(settings["registry"])
    return kaniko.render_build_job(
        name=f"launch-doctor-{secrets.token_hex(3)}",
        namespace=namespace,
        context="git://git.invalid/launch-doctor.git#refs/heads/main",
        destination=f"{registry_name}/launch-doctor:doctor",
        cache_repo=kaniko.cache_repo(registry=registry_name, repo_name="launch-doctor"),
        kaniko_image=settings["kaniko_image"],
        insecure_registry=registry_name if settings["registry_insecure"] else None,
        platform=settings["platform"],
        service_account=account,
        labels={"app.kubernetes.io/managed-by": "launch"},
    )


# --------------------------------------------------------------------------- 7. mlflow


def _mlflow(settings: Any, timeout_s: float) -> Check:
    uri = settings.get("mlflow_tracking_uri")
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
    ui_url = settings.get("mlflow_url")

    probes: list[tuple[str, str, str | None]] = []  # (what, base URL, Host header)
    if _cluster_internal(host_header) and ui_url:
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
            unresolvable = _cluster_internal(urlsplit(url).netloc)
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


# --------------------------------------------------------------------------- 8. queue


def _queue(settings: Any, state: _State, namespace: str) -> Check:
    queue = settings.get("queue")
    if not queue:
        return Check("queue", None, "skipped: no Kueue queue configured (`queue` unset)")
    if not state.api_ok or state.cluster is None:
        return Check("queue", None, state.skip_reason)
    c = state.cluster
    if not c.kueue_installed():
        return Check(
            "queue",
            False,
            f"queue `{queue}` is set but Kueue is not installed (no kueue.x-k8s.io/v1beta2 API)",
            "install Kueue v0.19 and apply deploy/kueue (docs/cluster-setup.md), or unset `queue`",
        )
    found = c.find("LocalQueue", namespace, str(queue))
    if found is None:
        return Check(
            "queue",
            False,
            f"LocalQueue `{queue}` does not exist in namespace `{namespace}`",
            f"kubectl apply -k deploy/kueue (LocalQueue `launch` in `default`), or set `queue` "
            f"to an existing one (kubectl -n {namespace} get localqueues; LAUNCH_QUEUE=NAME)",
        )
    conditions = (found.get("status") or {}).get("conditions") or []
    active = next((x for x in conditions if x.get("type") == "Active"), None)
    if active is not None and active.get("status") != "True":
        cluster_queue = (found.get("spec") or {}).get("clusterQueue", "?")
        return Check(
            "queue",
            False,
            f"LocalQueue `{queue}` is not active: {active.get('reason', '')} "
            f"{active.get('message', '')}".rstrip(),
            f"check its ClusterQueue: kubectl get clusterqueue {cluster_queue} -o yaml "
            "(deploy/kueue/cluster-queue.yaml)",
        )
    return Check("queue", True, f"LocalQueue `{queue}` exists in `{namespace}`")
