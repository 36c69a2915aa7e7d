"""The background sync of a trial's MLflow run (``_Tracker``), for the cluster and the process
form: it opens (or reuses) the run and sends params, tags, metrics and artifacts from one daemon
thread, so training never waits on MLflow beyond the start timeout and the end budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from launch.mlflow_client import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MetricPoint,
    _client,
    _experiment_id,
    _is_permanent,
    _log_points,
    _quote,
)
from launch.mlflow_store import _BrokenStore, _ensure_local_store
from launch.mlflow_wrapper import _say, _short

_BUFFER_LIMIT = 2_000_000  # metrics kept in memory while MLflow is away


class _Tracker:
    """Owns the run; all MLflow calls happen on one daemon thread, data waits in memory."""

    def __init__(
        self,
        *,
        tracking_uri: str | None,
        experiment: str,
        trial: str | None,
        tags: dict[str, str],
        params: dict[str, str],
        run_id: str | None = None,
        budget_s: float = 30.0,
        start_timeout_s: float = 10.0,
        collect: Callable[[], list[MetricPoint]] | None = None,
        collect_interval_s: float = 0.0,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.trial = trial
        self.run_id = run_id
        self.budget_s = budget_s
        self.start_timeout_s = start_timeout_s
        self._create_tags = dict(tags)
        self._tags = dict(tags)
        self._params = dict(params)
        self._late_params: dict[str, str] = {}  # logged only where the run has no such key
        self._artifacts: list[str] = []
        self._metrics: list[MetricPoint] = []
        self._collect = collect
        self._collect_interval_s = collect_interval_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._close_evt = threading.Event()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._closing = False
        self._final: str | None = None  # the status to end the run with (None: leave it open)
        self._ok = False
        self._deadline = 0.0
        self._warned = False
        self._broken: _BrokenStore | None = None  # the local store, when it cannot be used
        self._told_broken = False
        self._dropped = 0
        self._client: Any = None
        self._thread = threading.Thread(target=self._loop, name="launch-mlflow", daemon=True)

    # -- called from the training thread (never blocks on MLflow)

    def start(self) -> None:
        """Start the background thread; wait at most `start_timeout_s` for the run to open (so
        `run_id` is known early when MLflow is quick), silently: importing MLflow alone takes
        seconds, which is no reason to warn. A server that never answers is said at `close`."""
        self._thread.start()
        self._opened.wait(self.start_timeout_s)

    def add_metrics(self, points: Sequence[MetricPoint]) -> None:
        with self._lock:
            room = _BUFFER_LIMIT - len(self._metrics)
            if room < len(points):
                self._dropped += len(points) - max(room, 0)
                points = points[: max(room, 0)]
            self._metrics.extend(points)
            full = len(self._metrics) >= MAX_METRICS_PER_BATCH
        if full:
            self._wake.set()

    def add_params(self, params: Mapping[str, str], *, late: bool = False) -> None:
        with self._lock:
            (self._late_params if late else self._params).update(params)

    def add_tags(self, tags: Mapping[str, str]) -> None:
        with self._lock:
            self._tags.update(tags)

    def add_artifact(self, path: str) -> None:
        with self._lock:
            self._artifacts.append(path)

    def close(self, status: str | None) -> bool:
        """Flush everything and end the run with `status` (None: leave it running) within the
        budget. True when all of it reached MLflow."""
        self._deadline = time.monotonic() + self.budget_s
        self._final = status
        self._closing = True
        self._close_evt.set()
        self._wake.set()
        self._done.wait(self.budget_s + 0.5)
        if self._ok:
            return True
        if not self._warned:
            self._warn(f"no answer in {self.budget_s:.0f} s", slow=True)
        with self._lock:
            left = len(self._metrics)
        _say(
            f"gave up on MLflow at {self.tracking_uri or '(default)'} after {self.budget_s:.0f} s"
            f" ({left} metric values not logged); the program's result stands"
        )
        return False

    # -- the daemon thread

    def _warn(self, why: str, *, slow: bool = False) -> None:
        if self._broken is not None:  # said once, even after another warning
            if not self._told_broken:
                self._told_broken = self._warned = True
                _say(
                    f"warning: {self._broken.problem}; training continues, but this trial logs "
                    f"nothing to MLflow until it is fixed: {self._broken.hint}"
                )
            return
        if not self._warned:
            self._warned = True
            what = "slow" if slow else "unreachable"
            _say(
                f"warning: MLflow at {self.tracking_uri or '(default)'} {what} ({why}); "
                f"training continues, logging retried in the background and for up to "
                f"{self.budget_s:.0f} s at the end"
            )

    def _loop(self) -> None:
        delay = 1.0
        next_collect = time.monotonic() + self._collect_interval_s
        while True:
            closing = self._closing
            if self._collect and self._collect_interval_s > 0 and time.monotonic() >= next_collect:
                next_collect = time.monotonic() + self._collect_interval_s
                try:
                    self.add_metrics(self._collect())
                except Exception as exc:  # a half-written file: next time
                    _say(f"warning: reading TensorBoard files: {_short(exc)}")
            try:
                self._sync(closing, self._final)
                if closing:
                    self._ok = True
                    self._done.set()
                    return
                delay = 1.0
                wait = self._collect_interval_s if self._collect_interval_s > 0 else 10.0
                self._wake.wait(wait)
                self._wake.clear()
            except Exception as exc:
                self._broken = exc if isinstance(exc, _BrokenStore) else None
                self._warn(_short(exc))
                self._opened.set()
                if closing:
                    left = self._deadline - time.monotonic()
                    if left <= 0 or self._broken is not None:  # no waiting on a broken store
                        self._done.set()
                        return
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 5.0)
                else:  # back off; only closing cuts the wait short
                    self._close_evt.wait(delay)
                    delay = min(delay * 2, 60.0)

    def _open(self) -> None:
        client = self._client
        exp_id = _experiment_id(client, self.experiment)
        run = None
        if self.trial:
            found = client.search_runs(
                [exp_id],
                filter_string=f"tags.`katib.trial` = {_quote(self.trial)}",
                max_results=1,
                order_by=["attributes.start_time DESC"],
            )
            run = found[0] if found else None
        if run is not None:
            attempt = int(run.data.tags.get("launch.attempt", "1") or 1) + 1
            client.update_run(run.info.run_id, status="RUNNING")
        else:
            run = client.create_run(exp_id, run_name=self.trial or None, tags=self._create_tags)
            attempt = 1
        with self._lock:
            self._tags["launch.attempt"] = str(attempt)
        self.run_id = run.info.run_id

    def _sync(self, closing: bool, final: str | None) -> None:
        from mlflow.entities import Param, RunTag

        if self._client is None:
            _ensure_local_store(self.tracking_uri)
            self._client = _client(self.tracking_uri)
        client = self._client
        if self.run_id is None:
            self._open()
        self._opened.set()
        run_id = self.run_id
        assert run_id is not None
        with self._lock:
            params, self._params = self._params, {}
            tags, self._tags = self._tags, {}
        try:
            p_items = list(params.items())
            for i in range(0, len(p_items), MAX_PARAMS_TAGS_PER_BATCH):
                p_chunk = p_items[i : i + MAX_PARAMS_TAGS_PER_BATCH]
                self._batch(client, run_id, params=[Param(k, v) for k, v in p_chunk])
            t_items = list(tags.items())
            for i in range(0, len(t_items), MAX_PARAMS_TAGS_PER_BATCH):
                t_chunk = t_items[i : i + MAX_PARAMS_TAGS_PER_BATCH]
                self._batch(client, run_id, tags=[RunTag(k, v) for k, v in t_chunk])
        except Exception:
            with self._lock:  # keep what was not sent (re-sending the same values is harmless)
                self._params = {**params, **self._params}
                self._tags = {**tags, **self._tags}
            raise
        while True:
            with self._lock:
                chunk = self._metrics[:MAX_METRICS_PER_BATCH]
            if not chunk:
                break
            self._batch(client, run_id, metrics=chunk)
            with self._lock:
                del self._metrics[: len(chunk)]
        if closing:
            with self._lock:
                late, self._late_params = self._late_params, {}
            try:
                have = client.get_run(run_id).data.params if late else {}
                missing = [Param(k, v) for k, v in late.items() if k not in have]
                for i in range(0, len(missing), MAX_PARAMS_TAGS_PER_BATCH):
                    self._batch(client, run_id, params=missing[i : i + MAX_PARAMS_TAGS_PER_BATCH])
            except Exception:
                with self._lock:
                    self._late_params = {**late, **self._late_params}
                raise
            with self._lock:
                artifacts, self._artifacts = self._artifacts, []
            for path in artifacts:
                try:
                    client.log_artifact(run_id, path)
                except Exception as exc:
                    _say(f"warning: artifact {path} not logged: {_short(exc)}")
            if self._dropped:
                _say(f"warning: {self._dropped} metric values dropped (buffer full)")
            if final is not None:
                client.set_terminated(run_id, status=final)

    def _batch(
        self,
        client: Any,
        run_id: str,
        *,
        metrics: Sequence[MetricPoint] = (),
        params: Sequence[Any] = (),
        tags: Sequence[Any] = (),
    ) -> None:
        try:
            if metrics:
                _log_points(client, run_id, metrics)
            else:
                client.log_batch(run_id, params=params, tags=tags)
        except Exception as exc:
            if not _is_permanent(exc):
                raise
            _say(f"warning: MLflow refused a batch, skipped: {_short(exc)}")
