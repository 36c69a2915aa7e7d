"""Preflight: ask the program itself, before any trial, whether it accepts every flag launch
will pass, and whether it reads each value as written.

What to ask (`plan`): a small set of flag sets that covers the space (every fixed flag, each
parameter at its bounds, every categorical or discrete value, a seed, `--tensorboard_dir`).
How it is asked: `CMD --help`, run once with the hook in `launch/preflight_site` first on
PYTHONPATH (`launch.preflight_local` on this machine, `launch.preflight_pod` in the image). A
Draccus program's own parser reads every set and the hook answers in JSON before the program
runs (`judge`); any other program answers `--help`, and the flag names are looked up in its
help text (`judge_help`). Pure: no I/O.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

from launch.contract import ParamValue, format_value
from launch.spec import LaunchSpec, source_of
from launch.spec.source import Path, _format_path

REQUEST_VAR = "LAUNCH_PREFLIGHT"  # the hook's request (launch/preflight_site/sitecustomize.py)
MARKER = "@@launch-preflight@@ "  # the hook's answer line on stdout (when no file is named)
SITE_DIR = "preflight_site"  # inside the launch package: the directory put first on PYTHONPATH
TENSORBOARD_FLAG = "tensorboard_dir"

_DECIMAL_INT = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NULL_WORDS = frozenset({"null", "Null", "NULL", "~", ""})
_BOOL_WORDS = frozenset({"true", "false", "True", "False", "TRUE", "FALSE"})
_YAML_BOOLS = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
    ]
)


@dataclass(frozen=True)
class Flag:
    """One `--name=value` launch will pass, and where in search.yaml it comes from."""

    name: str
    value: str  # the text the program receives
    origin: Path | None = None  # its search.yaml field (None: launch adds it)
    about: str = ""  # how to name it when it has no field: `--seeds`, the trial contract

    @property
    def text(self) -> str:
        return f"--{self.name}={self.value}"


@dataclass(frozen=True)
class Plan:
    """Set 0 is `base`; set k is `base` with `base[index]` replaced by the k-th variant."""

    base: tuple[Flag, ...]
    variants: tuple[tuple[int, Flag], ...] = ()

    def sets(self) -> list[list[Flag]]:
        out = [list(self.base)]
        for index, flag in self.variants:
            flags = list(self.base)
            flags[index] = flag
            out.append(flags)
        return out

    def request(self, out: str | None = None) -> str:
        """The hook's request, as JSON (the LAUNCH_PREFLIGHT variable)."""
        doc = {
            "base": [f.text for f in self.base],
            "variants": [[i, f.text] for i, f in self.variants],
            "out": out,
        }
        return json.dumps(doc, separators=(",", ":"))

    @property
    def flag_count(self) -> int:
        return len(self.base) + len(self.variants)


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str | None = None


@dataclass
class Verdict:
    """What preflight found: problems (refuse the launch), warnings, and which check ran."""

    check: str  # "draccus", "help", or "none"
    summary: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan(spec: LaunchSpec, *, seed_flag: str, tensorboard_dir: str) -> Plan:
    """The flag sets that cover the space: set 0 has every fixed flag, each parameter at its
    first value (its min, or its first list item), a seed and --tensorboard_dir; each other
    value of each parameter (its max, every other list item) gets a set of its own."""
    base: list[Flag] = [
        Flag(key, format_value(value), ("fixed", key)) for key, value in spec.fixed.items()
    ]
    variants: list[tuple[int, Flag]] = []
    for index, param in enumerate(spec.parameters):
        space = param.feasibleSpace
        where: Path = ("parameters", index, "feasibleSpace")
        values: list[tuple[str, Path]] = []
        if param.parameterType in ("categorical", "discrete"):
            values = [(item, (*where, "list", i)) for i, item in enumerate(space.list or ())]
        elif space.min is not None and space.max is not None:
            values = [
                (_bound(param.parameterType, space.min), (*where, "min")),
                (_top(param.parameterType, space.min, space.max, space.step), (*where, "max")),
            ]
        if not values:
            continue
        position = len(base)
        origins: list[Path | None] = [origin for _, origin in values]
        about = ""
        if param.name == seed_flag and not _written(spec, ("parameters", index)):
            # The seed axis (`seeds:` or --seeds) folded into the space: not a parameter the
            # file has.
            seed_origin, about = _seed_origin(spec, seed_flag)
            origins = [seed_origin] * len(values)
        base.append(Flag(param.name, values[0][0], origins[0], about))
        seen = {values[0][0]}
        for (value, _), origin in zip(values[1:], origins[1:], strict=True):
            if value not in seen:
                seen.add(value)
                variants.append((position, Flag(param.name, value, origin, about)))
    if spec.seeds is not None and seed_flag not in {f.name for f in base}:
        first = spec.seed_values[0] if spec.seed_values else 0
        base.append(Flag(seed_flag, str(first), *_seed_origin(spec, seed_flag)))
    base.append(
        Flag(TENSORBOARD_FLAG, tensorboard_dir, None, "the trial contract's --tensorboard_dir")
    )
    return Plan(tuple(base), tuple(variants))


def _written(spec: LaunchSpec, path: Path) -> bool:
    """Whether the search.yaml file itself has this field (not one launch derived)."""
    source = source_of(spec)
    return source is not None and (*source.prefix, *path) in source.lines


def _seed_origin(spec: LaunchSpec, seed_flag: str) -> tuple[Path | None, str]:
    """Where the seed flag comes from: the file's `seeds:`, else --seeds."""
    if _written(spec, ("seeds",)):
        return ("seeds",), ""
    return None, f"--seeds (the trials' --{seed_flag})"


def _bound(kind: str, text: str) -> str:
    value: ParamValue = int(text) if kind == "int" else float(text)
    return format_value(value)


def _top(kind: str, low: str, high: str, step: str | None) -> str:
    """The largest value a trial can get: `max`, or for an int with a step the last step."""
    if kind == "int" and step:
        span = (int(high) - int(low)) // int(step) * int(step)
        return format_value(int(low) + span)
    return _bound(kind, high)


# --------------------------------------------------------------------------- judging answers


def find_answer(output: str) -> dict[str, Any] | None:
    """The hook's answer in a process's (or pod's) output: the last MARKER line, or None."""
    for line in reversed(output.splitlines()):
        if line.startswith(MARKER):
            try:
                answer = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return answer if isinstance(answer, dict) else None
    return None


def _dict(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _read_of(value: Any) -> dict[str, Any] | None:
    """One value the hook read, in the shape `_refused`/`_compare` expect, or None."""
    if not isinstance(value, Mapping):
        return None
    read = _dict(value)
    kind = _dict(read.get("type"))
    choices = kind.get("choices")
    read["type"] = {
        "kind": str(kind.get("kind") or ""),
        "text": str(kind.get("text") or ""),
        "optional": kind.get("optional") is True,
        "choices": list(choices) if isinstance(choices, list) else None,
    }
    read["found"] = read.get("found") is True
    read["repr"] = str(read.get("repr", repr(read.get("value"))))
    return read


def _clean(answer: Mapping[str, Any]) -> tuple[list[str], bool, list[dict[str, Any]]]:
    """(known flag names, whether the bare config parses, sets) from an answer, whatever came:
    the hook runs in someone else's program, and a pod's log may be cut or mixed."""
    known = answer.get("known")
    sets = []
    given = answer.get("sets")
    for item in given if isinstance(given, list) else []:
        result = _dict(item)
        reads = (_read_of(v) for v in _dict(result.get("values")).values())
        sets.append(
            {
                "ok": result.get("ok") is True,
                "error": str(result.get("error") or ""),
                "culprits": {k: str(v) for k, v in _dict(result.get("culprits")).items()},
                "values": {
                    name: read
                    for name, read in zip(_dict(result.get("values")), reads, strict=True)
                    if read is not None
                },
            }
        )
    bare_ok = _dict(answer.get("baseline")).get("ok", True) is not False
    return [str(k) for k in known] if isinstance(known, list) else [], bare_ok, sets


def judge(spec: LaunchSpec, plan_: Plan, answer: Mapping[str, Any]) -> Verdict:
    """Compare what the program's Draccus parser made of each flag set with what launch passes."""
    where = _namer(spec)
    known, bare_ok, answered = _clean(answer)
    problems: dict[str, Problem] = {}
    warnings: dict[str, str] = {}
    sets = plan_.sets()
    for flags, result in zip(sets, answered, strict=False):
        by_text = {f.text: f for f in flags}
        culprits = result["culprits"]
        values = result["values"]
        for text, error in culprits.items():
            flag = by_text.get(text)
            if flag is None:
                continue
            # An unknown name is one problem, whatever values it was given.
            key = f"unknown:{flag.name}" if known and flag.name not in known else text
            if key not in problems:
                problems[key] = _refused(flag, str(error), values.get(flag.name), known, where)
        if not result.get("ok") and not culprits:
            key = "set:" + _said(result.get("error"))  # one problem per message
            hint = (
                "a check of the config (__post_init__, a validator) refuses values that launch "
                "would combine: narrow the search space, or let the program accept them"
            )
            if not bare_ok:
                # Without launch's flags the config does not parse (a required field).
                hint = (
                    "the config does not parse without launch's flags either: give its "
                    "required fields defaults, or values under `fixed:` in search.yaml"
                )
            problems.setdefault(
                key,
                Problem(
                    f"the program refuses the flags {' '.join(by_text)}: "
                    f"{_said(result.get('error'))}",
                    hint,
                ),
            )
        for flag in flags:
            if flag.text in culprits or flag.text in problems or flag.text in warnings:
                continue
            read = values.get(flag.name)
            if not read or not read.get("found"):
                key = f"unknown:{flag.name}"
                if read is not None and result.get("ok") and flag.name not in known:
                    problems.setdefault(key, _unknown(flag, known, where))
                continue
            problem, warning = _compare(flag, read, where)
            if problem is not None:
                problems[flag.text] = problem
            elif warning is not None:
                warnings[flag.text] = warning
    count = len(sets)
    summary = (
        f"the program's Draccus parser read {count} flag set{'s' * (count != 1)} "
        f"({plan_.flag_count} values)"
    )
    return Verdict("draccus", summary, list(problems.values()), list(warnings.values()))


def judge_help(plan_: Plan, help_text: str, spec: LaunchSpec) -> Verdict:
    """A program without Draccus: every flag name must be listed by its `--help`."""
    where = _namer(spec)
    plain = _ANSI.sub("", help_text)  # rich colours each `-` of `--lr` on its own
    listed = set(re.findall(r"(?<![\w-])--([A-Za-z0-9_][\w.-]*)", plain))
    problems: dict[str, Problem] = {}
    for flag in plan_.base:
        if flag.name in listed or flag.name in problems:
            continue
        close = difflib.get_close_matches(flag.name, sorted(listed), n=1)
        hint = f"did you mean `--{close[0]}`?" if close else None
        if flag.name == TENSORBOARD_FLAG:
            hint = _TENSORBOARD_HINT
        problems[flag.name] = Problem(
            f"{where(_named(flag))}: the program's --help does not list --{flag.name}", hint
        )
    summary = (
        f"the program does not use Draccus: checked that its --help lists the "
        f"{len({f.name for f in plan_.base})} flag names (values not checked)"
    )
    return Verdict("help", summary, list(problems.values()))


_TENSORBOARD_HINT = (
    "every trial gets --tensorboard_dir=<dir> (the trial contract: metrics are read from "
    'there): add `tensorboard_dir: str = ""` to the config and write TensorBoard files to it'
)


def _namer(spec: LaunchSpec) -> Any:
    source = source_of(spec)

    def where(flag: Flag) -> str:
        if flag.origin is None:
            return flag.about or f"--{flag.name}"
        if source is not None:
            return source.where(flag.origin)
        return _format_path(flag.origin)

    return where


def _said(error: Any) -> str:
    """The parser's message, without the module path of its exception type."""
    text = " ".join(str(error or "no message").split())
    return re.sub(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Z]\w*(?:Error|Exception):)", "", text)[:400]


def _refused(
    flag: Flag, error: str, read: Mapping[str, Any] | None, known: Sequence[str], where: Any
) -> Problem:
    """A flag the program's parser refuses, with the hint its declared type suggests."""
    said = _said(error)
    kind = ((read or {}).get("type") or {}).get("kind", "")
    declared = ((read or {}).get("type") or {}).get("text", "")
    head = f"{where(flag)}: the program refuses `{flag.text}`: {said}"
    if known and flag.name not in known and (not read or not read.get("found")):
        return _unknown(flag, known, where, said)
    if "are not valid for" in said and "." in flag.name:
        prefix, _, field_name = flag.name.rpartition(".")
        return Problem(
            head,
            f"`{field_name}` is a field of another choice of `{prefix}`: set `{prefix}.type` "
            "(under `fixed:`) to the subclass that has it",
        )
    if flag.value.startswith("include"):
        return Problem(
            head,
            "Draccus reads a value that starts with `include` as `include <file>` (a reserved "
            "word): use another value",
        )
    if kind == "list":
        return Problem(
            head,
            f"the field is a list ({declared}): Draccus reads a list written as `[1, 2]`; "
            'quote it in search.yaml ("[1, 2]"), under `fixed:` if it does not vary',
        )
    choices = ((read or {}).get("type") or {}).get("choices")
    yaml_bool = flag.value in _YAML_BOOLS and flag.value not in _BOOL_WORDS
    if kind in ("enum", "literal") and choices:
        names = ", ".join(str(c.get("enum", c) if isinstance(c, dict) else c) for c in choices)
        extra = (
            f"; Draccus reads `{flag.value}` as a YAML 1.1 bool, not as text" if yaml_bool else ""
        )
        return Problem(head, f"the field `{flag.name}: {declared}` accepts: {names}{extra}")
    if kind == "bool":
        return Problem(head, f"the field `{flag.name}` is a bool: write true or false")
    if kind == "int" and not _DECIMAL_INT.match(flag.value):
        whole = _whole(flag.value)
        better = f": write {whole}" if whole is not None else ""
        return Problem(head, f"the field `{flag.name}` is an int{better}")
    if kind == "int":
        return Problem(head, "the program's own checks refuse this value: narrow the range")
    if declared:
        return Problem(head, f"the program declares `{flag.name}: {declared}`")
    return Problem(head)


def _unknown(flag: Flag, known: Sequence[str], where: Any, said: str = "") -> Problem:
    tail = f": {said}" if said else ""
    flag = _named(flag)
    message = (
        f"{where(flag)}: the program's config has no field `{flag.name}` (`{flag.text}`){tail}"
    )
    if flag.name == TENSORBOARD_FLAG:
        return Problem(message, _TENSORBOARD_HINT)
    fields = [k for k in known if k not in ("help", "config_path")]
    close = difflib.get_close_matches(flag.name, fields, n=3, cutoff=0.6)
    if not close:  # `act` for `activation`: a shortened name
        prefix = flag.name.rpartition(".")[0]
        close = [k for k in fields if k.startswith(flag.name) and k.rpartition(".")[0] == prefix]
    if not close:  # `lr` for `optim.lr`: the right field at another level
        last = flag.name.rpartition(".")[2]
        close = [k for k in fields if k.rpartition(".")[2] == last]
    close = close[:3]
    if close:
        return Problem(message, f"did you mean {' or '.join(f'`{c}`' for c in close)}?")
    prefix = flag.name.rpartition(".")[0]
    siblings = [k for k in fields if k.rpartition(".")[0] == prefix][:12]
    if siblings:
        return Problem(message, f"the config has: {', '.join(siblings)}")
    return Problem(message, "check the flag name against the program's config class")


def _named(flag: Flag) -> Flag:
    """A parameter's flag whose name is wrong: point at its `name`, not at the value."""
    if flag.origin and flag.origin[0] == "parameters":
        return replace(flag, origin=(*flag.origin[:2], "name"))
    return flag


def _whole(text: str) -> str | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return str(int(number)) if number.is_integer() and abs(number) < 1e18 else None


def _compare(flag: Flag, read: Mapping[str, Any], where: Any) -> tuple[Problem | None, str | None]:
    """(problem, warning) for a value the parser accepted but may read differently."""
    value = read.get("value")
    kind_info = read.get("type") or {}
    kind = kind_info.get("kind", "")
    declared = kind_info.get("text", "")
    shown = read.get("repr", repr(value))
    head = f"{where(flag)}: `{flag.text}`"
    if value is None:
        if kind_info.get("optional") or kind in ("", "unknown", "other", "union", "choice"):
            return None, None
        return (
            Problem(
                f"{head} gives the field `{flag.name}: {declared}` None (Draccus reads "
                f"`{flag.value or 'an empty value'}` as YAML null)",
                f"make the field Optional[{declared}] in the config if None is meant, "
                "or give a value",
            ),
            None,
        )
    if kind in ("str", "path"):
        got = value.get("path") if isinstance(value, dict) else value
        if not isinstance(got, str) or _same_text(kind, got, flag.value):
            return None, None
        if flag.origin and flag.origin[0] == "parameters":
            hint = (
                "a list value cannot carry quotes (Katib puts it into the command as it is): "
                "use a value YAML keeps as text, such as one that starts with a letter"
            )
        else:
            hint = f"quote the value inside it, so YAML keeps the text: write \"'{flag.value}'\""
        return (
            Problem(
                f"{head} reaches the str field `{flag.name}` as {got!r}: Draccus reads "
                "flag values as YAML 1.1",
                hint,
            ),
            None,
        )
    if kind in ("int", "float") and isinstance(value, int | float) and not isinstance(value, bool):
        return _number(flag, value, head)
    if kind == "bool" and isinstance(value, bool):
        if flag.value in _BOOL_WORDS:
            return None, None
        return None, f"{head} reaches the program as {value} (a YAML 1.1 bool)"
    if kind in ("enum", "literal", "choice"):
        name = value.get("enum") if isinstance(value, dict) else value
        if str(name) == flag.value:
            return None, None
        return None, f"{head} reaches the program as {shown}"
    return None, None


def _same_text(kind: str, got: str, written: str) -> bool:
    if got == written:
        return True
    return kind == "path" and PurePosixPath(got) == PurePosixPath(written)


def _number(flag: Flag, value: float, head: str) -> tuple[Problem | None, str | None]:
    written = flag.value
    if written == format_value(value) or written == str(value):
        return None, None
    decimal = float(written) if _DECIMAL.match(written) else None
    if decimal is not None and decimal == float(value):
        if (
            _DECIMAL_INT.match(written)
            and written.lstrip("+-").startswith("0")
            and len(written.lstrip("+-")) > 1
        ):
            return None, f"{head} reaches the program as {value!r} (leading zeros dropped)"
        return None, None
    if decimal is not None:
        return (
            Problem(
                f"{head} reaches the program as {value!r}, not {written}: Draccus reads flag "
                "values as YAML 1.1 (a leading 0 makes an octal number)",
                f"write the number without leading zeros ({_whole(written) or written})",
            ),
            None,
        )
    return None, f"{head} reaches the program as {value!r} (YAML 1.1 reads `{written}` as a number)"


@dataclass(frozen=True)
class Outcome:
    """How the `CMD --help` run ended, wherever it ran."""

    answer: Mapping[str, Any] | None = None  # the hook's answer (a Draccus program)
    output: str = ""  # the tail of its stdout and stderr
    returncode: int | None = None
    timed_out: bool = False
    cannot_start: str | None = None  # why the command could not even start, in the OS's words
    blocked: str | None = (
        None  # why the check itself could not run (image pull, quota), kubelet's words
    )
    seconds: float = 0.0
    where: str = "here"  # where it ran: "here", "pod <ns>/<name>"


def verdict(
    spec: LaunchSpec, plan_: Plan, outcome: Outcome, *, command: Sequence[str], timeout_s: float
) -> Verdict:
    """The verdict on one preflight run: the hook's answer, the help text, or why neither came."""
    shown = " ".join([*command, "--help"])
    if outcome.cannot_start is not None:
        return Verdict(
            "none",
            "the command did not start",
            [
                Problem(
                    f"the trials' command cannot start: `{command[0]}`: {outcome.cannot_start}",
                    "install it where the trials run (the image, or this machine's PATH), or "
                    "start the command with its full path",
                )
            ],
        )
    if outcome.blocked is not None:
        return Verdict(
            "none",
            "the check could not run",
            [
                Problem(
                    f"the preflight could not run: {outcome.blocked}",
                    "the trials would wait or fail the same way: fix it first (the image, the "
                    "namespace's quota, a Secret or volume the trials use)",
                )
            ],
        )
    if outcome.answer is not None:
        return judge(spec, plan_, outcome.answer)
    if outcome.timed_out:
        return Verdict(
            "none",
            "no answer",
            [
                Problem(
                    f"`{shown}` did not finish within {timeout_s:g}s ({outcome.where}), so the "
                    "flags were not checked",
                    "a program should answer --help at once (Draccus programs do: the check "
                    "stops at the config); pass --no-preflight to skip the check",
                )
            ],
        )
    if outcome.returncode == 0:
        return judge_help(plan_, outcome.output, spec)
    last = last_message(outcome.output)
    return Verdict(
        "none",
        "the program failed",
        [
            Problem(
                f"`{shown}` failed (exit {outcome.returncode}) before the program read its "
                f"config: {last or 'no output'}",
                "every trial would fail the same way: fix it (or, if the program cannot answer "
                "--help, pass --no-preflight)",
            )
        ],
    )


def last_message(output: str, *, limit: int = 300) -> str:
    """The last non-blank line of some output (a traceback's exception line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(MARKER)]
    return lines[-1][:limit] if lines else ""


def refuse(verdict_: Verdict, seconds: float) -> None:
    """Raise PreflightError with every problem (exit 2), or return when there is none."""
    from launch.errors import PreflightError

    if not verdict_.problems:
        return
    count = len(verdict_.problems)
    raise PreflightError(
        [(p.message, p.hint) for p in verdict_.problems],
        closing=(
            f"preflight: {count} problem{'s' * (count != 1)} ({verdict_.summary}, {seconds:.1f}s); "
            "nothing was launched, no trial ran (--no-preflight skips this check)"
        ),
    )


def describe(
    plan_: Plan, command: Sequence[str], *, enabled: bool, where: str
) -> tuple[dict[str, Any], str]:
    """What `--dry-run`/`render` says of the preflight: (JSON, one comment line)."""
    shown = " ".join([*command, "--help"])
    if not enabled:
        return {"enabled": False}, "# preflight: skipped (--no-preflight)\n"
    sets = len(plan_.sets())
    doc = {"enabled": True, "command": [*command, "--help"], "flagSets": sets, "where": where}
    return doc, (
        f"# preflight ({where}): `{shown}` runs once first; a Draccus program's parser reads "
        f"{sets} flag set{'s' * (sets != 1)}, any other program's --help must list every flag\n"
    )
