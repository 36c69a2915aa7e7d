"""Seed studies (`launch seeds EXP --top K --seeds N`) on the local backend, end to end: real git
repos, real trainer processes whose objective is a known function of the params plus a known
noise per seed, the real `launch` console script. Also the pure parts: choosing the top K
(failed trials, ties, hyperband), the study spec, and its trials read back as configs."""

from __future__ import annotations

import json
import math
import statistics
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launch import sampling, seed_study, stats
from launch import spec as spec_module
from launch.errors import SpecError, UsageError
from launch.results import Trial
from launch.spec import CONFIG_PARAM, LaunchSpec
from tests.gitrepo import make_repo
from tests.test_local import LAUNCH, experiment, launch

NOISE = [0.0, 0.3, -0.2, 0.5, 0.1, -0.4]

TRAINER = f'''
"""Objective: a known function of the params, plus NOISE[seed]; layers=4 crashes."""
import sys
from dataclasses import dataclass
import draccus

@dataclass
class Config:
    lr: float = 0.1
    layers: int = 1
    act: str = "relu"
    seed: int = 0
    tensorboard_dir: str = "tb"

cfg = draccus.parse(config_class=Config)
if cfg.layers == 4:
    print("layers=4 is broken", file=sys.stderr)
    sys.exit(3)
value = 10 * (cfg.lr - 0.3) ** 2 + cfg.layers + (0.05 if cfg.act == "tanh" else 0.0)
value += {NOISE!r}[cfg.seed]
from tensorboardX import SummaryWriter
w = SummaryWriter(cfg.tensorboard_dir)
w.add_scalar("loss", value, 0)
w.close()
'''

SEARCH = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: 7}]}
parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: 0.01, max: 0.6}}
  - {name: layers, parameterType: int, feasibleSpace: {min: 1, max: 4}}
  - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, tanh]}}
maxTrialCount: 8
parallelTrialCount: 4
"""


def known(params: dict[str, Any], seed: int = 0) -> float:
    """The trainer's objective, as the TensorBoard scalar (float32) carries it."""
    value = (
        10 * (params["lr"] - 0.3) ** 2
        + params["layers"]
        + (0.05 if params["act"] == "tanh" else 0.0)
    )
    value += NOISE[seed]
    return float(struct.unpack("f", struct.pack("f", value))[0])


# t(0.975, 3): the 95% CI of a mean of 4 values.
T_975_3 = 3.182446305284263


def project(tmp_path: Path, search: str = SEARCH) -> Path:
    return make_repo(tmp_path, files={"train.py": TRAINER, "search.yaml": search}).path


def rows_of(cwd: Path, name: str) -> list[dict[str, Any]]:
    done = launch(cwd, "results", name, "--per-trial", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


# --------------------------------------------------------------------------- end to end


@pytest.mark.timeout(400)
def test_search_then_seed_study_of_its_top_configs(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    search = launch(cwd, "--backend", "local", "--name", "src", "search.yaml", "--", sys.executable,
                    "train.py")  # fmt: skip
    assert search.returncode == 0, search.stderr
    source = rows_of(cwd, "src")
    finished = [r for r in source if r["status"] == "Succeeded"]
    failed = [r for r in source if r["status"] != "Succeeded"]
    assert failed and all(r["params"]["layers"] == 4 for r in failed)
    # The right top 3: by the known function (the search ran seed 0, noise 0).
    expected = sorted(finished, key=lambda r: known(r["params"]))[:3]
    for row in finished:
        assert row["objective"] == known(row["params"])

    done = launch(cwd, "seeds", "src", "--top", "3", "--seeds", "4", "--name", "st", "--",
                  sys.executable, "train.py", timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        f"{len(failed)} trials of src had no finished value ({len(failed)} Failed)" in done.stderr
    )
    assert (
        "seed study of src: its 3 best configs by mean loss (lowest first) x 4 seeds" in done.stderr
    )

    meta = experiment(cwd, "st").meta()
    assert meta["study"]["source"] == "src" and meta["study"]["seeds"] == [0, 1, 2, 3]
    assert [c["params"] for c in meta["study"]["configs"]] == [r["params"] for r in expected]
    assert meta["spec"]["configs"] == [r["params"] for r in expected]

    shown = launch(cwd, "results", "st", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    groups = json.loads(shown.stdout)
    assert sorted(g["config"] for g in groups) == [1, 2, 3]
    for group in groups:
        config = expected[group["config"] - 1]["params"]
        assert group["params"] == config
        values = [known(config, seed) for seed in range(4)]
        assert group["n_succeeded"] == 4 and group["seeds"] == [0, 1, 2, 3]
        assert group["values"] == values
        assert group["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert group["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
        assert group["median"] == pytest.approx(statistics.median(values), rel=1e-12)
        half = T_975_3 * statistics.stdev(values) / math.sqrt(4)
        assert group["ci_lo"] == pytest.approx(statistics.fmean(values) - half, rel=1e-9)
        assert group["ci_hi"] == pytest.approx(statistics.fmean(values) + half, rel=1e-9)
    # Every trial got its config's flags, then the seed (the trial contract's order).
    for record in experiment(cwd, "st").state().trials.values():
        argv = record.argv
        seed = record.params["seed"]
        assert argv[-2] == f"--seed={seed}"
        assert argv[:2] == [sys.executable, "train.py"]

    table = launch(cwd, "results", "st")
    assert "seed study of src" in table.stderr and "4/4" in table.stdout
    assert "config" in table.stdout.splitlines()[0]
    csv = launch(cwd, "results", "st", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("rank,config,")
    compare = launch(cwd, "compare", "st:1", "st:3", "--json")
    assert compare.returncode == 0, compare.stderr
    result = json.loads(compare.stdout)
    assert result["n_a"] == 4 and result["n_b"] == 4
    assert result["mean_a"] == pytest.approx(
        statistics.fmean(known(expected[0]["params"], s) for s in range(4))
    )
    between = launch(cwd, "compare", "st:1", "st", "--json")  # a config against a whole study
    assert between.returncode == 0, between.stderr
    plot = launch(cwd, "results", "st", "--plot", "-")
    assert plot.returncode == 0, plot.stderr

    # Bad input: more configs than finished, an unknown study config, an unknown experiment.
    too_many = launch(cwd, "seeds", "src", "--top", str(len(finished) + 1), "--seeds", "2")
    assert too_many.returncode == 2
    assert (
        f"error: --top {len(finished) + 1}: src has only {len(finished)} configs" in too_many.stderr
    )
    assert f"hint: pass --top {len(finished)} or less" in too_many.stderr
    no_config = launch(cwd, "compare", "st:1", "st:9")
    assert no_config.returncode == 2 and "st has configs 1 to 3" in no_config.stderr
    not_study = launch(cwd, "compare", "src:1", "st:1")
    assert not_study.returncode == 2 and "src is not a seed study" in not_study.stderr
    unknown = launch(cwd, "seeds", "nosuch", "--top", "1")
    assert unknown.returncode == 2
    assert "error: no local experiment `nosuch`" in unknown.stderr and "hint:" in unknown.stderr

    # Export and import: the study without its experiment directory.
    exported = launch(cwd, "results", "st", "--format", "export")
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "st.json").write_text(exported.stdout)
    loaded = launch(cwd, "import", str(tmp_path / "st.json"), "--name", "st-copy")
    assert loaded.returncode == 0, loaded.stderr
    again = json.loads(launch(cwd, "results", "st-copy", "--format", "json").stdout)
    assert [(g["config"], g["values"]) for g in again] == [
        (g["config"], g["values"]) for g in groups
    ]
    # A study of the imported study's best config runs here.
    plan = launch(cwd, "seeds", "st-copy", "--top", "1", "--seeds", "2", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "backend: local" in plan.stderr and plan.stdout.count("--seed=") == 2
    clash = launch(cwd, "import", str(tmp_path / "st.json"), "--name", "st-copy")
    assert clash.returncode == 2 and "already exists" in clash.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2]")
    bad = launch(cwd, "import", str(garbage))
    assert bad.returncode == 2 and "not a launch results export" in bad.stderr


@pytest.mark.timeout(400)
def test_then_seeds_runs_the_search_then_the_study_in_one_command(tmp_path: Path) -> None:
    search = SEARCH.replace("maxTrialCount: 8", "maxTrialCount: 4")
    cwd = project(tmp_path, search)
    done = launch(cwd, "--backend", "local", "--name", "two", "--seeds", "2", "--then-seeds", "2",
                  "search.yaml", "--", sys.executable, "train.py", timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "launch seeds two --top 2 --seeds 2" in done.stdout
    searched = rows_of(cwd, "two")
    assert len(searched) == 4 and all("seed" not in r["params"] for r in searched)
    study = rows_of(cwd, "two-seeds")
    assert len(study) == 4 and sorted(r["params"]["seed"] for r in study) == [0, 0, 1, 1]
    assert experiment(cwd, "two-seeds").meta()["study"]["source"] == "two"


@pytest.mark.timeout(400)
def test_an_experiment_without_objective_values_cannot_seed_a_study(tmp_path: Path) -> None:
    search = (
        SEARCH.replace("maxTrialCount: 8", "maxTrialCount: 2")
        .replace("parallelTrialCount: 4", "parallelTrialCount: 2\nfixed: {layers: 4}")
        .replace("  - {name: layers, parameterType: int, feasibleSpace: {min: 1, max: 4}}\n", "")
    )
    cwd = project(tmp_path, search)
    done = launch(cwd, "--backend", "local", "--name", "bad", "search.yaml", "--", sys.executable,
                  "train.py")  # fmt: skip
    assert done.returncode == 5, done.stderr
    study = launch(cwd, "seeds", "bad", "--top", "1", "--seeds", "2")
    assert study.returncode == 2
    assert "error: bad has no trial with a value of its objective `loss` (2 trials: 2 Failed)" in (
        study.stderr
    )
    assert "hint: wait until trials finish (`launch watch bad`)" in study.stderr


def test_seeds_help_names_the_flags() -> None:
    done = subprocess.run([LAUNCH, "seeds", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    for flag in ("--top", "--seeds", "--backend", "--name", "STUDY:1"):
        assert flag in done.stdout


# --------------------------------------------------------------------------- pure parts


def row(number: int, params: dict[str, Any], objective: float | None, status: str = "Succeeded",
        resource: str = "") -> Trial:  # fmt: skip
    return Trial(name=f"t-{number}", number=number, params=params, status=status,
                 objective=objective, resource=resource)  # fmt: skip


def test_pick_top_ranks_by_mean_skips_failures_and_says_ties() -> None:
    rows = [
        row(1, {"lr": 0.1, "seed": 0}, 1.0),
        row(2, {"lr": 0.1, "seed": 1}, 3.0),  # lr 0.1: mean 2.0
        row(3, {"lr": 0.2, "seed": 0}, 2.0),  # lr 0.2: mean 2.0, a tie, later: ranks after 0.1
        row(4, {"lr": 0.3, "seed": 0}, 0.5),
        row(5, {"lr": 0.3, "seed": 1}, None, status="Failed"),  # lr 0.3: mean 0.5, n=1
        row(6, {"lr": 0.4, "seed": 0}, None, status="Failed"),  # no value at all
        row(7, {"lr": 0.5, "seed": 0}, math.nan),  # NaN: not ranked
    ]
    chosen = seed_study.pick_top(rows, k=2, minimize=True, seed_flag="seed", objective_name="loss",
                                 source="src")  # fmt: skip
    assert chosen.configs == ({"lr": 0.3}, {"lr": 0.1})
    assert chosen.ranked == 3 and chosen.without_value == 2
    assert chosen.not_counted == {"Failed": 2, "NonFinite": 1}
    assert chosen.ties and "rank 3 left out by --top 2" in chosen.ties[0]
    maximize = seed_study.pick_top(rows, k=1, minimize=False, seed_flag="seed",
                                   objective_name="loss", source="src")  # fmt: skip
    assert maximize.configs == ({"lr": 0.1},)  # 2.0 ties with lr 0.2: search order wins
    with pytest.raises(UsageError, match="has only 3 configs") as err:
        seed_study.pick_top(rows, k=4, minimize=True, seed_flag="seed", objective_name="loss",
                            source="src")  # fmt: skip
    assert err.value.hint == "pass --top 3 or less (see `launch results src`)"
    with pytest.raises(UsageError, match="no trial with a value"):
        seed_study.pick_top(rows[4:6], k=1, minimize=True, seed_flag="seed",
                            objective_name="loss", source="src")  # fmt: skip


def test_pick_top_of_hyperband_ranks_the_largest_resource_only() -> None:
    rows = [
        row(1, {"lr": 0.1, "epochs": 1}, 0.1, resource="epochs=1"),
        row(2, {"lr": 0.2, "epochs": 1}, 0.9, resource="epochs=1"),
        row(3, {"lr": 0.2, "epochs": 3}, 0.5, resource="epochs=3"),
    ]
    chosen = seed_study.pick_top(rows, k=1, minimize=True, seed_flag="seed", objective_name="loss",
                                 source="hb")  # fmt: skip
    assert chosen.configs == ({"lr": 0.2, "epochs": 3},) and chosen.resource == "epochs=3"


def test_study_spec_counts_grid_and_katib_form() -> None:
    search = spec_module.parse(SEARCH)
    configs = [{"lr": 0.25, "layers": 1, "act": "tanh"}, {"lr": 0.4, "layers": 2, "act": "relu"}]
    study = spec_module.study_spec(search, configs, seeds=3)
    assert spec_module.resolve_counts(study).max_trials == 6
    assert spec_module.resolve_counts(study).parallel == 4
    assert spec_module.apply_seeds(study) == study  # both backends run configs x seeds
    assert [p.name for p in study.parameters] == ["lr", "layers", "act"]  # for the preflight
    assert study.parameters[0].feasibleSpace.list == ("0.25", "0.4")
    form = spec_module.katib_form(study, "seed")
    assert [p.name for p in form.parameters] == [CONFIG_PARAM, "seed"]
    assert spec_module.resolve_counts(form).max_trials == 6
    assert LaunchSpec.model_validate(study.model_dump(mode="json")) == study
    with pytest.raises(SpecError, match="clashes"):
        spec_module.study_spec(search, [{"seed": 1}], seeds=2)
    with pytest.raises(SpecError, match="launch_config"):
        spec_module.study_spec(search, [{"launch_config": 1}], seeds=2)
    with pytest.raises(SpecError, match=r"not accepted in search\.yaml"):
        spec_module.parse(SEARCH + "configs: [{lr: 0.1}]\n")


def test_local_suggester_runs_configs_by_seed_and_resumes() -> None:
    search = spec_module.parse(SEARCH)
    study = spec_module.study_spec(search, [{"lr": 0.1}, {"lr": 0.2}], seeds=(5, 9))
    asked = []
    suggester = sampling.make_suggester(study, [], seed_flag="seed")
    while (got := suggester.ask()) is not None:
        asked.append(got[1])
    assert asked == [{"lr": 0.1, "seed": 5}, {"lr": 0.1, "seed": 9}, {"lr": 0.2, "seed": 5},
                     {"lr": 0.2, "seed": 9}]  # fmt: skip

    class Record:
        def __init__(self, params: dict[str, Any], status: str) -> None:
            self.params, self.status, self.name, self.retry_of = params, status, "r", None
            self.metrics: dict[str, float] = {}

    done = [Record(asked[0], "Succeeded"), Record(asked[1], "Failed")]
    resumed = sampling.make_suggester(study, done, seed_flag="seed")
    first = resumed.ask()
    assert first is not None and first[1] == asked[2]


def test_expand_rows_and_refs() -> None:
    configs = [{"lr": 0.1, "act": "a b"}, {"lr": 0.2, "act": "x"}]
    rows = [row(1, {CONFIG_PARAM: "2", "seed": 4}, 1.0), row(2, {"lr": 0.1, "seed": 0}, 2.0)]
    expanded = seed_study.expand_rows(rows, configs, "seed")
    assert [r.params for r in expanded] == [
        {"lr": 0.2, "act": "x", "seed": 4},
        {"lr": 0.1, "seed": 0},
    ]
    assert list(expanded[0].params) == ["lr", "act", "seed"]
    assert seed_study.config_number(expanded[0].params, configs, "seed") == 2
    assert seed_study.parse_ref("st:12") == ("st", 12) and seed_study.parse_ref("st") == (
        "st",
        None,
    )
    picked = seed_study.config_trials(expanded, configs, 2, name="st", seed_flag="seed")
    assert [r.number for r in picked] == [1]
    groups = stats.group_by_config(expanded, minimize=True)
    assert {g.label for g in groups} == {"lr=0.2 act=x", "lr=0.1"}
