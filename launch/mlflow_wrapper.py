"""MLflow runs that *are* Katib trials: named after the trial, carrying its params, tags, metrics.

Two forms, one behaviour:

- in training code::

      with launch.mlflow_wrapper.trial_run(cfg) as run:
          train(cfg)                      # TensorBoard scalars are mirrored at the end
          run.log_metrics({"acc": 0.9}, step=10)   # optional, buffered, never blocks

- around any program: ``python -m launch.mlflow_wrapper -- python train.py --optim.lr=0.1 ...``
  opens the run, runs the command (signals forwarded), mirrors the scalars of its
  ``--tensorboard_dir`` (periodically and at the end, ``log_batch`` of <= 1000 metrics), closes
  the run FINISHED / FAILED / KILLED and exits with the program's exit status.

The run: experiment ``MLFLOW_EXPERIMENT_NAME`` or ``KATIB_EXPERIMENT_NAME``, name
``KATIB_TRIAL_NAME``; tags ``katib.experiment``, ``katib.trial``, ``katib.namespace``,
``katib.url`` (``LAUNCH_KATIB_URL``), ``mlflow.source.git.commit`` (``LAUNCH_GIT_COMMIT``),
``launch.image`` (``LAUNCH_IMAGE``), ``launch.argv``, ``launch.attempt``, ``launch.exit_code``.
A retried or resumed trial finds its run by the ``katib.trial`` tag and reuses it.

MLflow never stalls or kills training: every call runs on a daemon thread; the program waits at
most ``LAUNCH_MLFLOW_START_TIMEOUT_S`` (default 20) for the run to open and at most
``LAUNCH_MLFLOW_BUDGET_S`` (default 30) at the end for the last data; an unreachable server gives
one warning on stderr. Unless set, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (2) and
``MLFLOW_HTTP_REQUEST_TIMEOUT`` (30) are lowered in this process so a dead server fails fast.
A local ``sqlite:///`` store that does not exist yet is created atomically (``create_local_store``:
built beside it, then renamed into place), so a Ctrl-C or kill during its creation never leaves
a half-built store; an existing broken one (``launch.tracking.local_store_problem``) gives one
warning saying what is wrong and how to fix it, training goes on, and the end does not wait for
it. ``LAUNCH_MLFLOW_DISABLE=1`` turns all of it off; so does running outside a trial with no
``MLFLOW_TRACKING_URI`` (a plain ``python train.py``), or without mlflow installed (one warning).

This is the only launch module that imports ``mlflow`` (``mlflow-skinny`` is enough), and only
inside functions, so importing it costs next to nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

__all__ = [
    "ENV_BUDGET_S",
    "ENV_DISABLE",
    "ENV_KATIB_URL",
    "ENV_MIRROR_INTERVAL_S",
    "ENV_START_TIMEOUT_S",
    "TrialRun",
    "create_local_store",
    "flatten_params",
    "main",
    "mirror_tensorboard",
    "prepare",
    "trial_run",
]

ENV_KATIB_URL = "LAUNCH_KATIB_URL"  # the Katib experiment page (katib.experiment_url)
ENV_BUDGET_S = "LAUNCH_MLFLOW_BUDGET_S"  # total wait at the end for the last data (default 30)
ENV_START_TIMEOUT_S = "LAUNCH_MLFLOW_START_TIMEOUT_S"  # wait for the run to open (default 20)
ENV_MIRROR_INTERVAL_S = "LAUNCH_MLFLOW_MIRROR_INTERVAL_S"  # process form, 0 = only at the end
ENV_DISABLE = "LAUNCH_MLFLOW_DISABLE"
_ENV_WRAPPED = "LAUNCH_MLFLOW_WRAPPED"  # set by the process form for its child

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limits
MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
_BUFFER_LIMIT = 2_000_000  # metrics kept in memory while MLflow is away

# (key, value, timestamp ms, step)
MetricPoint = tuple[str, float, int, int]


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, "") or default)
    except ValueError:
        return default


def _say(message: str) -> None:
    print(f"launch.mlflow_wrapper: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- params and tags


def flatten_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A (Draccus) dataclass, mapping or plain object as MLflow params: ``{"optim.lr": "0.05"}``.

    Nested dataclasses and mappings give dotted keys (the Draccus flag names); other values are
    ``str()``-ed (enums by value). A top-level ``tensorboard_dir`` is left out: it is a path,
    not a hyperparameter.
    """
    import dataclasses
    import enum

    out: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif key:
            if isinstance(value, enum.Enum):
                value = value.value
            out[key] = str(value)[:_MAX_PARAM_LEN]

    if config is None:
        return out
    if not (dataclasses.is_dataclass(config) or isinstance(config, Mapping)) and hasattr(
        config, "__dict__"
    ):
        config = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    walk(config, prefix)
    if not prefix:
        out.pop("tensorboard_dir", None)
    return out


def _flag_params(argv: Sequence[str]) -> dict[str, str]:
    """`--name=value` flags of a command line (the trial contract's hyperparameters)."""
    out: dict[str, str] = {}
    for arg in argv[1:]:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            if key and key not in ("tensorboard_dir", "tensorboard-dir"):
                out[key] = value[:_MAX_PARAM_LEN]
    return out


def tensorboard_dir_from_argv(argv: Sequence[str]) -> str | None:
    """The last `--tensorboard_dir=DIR` (or `--tensorboard_dir DIR`) of a command line."""
    found: str | None = None
    for i, arg in enumerate(argv):
        for flag in ("--tensorboard_dir", "--tensorboard-dir"):
            if arg.startswith(flag + "="):
                found = arg[len(flag) + 1 :]
            elif arg == flag and i + 1 < len(argv):
                found = argv[i + 1]
    return found


def _trial_tags(env: Mapping[str, str], argv: Sequence[str]) -> dict[str, str]:
    import shlex

    tags = {
        "katib.experiment": env.get("KATIB_EXPERIMENT_NAME", ""),
        "katib.trial": env.get("KATIB_TRIAL_NAME", ""),
        "katib.namespace": env.get("KATIB_NAMESPACE", ""),
        "katib.url": env.get(ENV_KATIB_URL, ""),
        "mlflow.source.git.commit": env.get("LAUNCH_GIT_COMMIT", ""),
        "launch.image": env.get("LAUNCH_IMAGE", ""),
        "launch.argv": shlex.join(argv)[:_MAX_TAG_LEN],
    }
    if argv:
        tags["mlflow.source.name"] = argv[0]
    if tags["katib.trial"]:
        link = f"[{tags['katib.experiment']}]({tags['katib.url']})" if tags["katib.url"] else ""
        note = (
            f"Katib trial `{tags['katib.trial']}` of experiment {link or tags['katib.experiment']}"
        )
        tags["mlflow.note.content"] = note
    return {k: v for k, v in tags.items() if v}


def _metric_key(tag: str) -> str:
    """A TensorBoard tag as a valid MLflow metric name (bad characters become `_`)."""
    import posixpath
    import re

    key = re.sub(r"[^/\w.\- :]", "_", tag) or "_"
    norm = posixpath.normpath(key)
    if norm != key or norm in (".", "..") or norm.startswith(("/", "../")):
        key = key.replace("/", "_")
    return key[:250]


def _quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + value.replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- MLflow access


def _client(tracking_uri: str | None) -> Any:
    """An MlflowClient; lowers MLflow's HTTP retries/timeout for this process unless set."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or None)


def _experiment_id(client: Any, name: str) -> str:
    """The id of experiment `name`, created (or restored) when needed; safe against races."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return str(client.create_experiment(name))
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


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def create_local_store(path: str | os.PathLike[str]) -> bool:
    """Create the sqlite MLflow store `path` atomically, if it does not exist; True when this
    call created it (False: it existed, or a concurrent creator was first).

    MLflow's migrations run on a temporary file beside it (`tracking.store_temp_path`), whose
    engine is then disposed; the finished, checked file is hard-linked to `path` only while
    `path` does not exist, so two creators never clobber each other (the loser discards its
    copy) and an interruption (Ctrl-C, kill) never leaves a half-built `path`: at most the
    temporary file, which the next creation removes (`tracking.remove_stale_store_temps`).
    Raises on failure (the temporary file removed, unless killed).
    """
    with _CREATE_LOCK:  # the temporary file is per process: one creation at a time in it
        return _create_local_store(os.path.abspath(path))


_CREATE_LOCK = threading.Lock()


def _create_local_store(target: str) -> bool:
    from launch import tracking

    if os.path.lexists(target):
        return False
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    tracking.remove_stale_store_temps(target)
    tmp = os.fspath(tracking.store_temp_path(target))
    leftovers = [tmp + suffix for suffix in ("", "-journal", "-wal", "-shm")]
    for name in leftovers:
        with suppress(FileNotFoundError):
            os.unlink(name)
    try:
        _build_store(tmp)
        problem = tracking.local_store_problem(tmp)
        if problem is not None:
            raise RuntimeError(f"MLflow built an incomplete store: {problem}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the content is on disk before the name is
        finally:
            os.close(fd)
        if os.path.lexists(target):
            return False
        try:
            os.link(tmp, target)  # fails when `target` exists: never replaces a store
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: rename (a tiny race is left)
            if os.path.lexists(target):
                return False
            os.rename(tmp, target)
        with suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return True
    finally:
        for name in leftovers:
            with suppress(OSError):
                os.unlink(name)


def _build_store(tmp: str) -> None:
    """MLflow's schema (all migrations) and Default experiment in the new sqlite file `tmp`,
    with no connection left open to it afterwards."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp}"
    store_class: Any = SqlAlchemyStore
    store: Any = None
    try:
        # the artifact root MLflow's own client gives a sqlite store (for the Default experiment)
        store = store_class(uri, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    finally:
        # SqlAlchemyStore caches one engine per URI (class-level `_engine_map`): drop it, and
        # close its pooled sqlite connections, before the file is renamed.
        engines: dict[str, Any] = getattr(SqlAlchemyStore, "_engine_map", {})
        with getattr(SqlAlchemyStore, "_engine_map_lock", threading.Lock()):
            engine = engines.pop(uri, None)
        if engine is None and store is not None:
            engine = getattr(store, "engine", None)
        if engine is not None:
            engine.dispose()


def _ensure_local_store(tracking_uri: str | None) -> None:
    """For a local `sqlite:///` store: create it atomically when missing (rather than letting
    MLflow build it in place), and raise `_BrokenStore` (what is wrong, the fix) when it is
    broken, before MLflow touches it."""
    from launch import tracking

    path = tracking.sqlite_store_path(tracking_uri or "")
    if path is None:
        return
    if not os.path.lexists(path):
        create_local_store(path)
    problem = tracking.local_store_problem(path)
    if problem is not None:
        raise _BrokenStore(problem, tracking.broken_store_hint(path))


class _BrokenStore(Exception):
    """A local store that cannot be used until it is moved aside."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem = problem
        self.hint = hint


def prepare(
    tracking_uri: str | None, experiment_name: str, *, katib_url: str | None = None
) -> str | None:
    """Create the tracking store and experiment once, before trials start; its id, or None.

    For the launcher: parallel trials then never race to create a sqlite schema or the
    experiment. A new local `sqlite:///` store is created atomically (`create_local_store`); an
    existing broken one is reported (what is wrong, how to fix it) and left alone. Never raises:
    a problem (MLflow missing, store unreachable or broken) is one warning.
    """
    try:
        _ensure_local_store(tracking_uri)
        client = _client(tracking_uri)
        exp_id = _experiment_id(client, experiment_name)
        if katib_url:
            client.set_experiment_tag(exp_id, "katib.url", katib_url)
        return exp_id
    except _BrokenStore as exc:
        _say(f"warning: {exc.problem}; MLflow logging fails until it is fixed: {exc.hint}")
        return None
    except Exception as exc:
        _say(f"warning: MLflow at {tracking_uri or '(default)'} not ready: {_short(exc)}")
        return None


# --------------------------------------------------------------------------- TensorBoard mirror


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


def _log_points(client: Any, run_id: str, points: Sequence[MetricPoint]) -> None:
    from mlflow.entities import Metric

    for i in range(0, len(points), MAX_METRICS_PER_BATCH):
        chunk = points[i : i + MAX_METRICS_PER_BATCH]
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in chunk])


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


# --------------------------------------------------------------------------- the background sync


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
        self._thread.start()
        if not self._opened.wait(self.start_timeout_s):
            self._warn(f"no run after {self.start_timeout_s:.0f} s", slow=True)

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


# --------------------------------------------------------------------------- training-code API


class TrialRun:
    """The handle `trial_run` yields. Logging is buffered and sent in the background."""

    def __init__(self, tracker: _Tracker | None) -> None:
        self._tracker = tracker

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, or None while MLflow has not answered (or when disabled)."""
        return self._tracker.run_id if self._tracker else None

    def log_metric(
        self, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        """One value (`timestamp` in seconds, default now)."""
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int = 0, timestamp: float | None = None
    ) -> None:
        """Several values of one step."""
        if self._tracker:
            ms = int((time.time() if timestamp is None else timestamp) * 1000)
            self._tracker.add_metrics(
                [(_metric_key(k), float(v), ms, int(step)) for k, v in metrics.items()]
            )

    def log_params(self, params: Mapping[str, Any]) -> None:
        """More params (nested mappings/dataclasses are flattened)."""
        if self._tracker:
            self._tracker.add_params(flatten_params(dict(params)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self._tracker:
            self._tracker.add_tags({k: str(v)[:_MAX_TAG_LEN] for k, v in tags.items()})


def _active(env: Mapping[str, str]) -> bool:
    """Track at all? Not when disabled, not outside a trial with no tracking URI given (a plain
    `python train.py` leaves no mlflow.db behind), not without mlflow (one warning)."""
    if env.get(ENV_DISABLE, "").lower() in ("1", "true", "yes"):
        return False
    if not any(env.get(k) for k in ("KATIB_TRIAL_NAME", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")):
        return False
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        _say("warning: mlflow is not installed (pip install 'launch[mlflow]'): no MLflow run")
        return False
    return True


def _settings(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "tracking_uri": env.get("MLFLOW_TRACKING_URI") or None,
        "experiment": env.get("MLFLOW_EXPERIMENT_NAME")
        or env.get("KATIB_EXPERIMENT_NAME")
        or "Default",
        "trial": env.get("KATIB_TRIAL_NAME") or None,
        "budget_s": _env_float(env, ENV_BUDGET_S, 30.0),
        "start_timeout_s": _env_float(env, ENV_START_TIMEOUT_S, 20.0),
    }


@contextmanager
def trial_run(
    config: Any = None,
    *,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    mirror: bool = True,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> Iterator[TrialRun]:
    """Open (or reuse) this trial's MLflow run around training code; close it with the outcome.

    `config`: the Draccus config (dataclass), a mapping or an object, logged as flattened params.
    At the end the TensorBoard scalars of `tensorboard_dir` (default: `config.tensorboard_dir`,
    else `--tensorboard_dir` in `argv`) are mirrored when `mirror`; the run ends FINISHED,
    FAILED on an exception, KILLED on Ctrl-C. Under the process form (which owns the run) this
    only adds params and metrics. MLflow problems never raise here.
    """
    env = os.environ
    argv = list(sys.argv if argv is None else argv)
    if not _active(env):
        yield TrialRun(None)
        return
    wrapped = bool(env.get(_ENV_WRAPPED)) and bool(env.get("MLFLOW_RUN_ID"))
    all_params = flatten_params(config)
    all_params.update(flatten_params(dict(params or {})))
    run_tags = {} if wrapped else _trial_tags(env, [sys.executable, *argv])
    run_tags.update(tags or {})
    tracker = _Tracker(
        **_settings(env),
        tags=run_tags,
        params=all_params,
        run_id=env.get("MLFLOW_RUN_ID") or None,
    )
    tracker.start()
    status = "FAILED"
    try:
        yield TrialRun(tracker)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except SystemExit as exc:
        status = "FINISHED" if exc.code in (None, 0) else "FAILED"
        raise
    finally:
        tb = tensorboard_dir or getattr(config, "tensorboard_dir", None)
        tb = tb or tensorboard_dir_from_argv(argv)
        if mirror and tb and not wrapped:
            try:
                tracker.add_metrics(_Mirror(os.fspath(tb)).collect())
            except Exception as exc:
                _say(f"warning: reading TensorBoard files in {tb}: {_short(exc)}")
        # under the process form, which mirrors and ends the run, just flush
        tracker.close(None if wrapped else status)


# --------------------------------------------------------------------------- process form

_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
_USAGE = """usage: python -m launch.mlflow_wrapper [--tensorboard_dir DIR] -- CMD [ARGS...]

Runs CMD inside this Katib trial's MLflow run: params from its --name=value flags, TensorBoard
scalars mirrored from its --tensorboard_dir, run closed with its outcome, its exit status kept."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m launch.mlflow_wrapper -- CMD...`; returns CMD's exit status (128+N on signal N)."""
    args = list(sys.argv[1:] if argv is None else argv)
    tb_override: str | None = None
    while args and args[0] != "--":
        head = args.pop(0)
        if head in ("-h", "--help"):
            print(_USAGE)
            return 0
        if head.startswith(("--tensorboard_dir=", "--tensorboard-dir=")):
            tb_override = head.split("=", 1)[1]
        elif head in ("--tensorboard_dir", "--tensorboard-dir") and args:
            tb_override = args.pop(0)
        else:
            args.insert(0, head)
            break
    if args and args[0] == "--":
        args.pop(0)
    if not args:
        print(_USAGE, file=sys.stderr)
        return 2
    child_env = dict(os.environ)
    disabled = not _active(child_env)
    tb = tb_override or tensorboard_dir_from_argv(args)
    tracker: _Tracker | None = None
    mirror = _Mirror(tb) if tb else None
    if not disabled:
        tracker = _Tracker(
            **_settings(child_env),
            tags=_trial_tags(child_env, args),
            params={},
            collect=mirror.collect if mirror else None,
            collect_interval_s=_env_float(child_env, ENV_MIRROR_INTERVAL_S, 60.0),
        )
        tracker.add_params(_flag_params(args), late=True)
        tracker.start()
        if tracker.run_id:
            child_env["MLFLOW_RUN_ID"] = tracker.run_id
            child_env[_ENV_WRAPPED] = "1"

    import subprocess

    try:
        proc = subprocess.Popen(args, env=child_env, process_group=0, preexec_fn=_die_with_parent)
    except OSError as exc:
        print(f"launch.mlflow_wrapper: cannot run {args[0]!r}: {exc}", file=sys.stderr)
        if tracker:
            tracker.add_tags({"launch.exit_code": "127"})
            tracker.close("FAILED")
        return 127

    def forward(signum: int, _frame: Any) -> None:
        with suppress(OSError):
            os.killpg(proc.pid, signum)

    previous: dict[int, Any] = {}
    for name in _FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, forward)
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if tracker:
        if mirror:
            try:
                tracker.add_metrics(mirror.collect())
            except Exception as exc:
                _say(f"warning: reading TensorBoard files in {tb}: {_short(exc)}")
        status = "FINISHED" if rc == 0 else "FAILED"
        if rc < 0 and -rc in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGHUP):
            status = "KILLED"
        tracker.add_tags({"launch.exit_code": str(rc if rc >= 0 else 128 - rc)})
        tracker.close(status)
    if rc < 0:  # die of the same signal, so our parent sees what it would have seen
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        return 128 - rc
    return rc


if __name__ == "__main__":
    sys.exit(main())
