"""Suggestions for the local backend: Optuna samplers mapped from Katib algorithm names.

Optuna is imported only when a sampler is built (it costs ~0.6 s). Grid sweeps need no Optuna:
they enumerate the grid lazily, in order, which also makes resuming trivial. A suggester is
rebuilt from the journal's trial records on resume: finished trials are history, Killed ones run
again.
"""

from __future__ import annotations

import itertools
import json
import statistics
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from launch.contract import ParamValue
from launch.errors import SpecError
from launch.events import TrialStatus
from launch.spec import (
    KATIB_ALGORITHMS,
    MAX_GRID_COMBINATIONS,
    UNSUPPORTED_ALGORITHMS,
    LaunchSpec,
    Parameter,
    grid_overflow,
    grid_values,
    numeric_value,
    study_points,
)

# Runs on the cluster only: Katib's hyperband service sets each trial's resource parameter itself,
# and launch keeps no local copy of that service (docs/search-yaml.md, hyperband).
CLUSTER_ONLY_ALGORITHMS = ("hyperband",)
# Every other algorithm launch accepts runs locally too (Optuna's sampler of the same idea).
LOCAL_ALGORITHMS = tuple(
    a
    for a in KATIB_ALGORITHMS
    if a not in UNSUPPORTED_ALGORITHMS and a not in CLUSTER_ONLY_ALGORITHMS
)

SUCCEEDED, KILLED = TrialStatus.SUCCEEDED, TrialStatus.KILLED


def local_caveats(spec: LaunchSpec) -> list[str]:
    """What the local sampler does differently from Katib's for this spec (printed as notes)."""
    restart = spec.algorithm.setting("restart_strategy")
    if spec.algorithm.algorithmName == "cmaes" and restart not in (None, "none"):
        return [
            f"restart_strategy {restart} applies on Katib only: Optuna's local CMA-ES dropped "
            "restarts (v4.4), so this sweep runs without them"
        ]
    return []


def check_local(spec: LaunchSpec) -> None:
    """Fail before anything runs when the algorithm or a distribution has no local equivalent."""
    name = spec.algorithm.algorithmName
    if name == "hyperband":
        resource = spec.algorithm.setting("resource_name") or "its resource parameter"
        raise SpecError(
            "algorithm `hyperband` runs on the cluster only: Katib's hyperband suggestion service "
            f"sets {resource} for each trial itself and promotes the best configs, and the local "
            "backend has no such service",
            hint="run it on the cluster (--backend katib; `launch render` shows its brackets), or "
            f"search locally with algorithmName: random or tpe and {resource} under `fixed:`",
        )
    if name not in LOCAL_ALGORITHMS:
        raise SpecError(
            f"algorithm `{name}` has no local equivalent",
            hint=f"use one of {', '.join(LOCAL_ALGORITHMS)} with --backend local, "
            "or run it on a cluster (--backend katib)",
        )
    for param in spec.parameters:
        dist = param.feasibleSpace.distribution
        if dist in ("normal", "logNormal"):
            raise SpecError(
                f"parameter `{param.name}`: distribution {dist} has no local (Optuna) equivalent",
                hint="use distribution: uniform or logUniform",
            )
    if name == "bayesianoptimization":
        try:
            import torch  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise SpecError(
                "algorithm `bayesianoptimization` runs locally with Optuna's GPSampler, "
                "which needs torch",
                hint="pip install torch (CPU is fine), or use algorithmName: tpe",
            ) from None


def _typed(param: Parameter, text: str) -> ParamValue:
    """Katib's value text as the trial gets it: ints and doubles as numbers, lists verbatim."""
    if param.parameterType in ("int", "double"):
        return numeric_value(text, param.parameterType)
    return text


def grid_points(spec: LaunchSpec) -> Iterator[dict[str, ParamValue]]:
    """The grid, first parameter varying slowest, one point at a time (only the axes in memory).

    Refuses a grid past MAX_GRID_COMBINATIONS (a spec that skipped check_rules, or an old
    journal's): its axes alone could fill the memory.
    """
    over = grid_overflow(spec.parameters)
    if over is not None:
        raise SpecError(
            f"{over[1]}; launch refuses grids over {MAX_GRID_COMBINATIONS:,} trials",
            hint="raise `step` or narrow min/max, or use algorithmName: random or tpe",
        )
    names = [p.name for p in spec.parameters]
    axes = [[_typed(p, v) for v in grid_values(p)] for p in spec.parameters]
    return (dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes))


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _distributions(spec: LaunchSpec) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for param in spec.parameters:
        space = param.feasibleSpace
        log = space.distribution == "logUniform"
        if param.parameterType == "int":
            assert space.min is not None and space.max is not None
            step = int(space.step) if space.step and not log else 1
            out[param.name] = IntDistribution(int(space.min), int(space.max), log=log, step=step)
        elif param.parameterType == "double":
            assert space.min is not None and space.max is not None
            step_value = float(space.step) if space.step and not log else None
            out[param.name] = FloatDistribution(
                float(space.min), float(space.max), log=log, step=step_value
            )
        else:
            assert space.list is not None
            out[param.name] = CategoricalDistribution(list(space.list))
    return out


def _int_setting(spec: LaunchSpec, *names: str) -> int | None:
    for name in names:
        value = spec.algorithm.setting(name)
        if value is not None:
            return int(value)
    return None


def predictable_trials(spec: LaunchSpec) -> int:
    """How many first suggestions are fixed before any result (what a dry run may promise):
    Sobol (unscrambled: Katib's takes no seed) is fixed always; the rest need random_state.
    Random never looks at results; TPE and GP start with `n_startup_trials` /
    `n_initial_points` independent draws; CMA-ES with one."""
    name = spec.algorithm.algorithmName
    if name == "sobol":
        return 2**31
    if _int_setting(spec, "random_state") is None:
        return 0
    if name == "random":
        return 2**31
    if name in ("tpe", "multivariate-tpe"):
        return _int_setting(spec, "n_startup_trials", "n_initial_points") or 10
    if name == "bayesianoptimization":
        return _int_setting(spec, "n_initial_points") or 10
    return 1


def _sampler(spec: LaunchSpec) -> Any:
    import optuna

    name = spec.algorithm.algorithmName
    seed = _int_setting(spec, "random_state")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        kwargs: dict[str, Any] = {"seed": seed, "multivariate": name == "multivariate-tpe"}
        startup = _int_setting(spec, "n_startup_trials", "n_initial_points")
        if startup is not None:
            kwargs["n_startup_trials"] = startup
        candidates = _int_setting(spec, "n_ei_candidates", "n_EI_candidates")
        if candidates is not None:
            kwargs["n_ei_candidates"] = candidates
        return optuna.samplers.TPESampler(**kwargs)
    if name == "cmaes":
        sigma = spec.algorithm.setting("sigma")
        with warnings.catch_warnings():
            # sigma0 still works in Optuna 5 (deprecated for 6); restart_strategy no longer does
            # and is left out: `local_caveats` tells the user.
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(seed=seed, sigma0=float(sigma) if sigma else None)
    if name == "sobol":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                qmc_type="sobol", seed=seed, scramble=seed is not None
            )
    if name == "bayesianoptimization":
        startup = _int_setting(spec, "n_initial_points") or 10
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise SpecError(f"algorithm `{name}` has no local equivalent", hint="use tpe or random")


class Suggester:
    """ask() the next trial's parameters, tell() its objective (None = failed / no metric)."""

    def ask(self) -> tuple[int, dict[str, ParamValue], str | None] | None:
        """(handle, params, retry_of) or None when the space is exhausted."""
        raise NotImplementedError

    def tell(self, handle: int, value: float | None) -> None:
        raise NotImplementedError


def _killed_unretried(records: Sequence[Any]) -> list[Any]:
    """Killed trials (Ctrl-C, cancel, a lost coordinator) no later trial has run again."""
    retried = {r.retry_of for r in records if r.retry_of}
    return [r for r in records if r.status == KILLED and r.name not in retried]


def _finished(records: Sequence[Any]) -> list[Any]:
    return [r for r in records if r.status not in (KILLED, TrialStatus.RUNNING)]


class GridSuggester(Suggester):
    """Every grid point not yet finished, in order; Killed points run again (linked).

    A seed study (`spec.configs`) is the grid of its configs x seeds, config slowest."""

    def __init__(self, spec: LaunchSpec, records: Sequence[Any], seed_flag: str = "seed") -> None:
        self.done = {_key(r.params) for r in _finished(records)}
        self.retry = {_key(r.params): r.name for r in _killed_unretried(records)}
        # lazy: a resumed sweep skips what is done
        self.points: Iterator[dict[str, ParamValue]] = (
            iter(study_points(spec, seed_flag)) if spec.configs is not None else grid_points(spec)
        )

    def ask(self) -> tuple[int, dict[str, ParamValue], str | None] | None:
        for params in self.points:
            key = _key(params)
            if key not in self.done:
                return -1, params, self.retry.pop(key, None)
        return None

    def tell(self, handle: int, value: float | None) -> None:
        """The grid does not learn."""


class OptunaSuggester(Suggester):
    """An Optuna study rebuilt from history; Killed trials' parameters are enqueued first."""

    def __init__(
        self,
        spec: LaunchSpec,
        history: Sequence[tuple[Mapping[str, Any], float | None]],
        requeue: Sequence[tuple[Mapping[str, Any], str | None]] = (),
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction=spec.objective.type, sampler=_sampler(spec))
        self._dists = _distributions(spec)
        self._pending: dict[int, Any] = {}
        self._requeue = list(requeue)
        state = optuna.trial.TrialState
        for params, value in history:
            self._study.add_trial(
                optuna.trial.create_trial(
                    params=dict(params),
                    distributions=self._dists,
                    value=value,
                    state=state.COMPLETE if value is not None else state.FAIL,
                )
            )

    def ask(self) -> tuple[int, dict[str, ParamValue], str | None] | None:
        retry_of = None
        if self._requeue:
            params, retry_of = self._requeue.pop(0)
            self._study.enqueue_trial(dict(params), skip_if_exists=False)
        trial = self._study.ask(self._dists)
        self._pending[trial.number] = trial
        return int(trial.number), dict(trial.params), retry_of

    def tell(self, handle: int, value: float | None) -> None:
        import optuna

        trial = self._pending.pop(handle, None)
        if trial is None:
            return
        if value is None:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, value)


def _objective(record: Any, objective: str) -> float | None:
    value = record.metrics.get(objective) if record.status == SUCCEEDED else None
    return None if value is None else float(value)


class SeededSuggester(Suggester):
    """Search x seeds: every sampled config runs once per seed; the sampler learns the mean."""

    def __init__(self, spec: LaunchSpec, records: Sequence[Any], seed_flag: str) -> None:
        self.seed_flag = seed_flag
        self.seeds = list(spec.seed_values)
        objective = spec.objective.objectiveMetricName
        retry = {_key(r.params): r.name for r in _killed_unretried(records)}
        # Group the journal by config (all params but the seed).
        groups: dict[str, dict[str, Any]] = {}
        for record in records:
            config = {k: v for k, v in record.params.items() if k != seed_flag}
            group = groups.setdefault(_key(config), {"config": config, "values": {}, "seen": set()})
            seed = record.params.get(seed_flag)
            group["seen"].add(seed)
            if record.status not in (KILLED, TrialStatus.RUNNING):
                group["values"][seed] = _objective(record, objective)
        history, partial = [], []
        for group in groups.values():
            if len(group["values"]) == len(self.seeds):
                history.append((group["config"], _mean(list(group["values"].values()))))
            else:
                partial.append(group)
        self.inner = OptunaSuggester(spec, history, [(g["config"], None) for g in partial])
        # handle -> {"left": seeds still to run, "values": {seed: value}, "config": ...}
        self.groups: dict[int, dict[str, Any]] = {}
        # A deque: with 100k seeds, list.pop(0) per trial would be quadratic.
        self.queue: deque[tuple[int, dict[str, ParamValue], str | None]] = deque()
        self._partial = partial
        self._retry = retry

    def ask(self) -> tuple[int, dict[str, ParamValue], str | None] | None:
        if not self.queue:
            asked = self.inner.ask()
            if asked is None:
                return None
            handle, config, _ = asked
            done: dict[Any, float | None] = {}
            if self._partial:  # a config a dead coordinator left half-run: finish its seeds
                group = self._partial.pop(0)
                config, done = group["config"], dict(group["values"])
            todo = [s for s in self.seeds if s not in done]
            self.groups[handle] = {"left": len(todo), "values": list(done.values())}
            for seed in todo:
                params = {**config, self.seed_flag: seed}
                self.queue.append((handle, params, self._retry.pop(_key(params), None)))
        return self.queue.popleft()

    def tell(self, handle: int, value: float | None) -> None:
        group = self.groups.get(handle)
        if group is None:
            return
        group["left"] -= 1
        group["values"].append(value)
        if group["left"] == 0:
            self.inner.tell(handle, _mean(group["values"]))
            del self.groups[handle]


def _mean(values: Sequence[float | None]) -> float | None:
    """The config's objective for the sampler: the mean over seeds that produced one."""
    finished = [v for v in values if v is not None]
    return statistics.fmean(finished) if finished else None


def make_suggester(spec: LaunchSpec, records: Sequence[Any], *, seed_flag: str) -> Suggester:
    """The suggester for a (possibly resumed) local experiment; `records` are its journal's trials."""
    if spec.algorithm.algorithmName == "grid":
        return GridSuggester(spec, records, seed_flag)
    if spec.seeds:
        return SeededSuggester(spec, records, seed_flag)
    objective = spec.objective.objectiveMetricName
    history = [(r.params, _objective(r, objective)) for r in _finished(records)]
    requeue = [(r.params, r.name) for r in _killed_unretried(records)]
    return OptunaSuggester(spec, history, requeue)
