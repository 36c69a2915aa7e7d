"""Mirroring 50k TensorBoard scalars into MLflow: batched vs one `log_metric` per value.

    uv run python bench/mlflow_mirror.py [--scalars 50000] [--per-value-sample 2000]

Both sides talk to the same real `mlflow server` (sqlite store, 1 worker) started here. The
batched side is `launch.mlflow_tensorboard.mirror_tensorboard` over all the scalars (reading the
event files included). The per-value side calls `MlflowClient.log_metric` once per value on the
first `--per-value-sample` values and is extrapolated linearly to all of them (said in the
output). Goal: batched >= 20x faster.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from launch import mlflow_client, mlflow_tensorboard  # noqa: E402
from tests.mlflow_server import mlflow_server  # noqa: E402

TAGS = ("train/loss", "train/lr", "val/loss", "val/acc", "grad_norm")


def write_scalars(directory: Path, total: int) -> None:
    from tensorboardX import SummaryWriter

    w = SummaryWriter(str(directory))
    steps = total // len(TAGS)
    for step in range(steps):
        for i, tag in enumerate(TAGS):
            w.add_scalar(tag, 1.0 / (step + 1 + i), step)
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalars", type=int, default=50_000)
    ap.add_argument("--per-value-sample", type=int, default=2_000)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")  # measure speed, not timeouts
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        tb = Path(tmp) / "tb"
        write_scalars(tb, args.scalars)
        with mlflow_server(Path(tmp) / "server") as server:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(server.uri)
            exp = client.create_experiment("bench")
            batched_run = client.create_run(exp, run_name="batched").info.run_id
            single_run = client.create_run(exp, run_name="per-value").info.run_id

            # the batched side: read the event files, then log_batch in chunks of <= 1000;
            # the per-value side: one log_metric per value. Interleaved in rounds, so a busy
            # machine slows both alike.
            t0 = time.perf_counter()
            points = mlflow_tensorboard._Mirror(str(tb)).collect()
            read_s = time.perf_counter() - t0
            n = len(points)
            rounds = max(1, args.per_value_sample // 80)
            step = -(-n // rounds)
            single_points = points[: args.per_value_sample]
            per_round = -(-len(single_points) // rounds)
            batch_s = sample = 0.0
            for r in range(rounds):
                t0 = time.perf_counter()
                mlflow_client._log_points(client, batched_run, points[r * step : (r + 1) * step])
                batch_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                for key, value, ts, st in single_points[r * per_round : (r + 1) * per_round]:
                    client.log_metric(single_run, key, value, timestamp=ts, step=st)
                sample += time.perf_counter() - t0
            batched = read_s + batch_s
            per_value = sample / len(single_points) * n
            stored = sum(len(client.get_metric_history(batched_run, t)) for t in TAGS)
            assert stored == n, (stored, n)

    print(f"scalars mirrored: {n} (stored and counted back: {stored})")
    print(
        f"batched (log_batch <= 1000 each): {batched:8.2f} s "
        f"(event-file read {read_s:.2f} s + {batch_s:.2f} s of requests)"
    )
    print(
        f"one log_metric per value: {sample:.2f} s for {len(single_points)} values measured "
        f"(in {rounds} rounds interleaved with the batched side), extrapolated linearly to "
        f"{n}: {per_value:8.2f} s"
    )
    ratio = per_value / batched
    print(
        f"speedup batched vs per-value: {ratio:.0f}x  (goal >= 20x: {'met' if ratio >= 20 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
