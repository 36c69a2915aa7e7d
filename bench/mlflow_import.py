"""`import launch.mlflow_wrapper` vs `import mlflow`: medians over fresh interpreters.

    uv run python bench/mlflow_import.py [--repeat 15]

Each sample is a new `python -c` that times only the import (interpreter start excluded). The
three cases are interleaved so a busy machine slows them alike. Goal: the wrapper adds <= 10%
of `import mlflow` (it imports mlflow lazily, inside the functions that need it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "launch.mlflow_wrapper": "import launch.mlflow_wrapper",
    "mlflow": "import mlflow",
    "mlflow.tracking (client)": "import mlflow.tracking",
}
PROBE = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def sample(stmt: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(stmt=stmt)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=15)
    n = ap.parse_args().repeat
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for stmt in CASES.values():  # warm the file cache
        sample(stmt)
    for _ in range(n):
        for name, stmt in CASES.items():
            times[name].append(sample(stmt))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:28s} median {v * 1000:8.1f} ms  (min {min(times[k]) * 1000:.1f} ms, n={n})")
    wrapper, mlflow = med["launch.mlflow_wrapper"], med["mlflow"]
    share = wrapper / mlflow
    print(
        f"wrapper / import mlflow = {share:.1%}  (goal <= 10%: {'met' if share <= 0.10 else 'MISSED'})"
    )
    leaked = subprocess.run(
        [sys.executable, "-c", "import sys, launch.mlflow_wrapper; print(' '.join(m for m in "
         "('mlflow','pydantic','typer','rich','optuna','requests','launch.tfevents') if m in sys.modules))"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout.strip()  # fmt: skip
    print(f"heavy modules loaded by `import launch.mlflow_wrapper`: {leaked or 'none'}")


if __name__ == "__main__":
    main()
