"""Seeds: `--seeds` checked like the `seeds` field, and folded into the search space."""

from __future__ import annotations

from collections.abc import Callable

from launch import hyperband
from launch.errors import SpecError
from launch.spec.counts import _max_trials, _too_many
from launch.spec.grid import _check_grid_bound
from launch.spec.hyperband_rules import _hyperband_seeds
from launch.spec.limits import MAX_COUNT, MAX_SEED, MAX_SEEDS
from launch.spec.models import Algorithm, FeasibleSpace, LaunchSpec, Parameter
from launch.spec.names import _names_clash
from launch.spec.source import SpecSource, source_of
from launch.spec.values import _FIELD_RE, _short


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
        spec = spec.model_copy(update={"seeds": _cli_seeds(seeds)})  # keeps the source
    if spec.configs is not None:
        # A seed study: both backends run configs x seeds (Katib: `study.katib_form`).
        from launch.spec.study import check_study

        check_study(spec, seed_flag)
        return spec
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
    seed_param = seed_parameter(spec, seed_flag)
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
        return spec.model_copy(update={"seeds": tuple(values)})
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
    # model_copy keeps the spec's source (`source_of`), so later errors still name file:line.
    return spec.model_copy(
        update={
            "parameters": (*spec.parameters, seed_param),
            "algorithm": algorithm,
            "maxTrialCount": max_trials,
            "seeds": None,
        }
    )


def deferred_seeds(
    spec: LaunchSpec,
    *,
    seeds: int | None = None,
    seed_flag: str = "seed",
) -> tuple[LaunchSpec, int | tuple[int, ...]] | None:
    """A search x seeds that one Katib Experiment cannot run (an algorithm other than grid or
    hyperband, with parameters): the search without seeds, and the seeds for the seed study of
    its best configs afterwards (`launch seeds`). None for every other spec (`apply_seeds`
    decides)."""
    wanted = _cli_seeds(seeds) if seeds is not None else spec.seeds
    name = spec.algorithm.algorithmName
    if wanted is None or not spec.parameters or name in ("grid", hyperband.NAME):
        return None
    if spec.configs is not None:
        return None
    source = source_of(spec) or SpecSource("search.yaml", {})

    def fail(message: str, hint: str) -> SpecError:
        if seeds is not None:
            return SpecError(f"--seeds: {message}", hint=hint)
        return source.error(("seeds",), message, hint=hint)

    _check_seed_flag(spec, seed_flag, fail)
    return spec.model_copy(update={"seeds": None}), wanted


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


def seed_parameter(spec: LaunchSpec, seed_flag: str) -> Parameter:
    """The seed as a Katib grid axis: an int range for `seeds: N`, else the listed values (an
    explicit list, or one seed: an int range needs min < max)."""
    if isinstance(spec.seeds, int) and spec.seeds > 1:
        space = FeasibleSpace(min="0", max=str(spec.seeds - 1), step="1")
        return Parameter(name=seed_flag, parameterType="int", feasibleSpace=space)
    return Parameter(
        name=seed_flag,
        parameterType="discrete",
        feasibleSpace=FeasibleSpace(list=tuple(str(v) for v in spec.seed_values)),
    )
