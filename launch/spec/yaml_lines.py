"""The YAML layer: PyYAML loaders that know each node's path and line, and the input limits.

Refuses what search.yaml does not take (aliases, deep nesting, huge integers, control characters,
oversized text), records the line of every key and item and the typed text of plain scalars, and
reads flag values the way Draccus does (`_flag_yaml`), within the same limits.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import yaml

from launch.errors import SpecError
from launch.spec.limits import MAX_NUMBER_CHARS, MAX_SPEC_BYTES, MAX_YAML_DEPTH
from launch.spec.source import Path, _format_path
from launch.spec.values import _short


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that search.yaml does not take (aliases, deep nesting, huge integers)."""

    def __init__(self, mark: Any, path: Path, problem: str, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path = path
        self.hint = hint


class _BoundedComposer(yaml.composer.Composer):
    """Composes without aliases, with bounded nesting, knowing the path of every node.

    Aliases are refused, not expanded: nine nested `[*a, *a, ...]` make 9**9 nodes from a few
    lines (a "billion laughs"), `a: &a [*a]` is a cycle, and search.yaml has no use for them.
    """

    _path: Path = ()  # where the node being composed sits
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        part = _path_part(parent, index)
        path = (*self._path, part) if part is not None else self._path
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser's, next in the MRO
        # An undefined alias is left to PyYAML ("found undefined alias").
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            raise _Refused(
                event.start_mark,
                path,
                f"YAML alias `*{event.anchor}`: search.yaml takes no aliases (nor `<<:` merges)",
                hint="write the value out in full (aliases can expand a few lines into "
                "billions of values)",
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise _Refused(
                event.start_mark,
                path[:3],  # the whole path would be 64 levels long
                f"nested more than {MAX_YAML_DEPTH} levels deep",
                hint="a search.yaml nests a few levels: check the brackets and indentation",
            )
        saved = self._path
        self._path, self._depth = path, self._depth + 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._path, self._depth = saved, self._depth - 1
        _check_int_length(node, path)
        return node


class _CheckedConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor whose plain Python errors become YAML errors with a line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError) as exc:
            # `2001-13-45` (a YAML 1.1 date) and `!!int abc` raise plain Python errors.
            raise yaml.constructor.ConstructorError(
                problem=f"cannot read {_short(str(node.value))!r} as {node.tag}: {exc}",
                problem_mark=node.start_mark,
            ) from None


class _PyLineLoader(_BoundedComposer, _CheckedConstructor, yaml.SafeLoader):
    """The pure-Python loader, where PyYAML was installed without libyaml."""


_LineLoader: Callable[[str], Any] = _PyLineLoader
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    pass
else:

    class _CLineLoader(_BoundedComposer, CParser, _CheckedConstructor, yaml.resolver.Resolver):
        """libyaml's events (6x faster than PyYAML's scanner) under the Python composer above."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LineLoader = _CLineLoader


def _path_part(parent: yaml.Node | None, index: Any) -> str | int | None:
    """The path component a node adds under `parent` (None: the root, or a mapping key)."""
    if parent is None or index is None:
        return None
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)  # a mapping value, under its key
    return index if isinstance(index, int) else "?"


def _check_int_length(node: yaml.Node | None, path: Path) -> None:
    # int() of 4300+ digits raises ValueError, and of a long `1:2:3:...` (base 60) is slow.
    if (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:int"
        and len(node.value) > MAX_NUMBER_CHARS
    ):
        raise _Refused(
            node.start_mark,
            path,
            f"an integer of {len(node.value):,} characters (at most {MAX_NUMBER_CHARS})",
            hint="quote it if it is text, or write a smaller number",
        )


def _walk(
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    raw: dict[Path, str],
    filename: str,
) -> None:
    """Record the line of every key and item, the text of every plain scalar; refuse duplicate keys."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                # PyYAML silently keeps the last one: a second `parameters:` would hide the first.
                raise SpecError(
                    f"{filename}:{line}: {_format_path((*path, key))}: duplicate key "
                    f"(first on line {seen[key]})",
                    hint=f"merge the two `{key}:` entries into one",
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, raw, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, raw, filename)
    elif isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None, or "" (libyaml)
        raw[path] = node.value


# Names of the control characters people paste by accident (PyYAML refuses all of them).
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "VT", 0x0C: "form feed",
                  0x1B: "ESC", 0x7F: "DEL"}  # fmt: skip


def _check_printable(text: str, filename: str) -> None:
    """Name the line and column of a character YAML refuses (PyYAML only gives an offset)."""
    match = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if match is None:
        return
    start = match.start()
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    code = ord(match.group())
    name = _CONTROL_NAMES.get(code, "control character")
    raise SpecError(
        f"{filename}:{line}: column {column}: {name} (U+{code:04X}) is not allowed in YAML",
        hint="delete it (an editor's `show invisibles` reveals it); write `\\t`-style escapes "
        'inside "double quotes" if the value needs one',
    )


def _check_size(size: int, filename: str) -> None:
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"{filename}: larger than {MAX_SPEC_BYTES // 1024 // 1024} MiB, the limit for a "
            "search.yaml",
            hint="a search space takes a few KiB: check that this is the right file",
        )


# A word that YAML reads as a plain scalar whatever it is (no indicator, space or quote).
_PLAIN_WORD_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_RESOLVER = yaml.resolver.Resolver()
_SCALARS = yaml.constructor.SafeConstructor()


def _implicit_tag(word: str) -> str:
    """The tag YAML 1.1 gives a plain scalar (`on`: bool, `12`: int, `lr`: str)."""
    resolve: Callable[..., str] = _RESOLVER.resolve
    return resolve(yaml.ScalarNode, word, (True, False))


def _flag_yaml(text: str) -> Any:
    """What Draccus's YAML parse makes of a flag value, within search.yaml's limits.

    yaml.safe_load would expand an alias bomb hidden in a quoted value. A plain word is
    resolved and constructed without the parser, which keeps 60k `fixed` values fast.
    """
    if _PLAIN_WORD_RE.match(text) and len(text) <= MAX_NUMBER_CHARS:
        tag = _implicit_tag(text)
        if tag == "tag:yaml.org,2002:str":
            return text
        with contextlib.suppress(ValueError):  # `0x_`, `2001-13-45`: the parser says why
            return _SCALARS.yaml_constructors[tag](_SCALARS, yaml.ScalarNode(tag, text))
    loader = _LineLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
