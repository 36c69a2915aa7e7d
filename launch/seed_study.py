"""Seed studies of a search (`launch seeds EXP --top K --seeds N`): which configs to re-run, and
the study's trials read back as those configs.

`pick_top` ranks a finished search's configs by their mean objective (`stats.group_by_config`)
and keeps the best K, saying what it left out and how ties were broken; `expand_rows` turns a
Katib study's trials (a config number and a seed) back into the config's flags; `config_trials`
picks one config of a study (`launch compare STUDY:1 STUDY:2`). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from launch import stats
from launch.contract import ParamValue
from launch.errors import UsageError
from launch.results import Trial
from launch.spec import CONFIG_PARAM, Scalar
from launch.tables import param_text

# `EXP:N`: config N of the seed study EXP (experiment names never hold a colon).
_CONFIG_REF = re.compile(r"^(?P<name>[^:]+):(?P<number>[0-9]+)$")


@dataclass(frozen=True)
class Source:
    """What a study takes from its search's record (local, cluster and imported records say it
    differently): the command, commit, seed flag, GPUs per trial and where it ran."""

    command: tuple[str, ...]
    commit: str | None
    seed_flag: str
    gpus: int
    backend: str  # local or katib; an imported record says where it ran

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Source:
        ran_on = str(meta.get("ran_on") or meta.get("backend") or "local")
        return cls(
            command=tuple(str(w) for w in meta.get("command") or ()),
            commit=None if meta.get("commit") is None else str(meta["commit"]),
            seed_flag=str(meta.get("seed_flag") or "seed"),
            gpus=int(meta.get("gpus_per_trial") or meta.get("gpus") or 0),
            backend=ran_on if ran_on in ("local", "katib") else "local",
        )


@dataclass(frozen=True)
class Selection:
    """The K best configs of a search, best first, and what the choice left out."""

    source: str
    metric: str
    minimize: bool
    configs: tuple[Mapping[str, Scalar], ...]
    summaries: tuple[stats.ConfigSummary, ...]  # the chosen configs' results in the search
    ranked: int  # configs with at least one finished value (the candidates)
    without_value: int  # configs none of whose trials gave a finite value
    not_counted: Mapping[str, int] = field(default_factory=dict)  # trials, by status
    ties: tuple[str, ...] = ()  # how equal means at the cut were broken, in words
    resource: str = ""  # hyperband: only the trials of this resource value were ranked

    def notes(self) -> list[str]:
        """What a reader should know about the choice, as lines."""
        lines = []
        left = sum(self.not_counted.values())
        if left:
            by = ", ".join(f"{n} {status}" for status, n in sorted(self.not_counted.items()))
            lines.append(f"{left} trials of {self.source} had no finished value ({by}): not ranked")
        if self.without_value:
            lines.append(f"{self.without_value} configs without any finished value left out")
        if self.resource:
            lines.append(
                f"hyperband: ranked only the trials at the largest resource, {self.resource}"
            )
        lines.extend(self.ties)
        return lines

    def as_meta(self, *, seeds: Sequence[int], backend: str) -> dict[str, Any]:
        """What the study's record keeps about where its configs came from."""
        return {
            "source": self.source,
            "source_backend": backend,
            "top": len(self.configs),
            "seeds": list(seeds),
            "metric": self.metric,
            "ranked": self.ranked,
            "without_value": self.without_value,
            "not_counted": dict(self.not_counted),
            "ties": list(self.ties),
            "resource": self.resource,
            "configs": [
                {
                    "number": number,
                    "params": dict(config),
                    "source_mean": summary.mean,
                    "source_n": summary.n_succeeded,
                    "source_trials": list(summary.trials),
                }
                for number, (config, summary) in enumerate(
                    zip(self.configs, self.summaries, strict=True), 1
                )
            ],
        }


def pick_top(
    rows: Iterable[Trial],
    *,
    k: int,
    minimize: bool,
    seed_flag: str,
    objective_name: str,
    source: str,
) -> Selection:
    """The `k` best configs of `rows` by mean objective (over seeds, when the search had them).

    Trials that did not succeed with a finite value are not ranked (and counted); a config with
    no such trial is left out. Equal means keep search order (the config whose first trial came
    first wins), and a tie across the cut is said. UsageError when fewer than `k` configs (or
    none) have a value."""
    if k < 1:
        raise UsageError(f"--top {k}: expected 1 or more", hint="pass --top K with K >= 1")
    trials = list(rows)
    resource = ""
    if any(t.resource for t in trials):
        from launch.results import rank

        resource = rank(trials, minimize=minimize)[0].resource
        trials = [t for t in trials if t.resource == resource]
    groups = stats.group_by_config(
        trials, minimize=minimize, seed_flag=seed_flag, objective_name=objective_name
    )
    ranked = [g for g in groups if g.mean is not None]
    not_counted: dict[str, int] = {}
    for group in groups:
        for status, count in group.not_counted.items():
            not_counted[status] = not_counted.get(status, 0) + count
    if not ranked:
        by = ", ".join(f"{n} {s}" for s, n in sorted(not_counted.items())) or "none"
        raise UsageError(
            f"{source} has no trial with a value of its objective `{objective_name}` "
            f"({len(trials)} trials: {by})",
            hint=f"wait until trials finish (`launch watch {source}`), or see why they failed "
            f"(`launch logs {source}`)",
        )
    if k > len(ranked):
        raise UsageError(
            f"--top {k}: {source} has only {len(ranked)} configs with a finished value "
            f"({len(groups) - len(ranked)} without)",
            hint=f"pass --top {len(ranked)} or less (see `launch results {source}`)",
        )
    chosen = ranked[:k]
    return Selection(
        source=source,
        metric=objective_name,
        minimize=minimize,
        configs=tuple(_scalars(g.params) for g in chosen),
        summaries=tuple(chosen),
        ranked=len(ranked),
        without_value=len(groups) - len(ranked),
        not_counted=dict(sorted(not_counted.items())),
        ties=_ties(ranked, k),
        resource=resource,
    )


def _scalars(params: Mapping[str, ParamValue]) -> dict[str, Scalar]:
    return {name: value for name, value in params.items()}


def _ties(ranked: Sequence[stats.ConfigSummary], k: int) -> tuple[str, ...]:
    """Equal means among the chosen, or across the cut (the K-th equals the K+1-th)."""
    lines = []
    by_mean: dict[float, list[int]] = {}
    for index, summary in enumerate(ranked):
        assert summary.mean is not None
        by_mean.setdefault(summary.mean, []).append(index)
    for mean, places in by_mean.items():
        if len(places) < 2 or places[0] >= k:
            continue
        inside = [p + 1 for p in places if p < k]
        outside = [p + 1 for p in places if p >= k]
        text = f"tie: ranks {', '.join(map(str, inside + outside))} have the same mean {mean!r}"
        text += "; broken by search order (the config whose first trial came first ranks higher)"
        if outside:
            text += f"; rank {', '.join(map(str, outside))} left out by --top {k}"
        lines.append(text)
    return tuple(lines)


def expand_rows(
    rows: Iterable[Trial], configs: Sequence[Mapping[str, Scalar]], seed_flag: str
) -> list[Trial]:
    """A Katib study's rows with the config number (`CONFIG_PARAM`) replaced by the config's
    flags, then the seed: the params the program got, as the local backend records them. A row
    without a number (already expanded, or saved) is kept; an unknown number stays as it is."""
    out = []
    for row in rows:
        params = expand_params(row.params, configs)
        if params is None:
            out.append(row)
            continue
        if seed_flag in params:  # the seed last, as the trial's argv has it
            params[seed_flag] = params.pop(seed_flag)
        out.append(replace(row, params=params))
    return out


def expand_params(params: Mapping[str, ParamValue], configs: Sequence[Mapping[str, Scalar]]) -> Any:
    """A study trial's Katib params with the config number replaced by the config's flags (a
    new dict), or `params` itself when it has no known number."""
    config = _config(configs, params.get(CONFIG_PARAM))
    if config is None:
        return params
    out: dict[str, ParamValue] = dict(config)
    out.update({k: v for k, v in params.items() if k != CONFIG_PARAM})
    return out


def _config(
    configs: Sequence[Mapping[str, Scalar]], number: ParamValue | None
) -> Mapping[str, Scalar] | None:
    try:
        index = int(str(number))
    except ValueError:
        return None
    return configs[index - 1] if 1 <= index <= len(configs) else None


def config_number(params: Mapping[str, ParamValue], configs: Sequence[Mapping[str, Scalar]],
                  seed_flag: str) -> int | None:  # fmt: skip
    """Which config (1..K) a study trial ran, from its params; None for none of them."""
    key = stats.config_key(params, seed_flag)
    for number, config in enumerate(configs, 1):
        if stats.config_key(config, seed_flag) == key:
            return number
    return None


def parse_ref(text: str) -> tuple[str, int | None]:
    """`EXP` or `EXP:N` (config N of a seed study)."""
    match = _CONFIG_REF.match(text)
    if match is None:
        return text, None
    return match["name"], int(match["number"])


def config_trials(
    rows: Iterable[Trial],
    configs: Sequence[Mapping[str, Scalar]] | None,
    number: int,
    *,
    name: str,
    seed_flag: str,
) -> list[Trial]:
    """The trials of config `number` of the study `name`; UsageError when it has no such config."""
    if not configs:
        raise UsageError(
            f"{name}:{number}: {name} is not a seed study, so it has no numbered configs",
            hint=f"compare whole experiments (`launch compare A B`), or make a study: "
            f"`launch seeds {name} --top K --seeds N`",
        )
    if not 1 <= number <= len(configs):
        raise UsageError(
            f"{name}:{number}: {name} has configs 1 to {len(configs)}",
            hint=f"see them with `launch results {name}`",
        )
    key = stats.config_key(configs[number - 1], seed_flag)
    return [r for r in rows if stats.config_key(r.params, seed_flag) == key]


def config_label(config: Mapping[str, Scalar]) -> str:
    return " ".join(f"{k}={param_text(v)}" for k, v in config.items()) or "(no flags)"


def describe(selection: Selection, *, seeds: int, backend: str) -> list[str]:
    """The plan of a study in words: which configs, how they ranked, how many trials."""
    direction = "lowest" if selection.minimize else "highest"
    lines = [
        f"seed study of {selection.source}: its {len(selection.configs)} best configs by mean "
        f"{selection.metric} ({direction} first) x {seeds} seeds = "
        f"{len(selection.configs) * seeds} trials on {backend}"
    ]
    for number, (config, summary) in enumerate(
        zip(selection.configs, selection.summaries, strict=True), 1
    ):
        mean = "" if summary.mean is None else f"{summary.mean:.6g}"
        lines.append(
            f"  config {number}: {config_label(config)} "
            f"({selection.metric} {mean}, n={summary.n_succeeded} in {selection.source})"
        )
    return lines + [f"note: {line}" for line in selection.notes()]
