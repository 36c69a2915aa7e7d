"""Seed studies in the spec: a list of configs, each run once per seed (`LaunchSpec.configs`).

`study_spec` builds one from a search's spec and its chosen configs; `katib_form` is the one
Katib Experiment that runs it (a grid over the config number and the seed: the trial command
maps the number to the config's flags, `launch.katib`); `check_study` holds the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from launch.errors import SpecError
from launch.spec.counts import _seed_count
from launch.spec.limits import MAX_COUNT, MAX_GRID_COMBINATIONS
from launch.spec.models import Algorithm, FeasibleSpace, LaunchSpec, Parameter, Scalar
from launch.spec.names import _names_clash
from launch.spec.seeds import seed_parameter
from launch.spec.values import _FIELD_RE

# The Katib parameter (and trial flag, rewritten before the program sees it) that numbers the
# configs of a seed study, 1..K.
CONFIG_PARAM = "launch_config"


def value_text(value: Scalar) -> str:
    """A value as the trial's flag carries it (`contract.format_value`'s rule, kept here so the
    spec package stays below `launch.contract`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def envelope(configs: Sequence[Mapping[str, Scalar]]) -> tuple[Parameter, ...]:
    """Each flag of the configs with every value it takes, in first-seen order: what the preflight
    checks (one flag set per value). Numbers are `discrete`, anything else `categorical`."""
    values: dict[str, list[Scalar]] = {}
    for config in configs:
        for name, value in config.items():
            seen = values.setdefault(name, [])
            if value_text(value) not in (value_text(v) for v in seen):
                seen.append(value)
    params = []
    for name, seen in values.items():
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen)
        params.append(
            Parameter(
                name=name,
                parameterType="discrete" if numeric else "categorical",
                feasibleSpace=FeasibleSpace(list=tuple(value_text(v) for v in seen)),
            )
        )
    return tuple(params)


def study_spec(
    search: LaunchSpec,
    configs: Sequence[Mapping[str, Scalar]],
    *,
    seeds: int | tuple[int, ...],
    seed_flag: str = "seed",
    parallel: int | None = None,
) -> LaunchSpec:
    """The spec of a seed study of `search`: its objective and fixed flags, `configs` x `seeds`.

    parallelTrialCount: `parallel`, else the search's, at most the study's trial count."""
    total = len(configs) * (seeds if isinstance(seeds, int) else len(seeds))
    wanted = parallel if parallel is not None else search.parallelTrialCount
    spec = LaunchSpec(
        objective=search.objective,
        algorithm=Algorithm(algorithmName="grid"),
        parameters=envelope(configs),
        parallelTrialCount=None if wanted is None else max(1, min(wanted, total)),
        seeds=seeds,
        fixed=dict(search.fixed),
        configs=tuple(dict(c) for c in configs),
    )
    check_study(spec, seed_flag)
    return spec


def check_study(spec: LaunchSpec, seed_flag: str) -> None:
    """A study needs seeds, a usable seed flag distinct from every flag of the configs and of
    `fixed`, and at most MAX_GRID_COMBINATIONS trials (its grid is listed in full)."""
    configs = spec.configs or ()
    seeds = _seed_count(spec)
    if not seeds:
        raise SpecError("a seed study needs seeds", hint="pass --seeds N")
    if not _FIELD_RE.match(seed_flag):
        raise SpecError(f"seed flag `{seed_flag}` cannot be a Draccus flag", hint="use e.g. seed")
    names = {name for config in configs for name in config} | set(spec.fixed)
    for name in sorted(names):
        if _names_clash(name, seed_flag):
            raise SpecError(
                f"the seed flag `--{seed_flag}` clashes with `{name}` of the configs",
                hint=f"set another seed_flag (LAUNCH_SEED_FLAG), or rename `{name}`",
            )
        if _names_clash(name, CONFIG_PARAM):
            raise SpecError(
                f"`{name}` clashes with `--{CONFIG_PARAM}`, which numbers a seed study's configs",
                hint=f"rename `{name}` in the program and its search",
            )
    total = len(configs) * seeds
    if total > min(MAX_GRID_COMBINATIONS, MAX_COUNT):
        raise SpecError(
            f"{len(configs)} configs x {seeds} seeds make {total:,} trials, more than launch "
            f"lists in one grid ({MAX_GRID_COMBINATIONS:,})",
            hint="pass a smaller --top or fewer --seeds",
        )


def katib_form(spec: LaunchSpec, seed_flag: str) -> LaunchSpec:
    """The study as one Katib Experiment: algorithm grid over `CONFIG_PARAM` (discrete 1..K) and
    the seed, maxTrialCount K x N; `configs` kept (the trial command needs them), `seeds` cleared.
    """
    configs = spec.configs or ()
    check_study(spec, seed_flag)
    values = spec.seed_values
    seed_param = seed_parameter(spec, seed_flag)
    number = Parameter(
        name=CONFIG_PARAM,
        parameterType="discrete",
        feasibleSpace=FeasibleSpace(list=tuple(str(i) for i in range(1, len(configs) + 1))),
    )
    return spec.model_copy(
        update={
            "parameters": (number, seed_param),
            "algorithm": Algorithm(algorithmName="grid"),
            "maxTrialCount": len(configs) * len(values),
            "seeds": None,
        }
    )


def study_points(spec: LaunchSpec, seed_flag: str) -> list[dict[str, Scalar]]:
    """Every trial's params of a study, in Katib's grid order (config slowest, then seed)."""
    return [
        {**config, seed_flag: seed} for config in spec.configs or () for seed in spec.seed_values
    ]
