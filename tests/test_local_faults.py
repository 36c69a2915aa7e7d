"""The local coordinator under hostile conditions: trainers that escape their process group, a
coordinator killed while trials finish, a closed pipe, a full disk, trials and sweeps that never
end. Real processes, a real tmpfs, the real `launch` console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch import processes, state
from launch.errors import ExitCode
from tests.gitrepo import make_repo

LAUNCH = str(Path(sys.executable).with_name("launch"))
# No local MLflow store to create before the first trial (seconds each): not what is tested here.
QUIET_ENV = {"NO_COLOR": "1", "MLFLOW_TRACKING_URI": "file:///dev/null/mlruns"}

# A trainer that writes its loss after --sleep (or $TRAINER_SLEEP, so a resumed sweep can run
# faster), forks a `setsid` grandchild that ignores SIGTERM (--mode=escape), fails
# (--mode=fail), or, with $TRAINER_FILL, the first one fills that disk once it logged its loss.
TRAINER = r"""
import os, signal, subprocess, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
tb = args["tensorboard_dir"]
os.makedirs(tb, exist_ok=True)
mode = args.get("mode", "ok")
if mode == "escape":
    # A grandchild in a session of its own that ignores SIGTERM: killpg never reaches it.
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        start_new_session=True,
    )
    with open(os.path.join(tb, "grandchild.pid"), "w") as f:
        f.write(str(child.pid))
with open(os.path.join(tb, "pid"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(os.environ.get("TRAINER_SLEEP", args.get("sleep", "0"))))
if mode == "fail":
    raise ValueError("bad trial")
from tensorboardX import SummaryWriter
w = SummaryWriter(tb)
w.add_scalar("loss", float(args["lr"]), 1)
w.close()
# The first trial to get here fills the disk: only a mounted test disk (never what lies under it
# once unmounted), and at most 256 MiB whatever happens.
fill = os.environ.get("TRAINER_FILL")
if fill and os.path.ismount(fill):
    try:
        f = open(os.path.join(fill, "filler"), "xb")
    except FileExistsError:
        sys.exit(0)
    try:
        for _ in range(4096):
            f.write(b"x" * 65536)
            f.flush()
    except OSError:
        pass
"""

SEARCH = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parameters:
  - {name: lr, parameterType: discrete, feasibleSpace: {list: [%s]}}
parallelTrialCount: %d
maxFailedTrialCount: %d
"""


def project(tmp_path: Path, values: str = "0.1, 0.2", parallel: int = 2, failed: int = 1) -> Path:
    return make_repo(
        tmp_path, files={"train.py": TRAINER, "search.yaml": SEARCH % (values, parallel, failed)}
    ).path


def launch(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    return subprocess.run(
        [LAUNCH, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def start(cwd: Path, name: str, *cmd: str, **popen: object) -> subprocess.Popen[str]:
    kwargs: dict[str, object] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    kwargs.update(popen)
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [LAUNCH, "--backend", "local", "--no-preflight", "--name", name, "search.yaml", "--",
         sys.executable, "train.py", *cmd],
        cwd=cwd, env={**os.environ, **QUIET_ENV}, text=True, **kwargs,
    )  # fmt: skip


def wait_for(predicate: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def exp_of(cwd: Path, name: str, home: Path | None = None) -> state.Experiment:
    return state.Experiment((home or cwd / ".launch") / "experiments" / name)


def pids_started(exp: state.Experiment, filename: str = "pid") -> list[int]:
    """Pids the trainers wrote (the trainer itself, or its escaped grandchild)."""
    found = []
    trials = exp.path / "trials"
    for path in sorted(trials.glob(f"*/tfevent/{filename}")) if trials.is_dir() else ():
        text = path.read_text()
        if text.isdigit():
            found.append(int(text))
    return found


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for init to reap it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def no_trial_process_left(exp: state.Experiment) -> bool:
    return not any(
        processes.members(processes.token_for(exp.trial_dir(name))) for name in exp.state().trials
    )


def test_cancel_ends_a_setsid_grandchild_that_ignores_sigterm(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    proc = start(cwd, "escape", "--mode=escape", "--sleep=600")
    try:
        exp = exp_of(cwd, "escape")
        wait_for(
            lambda: len(pids_started(exp, "grandchild.pid")) == 2 and len(pids_started(exp)) == 2
        )
        grandchildren = pids_started(exp, "grandchild.pid")
        assert all(alive(pid) for pid in grandchildren)
        # Out of the trial's process group and session: only the token scan can find them.
        assert all(os.getsid(pid) == pid for pid in grandchildren)
        cancel = launch(cwd, "cancel", "escape")
        assert cancel.returncode == 0, cancel.stderr
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert exp.state().status == state.EXP_CANCELLED
    assert [t.status for t in exp.state().trials.values()] == [state.KILLED] * 2
    wait_for(lambda: not any(alive(pid) for pid in grandchildren + pids_started(exp)), 30)
    assert no_trial_process_left(exp)


def test_a_finished_trials_leftover_children_end_with_it(tmp_path: Path) -> None:
    """A trainer exits 0 leaving a setsid daemon: the daemon is stopped, as the pod's would be."""
    cwd = project(tmp_path, values="0.1", parallel=1)
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "leftover", "search.yaml", "--",
                  sys.executable, "train.py", "--mode=escape")  # fmt: skip
    assert done.returncode == 0, done.stderr
    exp = exp_of(cwd, "leftover")
    (grandchild,) = pids_started(exp, "grandchild.pid")
    wait_for(lambda: not alive(grandchild), 30)
    assert [t.status for t in exp.state().trials.values()] == [state.SUCCEEDED]


def test_trials_that_finish_while_the_coordinator_is_dead_are_not_rerun(tmp_path: Path) -> None:
    cwd = project(tmp_path, values="0.1, 0.2, 0.3", parallel=2)
    proc = start(cwd, "dead", "--sleep=2")
    exp = exp_of(cwd, "dead")
    wait_for(lambda: len(pids_started(exp)) == 2)
    proc.kill()  # kill -9: no chance to journal anything
    proc.wait()
    orphans = [r for r in exp.state().trials.values() if r.status == state.RUNNING]
    assert len(orphans) == 2
    # Both trainers end on their own while nobody watches; their shells keep the exit status.
    wait_for(
        lambda: all((exp.trial_dir(r.name) / processes.EXIT_FILE).exists() for r in orphans), 60
    )
    done = launch(cwd, "watch", "dead")
    assert done.returncode == 0, done.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    for orphan in orphans:
        record = after.trials[orphan.name]
        assert record.status == state.SUCCEEDED and record.exit_code == 0
        assert record.metrics["loss"] == pytest.approx(float(orphan.params["lr"]))
        assert "ended while launch was not running" in record.reason
    # Nothing ran twice: three configs, three trials.
    assert len(after.trials) == 3 and not any(r.retry_of for r in after.trials.values())


def test_a_failed_trial_that_ended_unwatched_keeps_its_exit_code(tmp_path: Path) -> None:
    cwd = project(tmp_path, values="0.1", parallel=1)
    proc = start(cwd, "deadfail", "--sleep=2", "--mode=fail")
    exp = exp_of(cwd, "deadfail")
    wait_for(lambda: len(pids_started(exp)) == 1)
    proc.kill()
    proc.wait()
    (orphan,) = exp.state().trials.values()
    wait_for(lambda: (exp.trial_dir(orphan.name) / processes.EXIT_FILE).exists(), 60)
    done = launch(cwd, "watch", "deadfail")
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stderr
    record = exp.state().trials[orphan.name]
    assert record.status == state.FAILED and record.exit_code == 1
    assert "ValueError" in record.reason and len(exp.state().trials) == 1


def test_a_closed_pipe_stops_the_narration_not_the_sweep(tmp_path: Path) -> None:
    """`launch ... 2>&1 | head -1`: the reader leaves at once; every trial still runs and ends."""
    cwd = project(tmp_path, values="0.1, 0.2, 0.3, 0.4", parallel=2, failed=4)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: every write is EPIPE
    try:
        proc = start(cwd, "pipe", "--sleep=0.2", stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    assert proc.wait(timeout=180) == 0
    current = exp_of(cwd, "pipe").state()
    assert current.status == state.EXP_SUCCEEDED
    assert [t.status for t in current.trials.values()] == [state.SUCCEEDED] * 4


def test_trial_timeout_fails_a_never_ending_trial_and_leaves_no_process(tmp_path: Path) -> None:
    cwd = project(tmp_path, values="0.1, 0.2", parallel=2, failed=2)
    started = time.monotonic()
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "slow", "--trial-timeout", "2s",
                  "search.yaml", "--", sys.executable, "train.py", "--mode=escape",
                  "--sleep=600")  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stderr
    assert elapsed < 120  # 2 s each, in parallel; generous for a loaded machine
    exp = exp_of(cwd, "slow")
    trials = list(exp.state().trials.values())
    assert [t.status for t in trials] == [state.FAILED] * 2
    assert all(t.reason == "timed out after 2s (--trial-timeout)" for t in trials)
    assert exp.meta()["trial_timeout_s"] == 2
    wait_for(
        lambda: not any(alive(p) for p in pids_started(exp) + pids_started(exp, "grandchild.pid")),
        30,
    )


def test_timeout_stops_a_local_sweep_with_exit_6_and_it_resumes(tmp_path: Path) -> None:
    cwd = project(tmp_path, values="0.1, 0.2", parallel=2)
    env = {"MLFLOW_TRACKING_URI": f"file://{tmp_path / 'mlruns'}"}  # no store to create first
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "capped", "--timeout", "15s", "search.yaml",
                  "--", sys.executable, "train.py", "--sleep=600", env=env)  # fmt: skip
    exp = exp_of(cwd, "capped")
    assert done.returncode == ExitCode.TIMED_OUT, done.stderr
    assert "launch watch capped" in done.stderr
    current = exp.state()
    assert current.status == state.EXP_INTERRUPTED
    assert current.reason == "timed out after 15s (--timeout)"
    stopped = [t for t in current.trials.values() if t.reason == current.reason]
    assert [t.status for t in stopped] == [state.KILLED] * 2
    assert not any(t.status == state.RUNNING for t in current.trials.values())
    wait_for(lambda: not any(alive(p) for p in pids_started(exp)), 30)
    assert exp.coordinator_pid() is None and no_trial_process_left(exp)
    listed = json.loads(launch(cwd, "list", "--json").stdout)
    assert listed[0]["status"] == state.EXP_INTERRUPTED
    # Resumable: the stopped configs run again, to the end this time.
    resumed = launch(cwd, "watch", "capped", env={**env, "TRAINER_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    succeeded = [t.params["lr"] for t in after.trials.values() if t.status == state.SUCCEEDED]
    assert sorted(succeeded) == ["0.1", "0.2"]


def test_run_timeout_on_the_local_backend_exits_6(tmp_path: Path) -> None:
    cwd = project(tmp_path, values="0.1", parallel=1)
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "short", "--timeout", "1s", "search.yaml",
                  "--", sys.executable, "train.py", "--sleep=600")  # fmt: skip
    assert done.returncode == ExitCode.TIMED_OUT, done.stderr
    current = exp_of(cwd, "short").state()
    assert current.status == state.EXP_INTERRUPTED and "(--timeout)" in current.reason
    assert not any(t.status == state.RUNNING for t in current.trials.values())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_trials_cleanly_and_the_sweep_resumes(
    tmp_path: Path, small_disk: Path
) -> None:
    """The first trial fills the disk after logging its loss. Later trials fail on it (they
    really did), until a journal write hits ENOSPC: then every running trial is stopped, the
    journal says why (in the space launch kept in reserve), and `watch` resumes once space is back."""
    values = ", ".join(f"0.{i:02d}" for i in range(1, 25))
    cwd = project(tmp_path, values=values, parallel=2, failed=24)
    home = small_disk / "home"
    env = {"LAUNCH_HOME": str(home), "MLFLOW_TRACKING_URI": f"file://{tmp_path / 'mlruns'}"}
    done = launch(cwd, "--backend", "local", "--no-preflight", "--name", "full", "search.yaml", "--",
                  sys.executable, "train.py", "--sleep=0.3",
                  env={**env, "TRAINER_FILL": str(small_disk)})  # fmt: skip
    assert done.returncode == ExitCode.UNEXPECTED, done.stderr
    assert "error: the disk holding" in done.stderr and "is full" in done.stderr
    assert "hint: free some space, then resume with `launch watch full`" in done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
    exp = exp_of(cwd, "full", home)
    current = exp.state()
    assert current.status == state.EXP_INTERRUPTED and current.reason.startswith("disk full")
    assert not any(t.status == state.RUNNING for t in current.trials.values())
    assert exp.coordinator_pid() is None and len(current.trials) < 24
    assert no_trial_process_left(exp)
    # Space is back: the sweep resumes and ends; every config ends exactly once, apart from
    # the Killed ones, which ran again.
    for filler in small_disk.glob("filler*"):
        filler.unlink()
    resumed = launch(cwd, "watch", "full", env=env)
    assert resumed.returncode == 0, resumed.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    ended = sorted(t.params["lr"] for t in after.trials.values() if t.status != state.KILLED)
    assert ended == values.split(", ")


def test_a_damaged_journal_and_a_truncated_experiment_json_break_no_command(
    tmp_path: Path,
) -> None:
    """After a real sweep: junk lines and a torn line in one journal, a truncated
    experiment.json in another experiment. `list` shows both and goes on; `status`/`results`
    read the good lines with one warning naming the bad ones."""
    cwd = project(tmp_path, values="0.1, 0.2", parallel=2)
    env = {"MLFLOW_TRACKING_URI": f"file://{tmp_path / 'mlruns'}"}
    for name in ("good", "other"):
        done = launch(cwd, "--backend", "local", "--no-preflight", "--name", name, "search.yaml", "--",
                      sys.executable, "train.py", env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
    good, other = exp_of(cwd, "good"), exp_of(cwd, "other")
    lines = good.journal_path.read_bytes().splitlines(keepends=True)
    good.journal_path.write_bytes(
        lines[0] + b"123\nnull\n\xff\xfe\n" + b"".join(lines[1:]) + b'{"event": "trial_fin'
    )
    (good.path / "state.snapshot.json").unlink(missing_ok=True)
    meta = other.meta_path.read_text()
    other.meta_path.write_text(meta[: len(meta) // 2])

    listed = launch(cwd, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["good"]["status"] == state.EXP_SUCCEEDED
    assert rows["good"]["trials"] == {state.SUCCEEDED: 2}
    assert (
        rows["other"]["status"] == state.EXP_BROKEN and "not valid JSON" in rows["other"]["problem"]
    )
    assert "warning: good: 4 journal problems: journal.jsonl:2:" in listed.stderr

    status = launch(cwd, "status", "good")
    assert status.returncode == 0, status.stderr
    assert status.stderr.count("warning:") == 1 and "journal.jsonl:2" in status.stderr
    assert "2 succeeded" in status.stdout
    results = launch(cwd, "results", "good", "--format", "csv")
    assert results.returncode == 0 and len(results.stdout.splitlines()) == 3
    broken = launch(cwd, "status", "other")
    assert broken.returncode == ExitCode.UNEXPECTED
    assert "error:" in broken.stderr and "experiment.json is not valid JSON" in broken.stderr
    assert "hint:" in broken.stderr and "unexpected" not in broken.stderr
