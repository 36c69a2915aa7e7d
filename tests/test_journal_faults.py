"""The journal against faults: bad lines, torn lines, a missing journal, a damaged experiment.json,
and `launch list`'s summaries going on past a broken experiment. Reading never raises; what was
skipped is named by its line."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from launch import journal, journal_events, state
from launch.errors import LaunchError

T = 1_700_000_000.0

LOCAL_META = {
    "backend": "local", "name": "exp", "spec": {}, "command": ["python", "train.py"],
    "workdir": "/tmp", "commit": "0" * 40, "gpus_per_trial": 0, "parallel": 1, "max_trials": 3,
    "max_failed": 3, "tracking_uri": "", "created": T,
}  # fmt: skip


def started(number: int, /, **extra: Any) -> dict[str, Any]:
    return {"event": "trial_started", "trial": f"exp-{number:04d}", "number": number,
            "params": {"lr": 0.1 * number}, "gpus": "", "t": T + number, **extra}  # fmt: skip


def finished(number: int, status: str = state.SUCCEEDED, /, **extra: Any) -> dict[str, Any]:
    return {"event": "trial_finished", "trial": f"exp-{number:04d}", "status": status,
            "exit_code": 0, "metrics": {"loss": 1.0 / number}, "t": T + number + 0.5, **extra}  # fmt: skip


def ended(status: str = state.EXP_SUCCEEDED) -> dict[str, Any]:
    return {"event": "experiment", "status": status, "reason": "done", "t": T + 100}


def line(event: Any) -> bytes:
    return json.dumps(event, sort_keys=True).encode() + b"\n"


def make(home: Path, name: str = "exp", meta: dict[str, Any] | None = None) -> state.Experiment:
    return state.Experiment.create(home, name, {**LOCAL_META, "name": name, **(meta or {})})


def write(exp: state.Experiment, *lines: bytes) -> None:
    """Replace the journal with `lines`, as a new file. `exp` keeps its last fold while the
    journal's size, inode and mtime stay the same; a journal is only ever appended to, but this
    rewrites it, maybe to the same size within one mtime tick: only a new inode shows that."""
    tmp = exp.journal_path.with_name("journal.jsonl.new")
    tmp.write_bytes(b"".join(lines))
    os.replace(tmp, exp.journal_path)
    (exp.path / "state.snapshot.json").unlink(missing_ok=True)


# -- bad lines ---------------------------------------------------------------------------------


def test_each_kind_of_bad_line_is_skipped_and_named_by_its_line(tmp_path: Path) -> None:
    exp = make(tmp_path)
    write(
        exp,
        line(started(1)),  # 1
        b"123\n",  # 2
        b"null\n",  # 3
        b"[]\n",  # 4
        b'{"event":"trial_started"}\n',  # 5
        b"\xff\xfe\n",  # 6
        b'{"event": "trial_finished", "trial": "x"}\n',  # 7
        line(finished(9, t=T)),  # 8: well-formed, for a trial never started
        line(finished(1)),  # 9
        b"\n",  # 10: blank, harmless
        line(ended()),  # 11
    )
    current = exp.state()
    assert current.status == state.EXP_SUCCEEDED and current.reason == "done"
    assert list(current.trials) == ["exp-0001"]
    record = current.trials["exp-0001"]
    assert record.status == state.SUCCEEDED and record.metrics == {"loss": 1.0}
    assert current.problems == [
        "journal.jsonl:2: not a JSON object; skipped",
        "journal.jsonl:3: not a JSON object; skipped",
        "journal.jsonl:4: not a JSON object; skipped",
        "journal.jsonl:5: trial_started without `trial`; skipped",
        "journal.jsonl:6: not UTF-8 text (byte 0xff at column 1); skipped",
        "journal.jsonl:7: trial_finished without `status`; skipped",
        "journal.jsonl:8: trial_finished for unknown trial `exp-0009`; skipped",
    ]
    # The same events for a tailing reader (`launch watch`), its problems left to `read`.
    events, offset = exp.events()
    assert [e["event"] for e in events] == [
        "trial_started", "trial_finished", "trial_finished", "experiment",
    ]  # fmt: skip
    assert offset == exp.journal_path.stat().st_size
    chunk = exp.read()
    assert list(chunk.lines) == [1, 8, 9, 11] and chunk.line == 12
    assert chunk.problems == current.problems[:-1]  # the unknown trial is the fold's finding
    warning = journal.problems_warning("exp", current.problems)
    assert warning is not None and warning.startswith("exp: 7 journal problems: journal.jsonl:2: ")
    assert warning.endswith("| and 4 more") and "\n" not in warning
    assert journal.problems_warning("exp", []) is None


def test_wrong_types_skip_the_line_or_the_field(tmp_path: Path) -> None:
    exp = make(tmp_path)
    write(
        exp,
        line(started(1, number="x")),  # 1
        line(started(2, params=None)),  # 2
        line({k: v for k, v in started(3).items() if k != "t"}),  # 3
        line(started(4, t="yesterday")),  # 4
        line({"event": "trial_paused", "trial": "exp-0001", "t": T}),  # 5
        line({"trial": "exp-0001", "t": T}),  # 6
        line(started(5, trial="../../etc")),  # 7
        line(started(6, argv="python train.py")),  # 8: the field goes, the trial stays
        line(finished(6, metrics={"loss": "low"}, exit_code=1.5)),  # 9
        line({"event": "trial_running", "trial": "exp-0006", "pid": "1", "proc_start": "7"}),  # 10
        line({"event": "experiment", "status": None, "t": T}),  # 11
        line(started(7, number=True)),  # 12: JSON true is no trial number
        b'{"event": "experiment", "status": "Failed", "t": NaN}\n',  # 13
        line(started(8, trial="exp\x1b[2J")),  # 14: printed: no control characters
    )
    current = exp.state()
    assert current.status == state.EXP_RUNNING
    assert list(current.trials) == ["exp-0006"]
    record = current.trials["exp-0006"]
    assert (record.status, record.argv, record.metrics, record.exit_code) == (
        state.SUCCEEDED, None, {}, None,
    )  # fmt: skip
    assert (record.pid, record.proc_start) == (None, "7")
    assert current.problems == [
        'journal.jsonl:1: trial_started `number` is not an integer ("x"); skipped',
        "journal.jsonl:2: trial_started `params` is not an object (null); skipped",
        "journal.jsonl:3: trial_started without `t`; skipped",
        'journal.jsonl:4: trial_started `t` is not a timestamp ("yesterday"); skipped',
        'journal.jsonl:5: unknown event "trial_paused"; skipped',
        "journal.jsonl:6: no `event` field; skipped",
        'journal.jsonl:7: trial_started `trial` is not a trial name ("../../etc"); skipped',
        'journal.jsonl:8: trial_started `argv` is not a list of strings ("python train.py"); '
        "field ignored",
        "journal.jsonl:9: trial_finished `exit_code` is not an integer (1.5); field ignored",
        'journal.jsonl:9: trial_finished `metrics` is not an object of numbers ({"loss": "low"}); '
        "field ignored",
        'journal.jsonl:10: trial_running `pid` is not an integer ("1"); field ignored',
        "journal.jsonl:11: experiment `status` is not a string (null); skipped",
        "journal.jsonl:12: trial_started `number` is not an integer (true); skipped",
        "journal.jsonl:13: experiment `t` is not a timestamp (NaN); skipped",
        'journal.jsonl:14: trial_started `trial` is not a trial name ("exp\\u001b[2J"); skipped',
    ]


def test_a_trial_started_twice_keeps_its_first_start(tmp_path: Path) -> None:
    exp = make(tmp_path)
    write(exp, line(started(1)), line(started(1, number=7, params={"lr": 9})), line(finished(1)))
    current = exp.state()
    record = current.trials["exp-0001"]
    assert (record.number, record.params, record.status) == (1, {"lr": 0.1}, state.SUCCEEDED)
    assert current.problems == [
        "journal.jsonl:2: trial `exp-0001` started again (first on line 1); skipped"
    ]


def test_reduce_events_never_raises_and_numbers_events_from_one() -> None:
    events: list[Any] = [
        123, None, [], "x", {"event": "trial_started"}, started(1), started(1),
        {"event": "trial_finished", "trial": "x"}, finished(2), finished(1), ended(),
    ]  # fmt: skip
    current = journal.reduce_events(events)
    assert current.status == state.EXP_SUCCEEDED
    assert current.trials["exp-0001"].status == state.SUCCEEDED
    assert [p.split(": ", 1)[0] for p in current.problems] == [
        f"journal.jsonl:{n}" for n in (1, 2, 3, 4, 5, 7, 8, 9)
    ]
    # The caller's events are never changed, even with a bad field dropped.
    event = finished(1, metrics="x")
    journal.reduce_events([started(1), event])
    assert event["metrics"] == "x"


def test_line_numbers_stay_right_across_a_long_journal_with_bad_lines(tmp_path: Path) -> None:
    exp = make(tmp_path)
    raws = [line(started(n)) for n in range(1, 801)]
    bad = (1, 256, 257, 258, 513, 800)  # around the reader's 256-line blocks
    for number in bad:
        raws[number - 1] = b"{torn\n"
    write(exp, *raws)
    current = exp.state()
    assert current.problems == [
        f"journal.jsonl:{n}: not valid JSON (Expecting property name enclosed in double quotes: "
        "column 2); skipped"
        for n in bad
    ]
    assert sorted(r.number for r in current.trials.values()) == [
        n for n in range(1, 801) if n not in bad
    ]
    chunk = exp.read()
    assert all(event["number"] == n for event, n in zip(chunk.events, chunk.lines, strict=True))


# -- torn lines --------------------------------------------------------------------------------


def test_a_torn_last_line_never_swallows_the_next_event(tmp_path: Path) -> None:
    exp = make(tmp_path)
    torn = line(finished(2))[:25]  # kill -9 (or a full disk) in the middle of a write
    write(exp, line(started(1)), line(finished(1)), line(started(2)), torn)
    before = exp.state()
    assert before.trials["exp-0002"].status == state.RUNNING
    assert before.problems == [
        "journal.jsonl:4: unfinished last line (25 bytes, no newline: being written, or a crash "
        "mid-write); not read"
    ]
    events, offset = exp.events()  # a tailing reader waits for the rest of the line
    assert len(events) == 3 and offset == exp.journal_path.stat().st_size - 25
    # The resumed coordinator marks the orphan Killed, runs it again, ends the experiment.
    exp.append({"event": "trial_finished", "trial": "exp-0002", "status": state.KILLED})
    exp.append({**started(3), "retry_of": "exp-0002"})
    exp.append(finished(3))
    exp.append(ended())
    assert exp.journal_path.read_bytes().split(b"\n")[3] == torn  # ended, not merged
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    assert {n: r.status for n, r in after.trials.items()} == {
        "exp-0001": state.SUCCEEDED, "exp-0002": state.KILLED, "exp-0003": state.SUCCEEDED,
    }  # fmt: skip
    assert len(after.problems) == 1
    assert after.problems[0].startswith("journal.jsonl:4: not valid JSON (")
    assert after.problems[0].endswith("; skipped")


def test_append_ends_a_torn_line_only_once_and_each_event_is_one_line(tmp_path: Path) -> None:
    exp = make(tmp_path)
    exp.append(started(1))
    with exp.journal_path.open("ab") as handle:
        handle.write(b'{"event": "tri')
    exp.append(finished(1))
    exp.append(ended())
    raw = exp.journal_path.read_bytes()
    assert raw.count(b"\n") == 4 and raw.endswith(b"\n") and b"\n\n" not in raw
    assert raw.split(b"\n")[1] == b'{"event": "tri'
    assert exp.state().trials["exp-0001"].status == state.SUCCEEDED


def test_a_short_write_raises_and_the_next_append_starts_a_fresh_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = make(tmp_path)
    exp.append(started(1))
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:10]))
    with pytest.raises(OSError, match="short write"):
        exp.append(finished(1))
    monkeypatch.setattr(os, "write", real_write)
    exp.append(finished(1))
    current = exp.state()
    assert current.trials["exp-0001"].status == state.SUCCEEDED
    assert [p.split(": ", 1)[0] for p in current.problems] == ["journal.jsonl:2"]


def test_tailing_from_an_offset_numbers_lines_as_a_full_read_does(tmp_path: Path) -> None:
    exp = make(tmp_path)
    write(exp, line(started(1)), b"oops\n", line(finished(1)))
    chunk = exp.read()
    assert chunk.problems == [
        "journal.jsonl:2: not valid JSON (Expecting value: column 1); skipped"
    ]
    with exp.journal_path.open("ab") as handle:
        handle.write(b"[1]\n" + line(started(2)) + b'{"half')
    more = exp.read(chunk.offset, chunk.line)
    assert more.problems == ["journal.jsonl:4: not a JSON object; skipped"]
    assert list(more.lines) == [5] and more.line == 6 and more.pending == 6
    counted = exp.read(chunk.offset)  # no line given: counted from the start
    assert counted.problems == more.problems and list(counted.lines) == [5]
    assert exp.read(more.offset, more.line).events == []  # the half line waits


# -- missing files -----------------------------------------------------------------------------


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    exp = make(tmp_path)
    exp.journal_path.unlink()
    current = exp.state()
    assert (current.trials, current.status) == ({}, state.EXP_RUNNING)
    assert current.problems == ["journal.jsonl: missing; read as empty"]
    assert exp.events() == ([], 0) and exp.events(100) == ([], 100)
    assert exp.read(100).problems == ["journal.jsonl: missing; read as empty"]
    exp.append(started(1))  # a coordinator recreates it
    assert list(exp.state().trials) == ["exp-0001"] and exp.state().problems == []


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (json.dumps(LOCAL_META, indent=2)[:40].encode(), "is not valid JSON (truncated?)"),
        (b"", "is not valid JSON (truncated?)"),
        (b'{"name": "\xff"}', "is not valid JSON (truncated?)"),
        (b"[1, 2]", "is not a JSON object"),
        (b"{}", None),
        (json.dumps({"backend": "local", "name": "exp"}).encode(), "lacks `spec`, `command`"),
        (json.dumps({"backend": "katib", "name": "exp"}).encode(), "lacks `namespace`"),
    ],
)
def test_a_damaged_experiment_json_is_a_clear_error(
    tmp_path: Path, content: bytes, what: str | None
) -> None:
    exp = make(tmp_path)
    exp.meta_path.write_bytes(content)
    if what is None:  # no backend: no keys required (as before)
        assert exp.meta() == {}
        return
    with pytest.raises(state.StateError) as caught:
        exp.meta()
    assert isinstance(caught.value, LaunchError)
    assert caught.value.message.startswith(f"{exp.path}: experiment.json {what}")
    assert caught.value.hint is not None and f"rm -r {exp.path}" in caught.value.hint


def test_a_missing_experiment_json_is_a_clear_error(tmp_path: Path) -> None:
    exp = make(tmp_path)
    exp.meta_path.unlink()
    with pytest.raises(state.StateError, match=r"experiment\.json is missing"):
        exp.meta()


# -- many experiments --------------------------------------------------------------------------


def test_summaries_report_a_broken_experiment_and_go_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = make(home, "a-done")
    write(done, line(started(1)), line(finished(1)), line(started(2)),
          line(finished(2, state.FAILED)), line(ended()))  # fmt: skip
    broken = make(home, "b-broken")
    broken.meta_path.write_bytes(broken.meta_path.read_bytes()[:30])
    damaged = make(home, "c-damaged")
    write(damaged, line(started(1)), b"\x00\x00\x00\n", line(finished(1)), line(ended()))
    dead = make(home, "d-dead")  # its coordinator was killed: Running in the journal
    write(dead, line(started(1)))
    live = make(home, "e-live")
    write(live, line(started(1)))
    make(home, "f-katib", {"backend": "katib", "namespace": "team"})
    (state.experiments_dir(home) / "g-no-meta").mkdir()  # a crash between mkdir and the write
    with live.coordinator_lock():
        rows = state.summaries(home)
    got = {s.name: s for s in rows}
    assert [s.name for s in rows] == sorted(got)
    assert got["a-done"].as_dict() == {
        "name": "a-done", "backend": "local", "status": state.EXP_SUCCEEDED,
        "trials": {state.SUCCEEDED: 1, state.FAILED: 1}, "created": T, "problem": None,
        "warnings": [],
    }  # fmt: skip
    assert got["b-broken"].status == state.EXP_BROKEN and got["b-broken"].backend == "?"
    assert got["b-broken"].problem == (
        f"{broken.path}: experiment.json is not valid JSON (truncated?)"
    )
    assert got["b-broken"].hint is not None and "rm -r" in got["b-broken"].hint
    assert got["c-damaged"].status == state.EXP_SUCCEEDED
    assert got["c-damaged"].trials == {state.SUCCEEDED: 1}
    assert got["c-damaged"].warnings == [
        "journal.jsonl:2: not valid JSON (Expecting value: column 1); skipped"
    ]
    assert got["d-dead"].status == state.EXP_INTERRUPTED
    assert got["d-dead"].trials == {state.RUNNING: 1}
    assert got["e-live"].status == state.EXP_RUNNING
    assert (got["f-katib"].backend, got["f-katib"].status) == ("katib", "on cluster (team)")
    assert got["g-no-meta"].status == state.EXP_BROKEN
    assert got["g-no-meta"].problem is not None
    assert got["g-no-meta"].problem.endswith("experiment.json is missing")
    assert state.summaries(tmp_path / "nowhere") == []


def test_a_summary_survives_an_unreadable_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = make(tmp_path)

    def denied(self: state.Experiment) -> int | None:
        raise PermissionError(13, "Permission denied", str(self.lock_path))

    monkeypatch.setattr(state.Experiment, "coordinator_pid", denied)
    summary = exp.summary()
    assert (summary.status, summary.backend, summary.created) == (state.EXP_BROKEN, "local", T)
    assert summary.problem == (
        f"{exp.path}: cannot be read (PermissionError: [Errno 13] Permission denied: "
        f"'{exp.lock_path}')"
    )


# -- garbage anywhere --------------------------------------------------------------------------


GARBAGE_ALPHABET = b'{}[]",:\n\\ 0123456789aeflnrstu\x00\xff\xfe\xc3\x80'


def garbage(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(1, 40))
    return bytes(rng.choice(GARBAGE_ALPHABET) for _ in range(rng.randint(1, 40)))


def valid_journal() -> list[bytes]:
    lines = []
    for number in range(1, 9):
        lines.append(line(started(number, argv=["python", "train.py", f"--lr={number}"])))
        lines.append(line({"event": "trial_running", "trial": f"exp-{number:04d}", "pid": 100 + number,
                           "proc_start": "1", "t": T}))  # fmt: skip
        lines.append(line(finished(number, found_tags=["loss"], reason="")))
    return [*lines, line(ended())]


def test_garbage_anywhere_never_raises_and_every_intact_line_is_read(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    exp = make(tmp_path)
    original = valid_journal()
    whole_lines = {raw.rstrip(b"\n") for raw in original}
    for case in range(300):
        data = bytearray(b"".join(original))
        for _ in range(rng.randint(1, 4)):
            where = rng.randint(0, len(data))
            if rng.random() < 0.2:  # a crash-style cut instead: the journal ends mid-line
                del data[where:]
            else:
                data[where:where] = garbage(rng)
        write(exp, bytes(data))
        current = exp.state()
        chunk = exp.read()
        events, offset = exp.events()
        assert events == chunk.events and offset == chunk.offset, case
        complete = bytes(data[: data.rfind(b"\n") + 1]).split(b"\n")[:-1]
        read_at = dict(zip(chunk.lines, chunk.events, strict=True))
        named = {int(p.split(":")[1]) for p in chunk.problems}
        for number, raw in enumerate(complete, start=1):
            if raw in whole_lines:  # an untouched line is read as it was written
                assert read_at[number] == json.loads(raw), (case, number)
            elif number not in read_at:  # anything else skipped is named, or blank
                assert number in named or not raw.strip(), (case, number, raw)
        # The fold has every trial whose start was read, and names each line it skips.
        for number, event in read_at.items():
            if event["event"] == "trial_started":
                assert current.trials[event["trial"]].number == event["number"], (case, number)
        assert all(p.startswith("journal.jsonl:") for p in current.problems), case
        # A coordinator appending after any of it: its event is read intact, as the last line.
        exp.append(finished(1, status=state.FAILED, reason=f"case {case}"))
        last = exp.read()
        assert last.events and last.events[-1]["reason"] == f"case {case}", case
        assert last.lines[-1] == last.line - 1 and last.pending == 0, case


def test_random_events_never_break_the_fold_and_both_checks_agree() -> None:
    rng = random.Random(7)
    values: list[Any] = [None, True, 0, -1, 3, 1.5, float("nan"), 1e300, T, "", "x", "exp-0001",
                         "..", "a/b", [], ["a"], [1], {}, {"a": 1}, {"a": "b"}]  # fmt: skip
    keys = ["event", "trial", "number", "params", "status", "t", "gpus", "retry_of", "argv",
            "pid", "proc_start", "exit_code", "metrics", "found_tags", "reason"]  # fmt: skip
    kinds = ["trial_started", "trial_running", "trial_finished", "experiment", "other", 1]
    good = [started(1), finished(1), ended(), {"event": "trial_running", "trial": "exp-0001"}]
    accepted = 0
    for _ in range(400):
        events: list[Any] = []
        for _ in range(rng.randint(1, 12)):
            event = dict(rng.choice(good))
            event["event"] = rng.choice(kinds) if rng.random() < 0.2 else event["event"]
            for key in rng.sample(keys, rng.randint(0, 3)):
                if rng.random() < 0.3:
                    event.pop(key, None)
                else:
                    event[key] = rng.choice(values)
            events.append(event if rng.random() < 0.9 else rng.choice(values))
        journal.reduce_events(events)  # never raises
        for event in events:
            if type(event) is dict and journal_events._well_formed(event):
                problems: list[str] = []
                checked = journal_events.check_event(event, 1, problems)
                assert checked is event and not problems, event
                accepted += 1
    assert accepted > 200
