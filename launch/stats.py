"""Seed-sweep statistics: trials grouped by config, distributions, Welch's test, rerun commands.

Pure and standard library only (no numpy/scipy at run time): the Student t distribution is
computed here from the regularized incomplete beta function (Lentz continued fraction) and
inverted by safeguarded Newton steps; within ~1e-9 (relative) of scipy for df from 0.5 to 10^7.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shlex
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

from launch.results import ParamValue, Trial, format_number, json_lines_array

SUCCEEDED = "Succeeded"
NON_FINITE = "NonFinite"  # a Succeeded trial whose value is NaN or +-inf: counted, not averaged
MISSING = "Missing"  # a Succeeded trial without the requested --metric
CONFIDENCE = 0.95

ConfigKey = tuple[tuple[str, str], ...]

# --------------------------------------------------------------------------- t distribution

_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz); converges fast for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    max_iter = 1000 + 20 * int(math.sqrt(max(a, b)))
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            h *= step
        if abs(step - 1.0) < _EPS:
            return h
    return h  # pragma: no cover - not reached for the parameters used here


def _stirling_tail(x: float) -> float:
    return 1.0 / (12.0 * x) - 1.0 / (360.0 * x**3) + 1.0 / (1260.0 * x**5)


def _lgamma_ratio(a: float, b: float) -> float:
    """log(Gamma(a + b) / Gamma(a)) without the cancellation of two huge lgamma values."""
    if a < 1e3:
        return math.lgamma(a + b) - math.lgamma(a)
    # Stirling's series for both, with log(a + b) = log(a) + log1p(b / a).
    return (
        b * math.log(a)
        + (a + b - 0.5) * math.log1p(b / a)
        - b
        + _stirling_tail(a + b)
        - _stirling_tail(a)
    )


def betainc(a: float, b: float, x: float, y: float | None = None) -> float:
    """Regularized incomplete beta I_x(a, b); `y` = 1 - x when the caller knows it more exactly."""
    y = 1.0 - x if y is None else y
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    big, small = (a, b) if a >= b else (b, a)
    log_front = _lgamma_ratio(big, small) - math.lgamma(small) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T| > |t|) of Student's t with `df` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    # x = df / (df + t^2) and 1 - x, both without cancellation.
    return betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` (> 0, may be fractional) degrees of freedom."""
    tail = t_sf2(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    log_pdf = (
        _lgamma_ratio(df / 2.0, 0.5)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def _hill_guess(z: float, df: float) -> float:
    """Cornish-Fisher expansion of the t quantile around the normal one (A&S 26.7.5)."""
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@lru_cache(maxsize=4096)
def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom (inverse of `t_cdf`)."""
    if not 0.0 < q < 1.0 or not df > 0:
        raise ValueError(f"t_ppf needs 0 < q < 1 and df > 0, got q={q}, df={df}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    target = 2.0 * (1.0 - q)  # two-sided tail beyond the answer; exact for q >= 0.5
    z = statistics.NormalDist().inv_cdf(q)
    if df > 1e7:
        return _hill_guess(z, df)  # the next term is O(df^-5): far below double precision
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > target:
        lo, hi = hi, hi * 4.0
    t = _hill_guess(z, df)
    if not lo < t < hi:
        t = (lo + hi) / 2.0
    for _ in range(200):
        gap = t_sf2(t, df) - target  # decreasing in t
        if gap > 0:
            lo = t
        else:
            hi = t
        # d/dt of the two-sided tail is -2 pdf(t).
        new = t + gap / (2.0 * _t_pdf(t, df))
        if not lo < new < hi:
            new = (lo + hi) / 2.0
        if abs(new - t) <= 1e-14 * max(1.0, abs(t)) or hi - lo <= 1e-15 * hi:
            return new
        t = new
    return t  # pragma: no cover


# --------------------------------------------------------------------------- grouping


def _param_text(value: ParamValue) -> str:
    """A value as the trial's program sees it (same text as `katib.format_value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def config_key(params: Mapping[str, ParamValue], seed_flag: str = "seed") -> ConfigKey:
    """All params except the seed flag, as sorted `(name, text)` pairs: equal configs, equal keys.

    Values compare as the program sees them (`0.1` and `"0.1"` are one config).
    """
    return tuple(sorted((k, _param_text(v)) for k, v in params.items() if k != seed_flag))


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
        return " ".join(f"{k}={_param_text(v)}" for k, v in self.params.items()) or "(all trials)"

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


# --------------------------------------------------------------------------- table, CSV, JSON


def _seeds_text(seeds: Sequence[ParamValue]) -> str:
    """`0-9` for a run of consecutive ints, else a comma list (shortened past 8)."""
    if not seeds:
        return ""
    ints = [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)]
    if len(ints) == len(seeds) and len(ints) > 2:
        ordered = sorted(ints)
        if ordered == list(range(ordered[0], ordered[-1] + 1)):
            return f"{ordered[0]}-{ordered[-1]}"
    texts = [_param_text(s) for s in seeds]
    return ",".join(texts) if len(texts) <= 8 else ",".join(texts[:8]) + f",... ({len(texts)})"


def not_counted_text(summary: ConfigSummary) -> str:
    """`2 Failed, 1 MetricsUnavailable`, or empty."""
    return ", ".join(f"{n} {status}" for status, n in summary.not_counted.items())


def _param_names(summaries: Sequence[ConfigSummary]) -> list[str]:
    names: list[str] = []
    for s in summaries:
        names.extend(n for n in s.params if n not in names)
    return names


def _param_cells(s: ConfigSummary, names: Sequence[str], exact: bool = True) -> list[str]:
    """Param values as the program sees them, or (`exact=False`, for people) floats to 6 digits."""
    cells = []
    for p in names:
        value = s.params.get(p)
        if value is None:
            cells.append("")
        elif not exact and isinstance(value, float):
            cells.append(format_number(value))
        else:
            cells.append(_param_text(value))
    return cells


def to_table_rows(summaries: Sequence[ConfigSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows for people: `n` as `8/10`, the CI as `[lo, hi]`, failures spelled out."""
    names = _param_names(summaries)
    metric = summaries[0].metric if summaries else "objective"
    header = [
        "rank",
        *names,
        "n",
        f"{metric} mean",
        "std",
        "95% CI",
        "min",
        "median",
        "max",
        "not counted",
        "seeds",
    ]
    rows = []
    for i, s in enumerate(summaries, 1):
        ci = "" if s.ci_lo is None else f"[{format_number(s.ci_lo)}, {format_number(s.ci_hi)}]"
        rows.append(
            [
                str(i),
                *_param_cells(s, names, exact=False),
                f"{s.n_succeeded}/{s.n_total}",
                format_number(s.mean),
                format_number(s.std),
                ci,
                format_number(s.min),
                format_number(s.median),
                format_number(s.max),
                not_counted_text(s),
                _seeds_text(s.seeds),
            ]
        )
    return header, rows


def to_rows(summaries: Sequence[ConfigSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows for machines (CSV): one value per column, a column per status."""
    names = _param_names(summaries)
    statuses: list[str] = []
    for s in summaries:
        statuses.extend(k for k in s.not_counted if k not in statuses)
    header = [
        "rank",
        *names,
        "metric",
        "n_succeeded",
        "n_total",
        "mean",
        "std",
        "ci95_lo",
        "ci95_hi",
        "min",
        "median",
        "max",
        *(f"n_{status}" for status in statuses),
        "seeds",
    ]
    rows = []
    for i, s in enumerate(summaries, 1):
        rows.append(
            [
                str(i),
                *_param_cells(s, names),
                s.metric,
                str(s.n_succeeded),
                str(s.n_total),
                *(
                    format_number(v)
                    for v in (s.mean, s.std, s.ci_lo, s.ci_hi, s.min, s.median, s.max)
                ),
                *(str(s.not_counted.get(status, 0)) for status in statuses),
                " ".join(_param_text(seed) for seed in s.seeds),
            ]
        )
    return header, rows


_NUMBERS = re.compile(
    r"(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)|\d+/\d+)"
    r"(?:\n(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)|\d+/\d+))*"
)


def _numeric_column(cells: Sequence[str]) -> bool:
    """Every non-empty cell a number or a count like `8/10`: one regex pass (C speed) over the
    column; `_numeric` decides for anything the pattern does not cover (`1_000`, `Infinity`)."""
    filled = [cell for cell in cells if cell]
    return bool(_NUMBERS.fullmatch("\n".join(filled))) or all(_numeric(c) for c in filled)


def _numeric(cell: str) -> bool:
    """A number, or a count like `8/10`."""
    try:
        float(cell)
    except ValueError:
        head, _, tail = cell.partition("/")
        return head.isdigit() and tail.isdigit()
    return True


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, gap: str = "  ") -> str:
    """A plain aligned text table (numbers right-aligned), linear in the number of rows.

    For large outputs, where rendering through rich costs ~1 ms a row: column by column with
    builtins, then one format string per row (C-level padding).
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    widths = [
        max(len(h), max(map(len, col), default=0)) for h, col in zip(header, columns, strict=True)
    ]
    numeric = [_numeric_column(col) for col in columns]
    fmt = gap.join(f"{{:{'>' if num else '<'}{w}}}" for w, num in zip(widths, numeric, strict=True))
    lines = [fmt.format(*row).rstrip() for row in (header, *rows)]
    return "\n".join(lines) + "\n"


def to_csv(summaries: Sequence[ConfigSummary]) -> str:
    header, rows = to_rows(summaries)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


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


def to_json(summaries: Sequence[ConfigSummary]) -> str:
    return json_lines_array(_summary_dict(s) for s in summaries)


def from_json(text: str) -> list[ConfigSummary]:
    out = []
    for item in json.loads(text):
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


def comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """A small table: one row per experiment, then the difference."""
    header = ["", "n", f"{c.metric} mean", "difference (B - A)", "95% CI", "p"]
    ci = "" if c.ci_lo is None else f"[{format_number(c.ci_lo)}, {format_number(c.ci_hi)}]"
    rows = [
        [f"A: {c.name_a}", str(c.n_a), format_number(c.mean_a), "", "", ""],
        [f"B: {c.name_b}", str(c.n_b), format_number(c.mean_b), "", "", ""],
        ["B - A", "", "", format_number(c.diff), ci, "" if c.p is None else f"{c.p:.3g}"],
    ]
    return header, rows


def comparison_to_json(c: Comparison) -> str:
    return json.dumps(asdict(c), indent=2)


def comparison_from_json(text: str) -> Comparison:
    return Comparison(**json.loads(text))


# --------------------------------------------------------------------------- rerun


def rerun_command(
    trial: Trial,
    *,
    command: Sequence[str],
    fixed: Mapping[str, ParamValue] | None = None,
    image: str | None = None,
    commit: str | None = None,
    repo_root: str | None = None,
    subdir: str = "",
    tensorboard_dir: str | None = None,
    gpus: int = 0,
    scratch: str = "",
    argv: Sequence[str] | None = None,
) -> str:
    """A copy-paste shell command that reruns one trial with its exact argv.

    With `image` (a cluster trial; pass `name@sha256:...`): `docker run --rm IMAGE sh -c '...'`,
    run from `subdir` of the image's WORKDIR, TensorBoard files to Katib's directory.
    Otherwise (local): a fresh `git worktree` of `commit` from `repo_root` (when both are given),
    `cd` into `subdir`, then the argv; TensorBoard files go to `tensorboard_dir`. `scratch`
    tells reruns of one trial apart (`/tmp/launch-rerun/<trial><scratch>`). `argv`: the argv
    the trial ran with, when recorded (local journal), reused with only its TensorBoard dir
    changed.
    """
    from launch import katib  # lazy: katib pulls in yaml and the spec model

    fixed = dict(fixed or {})
    params = katib.merge_params(fixed, trial.params)
    if image is not None:
        argv = katib.trial_argv(command, params, tensorboard_dir or katib.TFEVENT_DIR)
        inner = shlex.join(argv)
        if subdir:
            inner = f"cd {shlex.quote(subdir)} && {inner}"
        gpu = f" --gpus {gpus}" if gpus else ""
        return f"docker run --rm{gpu} {shlex.quote(image)} sh -c {shlex.quote(inner)}"
    rerun_dir = f"/tmp/launch-rerun/{trial.name}{scratch}"
    tb_flag = f"--tensorboard_dir={tensorboard_dir or f'{rerun_dir}/tfevent'}"
    if argv:
        argv = [tb_flag if a.startswith("--tensorboard_dir=") else a for a in argv]
    else:
        argv = [*katib.trial_argv(command, params, "")[:-1], tb_flag]
    steps = []
    if commit and repo_root:
        worktree = f"{rerun_dir}/worktree"
        steps.append(
            f"git -C {shlex.quote(repo_root)} worktree add --detach "
            f"{shlex.quote(worktree)} {shlex.quote(commit)}"
        )
        workdir = f"{worktree}/{subdir}" if subdir else worktree
        steps.append(f"cd {shlex.quote(workdir)}")
    elif repo_root:
        steps.append(f"cd {shlex.quote(f'{repo_root}/{subdir}' if subdir else repo_root)}")
    steps.append(shlex.join(argv))
    return " && ".join(steps)
