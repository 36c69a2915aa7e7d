"""deploy/ checked offline: every manifest parses and validates, and names shared with code agree.

- built-in kinds: kubernetes-validate --strict at the Kubernetes version Talos 1.13 installs;
- Kueue objects: the v1beta2 openAPIV3Schema of the Kueue v0.19 CRDs in ../shared/schemas;
- Kubeflow Trainer objects: the v1alpha1 openAPIV3Schema of the Trainer v2.3 CRDs there, strict;
- Talos machine-config patches: Talos 1.13's JSON schema in ../shared/schemas (draft 2020-12);
- contract: names in deploy/ == the constants in launch/ (config, kaniko, katib).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from launch import kaniko, names, settings, trainjob
from launch.doctor_services import selects
from tests.rbac_rules import Request, allows, rule_allows

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SCHEMAS = ROOT.parent / "shared" / "schemas"
TALOS_SCHEMA = SCHEMAS / "talos-v1.13" / "config.schema.json"
KUEUE_CRDS = SCHEMAS / "kueue-v0.19"
TRAINER_CRDS = SCHEMAS / "trainer-v2.3"
TRAINER_GROUP = "trainer.kubeflow.org"
QUICKSTART = ROOT / "examples" / "quickstart"

K8S_VERSION = "1.36.0"  # Talos 1.13's default Kubernetes (support matrix: 1.31-1.36)
TALOS_PATCHES = DEPLOY / "talos" / "patches"
NOT_MANIFESTS = {  # YAML under deploy/ that is not a Kubernetes object
    DEPLOY / "talos" / "schematic-nvidia.yaml",  # Image Factory schematic
    DEPLOY / "talos" / "gpu-operator" / "values.yaml",  # Helm values
}
KUEUE_PLURAL = {
    "ClusterQueue": "clusterqueues",
    "LocalQueue": "localqueues",
    "ResourceFlavor": "resourceflavors",
    "WorkloadPriorityClass": "workloadpriorityclasses",
}
USER_NAMESPACE = settings.KEYS["namespace"].default


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def _manifest_files() -> list[Path]:
    return [
        p
        for p in _yaml_files()
        if p.name != "kustomization.yaml"
        and p not in NOT_MANIFESTS
        and TALOS_PATCHES not in p.parents
    ]


def _objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in _manifest_files():
        for doc in _load(path):
            yield path, doc


def _find(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _objects()
        if doc["kind"] == kind
        and doc["metadata"]["name"] == name
        and (namespace is None or doc["metadata"].get("namespace") == namespace)
    ]
    # The same object may sit in two kustomizations (launch-system in registry/ and mlflow/).
    found = list({json.dumps(doc, sort_keys=True): doc for doc in found}.values())
    assert len(found) == 1, f"expected one {kind} {namespace}/{name} in deploy/, found {len(found)}"
    return found[0]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} missing: clone the shared/ checkout beside the repository")
    return path


# --------------------------------------------------------------------------- parsing, kustomize


def test_deploy_tree_has_every_part() -> None:
    for part in ("registry", "talos", "katib", "mlflow", "kueue", "storage", "trainer"):
        assert (DEPLOY / part).is_dir(), part
    assert (DEPLOY / "talos" / "README.md").is_file()


@pytest.mark.parametrize("path", _yaml_files(), ids=_id)
def test_every_yaml_parses(path: Path) -> None:
    docs = _load(path)
    assert docs, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def _kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", _kustomizations(), ids=_id)
def test_kustomization_lists_only_existing_files_and_pinned_remotes(path: Path) -> None:
    (doc,) = _load(path)
    assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert doc["kind"] == "Kustomization"
    entries = list(doc.get("resources", []))
    entries += [p["path"] for p in doc.get("patches", []) if "path" in p]
    assert entries
    for entry in entries:
        if entry.startswith(("github.com/", "https://", "http://")):
            assert re.search(r"\?ref=v\d+\.\d+\.\d+$", entry), f"unpinned remote base {entry}"
        else:
            assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"
    listed = {path.parent / e for e in entries}
    for sibling in path.parent.glob("*.yaml"):
        if sibling.name == "kustomization.yaml" or sibling in listed:
            continue
        # Files kept out on purpose say so in their name: a template or a one-off Job.
        assert sibling.name.endswith((".template.yaml", ".job.yaml")), (
            f"{sibling} is neither in {path} nor marked .template/.job"
        )


def test_katib_is_the_pinned_v0_19_standalone_install() -> None:
    (doc,) = _load(DEPLOY / "katib" / "kustomization.yaml")
    assert (
        "github.com/kubeflow/katib/manifests/v1beta1/installs/katib-standalone?ref=v0.19.0"
        in doc["resources"]
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("part", ["registry", "mlflow", "kueue"])
def test_local_kustomizations_render(part: str) -> None:
    """Optional: kubectl's built-in kustomize renders the local directories (no network)."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / part)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout) if d]
    (kust,) = _load(DEPLOY / part / "kustomization.yaml")
    assert len(kinds) == sum(len(_load(DEPLOY / part / r)) for r in kust["resources"])


# --------------------------------------------------------------------------- built-in kinds


def _builtin_objects() -> list[tuple[Path, dict[str, Any]]]:
    custom = ("kueue.x-k8s.io/", f"{TRAINER_GROUP}/")
    return [(p, d) for p, d in _objects() if not d["apiVersion"].startswith(custom)]


@pytest.mark.parametrize(
    ("path", "doc"),
    _builtin_objects(),
    ids=[f"{_id(p)}:{d['kind']}/{d['metadata']['name']}" for p, d in _builtin_objects()],
)
def test_builtin_kinds_validate_strictly(path: Path, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_rejects_unknown_fields() -> None:
    """The validator above is not a no-op: a misspelt field fails."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1, "nodeport": 30500}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else None
    if doc["kind"] == "CronJob":
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    if pod is None:
        return []
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


def test_images_are_pinned_by_tag() -> None:
    images = [c["image"] for _, d in _objects() for c in _containers(d)]
    assert images
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{image} is not pinned"


def test_workloads_fit_talos_baseline_pod_security() -> None:
    """Talos enforces `baseline`: no privileged container, hostPort, hostPath or host namespaces."""
    for path, doc in _objects():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{path}: {flag}"
        assert not any("hostPath" in v for v in spec.get("volumes", [])), path
        for c in _containers(doc):
            assert not c.get("securityContext", {}).get("privileged"), path
            assert not any("hostPort" in p for p in c.get("ports", [])), path


# --------------------------------------------------------------------------- Kueue


@cache
def _kueue_schema(kind: str) -> dict[str, Any]:
    (crd,) = _load(_need(KUEUE_CRDS / f"{KUEUE_PLURAL[kind]}.yaml"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    assert version["served"] and version["storage"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _kueue_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p, d in _objects() if d["apiVersion"].startswith("kueue.x-k8s.io/")]


def test_kueue_objects_exist() -> None:
    kinds = {d["kind"] for _, d in _kueue_objects()}
    assert kinds == set(KUEUE_PLURAL)


@pytest.mark.parametrize(
    ("path", "doc"),
    _kueue_objects(),
    ids=[f"{d['kind']}/{d['metadata']['name']}" for _, d in _kueue_objects()],
)
def test_kueue_objects_validate_against_crd_schema(path: Path, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    jsonschema.Draft202012Validator(_kueue_schema(doc["kind"])).validate(doc)
    cluster_scoped = doc["kind"] != "LocalQueue"
    assert ("namespace" not in doc["metadata"]) == cluster_scoped


def test_kueue_schema_rejects_a_bad_cluster_queue() -> None:
    bad = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "x"},
        "spec": {"resourceGroups": [{"coveredResources": ["cpu"], "flavors": [{"name": "f"}]}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_kueue_schema("ClusterQueue")).validate(bad)


def test_cluster_queue_covers_cpu_memory_and_gpu() -> None:
    (cq,) = [d for _, d in _kueue_objects() if d["kind"] == "ClusterQueue"]
    flavors = {d["metadata"]["name"] for _, d in _kueue_objects() if d["kind"] == "ResourceFlavor"}
    for group in cq["spec"]["resourceGroups"]:
        covered = group["coveredResources"]
        assert {"cpu", "memory", "nvidia.com/gpu"} <= set(covered)
        for flavor in group["flavors"]:
            assert flavor["name"] in flavors
            assert [r["name"] for r in flavor["resources"]] == covered


def test_local_queue_is_in_the_user_namespace_and_not_the_defaulting_name() -> None:
    (lq,) = [d for _, d in _kueue_objects() if d["kind"] == "LocalQueue"]
    assert lq["metadata"]["namespace"] == USER_NAMESPACE
    assert lq["metadata"]["name"] != "default"  # Kueue would queue every Job, builds included
    cqs = {d["metadata"]["name"] for _, d in _kueue_objects() if d["kind"] == "ClusterQueue"}
    assert lq["spec"]["clusterQueue"] in cqs


# --------------------------------------------------------------------------- Kubeflow Trainer

TRAINER_MANAGER = "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0"
TRAINER_RUNTIMES = "https://github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=v2.3.0"
LAUNCH_RUNTIME = DEPLOY / "trainer" / "runtimes" / "launch-torch.yaml"


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server does for `kubectl apply` (its
    default --validate=strict): every object with `properties` and neither additionalProperties
    nor x-kubernetes-preserve-unknown-fields gets additionalProperties: false."""
    if isinstance(schema, list):
        return [_strict(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _trainer_crd(plural: str) -> dict[str, Any]:
    (crd,) = _load(_need(TRAINER_CRDS / f"{TRAINER_GROUP}_{plural}.yaml"))
    assert crd["metadata"]["name"] == f"{plural}.{TRAINER_GROUP}"
    return crd


def _trainer_validator(plural: str) -> jsonschema.Draft202012Validator:
    (version,) = _trainer_crd(plural)["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    return jsonschema.Draft202012Validator(_strict(version["schema"]["openAPIV3Schema"]))


def _trainer_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p, d in _objects() if d["apiVersion"].startswith(f"{TRAINER_GROUP}/")]


def test_trainer_is_the_pinned_v2_3_install_with_runtimes_as_a_second_step() -> None:
    (manager,) = _load(DEPLOY / "trainer" / "kustomization.yaml")
    assert manager["resources"] == [TRAINER_MANAGER]
    (runtimes,) = _load(DEPLOY / "trainer" / "runtimes" / "kustomization.yaml")
    # Upstream's runtimes (torch-distributed, launch's default) and launch's own. Not in the
    # first kustomization: they need the CRDs and the Trainer's webhook up first.
    assert runtimes["resources"] == [TRAINER_RUNTIMES, LAUNCH_RUNTIME.name]
    assert trainjob.DEFAULT_RUNTIME == "torch-distributed"  # the one upstream's runtimes install
    # `launch doctor` and docs/cluster-setup.md give the same commands.
    docs = (ROOT / "docs" / "cluster-setup.md").read_text()
    for command in (
        "kubectl apply --server-side -k deploy/trainer",
        "kubectl apply --server-side -k deploy/trainer/runtimes",
        "kubectl -n kubeflow rollout restart deployment/katib-controller",
    ):
        assert command in docs, command


def test_trainer_objects_exist() -> None:
    assert [(d["kind"], d["metadata"]["name"]) for _, d in _trainer_objects()] == [
        ("ClusterTrainingRuntime", "launch-torch")
    ]


@pytest.mark.parametrize(
    ("path", "doc"),
    _trainer_objects(),
    ids=[f"{d['kind']}/{d['metadata']['name']}" for _, d in _trainer_objects()],
)
def test_trainer_objects_validate_against_crd_schema(path: Path, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == trainjob.API_VERSION
    assert doc["kind"] == trainjob.RUNTIME_KIND
    assert "namespace" not in doc["metadata"]  # cluster-scoped
    _trainer_validator("clustertrainingruntimes").validate(doc)


def test_trainer_schema_rejects_a_bad_runtime() -> None:
    """The strict validator above is not a no-op: a misspelt field and a wrong type fail."""
    validator = _trainer_validator("clustertrainingruntimes")
    good = _load(LAUNCH_RUNTIME)[0]
    validator.validate(good)
    for path, value in (("backofflimit", 0), ("backoffLimit", "0")):
        bad = json.loads(json.dumps(good))
        bad["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][path] = value
        assert not validator.is_valid(bad), path


def _node_job(runtime: dict[str, Any]) -> dict[str, Any]:
    (job,) = [
        j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"] if j["name"] == "node"
    ]
    return dict(job)


def test_launch_runtime_is_upstream_torch_with_a_fail_fast_policy() -> None:
    (ours,) = _load(LAUNCH_RUNTIME)
    job = _node_job(ours)
    assert job["name"] == trainjob.NODE_JOB
    spec = job["template"]["spec"]
    pod = spec["template"]["spec"]
    # A crash fails the trial at once: no in-place restarts (JobSet's webhook would default an
    # empty restartPolicy to OnFailure), no pod retries (a Job's backoffLimit defaults to 6).
    assert pod["restartPolicy"] == "Never"
    assert spec["backoffLimit"] == 0
    # Only disruptions (preemption, drain) are not counted; Kubernetes allows podFailurePolicy
    # only with restartPolicy Never, one of onExitCodes/onPodConditions per rule.
    assert spec["podFailurePolicy"] == {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        ]
    }
    # The Trainer's webhook (pkg/webhooks/trainingruntime_webhook.go validateReplicatedJobs):
    # the trainer-ancestor Job has one replica and a container named `node`.
    assert job["template"]["metadata"]["labels"] == {
        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
    }
    assert job.get("replicas", 1) == 1
    assert [c["name"] for c in pod["containers"]] == [trainjob.NODE_CONTAINER]
    # The node Job is a valid batch/v1 Job spec (strict, at the cluster's Kubernetes version).
    wrapped = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}, "spec": spec}
    kubernetes_validate.validate(wrapped, K8S_VERSION, strict=True)
    # Everything else is upstream's torch-distributed (Trainer v2.3.0), the same torch mlPolicy.
    (upstream,) = _load(_need(TRAINER_CRDS / "torch_distributed.runtime.yaml"))
    assert upstream["metadata"]["name"] == trainjob.DEFAULT_RUNTIME
    same = json.loads(json.dumps(ours))
    same["metadata"] = upstream["metadata"]
    node = _node_job(same)["template"]["spec"]
    del node["backoffLimit"], node["podFailurePolicy"], node["template"]["spec"]["restartPolicy"]
    assert same == upstream
    assert ours["spec"]["mlPolicy"] == {"numNodes": 1, "torch": {}}


def test_katib_names_match_the_trainer_crds() -> None:
    """What Katib needs for TrainJob trials, named from the Trainer v2.3 CRD: the katib-config
    trial resource `Kind.version.group` and the controller's rules on its plural. Katib v0.19.0's
    standalone install (deploy/katib, unpatched) ships both: katib-config.yaml lists
    TrainJob.v1alpha1.trainer.kubeflow.org and components/controller/rbac.yaml grants exactly
    KATIB_CONTROLLER_RULES (read there at the tag; tests/test_doctor_trainer.py checks a
    cluster's katib-config)."""
    crd = _trainer_crd("trainjobs")
    names_ = crd["spec"]["names"]
    (version,) = crd["spec"]["versions"]
    assert crd["spec"]["scope"] == "Namespaced"
    resource = f"{names_['kind']}.{version['name']}.{crd['spec']['group']}"
    assert resource == trainjob.KATIB_TRIAL_RESOURCE
    trainjobs, jobsets = trainjob.KATIB_CONTROLLER_RULES
    assert trainjobs["apiGroups"] == [crd["spec"]["group"]]
    assert trainjobs["resources"] == [names_["plural"]]
    assert set(trainjobs["verbs"]) == {"create", "get", "list", "watch", "delete"}
    assert jobsets == {
        "apiGroups": ["jobset.x-k8s.io"],
        "resources": ["jobsets"],
        "verbs": ["get", "list", "watch"],
    }
    # deploy/katib takes upstream's katib-config and RBAC as they are: no patch, no generator
    # that could drop the TrainJob entry.
    (kust,) = _load(DEPLOY / "katib" / "kustomization.yaml")
    assert set(kust) == {"apiVersion", "kind", "resources"}
    runtimes = _trainer_crd("clustertrainingruntimes")["spec"]
    assert runtimes["names"]["kind"] == trainjob.RUNTIME_KIND
    assert runtimes["scope"] == "Cluster"


# --------------------------------------------------------------------------- Talos


@cache
def _talos_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(_need(TALOS_SCHEMA).read_text())
    return jsonschema.Draft202012Validator(schema)


def _talos_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(TALOS_PATCHES.glob("*.yaml")) for d in _load(p)]


@pytest.mark.parametrize(
    ("path", "doc"),
    _talos_docs(),
    ids=[f"{p.name}:{d.get('kind', 'v1alpha1.Config')}" for p, d in _talos_docs()],
)
def test_talos_documents_validate_against_the_1_13_schema(path: Path, doc: dict[str, Any]) -> None:
    # The schema's root is a oneOf over every document kind: a `kind:` document
    # (apiVersion v1alpha1) or a v1alpha1.Config patch (machine:/cluster:, no kind).
    _talos_validator().validate(doc)


def test_talos_schema_rejects_machine_registries_and_mirror_tls() -> None:
    validator = _talos_validator()
    legacy = {
        "machine": {"registries": {"mirrors": {"x:1": {"endpoints": ["http://x:1"]}}}},
    }
    assert not validator.is_valid(legacy)
    with_tls = {
        "apiVersion": "v1alpha1",
        "kind": "RegistryMirrorConfig",
        "name": settings.REGISTRY_PULL,
        "endpoints": [{"url": f"http://{settings.REGISTRY_PULL}", "insecureSkipVerify": True}],
    }
    assert not validator.is_valid(with_tls)


def test_no_talos_patch_uses_machine_registries() -> None:
    for path, doc in _talos_docs():
        assert "registries" not in (doc.get("machine") or {}), path


def test_registry_mirror_pulls_the_pull_name_over_plain_http() -> None:
    mirrors = [d for _, d in _talos_docs() if d.get("kind") == "RegistryMirrorConfig"]
    assert len(mirrors) == 1
    (mirror,) = mirrors
    assert mirror["apiVersion"] == "v1alpha1"
    assert mirror["name"] == settings.REGISTRY_PULL  # exactly the host:port images are named by
    assert mirror["endpoints"]
    for endpoint in mirror["endpoints"]:
        url = urlsplit(endpoint["url"])
        assert url.scheme == "http"
        assert url.netloc == settings.REGISTRY_PULL
        assert set(endpoint) <= {"url", "overridePath"}
    # No TLS settings for it anywhere (they would make containerd speak TLS).
    for path in sorted((DEPLOY / "talos").rglob("*.yaml")):
        for doc in _load(path):
            assert doc.get("kind") != "RegistryTLSConfig", path


def test_gpu_patches_load_the_nvidia_modules_and_default_runtime() -> None:
    (worker,) = _load(TALOS_PATCHES / "gpu-worker.yaml")
    modules = [m["name"] for m in worker["machine"]["kernel"]["modules"]]
    assert modules == ["nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset"]
    (runtime,) = _load(TALOS_PATCHES / "gpu-containerd-runtime.yaml")
    (part,) = runtime["machine"]["files"]
    assert part["path"] == "/etc/cri/conf.d/20-customization.part"
    assert part["op"] == "create"
    assert 'default_runtime_name = "nvidia"' in part["content"]


def test_schematic_names_the_nvidia_extensions() -> None:
    (doc,) = _load(DEPLOY / "talos" / "schematic-nvidia.yaml")
    extensions = doc["customization"]["systemExtensions"]["officialExtensions"]
    assert extensions == [
        "siderolabs/nonfree-kmod-nvidia-production",
        "siderolabs/nvidia-container-toolkit-production",
    ]


def test_gpu_operator_leaves_driver_and_toolkit_to_talos() -> None:
    (values,) = _load(DEPLOY / "talos" / "gpu-operator" / "values.yaml")
    assert values["driver"]["enabled"] is False
    assert values["toolkit"]["enabled"] is False
    assert values["hostPaths"]["driverInstallDir"] == "/usr/local"
    ns = _find("Namespace", "gpu-operator")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


# --------------------------------------------------------------------------- contract with code


def _push() -> tuple[str, str, int]:
    """(service, namespace, port) of settings.REGISTRY_PUSH (`<svc>.<ns>.svc.cluster.local:<port>`)."""
    host, _, port = settings.REGISTRY_PUSH.rpartition(":")
    match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", host)
    assert match, settings.REGISTRY_PUSH
    return match[1], match[2], int(port)


def test_contract_registry_service_is_the_push_name() -> None:
    name, namespace, port = _push()
    assert settings.KEYS["registry"].default == settings.REGISTRY_PUSH
    service = _find("Service", name, namespace)
    assert port in [p["port"] for p in service["spec"]["ports"]]
    _find("Namespace", namespace)
    deployment = _find("Deployment", name, namespace)
    (entry,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    (gate,) = [c for c in _containers(deployment) if c.get("ports")]
    assert [p["name"] for p in gate["ports"]] == [entry["targetPort"]]  # the Service hits the gate
    env = {e["name"]: e.get("value") for c in _containers(deployment) for e in c.get("env", [])}
    assert env["REGISTRY_HTTP_ADDR"] == "127.0.0.1:5001"  # Distribution: loopback only


def test_contract_node_port_is_the_pull_name() -> None:
    name, namespace, port = _push()
    host, _, pull_port = settings.REGISTRY_PULL.rpartition(":")
    assert settings.KEYS["registry_pull"].default == settings.REGISTRY_PULL
    assert host == "127.0.0.1"  # containerd reaches a NodePort on the node's loopback
    service = _find("Service", name, namespace)
    assert service["spec"]["type"] == "NodePort"
    (entry,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert entry["nodePort"] == int(pull_port)


def test_contract_git_secret_template_matches_kaniko() -> None:
    path = DEPLOY / "registry" / "git-credentials.secret.template.yaml"
    (secret,) = _load(path)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == settings.KEYS["git_secret"].default
    assert secret["metadata"]["namespace"] == USER_NAMESPACE
    assert secret["type"] == "kubernetes.io/basic-auth"
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert keys == {kaniko.GIT_SECRET_USERNAME_KEY, kaniko.GIT_SECRET_PASSWORD_KEY}
    assert all(v == "" for v in secret.get("stringData", {}).values()), "a template holds no values"
    assert "data" not in secret
    # The Job launch renders reads exactly these names.
    job = kaniko.render_build_job(
        name="b",
        namespace=USER_NAMESPACE,
        context="git://example.com/o/r.git#refs/heads/main#" + "0" * 40,
        destination=f"{settings.REGISTRY_PUSH}/r:x",
        cache_repo=f"{settings.REGISTRY_PUSH}/r/cache",
        git_secret=settings.KEYS["git_secret"].default,
        service_account=settings.KEYS["build_service_account"].default,
    )
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in _containers(job)
        for e in c.get("env", [])
        if "valueFrom" in e
    }
    assert refs == {(secret["metadata"]["name"], k) for k in keys}
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_contract_build_service_account() -> None:
    name = settings.KEYS["build_service_account"].default
    sa = _find("ServiceAccount", name, USER_NAMESPACE)
    assert sa["automountServiceAccountToken"] is False  # Kaniko never calls the API


def test_contract_user_namespace_has_the_katib_label() -> None:
    ns = _find("Namespace", USER_NAMESPACE)
    assert ns["metadata"]["labels"]["katib.kubeflow.org/metrics-collector-injection"] == "enabled"


def test_contract_katib_namespace_label_constant() -> None:
    key, value = names.NAMESPACE_LABEL
    assert _find("Namespace", USER_NAMESPACE)["metadata"]["labels"][key] == value


def test_contract_kueue_label_constants() -> None:
    assert names.KUEUE_QUEUE_LABEL == "kueue.x-k8s.io/queue-name"
    assert names.KUEUE_PRIORITY_LABEL == "kueue.x-k8s.io/priority-class"


def _rules(kind: str, name: str, namespace: str | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _find(kind, name, namespace)["rules"]
    return rules


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


def test_contract_launch_user_role_covers_what_launch_does() -> None:
    rules = _rules("Role", "launch-user", USER_NAMESPACE)
    for group, resource, verb in [
        ("kubeflow.org", "experiments", "create"),
        ("kubeflow.org", "experiments", "delete"),
        ("kubeflow.org", "experiments", "watch"),
        ("kubeflow.org", "trials", "list"),
        ("kubeflow.org", "suggestions", "get"),
        ("batch", "jobs", "create"),
        ("", "pods", "watch"),
        ("", "pods/log", "get"),
        ("", "events", "list"),
        ("", "events", "watch"),
        ("kueue.x-k8s.io", "workloads", "watch"),
    ]:
        assert _allows(rules, group, resource, verb), (group, resource, verb)
    assert not any("secrets" in r["resources"] for r in rules)
    assert not any("pods/attach" in r["resources"] for r in rules)  # contexts go via the registry
    name, namespace, port = _push()
    proxy = _rules("Role", "launch-user", namespace)
    (rule,) = [r for r in proxy if "services/proxy" in r["resources"]]
    assert rule["verbs"] == ["get", "create", "update", "patch"]  # HEAD; POST, PUT, PATCH
    assert {name, f"{name}:{port}"} <= set(rule["resourceNames"])
    cluster = _rules("ClusterRole", "launch-user", None)
    assert _allows(cluster, "", "namespaces", "get")


def test_contract_mlflow_allows_its_in_cluster_name_and_localhost() -> None:
    service = _find("Service", "mlflow", "launch-system")
    (port,) = [p["port"] for p in service["spec"]["ports"]]
    (container,) = _containers(_find("Deployment", "mlflow", "launch-system"))
    args = container["command"] + container.get("args", [])
    (flag,) = [a for a in args if a.startswith("--allowed-hosts=")]
    hosts = flag.split("=", 1)[1].split(",")
    from fnmatch import fnmatch

    def allowed(host: str) -> bool:
        return any(fnmatch(host, h) if "*" in h else host == h for h in hosts)

    assert allowed(f"mlflow.launch-system.svc.cluster.local:{port}")
    assert allowed(f"mlflow.launch-system:{port}")
    assert allowed("localhost:5000")
    assert allowed("127.0.0.1:5000")
    assert not allowed("attacker.example.com")
    assert "--artifacts-destination=/mlflow/artifacts" in args
    assert "--workers=1" in args  # SQLite backend: one writer process


# --------------------------------------------------------------------------- example Dockerfile


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    lines = dockerfile.read_text().replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            op, _, rest = stripped.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_quickstart_dockerfile_installs_the_lock_before_copying_the_source() -> None:
    steps = _instructions(QUICKSTART / "Dockerfile")
    ops = [op for op, _ in steps]
    assert ops[0] == "FROM" and ":" in steps[0][1] and not steps[0][1].endswith(":latest")
    copy_lock = next(
        i for i, (op, rest) in enumerate(steps) if op == "COPY" and "requirements.lock" in rest
    )
    # Paths are relative to the build context, the repository root.
    assert steps[copy_lock][1].startswith("examples/quickstart/requirements.lock ")
    install = next(i for i, (op, rest) in enumerate(steps) if op == "RUN" and "pip install" in rest)
    copy_all = next(i for i, (op, rest) in enumerate(steps) if op == "COPY" and rest == ". .")
    workdir = next(i for i, (op, _) in enumerate(steps) if op == "WORKDIR")
    assert workdir < copy_lock < install < copy_all == len(steps) - 1
    assert "--require-hashes" in steps[install][1]


def test_quickstart_lock_pins_every_package_with_hashes() -> None:
    text = (QUICKSTART / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)(==[^\s\\]+)?", text, flags=re.M)
    names = {name.lower() for name, _ in entries}
    assert all(pin for _, pin in entries), "every requirement is pinned with =="
    assert {"numpy", "draccus", "tensorboardx", "mlflow-skinny"} <= names
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if block.strip())


def test_quickstart_ignore_file_applies_to_the_repo_root_context() -> None:
    # Kaniko (and BuildKit) read <Dockerfile>.dockerignore before <context>/.dockerignore.
    ignore = (QUICKSTART / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = {line.strip() for line in ignore if line.strip() and not line.startswith("#")}
    assert ".git" in patterns
    for needed in ("examples", "examples/quickstart", "examples/quickstart/requirements.lock"):
        assert needed not in patterns


# --------------------------------------------------------------------------- who reaches the registry

# Talos' defaults (cluster.network.podSubnets / serviceSubnets): no node range may overlap them.
TALOS_POD_CIDR, TALOS_SERVICE_CIDR = "10.244.0.0/16", "10.96.0.0/12"


def _kube_proxy_flags() -> dict[str, list[str]]:
    """kube-proxy's flags as Talos 1.13 renders deploy/talos/patches/kube-proxy.yaml (getProxyArgs
    merges cluster.proxy.extraArgs over its own; argsbuilder writes `--name=value` per value),
    read back by the parser `launch doctor` uses on the DaemonSet."""
    from launch.doctor_services import _flags

    (patch,) = _load(TALOS_PATCHES / "kube-proxy.yaml")
    proxy = patch["cluster"]["proxy"]
    args: dict[str, list[str]] = {"proxy-mode": [proxy.get("mode", "nftables")]}
    for key, value in proxy.get("extraArgs", {}).items():
        args[key] = value if isinstance(value, list) else [value]
    return _flags([f"--{k}={v}" for k, values in sorted(args.items()) for v in values])


def test_kube_proxy_serves_node_ports_on_loopback_only() -> None:
    flags = _kube_proxy_flags()
    # Talos 1.13 defaults to nftables for Kubernetes >= 1.31; only iptables serves 127.0.0.1.
    assert flags["proxy-mode"] == ["iptables"]
    ranges = [
        ipaddress.ip_network(x, strict=False)
        for value in flags["nodeport-addresses"]
        for x in value.split(",")
    ]
    loopback = ipaddress.ip_network("127.0.0.0/8")
    assert ranges and all(r.version == 4 and r.subnet_of(loopback) for r in ranges)
    pull_host = settings.REGISTRY_PULL.rpartition(":")[0]
    assert any(ipaddress.ip_address(pull_host) in r for r in ranges)  # nodes still pull
    assert "iptables-localhost-nodeports" not in flags  # its default (true) sets route_localnet


def _registry_pod_labels() -> dict[str, str]:
    name, namespace, _ = _push()
    labels: dict[str, str] = _find("Deployment", name, namespace)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def _policy_ports_match_the_container(policy: dict[str, Any]) -> None:
    name, namespace, _ = _push()
    containers = _containers(_find("Deployment", name, namespace))
    # Only the gate has a port; Distribution listens on the pod's loopback.
    served = {
        (p.get("protocol", "TCP"), p["containerPort"])
        for c in containers
        for p in c.get("ports", [])
    }
    for rule in policy["spec"]["ingress"]:
        assert {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]} == served


def _ns(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def test_network_policy_admits_only_the_user_namespace_to_the_registry() -> None:
    name, namespace, _ = _push()
    (kust,) = _load(DEPLOY / "registry" / "kustomization.yaml")
    assert "networkpolicy.yaml" in kust["resources"]  # harmless where the CNI ignores it
    policy = _find("NetworkPolicy", name, namespace)
    labels = _registry_pod_labels()
    assert selects(policy["spec"]["podSelector"], labels)
    assert selects({"matchLabels": _find("Service", name, namespace)["spec"]["selector"]}, labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert peers, "a rule without `from` admits every source"
    for peer in peers:
        # Only namespace selectors, each admitting the user namespace and no other: no bare
        # podSelector (pods of launch-system), no ipBlock (may match pods, depending on the CNI).
        assert set(peer) <= {"namespaceSelector", "podSelector"} and "namespaceSelector" in peer
        selector = peer["namespaceSelector"]
        assert selects(selector, _ns(USER_NAMESPACE))
        for other in ("launch-system", "kube-system", "kubeflow", "kueue-system", "other"):
            assert not selects(selector, _ns(other)), other
        assert not selects(selector, {}), "must name the namespace, not a label anyone can set"
    _policy_ports_match_the_container(policy)


def test_node_network_policy_template_admits_addresses_only() -> None:
    (policy,) = _load(DEPLOY / "registry" / "nodes.networkpolicy.template.yaml")
    assert policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["namespace"] == _push()[1]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert selects(policy["spec"]["podSelector"], _registry_pod_labels())
    cluster = [ipaddress.ip_network(c) for c in (TALOS_POD_CIDR, TALOS_SERVICE_CIDR)]
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            assert set(peer) == {"ipBlock"}
            block = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            assert block.prefixlen >= 8 and not any(block.overlaps(c) for c in cluster)
    _policy_ports_match_the_container(policy)


def test_registry_deletes_are_disabled_except_in_the_gc_job() -> None:
    name, namespace, _ = _push()
    env = {
        e["name"]: e.get("value")
        for c in _containers(_find("Deployment", name, namespace))
        for e in c.get("env", [])
    }
    assert env["REGISTRY_STORAGE_DELETE_ENABLED"] == "false"
    (job,) = _load(DEPLOY / "registry" / "registry-gc.job.yaml")
    (gc,) = _containers(job)
    assert gc["command"][:2] == ["registry", "garbage-collect"]
    assert {"name": "REGISTRY_STORAGE_DELETE_ENABLED", "value": "true"} in gc["env"]
    # The documented window turns deletes on and off again.
    readme = (DEPLOY / "registry" / "README.md").read_text()
    on = readme.index("set env deployment/registry REGISTRY_STORAGE_DELETE_ENABLED=true")
    off = readme.index("set env deployment/registry REGISTRY_STORAGE_DELETE_ENABLED=false")
    assert on < readme.index("create -f deploy/registry/registry-gc.job.yaml") < off


def test_rbac_matcher_follows_kubernetes_semantics() -> None:
    """tests/rbac_rules.py itself: wildcards, */subresource, resourceNames and named requests."""
    get = Request("get", "", "services", "proxy", "registry", "launch-system")
    assert rule_allows({"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]}, get)
    assert rule_allows({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, get)
    assert rule_allows({"apiGroups": [""], "resources": ["*/proxy"], "verbs": ["get"]}, get)
    assert not rule_allows({"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}, get)
    assert not rule_allows({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}, get)
    named = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
    named["resourceNames"] = ["x"]
    assert rule_allows(named, Request("get", "", "secrets", name="x"))
    assert not rule_allows(named, Request("list", "", "secrets"))  # a list names nothing
    assert not rule_allows(named, Request("get", "", "secrets", name="y"))


def test_launch_users_cannot_delete_through_the_proxy_or_read_secrets() -> None:
    docs = _load(DEPLOY / "registry" / "launch-user.yaml")
    group = "launch-users"
    assert {d["kind"] for d in docs} == {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    namespaces = {d["metadata"].get("namespace") for d in docs} | {None, "kube-system", "other"}
    services = ["", "registry", "registry:5000", "registry:http", "mlflow", "mlflow:5000"]
    for ns in namespaces:
        for svc in services:
            for verb in ("delete", "deletecollection"):
                req = Request(verb, "", "services", "proxy", svc, ns)
                assert not allows(docs, group, req), req
        for name in ("", settings.KEYS["git_secret"].default, "anything"):
            for verb in ("get", "list", "watch"):
                req = Request(verb, "", "secrets", "", name, ns)
                assert not allows(docs, group, req), req
    # What launch and doctor do still works (the evaluator is not vacuous).
    _, registry_ns, port = _push()
    for req in [
        Request("get", "", "services", "proxy", f"registry:{port}", registry_ns),
        Request("patch", "", "services", "proxy", f"registry:{port}", registry_ns),
        Request("create", "batch", "jobs", namespace=USER_NAMESPACE),
        Request("list", "networking.k8s.io", "networkpolicies", namespace=registry_ns),
        Request("get", "apps", "daemonsets", name="kube-proxy", namespace="kube-system"),
        Request("get", "", "namespaces", name=USER_NAMESPACE),
    ]:
        assert allows(docs, group, req), req
    assert not allows(
        docs, group, Request("get", "apps", "daemonsets", name="x", namespace="kube-system")
    )


def test_launch_users_may_read_what_the_trainer_check_reads_and_no_more() -> None:
    """`launch doctor`'s "trainer" check: the runtime TrainJobs name (any name: a ClusterRole
    rule) and Katib's katib-config by name; no other ConfigMap, and nothing to write."""
    docs = _load(DEPLOY / "registry" / "launch-user.yaml")
    group = "launch-users"
    for runtime in (trainjob.DEFAULT_RUNTIME, "launch-torch"):
        req = Request("get", TRAINER_GROUP, "clustertrainingruntimes", name=runtime)
        assert allows(docs, group, req), req
    assert allows(
        docs, group, Request("get", "", "configmaps", name="katib-config", namespace="kubeflow")
    )
    for req in [
        Request("get", "", "configmaps", name="other", namespace="kubeflow"),
        Request("list", "", "configmaps", namespace="kubeflow"),
        Request("watch", "", "configmaps", namespace="kubeflow"),
        Request("update", "", "configmaps", name="katib-config", namespace="kubeflow"),
        Request("create", TRAINER_GROUP, "clustertrainingruntimes"),
        Request("delete", TRAINER_GROUP, "clustertrainingruntimes", name="launch-torch"),
    ]:
        assert not allows(docs, group, req), req
