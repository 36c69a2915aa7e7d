"""`launch doctor`'s `trainer` check (multi-node trials: Kubeflow Trainer v2.3 TrainJobs) against
the API emulator (the real `kubernetes` client over HTTP): a cluster with the Trainer as
deploy/trainer installs it, then each piece is taken away or hidden by RBAC. A cluster without
the Trainer is skipped, not failed (tests/test_doctor.py's healthy cluster has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launch import doctor, trainjob
from launch.settings import Settings
from tests import test_doctor
from tests.kube_emulator import Resource
from tests.registry_server import Registry
from tests.test_doctor import (
    LABEL_KEY,
    LABEL_VALUE,
    Kube,
    Setup,
    assert_only_failure,
    healthy_cluster,
    make,
    run,
)

registry = test_doctor.registry  # the module-wide real registry fixture

TRAIN_JOBS = Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
RUNTIMES = Resource(
    "trainer.kubeflow.org",
    "v1alpha1",
    "clustertrainingruntimes",
    "ClusterTrainingRuntime",
    namespaced=False,
)
RUNTIME = Settings().trainer_runtime  # what doctor checks by default
ENTRY = trainjob.KATIB_TRIAL_RESOURCE
# kubeflow/katib v0.19.0 manifests/v1beta1/installs/katib-standalone/katib-config.yaml (its
# `init` part and the start of `runtime`), shipped as ConfigMap kubeflow/katib-config, key
# katib-config.yaml (that kustomization's configMapGenerator).
KATIB_CONFIG_V0_19 = """\
apiVersion: config.kubeflow.org/v1beta1
kind: KatibConfig
init:
  certGenerator:
    enable: true
  controller:
    webhookPort: 8443
    trialResources:
      - TrainJob.v1alpha1.trainer.kubeflow.org
      - Job.v1.batch
      - TFJob.v1.kubeflow.org
      - PyTorchJob.v1.kubeflow.org
      - MPIJob.v1.kubeflow.org
      - XGBoostJob.v1.kubeflow.org
runtime:
  metricsCollectors:
    - kind: StdOut
      image: ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0
"""
# The same file in Katib v0.19.0's other installs (katib-external-db, katib-leader-election,
# katib-standalone-postgres, katib-openshift): no TrainJob.
KATIB_CONFIG_WITHOUT_TRAINJOB = KATIB_CONFIG_V0_19.replace(f"      - {ENTRY}\n", "")


class TrainerKube(Kube):
    """test_doctor's emulator plus the Trainer's TrainJob and ClusterTrainingRuntime APIs."""

    @property
    def resources(self) -> list[Resource]:
        return [*super().resources, TRAIN_JOBS, RUNTIMES]


def katib_config(text: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "katib-config", "namespace": "kubeflow"},
        "data": {"katib-config.yaml": text},
    }


def install_trainer(kube: Kube) -> None:
    """What deploy/trainer, deploy/trainer/runtimes and deploy/katib leave on a cluster, as far
    as doctor reads it."""
    kube.put(
        "clustertrainingruntimes",
        {
            "metadata": {"name": RUNTIME, "labels": {"trainer.kubeflow.org/framework": "torch"}},
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}},
        },
    )
    kube.put("configmaps", katib_config(KATIB_CONFIG_V0_19))
    # Trainer's manager overlay: configMapGenerator kubeflow-trainer-public, readable by every
    # authenticated user (manifests/base/rbac/public_configmap_role*.yaml).
    kube.put(
        "configmaps",
        {
            "metadata": {"name": "kubeflow-trainer-public", "namespace": "kubeflow-system"},
            "data": {"kubeflow_trainer_version": "v2.3.0"},
        },
    )


@pytest.fixture
def cluster(tmp_path: Path, registry: Registry) -> Iterator[Setup]:
    """test_doctor's healthy cluster with Kubeflow Trainer installed."""
    labels = {LABEL_KEY: LABEL_VALUE}
    kube = TrainerKube(namespaces={"default": labels, "launch-system": {}}).start()
    try:
        healthy_cluster(kube, registry)
        install_trainer(kube)
        yield Setup(kube, str(kube.write_kubeconfig(tmp_path / "kubeconfig")), registry)
        assert kube.real_creates() == []  # doctor never creates anything
        # Reads only: the API's discovery, the runtime by name, two ConfigMaps by name.
        trainer = [
            r for r in kube.requests if r.resource in ("trainjobs", "clustertrainingruntimes")
        ]
        assert all(r.verb == "get" and r.name == RUNTIME for r in trainer), trainer
    finally:
        kube.stop()


def test_installed(cluster: Setup) -> None:
    named = run(cluster)
    check = named["trainer"]
    assert check.ok is True, check.detail
    assert check.detail.startswith(
        "Kubeflow Trainer v2.3.0 is installed; ClusterTrainingRuntime `launch-torch` exists; "
        "katib-config lists `TrainJob.v1alpha1.trainer.kubeflow.org`: multi-node trials "
        "(--nodes > 1) can run"
    )
    # Not checkable through the API: Katib sets up its TrainJob watch only when it starts.
    assert "kubectl -n kubeflow rollout restart deployment/katib-controller" in check.detail
    assert doctor.passed(list(named.values()))
    assert "PASS  trainer" in doctor.render(list(named.values()))


def test_installed_without_the_public_version_config_map(cluster: Setup) -> None:
    cluster.kube.remove("configmaps", "kubeflow-system", "kubeflow-trainer-public")
    check = run(cluster)["trainer"]
    assert check.ok is True and check.detail.startswith("Kubeflow Trainer is installed; ")


def test_not_installed_is_skipped_with_the_install_commands(
    tmp_path: Path, registry: Registry
) -> None:
    kube = make().start()  # no trainer.kubeflow.org API at all
    try:
        healthy_cluster(kube, registry)
        setup = Setup(kube, str(kube.write_kubeconfig(tmp_path / "kubeconfig")), registry)
        named = run(setup)
        check = named["trainer"]
        assert check.ok is None and doctor.passed(list(named.values()))
        assert check.detail == (
            "skipped: Kubeflow Trainer is not installed (no trainer.kubeflow.org/v1alpha1 "
            "trainjobs API): single-node trials need none, multi-node trials (--nodes > 1) do"
        )
        fix = check.fix or ""
        assert fix.startswith(
            "to run multi-node trials: kubectl apply --server-side -k deploy/trainer;"
        )
        assert "kubectl apply --server-side -k deploy/trainer/runtimes" in fix
        assert "rollout restart deployment/katib-controller" in fix
        assert 'docs/cluster-setup.md, "Multi-node trials"' in fix
        text = doctor.render(list(named.values()))
        assert "SKIP  trainer" in text and "fix: to run multi-node trials" in text
        # Discovery said it all: no object of the Trainer was asked for.
        asked = {r.resource for r in kube.requests}
        assert not asked & {"trainjobs", "clustertrainingruntimes"}
    finally:
        kube.stop()


def test_runtime_missing(cluster: Setup) -> None:
    cluster.kube.remove("clustertrainingruntimes", "", RUNTIME)
    check = assert_only_failure(run(cluster), "trainer")
    assert check.detail == (
        "Kubeflow Trainer v2.3.0 is installed; katib-config lists "
        "`TrainJob.v1alpha1.trainer.kubeflow.org`; but ClusterTrainingRuntime `launch-torch` "
        "does not exist (launch's TrainJobs name it): multi-node trials (--nodes > 1) would fail"
    )
    assert (check.fix or "").startswith("kubectl apply --server-side -k deploy/trainer/runtimes")


def test_katib_config_without_the_trainjob_trial_resource(cluster: Setup) -> None:
    cluster.kube.put("configmaps", katib_config(KATIB_CONFIG_WITHOUT_TRAINJOB))
    check = assert_only_failure(run(cluster), "trainer")
    assert (
        "Katib's katib-config does not list the trial resource "
        "`TrainJob.v1alpha1.trainer.kubeflow.org` (init.controller.trialResources: Job.v1.batch, "
        "TFJob.v1.kubeflow.org, PyTorchJob.v1.kubeflow.org, MPIJob.v1.kubeflow.org, "
        "XGBoostJob.v1.kubeflow.org): multi-node trials (--nodes > 1) would fail"
    ) in check.detail
    assert "ClusterTrainingRuntime `launch-torch` exists" in check.detail
    fix = check.fix or ""
    assert "kubectl -n kubeflow edit configmap katib-config" in fix
    assert fix.index("edit configmap") < fix.index("rollout restart deployment/katib-controller")


@pytest.mark.parametrize(
    ("config", "detail"),
    [
        (None, "ConfigMap kubeflow/katib-config (Katib's config) does not exist"),
        ("{not: [yaml", "ConfigMap kubeflow/katib-config has no readable `katib-config.yaml`"),
    ],
    ids=["missing", "unreadable"],
)
def test_katib_config_missing_or_broken(cluster: Setup, config: str | None, detail: str) -> None:
    if config is None:
        cluster.kube.remove("configmaps", "kubeflow", "katib-config")
    else:
        cluster.kube.put("configmaps", katib_config(config))
    check = assert_only_failure(run(cluster), "trainer")
    assert f"{detail} (Katib reads its trial resources there)" in check.detail
    assert (check.fix or "").startswith("kubectl apply -k deploy/katib")


def test_forbidden_reads_are_skipped_with_a_hint(cluster: Setup) -> None:
    cluster.kube.forbid("get", "clustertrainingruntimes")
    cluster.kube.forbid("get", "configmaps", "kubeflow")
    named = run(cluster)
    check = named["trainer"]
    assert check.ok is None and doctor.passed(list(named.values()))
    assert check.detail == (
        "skipped: Kubeflow Trainer v2.3.0 is installed; cannot read ClusterTrainingRuntime "
        "`launch-torch` (needs get on clustertrainingruntimes) and Katib's katib-config "
        "(needs get on configmaps in kubeflow)"
    )
    fix = check.fix or ""
    assert "kubectl auth can-i get clustertrainingruntimes.trainer.kubeflow.org" in fix
    assert "kubectl auth can-i get configmaps -n kubeflow" in fix
    assert "deploy/registry/launch-user.yaml" in fix


def test_one_forbidden_read_still_skips(cluster: Setup) -> None:
    cluster.kube.forbid("get", "configmaps", "kubeflow")
    check = run(cluster)["trainer"]
    assert check.ok is None
    assert "ClusterTrainingRuntime `launch-torch` exists; cannot read Katib's katib-config" in (
        check.detail
    )


def test_a_problem_found_wins_over_a_forbidden_read(cluster: Setup) -> None:
    cluster.kube.forbid("get", "configmaps", "kubeflow")
    cluster.kube.remove("clustertrainingruntimes", "", RUNTIME)
    check = assert_only_failure(run(cluster), "trainer")
    assert "ClusterTrainingRuntime `launch-torch` does not exist" in check.detail
