"""Katib v0.19's hyperband suggestion service as arithmetic: brackets, resource values, limits.

Pure: standard library only, numbers in and numbers (or text) out. `spec` checks its rules at
load, `katib` writes the trial lines of `--dry-run`, `plan` explains the brackets.

Source: pkg/suggestion/v1beta1/hyperband/service.py at v0.19.0, whose expressions are copied
here on purpose (float `log` ratios truncated by `int()`, `ceil` of float products), so launch
gets the same numbers as the service, float rounding included:

- ValidateAlgorithmSettings: `r_l` and `resource_name` must be set, `r_l` a float >= 0, the
  resource parameter one of the Experiment's parameters, and `parallelTrialCount >=
  ceil(eta**s_max)` with `eta = int(float(eta))` (3 when absent or <= 0) and
  `s_max = int(log(r_l) / log(eta))`. `eta` 1 divides by log(1) = 0 there.
- HyperBandParam.convert: the bracket of `s` starts `n = ceil((s_max + 1) * eta**s / (s + 1))`
  configs at `r = r_l * eta**-s`; every later round keeps the best `ceil(n_i / eta)` at
  `int(r * eta**i)`. `r` goes back to the Suggestion's status as text and is read again with
  `int(float(...))`, so every round of a bracket scales the truncated `int(r)`.
- GetSuggestions overwrites `n` with the number of trials Katib asks for
  (`current_request_number`): the first round has as many configs as Katib asks for at once,
  i.e. `parallelTrialCount`, not `n`. A later round answers a request for `k` trials with
  `ceil(k / eta)` of them (none once the last bracket is done), and Katib's suggestion client
  refuses any reply whose length is not `k` ("The response contains unexpected trials"),
  forever. Only a request for one trial gets through: after the first round of
  `parallelTrialCount` configs, one more trial (the best config at `eta` times the resource)
  is all an Experiment can run. A round also waits until every trial of the round before it
  Succeeded ("There are some trials which are not completed yet"): a failed one stalls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

NAME = "hyperband"
DEFAULT_ETA = 3  # HyperBandParam() and ValidateAlgorithmSettings when `eta` is absent
SETTINGS = ("resource_name", "r_l", "eta")
REQUIRED_SETTINGS = ("resource_name", "r_l")
# What the service writes back into the Suggestion's status (HyperBandParam.generate) and reads
# again on each request (HyperBandParam.convert): a value in the spec replaces its bookkeeping.
STATE_SETTINGS = ("s_max", "b_l", "r", "n", "current_s", "current_i", "evaluating_trials")


@dataclass(frozen=True)
class Rung:
    """`trials` trials at resource value `resource`: round `index` of the bracket `bracket` (s)."""

    bracket: int
    index: int
    trials: int
    resource: int


@dataclass(frozen=True)
class Hyperband:
    """The settings of a hyperband Experiment (already checked: eta >= 2, r_l >= 1)."""

    resource_name: str
    r_l: float
    eta: int = DEFAULT_ETA

    @property
    def s_max(self) -> int:
        """The index of the first bracket: `int(log(r_l) / log(eta))`, as the service computes it
        (truncated, so float rounding can make it one less than floor(log_eta(r_l)))."""
        return int(math.log(self.r_l) / math.log(self.eta))

    @property
    def first_bracket(self) -> int:
        """Configs in the first bracket, the least parallelTrialCount Katib accepts."""
        size: int = self.eta**self.s_max  # Katib: ceil(eta**s_max); s_max >= 0 as r_l >= 1
        return size

    @property
    def max_extra_trials(self) -> int:
        """Trials an Experiment can run after its first round: one (the best config, one round
        up) when the first bracket has a second round, else none."""
        return 1 if self.s_max >= 1 else 0

    def resource(self, bracket: int, index: int) -> int:
        """The resource value of round `index` of bracket `bracket` (what the trial receives)."""
        eta = float(self.eta)  # HyperBandParam.convert reads eta with float()
        start = int(self.r_l * eta ** (-bracket))
        return int(start * eta**index)

    def brackets(self) -> list[list[Rung]]:
        """Every bracket's rounds as the service's formulas define them, s = s_max down to 0."""
        eta, s_max = float(self.eta), self.s_max
        out = []
        for s in range(s_max, -1, -1):
            n = math.ceil(float(s_max + 1) * (float(self.eta**s) / float(s + 1)))
            rungs = [Rung(s, 0, n, self.resource(s, 0))]
            for i in range(1, s + 1):
                kept = math.ceil(math.ceil(n * eta ** (-(i - 1))) / eta)
                rungs.append(Rung(s, i, kept, self.resource(s, i)))
            out.append(rungs)
        return out

    def runs(self, parallel: int, max_trials: int) -> list[Rung]:
        """The rounds an Experiment with these counts runs (see the module docstring)."""
        first = Rung(self.s_max, 0, parallel, self.resource(self.s_max, 0))
        if max_trials > parallel and self.max_extra_trials:
            return [first, Rung(self.s_max, 1, 1, self.resource(self.s_max, 1))]
        return [first]

    def stalled_reply(self, parallel: int, max_trials: int) -> tuple[int, int]:
        """(trials Katib asks for, trials the service answers) after the first round, for an
        Experiment with more than `parallel + max_extra_trials` trials."""
        asked = min(parallel, max_trials - parallel)
        if not self.max_extra_trials:
            return asked, 0  # the only bracket is done: the service returns nothing
        return asked, math.ceil(asked / self.eta)


def from_settings(settings: Mapping[str, str]) -> Hyperband | None:
    """The settings as a `Hyperband`, or None when they are missing or not usable numbers."""
    name, r_l, eta = (settings.get(key) for key in SETTINGS)
    try:
        r_l_value = float(r_l) if r_l is not None else math.nan
        eta_value = int(eta) if eta is not None else DEFAULT_ETA
    except ValueError:
        return None
    if not name or not math.isfinite(r_l_value) or r_l_value < 1 or eta_value < 2:
        return None
    return Hyperband(resource_name=name, r_l=r_l_value, eta=eta_value)


def _rounds(rungs: list[Rung], name: str) -> str:
    first, *rest = rungs
    text = f"{first.trials} config{'s' if first.trials != 1 else ''} at {name}={first.resource}"
    for rung in rest:
        text += f", the best {rung.trials} at {name}={rung.resource}"
    return text


def explain(hb: Hyperband, *, parallel: int, max_trials: int) -> list[str]:
    """What `launch render` and `--dry-run` print about the brackets (lines without `#`)."""
    name, s_max = hb.resource_name, hb.s_max
    brackets = hb.brackets()
    lines = [
        f"hyperband (Katib's suggestion service): eta={hb.eta}, r_l={hb.r_l:g}, resource {name}",
        f"  s_max = int(log(r_l)/log(eta)) = {s_max}: {len(brackets)} "
        f"bracket{'s' if len(brackets) != 1 else ''}; the first starts eta**s_max = "
        f"{hb.first_bracket} config{'s' if hb.first_bracket != 1 else ''}, so "
        f"parallelTrialCount >= {hb.first_bracket}",
    ]
    lines += [f"  bracket s={rungs[0].bracket}: {_rounds(rungs, name)}" for rungs in brackets]
    runs = hb.runs(parallel, max_trials)
    total = sum(rung.trials for rung in runs)
    lines.append(
        f"this Experiment (parallelTrialCount {parallel}, maxTrialCount {max_trials}) runs "
        f"{total} trial{'s' if total != 1 else ''}:"
    )
    lines.append(
        f"  {runs[0].trials} random config{'s' if runs[0].trials != 1 else ''} at "
        f"{name}={runs[0].resource} (bracket s={s_max}, round 0: Katib's service samples as many "
        "configs as parallelTrialCount)"
    )
    if len(runs) > 1:
        lines.append(
            f"  then the best of them again at {name}={runs[1].resource} (bracket s={s_max}, "
            "round 1)"
        )
    elif hb.max_extra_trials:
        lines.append(
            f"  (maxTrialCount {parallel + 1} would add the best of them at "
            f"{name}={hb.resource(s_max, 1)})"
        )
    if s_max >= 1:
        lines.append(
            "  Katib v0.19 gets no further: its service answers the next request with fewer "
            "trials than Katib asks for, and Katib refuses the reply (docs/search-yaml.md, "
            "hyperband)"
        )
    return lines
