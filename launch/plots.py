"""Per-config distribution plots of a seed sweep: a PNG (matplotlib) or the terminal (plotext).

One row per config, best first (the order `stats.group_by_config` returns): a box plot of the
objective with every seed's value as a jittered dot, the mean as a diamond, `n` and the trials
left out (Failed, MetricsUnavailable, ...) written beside it. matplotlib and plotext are the
`plot` extra and are imported only when a plot is asked for.
"""

from __future__ import annotations

import random
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from launch.errors import MissingExtraError
from launch.stats import ConfigSummary
from launch.tables import not_counted_text

MAX_GROUPS = 30
ROWS_PER_CONFIG = 4  # text rows a config gets in the terminal plot
TERMINAL_BOX_WIDTH = 0.4  # of the distance between configs: a gap is left between boxes
BOX_GID = "launch-box"  # set on each drawn box, so tests (and people) can count them

_BEST = "#2e7d32"
_OTHER = "#1f77b4"
_FAIL = "#c62828"


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from launch import install

        how = install.detect()
        hint = install.extra_hint("plot", how)
        if how.method == install.SINGLE_FILE:
            hint += ", or export with --format csv and plot elsewhere"
        raise MissingExtraError(
            f"--plot needs {module.split('.')[0]}, which is not installed", hint=hint
        ) from None


def _short(value: object, digits: int = 4) -> str:
    """A param value for a label: floats to `digits` significant digits, long text cut."""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if len(text) <= 16 else text[:15] + "…"


def _label(summary: ConfigSummary, width: int = 26, lines: int = 3) -> str:
    """Param text (`name=value` words) wrapped to `width` columns and at most `lines` lines."""
    words = []
    for name, value in summary.params.items():
        short = _short(value)
        room = width - len(short) - 2
        if len(name) > room:  # keep the end of a long dotted name: it is the specific part
            name = "…" + name[-max(room, 3) :]
        words.append(f"{name}={short}")
    wrapped = textwrap.wrap(" ".join(words) or "(all trials)", width, break_long_words=False)
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], wrapped[lines - 1][: width - 1] + "…"]
    return "\n".join(wrapped or [""])


def _direction(minimize: bool | None) -> str:
    return "" if minimize is None else (" (lower is better)" if minimize else " (higher is better)")


def build_figure(
    summaries: Sequence[ConfigSummary],
    *,
    objective: str,
    title: str,
    minimize: bool | None = None,
    max_groups: int = MAX_GROUPS,
) -> tuple[Any, int]:
    """The matplotlib Figure (Agg backend) and the number of config rows drawn."""
    matplotlib = _need("matplotlib")
    matplotlib.use("Agg")
    _need("matplotlib.pyplot")
    from matplotlib.figure import Figure

    shown = list(summaries[:max_groups])
    n = len(shown)
    if len(summaries) > n:
        title = f"{title}\nbest {n} of {len(summaries)} configs"
    fig = Figure(figsize=(10, 1.6 + 0.62 * max(n, 1)), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontsize=12)
    ax.set_xlabel(f"{objective}{_direction(minimize)}", fontsize=11)
    positions = list(range(n, 0, -1))  # best config at the top
    rng = random.Random(0)  # deterministic jitter: the same data gives the same picture
    with_values = [(y, s) for y, s in zip(positions, shown, strict=True) if s.values]
    # A box, a mean and a CI only where they say something: a config of one trial (a plain
    # sweep) is its dot alone, and the legend names only what is drawn.
    boxed = [(y, s) for y, s in with_values if len(s.values) >= 2]
    drew_ci = drew_mean = False
    if boxed:
        kwargs: dict[str, Any] = {
            "positions": [y for y, _ in with_values],
            "widths": 0.55,
            "patch_artist": True,
            "showfliers": False,  # every value is drawn as a dot already
            "medianprops": {"color": "black", "linewidth": 1.6},
            "whiskerprops": {"color": "#555555"},
            "capprops": {"color": "#555555"},
        }
        data = [list(s.values) for _, s in boxed]
        try:
            parts = ax.boxplot(data, orientation="horizontal", **kwargs)
        except TypeError:  # matplotlib < 3.10
            parts = ax.boxplot(data, vert=False, **kwargs)
        from matplotlib.colors import to_rgba

        for box, (y, _) in zip(parts["boxes"], boxed, strict=True):
            color = _BEST if y == n else _OTHER
            box.set(facecolor=to_rgba(color, 0.2), edgecolor=color, linewidth=1.3, gid=BOX_GID)
    if with_values:
        for y, s in with_values:
            color = _BEST if y == n else _OTHER
            jitter = [y + rng.uniform(-0.17, 0.17) for _ in s.values]
            ax.scatter(s.values, jitter, s=22, color=color, alpha=0.8, zorder=3, linewidths=0)
            if len(s.values) < 2:
                continue
            if s.ci_lo is not None and s.ci_hi is not None:
                ax.hlines(y, s.ci_lo, s.ci_hi, color="black", linewidth=2.6, zorder=4)
                drew_ci = True
            if s.mean is not None:
                drew_mean = True
                ax.scatter(
                    [s.mean],
                    [y],
                    marker="D",
                    s=40,
                    color="white",
                    edgecolors="black",
                    linewidths=1.3,
                    zorder=5,
                )
    ax.set_yticks(positions)
    ranks = [f"#{i}  " if n > 1 else "" for i in range(1, n + 1)]
    ax.set_yticklabels([r + _label(s) for r, s in zip(ranks, shown, strict=True)], fontsize=9)
    ax.set_ylim(0.4, n + 0.6)
    ax.grid(axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    # n and what was left out, at the right edge of each row (axes x, data y).
    transform = ax.get_yaxis_transform()
    for y, s in zip(positions, shown, strict=True):
        text = f"n={s.n_succeeded}/{s.n_total}"
        ax.text(1.01, y + 0.12, text, transform=transform, fontsize=9, va="center", ha="left")
        left_out = not_counted_text(s)
        if left_out:
            ax.text(
                1.01,
                y - 0.2,
                left_out.replace(", ", "\n"),
                transform=transform,
                fontsize=8,
                va="center",
                ha="left",
                color=_FAIL,
            )
        if not s.values:
            ax.text(
                0.5,
                y,
                "no finished trials",
                transform=transform,
                ha="center",
                va="center",
                fontsize=9,
                color=_FAIL,
                style="italic",
            )
    if with_values:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="o", linestyle="", color=_OTHER, label="one trial")]
        if drew_mean:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="D",
                    color="black",
                    linewidth=2.6 if drew_ci else 0,
                    markerfacecolor="white",
                    label="mean and its 95% CI" if drew_ci else "mean",
                )
            )
        if boxed:
            handles.append(Line2D([], [], color="black", label="median; box: middle half"))
        fig.legend(
            handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
            fontsize=8,
        )  # fmt: skip
    return fig, n


def plot_png(
    summaries: Sequence[ConfigSummary],
    path: str | Path,
    *,
    objective: str,
    title: str,
    minimize: bool | None = None,
    max_groups: int = MAX_GROUPS,
) -> int:
    """Write the strip + box plot as a PNG; returns the number of config rows drawn."""
    fig, n = build_figure(
        summaries, objective=objective, title=title, minimize=minimize, max_groups=max_groups
    )
    fig.savefig(str(path), dpi=130)
    return n


def plot_terminal(
    summaries: Sequence[ConfigSummary],
    *,
    objective: str,
    title: str,
    minimize: bool | None = None,
    width: int | None = None,
    height: int | None = None,
    color: bool = False,
    max_groups: int = 15,
) -> str:
    """The same plot drawn with text (plotext) for `--plot -`; best config at the top."""
    plotext = _need("plotext")
    shown = [s for s in summaries[:max_groups] if s.values]
    hidden = len(summaries) - len(shown)
    if hidden:
        title = f"{title} (best {len(shown)} with values of {len(summaries)} configs)"
    cols = width or min(shutil.get_terminal_size((100, 24)).columns, 140)
    # Four text rows a config and boxes 0.4 of a row apart wide: neighbouring boxes never touch.
    rows = height or min(
        max(12, ROWS_PER_CONFIG * len(shown) + 6), ROWS_PER_CONFIG * max_groups + 6
    )
    # Short tick labels; the configs are spelled out in a key under the plot.
    labels = [f"#{i} n={s.n_succeeded}/{s.n_total}" for i, s in enumerate(shown, 1)][::-1]
    key = []
    for i, s in enumerate(shown, 1):
        left_out = not_counted_text(s)
        key.append(
            f"#{i}  {_label(s, width=200, lines=1)}  mean {s.mean:.6g}"
            + (f"  ({left_out} not counted)" if left_out else "")
        )
    data = [list(s.values) for s in shown][::-1]
    xlabel = f"{objective}{_direction(minimize)}"
    rng = random.Random(0)
    if not shown:
        return f"{title}\n(no finished trials to plot)\n"
    figure = getattr(plotext, "figure", None)
    if figure is not None and hasattr(figure, "box"):  # plotext >= 6
        figure.clear()
        terminal = getattr(plotext, "terminal", None)
        if terminal is not None and hasattr(terminal, "limit"):
            terminal.limit(False, False)  # the size below already fits the terminal
        if not color:
            figure.theme("colorless")
        figure.draw(
            figure.box(labels, data, orientation="horizontal", fill=False, width=TERMINAL_BOX_WIDTH)
        )
        for y, values in enumerate(data, 1):
            jitter = [y + rng.uniform(-0.15, 0.15) for _ in values]
            figure.draw(figure.signal(values, jitter, marker="dot"))
        figure.title(title)
        figure.label(xlabel)
        figure.plot_size(cols, rows)
        text: str = figure.build().string(colorless=not color)
        figure.clear()
        return text + "\n" + "\n".join(key) + "\n"
    # plotext 5.x: module-level functions.
    plotext.clear_figure()
    if not color:
        plotext.theme("clear")
    plotext.box(labels, data, orientation="horizontal", width=TERMINAL_BOX_WIDTH)
    for y, values in enumerate(data, 1):
        plotext.scatter(values, [y + rng.uniform(-0.15, 0.15) for _ in values], marker="dot")
    plotext.title(title)
    plotext.xlabel(xlabel)
    plotext.plotsize(cols, rows)
    built: str = plotext.build()
    plotext.clear_figure()
    if not color and hasattr(plotext, "uncolorize"):
        built = plotext.uncolorize(built)
    return built + "\n" + "\n".join(key) + "\n"
