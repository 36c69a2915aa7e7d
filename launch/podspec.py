"""A trial pod's Kubernetes options, typed and validated once: `trial_resources(...)` checks GPUs,
CPUs, memory, /dev/shm, env, Secrets, PVC mounts, node selector, tolerations, Kueue queue and
priority, service account, pull policy, the trial timeout and the infrastructure retries, and
returns a frozen `TrialResources`; the small renderers below turn it into the pieces of a pod
spec.

A bad value is a `UsageError` that names where it came from: the flag by default (`--volume
'data': ...`), or the origin a caller passes per field (e.g. "`.launch.toml` key volume").

Pure: standard library, `launch.errors`, `launch.names` and `launch.contract`.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launch.contract import RESERVED_ENV, TFEVENT_DIR
from launch.errors import UsageError
from launch.names import LABEL_VALUE_MAX, _slug

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
# Restarts of a trial pod lost to the infrastructure in a way that is not a disruption (the trial
# Job's backoffLimit; docs/design.md "Preemption, eviction and node loss"). Disruptions never
# count, and the user's own non-zero exit fails the trial at once, so these are rare: 3 rides
# out a bad node or two without letting a broken one burn a trial's GPU time over and over.
DEFAULT_RETRIES = 3
MAX_RETRIES = 20
MAX_NODES = 64  # machines per trial: far past a small cluster, short of a typo's 1000

# The flag behind each TrialResources field: the default origin in messages, and the hints' syntax.
FLAGS = {
    "gpus": "--gpus",
    "cpus": "--cpus",
    "memory": "--memory",
    "shm_size": "--shm-size",
    "env": "--env",
    "secret_env": "--secret-env",
    "volumes": "--volume",
    "node_selector": "--node-selector",
    "tolerations": "--toleration",
    "queue": "--queue",
    "priority": "--priority",
    "service_account": "--service-account",
    "image_pull_policy": "--image-pull-policy",
    "trial_timeout_s": "--trial-timeout",
    "retries": "--retries",
    "checkpoint_dir": "--checkpoint-dir",
    "nodes": "--nodes",
}
# Settings keys (launch.config) that feed a TrialResources field.
SETTING_FIELDS = {
    "cpus": "cpus",
    "memory": "memory",
    "shm_size": "shm_size",
    "env": "env",
    "secret_env": "secret_env",
    "volume": "volumes",
    "node_selector": "node_selector",
    "toleration": "tolerations",
    "queue": "queue",
    "priority": "priority",
    "retries": "retries",
    "checkpoint_dir": "checkpoint_dir",
}


def escape_dollar(text: str) -> str:
    """Kubernetes expands `$(VAR)` in command, args and env values; `$$` is a literal `$`."""
    return text.replace("$", "$$")


def setting_origin(key: str, source: str) -> str:
    """How a message names a setting's source (`launch.settings.Settings.sources[key]`): `flag` is
    the flag, `env LAUNCH_X` stays, a settings file becomes "`<file>` key <key>"."""
    if source == "flag":
        return FLAGS[SETTING_FIELDS.get(key, key)]
    if source.startswith("env ") or source == "default":
        return source
    return f"`{source}` key {key}"


# --------------------------------------------------------------------------- quantities


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


def check_cpus(value: float | int | str, origin: str = "--cpus") -> str:
    """A positive CPU quantity (`8`, `0.5`, `500m`) as Kubernetes text."""
    text = _quantity(value)
    if isinstance(value, bool) or not _QUANTITY_RE.match(text) or _quantity_bytes(text) <= 0:
        raise UsageError(
            f"{origin}: {value!r} is not a CPU count",
            hint="pass a positive number of cores (`--cpus 8`, `--cpus 0.5`) or millicores "
            "(`--cpus 500m`)",
        )
    return text


def check_memory(value: str, flag: str, origin: str | None = None) -> str:
    """A byte quantity (`16Gi`, `512Mi`); refuses the units Kubernetes accepts but nobody means.
    `flag` spells the hints' examples, `origin` (default the flag) starts the message."""
    origin = origin or flag
    text = str(value).strip()
    match = _QUANTITY_RE.match(text)
    example = f"`{flag} 16Gi` or `{flag} 512Mi`"
    if not match or _quantity_bytes(text) <= 0:
        hint = f"use a Kubernetes quantity such as {example}"
        if re.fullmatch(r"[0-9.]+\s*[KMGTPE]i?[Bb]", text):
            hint = f"Kubernetes spells {text} as `{text.rstrip('Bb').strip()}` (or `{text[:-1].strip()}i` for binary units); {example}"
        raise UsageError(f"{origin}: {value!r} is not an amount of memory", hint=hint)
    suffix = match["suffix"] or ""
    if suffix == "m":
        raise UsageError(
            f"{origin}: {text} means {match['number']} thousandths of a byte (`m` is milli)",
            hint=f"write `{flag} {match['number']}Mi` for mebibytes",
        )
    if _quantity_bytes(text) < 2**20:
        raise UsageError(
            f"{origin}: {text} is {_quantity_bytes(text):g} bytes",
            hint=f"give a unit: `{flag} {match['number']}Gi` or `{flag} {match['number']}Mi`",
        )
    return text


# --------------------------------------------------------------------------- volumes


@dataclass(frozen=True)
class VolumeMount:
    """One `--volume CLAIM:/path[:ro]`."""

    claim: str
    path: str
    read_only: bool = False


def parse_volume(text: str, origin: str = "--volume") -> VolumeMount:
    """`CLAIM:/path` or `CLAIM:/path:ro` (`:rw` is the default): a PersistentVolumeClaim mount."""
    usage = "use `--volume CLAIM:/mount/path` or `--volume CLAIM:/mount/path:ro`"
    claim, sep, rest = text.partition(":")
    read_only = False
    if rest.endswith((":ro", ":rw")):
        read_only = rest.endswith(":ro")
        rest = rest[:-3]
    if not sep or not claim or not rest:
        raise UsageError(f"{origin} {text!r}: expected CLAIM:/path[:ro]", hint=usage)
    if not _DNS1123_SUBDOMAIN_RE.match(claim) or len(claim) > 253:
        raise UsageError(
            f"{origin} {text!r}: {claim!r} is not a PersistentVolumeClaim name "
            "(lowercase letters, digits, `-` and `.`)",
            hint=f"{usage}; `kubectl get pvc` lists the claims of the namespace",
        )
    if "$" in rest:
        # Katib substitutes `${trialParameters.X}` anywhere in the template.
        raise UsageError(f"{origin} {text!r}: a mount path may not contain `$`", hint=usage)
    if not rest.startswith("/") or ":" in rest:
        raise UsageError(
            f"{origin} {text!r}: the mount path {rest!r} must be absolute (start with `/`)",
            hint=usage,
        )
    parts = [part for part in rest.split("/") if part]
    if ".." in parts or not parts:
        raise UsageError(
            f"{origin} {text!r}: mount path {rest!r} must name a directory below `/` without `..`",
            hint=usage,
        )
    return VolumeMount(claim=claim, path="/" + "/".join(parts), read_only=read_only)


def _is_within(path: str, directory: str) -> bool:
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def _check_volumes(texts: Sequence[str], origins: Sequence[str]) -> tuple[VolumeMount, ...]:
    """Each mount parsed; none over /dev/shm or Katib's event directory, no path mounted twice."""
    out: list[VolumeMount] = []
    seen_paths: dict[str, tuple[str, str]] = {}  # path -> (text, origin)
    for text, origin in zip(texts, origins, strict=True):
        volume = parse_volume(text, origin)
        for reserved, why in (
            (SHM_DIR, "the shared-memory mount (use --shm-size for its size)"),
            (TFEVENT_DIR, "where Katib's metrics collector reads the TensorBoard files"),
        ):
            if _is_within(volume.path, reserved) or _is_within(reserved, volume.path):
                raise UsageError(
                    f"{origin} {text!r}: {volume.path} overlaps {reserved.rstrip('/')}, {why}",
                    hint=f"mount the claim somewhere else, e.g. `--volume {volume.claim}:/data`",
                )
        if volume.path in seen_paths:
            first, first_origin = seen_paths[volume.path]
            raise UsageError(
                f"{origin} {text!r}: {volume.path} is already the mount path of "
                f"{first_origin} {first!r}",
                hint="give each --volume its own mount path",
            )
        seen_paths[volume.path] = (text, origin)
        out.append(volume)
    return tuple(out)


# --------------------------------------------------------------------------- scheduling


def _is_qualified_name(key: str) -> bool:
    """A label key or taint key: `[prefix/]name`, prefix a DNS subdomain, name at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (not _DNS1123_SUBDOMAIN_RE.match(prefix) or len(prefix) > 253):
        return False
    return bool(_LABEL_NAME_RE.match(name)) and len(name) <= LABEL_VALUE_MAX


def _is_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE_RE.match(value)) and len(value) <= LABEL_VALUE_MAX


def parse_toleration(text: str, origin: str = "--toleration") -> dict[str, str]:
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
        raise UsageError(f"{origin} {text!r}: unknown taint effect {effect!r}", hint=usage)
    if not _is_qualified_name(key):
        raise UsageError(
            f"{origin} {text!r}: {key!r} is not a taint key",
            hint=f"{usage}; `kubectl describe node` shows a node's taints",
        )
    if eq and not (value and _is_label_value(value)):
        raise UsageError(f"{origin} {text!r}: {value!r} is not a taint value", hint=usage)
    out = {"key": key, "operator": "Equal" if eq else "Exists"}
    if eq:
        out["value"] = value
    if sep:
        out["effect"] = effect
    return out


def _check_node_label(key: str, value: str, origin: str) -> tuple[str, str]:
    if not _is_qualified_name(key) or not _is_label_value(value):
        raise UsageError(
            f"{origin} {key}={value}: not a node label "
            f"({'key' if not _is_qualified_name(key) else 'value'} is invalid)",
            hint="use `--node-selector KEY=VALUE` with a label the nodes carry "
            "(`kubectl get nodes --show-labels`), e.g. "
            "`--node-selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3`",
        )
    return key, value


def check_name(value: str, origin: str, what: str, *, max_length: int = 253, flag: str = "") -> str:
    """An object name (DNS-1123 subdomain) of an existing `what`, e.g. a Secret."""
    if not _DNS1123_SUBDOMAIN_RE.match(value) or len(value) > max_length:
        raise UsageError(
            f"{origin} {value!r}: not a valid {what} name (lowercase letters, digits, `-` and `.`, "
            f"at most {max_length} characters)",
            hint=f"pass the name of an existing {what}: `{flag or origin} NAME`",
        )
    return value


def _check_env(key: str, value: str, origin: str) -> tuple[str, str]:
    if key in RESERVED_ENV:
        raise UsageError(
            f"{origin} {key}: set by launch (trial contract)", hint=f"remove --env {key}=..."
        )
    if not _ENV_NAME_RE.match(key):
        raise UsageError(
            f"{origin} {key}: not an environment variable name",
            hint="use `--env NAME=VALUE` with NAME made of letters, digits, `_`, `-` and `.`, "
            "not starting with a digit",
        )
    return key, value


# --------------------------------------------------------------------------- TrialResources


@dataclass(frozen=True)
class TrialResources:
    """What a trial pod asks of Kubernetes, already validated: build it with `trial_resources`.

    `cpus` is the request, `memory` request and limit, `shm_size` a memory-backed emptyDir at
    /dev/shm (it counts against the memory limit), `env` the user's variables, `secret_env`
    Secrets whose keys become variables (envFrom), `volumes` PVC mounts, `node_selector` and
    `tolerations` where trials may run, `queue`/`priority` Kueue's labels on the trial Job,
    `trial_timeout_s` the Job's activeDeadlineSeconds, `retries` its backoffLimit (pod failures
    that are neither a disruption nor the training container's own error). None and () leave a
    field out.
    """

    gpus: int = 0
    cpus: str | None = None
    memory: str | None = None
    shm_size: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()  # each as parse_toleration's items
    queue: str | None = None
    priority: str | None = None
    service_account: str | None = None
    image_pull_policy: str | None = None
    trial_timeout_s: int | None = None
    retries: int = DEFAULT_RETRIES
    checkpoint_dir: str | None = None  # inside a writable `volumes` mount (`restart_prelude`)
    nodes: int = 1  # more than 1: each trial is a TrainJob of `nodes` pods (`launch.trainjob`)


Origins = Mapping[str, str | Sequence[str]]


def _origins(origins: Origins | None, field: str, count: int) -> list[str]:
    """One origin per item of a list field (a single origin covers them all)."""
    given = (origins or {}).get(field, FLAGS[field])
    if isinstance(given, str):
        return [given] * count
    if len(given) != count:
        raise ValueError(f"origins[{field!r}]: {len(given)} origins for {count} items")
    return list(given)


def _origin(origins: Origins | None, field: str) -> str:
    given = (origins or {}).get(field, FLAGS[field])
    if not isinstance(given, str):
        raise ValueError(f"origins[{field!r}]: one origin for a single value")
    return given


def trial_resources(
    *,
    gpus: int = 0,
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
    retries: int = DEFAULT_RETRIES,
    checkpoint_dir: str | None = None,
    nodes: int = 1,
    origins: Origins | None = None,
) -> TrialResources:
    """Check every trial pod option once and return them typed; a bad one is a UsageError.

    `origins` says where a field's value came from, by TrialResources field name (`volumes`,
    `tolerations`, `env`, ...): messages name it instead of the flag (`FLAGS`). For the list
    fields (`env`, `secret_env`, `volumes`, `node_selector`, `tolerations`) it may be one origin
    per item, e.g. settings-file items first, then the flags' (see `setting_origin`).
    """
    unknown = set(origins or {}) - set(FLAGS)
    if unknown:
        raise ValueError(f"origins for unknown fields: {', '.join(sorted(unknown))}")
    env_items = list((extra_env or {}).items())
    env = tuple(
        _check_env(key, value, origin)
        for (key, value), origin in zip(
            env_items, _origins(origins, "env", len(env_items)), strict=True
        )
    )
    cpus_text = None if cpus is None else check_cpus(cpus, _origin(origins, "cpus"))
    if memory is not None:
        memory = check_memory(memory, "--memory", _origin(origins, "memory"))
    if shm_size is not None:
        shm_size = check_memory(shm_size, "--shm-size", _origin(origins, "shm_size"))
        if memory is not None and _quantity_bytes(shm_size) > _quantity_bytes(memory):
            raise UsageError(
                f"{_origin(origins, 'shm_size')} {shm_size} exceeds "
                f"{_origin(origins, 'memory')} {memory}: /dev/shm is memory-backed "
                "and counts against the trial's memory limit",
                hint=f"raise --memory or lower --shm-size (at most {memory})",
            )
    mounts = _check_volumes(volumes, _origins(origins, "volumes", len(volumes)))
    if image_pull_policy is not None and image_pull_policy not in IMAGE_PULL_POLICIES:
        raise UsageError(
            f"{_origin(origins, 'image_pull_policy')} {image_pull_policy!r}: not a pull policy",
            hint=f"use one of {', '.join(IMAGE_PULL_POLICIES)}",
        )
    secret_origins: dict[str, str] = {}  # each Secret once, named by its first origin
    for secret, origin in zip(
        secret_env, _origins(origins, "secret_env", len(secret_env)), strict=True
    ):
        secret_origins.setdefault(secret, origin)
    secrets = tuple(
        check_name(secret, origin, "Secret", flag="--secret-env")
        for secret, origin in secret_origins.items()
    )
    if service_account is not None:
        check_name(
            service_account,
            _origin(origins, "service_account"),
            "ServiceAccount",
            flag="--service-account",
        )
    selector_items = list((node_selector or {}).items())
    selector = tuple(
        _check_node_label(key, value, origin)
        for (key, value), origin in zip(
            selector_items,
            _origins(origins, "node_selector", len(selector_items)),
            strict=True,
        )
    )
    parsed_tolerations = tuple(
        tuple(parse_toleration(text, origin).items())
        for text, origin in zip(
            tolerations, _origins(origins, "tolerations", len(tolerations)), strict=True
        )
    )
    for field, wanted, what in (
        ("queue", queue, "Kueue LocalQueue"),
        ("priority", priority, "Kueue WorkloadPriorityClass"),
    ):
        if wanted is not None:
            check_name(
                wanted, _origin(origins, field), what, max_length=LABEL_VALUE_MAX, flag=FLAGS[field]
            )
    if trial_timeout_s is not None and not (
        isinstance(trial_timeout_s, int) and trial_timeout_s >= 1
    ):
        raise UsageError(
            f"{_origin(origins, 'trial_timeout_s')}: expected at least 1 second, "
            f"got {trial_timeout_s!r}",
            hint="pass --trial-timeout 90s, 30m or 2h",
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise UsageError(
            f"{_origin(origins, 'retries')}: expected a whole number from 0 to {MAX_RETRIES}, "
            f"got {retries!r}",
            hint=f"pass --retries {DEFAULT_RETRIES} (restarts of a trial lost to the "
            "infrastructure; preemption and eviction never count, the trial's own errors "
            "fail it at once)",
        )
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise UsageError(
            f"{_origin(origins, 'nodes')}: expected a whole number from 1 to {MAX_NODES}, "
            f"got {nodes!r}",
            hint="pass --nodes 2 for trials of two machines (--gpus counts the GPUs of each)",
        )
    if checkpoint_dir is not None:
        checkpoint_dir = _check_checkpoint_dir(
            checkpoint_dir, mounts, _origin(origins, "checkpoint_dir")
        )
    return TrialResources(
        gpus=gpus,
        cpus=cpus_text,
        memory=memory,
        shm_size=shm_size,
        env=env,
        secret_env=secrets,
        volumes=mounts,
        node_selector=selector,
        tolerations=parsed_tolerations,
        queue=queue,
        priority=priority,
        service_account=service_account,
        image_pull_policy=image_pull_policy,
        trial_timeout_s=trial_timeout_s,
        retries=retries,
        checkpoint_dir=checkpoint_dir,
        nodes=nodes,
    )


def _check_checkpoint_dir(path: str, mounts: Sequence[VolumeMount], origin: str) -> str:
    """`path` normalised, when it lies inside a writable `--volume` mount: only a volume keeps a
    checkpoint when the trial's pod is replaced."""
    clean = posixpath.normpath(path) if path.startswith("/") else ""
    writable = [m for m in mounts if not m.read_only and _is_within(clean, m.path)]
    if not clean or ".." in clean.split("/") or not writable:
        where = ", ".join(f"{m.path}{' (ro)' if m.read_only else ''}" for m in mounts) or "none"
        raise UsageError(
            f"{origin} {path!r}: not an absolute path inside a writable --volume mount "
            f"(mounts: {where})",
            hint="mount a ReadWriteMany PVC, e.g. --volume checkpoints:/checkpoints, and pass "
            "--checkpoint-dir /checkpoints",
        )
    return clean


# --------------------------------------------------------------------------- restarts

STARTS_FILE = ".launch-starts"  # in the trial's checkpoint directory: how often it started


def restart_prelude(resources: TrialResources, experiment: str) -> str:
    """Shell text (ending in `&& `, `$` escaped for Kubernetes) that a cluster trial's command
    starts with when `checkpoint_dir` is set: `LAUNCH_CHECKPOINT_DIR` becomes
    `<checkpoint_dir>/<experiment>/<trial>` (made if missing) and `LAUNCH_RESTART_COUNT` the
    number of earlier starts recorded there (0 on the first; a pod replaced after a preemption
    sees 1). Kubernetes tells a pod nothing of its Job's earlier pods, so the count lives on the
    volume beside the checkpoints it is about. "" without `checkpoint_dir`."""
    if resources.checkpoint_dir is None:
        return ""
    base = shlex.quote(f"{resources.checkpoint_dir.rstrip('/')}/{experiment}")
    starts = f'"$LAUNCH_CHECKPOINT_DIR/{STARTS_FILE}"'
    text = (
        f'LAUNCH_CHECKPOINT_DIR={base}/"${{KATIB_TRIAL_NAME:?}}" && '
        'mkdir -p "$LAUNCH_CHECKPOINT_DIR" && '
        f"LAUNCH_RESTART_COUNT=$(cat {starts} 2>/dev/null || :) && "
        'case "$LAUNCH_RESTART_COUNT" in ""|*[!0-9]*) LAUNCH_RESTART_COUNT=0;; esac && '
        f"echo $((LAUNCH_RESTART_COUNT + 1)) > {starts} && "
        "export LAUNCH_CHECKPOINT_DIR LAUNCH_RESTART_COUNT && "
    )
    return escape_dollar(text)


TENSORBOARD_SUBDIR = "tensorboard"  # in the trial's checkpoint directory


@dataclass(frozen=True)
class RestartWrap:
    """How a cluster trial with `checkpoint_dir` runs its program (shell text, `$` escaped for
    Kubernetes): `tensorboard_flag` replaces `--tensorboard_dir=<collector path>`; `before` and
    `after` go around the program's words."""

    tensorboard_flag: str | None = None
    before: str = ""
    after: str = ""


NO_RESTART_WRAP = RestartWrap()


def restart_wrap(resources: TrialResources) -> RestartWrap:
    """The program's part of the restart contract; nothing without `checkpoint_dir`.

    TensorBoard: Katib mounts a fresh emptyDir at the collector's path in every pod and reads
    it once the main process has exited, so a replaced pod would lose its predecessors' events.
    The program writes to `$LAUNCH_CHECKPOINT_DIR/tensorboard` on the volume instead, and when it
    exits the shell copies that whole history into the collector's path.

    SIGTERM: the kubelet stops a pod (preemption, eviction, drain) by signalling the container's
    main process, the `sh -c` shell, which would die and leave the program to the SIGKILL at the
    end of the grace period. The program runs in the background and the shell forwards SIGTERM
    to it, so a trainer can save a checkpoint before it goes; the shell then waits for its real
    exit status. The group ends in that status (Katib's `&& echo completed` follows it)."""
    if resources.checkpoint_dir is None:
        return NO_RESTART_WRAP
    source = f'"$LAUNCH_CHECKPOINT_DIR/{TENSORBOARD_SUBDIR}"'
    after = (
        " & launch_pid=$! ; "
        "trap 'kill -TERM \"$launch_pid\" 2>/dev/null' TERM ; "
        'wait "$launch_pid" ; launch_rc=$? ; '
        # A trapped signal ends `wait` early (status > 128): wait again for the real end.
        'while [ "$launch_rc" -gt 128 ] && kill -0 "$launch_pid" 2>/dev/null ; do '
        'wait "$launch_pid" ; launch_rc=$? ; done ; '
        f"cp -R {source}/. {shlex.quote(TFEVENT_DIR)} 2>/dev/null ; "
        '[ "$launch_rc" -eq 0 ] ; }'
    )
    return RestartWrap(
        tensorboard_flag=escape_dollar(f"--tensorboard_dir={source}"),
        before="{ ",
        after=escape_dollar(after),
    )


# --------------------------------------------------------------------------- pod spec parts


def container_env(contract: Mapping[str, str], resources: TrialResources) -> list[dict[str, Any]]:
    """Container env: the contract's variables, then the user's, `$` escaped."""
    items = [*contract.items(), *resources.env]
    return [{"name": key, "value": escape_dollar(value)} for key, value in items]


def container_resources(resources: TrialResources) -> dict[str, dict[str, str]]:
    """`resources` of the container: cpu and memory requests, memory and GPU limits."""
    out: dict[str, dict[str, str]] = {}
    if resources.cpus is not None:
        out.setdefault("requests", {})["cpu"] = resources.cpus
    if resources.memory is not None:
        out.setdefault("requests", {})["memory"] = resources.memory
        out.setdefault("limits", {})["memory"] = resources.memory
    if resources.gpus > 0:
        out.setdefault("limits", {})["nvidia.com/gpu"] = str(resources.gpus)
    return out


def pod_volumes(resources: TrialResources) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pod volumes and container volumeMounts: the PVCs of `--volume` and the /dev/shm emptyDir."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if resources.shm_size is not None:
        # A memory-backed emptyDir counts against the container's memory limit.
        volumes.append(
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": resources.shm_size}}
        )
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_DIR})
    names: dict[str, str] = {}  # claim -> volume name
    for volume in resources.volumes:
        if volume.claim not in names:
            base = ("pvc-" + _slug(volume.claim))[:LABEL_VALUE_MAX].rstrip("-")
            name, n = base, 2
            while name in names.values() or name == SHM_VOLUME:
                name = f"{base[: LABEL_VALUE_MAX - len(str(n)) - 1].rstrip('-')}-{n}"
                n += 1
            names[volume.claim] = name
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": volume.claim}})
        mount: dict[str, Any] = {"name": names[volume.claim], "mountPath": volume.path}
        if volume.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def pod_scheduling(resources: TrialResources) -> dict[str, Any]:
    """The pod spec's serviceAccountName, nodeSelector and tolerations, those that are set."""
    out: dict[str, Any] = {}
    if resources.service_account is not None:
        out["serviceAccountName"] = resources.service_account
    if resources.node_selector:
        out["nodeSelector"] = dict(resources.node_selector)
    if resources.tolerations:
        out["tolerations"] = [dict(items) for items in resources.tolerations]
    return out
