"""Flag names: every searched and fixed name is a Draccus flag, unique, and clashes with none."""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Mapping

from launch.spec.limits import MAX_YAML_DEPTH
from launch.spec.models import LaunchSpec
from launch.spec.source import Path, SpecSource
from launch.spec.values import _FIELD_RE, _short

# Flags launch passes itself or Draccus reserves: a parameter or fixed key by these names clashes.
RESERVED_FLAGS = ("tensorboard_dir", "config_path", "help")


def _check_names(spec: LaunchSpec, source: SpecSource) -> None:
    """Every searched and fixed name is a Draccus flag, unique, and unique as a trialParameter."""
    names: dict[str, Path] = {}
    parents: dict[str, str] = {}  # `optim` -> the first name nested in it (`optim.lr`)
    trial_names: dict[str, str] = {}
    entries: list[tuple[str, Path]] = [
        (param.name, ("parameters", index, "name")) for index, param in enumerate(spec.parameters)
    ]
    entries += [(key, ("fixed", key)) for key in spec.fixed]
    for name, where in entries:
        kind = "fixed flag" if where[0] == "fixed" else "parameter name"
        if not _FIELD_RE.match(name) or any(keyword.iskeyword(part) for part in name.split(".")):
            raise source.error(
                where,
                f"{kind} `{_short(name)}` cannot be a Draccus flag",
                hint="use a dataclass field path: letters, digits and `_`, `.` for nesting "
                "(e.g. optim.lr)",
            )
        if name.count(".") >= MAX_YAML_DEPTH:
            # Bounds the prefix look-ups of the nesting check (quadratic in the dots).
            raise source.error(
                where,
                f"{kind} `{_short(name)}` nests more than {MAX_YAML_DEPTH} fields deep",
                hint="a config dataclass nests a few levels: shorten the field path",
            )
        for reserved in RESERVED_FLAGS:
            if _names_clash(name, reserved):
                raise source.error(
                    where,
                    f"{kind} `{name}` clashes with `--{reserved}`, which "
                    + (
                        "launch passes to every trial"
                        if reserved == "tensorboard_dir"
                        else "Draccus reserves"
                    ),
                    hint=f"rename the field in your config dataclass and here (not `{reserved}`)",
                )
        if name in names:
            other_where = names[name]
            twice = "fixed and searched" if other_where[0] != where[0] else "listed twice"
            raise source.error(
                where,
                f"`{name}` is {twice}",
                hint=f"remove `{name}` from `fixed` or from `parameters`"
                if other_where[0] != where[0]
                else "keep only one",
            )
        other = _nesting_clash(name, names, parents)
        if other is not None:
            raise source.error(
                where,
                f"`{name}` and `{other}` set the same Draccus field twice (one nests in the other)",
                hint=f"keep only one of `{name}` and `{other}`",
            )
        names[name] = where
        for parent in _parents(name):
            parents.setdefault(parent, name)
        if where[0] == "parameters":
            param = spec.parameters[int(where[1])]
            trial_name = param.trial_parameter_name
            if trial_name in trial_names:
                raise source.error(
                    where,
                    f"`{name}` and `{trial_names[trial_name]}` map to the same Katib "
                    f"trialParameter `{trial_name}` (`.` becomes `__`)",
                    hint="rename one of them; avoid `__` in names next to dotted ones",
                )
            trial_names[trial_name] = name


def _parents(name: str) -> Iterable[str]:
    """The Draccus fields `name` nests in: `a.b.c` -> `a`, `a.b`."""
    parts = name.split(".")
    return (".".join(parts[:cut]) for cut in range(1, len(parts)))


def _nesting_clash(name: str, names: Mapping[str, Path], parents: Mapping[str, str]) -> str | None:
    """A name seen before that `name` nests in, or that nests in `name` (look-ups, no scan)."""
    for parent in _parents(name):
        if parent in names:
            return parent
    return parents.get(name)


def _names_clash(a: str, b: str) -> bool:
    """Same flag, or one is a Draccus parent of the other (`optim` and `optim.lr`)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
