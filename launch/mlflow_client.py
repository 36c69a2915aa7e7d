"""MLflow client access shared by the trial's tracker, the store setup and the local mirror.

A client that gives up quickly on a dead server, the experiment by name (created or restored,
safe against racing trials), metric points sent in ``log_batch``-sized chunks, search-filter
quoting, and which MLflow errors are permanent (not worth retrying). ``mlflow`` is imported only
inside the functions that need it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS_PER_BATCH = 100

# (key, value, timestamp ms, step)
MetricPoint = tuple[str, float, int, int]


def _quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + value.replace("'", "\\'") + "'"


def _client(tracking_uri: str | None) -> Any:
    """An MlflowClient; lowers MLflow's HTTP retries/timeout for this process unless set."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or None)


def _experiment_id(client: Any, name: str, *, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created (or restored) when needed; safe against races."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except Exception:
            exp = client.get_experiment_by_name(name)  # another trial created it first
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


def _is_permanent(exc: BaseException) -> bool:
    """A 4xx answer (bad value, conflicting param): retrying cannot help."""
    code = getattr(exc, "get_http_status_code", None)
    if code is None:
        return False
    try:
        status = int(code())
    except Exception:
        return False
    return 400 <= status < 500 and status not in (403, 408, 429)


def _log_points(client: Any, run_id: str, points: Sequence[MetricPoint]) -> None:
    from mlflow.entities import Metric

    for i in range(0, len(points), MAX_METRICS_PER_BATCH):
        chunk = points[i : i + MAX_METRICS_PER_BATCH]
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in chunk])
