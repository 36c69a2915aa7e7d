"""Coercion warnings: values Draccus (YAML 1.1) turns into something else, bounds YAML 1.1 read in
another base, and grid ends lost to float rounding. Warnings, not errors: the spec is valid."""

from __future__ import annotations

import yaml

from launch.spec.grid import _double_grid
from launch.spec.models import LaunchSpec, Parameter
from launch.spec.source import Path, _format_path, source_of
from launch.spec.values import _DECIMAL_RE
from launch.spec.yaml_lines import _flag_yaml

_BOUNDS = ("min", "max", "step")


def _number_spelling(text: str, value: int | float) -> str | None:
    """The YAML 1.1 spelling that made the plain scalar `text` the number `value`, or None for a
    plain decimal (which means what it says)."""
    body = text.lstrip("+-")
    if ":" in body:
        return "base 60"
    if body.startswith("0x"):
        return "hex"
    if body.startswith("0b"):
        return "binary"
    digits = body.replace("_", "")
    # YAML 1.1 reads `010` as octal 8; `07` is 7 either way.
    if (
        isinstance(value, int)
        and len(digits) > 1
        and digits.startswith("0")
        and digits.isdigit()
        and int(digits, 8) != int(digits)
    ):
        return "octal"
    return "underscores" if "_" in body else None


_SPELLING_WORDS = {
    "base 60": "YAML 1.1 base 60",
    "hex": "YAML 1.1 hex",
    "binary": "YAML 1.1 binary",
    "octal": "YAML 1.1 octal",
    "underscores": "YAML 1.1 drops the underscores",
}


def coercion_warnings(spec: LaunchSpec) -> list[str]:
    """Bounds, list items and fixed values that YAML 1.1 or Draccus turn into something else.

    The program receives `--name=<value>` and Draccus parses `<value>` as YAML 1.1: `on` becomes
    True, `null` None, `1:30` 90, `0x10` 16, `010` 8, and `1e3` stays a string that an int field
    rejects. Bounds (`min: 0x10`) were read by YAML 1.1 already, when search.yaml was loaded.
    """
    source = source_of(spec)
    raw = source.raw if source is not None else {}
    out: list[str] = []

    def where(path: Path) -> str:
        return source.where(path) if source is not None else _format_path(path)

    for index, param in enumerate(spec.parameters):
        at: Path = ("parameters", index, "feasibleSpace")
        for key in _BOUNDS:
            text, value = raw.get((*at, key)), getattr(param.feasibleSpace, key)
            if text is not None and value is not None:
                out.append(
                    f"{where((*at, key))}: `{key}: {text}` is read by YAML 1.1 as {value}: "
                    f"the bound is {value} (write `{key}: {value}` to say so)"
                )
        if param.parameterType not in ("categorical", "discrete"):
            continue  # Katib's numbers reach the program as plain decimals
        for position, item in enumerate(param.feasibleSpace.list or ()):
            problem = _coercion(item)
            if problem:
                out.append(f"{where((*at, 'list', position))}: `--{param.name}={item}` {problem}")
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
    """What Draccus makes of the flag value `text` when it is not the text itself, or None.

    Checked against draccus 0.11 (a dataclass with str, int, float, Path and Optional fields).
    """
    if text == "":
        # Draccus special-cases the empty value (YAML would read it as None).
        return (
            "reaches the program as the empty text (Draccus reads an empty flag value as '', "
            "not None): a str field gets '', an int, float or bool field rejects it; "
            "write `null` if you meant None"
        )
    try:
        parsed = _flag_yaml(text)
    except yaml.YAMLError:
        return None  # refused by the rules already
    if parsed is None:
        return (
            "reaches the program as None (Draccus parses flag values as YAML 1.1): an Optional "
            f"field gets None, and so does a plain str/int/float/Path field (not the text "
            f"{text!r}); use another word if you meant the text, or make the field Optional "
            "if you meant None"
        )
    if isinstance(parsed, bool):
        return (
            f"reaches the program as {parsed} (Draccus parses flag values as YAML 1.1): fine "
            f"for a bool field, but a str field gets {str(parsed)!r}; use another word if you "
            "meant the text"
        )
    if isinstance(parsed, int | float):
        decimal = float(text) if _DECIMAL_RE.match(text) else None
        if decimal is None or float(parsed) != decimal:
            spelling = _number_spelling(text, parsed)
            why = _SPELLING_WORDS[spelling] if spelling else "YAML 1.1 reads it as a number"
            advice = (
                f"write {int(text.replace('_', ''))} if you meant that number, another "
                "spelling if you meant the text"
                if spelling == "octal"
                else "if you meant the text, use another spelling"
            )
            return (
                f"reaches the program as {parsed!r} ({why}): a str field gets "
                f"{str(parsed)!r}; {advice}"
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
