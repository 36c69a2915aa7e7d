"""Suggestions for the local backend: Optuna samplers mapped from Katib algorithm names.

Optuna is imported only when a suggester is built (it costs ~0.6 s). Grid sweeps need no Optuna:
they enumerate the grid in order, which also makes resuming trivial.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from launch.errors import SpecError
from launch.spec import LaunchSpec, Parameter, grid_values, numeric_value

ParamValue = str | int | float

# Katib name -> what runs it locally.
LOCAL_ALGORITHMS = (
    "random",
    "tpe",
    "multivariate-tpe",
    "grid",
    "cmaes",
    "sobol",
    "bayesianoptimization",
)


def check_local(spec: LaunchSpec) -> None:
    """Fail before anything runs when the algorithm or a distribution has no local equivalent."""
    name = spec.algorithm.algorithmName
    if name not in LOCAL_ALGORITHMS:
        raise SpecError(
            f"algorithm `{name}` has no local equivalent",
            hint=f"use one of {', '.join(LOCAL_ALGORITHMS)} with --backend local, or run it on a cluster (--backend katib)",
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
                "algorithm `bayesianoptimization` runs locally with Optuna's GPSampler, which needs torch",
                hint="pip install torch (CPU is fine), or use algorithmName: tpe",
            ) from None


def _typed(param: Parameter, text: str) -> ParamValue:
    """Katib's value text as the trial gets it: ints and doubles as numbers, lists verbatim."""
    return (
        numeric_value(text, param.parameterType)
        if param.parameterType in ("int", "double")
        else text
    )


def grid_points(spec: LaunchSpec) -> list[dict[str, ParamValue]]:
    """The full grid, first parameter varying slowest."""
    names = [p.name for p in spec.parameters]
    axes = [[_typed(p, v) for v in grid_values(p)] for p in spec.parameters]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


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


def _int_setting(spec: LaunchSpec, name: str) -> int | None:
    value = spec.algorithm.setting(name)
    return int(value) if value is not None else None


def _sampler(spec: LaunchSpec) -> Any:
    import optuna

    name = spec.algorithm.algorithmName
    seed = _int_setting(spec, "random_state")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        kwargs: dict[str, Any] = {"seed": seed, "multivariate": name == "multivariate-tpe"}
        startup = _int_setting(spec, "n_startup_trials") or _int_setting(spec, "n_initial_points")
        if startup is not None:
            kwargs["n_startup_trials"] = startup
        candidates = _int_setting(spec, "n_ei_candidates") or _int_setting(spec, "n_EI_candidates")
        if candidates is not None:
            kwargs["n_ei_candidates"] = candidates
        return optuna.samplers.TPESampler(**kwargs)
    if name == "cmaes":
        sigma = spec.algorithm.setting("sigma")
        restart = spec.algorithm.setting("restart_strategy")
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            sigma0=float(sigma) if sigma else None,
            restart_strategy=None if restart in (None, "none") else restart,
        )
    if name == "sobol":
        return optuna.samplers.QMCSampler(qmc_type="sobol", seed=seed, scramble=seed is not None)
    if name == "bayesianoptimization":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=_int_setting(spec, "n_initial_points") or 10
        )
    raise SpecError(f"algorithm `{name}` has no local equivalent", hint="use tpe or random")


class Suggester:
    """Asks for the next parameters and learns from finished trials (ask/tell)."""

    def __init__(
        self, spec: LaunchSpec, history: Iterable[tuple[Mapping[str, Any], float | None]] = ()
    ) -> None:
        self.spec = spec
        self._grid: list[dict[str, ParamValue]] | None = None
        self._pending: dict[int, Any] = {}
        history = list(history)
        if spec.algorithm.algorithmName == "grid":
            done = [dict(params) for params, _ in history]
            self._grid = [point for point in grid_points(spec) if point not in done]
            return
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._study = optuna.create_study(direction=spec.objective.type, sampler=_sampler(spec))
        self._dists = _distributions(spec)
        for params, value in history:
            self._study.add_trial(
                optuna.trial.create_trial(
                    params=dict(params),
                    distributions=self._dists,
                    value=value,
                    state=optuna.trial.TrialState.COMPLETE
                    if value is not None
                    else optuna.trial.TrialState.FAIL,
                )
            )

    def ask(self) -> tuple[int, dict[str, ParamValue]] | None:
        """(handle, params) for the next trial, or None when the space is exhausted (grid)."""
        if self._grid is not None:
            if not self._grid:
                return None
            return -1, self._grid.pop(0)
        trial = self._study.ask(self._dists)
        self._pending[trial.number] = trial
        return trial.number, dict(trial.params)

    def enqueue(self, params: Mapping[str, Any]) -> int:
        """Run these parameters next (a killed trial's, again); returns the handle for `tell`."""
        if self._grid is not None:
            point = dict(params)
            if point in self._grid:
                self._grid.remove(point)
            return -1
        self._study.enqueue_trial(dict(params), skip_if_exists=False)
        trial = self._study.ask(self._dists)
        self._pending[trial.number] = trial
        return int(trial.number)

    def tell(self, handle: int, value: float | None) -> None:
        """Report a finished trial's objective (None = failed or no metric)."""
        trial = self._pending.pop(handle, None)
        if trial is None:
            return
        import optuna

        if value is None:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, value)
