"""Hyperband rules: what Katib v0.19's hyperband suggestion service checks when it starts, or trips
over at run time (pkg/suggestion/v1beta1/hyperband/service.py; the arithmetic, and why an
Experiment can run no more than its first round plus one trial, is in launch/hyperband.py).
"""

from __future__ import annotations

import difflib
import math

from launch import hyperband
from launch.spec.counts import hyperband_of, resolve_counts
from launch.spec.limits import MAX_COUNT
from launch.spec.models import Algorithm, LaunchSpec, Parameter
from launch.spec.source import Path, SpecSource
from launch.spec.values import _INT_RE, _short

_HYPERBAND_EXAMPLE = (
    "add `algorithmSettings: [{name: resource_name, value: num_epochs}, {name: r_l, value: "
    '"9"}, {name: eta, value: "3"}]` (resource_name: the parameter hyperband sets, e.g. the '
    "epochs; r_l: its value in the last round; eta: keep the best 1/eta of each round)"
)


def _setting_path(algorithm: Algorithm, name: str) -> Path:
    for index, setting in enumerate(algorithm.algorithmSettings):
        if setting.name == name:
            return ("algorithm", "algorithmSettings", index, "value")
    return ("algorithm", "algorithmSettings")


def _check_hyperband_settings(algorithm: Algorithm, source: SpecSource) -> None:
    """Before the generic setting checks: the service's own state names, the required names."""
    for index, setting in enumerate(algorithm.algorithmSettings):
        if setting.name in hyperband.STATE_SETTINGS:
            raise source.error(
                ("algorithm", "algorithmSettings", index, "name"),
                f"`{setting.name}` is hyperband's own state: Katib's service writes it back after "
                "every suggestion and reads it again, so a value here replaces its bookkeeping",
                hint="remove it: hyperband takes resource_name, r_l and eta",
            )
    missing = [name for name in hyperband.REQUIRED_SETTINGS if algorithm.setting(name) is None]
    if missing:
        raise source.error(
            ("algorithm", "algorithmSettings"),
            f"hyperband needs the setting{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)}: Katib's service fails the Experiment without "
            f"{'them' if len(missing) > 1 else 'it'} (`r_l and resource_name must be set.`)",
            hint=_HYPERBAND_EXAMPLE,
        )


def _hyperband_seeds(spec: LaunchSpec) -> tuple[str, str]:
    """(message, hint) refusing seeds with hyperband."""
    name = spec.algorithm.setting("resource_name") or "the resource"
    return (
        "seeds with algorithm hyperband cannot be one Katib Experiment: its service samples every "
        f"parameter itself and promotes single trials to more {name}, so no config runs once "
        "per seed",
        "remove seeds; to see the spread of the best config, put its values under `fixed:` and "
        "run a seed sweep (`--seeds N`, no parameters)",
    )


def _check_hyperband(spec: LaunchSpec, source: SpecSource) -> None:
    """The resource parameter, the other parameters, the counts and the resource values."""
    hb = hyperband_of(spec)
    assert hb is not None, "settings are checked first"
    algorithm = spec.algorithm
    if spec.seeds is not None:
        raise source.error(("seeds",), *_hyperband_seeds(spec))
    name = hb.resource_name
    index = next((i for i, p in enumerate(spec.parameters) if p.name == name), None)
    if index is None:
        if name in spec.fixed:
            raise source.error(
                ("fixed", name),
                f"`{name}` is hyperband's resource_name, so hyperband sets it for each trial: it "
                "cannot be fixed",
                hint=f"move it to parameters: `- {{name: {name}, parameterType: int, "
                f"feasibleSpace: {{min: 1, max: {math.floor(hb.r_l)}}}}}`",
            )
        names = [p.name for p in spec.parameters]
        close = difflib.get_close_matches(name, names, n=1)
        raise source.error(
            _setting_path(algorithm, "resource_name"),
            f"resource_name `{_short(name)}` names no parameter (Katib: `value of resource_name "
            "setting must be in parameters.`)",
            hint=f"did you mean `{close[0]}`?"
            if close
            else f"add `{_short(name)}` to parameters as an int (e.g. the number of epochs)",
        )
    param = spec.parameters[index]
    at: Path = ("parameters", index)
    if param.parameterType not in ("int", "double"):
        raise source.error(
            (*at, "parameterType"),
            f"hyperband gives its resource `{name}` whole numbers (int(r_l * eta**-s)), so it "
            f"must be int or double, not {param.parameterType}",
            hint="use parameterType: int with feasibleSpace min/max",
        )
    if len(spec.parameters) == 1:
        raise source.error(
            ("parameters",),
            f"nothing to search besides `{name}`, which hyperband sets itself: every trial would "
            "train the same config",
            hint="add the hyperparameters to compare (e.g. lr) under parameters",
        )
    for other, item in enumerate(spec.parameters):
        if other != index:
            _check_hyperband_parameter(item, source, ("parameters", other))
    r_l_at = _setting_path(algorithm, "r_l")
    if hb.first_bracket > MAX_COUNT:
        raise source.error(
            r_l_at,
            f"r_l {hb.r_l:g} with eta {hb.eta} makes a first bracket of eta**s_max = "
            f"{hb.eta}**{hb.s_max} configs, more than Katib's parallelTrialCount can hold",
            hint="lower r_l or raise eta",
        )
    _check_hyperband_counts(spec, hb, source)
    counts = resolve_counts(spec)
    values = [rung.resource for rung in hb.runs(counts.parallel, counts.max_trials)]
    if values[0] < 1:
        raise source.error(
            r_l_at,
            f"r_l {_short(algorithm.setting('r_l') or '')} with eta {hb.eta} gives the first "
            f"round {name}={values[0]} (int(r_l * eta**-s_max) rounds down)",
            hint=f"use a whole r_l such as {round(hb.r_l)}",
        )
    space = param.feasibleSpace
    assert space.min is not None and space.max is not None
    low, high = float(space.min), float(space.max)
    if low < high and (low > min(values) or high < max(values)):
        shown = ", then ".join(str(v) for v in values)
        raise source.error(
            (*at, "feasibleSpace", "min" if low > min(values) else "max"),
            f"hyperband sets `{name}` itself ({shown}), outside feasibleSpace "
            f"{space.min}..{space.max}: the range does not limit it",
            hint=f"write min: {min(values)} and max: {max(values)}, or min = max (Katib "
            "ignores the range of the resource parameter)",
        )


def _check_hyperband_parameter(param: Parameter, source: SpecSource, where: Path) -> None:
    """A parameter hyperband samples: np.random.uniform over min..max (parsing_util.py)."""
    space = param.feasibleSpace
    at = (*where, "feasibleSpace")
    if param.parameterType == "discrete":
        for position, item in enumerate(space.list or ()):
            if not _INT_RE.match(item):
                # parse_parameter_configs: `[int(x) for x in feasible_space.list]`
                raise source.error(
                    (*at, "list", position),
                    f"Katib's hyperband service reads discrete values with int(), which fails on "
                    f"{item!r}: the Experiment would get no trial",
                    hint="use whole numbers, or parameterType: double (min/max) or categorical",
                )
    if param.parameterType not in ("int", "double"):
        return
    if space.distribution not in (None, "uniform"):
        raise source.error(
            (*at, "distribution"),
            f"hyperband samples every parameter uniformly and ignores distribution "
            f"{space.distribution}",
            hint="remove `distribution`, or use algorithmName: tpe for a log-scale search",
        )
    if space.step is not None and not (param.parameterType == "int" and int(space.step) == 1):
        raise source.error(
            (*at, "step"),
            "hyperband samples min..max uniformly and ignores `step`",
            hint="remove `step`, or use parameterType: discrete with the values to try",
        )


def _check_hyperband_counts(spec: LaunchSpec, hb: hyperband.Hyperband, source: SpecSource) -> None:
    counts = resolve_counts(spec)
    parallel, max_trials, first = counts.parallel, counts.max_trials, hb.first_bracket
    name = hb.resource_name
    best = (
        f" or {parallel + 1} (then the best config again at {name}={hb.resource(hb.s_max, 1)})"
        if hb.max_extra_trials
        else ""
    )
    if parallel < first:
        raise source.error(
            ("parallelTrialCount",),
            f"parallelTrialCount ({parallel}) is below the {first} configs of hyperband's first "
            f"bracket (eta**s_max = {hb.eta}**{hb.s_max}): Katib's service fails the Experiment "
            f"(`parallelTrialCount must be not less than {first}.`)",
            hint=f"set parallelTrialCount to {first} or more (or remove it: launch then uses "
            f"{first}), or lower r_l or raise eta for a smaller first bracket",
        )
    if max_trials < parallel:
        what = "" if spec.parallelTrialCount is not None else ", hyperband's first bracket"
        raise source.error(
            ("maxTrialCount",),
            f"maxTrialCount ({max_trials}) is below parallelTrialCount ({parallel}{what})",
            hint=f"set maxTrialCount to {parallel} (the first round){best}",
        )
    limit = parallel + hb.max_extra_trials
    if max_trials > limit:
        asked, answered = hb.stalled_reply(parallel, max_trials)
        why = (
            f"the best ceil({asked}/{hb.eta}) of the last round"
            if hb.max_extra_trials
            else "its only bracket is done"
        )
        raise source.error(
            ("maxTrialCount",),
            f"maxTrialCount ({max_trials}) is more than Katib v0.19's hyperband can run with "
            f"parallelTrialCount {parallel}: after {limit} trial{'s' if limit != 1 else ''} "
            "Katib asks its service for "
            f"{asked} at once, the service answers with {answered} ({why}), and Katib refuses "
            "the reply (`The response contains unexpected trials`) again and again: the "
            "Experiment stays Running with no trial",
            hint=f"set maxTrialCount to {parallel} (the first round){best}; more configs need a "
            "larger parallelTrialCount",
        )
    failed = spec.maxFailedTrialCount
    if max_trials == parallel + 1 and hb.max_extra_trials and failed not in (None, 0, 1):
        raise source.error(
            ("maxFailedTrialCount",),
            f"with maxTrialCount {max_trials} = parallelTrialCount + 1, a failed first-round "
            "trial stalls Katib's hyperband service (it waits for every trial of a round to "
            "succeed: `There are some trials which are not completed yet`): the Experiment "
            f"would stay Running with no trial, unless maxFailedTrialCount 1 ends it",
            hint=f"set maxFailedTrialCount: 1 (or remove it: launch then uses 1), or "
            f"maxTrialCount: {parallel}",
        )
