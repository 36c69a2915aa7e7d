"""The emulator answers the real `kubernetes` client the way an API server would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch

# The typed APIs import slowly (seconds for CoreV1Api): pay it at collection, not in a test.
from kubernetes.client import (  # noqa: F401
    ApiextensionsV1Api,
    ApisApi,
    BatchV1Api,
    CoreV1Api,
    CustomObjectsApi,
    VersionApi,
)

from tests.kube_emulator import (
    LABEL_EXPERIMENT,
    LABEL_JOB_NAME,
    LABEL_KUEUE_JOB_UID,
    LABEL_TRIAL,
    KanikoController,
    KatibController,
    KubeEmulator,
    running,
)

NS = "default"


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running() as emulator:
        yield emulator


@pytest.fixture
def api(kube: KubeEmulator) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = kube.url
    configuration.retries = False
    with client.ApiClient(configuration) as api_client:
        yield api_client


def job(name: str = "build") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "launch"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "kaniko", "image": "kaniko"}],
                }
            },
        },
    }


def experiment(name: str = "exp", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "labels": {"launch/user": "ada"}},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 1,
            "maxTrialCount": 2,
            "maxFailedTrialCount": 1,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.1", "max": "1"},
                }
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "retain": True,
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "metadata": {"labels": {"launch/user": "ada"}},
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "training", "image": "img"}],
                            },
                        }
                    },
                },
            },
            **spec,
        },
    }


def status_of(err: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def test_discovery_version_and_namespaces(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.33")
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"batch", "kubeflow.org", "kueue.x-k8s.io", "apiextensions.k8s.io"} <= groups
    katib = client.CustomObjectsApi(api).get_api_resources("kubeflow.org", "v1beta1")
    assert {"experiments", "trials", "suggestions"} <= {r.name for r in katib.resources}
    core = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/log", "services/proxy", "events", "namespaces"} <= core
    labels = client.CoreV1Api(api).read_namespace(NS).metadata.labels
    assert labels == {"katib.kubeflow.org/metrics-collector-injection": "enabled"}
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("experiments.kubeflow.org")
    assert crd.spec.names.kind == "Experiment"


def test_katib_absent_answers_404_like_an_api_server() -> None:
    with running(katib=False) as kube:
        configuration = client.Configuration()
        configuration.host = kube.url
        with client.ApiClient(configuration) as api:
            custom = client.CustomObjectsApi(api)
            with pytest.raises(client.ApiException) as info:
                custom.list_namespaced_custom_object("kubeflow.org", "v1beta1", NS, "experiments")
            assert info.value.status == 404
            assert (
                status_of(info.value)["message"]
                == "the server could not find the requested resource"
            )
            with pytest.raises(client.ApiException):
                custom.get_api_resources("kubeflow.org", "v1beta1")


def test_job_crud_pods_labels_and_errors(kube: KubeEmulator, api: client.ApiClient) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    created = batch.create_namespaced_job(NS, job())
    assert created.metadata.uid and int(created.metadata.resource_version) > 0
    pods = core.list_namespaced_pod(NS, label_selector=f"{LABEL_JOB_NAME}=build").items
    assert len(pods) == 1 and pods[0].metadata.labels["job-name"] == "build"
    assert batch.list_namespaced_job(NS, label_selector="app=launch").items
    assert not batch.list_namespaced_job(NS, label_selector="app!=launch").items
    assert batch.list_namespaced_job(NS, label_selector="app in (x, launch)").items

    with pytest.raises(client.ApiException) as info:
        batch.create_namespaced_job(NS, job())
    assert info.value.status == 409 and status_of(info.value)["reason"] == "AlreadyExists"
    assert status_of(info.value)["message"] == 'jobs.batch "build" already exists'

    patched = batch.patch_namespaced_job("build", NS, {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"app": "launch", "x": "y"}
    batch.delete_namespaced_job("build", NS)
    with pytest.raises(client.ApiException) as info:
        batch.read_namespaced_job("build", NS)
    assert info.value.status == 404 and status_of(info.value)["details"]["name"] == "build"
    assert not core.list_namespaced_pod(NS).items  # the Job's pods went with it
    with pytest.raises(client.ApiException) as info:
        batch.create_namespaced_job("nowhere", job())
    assert status_of(info.value)["message"] == 'namespaces "nowhere" not found'


def test_dry_run_runs_admission_and_stores_nothing(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    rv = kube.resource_version
    answer = custom.create_namespaced_custom_object(
        "kubeflow.org", "v1beta1", NS, "experiments", experiment(), dry_run="All"
    )
    assert answer["metadata"]["name"] == "exp"
    assert kube.get_object("experiments", NS, "exp") is None and kube.resource_version == rv
    with pytest.raises(client.ApiException) as info:
        custom.create_namespaced_custom_object(
            "kubeflow.org",
            "v1beta1",
            NS,
            "experiments",
            experiment(parallelTrialCount=5),
            dry_run="All",
        )
    assert info.value.status == 400
    assert status_of(info.value)["message"] == (
        'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: '
        "spec.parallelTrialCount: Invalid value: 5: should be less than or equal to spec.maxTrialCount"
    )
    kube.put("namespaces", {"metadata": {"name": "plain"}})
    with pytest.raises(client.ApiException) as info:
        custom.create_namespaced_custom_object(
            "kubeflow.org", "v1beta1", "plain", "experiments", experiment()
        )
    assert "lacks label" in status_of(info.value)["message"]
    assert kube.objects("experiments") == []


def test_watch_from_resource_version_and_resume(kube: KubeEmulator, api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    start = batch.list_namespaced_job(NS).metadata.resource_version
    batch.create_namespaced_job(NS, job("a"))
    batch.patch_namespaced_job("a", NS, {"metadata": {"labels": {"step": "2"}}})
    batch.delete_namespaced_job("a", NS)
    events = _raw_watch(kube, f"/apis/batch/v1/namespaces/{NS}/jobs", start)
    types = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    # The Job controller's status patch is a MODIFIED too.
    assert types[0] == ("ADDED", "a") and types[-1] == ("DELETED", "a")
    assert {t for t, _ in types} == {"ADDED", "MODIFIED", "DELETED"}
    middle = events[1]["object"]["metadata"]["resourceVersion"]
    resumed = _raw_watch(kube, f"/apis/batch/v1/namespaces/{NS}/jobs", middle)
    assert len(resumed) == len(events) - 2
    assert kube.count(verb="watch", resource="jobs") == 2


def _raw_watch(
    kube: KubeEmulator, path: str, rv: str, timeout_s: float = 0.2
) -> list[dict[str, Any]]:
    http = urllib3.PoolManager()
    resp = http.request(
        "GET",
        f"{kube.url}{path}?watch=true&resourceVersion={rv}&timeoutSeconds={timeout_s}",
        preload_content=False,
    )
    lines = b"".join(resp.stream()).splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_watch_with_the_real_client_and_410(kube: KubeEmulator, api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(NS, job("a"))
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=1)
    ]
    assert ("ADDED", "a") in seen  # no resourceVersion: the current objects first
    old = kube.compact() - 5
    with pytest.raises(client.ApiException) as info:
        list(
            watch.Watch().stream(
                batch.list_namespaced_job, NS, resource_version=str(old), timeout_seconds=1
            )
        )
    assert info.value.status == 410
    events = _raw_watch(kube, f"/apis/batch/v1/namespaces/{NS}/jobs", str(old))
    assert (
        events == [{"type": "ERROR", "object": events[0]["object"]}]
        and events[0]["object"]["code"] == 410
        and events[0]["object"]["reason"] == "Expired"
    )


def test_watch_dropped_mid_stream(kube: KubeEmulator) -> None:
    for name in ("a", "b", "c"):
        kube.put("jobs", {**job(name), "metadata": {"name": name, "namespace": NS}})
    kube.drop_watch_after("jobs", events=2)
    http = urllib3.PoolManager(retries=False)
    resp = http.request(
        "GET",
        f"{kube.url}/apis/batch/v1/namespaces/{NS}/jobs?watch=true&timeoutSeconds=0.2",
        preload_content=False,
    )
    got = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in resp.stream():
            got += chunk
    assert len(got.splitlines()) == 2


def test_pod_logs_tail_and_follow(kube: KubeEmulator, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    client.BatchV1Api(api).create_namespaced_job(NS, job())
    pod = kube.objects("pods", NS)[0]["metadata"]["name"]
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_pod_log(pod, NS)
    assert info.value.status == 400 and "is waiting to start: ContainerCreating" in info.value.body
    kube.set_pod_log(NS, pod, "one\ntwo\nthree\n", closed=False)
    assert core.read_namespaced_pod_log(pod, NS, tail_lines=2) == "two\nthree\n"

    def later() -> None:
        kube.append_pod_log(NS, pod, "four\n", close=True)

    timer = threading.Timer(0.1, later)
    timer.start()
    resp = core.read_namespaced_pod_log(pod, NS, follow=True, tail_lines=1, _preload_content=False)
    assert b"".join(resp.stream()).decode() == "three\nfour\n"
    timer.join()
    with pytest.raises(client.ApiException) as info:
        core.read_namespaced_pod_log("nope", NS)
    assert info.value.status == 404


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "accept": self.headers.get("Accept")}).encode()
        self.send_response(404 if "missing" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Content-Digest", "sha256:abc")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield ("127.0.0.1", int(server.server_address[1]))
    server.shutdown()
    server.server_close()


def test_service_proxy_forwards_to_a_real_server(
    kube: KubeEmulator, upstream: tuple[str, int]
) -> None:
    kube.register_proxy("registry", "registry", 5000, upstream)
    http = urllib3.PoolManager()
    base = f"{kube.url}/api/v1/namespaces/registry/services/registry:5000/proxy"
    resp = http.request("GET", f"{base}/v2/repo/manifests/tag?x=1", headers={"Accept": "a/b"})
    assert resp.status == 200
    assert json.loads(resp.data) == {"path": "/v2/repo/manifests/tag?x=1", "accept": "a/b"}
    head = http.request("HEAD", f"{base}/v2/repo/manifests/missing")
    assert head.status == 404 and head.headers["Docker-Content-Digest"] == "sha256:abc"
    resp = http.request("GET", f"{kube.url}/api/v1/namespaces/registry/services/other:5000/proxy/")
    assert resp.status == 404 and json.loads(resp.data)["kind"] == "Status"
    assert kube.count(verb="proxy", resource="services/proxy") == 3


def test_faults_forbid_and_recording(kube: KubeEmulator, api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    kube.fail_next("create", "jobs", code=500)
    with pytest.raises(client.ApiException) as info:
        batch.create_namespaced_job(NS, job())
    assert info.value.status == 500 and kube.objects("jobs") == []
    batch.create_namespaced_job(NS, job())

    kube.forbid("list", "pods", NS)
    with pytest.raises(client.ApiException) as info:
        client.CoreV1Api(api).list_namespaced_pod(NS)
    assert info.value.status == 403
    assert status_of(info.value)["message"] == (
        'pods is forbidden: User "system:serviceaccount:default:launch" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    )

    kube.drop_next("create", "jobs", after_apply=True)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        batch.create_namespaced_job(NS, job("second"))
    assert kube.get_object("jobs", NS, "second") is not None  # applied, answer lost
    kube.drop_next("create", "jobs")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        batch.create_namespaced_job(NS, job("third"))
    assert kube.get_object("jobs", NS, "third") is None
    assert kube.count(verb="create", resource="jobs") == 4
    assert kube.count(method="POST") == 4
    assert all(
        r.path == f"/apis/batch/v1/namespaces/{NS}/jobs" for r in kube.matching(verb="create")
    )


def test_kaniko_controller_success_and_failure(kube: KubeEmulator, api: client.ApiClient) -> None:
    pushed: list[str] = []

    def push(job_obj: dict[str, Any], digest: str) -> str:
        pushed.append(job_obj["metadata"]["name"])
        return "sha256:" + "1" * 64

    kaniko = KanikoController(kube, on_success=push)
    kaniko.auto("succeed")
    client.BatchV1Api(api).create_namespaced_job(NS, job("ok"))
    done = kube.wait_for(
        lambda: any(
            c["type"] == "Complete"
            for c in (kube.get_object("jobs", NS, "ok") or {})
            .get("status", {})
            .get("conditions", [])
        )
    )
    assert done and pushed == ["ok"]
    pod = kube.objects("pods", NS, f"{LABEL_JOB_NAME}=ok")[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated == terminated | {"exitCode": 0, "message": "sha256:" + "1" * 64}

    kube.put("jobs", {**job("bad"), "metadata": {"name": "bad", "namespace": NS}})
    kube._job_created(kube.get_object("jobs", NS, "bad") or {})
    kaniko.fail(NS, "bad", log="error: COPY failed\n")
    pod = kube.objects("pods", NS, f"{LABEL_JOB_NAME}=bad")[0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log == "error: COPY failed\n"
    failed = kube.get_object("jobs", NS, "bad") or {}
    assert [c["type"] for c in failed["status"]["conditions"]] == ["FailureTarget", "Failed"]


def test_katib_controller_trials_status_and_pending(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kubeflow.org", "v1beta1", NS, "experiments", experiment()
    )
    katib = KatibController(kube)
    one, two, three, four = katib.create_trials(
        NS, "exp", [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}, {"lr": 0.4}]
    )
    assert one.name.startswith("exp-") and len(one.name) == len("exp-") + 8
    trial = kube.get_object("trials", NS, one.name) or {}
    assert trial["metadata"]["labels"] == {"launch/user": "ada", LABEL_EXPERIMENT: "exp"}
    assert trial["spec"]["parameterAssignments"] == [{"name": "lr", "value": "0.1"}]
    pod = kube.objects("pods", NS, f"{LABEL_TRIAL}={one.name}")[0]
    assert pod["metadata"]["labels"][LABEL_EXPERIMENT] == "exp"
    assert pod["metadata"]["labels"][LABEL_JOB_NAME] == one.name

    katib.run_trial(NS, one.name)
    katib.succeed_trial(NS, one.name, {"loss": 0.5})
    katib.run_trial(NS, two.name)
    katib.fail_trial(NS, two.name)
    katib.metrics_unavailable(NS, three.name)
    status = (kube.get_object("experiments", NS, "exp") or {})["status"]
    assert (status["trials"], status["trialsSucceeded"], status["trialsFailed"]) == (4, 1, 1)
    assert status["trialMetricsUnavailable"] == 1 and status["trialsPending"] == 1
    assert status["currentOptimalTrial"]["bestTrialName"] == one.name
    assert status["currentOptimalTrial"]["observation"]["metrics"] == [
        {"name": "loss", "latest": "0.5", "min": "0.5", "max": "0.5"}
    ]
    conditions = {
        c["type"]: c["status"]
        for c in (kube.get_object("trials", NS, three.name) or {})["status"]["conditions"]
    }
    assert conditions["MetricsUnavailable"] == "True"

    katib.unschedulable(NS, four.name)
    pod = kube.objects("pods", NS, f"{LABEL_TRIAL}={four.name}")[0]
    assert pod["status"]["conditions"][0]["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in pod["status"]["conditions"][0]["message"]
    katib.image_pull_backoff(NS, four.name)
    pod = kube.objects("pods", NS, f"{LABEL_TRIAL}={four.name}")[0]
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(NS, field_selector=f"involvedObject.name={pod['metadata']['name']}")
        .items
    )
    assert {e.reason for e in events} == {"FailedScheduling", "Failed", "BackOff"}

    workload = katib.kueue_pending(NS, four.name)
    job_uid = (kube.get_object("jobs", NS, four.name) or {})["metadata"]["uid"]
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kueue.x-k8s.io",
        "v1beta2",
        NS,
        "workloads",
        label_selector=f"{LABEL_KUEUE_JOB_UID}={job_uid}",
    )["items"]
    assert [w["metadata"]["name"] for w in found] == [workload["metadata"]["name"]]
    assert {c["type"]: c["status"] for c in found[0]["status"]["conditions"]} == {
        "QuotaReserved": "False",
        "Admitted": "False",
    }

    katib.finish(NS, "exp")
    conditions = {
        c["type"]: c["status"]
        for c in (kube.get_object("experiments", NS, "exp") or {})["status"]["conditions"]
    }
    assert conditions == {"Created": "True", "Running": "False", "Succeeded": "True"}


def test_katib_substitutes_trial_parameters_and_gc_follows_owners(
    kube: KubeEmulator, api: client.ApiClient
) -> None:
    exp = experiment()
    template = exp["spec"]["trialTemplate"]
    template["trialParameters"] = [
        {"name": "learning_rate", "reference": "lr"},
        {"name": "trial", "reference": "${trialSpec.Name}"},
    ]
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--lr=${trialParameters.learning_rate} --name=${trialParameters.trial}"]
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object("kubeflow.org", "v1beta1", NS, "experiments", exp)
    katib = KatibController(kube)
    one, two = katib.create_trials(NS, "exp", [{"lr": 0.1}, {"lr": 0.2}])
    assert (one.pods, two.pods) == ((one.pod,), (two.pod,))
    pod = kube.get_object("pods", NS, one.pod) or {}
    assert pod["spec"]["containers"][0]["args"] == [f"--lr=0.1 --name={one.name}"]
    run_spec = (kube.get_object("trials", NS, two.name) or {})["spec"]["runSpec"]
    assert run_spec["spec"]["template"]["spec"]["containers"][0]["args"] == [
        f"--lr=0.2 --name={two.name}"
    ]
    workload = katib.kueue_pending(NS, two.name)

    # Deleting the Experiment: its Trials, and (owner references) their Jobs, pods, Workloads.
    objects.delete_namespaced_custom_object("kubeflow.org", "v1beta1", NS, "experiments", "exp")
    assert kube.objects("trials", NS) == [] and kube.objects("jobs", NS) == []
    assert kube.objects("pods", NS) == []
    assert kube.get_object("workloads", NS, workload["metadata"]["name"]) is None
