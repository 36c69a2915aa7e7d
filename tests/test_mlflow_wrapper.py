"""launch.mlflow_wrapper against a real `mlflow server` (sqlite store) and a sqlite store.

Trainers are real programs writing real tensorboardX files; the wrapper runs as
`python -m launch.mlflow_wrapper -- ...`, as a trial would.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from launch import mlflow_store, mlflow_wrapper
from tests.mlflow_server import MlflowServer, shared_mlflow_server

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]

TRAINER = textwrap.dedent(
    """
    import os, signal, sys, time
    from tensorboardX import SummaryWriter

    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    w = SummaryWriter(args["tensorboard_dir"])
    n = int(args.get("n", "10"))
    for step in range(n):
        w.add_scalar("loss", 1.0 / (step + 1), step)
        if step % 7 == 0:
            w.add_scalar("acc/top1", step * 0.1, step)
    w.close()
    if args.get("sleep"):
        signal.signal(signal.SIGTERM, lambda *_: (open(args["mark"], "w").close(), sys.exit(42)))
        print("ready", flush=True)
        time.sleep(float(args["sleep"]))
    print("trained", flush=True)
    sys.exit(int(args.get("exit", "0")))
    """
)


@pytest.fixture(scope="module")
def server() -> MlflowServer:
    return shared_mlflow_server()


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trainer") / "train.py"
    path.write_text(TRAINER)
    return path


def trial_env(uri: str, trial: str, experiment: str = "exp-wrap", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KATIB_"))}
    env.update(
        KATIB_TRIAL_NAME=trial,
        KATIB_EXPERIMENT_NAME=experiment,
        KATIB_NAMESPACE="lab",
        LAUNCH_GIT_COMMIT="0123456789abcdef0123456789abcdef01234567",
        LAUNCH_IMAGE="registry:5000/proj@sha256:" + "a" * 64,
        LAUNCH_KATIB_URL=f"http://katib.local/katib/experiment/lab/{experiment}?tab=trials",
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_EXPERIMENT_NAME=experiment,
        PYTHONPATH=str(REPO),
        # this machine can be very busy (mlflow alone takes seconds to import): no "slow" warning
        LAUNCH_MLFLOW_START_TIMEOUT_S="180",
        LAUNCH_MLFLOW_BUDGET_S="120",
    )
    env.update(extra)
    return env


def wrap(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launch.mlflow_wrapper", "--", *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        **kw,
    )


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def runs_of(uri: str, experiment: str, trial: str) -> list[Any]:
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None
    return list(c.search_runs([exp.experiment_id], f"tags.`katib.trial` = '{trial}'"))


def f32(v: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", v))[0])


def test_process_form_run_named_after_trial_with_params_tags_and_exact_metrics(
    server: MlflowServer, trainer: Path, tmp_path: Path
) -> None:
    tb = tmp_path / "tb"
    cmd = [sys.executable, str(trainer), "--optim.lr=0.01", "--n=2500", f"--tensorboard_dir={tb}"]
    env = trial_env(server.uri, "exp-wrap-a1")
    done = wrap(cmd, env)
    assert done.returncode == 0, done.stderr
    assert "trained" in done.stdout
    assert "warning" not in done.stderr

    [run] = runs_of(server.uri, "exp-wrap", "exp-wrap-a1")
    assert run.info.run_name == "exp-wrap-a1"
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.lr": "0.01", "n": "2500"}
    tags = run.data.tags
    assert tags["katib.experiment"] == "exp-wrap"
    assert tags["katib.namespace"] == "lab"
    assert tags["katib.url"] == env["LAUNCH_KATIB_URL"]
    assert tags["mlflow.source.git.commit"] == env["LAUNCH_GIT_COMMIT"]
    assert tags["launch.image"] == env["LAUNCH_IMAGE"]
    assert tags["launch.argv"].split() == cmd
    assert tags["launch.exit_code"] == "0"
    assert tags["launch.attempt"] == "1"

    c = client(server.uri)
    loss = sorted(
        (m.step, m.value, m.timestamp) for m in c.get_metric_history(run.info.run_id, "loss")
    )
    assert [(s, v) for s, v, _ in loss] == [(s, f32(1.0 / (s + 1))) for s in range(2500)]
    assert all(t > 1_600_000_000_000 for _, _, t in loss)  # wall times in ms
    acc = sorted((m.step, m.value) for m in c.get_metric_history(run.info.run_id, "acc/top1"))
    assert acc == [(s, f32(s * 0.1)) for s in range(0, 2500, 7)]


def test_failure_status_and_exit_code_pass_through_and_retry_reuses_the_run(
    server: MlflowServer, trainer: Path, tmp_path: Path
) -> None:
    tb = tmp_path / "tb"
    cmd = [sys.executable, str(trainer), "--exit=3", f"--tensorboard_dir={tb}"]
    env = trial_env(server.uri, "exp-wrap-b2")
    first = wrap(cmd, env)
    assert first.returncode == 3, first.stderr
    [run] = runs_of(server.uri, "exp-wrap", "exp-wrap-b2")
    assert run.info.status == "FAILED"
    assert run.data.tags["launch.exit_code"] == "3"

    # the retry (same trial name, same tensorboard dir, more points) reuses that run
    again = wrap([sys.executable, str(trainer), "--n=20", f"--tensorboard_dir={tb}"], env)
    assert again.returncode == 0, again.stderr
    [run2] = runs_of(server.uri, "exp-wrap", "exp-wrap-b2")
    assert run2.info.run_id == run.info.run_id
    assert run2.info.status == "FINISHED"
    assert run2.data.tags["launch.attempt"] == "2"
    assert run2.data.tags["launch.exit_code"] == "0"
    history = client(server.uri).get_metric_history(run.info.run_id, "loss")
    # the first attempt's 10 points and the second's 20 (same steps, other wall times)
    assert len(history) == 30


def test_signals_are_forwarded_and_the_childs_status_is_kept(
    server: MlflowServer, trainer: Path, tmp_path: Path
) -> None:
    mark = tmp_path / "got-sigterm"
    cmd = [
        sys.executable, str(trainer), "--sleep=60", f"--mark={mark}",
        f"--tensorboard_dir={tmp_path / 'tb'}",
    ]  # fmt: skip
    env = trial_env(server.uri, "exp-wrap-c3")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.mlflow_wrapper", "--", *cmd],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)  # to the wrapper only: it must pass it on
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 42, err
    assert mark.exists()
    [run] = runs_of(server.uri, "exp-wrap", "exp-wrap-c3")
    assert run.info.status == "FAILED"
    assert run.data.tags["launch.exit_code"] == "42"


@pytest.mark.parametrize("server", ["refuses", "never answers"])
def test_mlflow_down_never_fails_or_stalls_the_trainer(
    trainer: Path, tmp_path: Path, server: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        if server == "never answers":
            s.listen(16)  # connections wait in the backlog; nothing ever replies
        port = s.getsockname()[1]
        cmd = [sys.executable, str(trainer), "--n=50", f"--tensorboard_dir={tmp_path / 'tb'}"]
        env = trial_env(f"http://127.0.0.1:{port}", "exp-wrap-d4", LAUNCH_MLFLOW_BUDGET_S="4")
        env[mlflow_wrapper.ENV_START_TIMEOUT_S] = "10"
        t0 = time.monotonic()
        done = wrap(cmd, env)
        elapsed = time.monotonic() - t0
        failed = wrap([*cmd, "--exit=5"], env)
    assert done.returncode == 0, done.stderr
    assert "trained" in done.stdout
    warnings = [ln for ln in done.stderr.splitlines() if "warning:" in ln]
    assert len(warnings) == 1, done.stderr
    assert f"127.0.0.1:{port}" in warnings[0]
    assert "unreachable" in warnings[0] or "slow" in warnings[0]  # slow: mlflow import > 10 s
    assert "gave up" in done.stderr
    # start wait (<= 10 s) + budget (4 s) + interpreter/mlflow imports on a busy machine; MLflow's
    # own client would retry a silent server for minutes
    assert elapsed < 90, elapsed
    assert failed.returncode == 5


@dataclass
class Optim:
    lr: float = 0.05
    momentum: float = 0.9


@dataclass
class Config:
    optim: Optim = field(default_factory=Optim)
    hidden: int = 16
    activation: str = "tanh"
    tensorboard_dir: str = "runs/default"


def test_flatten_params_uses_draccus_flag_names() -> None:
    cfg = Config(optim=Optim(lr=0.001), hidden=8)
    assert mlflow_wrapper.flatten_params(cfg) == {
        "optim.lr": "0.001",
        "optim.momentum": "0.9",
        "hidden": "8",
        "activation": "tanh",
    }
    assert mlflow_wrapper.flatten_params({"a": {"b": 1}, "c": [1, 2]}) == {
        "a.b": "1",
        "c": "[1, 2]",
    }
    argv = ["python", "t.py", "--x.y=1", "--tensorboard_dir", "/tb", "--tensorboard_dir=/tb2"]
    assert mlflow_wrapper.tensorboard_dir_from_argv(argv) == "/tb2"


def test_trial_run_in_training_code(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboardX import SummaryWriter

    for k, v in trial_env(server.uri, "exp-wrap-e5", experiment="exp-api").items():
        monkeypatch.setenv(k, v)
    cfg = Config(optim=Optim(lr=0.2), tensorboard_dir=str(tmp_path / "tb"))
    argv = ["train.py", "--optim.lr=0.2"]
    with mlflow_wrapper.trial_run(cfg, argv=argv) as run:
        assert run.run_id
        w = SummaryWriter(cfg.tensorboard_dir)
        for step in range(5):
            w.add_scalar("val_loss", 0.5 * step, step)
        w.close()
        run.log_metric("extra", 1.5, step=3)
    [r] = runs_of(server.uri, "exp-api", "exp-wrap-e5")
    assert r.info.run_id == run.run_id
    assert r.info.status == "FINISHED"
    assert r.info.run_name == "exp-wrap-e5"
    assert r.data.params == {
        "optim.lr": "0.2", "optim.momentum": "0.9", "hidden": "16", "activation": "tanh",
    }  # fmt: skip
    assert r.data.tags["launch.argv"].endswith("train.py --optim.lr=0.2")
    assert r.data.tags["katib.trial"] == "exp-wrap-e5"
    c = client(server.uri)
    assert sorted((m.step, m.value) for m in c.get_metric_history(r.info.run_id, "val_loss")) == [
        (s, 0.5 * s) for s in range(5)
    ]
    assert [(m.step, m.value) for m in c.get_metric_history(r.info.run_id, "extra")] == [(3, 1.5)]

    # an exception: FAILED, re-raised; the same trial again reuses the run
    with pytest.raises(RuntimeError), mlflow_wrapper.trial_run(cfg, argv=argv):
        raise RuntimeError("diverged")
    [r2] = runs_of(server.uri, "exp-api", "exp-wrap-e5")
    assert r2.info.run_id == r.info.run_id
    assert r2.info.status == "FAILED"


def test_sqlite_store_the_local_default(trainer: Path, tmp_path: Path) -> None:
    from launch import tracking

    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    (tmp_path / "home").mkdir()
    assert mlflow_store.prepare(uri, "exp-local") is not None
    # parallel trials on one sqlite file, as the local backend runs them
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "launch.mlflow_wrapper", "--", sys.executable, str(trainer),
                f"--seed={i}", "--n=300", f"--tensorboard_dir={tmp_path / f'tb{i}'}",
            ],
            env=trial_env(uri, f"exp-local-{i}", experiment="exp-local"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        for i in range(3)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "warning" not in err
    for i in range(3):
        [run] = runs_of(uri, "exp-local", f"exp-local-{i}")
        assert run.info.status == "FINISHED"
        assert run.data.params == {"seed": str(i), "n": "300"}
        assert len(client(uri).get_metric_history(run.info.run_id, "loss")) == 300
    [run] = runs_of(uri, "exp-local", "exp-local-0")

    links = tracking.find_runs(uri, "exp-local", ["exp-local-0", "exp-local-1", "exp-local-9"])
    assert links.warning is None
    assert sorted(links) == ["exp-local-0", "exp-local-1"]
    exp_id = run.info.experiment_id
    assert links["exp-local-0"].url == (
        f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{run.info.run_id}"
    )
    assert links.hint == f"open the links with: launch ui (or mlflow ui --backend-store-uri {uri})"


def test_trials_create_a_missing_local_store_atomically(trainer: Path, tmp_path: Path) -> None:
    """No prepare (say it failed): parallel trials race to create the store; one creation wins,
    the others discard theirs, and all of them log to it."""
    from launch import tracking

    store = tmp_path / "home" / "mlflow.db"
    uri = f"sqlite:///{store}"
    procs = [
        subprocess.Popen(
            [
                sys.executable, "-m", "launch.mlflow_wrapper", "--", sys.executable, str(trainer),
                f"--seed={i}", "--n=20", f"--tensorboard_dir={tmp_path / f'tb{i}'}",
            ],
            env=trial_env(uri, f"exp-race-{i}", experiment="exp-race"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        for i in range(2)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "warning" not in err
    assert tracking.local_store_problem(store) is None
    assert [p.name for p in store.parent.iterdir()] == ["mlflow.db"]  # no temporary file left
    for i in range(2):
        [run] = runs_of(uri, "exp-race", f"exp-race-{i}")
        assert run.info.status == "FINISHED"
        assert len(client(uri).get_metric_history(run.info.run_id, "loss")) == 20


def test_broken_local_store_says_why_and_how_to_fix_and_training_goes_on(
    trainer: Path, tmp_path: Path
) -> None:
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"half a store" * 1000)
    cmd = [sys.executable, str(trainer), "--n=5", f"--tensorboard_dir={tmp_path / 'tb'}"]
    done = wrap(cmd, trial_env(f"sqlite:///{store}", "exp-broken-1"))
    assert done.returncode == 0, done.stderr
    assert "trained" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, done.stderr
    assert f"the MLflow store {store} is not an SQLite database" in warnings[0]
    assert "training continues, but this trial logs nothing to MLflow" in warnings[0]
    assert f"mv {store} {store}.broken; the next sweep creates a new one" in warnings[0]
    assert store.read_bytes() == b"half a store" * 1000  # left alone


def test_broken_local_store_costs_no_wait_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Retrying cannot mend a broken store: the end does not spend the budget on it."""
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"")
    for k in list(os.environ):
        if k.startswith(("MLFLOW_", "KATIB_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("KATIB_TRIAL_NAME", "exp-broken-2")
    monkeypatch.setenv(mlflow_wrapper.ENV_BUDGET_S, "300")
    monkeypatch.setenv(mlflow_wrapper.ENV_START_TIMEOUT_S, "300")
    with mlflow_wrapper.trial_run(Config(), mirror=False) as run:
        run.log_metric("loss", 1.0)
        started = time.monotonic()
    ended_s = time.monotonic() - started
    assert run.run_id is None
    assert ended_s < 60  # not the 300 s budget
    err = capsys.readouterr().err
    assert "is empty (0 bytes): its creation was interrupted" in err
    assert err.count("warning") == 1


DRACCUS_TRAINER = textwrap.dedent(
    """
    from dataclasses import dataclass, field

    import draccus
    from tensorboardX import SummaryWriter

    from launch.mlflow_wrapper import trial_run

    @dataclass
    class Optim:
        lr: float = 0.05

    @dataclass
    class Cfg:
        optim: Optim = field(default_factory=Optim)
        hidden: int = 16
        tensorboard_dir: str = "tb"

    cfg = draccus.parse(config_class=Cfg)
    with trial_run(cfg) as run:
        w = SummaryWriter(cfg.tensorboard_dir)
        for step in range(30):
            w.add_scalar("loss", step / 2, step)
        w.close()
        run.log_metric("from_code", 7.0, step=1)
    print("run", run.run_id)
    """
)


def test_wrapped_program_using_trial_run_shares_one_run(
    server: MlflowServer, tmp_path: Path
) -> None:
    script = tmp_path / "train_draccus.py"
    script.write_text(DRACCUS_TRAINER)
    tb = tmp_path / "tb"
    cmd = [sys.executable, str(script), "--optim.lr=1e-3", "--hidden=8", f"--tensorboard_dir={tb}"]
    done = wrap(cmd, trial_env(server.uri, "exp-wrap-f6"))
    assert done.returncode == 0, done.stderr
    [run] = runs_of(server.uri, "exp-wrap", "exp-wrap-f6")
    assert f"run {run.info.run_id}" in done.stdout  # the child used the wrapper's run
    assert run.info.status == "FINISHED"
    # the typed config wins over the flag text ("1e-3"), with no conflict
    assert run.data.params == {"optim.lr": "0.001", "hidden": "8"}
    c = client(server.uri)
    assert len(c.get_metric_history(run.info.run_id, "loss")) == 30
    assert [m.value for m in c.get_metric_history(run.info.run_id, "from_code")] == [7.0]


def test_trial_run_is_a_no_op_outside_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in list(os.environ):
        if k.startswith(("MLFLOW_", "KATIB_")):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    with mlflow_wrapper.trial_run(Config()) as run:
        run.log_metric("x", 1.0)
    assert run.run_id is None
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns/


def test_training_starts_within_a_second_when_the_server_never_answers(tmp_path: Path) -> None:
    """The default start wait is 1 s: a silent server costs the trainer at most that before its
    first step, one warning line, and the bounded budget at the end."""
    code = textwrap.dedent(
        """
        import time
        from launch.mlflow_wrapper import trial_run
        t = time.monotonic()
        with trial_run({"lr": 0.1}, mirror=False) as run:
            print("waited", time.monotonic() - t, flush=True)
            run.log_metric("loss", 1.0)
        """
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)  # connections wait in the backlog; nothing ever replies
        env = trial_env(f"http://127.0.0.1:{s.getsockname()[1]}", "exp-wrap-g7")
        del env[mlflow_wrapper.ENV_START_TIMEOUT_S]  # the default
        env[mlflow_wrapper.ENV_BUDGET_S] = "2"
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr
    waited = float(done.stdout.split()[1])
    assert waited < 1.5, waited
    assert sum("warning:" in line for line in done.stderr.splitlines()) == 1, done.stderr
    assert "gave up" in done.stderr


def test_only_rank_0_of_a_multi_node_trial_has_a_run(
    server: MlflowServer, trainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TrainJob trial runs the same code on every node and torchrun worker: the processes of
    rank > 0 (torchrun's RANK, the Trainer's PET_NODE_RANK) make no run, so the trial has one,
    whichever order they start in."""
    for k, v in trial_env(server.uri, "exp-ranks-t1", experiment="exp-ranks").items():
        monkeypatch.setenv(k, v)
    cfg = Config(optim=Optim(lr=0.2))
    for rank, node in (("3", "1"), ("1", "0")):  # other workers first, rank 0 last
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("PET_NODE_RANK", node)
        with mlflow_wrapper.trial_run(cfg, argv=["train.py"]) as run:
            assert run.run_id is None
    c = client(server.uri)
    assert c.get_experiment_by_name("exp-ranks") is None  # nothing made at all
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("PET_NODE_RANK", "0")
    with mlflow_wrapper.trial_run(cfg, argv=["train.py"]) as run:
        assert run.run_id
    # The process form on a node other than 0 runs the program and makes no run either.
    done = wrap([sys.executable, str(trainer), "--optim.lr=0.3", f"--tensorboard_dir={tmp_path}"],
                trial_env(server.uri, "exp-ranks-t1", experiment="exp-ranks", PET_NODE_RANK="1"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    [only] = runs_of(server.uri, "exp-ranks", "exp-ranks-t1")
    assert only.info.run_id == run.run_id and only.data.params["optim.lr"] == "0.2"
