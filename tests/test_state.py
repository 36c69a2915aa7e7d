"""The local journal folded into trial records: the fold an Experiment keeps while its journal is
unchanged, and the cached fold (snapshot) of an ended experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch import journal, state


def experiment(tmp_path: Path, *, ended: bool) -> state.Experiment:
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
    exp = experiment(tmp_path, ended=True)
    first = exp.state()
    assert (exp.path / "state.snapshot.json").is_file()
    monkeypatch.setattr(journal, "reduce_events", lambda *a, **k: pytest.fail("replayed"))
    again = state.Experiment(exp.path).state()  # a later command: no fold kept in memory
    assert again == first and again.trials["exp-0002"].metrics == {"loss": 0.5}


def test_an_append_makes_the_snapshot_stale(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=True)
    exp.state()
    # `launch watch` resuming, say: the journal grows, the snapshot no longer matches it.
    exp.append({"event": "experiment", "status": state.EXP_RUNNING})
    exp.append({"event": "trial_started", "trial": "exp-0003", "number": 3, "params": {}})
    current = exp.state()
    assert current.status == state.EXP_RUNNING and "exp-0003" in current.trials


def test_a_damaged_snapshot_is_ignored(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=True)
    expected = exp.state()
    (exp.path / "state.snapshot.json").write_text('{"journal_size": 1')
    assert state.Experiment(exp.path).state() == expected


def test_a_running_experiment_has_no_snapshot(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=False)
    assert exp.state().status == state.EXP_RUNNING
    assert not (exp.path / "state.snapshot.json").exists()


def test_a_snapshot_keeps_the_journals_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = experiment(tmp_path, ended=False)
    with exp.journal_path.open("ab") as handle:
        handle.write(b"null\n")
    exp.append({"event": "experiment", "status": state.EXP_SUCCEEDED, "reason": "done"})
    first = exp.state()
    assert first.problems == ["journal.jsonl:5: not a JSON object; skipped"]
    saved = json.loads((exp.path / "state.snapshot.json").read_text())
    assert saved["problems"] == first.problems
    monkeypatch.setattr(journal, "reduce_events", lambda *a, **k: pytest.fail("replayed"))
    assert state.Experiment(exp.path).state() == first


def test_a_snapshot_from_before_problems_were_kept_is_refolded(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=True)
    expected = exp.state()
    snapshot = exp.path / "state.snapshot.json"
    old = json.loads(snapshot.read_text())
    del old["problems"]
    old["status"] = "Bogus"  # were it used, this would show
    snapshot.write_text(json.dumps(old))
    assert state.Experiment(exp.path).state() == expected
    assert "problems" in json.loads(snapshot.read_text())


@pytest.mark.parametrize(
    "content", [b"[]", b"null", b'{"journal_size": "x"}', b"\xff", b"[" * 100_000]
)
def test_any_snapshot_content_is_ignored_when_unusable(tmp_path: Path, content: bytes) -> None:
    exp = experiment(tmp_path, ended=True)
    expected = exp.state()
    (exp.path / "state.snapshot.json").write_bytes(content)
    assert state.Experiment(exp.path).state() == expected


# -- the fold an Experiment keeps ----------------------------------------------------------------


def fail(*args: object, **kwargs: object) -> None:
    pytest.fail("the journal was read or folded again")


@pytest.mark.parametrize("ended", [False, True])
def test_an_unchanged_journal_is_neither_read_nor_folded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ended: bool
) -> None:
    exp = experiment(tmp_path, ended=ended)
    first = exp.state()
    monkeypatch.setattr(journal, "reduce_events", fail)
    monkeypatch.setattr(journal, "read", fail)
    monkeypatch.setattr(journal, "load_snapshot", fail)
    assert exp.state() == first
    assert exp.state() == first


def test_an_append_by_another_writer_is_seen(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=False)
    assert list(exp.state().trials) == ["exp-0001", "exp-0002"]
    # Another process's Experiment (a coordinator), then a writer that is not launch at all.
    state.Experiment(exp.path).append(
        {"event": "trial_started", "trial": "exp-0003", "number": 3, "params": {}}
    )
    assert list(exp.state().trials) == ["exp-0001", "exp-0002", "exp-0003"]
    with exp.journal_path.open("ab") as handle:
        handle.write(b'{"event": "experiment", "status": "Cancelled", "t": 1}\n')
    assert exp.state().status == state.EXP_CANCELLED


def test_a_journal_replaced_by_one_of_the_same_size_is_seen(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=False)
    before = exp.state()
    data = exp.journal_path.read_bytes()
    changed = data.replace(b'"loss": 0.5', b'"loss": 0.7')
    assert len(changed) == len(data) and changed != data
    new = exp.journal_path.with_name("journal.new")
    new.write_bytes(changed)
    new.replace(exp.journal_path)  # another inode, even within one mtime tick
    after = exp.state()
    assert before.trials["exp-0002"].metrics == {"loss": 0.5}
    assert after.trials["exp-0002"].metrics == {"loss": 0.7}


def test_changing_a_returned_state_never_changes_the_next(tmp_path: Path) -> None:
    exp = experiment(tmp_path, ended=False)
    first = exp.state()
    expected = state.Experiment(exp.path).state()
    first.trials["exp-0001"].status = state.FAILED  # as the coordinator does with its records
    first.trials["exp-0001"].exit_code = 9
    del first.trials["exp-0002"]
    first.problems.append("x")
    assert exp.state() == expected
