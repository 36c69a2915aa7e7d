"""Katib's algorithm names, which suggestion service runs each, and their algorithmSettings checks."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

from launch.spec.limits import MAX_EI_CANDIDATES, MAX_NUMBER_CHARS, MAX_SEED
from launch.spec.models import Algorithm
from launch.spec.source import SpecSource
from launch.spec.values import _DECIMAL_RE, _INT_RE, _short

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
