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
6. nodeports   - kube-proxy (its DaemonSet's flags, or its config file) serves NodePorts on
                 loopback only and in iptables mode: nodes pull 127.0.0.1:30500, and no node
                 address exposes the registry (skipped where RBAC hides kube-proxy)
7. netpolicy   - a NetworkPolicy selects the registry's pods, admits the namespace's pods and not
                 everyone (skipped where RBAC hides NetworkPolicies; whether the CNI enforces it
                 is not visible through the API)
8. builds      - the build ServiceAccount exists; the git Secret exists (when readable: users
                 normally may not read Secrets, and then doctor says it did not check)
9. mlflow      - a real MLflow API path answers for the tracking URI's host name (`/health`
                 skips MLflow's Host-header check, so it proves nothing)
10. queue      - the Kueue LocalQueue named by the `queue` setting exists and is active
11. trainer    - multi-node trials (`--nodes > 1`): Kubeflow Trainer's TrainJob API is served,
                 the ClusterTrainingRuntime they name exists and Katib's katib-config lists the
                 TrainJob trial resource (skipped where the Trainer is not installed: optional)

A failed early check skips the checks that depend on it. Nothing is created on the cluster:
the only write is a dry-run. Every request has a short timeout, so doctor ends in seconds
even when everything is down. This module runs the checks and renders the report; the checks
live in `doctor_checks` (the cluster's) and `doctor_services` (registry, MLflow). I/O goes
through `cluster` (Kubernetes, its kubeconfig loader included), `registry` and `requests`
(MLflow); no doctor module imports `kubernetes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from launch.doctor_checks import (
    Check,
    State,
    check_api,
    check_builds,
    check_katib,
    check_kubeconfig,
    check_namespace,
    check_queue,
    check_trainer,
    read_namespace,
)
from launch.doctor_services import (
    check_mlflow,
    check_netpolicy,
    check_nodeports,
    check_registry,
)
from launch.errors import LaunchError
from launch.settings import Settings

__all__ = ["Check", "no_cluster", "passed", "render", "run_checks", "to_json"]

DEFAULT_TIMEOUT_S = 3.0


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


def run_checks(
    settings: Settings,
    *,
    kubeconfig: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Check]:
    """Run every check in order (see the module docstring) and return them all.

    `settings` is a `launch.settings.Settings` (typed fields and `.sources`);
    `kubeconfig` (a path, or a `:`-separated list) overrides $KUBECONFIG; `env` (for $KUBECONFIG,
    $HOME, $KUBERNETES_SERVICE_HOST) defaults to os.environ; `timeout_s` bounds every request
    (`DEFAULT_TIMEOUT_S`: a healthy server answers in well under a second; tests on a loaded
    machine pass more).
    No exception escapes for a broken cluster: each problem is a failed Check.
    """
    env = os.environ if env is None else env
    state = State()
    namespace = str(settings.namespace)
    checks: list[Check] = []
    try:
        checks.append(
            _guard(
                "kubeconfig", lambda: check_kubeconfig(settings, kubeconfig, env, state, timeout_s)
            )
        )
        if state.cluster is None:
            checks.append(Check("api", None, state.skip_reason))
        else:
            checks.append(_guard("api", lambda: check_api(state)))
        if state.api_ok:
            read_namespace(state, namespace)
        checks.append(_guard("katib", lambda: check_katib(state, namespace)))
        checks.append(_guard("namespace", lambda: check_namespace(state, namespace)))
        checks.append(_guard("registry", lambda: check_registry(settings, state, timeout_s)))
        checks.append(_guard("nodeports", lambda: check_nodeports(state)))
        checks.append(_guard("netpolicy", lambda: check_netpolicy(settings, state, namespace)))
        checks.append(_guard("builds", lambda: check_builds(settings, state, namespace)))
        checks.append(_guard("mlflow", lambda: check_mlflow(settings, timeout_s)))
        checks.append(_guard("queue", lambda: check_queue(settings, state, namespace)))
        runtime = settings.trainer_runtime
        checks.append(_guard("trainer", lambda: check_trainer(state, runtime)))
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
