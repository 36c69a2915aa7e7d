"""YAML 1.1 coercions: bounds YAML read in another base (refused or warned), and what Draccus
makes of list items and fixed values (warned), each checked against the file:line it names."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest

from launch import spec
from launch.errors import ExitCode, SpecError

OBJ = "objective: {type: minimize, objectiveMetricName: loss}\n"


def parse(text: str) -> spec.LaunchSpec:
    return spec.parse(OBJ + textwrap.dedent(text))


def warnings(text: str) -> list[str]:
    return spec.coercion_warnings(parse(text))


def refused(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse(text)
    assert caught.value.exit_code == ExitCode.USAGE
    return caught.value


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("typed", "value"),
    [("0x10", "16"), ("0b101", "5"), ("1_000", "1000"), ("+0x1_0", "16")],
)
@pytest.mark.parametrize("key", ["min", "max", "step"])
def test_a_hex_binary_or_underscored_bound_is_a_warning_naming_the_number(
    key: str, typed: str, value: str
) -> None:
    bounds = {"min": "1", "max": "5000", "step": "1"} | {key: typed}
    s = parse(
        f"""\
        parameters:
          - name: x
            parameterType: int
            feasibleSpace:
              min: {bounds["min"]}
              max: {bounds["max"]}
              step: {bounds["step"]}
        """
    )
    assert getattr(s.parameters[0].feasibleSpace, key) == value  # Katib gets the number
    line = {"min": 6, "max": 7, "step": 8}[key]
    assert spec.coercion_warnings(s) == [
        f"search.yaml:{line}: parameters[0].feasibleSpace.{key}: `{key}: {typed}` is read by "
        f"YAML 1.1 as {value}: the bound is {value} (write `{key}: {value}` to say so)"
    ]


def test_an_underscored_double_bound_is_a_warning() -> None:
    (warning,) = warnings(
        """\
        parameters:
          - {name: lr, parameterType: double, feasibleSpace: {min: 0.5, max: 1_0.5}}
        """
    )
    assert warning.startswith("search.yaml:3: parameters[0].feasibleSpace.max: `max: 1_0.5` ")
    assert "is read by YAML 1.1 as 10.5: the bound is 10.5" in warning


@pytest.mark.parametrize(
    ("typed", "value", "decimal"), [("010", 8, 10), ("-010", -8, -10), ("0_10", 8, 10)]
)
@pytest.mark.parametrize("key", ["min", "max", "step"])
def test_an_octal_bound_is_refused(key: str, typed: str, value: int, decimal: int) -> None:
    bounds = {"min": "-100", "max": "100", "step": "1"} | {key: typed}
    error = refused(
        f"""\
        parameters:
          - name: x
            parameterType: int
            feasibleSpace: {{min: {bounds["min"]}, max: {bounds["max"]}, step: {bounds["step"]}}}
        """
    )
    assert error.message == (
        f"search.yaml:5: parameters[0].feasibleSpace.{key}: `{key}: {typed}` is a YAML 1.1 "
        f"octal number: it reads as {value}, not {decimal}"
    )
    assert error.hint == f"write the number you mean without the leading zero: {decimal}"


@pytest.mark.parametrize(("typed", "value"), [("1:30", "90"), ("-1:30", "-90"), ("1:30.5", "90.5")])
def test_a_base_60_bound_is_refused(typed: str, value: str) -> None:
    error = refused(
        f"""\
        parameters:
          - name: t
            parameterType: double
            feasibleSpace:
              min: {typed}
              max: 1000
        """
    )
    assert error.message == (
        f"search.yaml:6: parameters[0].feasibleSpace.min: `min: {typed}` is a YAML 1.1 "
        f"base-60 number: it reads as {value}"
    )
    assert error.hint is not None and "plain decimal" in error.hint


def test_a_refused_bound_names_the_line_inside_an_experiment_document() -> None:
    document = textwrap.dedent(
        """\
        apiVersion: kubeflow.org/v1beta1
        kind: Experiment
        spec:
          objective: {type: minimize, objectiveMetricName: loss}
          parameters:
            - name: x
              parameterType: int
              feasibleSpace:
                min: 1
                max: 010
        """
    )
    with pytest.raises(SpecError) as caught:
        spec.parse(document, filename="exp.yaml")
    assert caught.value.message.startswith(
        "exp.yaml:10: parameters[0].feasibleSpace.max: `max: 010` is a YAML 1.1 octal number"
    )


@pytest.mark.parametrize("typed", ["0", "07", "00", "0.5", "010.5", "10", "+3", "1e3", '"010"'])
def test_plain_decimal_bounds_are_neither_refused_nor_warned(typed: str) -> None:
    assert (
        warnings(
            f"""\
            parameters:
              - {{name: x, parameterType: double, feasibleSpace: {{min: {typed}, max: 2000}}}}
            """
        )
        == []
    )


def test_bound_warnings_survive_apply_seeds() -> None:
    s = parse(
        """\
        algorithm: {algorithmName: grid}
        parameters:
          - {name: x, parameterType: int, feasibleSpace: {min: 0x10, max: 32}}
        """
    )
    (warning,) = spec.coercion_warnings(spec.apply_seeds(s, seeds=2))
    assert warning.startswith("search.yaml:4: parameters[0].feasibleSpace.min: `min: 0x10` ")


# --------------------------------------------------------------------------- list items


@pytest.mark.parametrize("kind", ["discrete", "categorical"])
def test_an_octal_list_item_reaches_the_program_as_the_octal_number(kind: str) -> None:
    s = parse(
        f"""\
        parameters:
          - name: x
            parameterType: {kind}
            feasibleSpace: {{list: [010, 2]}}
        """
    )
    assert s.parameters[0].feasibleSpace.list == ("010", "2")  # typed text, as the program gets it
    assert spec.coercion_warnings(s) == [
        "search.yaml:5: parameters[0].feasibleSpace.list[0]: `--x=010` reaches the program as 8 "
        "(YAML 1.1 octal): a str field gets '8'; write 10 if you meant that number, another "
        "spelling if you meant the text"
    ]


def test_categorical_numbers_name_their_yaml_1_1_spelling() -> None:
    found = warnings(
        """\
        parameters:
          - name: mode
            parameterType: categorical
            feasibleSpace: {list: [1:30, 0x10, 0b101, 1_000]}
        """
    )
    assert [w.split("`")[1] for w in found] == [
        "--mode=1:30",
        "--mode=0x10",
        "--mode=0b101",
        "--mode=1_000",
    ]
    assert "reaches the program as 90 (YAML 1.1 base 60): a str field gets '90'" in found[0]
    assert "reaches the program as 16 (YAML 1.1 hex)" in found[1]
    assert "reaches the program as 5 (YAML 1.1 binary)" in found[2]
    assert "reaches the program as 1000 (YAML 1.1 drops the underscores)" in found[3]
    assert all(w.startswith("search.yaml:5: parameters[0].feasibleSpace.list[") for w in found)


# --------------------------------------------------------------------------- null, bools, empty


@pytest.mark.parametrize("typed", ["null", "~", "Null"])
def test_null_reaches_even_a_str_field_as_none(typed: str) -> None:
    (warning,) = warnings(f"fixed:\n  out: {typed}\n")
    assert warning == (
        f"search.yaml:3: fixed.out: `--out={typed}` reaches the program as None (Draccus parses "
        "flag values as YAML 1.1): an Optional field gets None, and so does a plain "
        f"str/int/float/Path field (not the text {typed!r}); use another word if you meant the "
        "text, or make the field Optional if you meant None"
    )


def test_a_bool_word_reaches_a_str_field_as_true() -> None:
    (warning,) = warnings("fixed:\n  mode: on\n")
    assert warning == (
        "search.yaml:3: fixed.mode: `--mode=on` reaches the program as True (Draccus parses flag "
        "values as YAML 1.1): fine for a bool field, but a str field gets 'True'; use another "
        "word if you meant the text"
    )


def test_an_empty_fixed_value_reaches_the_program_as_empty_text_not_none() -> None:
    (warning,) = warnings("fixed:\n  tag:\n")
    assert warning.startswith("search.yaml:3: fixed.tag: `--tag=` reaches the program as the ")
    assert "Draccus reads an empty flag value as '', not None" in warning
    assert "write `null` if you meant None" in warning


# --------------------------------------------------------------------------- against Draccus


@dataclasses.dataclass
class _Fields:
    s: str = "default"
    i: int = 0
    f: float = 0.0
    p: Path = Path("default")


def _draccus(flag: str, field: str) -> Any:
    draccus = pytest.importorskip("draccus")
    return getattr(draccus.parse(_Fields, args=[f"--{field}={flag}"]), field)


@pytest.mark.parametrize("typed", ["null", "~"])
def test_draccus_gives_every_plain_field_none_for_null(typed: str) -> None:
    assert [_draccus(typed, field) for field in "sifp"] == [None, None, None, None]


def test_draccus_gives_a_str_field_the_texts_the_warnings_name() -> None:
    assert _draccus("on", "s") == "True"
    assert _draccus("", "s") == ""
    for typed, value in [("010", 8), ("1:30", 90), ("0x10", 16), ("0b101", 5), ("1_000", 1000)]:
        assert _draccus(typed, "s") == str(value)
        assert _draccus(typed, "i") == value
