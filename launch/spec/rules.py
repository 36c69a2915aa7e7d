"""Katib's admission rules and the runtime traps of DESIGN.md, checked on a parsed spec.

`check_rules` runs them all, in order; the rules of one concern live beside it (names, space,
algorithms, counts, hyperband_rules). Here too: the objective's metrics and the fixed values.
"""

from __future__ import annotations

import difflib

import yaml

from launch import hyperband
from launch.spec.algorithms import _check_algorithm_name, _check_settings
from launch.spec.counts import _check_counts, _seed_count
from launch.spec.grid import _check_grid_bound, grid_size
from launch.spec.hyperband_rules import _check_hyperband, _check_hyperband_settings
from launch.spec.limits import MAX_METRICS
from launch.spec.models import LaunchSpec, Objective
from launch.spec.names import _check_names
from launch.spec.source import Path, SpecSource
from launch.spec.space import _check_for_algorithm, _check_space
from launch.spec.values import _METRIC_RE
from launch.spec.yaml_lines import _flag_yaml, _Refused


def check_rules(spec: LaunchSpec, source: SpecSource) -> None:
    """Katib's admission webhook rules and the runtime traps of DESIGN.md, with file:line: field."""
    algorithm = spec.algorithm.algorithmName
    _check_algorithm_name(algorithm, source)
    # No parameters and no seeds is refused by apply_seeds: --seeds may still supply the sweep.
    _check_names(spec, source)
    resource = spec.algorithm.setting("resource_name") if algorithm == hyperband.NAME else None
    for index, param in enumerate(spec.parameters):
        # Katib's hyperband overwrites its resource parameter: min = max is a placeholder there.
        _check_space(param, source, ("parameters", index), placeholder=param.name == resource)
        _check_for_algorithm(param, algorithm, source, ("parameters", index))
    if algorithm == "grid":
        _check_grid(spec, source)
    if algorithm == hyperband.NAME:
        _check_hyperband_settings(spec.algorithm, source)
    _check_settings(spec.algorithm, source)
    _check_objective(spec.objective, source)
    _check_fixed_values(spec, source)
    if algorithm == "cmaes" and spec.parameters:
        numeric = sum(p.parameterType in ("double", "int") for p in spec.parameters)
        if numeric < 2:
            raise source.error(
                ("parameters",),
                f"cmaes needs at least 2 double or int parameters, got {numeric}",
                hint="add a double/int parameter or use algorithmName: tpe",
            )
    if algorithm == hyperband.NAME:
        _check_hyperband(spec, source)
    # The seed flag's clash checks wait for apply_seeds: the flag name is a setting.
    if spec.seeds is not None and spec.parameters and algorithm != "grid":
        raise source.error(
            ("seeds",),
            f"seeds with algorithm {algorithm} cannot be one Katib Experiment "
            "(each sampled config would need one trial per seed)",
            hint="use algorithmName: grid to run every config once per seed, or remove seeds",
        )
    _check_counts(spec, source)


def _check_grid(spec: LaunchSpec, source: SpecSource) -> None:
    """A grid that Katib's service and the local runner can enumerate (counted, not built)."""
    for index, param in enumerate(spec.parameters):
        try:
            grid_size(param)
        except ValueError as exc:
            raise source.error(
                ("parameters", index, "feasibleSpace", "step"),
                str(exc),
                hint="Katib's grid computes np.arange(min, max + step, step): lower max or step",
            ) from None
    _check_grid_bound(spec.parameters, _seed_count(spec), source)


def _check_objective(objective: Objective, source: SpecSource) -> None:
    names = objective.metric_names
    if len(names) > MAX_METRICS:
        raise source.error(
            ("objective", "additionalMetricNames"),
            f"{len(names):,} metrics; launch takes at most {MAX_METRICS}",
            hint="keep the metrics you compare trials by; the rest stay in TensorBoard",
        )
    for index, name in enumerate(names):
        where: Path = (
            ("objective", "objectiveMetricName")
            if index == 0
            else ("objective", "additionalMetricNames", index - 1)
        )
        if not _METRIC_RE.match(name):
            raise source.error(
                where,
                f"metric name {name!r} cannot match a TensorBoard tag",
                hint="use the tag your program logs: letters, digits, `_.-`, and `dir/tag` to "
                "pick the event files under a directory",
            )
        if index > 0 and name == objective.objectiveMetricName:
            raise source.error(
                ("objective", "additionalMetricNames"),
                f"the objective `{name}` must not be repeated in additionalMetricNames",
                hint=f"remove `{name}` from additionalMetricNames",
            )
        if name in names[:index]:
            raise source.error(
                where, f"metric `{name}` is listed twice", hint="remove the duplicate"
            )
    for index, name in enumerate(names):
        for other in names:
            if other != name and _tag_prefix_clash(name, other):
                raise source.error(
                    ("objective", "objectiveMetricName")
                    if index == 0
                    else ("objective", "additionalMetricNames", index - 1),
                    f"metric `{name}` would also collect the tags of `{other}`: Katib's "
                    "TensorFlowEvent collector matches tags by prefix",
                    hint=f"log and name them so neither is a prefix of the other (e.g. "
                    f"`train_{name.split('/')[-1]}`), or use `dir/tag` names",
                )
    strategies: set[str] = set()
    for index, strategy in enumerate(objective.metricStrategies):
        where = ("objective", "metricStrategies", index, "name")
        if strategy.name not in names:
            close = difflib.get_close_matches(strategy.name, names, n=1)
            raise source.error(
                where,
                f"metricStrategies names `{strategy.name}`, which is not a metric of this objective",
                hint=f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(names)}",
            )
        if strategy.name in strategies:
            raise source.error(
                where, f"two metricStrategies for `{strategy.name}`", hint="keep one"
            )
        strategies.add(strategy.name)


def _tag_prefix_clash(metric: str, other: str) -> bool:
    """Whether Katib's `_should_consider` would record `other`'s tags as `metric` too.

    tfevent_loader.py: a tag matches `dir/name` when it starts with `name` and the event file's
    directory ends with `dir` (any directory when there is no `dir`).
    """
    directory, _, name = metric.rpartition("/")
    other_directory, _, other_name = other.rpartition("/")
    return other_name.startswith(name) and other_directory.endswith(directory)


def _check_fixed_values(spec: LaunchSpec, source: SpecSource) -> None:
    for key, value in spec.fixed.items():
        if isinstance(value, str):
            try:
                _flag_yaml(value)
            except _Refused as exc:
                raise source.error(
                    ("fixed", key),
                    f"Draccus parses flag values as YAML; launch refuses this one: {exc.problem}",
                    hint=exc.hint,
                ) from None
            except yaml.YAMLError:
                raise source.error(
                    ("fixed", key),
                    f"{value!r} is not valid YAML, and Draccus parses every flag value as YAML",
                    hint="Draccus fails on values starting with `%`, `@`, `!`, `*` or `,`: "
                    "change the value",
                ) from None
