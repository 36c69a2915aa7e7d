"""Benchmark: read 200k scalars in 20 events files, launch.tfevents vs tensorboard's EventAccumulator.

Writes 20 files x 10k scalars with tensorboardX into a temp dir, reads them with both readers
(median of several repeats, same run, same files), checks the values are identical, and prints
scalars/s for each and the time ratio launch/EventAccumulator (goal <= 0.2, i.e. 5x faster).
Exits 1 if the values differ. Usage: `uv run python bench/tfevents_read.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from tensorboard.backend.event_processing.event_accumulator import (
    SCALARS,
    EventAccumulator,
    ScalarEvent,
)
from tensorboardX import SummaryWriter

from launch.tfevents import EventFile, find_event_files, read_event_file

FILES = 20
PER_FILE = 10_000
GOAL = 0.2


def write_files(root: str) -> None:
    for i in range(FILES):
        writer = SummaryWriter(os.path.join(root, f"run{i:02d}"), flush_secs=3600)
        tags = ("loss", "train/accuracy", "lr", "val/loss_ema")
        for step in range(PER_FILE // len(tags)):
            for k, tag in enumerate(tags):
                writer.add_scalar(tag, 1.0 / (step + 1) + k + i * 1e-3, step)
        writer.close()


def read_launch(files: list[str]) -> list[EventFile]:
    return [read_event_file(path) for path in files]  # CRCs checked, strict


def read_accumulator(files: list[str]) -> list[dict[str, list[ScalarEvent]]]:
    out = []
    for path in files:
        acc = EventAccumulator(path, size_guidance={SCALARS: 0})
        acc.Reload()
        out.append({tag: acc.Scalars(tag) for tag in acc.Tags()[SCALARS]})
    return out


def timed(
    readers: dict[str, Callable[[list[str]], object]], files: list[str], repeats: int
) -> dict[str, float]:
    """Median seconds per reader; runs interleaved so machine noise hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        for name, fn in readers.items():
            gc.collect()
            t0 = time.perf_counter()
            result = fn(files)
            times[name].append(time.perf_counter() - t0)
            del result  # neither reader runs with the other's results alive
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_files(root)
        files = find_event_files(root)
        total = FILES * PER_FILE
        readers = {"launch": read_launch, "accumulator": read_accumulator}
        seconds = timed(readers, files, args.repeats)  # type: ignore[arg-type]
        t_acc, t_launch = seconds["accumulator"], seconds["launch"]
        acc = read_accumulator(files)
        ours = read_launch(files)
        # Compare outside the timed region: (step, wall_time, value) per tag per file.
        theirs = [
            {t: [(e.step, e.wall_time, e.value) for e in v] for t, v in f.items()} for f in acc
        ]
        mine = [{t: [tuple(s) for s in v] for t, v in f.scalars.items()} for f in ours]
        count = sum(len(v) for f in ours for v in f.scalars.values())
        same = mine == theirs and count == total and not any(f.tensors for f in ours)
        print(f"files: {len(files)}, scalars: {count} (expected {total})")
        print(f"EventAccumulator: {t_acc:.3f} s  {total / t_acc:,.0f} scalars/s")
        print(f"launch.tfevents:  {t_launch:.3f} s  {total / t_launch:,.0f} scalars/s")
        ratio = t_launch / t_acc
        verdict = "meets" if ratio <= GOAL else "MISSES"
        print(f"ratio launch/EventAccumulator: {ratio:.3f} ({verdict} goal <= {GOAL})")
        print(f"same values: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
