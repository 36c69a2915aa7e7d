"""The local backend end to end: real git repos, real trainer processes (a Draccus program writing
TensorBoard scalars with tensorboardX), the real `launch` console script, real signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from launch import local, state
from launch.errors import ExitCode, UsageError
from tests.gitrepo import make_repo

LAUNCH = str(Path(sys.executable).with_name("launch"))

TRAINER = '''
"""Test trainer: echoes what it received, then behaves as --mode says."""
import json, os, sys, time
from dataclasses import dataclass, field
import draccus

@dataclass
class Optim:
    lr: float = 0.1
    nesterov: bool = False

@dataclass
class Config:
    optim: Optim = field(default_factory=Optim)
    layers: int = 1
    act: str = "relu"
    seed: int = 0
    mode: str = "ok"
    sleep: float = 0.0
    tensorboard_dir: str = "tb"

cfg = draccus.parse(config_class=Config)
os.makedirs(cfg.tensorboard_dir, exist_ok=True)
with open(os.path.join(cfg.tensorboard_dir, "received.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "lr": cfg.optim.lr, "nesterov": cfg.optim.nesterov,
               "layers": cfg.layers, "act": cfg.act, "seed": cfg.seed, "cwd": os.getcwd(),
               "env": {k: os.environ.get(k) for k in ("KATIB_TRIAL_NAME", "KATIB_EXPERIMENT_NAME",
                       "KATIB_NAMESPACE", "LAUNCH_GIT_COMMIT", "MLFLOW_TRACKING_URI",
                       "MLFLOW_EXPERIMENT_NAME", "CUDA_VISIBLE_DEVICES")},
               "pid": os.getpid()}, f)
print("training", cfg, flush=True)
if cfg.mode == "stubborn":  # ignores SIGTERM: only the SIGKILL after the grace period ends it
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(float(os.environ.get("TRAINER_SLEEP", cfg.sleep)))
if cfg.mode == "crash":
    print("boom: something broke", file=sys.stderr)
    sys.exit(3)
from tensorboardX import SummaryWriter
w = SummaryWriter(cfg.tensorboard_dir)
if cfg.mode == "nometric":
    w.add_scalar("accuracy", 0.5, 1)
else:
    for step in range(3):
        w.add_scalar("loss", cfg.optim.lr * cfg.layers + cfg.seed / 100 + (2 - step), step)
w.close()
'''

SEARCH_RANDOM = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: 3}]}
parameters:
  - {name: optim.lr, parameterType: double, feasibleSpace: {min: 0.001, max: 0.5}}
  - {name: layers, parameterType: int, feasibleSpace: {min: 1, max: 4}}
  - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, tanh]}}
maxTrialCount: 4
parallelTrialCount: 2
"""

ONE_TRIAL = SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 1").replace(
    "parallelTrialCount: 2", "parallelTrialCount: 1"
)

SEARCH_GRID = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parameters:
  - {name: optim.lr, parameterType: double, feasibleSpace: {min: "0.1", max: "0.3", step: "0.1"}}
  - {name: optim.nesterov, parameterType: categorical, feasibleSpace: {list: ["true", "false"]}}
fixed: {layers: 2}
"""


def project(tmp_path: Path, search: str = SEARCH_RANDOM, **extra: str) -> Path:
    repo = make_repo(tmp_path, files={"train.py": TRAINER, "search.yaml": search, **extra})
    return repo.path


def launch(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [LAUNCH, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def experiment(cwd: Path, name: str) -> state.Experiment:
    return state.Experiment.open(cwd / ".launch", name)


def received(exp: state.Experiment, trial: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (exp.trial_dir(trial) / "tfevent" / "received.json").read_text()
    )
    return data


def test_random_sweep_end_to_end(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    done = launch(
        cwd, "--backend", "local", "--name", "rnd", "search.yaml", "--", sys.executable, "train.py"
    )
    assert done.returncode == 0, done.stderr
    exp = experiment(cwd, "rnd")
    current = exp.state()
    assert current.status == state.EXP_SUCCEEDED
    assert [t.status for t in current.trials.values()] == [state.SUCCEEDED] * 4
    for record in current.trials.values():
        got = received(exp, record.name)
        # Draccus parsed exactly the sampled values (floats in repr form, dotted names).
        assert got["lr"] == record.params["optim.lr"]
        assert got["layers"] == record.params["layers"] and got["act"] == record.params["act"]
        assert got["argv"][-1] == f"--tensorboard_dir={exp.trial_dir(record.name) / 'tfevent'}"
        assert got["env"]["KATIB_TRIAL_NAME"] == record.name
        assert got["env"]["KATIB_EXPERIMENT_NAME"] == "rnd"
        assert got["env"]["LAUNCH_GIT_COMMIT"] == exp.meta()["commit"]
        assert got["env"]["MLFLOW_EXPERIMENT_NAME"] == "rnd"
        assert got["env"]["CUDA_VISIBLE_DEVICES"] == ""
        # Trials run in a worktree of the commit, not in the user's checkout.
        assert got["cwd"] == str(exp.path / "worktree")
        expected = record.params["optim.lr"] * record.params["layers"]  # latest step's loss
        assert record.metrics["loss"] == pytest.approx(expected, rel=1e-6)
    # Results on stdout, best first; the worktree is gone once the experiment ended.
    assert done.stdout.split()[:3] == ["trial", "status", "loss"]
    assert not (exp.path / "worktree").exists()
    table = launch(cwd, "results", "rnd", "--format", "json")
    rows = json.loads(table.stdout)
    assert [r["objective"] for r in rows] == sorted(r["objective"] for r in rows)
    # The user's tree stays clean: .launch/ ignores itself.
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True
        ).stdout
        == ""
    )
    # Rerun trial 2 by hand, twice: the printed command runs it from a fresh worktree of the
    # commit with the very same flags; each printed command has its own worktree.
    second = next(r for r in current.trials.values() if r.number == 2)
    for _ in range(2):
        command = launch(cwd, "results", "rnd", "--trial", "2", "--rerun").stdout.strip()
        rerun = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        tb_dir = Path(command.rsplit("--tensorboard_dir=", 1)[1])
        again = json.loads((tb_dir / "received.json").read_text())
        shutil.rmtree(tb_dir.parent)  # the rerun's scratch directory, outside tmp_path
        assert again["argv"][:-1] == received(exp, second.name)["argv"][:-1]
        assert again["cwd"] != str(cwd) and again["cwd"].startswith("/tmp/launch-rerun/")


def test_grid_sweep_runs_every_point_with_fixed_flags(tmp_path: Path) -> None:
    cwd = project(tmp_path, SEARCH_GRID)
    done = launch(
        cwd, "--backend", "local", "--name", "grid", "search.yaml", "--", sys.executable, "train.py"
    )
    assert done.returncode == 0, done.stderr
    exp = experiment(cwd, "grid")
    records = list(exp.state().trials.values())
    # Katib's grid is numpy's arange, so 0.1 + 2 * 0.1 is 0.30000000000000004, as on the cluster.
    points = sorted((round(r.params["optim.lr"], 9), r.params["optim.nesterov"]) for r in records)
    assert points == [
        (0.1, "false"),
        (0.1, "true"),
        (0.2, "false"),
        (0.2, "true"),
        (0.3, "false"),
        (0.3, "true"),
    ]
    for record in records:
        got = received(exp, record.name)
        assert got["layers"] == 2  # from `fixed`
        assert got["nesterov"] is (
            record.params["optim.nesterov"] == "true"
        )  # Draccus parses the bool
        assert got["argv"][0] == "--layers=2"


def test_seed_sweep_passes_seeds(tmp_path: Path) -> None:
    search = "objective: {type: minimize, objectiveMetricName: loss}\nfixed: {optim.lr: 0.25}\n"
    cwd = project(tmp_path, search)
    done = launch(
        cwd,
        "--backend",
        "local",
        "--name",
        "seeds",
        "--seeds",
        "3",
        "search.yaml",
        "--",
        sys.executable,
        "train.py",
    )
    assert done.returncode == 0, done.stderr
    exp = experiment(cwd, "seeds")
    seeds = sorted(received(exp, r.name)["seed"] for r in exp.state().trials.values())
    assert seeds == [0, 1, 2]


def test_dry_run_shows_the_trials_the_sampler_will_run(tmp_path: Path) -> None:
    """With random_state set, --dry-run prints the very argv the first trials get."""
    cwd = project(tmp_path)
    args = ("--backend", "local", "--name", "same", "search.yaml", "--", sys.executable, "train.py")
    dry = launch(cwd, "--dry-run", "--json", *args)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["trialsExact"] and not plan["trialsComplete"] and len(plan["trials"]) == 4
    assert not (cwd / ".launch").exists()
    done = launch(cwd, *args)
    assert done.returncode == 0, done.stderr
    exp = experiment(cwd, "same")
    ran = [[sys.executable, "train.py", *received(exp, r.name)["argv"]]
           for r in sorted(exp.state().trials.values(), key=lambda r: r.number)]  # fmt: skip
    assert ran == plan["trials"]


@pytest.mark.parametrize(
    ("algorithm", "settings", "fixed"),
    [
        ("random", "", 0),  # no random_state: nothing is fixed in advance
        ("random", "{name: random_state, value: 1}", 2**31),
        ("sobol", "", 2**31),  # unscrambled Sobol: the same points every time
        ("tpe", "{name: random_state, value: 1}", 10),
        (
            "multivariate-tpe",
            "{name: random_state, value: 1}, {name: n_startup_trials, value: 3}",
            3,
        ),
        ("cmaes", "{name: random_state, value: 1}", 1),
    ],
)
def test_predictable_trials(algorithm: str, settings: str, fixed: int) -> None:
    from launch import sampling, spec

    loaded = spec.parse(
        "objective: {type: minimize, objectiveMetricName: loss}\n"
        f"algorithm: {{algorithmName: {algorithm}, algorithmSettings: [{settings}]}}\n"
        "parameters:\n"
        '  - {name: a, parameterType: double, feasibleSpace: {min: "0.1", max: "0.5"}}\n'
        '  - {name: b, parameterType: double, feasibleSpace: {min: "0.1", max: "0.5"}}\n'
    )
    assert sampling.predictable_trials(loaded) == fixed


def test_status_logs_and_cancel_of_a_running_sweep(tmp_path: Path) -> None:
    """A sweep whose trainers ignore SIGTERM: status and logs while it runs, then cancel ends
    it (SIGKILL after the grace period), records the trials Killed and leaves no process."""
    cwd = project(tmp_path)
    proc = subprocess.Popen(
        [LAUNCH, "--backend", "local", "--name", "live", "-q", "search.yaml", "--",
         sys.executable, "train.py", "--mode=stubborn", "--sleep=600"],
        cwd=cwd, env={**os.environ, "NO_COLOR": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        running: list[state.TrialRecord] = []
        while time.monotonic() < deadline and len(running) < 2:
            time.sleep(0.2)
            if (cwd / ".launch" / "experiments" / "live" / "experiment.json").exists():
                exp = experiment(cwd, "live")
                running = [t for t in exp.state().trials.values()
                           if t.status == state.RUNNING
                           and (exp.trial_dir(t.name) / "tfevent" / "received.json").exists()]  # fmt: skip
        assert len(running) == 2, proc.stderr
        status = json.loads(launch(cwd, "status", "live", "--json").stdout)
        assert status["status"] == state.EXP_RUNNING and status["trials"] == {state.RUNNING: 2}
        shown = launch(cwd, "status", "live")
        assert shown.returncode == 0 and "2 running" in shown.stdout
        logs = launch(cwd, "logs", "live", "--trial", "1")
        assert logs.returncode == 0 and "training Config(" in logs.stdout
        pids = [received(exp, t.name)["pid"] for t in running]
        follow = subprocess.Popen(
            [LAUNCH, "logs", "live", "--trial", "2", "-f"], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip

        cancel = launch(cwd, "cancel", "live", timeout=90)
        assert cancel.returncode == 0, cancel.stderr
        proc.wait(timeout=60)
        # `logs -f` printed the trial's output as it came, and ended when the trial did.
        followed, _ = follow.communicate(timeout=30)
        assert follow.returncode == 0 and "training Config(" in followed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [t.status for t in exp.state().trials.values()] == [state.KILLED] * 2
    assert exp.state().status == state.EXP_CANCELLED
    for pid in pids:  # gone (at most a zombie left for init to reap)
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z", pid
    csv_text = launch(cwd, "results", "live", "--format", "csv").stdout.splitlines()
    assert csv_text[0].startswith("trial,status,loss") and len(csv_text) == 3
    assert all(",Killed," in line for line in csv_text[1:])


def test_crashing_trainer_fails_the_experiment_after_max_failed(tmp_path: Path) -> None:
    search = SEARCH_RANDOM.replace(
        "maxTrialCount: 4", "maxTrialCount: 8\nmaxFailedTrialCount: 2"
    ).replace("parallelTrialCount: 2", "parallelTrialCount: 1")
    cwd = project(tmp_path, search)
    done = launch(
        cwd,
        "--backend",
        "local",
        "--name",
        "crash",
        "search.yaml",
        "--",
        sys.executable,
        "train.py",
        "--mode=crash",
    )
    assert done.returncode == ExitCode.TRIAL_FAILED
    exp = experiment(cwd, "crash")
    current = exp.state()
    assert current.status == state.EXP_FAILED
    # Katib ends the experiment once failures reach maxFailedTrialCount: 2 trials, not 8.
    assert [t.status for t in current.trials.values()] == [state.FAILED] * 2
    assert "exit code 3" in done.stderr and "launch logs crash --trial 1" in done.stderr
    # The trainer's last words are the reason, at once (no need to open the log for a typo).
    assert "Failed in" in done.stderr and "exit code 3: boom: something broke" in done.stderr
    assert [t.reason for t in current.trials.values()] == ["exit code 3: boom: something broke"] * 2
    table = launch(cwd, "results", "crash").stdout.splitlines()
    assert table[0].split()[-1] == "reason" and table[1].endswith(
        "exit code 3: boom: something broke"
    )
    logs = launch(cwd, "logs", "crash", "--trial", "2")
    assert "boom: something broke" in logs.stdout


def test_missing_objective_is_metrics_unavailable_with_found_tags(tmp_path: Path) -> None:
    cwd = project(tmp_path, ONE_TRIAL)
    done = launch(
        cwd,
        "--backend",
        "local",
        "--name",
        "nomet",
        "search.yaml",
        "--",
        sys.executable,
        "train.py",
        "--mode=nometric",
    )
    assert done.returncode == ExitCode.TRIAL_FAILED
    (record,) = experiment(cwd, "nomet").state().trials.values()
    assert record.status == state.METRICS_UNAVAILABLE
    assert "`accuracy`" in record.reason and "`loss`" in record.reason
    assert "MetricsUnavailable" in done.stderr


def test_missing_program_is_refused_by_the_preflight(tmp_path: Path) -> None:
    cwd = project(tmp_path, ONE_TRIAL)
    done = launch(
        cwd, "--backend", "local", "--name", "noprog", "search.yaml", "--", "no-such-program-xyz"
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert "the trials' command cannot start: `no-such-program-xyz`" in done.stderr
    assert not (cwd / ".launch" / "experiments" / "noprog").exists()


def test_missing_program_is_a_failed_trial_without_preflight(tmp_path: Path) -> None:
    cwd = project(tmp_path, ONE_TRIAL)
    done = launch(
        cwd, "--backend", "local", "--name", "noprog", "--no-preflight", "search.yaml", "--",
        "no-such-program-xyz",
    )  # fmt: skip
    assert done.returncode == ExitCode.TRIAL_FAILED
    (record,) = experiment(cwd, "noprog").state().trials.values()
    assert record.exit_code == 127 and "no-such-program-xyz" in record.reason


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _finished(cwd: Path, name: str) -> int:
    path = cwd / ".launch" / "experiments" / name
    if not (path / "journal.jsonl").exists():
        return 0
    return sum(r.status == state.SUCCEEDED for r in state.Experiment(path).state().trials.values())


@pytest.mark.timeout(400)  # a busy machine: six trials and a preflight, twice the usual time
def test_kill_9_coordinator_then_watch_resumes_without_rerunning(tmp_path: Path) -> None:
    search = SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 6")
    cwd = project(tmp_path, search)
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [LAUNCH, "--backend", "local", "--name", "kill9", "search.yaml", "--", sys.executable, "train.py", "--sleep=0.6"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for(lambda: _finished(cwd, "kill9") >= 2, timeout=240)
    proc.kill()
    proc.wait()
    exp = experiment(cwd, "kill9")
    # A trial the coordinator was starting when it died shares its lock for the instant between
    # fork and exec (the lock's fd is close-on-exec): the kernel releases it right after.
    _wait_for(lambda: exp.coordinator_pid() is None, timeout=30)
    before = exp.state()
    finished_before = {n: r for n, r in before.trials.items() if r.status == state.SUCCEEDED}
    orphans = [r for r in before.trials.values() if r.status == state.RUNNING]
    assert exp.coordinator_pid() is None
    listed = json.loads(launch(cwd, "list", "--json").stdout)
    assert listed[0]["status"] == state.EXP_INTERRUPTED
    done = launch(cwd, "watch", "kill9")
    assert done.returncode == 0, done.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    # Finished trials are kept as they were, never re-run.
    for name, record in finished_before.items():
        assert (
            after.trials[name].status == state.SUCCEEDED
            and after.trials[name].metrics == record.metrics
        )
    # Trials that were running either ended meanwhile (kept, from the exit status their shell
    # wrote: never re-run), or were still running (Killed, and their parameters run again).
    for orphan in orphans:
        record = after.trials[orphan.name]
        retries = [r for r in after.trials.values() if r.retry_of == orphan.name]
        if record.status == state.KILLED:
            assert len(retries) == 1 and retries[0].params == orphan.params
        else:
            assert record.status == state.SUCCEEDED and not retries
            assert "ended while launch was not running" in record.reason
    assert sum(r.status == state.SUCCEEDED for r in after.trials.values()) == 6


def test_ctrl_c_stops_trials_exits_130_and_resumes(tmp_path: Path) -> None:
    cwd = project(tmp_path, SEARCH_RANDOM)
    env = {**os.environ, "NO_COLOR": "1", "TRAINER_SLEEP": "30"}
    proc = subprocess.Popen(
        [LAUNCH, "--backend", "local", "--name", "ctrlc", "search.yaml", "--", sys.executable, "train.py"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def running_pids() -> list[int]:
        path = cwd / ".launch" / "experiments" / "ctrlc"
        if not (path / "journal.jsonl").exists():
            return []
        trials = state.Experiment(path).state().trials.values()
        return [r.pid for r in trials if r.status == state.RUNNING and r.pid]

    _wait_for(lambda: len(running_pids()) == 2)
    pids = running_pids()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.DETACHED, err
    assert "launch watch ctrlc" in err
    exp = experiment(cwd, "ctrlc")
    current = exp.state()
    assert current.status == state.EXP_INTERRUPTED
    assert sorted(r.status for r in current.trials.values()) == [state.KILLED, state.KILLED]
    for pid in pids:  # the trials' processes are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (exp.path / "worktree").is_dir()  # kept for the resume
    killed = {r.name: r.params for r in current.trials.values()}
    done = launch(cwd, "watch", "ctrlc", env={"TRAINER_SLEEP": "0"})
    assert done.returncode == 0, done.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    assert sum(r.status == state.SUCCEEDED for r in after.trials.values()) == 4
    for name, params in killed.items():
        assert [r.params for r in after.trials.values() if r.retry_of == name] == [params]


def test_gpu_slices_from_fake_nvidia_smi(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\nfor i in 0 1 2 3 4; do echo "GPU $i: Fake GPU (UUID: GPU-$i)"; done\n'
    )
    smi.chmod(0o755)
    search = SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 4").replace(
        "parallelTrialCount: 2", "parallelTrialCount: 3"
    )
    cwd = project(tmp_path, search)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = launch(cwd, "--backend", "local", "--name", "gpus", "--gpus", "2", "search.yaml", "--",
                  sys.executable, "train.py", "--sleep=0.5", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    exp = experiment(cwd, "gpus")
    assert exp.meta()["parallel"] == 2  # 5 GPUs hold two slices of 2: never oversubscribed
    records = sorted(exp.state().trials.values(), key=lambda r: r.number)
    seen = [received(exp, r.name)["env"]["CUDA_VISIBLE_DEVICES"] for r in records]
    assert set(seen) <= {"0,1", "2,3"}
    # Trials that overlapped in time had different slices.
    for a in records:
        for b in records:
            if (
                a.number < b.number
                and a.end is not None
                and b.start is not None
                and b.start < a.end
            ):
                assert a.gpus != b.gpus


def test_gpus_without_gpus_is_a_clear_error(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    done = launch(cwd, "--backend", "local", "--gpus", "1", "search.yaml", "--", sys.executable, "train.py",
                  env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == ExitCode.USAGE
    assert "error:" in done.stderr and "--gpus 0" in done.stderr
    assert not (cwd / ".launch" / "experiments").exists() or not list(
        (cwd / ".launch" / "experiments").iterdir()
    )


def test_plan_slots_and_detect_gpus() -> None:
    assert local.detect_gpus({"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5"]
    assert local.detect_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert local.detect_gpus({"PATH": "/nonexistent"}) == []
    assert local.plan_slots(gpus_per_trial=0, visible=[], parallel=3) == (3, [])
    assert local.plan_slots(gpus_per_trial=2, visible=["0", "1", "2"], parallel=3) == (
        1,
        [["0", "1"]],
    )
    with pytest.raises(UsageError, match="only 1 GPU"):
        local.plan_slots(gpus_per_trial=2, visible=["0"], parallel=1)


def test_dirty_tree_is_refused_for_local_too(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / "train.py").write_text((cwd / "train.py").read_text() + "\n# edit\n")
    done = launch(cwd, "--backend", "local", "search.yaml", "--", sys.executable, "train.py")
    assert done.returncode == ExitCode.GIT_STATE
    assert "--allow-dirty" in done.stderr
    assert not (cwd / ".launch" / "experiments").exists()
    # --allow-dirty runs the working tree as it is, in place: the edit is what the trials run.
    (cwd / "search.yaml").write_text(ONE_TRIAL)
    done = launch(cwd, "--backend", "local", "--allow-dirty", "--name", "inplace", "search.yaml",
                  "--", sys.executable, "train.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "in place (--allow-dirty)" in done.stderr
    exp = experiment(cwd, "inplace")
    (record,) = exp.state().trials.values()
    assert received(exp, record.name)["cwd"] == str(cwd)  # not a worktree of the commit
    assert not (exp.path / "worktree").exists()


def test_search_times_seeds_runs_each_config_once_per_seed(tmp_path: Path) -> None:
    search = SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 2")
    cwd = project(tmp_path, search)
    done = launch(cwd, "--backend", "local", "--name", "sxs", "--seeds", "3", "search.yaml", "--",
                  sys.executable, "train.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = list(experiment(cwd, "sxs").state().trials.values())
    assert len(records) == 6  # maxTrialCount counts configs: 2 configs x 3 seeds
    by_config: dict[str, list[int]] = {}
    for record in records:
        config = json.dumps({k: v for k, v in record.params.items() if k != "seed"}, sort_keys=True)
        by_config.setdefault(config, []).append(record.params["seed"])
    assert sorted(sorted(seeds) for seeds in by_config.values()) == [[0, 1, 2], [0, 1, 2]]


def test_seeded_suggester_finishes_a_half_run_config_first() -> None:
    from launch import sampling, spec

    loaded = spec.apply_seeds(spec.parse(SEARCH_RANDOM), seeds=3, local=True)
    config = {"optim.lr": 0.01, "layers": 2, "act": "tanh"}

    def rec(number: int, seed: int, status: str) -> state.TrialRecord:
        metrics = {"loss": 1.0 + seed} if status == state.SUCCEEDED else {}
        return state.TrialRecord(
            f"e-{number}", number, {**config, "seed": seed}, status=status, metrics=metrics
        )

    records = [rec(1, 0, state.SUCCEEDED), rec(2, 1, state.SUCCEEDED), rec(3, 2, state.KILLED)]
    suggester = sampling.make_suggester(loaded, records, seed_flag="seed")
    handle, params, retry_of = suggester.ask() or (0, {}, None)
    assert params == {**config, "seed": 2} and retry_of == "e-3"
    suggester.tell(handle, 3.0)
    _, params, retry_of = suggester.ask() or (0, {}, None)
    assert params["seed"] == 0 and retry_of is None and params != {**config, "seed": 0}


@pytest.mark.parametrize(
    "algorithm",
    ["random", "tpe", "multivariate-tpe", "cmaes", "sobol", "grid", "bayesianoptimization"],
)
def test_every_local_algorithm_suggests_inside_the_space(algorithm: str) -> None:
    from launch import sampling, spec

    if algorithm == "bayesianoptimization":
        # Optuna's GPSampler needs torch, an optional install (the next test: its error).
        pytest.importorskip("torch", reason="bayesianoptimization needs torch (pip install torch)")

    text = "\n".join(
        [
            "objective: {type: minimize, objectiveMetricName: loss}",
            f"algorithm: {{algorithmName: {algorithm}}}",
            "parameters:",
            '  - {name: optim.lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.5"'
            + ("}}" if algorithm == "bayesianoptimization" else ', step: "0.01"}}'),
            "  - {name: layers, parameterType: int, feasibleSpace: {min: 1, max: 4}}",
            "maxTrialCount: 6",
        ]
    )
    loaded = spec.parse(text)
    sampling.check_local(loaded)
    suggester = sampling.make_suggester(loaded, [], seed_flag="seed")
    for _ in range(6):
        asked = suggester.ask()
        assert asked is not None
        handle, params, retry_of = asked
        assert 0.01 <= params["optim.lr"] <= 0.5 and 1 <= params["layers"] <= 4 and retry_of is None
        suggester.tell(handle, params["optim.lr"] * params["layers"])


def test_bayesianoptimization_without_torch_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from launch import sampling, spec
    from launch.errors import SpecError

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    loaded = spec.parse(
        "objective: {type: minimize, objectiveMetricName: loss}\n"
        "algorithm: {algorithmName: bayesianoptimization}\n"
        "parameters:\n"
        '  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.5"}}\n'
    )
    with pytest.raises(SpecError) as info:
        sampling.check_local(loaded)
    assert "needs torch" in str(info.value) and "pip install torch" in (info.value.hint or "")


def test_local_samplers_build_without_warnings_and_say_what_differs_from_katib() -> None:
    import warnings

    from launch import sampling, spec

    def loaded(algorithm: str) -> Any:
        return spec.parse(
            "objective: {type: minimize, objectiveMetricName: loss}\n"
            f"algorithm: {algorithm}\n"
            "parameters:\n"
            '  - {name: a, parameterType: double, feasibleSpace: {min: "0.1", max: "0.5"}}\n'
            '  - {name: b, parameterType: double, feasibleSpace: {min: "0.1", max: "0.5"}}\n'
        )

    cmaes = loaded(
        "{algorithmName: cmaes, algorithmSettings: [{name: sigma, value: 0.2}, "
        "{name: restart_strategy, value: ipop}]}"
    )
    sobol = loaded("{algorithmName: sobol}")
    for one in (cmaes, sobol):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            suggester = sampling.make_suggester(one, [], seed_flag="seed")
            assert suggester.ask() is not None
        assert [str(w.message) for w in caught] == []
    (caveat,) = sampling.local_caveats(cmaes)
    assert "restart_strategy ipop applies on Katib only" in caveat
    assert sampling.local_caveats(sobol) == []


def test_the_trials_own_python_runs_the_mlflow_mirror() -> None:
    """The mirror (which writes the store) runs in the trials' Python, so the schema is the one
    their MLflow writes; the single-file build (no MLflow of its own) uses it too."""
    assert local.tracking_python([sys.executable, "t.py"], frozen=True, own="x") == sys.executable
    assert (
        local.tracking_python(["sh", "run.sh"], frozen=False, own="/venv/python") == "/venv/python"
    )
    assert local.tracking_python(["sh", "run.sh"], frozen=True, own="/venv/python") is None


def test_last_line_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    assert local.last_line(log) == ""  # no log at all
    log.write_text("")
    assert local.last_line(log) == ""
    log.write_text("x" * 10_000 + "\nTraceback (most recent call last):\nKeyError: 'lr'\n\n  \n")
    assert local.last_line(log) == "KeyError: 'lr'"
    log.write_text("y" * 500)
    assert local.last_line(log) == "y" * 200


def test_a_draccus_error_keeps_the_line_that_names_the_field(tmp_path: Path) -> None:
    """Draccus's DecodingError ends with a tab-indented `Underlying error is "KeyError: True"`:
    the reason keeps the line before it, which names the field."""
    program = tmp_path / "enum_cfg.py"
    program.write_text(
        "import enum\nfrom dataclasses import dataclass\nimport draccus\n"
        "class Act(enum.Enum):\n    relu = 'relu'\n    tanh = 'tanh'\n"
        "@dataclass\nclass C:\n    act: Act = Act.relu\n"
        "draccus.parse(config_class=C)\n"
    )
    log = tmp_path / "output.log"
    with log.open("wb") as out:
        subprocess.run(
            [sys.executable, str(program), "--act=on"], stdout=out, stderr=out, check=False
        )
    reason = local.last_line(log, limit=300)
    assert reason.startswith("draccus.utils.DecodingError: `act`:"), reason
    assert reason.endswith('Underlying error is "KeyError: True"'), reason
    # An indented line with no unindented head nearby stays alone.
    log.write_text("    a\n" * 10)
    assert local.last_line(log) == "a"
