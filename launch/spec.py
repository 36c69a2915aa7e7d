"""The search.yaml model: a strict subset of Katib's Experiment `spec`, plus `seeds` and `fixed`.

Pure: parses text into a validated, frozen `LaunchSpec`; no network, no clock, no environment.
Imports pydantic, PyYAML and launch.errors only (`launch render` must start fast).
Rules and their Katib sources are listed in docs/search-yaml.md.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import keyword
import math
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from launch import hyperband
from launch.errors import SpecError

Scalar = str | int | float | bool
ParamValue = str | int | float | bool

# Katib's algorithm names (v0.19 katib-config.yaml, suggestion services).
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

# Katib knows these but launch cannot generate a correct Experiment (or a local run) for them.
UNSUPPORTED_ALGORITHMS = {
    "pbt": "pbt needs checkpoint volumes and trial restarts that launch does not generate",
    "enas": "enas is neural architecture search (nasConfig), not a hyperparameter search",
    "darts": "darts is neural architecture search (nasConfig), not a hyperparameter search",
}

# The suggestion service behind each algorithm in Katib v0.19 (katib-config.yaml):
# random, tpe -> hyperopt; grid, multivariate-tpe -> optuna; cmaes, sobol -> goptuna;
# bayesianoptimization -> skopt.
OPTUNA_ALGORITHMS = frozenset({"grid", "multivariate-tpe"})
GOPTUNA_ALGORITHMS = frozenset({"cmaes", "sobol"})

DEFAULT_MAX_TRIALS = 12
DEFAULT_PARALLEL_TRIALS = 3  # Katib's DefaultTrialParallelCount
DEFAULT_MAX_FAILED_TRIALS = 3
MAX_COUNT = 2**31 - 1  # Katib's counts are int32

# Limits that keep parsing and validation fast and bounded (docs/search-yaml.md, "Limits").
MAX_SPEC_BYTES = 1024 * 1024  # a real search.yaml is a few KiB
MAX_YAML_DEPTH = 64  # a spec nests 5 levels; PyYAML's composer recurses once per level
MAX_NUMBER_CHARS = 100  # a YAML integer literal (Python's int() refuses > 4300 digits)
# Optuna's GridSampler (Katib's grid service, and what a local grid mirrors) materialises every
# combination on each suggestion; 100k trials is far beyond what any Katib cluster runs.
MAX_GRID_COMBINATIONS = 100_000
MAX_SEEDS = 100_000  # `seeds: N` and the length of a seed list
MAX_SEED = 2**32 - 1  # numpy's (and so Optuna's, hyperopt's, skopt's) seed range
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # goptuna reads int bounds with strconv.Atoi
# Katib's collector matches every metric against every tag, and launch checks them pairwise.
MAX_METRICS = 100
MAX_EI_CANDIDATES = 10_000  # TPE's candidates per suggestion (default 24)

# Flags launch passes itself or Draccus reserves: a parameter or fixed key by these names clashes.
RESERVED_FLAGS = ("tensorboard_dir", "config_path", "help")

# Categorical values are substituted by Katib as text into the trial's `sh -c` string; this set
# needs no shell quoting, contains no `$` (Kubernetes expands `$(VAR)`), no quotes or backslashes
# (JSON, and launch's single quotes), and no spaces.
CATEGORICAL_VALUE_RE = re.compile(r"^[A-Za-z0-9._+:/@%=,-]+$")
CATEGORICAL_VALUE_CHARS = "letters, digits and . _ + : / @ % = , -"

Distribution = Literal["uniform", "logUniform", "normal", "logNormal"]

# Decimal numbers that Go's strconv.ParseFloat, Python's float() and numpy all read the same way.
_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# A TensorBoard tag path: segments of safe characters separated by single `/`.
_METRIC_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _number_text(value: Any) -> str:
    """Canonical Katib string for a number given quoted or unquoted (a quoted one stays as typed)."""
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
        # Stricter than float(): Katib's Go services reject `1_000`, ` inf`, `0x10`.
        if not _DECIMAL_RE.match(text):
            raise ValueError(f"expected a decimal number, got {_short(value)!r}")
        if not math.isfinite(float(text)):
            # `1e309` is text to YAML 1.1 but infinity to Go's ParseFloat and to numpy.
            raise ValueError(f"expected a finite number, got {_short(text)} (beyond float64)")
        return text
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _short(text: str, limit: int = 60) -> str:
    """`text` cut for an error message (a value may be up to MAX_SPEC_BYTES long)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _count(value: Any) -> Any:
    # pydantic's lax mode reads `true` as 1: a count must be written as a number.
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {str(value).lower()}")
    return value


Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


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
            # The loader keeps plain scalars here as typed (`on`, `1:30`); these branches serve
            # specs built in code.
            if isinstance(item, bool):
                out.append(str(item).lower())
            elif isinstance(item, int | float):
                out.append(_number_text(item))
            elif isinstance(item, str):
                out.append(item)
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

    @field_validator("goal", mode="before")
    @classmethod
    def _goal(cls, value: Any) -> Any:
        if value is None:
            return None
        # Katib's goal is a float64 in JSON: no bools, no inf/nan.
        return float(_number_text(value))

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


Seeds = (
    Annotated[int, Field(ge=1, le=MAX_SEEDS)] | tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...]
)


class LaunchSpec(_Strict):
    """A validated search.yaml. Counts are numbers; feasibleSpace values are Katib strings."""

    objective: Objective
    algorithm: Algorithm = Algorithm()
    parameters: tuple[Parameter, ...] = ()
    parallelTrialCount: Count | None = None
    maxTrialCount: Count | None = None
    maxFailedTrialCount: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None
    seeds: Seeds | None = None
    fixed: Mapping[str, Scalar] = Field(default_factory=dict)

    @field_validator("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", mode="before")
    @classmethod
    def _counts(cls, value: Any) -> Any:
        return _count(value)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("expected a seed count or a non-empty list of seeds")
            if len(value) > MAX_SEEDS:
                raise ValueError(f"at most {MAX_SEEDS:,} seeds, got {len(value):,}")
            for item in value:
                _count(item)
                if isinstance(item, int) and not 0 <= item <= MAX_SEED:
                    # numpy (and torch's generators) refuse seeds outside 0..2**32-1.
                    raise ValueError(f"seed {_short(str(item))} is outside 0..{MAX_SEED}")
            if len(set(value)) != len(value):
                raise ValueError("the seed list has duplicates")
            return tuple(value)
        return _count(value)

    @field_validator("fixed", mode="before")
    @classmethod
    def _fixed(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"keys must be flag names, got {key!r}")
                if not isinstance(item, str | int | float | bool):
                    raise ValueError(
                        f"`{key}` must be a single value, got {type(item).__name__}; "
                        "quote it to pass text such as a list"
                    )
        return value

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
        "Katib's early stopping crashes the TensorFlowEvent metrics collector's sidecar"
    ),
    "nasConfig": "neural architecture search (enas, darts) is not supported by launch",
    "resumePolicy": "launch sets the resume policy itself",
}

# Keys of a whole Experiment document; `metadata` is ignored (launch names the Experiment).
_DOCUMENT_KEYS = ("apiVersion", "kind", "metadata", "spec")
_API_VERSION = "kubeflow.org/v1beta1"


# --------------------------------------------------------------------------- YAML with lines


Path = tuple[str | int, ...]


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that search.yaml does not take (aliases, deep nesting, huge integers)."""

    def __init__(self, mark: Any, path: Path, problem: str, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path = path
        self.hint = hint


class _BoundedComposer(yaml.composer.Composer):
    """Composes without aliases, with bounded nesting, knowing the path of every node.

    Aliases are refused, not expanded: nine nested `[*a, *a, ...]` make 9**9 nodes from a few
    lines (a "billion laughs"), `a: &a [*a]` is a cycle, and search.yaml has no use for them.
    """

    _path: Path = ()  # where the node being composed sits
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        part = _path_part(parent, index)
        path = (*self._path, part) if part is not None else self._path
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser's, next in the MRO
        # An undefined alias is left to PyYAML ("found undefined alias").
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            raise _Refused(
                event.start_mark,
                path,
                f"YAML alias `*{event.anchor}`: search.yaml takes no aliases (nor `<<:` merges)",
                hint="write the value out in full (aliases can expand a few lines into "
                "billions of values)",
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise _Refused(
                event.start_mark,
                path[:3],  # the whole path would be 64 levels long
                f"nested more than {MAX_YAML_DEPTH} levels deep",
                hint="a search.yaml nests a few levels: check the brackets and indentation",
            )
        saved = self._path
        self._path, self._depth = path, self._depth + 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path, self._depth = saved, self._depth - 1
        _check_int_length(node, path)
        return node


class _CheckedConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor whose plain Python errors become YAML errors with a line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError) as exc:
            # `2001-13-45` (a YAML 1.1 date) and `!!int abc` raise plain Python errors.
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {_short(str(node.value))!r} as {node.tag}: {exc}",
                problem_mark=node.start_mark,
            ) from None


class _PyLineLoader(_BoundedComposer, _CheckedConstructor, yaml.SafeLoader):
    """The pure-Python loader, where PyYAML was installed without libyaml."""


_LineLoader: Callable[[str], Any] = _PyLineLoader
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    pass
else:

    class _CLineLoader(_BoundedComposer, CParser, _CheckedConstructor, yaml.resolver.Resolver):
        """libyaml's events (6x faster than PyYAML's scanner) under the Python composer above."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LineLoader = _CLineLoader


def _path_part(parent: yaml.Node | None, index: Any) -> str | int | None:
    """The path component a node adds under `parent` (None: the root, or a mapping key)."""
    if parent is None or index is None:
        return None
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)  # a mapping value, under its key
    return index if isinstance(index, int) else "?"


def _check_int_length(node: yaml.Node | None, path: Path) -> None:
    # int() of 4300+ digits raises ValueError, and of a long `1:2:3:...` (base 60) is slow.
    if (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:int"
        and len(node.value) > MAX_NUMBER_CHARS
    ):
        raise _Refused(
            node.start_mark,
            path,
            f"an integer of {len(node.value):,} characters (at most {MAX_NUMBER_CHARS})",
            hint="quote it if it is text, or write a smaller number",
        )


def _walk(
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    raw: dict[Path, str],
    filename: str,
) -> None:
    """Record the line of every key and item, the text of every plain scalar; refuse duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                # PyYAML silently keeps the last one: a second `parameters:` would hide the first.
                raise SpecError(
                    f"{filename}:{line}: {_format_path((*path, key))}: duplicate key "
                    f"(first on line {seen[key]})",
                    hint=f"merge the two `{key}:` entries into one",
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, raw, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, raw, filename)
    elif isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None, or "" (libyaml)
        raw[path] = node.value


def _format_path(path: Path) -> str:
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
        lines: dict[Path, int],
        prefix: Path = (),
    ):
        self.filename = filename
        self.lines = lines
        self.prefix = prefix

    def line(self, path: Path) -> int | None:
        full = (*self.prefix, *path)
        for cut in range(len(full), -1, -1):
            line = self.lines.get(full[:cut])
            if line is not None:
                return line
        return None

    def where(self, path: Path) -> str:
        """`file:line: field.path` for a path inside the spec mapping."""
        line = self.line(path)
        location = f"{self.filename}:{line}" if line is not None else self.filename
        return f"{location}: {_format_path(path)}"

    def error(self, path: Path, message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"{self.where(path)}: {message}", hint=hint)


# Where each parsed spec came from, so later steps (apply_seeds, coercion_warnings) can still
# name file:line. Kept beside the model: a private attribute would break `==` between specs.
_SOURCES: dict[int, SpecSource] = {}


def _remember(spec: LaunchSpec, source: SpecSource) -> None:
    if id(spec) not in _SOURCES:
        weakref.finalize(spec, _SOURCES.pop, id(spec), None)
    _SOURCES[id(spec)] = source


def source_of(spec: LaunchSpec) -> SpecSource | None:
    """The file and lines a spec was parsed from (None for a spec built in code)."""
    return _SOURCES.get(id(spec))


# --------------------------------------------------------------------------- loading


def load(path: str) -> LaunchSpec:
    """Read and validate a search.yaml file (I/O at the edge: one bounded file read)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)  # /dev/zero or a huge file must not hang
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file", hint="pass the path of your search.yaml") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        hint = _READ_HINTS.get(exc.errno or 0, "pass a readable YAML text file")
        raise SpecError(f"{path}: cannot read: {reason}", hint=hint) from None
    _check_size(len(data), path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
            hint="save the file as UTF-8 (a search.yaml is text)",
        ) from None
    # Text mode's universal newlines, as before: `\r\n` and `\r` end a line.
    return parse(text.replace("\r\n", "\n").replace("\r", "\n"), filename=path)


_READ_HINTS = {
    errno.ELOOP: "a symbolic link on the path points back into a loop: fix or replace it "
    "(ls -l shows where each link points)",
    errno.EACCES: "make the file readable (chmod u+r), or copy it somewhere you can read",
    errno.EPERM: "make the file readable (chmod u+r), or copy it somewhere you can read",
    errno.EISDIR: "pass the search.yaml file inside that directory",
}


def _check_size(size: int, filename: str) -> None:
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"{filename}: larger than {MAX_SPEC_BYTES // 1024 // 1024} MiB, the limit for a "
            "search.yaml",
            hint="a search space takes a few KiB: check that this is the right file",
        )


def _keep_typed(data: dict[str, Any], raw: dict[Path, str], prefix: Path) -> None:
    """Put back the text the user typed for plain scalars in `list:` items and `fixed` values.

    YAML 1.1 reads `on` as True and `1:30` as 90; the program should get `on` and `1:30` (Draccus
    then parses it as it parses any flag; `coercion_warnings` says what it will make of it).
    """
    parameters = data.get("parameters")
    if isinstance(parameters, list):
        for index, param in enumerate(parameters):
            space = param.get("feasibleSpace") if isinstance(param, dict) else None
            items = space.get("list") if isinstance(space, dict) else None
            if isinstance(items, list):
                for position, item in enumerate(items):
                    text = raw.get(
                        (*prefix, "parameters", index, "feasibleSpace", "list", position)
                    )
                    if text is not None and (item is None or not isinstance(item, str)):
                        items[position] = text
    fixed = data.get("fixed")
    if isinstance(fixed, dict):
        for key, item in fixed.items():
            text = raw.get((*prefix, "fixed", str(key)))
            if text is not None and (item is None or not isinstance(item, str)):
                fixed[key] = text


def parse(text: str, *, filename: str = "search.yaml") -> LaunchSpec:
    """Parse search.yaml text into a validated LaunchSpec, or raise SpecError naming file:line: field."""
    _check_size(len(text), filename)  # characters first: never encode a huge text to measure it
    _check_size(len(text.encode("utf-8", "surrogatepass")), filename)
    _check_printable(text, filename)
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise SpecError(
            f"{filename}:{line}: {_format_path(exc.path)}: {exc.problem}", hint=exc.hint
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        hint = (
            "quote the value to pass it as text"
            if isinstance(exc, yaml.constructor.ConstructorError)
            else "check indentation and quoting (a value with `: ` or `#` needs quotes)"
        )
        raise SpecError(f"{where}: not valid YAML: {problem}", hint=hint) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    raw: dict[Path, str] = {}
    if node is not None:
        _walk(node, (), lines, raw, filename)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{filename}:1: expected a mapping with `objective`, `parameters`, ...; got {got}",
            hint="start from examples/quickstart/search.yaml",
        )
    prefix: Path = ()
    if "apiVersion" in data or "kind" in data:
        data, prefix = _unwrap_document(data, SpecSource(filename, lines)), ("spec",)
    _keep_typed(data, raw, prefix)
    source = SpecSource(filename, lines, prefix)
    return validate(data, source)


# Names of the control characters people paste by accident (PyYAML refuses all of them).
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "VT", 0x0C: "form feed",
                  0x1B: "ESC", 0x7F: "DEL"}  # fmt: skip


def _check_printable(text: str, filename: str) -> None:
    """Name the line and column of a character YAML refuses (PyYAML only gives an offset)."""
    match = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if match is None:
        return
    start = match.start()
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    code = ord(match.group())
    name = _CONTROL_NAMES.get(code, "control character")
    raise SpecError(
        f"{filename}:{line}: column {column}: {name} (U+{code:04X}) is not allowed in YAML",
        hint="delete it (an editor's `show invisibles` reveals it); write `\\t`-style escapes "
        'inside "double quotes" if the value needs one',
    )


def _unwrap_document(data: dict[str, Any], top: SpecSource) -> dict[str, Any]:
    """The `spec` of a whole Experiment document, after checking its envelope."""
    for key in data:
        if key not in _DOCUMENT_KEYS:
            close = difflib.get_close_matches(str(key), _DOCUMENT_KEYS, n=1)
            raise top.error(
                (str(key),),
                f"unknown field `{key}` in an Experiment document",
                hint=f"did you mean `{close[0]}`?"
                if close
                else f"keep only {', '.join(_DOCUMENT_KEYS)}",
            )
    if data.get("apiVersion") != _API_VERSION:
        raise top.error(
            ("apiVersion",),
            f"expected apiVersion {_API_VERSION}, got {data.get('apiVersion')!r}",
            hint=f"write `apiVersion: {_API_VERSION}`, or give the bare spec without the envelope",
        )
    if data.get("kind") != "Experiment":
        raise top.error(
            ("kind",),
            f"expected kind Experiment, got {data.get('kind')!r}",
            hint="write `kind: Experiment`, or give the bare spec without the envelope",
        )
    if "metadata" in data and not isinstance(data["metadata"], dict):
        raise top.error(("metadata",), "expected a mapping", hint="remove `metadata`")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise top.error(
            ("spec",),
            "an Experiment document needs a `spec` mapping",
            hint="put objective, algorithm and parameters under `spec:`",
        )
    return spec


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
        raise _translate(exc, source) from None
    _remember(spec, source)
    check_rules(spec, source)
    return spec


def _known_fields(loc: Path) -> list[str]:
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


def _translate(exc: ValidationError, source: SpecSource) -> SpecError:
    """Turn pydantic's first error into one `file:line: field: message` + hint."""
    # An unknown key explains more than the "missing" error it usually causes (a typo'd name).
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    kind = err["type"]
    raw = tuple(err["loc"])
    if kind == "extra_forbidden":
        # The unknown key is the user's, whatever it looks like (even `a[b]`): never a union tag.
        loc = (*(p for p in raw[:-1] if not (isinstance(p, str) and _is_union_tag(p))), raw[-1])
    else:
        loc = tuple(part for part in raw if not (isinstance(part, str) and _is_union_tag(part)))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_fields(loc)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known fields here: {', '.join(known)}"
        return source.error(loc, f"unknown field `{key}`", hint=hint)
    if kind == "missing":
        return source.error(loc, "required field is missing", hint=f"add `{loc[-1]}:`")
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        got = err["input"]
        close = difflib.get_close_matches(str(got), re.findall(r"'([^']*)'", expected), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {expected}"
        return source.error(loc, f"{got!r} is not allowed", hint=hint)
    if kind in ("greater_than_equal", "less_than_equal"):
        return source.error(loc, err["msg"].lower(), hint=f"set `{loc[-1]}` within that range")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return source.error(loc, message, hint="see docs/search-yaml.md for the accepted fields")


def _is_union_tag(part: str) -> bool:
    # pydantic adds union member tags like "int" or "tuple[int, ...]" to locations.
    return (
        part in ("int", "str", "float", "bool", "constrained-int")
        or "[" in part
        or part.startswith("function-")
    )


# --------------------------------------------------------------------------- algorithm settings

# A checker returns None when the value is valid, else what is wrong with it.
_Checker = Callable[[str], str | None]


def _int_in(low: int, high: int | None = None) -> _Checker:
    def check(value: str) -> str | None:
        # Digits only: Python's int() (hyperopt, optuna, skopt) and Go's strconv.Atoi (goptuna)
        # disagree on `1_000` and ` 3`. The length check spares int() 4300+ digits.
        number = int(value) if _INT_RE.match(value) and len(value) <= MAX_NUMBER_CHARS else None
        if number is None or number < low or (high is not None and number > high):
            bound = f">= {low}" if high is None else f"in {low}..{high}"
            return f"expected a whole number {bound}, got {_short(value)!r}"
        return None

    return check


def _float_in(
    low: float, high: float | None, *, low_open: bool, high_open: bool = True
) -> _Checker:
    def check(value: str) -> str | None:
        number = float(value) if _DECIMAL_RE.match(value) else math.nan
        number = number if math.isfinite(number) else math.nan  # `1e309` is not a sigma
        low_ok = number > low if low_open else number >= low
        high_ok = high is None or (number < high if high_open else number <= high)
        if not (low_ok and high_ok):
            left = "(" if low_open else "["
            right = "inf)" if high is None else (f"{high})" if high_open else f"{high}]")
            return f"expected a number in {left}{low}, {right}, got {value!r}"
        return None

    return check


def _one_of(*choices: str) -> _Checker:
    def check(value: str) -> str | None:
        if value not in choices:
            return f"expected one of {', '.join(choices)}, got {value!r}"
        return None

    return check


# numpy's RandomState (Optuna, hyperopt, skopt) refuses seeds past 2**32 - 1.
_RANDOM_STATE = _int_in(0, MAX_SEED)
# Scored for every suggestion (defaults 24): a billion would exhaust the sampler's memory.
_EI_CANDIDATES = _int_in(1, MAX_EI_CANDIDATES)


def _hyperband_eta(value: str) -> str | None:
    number = int(value) if _INT_RE.match(value) and len(value) <= MAX_NUMBER_CHARS else None
    if number is None or number < 2:
        # ValidateAlgorithmSettings reads int(float(eta)), HyperBandParam.convert float(eta): a
        # fraction passes one and runs the other; eta 1 divides by log(1) = 0; <= 0 becomes 3.
        return (
            f"expected a whole number >= 2 (each round keeps the best 1/eta), got {_short(value)!r}"
        )
    return None


def _hyperband_r_l(value: str) -> str | None:
    number = float(value) if _DECIMAL_RE.match(value) else math.nan
    if not math.isfinite(number) or number < 1:
        # Below 1 the service's s_max = int(log(r_l)/log(eta)) is 0 or negative: trials get the
        # resource 0, or none is ever suggested.
        return (
            "expected a number >= 1 (the resource of the last round, e.g. the most epochs a "
            f"trial trains), got {_short(value)!r}"
        )
    return None


def _hyperband_resource_name(value: str) -> str | None:
    return None if value else "expected the name of the parameter hyperband sets (e.g. num_epochs)"


# Setting names and value checks of each suggestion service's ValidateAlgorithmSettings (v0.19).
# launch is stricter where a service accepts a value it then ignores or crashes on.
ALGORITHM_SETTINGS: dict[str, dict[str, _Checker]] = {
    # pkg/suggestion/v1beta1/hyperopt/service.py
    "random": {"random_state": _RANDOM_STATE},
    "tpe": {
        "gamma": _float_in(0.0, 1.0, low_open=True),
        "prior_weight": _float_in(0.0, None, low_open=True),
        "n_EI_candidates": _EI_CANDIDATES,
        "random_state": _RANDOM_STATE,
    },
    # pkg/suggestion/v1beta1/optuna/service.py
    "grid": {"random_state": _RANDOM_STATE},
    "multivariate-tpe": {
        "n_startup_trials": _int_in(0),
        # Optuna accepts 0 here but then has no candidate to pick from.
        "n_ei_candidates": _EI_CANDIDATES,
        "random_state": _RANDOM_STATE,
    },
    # pkg/suggestion/v1beta1/goptuna/converter.go (unknown names are silently ignored there)
    "cmaes": {
        "random_state": _RANDOM_STATE,
        "sigma": _float_in(0.0, None, low_open=True),
        # goptuna: "none" (lowercase only), "ipop", "bipop"
        "restart_strategy": _one_of("none", "ipop", "bipop"),
    },
    # goptuna's sobol sampler takes no setting at all
    "sobol": {},
    # pkg/suggestion/v1beta1/skopt/service.py
    "bayesianoptimization": {
        "base_estimator": _one_of("GP", "RF", "ET", "GBRT"),
        "n_initial_points": _int_in(0),
        # EIps/PIps pass Katib's validation but skopt then expects (value, time) pairs and the
        # suggestion service crashes on the first tell().
        "acq_func": _one_of("gp_hedge", "LCB", "EI", "PI"),
        "acq_optimizer": _one_of("auto", "sampling", "lbfgs"),
        "random_state": _RANDOM_STATE,
    },
    # pkg/suggestion/v1beta1/hyperband/service.py (ValidateAlgorithmSettings, HyperBandParam);
    # the rules that need the parameters and counts are in `_check_hyperband`.
    "hyperband": {
        "resource_name": _hyperband_resource_name,
        "r_l": _hyperband_r_l,
        "eta": _hyperband_eta,
    },
}


# --------------------------------------------------------------------------- grid arithmetic


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


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class Counts:
    """parallelTrialCount, maxTrialCount, maxFailedTrialCount as launch sets them (all set)."""

    parallel: int
    max_trials: int
    max_failed: int


def _max_trials(spec: LaunchSpec) -> tuple[int, str]:
    """(maxTrialCount, where it comes from); the same before and after apply_seeds."""
    seeds = _seed_count(spec)
    if not spec.parameters and seeds:
        return spec.maxTrialCount or seeds, "the number of seeds"
    hb = hyperband_of(spec)
    if hb is not None:
        # The first round: what Katib v0.19's hyperband runs without stalling (hyperband.py).
        if spec.maxTrialCount is not None:
            return spec.maxTrialCount, "maxTrialCount"
        if spec.parallelTrialCount is not None:
            return spec.parallelTrialCount, "parallelTrialCount (hyperband's first round)"
        return hb.first_bracket, "hyperband's first bracket"
    if spec.algorithm.algorithmName == "grid":
        if spec.maxTrialCount is not None:
            base, why = spec.maxTrialCount, "maxTrialCount"
        else:
            base, why = grid_combinations(spec.parameters), "the number of grid combinations"
        if seeds:
            # maxTrialCount counts configs; every config runs once per seed.
            return base * seeds, f"{why} x {seeds} seeds"
        return base, why
    base, why = (
        (spec.maxTrialCount, "maxTrialCount")
        if spec.maxTrialCount
        else (DEFAULT_MAX_TRIALS, "launch's default")
    )
    if seeds:
        # Search x seeds (local backend): maxTrialCount counts configs, each run once per seed.
        return base * seeds, f"{why} x {seeds} seeds"
    return base, why


def resolve_counts(spec: LaunchSpec) -> Counts:
    """The counts launch always sets: explicit values, else the documented defaults.

    maxTrialCount: grid combinations (x seeds) for grid, N for a pure seed sweep, else 12;
    with seeds an explicit grid maxTrialCount counts configs and is multiplied by N.
    parallelTrialCount and maxFailedTrialCount: min(3, maxTrialCount). Katib fails an
    Experiment once `failed >= maxFailedTrialCount` (status_util.go), so 3 stops at the 3rd failure.
    hyperband: parallelTrialCount is the first bracket's size, maxTrialCount parallelTrialCount,
    and maxFailedTrialCount 1 when maxTrialCount is parallelTrialCount + 1 (`_check_hyperband`).
    Gives the same answer for a spec and for apply_seeds(spec).
    """
    max_trials = _max_trials(spec)[0]
    hb = hyperband_of(spec)
    parallel = spec.parallelTrialCount
    if parallel is None:
        parallel = hb.first_bracket if hb else min(DEFAULT_PARALLEL_TRIALS, max_trials)
    max_failed = spec.maxFailedTrialCount
    if max_failed is None:
        stalls = hb is not None and hb.max_extra_trials and max_trials == parallel + 1
        max_failed = 1 if stalls else min(DEFAULT_MAX_FAILED_TRIALS, max_trials)
    return Counts(parallel=parallel, max_trials=max_trials, max_failed=max_failed)


# --------------------------------------------------------------------------- seeds


def _cli_seeds(seeds: int | list[int] | tuple[int, ...]) -> int | tuple[int, ...]:
    """Validate --seeds the way the `seeds` field is validated."""
    if isinstance(seeds, bool):
        raise SpecError(f"--seeds: expected a number, got {seeds}", hint="pass --seeds N")
    if isinstance(seeds, int):
        if seeds < 1:
            raise SpecError(f"--seeds: expected N >= 1, got {seeds}", hint="pass --seeds N")
        if seeds > MAX_SEEDS:
            raise SpecError(
                f"--seeds: at most {MAX_SEEDS:,} seeds, got {seeds:,}", hint="pass fewer seeds"
            )
        return seeds
    values = tuple(seeds)
    if not values or any(isinstance(v, bool) or not 0 <= v <= MAX_SEED for v in values):
        raise SpecError(
            f"--seeds: expected seeds in 0..{MAX_SEED}, got {_short(str(list(values)))}",
            hint="pass --seeds N",
        )
    if len(values) > MAX_SEEDS:
        raise SpecError(
            f"--seeds: at most {MAX_SEEDS:,} seeds, got {len(values):,}", hint="pass fewer seeds"
        )
    if len(set(values)) != len(values):
        raise SpecError("--seeds: the seed list has duplicates", hint="list each seed once")
    return values


def apply_seeds(
    spec: LaunchSpec,
    *,
    seeds: int | list[int] | tuple[int, ...] | None = None,
    seed_flag: str = "seed",
    local: bool = False,
) -> LaunchSpec:
    """Fold seeds into the search space; `seeds` (from --seeds) overrides the spec's `seeds`.

    `local=True` (the local backend): a non-grid search x seeds keeps `seeds` on the spec, and
    the local coordinator runs every sampled config once per seed (maxTrialCount counts configs).

    A pure seed sweep becomes a grid over one parameter `seed_flag` (int 0..N-1, or a discrete
    list), maxTrialCount N; grid x seeds gains a seed axis and maxTrialCount is multiplied by N.
    The result has `seeds` cleared, so applying it twice is harmless. Other algorithms x seeds
    are not one Katib Experiment: SpecError. A spec with no parameters and no seeds is refused.
    """
    source = source_of(spec) or SpecSource("search.yaml", {})
    from_cli = seeds is not None
    if seeds is not None:
        spec = _with_source(spec.model_copy(update={"seeds": _cli_seeds(seeds)}), source_of(spec))
    if spec.seeds is None:
        if not spec.parameters:
            raise source.error(
                ("parameters",),
                "nothing to search: no parameters and no seeds",
                hint="add a parameter under `parameters:`, or pass --seeds N for a seed sweep",
            )
        if spec.algorithm.algorithmName == "grid":  # a spec built in code skips check_rules
            _check_grid_bound(spec.parameters, 1, source)
        return spec

    def fail(message: str, hint: str) -> SpecError:
        if from_cli:
            return SpecError(f"--seeds: {message}", hint=hint)
        return source.error(("seeds",), message, hint=hint)

    _check_seed_flag(spec, seed_flag, fail)
    values = spec.seed_values
    if spec.parameters and spec.algorithm.algorithmName == "grid":
        _check_grid_bound(spec.parameters, len(values), source, cli_seeds=from_cli)
    if isinstance(spec.seeds, int) and spec.seeds > 1:
        space = FeasibleSpace(min="0", max=str(spec.seeds - 1), step="1")
        seed_param = Parameter(name=seed_flag, parameterType="int", feasibleSpace=space)
    else:
        # An explicit list, or one seed (an int range needs min < max).
        seed_param = Parameter(
            name=seed_flag,
            parameterType="discrete",
            feasibleSpace=FeasibleSpace(list=tuple(str(v) for v in values)),
        )
    max_trials, why = _max_trials(spec)
    if max_trials > MAX_COUNT:
        raise fail(*_too_many(max_trials, why))
    if not spec.parameters:
        algorithm = Algorithm(algorithmName="grid")
        if max_trials > len(values):
            raise fail(
                f"maxTrialCount ({max_trials}) exceeds the number of seeds ({len(values)})",
                hint="remove maxTrialCount (a seed sweep runs every seed once), or pass more --seeds",
            )
    elif spec.algorithm.algorithmName == "grid":
        algorithm = spec.algorithm
    elif spec.algorithm.algorithmName == hyperband.NAME:
        raise fail(*_hyperband_seeds(spec))
    elif local:
        return _with_source(spec.model_copy(update={"seeds": tuple(values)}), source_of(spec))
    else:
        raise fail(
            f"seeds with algorithm {spec.algorithm.algorithmName} cannot be one Katib Experiment "
            "(each sampled config would need one trial per seed)",
            hint="use algorithmName: grid to run every config once per seed, or --backend local "
            "(which runs every sampled config once per seed)",
        )
    if spec.parallelTrialCount is not None and spec.parallelTrialCount > max_trials:
        raise fail(
            f"parallelTrialCount ({spec.parallelTrialCount}) exceeds maxTrialCount "
            f"({max_trials}) of the seed sweep",
            hint=f"set parallelTrialCount to at most {max_trials}",
        )
    result = spec.model_copy(
        update={
            "parameters": (*spec.parameters, seed_param),
            "algorithm": algorithm,
            "maxTrialCount": max_trials,
            "seeds": None,
        }
    )
    return _with_source(result, source_of(spec))


def _with_source(spec: LaunchSpec, source: SpecSource | None) -> LaunchSpec:
    if source is not None:
        _remember(spec, source)
    return spec


def _check_seed_flag(
    spec: LaunchSpec, seed_flag: str, fail: Callable[[str, str], SpecError]
) -> None:
    """The seed parameter must be a usable flag distinct from every searched and fixed name."""
    if not _FIELD_RE.match(seed_flag):
        raise fail(f"seed flag `{seed_flag}` cannot be a Draccus flag", "use e.g. seed")
    for name in (*(p.name for p in spec.parameters), *spec.fixed):
        if _names_clash(name, seed_flag):
            raise fail(
                f"the seed flag `--{seed_flag}` clashes with `{name}` in the spec",
                f"rename `{name}`, or drop seeds and search `{seed_flag}` as a parameter",
            )


def _names_clash(a: str, b: str) -> bool:
    """Same flag, or one is a Draccus parent of the other (`optim` and `optim.lr`)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


# --------------------------------------------------------------------------- Katib rules


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


def _seed_count(spec: LaunchSpec) -> int:
    """len(spec.seed_values) without building it."""
    return spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds or ())


def _check_algorithm_name(algorithm: str, source: SpecSource) -> None:
    where = ("algorithm", "algorithmName")
    if algorithm in UNSUPPORTED_ALGORITHMS:
        raise source.error(
            where,
            f"algorithm `{algorithm}` is not supported by launch: {UNSUPPORTED_ALGORITHMS[algorithm]}",
            hint="use algorithmName: tpe, multivariate-tpe, random, grid, cmaes, sobol "
            "or bayesianoptimization",
        )
    if algorithm not in KATIB_ALGORITHMS:
        close = difflib.get_close_matches(algorithm, KATIB_ALGORITHMS, n=1)
        raise source.error(
            where,
            f"unknown algorithm `{algorithm}`",
            hint=f"did you mean `{close[0]}`?"
            if close
            else f"use one of {', '.join(a for a in KATIB_ALGORITHMS if a not in UNSUPPORTED_ALGORITHMS)}",
        )


def _check_names(spec: LaunchSpec, source: SpecSource) -> None:
    """Every searched and fixed name is a Draccus flag, unique, and unique as a trialParameter."""
    names: dict[str, Path] = {}
    parents: dict[str, str] = {}  # `optim` -> the first name nested in it (`optim.lr`)
    trial_names: dict[str, str] = {}
    entries: list[tuple[str, Path]] = [
        (param.name, ("parameters", index, "name")) for index, param in enumerate(spec.parameters)
    ]
    entries += [(key, ("fixed", key)) for key in spec.fixed]
    for name, where in entries:
        kind = "fixed flag" if where[0] == "fixed" else "parameter name"
        if not _FIELD_RE.match(name) or any(keyword.iskeyword(part) for part in name.split(".")):
            raise source.error(
                where,
                f"{kind} `{_short(name)}` cannot be a Draccus flag",
                hint="use a dataclass field path: letters, digits and `_`, `.` for nesting "
                "(e.g. optim.lr)",
            )
        if name.count(".") >= MAX_YAML_DEPTH:
            # Bounds the prefix look-ups of the nesting check (quadratic in the dots).
            raise source.error(
                where,
                f"{kind} `{_short(name)}` nests more than {MAX_YAML_DEPTH} fields deep",
                hint="a config dataclass nests a few levels: shorten the field path",
            )
        for reserved in RESERVED_FLAGS:
            if _names_clash(name, reserved):
                raise source.error(
                    where,
                    f"{kind} `{name}` clashes with `--{reserved}`, which "
                    + (
                        "launch passes to every trial"
                        if reserved == "tensorboard_dir"
                        else "Draccus reserves"
                    ),
                    hint=f"rename the field in your config dataclass and here (not `{reserved}`)",
                )
        if name in names:
            other_where = names[name]
            twice = "fixed and searched" if other_where[0] != where[0] else "listed twice"
            raise source.error(
                where,
                f"`{name}` is {twice}",
                hint=f"remove `{name}` from `fixed` or from `parameters`"
                if other_where[0] != where[0]
                else "keep only one",
            )
        other = _nesting_clash(name, names, parents)
        if other is not None:
            raise source.error(
                where,
                f"`{name}` and `{other}` set the same Draccus field twice (one nests in the other)",
                hint=f"keep only one of `{name}` and `{other}`",
            )
        names[name] = where
        for parent in _parents(name):
            parents.setdefault(parent, name)
        if where[0] == "parameters":
            param = spec.parameters[int(where[1])]
            trial_name = param.trial_parameter_name
            if trial_name in trial_names:
                raise source.error(
                    where,
                    f"`{name}` and `{trial_names[trial_name]}` map to the same Katib "
                    f"trialParameter `{trial_name}` (`.` becomes `__`)",
                    hint="rename one of them; avoid `__` in names next to dotted ones",
                )
            trial_names[trial_name] = name


def _parents(name: str) -> Iterable[str]:
    """The Draccus fields `name` nests in: `a.b.c` -> `a`, `a.b`."""
    parts = name.split(".")
    return (".".join(parts[:cut]) for cut in range(1, len(parts)))


def _nesting_clash(name: str, names: Mapping[str, Path], parents: Mapping[str, str]) -> str | None:
    """A name seen before that `name` nests in, or that nests in `name` (look-ups, no scan)."""
    for parent in _parents(name):
        if parent in names:
            return parent
    return parents.get(name)


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


def _check_settings(algorithm: Algorithm, source: SpecSource) -> None:
    known = ALGORITHM_SETTINGS.get(algorithm.algorithmName, {})
    seen: set[str] = set()
    for index, setting in enumerate(algorithm.algorithmSettings):
        where = ("algorithm", "algorithmSettings", index)
        if setting.name in seen:
            raise source.error(
                (*where, "name"),
                f"setting `{setting.name}` is listed twice",
                hint="keep one",
            )
        seen.add(setting.name)
        check = known.get(setting.name)
        if check is None:
            close = difflib.get_close_matches(setting.name, list(known), n=1, cutoff=0.5)
            if close:
                hint = f"did you mean `{close[0]}`?"
            elif known:
                hint = f"{algorithm.algorithmName} takes {', '.join(known)}"
            else:
                hint = f"remove it: {algorithm.algorithmName} takes no algorithmSettings"
            raise source.error(
                (*where, "name"),
                f"unknown setting `{setting.name}` for algorithm {algorithm.algorithmName}",
                hint=hint,
            )
        problem = check(setting.value)
        if problem:
            raise source.error(
                (*where, "value"),
                f"{setting.name}: {problem}",
                hint=f"fix the value of {setting.name} (see docs/search-yaml.md)",
            )
    if algorithm.algorithmName == "bayesianoptimization":
        estimator = algorithm.setting("base_estimator") or "GP"
        if estimator != "GP" and algorithm.setting("acq_optimizer") == "lbfgs":
            index = next(
                i for i, s in enumerate(algorithm.algorithmSettings) if s.name == "acq_optimizer"
            )
            raise source.error(
                ("algorithm", "algorithmSettings", index, "value"),
                f"acq_optimizer lbfgs needs gradients; skopt refuses it with base_estimator {estimator}",
                hint="use acq_optimizer: sampling (or auto)",
            )


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


# A word that YAML reads as a plain scalar whatever it is (no indicator, space or quote).
_PLAIN_WORD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_RESOLVER = yaml.resolver.Resolver()
_SCALARS = yaml.constructor.SafeConstructor()


def _implicit_tag(word: str) -> str:
    """The tag YAML 1.1 gives a plain scalar (`on`: bool, `12`: int, `lr`: str)."""
    resolve: Callable[..., str] = _RESOLVER.resolve
    return resolve(yaml.ScalarNode, word, (True, False))


def _flag_yaml(text: str) -> Any:
    """What Draccus's YAML parse makes of a flag value, within search.yaml's limits.

    yaml.safe_load would expand an alias bomb hidden in a quoted value. A plain word is
    resolved and constructed without the parser, which keeps 60k `fixed` values fast.
    """
    if _PLAIN_WORD_RE.match(text) and len(text) <= MAX_NUMBER_CHARS:
        tag = _implicit_tag(text)
        if tag == "tag:yaml.org,2002:str":
            return text
        with contextlib.suppress(ValueError):  # `0x_`, `2001-13-45`: the parser says why
            return _SCALARS.yaml_constructors[tag](_SCALARS, yaml.ScalarNode(tag, text))
    loader = _LineLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _check_counts(spec: LaunchSpec, source: SpecSource) -> None:
    seeds = _seed_count(spec)
    if spec.maxTrialCount is not None:
        if spec.algorithm.algorithmName == "grid" and spec.parameters:
            combinations = grid_combinations(spec.parameters)
            if spec.maxTrialCount > combinations:
                # optuna's GridSampler would sample some points twice; Katib's grid service
                # refuses it (ValidateAlgorithmSettings) after the Experiment is created.
                raise source.error(
                    ("maxTrialCount",),
                    f"grid has only {combinations} combinations, maxTrialCount is "
                    f"{spec.maxTrialCount}",
                    hint=f"set maxTrialCount to at most {combinations}, or remove it (launch "
                    "then runs every combination)",
                )
        if not spec.parameters and seeds and spec.maxTrialCount > seeds:
            raise source.error(
                ("maxTrialCount",),
                f"maxTrialCount ({spec.maxTrialCount}) exceeds the number of seeds ({seeds})",
                hint="remove maxTrialCount (a seed sweep runs every seed once)",
            )
    if not spec.parameters and not seeds:
        return  # apply_seeds decides once --seeds is known
    max_trials, why = _max_trials(spec)
    if max_trials > MAX_COUNT:
        raise source.error(("seeds",) if seeds else ("maxTrialCount",), *_too_many(max_trials, why))
    counts = resolve_counts(spec)
    because = "" if why == "maxTrialCount" else f" ({why})"
    if spec.parallelTrialCount is not None and counts.parallel > max_trials:
        raise source.error(
            ("parallelTrialCount",),
            f"parallelTrialCount ({counts.parallel}) exceeds maxTrialCount ({max_trials}){because}",
            hint=f"set parallelTrialCount to at most {max_trials}",
        )
    if spec.maxFailedTrialCount is not None and counts.max_failed > max_trials:
        raise source.error(
            ("maxFailedTrialCount",),
            f"maxFailedTrialCount ({counts.max_failed}) exceeds maxTrialCount "
            f"({max_trials}){because}",
            hint=f"set maxFailedTrialCount to at most {max_trials}",
        )


def _too_many(max_trials: int, why: str) -> tuple[str, str]:
    """(message, hint) for a derived maxTrialCount past Katib's int32."""
    return (
        f"{why} makes {max_trials:,} trials, more than Katib's maxTrialCount can hold "
        f"({MAX_COUNT:,}, an int32)",
        "lower maxTrialCount or use fewer seeds",
    )


# --------------------------------------------------------------------------- hyperband
#
# What Katib v0.19's hyperband suggestion service checks when it starts, or trips over at run
# time (pkg/suggestion/v1beta1/hyperband/service.py; the arithmetic, and why an Experiment can
# run no more than its first round plus one trial, is in launch/hyperband.py).

_HYPERBAND_EXAMPLE = (
    "add `algorithmSettings: [{name: resource_name, value: num_epochs}, {name: r_l, value: "
    '"9"}, {name: eta, value: "3"}]` (resource_name: the parameter hyperband sets, e.g. the '
    "epochs; r_l: its value in the last round; eta: keep the best 1/eta of each round)"
)


def hyperband_of(spec: LaunchSpec) -> hyperband.Hyperband | None:
    """The hyperband settings of a hyperband spec; None for another algorithm (or unusable
    settings, which check_rules refuses)."""
    if spec.algorithm.algorithmName != hyperband.NAME:
        return None
    return hyperband.from_settings({s.name: s.value for s in spec.algorithm.algorithmSettings})


def _setting_path(algorithm: Algorithm, name: str) -> Path:
    for index, setting in enumerate(algorithm.algorithmSettings):
        if setting.name == name:
            return ("algorithm", "algorithmSettings", index, "value")
    return ("algorithm", "algorithmSettings")


def _check_hyperband_settings(algorithm: Algorithm, source: SpecSource) -> None:
    """Before the generic setting checks: the service's own state names, the required names."""
    for index, setting in enumerate(algorithm.algorithmSettings):
        if setting.name in hyperband.STATE_SETTINGS:
            raise source.error(
                ("algorithm", "algorithmSettings", index, "name"),
                f"`{setting.name}` is hyperband's own state: Katib's service writes it back after "
                "every suggestion and reads it again, so a value here replaces its bookkeeping",
                hint="remove it: hyperband takes resource_name, r_l and eta",
            )
    missing = [name for name in hyperband.REQUIRED_SETTINGS if algorithm.setting(name) is None]
    if missing:
        raise source.error(
            ("algorithm", "algorithmSettings"),
            f"hyperband needs the setting{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)}: Katib's service fails the Experiment without "
            f"{'them' if len(missing) > 1 else 'it'} (`r_l and resource_name must be set.`)",
            hint=_HYPERBAND_EXAMPLE,
        )


def _hyperband_seeds(spec: LaunchSpec) -> tuple[str, str]:
    """(message, hint) refusing seeds with hyperband."""
    name = spec.algorithm.setting("resource_name") or "the resource"
    return (
        "seeds with algorithm hyperband cannot be one Katib Experiment: its service samples every "
        f"parameter itself and promotes single trials to more {name}, so no config runs once "
        "per seed",
        "remove seeds; to see the spread of the best config, put its values under `fixed:` and "
        "run a seed sweep (`--seeds N`, no parameters)",
    )


def _check_hyperband(spec: LaunchSpec, source: SpecSource) -> None:
    """The resource parameter, the other parameters, the counts and the resource values."""
    hb = hyperband_of(spec)
    assert hb is not None, "settings are checked first"
    algorithm = spec.algorithm
    if spec.seeds is not None:
        raise source.error(("seeds",), *_hyperband_seeds(spec))
    name = hb.resource_name
    index = next((i for i, p in enumerate(spec.parameters) if p.name == name), None)
    if index is None:
        if name in spec.fixed:
            raise source.error(
                ("fixed", name),
                f"`{name}` is hyperband's resource_name, so hyperband sets it for each trial: it "
                "cannot be fixed",
                hint=f"move it to parameters: `- {{name: {name}, parameterType: int, "
                f"feasibleSpace: {{min: 1, max: {math.floor(hb.r_l)}}}}}`",
            )
        names = [p.name for p in spec.parameters]
        close = difflib.get_close_matches(name, names, n=1)
        raise source.error(
            _setting_path(algorithm, "resource_name"),
            f"resource_name `{_short(name)}` names no parameter (Katib: `value of resource_name "
            "setting must be in parameters.`)",
            hint=f"did you mean `{close[0]}`?"
            if close
            else f"add `{_short(name)}` to parameters as an int (e.g. the number of epochs)",
        )
    param = spec.parameters[index]
    at: Path = ("parameters", index)
    if param.parameterType not in ("int", "double"):
        raise source.error(
            (*at, "parameterType"),
            f"hyperband gives its resource `{name}` whole numbers (int(r_l * eta**-s)), so it "
            f"must be int or double, not {param.parameterType}",
            hint="use parameterType: int with feasibleSpace min/max",
        )
    if len(spec.parameters) == 1:
        raise source.error(
            ("parameters",),
            f"nothing to search besides `{name}`, which hyperband sets itself: every trial would "
            "train the same config",
            hint="add the hyperparameters to compare (e.g. lr) under parameters",
        )
    for other, item in enumerate(spec.parameters):
        if other != index:
            _check_hyperband_parameter(item, source, ("parameters", other))
    r_l_at = _setting_path(algorithm, "r_l")
    if hb.first_bracket > MAX_COUNT:
        raise source.error(
            r_l_at,
            f"r_l {hb.r_l:g} with eta {hb.eta} makes a first bracket of eta**s_max = "
            f"{hb.eta}**{hb.s_max} configs, more than Katib's parallelTrialCount can hold",
            hint="lower r_l or raise eta",
        )
    _check_hyperband_counts(spec, hb, source)
    counts = resolve_counts(spec)
    values = [rung.resource for rung in hb.runs(counts.parallel, counts.max_trials)]
    if values[0] < 1:
        raise source.error(
            r_l_at,
            f"r_l {_short(algorithm.setting('r_l') or '')} with eta {hb.eta} gives the first "
            f"round {name}={values[0]} (int(r_l * eta**-s_max) rounds down)",
            hint=f"use a whole r_l such as {round(hb.r_l)}",
        )
    space = param.feasibleSpace
    assert space.min is not None and space.max is not None
    low, high = float(space.min), float(space.max)
    if low < high and (low > min(values) or high < max(values)):
        shown = ", then ".join(str(v) for v in values)
        raise source.error(
            (*at, "feasibleSpace", "min" if low > min(values) else "max"),
            f"hyperband sets `{name}` itself ({shown}), outside feasibleSpace "
            f"{space.min}..{space.max}: the range does not limit it",
            hint=f"write min: {min(values)} and max: {max(values)}, or min = max (Katib "
            "ignores the range of the resource parameter)",
        )


def _check_hyperband_parameter(param: Parameter, source: SpecSource, where: Path) -> None:
    """A parameter hyperband samples: np.random.uniform over min..max (parsing_util.py)."""
    space = param.feasibleSpace
    at = (*where, "feasibleSpace")
    if param.parameterType == "discrete":
        for position, item in enumerate(space.list or ()):
            if not _INT_RE.match(item):
                # parse_parameter_configs: `[int(x) for x in feasible_space.list]`
                raise source.error(
                    (*at, "list", position),
                    f"Katib's hyperband service reads discrete values with int(), which fails on "
                    f"{item!r}: the Experiment would get no trial",
                    hint="use whole numbers, or parameterType: double (min/max) or categorical",
                )
    if param.parameterType not in ("int", "double"):
        return
    if space.distribution not in (None, "uniform"):
        raise source.error(
            (*at, "distribution"),
            f"hyperband samples every parameter uniformly and ignores distribution "
            f"{space.distribution}",
            hint="remove `distribution`, or use algorithmName: tpe for a log-scale search",
        )
    if space.step is not None and not (param.parameterType == "int" and int(space.step) == 1):
        raise source.error(
            (*at, "step"),
            "hyperband samples min..max uniformly and ignores `step`",
            hint="remove `step`, or use parameterType: discrete with the values to try",
        )


def _check_hyperband_counts(spec: LaunchSpec, hb: hyperband.Hyperband, source: SpecSource) -> None:
    counts = resolve_counts(spec)
    parallel, max_trials, first = counts.parallel, counts.max_trials, hb.first_bracket
    name = hb.resource_name
    best = (
        f" or {parallel + 1} (then the best config again at {name}={hb.resource(hb.s_max, 1)})"
        if hb.max_extra_trials
        else ""
    )
    if parallel < first:
        raise source.error(
            ("parallelTrialCount",),
            f"parallelTrialCount ({parallel}) is below the {first} configs of hyperband's first "
            f"bracket (eta**s_max = {hb.eta}**{hb.s_max}): Katib's service fails the Experiment "
            f"(`parallelTrialCount must be not less than {first}.`)",
            hint=f"set parallelTrialCount to {first} or more (or remove it: launch then uses "
            f"{first}), or lower r_l or raise eta for a smaller first bracket",
        )
    if max_trials < parallel:
        what = "" if spec.parallelTrialCount is not None else ", hyperband's first bracket"
        raise source.error(
            ("maxTrialCount",),
            f"maxTrialCount ({max_trials}) is below parallelTrialCount ({parallel}{what})",
            hint=f"set maxTrialCount to {parallel} (the first round){best}",
        )
    limit = parallel + hb.max_extra_trials
    if max_trials > limit:
        asked, answered = hb.stalled_reply(parallel, max_trials)
        why = (
            f"the best ceil({asked}/{hb.eta}) of the last round"
            if hb.max_extra_trials
            else "its only bracket is done"
        )
        raise source.error(
            ("maxTrialCount",),
            f"maxTrialCount ({max_trials}) is more than Katib v0.19's hyperband can run with "
            f"parallelTrialCount {parallel}: after {limit} trial{'s' if limit != 1 else ''} "
            "Katib asks its service for "
            f"{asked} at once, the service answers with {answered} ({why}), and Katib refuses "
            "the reply (`The response contains unexpected trials`) again and again: the "
            "Experiment stays Running with no trial",
            hint=f"set maxTrialCount to {parallel} (the first round){best}; more configs need a "
            "larger parallelTrialCount",
        )
    failed = spec.maxFailedTrialCount
    if max_trials == parallel + 1 and hb.max_extra_trials and failed not in (None, 0, 1):
        raise source.error(
            ("maxFailedTrialCount",),
            f"with maxTrialCount {max_trials} = parallelTrialCount + 1, a failed first-round "
            "trial stalls Katib's hyperband service (it waits for every trial of a round to "
            "succeed: `There are some trials which are not completed yet`): the Experiment "
            f"would stay Running with no trial, unless maxFailedTrialCount 1 ends it",
            hint=f"set maxFailedTrialCount: 1 (or remove it: launch then uses 1), or "
            f"maxTrialCount: {parallel}",
        )


# --------------------------------------------------------------------------- warnings


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


def numeric_value(text: str, parameter_type: str) -> int | float:
    """A Katib value string as the Python number a program receives."""
    return int(text) if parameter_type == "int" else float(text)
