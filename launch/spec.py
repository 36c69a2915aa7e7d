"""The search.yaml model: a strict subset of Katib's Experiment `spec`, plus `seeds` and `fixed`.

Pure: parses text into a validated, frozen `LaunchSpec`; no network, no clock, no environment.
Imports pydantic and PyYAML only.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from launch.errors import SpecError

Scalar = str | int | float | bool
ParamValue = str | int | float | bool

# Katib's algorithm names (v0.19 suggestion services). Which ones launch can run locally is the
# local backend's business; the spec only knows what Katib knows.
KATIB_ALGORITHMS = (
    "random",
    "tpe",
    "multivariate-tpe",
    "grid",
    "cmaes",
    "sobol",
    "bayesianoptimization",
    "hyperband",
    "pbt",
    "enas",
    "darts",
)

Distribution = Literal["uniform", "logUniform", "normal", "logNormal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _number_text(value: Any) -> str:
    """Canonical Katib string for a number given quoted or unquoted (`1e-4` quoted stays as typed)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return repr(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        return text
    raise ValueError(f"expected a number, got {type(value).__name__}")


class FeasibleSpace(_Strict):
    """Katib's feasibleSpace; numbers are kept as the strings Katib needs."""

    min: str | None = None
    max: str | None = None
    step: str | None = None
    list: tuple[str, ...] | None = None
    distribution: Distribution | None = None

    @field_validator("min", "max", "step", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> str | None:
        return None if value is None else _number_text(value)

    @field_validator("list", mode="before")
    @classmethod
    def _list_items(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise ValueError("expected a list")
        out = []
        for item in value:
            if isinstance(item, bool):
                # YAML turned `on`/`yes`/`true` into a bool: keep the word a program will see.
                out.append(str(item).lower())
            elif isinstance(item, int | float | str):
                out.append(_number_text(item) if not isinstance(item, str) else item)
            else:
                raise ValueError(f"list items must be scalars, got {type(item).__name__}")
        return tuple(out)


class Parameter(_Strict):
    name: str
    parameterType: Literal["double", "int", "discrete", "categorical"]
    feasibleSpace: FeasibleSpace

    @property
    def is_numeric(self) -> bool:
        return self.parameterType in ("double", "int", "discrete")

    @property
    def trial_parameter_name(self) -> str:
        """Katib-safe reference name: dots (Draccus nesting) become `__` (the flag keeps the dot)."""
        return self.name.replace(".", "__").replace("-", "_")


class MetricStrategy(_Strict):
    name: str
    value: Literal["min", "max", "latest"]


class Objective(_Strict):
    type: Literal["minimize", "maximize"]
    objectiveMetricName: str
    additionalMetricNames: tuple[str, ...] = ()
    goal: float | None = None
    metricStrategies: tuple[MetricStrategy, ...] = ()

    def strategy(self, metric: str) -> str:
        """The metricStrategy for `metric`; Katib's default is the objective's direction."""
        for item in self.metricStrategies:
            if item.name == metric:
                return item.value
        return "min" if self.type == "minimize" else "max"

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (self.objectiveMetricName, *self.additionalMetricNames)


class AlgorithmSetting(_Strict):
    name: str
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float):
            return _number_text(value)
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a scalar, got {type(value).__name__}")


class Algorithm(_Strict):
    algorithmName: str = "random"
    algorithmSettings: tuple[AlgorithmSetting, ...] = ()

    def setting(self, name: str) -> str | None:
        for item in self.algorithmSettings:
            if item.name == name:
                return item.value
        return None


Seeds = Annotated[int, Field(ge=1)] | tuple[int, ...]


class LaunchSpec(_Strict):
    """A validated search.yaml. Counts are numbers; feasibleSpace values are Katib strings."""

    objective: Objective
    algorithm: Algorithm = Algorithm()
    parameters: tuple[Parameter, ...] = ()
    parallelTrialCount: Annotated[int, Field(ge=1)] | None = None
    maxTrialCount: Annotated[int, Field(ge=1)] | None = None
    maxFailedTrialCount: Annotated[int, Field(ge=0)] | None = None
    seeds: Seeds | None = None
    fixed: Mapping[str, Scalar] = Field(default_factory=dict)

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The seeds to run: `seeds: N` means 0..N-1; a list is used as given."""
        if self.seeds is None:
            return ()
        if isinstance(self.seeds, int):
            return tuple(range(self.seeds))
        return self.seeds


# Fields of Katib's ExperimentSpec that launch generates itself or cannot honour.
_GENERATED = {
    "trialTemplate": "launch generates the trial template from the command after `--`",
    "metricsCollectorSpec": "launch always uses the TensorFlowEvent collector on --tensorboard_dir",
    "earlyStopping": (
        "Katib's early stopping crashes the TensorFlowEvent metrics collector's sidecar; "
        "remove earlyStopping"
    ),
    "nasConfig": "neural architecture search (enas, darts) is not supported by launch",
    "resumePolicy": "launch sets the resume policy itself",
}

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# --------------------------------------------------------------------------- YAML with lines


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _compose_lines(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _compose_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _compose_lines(item, (*path, index), lines)


def _format_path(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


class SpecSource:
    """Where a spec came from, to name file, field and line in errors."""

    def __init__(
        self,
        filename: str,
        lines: dict[tuple[str | int, ...], int],
        prefix: tuple[str | int, ...] = (),
    ):
        self.filename = filename
        self.lines = lines
        self.prefix = prefix

    def where(self, path: tuple[str | int, ...]) -> str:
        """`file:line: field.path` for a path inside the spec mapping."""
        full = (*self.prefix, *path)
        line = None
        for cut in range(len(full), -1, -1):
            line = self.lines.get(full[:cut])
            if line is not None:
                break
        location = f"{self.filename}:{line}" if line is not None else self.filename
        return f"{location}: {_format_path(path)}"

    def error(
        self, path: tuple[str | int, ...], message: str, hint: str | None = None
    ) -> SpecError:
        return SpecError(f"{self.where(path)}: {message}", hint=hint)


# --------------------------------------------------------------------------- loading


def load(path: str) -> LaunchSpec:
    """Read and validate a search.yaml file (I/O at the edge: one file read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file", hint="pass the path of your search.yaml") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}", hint="pass a YAML text file") from None
    return parse(text, filename=path)


def parse(text: str, *, filename: str = "search.yaml") -> LaunchSpec:
    """Parse search.yaml text into a validated LaunchSpec, or raise SpecError naming file:line: field."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            f"{where}: not valid YAML: {problem}", hint="check indentation and quoting"
        ) from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _compose_lines(node, (), lines)
    if not isinstance(data, dict):
        raise SpecError(
            f"{filename}: expected a mapping with `objective`, `parameters`, ...; got {type(data).__name__}",
            hint="see examples/quickstart/search.yaml",
        )
    prefix: tuple[str | int, ...] = ()
    if data.get("kind") == "Experiment" or "apiVersion" in data:
        spec = data.get("spec")
        if not isinstance(spec, dict):
            raise SpecError(f"{filename}: spec: an Experiment document needs a `spec` mapping")
        data, prefix = spec, ("spec",)
    source = SpecSource(filename, lines, prefix)
    return validate(data, source)


def validate(data: dict[str, Any], source: SpecSource) -> LaunchSpec:
    """Validate a spec mapping: field shapes (pydantic), then Katib's admission rules and traps."""
    for key, why in _GENERATED.items():
        if key in data:
            raise source.error(
                (key,), f"`{key}` is not accepted in search.yaml: {why}", hint=f"delete `{key}`"
            )
    try:
        spec = LaunchSpec.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data, source) from None
    check_rules(spec, source)
    return spec


def _known_fields(data: Any, loc: tuple[str | int, ...]) -> list[str]:
    """Field names allowed where an unknown key `loc[-1]` was found (for did-you-mean)."""
    model: type[BaseModel] | None = LaunchSpec
    for part in loc[:-1]:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _translate(exc: ValidationError, data: dict[str, Any], source: SpecSource) -> SpecError:
    """Turn pydantic's first error into one `file:line: field: message` + hint."""
    # An unknown key explains more than the "missing" error it usually causes (a typo'd name).
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and _is_union_tag(part)))
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_fields(data, loc)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known fields here: {', '.join(known)}"
        return source.error(loc, f"unknown field `{key}`", hint=hint)
    if kind == "missing":
        return source.error(loc, "required field is missing", hint=f"add `{loc[-1]}:`")
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return source.error(loc, f"{err['input']!r} is not allowed", hint=f"use one of {expected}")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return source.error(loc, message, hint="see docs/search-yaml.md for the accepted fields")


def _is_union_tag(part: str) -> bool:
    # pydantic adds union member tags like "int" or "tuple[int, ...]" to locations.
    return part in ("int", "str", "float", "bool") or "[" in part or part.startswith("function-")


# --------------------------------------------------------------------------- Katib rules


def check_rules(spec: LaunchSpec, source: SpecSource) -> None:
    """Katib's admission webhook rules and the runtime traps of DESIGN.md, with file:line: field."""
    if not spec.parameters and not spec.seeds:
        raise source.error(
            ("parameters",),
            "nothing to search: no parameters and no seeds",
            hint="add a parameter under `parameters:` or pass --seeds N",
        )
    names: set[str] = set()
    for index, param in enumerate(spec.parameters):
        where = ("parameters", index)
        if not _FIELD_RE.match(param.name):
            raise source.error(
                (*where, "name"),
                f"`{param.name}` cannot be a Draccus flag",
                hint="use letters, digits and `_`, with `.` for nested fields (e.g. optim.lr)",
            )
        if param.name in names:
            raise source.error(
                (*where, "name"), f"parameter `{param.name}` is listed twice", hint="remove one"
            )
        names.add(param.name)
        _check_space(param, source, where)
    for key in spec.fixed:
        if not _FIELD_RE.match(key):
            raise source.error(
                ("fixed", key),
                f"`{key}` cannot be a Draccus flag",
                hint="use a field path like optim.lr",
            )
        if key in names:
            raise source.error(
                ("fixed", key),
                f"`{key}` is both fixed and searched",
                hint=f"remove `{key}` from `fixed` or from `parameters`",
            )
    objective = spec.objective
    if objective.objectiveMetricName in objective.additionalMetricNames:
        raise source.error(
            ("objective", "additionalMetricNames"),
            f"the objective `{objective.objectiveMetricName}` must not be repeated in additionalMetricNames",
            hint=f"remove `{objective.objectiveMetricName}` from additionalMetricNames",
        )
    if (
        spec.parallelTrialCount is not None
        and spec.maxTrialCount is not None
        and spec.parallelTrialCount > spec.maxTrialCount
    ):
        raise source.error(
            ("parallelTrialCount",),
            f"parallelTrialCount ({spec.parallelTrialCount}) exceeds maxTrialCount ({spec.maxTrialCount})",
            hint=f"set parallelTrialCount to at most {spec.maxTrialCount}",
        )
    if spec.algorithm.algorithmName not in KATIB_ALGORITHMS:
        close = difflib.get_close_matches(spec.algorithm.algorithmName, KATIB_ALGORITHMS, n=1)
        raise source.error(
            ("algorithm", "algorithmName"),
            f"unknown algorithm `{spec.algorithm.algorithmName}`",
            hint=f"did you mean `{close[0]}`?"
            if close
            else f"use one of {', '.join(KATIB_ALGORITHMS)}",
        )


def _check_space(param: Parameter, source: SpecSource, where: tuple[str | int, ...]) -> None:
    space = param.feasibleSpace
    at = (*where, "feasibleSpace")
    if param.parameterType in ("double", "int"):
        if space.min is None or space.max is None:
            missing = "min" if space.min is None else "max"
            raise source.error(
                (*at, missing),
                f"{param.parameterType} parameter `{param.name}` needs `{missing}`",
                hint=f"add `{missing}:`",
            )
        if space.list is not None:
            raise source.error(
                (*at, "list"),
                f"{param.parameterType} parameter `{param.name}` takes min/max, not a list",
                hint="use parameterType: discrete or categorical for a list",
            )
        if param.parameterType == "int":
            for key in ("min", "max", "step"):
                text = getattr(space, key)
                if text is not None and not re.fullmatch(r"[+-]?\d+", text):
                    raise source.error(
                        (*at, key),
                        f"int parameter `{param.name}` needs an integer {key}, got {text!r}",
                        hint="use parameterType: double for fractional values",
                    )
        low, high = float(space.min), float(space.max)
        if low >= high:
            raise source.error(
                (*at, "min"),
                f"min ({space.min}) must be less than max ({space.max})",
                hint="swap min and max",
            )
        if space.step is not None and float(space.step) <= 0:
            raise source.error(
                (*at, "step"), f"step must be positive, got {space.step}", hint="use a step > 0"
            )
    else:
        if not space.list:
            raise source.error(
                (*at, "list"),
                f"{param.parameterType} parameter `{param.name}` needs a non-empty `list`",
                hint="add `list: [...]`",
            )
        for key in ("min", "max", "step"):
            if getattr(space, key) is not None:
                raise source.error(
                    (*at, key),
                    f"{param.parameterType} parameter `{param.name}` takes a list, not {key}",
                    hint="remove it, or use parameterType: double/int",
                )
        if len(set(space.list)) != len(space.list):
            raise source.error(
                (*at, "list"), "list has duplicate values", hint="remove the duplicates"
            )
        if param.parameterType == "discrete":
            for index, item in enumerate(space.list):
                try:
                    _number_text(item)
                except ValueError:
                    raise source.error(
                        (*at, "list", index),
                        f"discrete values must be numbers, got {item!r}",
                        hint="use parameterType: categorical for words",
                    ) from None


def numeric_value(text: str, parameter_type: str) -> int | float:
    """A Katib value string as the Python number a program receives."""
    return int(text) if parameter_type == "int" else float(text)
