"""`launch doctor`'s checks of who can reach the registry, against the API emulator (the real
`kubernetes` client over HTTP) with deploy/'s own objects: kube-proxy's NodePort addresses as Talos
renders them from deploy/talos/patches/kube-proxy.yaml, and deploy/registry/networkpolicy.yaml.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launch import doctor
from tests import test_doctor
from tests.registry_server import Registry
from tests.test_doctor import (
    LABEL_KEY,
    LABEL_VALUE,
    Setup,
    assert_only_failure,
    by_name,
    deploy_doc,
    healthy_cluster,
    make,
    run,
    settings,
    talos_kube_proxy,
)

registry = test_doctor.registry  # the module-wide real registry fixture


@pytest.fixture
def cluster(tmp_path: Path, registry: Registry) -> Iterator[Setup]:
    """test_doctor's healthy cluster: every check passes until a test breaks one thing."""
    kube = make().start()
    try:
        healthy_cluster(kube, registry)
        yield Setup(kube, str(kube.write_kubeconfig(tmp_path / "kubeconfig")), registry)
        assert kube.real_creates() == []  # doctor never creates anything
    finally:
        kube.stop()


# --------------------------------------------------------------------------- 6. nodeports


@pytest.mark.parametrize(
    ("flags", "detail", "fix"),
    [
        (
            {"nodeport-addresses": None},
            "kube-proxy serves NodePorts on every address of every node",
            "nodeport-addresses: 127.0.0.0/8 (deploy/talos/patches/kube-proxy.yaml)",
        ),
        (
            {"nodeport-addresses": "127.0.0.0/8,192.168.1.0/24"},
            "kube-proxy serves NodePorts on 192.168.1.0/24 besides loopback",
            "limit them to loopback",
        ),
        (
            {"nodeport-addresses": "primary"},
            "kube-proxy serves NodePorts on primary besides loopback",
            "limit them to loopback",
        ),
        (
            {"proxy-mode": "nftables"},
            "kube-proxy runs in `nftables` mode: only iptables mode serves NodePorts on 127.0.0.1",
            "cluster.proxy.mode: iptables",
        ),
        (
            {"iptables-localhost-nodeports": "false"},
            "does not serve NodePorts on 127.0.0.1 (--iptables-localhost-nodeports=false)",
            "iptables-localhost-nodeports left at its default",
        ),
    ],
    ids=["every-address", "lan-range", "primary", "nftables", "no-localhost"],
)
def test_nodeports_misconfigured(
    cluster: Setup, flags: dict[str, str | None], detail: str, fix: str
) -> None:
    cluster.kube.put("daemonsets", talos_kube_proxy(**flags))
    check = assert_only_failure(run(cluster), "nodeports")
    assert (
        detail in check.detail
        and "(read from the command of DaemonSet kube-system/kube-proxy)" in check.detail
    )
    assert fix in (check.fix or "")
    assert "talosctl -n <control-plane> upgrade-k8s" in (check.fix or "")  # the DaemonSet re-sync


def test_nodeports_forbidden_is_skipped_with_a_hint(cluster: Setup) -> None:
    cluster.kube.forbid("get", "daemonsets", "kube-system")
    named = run(cluster)
    check = named["nodeports"]
    assert check.ok is None and doctor.passed(list(named.values()))
    assert check.detail == (
        "skipped: cannot read kube-proxy config (needs get on daemonsets in kube-system)"
    )
    assert "kubectl auth can-i get daemonsets.apps -n kube-system" in (check.fix or "")
    assert "launch-user.yaml" in (check.fix or "")


def test_nodeports_without_kube_proxy_is_skipped(cluster: Setup) -> None:
    cluster.kube.remove("daemonsets", "kube-system", "kube-proxy")
    check = run(cluster)["nodeports"]
    assert check.ok is None and "no DaemonSet kube-system/kube-proxy" in check.detail


@pytest.mark.parametrize(
    ("config", "ok"),
    [("mode: iptables\nnodePortAddresses: [127.0.0.1/32]\n", True), ("mode: iptables\n", False)],
    ids=["loopback", "unset"],
)
def test_nodeports_from_a_config_file(cluster: Setup, config: str, ok: bool) -> None:
    """kubeadm's layout: --config from a ConfigMap volume (its flags are then ignored)."""
    ds = talos_kube_proxy(**{"config": "/var/lib/kube-proxy/config.conf"})
    pod = ds["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}}]
    pod["containers"][0]["volumeMounts"] = [
        {"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"}
    ]
    cluster.kube.put("daemonsets", ds)
    cluster.kube.put(
        "configmaps",
        {
            "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": config},
        },
    )
    check = run(cluster)["nodeports"]
    assert check.ok is ok, check.detail
    assert ("NodePorts on 127.0.0.1/32 only" if ok else "config file") in check.detail


# --------------------------------------------------------------------------- 7. netpolicy


def test_netpolicy_missing(cluster: Setup) -> None:
    cluster.kube.remove("networkpolicies", "launch-system", "registry")
    check = assert_only_failure(run(cluster), "netpolicy")
    assert "no NetworkPolicy in `launch-system` selects the registry's pods" in check.detail
    assert "app.kubernetes.io/name=registry" in check.detail
    assert "kubectl apply -k deploy/registry" in (check.fix or "")


def test_netpolicy_selecting_other_pods_does_not_count(cluster: Setup) -> None:
    policy = deploy_doc("registry/networkpolicy.yaml", "NetworkPolicy")
    policy["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "mlflow"}}
    cluster.kube.put("networkpolicies", policy)
    assert "no NetworkPolicy" in assert_only_failure(run(cluster), "netpolicy").detail


@pytest.mark.parametrize(
    "peers",
    [None, [{"namespaceSelector": {}}], [{"ipBlock": {"cidr": "0.0.0.0/0"}}]],
    ids=["no-from", "all-namespaces", "everywhere"],
)
def test_netpolicy_that_admits_everyone(cluster: Setup, peers: list[Any] | None) -> None:
    wide = deploy_doc("registry/networkpolicy.yaml", "NetworkPolicy")
    wide["metadata"]["name"] = "wide"
    wide["spec"]["ingress"] = [{"from": peers} if peers is not None else {}]
    cluster.kube.put("networkpolicies", wide)
    check = assert_only_failure(run(cluster), "netpolicy")
    assert "NetworkPolicy `wide` admits every source" in check.detail
    assert "kubectl -n launch-system edit networkpolicy wide" in (check.fix or "")


def test_netpolicy_that_leaves_out_the_user_namespace(tmp_path: Path, registry: Registry) -> None:
    labels = {LABEL_KEY: LABEL_VALUE}
    kube = make(namespaces={"default": labels, "ml": labels, "launch-system": {}}).start()
    try:
        healthy_cluster(kube, registry)
        kube.put("serviceaccounts", {"metadata": {"name": "launch-builder", "namespace": "ml"}})
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        named = by_name(doctor.run_checks(settings(namespace="ml"), kubeconfig=str(path), env={}))
        check = assert_only_failure(named, "netpolicy")
        assert "do not admit pods of `ml`" in check.detail
        assert "add `ml` to the namespaces in deploy/registry/networkpolicy.yaml" in (
            check.fix or ""
        )
    finally:
        kube.stop()


def test_netpolicy_forbidden_is_skipped_with_a_hint(cluster: Setup) -> None:
    cluster.kube.forbid("list", "networkpolicies", "launch-system")
    named = run(cluster)
    check = named["netpolicy"]
    assert check.ok is None and doctor.passed(list(named.values()))
    assert check.detail == (
        "skipped: cannot read NetworkPolicies (needs list on networkpolicies in launch-system)"
    )
    assert "kubectl auth can-i list networkpolicies.networking.k8s.io -n launch-system" in (
        check.fix or ""
    )
