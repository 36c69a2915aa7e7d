"""Where a spec came from: the file and the line of each field, for `file:line: field` errors.

A parsed `LaunchSpec` carries its `SpecSource` (a private attribute, see `source_of`), so later
steps (apply_seeds, coercion_warnings) can still name file:line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from launch.errors import SpecError

if TYPE_CHECKING:
    from launch.spec.models import LaunchSpec


Path = tuple[str | int, ...]


def _format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


class SpecSource:
    """Where a spec came from, to name file, field and line in errors."""

    def __init__(
        self,
        filename: str,
        lines: dict[Path, int],
        prefix: Path = (),
        *,
        raw: dict[Path, str] | None = None,
    ):
        self.filename = filename
        self.lines = lines
        self.prefix = prefix
        # The typed text of bounds YAML 1.1 read as another number (`min: 0x10` is "16" in the
        # spec, as Katib needs), by spec path: `coercion_warnings` says what became of them.
        self.raw = raw or {}

    def line(self, path: Path) -> int | None:
        full = (*self.prefix, *path)
        for cut in range(len(full), -1, -1):
            line = self.lines.get(full[:cut])
            if line is not None:
                return line
        return None

    def where(self, path: Path) -> str:
        """`file:line: field.path` for a path inside the spec mapping."""
        line = self.line(path)
        location = f"{self.filename}:{line}" if line is not None else self.filename
        return f"{location}: {_format_path(path)}"

    def error(self, path: Path, message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"{self.where(path)}: {message}", hint=hint)


def _remember(spec: LaunchSpec, source: SpecSource) -> None:
    """Attach where `spec` was read from (`model_copy` carries it over to the copy)."""
    spec._source = source


def source_of(spec: LaunchSpec) -> SpecSource | None:
    """The file and lines a spec was parsed from (None for a spec built in code)."""
    return spec._source
