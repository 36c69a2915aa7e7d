"""The local backend's MLflow mirror (launch.mirror): every trial gets its run, with no MLflow in
the coordinator nor in the trials, against a real sqlite store and a real `mlflow server`.

Trainers are real programs writing real tensorboardX files; sweeps run through the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from launch import local, mirror, state
from tests.gitrepo import make_repo
from tests.mlflow_server import MlflowServer, shared_mlflow_server
from tests.test_mlflow_wrapper import client, f32

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]
LAUNCH = str(Path(sys.executable).with_name("launch"))

# Knows nothing of MLflow or launch: tracked from its flags and event files alone.
PLAIN = textwrap.dedent(
    """
    import sys
    from tensorboardX import SummaryWriter

    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    w = SummaryWriter(args["tensorboard_dir"])
    for step in range(int(args.get("n", "25"))):
        w.add_scalar("loss", float(args["lr"]) / (step + 1), step)
        if step % 5 == 4:
            w.add_scalar("eval/acc", step / 100, step)
    w.close()
    sys.exit(int(args.get("exit", "0")))
    """
)

# Uses the wrapper for what only code knows: a typed param, an extra metric, a tag.
WRAPPED = textwrap.dedent(
    """
    import sys
    from tensorboardX import SummaryWriter
    from launch.mlflow_wrapper import trial_run

    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    config = {"lr": float(args["lr"]), "model": {"width": 8}}
    with trial_run(config) as run:
        assert "mlflow" not in sys.modules  # a local trial never imports MLflow
        w = SummaryWriter(args["tensorboard_dir"])
        for step in range(25):
            w.add_scalar("loss", config["lr"] / (step + 1), step)
        w.close()
        run.log_metric("from_code", 7.0, step=3)
        run.set_tags({"note": "hello"})
    """
)

SEARCH = """
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parameters:
  - {name: lr, parameterType: categorical, feasibleSpace: {list: ["0.5", "0.25", "0.125"]}}
parallelTrialCount: 2
maxFailedTrialCount: 3
"""

# The CLI in one process, reporting afterwards whether that process imported MLflow.
CLI_PROBE = """
import sys
from launch.cli import main
sys.argv = ["launch"] + sys.argv[1:]
try:
    main()
except SystemExit as exit:
    code = exit.code
print("mlflow imported by the coordinator:", "mlflow" in sys.modules, file=sys.stderr)
sys.exit(code or 0)
"""


def project(tmp_path: Path) -> Path:
    files = {"plain.py": PLAIN, "wrapped.py": WRAPPED, "search.yaml": SEARCH}
    return make_repo(tmp_path, "proj", files=files, remote=False).path


def launch_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "MLFLOW_"))}
    env.update(NO_COLOR="1", PYTHONPATH=str(REPO), **extra)
    return env


def sweep(cwd: Path, name: str, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI_PROBE, "--backend", "local", "--no-preflight", "-q", "--name", name,
         "search.yaml", "--", sys.executable, script],
        cwd=cwd, env=launch_env(XDG_CONFIG_HOME=str(cwd / ".xdg"), **env),
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip


def runs_by_trial(uri: str, experiment: str) -> dict[str, Any]:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    runs = c.search_runs([exp.experiment_id])
    by_trial = {r.data.tags["katib.trial"]: r for r in runs}
    assert len(by_trial) == len(runs)  # one run per trial
    return by_trial


def check_runs(uri: str, name: str, cwd: Path) -> dict[str, Any]:
    """Every trial of sweep `name` has its named run: params, tags, every scalar with its step."""
    exp = state.Experiment(cwd / ".launch" / "experiments" / name)
    trials = exp.state().trials
    assert len(trials) == 3
    runs = runs_by_trial(uri, name)
    assert sorted(runs) == sorted(trials)
    c = client(uri)
    for trial, record in trials.items():
        run = runs[trial]
        assert run.info.run_name == trial
        assert run.info.status == "FINISHED"
        lr = str(record.params["lr"])
        assert run.data.params["lr"] in (lr, str(float(lr)))
        tags = run.data.tags
        assert tags["katib.experiment"] == name
        assert tags["mlflow.source.git.commit"] == exp.meta()["commit"]
        assert tags["launch.results"] == f"launch results {name}"  # the way back
        assert tags["launch.exit_code"] == "0"
        loss = sorted((m.step, m.value) for m in c.get_metric_history(run.info.run_id, "loss"))
        assert loss == [(s, f32(float(lr) / (s + 1))) for s in range(25)]
        marker = json.loads((exp.trial_dir(trial) / mirror.MARKER_NAME).read_text())
        assert marker["run_id"] == run.info.run_id
    return runs


def test_a_trainer_without_the_wrapper_is_tracked_and_results_link_its_runs(
    tmp_path: Path,
) -> None:
    cwd = project(tmp_path)
    done = sweep(cwd, "plain", "plain.py")
    assert done.returncode == 0, done.stderr
    assert "mlflow imported by the coordinator: False" in done.stderr
    assert "warning" not in done.stderr
    uri = f"sqlite:///{cwd / '.launch' / 'mlflow.db'}"
    runs = check_runs(uri, "plain", cwd)
    acc = client(uri).get_metric_history(next(iter(runs.values())).info.run_id, "eval/acc")
    assert sorted(m.step for m in acc) == [4, 9, 14, 19, 24]
    rows = json.loads(
        subprocess.run(
            [LAUNCH, "results", "plain", "--json"], cwd=cwd, env=launch_env(),
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert {r["name"]: r["mlflow_run_id"] for r in rows} == {
        t: r.info.run_id for t, r in runs.items()
    }

    # A second sweep in the same home writes into the existing store without MLflow.
    done = sweep(cwd, "wrapped", "wrapped.py")
    assert done.returncode == 0, done.stderr
    assert "mlflow imported by the coordinator: False" in done.stderr
    runs = check_runs(uri, "wrapped", cwd)
    c = client(uri)
    for run in runs.values():
        assert run.data.params["model.width"] == "8"  # what only the code knows
        assert run.data.tags["note"] == "hello"
        assert [(m.step, m.value) for m in c.get_metric_history(run.info.run_id, "from_code")] == [
            (3, 7.0)
        ]
        assert not Path(run.info.artifact_uri).is_relative_to(cwd / ".launch" / "experiments")


def test_a_real_mlflow_server_gets_the_same_runs(server: MlflowServer, tmp_path: Path) -> None:
    cwd = project(tmp_path)
    done = sweep(cwd, "srv", "wrapped.py", MLFLOW_TRACKING_URI=server.uri)
    assert done.returncode == 0, done.stderr
    assert "mlflow imported by the coordinator: False" in done.stderr
    runs = check_runs(server.uri, "srv", cwd)
    assert all(r.data.params["model.width"] == "8" for r in runs.values())


def test_finished_trials_without_runs_are_mirrored_later_and_half_runs_replaced(
    tmp_path: Path,
) -> None:
    """A coordinator killed before its mirror was done: the next mirror writes the missing runs
    (from the journal and the files), replacing a run it left half-written."""
    cwd = project(tmp_path)
    done = sweep(cwd, "late", "plain.py", LAUNCH_MLFLOW_DISABLE="1")
    assert done.returncode == 0, done.stderr
    exp = state.Experiment(cwd / ".launch" / "experiments" / "late")
    uri = exp.meta()["tracking_uri"]
    assert not any((exp.trial_dir(t) / mirror.MARKER_NAME).exists() for t in exp.state().trials)
    from launch import mlflow_store

    assert mlflow_store.prepare(uri, "late") is not None
    c = client(uri)
    half = c.create_run(
        c.get_experiment_by_name("late").experiment_id,
        run_name="late-0001",
        tags={"katib.trial": "late-0001"},
    )
    old = os.getcwd()
    try:
        os.chdir(cwd)
        assert local.mirror_pending(exp) is True
    finally:
        os.chdir(old)
    runs = check_runs(uri, "late", cwd)
    assert runs["late-0001"].info.run_id != half.info.run_id
    assert c.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    assert local.mirror_pending(exp) is False  # nothing left


def test_a_broken_store_is_one_warning_and_the_sweep_goes_on(tmp_path: Path) -> None:
    cwd = project(tmp_path)
    (cwd / ".launch").mkdir()
    (cwd / ".launch" / ".gitignore").write_text("*\n")
    (cwd / ".launch" / "mlflow.db").write_bytes(b"not a store" * 100)
    done = sweep(cwd, "broken", "plain.py")
    assert done.returncode == 0, done.stderr
    # said once by the sweep (and once more by the results table, which cannot read it)
    warnings = [ln for ln in done.stderr.splitlines() if "no MLflow runs" in ln]
    assert len(warnings) == 1, done.stderr
    assert "is not an SQLite database" in warnings[0]
    assert "mv " in done.stderr
    assert "Traceback" not in done.stderr


def test_spool_mode_trial_run_writes_a_file_and_imports_no_mlflow(tmp_path: Path) -> None:
    spool = tmp_path / "trial" / mirror.SPOOL_NAME
    code = textwrap.dedent(
        """
        import sys
        from launch.mlflow_wrapper import trial_run
        with trial_run({"a": {"b": 1}}, argv=["t.py"], tags={"t": "v"}) as run:
            run.log_metrics({"x": 1.5}, step=2)
            run.log_params({"late": 3})
            run.log_artifact("model.bin")
        print("mlflow" in sys.modules, run.run_id)
        """
    )
    env = launch_env(
        KATIB_TRIAL_NAME="e-0001", MLFLOW_TRACKING_URI="sqlite:///x.db",
        LAUNCH_MLFLOW_SPOOL=str(spool),
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "None"]
    assert not (tmp_path / "x.db").exists()
    got = mirror.read_spool(spool)
    assert got["params"] == {"a.b": "1", "late": "3"}
    assert got["tags"] == {"t": "v"}
    assert [(k, v, s) for k, v, _, s in got["metrics"]] == [("x", 1.5, 2)]
    assert got["artifacts"] == [str(tmp_path / "model.bin")]


@pytest.fixture(scope="module")
def server() -> MlflowServer:
    return shared_mlflow_server()
