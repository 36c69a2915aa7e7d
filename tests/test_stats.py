"""launch.stats, student_t and tables against scipy (a dev dependency): t quantiles, CIs, Welch;
grouping and its table/CSV/JSON forms."""

from __future__ import annotations

import csv
import io
import math
import random
import subprocess
import sys

import pytest
from scipy import stats as sps

from launch import contract, stats, student_t, tables
from launch.results import Trial

DFS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, 200, 500]
DFS += [1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000, 0.5, 1.5, 2.7, 9.3, 17.77, 123.4]
QS = [1e-6, 0.001, 0.01, 0.025, 0.05, 0.1, 0.3, 0.45, 0.55, 0.7, 0.9, 0.95, 0.975, 0.99, 0.999]


@pytest.mark.parametrize("df", DFS)
def test_t_quantiles_match_scipy(df: float) -> None:
    for q in QS:
        expected = sps.t.ppf(q, df)
        assert student_t.t_ppf(q, df) == pytest.approx(expected, rel=1e-8, abs=1e-6), (q, df)
    assert student_t.t_ppf(0.5, df) == 0.0


@pytest.mark.parametrize("df", [1, 2, 5, 9, 30, 1_000, 1_000_000, 3.7])
def test_t_cdf_and_two_sided_tail_match_scipy(df: float) -> None:
    for t in [-30.0, -4.0, -1.0, -0.1, 0.0, 0.2, 1.5, 2.0, 3.0, 8.0, 100.0]:
        assert student_t.t_cdf(t, df) == pytest.approx(sps.t.cdf(t, df), rel=1e-9, abs=1e-12)
        two_sided = 2 * sps.t.sf(abs(t), df)
        assert student_t.t_sf2(t, df) == pytest.approx(two_sided, rel=1e-8, abs=1e-14)


def test_t_ppf_rejects_bad_input() -> None:
    for q, df in [(0.0, 5), (1.0, 5), (0.5, 0), (-0.1, 3)]:
        with pytest.raises(ValueError):
            student_t.t_ppf(q, df)


def test_huge_df_uses_the_normal_limit() -> None:
    assert student_t.t_ppf(0.975, 1e9) == pytest.approx(sps.norm.ppf(0.975), abs=1e-8)


def test_stats_imports_no_numpy_or_scipy() -> None:
    code = (
        "import sys, launch.stats; "
        "bad = [m for m in ('numpy', 'scipy', 'yaml', 'pydantic') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


_rng = random.Random(7)
SAMPLES = [
    [0.52, 0.49, 0.55, 0.51, 0.50],
    [1.0, 2.0],
    [3.1, 2.9, 3.3, 3.0, 2.7, 3.4, 3.2, 2.8, 3.05, 3.15],
    [_rng.gauss(10, 3) for _ in range(200)],
]


@pytest.mark.parametrize("values", SAMPLES)
def test_mean_ci_matches_scipy(values: list[float]) -> None:
    n = len(values)
    lo, hi = sps.t.interval(0.95, n - 1, loc=sps.tmean(values), scale=sps.sem(values))
    got = stats.mean_ci(values)
    assert got is not None
    assert got[0] == pytest.approx(lo, rel=1e-9)
    assert got[1] == pytest.approx(hi, rel=1e-9)


WELCH_PAIRS = [
    ([0.52, 0.49, 0.55, 0.51, 0.50], [0.47, 0.45, 0.50, 0.44, 0.46, 0.48]),
    ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5, 4.5]),
    ([10.0, 10.1, 9.9], [10.0, 10.05, 9.95]),
    ([5.0, 5.0, 5.0, 5.1], [6.0, 7.5, 9.0, 4.0, 8.0]),
    (
        [_rng.gauss(0, 1) for _ in range(30)],
        [_rng.gauss(0.3, 2) for _ in range(12)],
    ),
]


@pytest.mark.parametrize(("a", "b"), WELCH_PAIRS)
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    ref = sps.ttest_ind(b, a, equal_var=False)
    got = stats.welch(a, b, minimize=True)
    assert got.t == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-8)
    assert got.df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (got.ci_lo, got.ci_hi) == (
        pytest.approx(ci.low, rel=1e-8),
        pytest.approx(ci.high, rel=1e-8),
    )
    assert got.diff == pytest.approx(sum(b) / len(b) - sum(a) / len(a))


def test_welch_verdict_respects_direction() -> None:
    a = [0.52, 0.49, 0.55, 0.51, 0.50, 0.53]
    b = [0.42, 0.41, 0.44, 0.40, 0.43, 0.42]  # lower
    low = stats.welch(a, b, minimize=True, metric="loss", name_a="base", name_b="new")
    assert low.better == "new"
    assert low.verdict.startswith("new is better than base (p=")
    high = stats.welch(a, b, minimize=False, metric="acc", name_a="base", name_b="new")
    assert high.better == "base"
    assert high.verdict.startswith("base is better than new")
    same = stats.welch(a, [x + 0.001 for x in reversed(a)], minimize=True)
    assert same.better is None
    assert same.verdict.startswith("no significant difference")


def test_welch_edge_cases() -> None:
    few = stats.welch([1.0], [2.0, 3.0], minimize=True)
    assert few.p is None and few.better is None and "not enough" in few.verdict
    assert stats.welch([], [], minimize=True).diff is None
    constant_same = stats.welch([1.0, 1.0], [1.0, 1.0, 1.0], minimize=True)
    assert constant_same.p == 1.0 and constant_same.better is None
    constant_diff = stats.welch([1.0, 1.0], [2.0, 2.0], minimize=False)
    assert constant_diff.p == 0.0 and constant_diff.better == "B"


def test_comparison_json_round_trip() -> None:
    c = stats.welch(*WELCH_PAIRS[0], minimize=True, metric="loss", name_a="x", name_b="y")
    assert stats.comparison_from_json(stats.comparison_to_json(c)) == c
    header, rows = tables.comparison_rows(c)
    assert len(rows) == 3 and all(len(r) == len(header) for r in rows)


# --------------------------------------------------------------------------- grouping


def trial(
    number: int,
    params: dict[str, object],
    status: str = "Succeeded",
    objective: float | None = None,
    **metrics: float,
) -> Trial:
    return Trial(
        name=f"exp-{number:04d}",
        number=number,
        params=params,  # type: ignore[arg-type]
        status=status,
        objective=objective,
        metrics={"loss": objective, **metrics} if objective is not None else dict(metrics),
    )


def seed_sweep() -> list[Trial]:
    """A pure seed sweep: 6 seeds, one Failed and one MetricsUnavailable."""
    values = [0.5, 0.52, 0.48, None, 0.51, None]
    statuses = ["Succeeded"] * 3 + ["Failed", "Succeeded", "MetricsUnavailable"]
    return [
        trial(i, {"seed": i}, status, value)
        for i, (value, status) in enumerate(zip(values, statuses, strict=True))
    ]


def test_pure_seed_sweep_is_one_group_with_failures_counted() -> None:
    [group] = stats.group_by_config(seed_sweep(), minimize=True, objective_name="loss")
    assert group.params == {}
    assert group.label == "(all trials)"
    assert (group.n_total, group.n_succeeded) == (6, 4)
    assert group.not_counted == {"Failed": 1, "MetricsUnavailable": 1}
    assert group.failed_trials == (3, 5)
    assert group.seeds == (0, 1, 2, 3, 4, 5)
    values = [0.5, 0.52, 0.48, 0.51]
    assert group.values == tuple(values)
    assert group.mean == pytest.approx(sum(values) / 4)
    assert group.std == pytest.approx(float(sps.tstd(values)))
    assert group.median == pytest.approx(0.505)
    assert (group.min, group.max) == (0.48, 0.52)
    lo, hi = sps.t.interval(0.95, 3, loc=group.mean, scale=sps.sem(values))
    assert (group.ci_lo, group.ci_hi) == (pytest.approx(lo), pytest.approx(hi))


def search_x_seeds() -> list[Trial]:
    """3 configs (lr x layers) x 3 seeds, trials interleaved as a real run would finish them."""
    rows = []
    means = {(0.1, 1): 0.9, (0.01, 1): 0.5, (0.01, 2): 0.7}
    number = 0
    for seed in range(3):
        for (lr, layers), mean in means.items():
            rows.append(
                trial(
                    number, {"lr": lr, "layers": layers, "seed": seed}, objective=mean + 0.01 * seed
                )
            )
            number += 1
    return rows


@pytest.mark.parametrize(("minimize", "order"), [(True, [0.5, 0.7, 0.9]), (False, [0.9, 0.7, 0.5])])
def test_grouping_with_extra_params_ranks_by_mean(minimize: bool, order: list[float]) -> None:
    groups = stats.group_by_config(search_x_seeds(), minimize=minimize, objective_name="loss")
    assert [round(g.mean or 0, 2) for g in groups] == [round(m + 0.01, 2) for m in order]
    assert all(g.n_total == g.n_succeeded == 3 and "seed" not in g.params for g in groups)
    assert {tuple(sorted(g.params.items())) for g in groups} == {
        (("layers", 1), ("lr", 0.1)),
        (("layers", 1), ("lr", 0.01)),
        (("layers", 2), ("lr", 0.01)),
    }
    assert all(g.seeds == (0, 1, 2) for g in groups)


def test_config_key_ignores_seed_and_order_and_value_spelling() -> None:
    assert stats.config_key({"seed": 1, "lr": 0.1, "a": "x"}) == stats.config_key(
        {"a": "x", "lr": "0.1", "seed": 9}
    )
    assert stats.config_key({"s": 1, "lr": 0.1}, "s") == (("lr", "0.1"),)
    assert stats.config_key({"lr": 1}) != stats.config_key({"lr": 1.0})  # `--lr=1` vs `--lr=1.0`
    hash(stats.config_key({"flag": True}))


def test_n_below_two_shows_no_ci_and_all_failed_ranks_last() -> None:
    trials = [
        trial(0, {"lr": 1, "seed": 0}, objective=0.3),
        trial(1, {"lr": 1, "seed": 1}, "Failed"),
        trial(2, {"lr": 2, "seed": 0}, "Failed"),
        trial(3, {"lr": 2, "seed": 1}, "Killed"),
        trial(4, {"lr": 3, "seed": 0}, objective=0.9),
        trial(5, {"lr": 3, "seed": 1}, objective=0.8),
    ]
    groups = stats.group_by_config(trials, minimize=True, objective_name="loss")
    assert [g.params["lr"] for g in groups] == [1, 3, 2]  # by mean; no mean last
    one, none = groups[0], groups[2]
    assert one.params == {"lr": 1}
    assert (one.n_succeeded, one.mean, one.std, one.ci_lo, one.ci_hi) == (1, 0.3, None, None, None)
    assert none.params == {"lr": 2} and none.mean is None and none.median is None
    assert none.not_counted == {"Failed": 1, "Killed": 1}
    header, rows = tables.to_table_rows([one, none])
    assert rows[0][header.index("95% CI")] == ""
    assert rows[0][header.index("n")] == "1/2"
    assert rows[0][header.index("not counted")] == "1 Failed"


def test_metric_option_and_missing_or_non_finite_values_are_counted() -> None:
    trials = [
        trial(0, {"seed": 0}, objective=0.5, acc=0.8),
        trial(1, {"seed": 1}, objective=0.4, acc=0.9),
        trial(2, {"seed": 2}, objective=0.45),  # no acc
        trial(3, {"seed": 3}, objective=math.nan, acc=math.inf),
    ]
    [acc] = stats.group_by_config(trials, minimize=False, metric="acc")
    assert acc.metric == "acc"
    assert acc.values == (0.8, 0.9)
    assert acc.not_counted == {"Missing": 1, "NonFinite": 1}
    [loss] = stats.group_by_config(trials, minimize=True, objective_name="loss")
    assert loss.values == (0.5, 0.4, 0.45) and loss.not_counted == {"NonFinite": 1}


def test_has_seed_axis() -> None:
    assert stats.has_seed_axis(search_x_seeds())
    assert not stats.has_seed_axis(
        [trial(0, {"lr": 1}, objective=1.0), trial(1, {"lr": 2}, objective=1.0)]
    )
    assert not stats.has_seed_axis([trial(0, {"seed": 0, "lr": 1}, objective=1.0)])


def test_csv_and_json_round_trip() -> None:
    groups = stats.group_by_config(
        search_x_seeds() + seed_sweep()[3:4], minimize=True, objective_name="loss"
    )
    assert stats.from_json(stats.to_json(groups)) == groups
    parsed = list(csv.reader(io.StringIO(tables.to_csv(groups))))
    header, rows = parsed[0], parsed[1:]
    assert header[:3] == ["rank", "lr", "layers"]
    assert len(rows) == len(groups) and all(len(r) == len(header) for r in rows)
    for row, group in zip(rows, groups, strict=True):
        mean = row[header.index("mean")]
        if group.mean is None:
            assert mean == ""
        else:
            assert float(mean) == pytest.approx(group.mean, rel=1e-5)
        assert int(row[header.index("n_total")]) == group.n_total
    assert "n_Failed" in header  # the seed-only Failed trial forms its own config
    header, rows = tables.to_rows([])  # empty input: the fixed columns, no rows
    assert header[:2] == ["rank", "metric"] and "median" in header and rows == []


def test_compare_trials_uses_each_best_config() -> None:
    a = [trial(i, {"seed": i}, objective=0.5 + 0.01 * (i % 3)) for i in range(6)]
    b = [trial(i, {"seed": i}, objective=0.45 + 0.01 * (i % 3)) for i in range(6)]
    c, best_a, best_b = stats.compare_trials(
        a, b, minimize=True, objective_name="loss", name_a="a", name_b="b"
    )
    assert best_a is not None and best_b is not None
    assert c.better == "b" and c.diff == pytest.approx(-0.05)
    assert c.metric == "loss" and c.n_a == c.n_b == 6


# --------------------------------------------------------------------------- rerun


def test_rerun_command_local_and_cluster() -> None:
    t = trial(3, {"optim.lr": 0.01, "act": "it's", "seed": 2}, objective=0.5)
    local = contract.rerun_command(
        t,
        command=["python", "train.py"],
        fixed={"layers": 2},
        commit="abc123",
        repo_root="/home/u/my repo",
        subdir="src",
    )
    assert local.startswith(
        "git -C '/home/u/my repo' worktree add --detach /tmp/launch-rerun/exp-0003/worktree abc123 && cd /tmp/launch-rerun/exp-0003/worktree/src && "
    )
    assert local.endswith(
        "python train.py --layers=2 --optim.lr=0.01 '--act=it'\"'\"'s' --seed=2 "
        "--tensorboard_dir=/tmp/launch-rerun/exp-0003/tfevent"
    )
    cluster = contract.rerun_command(
        t,
        command=["python", "train.py"],
        fixed={"layers": 2},
        image="reg/x@sha256:" + "a" * 64,
        subdir="src",
        gpus=1,
    )
    assert cluster.startswith(f"docker run --rm --gpus 1 reg/x@sha256:{'a' * 64} sh -c ")
    # The sh -c string, unquoted once by the shell, is the exact argv after `cd`.
    import shlex

    inner = shlex.split(cluster)[-1]
    assert shlex.split(inner) == [
        "cd", "src", "&&", "python", "train.py", "--layers=2", "--optim.lr=0.01", "--act=it's",
        "--seed=2", "--tensorboard_dir=/var/log/katib/tfevent/",
    ]  # fmt: skip


def test_rerun_command_runs_the_same_argv(tmp_path: object) -> None:
    t = trial(0, {"x": "a b", "flag": True}, objective=1.0)
    cmd = contract.rerun_command(
        t, command=[sys.executable, "-c", "import sys; print(sys.argv[1:])"], tensorboard_dir="/tb"
    )
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['--x=a b', '--flag=true', '--tensorboard_dir=/tb']"


def test_text_table_aligns_and_scales() -> None:
    text = tables.text_table(
        ["rank", "act", "n", "mean"], [["1", "relu", "8/10", "0.35"], ["10", "gelu", "10/10", ""]]
    )
    assert text.splitlines() == [
        "rank  act       n  mean",
        "   1  relu   8/10  0.35",
        "  10  gelu  10/10",
    ]
    groups = stats.group_by_config(search_x_seeds(), minimize=True, objective_name="loss")
    lines = tables.text_table(*tables.to_table_rows(groups)).splitlines()
    assert len(lines) == 4 and lines[0].startswith("rank")
