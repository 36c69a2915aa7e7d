"""The Katib Experiment: `render_experiment` builds a `kubeflow.org/v1beta1` Experiment from
small parts (objective, algorithm, parameters, the trial's container, pod and Job), and
`trial_command_lines` shows the trials' argv for `--dry-run`.

Pure: plain dicts and strings, no network, disk, environment or clock. The trial contract lives
in `launch.contract`, names and labels in `launch.names`, pod options in `launch.podspec`, status
in `launch.katib_status` and `launch.diagnosis`. Facts are checked against Katib v0.19.0's
source; the comments name the upstream file.
"""

from __future__ import annotations

import itertools
import math
import random
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from launch import contract, hyperband, podspec
from launch import spec as spec_module
from launch.contract import TFEVENT_DIR, ParamValue, format_value, merge_params, trial_argv
from launch.errors import UsageError
from launch.names import (
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    experiment_url,
    labels,
    metadata_annotations,
    validate_experiment_name,
)
from launch.podspec import TrialResources, escape_dollar
from launch.spec import LaunchSpec, Parameter, Scalar

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"
PRIMARY_CONTAINER = "training"

# Katib's defaults for a batch Job (pkg/apis/controller/experiments/v1beta1/constants.go).
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'

# Besides its own names, re-exports for modules that still import them from here (cli, doctor,
# stats and their tests): TFEVENT_DIR, merge_params, trial_argv (launch.contract), KUEUE_*_LABEL,
# NAMESPACE_LABEL, experiment_name, validate_experiment_name (launch.names), to_yaml
# (launch.yamltext), experiment_status, trial_row (launch.katib_status). To be dropped once
# those importers use the new modules.
__all__ = [
    "API_VERSION",
    "JOB_FAILURE_CONDITION",
    "JOB_SUCCESS_CONDITION",
    "KIND",
    "PRIMARY_CONTAINER",
    "render_experiment",
    "trial_command_lines",
    "trial_failure_policy",
]


# --------------------------------------------------------------------------- search parts


def _objective(spec: LaunchSpec) -> dict[str, Any]:
    objective = spec.objective
    out: dict[str, Any] = {
        "type": objective.type,
        "objectiveMetricName": objective.objectiveMetricName,
    }
    if objective.additionalMetricNames:
        out["additionalMetricNames"] = list(objective.additionalMetricNames)
    if objective.goal is not None:
        out["goal"] = objective.goal
    # Explicit strategies: Katib's defaulter would otherwise pick min/max by the objective's type
    # for every metric (experiment_defaults.go setDefaultObjective).
    out["metricStrategies"] = [
        {"name": metric, "value": objective.strategy(metric)} for metric in objective.metric_names
    ]
    return out


def _algorithm(spec: LaunchSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"algorithmName": spec.algorithm.algorithmName}
    if spec.algorithm.algorithmSettings:
        out["algorithmSettings"] = [
            {"name": item.name, "value": str(item.value)}
            for item in spec.algorithm.algorithmSettings
        ]
    return out


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


def _parameters(spec: LaunchSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": param.name,
            "parameterType": param.parameterType,
            "feasibleSpace": _feasible_space(param),
        }
        for param in spec.parameters
    ]


def _trial_parameters(spec: LaunchSpec) -> list[dict[str, Any]]:
    """One trialParameter per parameter; a dotted name gets a safe one (`optim__lr`)."""
    return [
        {
            "name": param.trial_parameter_name,
            "description": f"--{param.name}",
            "reference": param.name,
        }
        for param in spec.parameters
    ]


# --------------------------------------------------------------------------- trial parts


def _placeholder(param: Parameter) -> str:
    return "${trialParameters." + param.trial_parameter_name + "}"


def trial_args(
    command: Sequence[str],
    fixed: Mapping[str, Scalar],
    parameters: Sequence[Parameter],
    workdir: str = "",
    configs: Sequence[Mapping[str, Scalar]] | None = None,
    wrap: podspec.RestartWrap = podspec.NO_RESTART_WRAP,
) -> str:
    """The one `sh -c` string: quoted user text, `${trialParameters.X}` for the swept flags.
    `wrap`: a checkpointed trial's `--tensorboard_dir` word and the text around the program
    (`podspec.restart_wrap`).

    Katib's pod webhook joins command and args with spaces, unquoted, and appends
    `&& echo completed > <dir>/$$$$.pid` (pkg/webhook/v1beta1/pod/utils.go wrapWorkerContainer),
    so the program must run in the foreground (no `exec`) and every user token is shlex-quoted.
    Katib substitutes the placeholder text before Kubernetes expands `$(...)`; numbers need no
    quotes, categorical values are single-quoted.

    A seed study (`configs`): the config number (`spec.CONFIG_PARAM`) is not passed on; a shell
    `case` on it sets the config's flags (quoted like `fixed`) as `"$@"`, in the config's place.
    """
    words = [escape_dollar(shlex.quote(word)) for word in command]
    words += [
        escape_dollar(shlex.quote(f"--{name}={format_value(value)}"))
        for name, value in fixed.items()
    ]
    prefix = ""
    for param in parameters:
        if configs is not None and param.name == spec_module.CONFIG_PARAM:
            prefix = _config_case(configs, _placeholder(param))
            words.append('"$$@"')  # escape_dollar'ed: Kubernetes reads `$$` as `$`
            continue
        flag = f"--{param.name}={_placeholder(param)}"
        words.append(f"'{flag}'" if param.parameterType == "categorical" else flag)
    words.append(wrap.tensorboard_flag or shlex.quote(f"--tensorboard_dir={TFEVENT_DIR}"))
    # Run from the same subdirectory of the repo as the user did (the image's WORKDIR is its root).
    if workdir:
        prefix += f"cd {escape_dollar(shlex.quote(workdir))} && "
    return prefix + wrap.before + " ".join(words) + wrap.after


def _config_case(configs: Sequence[Mapping[str, Scalar]], placeholder: str) -> str:
    """`case <number> in 1) set -- '--lr=0.1' ...;; ... esac && `: config N's flags as the
    positional parameters; an unknown number fails the trial (exit 2) before the program runs."""
    arms = []
    for number, config in enumerate(configs, 1):
        flags = " ".join(
            escape_dollar(shlex.quote(f"--{name}={format_value(value)}"))
            for name, value in config.items()
        )
        arms.append(f"{number}) set -- {flags};;")
    unknown = shlex.quote(f"launch: no config number {placeholder} in this seed study")
    arms.append(f"*) echo {unknown} >&2; exit 2;;")
    return f"case {placeholder} in {' '.join(arms)} esac && "


def _container(
    *,
    image: str,
    args: str,
    env: Mapping[str, str],
    resources: TrialResources,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The primary (training) container: `sh -c <args>`, the contract's env, the pod options."""
    container: dict[str, Any] = {"name": PRIMARY_CONTAINER, "image": image}
    if resources.image_pull_policy is not None:
        container["imagePullPolicy"] = resources.image_pull_policy
    container.update(
        {
            "command": ["sh", "-c"],
            "args": [args],
            "env": podspec.container_env(env, resources),
        }
    )
    if resources.secret_env:
        container["envFrom"] = [{"secretRef": {"name": secret}} for secret in resources.secret_env]
    requests_limits = podspec.container_resources(resources)
    if requests_limits:
        container["resources"] = requests_limits
    if mounts:
        container["volumeMounts"] = mounts
    return container


def trial_failure_policy() -> dict[str, Any]:
    """The trial Job's podFailurePolicy (docs/design.md "Preemption, eviction and node loss").

    Rules are tried in order, the first match wins (Kubernetes:
    pkg/controller/job/pod_failure_policy.go). A pod with the `DisruptionTarget` condition
    (preempted, evicted, drained, its node lost or shut down) is `Ignore`d: replaced without
    counting against backoffLimit, even when the training container died of the SIGTERM that
    came with it. Otherwise a non-zero exit of the training container is the user's error and
    `FailJob`s the trial at once, as `backoffLimit: 0` did. A pod that fails any other way
    counts against backoffLimit (the `retries`). `status: "True"` is what the API server would
    default, written out so that the object Katib stores is the object rendered here.
    """
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": PRIMARY_CONTAINER,
                    "operator": "NotIn",
                    "values": [0],
                },
            },
        ]
    }


def _trial_job(
    container: dict[str, Any],
    *,
    resources: TrialResources,
    pod_volumes: list[dict[str, Any]],
    pod_labels: Mapping[str, str],
) -> dict[str, Any]:
    """The trial's batch/v1 Job template: no name or namespace (Katib sets them), Kueue labels,
    `backoffLimit: <retries>` with `trial_failure_policy()`, `restartPolicy: Never` (which a
    podFailurePolicy requires), no Istio sidecar."""
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    pod_spec.update(podspec.pod_scheduling(resources))
    if pod_volumes:
        pod_spec["volumes"] = pod_volumes
    job: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job"}
    # Kueue's Job integration reads the queue and priority from the Job's own labels.
    job_labels = {
        label: value
        for label, value in (
            (KUEUE_QUEUE_LABEL, resources.queue),
            (KUEUE_PRIORITY_LABEL, resources.priority),
        )
        if value is not None
    }
    if job_labels:
        job["metadata"] = {"labels": job_labels}
    timeout = resources.trial_timeout_s
    job["spec"] = {
        "backoffLimit": resources.retries,
        **({"activeDeadlineSeconds": timeout} if timeout else {}),
        "podFailurePolicy": trial_failure_policy(),
        "template": {
            "metadata": {
                "labels": dict(pod_labels),
                # An Istio sidecar never exits, so the Job would never complete.
                "annotations": {"sidecar.istio.io/inject": "false"},
            },
            "spec": pod_spec,
        },
    }
    return job


# --------------------------------------------------------------------------- the Experiment


def render_experiment(
    *,
    spec: LaunchSpec,
    name: str,
    namespace: str,
    image: str,
    command: Sequence[str],
    commit: str,
    branch: str | None,
    user: str,
    mlflow_tracking_uri: str | None,
    workdir: str = "",
    katib_url: str | None = None,
    mlflow_experiment_name: str | None = None,
    seed_flag: str = "seed",
    resources: TrialResources | None = None,
    trainer_runtime: str = "launch-torch",
    **pod_options: Any,
) -> dict[str, Any]:
    """A `kubeflow.org/v1beta1` Experiment that Katib v0.19's webhook admits (DESIGN "Katib facts").

    Seeds are folded into the search space first. The trial's environment is the contract's
    (`contract.trial_env`, without KATIB_TRIAL_NAME, which Katib's pod webhook injects) plus the
    user's. The pod options come as `resources` (see `podspec.trial_resources`), or, for older
    callers, as its keyword arguments (`gpus`, `cpus`, `memory`, `shm_size`, `extra_env`,
    `secret_env`, `volumes`, `node_selector`, `tolerations`, `queue`, `priority`,
    `service_account`, `image_pull_policy`, `trial_timeout_s`, `retries`), checked here: a bad
    one is a UsageError naming its flag before anything is created.
    """
    validate_experiment_name(name)
    if not command:
        raise UsageError(
            "no command to run", hint="put the command after `--`, e.g. -- python train.py"
        )
    if resources is not None and pod_options:
        raise TypeError(f"pass resources or pod options, not both: {sorted(pod_options)}")
    user_env = dict(resources.env) if resources is not None else pod_options.get("extra_env") or {}
    _refuse_placeholders(command, spec.fixed, user_env, spec.configs)
    if spec.configs is not None:
        spec = spec_module.katib_form(spec, seed_flag)  # a grid over config number x seed
    else:
        spec = spec_module.apply_seeds(spec, seed_flag=seed_flag)
    counts = spec_module.resolve_counts(spec)
    _check_trial_parameter_names(spec.parameters)
    if resources is None:
        resources = podspec.trial_resources(**pod_options)
    meta_labels = labels(user=user, branch=branch, commit=commit)
    env = contract.trial_env(
        experiment=name,
        namespace=namespace,
        commit=commit,
        image=image,
        tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment_name,
        katib_url=experiment_url(katib_url, namespace, name) if katib_url else None,
    )
    template: dict[str, Any]
    if resources.nodes > 1:
        template = _multi_node(
            spec, command, workdir, image=image, env=env, resources=resources,
            runtime=trainer_runtime, pod_labels=meta_labels,
        )  # fmt: skip
    else:
        pod_volumes, mounts = podspec.pod_volumes(resources)
        # With a checkpoint_dir: the trial's restart count and checkpoint directory first; the
        # program gets SIGTERM and keeps its TensorBoard history across restarts.
        container = _container(
            image=image,
            args=podspec.restart_prelude(resources, name)
            + trial_args(
                command,
                spec.fixed,
                spec.parameters,
                workdir,
                spec.configs,
                podspec.restart_wrap(resources),
            ),
            env=env,
            resources=resources,
            mounts=mounts,
        )
        trial_job = _trial_job(
            container, resources=resources, pod_volumes=pod_volumes, pod_labels=meta_labels
        )
        template = {
            "primaryContainerName": PRIMARY_CONTAINER,
            "successCondition": JOB_SUCCESS_CONDITION,
            "failureCondition": JOB_FAILURE_CONDITION,
            "trialSpec": trial_job,
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
            "objective": _objective(spec),
            "algorithm": _algorithm(spec),
            "parallelTrialCount": counts.parallel,
            "maxTrialCount": counts.max_trials,
            "maxFailedTrialCount": counts.max_failed,
            "resumePolicy": "Never",
            "metricsCollectorSpec": {
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": TFEVENT_DIR, "kind": "Directory"}},
            },
            "parameters": _parameters(spec),
            "trialTemplate": {
                "retain": True,
                **{k: v for k, v in template.items() if k != "trialSpec"},
                "trialParameters": _trial_parameters(spec),
                "trialSpec": template["trialSpec"],
            },
        },
    }


def _multi_node(
    spec: LaunchSpec,
    command: Sequence[str],
    workdir: str,
    *,
    image: str,
    env: Mapping[str, str],
    resources: TrialResources,
    runtime: str,
    pod_labels: Mapping[str, str],
) -> dict[str, Any]:
    """The trial template's fields for a trial of `resources.nodes` machines: a Kubeflow Trainer
    TrainJob (`launch.trainjob`), its launcher in front of the command, rank 0 the primary pod."""
    from launch import trainjob  # it builds on this module: imported when needed

    if resources.checkpoint_dir is not None:
        raise UsageError(
            "--checkpoint-dir with --nodes > 1: every node would count its own restarts",
            hint="drop --checkpoint-dir for multi-node trials (save checkpoints from rank 0 "
            "into a --volume path of your own)",
        )
    args, _ = trainjob.trial_args(
        command, spec.fixed, spec.parameters, nodes=resources.nodes,
        procs_per_node=max(resources.gpus, 1), workdir=workdir, configs=spec.configs,
    )  # fmt: skip
    return {
        **trainjob.trial_template_fields(),
        "trialSpec": trainjob.render_trainjob(
            image=image,
            # A TrainJob has no envFrom: --secret-env Secrets are files, exported first.
            args=trainjob.secret_prelude(resources) + args,
            env=env,
            resources=resources,
            nodes=resources.nodes,
            runtime=runtime,
            pod_labels=pod_labels,
        ),
    }


def _refuse_placeholders(
    command: Sequence[str],
    fixed: Mapping[str, Scalar],
    env: Mapping[str, str],
    configs: Sequence[Mapping[str, Scalar]] | None = None,
) -> None:
    """Katib substitutes `${trialParameters.X}` anywhere in the template, even in user text (and
    refuses unknown ones: validator.go), so user text may not contain one."""
    texts = [*command, *(str(v) for v in fixed.values()), *env.values()]
    texts += [str(v) for config in configs or () for v in config.values()]
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
    if spec.configs is not None:  # a seed study: every config x seed, config slowest
        return [
            trial_argv(command, merge_params(spec.fixed, params), TFEVENT_DIR)
            for params in spec_module.study_points(spec, seed_flag)
        ]
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
