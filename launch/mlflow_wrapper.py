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

On the local backend (``LAUNCH_MLFLOW_SPOOL`` set by the coordinator) neither form talks to
MLflow: ``trial_run`` writes what only the code knows (typed params, extra metrics, tags,
artifacts) to that file, and the sweep's one mirror process (``serve_mirror``, see
``launch.mirror``) makes every trial's run from its journal entry, event files and that file.
The process form likewise hands its child a spool, so the child never opens a second run.

MLflow never stalls or kills training: every call runs on a daemon thread; the program waits at
most ``LAUNCH_MLFLOW_START_TIMEOUT_S`` (default 0.5) for the run to open and at most
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

from launch.mirror import ENV_SPOOL, Spool, read_spool

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
    "serve_mirror",
    "trial_run",
]

ENV_KATIB_URL = "LAUNCH_KATIB_URL"  # the Katib experiment page (katib.experiment_url)
ENV_BUDGET_S = "LAUNCH_MLFLOW_BUDGET_S"  # total wait at the end for the last data (default 30)
ENV_START_TIMEOUT_S = "LAUNCH_MLFLOW_START_TIMEOUT_S"  # wait for the run to open (default 0.5)
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


# --------------------------------------------------------------------------- the local mirror


def serve_mirror(exp_dir: str | os.PathLike[str], *, poll_s: float = 0.5) -> int:
    """The local backend's mirror child (`launch.mirror`): turn every finished trial of the
    experiment at `exp_dir` into its MLflow run, until stdin is closed (the coordinator is done,
    or gone) and nothing is left. MLflow is imported once, and the store and experiment are made
    at once, while the first trials run. Returns 0, or 1 when some trial could not be mirrored
    (it is tried again by the next mirror: its run has no marker yet)."""
    import fcntl
    import select
    from pathlib import Path

    from launch import mirror, state, tracking

    exp = state.Experiment(Path(exp_dir))
    meta = exp.meta()
    uri = str(meta.get("tracking_uri") or "") or None
    name = str(meta["name"])
    lock = open(Path(exp_dir) / mirror.LOCK_NAME, "a")  # noqa: SIM115 - held until exit
    fcntl.flock(lock, fcntl.LOCK_EX)  # one mirror at a time per experiment
    store = tracking.sqlite_store_path(uri or "")
    writer = None
    if store is not None and store.exists() and tracking.local_store_problem(store) is None:
        writer = mirror.SqliteWriter.open(store)  # no MLflow import: milliseconds, not seconds
    client: Any = writer
    if writer is None:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            _say(f"warning: mlflow is not installed ({_mlflow_hint()}): no MLflow runs")
            return 3
        try:
            _ensure_local_store(uri)
            client = _client(uri)
            exp_id = _experiment_id(client, name, artifact_location=_artifacts_for(store, name))
        except _BrokenStore as exc:
            _say(f"warning: {exc.problem}; no MLflow runs until it is fixed: {exc.hint}")
            return 1
    else:
        exp_id = writer.experiment_id(name)
    failures: dict[str, int] = {}
    stdin_open = True
    while True:
        if stdin_open:
            ready, _, _ = select.select([sys.stdin.fileno()], [], [], poll_s)
            if ready:
                try:
                    stdin_open = bool(os.read(sys.stdin.fileno(), 4096))
                except OSError:
                    stdin_open = False
        current = exp.state()
        todo = [
            n for n in mirror.pending(exp.path, current.trials.values()) if failures.get(n, 0) < 3
        ]
        for trial in todo:
            try:
                _mirror_trial(client, exp_id, exp, meta, current.trials[trial])
            except Exception as exc:
                failures[trial] = failures.get(trial, 0) + 1
                _say(f"warning: mirroring trial {trial}: {_short(exc)}")
        if not stdin_open:
            break
    return 1 if any(n for n in failures if not mirror.mirrored(exp.trial_dir(n))) else 0


def _artifacts_for(store: Any, name: str) -> str | None:
    """A local store's experiments keep their artifacts beside it (not in the worktree)."""
    from launch import mirror

    return None if store is None else str(mirror.artifact_root(store) / name)


def _mirror_trial(client: Any, exp_id: str, exp: Any, meta: Mapping[str, Any], rec: Any) -> str:
    """One finished trial as its run: params, tags, TensorBoard scalars, spool, status; marker.
    `client` is MLflow's client, or a `launch.mirror.SqliteWriter` for a local store."""
    from launch import mirror

    trial_dir = exp.trial_dir(rec.name)
    argv = list(rec.argv or [])
    env = {
        "KATIB_EXPERIMENT_NAME": str(meta["name"]),
        "KATIB_TRIAL_NAME": rec.name,
        "KATIB_NAMESPACE": "local",
        "LAUNCH_GIT_COMMIT": str(meta.get("commit") or ""),
    }
    spool = mirror.read_spool(trial_dir / mirror.SPOOL_NAME)
    params = _flag_params(argv)
    params.update(spool["params"])  # the typed config wins over the flag text
    tags = _trial_tags(env, argv)
    tags["launch.results"] = f"launch results {meta['name']}"
    tags["mlflow.note.content"] = (
        f"Trial `{rec.name}` of local experiment `{meta['name']}` (`launch results "
        f"{meta['name']}`; its files: {trial_dir})"
    )
    tags["launch.attempt"] = "1"
    if rec.exit_code is not None:
        code = int(rec.exit_code)
        tags["launch.exit_code"] = str(code if code >= 0 else 128 - code)
    tags.update(spool["tags"])
    if rec.status == "Killed":
        status = "KILLED"
    else:
        status = "FINISHED" if rec.exit_code in (0, None) else "FAILED"
    start_ms = int(rec.start * 1000) if rec.start else None
    end_ms = int(rec.end * 1000) if rec.end else None
    points = _Mirror(os.fspath(trial_dir / "tfevent")).collect()
    if isinstance(client, mirror.SqliteWriter):
        if spool["artifacts"]:
            _say(f"warning: trial {rec.name}: artifacts are not copied to a local store")
        run_id = client.write_run(
            exp_id, trial=rec.name, start_ms=start_ms, end_ms=end_ms, status=status,
            tags={k: v[:_MAX_TAG_LEN] for k, v in tags.items()},
            params={k: v[:_MAX_PARAM_LEN] for k, v in params.items()},
            points=[*points, *spool["metrics"]],
        )  # fmt: skip
        mirror.write_marker(
            trial_dir, {"run_id": run_id, "experiment_id": exp_id, "points": len(points)}
        )
        return run_id
    from mlflow.entities import Param

    # A run left half-written by a mirror that was stopped: start it again from the files.
    for old in client.search_runs(
        [exp_id], filter_string=f"tags.`katib.trial` = {_quote(rec.name)}", max_results=100
    ):
        client.delete_run(old.info.run_id)
    run = client.create_run(exp_id, start_time=start_ms, run_name=rec.name, tags=tags)
    run_id = run.info.run_id
    items = list(params.items())
    for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        chunk = items[i : i + MAX_PARAMS_TAGS_PER_BATCH]
        client.log_batch(run_id, params=[Param(k, v[:_MAX_PARAM_LEN]) for k, v in chunk])
    _log_points(client, run_id, [*points, *spool["metrics"]])
    for path in spool["artifacts"]:
        try:
            client.log_artifact(run_id, path)
        except Exception as exc:
            _say(f"warning: trial {rec.name}: artifact {path} not logged: {_short(exc)}")
    client.set_terminated(run_id, status=status, end_time=end_ms)
    mirror.write_marker(
        trial_dir, {"run_id": run_id, "experiment_id": exp_id, "points": len(points)}
    )
    return str(run_id)


# --------------------------------------------------------------------------- training-code API


class TrialRun:
    """The handle `trial_run` yields. Logging is buffered and sent in the background."""

    def __init__(self, tracker: _Tracker | None, spool: Spool | None = None) -> None:
        self._tracker = tracker
        self._spool = spool

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, or None while MLflow has not answered (or when disabled; on the
        local backend the run is made by the sweep's mirror when the trial has ended)."""
        if self._spool is not None:
            return os.environ.get("MLFLOW_RUN_ID") or None
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
        ms = int((time.time() if timestamp is None else timestamp) * 1000)
        points = [(_metric_key(k), float(v), ms, int(step)) for k, v in metrics.items()]
        if self._spool is not None:
            self._spool.add_metrics(points)
        elif self._tracker:
            self._tracker.add_metrics(points)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """More params (nested mappings/dataclasses are flattened)."""
        if self._spool is not None:
            self._spool.add({"params": flatten_params(dict(params))})
        elif self._tracker:
            self._tracker.add_params(flatten_params(dict(params)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {k: str(v)[:_MAX_TAG_LEN] for k, v in tags.items()}
        if self._spool is not None:
            self._spool.add({"tags": clean})
        elif self._tracker:
            self._tracker.add_tags(clean)

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """A file (or directory) to attach to the run, uploaded when the trial ends."""
        full = os.path.abspath(path)
        if self._spool is not None:
            self._spool.add({"artifact": full})
        elif self._tracker:
            self._tracker.add_artifact(full)


def _active(env: Mapping[str, str]) -> bool:
    """Track at all? Not when disabled, not outside a trial with no tracking URI given (a plain
    `python train.py` leaves no mlflow.db behind), not without mlflow (one warning)."""
    if env.get(ENV_DISABLE, "").lower() in ("1", "true", "yes"):
        return False
    if not any(env.get(k) for k in ("KATIB_TRIAL_NAME", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")):
        return False
    if env.get(ENV_SPOOL):
        return True  # the local backend's mirror (or the process form) talks to MLflow
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        _say(f"warning: mlflow is not installed ({_mlflow_hint()}): no MLflow run")
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
        "start_timeout_s": _env_float(env, ENV_START_TIMEOUT_S, 0.5),
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
    all_params = flatten_params(config)
    all_params.update(flatten_params(dict(params or {})))
    spool_path = env.get(ENV_SPOOL)
    if spool_path:
        # Local backend (or under the process form): what only this code knows goes to a file
        # beside the trial's event files; the sweep's mirror (or the process form) makes the run.
        # No MLflow import, no thread, no wait: training starts at once.
        spool = Spool(spool_path)
        spool.add({"params": all_params})
        if tags:
            spool.add({"tags": {k: str(v)[:_MAX_TAG_LEN] for k, v in tags.items()}})
        try:
            yield TrialRun(None, spool)
        finally:
            tb = tensorboard_dir or getattr(config, "tensorboard_dir", None)
            tb = tb or tensorboard_dir_from_argv(argv)
            own = os.path.join(os.path.dirname(os.path.abspath(spool_path)), "tfevent")
            if mirror and tb and not env.get(_ENV_WRAPPED) and not _same_dir(tb, own):
                try:  # scalars outside the trial's event directory: the mirror cannot see them
                    spool.add_metrics(_Mirror(os.fspath(tb)).collect())
                except Exception as exc:
                    _say(f"warning: reading TensorBoard files in {tb}: {_short(exc)}")
            spool.flush()
        return
    wrapped = bool(env.get(_ENV_WRAPPED)) and bool(env.get("MLFLOW_RUN_ID"))
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


def _same_dir(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


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
    # On the local backend (a spool is given) the sweep's mirror makes the run: just run CMD.
    disabled = not _active(child_env) or bool(child_env.get(ENV_SPOOL))
    tb = tb_override or tensorboard_dir_from_argv(args)
    tracker: _Tracker | None = None
    mirror = _Mirror(tb) if tb else None
    spool_file: str | None = None
    if not disabled:
        tracker = _Tracker(
            **_settings(child_env),
            tags=_trial_tags(child_env, args),
            params={},
            collect=mirror.collect if mirror else None,
            collect_interval_s=_env_float(child_env, ENV_MIRROR_INTERVAL_S, 60.0),
        )
        tracker.add_params(_flag_params(args), late=True)
        tracker.start()  # waits at most LAUNCH_MLFLOW_START_TIMEOUT_S (0.5 s) for the run
        if tracker.run_id:
            child_env["MLFLOW_RUN_ID"] = tracker.run_id
        # A `trial_run` in CMD writes what it adds to a spool that this process sends: it never
        # opens a second run, whether or not the run was open when CMD started.
        import tempfile

        fd, spool_file = tempfile.mkstemp(prefix="launch-mlflow-spool-", suffix=".jsonl")
        os.close(fd)
        child_env[ENV_SPOOL] = spool_file
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
        if spool_file:
            from pathlib import Path

            added = read_spool(Path(spool_file))
            with suppress(OSError):
                os.unlink(spool_file)
            tracker.add_params(added["params"])  # the typed config wins over the flag text
            tracker.add_tags(added["tags"])
            tracker.add_metrics(added["metrics"])
            for path in added["artifacts"]:
                tracker.add_artifact(path)
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


def _mlflow_hint() -> str:
    """How to add MLflow to this copy of launch (the PyPI name `launch` is another package)."""
    from launch import install

    return install.extra_hint("mlflow")
