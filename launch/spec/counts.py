"""The counts launch sets (parallel, max and max failed trials): `resolve_counts` with its
defaults, the rules on explicit counts, and `hyperband_of` (hyperband's counts follow from its
settings)."""

from __future__ import annotations

from dataclasses import dataclass

from launch import hyperband
from launch.spec.grid import grid_combinations
from launch.spec.limits import (
    DEFAULT_MAX_FAILED_TRIALS,
    DEFAULT_MAX_TRIALS,
    DEFAULT_PARALLEL_TRIALS,
    MAX_COUNT,
)
from launch.spec.models import LaunchSpec
from launch.spec.source import SpecSource


@dataclass(frozen=True)
class Counts:
    """parallelTrialCount, maxTrialCount, maxFailedTrialCount as launch sets them (all set)."""

    parallel: int
    max_trials: int
    max_failed: int


def _max_trials(spec: LaunchSpec) -> tuple[int, str]:
    """(maxTrialCount, where it comes from); the same before and after apply_seeds."""
    seeds = _seed_count(spec)
    if spec.configs is not None:  # a seed study; `study.katib_form` sets maxTrialCount itself
        if spec.maxTrialCount is not None:
            return spec.maxTrialCount, "maxTrialCount"
        return len(spec.configs) * max(seeds, 1), f"{len(spec.configs)} configs x {seeds} seeds"
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


def _seed_count(spec: LaunchSpec) -> int:
    """len(spec.seed_values) without building it."""
    return spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds or ())


def hyperband_of(spec: LaunchSpec) -> hyperband.Hyperband | None:
    """The hyperband settings of a hyperband spec; None for another algorithm (or unusable
    settings, which check_rules refuses)."""
    if spec.algorithm.algorithmName != hyperband.NAME:
        return None
    return hyperband.from_settings({s.name: s.value for s in spec.algorithm.algorithmSettings})


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
