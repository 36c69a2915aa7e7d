"""Start-up of the single-file build: `dist/launch --help` vs `launch --help` vs the Typer floor.

Medians of repeated runs measured side by side in one run (interleaved), and ratios to the floor
(a one-command Typer app's --help, run by the venv's Python). The binary's row is the warm case:
its first run has already unpacked the bundle into the cache. The cold first run (empty cache,
unpack included) is measured separately with a fresh cache directory each time.
Goal: warm `dist/launch --help` <= 1.5x the floor. Build first: `make dist`.
Run: `uv run python bench/dist_startup.py [--repeat N] [--binary dist/launch]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import FLOOR_APP  # the same floor app as bench/startup.py

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.5


def timed(cmd: list[str], *, env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cold-repeat", type=int, default=3)
    parser.add_argument("--binary", type=Path, default=ROOT / "dist" / "launch")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=PROGRAM",
        help="another build to time the same way (e.g. a PyInstaller onefile or a shiv .pyz)",
    )
    args = parser.parse_args()
    binary = args.binary.resolve()
    if not binary.is_file():
        print(f"skipped: {binary} is missing (build it with `make dist`)")
        return
    launch = str(Path(sys.executable).with_name("launch"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        floor_py = tmp / "floor.py"
        floor_py.write_text(FLOOR_APP)
        cache = tmp / "cache"
        env = {**os.environ, "NO_COLOR": "1", "LAUNCH_CACHE_DIR": str(cache)}
        cold = []
        for i in range(args.cold_repeat):
            cold_env = {**env, "LAUNCH_CACHE_DIR": str(tmp / f"cold{i}")}
            cold.append(timed([str(binary), "--help"], env=cold_env, cwd=tmp))
        rows = {
            "typer floor --help": [sys.executable, str(floor_py), "--help"],
            "launch --help (venv)": [launch, "--help"],
            "dist/launch --help": [str(binary), "--help"],
        }
        for item in args.also:
            label, _, program = item.partition("=")
            rows[f"{label} --help"] = [str(Path(program).resolve()), "--help"]
        for cmd in rows.values():  # warm the page cache, and fill the binary's cache
            timed(cmd, env=env, cwd=tmp)
        results: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.repeat):
            for name, cmd in rows.items():
                results[name].append(timed(cmd, env=env, cwd=tmp))
        medians = {name: statistics.median(values) for name, values in results.items()}
        floor = medians["typer floor --help"]
        size = binary.stat().st_size / 1e6
        print(f"{binary.name}: {size:.1f} MB; {args.repeat} runs each, interleaved")
        print(f"{'command':<30}{'median s':>10}{'x floor':>10}")
        for name, value in medians.items():
            print(f"{name:<30}{value:>10.3f}{value / floor:>10.2f}")
        cold_median = statistics.median(cold)
        print(f"{'dist/launch --help (cold)':<30}{cold_median:>10.3f}{cold_median / floor:>10.2f}"
              f"   first run, unpacks {_du(cache) / 1e6:.0f} MB")  # fmt: skip
        ratio = medians["dist/launch --help"] / floor
        verdict = "ok" if ratio <= GOAL else "MISSED"
        print(f"goal dist/launch --help <= {GOAL}x floor: {verdict} ({ratio:.2f}x)")


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


if __name__ == "__main__":
    main()
