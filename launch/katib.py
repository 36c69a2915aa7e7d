"""Katib knowledge: the trial contract's argv, names and labels, the Experiment, dry-run trial lines.

Pure: plain dicts and strings, no network, disk, environment or clock. Imports only the standard
library, PyYAML (`to_yaml`), `launch.spec` and `launch.errors`. Facts are checked against Katib v0.19.0's source; the
comments name the upstream file.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

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


def _quantity(value: float | int | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
    mlflow_experiment_name: str | None = None,
    seed_flag: str = "seed",
    cpus: float | int | str | None = None,
    memory: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A `kubeflow.org/v1beta1` Experiment that Katib v0.19's webhook admits (DESIGN "Katib facts").

    Seeds are folded into the search space first. `KATIB_TRIAL_NAME` is not set here: Katib's pod
    webhook injects it into the primary container from the trial label
    (pkg/webhook/v1beta1/pod/utils.go mutatePodEnv), so the template must not define it too.
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
    ]
    reserved = {key for key, _ in env} | {"KATIB_TRIAL_NAME"}
    for key, value in (extra_env or {}).items():
        if key in reserved:
            raise UsageError(
                f"--env {key}: set by launch (trial contract)", hint=f"remove --env {key}=..."
            )
        env.append((key, value))

    resources: dict[str, dict[str, str]] = {}
    if cpus is not None:
        resources.setdefault("requests", {})["cpu"] = _quantity(cpus)
    if memory is not None:
        resources.setdefault("requests", {})["memory"] = memory
        resources.setdefault("limits", {})["memory"] = memory
    if gpus > 0:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(gpus)

    container: dict[str, Any] = {
        "name": PRIMARY_CONTAINER,
        "image": image,
        "command": ["sh", "-c"],
        "args": [_trial_args(command, spec.fixed, spec.parameters, workdir)],
        "env": _env(env),
    }
    if resources:
        container["resources"] = resources

    trial_spec = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": dict(meta_labels),
                    # An Istio sidecar never exits, so the Job would never complete.
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
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
    if spec.algorithm.algorithmName == "grid":
        # Katib's grid (pkg/suggestion/v1beta1/internal/search_space.py): int range inclusive of
        # max, double numpy.arange(min, max + step, step) minus an overshooting last point.
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
