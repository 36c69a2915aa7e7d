"""The search.yaml model: a strict subset of Katib's Experiment `spec`, plus `seeds` and `fixed`.

Pure: parses text into a validated, frozen `LaunchSpec`; no network, no clock, no environment.
Imports pydantic, PyYAML and launch.errors only (`launch render` must start fast).
Rules and their Katib sources are listed in docs/search-yaml.md.

Submodules, by concern (everything public is re-exported here, as `launch.spec.<name>`):

- `models`: the pydantic models (`LaunchSpec`, `Parameter`, ...).
- `loading`: `load` / `parse` / `validate`: file or text to a validated spec.
- `yaml_lines`: the YAML loaders with lines and paths, and the input limits.
- `source`: `SpecSource`, the file:line of each field; `source_of`.
- `rules`: `check_rules`, the objective and fixed-value rules; beside it `names` (flag names),
  `space` (feasibleSpace, per-algorithm parameter rules), `algorithms` (names, settings),
  `counts` (`resolve_counts` and the count rules), `hyperband_rules`.
- `grid`: grid arithmetic; `seeds`: `apply_seeds`; `study`: seed studies (`configs` x seeds); `coercion`: `coercion_warnings`.
- `values`: Katib's value strings; `limits`: defaults and input limits.
- `sweep`: `Sweep` and `load_sweep` (a spec with seeds applied and its counts resolved).
"""

from __future__ import annotations

from launch.spec.algorithms import (
    ALGORITHM_SETTINGS,
    GOPTUNA_ALGORITHMS,
    KATIB_ALGORITHMS,
    OPTUNA_ALGORITHMS,
    UNSUPPORTED_ALGORITHMS,
)
from launch.spec.coercion import coercion_warnings
from launch.spec.counts import Counts, hyperband_of, resolve_counts
from launch.spec.grid import grid_combinations, grid_overflow, grid_size, grid_values
from launch.spec.limits import (
    DEFAULT_MAX_FAILED_TRIALS,
    DEFAULT_MAX_TRIALS,
    DEFAULT_PARALLEL_TRIALS,
    INT64_MAX,
    INT64_MIN,
    MAX_COUNT,
    MAX_EI_CANDIDATES,
    MAX_GRID_COMBINATIONS,
    MAX_METRICS,
    MAX_NUMBER_CHARS,
    MAX_SEED,
    MAX_SEEDS,
    MAX_SPEC_BYTES,
    MAX_YAML_DEPTH,
)
from launch.spec.loading import load, parse, validate
from launch.spec.models import (
    Algorithm,
    AlgorithmSetting,
    Count,
    Distribution,
    FeasibleSpace,
    LaunchSpec,
    MetricStrategy,
    Objective,
    Parameter,
    Scalar,
    Seeds,
)
from launch.spec.names import RESERVED_FLAGS
from launch.spec.rules import check_rules
from launch.spec.seeds import apply_seeds, deferred_seeds
from launch.spec.source import Path, SpecSource, source_of
from launch.spec.study import CONFIG_PARAM, check_study, katib_form, study_points, study_spec
from launch.spec.sweep import Sweep, load_sweep
from launch.spec.values import CATEGORICAL_VALUE_CHARS, CATEGORICAL_VALUE_RE, numeric_value

__all__ = [
    "ALGORITHM_SETTINGS",
    "CATEGORICAL_VALUE_CHARS",
    "CATEGORICAL_VALUE_RE",
    "CONFIG_PARAM",
    "DEFAULT_MAX_FAILED_TRIALS",
    "DEFAULT_MAX_TRIALS",
    "DEFAULT_PARALLEL_TRIALS",
    "GOPTUNA_ALGORITHMS",
    "INT64_MAX",
    "INT64_MIN",
    "KATIB_ALGORITHMS",
    "MAX_COUNT",
    "MAX_EI_CANDIDATES",
    "MAX_GRID_COMBINATIONS",
    "MAX_METRICS",
    "MAX_NUMBER_CHARS",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_SPEC_BYTES",
    "MAX_YAML_DEPTH",
    "OPTUNA_ALGORITHMS",
    "RESERVED_FLAGS",
    "UNSUPPORTED_ALGORITHMS",
    "Algorithm",
    "AlgorithmSetting",
    "Count",
    "Counts",
    "Distribution",
    "FeasibleSpace",
    "LaunchSpec",
    "MetricStrategy",
    "Objective",
    "Parameter",
    "Path",
    "Scalar",
    "Seeds",
    "SpecSource",
    "Sweep",
    "apply_seeds",
    "check_rules",
    "check_study",
    "coercion_warnings",
    "deferred_seeds",
    "grid_combinations",
    "grid_overflow",
    "grid_size",
    "grid_values",
    "hyperband_of",
    "katib_form",
    "load",
    "load_sweep",
    "numeric_value",
    "parse",
    "resolve_counts",
    "source_of",
    "study_points",
    "study_spec",
    "validate",
]
