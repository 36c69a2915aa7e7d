"""cluster.py through the real `kubernetes` client against the API emulator (no mocks)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes.config  # noqa: F401 - the client imports slowly: pay at collection, not in a test
import pytest

from launch import katib, spec, submit
from launch.cluster import (
    REQUEST_ID_ANNOTATION,
    AlreadyExistsError,
    Cluster,
    ClusterError,
    Kubeconfig,
    NotFoundError,
    read_kubeconfig,
)
from launch.errors import ExitCode
from tests.kube_emulator import (
    LABEL_EXPERIMENT,
    KatibController,
    KubeEmulator,
    free_port,
    running,
)

NS = "default"
SPECS = Path(__file__).parent / "specs"


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running() as emulator:
        yield emulator


class Clock:
    """Injected sleep/now: sleeping advances the clock and is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def now(self) -> float:
        return self.t + time.monotonic()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def connect(kube: KubeEmulator, tmp_path: Path, clock: Clock, **kwargs: Any) -> Cluster:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig", context="lab", namespace="ml")
    return Cluster.connect(
        "lab", kubeconfig=str(path), request_timeout_s=5, sleep=clock.sleep, now=clock.now, **kwargs
    )


@pytest.fixture
def cluster(kube: KubeEmulator, tmp_path: Path, clock: Clock) -> Iterator[Cluster]:
    with connect(kube, tmp_path, clock) as c:
        yield c


def experiment(name: str = "exp", namespace: str = NS) -> dict[str, Any]:
    return katib.render_experiment(
        spec=spec.load(str(SPECS / "random.yaml")),
        name=name,
        namespace=namespace,
        image="127.0.0.1:30500/repo@sha256:" + "0" * 64,
        command=["python", "train.py"],
        gpus=1,
        commit="a" * 40,
        branch="main",
        user="ada",
        mlflow_tracking_uri=None,
    )


def posts(kube: KubeEmulator) -> list[dict[str, str]]:
    return [dict(r.query) for r in kube.matching(method="POST")]


# --------------------------------------------------------------------------- connect and facts


def test_connect_reads_the_kubeconfig_context(cluster: Cluster, kube: KubeEmulator) -> None:
    assert cluster.namespace == "ml" and cluster.host == kube.url
    assert cluster.namespace_labels(NS) == {
        "katib.kubeflow.org/metrics-collector-injection": "enabled"
    }
    assert cluster.katib_installed() and cluster.kueue_installed()
    assert all(r.authorization == "Bearer emulator-token" for r in kube.requests)


def test_kubeconfig_list_in_the_environment(
    kube: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = kube.write_kubeconfig(tmp_path / "lab", context="lab", namespace="team")
    other = tmp_path / "other"
    other.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "x", "user": {"token": "x"}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", f"{other}{os.pathsep}{lab}")
    with Cluster.connect("lab") as cluster:
        assert cluster.namespace == "team" and cluster.host == kube.url
        assert cluster.namespace_labels(NS)


def test_unknown_context_is_a_cluster_error(kube: KubeEmulator, tmp_path: Path) -> None:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig", context="lab")
    with pytest.raises(ClusterError) as info:
        Cluster.connect("nope", kubeconfig=str(path))
    assert "nope" in info.value.message and "launch config" in (info.value.hint or "")


def test_unreachable_cluster_fails_fast(tmp_path: Path, clock: Clock) -> None:
    port = free_port()  # nothing listens there
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    start = time.monotonic()
    with (
        Cluster.connect(kubeconfig=str(path), sleep=clock.sleep) as cluster,
        pytest.raises(ClusterError) as info,
    ):
        cluster.namespace_labels(NS)
    assert time.monotonic() - start < 10 and clock.sleeps == []  # refused is not retried
    assert (
        f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in info.value.message
    )
    assert "kubeconfig context" in (info.value.hint or "")
    assert info.value.exit_code == ExitCode.UNEXPECTED


def test_katib_missing_is_explained(tmp_path: Path, clock: Clock) -> None:
    with running(katib=False) as kube, connect(kube, tmp_path, clock) as cluster:
        assert not cluster.katib_installed()
        with pytest.raises(NotFoundError) as info:
            cluster.create(experiment())
    assert info.value.message.startswith("Katib is not installed on this cluster")
    assert "katib-standalone?ref=v0.19.0" in (info.value.hint or "")


def test_server_version_and_api_versions(cluster: Cluster, kube: KubeEmulator) -> None:
    kube.reset_requests()
    assert cluster.server_version() == "v1.33.0-emulator"
    assert cluster.api_versions() == ["v1"]
    assert [r.path for r in kube.requests] == ["/version", "/api"]
    assert all(r.authorization == "Bearer emulator-token" for r in kube.requests)


def test_server_version_of_an_unreachable_server(tmp_path: Path, clock: Clock) -> None:
    port = free_port()
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(one_context("c", f"http://127.0.0.1:{port}")))
    with (
        Cluster.connect(kubeconfig=str(path), sleep=clock.sleep) as cluster,
        pytest.raises(ClusterError) as info,
    ):
        cluster.server_version()
    assert f"127.0.0.1:{port} to get the server version" in info.value.message


def one_context(name: str, server: str, *, current: bool = True, namespace: str = "") -> Any:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": "t"}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": name}
                | ({"namespace": namespace} if namespace else {}),
            }
        ],
    }
    if current:
        doc["current-context"] = name
    return doc


def test_read_kubeconfig_merges_a_list_as_kubectl_does(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(json.dumps(one_context("a", "http://127.0.0.1:1", namespace="team")))
    second.write_text(json.dumps(one_context("b", "http://127.0.0.1:2")))
    missing = tmp_path / "missing"
    found = read_kubeconfig(os.pathsep.join(map(str, (missing, first, second))))
    assert found.files == (str(first), str(second))  # a missing file is skipped
    assert found.contexts == ("a", "b")
    assert found.current == "a"  # the first file that sets it wins (the client takes the last)
    assert dict(found.namespaces) == {"a": "team"}
    assert read_kubeconfig(str(missing)) == Kubeconfig()


def test_connect_takes_the_current_context_kubectl_would(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(json.dumps(one_context("a", "http://127.0.0.1:1", namespace="team")))
    second.write_text(json.dumps(one_context("b", "http://127.0.0.1:2")))
    with Cluster.connect(kubeconfig=f"{first}{os.pathsep}{second}") as cluster:
        assert cluster.host == "http://127.0.0.1:1" and cluster.namespace == "team"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("clusters: [\n  - name: x\n", "cannot read the kubeconfig {path}: "),
        ("- just\n- a list\n", "{path} is not a kubeconfig (not a YAML mapping)"),
        ("", "cannot read the kubeconfig {path}: "),
    ],
    ids=["garbled", "not-a-mapping", "empty"],
)
def test_a_bad_kubeconfig_file_is_named(tmp_path: Path, text: str, words: str) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text(json.dumps(one_context("a", "http://127.0.0.1:1")))
    bad.write_text(text)
    for call in (
        lambda: read_kubeconfig(f"{good}{os.pathsep}{bad}"),
        lambda: Cluster.connect(kubeconfig=f"{good}{os.pathsep}{bad}"),
    ):
        with pytest.raises(ClusterError) as info:
            call()
        assert info.value.message.startswith(words.format(path=bad))
        assert info.value.hint


# --------------------------------------------------------------------------- create


def test_create_dry_runs_first_then_creates(cluster: Cluster, kube: KubeEmulator) -> None:
    created = cluster.create(experiment())
    assert posts(kube) == [{"dryRun": "All"}, {}]
    stored = kube.get_object("experiments", NS, "exp")
    assert stored is not None and stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["metadata"]["annotations"][REQUEST_ID_ANNOTATION]
    assert cluster.get("Experiment", NS, "exp")["metadata"]["uid"] == created["metadata"]["uid"]


def test_webhook_denial_keeps_its_words_and_creates_nothing(
    cluster: Cluster, kube: KubeEmulator
) -> None:
    kube.put("namespaces", {"metadata": {"name": "plain"}})
    with pytest.raises(ClusterError) as info:
        cluster.create(experiment(namespace="plain"))
    assert 'admission webhook "validator.experiment.katib.kubeflow.org" denied the request' in (
        info.value.message
    )
    assert 'lacks label "katib.kubeflow.org/metrics-collector-injection: enabled"' in (
        info.value.message
    )
    assert info.value.status == 400
    assert posts(kube) == [{"dryRun": "All"}] and kube.objects("experiments") == []


def test_a_500_on_create_is_retried_without_a_second_object(
    cluster: Cluster, kube: KubeEmulator, clock: Clock
) -> None:
    kube.fail_next("create", "experiments", code=500, count=2, dry_run=False)
    cluster.create(experiment())
    assert len(kube.objects("experiments")) == 1
    assert clock.sleeps == [0.5, 1.0] and kube.count(verb="create") == 4


def test_persistent_500_gives_up_with_the_servers_words(
    cluster: Cluster, kube: KubeEmulator, clock: Clock
) -> None:
    kube.fail_next(
        "create", "experiments", code=503, count=10, message="etcdserver: leader changed"
    )
    with pytest.raises(ClusterError) as info:
        cluster.create(experiment())
    assert "etcdserver: leader changed" in info.value.message and info.value.status == 503
    assert len(clock.sleeps) == 3 and kube.objects("experiments") == []


def test_dropped_create_after_apply_gives_one_object(
    kube: KubeEmulator, tmp_path: Path, clock: Clock
) -> None:
    with connect(kube, tmp_path, clock) as cluster:
        kube.drop_next("create", "experiments", after_apply=True, dry_run=False)
        created = cluster.create(experiment())
    assert len(kube.objects("experiments")) == 1
    assert created["metadata"]["name"] == "exp"
    # dry-run, create (applied, answer lost), create again (409), get (ours): success.
    assert [(r.verb, r.query.get("dryRun")) for r in kube.requests] == [
        ("create", "All"),
        ("create", None),
        ("create", None),
        ("get", None),
    ]
    assert clock.sleeps == [0.5]


def test_already_exists_for_someone_elses_object(cluster: Cluster, kube: KubeEmulator) -> None:
    cluster.create(experiment())
    with pytest.raises(AlreadyExistsError) as info:
        cluster.create(experiment(), dry_run_first=False)
    assert 'experiments.kubeflow.org "exp" already exists' in info.value.message
    assert "--name" in (info.value.hint or "") and "launch cancel exp" in (info.value.hint or "")
    assert len(kube.objects("experiments")) == 1


def test_forbidden_names_the_missing_rbac_verb(cluster: Cluster, kube: KubeEmulator) -> None:
    kube.forbid("create", "experiments", NS)
    with pytest.raises(ClusterError) as info:
        cluster.create(experiment())
    assert info.value.status == 403
    assert 'cannot create resource "experiments" in API group "kubeflow.org"' in info.value.message
    assert "`create` on `experiments.kubeflow.org` in namespace default" in (info.value.hint or "")
    assert "kubectl auth can-i create experiments.kubeflow.org -n default" in (
        info.value.hint or ""
    )


def test_invalid_object_is_a_422(cluster: Cluster, kube: KubeEmulator) -> None:
    doc = experiment()
    doc["metadata"].pop("name")
    with pytest.raises(ClusterError) as info:
        cluster.create(doc)
    assert info.value.status == 422 and "metadata.name: Required value" in info.value.message


def test_get_missing_and_delete(cluster: Cluster, kube: KubeEmulator) -> None:
    with pytest.raises(NotFoundError) as info:
        cluster.get("Experiment", NS, "nope")
    assert 'experiments.kubeflow.org "nope" not found' in info.value.message
    assert cluster.find("Experiment", NS, "nope") is None
    cluster.create(experiment())
    cluster.delete("Experiment", NS, "exp")
    assert kube.objects("experiments") == []


# --------------------------------------------------------------------------- watch


def _trial(kube: KubeEmulator, name: str, **status: Any) -> None:
    kube.put(
        "trials",
        {
            "metadata": {"name": name, "namespace": NS, "labels": {LABEL_EXPERIMENT: "exp"}},
            "status": status,
        },
    )


def test_watch_lists_then_streams_and_resumes_after_a_drop(
    cluster: Cluster, kube: KubeEmulator, clock: Clock
) -> None:
    _trial(kube, "exp-a")
    kube.drop_watch_after("trials", events=1)
    seen: list[tuple[str, str, str]] = []

    def writer() -> None:
        time.sleep(0.05)
        _trial(kube, "exp-b")
        _trial(kube, "exp-c")  # sent after the drop: the resumed watch must deliver it

    thread = threading.Thread(target=writer)
    thread.start()
    for event in cluster.watch(
        "Trial", NS, label_selector=f"{LABEL_EXPERIMENT}=exp", timeout_s=1.5
    ):
        seen.append((event.type, event.name, event.object["metadata"]["resourceVersion"]))
        if event.name == "exp-c":
            break
    thread.join()
    assert [(t, n) for t, n, _ in seen] == [
        ("ADDED", "exp-a"),
        ("ADDED", "exp-b"),
        ("ADDED", "exp-c"),
    ]
    watches = kube.matching(verb="watch", resource="trials")
    assert len(watches) == 2 and len(clock.sleeps) == 1
    assert watches[1].query["resourceVersion"] == seen[1][2]  # resumed where it stopped


def test_watch_relists_on_410_gone(cluster: Cluster, kube: KubeEmulator) -> None:
    _trial(kube, "exp-a")
    _trial(kube, "exp-b")
    old = str(kube.resource_version)
    _trial(kube, "exp-a", phase="changed")
    kube.remove("trials", NS, "exp-b")
    kube.compact()
    events = []
    for event in cluster.watch("Trial", NS, resource_version=str(int(old) - 5), timeout_s=0.5):
        events.append((event.type, event.name))
        if len(events) == 1:
            break
    # Relist: what exists now, as ADDED (nothing known before).
    assert events == [("ADDED", "exp-a")]
    assert [r.verb for r in kube.requests] == ["watch", "list"]


def test_watch_relist_reports_what_changed_while_away(kube: KubeEmulator, tmp_path: Path) -> None:
    _trial(kube, "exp-a")
    _trial(kube, "exp-b")
    kube.drop_watch_after("trials", events=0)

    class Away(Clock):
        def sleep(self, seconds: float) -> None:
            # While the client backs off: a change, a deletion, and history compacted.
            super().sleep(seconds)
            _trial(kube, "exp-a", phase="changed")
            kube.remove("trials", NS, "exp-b")
            kube.compact()

    away = Away()
    events = []
    with connect(kube, tmp_path, away) as cluster:
        for event in cluster.watch("Trial", NS, timeout_s=1.5):
            events.append((event.type, event.name))
            if len(events) == 4:
                break
    assert events == [
        ("ADDED", "exp-a"),
        ("ADDED", "exp-b"),
        ("MODIFIED", "exp-a"),
        ("DELETED", "exp-b"),
    ]
    assert [r.verb for r in kube.requests] == ["list", "watch", "watch", "list"]


def test_watch_by_name_ends_at_timeout(cluster: Cluster, kube: KubeEmulator) -> None:
    cluster.create(experiment())
    start = time.monotonic()
    events = list(cluster.watch("Experiment", NS, name="exp", timeout_s=0.3))
    assert [e.type for e in events] == ["ADDED"] and time.monotonic() - start < 10  # not 300 s
    watch = kube.matching(verb="watch")[0]
    assert watch.query["fieldSelector"] == "metadata.name=exp"


def test_watch_with_a_field_selector_lists_and_streams_only_matches(
    cluster: Cluster, kube: KubeEmulator
) -> None:
    def event(name: str, type_: str) -> None:
        kube.add_event(NS, involved_kind="Pod", involved_name=name, reason="R", message=name,
                       type_=type_)  # fmt: skip

    event("listed", "Warning")
    event("normal", "Normal")
    seen = []

    def writer() -> None:
        time.sleep(0.05)
        event("normal-later", "Normal")
        event("streamed", "Warning")

    thread = threading.Thread(target=writer)
    thread.start()
    for item in cluster.watch("Event", NS, field_selector="type=Warning", timeout_s=3):
        seen.append(item.object["message"])
        if item.object["message"] == "streamed":
            break
    thread.join()
    assert seen == ["listed", "streamed"]
    assert {r.query.get("fieldSelector") for r in kube.requests} == {"type=Warning"}


def test_watch_sees_katib_progress(cluster: Cluster, kube: KubeEmulator) -> None:
    cluster.create(experiment())
    controller = KatibController(kube)

    def drive() -> None:
        time.sleep(0.05)
        (trial,) = controller.create_trials(NS, "exp", [{"lr": 0.1}])
        controller.run_trial(NS, trial.name)
        controller.succeed_trial(NS, trial.name, {"accuracy": 0.25})

    thread = threading.Thread(target=drive)
    thread.start()
    succeeded = None
    for event in cluster.watch("Experiment", NS, name="exp", timeout_s=1.5):
        if event.object.get("status", {}).get("trialsSucceeded"):
            succeeded = event.object["status"]["currentOptimalTrial"]
            break
    thread.join()
    assert succeeded is not None and succeeded["observation"]["metrics"][0]["latest"] == "0.25"
    # One list and one long watch request, however many changes there were.
    assert kube.count(verb="watch") == 1 and kube.count(verb="list") == 1


# --------------------------------------------------------------------------- logs, events, proxy, Kueue


def test_logs_tail_follow_and_events(cluster: Cluster, kube: KubeEmulator) -> None:
    cluster.create(experiment())
    controller = KatibController(kube)
    (trial,) = controller.create_trials(NS, "exp", [{"lr": 0.1}])
    controller.fail_trial(NS, trial.name, log="a\nb\nTraceback\nValueError: boom\n")
    assert cluster.pod_logs(NS, trial.pod, tail_lines=2) == "Traceback\nValueError: boom\n"
    assert list(cluster.stream_pod_logs(NS, trial.pod, tail_lines=1)) == ["ValueError: boom"]
    kube.set_pod_log(NS, trial.pod, "first\n", closed=False)
    threading.Timer(
        0.05, kube.append_pod_log, (NS, trial.pod, "second\nlast"), {"close": True}
    ).start()
    assert list(cluster.stream_pod_logs(NS, trial.pod)) == ["first", "second", "last"]
    events = cluster.list("Event", NS, field_selector=f"involvedObject.name={trial.name}")
    assert sorted(e["reason"] for e in events) == ["JobCreated", "JobFailed"]
    kube.forbid("get", "pods/log", NS)
    with pytest.raises(ClusterError) as info:
        cluster.pod_logs(NS, trial.pod)
    assert "`get` on `pods/log`" in (info.value.hint or "")


def test_pending_trial_reasons_from_pods_events_and_kueue(
    cluster: Cluster, kube: KubeEmulator
) -> None:
    cluster.create(experiment())
    controller = KatibController(kube)
    first, second, third = controller.create_trials(
        NS, "exp", [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}]
    )
    controller.run_trial(NS, third.name)
    states = {first.name: "Pending", second.name: "Pending", third.name: "Running"}
    assert (
        submit.pending_reasons(cluster, namespace=NS, name="exp", states=states, kueue=True) == {}
    )
    controller.unschedulable(NS, first.name)
    workload = controller.kueue_pending(NS, second.name)
    assert workload["metadata"]["ownerReferences"][0]["name"] == second.job
    kube.reset_requests()
    reasons = submit.pending_reasons(cluster, namespace=NS, name="exp", states=states, kueue=True)
    assert reasons[first.name].startswith("unschedulable: 0/3 nodes are available")
    assert "queued in Kueue, not admitted" in reasons[second.name]
    assert third.name not in reasons  # running: old warnings about it do not matter
    assert [(r.verb, r.resource) for r in kube.requests] == [
        ("list", "pods"), ("list", "events"), ("list", "workloads")
    ]  # fmt: skip
    # Finished trials ask nothing of the cluster.
    kube.reset_requests()
    done = dict.fromkeys(states, "Succeeded")
    assert submit.pending_reasons(cluster, namespace=NS, name="exp", states=done, kueue=True) == {}
    assert kube.requests == []


def test_kueue_absent(tmp_path: Path, clock: Clock) -> None:
    with running(kueue=False) as kube, connect(kube, tmp_path, clock) as cluster:
        assert cluster.katib_installed() and not cluster.kueue_installed()


class _Registry(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        found = self.path == "/v2/repo/manifests/abc"
        self.send_response(200 if found else 404)
        self.send_header("Docker-Content-Digest", "sha256:" + "2" * 64)
        self.send_header("X-Accept", self.headers.get("Accept", ""))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN"}]}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_service_proxy_request(cluster: Cluster, kube: KubeEmulator) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        kube.register_proxy(
            "launch-system", "registry", 5000, ("127.0.0.1", server.server_address[1])
        )
        proxy = cluster.service_proxy("launch-system", "registry", 5000)
        assert proxy.base_url == (
            f"{kube.url}/api/v1/namespaces/launch-system/services/registry:5000/proxy/"
        )
        status, headers, body = proxy.request(
            "HEAD", "/v2/repo/manifests/abc", {"Accept": "application/vnd.oci.image.index.v1+json"}
        )
        assert status == 200 and headers["docker-content-digest"] == "sha256:" + "2" * 64
        assert headers["x-accept"] == "application/vnd.oci.image.index.v1+json"
        status, _, body = proxy.request("GET", "/v2/repo/manifests/other")
        assert status == 404 and b"MANIFEST_UNKNOWN" in body  # the registry's answer, untouched
        assert kube.matching(verb="proxy")[0].authorization == "Bearer emulator-token"
        with pytest.raises(NotFoundError):
            cluster.service_proxy("launch-system", "nope", 5000).request("HEAD", "/v2/")
        kube.forbid("get", "services/proxy", "launch-system")
        with pytest.raises(ClusterError) as info:
            proxy.request("HEAD", "/v2/")
        assert "`get` on `services/proxy`" in (info.value.hint or "")
    finally:
        server.shutdown()
        server.server_close()


def test_dropped_log_stream_is_a_cluster_error(cluster: Cluster, kube: KubeEmulator) -> None:
    kube.put(
        "pods",
        {
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"},
        },
    )
    kube.set_pod_log(NS, "p", "x\n")
    kube.drop_next("get", "pods/log")
    with pytest.raises(ClusterError) as info:
        cluster.pod_logs(NS, "p")
    assert "lost the connection" in info.value.message


def test_socket_is_free_after_close(kube: KubeEmulator, tmp_path: Path, clock: Clock) -> None:
    cluster = connect(kube, tmp_path, clock)
    cluster.namespace_labels(NS)
    cluster.close()
    with socket.create_connection(("127.0.0.1", kube.port), timeout=1):
        pass
