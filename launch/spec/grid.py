"""Grid arithmetic: the values Katib's grid enumerates per parameter, their count, and its bound."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from launch.errors import SpecError
from launch.spec.limits import MAX_GRID_COMBINATIONS
from launch.spec.models import Parameter
from launch.spec.source import SpecSource


def _double_grid(low: float, high: float, step: float) -> tuple[int, float]:
    """(length, delta) of Katib's `np.arange(min, max + step, step)` minus a last value > max.

    numpy's length is ceil((stop - start) / step); it fills start + i * delta with
    delta = (start + step) - start (pkg/suggestion/v1beta1/internal/search_space.py).
    """
    span = (high + step - low) / step
    if not math.isfinite(span):
        # numpy.arange fails too ("Maximum allowed size exceeded").
        raise ValueError(f"max + step ({high} + {step}) overflows float64")
    length = max(math.ceil(span), 0)
    delta = (low + step) - low
    if length >= 1 and low + (length - 1) * delta > high:
        length -= 1
    return length, delta


def grid_values(param: Parameter) -> tuple[str, ...]:
    """The values Katib's grid enumerates for one parameter, as the trial receives them."""
    space = param.feasibleSpace
    if param.parameterType in ("discrete", "categorical"):
        return space.list or ()
    if space.min is None or space.max is None:
        raise ValueError(f"parameter {param.name} has no min/max")
    if param.parameterType == "int":
        step = int(space.step) if space.step else 1
        return tuple(str(v) for v in range(int(space.min), int(space.max) + 1, step))
    if not space.step:
        raise ValueError(f"double parameter {param.name} needs a step for grid")
    low = float(space.min)
    length, delta = _double_grid(low, float(space.max), float(space.step))
    # numpy stores start itself first (so -0.0 stays -0.0), then start + i * delta.
    return tuple(repr(low if i == 0 else low + i * delta) for i in range(length))


def grid_size(param: Parameter) -> int:
    """len(grid_values(param)) without building the list."""
    space = param.feasibleSpace
    if param.parameterType in ("discrete", "categorical"):
        return len(space.list or ())
    if space.min is None or space.max is None:
        raise ValueError(f"parameter {param.name} has no min/max")
    if param.parameterType == "int":
        step = int(space.step) if space.step else 1
        return len(range(int(space.min), int(space.max) + 1, step))
    if not space.step:
        raise ValueError(f"double parameter {param.name} needs a step for grid")
    return _double_grid(float(space.min), float(space.max), float(space.step))[0]


def grid_combinations(parameters: Iterable[Parameter]) -> int:
    """The number of grid points Katib's grid algorithm can suggest (product of the axes)."""
    return math.prod(grid_size(param) for param in parameters)


def grid_overflow(parameters: Sequence[Parameter], seeds: int = 1) -> tuple[int, str] | None:
    """(index of the parameter, what) where the grid (x seeds) passes MAX_GRID_COMBINATIONS.

    Multiplies axis sizes (arithmetic, no lists) and stops at the bound; index -1: the seeds.
    """
    total, sizes = 1, []
    for index, param in enumerate(parameters):
        size = grid_size(param)
        total *= size
        sizes.append(f"{param.name}: {size:,}")
        if total > MAX_GRID_COMBINATIONS:
            at_least = "at least " if index + 1 < len(parameters) or seeds > 1 else ""
            return index, f"grid has {at_least}{total:,} combinations ({' x '.join(sizes)})"
    if total * seeds > MAX_GRID_COMBINATIONS:
        return -1, f"grid of {total:,} combinations x {seeds:,} seeds has {total * seeds:,} trials"
    return None


def _check_grid_bound(
    parameters: Sequence[Parameter], seeds: int, source: SpecSource, *, cli_seeds: bool = False
) -> None:
    over = grid_overflow(parameters, seeds)
    if over is None:
        return
    index, what = over
    message = f"{what}; launch refuses grids over {MAX_GRID_COMBINATIONS:,} trials"
    hint = (
        "raise `step`, narrow min/max or shorten a list, or search the space with "
        "algorithmName: random or tpe and a maxTrialCount"
    )
    if index < 0 and cli_seeds:
        raise SpecError(f"--seeds: {message}", hint=f"pass fewer --seeds, or {hint}")
    if index < 0:
        raise source.error(("seeds",), message, hint=f"use fewer seeds, or {hint}")
    param = parameters[index]
    field = "max" if param.parameterType in ("int", "double") else "list"
    raise source.error(("parameters", index, "feasibleSpace", field), message, hint=hint)
