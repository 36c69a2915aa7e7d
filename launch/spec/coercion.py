"""Coercion warnings: values Draccus (YAML 1.1) turns into something else, and grid ends lost to
float rounding. Warnings, not errors: the spec is valid."""

from __future__ import annotations

import yaml

from launch.spec.grid import _double_grid
from launch.spec.models import LaunchSpec, Parameter
from launch.spec.source import Path, _format_path, source_of
from launch.spec.values import _DECIMAL_RE
from launch.spec.yaml_lines import _flag_yaml


def coercion_warnings(spec: LaunchSpec) -> list[str]:
    """Categorical and fixed values that Draccus (YAML 1.1) turns into something else.

    The program receives `--name=<value>` and Draccus parses `<value>` as YAML: `on` becomes
    True, `null` None, `1:30` 90, `0x10` 16, and `1e3` stays a string that an int field rejects.
    """
    source = source_of(spec)
    out: list[str] = []

    def where(path: Path) -> str:
        return source.where(path) if source is not None else _format_path(path)

    for index, param in enumerate(spec.parameters):
        if param.parameterType != "categorical":
            continue
        for position, item in enumerate(param.feasibleSpace.list or ()):
            problem = _coercion(item)
            if problem:
                out.append(
                    f"{where(('parameters', index, 'feasibleSpace', 'list', position))}: "
                    f"`--{param.name}={item}` {problem}"
                )
    if spec.algorithm.algorithmName == "grid":
        for index, param in enumerate(spec.parameters):
            dropped = _grid_drops_max(param)
            if dropped:
                out.append(f"{where(('parameters', index, 'feasibleSpace', 'max'))}: {dropped}")
    for key, value in spec.fixed.items():
        text = value if isinstance(value, str) else None
        if isinstance(value, bool):
            out.append(
                f"{where(('fixed', key))}: `{key}: {str(value).lower()}` is a YAML bool: "
                f"the program gets --{key}={value}"
            )
        elif text is not None:
            problem = _coercion(text)
            if problem:
                out.append(f"{where(('fixed', key))}: `--{key}={text}` {problem}")
    return out


def _grid_drops_max(param: Parameter) -> str | None:
    """Katib's np.arange grid loses `max` to float rounding (0..0.3 step 0.1 gives 3 values)."""
    space = param.feasibleSpace
    if param.parameterType != "double" or not space.step or space.min is None or space.max is None:
        return None
    low, high, step = float(space.min), float(space.max), float(space.step)
    steps = (high - low) / step
    length, delta = _double_grid(low, high, step)
    if abs(steps - round(steps)) > 1e-9 or length != round(steps):
        return None
    last = low if length == 1 else low + (length - 1) * delta  # grid_values(param)[-1]
    return (
        f"Katib's grid stops at {last!r} and never tries max {space.max} "
        f"(float rounding in np.arange); raise max by half a step (max: {high + step / 2:g}) "
        "to include it"
    )


def _coercion(text: str) -> str | None:
    """What Draccus makes of `text` when it is not the text itself, or None."""
    try:
        parsed = _flag_yaml(text)
    except yaml.YAMLError:
        return None  # refused by the rules already
    if isinstance(parsed, bool) or parsed is None:
        return (
            f"reaches the program as {parsed} (Draccus parses flag values as YAML 1.1): fine "
            f"for a {'bool' if parsed is not None else 'Optional'} field, but a str field "
            f"gets {str(parsed)!r}; use another word if you meant the text"
        )
    if isinstance(parsed, int | float):
        decimal = float(text) if _DECIMAL_RE.match(text) else None
        if decimal is None or float(parsed) != decimal:
            return (
                f"reaches the program as {parsed!r} (YAML 1.1 reads it as a number); "
                "if you meant the text, use another spelling"
            )
        return None
    # PyYAML's float needs a dot and a signed exponent: `1e3` stays text.
    if (
        isinstance(parsed, str)
        and _DECIMAL_RE.match(text)
        and "e" in text.lower()
        and float(text).is_integer()
    ):
        return (
            "is a string to Draccus's YAML 1.1 parser: a float field reads it, an int "
            f"field rejects it; write {int(float(text))} for an int field"
        )
    return None
