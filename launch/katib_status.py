"""What Katib's status objects mean: a Trial's state, metrics, parameters, times and `results.Trial`
row; an Experiment's state, counters and best trial; and, for a failed trial, which TensorBoard
tags Katib's collector looked for.

Pure: plain dicts in, values out (no network, disk, environment or clock). Facts are checked
against Katib v0.19.0's source; the comments name the upstream file.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from launch import hyperband, results
from launch import spec as spec_module
from launch.contract import TFEVENT_DIR, ParamValue, format_value
from launch.errors import UsageError
from launch.events import TRIAL_FINISHED, ExperimentStatus, TrialStatus
from launch.spec import LaunchSpec

# Trial condition types (pkg/apis/controller/trials/v1beta1/trial_types.go). At most one of the
# terminal ones is True; Running turns False when the trial ends.
TRIAL_TERMINAL = tuple(TRIAL_FINISHED)
TRIAL_CONDITIONS = (*TRIAL_TERMINAL, TrialStatus.RUNNING, TrialStatus.CREATED)
PENDING = TrialStatus.PENDING
# Experiment condition types (pkg/apis/controller/experiments/v1beta1/experiment_types.go).
EXPERIMENT_TERMINAL = (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED)
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


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Kubernetes object's `status` ({} when it has none yet)."""
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def conditions_of(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`status.conditions`, the well-formed ones."""
    items = status_of(obj).get("conditions")
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
    condition = _latest_true(conditions_of(trial), TRIAL_CONDITIONS, TRIAL_TERMINAL)
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
    observation = status_of(trial).get("observation")
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
    condition = _latest_true(conditions_of(trial), TRIAL_CONDITIONS, TRIAL_TERMINAL)
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
    status = status_of(trial)
    conditions = conditions_of(trial)
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


# --------------------------------------------------------------------------- status: Experiment


def experiment_status(experiment: Mapping[str, Any]) -> tuple[str, str]:
    """(state, message): the latest True condition among Succeeded, Failed, Restarting, Running,
    Created (`Pending` before Katib's controller has seen it). A finished experiment's message
    gets the trial counts, e.g. `... (2 Succeeded, 3 Failed, 1 MetricsUnavailable of 6)`."""
    condition = _latest_true(conditions_of(experiment), EXPERIMENT_CONDITIONS, EXPERIMENT_TERMINAL)
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
    status = status_of(experiment)
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
