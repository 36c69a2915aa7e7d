"""Parameter rules: Katib's feasibleSpace rules, and what each algorithm's service does with a
parameter."""

from __future__ import annotations

import math
import sys

import yaml

from launch.spec.algorithms import GOPTUNA_ALGORITHMS, OPTUNA_ALGORITHMS
from launch.spec.limits import INT64_MAX, INT64_MIN
from launch.spec.models import Parameter
from launch.spec.source import Path, SpecSource
from launch.spec.values import (
    _INT_RE,
    CATEGORICAL_VALUE_CHARS,
    CATEGORICAL_VALUE_RE,
    _number_text,
    _short,
)
from launch.spec.yaml_lines import _flag_yaml


def _check_space(
    param: Parameter, source: SpecSource, where: Path, *, placeholder: bool = False
) -> None:
    """Katib's feasibleSpace rules; `placeholder`: min = max is allowed (a value Katib replaces)."""
    space = param.feasibleSpace
    at = (*where, "feasibleSpace")
    if param.parameterType in ("double", "int"):
        if space.min is None or space.max is None:
            missing = "min" if space.min is None else "max"
            raise source.error(
                (*at, missing),
                f"{param.parameterType} parameter `{param.name}` needs `{missing}`",
                hint=f"add `{missing}:` under feasibleSpace",
            )
        if space.list is not None:
            raise source.error(
                (*at, "list"),
                f"{param.parameterType} parameter `{param.name}` takes min/max, not a list",
                hint="use parameterType: discrete or categorical for a list",
            )
        if param.parameterType == "int":
            _check_int_bounds(param, source, at)
        low, high = float(space.min), float(space.max)
        if param.parameterType == "int":
            empty, same = int(space.min) >= int(space.max), int(space.min) == int(space.max)
        else:
            empty, same = low >= high, low == high
        if empty and not (placeholder and same):
            raise source.error(
                (*at, "min"),
                f"min ({space.min}) must be less than max ({space.max})",
                hint="swap min and max, or move a constant to `fixed:`"
                if low > high
                else f"move `{param.name}` to `fixed:` for a constant",
            )
        if not math.isfinite(high - low):
            # numpy's uniform (Optuna) and hyperopt need max - min as a float64.
            raise source.error(
                (*at, "max"),
                f"max - min overflows float64 ({space.max} - {space.min})",
                hint=f"narrow the range: max - min must stay below {sys.float_info.max:.4g}",
            )
        if space.step is not None:
            _check_step(param, source, at)
        if space.distribution in ("logUniform", "logNormal") and low <= 0:
            raise source.error(
                (*at, "min"),
                f"{space.distribution} needs min > 0, got {space.min} (hyperopt takes log(min); "
                "optuna silently clamps it)",
                hint="set min to a positive value such as 1e-5, or use distribution: uniform",
            )
    else:
        if not space.list:
            raise source.error(
                (*at, "list"),
                f"{param.parameterType} parameter `{param.name}` needs a non-empty `list`",
                hint="add `list: [...]` under feasibleSpace",
            )
        for key in ("min", "max", "step", "distribution"):
            if getattr(space, key) is not None:
                raise source.error(
                    (*at, key),
                    f"{param.parameterType} parameter `{param.name}` takes a list, not {key}",
                    hint=f"remove `{key}`, or use parameterType: double/int",
                )
        if len(set(space.list)) != len(space.list):
            raise source.error(
                (*at, "list"), "list has duplicate values", hint="remove the duplicates"
            )
        for index, item in enumerate(space.list):
            if param.parameterType == "discrete":
                try:
                    _number_text(item)
                except ValueError:
                    raise source.error(
                        (*at, "list", index),
                        f"discrete values must be decimal numbers, got {item!r}",
                        hint="use parameterType: categorical for words",
                    ) from None
            else:
                problem = _categorical_problem(item)
                if problem:
                    raise source.error(
                        (*at, "list", index),
                        f"categorical value {item!r} {problem}",
                        hint=f"use only {CATEGORICAL_VALUE_CHARS}; map a short name to the "
                        "real value in your program",
                    )


def _check_int_bounds(param: Parameter, source: SpecSource, at: Path) -> None:
    for key in ("min", "max", "step"):
        text = getattr(param.feasibleSpace, key)
        if text is None:
            continue
        if not _INT_RE.match(text):
            raise source.error(
                (*at, key),
                f"int parameter `{param.name}` needs an integer {key}, got {_short(text)!r}",
                hint="use parameterType: double for fractional values",
            )
        # Length first: int() refuses more than 4300 digits.
        if len(text.lstrip("+-0")) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
            raise source.error(
                (*at, key),
                f"{_short(text)} is outside int64 ({INT64_MIN}..{INT64_MAX})",
                hint="Katib's goptuna service reads int bounds as int64 (strconv.Atoi): use a "
                "smaller value, or parameterType: double",
            )


def _check_step(param: Parameter, source: SpecSource, at: Path) -> None:
    space = param.feasibleSpace
    assert space.min is not None and space.max is not None and space.step is not None
    low, high, step = float(space.min), float(space.max), float(space.step)
    if step <= 0:
        raise source.error(
            (*at, "step"), f"step must be positive, got {space.step}", hint="use a step > 0"
        )
    if step > high - low:
        raise source.error(
            (*at, "step"),
            f"step ({space.step}) is larger than max - min ({high - low:g})",
            hint="use a smaller step, or move the constant to `fixed:`",
        )
    resolution = math.ulp(max(abs(low), abs(high)))
    if param.parameterType == "double" and step < resolution:
        # min + k * step would repeat values, (max - min) / step can overflow, and Optuna's
        # decimal arithmetic on the step raises DivisionImpossible.
        raise source.error(
            (*at, "step"),
            f"step ({space.step}) is finer than float64 can tell apart between min and max "
            f"(spacing {resolution:.3g} at {max(abs(low), abs(high)):g})",
            hint=f"use a step of at least {resolution:.3g}, or remove `step` to sample the "
            "range continuously",
        )


def _categorical_problem(value: str) -> str | None:
    """Why Katib's text substitution or Draccus would mangle this value, or None."""
    if not CATEGORICAL_VALUE_RE.match(value):
        return (
            "has characters that are unsafe in the trial's shell command "
            "(Katib substitutes values as plain text)"
        )
    if set(value) == {"-"}:
        return "is read by Draccus as a list or an option terminator"
    try:
        parsed = _flag_yaml(value)
    except yaml.YAMLError:
        return "is not valid YAML, and Draccus parses every flag value as YAML"
    if isinstance(parsed, list | dict):
        return f"is read by Draccus as a {type(parsed).__name__}"
    return None


def _check_for_algorithm(param: Parameter, algorithm: str, source: SpecSource, where: Path) -> None:
    """Per-algorithm limits on a parameter (what each v0.19 suggestion service does with it)."""
    space = param.feasibleSpace
    at = (*where, "feasibleSpace")
    numeric = param.parameterType in ("double", "int")
    if algorithm == "grid" and param.parameterType == "double" and space.step is None:
        raise source.error(
            (*at, "step"),
            f"grid needs `step` for double parameter `{param.name}`",
            hint='add `step: "0.01"` (grid enumerates min, min+step, ... max) or use '
            "algorithmName: random",
        )
    dist = space.distribution if numeric and space.distribution is not None else "uniform"
    if algorithm == "grid" and numeric and dist != "uniform":
        raise source.error(
            (*at, "distribution"),
            f"grid enumerates min, min+step, ... evenly and ignores distribution {dist}",
            hint="remove `distribution`; for a log-spaced grid use parameterType: discrete "
            "with `list: [1e-4, 1e-3, 1e-2]`",
        )
    if algorithm in OPTUNA_ALGORITHMS and dist not in ("uniform", "logUniform"):
        # v0.19's optuna service drops such a parameter from the search space: trials never get
        # it (fixed after v0.19 by kubeflow/katib#2666, which rejects it instead).
        raise source.error(
            (*at, "distribution"),
            f"{algorithm} (Katib's optuna service) supports only uniform and logUniform, got {dist}",
            hint="use distribution: uniform or logUniform, or algorithmName: tpe",
        )
    if algorithm in GOPTUNA_ALGORITHMS and numeric and dist != "uniform":
        raise source.error(
            (*at, "distribution"),
            f"{algorithm} (Katib's goptuna service) ignores distribution and samples uniformly",
            hint="remove `distribution`, or use algorithmName: multivariate-tpe for logUniform",
        )
    if algorithm == "bayesianoptimization" and numeric:
        if param.parameterType == "double":
            # skopt's Real(min, max, "log-uniform") for every double (skopt/base_service.py).
            if float(space.min or 0) <= 0:
                raise source.error(
                    (*at, "min"),
                    f"bayesianoptimization samples doubles log-uniformly: min must be > 0, "
                    f"got {space.min}",
                    hint="set min to a positive value such as 1e-5, or use algorithmName: tpe",
                )
            if dist not in ("uniform", "logUniform") or space.distribution == "uniform":
                raise source.error(
                    (*at, "distribution"),
                    f"bayesianoptimization always samples doubles log-uniformly, not {dist}",
                    hint="remove `distribution` (or write logUniform), or use algorithmName: tpe",
                )
        elif dist != "uniform":
            raise source.error(
                (*at, "distribution"),
                f"bayesianoptimization samples ints uniformly and ignores {dist}",
                hint="remove `distribution`, or use algorithmName: tpe",
            )
        if space.step is not None and not (param.parameterType == "int" and int(space.step) == 1):
            raise source.error(
                (*at, "step"),
                "bayesianoptimization ignores `step` (skopt samples the whole range)",
                hint="remove `step`, or use algorithmName: tpe or grid",
            )
