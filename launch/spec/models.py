"""The pydantic models of search.yaml: a strict subset of Katib's Experiment `spec`, plus `seeds`
and `fixed`. Field shapes only; Katib's rules across fields are in `launch.spec.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from launch.spec.limits import MAX_COUNT, MAX_SEED, MAX_SEEDS
from launch.spec.source import SpecSource
from launch.spec.values import _number_text, _short

Scalar = str | int | float | bool


Distribution = Literal["uniform", "logUniform", "normal", "logNormal"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


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
    # A seed study (`launch seeds`, `launch.spec.study`): the configs to run, each once per seed,
    # numbered 1.. in this order. Set by launch, never read from search.yaml (`loading` refuses
    # it); `parameters` then holds each flag's values across the configs, for the preflight.
    configs: tuple[Mapping[str, Scalar], ...] | None = None

    # Where the spec was read from (`source_of`; None for a spec built in code). Not a field: not
    # validated, dumped or compared (`__eq__`); `model_copy` carries it over to the copy.
    _source: SpecSource | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Specs with equal fields are equal, wherever they were read from.

        pydantic's `__eq__` also compares private attributes, so two copies of one search.yaml in
        different files (or a parsed spec and the same spec built in code) would differ.
        """
        if not isinstance(other, BaseModel):
            return NotImplemented
        # extra="forbid": __dict__ holds exactly the fields.
        return type(self) is type(other) and self.__dict__ == other.__dict__

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

    @field_validator("configs", mode="before")
    @classmethod
    def _configs(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("expected a non-empty list of configs")
        for config in value:
            if not isinstance(config, Mapping):
                raise ValueError(f"a config must map flags to values, got {type(config).__name__}")
            cls._fixed(config)
        return tuple(dict(config) for config in value)

    @property
    def seed_values(self) -> tuple[int, ...]:
        """The seeds to run: `seeds: N` means 0..N-1; a list is used as given."""
        if self.seeds is None:
            return ()
        if isinstance(self.seeds, int):
            return tuple(range(self.seeds))
        return self.seeds
