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
it. ``LAUNCH_MLFLOW_DISABLE=1`` turns all of it off; so does a process of rank > 0 (``RANK`` or
``PET_NODE_RANK``: one run per trial, from rank 0), or running outside a trial with no
``MLFLOW_TRACKING_URI`` (a plain ``python train.py``), or without mlflow installed (one warning).

This module is the in-trial API (``trial_run``, ``TrialRun``) and what a run is made of (params,
tags, metric names); the rest lives in siblings it imports only when needed, so importing it costs
next to nothing: ``mlflow_client`` (MLflow access), ``mlflow_store`` (the local store,
``create_local_store``, ``prepare``), ``mlflow_tensorboard`` (scalars as metric points),
``mlflow_tracker`` (the background sync), ``mlflow_process`` (the process form, ``main``) and
``mlflow_mirror`` (the local backend's mirror child, ``serve_mirror``). Their public names are
still importable from here. Only these modules import ``mlflow`` (``mlflow-skinny`` is enough),
and only inside functions.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from launch import contract
from launch.mirror import ENV_SPOOL, Spool

if TYPE_CHECKING:
    from launch.mlflow_tracker import _Tracker

__all__ = [
    "ENV_BUDGET_S",
    "ENV_DISABLE",
    "ENV_MIRROR_INTERVAL_S",
    "ENV_START_TIMEOUT_S",
    "TrialRun",
    "flatten_params",
    "trial_run",
]

ENV_BUDGET_S = "LAUNCH_MLFLOW_BUDGET_S"  # total wait at the end for the last data (default 30)
ENV_START_TIMEOUT_S = "LAUNCH_MLFLOW_START_TIMEOUT_S"  # wait for the run to open (default 0.5)
ENV_MIRROR_INTERVAL_S = "LAUNCH_MLFLOW_MIRROR_INTERVAL_S"  # process form, 0 = only at the end
ENV_DISABLE = "LAUNCH_MLFLOW_DISABLE"
_ENV_WRAPPED = "LAUNCH_MLFLOW_WRAPPED"  # set by the process form for its child

_MAX_PARAM_LEN = 6000  # MLflow's limits
_MAX_TAG_LEN = 8000


# What moved to sibling modules, still importable from here: loaded on first use (PEP 562), so
# `import launch.mlflow_wrapper` in a trial costs what it did before the split.
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
        "katib.experiment": env.get(contract.ENV_EXPERIMENT_NAME, ""),
        "katib.trial": env.get(contract.ENV_TRIAL_NAME, ""),
        "katib.namespace": env.get(contract.ENV_NAMESPACE, ""),
        "katib.url": env.get(contract.ENV_KATIB_URL, ""),
        "mlflow.source.git.commit": env.get(contract.ENV_GIT_COMMIT, ""),
        "launch.image": env.get(contract.ENV_IMAGE, ""),
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


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


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
    # A multi-node or multi-process trial (torchrun sets RANK for each worker, the Kubeflow
    # Trainer PET_NODE_RANK for each node): only rank 0 has a run, so a trial has one.
    if any(env.get(key, "0") != "0" for key in ("RANK", "PET_NODE_RANK")):
        return False
    if not any(
        env.get(k) for k in (contract.ENV_TRIAL_NAME, contract.ENV_TRACKING_URI, "MLFLOW_RUN_ID")
    ):
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
        "tracking_uri": env.get(contract.ENV_TRACKING_URI) or None,
        "experiment": env.get(contract.ENV_MLFLOW_EXPERIMENT)
        or env.get(contract.ENV_EXPERIMENT_NAME)
        or "Default",
        "trial": env.get(contract.ENV_TRIAL_NAME) or None,
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
                from launch.mlflow_tensorboard import _Mirror

                try:  # scalars outside the trial's event directory: the mirror cannot see them
                    spool.add_metrics(_Mirror(os.fspath(tb)).collect())
                except Exception as exc:
                    _say(f"warning: reading TensorBoard files in {tb}: {_short(exc)}")
            spool.flush()
        return
    wrapped = bool(env.get(_ENV_WRAPPED)) and bool(env.get("MLFLOW_RUN_ID"))
    run_tags = {} if wrapped else _trial_tags(env, [sys.executable, *argv])
    run_tags.update(tags or {})
    from launch.mlflow_tensorboard import _Mirror
    from launch.mlflow_tracker import _Tracker

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


def _mlflow_hint() -> str:
    """How to add MLflow to this copy of launch (the PyPI name `launch` is another package)."""
    from launch import install

    return install.extra_hint("mlflow")


if __name__ == "__main__":
    from launch.mlflow_process import main as _main

    sys.exit(_main())
