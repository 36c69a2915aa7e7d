"""Local state is private to its user (issue 19): under `.launch/` directories are 0700 and files
0600 whatever the umask, `--env` values are kept out of experiment.json (in `env.json`, 0600),
trials still get them (resumed ones too), and an older launch's 0755/0644 home is tightened.
Real git repos, the real `launch` console script under `umask 022`, real trainer processes."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launch import local, private, state
from launch.errors import ExitCode
from launch.spec import LaunchSpec
from tests.gitrepo import make_repo
from tests.test_local import LAUNCH, ONE_TRIAL, SEARCH_RANDOM, _wait_for

SECRET = "abc123"

# Writes the variables it got to its TensorBoard directory (with the user's umask: the
# coordinator tightens it when the trial ends), then one `loss` scalar.
TRAINER = """
import json, os, sys, time
tb = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--tensorboard_dir="))
os.makedirs(tb, exist_ok=True)
with open(os.path.join(tb, "env.json"), "w") as f:
    json.dump({k: os.environ.get(k) for k in ("SECRET_TOKEN", "KATIB_TRIAL_NAME")}, f)
time.sleep(float(os.environ.get("TRAINER_SLEEP", "0")))
from tensorboardX import SummaryWriter
w = SummaryWriter(tb)
w.add_scalar("loss", 0.5, 1)
w.close()
"""

TWO_TRIALS = SEARCH_RANDOM.replace("maxTrialCount: 4", "maxTrialCount: 2")


def project(tmp_path: Path, search: str) -> Path:
    return make_repo(tmp_path, files={"train.py": TRAINER, "search.yaml": search}).path


def launch_argv(*args: str) -> list[str]:
    """`launch ARGS` under a permissive umask, as a user's shell would run it."""
    command = " ".join(shlex.quote(a) for a in (LAUNCH, *args))
    return ["sh", "-c", f"umask 022; exec {command}"]


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch_argv(*args), cwd=cwd, env={**os.environ, "NO_COLOR": "1", **(env or {})},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def sweep_args(name: str, *extra: str) -> list[str]:
    return ["--backend", "local", "--no-preflight", "--name", name, "--env", f"SECRET_TOKEN={SECRET}", *extra,
            "search.yaml", "--", sys.executable, "train.py"]  # fmt: skip


def loose(home: Path) -> list[str]:
    """Everything under `home` (not inside a worktree) that is not 0700 (dirs) / 0600 (files)."""
    found = []
    for top, dirs, files in os.walk(home):
        dirs[:] = [d for d in dirs if d != "worktree"]
        for name in (*dirs, *files):
            info = os.lstat(os.path.join(top, name))
            if stat.S_ISLNK(info.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            if stat.S_IMODE(info.st_mode) != want:
                found.append(f"{os.path.join(top, name)}: {stat.S_IMODE(info.st_mode):o}")
    mode = stat.S_IMODE(home.stat().st_mode)
    return found if mode == 0o700 else [f"{home}: {mode:o}", *found]


def got_env(exp: state.Experiment, trial: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((exp.trial_dir(trial) / "tfevent" / "env.json").read_text())
    return data


def assert_secret_kept_apart(exp: state.Experiment) -> None:
    assert SECRET not in exp.meta_path.read_text()
    assert exp.meta()["env"] == ["SECRET_TOKEN"]
    assert json.loads((exp.path / local.ENV_FILE).read_text()) == {"SECRET_TOKEN": SECRET}
    assert SECRET not in (exp.path / "journal.jsonl").read_text()


def test_a_sweep_under_umask_022_leaves_only_private_state(tmp_path: Path) -> None:
    cwd = project(tmp_path, TWO_TRIALS)
    done = run(cwd, *sweep_args("priv"))
    assert done.returncode == 0, done.stderr
    exp = state.Experiment.open(cwd / ".launch", "priv")
    current = exp.state()
    assert current.status == state.EXP_SUCCEEDED
    assert_secret_kept_apart(exp)
    for name in current.trials:
        assert got_env(exp, name) == {"SECRET_TOKEN": SECRET, "KATIB_TRIAL_NAME": name}
    # What the other commands show never has the value; what they write is private too.
    for args in (["status", "priv", "--json"], ["results", "priv", "--json"], ["list", "--json"]):
        shown = run(cwd, *args)
        assert shown.returncode == 0, shown.stderr
        assert SECRET not in shown.stdout + shown.stderr
    assert loose(cwd / ".launch") == []


def _interrupt(cwd: Path, name: str) -> state.Experiment:
    """Start a sweep whose trials sleep, Ctrl-C it once both run: Interrupted, trials Killed."""
    path = cwd / ".launch" / "experiments" / name
    proc = subprocess.Popen(
        launch_argv(*sweep_args(name)), cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "TRAINER_SLEEP": "60", "LAUNCH_MLFLOW_DISABLE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def running() -> int:
        if not (path / "journal.jsonl").exists():
            return 0
        trials = state.Experiment(path).state().trials.values()
        return sum(r.status == state.RUNNING and r.pid is not None for r in trials)

    try:
        _wait_for(lambda: running() == 2, timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.DETACHED, err
    exp = state.Experiment(path)
    assert exp.state().status == state.EXP_INTERRUPTED
    return exp


def _resume(cwd: Path, exp: state.Experiment) -> None:
    killed = [r.name for r in exp.state().trials.values() if r.status == state.KILLED]
    assert len(killed) == 2
    done = run(cwd, "watch", exp.name, env={"TRAINER_SLEEP": "0", "LAUNCH_MLFLOW_DISABLE": "1"})
    assert done.returncode == 0, done.stderr
    after = exp.state()
    assert after.status == state.EXP_SUCCEEDED
    reruns = [r for r in after.trials.values() if r.retry_of in killed]
    assert len(reruns) == 2 and all(r.status == state.SUCCEEDED for r in reruns)
    for record in reruns:  # the resumed coordinator read the value back from env.json
        assert got_env(exp, record.name)["SECRET_TOKEN"] == SECRET


def test_a_resumed_sweep_still_passes_the_env_values(tmp_path: Path) -> None:
    cwd = project(tmp_path, TWO_TRIALS)
    exp = _interrupt(cwd, "resume")
    assert_secret_kept_apart(exp)
    assert loose(cwd / ".launch") == []
    _resume(cwd, exp)
    assert_secret_kept_apart(exp)
    assert loose(cwd / ".launch") == []


def test_an_older_launchs_home_is_tightened_and_its_inline_env_moved(tmp_path: Path) -> None:
    """State as an older launch left it: 0755/0644 everywhere, the values in experiment.json."""
    cwd = project(tmp_path, TWO_TRIALS)
    exp = _interrupt(cwd, "old")
    meta = exp.meta()
    state.write_json_atomic(exp.meta_path, {**meta, "env": {"SECRET_TOKEN": SECRET}})
    (exp.path / local.ENV_FILE).unlink()
    home = cwd / ".launch"
    for top, dirs, files in os.walk(home):
        dirs[:] = [d for d in dirs if d != "worktree"]
        os.chmod(top, 0o755)
        for name in files:
            os.chmod(os.path.join(top, name), 0o644)
    assert loose(home) != []
    # An older record is still read: its values are the trials' (no env.json needed).
    assert local.LocalExperiment.load(exp).env == {"SECRET_TOKEN": SECRET}
    _resume(cwd, exp)
    assert loose(home) == []
    assert_secret_kept_apart(exp)  # moved out of the record on resume


def test_a_new_experiment_in_an_older_home_tightens_the_home(tmp_path: Path) -> None:
    cwd = project(tmp_path, ONE_TRIAL)
    home = cwd / ".launch"
    (home / "experiments").mkdir(parents=True)
    (home / ".gitignore").write_text("*\n")
    (home / "mlflow.db").write_bytes(b"")
    os.chmod(home, 0o755)
    os.chmod(home / "experiments", 0o755)
    os.chmod(home / ".gitignore", 0o644)
    os.chmod(home / "mlflow.db", 0o644)
    local_meta = {"backend": "katib", "name": "k", "namespace": "default"}
    exp = state.Experiment.create(home, "k", local_meta)
    assert loose(home) == []
    assert stat.S_IMODE(exp.meta_path.stat().st_mode) == 0o600


def test_private_helpers_ignore_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        private.mkdir(tmp_path / "a" / "b", parents=True)
        private.write_atomic(tmp_path / "a" / "b" / "f", b"x")
        os.close(private.open_file(tmp_path / "a" / "g", os.O_WRONLY))
        state.write_json_atomic(tmp_path / "a" / "h.json", {"k": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    for name in ("b/f", "g", "h.json"):
        assert stat.S_IMODE((tmp_path / "a" / name).stat().st_mode) == 0o600


def test_a_file_that_cannot_be_tightened_is_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that belongs to someone else (chmod: EPERM): warned once, never an error."""
    for name in ("x", "y"):
        (tmp_path / name).write_text("")
        os.chmod(tmp_path / name, 0o644)

    def refuse(path: Any, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(private, "_warned", False)
    monkeypatch.setattr(os, "chmod", refuse)
    private.tighten_tree(tmp_path)
    err = capsys.readouterr().err
    assert err.count("warning: cannot make") == 1 and "Operation not permitted" in err


def test_an_older_record_with_inline_values_is_read(tmp_path: Path) -> None:
    exp = state.Experiment.create(tmp_path / "home", "e", {**_minimal_meta(), "name": "e"})
    job = local.LocalExperiment.from_meta({"name": "e", "env": {"A": "1"}, **_minimal_meta()})
    assert job.env == {"A": "1"} and job.to_meta()["env"] == ["A"]
    # A record naming a variable whose value is gone is an error, not a trial without it.
    state.write_json_atomic(exp.meta_path, {**_minimal_meta(), "name": "e", "env": ["A"]})
    with pytest.raises(state.StateError, match="lacks the --env value of A"):
        local.LocalExperiment.load(exp)
    local.write_env(exp.path, {"A": "1"})
    assert local.LocalExperiment.load(exp).env == {"A": "1"}
    assert stat.S_IMODE((exp.path / local.ENV_FILE).stat().st_mode) == 0o600


def _minimal_meta() -> dict[str, Any]:
    spec = LaunchSpec.model_validate(
        {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
         "algorithm": {"algorithmName": "grid"},
         "parameters": [{"name": "lr", "parameterType": "discrete",
                         "feasibleSpace": {"list": ["0.1"]}}]}
    )  # fmt: skip
    return {
        "backend": "local", "spec": spec.model_dump(mode="json"), "command": ["true"],
        "workdir": "/", "commit": "0" * 40, "gpus_per_trial": 0, "parallel": 1,
        "max_trials": 1, "max_failed": 1, "tracking_uri": "",
    }  # fmt: skip


def test_a_new_mlflow_store_is_private(tmp_path: Path) -> None:
    from launch import mlflow_store

    old = os.umask(0o022)
    try:
        assert mlflow_store.create_local_store(tmp_path / "home" / "mlflow.db") is True
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "home" / "mlflow.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
