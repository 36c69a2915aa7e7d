"""Katib knowledge: the trial contract's argv, names and labels, the Experiment, dry-run trial
lines, and what Katib's (and Kueue's) status objects mean.

Pure: plain dicts and strings, no network, disk, environment or clock. Imports only the standard
library, PyYAML (`to_yaml`), `launch.spec`, `launch.hyperband`, `launch.results` and
`launch.errors`. Facts are checked against Katib v0.19.0's source; the comments name the
upstream file.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from launch import hyperband, results
from launch import spec as spec_module
from launch.errors import UsageError
from launch.spec import LaunchSpec, Parameter, ParamValue, Scalar

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"

# pkg/apis/controller/common/v1beta1/common_types.go: DefaultTensorflowEventDirPath.
TFEVENT_DIR = "/var/log/katib/tfevent/"
PRIMARY_CONTAINER = "training"
# pkg/webhook/v1beta1/experiment/validator/validator.go: `len(instance.Name) > 40` is refused
# (suggestion Deployment/Service names derive from it, kubeflow/katib#2454).
MAX_NAME_LENGTH = 40
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# Katib's defaults for a batch Job (pkg/apis/controller/experiments/v1beta1/constants.go).
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'

# Katib's pod webhook injects the metrics collector only in namespaces with this label.
NAMESPACE_LABEL = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
# Kueue (v0.19 pkg/controller/constants): labels on the trial Job put it in a queue.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# Katib puts these on Trials (experiment) and on trial pods (both): pkg/apis/controller/consts.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"

LABEL_USER = "launch/user"
LABEL_BRANCH = "launch/branch"
LABEL_COMMIT = "launch/commit"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_USER = "launch/user"
ANNOTATION_BRANCH = "launch/branch"
ANNOTATION_COMMIT = "launch/commit"
_LABEL_VALUE_MAX = 63


# --------------------------------------------------------------------------- trial contract


def format_value(value: ParamValue) -> str:
    """A parameter value as a trial sees it: `true`/`false`, ints without `.`, floats by repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def merge_params(
    fixed: Mapping[str, Scalar], sampled: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """The flags of one trial in argv order: `fixed` flags first, then the sampled parameters.

    Fixed flags come first so that the flags which vary between trials line up at the end of
    every command line. A name in both is a spec error (spec.check_rules refuses it).
    """
    both = set(fixed) & set(sampled)
    if both:
        raise ValueError(f"flags both fixed and searched: {', '.join(sorted(both))}")
    return {**fixed, **sampled}


def trial_argv(
    command: Sequence[str], params: Mapping[str, ParamValue], tensorboard_dir: str
) -> list[str]:
    """The trial contract's argv: the user's argv, `--<name>=<value>` per param, `--tensorboard_dir`.

    Draccus syntax: dotted names keep their dots (`--optim.lr=0.1`). Shared with the local backend.
    """
    argv = list(command)
    argv.extend(f"--{name}={format_value(value)}" for name, value in params.items())
    argv.append(f"--tensorboard_dir={tensorboard_dir}")
    return argv


# --------------------------------------------------------------------------- names and labels


def _slug(text: str) -> str:
    """Lowercase letters, digits and single `-`, no `-` at either end."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def experiment_name(*, stem: str, commit: str, suffix: str) -> str:
    """`<slug of stem>-<sha7>-<suffix>`: a DNS-1035 label of at most 40 characters.

    The stem (repo or branch name) is cut to fit; a stem that does not start with a letter gets
    an `x-` prefix. `commit` may be empty (no git), then the sha part is left out.
    """
    tail = [part for part in (_slug(commit)[:7], _slug(suffix)) if part]
    stem_slug = _slug(stem)
    if not stem_slug or not stem_slug[0].isalpha():
        stem_slug = f"x-{stem_slug}".rstrip("-")
    room = MAX_NAME_LENGTH - sum(len(part) + 1 for part in tail)
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name")
    stem_slug = stem_slug[:room].rstrip("-")
    name = "-".join([stem_slug, *tail])
    assert _NAME_RE.match(name) and len(name) <= MAX_NAME_LENGTH, name
    return name


def validate_experiment_name(name: str) -> None:
    """Refuse a user-given `--name` that Katib's webhook would refuse (validator.go)."""
    if _NAME_RE.match(name) and len(name) <= MAX_NAME_LENGTH:
        return
    fixed = _slug(name)
    if not fixed or not fixed[0].isalpha():
        fixed = f"x-{fixed}".rstrip("-")
    fixed = fixed[:MAX_NAME_LENGTH].rstrip("-")
    why = (
        f"is {len(name)} characters long (Katib allows at most {MAX_NAME_LENGTH})"
        if _NAME_RE.match(name)
        else "is not a DNS-1035 label (lowercase letters, digits and `-`, starting with a letter)"
    )
    raise UsageError(
        f"--name: experiment name {name!r} {why}",
        hint=f"use e.g. `--name {fixed}`, or leave out --name to get a generated one",
    )


def label_value(text: str) -> str:
    """A Kubernetes label value: `[A-Za-z0-9._-]`, at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:_LABEL_VALUE_MAX]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def labels(*, user: str, branch: str | None, commit: str) -> dict[str, str]:
    """user, branch and commit as label values (sanitised: `feature/x` -> `feature-x`).

    Katib copies the Experiment's labels to its Trials and the pod webhook copies Trial labels to
    the pods (pkg/controller.v1beta1/util/labels.go TrialLabels, pkg/webhook/v1beta1/pod/utils.go
    mutatePodMetadata), so `kubectl get pods -l launch/user=ada` finds a user's trials.
    """
    out = {LABEL_MANAGED_BY: "launch"}
    for key, text in ((LABEL_USER, user), (LABEL_BRANCH, branch), (LABEL_COMMIT, commit)):
        value = label_value(text or "")
        if value:
            out[key] = value
    return out


def metadata_annotations(*, user: str, branch: str | None, commit: str) -> dict[str, str]:
    """The full, unsanitised values behind `labels` (label values are cut and rewritten)."""
    out = {ANNOTATION_USER: user, ANNOTATION_COMMIT: commit}
    if branch:
        out[ANNOTATION_BRANCH] = branch
    return out


def experiment_url(katib_base_url: str, namespace: str, name: str) -> str:
    """The Experiment's page in Katib's UI, trials tab (trial deep links break on reload: #2474)."""
    base = katib_base_url.rstrip("/")
    if not base.endswith("/katib"):
        base += "/katib"
    return f"{base}/experiment/{namespace}/{name}?tab=trials"


# --------------------------------------------------------------------------- YAML


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string a YAML 1.2 reader (kubectl, Go) would take for a number."""


# PyYAML (YAML 1.1) quotes "0.1" but not "1e-05", which go-yaml and YAML 1.2 read as a float.
_LOOKS_SCALAR = re.compile(
    r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$"
    r"|^[-+]?\.?(inf|nan)$|^(true|false|yes|no|on|off|y|n|null|~)$",
    re.IGNORECASE,
)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "'" if _LOOKS_SCALAR.match(data) else ("|" if "\n" in data else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: Mapping[str, Any]) -> str:
    """A manifest as block YAML, keys in order, number-like strings quoted for every reader."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16
    )


# --------------------------------------------------------------------------- the Experiment


def _escape_dollar(text: str) -> str:
    """Kubernetes expands `$(VAR)` in command, args and env values; `$$` is a literal `$`."""
    return text.replace("$", "$$")


def _placeholder(param: Parameter) -> str:
    return "${trialParameters." + param.trial_parameter_name + "}"


def _trial_args(
    command: Sequence[str],
    fixed: Mapping[str, Scalar],
    parameters: Sequence[Parameter],
    workdir: str = "",
) -> str:
    """The one `sh -c` string: quoted user text, `${trialParameters.X}` for the swept flags.

    Katib's pod webhook joins command and args with spaces, unquoted, and appends
    `&& echo completed > <dir>/$$$$.pid` (pkg/webhook/v1beta1/pod/utils.go wrapWorkerContainer),
    so the program must run in the foreground (no `exec`) and every user token is shlex-quoted.
    Katib substitutes the placeholder text before Kubernetes expands `$(...)`; numbers need no
    quotes, categorical values are single-quoted.
    """
    words = [_escape_dollar(shlex.quote(word)) for word in command]
    words += [
        _escape_dollar(shlex.quote(f"--{name}={format_value(value)}"))
        for name, value in fixed.items()
    ]
    for param in parameters:
        flag = f"--{param.name}={_placeholder(param)}"
        words.append(f"'{flag}'" if param.parameterType == "categorical" else flag)
    words.append(shlex.quote(f"--tensorboard_dir={TFEVENT_DIR}"))
    # Run from the same subdirectory of the repo as the user did (the image's WORKDIR is its root).
    prefix = f"cd {_escape_dollar(shlex.quote(workdir))} && " if workdir else ""
    return prefix + " ".join(words)


def _feasible_space(param: Parameter) -> dict[str, Any]:
    space = param.feasibleSpace
    out: dict[str, Any] = {}
    for key in ("min", "max", "step"):
        value = getattr(space, key)
        if value is not None:
            out[key] = str(value)
    if space.list is not None:
        out["list"] = [str(item) for item in space.list]
    if space.distribution is not None:
        out["distribution"] = space.distribution
    return out


# --------------------------------------------------------------------------- trial pod options

# k8s.io/apimachinery/pkg/api/resource: a decimal number and one suffix (binary, decimal or an
# exponent). Signs are refused: no request here may be negative.
_QUANTITY_RE = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_SUFFIX_FACTOR = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
# k8s.io/apimachinery/pkg/util/validation: names and label parts.
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # IsEnvVarName
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SHM_DIR = "/dev/shm"
SHM_VOLUME = "dshm"


def _quantity_bytes(text: str) -> float:
    match = _QUANTITY_RE.match(text)
    assert match, text
    return float(match["number"]) * (
        10.0 ** int(match["suffix"][1:])
        if match["suffix"] and match["suffix"][0] in "eE"
        else _SUFFIX_FACTOR[match["suffix"] or ""]
    )


def _quantity(value: float | int | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _check_cpus(value: float | int | str) -> str:
    text = _quantity(value)
    if isinstance(value, bool) or not _QUANTITY_RE.match(text) or _quantity_bytes(text) <= 0:
        raise UsageError(
            f"--cpus: {value!r} is not a CPU count",
            hint="pass a positive number of cores (`--cpus 8`, `--cpus 0.5`) or millicores "
            "(`--cpus 500m`)",
        )
    return text


def _check_memory(value: str, flag: str) -> str:
    """A byte quantity (`16Gi`, `512Mi`); refuses the units Kubernetes accepts but nobody means."""
    text = str(value).strip()
    match = _QUANTITY_RE.match(text)
    example = f"`{flag} 16Gi` or `{flag} 512Mi`"
    if not match or _quantity_bytes(text) <= 0:
        hint = f"use a Kubernetes quantity such as {example}"
        if re.fullmatch(r"[0-9.]+\s*[KMGTPE]i?[Bb]", text):
            hint = f"Kubernetes spells {text} as `{text.rstrip('Bb').strip()}` (or `{text[:-1].strip()}i` for binary units); {example}"
        raise UsageError(f"{flag}: {value!r} is not an amount of memory", hint=hint)
    suffix = match["suffix"] or ""
    if suffix == "m":
        raise UsageError(
            f"{flag}: {text} means {match['number']} thousandths of a byte (`m` is milli)",
            hint=f"write `{flag} {match['number']}Mi` for mebibytes",
        )
    if _quantity_bytes(text) < 2**20:
        raise UsageError(
            f"{flag}: {text} is {_quantity_bytes(text):g} bytes",
            hint=f"give a unit: `{flag} {match['number']}Gi` or `{flag} {match['number']}Mi`",
        )
    return text


@dataclass(frozen=True)
class VolumeMount:
    """One `--volume CLAIM:/path[:ro]`."""

    claim: str
    path: str
    read_only: bool = False


def parse_volume(text: str) -> VolumeMount:
    """`CLAIM:/path` or `CLAIM:/path:ro` (`:rw` is the default): a PersistentVolumeClaim mount."""
    usage = "use `--volume CLAIM:/mount/path` or `--volume CLAIM:/mount/path:ro`"
    claim, sep, rest = text.partition(":")
    read_only = False
    if rest.endswith((":ro", ":rw")):
        read_only = rest.endswith(":ro")
        rest = rest[:-3]
    if not sep or not claim or not rest:
        raise UsageError(f"--volume {text!r}: expected CLAIM:/path[:ro]", hint=usage)
    if not _DNS1123_SUBDOMAIN_RE.match(claim) or len(claim) > 253:
        raise UsageError(
            f"--volume {text!r}: {claim!r} is not a PersistentVolumeClaim name "
            "(lowercase letters, digits, `-` and `.`)",
            hint=f"{usage}; `kubectl get pvc` lists the claims of the namespace",
        )
    if "$" in rest:
        # Katib substitutes `${trialParameters.X}` anywhere in the template.
        raise UsageError(f"--volume {text!r}: a mount path may not contain `$`", hint=usage)
    if not rest.startswith("/") or ":" in rest:
        raise UsageError(
            f"--volume {text!r}: the mount path {rest!r} must be absolute (start with `/`)",
            hint=usage,
        )
    parts = [part for part in rest.split("/") if part]
    if ".." in parts or not parts:
        raise UsageError(
            f"--volume {text!r}: mount path {rest!r} must name a directory below `/` without `..`",
            hint=usage,
        )
    return VolumeMount(claim=claim, path="/" + "/".join(parts), read_only=read_only)


def _is_within(path: str, directory: str) -> bool:
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def _volumes(
    specs: Sequence[str], shm_size: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and container volumeMounts: the PVCs of `--volume` and the /dev/shm emptyDir."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if shm_size is not None:
        # A memory-backed emptyDir counts against the container's memory limit.
        volumes.append(
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}
        )
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_DIR})
    names: dict[str, str] = {}  # claim -> volume name
    seen_paths: dict[str, str] = {}
    for text in specs:
        volume = parse_volume(text)
        for reserved, why in (
            (SHM_DIR, "the shared-memory mount (use --shm-size for its size)"),
            (TFEVENT_DIR, "where Katib's metrics collector reads the TensorBoard files"),
        ):
            if _is_within(volume.path, reserved) or _is_within(reserved, volume.path):
                raise UsageError(
                    f"--volume {text!r}: {volume.path} overlaps {reserved.rstrip('/')}, {why}",
                    hint=f"mount the claim somewhere else, e.g. `--volume {volume.claim}:/data`",
                )
        if volume.path in seen_paths:
            raise UsageError(
                f"--volume {text!r}: {volume.path} is already the mount path of "
                f"--volume {seen_paths[volume.path]!r}",
                hint="give each --volume its own mount path",
            )
        seen_paths[volume.path] = text
        if volume.claim not in names:
            base = ("pvc-" + _slug(volume.claim))[:_LABEL_VALUE_MAX].rstrip("-")
            name, n = base, 2
            while name in names.values() or name == SHM_VOLUME:
                name = f"{base[: _LABEL_VALUE_MAX - len(str(n)) - 1].rstrip('-')}-{n}"
                n += 1
            names[volume.claim] = name
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": volume.claim}})
        mount: dict[str, Any] = {"name": names[volume.claim], "mountPath": volume.path}
        if volume.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def _is_qualified_name(key: str) -> bool:
    """A label key or taint key: `[prefix/]name`, prefix a DNS subdomain, name at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (not _DNS1123_SUBDOMAIN_RE.match(prefix) or len(prefix) > 253):
        return False
    return bool(_LABEL_NAME_RE.match(name)) and len(name) <= _LABEL_VALUE_MAX


def _is_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE_RE.match(value)) and len(value) <= _LABEL_VALUE_MAX


def parse_toleration(text: str) -> dict[str, str]:
    """A toleration from the taint syntax of `kubectl taint`: `key=value:Effect`, `key:Effect`,
    `key=value` or `key`. Without a value the operator is `Exists` (tolerates any value);
    without an effect it tolerates every effect of that taint."""
    usage = (
        "use `--toleration KEY=VALUE:EFFECT`, `KEY:EFFECT`, `KEY=VALUE` or `KEY` (EFFECT is one of "
        f"{', '.join(TAINT_EFFECTS)}), e.g. `--toleration nvidia.com/gpu:NoSchedule`"
    )
    body, sep, effect = text.rpartition(":") if ":" in text else (text, "", "")
    key, eq, value = body.partition("=")
    if sep and effect not in TAINT_EFFECTS:
        raise UsageError(
            f"--toleration {text!r}: unknown taint effect {effect!r}",
            hint=usage,
        )
    if not _is_qualified_name(key):
        raise UsageError(
            f"--toleration {text!r}: {key!r} is not a taint key",
            hint=f"{usage}; `kubectl describe node` shows a node's taints",
        )
    if eq and not (value and _is_label_value(value)):
        raise UsageError(f"--toleration {text!r}: {value!r} is not a taint value", hint=usage)
    out = {"key": key, "operator": "Equal" if eq else "Exists"}
    if eq:
        out["value"] = value
    if sep:
        out["effect"] = effect
    return out


def _check_node_selector(selector: Mapping[str, str]) -> dict[str, str]:
    for key, value in selector.items():
        if not _is_qualified_name(key) or not _is_label_value(value):
            raise UsageError(
                f"--node-selector {key}={value}: not a node label "
                f"({'key' if not _is_qualified_name(key) else 'value'} is invalid)",
                hint="use `--node-selector KEY=VALUE` with a label the nodes carry "
                "(`kubectl get nodes --show-labels`), e.g. "
                "`--node-selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3`",
            )
    return dict(selector)


def _check_name(value: str, flag: str, what: str, *, max_length: int = 253) -> str:
    if not _DNS1123_SUBDOMAIN_RE.match(value) or len(value) > max_length:
        raise UsageError(
            f"{flag} {value!r}: not a valid {what} name (lowercase letters, digits, `-` and `.`, "
            f"at most {max_length} characters)",
            hint=f"pass the name of an existing {what}: `{flag} NAME`",
        )
    return value


def _env(items: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Container env; a variable without a value (e.g. no MLflow configured) is left out."""
    return [
        {"name": key, "value": _escape_dollar(value)} for key, value in items if value is not None
    ]


def render_experiment(
    *,
    spec: LaunchSpec,
    name: str,
    namespace: str,
    image: str,
    command: Sequence[str],
    gpus: int,
    commit: str,
    branch: str | None,
    user: str,
    mlflow_tracking_uri: str | None,
    workdir: str = "",
    katib_url: str | None = None,
    mlflow_experiment_name: str | None = None,
    seed_flag: str = "seed",
    cpus: float | int | str | None = None,
    memory: str | None = None,
    shm_size: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    secret_env: Sequence[str] = (),
    volumes: Sequence[str] = (),
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[str] = (),
    queue: str | None = None,
    priority: str | None = None,
    service_account: str | None = None,
    image_pull_policy: str | None = None,
    trial_timeout_s: int | None = None,
) -> dict[str, Any]:
    """A `kubeflow.org/v1beta1` Experiment that Katib v0.19's webhook admits (DESIGN "Katib facts").

    Seeds are folded into the search space first. `KATIB_TRIAL_NAME` is not set here: Katib's pod
    webhook injects it into the primary container from the trial label
    (pkg/webhook/v1beta1/pod/utils.go mutatePodEnv), so the template must not define it too.

    Trial pod options (each left out of the manifest when not given): `cpus` (request), `memory`
    (request = limit), `shm_size` (a memory-backed emptyDir at /dev/shm, which counts against
    the memory limit), `extra_env`, `secret_env` (Secrets whose keys become env vars, envFrom),
    `volumes` (`CLAIM:/path[:ro]`, see `parse_volume`), `node_selector`, `tolerations`
    (`kubectl taint` syntax, see `parse_toleration`), `service_account`, `image_pull_policy`,
    `trial_timeout_s` (the trial Job's activeDeadlineSeconds: Kubernetes fails it with
    DeadlineExceeded, and Katib marks the trial Failed).
    `queue`/`priority` become Kueue's labels on the trial Job (trialSpec.metadata.labels: Kueue's
    Job integration reads the Job's own labels). Every value is checked here, so a bad flag is a
    UsageError naming it before anything is created.
    """
    validate_experiment_name(name)
    if not command:
        raise UsageError(
            "no command to run", hint="put the command after `--`, e.g. -- python train.py"
        )
    _refuse_placeholders(command, spec.fixed, extra_env or {})
    spec = spec_module.apply_seeds(spec, seed_flag=seed_flag)
    counts = spec_module.resolve_counts(spec)
    _check_trial_parameter_names(spec.parameters)
    meta_labels = labels(user=user, branch=branch, commit=commit)
    objective = spec.objective

    objective_out: dict[str, Any] = {
        "type": objective.type,
        "objectiveMetricName": objective.objectiveMetricName,
    }
    if objective.additionalMetricNames:
        objective_out["additionalMetricNames"] = list(objective.additionalMetricNames)
    if objective.goal is not None:
        objective_out["goal"] = objective.goal
    # Explicit strategies: Katib's defaulter would otherwise pick min/max by the objective's type
    # for every metric (experiment_defaults.go setDefaultObjective).
    objective_out["metricStrategies"] = [
        {"name": metric, "value": objective.strategy(metric)} for metric in objective.metric_names
    ]

    algorithm_out: dict[str, Any] = {"algorithmName": spec.algorithm.algorithmName}
    if spec.algorithm.algorithmSettings:
        algorithm_out["algorithmSettings"] = [
            {"name": item.name, "value": str(item.value)}
            for item in spec.algorithm.algorithmSettings
        ]

    env = [
        ("KATIB_EXPERIMENT_NAME", name),
        ("KATIB_NAMESPACE", namespace),
        ("LAUNCH_GIT_COMMIT", commit),
        ("LAUNCH_IMAGE", image),
        ("MLFLOW_TRACKING_URI", mlflow_tracking_uri),
        ("MLFLOW_EXPERIMENT_NAME", mlflow_experiment_name or name),
        # The MLflow wrapper tags each run with it: a link from the run back to Katib.
        ("LAUNCH_KATIB_URL", experiment_url(katib_url, namespace, name) if katib_url else None),
    ]
    reserved = {key for key, _ in env} | {"KATIB_TRIAL_NAME"}
    for key, value in (extra_env or {}).items():
        if key in reserved:
            raise UsageError(
                f"--env {key}: set by launch (trial contract)", hint=f"remove --env {key}=..."
            )
        if not _ENV_NAME_RE.match(key):
            raise UsageError(
                f"--env {key}: not an environment variable name",
                hint="use `--env NAME=VALUE` with NAME made of letters, digits, `_`, `-` and `.`, "
                "not starting with a digit",
            )
        env.append((key, value))

    resources: dict[str, dict[str, str]] = {}
    if cpus is not None:
        resources.setdefault("requests", {})["cpu"] = _check_cpus(cpus)
    if memory is not None:
        memory = _check_memory(memory, "--memory")
        resources.setdefault("requests", {})["memory"] = memory
        resources.setdefault("limits", {})["memory"] = memory
    if gpus > 0:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(gpus)
    if shm_size is not None:
        shm_size = _check_memory(shm_size, "--shm-size")
        if memory is not None and _quantity_bytes(shm_size) > _quantity_bytes(memory):
            raise UsageError(
                f"--shm-size {shm_size} exceeds --memory {memory}: /dev/shm is memory-backed "
                "and counts against the trial's memory limit",
                hint=f"raise --memory or lower --shm-size (at most {memory})",
            )
    pod_volumes, mounts = _volumes(volumes, shm_size)

    container: dict[str, Any] = {"name": PRIMARY_CONTAINER, "image": image}
    if image_pull_policy is not None:
        if image_pull_policy not in IMAGE_PULL_POLICIES:
            raise UsageError(
                f"--image-pull-policy {image_pull_policy!r}: not a pull policy",
                hint=f"use one of {', '.join(IMAGE_PULL_POLICIES)}",
            )
        container["imagePullPolicy"] = image_pull_policy
    container.update(
        {
            "command": ["sh", "-c"],
            "args": [_trial_args(command, spec.fixed, spec.parameters, workdir)],
            "env": _env(env),
        }
    )
    secrets = list(dict.fromkeys(secret_env))
    if secrets:
        container["envFrom"] = [
            {"secretRef": {"name": _check_name(secret, "--secret-env", "Secret")}}
            for secret in secrets
        ]
    if resources:
        container["resources"] = resources
    if mounts:
        container["volumeMounts"] = mounts

    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if service_account is not None:
        pod_spec["serviceAccountName"] = _check_name(
            service_account, "--service-account", "ServiceAccount"
        )
    if node_selector:
        pod_spec["nodeSelector"] = _check_node_selector(node_selector)
    if tolerations:
        pod_spec["tolerations"] = [parse_toleration(text) for text in tolerations]
    if pod_volumes:
        pod_spec["volumes"] = pod_volumes

    trial_spec: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job"}
    # Kueue's Job integration reads the queue and priority from the Job's own labels. Katib sets
    # the Job's name and namespace itself, so the template carries labels only.
    job_labels: dict[str, str] = {}
    for label, wanted, flag, what in (
        (KUEUE_QUEUE_LABEL, queue, "--queue", "Kueue LocalQueue"),
        (KUEUE_PRIORITY_LABEL, priority, "--priority", "Kueue WorkloadPriorityClass"),
    ):
        if wanted is not None:
            job_labels[label] = _check_name(wanted, flag, what, max_length=_LABEL_VALUE_MAX)
    if job_labels:
        trial_spec["metadata"] = {"labels": job_labels}
    if trial_timeout_s is not None and not (
        isinstance(trial_timeout_s, int) and trial_timeout_s >= 1
    ):
        raise UsageError(
            f"--trial-timeout: expected at least 1 second, got {trial_timeout_s!r}",
            hint="pass --trial-timeout 90s, 30m or 2h",
        )
    trial_spec["spec"] = {
        "backoffLimit": 0,
        **({"activeDeadlineSeconds": trial_timeout_s} if trial_timeout_s else {}),
        "template": {
            "metadata": {
                "labels": dict(meta_labels),
                # An Istio sidecar never exits, so the Job would never complete.
                "annotations": {"sidecar.istio.io/inject": "false"},
            },
            "spec": pod_spec,
        },
    }

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": meta_labels,
            "annotations": metadata_annotations(user=user, branch=branch, commit=commit),
        },
        "spec": {
            "objective": objective_out,
            "algorithm": algorithm_out,
            "parallelTrialCount": counts.parallel,
            "maxTrialCount": counts.max_trials,
            "maxFailedTrialCount": counts.max_failed,
            "resumePolicy": "Never",
            "metricsCollectorSpec": {
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": TFEVENT_DIR, "kind": "Directory"}},
            },
            "parameters": [
                {
                    "name": param.name,
                    "parameterType": param.parameterType,
                    "feasibleSpace": _feasible_space(param),
                }
                for param in spec.parameters
            ],
            "trialTemplate": {
                "retain": True,
                "primaryContainerName": PRIMARY_CONTAINER,
                "successCondition": JOB_SUCCESS_CONDITION,
                "failureCondition": JOB_FAILURE_CONDITION,
                "trialParameters": [
                    {
                        "name": param.trial_parameter_name,
                        "description": f"--{param.name}",
                        "reference": param.name,
                    }
                    for param in spec.parameters
                ],
                "trialSpec": trial_spec,
            },
        },
    }


def _refuse_placeholders(
    command: Sequence[str], fixed: Mapping[str, Scalar], env: Mapping[str, str]
) -> None:
    """Katib substitutes `${trialParameters.X}` anywhere in the template, even in user text (and
    refuses unknown ones: validator.go), so user text may not contain one."""
    texts = [*command, *(str(v) for v in fixed.values()), *env.values()]
    for text in texts:
        if "${trialParameters." in text:
            raise UsageError(
                f"{text!r} contains `${{trialParameters.`, which Katib would substitute",
                hint="pass the value another way (e.g. a config file), or spell it differently",
            )


def _check_trial_parameter_names(parameters: Sequence[Parameter]) -> None:
    """Two parameters may not share a trialParameter name (`a.b` and `a__b` both give `a__b`)."""
    seen: dict[str, str] = {}
    for param in parameters:
        safe = param.trial_parameter_name
        if safe in seen:
            raise UsageError(
                f"parameters `{seen[safe]}` and `{param.name}` both map to Katib trialParameter `{safe}`",
                hint=f"rename `{param.name}`",
            )
        seen[safe] = param.name


# --------------------------------------------------------------------------- dry-run trial lines


def _sample(param: Parameter, rng: random.Random) -> ParamValue:
    """One value for a dry-run sample (illustrative: Katib's suggestion service picks the real ones)."""
    space = param.feasibleSpace
    if param.parameterType in ("categorical", "discrete"):
        return rng.choice(list(space.list or ()))
    assert space.min is not None and space.max is not None
    low, high = float(space.min), float(space.max)
    log = space.distribution in ("logUniform", "logNormal") and low > 0
    if param.parameterType == "int":
        step = int(space.step) if space.step else 1
        if log:
            value = round(math.exp(rng.uniform(math.log(low), math.log(high))))
            return int(space.min) + (value - int(space.min)) // step * step
        return rng.randrange(int(space.min), int(space.max) + 1, step)
    if space.step is not None:
        step_f = float(space.step)
        return low + rng.randint(0, math.floor((high - low) / step_f)) * step_f
    if log:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)


def trial_command_lines(
    spec: LaunchSpec,
    command: Sequence[str],
    *,
    seed_flag: str,
    sample_size: int = 5,
    rng_seed: int = 0,
) -> list[list[str]]:
    """The argv of the trials, for `--dry-run`.

    grid (seed sweeps become grid): every combination, in parameter order, last parameter
    fastest. Katib runs min(maxTrialCount, combinations) of them, in the order its suggestion
    service picks. Other algorithms: a deterministic sample of `sample_size` (at most
    maxTrialCount) uniform draws, to show the shape of the command, not Katib's choices.
    """
    # A spec that still carries seeds is a local search x seeds: each sampled config once per seed.
    searched = spec.parameters and spec.algorithm.algorithmName != "grid"
    seeds = spec.seed_values if spec.seeds and searched else ()
    spec = spec if seeds else spec_module.apply_seeds(spec, seed_flag=seed_flag)
    names = [param.name for param in spec.parameters]
    combos: list[tuple[ParamValue, ...]]
    hb = spec_module.hyperband_of(spec)
    if hb is not None:
        combos = _hyperband_combos(spec, hb, sample_size=sample_size, rng_seed=rng_seed)
    elif spec.algorithm.algorithmName == "grid":
        # Katib's grid (pkg/suggestion/v1beta1/internal/search_space.py): int range inclusive of
        # max, double numpy.arange(min, max + step, step) minus an overshooting last point.
        # apply_seeds above refuses a grid past spec.MAX_GRID_COMBINATIONS, so this list is bounded.
        axes = [spec_module.grid_values(param) for param in spec.parameters]
        combos = list(itertools.product(*axes))
    else:
        rng = random.Random(rng_seed)
        max_trials = spec_module.resolve_counts(spec).max_trials
        configs = [
            tuple(_sample(param, rng) for param in spec.parameters)
            for _ in range(min(sample_size, max_trials))
        ]
        if seeds:
            names.append(seed_flag)
            configs = [(*config, seed) for config in configs[:2] for seed in seeds]
        combos = configs
    return [
        trial_argv(
            command, merge_params(spec.fixed, dict(zip(names, combo, strict=True))), TFEVENT_DIR
        )
        for combo in combos
    ]


def _hyperband_combos(
    spec: LaunchSpec, hb: hyperband.Hyperband, *, sample_size: int, rng_seed: int
) -> list[tuple[ParamValue, ...]]:
    """hyperband's trials: sampled configs with the resource value of their round, which the
    service sets itself (`str(int(r))`, whatever the parameter's type). The first round shows
    `sample_size` of its configs; round 1 repeats the first of them (it stands for the best)."""
    counts = spec_module.resolve_counts(spec)
    rng = random.Random(rng_seed)
    where = [param.name for param in spec.parameters].index(hb.resource_name)
    out: list[tuple[ParamValue, ...]] = []
    for rung in hb.runs(counts.parallel, counts.max_trials):
        if rung.index == 0:
            configs = [
                [_sample(param, rng) for param in spec.parameters]
                for _ in range(min(sample_size, rung.trials))
            ]
        else:
            configs = [list(out[0])]
        for config in configs:
            config[where] = rung.resource
            out.append(tuple(config))
    return out


# --------------------------------------------------------------------------- status: Trials

# Trial condition types (pkg/apis/controller/trials/v1beta1/trial_types.go). At most one of the
# terminal ones is True; Running turns False when the trial ends.
TRIAL_TERMINAL = ("Succeeded", "Failed", "MetricsUnavailable", "Killed", "EarlyStopped")
TRIAL_CONDITIONS = (*TRIAL_TERMINAL, "Running", "Created")
PENDING = "Pending"
# Experiment condition types (pkg/apis/controller/experiments/v1beta1/experiment_types.go).
EXPERIMENT_TERMINAL = ("Succeeded", "Failed")
EXPERIMENT_CONDITIONS = (*EXPERIMENT_TERMINAL, "Restarting", "Running", "Created")
# What Katib's collector reports for a metric it found no value of (tfevent_loader.py, and the
# trial controller's observation for a missing objective).
UNAVAILABLE = "unavailable"


def epoch_seconds(stamp: Any) -> float | None:
    """An RFC 3339 time (`2025-01-02T03:04:05Z`, fractions allowed) as epoch seconds; else None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = _status(obj).get("conditions")
    return [c for c in items or () if isinstance(c, Mapping)]


def _latest_true(
    conditions: Sequence[Mapping[str, Any]], types: Sequence[str], terminal: Sequence[str]
) -> Mapping[str, Any] | None:
    """The True condition among `types` that is latest; a terminal one beats a non-terminal one
    (a stale Running=True never hides Succeeded), and on equal times the later in the list wins
    (Katib's times have whole seconds)."""
    best: Mapping[str, Any] | None = None
    best_key: tuple[bool, float, int] | None = None
    for index, condition in enumerate(conditions):
        kind = condition.get("type")
        if kind not in types or condition.get("status") != "True":
            continue
        stamp = epoch_seconds(condition.get("lastTransitionTime"))
        key = (kind in terminal, -math.inf if stamp is None else stamp, index)
        if best_key is None or key > best_key:
            best, best_key = condition, key
    return best


def trial_status(trial: Mapping[str, Any]) -> str:
    """The trial's state: the latest True condition among Succeeded, Failed, MetricsUnavailable,
    Killed, EarlyStopped, Running, Created; `Pending` when only Created (or none yet)."""
    condition = _latest_true(_conditions(trial), TRIAL_CONDITIONS, TRIAL_TERMINAL)
    if condition is None or condition.get("type") == "Created":
        return PENDING
    return str(condition["type"])


def _trial_objective(trial: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = trial.get("spec")
    objective = spec.get("objective") if isinstance(spec, Mapping) else None
    return objective if isinstance(objective, Mapping) else {}


def _strategy(
    metric: str, objective: spec_module.Objective | None, trial: Mapping[str, Any]
) -> str:
    """The metricStrategy of `metric`: from the spec when given, else the one Katib copied onto
    the Trial; Katib's default is the objective's direction."""
    if objective is not None:
        return objective.strategy(metric)
    own = _trial_objective(trial)
    for item in own.get("metricStrategies") or ():
        if isinstance(item, Mapping) and item.get("name") == metric and item.get("value"):
            return str(item["value"])
    return "max" if own.get("type") == "maximize" else "min"


def _float(text: Any) -> float | None:
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str) or text.strip().lower() == UNAVAILABLE:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def trial_metrics(trial: Mapping[str, Any], *, spec: LaunchSpec | None = None) -> dict[str, float]:
    """`status.observation.metrics` as {name: value}, each the value of the metric's strategy
    (min/max/latest) from `spec.objective` (or the Trial's own objective); `unavailable` and
    unparseable values are left out. NaN stays (a diverged loss is a result too)."""
    objective = spec.objective if spec is not None else None
    observation = _status(trial).get("observation")
    items = observation.get("metrics") if isinstance(observation, Mapping) else None
    out: dict[str, float] = {}
    for item in items or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        value = _float(item.get(_strategy(name, objective, trial)))
        if value is not None:
            out[name] = value
    return out


def _folded_parameters(spec: LaunchSpec, seed_flag: str) -> dict[str, spec_module.Parameter]:
    """The Experiment's parameters: the spec's, plus the seed parameter when seeds are folded in."""
    if spec.seeds is not None:
        # A spec Katib could not run (search x seeds without grid) keeps its parameters.
        with contextlib.suppress(UsageError):
            spec = spec_module.apply_seeds(spec, seed_flag=seed_flag)
    return {param.name: param for param in spec.parameters}


def _typed_value(text: str, parameter_type: str | None, *, is_seed: bool) -> ParamValue:
    """A Katib assignment as the program got it: ints and doubles as numbers, lists verbatim
    (as the local backend records them), seeds as ints."""
    if is_seed or parameter_type == "int":
        try:
            return int(text)
        except ValueError:
            number = _float(text)
            if number is not None and number.is_integer():
                return int(number)
            return text
    if parameter_type == "double":
        number = _float(text)
        return text if number is None else number
    return text


def trial_params(
    trial: Mapping[str, Any], *, spec: LaunchSpec | None = None, seed_flag: str = "seed"
) -> dict[str, ParamValue]:
    """`spec.parameterAssignments` as {name: value}, typed by the spec's parameter types (the
    seed parameter of a seed sweep too); without a spec, or for a name it lacks, values stay text
    (except `seed_flag`, an int)."""
    params = _folded_parameters(spec, seed_flag) if spec is not None else {}
    trial_spec = trial.get("spec")
    items = trial_spec.get("parameterAssignments") if isinstance(trial_spec, Mapping) else None
    out: dict[str, ParamValue] = {}
    for item in items or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        name, text = item["name"], str(item.get("value", ""))
        param = params.get(name)
        out[name] = _typed_value(
            text, param.parameterType if param else None, is_seed=name == seed_flag
        )
    return out


def _terminal_condition(trial: Mapping[str, Any]) -> Mapping[str, Any] | None:
    condition = _latest_true(_conditions(trial), TRIAL_CONDITIONS, TRIAL_TERMINAL)
    return condition if condition and condition.get("type") in TRIAL_TERMINAL else None


def trial_reason(trial: Mapping[str, Any]) -> str:
    """Why a trial did not succeed: the message (else reason) of its Failed, MetricsUnavailable,
    Killed or EarlyStopped condition; empty otherwise."""
    condition = _terminal_condition(trial)
    if condition is None or condition.get("type") == "Succeeded":
        return ""
    return str(condition.get("message") or condition.get("reason") or "")


def trial_times(trial: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(start, end) in epoch seconds: `status.startTime` (Katib sets it when it creates the trial,
    so queueing time is included) else the Created condition's time; `status.completionTime`
    else the terminal condition's time; end is None while the trial runs."""
    status = _status(trial)
    conditions = _conditions(trial)
    start = epoch_seconds(status.get("startTime"))
    if start is None:
        created = [c for c in conditions if c.get("type") == "Created"]
        start = epoch_seconds(created[0].get("lastTransitionTime")) if created else None
    terminal = _terminal_condition(trial)
    if terminal is None:
        return start, None
    end = epoch_seconds(status.get("completionTime"))
    if end is None:
        end = epoch_seconds(terminal.get("lastTransitionTime"))
    return start, end


def trial_row(
    trial: Mapping[str, Any], *, spec: LaunchSpec, number: int, seed_flag: str = "seed"
) -> results.Trial:
    """One `results.Trial` row from a Katib Trial object; `number` comes from the caller (trials
    numbered by creation time, see `trial_numbers`). Exit code and MLflow run are not on the
    Trial: the caller adds them (dataclasses.replace) when it knows them."""
    metrics = trial_metrics(trial, spec=spec)
    start, end = trial_times(trial)
    metadata = trial.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    params = trial_params(trial, spec=spec, seed_flag=seed_flag)
    return results.Trial(
        name=str(name or ""),
        number=number,
        params=params,
        status=trial_status(trial),
        objective=metrics.get(spec.objective.objectiveMetricName),
        metrics=metrics,
        start=start,
        end=end,
        reason=trial_reason(trial),
        resource=_resource_label(spec, params),
    )


def _resource_label(spec: LaunchSpec, params: Mapping[str, ParamValue]) -> str:
    """hyperband: `num_epochs=3`, the resource value the service gave the trial (its round);
    `results.rank` groups by it. Empty for other algorithms."""
    if spec.algorithm.algorithmName != hyperband.NAME:
        return ""
    resource = spec.algorithm.setting("resource_name")
    if resource is None or resource not in params:
        return ""
    return f"{resource}={format_value(params[resource])}"


def trial_numbers(trials: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """{trial name: number}, 1, 2, ... by creation time (then name), like the local backend's."""

    def key(trial: Mapping[str, Any]) -> tuple[float, str]:
        meta = trial.get("metadata") or {}
        stamp = epoch_seconds(meta.get("creationTimestamp"))
        if stamp is None:
            stamp = trial_times(trial)[0]
        return (math.inf if stamp is None else stamp, str(meta.get("name", "")))

    ordered = sorted(trials, key=key)
    return {str((t.get("metadata") or {}).get("name", "")): i for i, t in enumerate(ordered, 1)}


def trial_events(
    previous: Mapping[str, str], trials: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str | None, str]]:
    """(name, old state or None for a new trial, new state) for each trial whose state changed
    since `previous` ({name: state}), in the order of `trials`."""
    out: list[tuple[str, str | None, str]] = []
    for trial in trials:
        name = str((trial.get("metadata") or {}).get("name", ""))
        new = trial_status(trial)
        old = previous.get(name)
        if old != new:
            out.append((name, old, new))
    return out


# --------------------------------------------------------------------------- status: Experiment


def experiment_status(experiment: Mapping[str, Any]) -> tuple[str, str]:
    """(state, message): the latest True condition among Succeeded, Failed, Restarting, Running,
    Created (`Pending` before Katib's controller has seen it). A finished experiment's message
    gets the trial counts, e.g. `... (2 Succeeded, 3 Failed, 1 MetricsUnavailable of 6)`."""
    condition = _latest_true(_conditions(experiment), EXPERIMENT_CONDITIONS, EXPERIMENT_TERMINAL)
    if condition is None:
        return PENDING, ""
    state = str(condition["type"])
    message = str(condition.get("message") or condition.get("reason") or "")
    if state in EXPERIMENT_TERMINAL:
        counts = experiment_counts(experiment)
        parts = [f"{n} {what}" for what, n in counts.items() if n and what != "total"]
        if parts:
            message += f" ({', '.join(parts)} of {counts['total']})"
    return state, message


def experiment_counts(experiment: Mapping[str, Any]) -> dict[str, int]:
    """Katib's trial counters from the Experiment's status (absent counters are 0)."""
    status = _status(experiment)
    fields = {
        "Succeeded": "trialsSucceeded",
        "Failed": "trialsFailed",
        "MetricsUnavailable": "trialMetricsUnavailable",
        "Killed": "trialsKilled",
        "EarlyStopped": "trialsEarlyStopped",
        "Running": "trialsRunning",
        "Pending": "trialsPending",
        "total": "trials",
    }
    out = {}
    for what, key in fields.items():
        value = status.get(key)
        out[what] = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return out


def best_trial_name(experiment: Mapping[str, Any]) -> str | None:
    """`status.currentOptimalTrial.bestTrialName`, if Katib has one yet."""
    best = _status(experiment).get("currentOptimalTrial")
    name = best.get("bestTrialName") if isinstance(best, Mapping) else None
    return str(name) if name else None


def spec_from_experiment(experiment: Mapping[str, Any]) -> LaunchSpec:
    """The search part of an existing Experiment as a LaunchSpec (objective, algorithm,
    parameters, counts), e.g. to type a cluster experiment's results without its search.yaml.
    Its parameters already hold the seed parameter; trialTemplate and the collector are dropped."""
    spec = experiment.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    keys = (
        "objective",
        "algorithm",
        "parameters",
        "parallelTrialCount",
        "maxTrialCount",
        "maxFailedTrialCount",
    )
    data = {key: spec[key] for key in keys if spec.get(key) is not None}
    objective = data.get("objective")
    if isinstance(objective, Mapping):
        # Only the keys LaunchSpec knows (Katib's defaulter may add others, e.g. metricStrategies
        # is known; `objectiveMetricName` always set).
        known = set(spec_module.Objective.model_fields)
        data["objective"] = {k: v for k, v in objective.items() if k in known}
    return LaunchSpec.model_validate(data)


# --------------------------------------------------------------------------- status: why Pending

# Container waiting reasons that will not go away by themselves (kubelet's images and
# kuberuntime packages); ContainerCreating and PodInitializing are progress, not problems.
_IMAGE_PULL_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
_BAD_WAITING_REASONS = (
    *_IMAGE_PULL_REASONS,
    "CrashLoopBackOff",
    "CreateContainerConfigError",  # e.g. a --secret-env Secret or key that does not exist
    "CreateContainerError",
    "RunContainerError",
)


def _event_time(event: Mapping[str, Any]) -> float:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        stamp = epoch_seconds(event.get(key))
        if stamp is not None:
            return stamp
    series = event.get("series")
    if isinstance(series, Mapping):
        stamp = epoch_seconds(series.get("lastObservedTime"))
        if stamp is not None:
            return stamp
    stamp = epoch_seconds((event.get("metadata") or {}).get("creationTimestamp"))
    return -math.inf if stamp is None else stamp


def _latest_warning(
    events: Sequence[Mapping[str, Any]], reasons: Sequence[str] | None = None
) -> Mapping[str, Any] | None:
    warnings = [
        (index, event)
        for index, event in enumerate(events)
        if event.get("type") == "Warning" and (reasons is None or event.get("reason") in reasons)
    ]
    if not warnings:
        return None
    return max(warnings, key=lambda item: (_event_time(item[1]), item[0]))[1]


def _scheduler_message(message: str) -> str:
    """The scheduler's message without its trailing preemption report."""
    return re.split(r"\s*preemption:", message, maxsplit=1)[0].strip().rstrip(".")


def _workload_reason(workload: Mapping[str, Any]) -> str | None:
    """Kueue v0.19 (apis/kueue/v1beta2 workload_types.go): a Workload runs once Admitted=True."""
    conditions = _conditions(workload)
    by_type = {c.get("type"): c for c in conditions}
    admitted = by_type.get("Admitted")
    if admitted is not None and admitted.get("status") == "True":
        return None
    evicted = by_type.get("Evicted")
    if evicted is not None and evicted.get("status") == "True":
        return f"evicted by Kueue: {evicted.get('message') or evicted.get('reason') or ''}".rstrip(
            ": "
        )
    # QuotaReserved=False carries the scheduler's words ("insufficient unused quota ...").
    for kind in ("QuotaReserved", "Admitted", "PodsReady"):
        condition = by_type.get(kind)
        if condition is not None and condition.get("status") != "True" and condition.get("message"):
            return f"queued in Kueue, not admitted: {condition['message']}"
    return "queued in Kueue, not admitted yet"


def pending_reason(
    *,
    pod: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    workload: Mapping[str, Any] | None,
) -> str | None:
    """Why a trial is not running yet, in a user's words, or None when nothing is wrong.

    In order: a Kueue Workload not admitted (Katib knows nothing of Kueue and counts the held
    Job as Running against parallelTrialCount); the pod not scheduled (the scheduler's message,
    e.g. `0/3 nodes are available: 3 Insufficient nvidia.com/gpu`); a container stuck waiting
    (image pull, bad config such as a missing Secret, crash loop); else the latest Warning event
    (e.g. FailedMount of a missing PVC) for a pod still Pending or with no pod at all.
    """
    if workload is not None:
        reason = _workload_reason(workload)
        if reason is not None:
            return reason
    status = _status(pod) if pod is not None else {}
    for condition in status.get("conditions") or ():
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
        ):
            why = str(condition.get("reason") or "Unschedulable")
            message = _scheduler_message(str(condition.get("message") or ""))
            if why == "Unschedulable":
                return f"unschedulable: {message}" if message else "unschedulable"
            return f"not scheduled ({why}): {message}" if message else f"not scheduled ({why})"
    container_statuses = [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]
    for container in container_statuses:
        state = container.get("state") if isinstance(container, Mapping) else None
        waiting = state.get("waiting") if isinstance(state, Mapping) else None
        if not isinstance(waiting, Mapping) or waiting.get("reason") not in _BAD_WAITING_REASONS:
            continue
        why = str(waiting["reason"])
        message = str(waiting.get("message") or "")
        if why in _IMAGE_PULL_REASONS:
            # kubelet's `Failed` event says why the pull failed (not found, unauthorized, ...);
            # the waiting message only says it backs off.
            failed = _latest_warning(events, ("Failed",))
            if failed is not None and "pull" in str(failed.get("message", "")).lower():
                message = str(failed["message"])
            return f"image pull failed ({why}): {message}".rstrip(": ")
        return f"{why}: {message}".rstrip(": ")
    if pod is not None and status.get("phase") not in (None, "Pending"):
        return None
    warning = _latest_warning(events)
    if warning is not None:
        return f"{warning.get('reason') or 'Warning'}: {warning.get('message') or ''}".rstrip(": ")
    return None


def pending_reasons(
    states: Mapping[str, str],
    *,
    pods: Mapping[str, Mapping[str, Any]],
    warnings: Mapping[str, Sequence[Mapping[str, Any]]],
    workloads: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """{trial: why it is not running} for the unfinished trials in `states` ({trial: state})
    that are held up; `pods` by trial, `warnings` (Warning Events) by involved object name,
    `workloads` by Job name. Katib names a trial's Job after the trial; its pod has its own name.
    """
    out: dict[str, str] = {}
    for trial, state in states.items():
        if state not in ("Pending", "Running", "Created"):
            continue
        pod = pods.get(trial)
        pod_name = str((pod or {}).get("metadata", {}).get("name", "")) if pod else ""
        about = [*warnings.get(trial, ()), *(warnings.get(pod_name, ()) if pod_name else ())]
        why = pending_reason(pod=pod, events=about, workload=workloads.get(trial))
        if why:
            out[trial] = why
    return out


# --------------------------------------------------------------------------- metrics help


def expected_metrics_text(spec: LaunchSpec) -> str:
    """For a Failed or MetricsUnavailable trial: which TensorBoard tags Katib's TensorFlowEvent
    collector looked for, and where (tfevent_loader.py `parse_summary`: a tag matches metric `m`
    when it starts with the last `/`-part of `m`; for `dir/name` the event file's directory must
    also end with `dir`)."""
    lines = [
        "Katib's TensorFlowEvent collector reads the scalars in the event files under "
        f"{TFEVENT_DIR} (the trial's --tensorboard_dir={TFEVENT_DIR}) after the program exits; "
        "without a value for the objective the trial is MetricsUnavailable. It expected:"
    ]
    objective = spec.objective
    for metric in objective.metric_names:
        role = "objective" if metric == objective.objectiveMetricName else "additional metric"
        strategy = objective.strategy(metric)
        head, _, last = metric.rpartition("/")
        if head:
            where = (
                f"a scalar tag starting with `{last}` in an event file whose directory ends in "
                f'`{head}` (e.g. SummaryWriter(f"{{tensorboard_dir}}/{head}")'
                f'.add_scalar("{last}", value, step)); a tag `{metric}` written at the top '
                "level does not match"
            )
        else:
            where = (
                f'a scalar tag starting with `{metric}` (e.g. add_scalar("{metric}", value, '
                f"step)) in any event file under the directory"
            )
        lines.append(f"  - `{metric}` ({role}, {strategy} value): {where}")
    lines.append(
        "Scalars count when written as simple_value (torch.utils.tensorboard or tensorboardX "
        "add_scalar) or as tf.summary.scalar; `launch` runs the same rules locally "
        "(--backend local) to check a program before it goes to the cluster."
    )
    return "\n".join(lines)
