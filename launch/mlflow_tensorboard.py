"""TensorBoard scalars as MLflow metric points: the incremental collector the trial forms and
the local mirror use (``_Mirror``), and ``mirror_tensorboard``, the plain synchronous copy."""

from __future__ import annotations

import os
import threading

from launch.mlflow_client import MetricPoint, _client, _log_points
from launch.mlflow_wrapper import _metric_key


class _Mirror:
    """New TensorBoard scalars of a directory since the last call, as metric points."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._sent: dict[str, int] = {}
        self._lock = threading.Lock()

    def collect(self) -> list[MetricPoint]:
        with self._lock:
            return self._collect()

    def _collect(self) -> list[MetricPoint]:
        if not os.path.isdir(self.directory):
            return []
        from launch.tfevents import read_scalars

        points: list[MetricPoint] = []
        for tag, items in read_scalars(self.directory, strict=False).items():
            start = self._sent.get(tag, 0)
            if len(items) <= start:
                continue
            key = _metric_key(tag)
            points.extend(
                (key, float(s.value), int(s.wall_time * 1000), int(s.step)) for s in items[start:]
            )
            self._sent[tag] = len(items)
        return points


def mirror_tensorboard(
    tensorboard_dir: str | os.PathLike[str], run_id: str, *, tracking_uri: str | None = None
) -> int:
    """Copy every TensorBoard scalar under `tensorboard_dir` into run `run_id` (synchronous).

    Keys are tags (`run/tag` for subdirectories), with steps and wall times; batches of up to
    1000 metrics. Returns the number of points. Raises on MLflow errors (this is the plain
    building block; the trial forms add the never-stall behaviour).
    """
    points = _Mirror(os.fspath(tensorboard_dir)).collect()
    _log_points(_client(tracking_uri), run_id, points)
    return len(points)
