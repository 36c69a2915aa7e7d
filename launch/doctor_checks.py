"""`launch doctor`'s checks of the cluster itself (see `launch.doctor` for the order): kubeconfig,
api, katib, namespace, builds, queue, trainer; and the `Check` each returns and the `State` earlier checks
leave for later ones. Kubernetes goes through `launch.cluster` (its kubeconfig loader included);
this module never imports `kubernetes`. The registry (and who can reach it) and MLflow checks are
in `doctor_services`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import cluster as kube
from launch import katib, names, trainjob
from launch.settings import Settings

KATIB_NAMESPACE = "kubeflow"

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


@dataclass
class State:
    """What earlier checks learned, for the later ones."""

    cluster: kube.Cluster | None = None
    api_ok: bool = False
    skip_reason: str = "skipped: no usable kubeconfig"
    namespace_labels: dict[str, str] | None = None
    namespace_error: kube.ClusterError | None = None


def cluster_internal(host: str) -> bool:
    """A name only cluster DNS resolves (nodes' containerd and laptops cannot)."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return hostname.endswith((".svc", ".svc.cluster.local", ".cluster.local")) or (
        "." not in hostname and ":" not in hostname and hostname != "localhost"
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


def check_kubeconfig(
    settings: Settings,
    kubeconfig: str | None,
    env: Mapping[str, str],
    state: State,
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
    files = os.pathsep.join(str(p) for p in existing)
    # The client's own loader (what `launch` connects with) reads and merges the files.
    found = kube.read_kubeconfig(files)
    names, current = list(found.contexts), found.current
    wanted = settings.context
    source = settings.sources.get("context", "default")
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


def check_api(state: State) -> Check:
    assert state.cluster is not None
    c = state.cluster
    # /version is public (no credentials needed); /api needs an authenticated user.
    version = c.server_version()
    c.api_versions()
    state.api_ok = True
    return Check(
        "api",
        True,
        f"{c.host} answers (Kubernetes {version}), credentials accepted",
    )


def read_namespace(state: State, namespace: str) -> None:
    assert state.cluster is not None
    try:
        state.namespace_labels = state.cluster.namespace_labels(namespace)
    except kube.ClusterError as err:
        state.namespace_error = err


def _namespace_missing(state: State) -> bool:
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


def check_katib(state: State, namespace: str) -> Check:
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
    key, value = names.NAMESPACE_LABEL
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


def check_namespace(state: State, namespace: str) -> Check:
    if not state.api_ok:
        return Check("namespace", None, state.skip_reason)
    key, value = names.NAMESPACE_LABEL
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


# --------------------------------------------------------------------------- 8. builds


def check_builds(settings: Settings, state: State, namespace: str) -> Check:
    if not state.api_ok or state.cluster is None:
        return Check("builds", None, state.skip_reason)
    if _namespace_missing(state):
        return Check("builds", None, f"skipped: namespace `{namespace}` does not exist")
    c = state.cluster
    account, secret = str(settings.build_service_account), str(settings.git_secret)
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
    if not settings.git_context:
        # Builds upload their context: no git credentials need to live in the cluster.
        return Check("builds", True, f"{detail}; builds upload the commit (no git Secret needed)")
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


def _tiny_build_job(settings: Settings, namespace: str, account: str) -> dict[str, Any]:
    from launch import kaniko

    registry_name = str(settings.registry)
    return kaniko.render_build_job(
        name=f"launch-doctor-{secrets.token_hex(3)}",
        namespace=namespace,
        context="git://git.invalid/launch-doctor.git#refs/heads/main",
        destination=f"{registry_name}/launch-doctor:doctor",
        cache_repo=kaniko.cache_repo(registry=registry_name, repo_name="launch-doctor"),
        kaniko_image=settings.kaniko_image,
        insecure_registry=registry_name if settings.registry_insecure else None,
        platform=settings.platform,
        service_account=account,
        labels={"app.kubernetes.io/managed-by": "launch"},
    )


# --------------------------------------------------------------------------- 10. queue


def check_queue(settings: Settings, state: State, namespace: str) -> Check:
    queue = settings.queue
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


# --------------------------------------------------------------------------- 11. trainer

TRAINER_NAMESPACE = "kubeflow-system"  # Trainer v2.3 manifests/overlays/manager
# Readable by every authenticated user (manifests/base/rbac/public_configmap_role*.yaml).
TRAINER_PUBLIC_CONFIG = ("kubeflow-trainer-public", "kubeflow_trainer_version")
# Katib v0.19 installs/katib-standalone: configMapGenerator `katib-config` from katib-config.yaml.
KATIB_CONFIG = ("katib-config", "katib-config.yaml")
_TRAINER_DOCS = 'docs/cluster-setup.md, "Multi-node trials"'
_TRAINER_INSTALL = (
    "kubectl apply --server-side -k deploy/trainer; kubectl -n kubeflow-system wait "
    "--for=condition=Available deployment --all; kubectl apply --server-side -k "
    "deploy/trainer/runtimes"
)
_KATIB_RESTART = f"kubectl -n {KATIB_NAMESPACE} rollout restart deployment/katib-controller"


def _trainer_version(c: kube.Cluster) -> str | None:
    name, key = TRAINER_PUBLIC_CONFIG
    try:
        found = c.find("ConfigMap", TRAINER_NAMESPACE, name)
    except kube.ClusterError:
        return None
    value = ((found or {}).get("data") or {}).get(key)
    return str(value) if value else None


def _katib_trial_resources(c: kube.Cluster) -> tuple[list[str] | None, str | None]:
    """(init.controller.trialResources of Katib's katib-config, None) or (None, the problem)."""
    import yaml

    name, key = KATIB_CONFIG
    found = c.find("ConfigMap", KATIB_NAMESPACE, name)
    if found is None:
        return None, f"ConfigMap {KATIB_NAMESPACE}/{name} (Katib's config) does not exist"
    text = (found.get("data") or {}).get(key)
    try:
        doc = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict):
        return None, f"ConfigMap {KATIB_NAMESPACE}/{name} has no readable `{key}`"
    controller = (doc.get("init") or {}).get("controller") or {}
    return [str(x) for x in controller.get("trialResources") or []], None


def check_trainer(state: State, runtime: str) -> Check:
    """Multi-node trials (`--nodes > 1`, Kubeflow Trainer TrainJobs): the TrainJob API is served,
    the ClusterTrainingRuntime `runtime` exists and Katib's katib-config lists the TrainJob trial
    resource. Optional: a cluster without the Trainer is skipped, not failed; a Trainer missing a
    piece fails (multi-node trials would); a read RBAC hides is skipped with the can-i command."""
    if not state.api_ok or state.cluster is None:
        return Check("trainer", None, state.skip_reason)
    c = state.cluster
    # One discovery request (readable by every authenticated user, unlike CRDs), as for Katib.
    if not c.trainer_installed():
        return Check(
            "trainer",
            None,
            "skipped: Kubeflow Trainer is not installed (no trainer.kubeflow.org/v1alpha1 "
            "trainjobs API): single-node trials need none, multi-node trials (--nodes > 1) do",
            f"to run multi-node trials: {_TRAINER_INSTALL}; then {_KATIB_RESTART} "
            f"({_TRAINER_DOCS})",
        )
    version = _trainer_version(c)
    verified = [f"Kubeflow Trainer{' ' + version if version else ''} is installed"]
    problems: list[str] = []
    fixes: list[str] = []
    unread: list[tuple[str, str]] = []  # (what cannot be read, the 403's hint)
    try:
        found = c.find(trainjob.RUNTIME_KIND, None, runtime)
    except kube.ClusterError as err:
        if err.status != 403:
            raise
        unread.append(
            (
                f"ClusterTrainingRuntime `{runtime}` (needs get on clustertrainingruntimes)",
                err.hint or "",
            )
        )
    else:
        if found is None:
            problems.append(
                f"ClusterTrainingRuntime `{runtime}` does not exist (launch's TrainJobs name it)"
            )
            fixes.append("kubectl apply --server-side -k deploy/trainer/runtimes")
        else:
            verified.append(f"ClusterTrainingRuntime `{runtime}` exists")
    name, _ = KATIB_CONFIG
    entry = trainjob.KATIB_TRIAL_RESOURCE
    try:
        resources, problem = _katib_trial_resources(c)
    except kube.ClusterError as err:
        if err.status != 403:
            raise
        unread.append(
            (
                f"Katib's {name} (needs get on configmaps in {KATIB_NAMESPACE})",
                err.hint or "",
            )
        )
    else:
        if problem is not None:
            problems.append(f"{problem} (Katib reads its trial resources there)")
            fixes.append("kubectl apply -k deploy/katib")
        elif entry not in (resources or []):
            problems.append(
                f"Katib's katib-config does not list the trial resource `{entry}` "
                f"(init.controller.trialResources: {', '.join(resources or []) or 'none'})"
            )
            fixes.append(
                f"add `{entry}` to trialResources (kubectl -n {KATIB_NAMESPACE} edit configmap "
                f"{name}; deploy/katib's Katib v0.19.0 standalone lists it), then {_KATIB_RESTART}"
            )
        else:
            verified.append(f"katib-config lists `{entry}`")
    done = "; ".join(verified)
    if problems:
        return Check(
            "trainer",
            False,
            f"{done}; but {'; '.join(problems)}: multi-node trials (--nodes > 1) would fail",
            f"{'; '.join(fixes)} ({_TRAINER_DOCS})",
        )
    if unread:
        what = " and ".join(w for w, _ in unread)
        hints = "; ".join(hint for _, hint in unread if hint)
        return Check(
            "trainer",
            None,
            f"skipped: {done}; cannot read {what}",
            f"{hints}; deploy/registry/launch-user.yaml grants these reads to launch-users, or an "
            "admin runs `launch doctor`",
        )
    return Check(
        "trainer",
        True,
        f"{done}: multi-node trials (--nodes > 1) can run (Katib watches TrainJobs only if "
        f"katib-controller started after the Trainer was installed; if unsure: {_KATIB_RESTART})",
    )
