"""Good search.yaml specs: parsing, canonical strings, counts, seeds, warnings, grid arithmetic."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from launch import spec
from launch.errors import SpecError

BARE = """\
objective:
  type: maximize
  objectiveMetricName: eval/accuracy
  additionalMetricNames: [train_loss]
  goal: 0.99
  metricStrategies:
    - {name: train_loss, value: min}
algorithm:
  algorithmName: tpe
  algorithmSettings:
    - {name: random_state, value: 7}
    - {name: gamma, value: 0.25}
parameters:
  - name: optim.lr
    parameterType: double
    feasibleSpace: {min: 1e-5, max: 0.1, distribution: logUniform}
  - name: hidden
    parameterType: int
    feasibleSpace: {min: "4", max: 32, step: 4}
  - name: activation
    parameterType: categorical
    feasibleSpace: {list: [tanh, relu, gelu]}
  - name: batch_size
    parameterType: discrete
    feasibleSpace: {list: [16, "32", 64.0]}
maxTrialCount: 20
parallelTrialCount: 4
maxFailedTrialCount: 2
fixed:
  epochs: 10
  data.path: /data/train
"""


def parse(text: str) -> spec.LaunchSpec:
    return spec.parse(textwrap.dedent(text))


def test_bare_spec() -> None:
    s = parse(BARE)
    assert s.objective.metric_names == ("eval/accuracy", "train_loss")
    assert s.objective.goal == 0.99
    assert s.objective.strategy("train_loss") == "min"
    assert s.objective.strategy("eval/accuracy") == "max"
    assert s.algorithm.setting("random_state") == "7"
    assert s.algorithm.setting("gamma") == "0.25"
    lr, hidden, act, bs = s.parameters
    assert (lr.feasibleSpace.min, lr.feasibleSpace.max) == ("1e-5", "0.1")
    assert lr.trial_parameter_name == "optim__lr"
    assert (hidden.feasibleSpace.min, hidden.feasibleSpace.max, hidden.feasibleSpace.step) == (
        "4",
        "32",
        "4",
    )
    assert act.feasibleSpace.list == ("tanh", "relu", "gelu")
    # Discrete items keep the text typed: the program receives `64.0` as written.
    assert bs.feasibleSpace.list == ("16", "32", "64.0")
    assert s.fixed == {"epochs": "10", "data.path": "/data/train"}
    assert spec.resolve_counts(s) == spec.Counts(parallel=4, max_trials=20, max_failed=2)
    assert spec.coercion_warnings(s) == []


def test_whole_experiment_document_gives_the_same_spec() -> None:
    document = (
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n"
        "metadata: {name: my-sweep, namespace: team}\nspec:\n" + textwrap.indent(BARE, "  ")
    )
    assert spec.parse(document) == parse(BARE)


def test_experiment_document_lines_point_into_spec() -> None:
    document = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec:\n" + textwrap.indent(
        BARE.replace("maxFailedTrialCount: 2", "maxFailedTrialCount: 50"), "  "
    )
    with pytest.raises(SpecError) as caught:
        spec.parse(document)
    assert caught.value.message.startswith("search.yaml:31: maxFailedTrialCount: ")


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("0.001", "0.001"),
        ('"0.001"', "0.001"),
        ("1e-4", "1e-4"),
        ("'1e-4'", "1e-4"),
        ("1.0e-4", "0.0001"),
        ("1.0e+2", "100.0"),
        ("0.00001", "1e-05"),
        ("-2", "-2"),
        ('" 3 "', "3"),
    ],
)
def test_numbers_quoted_and_unquoted_are_katib_strings(typed: str, canonical: str) -> None:
    s = parse(
        f"""\
        objective: {{type: minimize, objectiveMetricName: loss}}
        parameters:
          - name: x
            parameterType: double
            feasibleSpace: {{min: {typed}, max: 1000}}
        """
    )
    assert s.parameters[0].feasibleSpace.min == canonical


def test_counts_quoted_and_goal_quoted() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss, goal: "0.5"}
        parameters:
          - {name: x, parameterType: int, feasibleSpace: {min: 0, max: 9}}
        maxTrialCount: "8"
        """
    )
    assert s.maxTrialCount == 8
    assert s.objective.goal == 0.5


def test_dotted_names_and_trial_parameter_names() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss}
        parameters:
          - {name: model.encoder.depth, parameterType: int, feasibleSpace: {min: 1, max: 4}}
          - {name: model.dropout, parameterType: double, feasibleSpace: {min: 0, max: 0.5}}
        fixed: {model.width: 128}
        """
    )
    assert [p.trial_parameter_name for p in s.parameters] == [
        "model__encoder__depth",
        "model__dropout",
    ]


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(BARE)
    assert spec.load(str(path)) == parse(BARE)


def test_quickstart_example_is_valid() -> None:
    example = Path(__file__).parent.parent / "examples" / "quickstart" / "search.yaml"
    if not example.exists():
        pytest.skip("no quickstart example")
    spec.load(str(example))


# --------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize(
    ("algorithm", "settings"),
    [
        ("random", "[{name: random_state, value: 0}]"),
        ("tpe", "[{name: n_EI_candidates, value: 24}, {name: prior_weight, value: 1.0}]"),
        (
            "multivariate-tpe",
            "[{name: n_startup_trials, value: 5}, {name: n_ei_candidates, value: 24}]",
        ),
        ("cmaes", "[{name: sigma, value: 0.3}, {name: restart_strategy, value: ipop}]"),
        ("sobol", "[]"),
        (
            "bayesianoptimization",
            "[{name: base_estimator, value: RF}, {name: acq_optimizer, value: sampling},"
            " {name: acq_func, value: EI}, {name: n_initial_points, value: 3}]",
        ),
    ],
)
def test_each_algorithm_with_its_settings(algorithm: str, settings: str) -> None:
    s = parse(
        f"""\
        objective: {{type: minimize, objectiveMetricName: loss}}
        algorithm: {{algorithmName: {algorithm}, algorithmSettings: {settings}}}
        parameters:
          - {{name: lr, parameterType: double, feasibleSpace: {{min: 0.001, max: 0.1}}}}
          - {{name: depth, parameterType: int, feasibleSpace: {{min: 1, max: 8}}}}
          - {{name: act, parameterType: categorical, feasibleSpace: {{list: [relu, gelu]}}}}
        """
    )
    assert s.algorithm.algorithmName == algorithm
    assert spec.resolve_counts(s) == spec.Counts(parallel=3, max_trials=12, max_failed=3)


def test_metric_directories_are_not_prefix_clashes() -> None:
    s = parse(
        """\
        objective:
          type: minimize
          objectiveMetricName: eval/loss
          additionalMetricNames: [train/loss]
        parameters:
          - {name: x, parameterType: int, feasibleSpace: {min: 0, max: 9}}
        """
    )
    assert s.objective.additionalMetricNames == ("train/loss",)


# --------------------------------------------------------------------------- grid arithmetic


def _param(kind: str, **space: object) -> spec.Parameter:
    return spec.Parameter.model_validate(
        {"name": "p", "parameterType": kind, "feasibleSpace": space}
    )


@pytest.mark.parametrize(
    ("param", "values"),
    [
        (_param("int", min=1, max=4), ("1", "2", "3", "4")),
        (_param("int", min=0, max=10, step=3), ("0", "3", "6", "9")),
        (_param("double", min=0.1, max=0.3, step=0.1), ("0.1", "0.2", "0.30000000000000004")),
        # np.arange's rounding drops max here, as Katib's grid does.
        (_param("double", min=0, max=0.3, step=0.1), ("0.0", "0.1", "0.2")),
        (_param("double", min=0, max=1, step=0.5), ("0.0", "0.5", "1.0")),
        (_param("discrete", list=[1, 2, 4]), ("1", "2", "4")),
        (_param("categorical", list=["a", "b"]), ("a", "b")),
    ],
)
def test_grid_values(param: spec.Parameter, values: tuple[str, ...]) -> None:
    assert spec.grid_values(param) == values
    assert spec.grid_size(param) == len(values)


def test_grid_values_match_numpy_arange() -> None:
    np = pytest.importorskip("numpy")
    rnd = random.Random(1)
    for _ in range(2000):
        step = round(rnd.uniform(0.001, 2), rnd.randint(1, 4)) or 0.5
        low = round(rnd.uniform(-5, 5), rnd.randint(0, 4))
        high = round(low + rnd.uniform(step, 30 * step), rnd.randint(0, 4))
        if high <= low or step > high - low:
            continue
        expected = np.arange(low, high + step, step)
        if expected[-1] > high:
            expected = expected[:-1]
        param = _param("double", min=repr(low), max=repr(high), step=repr(step))
        assert spec.grid_values(param) == tuple(repr(float(v)) for v in expected)
        assert spec.grid_size(param) == len(expected)


def test_grid_combinations_and_default_max() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss}
        algorithm: {algorithmName: grid}
        parameters:
          - {name: lr, parameterType: double, feasibleSpace: {min: 0.1, max: 0.5, step: 0.1}}
          - {name: n, parameterType: int, feasibleSpace: {min: 1, max: 3}}
          - {name: act, parameterType: categorical, feasibleSpace: {list: [a, b]}}
        """
    )
    assert spec.grid_combinations(s.parameters) == 5 * 3 * 2
    assert spec.resolve_counts(s) == spec.Counts(parallel=3, max_trials=30, max_failed=3)


def test_grid_dropping_max_is_a_warning() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss}
        algorithm: {algorithmName: grid}
        parameters:
          - {name: lr, parameterType: double, feasibleSpace: {min: 0, max: 0.3, step: 0.1}}
        """
    )
    (warning,) = spec.coercion_warnings(s)
    assert warning.startswith("search.yaml:4: parameters[0].feasibleSpace.max: ")
    assert "max: 0.35" in warning


# --------------------------------------------------------------------------- counts


def test_counts_defaults_are_small() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss}
        parameters:
          - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}
        maxTrialCount: 2
        """
    )
    assert spec.resolve_counts(s) == spec.Counts(parallel=2, max_trials=2, max_failed=2)


def test_max_failed_zero_is_kept() -> None:
    s = parse(
        """\
        objective: {type: minimize, objectiveMetricName: loss}
        parameters:
          - {name: x, parameterType: double, feasibleSpace: {min: 0, max: 1}}
        maxFailedTrialCount: 0
        """
    )
    assert spec.resolve_counts(s).max_failed == 0


# --------------------------------------------------------------------------- seeds

OBJ = "objective: {type: minimize, objectiveMetricName: loss}\n"
GRID = (
    OBJ
    + "algorithm: {algorithmName: grid}\nparameters:\n"
    + "  - {name: act, parameterType: categorical, feasibleSpace: {list: [a, b, c]}}\n"
)


def test_pure_seed_sweep_from_the_spec() -> None:
    s = spec.parse(OBJ + "seeds: 5\n")
    assert s.seed_values == (0, 1, 2, 3, 4)
    assert spec.resolve_counts(s) == spec.Counts(parallel=3, max_trials=5, max_failed=3)
    swept = spec.apply_seeds(s)
    assert swept.algorithm.algorithmName == "grid"
    (seed,) = swept.parameters
    assert seed.name == "seed"
    assert seed.parameterType == "int"
    assert (seed.feasibleSpace.min, seed.feasibleSpace.max, seed.feasibleSpace.step) == (
        "0",
        "4",
        "1",
    )
    assert swept.maxTrialCount == 5
    assert swept.seeds is None
    assert spec.resolve_counts(swept) == spec.resolve_counts(s)
    # Applying twice is harmless.
    assert spec.apply_seeds(swept) == swept


def test_seed_list_becomes_discrete() -> None:
    s = spec.parse(OBJ + "seeds: [3, 17, 42]\n")
    swept = spec.apply_seeds(s, seed_flag="rng")
    (seed,) = swept.parameters
    assert (seed.name, seed.parameterType, seed.feasibleSpace.list) == (
        "rng",
        "discrete",
        ("3", "17", "42"),
    )
    assert swept.maxTrialCount == 3


def test_one_seed_is_a_one_item_list() -> None:
    swept = spec.apply_seeds(spec.parse(OBJ + "seeds: 1\n"))
    assert swept.parameters[0].feasibleSpace.list == ("0",)


def test_cli_seeds_override_the_spec() -> None:
    s = spec.parse(OBJ + "seeds: 5\n")
    swept = spec.apply_seeds(s, seeds=2)
    assert swept.maxTrialCount == 2
    assert spec.apply_seeds(spec.parse(OBJ), seeds=[7, 8]).parameters[0].feasibleSpace.list == (
        "7",
        "8",
    )


def test_grid_times_seeds() -> None:
    s = spec.parse(GRID + "seeds: 4\n")
    assert spec.resolve_counts(s).max_trials == 12
    swept = spec.apply_seeds(s)
    assert [p.name for p in swept.parameters] == ["act", "seed"]
    assert swept.maxTrialCount == 12
    assert spec.grid_combinations(swept.parameters) == 12


def test_grid_times_seeds_multiplies_an_explicit_max() -> None:
    s = spec.parse(GRID + "maxTrialCount: 2\n")
    swept = spec.apply_seeds(s, seeds=3)
    assert swept.maxTrialCount == 6
    assert spec.resolve_counts(swept) == spec.Counts(parallel=3, max_trials=6, max_failed=3)


def test_no_seeds_leaves_the_spec_alone() -> None:
    s = spec.parse(GRID)
    assert spec.apply_seeds(s) is s


# --------------------------------------------------------------------------- coercion


def test_plain_words_are_kept_as_typed_and_warned_about() -> None:
    s = spec.parse(
        OBJ
        + "parameters:\n  - name: mode\n    parameterType: categorical\n"
        + "    feasibleSpace:\n      list: [on, off, 1:30, 0x10, relu, null, 1e3, '2.0']\n"
        + "fixed:\n  amp: yes\n  steps: 1e5\n  lr: 0.00001\n  name: run\n"
    )
    assert s.parameters[0].feasibleSpace.list == (
        "on",
        "off",
        "1:30",
        "0x10",
        "relu",
        "null",
        "1e3",
        "2.0",
    )
    assert s.fixed == {"amp": "yes", "steps": "1e5", "lr": "0.00001", "name": "run"}
    warnings = spec.coercion_warnings(s)
    flagged = [w.split("`")[1] for w in warnings]
    assert flagged == [
        "--mode=on",
        "--mode=off",
        "--mode=1:30",
        "--mode=0x10",
        "--mode=null",
        "--mode=1e3",
        "--amp=yes",
        "--steps=1e5",
    ]
    assert "as True" in warnings[0]
    assert "as 90" in warnings[2]
    assert "as 16" in warnings[3]
    assert "as None" in warnings[4]
    assert all(w.startswith("search.yaml:") for w in warnings)


def test_no_warnings_for_ordinary_values() -> None:
    s = spec.parse(
        OBJ
        + "parameters:\n  - name: opt\n    parameterType: categorical\n"
        + "    feasibleSpace: {list: [adam, sgd-momentum, 'a/b:c', 'x=1,y=2', '0.5']}\n"
        + "fixed: {epochs: 10, lr: 1e-3, path: /data}\n"
    )
    assert spec.coercion_warnings(s) == []


def test_spec_imports_no_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys, launch.spec; "
        "bad = [m for m in ('numpy', 'optuna', 'kubernetes', 'rich', 'typer') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spec_package_exports_and_stays_in_small_modules() -> None:
    """`launch.spec.<name>` for every name in `__all__`; no module of the package over 700 lines."""
    missing = [name for name in spec.__all__ if not hasattr(spec, name)]
    assert not missing, missing
    for path in Path(spec.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 700, path
