"""A local trial killed by a signal launch did not send (the OOM killer, `kill -9`) is restarted
in place up to `retries` times, keeping its name, number, argv, event files, checkpoint
directory and MLflow run; the user's own failures and launch's own kills are never restarted.
Real git repos, real trainer processes, real signals, the real `launch` console script."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from launch import coordinator, events, journal, local, processes, state
from launch.errors import ExitCode
from launch.spec import LaunchSpec
from tests.gitrepo import git, make_repo

# No local MLflow store to create (seconds each), except where the MLflow run is what is tested.
from tests.test_local_faults import LAUNCH, QUIET_ENV

# Writes what each attempt saw to <tensorboard_dir>/attempt-<k>.json, leaves a checkpoint in
# $LAUNCH_CHECKPOINT_DIR, then behaves as --mode says: kill-first (SIGKILLs itself on its first
# attempt only), kill-always, term-always, fail (exit 1), hang; else logs its loss.
TRAINER = r"""
import json, os, signal, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
tb = args["tensorboard_dir"]
os.makedirs(tb, exist_ok=True)
k = int(os.environ["LAUNCH_RESTART_COUNT"])
ck = os.environ["LAUNCH_CHECKPOINT_DIR"]
with open(os.path.join(tb, f"attempt-{k}.json"), "w") as f:
    json.dump({"trial": os.environ["KATIB_TRIAL_NAME"], "checkpoints": ck,
               "seen": sorted(os.listdir(ck)), "argv": sys.argv[1:], "pid": os.getpid()}, f)
with open(os.path.join(ck, f"ckpt-{k}"), "w") as f:
    f.write(str(k))
mode = args.get("mode", "ok")
if mode == "kill-always" or (mode == "kill-first" and k == 0):
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "term-always":
    os.kill(os.getpid(), signal.SIGTERM)
if mode == "fail":
    print("bad trial", file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    time.sleep(600)
from tensorboardX import SummaryWriter
w = SummaryWriter(tb)
w.add_scalar("loss", float(args["lr"]) + k, 1)
w.close()
"""

SEARCH = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parameters:
  - {name: lr, parameterType: discrete, feasibleSpace: {list: [%s]}}
parallelTrialCount: %d
maxFailedTrialCount: 1
"""


def project(tmp_path: Path, values: str = "0.1, 0.2") -> Path:
    search = SEARCH % (values, len(values.split(",")))  # every point at once
    return make_repo(tmp_path, files={"train.py": TRAINER, "search.yaml": search}).path


def launch(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAUNCH, *args], cwd=cwd, env={**os.environ, **(env or QUIET_ENV)},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def sweep(cwd: Path, name: str, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return launch(cwd, "--backend", "local", "--no-preflight", "--name", name, "search.yaml", "--",
                  sys.executable, "train.py", *cmd, **kw)  # fmt: skip


def exp_of(cwd: Path, name: str) -> state.Experiment:
    return state.Experiment(cwd / ".launch" / "experiments" / name)


def attempts(exp: state.Experiment, trial: str) -> list[dict[str, Any]]:
    tb = exp.trial_dir(trial) / "tfevent"
    found = sorted(tb.glob("attempt-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return [json.loads(p.read_text()) for p in found]


def logged(exp: state.Experiment, kind: str) -> list[dict[str, Any]]:
    return [e for e in exp.events()[0] if e["event"] == kind]


def wait_for(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_a_trial_killed_from_outside_restarts_in_place_and_keeps_its_mlflow_run(
    tmp_path: Path,
) -> None:
    cwd = project(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "MLFLOW_"))}
    done = sweep(cwd, "oom", "--mode=kill-first", env={**env, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    exp = exp_of(cwd, "oom")
    current = exp.state()
    # A restart is no failure: maxFailedTrialCount is 1 and the sweep still succeeded.
    assert current.status == state.EXP_SUCCEEDED, current.reason
    assert exp.meta()["retries"] == local.DEFAULT_RETRIES == 3
    trials = sorted(current.trials.values(), key=lambda r: r.number)
    assert [(t.name, t.number) for t in trials] == [("oom-0001", 1), ("oom-0002", 2)]
    assert [t.status for t in trials] == [state.SUCCEEDED] * 2
    assert [t.restarts for t in trials] == [1, 1] and current.restarts == 2
    # Scalars are those of the second attempt (loss = lr + 1), in the same event directory.
    assert sorted(round(t.metrics["loss"], 4) for t in trials) == [1.1, 1.2]
    for trial in trials:
        first, second = attempts(exp, trial.name)
        assert first["trial"] == second["trial"] == trial.name
        assert first["argv"] == second["argv"] == trial.argv[2:]  # type: ignore[index]
        checkpoints = str(exp.trial_dir(trial.name) / local.CHECKPOINT_DIR)
        assert first["checkpoints"] == second["checkpoints"] == checkpoints
        assert first["seen"] == [] and second["seen"] == ["ckpt-0"]  # the trainer resumes
        log = (exp.trial_dir(trial.name) / "output.log").read_text()
        assert "launch: killed by SIGKILL (signal 9; out of memory" in log
    restarted = logged(exp, "trial_restarted")
    assert sorted(e["trial"] for e in restarted) == ["oom-0001", "oom-0002"]
    for event in restarted:
        assert event["attempt"] == 1 and event["number"] in (1, 2)
        assert event["reason"].startswith("killed by SIGKILL (signal 9; out of memory")
    # Each restart's process is journaled running (a resumed coordinator checks the newest pid).
    assert len(logged(exp, "trial_running")) == 4
    assert len(logged(exp, "trial_finished")) == 2
    assert "restarted (1/3)" in done.stdout + done.stderr
    # One MLflow run per trial, written once the trial (not an attempt) finished.
    with sqlite3.connect(cwd / ".launch" / "mlflow.db") as db:
        tagged = db.execute("SELECT value FROM tags WHERE key = 'katib.trial'").fetchall()
    assert sorted(v for (v,) in tagged) == ["oom-0001", "oom-0002"]


def test_a_trial_killed_every_time_fails_once_retries_are_exhausted(tmp_path: Path) -> None:
    cwd = project(tmp_path, "0.1")
    done = sweep(cwd, "doomed", "--mode=kill-always")
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stdout + done.stderr
    exp = exp_of(cwd, "doomed")
    (trial,) = exp.state().trials.values()
    assert trial.status == state.FAILED and trial.restarts == 3
    assert trial.reason.startswith("killed by SIGKILL 4 times; --retries 3 exhausted (signal 9;")
    assert trial.exit_code == -signal.SIGKILL
    assert [a["seen"] for a in attempts(exp, trial.name)] == [
        [],
        ["ckpt-0"],
        ["ckpt-0", "ckpt-1"],
        ["ckpt-0", "ckpt-1", "ckpt-2"],
    ]
    assert [e["attempt"] for e in logged(exp, "trial_restarted")] == [1, 2, 3]
    assert exp.state().status == state.EXP_FAILED and exp.state().restarts == 3


def test_the_users_own_failure_is_never_restarted(tmp_path: Path) -> None:
    cwd = project(tmp_path, "0.1")
    done = sweep(cwd, "bad", "--mode=fail")
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stdout + done.stderr
    exp = exp_of(cwd, "bad")
    (trial,) = exp.state().trials.values()
    assert trial.status == state.FAILED and trial.reason == "exit code 1: bad trial"
    assert trial.restarts == 0 and len(attempts(exp, trial.name)) == 1
    assert not logged(exp, "trial_restarted")


def test_trial_timeout_kills_are_not_restarted(tmp_path: Path) -> None:
    cwd = project(tmp_path, "0.1")
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "slow", "--trial-timeout", "2s",
                  "search.yaml", "--", sys.executable, "train.py", "--mode=hang")  # fmt: skip
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stdout + done.stderr
    exp = exp_of(cwd, "slow")
    (trial,) = exp.state().trials.values()
    assert trial.status == state.FAILED and trial.reason == "timed out after 2s (--trial-timeout)"
    assert trial.restarts == 0 and not logged(exp, "trial_restarted")


def _hanging_sweep(cwd: Path, name: str) -> tuple[subprocess.Popen[str], state.Experiment]:
    proc = subprocess.Popen(
        [LAUNCH, "--backend", "local", "--no-preflight", "--name", name, "search.yaml", "--",
         sys.executable, "train.py", "--mode=hang"],
        cwd=cwd, env={**os.environ, **QUIET_ENV}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    exp = exp_of(cwd, name)
    wait_for(lambda: (exp.path / "trials" / f"{name}-0002" / "tfevent" / "attempt-0.json").exists())
    return proc, exp


def test_ctrl_c_and_cancel_kills_are_not_restarted(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    proc, exp = _hanging_sweep(cwd, "intr")
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [t.status for t in exp.state().trials.values()] == [state.KILLED] * 2
    assert not logged(exp, "trial_restarted")

    proc, exp = _hanging_sweep(cwd, "gone")
    try:
        cancel = launch(cwd, "cancel", "gone", timeout=120)
        assert cancel.returncode == 0, cancel.stderr
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert exp.state().status == state.EXP_CANCELLED
    assert [t.status for t in exp.state().trials.values()] == [state.KILLED] * 2
    assert not logged(exp, "trial_restarted")


def _in_process(tmp_path: Path, name: str, retries: int) -> state.Experiment:
    """An experiment run by a Coordinator in this process, with `retries` (not yet a flag)."""
    cwd = project(tmp_path / name, "0.1")
    commit = git(cwd, "rev-parse", "HEAD").strip()
    snap = SimpleNamespace(root=cwd, subdir="", commit=commit, branch="main")
    spec = LaunchSpec.model_validate(
        {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
         "algorithm": {"algorithmName": "grid"},
         "parameters": [{"name": "lr", "parameterType": "discrete",
                         "feasibleSpace": {"list": ["0.1"]}}]}
    )  # fmt: skip
    exp = local.create(
        home=cwd / ".launch", name=name, spec=spec, snap=snap, in_place=True,
        command=[sys.executable, "train.py", "--mode=term-always"], gpus_per_trial=0,
        parallel=1, gpu_slices=[], max_trials=1, max_failed=1, env=QUIET_ENV, retries=retries,
    )  # fmt: skip
    notes: list[str] = []
    runner = coordinator.Coordinator(
        exp, base_env={**os.environ, **QUIET_ENV, "LAUNCH_MLFLOW_DISABLE": "1"},
        report=lambda record: notes.append(getattr(events.from_journal(record), "text", "")),
    )  # fmt: skip
    assert runner.run() == state.EXP_FAILED
    assert sum("; restarted (" in n for n in notes) == retries
    return exp


def test_retries_is_kept_per_experiment_and_names_the_signal(tmp_path: Path) -> None:
    exp = _in_process(tmp_path, "once", 1)
    assert exp.meta()["retries"] == 1
    (trial,) = exp.state().trials.values()
    assert trial.reason == "killed by SIGTERM 2 times; --retries 1 exhausted (signal 15)"
    assert trial.restarts == 1 and exp.state().restarts == 1

    exp = _in_process(tmp_path, "never", 0)
    (trial,) = exp.state().trials.values()
    assert trial.reason == "killed by SIGTERM (signal 15)" and trial.restarts == 0

    # A record written before `retries` existed reads as 3.
    meta = {k: v for k, v in exp.meta().items() if k != "retries"}
    assert local.LocalExperiment.from_meta(meta).retries == 3


def test_which_signals_count_as_killed_from_outside() -> None:
    assert processes.outside_signal(-signal.SIGKILL) == signal.SIGKILL
    assert processes.outside_signal(-signal.SIGTERM) == signal.SIGTERM
    assert processes.outside_signal(-signal.SIGSEGV) is None  # the program's own crash
    assert processes.outside_signal(-signal.SIGABRT) is None
    assert processes.outside_signal(1) is None and processes.outside_signal(0) is None
    assert processes.kill_detail(9) == "signal 9; out of memory?"
    assert processes.kill_detail(9, oom=True).startswith("signal 9; out of memory (")
    assert processes.kill_detail(15) == "signal 15"
    count = processes.oom_kills()
    assert count is None or count >= 0


def test_the_fold_counts_restarts_and_keeps_the_trial_running() -> None:
    t = 1_700_000_000.0
    events = [
        {"event": "trial_started", "trial": "e-0001", "number": 1, "params": {}, "t": t},
        {"event": "trial_running", "trial": "e-0001", "pid": 10, "proc_start": "1"},
        {"event": "trial_restarted", "trial": "e-0001", "number": 1, "attempt": 1,
         "reason": "killed by SIGKILL (signal 9; out of memory?)", "t": t + 1},
        {"event": "trial_running", "trial": "e-0001", "pid": 11, "proc_start": "2"},
    ]  # fmt: skip
    current = journal.reduce_events(events)
    record = current.trials["e-0001"]
    assert not current.problems
    assert record.status == state.RUNNING and record.restarts == 1 and record.pid == 11
    assert current.restarts == 1
    bad = journal.reduce_events(
        [events[0], {"event": "trial_restarted", "trial": "e-0001", "t": t}]
    )
    assert bad.restarts == 0 and "trial_restarted without `attempt`" in bad.problems[0]


def test_both_journal_checks_agree_on_trial_restarted() -> None:
    from launch import journal_events

    good = {"event": "trial_restarted", "trial": "e-0001", "number": 1, "attempt": 2,
            "reason": "killed by SIGKILL (signal 9; out of memory?)", "t": 1_700_000_000.0}  # fmt: skip
    variants: list[dict[str, Any]] = [good, {k: v for k, v in good.items() if k != "reason"}]
    for key, value in [("attempt", "2"), ("attempt", True), ("number", 1.5), ("reason", 3),
                       ("trial", "a/b"), ("t", -1)]:  # fmt: skip
        variants.append({**good, key: value})
    for event in variants:
        problems: list[str] = []
        checked = journal_events.check_event(event, 1, problems)
        assert journal_events._well_formed(event) == (checked is event and not problems), event
    assert journal_events._well_formed(good)
