"""The local backend's MLflow mirror child (``serve_mirror``, started by ``launch.mirror``): every
finished trial of a sweep becomes its MLflow run, from its journal entry, event files and spool,
written with ``launch.mirror.SqliteWriter`` when the local store allows it, else MLflow's client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from launch.mlflow_client import (
    MAX_PARAMS_TAGS_PER_BATCH,
    _client,
    _experiment_id,
    _log_points,
    _quote,
)
from launch.mlflow_store import _BrokenStore, _ensure_local_store
from launch.mlflow_tensorboard import _Mirror
from launch.mlflow_wrapper import (
    _MAX_PARAM_LEN,
    _MAX_TAG_LEN,
    _flag_params,
    _mlflow_hint,
    _say,
    _short,
    _trial_tags,
)


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
    from launch import contract, mirror

    trial_dir = exp.trial_dir(rec.name)
    argv = list(rec.argv or [])
    env = contract.trial_env(
        experiment=str(meta["name"]), trial=rec.name, namespace=contract.LOCAL_NAMESPACE,
        commit=str(meta.get("commit") or ""),
    )  # fmt: skip
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
