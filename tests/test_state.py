"""The local journal folded into trial records, and the cached fold of an ended experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch import state


def journal(tmp_path: Path, *, ended: bool) -> state.Experiment:
    exp = state.Experiment.create(tmp_path / "home", "exp", {"name": "exp"})
    for number in (1, 2):
        name = f"exp-{number:04d}"
        exp.append({"event": "trial_started", "trial": name, "number": number,
                    "params": {"lr": 0.1 * number}, "gpus": ""})  # fmt: skip
        exp.append({"event": "trial_finished", "trial": name, "status": state.SUCCEEDED,
                    "exit_code": 0, "metrics": {"loss": 1.0 / number}})  # fmt: skip
    if ended:
        exp.append({"event": "experiment", "status": state.EXP_SUCCEEDED, "reason": "done"})
    return exp


def test_an_ended_experiment_is_folded_once_then_read_from_its_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = journal(tmp_path, ended=True)
    first = exp.state()
    assert (exp.path / "state.snapshot.json").is_file()
    monkeypatch.setattr(state, "reduce_events", lambda *a, **k: pytest.fail("replayed"))
    again = exp.state()
    assert again == first and again.trials["exp-0002"].metrics == {"loss": 0.5}


def test_an_append_makes_the_snapshot_stale(tmp_path: Path) -> None:
    exp = journal(tmp_path, ended=True)
    exp.state()
    # `launch watch` resuming, say: the journal grows, the snapshot no longer matches it.
    exp.append({"event": "experiment", "status": state.EXP_RUNNING})
    exp.append({"event": "trial_started", "trial": "exp-0003", "number": 3, "params": {}})
    current = exp.state()
    assert current.status == state.EXP_RUNNING and "exp-0003" in current.trials


def test_a_damaged_snapshot_is_ignored(tmp_path: Path) -> None:
    exp = journal(tmp_path, ended=True)
    expected = exp.state()
    (exp.path / "state.snapshot.json").write_text('{"journal_size": 1')
    assert exp.state() == expected


def test_a_running_experiment_has_no_snapshot(tmp_path: Path) -> None:
    exp = journal(tmp_path, ended=False)
    assert exp.state().status == state.EXP_RUNNING
    assert not (exp.path / "state.snapshot.json").exists()


def test_a_snapshot_keeps_the_journals_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = journal(tmp_path, ended=False)
    with exp.journal_path.open("ab") as handle:
        handle.write(b"null\n")
    exp.append({"event": "experiment", "status": state.EXP_SUCCEEDED, "reason": "done"})
    first = exp.state()
    assert first.problems == ["journal.jsonl:5: not a JSON object; skipped"]
    saved = json.loads((exp.path / "state.snapshot.json").read_text())
    assert saved["problems"] == first.problems
    monkeypatch.setattr(state, "reduce_events", lambda *a, **k: pytest.fail("replayed"))
    assert exp.state() == first


def test_a_snapshot_from_before_problems_were_kept_is_refolded(tmp_path: Path) -> None:
    exp = journal(tmp_path, ended=True)
    expected = exp.state()
    snapshot = exp.path / "state.snapshot.json"
    old = json.loads(snapshot.read_text())
    del old["problems"]
    old["status"] = "Bogus"  # were it used, this would show
    snapshot.write_text(json.dumps(old))
    assert exp.state() == expected
    assert "problems" in json.loads(snapshot.read_text())


@pytest.mark.parametrize(
    "content", [b"[]", b"null", b'{"journal_size": "x"}', b"\xff", b"[" * 100_000]
)
def test_any_snapshot_content_is_ignored_when_unusable(tmp_path: Path, content: bytes) -> None:
    exp = journal(tmp_path, ended=True)
    expected = exp.state()
    (exp.path / "state.snapshot.json").write_bytes(content)
    assert exp.state() == expected
