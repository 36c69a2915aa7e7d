"""Start-up benchmark: `launch --help`, `launch render` and (when built) `dist/launch --help`
against a one-command Typer app's --help.

Prints medians of repeated runs measured side by side in one run, and the ratios (goals: <= 1.2x
for --help, <= 2.0x for render). Also checks that render imports no kubernetes/mlflow/optuna.
Run: `uv run python bench/startup.py [--repeat N]`.
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
FLOOR_APP = '''
import typer
app = typer.Typer()
@app.command()
def main(name: str = "world") -> None:
    """Say hello."""
    print(name)
app()
'''
HEAVY = ("kubernetes", "mlflow", "optuna", "git", "matplotlib")


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def example_repo(tmp: Path) -> Path:
    """A clean, pushed copy of examples/quickstart, as a user's project would be."""
    remote, repo = tmp / "remote.git", tmp / "proj"
    git("init", "-q", "--bare", str(remote), cwd=tmp)
    shutil.copytree(ROOT / "examples" / "quickstart", repo)
    git("init", "-q", "-b", "main", cwd=repo)
    git(
        "-c",
        "user.name=bench",
        "-c",
        "user.email=b@x",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
        cwd=repo,
    )
    git("add", "-A", cwd=repo)
    git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-q", "-m", "example", cwd=repo)
    git("remote", "add", "origin", f"https://example.invalid/lab/{repo.name}.git", cwd=repo)
    # A remote-tracking ref equal to HEAD makes the commit count as pushed without any network.
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=repo)
    git("branch", "-u", "origin/main", cwd=repo)
    return repo


def median_time(cmd: list[str], *, cwd: Path, repeat: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return statistics.median(times)


def measure(
    rows: dict[str, list[str]], *, cwd: Path, repeat: int, env: dict[str, str]
) -> dict[str, float]:
    """Medians per command; one warm-up each (file cache, bytecode), then interleaved runs so
    machine noise spreads evenly over the commands."""
    for cmd in rows.values():
        median_time(cmd, cwd=cwd, repeat=1, env=env)
    results: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeat):
        for name, cmd in rows.items():
            results[name].append(median_time(cmd, cwd=cwd, repeat=1, env=env))
    return {name: statistics.median(values) for name, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    launch = str(Path(sys.executable).with_name("launch"))
    missed = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        floor_py = tmp / "floor.py"
        floor_py.write_text(FLOOR_APP)
        repo = example_repo(tmp)
        render = [
            launch,
            "render",
            "search.yaml",
            "--name",
            "bench-render",
            "--",
            "python",
            "train.py",
        ]
        rows = {
            "typer floor --help": [sys.executable, str(floor_py), "--help"],
            "launch --help": [launch, "--help"],
            "launch render": render,
        }
        binary = ROOT / "dist" / "launch"  # `make dist`; its warm-up run unpacks it once
        if binary.exists():
            rows["dist/launch --help"] = [str(binary), "--help"]
        plain_floor = {"typer floor --help, no rich": rows["typer floor --help"]}
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        # An installed tool runs from cached bytecode after its first start; a machine with
        # PYTHONDONTWRITEBYTECODE compiles every module on every start. Both, side by side.
        modes = {
            "bytecode cached (an installed tool's every start)": {
                **base, "NO_COLOR": "1", "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
            },
            # An empty prefix hides any __pycache__ of the venv; nothing is written to it.
            "no bytecode cache (every module compiled each start)": {
                **base, "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(tmp / "no-pycache"),
            },
        }  # fmt: skip
        for mode, env in modes.items():
            medians = measure(rows, cwd=repo, repeat=args.repeat, env=env)
            medians |= measure(plain_floor, cwd=repo, repeat=args.repeat,
                               env={**env, "TYPER_USE_RICH": "0"})  # fmt: skip
            floor = medians["typer floor --help"]
            print(f"\n## {mode}")
            print(f"{'command':<30}{'median s':>10}{'x floor':>10}")
            for name, value in medians.items():
                print(f"{name:<30}{value:>10.3f}{value / floor:>10.2f}")
            help_ratio = medians["launch --help"] / floor
            render_ratio = medians["launch render"] / floor
            plain = medians["typer floor --help, no rich"]
            goals = [("--help", help_ratio, 1.2), ("render", render_ratio, 2.0)]
            if "dist/launch --help" in medians:
                goals.append(("dist/launch --help", medians["dist/launch --help"] / floor, 1.5))
            for goal, ratio, limit in goals:
                verdict = "ok" if ratio <= limit else "MISSED"
                if ratio > limit:
                    missed.append(f"{goal} ({mode})")
                row = {"--help": "launch --help", "render": "launch render"}.get(goal, goal)
                print(f"goal {goal} <= {limit}x the floor: {verdict} ({ratio:.2f}x; "
                      f"{medians[row] / plain:.2f}x a floor app without rich)")  # fmt: skip
        probe_code = (
            "import sys\nfrom launch.cli import main\n"
            f"sys.argv = {render!r}\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print('heavy:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        )
        probe = subprocess.run(
            [sys.executable, "-c", probe_code], cwd=repo, env={**os.environ, "NO_COLOR": "1"},
            capture_output=True, text=True,
        )  # fmt: skip
        marks = [ln for ln in probe.stdout.splitlines() if ln.startswith("heavy:")]
        if not marks:
            raise SystemExit(f"render probe failed:\n{probe.stderr}")
        heavy = marks[-1][len("heavy:") :]
        print(f"\nheavy modules imported by render: {heavy or 'none'}")
        if heavy:
            missed.append("render imports " + heavy)
    if missed:
        raise SystemExit("missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
