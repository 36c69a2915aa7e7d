"""A resolved sweep: the loaded spec with its seeds folded in, its counts, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from launch.spec.counts import Counts, resolve_counts
from launch.spec.loading import load
from launch.spec.models import LaunchSpec
from launch.spec.seeds import apply_seeds, deferred_seeds
from launch.spec.source import SpecSource, source_of


@dataclass(frozen=True)
class Sweep:
    """What a launch runs: a search.yaml after `apply_seeds`, with the counts launch sets."""

    spec: (
        LaunchSpec  # seeds applied: a seed axis in the grid, or `seeds` kept for the local backend
    )
    counts: Counts  # resolve_counts(spec)
    seed_flag: str  # the flag that receives the seed (the `seed_flag` setting)
    source: SpecSource | None  # file:line of each field (source_of(spec))
    # Katib, search x seeds with an algorithm other than grid: `spec` is the search without
    # seeds, these are the seeds of the seed study of its best configs (`launch seeds`).
    then_seeds: int | tuple[int, ...] | None = None


def load_sweep(path: str, *, seeds: int | None, seed_flag: str, local: bool) -> Sweep:
    """Read, validate and resolve a search.yaml: `load`, `apply_seeds`, then `resolve_counts`.

    Raises SpecError as those do (same messages); `seeds` (from --seeds) overrides the spec's.
    On Katib (`local=False`) a search x seeds with an algorithm other than grid is split: the
    search runs without seeds, `then_seeds` are for the seed study of its best configs.
    """
    loaded = load(path)
    deferred = None if local else deferred_seeds(loaded, seeds=seeds, seed_flag=seed_flag)
    if deferred is not None:
        spec, then_seeds = deferred
        return Sweep(
            spec=spec, counts=resolve_counts(spec), seed_flag=seed_flag,
            source=source_of(spec), then_seeds=then_seeds,
        )  # fmt: skip
    spec = apply_seeds(loaded, seeds=seeds, seed_flag=seed_flag, local=local)
    return Sweep(
        spec=spec, counts=resolve_counts(spec), seed_flag=seed_flag, source=source_of(spec)
    )
