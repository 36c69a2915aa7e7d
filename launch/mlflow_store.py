"""The local MLflow store: created atomically, checked before use, made ready before trials.

``create_local_store`` builds a ``sqlite:///`` store beside its final path and publishes it with
a hard link, so an interrupted creation never leaves a half-built store; ``_ensure_local_store``
creates a missing one or raises ``_BrokenStore`` (what is wrong, the fix) for a broken one;
``prepare`` makes the store and the experiment once, for the launcher, and never raises.
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from typing import Any

from launch.mlflow_client import _client, _experiment_id
from launch.mlflow_wrapper import _say, _short


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
    os.makedirs(directory, mode=0o700, exist_ok=True)  # the store is its user's alone
    tracking.remove_stale_store_temps(target)
    tmp = os.fspath(tracking.store_temp_path(target))
    leftovers = [tmp + suffix for suffix in ("", "-journal", "-wal", "-shm")]
    for name in leftovers:
        with suppress(FileNotFoundError):
            os.unlink(name)
    try:
        _build_store(tmp)
        os.chmod(tmp, 0o600)  # before it has its name: never readable by others
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
