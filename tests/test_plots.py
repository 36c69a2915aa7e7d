"""launch.plots: real PNGs read back, boxes counted, the terminal plot, and a missing extra."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import pytest

from launch import plots, stats
from launch.errors import LaunchError
from launch.results import Trial


def sample(configs: int = 4, seeds: int = 10) -> list[stats.ConfigSummary]:
    """A realistic search x seeds sweep, with a few Failed / MetricsUnavailable seeds."""
    rng = random.Random(3)
    trials = []
    number = 0
    for seed in range(seeds):
        for c in range(configs):
            params = {
                "optim.lr": 10.0 ** -(c % 4 + 1),
                "layers": 2 + c,
                "act": "relu",
                "seed": seed,
            }
            status, value = "Succeeded", rng.gauss(0.3 + 0.03 * c, 0.02 + 0.01 * (c % 3))
            if c == 2 and seed in (3, 7):
                status, value = "Failed", None
            if c == 3 and seed == 5:
                status, value = "MetricsUnavailable", None
            trials.append(Trial(f"e-{number:04d}", number, params, status, value))
            number += 1
    return stats.group_by_config(trials, minimize=True, objective_name="loss")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def count_boxes(fig: object) -> int:
    [ax] = fig.axes  # type: ignore[attr-defined]
    return sum(1 for patch in ax.patches if patch.get_gid() == plots.BOX_GID)


def test_png_has_one_box_per_config(tmp_path: Path) -> None:
    summaries = sample()
    path = tmp_path / "loss.png"
    drawn = plots.plot_png(summaries, path, objective="loss", title="exp · loss", minimize=True)
    assert drawn == len(summaries) == 4
    assert path.stat().st_size > 20_000
    width, height = png_size(path)
    assert width > 800 and height > 400
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.05  # not a blank canvas

    fig, n = plots.build_figure(summaries, objective="loss", title="t", minimize=True)
    assert n == count_boxes(fig) == 4
    [ax] = fig.axes
    by_height = sorted(
        zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True)
    )
    assert [label[:4] for _, label in by_height] == ["#4  ", "#3  ", "#2  ", "#1  "]  # best on top
    texts = [t.get_text() for t in ax.texts]
    assert "2 Failed" in texts and "1 MetricsUnavailable" in texts
    assert texts.count("n=10/10") == 2 and "n=8/10" in texts and "n=9/10" in texts


def test_pure_seed_sweep_and_configs_without_values(tmp_path: Path) -> None:
    trials = [Trial(f"e{i}", i, {"seed": i}, "Succeeded", 0.1 * i) for i in range(5)]
    trials += [Trial("x", 9, {"lr": 1, "seed": 0}, "Failed", None)]
    summaries = stats.group_by_config(trials, minimize=False)
    fig, n = plots.build_figure(summaries, objective="acc", title="t", minimize=False)
    assert n == 2 and count_boxes(fig) == 1  # the all-failed config is a row without a box
    assert "no finished trials" in [t.get_text() for t in fig.axes[0].texts]
    assert plots.plot_png(summaries, tmp_path / "a.png", objective="acc", title="t") == 2


def test_many_configs_are_capped(tmp_path: Path) -> None:
    summaries = sample(configs=40, seeds=3)
    path = tmp_path / "many.png"
    assert plots.plot_png(summaries, path, objective="loss", title="t", max_groups=30) == 30
    fig, n = plots.build_figure(summaries, objective="loss", title="t", max_groups=30)
    assert n == count_boxes(fig) == 30
    assert "best 30 of 40 configs" in fig.axes[0].get_title(loc="left")


def test_empty_input_draws_nothing(tmp_path: Path) -> None:
    assert plots.plot_png([], tmp_path / "e.png", objective="loss", title="t") == 0
    assert "no finished trials" in plots.plot_terminal([], objective="loss", title="t")


def test_terminal_plot() -> None:
    summaries = sample()
    text = plots.plot_terminal(summaries, objective="loss", title="exp", minimize=True, width=90)
    lines = text.splitlines()
    assert len(lines) > 12
    assert "\x1b[" not in text  # colorless unless asked
    assert "loss (lower is better)" in text
    for i, s in enumerate(summaries, 1):
        assert f"#{i} n={s.n_succeeded}/{s.n_total}" in text
        assert any(line.startswith(f"#{i}  {s.label}") for line in lines)
    assert "(2 Failed not counted)" in text
    assert max(len(line) for line in lines) <= 90


def test_missing_extra_gives_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "plotext", None)
    with pytest.raises(LaunchError) as exc:
        plots.plot_png(sample(), tmp_path / "x.png", objective="loss", title="t")
    assert exc.value.hint is not None and "'launch[plot]'" not in exc.value.hint
    assert exc.value.exit_code == 2  # a missing extra is a usage error, not a crash
    with pytest.raises(LaunchError, match="plotext"):
        plots.plot_terminal(sample(), objective="loss", title="t")


def test_plots_module_imports_no_plotting_library() -> None:
    import subprocess

    code = (
        "import sys, launch.plots; "
        "sys.exit(1 if {'matplotlib', 'plotext', 'numpy'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_labels_are_short_and_readable() -> None:
    summary = stats.group_by_config(
        [
            Trial(
                "e",
                0,
                {
                    "optim.lr": 0.09036058293737208,
                    "model.encoder.attention_dropout": 0.1,
                    "act": "a" * 40,
                },
                "Succeeded",
                1.0,
            )
        ],
        minimize=True,
    )[0]
    label = plots._label(summary)
    assert "optim.lr=0.09036" in label
    assert "0.0903605829" not in label
    assert all(len(line) <= 26 for line in label.splitlines()) and len(label.splitlines()) <= 3


def _legend_labels(fig: object) -> list[str]:
    [legend] = fig.legends  # type: ignore[attr-defined]
    return [t.get_text() for t in legend.get_texts()]


def test_plain_sweep_legend_names_only_what_is_drawn() -> None:
    # One trial a config (no seeds): no box, no CI, no mean marker, and the legend says so.
    trials = [Trial(f"e{i}", i, {"lr": 10.0**-i}, "Succeeded", 0.1 * i) for i in range(1, 5)]
    summaries = stats.group_by_config(trials, minimize=True)
    fig, n = plots.build_figure(summaries, objective="loss", title="t", minimize=True)
    assert n == 4 and count_boxes(fig) == 0
    assert _legend_labels(fig) == ["one trial"]
    # A seed sweep keeps all three.
    fig, _ = plots.build_figure(sample(), objective="loss", title="t", minimize=True)
    assert _legend_labels(fig) == ["one trial", "mean and its 95% CI", "median; box: middle half"]


def test_terminal_boxes_of_neighbouring_configs_do_not_touch() -> None:
    text = plots.plot_terminal(sample(), objective="loss", title="exp", minimize=True, width=90)
    lines = text.splitlines()
    ticks = [i for i, line in enumerate(lines) if "┤" in line and "#" in line]
    assert len(ticks) == 4
    for upper, lower in itertools.pairwise(ticks):
        between = lines[upper + 1 : lower]
        assert any("█" not in line for line in between), "\n".join(lines[upper : lower + 1])
