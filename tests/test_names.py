"""launch.names: experiment names Katib admits, label values, labels, annotations, Katib URLs."""

from __future__ import annotations

import re

import pytest

from launch import names
from launch.errors import UsageError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("proj", "proj-0123456-a1b2"),
        ("My_Project", "my-project-0123456-a1b2"),
        ("feature/Seed--Sweeps", "feature-seed-sweeps-0123456-a1b2"),
        ("2024-paper", "x-2024-paper-0123456-a1b2"),
        ("", "x-0123456-a1b2"),
        ("a" * 60, "a" * 27 + "-0123456-a1b2"),
        ("abc-" + "d" * 50, "abc-" + "d" * 23 + "-0123456-a1b2"),
        ("a" * 26 + "-bcd", "a" * 26 + "-0123456-a1b2"),  # the cut lands on a `-`
    ],
)
def test_experiment_name(stem: str, expected: str) -> None:
    name = names.experiment_name(stem=stem, commit=COMMIT, suffix="a1b2")
    assert name == expected
    assert NAME_RE.match(name) and len(name) <= 40


def test_experiment_name_without_commit() -> None:
    assert names.experiment_name(stem="proj", commit="", suffix="x9") == "proj-x9"


@pytest.mark.parametrize("name", ["a", "my-exp-1", "x" * 40])
def test_validate_experiment_name_accepts(name: str) -> None:
    names.validate_experiment_name(name)


@pytest.mark.parametrize("name", ["My-Exp", "1exp", "exp-", "exp_1", "x" * 41, "", "a.b"])
def test_validate_experiment_name_refuses_with_a_hint(name: str) -> None:
    with pytest.raises(UsageError) as info:
        names.validate_experiment_name(name)
    assert "--name" in info.value.message
    hint = info.value.hint or ""
    suggested = re.search(r"--name (\S+)`", hint)
    assert suggested and NAME_RE.match(suggested.group(1)) and len(suggested.group(1)) <= 40


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("feature/x", "feature-x"),
        ("main", "main"),
        ("-dash_", "dash"),
        ("ü", ""),
        ("x" * 70, "x" * 63),
        ("a" * 62 + "/b", "a" * 62),
        ("release/v1.2", "release-v1.2"),
    ],
)
def test_label_value(text: str, value: str) -> None:
    assert names.label_value(text) == value
    assert LABEL_VALUE_RE.match(value) and len(value) <= 63


def test_labels_and_annotations() -> None:
    assert names.labels(user="Ada Lovelace", branch="feature/x", commit=COMMIT) == {
        "app.kubernetes.io/managed-by": "launch",
        "launch/user": "Ada-Lovelace",
        "launch/branch": "feature-x",
        "launch/commit": COMMIT,
    }
    assert "launch/branch" not in names.labels(user="ada", branch=None, commit=COMMIT)
    assert names.metadata_annotations(user="Ada Lovelace", branch="feature/x", commit=COMMIT) == {
        "launch/user": "Ada Lovelace",
        "launch/commit": COMMIT,
        "launch/branch": "feature/x",
    }


@pytest.mark.parametrize(
    "base",
    ["http://katib.lab", "http://katib.lab/", "http://katib.lab/katib", "http://katib.lab/katib/"],
)
def test_experiment_url(base: str) -> None:
    assert (
        names.experiment_url(base, "research", "proj-0123456-a1b2")
        == "http://katib.lab/katib/experiment/research/proj-0123456-a1b2?tab=trials"
    )
