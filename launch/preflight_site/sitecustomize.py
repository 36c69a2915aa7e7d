"""launch's preflight hook: parse the config a Draccus program would get, for every flag set
launch will pass, then exit before the program runs.

launch puts this directory first on PYTHONPATH (and sets LAUNCH_PREFLIGHT to the request) when
it runs `CMD --help` once before a sweep. Python imports `sitecustomize` at start-up; this one
patches `ArgumentParser.parse_args` of Draccus (and of Pyrallis, its ancestor) as soon as the
program imports it. When the program asks for its config, the hook parses every flag set of the
request with the program's own config class and parser, writes what came out (values and
declared types, or the parser's error) as one JSON document, and exits 0: the wrapped function
never runs. A program that never calls Draccus answers `--help` as it always does, and launch
checks that help text instead.

Standard library only, no `launch` import: it runs in the trial's Python (any version >= 3.8),
in an image that has no launch installed. Any other `sitecustomize` on the path still runs.

The request (JSON in LAUNCH_PREFLIGHT): {"base": [flag, ...], "variants": [[index, flag], ...],
"out": path or null}. Set 0 is `base`; set k is `base` with `base[index]` replaced by the k-th
variant's flag. Output: the file `out`, else one stdout line that starts with MARKER.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import pathlib
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

REQUEST_VAR = "LAUNCH_PREFLIGHT"
MARKER = "@@launch-preflight@@ "
PARSER_MODULES = ("draccus.argparsing", "pyrallis.argparsing")
_HERE = os.path.dirname(os.path.abspath(__file__))
_MISSING = object()


def _install() -> None:
    # Leave no trace on the program's own path (child processes still get PYTHONPATH).
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    for name in PARSER_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            _patch(module)
    sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a parser module right after it is executed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PARSER_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _patch(module)


def _patch(module: Any) -> None:
    parser_class = getattr(module, "ArgumentParser", None)
    if parser_class is None or getattr(parser_class, "_launch_preflight", False):
        return
    original = parser_class.parse_args

    def parse_args(self: Any, args: Any = None, namespace: Any = None) -> Any:
        _answer(self, original, module.__name__.split(".")[0], args)

    parser_class.parse_args = parse_args
    parser_class._launch_preflight = True


# --------------------------------------------------------------------------- the answer


def _answer(parser: Any, original: Callable[..., Any], library: str, args: Any) -> None:
    """Parse every flag set, write the answer, exit: the program's own code goes no further."""
    request = json.loads(os.environ[REQUEST_VAR])
    tail = [a for a in (sys.argv[1:] if args is None else list(args)) if a not in ("--help", "-h")]
    base = list(request["base"])
    config_class = parser.config_class
    config_path = getattr(parser, "config_path", None)
    memo = {}

    def attempt(flags: list[str], read: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        key = (tuple(flags), tuple(read))
        if key not in memo:
            memo[key] = _attempt(
                type(parser), original, config_class, config_path, tail + list(flags), read
            )
        return memo[key]

    sets = [base]
    for index, flag in request["variants"]:
        flags = list(base)
        flags[int(index)] = str(flag)
        sets.append(flags)
    baseline = attempt([])
    answer = {
        "version": 1,
        "parser": library,
        "config": getattr(config_class, "__module__", "?")
        + "."
        + getattr(config_class, "__qualname__", "?"),
        "tail": tail,
        "known": _known_flags(type(parser), config_class, config_path),
        "baseline": baseline,
        "sets": [_check_set(flags, attempt, bool(baseline["ok"])) for flags in sets],
    }
    _emit(answer, request.get("out"))
    os._exit(0)


def _check_set(
    flags: list[str], attempt: Callable[..., dict[str, Any]], baseline_ok: bool
) -> dict[str, Any]:
    """One flag set: parsed values, or the error with the flags that cause it.

    A flag is to blame when it fails with no other flag but the choice selectors it needs
    (`--optim.type=sgd` for `--optim.momentum=0.5`); when the config cannot be parsed without
    flags at all (a required field that a flag provides), when the set parses without it. The
    values of the others are read from a parse without the blamed flags, so one mistake does
    not hide the next."""
    names = _names(flags)
    result = dict(attempt(flags, read=names))
    if result["ok"]:
        return result
    culprits = {}
    for flag in flags:
        if baseline_ok:
            alone = attempt([*_selectors(flag, flags), flag])
            if not alone["ok"]:
                culprits[flag] = alone["error"]
        elif attempt([f for f in flags if f != flag])["ok"]:
            culprits[flag] = result["error"]
    result["culprits"] = culprits
    rest = [flag for flag in flags if flag not in culprits]
    if culprits and rest:
        # Every name, the blamed ones too: their declared types make the hints.
        again = attempt(rest, read=names)
        result["rest_ok"] = again["ok"]
        if again["ok"]:
            result["values"] = again["values"]
    return result


def _selectors(flag: str, flags: list[str]) -> list[str]:
    """The `--<prefix>.type=...` flags of `flags` that choose the subclass `flag` belongs to."""
    name = _name(flag)
    out = []
    for other in flags:
        other_name = _name(other)
        if other == flag or not (other_name == "type" or other_name.endswith(".type")):
            continue
        if name.startswith(other_name[: -len("type")]):
            out.append(other)
    return out


def _attempt(
    parser_class: Any,
    original: Callable[..., Any],
    config_class: Any,
    config_path: Any,
    argv: list[str],
    read: list[str] | tuple[str, ...],
) -> dict[str, Any]:
    """One parse with a fresh parser of the program's own kind: the config, or what went wrong."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            try:
                parser = parser_class(config_class=config_class, config_path=config_path)
            except TypeError:  # an older parser without config_path
                parser = parser_class(config_class=config_class)
            config = original(parser, argv)
    except SystemExit as exc:  # argparse's error(): the reason is on stderr
        lines = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
        return {"ok": False, "error": (lines[-1] if lines else f"exit {exc.code}")[:2000]}
    except Exception as exc:
        return {"ok": False, "error": _explain(exc)[:2000]}
    out: dict[str, Any] = {"ok": True}
    if read:
        out["values"] = {name: _read(config, name) for name in read}
    return out


def _explain(exc: BaseException) -> str:
    """`Type: message`, then what caused it (Draccus wraps a __post_init__ error in a
    ParsingError that does not repeat it)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        kind = type(current)
        module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
        parts.append(f"{module}{kind.__name__}: {current}")
        current = current.__cause__ or current.__context__
    return " <- caused by: ".join(parts)


def _names(flags: list[str]) -> list[str]:
    return [_name(flag) for flag in flags if flag.startswith("--")]


def _name(flag: str) -> str:
    return flag[2:].split("=", 1)[0] if flag.startswith("--") else ""


def _known_flags(parser_class: Any, config_class: Any, config_path: Any) -> list[str]:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parser = parser_class(config_class=config_class, config_path=config_path)
        actions = parser.parser._actions
    except Exception:
        return []
    return sorted({s[2:] for a in actions for s in a.option_strings if s.startswith("--")})


# --------------------------------------------------------------------------- reading a config


def _read(config: Any, name: str) -> dict[str, Any]:
    """The parsed value at a dotted flag name, with the type the config declares for it."""
    parent, declared = config, None
    parts = name.split(".")
    for part in parts[:-1]:
        parent = _child(parent, part)
        if parent is _MISSING:
            return {"found": False}
    last = parts[-1]
    value = _child(parent, last)
    if value is _MISSING:
        choice = _choice_name(parent) if last == "type" else None
        if choice is None:
            return {"found": False}
        return {"found": True, "value": choice, "repr": repr(choice), "type": {"kind": "choice"}}
    declared = _declared(parent, last)
    return {
        "found": True,
        "value": _encode(value),
        "repr": repr(value)[:300],
        "type": _describe(declared),
    }


def _child(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, _MISSING)
    if dataclasses.is_dataclass(obj) and name in {f.name for f in dataclasses.fields(obj)}:
        return getattr(obj, name)
    return _MISSING


def _choice_name(obj: Any) -> str | None:
    """The registered name of a ChoiceRegistry subclass instance (`--policy.type=act`)."""
    getter = getattr(type(obj), "get_choice_name", None)
    if not callable(getter):
        return None
    try:
        return str(getter(type(obj)))
    except Exception:
        return None


def _declared(parent: Any, name: str) -> Any:
    try:
        return typing.get_type_hints(type(parent))[name]
    except Exception:
        for item in dataclasses.fields(parent) if dataclasses.is_dataclass(parent) else ():
            if item.name == name:
                return item.type
    return None


def _describe(declared: Any) -> dict[str, Any]:
    """{"kind": bool|int|float|str|path|enum|literal|list|dict|dataclass|union|other|unknown,
    "optional": ..., "text": ..., "choices": [...] for enum and literal}."""
    if declared is None:
        return {"kind": "unknown", "optional": False, "text": "?"}
    text = declared.__name__ if isinstance(declared, type) else str(declared).replace("typing.", "")
    tp, optional = declared, False
    origin = typing.get_origin(tp)
    union_type = getattr(types, "UnionType", None)
    if origin is typing.Union or (union_type is not None and isinstance(tp, union_type)):
        members = typing.get_args(tp)
        rest = [m for m in members if m is not type(None)]
        optional = len(rest) < len(members)
        if len(rest) != 1:
            return {
                "kind": "union",
                "optional": optional,
                "text": str(declared).replace("typing.", ""),
            }
        tp = rest[0]
        origin = typing.get_origin(tp)
        text = str(declared).replace("typing.", "")
    out = {"optional": optional, "text": text}
    if origin is typing.Literal:
        out.update(kind="literal", choices=[_encode(v) for v in typing.get_args(tp)])
    elif origin in (list, tuple, set, frozenset) or (
        origin is not None and getattr(origin, "__name__", "") in ("Sequence", "List", "Tuple")
    ):
        out["kind"] = "list"
    elif origin is dict:
        out["kind"] = "dict"
    elif isinstance(tp, type) and issubclass(tp, bool):
        out["kind"] = "bool"
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        out.update(kind="enum", choices=[m.name for m in tp])
    elif isinstance(tp, type) and issubclass(tp, int):
        out["kind"] = "int"
    elif isinstance(tp, type) and issubclass(tp, float):
        out["kind"] = "float"
    elif isinstance(tp, type) and issubclass(tp, str):
        out["kind"] = "str"
    elif isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        out["kind"] = "path"
    elif dataclasses.is_dataclass(tp):
        out["kind"] = "dataclass"
    else:
        out["kind"] = "other"
    return out


def _encode(value: Any) -> Any:
    """JSON for a parsed value: scalars as they are, an Enum member as {"enum": name}."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
        )
    if isinstance(value, enum.Enum):
        return {"enum": value.name}
    if isinstance(value, pathlib.PurePath):
        return {"path": str(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return {"repr": repr(value)[:300]}


def _emit(answer: dict[str, Any], out: str | None) -> None:
    text = json.dumps(answer, separators=(",", ":"), default=repr)
    if os.environ.get("RANK", "0") != "0":  # torchrun's other workers: rank 0 answers
        return
    if out:
        tmp = f"{out}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, out)
    else:
        sys.stdout.write("\n" + MARKER + text + "\n")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()


def _chain() -> None:
    """Run the sitecustomize this one shadows (a distribution's, a virtualenv's), if any."""
    spec = importlib.machinery.PathFinder.find_spec(
        "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    )
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    with contextlib.suppress(Exception):
        spec.loader.exec_module(module)


if os.environ.get(REQUEST_VAR):
    _install()
_chain()
