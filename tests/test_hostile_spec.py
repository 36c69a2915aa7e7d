"""Hostile search.yaml files ("never hang, never crash"): each ends in a SpecError naming
file:line: field, within seconds and a few MB, with nothing created.

Time and memory bounds are 10x+ above what these take on a loaded 2-core machine.
"""

from __future__ import annotations

import errno
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from launch import katib, sampling, spec
from launch.errors import ExitCode, SpecError
from launch.spec import loading, yaml_lines
from tests.test_cli import invoke, quickstart, runner  # noqa: F401  (fixtures)

OBJ = "objective: {type: minimize, objectiveMetricName: loss}\n"
LR = "parameters:\n  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1}\n"
GRID = "algorithm: {algorithmName: grid}\n"


def _alias_bomb(levels: int = 9) -> str:
    """`a0: &a0 [x, ...]`, `a1: &a1 [*a0, ...]`, ...: 9**9 values from nine lines."""
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return OBJ + "\n".join(lines) + "\n"


def _int_grid(high: int) -> str:
    return (
        OBJ
        + GRID
        + "parameters:\n  - name: x\n    parameterType: int\n"
        + f"    feasibleSpace: {{min: 1, max: {high}}}\n"
    )


ALIAS_BOMB = _alias_bomb()
GRID_1E8 = _int_grid(10**8)


def _refused(
    text: str,
    *,
    seconds: float = 5.0,
    megabytes: float | None = 50.0,
    filename: str = "search.yaml",
) -> SpecError:
    """parse(text) must raise SpecError within `seconds` and a tracemalloc peak of `megabytes`."""
    return _bounded(lambda: spec.parse(text, filename=filename), seconds, megabytes)


def _bounded(call: Callable[[], Any], seconds: float, megabytes: float | None) -> SpecError:
    """`call()` raises a SpecError in time; `megabytes=None`: untraced (tracemalloc is slow)."""
    if megabytes is not None:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SpecError) as caught:
            call()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert megabytes is None or peak < megabytes, f"peak {peak:.1f} MB"
    error = caught.value
    assert error.exit_code == ExitCode.USAGE
    assert error.hint, error.message
    return error


def _starts(error: SpecError, prefix: str) -> None:
    assert error.message.startswith(prefix), error.message


# --------------------------------------------------------------------------- YAML that explodes


def test_alias_bomb_is_refused_at_the_first_alias() -> None:
    error = _refused(ALIAS_BOMB)
    _starts(error, "search.yaml:3: a1[0]: YAML alias `*a0`: search.yaml takes no aliases")
    assert "write the value out" in (error.hint or "")


def test_self_referencing_alias() -> None:
    _starts(_refused(OBJ + "a: &a [*a]\n"), "search.yaml:2: a[0]: YAML alias `*a`")


def test_merge_key_alias_is_refused_too() -> None:
    text = (
        OBJ
        + "defaults: &defaults {parameterType: double, feasibleSpace: {min: 0.1, max: 1}}\n"
        + "parameters:\n  - <<: *defaults\n    name: lr\n"
    )
    _starts(_refused(text), "search.yaml:4: parameters[0].<<: YAML alias `*defaults`")


def test_undefined_alias_stays_a_yaml_error() -> None:
    _starts(_refused(OBJ + "a: *nothing\n"), "search.yaml:2: not valid YAML: found undefined alias")


def test_alias_bomb_inside_a_fixed_value() -> None:
    # Draccus parses flag values as YAML: a quoted bomb would explode in the value checks.
    bomb = ALIAS_BOMB.replace(OBJ, "").replace("\n", ", ").rstrip(", ")
    text = OBJ + LR + f"fixed:\n  blob: '{{{bomb}}}'\n"
    error = _refused(text)
    _starts(error, "search.yaml:7: fixed.blob: Draccus parses flag values as YAML")
    assert "alias" in error.message


def test_deep_nesting_is_bounded() -> None:
    text = OBJ + "x: " + "[" * 5000 + "]" * 5000 + "\n"
    error = _refused(text)
    _starts(error, "search.yaml:2: x[0][0]: nested more than 64 levels deep")


def test_nesting_within_the_bound_is_only_an_unknown_field() -> None:
    text = OBJ + "x: " + "[" * 60 + "]" * 60 + "\n"
    _starts(_refused(text), "search.yaml:2: x: unknown field `x`")


@pytest.mark.parametrize(
    ("char", "name"), [("\x00", "NUL"), ("\x07", "BEL"), ("\x7f", "DEL"), ("\x1b", "ESC")]
)
def test_control_characters_name_line_and_column(char: str, name: str) -> None:
    text = OBJ + f"maxTrialCount: 3{char}\n"
    error = _refused(text)
    code = f"U+{ord(char):04X}"
    _starts(error, f"search.yaml:2: column 17: {name} ({code}) is not allowed in YAML")


def test_oversized_text_is_refused_before_parsing() -> None:
    text = OBJ + "#" + "x" * spec.MAX_SPEC_BYTES + "\n"
    error = _refused(text, megabytes=20)
    _starts(error, "search.yaml: larger than 1 MiB")


def test_oversized_file_reads_at_most_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(OBJ + "#" * (50 * spec.MAX_SPEC_BYTES))
    error = _bounded(lambda: spec.load(str(big)), 5, 20)
    _starts(error, f"{big}: larger than 1 MiB")


def test_long_integer_literal() -> None:
    # int() refuses 4300+ digits with a ValueError; YAML 1.1 base 60 (`1:2:3`) is slow.
    _starts(_refused(OBJ + "maxTrialCount: " + "1" * 5000 + "\n"), "search.yaml:2: maxTrialCount:")
    _starts(
        _refused(OBJ + "maxTrialCount: " + "1:2" * 5000 + "\n"), "search.yaml:2: maxTrialCount:"
    )


@pytest.mark.parametrize("value", ["2001-13-45", "!!int abc", "0x_"])
def test_values_python_cannot_construct(value: str) -> None:
    text = OBJ + LR + f"fixed:\n  when: {value}\n"
    error = _refused(text)
    assert error.message.startswith(
        ("search.yaml:7: not valid YAML", "search.yaml:7: fixed.when")
    ), error.message


# --------------------------------------------------------------------------- load(path)


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    error = _bounded(lambda: spec.load(str(tmp_path / "a.yaml")), 5, 20)
    assert error.message == f"{tmp_path / 'a.yaml'}: cannot read: too many levels of symbolic links"
    assert "link" in (error.hint or "")


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), args[0])

    # Tests may run as root, who reads any file: refuse the open() itself.
    monkeypatch.setattr(loading, "open", denied, raising=False)
    error = _bounded(lambda: spec.load(str(tmp_path / "s.yaml")), 5, 20)
    assert error.message == f"{tmp_path / 's.yaml'}: cannot read: permission denied"
    assert "chmod" in (error.hint or "")


def test_directory_and_other_os_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = _bounded(lambda: spec.load(str(tmp_path)), 5, 20)
    assert error.message == f"{tmp_path}: cannot read: is a directory"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(loading, "open", broken, raising=False)
    error = _bounded(lambda: spec.load("s.yaml"), 5, 20)
    assert error.message == "s.yaml: cannot read: input/output error"


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(OBJ.encode() + b"fixed:\n  x: caf\xe9\n")
    _starts(_bounded(lambda: spec.load(str(path)), 5, 20), f"{path}:3: not UTF-8 text (byte 0xe9)")


def test_twenty_thousand_fixed_keys_validate_in_linear_time() -> None:
    # _check_names compared every name with every other: 103 s. Dotted names exercise the
    # nesting check's prefix look-ups.
    fixed = "".join(f"  group{i}.key: {i}\n" for i in range(20_000))
    text = OBJ + LR + "fixed:\n" + fixed
    start = time.perf_counter()
    loaded = spec.parse(text)
    assert time.perf_counter() - start < 15
    assert len(loaded.fixed) == 20_000
    error = _refused(text + "  group7: 1\n", seconds=15, megabytes=None)
    _starts(error, "search.yaml:20007: fixed.group7: `group7` and `group7.key` set the same")


def test_a_name_nested_too_deep_is_refused() -> None:
    # The nesting check looks up every dotted prefix: quadratic in the dots, so they are bounded.
    name = ".".join(["a"] * 5000)
    text = OBJ + LR.replace("name: lr", f"name: {name}")
    _starts(_refused(text), "search.yaml:3: parameters[0].name: parameter name `a.a.a")


def test_too_many_metrics() -> None:
    names = ", ".join(f"m{i}/x" for i in range(20_000))
    text = OBJ.replace("loss}", f"loss, additionalMetricNames: [{names}]}}") + LR
    error = _refused(text, seconds=15, megabytes=None)
    _starts(error, "search.yaml:1: objective.additionalMetricNames: 20,001 metrics")


# --------------------------------------------------------------------------- unbounded grids


def test_grid_of_1e8_is_refused_at_load() -> None:
    error = _refused(GRID_1E8)
    _starts(
        error,
        "search.yaml:6: parameters[0].feasibleSpace.max: grid has 100,000,000 combinations "
        "(x: 100,000,000); launch refuses grids over 100,000 trials",
    )
    assert "algorithmName: random" in (error.hint or "")


def test_six_int_axes_of_a_million() -> None:
    params = "".join(
        f"  - {{name: p{i}, parameterType: int, feasibleSpace: {{min: 0, max: 1000000}}}}\n"
        for i in range(6)
    )
    error = _refused(OBJ + GRID + "parameters:\n" + params)
    _starts(error, "search.yaml:4: parameters[0].feasibleSpace.max: grid has at least 1,000,001")


def test_grid_whose_product_passes_the_bound_names_the_parameter_that_crosses_it() -> None:
    params = "".join(
        f"  - {{name: p{i}, parameterType: int, feasibleSpace: {{min: 1, max: 100}}}}\n"
        for i in range(3)
    )
    error = _refused(OBJ + GRID + "parameters:\n" + params)
    _starts(
        error,
        "search.yaml:6: parameters[2].feasibleSpace.max: grid has 1,000,000 combinations "
        "(p0: 100 x p1: 100 x p2: 100)",
    )


def test_grid_at_the_bound_is_accepted_and_listed_quickly() -> None:
    loaded = spec.parse(_int_grid(spec.MAX_GRID_COMBINATIONS))
    assert spec.resolve_counts(loaded).max_trials == spec.MAX_GRID_COMBINATIONS
    start = time.perf_counter()
    lines = katib.trial_command_lines(loaded, ["python", "t.py"], seed_flag="seed")
    assert len(lines) == spec.MAX_GRID_COMBINATIONS
    assert time.perf_counter() - start < 20


def test_double_grid_with_tiny_step_is_counted_without_overflow() -> None:
    # grid_size is arithmetic: 9e299 points are counted, not built.
    param = spec.Parameter(
        name="lr",
        parameterType="double",
        feasibleSpace=spec.FeasibleSpace(min="0.1", max="1", step="1e-300"),
    )
    assert spec.grid_size(param) > 10**299
    assert spec.grid_overflow([param]) is not None
    huge = param.model_copy(
        update={"feasibleSpace": spec.FeasibleSpace(min="0", max="1e308", step="1e308")}
    )
    with pytest.raises(ValueError, match="overflows float64"):
        spec.grid_size(huge)


def test_grid_max_plus_step_overflow_is_a_spec_error() -> None:
    text = OBJ + GRID + LR.replace("{min: 0.1, max: 1}", "{min: 0, max: 1e308, step: 1e308}")
    _starts(
        _refused(text),
        "search.yaml:6: parameters[0].feasibleSpace.step: max + step (1e+308 + 1e+308) overflows",
    )


def test_grid_times_seeds_past_the_bound() -> None:
    text = _int_grid(1000) + "seeds: 1000\n"
    _starts(
        _refused(text),
        "search.yaml:7: seeds: grid of 1,000 combinations x 1,000 seeds has 1,000,000 trials",
    )
    loaded = spec.parse(_int_grid(1000))
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded, seeds=1000)
    _starts(caught.value, "--seeds: grid of 1,000 combinations x 1,000 seeds")


def test_grid_built_in_code_is_still_bounded() -> None:
    # check_rules never saw this spec: the dry run and the local grid refuse it themselves.
    space = spec.FeasibleSpace(min="1", max=str(10**8))
    built = spec.LaunchSpec(
        objective=spec.Objective(type="minimize", objectiveMetricName="loss"),
        algorithm=spec.Algorithm(algorithmName="grid"),
        parameters=(spec.Parameter(name="x", parameterType="int", feasibleSpace=space),),
    )
    _bounded(lambda: katib.trial_command_lines(built, ["t"], seed_flag="seed"), 5, 20)
    _bounded(lambda: sampling.make_suggester(built, [], seed_flag="seed"), 5, 20)


def test_local_grid_suggester_is_lazy() -> None:
    loaded = spec.parse(_int_grid(spec.MAX_GRID_COMBINATIONS))
    tracemalloc.start()
    try:
        suggester = sampling.make_suggester(loaded, [], seed_flag="seed")
        first = [suggester.ask() for _ in range(3)]
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert [a[1] for a in first if a] == [{"x": 1}, {"x": 2}, {"x": 3}]
    assert peak < 30, f"peak {peak:.1f} MB"  # the axis, not 100k points


def test_max_trial_count_times_seeds_past_int32() -> None:
    loaded = spec.parse(OBJ + LR + f"maxTrialCount: {spec.MAX_COUNT}\n")
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded, seeds=[1, 2], local=True)
    _starts(caught.value, "--seeds: maxTrialCount x 2 seeds makes 4,294,967,294 trials")


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [(100_001, "--seeds: at most 100,000 seeds"), ([2**32], "--seeds: expected seeds in 0..")],
)
def test_cli_seeds_are_bounded(seeds: int | list[int], expected: str) -> None:
    loaded = spec.parse(OBJ)
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded, seeds=seeds)
    _starts(caught.value, expected)


# --------------------------------------------------------------------------- numeric extremes


# Two doubles: cmaes needs at least two numeric parameters.
TWO_DOUBLES = LR + "  - {name: m, parameterType: double, feasibleSpace: {min: 0, max: 1}}\n"


def _setting(name: str, value: str, algorithm: str = "random") -> str:
    return (
        OBJ
        + f"algorithm:\n  algorithmName: {algorithm}\n  algorithmSettings:\n"
        + f"    - {{name: {name}, value: {value}}}\n"
        + TWO_DOUBLES
    )


def test_random_state_beyond_numpy_is_refused() -> None:
    error = _refused(_setting("random_state", "99999999999999999999999"))
    _starts(
        error,
        "search.yaml:5: algorithm.algorithmSettings[0].value: random_state: expected a whole "
        "number in 0..4294967295",
    )
    _starts(_refused(_setting("random_state", str(2**32))), "search.yaml:5: algorithm.")


@pytest.mark.parametrize("algorithm", ["random", "tpe", "multivariate-tpe", "cmaes"])
def test_largest_random_state_runs_locally(algorithm: str) -> None:
    loaded = spec.parse(_setting("random_state", str(spec.MAX_SEED), algorithm))
    suggester = sampling.make_suggester(loaded, [], seed_flag="seed")
    asked = suggester.ask()
    assert asked is not None and 0.1 <= asked[1]["lr"] <= 1


def test_huge_ei_candidates_are_refused() -> None:
    error = _refused(_setting("n_ei_candidates", "1000000000000", "multivariate-tpe"))
    assert "n_ei_candidates: expected a whole number in 1..10000" in error.message


@pytest.mark.parametrize("algorithm", ["grid", "random"])
def test_step_below_float_resolution(algorithm: str) -> None:
    text = (
        OBJ
        + f"algorithm: {{algorithmName: {algorithm}}}\n"
        + LR.replace("{min: 0.1, max: 1}", "{min: 0.1, max: 1, step: 1e-300}")
    )
    error = _refused(text)
    _starts(
        error,
        "search.yaml:6: parameters[0].feasibleSpace.step: step (1e-300) is finer than float64",
    )


@pytest.mark.filterwarnings("ignore:The distribution is specified by:UserWarning")
def test_step_at_float_resolution_samples_locally() -> None:
    # (max - min) / step ~ 4e15: Optuna's decimal arithmetic on the step must still work.
    loaded = spec.parse(OBJ + LR.replace("{min: 0.1, max: 1}", "{min: 0, max: 1, step: 2.3e-16}"))
    asked = sampling.make_suggester(loaded, [], seed_flag="seed").ask()
    assert asked is not None and 0 <= asked[1]["lr"] <= 1
    lines = katib.trial_command_lines(loaded, ["t"], seed_flag="seed")
    assert len(lines) == 5


def test_range_that_overflows_float64() -> None:
    text = OBJ + LR.replace("{min: 0.1, max: 1}", "{min: -1e308, max: 1e308}")
    _starts(_refused(text), "search.yaml:5: parameters[0].feasibleSpace.max: max - min overflows")


def test_widest_finite_range_samples_finite_values() -> None:
    loaded = spec.parse(OBJ + LR.replace("{min: 0.1, max: 1}", "{min: 0, max: 1.7e308}"))
    asked = sampling.make_suggester(loaded, [], seed_flag="seed").ask()
    assert asked is not None and 0 <= asked[1]["lr"] <= 1.7e308
    line = katib.trial_command_lines(loaded, ["t"], seed_flag="seed")[0]
    assert "inf" not in " ".join(line)


@pytest.mark.parametrize("text", ["1e309", "-1e309"])
def test_numbers_beyond_float64_are_refused(text: str) -> None:
    _starts(
        _refused(OBJ + LR.replace("max: 1}", f"max: {text}}}")),
        "search.yaml:5: parameters[0].feasibleSpace.max: expected a finite number",
    )


def test_goal_beyond_float64() -> None:
    error = _refused(OBJ.replace("loss}", "loss, goal: 1e309}") + LR)
    _starts(error, "search.yaml:1: objective.goal: expected a finite number, got 1e309")


@pytest.mark.parametrize(
    ("low", "high", "field"),
    [("0", str(2**63), "max"), (str(-(2**63) - 1), "0", "min"), ("0", "1" * 300, "max")],
)
def test_int_bounds_beyond_int64(low: str, high: str, field: str) -> None:
    space = f'{{min: {low}, max: "{high}"}}'
    text = OBJ + f"parameters:\n  - {{name: n, parameterType: int, feasibleSpace: {space}}}\n"
    error = _refused(text)
    _starts(error, f"search.yaml:3: parameters[0].feasibleSpace.{field}: ")
    assert "outside int64" in error.message


def test_int64_bounds_sample_locally() -> None:
    text = OBJ + (
        "parameters:\n  - {name: n, parameterType: int, "
        f"feasibleSpace: {{min: {-(2**63)}, max: {2**63 - 1}}}}}\n"
    )
    loaded = spec.parse(text)
    asked = sampling.make_suggester(loaded, [], seed_flag="seed").ask()
    assert asked is not None and -(2**63) <= asked[1]["n"] < 2**63


def test_seeds_beyond_numpy_are_refused() -> None:
    text = OBJ + LR + "seeds: [99999999999999999999999, 1]\n"
    _starts(_refused(text), "search.yaml:6: seeds: seed 99999999999999999999999 is outside 0..")


def test_seed_list_longer_than_the_bound() -> None:
    text = OBJ + "seeds: [" + ", ".join(str(i) for i in range(100_001)) + "]\n"
    _starts(
        _refused(text, seconds=20, megabytes=None), "search.yaml:2: seeds: at most 100,000 seeds"
    )


# --------------------------------------------------------------------------- the pure-Python loader


@pytest.fixture
def pure_python_yaml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The loader used where PyYAML has no libyaml."""
    monkeypatch.setattr(yaml_lines, "_LineLoader", yaml_lines._PyLineLoader)
    yield


@pytest.mark.usefixtures("pure_python_yaml")
@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        (ALIAS_BOMB, "search.yaml:3: a1[0]: YAML alias"),
        (OBJ + "a: &a [*a]\n", "search.yaml:2: a[0]: YAML alias"),
        (OBJ + "x: " + "[" * 5000 + "]" * 5000 + "\n", "search.yaml:2: x[0][0]: nested"),
        (OBJ + "x: a\x00b\n", "search.yaml:2: column 5: NUL"),
        (GRID_1E8, "search.yaml:6: parameters[0].feasibleSpace.max: grid has"),
    ],
)
def test_pure_python_loader_refuses_the_same(text: str, prefix: str) -> None:
    # Untraced: tracemalloc slows PyYAML's scanner ~10x (0.5 s becomes 4 s on 5,000 brackets).
    _starts(_refused(text, megabytes=None), prefix)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(("name", "text"), [("bomb.yaml", ALIAS_BOMB), ("grid.yaml", GRID_1E8)])
def test_render_exits_2_with_error_and_hint(
    runner: CliRunner,  # noqa: F811
    quickstart: Path,  # noqa: F811
    name: str,
    text: str,
) -> None:
    (quickstart / name).write_text(text)
    start = time.perf_counter()
    result = invoke(runner, ["render", name, "--allow-dirty", "--", "python", "train.py"])
    assert time.perf_counter() - start < 10
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"error: {name}:" in result.stderr
    assert "hint: " in result.stderr
    assert result.stdout == ""


def test_local_dry_run_of_a_tiny_step_exits_2_and_creates_nothing(
    runner: CliRunner,  # noqa: F811
    quickstart: Path,  # noqa: F811
) -> None:
    (quickstart / "tiny.yaml").write_text(
        OBJ + LR.replace("{min: 0.1, max: 1}", "{min: 0.1, max: 1, step: 1e-300}")
    )
    args = ["--backend", "local", "--dry-run", "--allow-dirty", "tiny.yaml", "--", "python", "t.py"]
    result = invoke(runner, args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "error: tiny.yaml:5: parameters[0].feasibleSpace.step: step (1e-300)" in result.stderr
    assert "hint: " in result.stderr
    assert not (quickstart / ".launch").exists()
