"""Seed-sweep summaries as text: aligned tables for people, CSV rows for spreadsheets.

`text_table` aligns any header and rows (numbers right-aligned); `to_table_rows` / `to_rows` /
`to_csv` lay out `launch.stats.ConfigSummary`s, `comparison_rows` a `launch.stats.Comparison`.
`param_text` is a parameter value as the trial's program sees it, which also keys configs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from launch.contract import ParamValue
from launch.results import format_number

if TYPE_CHECKING:
    from launch.stats import Comparison, ConfigSummary

__all__ = [
    "comparison_rows",
    "not_counted_text",
    "param_text",
    "text_table",
    "to_csv",
    "to_rows",
    "to_table_rows",
]


def param_text(value: ParamValue) -> str:
    """A value as the trial's program sees it (same text as `katib.format_value`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _seeds_text(seeds: Sequence[ParamValue]) -> str:
    """`0-9` for a run of consecutive ints, else a comma list (shortened past 8)."""
    if not seeds:
        return ""
    ints = [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)]
    if len(ints) == len(seeds) and len(ints) > 2:
        ordered = sorted(ints)
        if ordered == list(range(ordered[0], ordered[-1] + 1)):
            return f"{ordered[0]}-{ordered[-1]}"
    texts = [param_text(s) for s in seeds]
    return ",".join(texts) if len(texts) <= 8 else ",".join(texts[:8]) + f",... ({len(texts)})"


def not_counted_text(summary: ConfigSummary) -> str:
    """`2 Failed, 1 MetricsUnavailable`, or empty."""
    return ", ".join(f"{n} {status}" for status, n in summary.not_counted.items())


def _param_names(summaries: Sequence[ConfigSummary]) -> list[str]:
    names: list[str] = []
    for s in summaries:
        names.extend(n for n in s.params if n not in names)
    return names


def _param_cells(s: ConfigSummary, names: Sequence[str], exact: bool = True) -> list[str]:
    """Param values as the program sees them, or (`exact=False`, for people) floats to 6 digits."""
    cells = []
    for p in names:
        value = s.params.get(p)
        if value is None:
            cells.append("")
        elif not exact and isinstance(value, float):
            cells.append(format_number(value))
        else:
            cells.append(param_text(value))
    return cells


def to_table_rows(summaries: Sequence[ConfigSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows for people: `n` as `8/10`, the CI as `[lo, hi]`, failures spelled out."""
    names = _param_names(summaries)
    metric = summaries[0].metric if summaries else "objective"
    header = [
        "rank",
        *names,
        "n",
        f"{metric} mean",
        "std",
        "95% CI",
        "min",
        "median",
        "max",
        "not counted",
        "seeds",
    ]
    rows = []
    for i, s in enumerate(summaries, 1):
        ci = "" if s.ci_lo is None else f"[{format_number(s.ci_lo)}, {format_number(s.ci_hi)}]"
        rows.append(
            [
                str(i),
                *_param_cells(s, names, exact=False),
                f"{s.n_succeeded}/{s.n_total}",
                format_number(s.mean),
                format_number(s.std),
                ci,
                format_number(s.min),
                format_number(s.median),
                format_number(s.max),
                not_counted_text(s),
                _seeds_text(s.seeds),
            ]
        )
    return header, rows


def to_rows(summaries: Sequence[ConfigSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows for machines (CSV): one value per column, a column per status."""
    names = _param_names(summaries)
    statuses: list[str] = []
    for s in summaries:
        statuses.extend(k for k in s.not_counted if k not in statuses)
    header = [
        "rank",
        *names,
        "metric",
        "n_succeeded",
        "n_total",
        "mean",
        "std",
        "ci95_lo",
        "ci95_hi",
        "min",
        "median",
        "max",
        *(f"n_{status}" for status in statuses),
        "seeds",
    ]
    rows = []
    for i, s in enumerate(summaries, 1):
        rows.append(
            [
                str(i),
                *_param_cells(s, names),
                s.metric,
                str(s.n_succeeded),
                str(s.n_total),
                *(
                    format_number(v)
                    for v in (s.mean, s.std, s.ci_lo, s.ci_hi, s.min, s.median, s.max)
                ),
                *(str(s.not_counted.get(status, 0)) for status in statuses),
                " ".join(param_text(seed) for seed in s.seeds),
            ]
        )
    return header, rows


_NUMBERS = re.compile(
    r"(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)|\d+/\d+)"
    r"(?:\n(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)|\d+/\d+))*"
)


def _numeric_column(cells: Sequence[str]) -> bool:
    """Every non-empty cell a number or a count like `8/10`: one regex pass (C speed) over the
    column; `_numeric` decides for anything the pattern does not cover (`1_000`, `Infinity`)."""
    filled = [cell for cell in cells if cell]
    return bool(_NUMBERS.fullmatch("\n".join(filled))) or all(_numeric(c) for c in filled)


def _numeric(cell: str) -> bool:
    """A number, or a count like `8/10`."""
    try:
        float(cell)
    except ValueError:
        head, _, tail = cell.partition("/")
        return head.isdigit() and tail.isdigit()
    return True


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, gap: str = "  ") -> str:
    """A plain aligned text table (numbers right-aligned), linear in the number of rows.

    For large outputs, where rendering through rich costs ~1 ms a row: column by column with
    builtins, then one format string per row (C-level padding).
    """
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    widths = [
        max(len(h), max(map(len, col), default=0)) for h, col in zip(header, columns, strict=True)
    ]
    numeric = [_numeric_column(col) for col in columns]
    fmt = gap.join(f"{{:{'>' if num else '<'}{w}}}" for w, num in zip(widths, numeric, strict=True))
    lines = [fmt.format(*row).rstrip() for row in (header, *rows)]
    return "\n".join(lines) + "\n"


def to_csv(summaries: Sequence[ConfigSummary]) -> str:
    return rows_csv(*to_rows(summaries))


def rows_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A header and rows as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def comparison_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """A small table: one row per experiment, then the difference."""
    header = ["", "n", f"{c.metric} mean", "difference (B - A)", "95% CI", "p"]
    ci = "" if c.ci_lo is None else f"[{format_number(c.ci_lo)}, {format_number(c.ci_hi)}]"
    rows = [
        [f"A: {c.name_a}", str(c.n_a), format_number(c.mean_a), "", "", ""],
        [f"B: {c.name_b}", str(c.n_b), format_number(c.mean_b), "", "", ""],
        ["B - A", "", "", format_number(c.diff), ci, "" if c.p is None else f"{c.p:.3g}"],
    ]
    return header, rows
