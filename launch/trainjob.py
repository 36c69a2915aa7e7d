"""Multi-node trials: a Kubeflow Trainer v2.3 `TrainJob` (`trainer.kubeflow.org/v1alpha1`) as a
Katib trial template, its launcher (`torchrun` or the user's own) and Katib's trial template fields.

Pure: plain dicts and strings; standard library and the core modules (`contract`, `errors`,
`names`, `katib`, `podspec`). Facts are checked against kubeflow/trainer v2.3.0 and kubeflow/katib v0.19.0;
the comments name the upstream file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launch import katib, podspec
from launch.contract import ParamValue
from launch.errors import UsageError
from launch.names import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL, LABEL_VALUE_MAX, _slug
from launch.podspec import TrialResources
from launch.spec import Parameter

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "TrainJob"
RUNTIME_API_GROUP = "trainer.kubeflow.org"
RUNTIME_KIND = "ClusterTrainingRuntime"
# manifests/base/runtimes/torch_distributed.yaml: the PyTorch runtime Trainer v2.3 installs.
DEFAULT_RUNTIME = "torch-distributed"

# pkg/constants/constants.go `Node`: the trainer's replicated Job and its container are both
# "node"; the Trainer copies spec.trainer (image, command, args, env, resourcesPerNode) into the
# container of that name (pkg/runtime/framework/plugins/jobset/builder.go Trainer).
NODE_JOB = "node"
NODE_CONTAINER = "node"

# Katib v0.19 pkg/apis/controller/experiments/v1beta1/constants.go: its defaults for a TrainJob
# trial, rendered explicitly so that the Experiment Katib stores is the one rendered here.
SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
# Rank 0 only (node 0 of the one trainer Job): the metrics collector must read rank 0's event
# files. JobSet labels each pod with its replicated Job (`jobset.sigs.k8s.io/replicatedjob-name`);
# the Job controller of an Indexed Job labels it with its index (Kubernetes >= 1.28, PodIndexLabel).
# The Trainer runs one replica of the trainer Job (builder.go: `Replicas = 1`), so index 0 is one
# pod per trial. Katib's webhook mutates a pod only when it has every one of these labels
# (pkg/webhook/v1beta1/pod/utils.go isPrimaryPod).
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
PRIMARY_POD_LABELS = {REPLICATED_JOB_LABEL: NODE_JOB, COMPLETION_INDEX_LABEL: "0"}

# The katib-config entry that lets Katib create and watch TrainJob trials (manifests/v1beta1/
# installs/katib-standalone/katib-config.yaml `trialResources`), and the rules its controller
# needs (manifests/v1beta1/components/controller/rbac.yaml): TrainJobs it creates, and JobSets its
# pod webhook reads while walking a pod's owners up to the Trial (inject_webhook.go getKatibJob).
KATIB_TRIAL_RESOURCE = "TrainJob.v1alpha1.trainer.kubeflow.org"
KATIB_CONTROLLER_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": ["trainer.kubeflow.org"],
        "resources": ["trainjobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": ["get", "list", "watch"]},
)

# The torch plugin (pkg/runtime/framework/plugins/torch/torch.go EnforceMLPolicy) sets these on
# the node container and refuses a TrainJob whose spec.trainer.env names one (Validate,
# constants.TorchRunReservedEnvNames). torchrun reads `PET_<FLAG>` as its flags' defaults
# (torch/distributed/argparse_util.py `env`), so a bare `torchrun` already knows the node count,
# the processes per node, this node's rank (the Job completion index) and the master
# (`<trainjob>-node-0-0.<trainjob>:29500`). The Trainer never adds `torchrun` itself (only the
# torchtune entrypoint is rewritten): the command must be a launcher.
TORCHRUN_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)

# runtimePatches are keyed by manager, which the Trainer's webhook wants domain-prefixed
# (plugins/jobset/jobset.go Validate: IsDomainPrefixedPath); Kueue writes its own entry.
PATCH_MANAGER = "launch/trial"

_PYTHON_RE = re.compile(r"^python([0-9]+(\.[0-9]+)*)?$")
# Modules that are launchers when run with `python -m`.
_LAUNCHER_MODULES = {
    "torch.distributed.run": "torchrun",
    "torch.distributed.launch": "torch.distributed.launch",
    "accelerate.commands.launch": "accelerate launch",
    "deepspeed.launcher.runner": "deepspeed",
}
_PET_NOTE = (
    "the Trainer sets PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and "
    "PET_MASTER_PORT, which torchrun reads as the defaults of its flags"
)
_RANK0_NOTE = (
    "only node 0's pod is read by Katib's metrics collector: write the TensorBoard files from "
    "global rank 0 (RANK=0)"
)

__all__ = [
    "API_VERSION",
    "DEFAULT_RUNTIME",
    "FAILURE_CONDITION",
    "KATIB_CONTROLLER_RULES",
    "KATIB_TRIAL_RESOURCE",
    "KIND",
    "NODE_CONTAINER",
    "PRIMARY_POD_LABELS",
    "SUCCESS_CONDITION",
    "TORCHRUN_ENV",
    "Launcher",
    "launcher",
    "render_trainjob",
    "trial_args",
    "trial_template_fields",
]


# --------------------------------------------------------------------------- the launcher


@dataclass(frozen=True)
class Launcher:
    """How a trial's command runs on every node: `argv` (the user's, or it behind torchrun),
    `name` (`torchrun`, `accelerate launch`, ...), `added` (launch put torchrun in front) and
    `why`, one sentence for `--dry-run` and the journal."""

    argv: tuple[str, ...]
    name: str
    added: bool
    why: str


def _basename(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _users_launcher(command: Sequence[str]) -> str | None:
    """The launcher the command already starts, if any: looked for before the first `.py` word, so
    `uv run torchrun train.py` counts and `python train.py --launcher=deepspeed` does not."""
    for i, word in enumerate(command):
        if word.endswith((".py", ".sh")):
            return None
        base = _basename(word)
        if base in ("torchrun", "deepspeed"):
            return base
        if base == "accelerate" and command[i + 1 : i + 2] == ["launch"]:
            return "accelerate launch"
        if word == "-m" and i + 1 < len(command):
            return _LAUNCHER_MODULES.get(command[i + 1])
        if word.startswith("-m") and word[2:] in _LAUNCHER_MODULES:
            return _LAUNCHER_MODULES[word[2:]]
    return None


def launcher(command: Sequence[str], *, nodes: int, procs_per_node: int) -> Launcher:
    """Put torchrun in front of the user's command unless it already is a launcher.

    The Trainer's torch runtime only sets the PET_* variables; each node runs the command as is.
    - already a launcher (`torchrun`, `python -m torch.distributed.run`, `accelerate launch`,
      `deepspeed`, also behind `uv run` and the like): kept. torchrun reads PET_*; flags the user
      passes win. accelerate and deepspeed do not read PET_*: the why says so.
    - `python[3[.x]] SCRIPT ...` or `python -m MODULE ...`: the same interpreter runs torchrun's
      module, `python -m torch.distributed.run --nnodes=N --nproc-per-node=P SCRIPT ...` (or
      `... -m MODULE ...`), so torch is imported from the environment the user named.
    - anything else (`python -u train.py`, `uv run train.py`, `./train.sh`): `torchrun --nnodes=N
      --nproc-per-node=P --no-python <command>` (a python with options runs torchrun's module
      itself): each process runs the command exactly; `torchrun` must be on the image's PATH.
    `--nnodes`/`--nproc-per-node` repeat PET_NNODES/PET_NPROC_PER_NODE so the command line says it.
    """
    if not command:
        raise UsageError(
            "no command to run", hint="put the command after `--`, e.g. -- python train.py"
        )
    _check_counts(nodes, procs_per_node)
    argv = tuple(command)
    users = _users_launcher(command)
    if users is not None:
        if users in ("torchrun", "torch.distributed.launch"):
            detail = f"{_PET_NOTE}; flags you pass win"
        else:
            detail = (
                f"{users} does not read the PET_* variables: give it the node count, this node's "
                "rank ($PET_NODE_RANK) and the master ($PET_MASTER_ADDR:$PET_MASTER_PORT) "
                "yourself, from a script (launch quotes every word of the command)"
            )
        return Launcher(
            argv=argv,
            name=users,
            added=False,
            why=f"your command already starts {users}: kept as is on each of {nodes} nodes; "
            f"{detail}; {_RANK0_NOTE}",
        )
    flags = (f"--nnodes={nodes}", f"--nproc-per-node={procs_per_node}")
    python = _PYTHON_RE.match(_basename(command[0])) is not None
    front = (command[0], "-m", "torch.distributed.run") if python else ("torchrun",)
    rest = argv[1:]
    if python and rest and rest[0] == "-m" and len(rest) > 1:
        launched, how = (*front, *flags, *rest), f"{command[0]} -m torch.distributed.run -m"
    elif python and rest and not rest[0].startswith("-"):
        launched, how = (*front, *flags, *rest), f"{command[0]} -m torch.distributed.run"
    else:
        launched = (*front, *flags, "--no-python", *argv)
        how = f"{' '.join(front)} --no-python"
        if not python:
            how += " (torchrun must be on the image's PATH)"
    return Launcher(
        argv=launched,
        name="torchrun",
        added=True,
        why=f"launch runs your command with torchrun ({how}) on each of {nodes} nodes x "
        f"{procs_per_node} processes: {_PET_NOTE}; {_RANK0_NOTE}",
    )


def _check_counts(nodes: int, procs_per_node: int) -> None:
    for value, flag, what in (
        (nodes, "--nodes", "nodes"),
        (procs_per_node, "--gpus", "processes per node"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(
                f"{flag}: expected at least 1 ({what}), got {value!r}",
                hint="pass e.g. `--nodes 2 --gpus 8` (--gpus counts the GPUs of each node)",
            )


def trial_args(
    command: Sequence[str],
    fixed: Mapping[str, ParamValue],
    parameters: Sequence[Parameter],
    *,
    nodes: int,
    procs_per_node: int,
    workdir: str = "",
    configs: Sequence[Mapping[str, ParamValue]] | None = None,
) -> tuple[str, Launcher]:
    """The node container's one `sh -c` string (the batch Job's conventions: `katib.trial_args`)
    with the launcher in front of the user's command, and the launcher decision."""
    found = launcher(command, nodes=nodes, procs_per_node=procs_per_node)
    return katib.trial_args(found.argv, fixed, parameters, workdir, configs), found


# --------------------------------------------------------------------------- the TrainJob


def _check_options(resources: TrialResources, runtime: str) -> None:
    """What a TrainJob cannot carry, refused with the flag to change."""
    podspec.check_name(runtime, "--runtime", "ClusterTrainingRuntime", flag="--runtime")
    reserved = [key for key, _ in resources.env if key in TORCHRUN_ENV]
    if reserved:
        raise UsageError(
            f"--env {', '.join(reserved)}: set by the Kubeflow Trainer on every node "
            "(the TrainJob would be refused)",
            hint="remove it; pass torchrun flags in the command instead",
        )
    # spec.trainer has no imagePullPolicy and runtimePatches cannot set one (v2.3 CRD): the
    # runtime's container decides, i.e. IfNotPresent for an image by digest.
    if resources.image_pull_policy not in (None, "IfNotPresent"):
        raise UsageError(
            f"--image-pull-policy {resources.image_pull_policy}: a multi-node trial (TrainJob) "
            "cannot set the pull policy; its image, pinned by digest, is pulled IfNotPresent",
            hint="drop --image-pull-policy with --nodes > 1",
        )


def _trainer_env(
    env: Mapping[str, str],
    resources: TrialResources,
    secret_keys: Mapping[str, Sequence[str]] | None,
) -> list[dict[str, Any]]:
    """spec.trainer.env: the contract's and the user's variables (`$` escaped), then each key of
    each `--secret-env` Secret as a secretKeyRef.

    A TrainJob has no envFrom (spec.trainer.env only; runtimePatches may not set env on the node
    container, jobset.go Validate), so the caller reads the Secrets' keys (`secret_keys`). As with
    envFrom, an explicit variable wins over a Secret's key, a later Secret over an earlier one,
    and keys that are not variable names are left out.
    """
    out = podspec.container_env(env, resources)
    if not resources.secret_env or secret_keys is None:
        return out  # without their keys the Secrets come as files (`secret_volumes`)
    missing = [name for name in resources.secret_env if name not in secret_keys]
    if missing:
        raise ValueError(f"secret_keys: the keys of Secret(s) {', '.join(missing)} are needed")
    assert secret_keys is not None
    explicit = {item["name"] for item in out}
    from_secrets: dict[str, str] = {}
    for secret in resources.secret_env:
        for key in secret_keys[secret]:
            if key not in explicit and re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
                from_secrets[key] = secret
    for key, secret in from_secrets.items():
        out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return out


def _runtime_patch(
    resources: TrialResources,
    *,
    pod_labels: Mapping[str, str],
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The pod options as one runtimePatches entry on the node Job's pod template: labels, the
    Istio annotation, service account, node selector, tolerations, volumes and the node
    container's mounts (the v2.3 CRD's PodSpecPatch allows exactly these, and no env)."""
    pod_spec: dict[str, Any] = podspec.pod_scheduling(resources)
    if volumes:
        pod_spec["volumes"] = volumes
        pod_spec["containers"] = [{"name": NODE_CONTAINER, "volumeMounts": mounts}]
    template: dict[str, Any] = {
        "metadata": {
            **({"labels": dict(pod_labels)} if pod_labels else {}),
            # An Istio sidecar never exits, so the Job would never complete.
            "annotations": {"sidecar.istio.io/inject": "false"},
        }
    }
    if pod_spec:
        template["spec"] = pod_spec
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {"name": NODE_JOB, "template": {"spec": {"template": template}}}
                    ]
                }
            }
        },
    }


SECRETS_DIR = "/var/run/launch-secrets"  # a --secret-env Secret's keys as files, one dir each


def secret_volumes(
    resources: TrialResources, *, taken: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each `--secret-env` Secret as a read-only volume at `SECRETS_DIR/<name>`: a TrainJob has no
    envFrom and launch may not read a Secret to list its keys, so `secret_prelude` exports the
    files the kubelet writes there."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    used = set(taken)
    for secret in resources.secret_env:
        base = ("secret-" + _slug(secret))[:LABEL_VALUE_MAX].rstrip("-")
        name, n = base, 2
        while name in used:
            name = f"{base[: LABEL_VALUE_MAX - len(str(n)) - 1].rstrip('-')}-{n}"
            n += 1
        used.add(name)
        volumes.append({"name": name, "secret": {"secretName": secret}})
        mounts.append({"name": name, "mountPath": f"{SECRETS_DIR}/{secret}", "readOnly": True})
    return volumes, mounts


def secret_prelude(resources: TrialResources) -> str:
    """Shell text (ending in `&& `, `$` escaped for Kubernetes) that exports each key of the
    `--secret-env` Secrets as envFrom would: a variable already set (the contract's, `--env`)
    wins, a later Secret wins over an earlier one, keys that are not variable names are left
    out. Values lose trailing newlines (`$(cat)`). "" without Secrets."""
    if not resources.secret_env:
        return ""
    dirs = " ".join(shlex.quote(f"{SECRETS_DIR}/{s}") for s in reversed(resources.secret_env))
    text = (
        f'for d in {dirs}; do for f in "$d"/*; do [ -f "$f" ] || continue; k=${{f##*/}}; '
        "case $k in ''|[!A-Za-z_]*|*[!A-Za-z0-9_]*) continue;; esac; "
        'eval "[ -n \\"\\${$k+x}\\" ]" || export "$k=$(cat "$f")"; done; done && '
    )
    return podspec.escape_dollar(text)


def render_trainjob(
    *,
    image: str,
    args: str,
    env: Mapping[str, str],
    resources: TrialResources,
    nodes: int,
    procs_per_node: int | None = None,
    runtime: str = DEFAULT_RUNTIME,
    pod_labels: Mapping[str, str] | None = None,
    secret_keys: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A TrainJob for Katib's `trialSpec`: no metadata name or namespace (Katib sets them).

    `args` is the node container's `sh -c` string (`trial_args`); `env` the contract's variables
    (`contract.trial_env`, without KATIB_TRIAL_NAME, which Katib's pod webhook injects);
    `resources.gpus` counts the GPUs of each node; `procs_per_node` defaults to them (1 without
    GPUs). The Kueue labels go on the TrainJob (Kueue's TrainJob integration reads its labels);
    `pod_labels` (launch's user/branch/commit) on every pod. `--trial-timeout` becomes
    activeDeadlineSeconds. `--retries` has no TrainJob field: the runtime's Job template decides
    how failed pods are retried. `secret_keys`: the keys of each `--secret-env` Secret.
    """
    procs = procs_per_node if procs_per_node is not None else max(resources.gpus, 1)
    _check_counts(nodes, procs)
    _check_options(resources, runtime)
    trainer: dict[str, Any] = {
        "image": image,
        "command": ["sh", "-c"],
        "args": [args],
        "env": _trainer_env(env, resources, secret_keys),
        "numNodes": nodes,
        "numProcPerNode": procs,
    }
    per_node = podspec.container_resources(resources)
    if per_node:
        trainer["resourcesPerNode"] = per_node
    volumes, mounts = podspec.pod_volumes(resources)
    if resources.secret_env and secret_keys is None:
        extra_volumes, extra_mounts = secret_volumes(resources, taken=[v["name"] for v in volumes])
        volumes, mounts = volumes + extra_volumes, mounts + extra_mounts
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": RUNTIME_API_GROUP, "kind": RUNTIME_KIND, "name": runtime},
        "trainer": trainer,
        "runtimePatches": [
            _runtime_patch(resources, pod_labels=pod_labels or {}, volumes=volumes, mounts=mounts)
        ],
    }
    if resources.trial_timeout_s:
        spec["activeDeadlineSeconds"] = resources.trial_timeout_s
    job: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    kueue = {
        label: value
        for label, value in (
            (KUEUE_QUEUE_LABEL, resources.queue),
            (KUEUE_PRIORITY_LABEL, resources.priority),
        )
        if value is not None
    }
    if kueue:
        job["metadata"] = {"labels": kueue}
    job["spec"] = spec
    return job


def trial_template_fields() -> dict[str, Any]:
    """Katib's trialTemplate fields for a TrainJob trial (besides trialParameters and trialSpec):
    the node container, rank 0's pod, and the TrainJob's Complete/Failed conditions."""
    return {
        "primaryContainerName": NODE_CONTAINER,
        "primaryPodLabels": dict(PRIMARY_POD_LABELS),
        "successCondition": SUCCESS_CONDITION,
        "failureCondition": FAILURE_CONDITION,
    }
