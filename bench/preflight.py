"""Preflight cost: what a local sweep of the quickstart waits before its first trial starts.

The preflight runs `python train.py --help` once with launch's hook (`launch.preflight_local.run`),
which parses every flag set of the plan with the program's own Draccus parser and exits before
`main`; launch then judges the answer (`launch.preflight.verdict`). Its cost is compared with one
trial's start-up, `python train.py --help` alone (imports: NumPy, tensorboardX, Draccus), both
run by the venv's Python in a committed copy of examples/quickstart, interleaved, medians.
Goal: preflight (run + verdict) <= 1.5x one trial's start-up.
Run: `uv run python bench/preflight.py [--repeat N]`.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from launch import preflight, preflight_local  # noqa: E402
from launch import spec as spec_module  # noqa: E402

GOAL = 1.5
COMMAND = ["python", "train.py"]


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=b@x", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def example_repo(tmp: Path) -> Path:
    """A committed copy of examples/quickstart, as a user's project would be."""
    repo = tmp / "proj"
    shutil.copytree(ROOT / "examples" / "quickstart", repo)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "example", cwd=repo)
    return repo


def plain_help(repo: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([*COMMAND, "--help"], cwd=repo, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"`python train.py --help` failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def with_preflight(
    spec: spec_module.LaunchSpec, plan: preflight.Plan, repo: Path, env: dict[str, str]
) -> float:
    start = time.perf_counter()
    outcome = preflight_local.run(plan, COMMAND, cwd=repo, env=env, timeout_s=120)
    verdict = preflight.verdict(spec, plan, outcome, command=COMMAND, timeout_s=120)
    elapsed = time.perf_counter() - start
    if verdict.check != "draccus" or verdict.problems:
        problems = "; ".join(p.message for p in verdict.problems) or "none"
        raise SystemExit(
            f"preflight did not answer as expected ({verdict.check}: {verdict.summary}; "
            f"problems: {problems}):\n{outcome.output[-2000:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "PATH": os.pathsep.join(p for p in (venv_bin, os.environ.get("PATH", "")) if p),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = example_repo(tmp)
        spec = spec_module.load(str(repo / "search.yaml"))
        plan = preflight.plan(spec, seed_flag="seed", tensorboard_dir=str(tmp / "tfevent"))
        # One of each first: warms the page cache and the .pyc files of the copy.
        plain_help(repo, env)
        with_preflight(spec, plan, repo, env)
        plain: list[float] = []
        checked: list[float] = []
        for _ in range(args.repeat):
            plain.append(plain_help(repo, env))
            checked.append(with_preflight(spec, plan, repo, env))
    floor, cost = statistics.median(plain), statistics.median(checked)
    ratio = cost / floor
    sets = len(plan.sets())
    print(
        f"quickstart: {sets} flag sets ({plan.flag_count} values); {args.repeat} runs each, "
        "interleaved"
    )
    print(f"{'command':<44}{'median s':>10}{'x trial':>10}")
    print(f"{'python train.py --help (one trial start-up)':<44}{floor:>10.3f}{1.0:>10.2f}")
    print(f"{'preflight (run + verdict)':<44}{cost:>10.3f}{ratio:>10.2f}")
    print(f"added before the first trial: {cost:.3f}s")
    print(f"goal preflight <= {GOAL}x one trial's start-up: {'ok' if ratio <= GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
