"""Katib's value strings: number text, the name and value patterns, values shortened for messages."""

from __future__ import annotations

import math
import re
from typing import Any

# Categorical values are substituted by Katib as text into the trial's `sh -c` string; this set
# needs no shell quoting, contains no `$` (Kubernetes expands `$(VAR)`), no quotes or backslashes
# (JSON, and launch's single quotes), and no spaces.
CATEGORICAL_VALUE_RE = re.compile(r"^[A-Za-z0-9._+:/@%=,-]+$")
CATEGORICAL_VALUE_CHARS = "letters, digits and . _ + : / @ % = , -"


# Decimal numbers that Go's strconv.ParseFloat, Python's float() and numpy all read the same way.
_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^[+-]?\d+$")
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
# A TensorBoard tag path: segments of safe characters separated by single `/`.
_METRIC_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def _number_text(value: Any) -> str:
    """Canonical Katib string for a number given quoted or unquoted (a quoted one stays as typed)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return repr(value)
    if isinstance(value, str):
        text = value.strip()
        # Stricter than float(): Katib's Go services reject `1_000`, ` inf`, `0x10`.
        if not _DECIMAL_RE.match(text):
            raise ValueError(f"expected a decimal number, got {_short(value)!r}")
        if not math.isfinite(float(text)):
            # `1e309` is text to YAML 1.1 but infinity to Go's ParseFloat and to numpy.
            raise ValueError(f"expected a finite number, got {_short(text)} (beyond float64)")
        return text
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _short(text: str, limit: int = 60) -> str:
    """`text` cut for an error message (a value may be up to MAX_SPEC_BYTES long)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def numeric_value(text: str, parameter_type: str) -> int | float:
    """A Katib value string as the Python number a program receives."""
    return int(text) if parameter_type == "int" else float(text)
