"""How the cost of `launch results` grows: a saved 10k-trial experiment versus a 10-trial one.

Both experiments are local ones as the local backend leaves them (experiment.json + journal.jsonl,
events shaped like `coordinator.Coordinator._emit` writes them), in a temporary `LAUNCH_HOME`; the
journal is written in one go (appending 10k events with one fsync each is only slow, not
different). The real console script runs as a subprocess, several times each, interleaved.
Goal: best(10k) / best(10) <= 2.0 (per-trial work small next to start-up). The warm-up run of
each case leaves the ended experiment's cached fold (state.snapshot.json), as the end of a real
sweep does when it prints its table, so the timed runs read that instead of replaying 20k events.

Also printed: the in-process cost of the grouped (seed) statistics on the 10k trials.

Run: `uv run python bench/results_scale.py [--big 10000] [--repeat 7]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from launch import local, results, spec, state, stats, tables

LAUNCH = str(Path(sys.executable).with_name("launch"))
GOAL = 2.0

SEARCH = """
objective: {type: minimize, objectiveMetricName: val_loss, additionalMetricNames: [train_loss]}
algorithm: {algorithmName: grid}
parameters:
  - {name: optim.lr, parameterType: double, feasibleSpace: {min: 0.001, max: 0.1, step: 0.001}}
  - {name: hidden, parameterType: int, feasibleSpace: {min: 1, max: 10}}
fixed: {epochs: 200}
"""


def make_experiment(home: Path, name: str, trials: int, seeds: int) -> None:
    """A finished local seed-sweep experiment with `trials` trials, as the coordinator leaves it."""
    loaded = spec.apply_seeds(spec.parse(SEARCH), seeds=seeds)
    workdir = home / "repo"
    job = local.LocalExperiment(
        name=name,
        spec=loaded,
        command=["python", "train.py"],
        workdir=workdir,
        commit="0123456789abcdef0123456789abcdef01234567",
        gpus_per_trial=0,
        parallel=4,
        max_trials=trials,
        max_failed=trials,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        extra={"repo_root": str(workdir), "worktree": None, "branch": "main", "created": 0.0},
    )
    exp = state.Experiment.create(home, name, job.to_meta())
    rng = random.Random(0)
    t = 1_700_000_000.0
    lines = [{"t": t, "event": "experiment", "status": state.EXP_RUNNING, "resumed": False}]
    for number in range(trials):
        params: dict[str, Any] = {
            "optim.lr": round(0.001 * (1 + number // seeds % 100), 3),
            "hidden": 1 + number // (seeds * 100) % 10,
            "seed": number % seeds,
        }
        trial = f"{name}-{number:04d}"
        tb = str(exp.trial_dir(trial) / "tfevent")
        argv = [*job.command, "--epochs=200", *(f"--{k}={v}" for k, v in params.items())]
        lines.append({"t": t, "event": "trial_started", "trial": trial, "number": number,
                      "params": params, "argv": [*argv, f"--tensorboard_dir={tb}"], "gpus": "",
                      "retry_of": None})  # fmt: skip
        lines.append({"t": t + 0.01, "event": "trial_running", "trial": trial,
                      "pid": 1000 + number, "proc_start": "12345"})  # fmt: skip
        if number % 50 == 7:
            finished = {"status": state.FAILED, "exit_code": 1, "metrics": {}, "found_tags": [],
                        "reason": "exit code 1"}  # fmt: skip
        elif number % 50 == 13:
            finished = {"status": state.METRICS_UNAVAILABLE, "exit_code": 0, "metrics": {},
                        "found_tags": ["train_loss"],
                        "reason": "objective `val_loss` not found"}  # fmt: skip
        else:
            loss = rng.gauss(0.5, 0.05)
            finished = {"status": state.SUCCEEDED, "exit_code": 0,
                        "metrics": {"val_loss": loss, "train_loss": loss * 0.9},
                        "found_tags": ["train_loss", "val_loss"], "reason": ""}  # fmt: skip
        lines.append({"t": t + 3.0, "event": "trial_finished", "trial": trial, **finished})
        t += 1.0
    lines.append({"t": t, "event": "experiment", "status": state.EXP_SUCCEEDED, "reason": ""})
    with exp.journal_path.open("w") as handle:
        handle.writelines(json.dumps(line, sort_keys=True) + "\n" for line in lines)


def time_results(name: str, env: dict[str, str], cwd: Path, *extra: str) -> float:
    """Seconds for `launch results NAME EXTRA...`."""
    argv = [LAUNCH, "results", name, *extra]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"launch results {name} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
        home = Path(tmp) / "home"
        make_experiment(home, "small", args.small, args.seeds)
        make_experiment(home, "big", args.big, args.seeds)
        env = {**os.environ, "LAUNCH_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        size = (home / "experiments" / "big" / "journal.jsonl").stat().st_size
        print(f"journals: {args.small} and {args.big} trials ({size / 1e6:.1f} MB)")

        # The seed sweep's distribution per config (the default), its CSV and JSON, and one
        # row per trial.
        cases = [("--format", f) for f in ("table", "csv", "json")] + [("--per-trial",)]
        missed = []
        for extra in cases:
            label = "launch results " + " ".join(extra)
            time_results("small", env, Path(tmp), *extra)  # warm the page cache once
            small, big = [], []
            for _ in range(args.repeat):
                small.append(time_results("small", env, Path(tmp), *extra))
                big.append(time_results("big", env, Path(tmp), *extra))
            # Judged on the fastest run of each (the least disturbed, as timeit does); the
            # medians are printed too, for a noisy machine.
            ratio = min(big) / min(small)
            median_ratio = statistics.median(big) / statistics.median(small)
            verdict = "ok" if ratio <= GOAL else f"OVER the goal of {GOAL}"
            if ratio > GOAL:
                missed.append(label)
            print(
                f"{label}: {args.small} trials {min(small) * 1000:.0f} ms, {args.big} trials "
                f"{min(big) * 1000:.0f} ms (best of {args.repeat}); ratio {ratio:.2f} ({verdict}); "
                f"median ratio {median_ratio:.2f}"
            )

        # The grouped statistics (stats.py) on the same 10k trials, in process.
        exp = state.Experiment.open(home, "big")
        start = time.perf_counter()
        job = local.LocalExperiment.from_meta(exp.meta())
        objective = job.spec.objective.objectiveMetricName
        rows = [results.from_local(r, objective) for r in exp.state().trials.values()]
        loaded = time.perf_counter()
        groups = stats.group_by_config(rows, minimize=True, objective_name=objective)
        tables.to_table_rows(groups)
        grouped = time.perf_counter()
        print(
            f"in process, {args.big} trials: journal -> rows {(loaded - start) * 1000:.0f} ms, "
            f"group_by_config + table rows ({len(groups)} configs) "
            f"{(grouped - loaded) * 1000:.0f} ms"
        )
    if missed:
        sys.exit("missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
