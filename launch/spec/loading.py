"""Reading search.yaml: a bounded file read, YAML with lines, the Experiment envelope, pydantic
validation with its errors turned into `file:line: field: message`, then Katib's rules.
"""

from __future__ import annotations

import difflib
import errno
import re
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from launch.errors import SpecError
from launch.spec import yaml_lines
from launch.spec.coercion import _BOUNDS, _number_spelling
from launch.spec.limits import MAX_SPEC_BYTES
from launch.spec.models import LaunchSpec
from launch.spec.rules import check_rules
from launch.spec.source import Path, SpecSource, _format_path, _remember
from launch.spec.yaml_lines import _check_printable, _check_size, _Refused, _walk

# Fields of Katib's ExperimentSpec that launch generates itself or cannot honour.
_GENERATED = {
    "trialTemplate": "launch generates the trial template from the command after `--`",
    "metricsCollectorSpec": "launch always uses the TensorFlowEvent collector on --tensorboard_dir",
    "earlyStopping": (
        "Katib's early stopping crashes the TensorFlowEvent metrics collector's sidecar"
    ),
    "nasConfig": "neural architecture search (enas, darts) is not supported by launch",
    "resumePolicy": "launch sets the resume policy itself",
    "configs": "launch sets it for a seed study (`launch seeds EXP --top K --seeds N`)",
}

# Keys of a whole Experiment document; `metadata` is ignored (launch names the Experiment).
_DOCUMENT_KEYS = ("apiVersion", "kind", "metadata", "spec")
_API_VERSION = "kubeflow.org/v1beta1"


def load(path: str) -> LaunchSpec:
    """Read and validate a search.yaml file (I/O at the edge: one bounded file read)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)  # /dev/zero or a huge file must not hang
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file", hint="pass the path of your search.yaml") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        hint = _READ_HINTS.get(exc.errno or 0, "pass a readable YAML text file")
        raise SpecError(f"{path}: cannot read: {reason}", hint=hint) from None
    _check_size(len(data), path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
            hint="save the file as UTF-8 (a search.yaml is text)",
        ) from None
    # Text mode's universal newlines, as before: `\r\n` and `\r` end a line.
    return parse(text.replace("\r\n", "\n").replace("\r", "\n"), filename=path)


_READ_HINTS = {
    errno.ELOOP: "a symbolic link on the path points back into a loop: fix or replace it "
    "(ls -l shows where each link points)",
    errno.EACCES: "make the file readable (chmod u+r), or copy it somewhere you can read",
    errno.EPERM: "make the file readable (chmod u+r), or copy it somewhere you can read",
    errno.EISDIR: "pass the search.yaml file inside that directory",
}


def _keep_typed(data: dict[str, Any], raw: dict[Path, str], prefix: Path) -> dict[Path, str]:
    """Put back the text the user typed for plain scalars in `list:` items and `fixed` values.

    YAML 1.1 reads `on` as True and `1:30` as 90; the program should get `on` and `1:30` (Draccus
    then parses it as it parses any flag; `coercion_warnings` says what it will make of it).
    Bounds stay numbers (Katib needs "16"); returns the typed text of those that YAML 1.1 read
    in another spelling (`min: 0x10`), by path in the spec.
    """
    bounds: dict[Path, str] = {}
    parameters = data.get("parameters")
    if isinstance(parameters, list):
        for index, param in enumerate(parameters):
            space = param.get("feasibleSpace") if isinstance(param, dict) else None
            if not isinstance(space, dict):
                continue
            at: Path = ("parameters", index, "feasibleSpace")
            for key in _BOUNDS:
                value, text = space.get(key), raw.get((*prefix, *at, key))
                if (
                    text is not None
                    and isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and _number_spelling(text, value)
                ):
                    bounds[(*at, key)] = text
            items = space.get("list")
            if isinstance(items, list):
                for position, item in enumerate(items):
                    text = raw.get((*prefix, *at, "list", position))
                    if text is not None and (item is None or not isinstance(item, str)):
                        items[position] = text
    fixed = data.get("fixed")
    if isinstance(fixed, dict):
        for key, item in fixed.items():
            text = raw.get((*prefix, "fixed", str(key)))
            if text is not None and (item is None or not isinstance(item, str)):
                fixed[key] = text
    return bounds


def _check_bound_spellings(data: dict[str, Any], source: SpecSource) -> None:
    """Refuse bounds in YAML 1.1 base 60 (`1:30`) or octal (`010`): almost never meant.

    Hex, binary and underscores (`0x10`, `0b101`, `1_000`) may be meant: `coercion_warnings`
    names the number they became.
    """
    for path, text in source.raw.items():
        _, index, _, key = path
        value = data["parameters"][index]["feasibleSpace"][key]
        spelling = _number_spelling(text, value)
        if spelling == "base 60":
            raise source.error(
                path,
                f"`{key}: {text}` is a YAML 1.1 base-60 number: it reads as {value}",
                hint=f"write the number you mean as a plain decimal ({value} if you meant "
                "minutes:seconds)",
            )
        if spelling == "octal":
            decimal = int(text.replace("_", ""))
            raise source.error(
                path,
                f"`{key}: {text}` is a YAML 1.1 octal number: it reads as {value}, not {decimal}",
                hint=f"write the number you mean without the leading zero: {decimal}",
            )


def parse(text: str, *, filename: str = "search.yaml") -> LaunchSpec:
    """Parse search.yaml text into a validated LaunchSpec, or raise SpecError naming file:line: field."""
    _check_size(len(text), filename)  # characters first: never encode a huge text to measure it
    _check_size(len(text.encode("utf-8", "surrogatepass")), filename)
    _check_printable(text, filename)
    loader = yaml_lines._LineLoader(text)  # looked up when called: tests swap it
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise SpecError(
            f"{filename}:{line}: {_format_path(exc.path)}: {exc.problem}", hint=exc.hint
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        hint = (
            "quote the value to pass it as text"
            if isinstance(exc, yaml.constructor.ConstructorError)
            else "check indentation and quoting (a value with `: ` or `#` needs quotes)"
        )
        raise SpecError(f"{where}: not valid YAML: {problem}", hint=hint) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    raw: dict[Path, str] = {}
    if node is not None:
        _walk(node, (), lines, raw, filename)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            f"{filename}:1: expected a mapping with `objective`, `parameters`, ...; got {got}",
            hint="start from examples/quickstart/search.yaml",
        )
    prefix: Path = ()
    if "apiVersion" in data or "kind" in data:
        data, prefix = _unwrap_document(data, SpecSource(filename, lines)), ("spec",)
    source = SpecSource(filename, lines, prefix, raw=_keep_typed(data, raw, prefix))
    _check_bound_spellings(data, source)
    return validate(data, source)


def _unwrap_document(data: dict[str, Any], top: SpecSource) -> dict[str, Any]:
    """The `spec` of a whole Experiment document, after checking its envelope."""
    for key in data:
        if key not in _DOCUMENT_KEYS:
            close = difflib.get_close_matches(str(key), _DOCUMENT_KEYS, n=1)
            raise top.error(
                (str(key),),
                f"unknown field `{key}` in an Experiment document",
                hint=f"did you mean `{close[0]}`?"
                if close
                else f"keep only {', '.join(_DOCUMENT_KEYS)}",
            )
    if data.get("apiVersion") != _API_VERSION:
        raise top.error(
            ("apiVersion",),
            f"expected apiVersion {_API_VERSION}, got {data.get('apiVersion')!r}",
            hint=f"write `apiVersion: {_API_VERSION}`, or give the bare spec without the envelope",
        )
    if data.get("kind") != "Experiment":
        raise top.error(
            ("kind",),
            f"expected kind Experiment, got {data.get('kind')!r}",
            hint="write `kind: Experiment`, or give the bare spec without the envelope",
        )
    if "metadata" in data and not isinstance(data["metadata"], dict):
        raise top.error(("metadata",), "expected a mapping", hint="remove `metadata`")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise top.error(
            ("spec",),
            "an Experiment document needs a `spec` mapping",
            hint="put objective, algorithm and parameters under `spec:`",
        )
    return spec


def validate(data: dict[str, Any], source: SpecSource) -> LaunchSpec:
    """Validate a spec mapping: field shapes (pydantic), then Katib's admission rules and traps."""
    for key, why in _GENERATED.items():
        if key in data:
            raise source.error(
                (key,), f"`{key}` is not accepted in search.yaml: {why}", hint=f"delete `{key}`"
            )
    try:
        spec = LaunchSpec.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, source) from None
    _remember(spec, source)
    check_rules(spec, source)
    return spec


def _known_fields(loc: Path) -> list[str]:
    """Field names allowed where an unknown key `loc[-1]` was found (for did-you-mean)."""
    model: type[BaseModel] | None = LaunchSpec
    for part in loc[:-1]:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _translate(exc: ValidationError, source: SpecSource) -> SpecError:
    """Turn pydantic's first error into one `file:line: field: message` + hint."""
    # An unknown key explains more than the "missing" error it usually causes (a typo'd name).
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    kind = err["type"]
    raw = tuple(err["loc"])
    if kind == "extra_forbidden":
        # The unknown key is the user's, whatever it looks like (even `a[b]`): never a union tag.
        loc = (*(p for p in raw[:-1] if not (isinstance(p, str) and _is_union_tag(p))), raw[-1])
    else:
        loc = tuple(part for part in raw if not (isinstance(part, str) and _is_union_tag(part)))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_fields(loc)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known fields here: {', '.join(known)}"
        return source.error(loc, f"unknown field `{key}`", hint=hint)
    if kind == "missing":
        return source.error(loc, "required field is missing", hint=f"add `{loc[-1]}:`")
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        got = err["input"]
        close = difflib.get_close_matches(str(got), re.findall(r"'([^']*)'", expected), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {expected}"
        return source.error(loc, f"{got!r} is not allowed", hint=hint)
    if kind in ("greater_than_equal", "less_than_equal"):
        return source.error(loc, err["msg"].lower(), hint=f"set `{loc[-1]}` within that range")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return source.error(loc, message, hint="see docs/search-yaml.md for the accepted fields")


def _is_union_tag(part: str) -> bool:
    # pydantic adds union member tags like "int" or "tuple[int, ...]" to locations.
    return (
        part in ("int", "str", "float", "bool", "constrained-int")
        or "[" in part
        or part.startswith("function-")
    )
