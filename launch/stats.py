"""Seed-sweep statistics: trials grouped by config, distributions, Welch's test.

Per config (all params but the seed): n, mean, sample std, 95% t confidence interval of the
mean, min/median/max (`group_by_config`); two experiments' best configs compared by Welch's
unequal-variance t-test (`compare_trials`); both as JSON. Pure and standard library only (no
numpy/scipy at run time): the t distribution is `launch.student_t`'s. Rendering as text tables
and CSV is `launch.tables`'.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from launch.contract import ParamValue
from launch.events import TrialStatus
from launch.results import Trial, json_lines_array
from launch.student_t import t_ppf, t_sf2

# Rendering is launch.tables'; all but param_text are re-exported for the modules that still
# import them from here (cli, plots, bench/results_scale.py).
from launch.tables import param_text

__all__ = [
    "CONFIDENCE",
    "MISSING",
    "NON_FINITE",
    "SUCCEEDED",
    "Comparison",
    "ConfigKey",
    "ConfigSummary",
    "compare_trials",
    "comparison_from_json",
    "comparison_to_json",
    "config_key",
    "from_json",
    "group_by_config",
    "has_seed_axis",
    "mean_ci",
    "rank_summaries",
    "summarize",
    "to_json",
    "welch",
]

SUCCEEDED = TrialStatus.SUCCEEDED
NON_FINITE = "NonFinite"  # a Succeeded trial whose value is NaN or +-inf: counted, not averaged
MISSING = "Missing"  # a Succeeded trial without the requested --metric
CONFIDENCE = 0.95

ConfigKey = tuple[tuple[str, str], ...]

# --------------------------------------------------------------------------- grouping


def config_key(params: Mapping[str, ParamValue], seed_flag: str = "seed") -> ConfigKey:
    """All params except the seed flag, as sorted `(name, text)` pairs: equal configs, equal keys.

    Values compare as the program sees them (`0.1` and `"0.1"` are one config).
    """
    return tuple(sorted((k, param_text(v)) for k, v in params.items() if k != seed_flag))


@dataclass(frozen=True)
class ConfigSummary:
    """The distribution of one config's objective (or `metric`) over its seeds."""

    params: Mapping[str, ParamValue]  # without the seed flag
    metric: str
    n_total: int
    n_succeeded: int  # Succeeded with a finite value: the ones the statistics use
    not_counted: Mapping[str, int]  # trials left out of the statistics, by status
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1); None below 2 values
    ci_lo: float | None  # 95% CI of the mean (t distribution); None below 2 values
    ci_hi: float | None
    min: float | None
    median: float | None
    max: float | None
    seeds: tuple[ParamValue, ...] = ()
    values: tuple[float, ...] = ()  # the values used, by trial number
    trials: tuple[int, ...] = ()  # every trial number of this config
    failed_trials: tuple[int, ...] = field(default=())  # trial numbers in `not_counted`

    @property
    def label(self) -> str:
        """`lr=0.01 layers=2`, or `(all trials)` when only the seed varies."""
        return " ".join(f"{k}={param_text(v)}" for k, v in self.params.items()) or "(all trials)"

    @property
    def n_not_counted(self) -> int:
        return sum(self.not_counted.values())


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample variance (ddof=1), two-pass with fsum: accurate and much faster than the
    exact-fraction arithmetic of `statistics.variance`."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((x - mean) ** 2 for x in values) / (n - 1) if n > 1 else math.nan
    return mean, var


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Two-sided t confidence interval of the mean; None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    return _ci(*_mean_var(values), n, confidence)


def _ci(mean: float, var: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * math.sqrt(var / n)
    return mean - half, mean + half


def summarize(
    params: Mapping[str, ParamValue],
    trials: Sequence[Trial],
    *,
    metric: str,
    use_objective: bool = True,
    seed_flag: str = "seed",
) -> ConfigSummary:
    """One config's summary from its trials (any order)."""
    ordered = sorted(trials, key=lambda t: t.number)
    values: list[float] = []
    not_counted: dict[str, int] = {}
    failed: list[int] = []
    for trial in ordered:
        value = trial.objective if use_objective else trial.metrics.get(metric)
        if trial.status != SUCCEEDED:
            why = trial.status
        elif value is None:
            why = MISSING
        elif not math.isfinite(value):
            why = NON_FINITE
        else:
            values.append(float(value))
            continue
        not_counted[why] = not_counted.get(why, 0) + 1
        failed.append(trial.number)
    n = len(values)
    mean, var = _mean_var(values) if n else (math.nan, math.nan)
    ci = _ci(mean, var, n) if n >= 2 else None
    seeds = tuple(t.params[seed_flag] for t in ordered if seed_flag in t.params)
    return ConfigSummary(
        params=dict(params),
        metric=metric,
        n_total=len(ordered),
        n_succeeded=n,
        not_counted=dict(sorted(not_counted.items())),
        mean=mean if n else None,
        std=math.sqrt(var) if n >= 2 else None,
        ci_lo=None if ci is None else ci[0],
        ci_hi=None if ci is None else ci[1],
        min=min(values) if n else None,
        median=statistics.median(values) if n else None,
        max=max(values) if n else None,
        seeds=seeds,
        values=tuple(values),
        trials=tuple(t.number for t in ordered),
        failed_trials=tuple(failed),
    )


def group_by_config(
    trials: Iterable[Trial],
    *,
    minimize: bool,
    seed_flag: str = "seed",
    metric: str | None = None,
    objective_name: str = "objective",
) -> list[ConfigSummary]:
    """Trials grouped by config (all params but `seed_flag`), ranked by mean, best first.

    `metric=None` summarizes the objective (`Trial.objective`, named `objective_name`); otherwise
    `Trial.metrics[metric]`. Configs without a finished value come last, by first trial number.
    """
    groups: dict[ConfigKey, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(config_key(trial.params, seed_flag), []).append(trial)
    summaries = []
    for members in groups.values():
        first = min(members, key=lambda t: t.number)
        params = {k: v for k, v in first.params.items() if k != seed_flag}
        summaries.append(
            summarize(
                params,
                members,
                metric=objective_name if metric is None else metric,
                use_objective=metric is None,
                seed_flag=seed_flag,
            )
        )
    return rank_summaries(summaries, minimize=minimize)


def rank_summaries(summaries: Iterable[ConfigSummary], *, minimize: bool) -> list[ConfigSummary]:
    """Best mean first; then configs without a mean, by their first trial number."""
    sign = 1.0 if minimize else -1.0

    def key(s: ConfigSummary) -> tuple[int, float, int]:
        first = min(s.trials, default=0)
        return (0, sign * s.mean, first) if s.mean is not None else (1, 0.0, first)

    return sorted(summaries, key=key)


def has_seed_axis(trials: Iterable[Trial], seed_flag: str = "seed") -> bool:
    """True when some config ran more than once (a seed sweep): show the grouped table."""
    seen: set[ConfigKey] = set()
    for trial in trials:
        if seed_flag not in trial.params:
            continue
        key = config_key(trial.params, seed_flag)
        if key in seen:
            return True
        seen.add(key)
    return False


# --------------------------------------------------------------------------- JSON


def _summary_dict(s: ConfigSummary) -> dict[str, Any]:
    # Field by field: dataclasses.asdict deep-copies recursively and dominates at 10k trials.
    return {
        **{f.name: getattr(s, f.name) for f in fields(ConfigSummary)},
        "params": dict(s.params),
        "not_counted": dict(s.not_counted),
        "seeds": list(s.seeds),
        "values": list(s.values),
        "trials": list(s.trials),
        "failed_trials": list(s.failed_trials),
    }


def to_json(
    summaries: Sequence[ConfigSummary], extra: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The summaries as a JSON array; `extra[i]` adds keys to item i (a study's `config`)."""
    if extra is None:
        return json_lines_array(_summary_dict(s) for s in summaries)
    return json_lines_array(
        {**_summary_dict(s), **more} for s, more in zip(summaries, extra, strict=True)
    )


def from_json(text: str) -> list[ConfigSummary]:
    out = []
    names = {f.name for f in fields(ConfigSummary)}
    for item in json.loads(text):
        item = {k: v for k, v in item.items() if k in names}  # keys `to_json(extra=)` added
        for name in ("seeds", "values", "trials", "failed_trials"):
            item[name] = tuple(item.get(name, ()))
        out.append(ConfigSummary(**item))
    return out


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Comparison:
    """B versus A on one metric: Welch's t-test and the difference of means (B - A)."""

    metric: str
    minimize: bool
    name_a: str
    name_b: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None  # mean_b - mean_a
    ci_lo: float | None  # 95% CI of the difference (Welch-Satterthwaite df)
    ci_hi: float | None
    t: float | None
    df: float | None
    p: float | None  # two-sided
    better: str | None  # name_a, name_b, or None (no significant difference / not enough data)
    verdict: str


def _p_text(p: float) -> str:
    return "p<1e-6" if p < 1e-6 else f"p={p:.2g}" if p < 0.01 else f"p={p:.2f}"


def welch(
    a: Sequence[float],
    b: Sequence[float],
    *,
    minimize: bool,
    metric: str = "objective",
    name_a: str = "A",
    name_b: str = "B",
    alpha: float = 1.0 - CONFIDENCE,
) -> Comparison:
    """Welch's unequal-variance t-test of B against A; the verdict respects the direction."""
    na, nb = len(a), len(b)
    mean_a, var_a = _mean_var(a) if na else (None, math.nan)
    mean_b, var_b = _mean_var(b) if nb else (None, math.nan)
    diff = None if mean_a is None or mean_b is None else mean_b - mean_a
    base = Comparison(
        metric=metric,
        minimize=minimize,
        name_a=name_a,
        name_b=name_b,
        n_a=na,
        n_b=nb,
        mean_a=mean_a,
        mean_b=mean_b,
        diff=diff,
        ci_lo=None,
        ci_hi=None,
        t=None,
        df=None,
        p=None,
        better=None,
        verdict=(
            f"not enough finished trials to compare ({name_a}: {na}, {name_b}: {nb}; "
            "need at least 2 each)"
        ),
    )
    if diff is None or na < 2 or nb < 2:
        return base
    va, vb = var_a / na, var_b / nb
    se2 = va + vb
    if se2 == 0.0:
        # Both samples constant: either identical or certainly different.
        df = float(na + nb - 2)
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p = 1.0 if diff == 0 else 0.0
        lo = hi = diff
    else:
        se = math.sqrt(se2)
        df = se2 * se2 / (va * va / (na - 1) + vb * vb / (nb - 1))
        t = diff / se
        p = t_sf2(t, df)
        half = t_ppf(1.0 - alpha / 2.0, df) * se
        lo, hi = diff - half, diff + half
    better: str | None = None
    direction = "lower" if minimize else "higher"
    if p < alpha and diff != 0:
        b_wins = diff < 0 if minimize else diff > 0
        better = name_b if b_wins else name_a
        worse = name_a if b_wins else name_b
        verdict = f"{better} is better than {worse} ({_p_text(p)}; {direction} {metric} is better)"
    else:
        verdict = f"no significant difference between {name_a} and {name_b} ({_p_text(p)})"
    return replace(base, ci_lo=lo, ci_hi=hi, t=t, df=df, p=p, better=better, verdict=verdict)


def compare_trials(
    trials_a: Iterable[Trial],
    trials_b: Iterable[Trial],
    *,
    minimize: bool,
    seed_flag: str = "seed",
    metric: str | None = None,
    objective_name: str = "objective",
    name_a: str = "A",
    name_b: str = "B",
) -> tuple[Comparison, ConfigSummary | None, ConfigSummary | None]:
    """`launch compare A B`: each experiment's best config (by mean), compared with `welch`.

    Returns the comparison and the two configs it used (None for an experiment with no trials).
    """
    groups_a = group_by_config(
        trials_a,
        minimize=minimize,
        seed_flag=seed_flag,
        metric=metric,
        objective_name=objective_name,
    )
    groups_b = group_by_config(
        trials_b,
        minimize=minimize,
        seed_flag=seed_flag,
        metric=metric,
        objective_name=objective_name,
    )
    best_a = groups_a[0] if groups_a else None
    best_b = groups_b[0] if groups_b else None
    comparison = welch(
        best_a.values if best_a else (),
        best_b.values if best_b else (),
        minimize=minimize,
        metric=objective_name if metric is None else metric,
        name_a=name_a,
        name_b=name_b,
    )
    return comparison, best_a, best_b


def comparison_to_json(c: Comparison) -> str:
    return json.dumps(asdict(c), indent=2)


def comparison_from_json(text: str) -> Comparison:
    return Comparison(**json.loads(text))


# --------------------------------------------------------------------------- rerun
