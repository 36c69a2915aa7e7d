"""Local backend benchmarks, measured side by side in one run.

1. Per-trial overhead: 40 trials of a trainer that only writes one scalar (tensorboardX), one at a
   time, through `launch --backend local`, versus the same 40 processes started by a shell loop.
   Goal: ratio <= 1.25.
2. Coordinator memory: peak RSS of the launch process itself during a 200-trial sweep (trials
   are separate processes and not counted). Goal: <= 150 MB.

Run: `uv run python bench/local_overhead.py [--trials 40] [--memory-trials 200]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINER = """
import sys
from tensorboardX import SummaryWriter
tb = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--tensorboard_dir=")][0]
w = SummaryWriter(tb)
w.add_scalar("loss", 1.0, 0)
w.close()
"""

SEARCH = """
objective: {{type: minimize, objectiveMetricName: loss}}
algorithm: {{algorithmName: random, algorithmSettings: [{{name: random_state, value: 1}}]}}
parameters:
  - {{name: lr, parameterType: double, feasibleSpace: {{min: 0.001, max: 0.1}}}}
maxTrialCount: {trials}
parallelTrialCount: {parallel}
maxFailedTrialCount: 0
"""

RSS_PROBE = """
import resource, sys
from launch.cli import main
sys.argv = ["launch"] + sys.argv[1:]
try:
    main()
except SystemExit as exit:
    code = exit.code
print("maxrss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@x", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def repo(tmp: Path, trials: int, parallel: int) -> Path:
    path = tmp / f"proj{trials}"
    path.mkdir()
    (path / "train.py").write_text(TRAINER)
    (path / "search.yaml").write_text(SEARCH.format(trials=trials, parallel=parallel))
    (path / "warm.yaml").write_text(SEARCH.format(trials=1, parallel=1))
    git("init", "-q", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "bench", cwd=path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--memory-trials", type=int, default=200)
    args = parser.parse_args()
    launch = str(Path(sys.executable).with_name("launch"))
    env = {**os.environ, "NO_COLOR": "1"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = repo(tmp, args.trials, 1)
        # Shell loop: the same program, the same number of times, each with its own event dir.
        loop = (
            f'for i in $(seq 1 {args.trials}); do "{sys.executable}" train.py --lr=0.01 '
            f'--tensorboard_dir="{tmp}/loop/$i" || exit 1; done'
        )
        start = time.perf_counter()
        subprocess.run(["sh", "-c", loop], cwd=path, check=True, env=env)
        shell_s = time.perf_counter() - start
        # A first sweep in a new .launch/ creates its MLflow store once (seconds, alembic
        # migrations): measured apart, so the comparison is the steady state of every later sweep.
        start = time.perf_counter()
        warm = subprocess.run(
            [launch, "--backend", "local", "-q", "--name", "warmup", "warm.yaml", "--",
             sys.executable, "train.py"],
            cwd=path, env=env, capture_output=True, text=True,
        )  # fmt: skip
        print(
            f"one-time MLflow store creation + 1-trial sweep: {time.perf_counter() - start:.2f}s (rc {warm.returncode})"
        )
        start = time.perf_counter()
        done = subprocess.run(
            [launch, "--backend", "local", "-q", "--name", "bench", "search.yaml", "--", sys.executable, "train.py"],
            cwd=path, env=env, capture_output=True, text=True,
        )  # fmt: skip
        launch_s = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"launch failed:\n{done.stderr}")
        ratio = launch_s / shell_s
        print(
            f"{args.trials} trials, one at a time: shell loop {shell_s:.2f}s, launch {launch_s:.2f}s"
        )
        print(
            f"per-trial overhead: {(launch_s - shell_s) / args.trials * 1000:.0f} ms; ratio {ratio:.3f}"
        )
        print(f"goal ratio <= 1.25: {'ok' if ratio <= 1.25 else 'MISSED'}")

        path = repo(tmp, args.memory_trials, 4)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, "--backend", "local", "-q", "--name", "mem", "search.yaml", "--",
             sys.executable, "train.py"],
            cwd=path, env=env, capture_output=True, text=True,
        )  # fmt: skip
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("maxrss_kb")]
        if not lines:
            raise SystemExit(f"memory run failed:\n{done.stderr}")
        rss_mb = int(lines[-1].split()[1]) / 1024
        print(
            f"{args.memory_trials}-trial sweep ({time.perf_counter() - start:.1f}s): coordinator peak RSS {rss_mb:.0f} MB"
        )
        print(f"goal <= 150 MB: {'ok' if rss_mb <= 150 else 'MISSED'}")
        shutil.rmtree(tmp / "loop", ignore_errors=True)


if __name__ == "__main__":
    main()
