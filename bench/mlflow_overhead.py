"""What MLflow tracking costs the quickstart, measured side by side in one run.

    uv run python bench/mlflow_overhead.py [--rounds 3] [--starts 5]

1. Sweep wall time: the quickstart sweep (6 trials, 2 at a time, default embedded sqlite store)
   run by `launch --backend local`, interleaved in rounds: with `trial_run` (the wrapper), the
   same trainer without it (still tracked: the sweep's mirror makes its runs from the event
   files), and with tracking off (`LAUNCH_MLFLOW_DISABLE=1`). Goal: wrapper / without <= 1.3,
   and wrapper / tracking off <= 1.3 (tracking without a tax). The first sweep in a new home
   (it creates the store: MLflow's migrations) is timed apart.
2. In-trial start: seconds from the trainer's process start to its first training step, without
   the wrapper, with it as a local trial runs it, and with it against a real `mlflow server` (as on
   the cluster). Goal: the wrapper adds <= 1 s.
3. The store: runs, params and metric points of every tracked sweep, read back with MLflow's own
   client: one run per trial named after it, its swept params, every scalar with its step.

Exits 1 when a goal is missed or the store lacks something.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXAMPLE = REPO / "examples" / "quickstart"
PYTHON = sys.executable
LAUNCH = str(Path(sys.executable).with_name("launch"))
GOAL_RATIO = 1.3
GOAL_START_S = 1.0
LOOP = "    for epoch in range(cfg.epochs):\n"
PROBE = (
    LOOP
    + '        if epoch == 0:\n            print("FIRST_STEP", __import__("time").time(), flush=True)\n'
)
WRAPPED = "    with trial_run(cfg):\n        main(cfg)\n"


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", *args], cwd=cwd,
                   check=True, capture_output=True)  # fmt: skip


def project(tmp: Path) -> Path:
    """The quickstart, committed, with train.py (wrapper) and plain.py (no wrapper); both print
    the time of their first training step."""
    path = tmp / "quickstart"
    path.mkdir()
    text = (EXAMPLE / "train.py").read_text()
    assert LOOP in text and WRAPPED in text, (
        "examples/quickstart/train.py changed: update the bench"
    )
    text = text.replace(LOOP, PROBE)
    (path / "train.py").write_text(text)
    (path / "plain.py").write_text(text.replace(WRAPPED, "    main(cfg)\n"))
    shutil.copy(EXAMPLE / "search.yaml", path / "search.yaml")
    git("init", "-q", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "bench", cwd=path)
    return path


def sweep(path: Path, name: str, script: str, *, tracking: bool = True) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "MLFLOW_"))}
    env["NO_COLOR"] = "1"
    if not tracking:
        env["LAUNCH_MLFLOW_DISABLE"] = "1"
    start = time.perf_counter()
    done = subprocess.run([LAUNCH, "--backend", "local", "-q", "--name", name, "search.yaml", "--",
                           PYTHON, script], cwd=path, env=env, capture_output=True, text=True)  # fmt: skip
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep {name} failed:\n{done.stderr}")
    if "warning" in done.stderr:
        raise SystemExit(f"sweep {name} warned:\n{done.stderr}")
    return took


def first_step(path: Path, script: str, env: dict[str, str], tb: Path) -> float:
    """Seconds from starting the trainer to its first training step."""
    argv = [PYTHON, script, "--epochs=20", f"--tensorboard_dir={tb}"]
    start = time.time()
    done = subprocess.run(argv, cwd=path, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed:\n{done.stderr}")
    stamp = [ln for ln in done.stdout.splitlines() if ln.startswith("FIRST_STEP")]
    return float(stamp[0].split()[1]) - start


def trial_env(name: str, uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "MLFLOW_"))}
    env.update(KATIB_TRIAL_NAME=name, KATIB_EXPERIMENT_NAME="start", KATIB_NAMESPACE="bench",
               MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME="start", **extra)  # fmt: skip
    return env


def check_store(uri: str, names: list[str], trials: int) -> list[str]:
    """Problems with the runs of sweeps `names` (empty when each trial has its complete run)."""
    import json

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    problems = []
    total = {"runs": 0, "params": 0, "points": 0}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            problems.append(f"{name}: no MLflow experiment")
            continue
        runs = client.search_runs([exp.experiment_id])
        if sorted(r.info.run_name for r in runs) != [
            f"{name}-{i:04d}" for i in range(1, trials + 1)
        ]:
            problems.append(f"{name}: runs {sorted(r.info.run_name for r in runs)}")
        for run in runs:
            total["runs"] += 1
            total["params"] += len(run.data.params)
            for key in ("optim.lr", "hidden", "activation", "epochs"):
                if key not in run.data.params:
                    problems.append(f"{run.info.run_name}: no param {key}")
            tb = json.loads(Path(run.data.tags["launch.argv"].split("--tensorboard_dir=")[1]
                                 ).parent.joinpath("mlflow-run.json").read_text())  # fmt: skip
            for key in ("val_loss", "train_loss"):
                steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                total["points"] += len(steps)
                if sorted(steps) != list(range(9, 200, 10)):
                    problems.append(f"{run.info.run_name}: {key} steps {sorted(steps)}")
            if tb["run_id"] != run.info.run_id:
                problems.append(f"{run.info.run_name}: marker names another run")
    print(
        f"store: {total['runs']} runs, {total['params']} params, {total['points']} metric points "
        f"in {len(names)} sweeps of {trials} trials ({'complete' if not problems else 'INCOMPLETE'})"
    )
    return problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        path = project(tmp)
        uri = f"sqlite:///{path / '.launch' / 'mlflow.db'}"
        first = sweep(path, "first", "train.py")
        print(f"first sweep in a new home (creates the MLflow store): {first:.2f} s")
        times: dict[str, list[float]] = {"wrapper": [], "without": [], "off": []}
        tracked: list[str] = []
        for r in range(args.rounds):
            times["wrapper"].append(sweep(path, f"wrap{r}", "train.py"))
            times["without"].append(sweep(path, f"plain{r}", "plain.py"))
            times["off"].append(sweep(path, f"off{r}", "plain.py", tracking=False))
            tracked += [f"wrap{r}", f"plain{r}"]
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(f"sweep {k:8s} median {med[k]:6.2f} s  ({', '.join(f'{x:.2f}' for x in v)})")
        for label, base in (("without the wrapper", "without"), ("tracking off", "off")):
            ratio = med["wrapper"] / med[base]
            ok = ratio <= GOAL_RATIO
            print(
                f"ratio wrapper / {label}: {ratio:.2f}  (goal <= {GOAL_RATIO}: {'met' if ok else 'MISSED'})"
            )
            if not ok:
                failed.append(f"sweep ratio vs {label}")
        failed += check_store(uri, ["first", *tracked], 6)

        from tests.mlflow_server import mlflow_server

        with mlflow_server(tmp / "server") as server:
            spool = tmp / "trial" / "mlflow-spool.jsonl"
            cases = {
                "no wrapper": ("plain.py", trial_env("s-0", uri, LAUNCH_MLFLOW_SPOOL=str(spool))),
                "wrapper, local trial": ("train.py", trial_env("s-1", uri, LAUNCH_MLFLOW_SPOOL=str(spool))),
                "wrapper, MLflow server": ("train.py", trial_env("s-2", server.uri)),
            }  # fmt: skip
            starts: dict[str, list[float]] = {k: [] for k in cases}
            for i in range(args.starts):
                for k, (script, env) in cases.items():
                    starts[k].append(first_step(path, script, env, tmp / "tb" / f"{i}-{len(k)}"))
        base = statistics.median(starts["no wrapper"])
        for k, v in starts.items():
            m = statistics.median(v)
            line = f"start to first step, {k:22s} median {m:5.2f} s"
            if k != "no wrapper":
                ok = m - base <= GOAL_START_S
                line += f"  (+{m - base:.2f} s; goal <= +{GOAL_START_S:.0f} s: {'met' if ok else 'MISSED'})"
                if not ok:
                    failed.append(f"start {k}")
            print(line)
    if failed:
        print("MISSED: " + "; ".join(failed))
        raise SystemExit(1)
    print("all goals met")


if __name__ == "__main__":
    main()
