"""`launch doctor` against the API emulator (the real `kubernetes` client over HTTP), a real
registry (Distribution 2.8) and a real MLflow server: all checks pass on a healthy setup, then
each piece is broken in turn; every failure names its fix, dependents are skipped, and nothing is
ever created on the cluster (only dry-runs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from launch import config, doctor, names
from launch.doctor import Check
from tests.kube_emulator import Denied, KubeEmulator, Resource, free_port
from tests.registry_server import Registry, running_registry

LABEL_KEY, LABEL_VALUE = names.NAMESPACE_LABEL
ORDER = [
    "kubeconfig", "api", "katib", "namespace", "registry", "nodeports", "netpolicy", "builds",
    "mlflow", "queue", "trainer",
]  # fmt: skip
LABEL_FIX = f"kubectl label namespace default {LABEL_KEY}={LABEL_VALUE}"
# For the tests that need real servers to answer (a healthy setup, MLflow's 403): on a loaded
# machine `mlflow server` (Python) can take longer than doctor's 3 s default to answer, which is
# not what these tests are about. The default is exercised where things are down or hang.
PATIENT_TIMEOUT_S = 30.0

# What a real API server serves and the emulator does not (yet): read by doctor only.
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
SECRETS = Resource("", "v1", "secrets", "Secret")
LOCAL_QUEUES = Resource("kueue.x-k8s.io", "v1beta2", "localqueues", "LocalQueue")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


class Kube(KubeEmulator):
    """The emulator plus ServiceAccounts, Secrets, ConfigMaps, DaemonSets, NetworkPolicies and
    (with Kueue) LocalQueues."""

    @property
    def resources(self) -> list[Resource]:
        extra = [SERVICE_ACCOUNTS, SECRETS, CONFIG_MAPS, DAEMON_SETS, NETWORK_POLICIES]
        extra += [LOCAL_QUEUES] if self.kueue else []
        return super().resources + extra

    def real_creates(self) -> list[Any]:
        return [r for r in self.requests if r.verb == "create" and r.query.get("dryRun") != "All"]


@dataclass
class Setup:
    kube: Kube
    kubeconfig: str
    registry: Registry


def settings(**values: Any) -> config.Settings:
    """Effective settings as `launch config` resolves them (from flags), plus keys config.py
    may not know yet (`queue`)."""
    known = {k: v for k, v in values.items() if k in config.KEYS}
    resolved = config.resolve(
        flags={"context": "emulator", **known}, env={}, project=None, user=None
    )
    extra = {k: v for k, v in values.items() if k not in config.KEYS}
    return config.Settings.of(
        {**resolved.values, **extra},
        {**resolved.sources, **dict.fromkeys(extra, "flag")},
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    assert [c.name for c in checks] == ORDER
    return {c.name: c for c in checks}


def deploy_doc(path: str, kind: str) -> dict[str, Any]:
    import yaml

    docs = yaml.safe_load_all((DEPLOY / path).read_text())
    (doc,) = [d for d in docs if d and d.get("kind", "v1alpha1.Config") == kind]
    return dict(doc)


def talos_kube_proxy(**flags: str | None) -> dict[str, Any]:
    """kube-proxy's DaemonSet as Talos 1.13 renders it from deploy/talos/patches/kube-proxy.yaml
    (getProxyArgs: its own flags, the patch's mode and extraArgs over them, sorted, `--k=v`, in
    the container's command); `flags` change it (None: drop the flag)."""
    proxy = deploy_doc("talos/patches/kube-proxy.yaml", "v1alpha1.Config")["cluster"]["proxy"]
    args = {
        "cluster-cidr": "10.244.0.0/16",
        "conntrack-max-per-core": "0",
        "hostname-override": "$(NODE_NAME)",
        "kubeconfig": "/etc/kubernetes/kubeconfig",
        "proxy-mode": proxy.get("mode", "nftables"),
        **proxy.get("extraArgs", {}),
        **flags,
    }
    command = ["/usr/local/bin/kube-proxy"]
    command += [f"--{k}={v}" for k, v in sorted(args.items()) if v is not None]
    container = {"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.36.3"}
    return {
        "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{**container, "command": command}]}}},
    }


def healthy_cluster(kube: Kube, registry: Registry) -> None:
    """Everything deploy/ sets up, as a launch-users member sees it."""
    service = deploy_doc("registry/service.yaml", "Service")
    kube.put("services", {"metadata": service["metadata"], "spec": service["spec"]})
    kube.put("networkpolicies", deploy_doc("registry/networkpolicy.yaml", "NetworkPolicy"))
    kube.put("daemonsets", talos_kube_proxy())
    kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", registry.port))
    kube.put("serviceaccounts", {"metadata": {"name": "launch-builder", "namespace": "default"}})
    kube.put(
        "secrets",
        {"metadata": {"name": "git-credentials", "namespace": "default"}, "data": {}},
    )
    kube.forbid("get", "secrets")  # deploy/registry/launch-user.yaml grants no Secret reads
    if not kube.kueue:
        return
    kube.put(
        "localqueues",
        {
            "metadata": {"name": "launch", "namespace": "default"},
            "spec": {"clusterQueue": "launch"},
            "status": {"conditions": [{"type": "Active", "status": "True", "reason": "Ready"}]},
        },
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def make(**kwargs: Any) -> Kube:
    kwargs.setdefault("namespaces", {"default": {LABEL_KEY: LABEL_VALUE}, "launch-system": {}})
    return Kube(**kwargs)


@pytest.fixture
def setup(tmp_path: Path, registry: Registry) -> Iterator[Setup]:
    kube = make().start()
    try:
        healthy_cluster(kube, registry)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        yield Setup(kube, str(path), registry)
        assert kube.real_creates() == []  # doctor never creates anything
    finally:
        kube.stop()


def run(
    setup: Setup, *, timeout_s: float = doctor.DEFAULT_TIMEOUT_S, **values: Any
) -> dict[str, Check]:
    checks = doctor.run_checks(
        settings(**values), kubeconfig=setup.kubeconfig, env={}, timeout_s=timeout_s
    )
    return by_name(checks)


def warm_up(mlflow_uri: str) -> None:
    """One untimed request to the server's API first: its first answer (lazy imports, the
    database's first query) can be slow on a busy machine."""
    import requests

    requests.get(
        f"{mlflow_uri}/api/2.0/mlflow/experiments/search", params={"max_results": "1"}, timeout=120
    ).raise_for_status()


def assert_only_failure(checks: dict[str, Check], name: str) -> Check:
    failed = [c.name for c in checks.values() if c.ok is False]
    assert failed == [name], doctor.render(list(checks.values()))
    return checks[name]


# --------------------------------------------------------------------------- healthy


@pytest.mark.timeout(300)  # the first use starts `mlflow server`: slow on a busy machine
def test_all_checks_pass_on_a_healthy_cluster(setup: Setup) -> None:
    from tests.mlflow_server import shared_mlflow_server

    mlflow = shared_mlflow_server()
    warm_up(mlflow.uri)
    start = time.monotonic()
    checks = doctor.run_checks(
        settings(mlflow_tracking_uri=mlflow.uri, queue="launch"),
        kubeconfig=setup.kubeconfig,
        env={},
        timeout_s=PATIENT_TIMEOUT_S,
    )
    # Every request answered (a timed-out one fails its check, below) and doctor never waited
    # out a whole timeout: no retry loop, no sleep. Not a bound on this machine's speed.
    assert time.monotonic() - start < PATIENT_TIMEOUT_S
    named = by_name(checks)
    # Kubeflow Trainer (multi-node trials) is optional: not installed here, so skipped, not
    # failed (tests/test_doctor_trainer.py has a cluster with it).
    assert named["trainer"].ok is None, named["trainer"].detail
    assert all(c.ok is True for c in checks if c.name != "trainer"), doctor.render(checks)
    assert doctor.passed(checks)
    assert "context `emulator`" in named["kubeconfig"].detail
    assert "v1.33.0-emulator" in named["api"].detail
    assert "dry-run" in named["katib"].detail
    assert "launch-system/registry:5000" in named["registry"].detail
    # Builds upload their context: no git Secret is looked for.
    assert "no git Secret needed" in named["builds"].detail
    assert mlflow.uri in named["mlflow"].detail
    assert "LocalQueue `launch`" in named["queue"].detail
    assert "NodePorts on 127.0.0.0/8 only" in named["nodeports"].detail
    assert named["netpolicy"].detail == (
        "NetworkPolicy `registry` selects the registry's pods (app.kubernetes.io/name=registry): "
        "`registry` admits pods of namespace `default`; effective only with a CNI that enforces "
        "NetworkPolicy (Flannel does not)"
    )
    # the webhook really judged an Experiment, and RBAC a build Job, as dry-runs only
    dry = [r for r in setup.kube.requests if r.verb == "create"]
    assert [(r.resource, r.query.get("dryRun")) for r in dry] == [
        ("experiments", "All"), ("jobs", "All")
    ]  # fmt: skip
    assert "a build Job is admitted (dry-run)" in named["builds"].detail
    text = doctor.render(checks)
    assert text.splitlines()[0].startswith("PASS  kubeconfig")
    assert "10 passed, 0 failed, 1 skipped - ready for cluster runs" in text
    doc = doctor.to_json(checks)
    assert doc["ok"] is True and [c["status"] for c in doc["checks"]] == ["pass"] * 10 + ["skip"]


def test_unconfigured_optional_checks_are_skipped_not_failed(setup: Setup) -> None:
    named = run(setup)
    assert named["mlflow"].ok is None and "mlflow_tracking_uri" in named["mlflow"].detail
    assert named["queue"].ok is None and "queue" in named["queue"].detail
    assert named["trainer"].ok is None and "not installed" in named["trainer"].detail
    assert doctor.passed(list(named.values()))


def test_registry_through_a_direct_url(setup: Setup) -> None:
    named = run(setup, registry_url=setup.registry.url)
    assert named["registry"].ok is True
    assert setup.registry.url in named["registry"].detail


def test_with_git_context_a_hidden_secret_is_not_checked_and_not_failed(setup: Setup) -> None:
    # deploy's RBAC hides Secrets: doctor says it did not check, and does not fail for it.
    named = run(setup, git_context=True)
    assert "not checked" in named["builds"].detail and named["builds"].ok is True


def test_readable_secret_is_checked(setup: Setup) -> None:
    setup.kube._forbidden.clear()  # an admin's kubeconfig
    named = run(setup, git_context=True)
    assert named["builds"].ok is True
    assert "git Secret `git-credentials` exists" in named["builds"].detail


def test_without_git_context_no_secret_is_needed(setup: Setup) -> None:
    setup.kube._forbidden.clear()
    setup.kube.remove("secrets", "default", "git-credentials")
    named = run(setup)
    assert named["builds"].ok is True
    assert "builds upload the commit (no git Secret needed)" in named["builds"].detail


# --------------------------------------------------------------------------- 1. kubeconfig


def test_no_kubeconfig(tmp_path: Path) -> None:
    checks = doctor.run_checks(settings(), env={"HOME": str(tmp_path)})
    named = by_name(checks)
    assert named["kubeconfig"].ok is False
    assert str(tmp_path / ".kube" / "config") in named["kubeconfig"].detail
    assert "KUBECONFIG" in (named["kubeconfig"].fix or "")
    for name in ("api", "katib", "namespace", "registry", "builds", "trainer"):
        assert named[name].ok is None
        assert named[name].detail == "skipped: no usable kubeconfig"
    assert not doctor.passed(checks)
    # Local sweeps need no cluster: said first, then what a cluster needs.
    text = doctor.render(checks)
    assert text.startswith("No cluster is configured, and local sweeps need none")
    assert "--backend local" in text.splitlines()[0]
    assert text.splitlines()[1].startswith("FAIL  kubeconfig")
    assert doctor.to_json(checks)["noCluster"] is True


def test_kubeconfig_from_env_list(setup: Setup, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    env = {"KUBECONFIG": f"{missing}:{setup.kubeconfig}"}
    checks = doctor.run_checks(settings(), env=env)
    named = by_name(checks)
    assert named["kubeconfig"].ok is True
    assert setup.kubeconfig in named["kubeconfig"].detail
    assert named["api"].ok is True


def test_unknown_context(setup: Setup) -> None:
    named = run(setup, context="lab-admin")
    check = assert_only_failure(named, "kubeconfig")
    assert "`lab-admin`" in check.detail and "contexts: emulator" in check.detail
    assert "LAUNCH_CONTEXT" in (check.fix or "")
    assert named["katib"].detail == "skipped: no usable kubeconfig"


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("clusters: [\n  - name: x\n", "cannot read the kubeconfig {path}: "),
        ("- just\n- a list\n", "{path} is not a kubeconfig (not a YAML mapping)"),
    ],
    ids=["garbled", "not-a-mapping"],
)
def test_bad_kubeconfig_is_named_with_its_fix(tmp_path: Path, text: str, detail: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    checks = doctor.run_checks(settings(), kubeconfig=str(path), env={})
    named = by_name(checks)
    check = named["kubeconfig"]
    assert check.ok is False and check.detail.startswith(detail.format(path=path))
    assert check.fix == (
        "fix or replace the file (`kubectl config view` shows what kubectl reads)"
        if "cannot read" in detail
        else "replace it with the kubeconfig your cluster admin gave you"
    )
    assert named["api"].detail == "skipped: no usable kubeconfig"
    assert not doctor.no_cluster(checks)  # a kubeconfig exists: no "local sweeps" note


def test_first_current_context_in_a_list_wins(setup: Setup, tmp_path: Path) -> None:
    """kubectl's rule (the client alone would take the last file's), and what launch uses."""
    import yaml

    other = tmp_path / "other"
    doc = yaml.safe_load(Path(setup.kubeconfig).read_text())
    doc["contexts"][0]["name"] = doc["current-context"] = "other"
    other.write_text(yaml.safe_dump(doc))
    checks = doctor.run_checks(
        settings(context=None), kubeconfig=f"{setup.kubeconfig}:{other}", env={}
    )
    named = by_name(checks)
    assert "context `emulator` (current context)" in named["kubeconfig"].detail
    assert "contexts: " not in named["kubeconfig"].detail and named["api"].ok is True


# --------------------------------------------------------------------------- 2. api


def test_unreachable_api_skips_what_depends_on_it(tmp_path: Path, registry: Registry) -> None:
    kube = make().start()
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    kube.stop()  # the port is closed now
    start = time.monotonic()
    checks = doctor.run_checks(settings(queue="launch"), kubeconfig=str(path), env={})
    assert time.monotonic() - start < 10
    named = by_name(checks)
    assert named["kubeconfig"].ok is True
    api = assert_only_failure(named, "api")
    assert "cannot reach the Kubernetes API server" in api.detail
    assert "kubectl cluster-info" in (api.fix or "")
    for name in (
        "katib", "namespace", "registry", "nodeports", "netpolicy", "builds", "queue", "trainer"
    ):  # fmt: skip
        assert named[name].ok is None
        assert named[name].detail == "skipped: API unreachable"
    assert kube.real_creates() == []


# --------------------------------------------------------------------------- 3. katib


def test_katib_not_installed(tmp_path: Path, registry: Registry) -> None:
    kube = make(katib=False).start()
    try:
        healthy_cluster(kube, registry)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        checks = doctor.run_checks(settings(), kubeconfig=str(path), env={})
        check = assert_only_failure(by_name(checks), "katib")
        assert "Katib is not installed" in check.detail
        assert "kubectl apply -k deploy/katib" in (check.fix or "")
        assert kube.real_creates() == []  # dry-runs only
    finally:
        kube.stop()


def test_webhook_denial_shows_the_webhooks_words(setup: Setup) -> None:
    def deny(obj: dict[str, Any], operation: str, dry_run: bool) -> None:
        raise Denied('spec.algorithm.algorithmName: Unsupported value: "random"')

    setup.kube.add_admission("experiments", deny)
    check = assert_only_failure(run(setup), "katib")
    assert 'Unsupported value: "random"' in check.detail
    assert "validator.experiment.katib.kubeflow.org" in check.detail
    assert "logs deployment/katib-controller" in (check.fix or "")


def test_webhook_not_answering(setup: Setup) -> None:
    setup.kube.fail_next(
        "create",
        "experiments",
        code=500,
        dry_run=True,
        message='Internal error occurred: failed calling webhook "validator.experiment.katib.'
        'kubeflow.org": Post "https://katib-controller.kubeflow.svc:443/validate-experiment": '
        "dial tcp 10.96.0.12:443: connect: connection refused",
    )
    check = assert_only_failure(run(setup), "katib")
    assert "webhook does not answer" in check.detail
    assert "rollout restart deployment/katib-controller" in (check.fix or "")


# --------------------------------------------------------------------------- 4. namespace


def test_namespace_without_label(tmp_path: Path, registry: Registry) -> None:
    kube = make(namespaces={"default": {}, "launch-system": {}}).start()
    try:
        healthy_cluster(kube, registry)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        named = by_name(doctor.run_checks(settings(), kubeconfig=str(path), env={}))
        check = assert_only_failure(named, "namespace")
        assert check.fix == LABEL_FIX
        assert "MetricsUnavailable" in check.detail
        # the webhook worked (it refused only for the label): Katib itself is fine
        assert named["katib"].ok is True and "see namespace" in named["katib"].detail
        assert kube.real_creates() == []
    finally:
        kube.stop()


def test_namespace_label_with_another_value(tmp_path: Path, registry: Registry) -> None:
    kube = make(namespaces={"default": {LABEL_KEY: "disabled"}, "launch-system": {}}).start()
    try:
        healthy_cluster(kube, registry)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        named = by_name(doctor.run_checks(settings(), kubeconfig=str(path), env={}))
        assert named["namespace"].fix == LABEL_FIX + " --overwrite"
    finally:
        kube.stop()


def test_missing_namespace(setup: Setup) -> None:
    named = run(setup, namespace="ghost")
    check = assert_only_failure(named, "namespace")
    assert "`ghost` does not exist" in check.detail
    assert "kubectl create namespace ghost" in (check.fix or "")
    assert "LAUNCH_NAMESPACE" in (check.fix or "")
    assert named["katib"].ok is None and "does not exist" in named["katib"].detail
    assert named["builds"].ok is None


# --------------------------------------------------------------------------- 5. registry


def test_registry_down(setup: Setup) -> None:
    setup.kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", free_port()))
    check = assert_only_failure(run(setup), "registry")
    assert "the registry did not answer" in check.detail
    assert "launch-system/registry:5000" in check.detail and "Connection refused" in check.detail
    assert "kubectl -n launch-system get svc,endpoints,pods" in (check.fix or "")


def test_registry_service_missing(setup: Setup) -> None:
    setup.kube.remove("services", "launch-system", "registry")
    check = assert_only_failure(run(setup), "registry")
    assert 'services "registry" not found' in check.detail
    assert "kubectl apply -k deploy/registry" in (check.fix or "")


def test_registry_url_down(setup: Setup) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    check = assert_only_failure(run(setup, registry_url=url), "registry")
    assert url in check.detail and "connection refused" in check.detail
    assert "registry_url" in (check.fix or "")


def test_pull_name_nodes_cannot_resolve(setup: Setup) -> None:
    pull = "registry.launch-system.svc.cluster.local:5000"
    check = assert_only_failure(run(setup, registry_pull=pull), "registry")
    assert "containerd on the nodes cannot resolve it" in check.detail
    assert "LAUNCH_REGISTRY_PULL=127.0.0.1:30500" in (check.fix or "")


def test_push_and_pull_name_different_repositories(setup: Setup) -> None:
    named = run(
        setup,
        registry="registry.launch-system.svc.cluster.local:5000/team",
        registry_pull="127.0.0.1:30500",
    )
    check = assert_only_failure(named, "registry")
    assert "different repositories" in check.detail
    assert "registry_pull = 127.0.0.1:30500/team" in (check.fix or "")


# --------------------------------------------------------------------------- 8. builds


def test_build_service_account_missing(setup: Setup) -> None:
    setup.kube.remove("serviceaccounts", "default", "launch-builder")
    check = assert_only_failure(run(setup), "builds")
    assert "`launch-builder` does not exist" in check.detail
    assert "kubectl apply -k deploy/registry" in (check.fix or "")
    assert "LAUNCH_BUILD_SERVICE_ACCOUNT" in (check.fix or "")


def test_build_jobs_not_creatable(setup: Setup) -> None:
    setup.kube.forbid("create", "jobs", "default")
    check = assert_only_failure(run(setup), "builds")
    assert "a build Job is refused (dry-run)" in check.detail
    assert "create" in (check.fix or "") and "jobs" in (check.fix or "")


def test_git_secret_missing_when_readable(setup: Setup) -> None:
    setup.kube._forbidden.clear()
    setup.kube.remove("secrets", "default", "git-credentials")
    check = assert_only_failure(run(setup, git_context=True), "builds")
    assert "`git-credentials` does not exist" in check.detail
    assert "kubectl -n default create secret generic git-credentials" in (check.fix or "")


def test_service_account_not_readable(setup: Setup) -> None:
    setup.kube.forbid("get", "serviceaccounts")
    check = assert_only_failure(run(setup), "builds")
    assert "cannot check" in check.detail
    assert "kubectl auth can-i get serviceaccounts" in (check.fix or "")


# --------------------------------------------------------------------------- 9. mlflow


@pytest.mark.timeout(300)
def test_mlflow_invalid_host_header(setup: Setup) -> None:
    """A real MLflow (>= 3.5, default --allowed-hosts) refuses the in-cluster name trials use."""
    from tests.mlflow_server import shared_mlflow_server

    mlflow = shared_mlflow_server()
    named = run(
        setup,
        timeout_s=PATIENT_TIMEOUT_S,
        mlflow_tracking_uri="http://mlflow.launch-system.svc.cluster.local:5000",
        mlflow_url=mlflow.uri,
    )
    check = assert_only_failure(named, "mlflow")
    assert "403 Invalid Host header" in check.detail
    assert "mlflow.launch-system.svc.cluster.local:5000" in check.detail
    fix = check.fix or ""
    assert "--allowed-hosts" in fix
    assert (
        "`mlflow.launch-system.svc.cluster.local` and `mlflow.launch-system.svc.cluster.local:*`"
        in fix
    )
    assert "kubectl -n launch-system edit deployment mlflow" in fix


def test_mlflow_down(setup: Setup) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    check = assert_only_failure(run(setup, mlflow_tracking_uri=uri), "mlflow")
    assert time.monotonic() - start < 10
    assert f"cannot reach MLflow at {uri}" in check.detail
    assert "connection refused" in check.detail
    assert "mlflow_tracking_uri" in (check.fix or "")


def test_mlflow_that_never_answers_fails_within_the_timeout(tmp_path: Path) -> None:
    """A server that accepts connections and never answers: doctor's timeout bounds the wait,
    and the check says so (rather than "cannot reach")."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the handshakes; nothing ever answers
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        checks = doctor.run_checks(
            settings(mlflow_tracking_uri=uri), env={"HOME": str(tmp_path)}, timeout_s=0.5
        )
        waited = time.monotonic() - start
    check = by_name(checks)["mlflow"]
    assert check.ok is False
    assert check.detail == f"MLflow at {uri} did not answer within 0.5 s"
    assert "mlflow_tracking_uri" in (check.fix or "")
    assert 0.5 <= waited < 60  # the timeout was waited for, and bounded the wait


def test_mlflow_in_cluster_name_without_mlflow_url(setup: Setup) -> None:
    uri = "http://mlflow.launch-system.svc.cluster.local:5000"
    check = assert_only_failure(run(setup, mlflow_tracking_uri=uri), "mlflow")
    assert "port-forward svc/mlflow" in (check.fix or "")
    assert "LAUNCH_MLFLOW_URL" in (check.fix or "")


def test_mlflow_local_store_is_useless_to_trials(setup: Setup) -> None:
    check = assert_only_failure(run(setup, mlflow_tracking_uri="sqlite:///mlflow.db"), "mlflow")
    assert "local store" in check.detail


# --------------------------------------------------------------------------- 10. queue


def test_queue_missing(setup: Setup) -> None:
    check = assert_only_failure(run(setup, queue="gpu"), "queue")
    assert "LocalQueue `gpu` does not exist" in check.detail
    assert "kubectl apply -k deploy/kueue" in (check.fix or "")


def test_queue_inactive(setup: Setup) -> None:
    setup.kube.patch(
        "localqueues",
        "default",
        "launch",
        {
            "status": {
                "conditions": [
                    {
                        "type": "Active",
                        "status": "False",
                        "reason": "ClusterQueueDoesNotExist",
                        "message": "Can't submit new workloads to clusterQueue",
                    }
                ]
            }
        },
    )
    check = assert_only_failure(run(setup, queue="launch"), "queue")
    assert "ClusterQueueDoesNotExist" in check.detail
    assert "kubectl get clusterqueue launch" in (check.fix or "")


def test_queue_without_kueue(tmp_path: Path, registry: Registry) -> None:
    kube = make(kueue=False).start()
    try:
        healthy_cluster(kube, registry)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        named = by_name(doctor.run_checks(settings(queue="launch"), kubeconfig=str(path), env={}))
        check = assert_only_failure(named, "queue")
        assert "Kueue is not installed" in check.detail
    finally:
        kube.stop()


# --------------------------------------------------------------------------- output


def test_render_and_json_of_a_failure(setup: Setup) -> None:
    setup.kube.remove("serviceaccounts", "default", "launch-builder")
    checks = list(run(setup).values())
    text = doctor.render(checks)
    lines = text.splitlines()
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL  builds"))
    assert lines[fail + 1].strip().startswith("fix: kubectl apply -k deploy/registry")
    assert "SKIP  mlflow" in text
    assert lines[-1] == "7 passed, 1 failed, 3 skipped"
    doc = doctor.to_json(checks)
    assert doc["ok"] is False
    builds = next(c for c in doc["checks"] if c["name"] == "builds")
    assert builds["status"] == "fail" and builds["ok"] is False and builds["fix"]
