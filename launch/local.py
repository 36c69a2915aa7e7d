"""A local experiment's setup and bookkeeping: GPU slots, its record, the trial environment,
its git worktree, and the MLflow mirror process; `launch.coordinator` runs the trials."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import contract, mirror, state
from launch.errors import UsageError
from launch.spec import LaunchSpec

# A trial killed from outside (the OOM killer, `kill -9`) runs again in place up to `retries`
# times (`launch.coordinator`); each attempt sees how many restarts came before it, and a
# directory of its own that every attempt of the trial shares, for its checkpoints.
DEFAULT_RETRIES = 3
RESTART_VAR = "LAUNCH_RESTART_COUNT"  # 0 on the first run of a trial, k on its k-th restart
CHECKPOINT_VAR = "LAUNCH_CHECKPOINT_DIR"  # <experiment>/trials/<trial>/checkpoints, kept
CHECKPOINT_DIR = "checkpoints"
# The values of `--env K=V`, kept apart from experiment.json (which any reader may show): only the
# names are in the record, the values in `<experiment>/env.json`, mode 0600 (a JSON object, name
# to value). A record from before it keeps `"env": {name: value}` inline, and is still read.
ENV_FILE = "env.json"


def detect_gpus(env: Mapping[str, str], *, nvidia_smi: str = "nvidia-smi") -> list[str]:
    """Visible GPU ids: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`, else none."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [item.strip() for item in visible.split(",") if item.strip()]
        return [] if ids in (["-1"], ["NoDevFiles"]) else ids
    try:
        out = subprocess.run(
            [nvidia_smi, "-L"], capture_output=True, text=True, timeout=20, env=dict(env)
        )
    except (FileNotFoundError, PermissionError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [
        str(i)
        for i, line in enumerate(ln for ln in out.stdout.splitlines() if ln.startswith("GPU "))
    ]


def plan_slots(
    *, gpus_per_trial: int, visible: Sequence[str], parallel: int
) -> tuple[int, list[list[str]]]:
    """(parallelism, GPU slices): never more trials at once than whole slices of the visible GPUs."""
    if gpus_per_trial == 0:
        return parallel, []
    if not visible:
        raise UsageError(
            f"--gpus {gpus_per_trial} asks for GPUs, but none are visible on this machine "
            "(no CUDA_VISIBLE_DEVICES, no nvidia-smi)",
            hint="pass --gpus 0 to run trials on the CPU",
        )
    if gpus_per_trial > len(visible):
        raise UsageError(
            f"--gpus {gpus_per_trial} per trial, but only {len(visible)} GPU(s) are visible: {','.join(visible)}",
            hint=f"pass --gpus {len(visible)} or fewer",
        )
    slices = [
        list(visible[i : i + gpus_per_trial])
        for i in range(0, len(visible) - gpus_per_trial + 1, gpus_per_trial)
    ]
    return min(parallel, len(slices)), slices


@dataclass
class LocalExperiment:
    """Everything experiment.json holds for the local backend."""

    name: str
    spec: LaunchSpec
    command: list[str]
    workdir: Path
    commit: str
    gpus_per_trial: int
    parallel: int
    max_trials: int
    max_failed: int
    tracking_uri: str
    seed_flag: str = "seed"
    gpu_slices: list[list[str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    retries: int = DEFAULT_RETRIES  # restarts of a trial killed from outside (older records: 3)
    # --env K=V: the values, in `ENV_FILE` (`load`); experiment.json keeps the names only.
    env: dict[str, str] = field(default_factory=dict)

    def to_meta(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "name": self.name,
            "spec": self.spec.model_dump(mode="json"),
            "command": self.command,
            "workdir": str(self.workdir),
            "commit": self.commit,
            "gpus_per_trial": self.gpus_per_trial,
            "parallel": self.parallel,
            "max_trials": self.max_trials,
            "max_failed": self.max_failed,
            "tracking_uri": self.tracking_uri,
            "seed_flag": self.seed_flag,
            "gpu_slices": self.gpu_slices,
            "retries": self.retries,
            "env": sorted(self.env),  # the names only: the values are in ENV_FILE
            **self.extra,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> LocalExperiment:
        known = {
            "backend", "name", "spec", "command", "workdir", "commit", "gpus_per_trial", "parallel",
            "max_trials", "max_failed", "tracking_uri", "seed_flag", "gpu_slices", "retries", "env",
        }  # fmt: skip
        retries = meta.get("retries", DEFAULT_RETRIES)
        inline = meta.get("env")  # a record from before ENV_FILE: the values themselves
        return cls(
            name=meta["name"],
            spec=LaunchSpec.model_validate(meta["spec"]),
            command=list(meta["command"]),
            workdir=Path(meta["workdir"]),
            commit=meta["commit"],
            gpus_per_trial=meta["gpus_per_trial"],
            parallel=meta["parallel"],
            max_trials=meta["max_trials"],
            max_failed=meta["max_failed"],
            tracking_uri=meta["tracking_uri"],
            seed_flag=meta.get("seed_flag", "seed"),
            gpu_slices=[list(s) for s in meta.get("gpu_slices", [])],
            retries=retries if isinstance(retries, int) and retries >= 0 else DEFAULT_RETRIES,
            env={str(k): str(v) for k, v in inline.items()} if isinstance(inline, dict) else {},
            extra={k: v for k, v in meta.items() if k not in known},
        )

    @classmethod
    def load(cls, exp: state.Experiment, *, migrate: bool = False) -> LocalExperiment:
        """The record of `exp` with its --env values: from `ENV_FILE` (or inline, in a record
        from before it; `migrate` moves them to `ENV_FILE`, leaving the names in the record).
        Raises StateError when the record names variables the file lacks."""
        meta = exp.meta()
        job = cls.from_meta(meta)
        names = meta.get("env")
        if migrate and isinstance(names, dict) and names:
            write_env(exp.path, job.env)
            state.write_json_atomic(exp.meta_path, {**meta, "env": sorted(job.env)})
            return job
        if isinstance(names, list) and names:
            values = read_env(exp.path)
            missing = [name for name in names if name not in values]
            if missing:
                raise state.StateError(
                    f"{exp.path / ENV_FILE} lacks the --env value of {', '.join(map(str, missing))}",
                    hint="it was removed or damaged; the trials would run without them",
                )
            job.env = {str(name): values[name] for name in names}
        return job


def read_env(exp_path: Path) -> dict[str, str]:
    """The --env values kept in `<exp_path>/ENV_FILE` ({} when it is missing or not an object)."""
    import json

    try:
        data = json.loads((exp_path / ENV_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def write_env(exp_path: Path, env: Mapping[str, str]) -> None:
    """Keep the --env values in `<exp_path>/ENV_FILE`, mode 0600 (`state.write_json_atomic`)."""
    state.write_json_atomic(exp_path / ENV_FILE, dict(env))


def trial_env(
    base: Mapping[str, str],
    job: LocalExperiment,
    trial: str,
    gpus: Sequence[str] | None,
    *,
    restarts: int | None = None,
    checkpoint_dir: Path | None = None,
) -> dict[str, str]:
    """The trial contract's environment (the same variables a Katib trial gets), plus, for a
    trial's process, `LAUNCH_RESTART_COUNT` (`restarts`) and `LAUNCH_CHECKPOINT_DIR`."""
    env = dict(base)
    env.update(job.env)  # --env K=V: the user's, under the contract's own
    env.update(
        contract.trial_env(
            trial=trial,
            experiment=job.name,
            namespace=contract.LOCAL_NAMESPACE,
            commit=job.commit,
            tracking_uri=job.tracking_uri,
        )
    )
    env["PYTHONUNBUFFERED"] = "1"  # so `launch logs -f` shows output as it happens
    # A trial sees exactly the GPUs it asked for, as on the cluster: none when --gpus 0.
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus or [])
    if restarts is not None:
        env[RESTART_VAR] = str(restarts)
    if checkpoint_dir is not None:
        env[CHECKPOINT_VAR] = str(checkpoint_dir)
    return env


def tracking_python(command: Sequence[str], *, frozen: bool, own: str) -> str | None:
    """The interpreter that prepares the MLflow store: the trials' own Python when the command
    starts with one (so the schema is the one their MLflow writes), else launch's own (`own`),
    except in the single-file build, which has no MLflow."""
    import shutil

    first = shutil.which(command[0]) if command else None
    if first and Path(first).name.startswith("python"):
        return first
    return None if frozen else own


def start_mirror(
    exp: state.Experiment,
    job: LocalExperiment,
    base_env: Mapping[str, str],
    *,
    quiet: bool = False,
) -> mirror.MirrorProcess | None:
    """Start the child that writes this experiment's MLflow runs (launch.mirror), in the trials'
    own Python (the store's schema is the one their MLflow writes). None when there is no Python
    to run it in, or the local store is broken (said once, with the fix)."""
    import sys

    from launch import tracking

    # In the trials' directory, as the trials resolve a relative store; the experiment's own
    # once the sweep has ended and its worktree is gone.
    cwd = job.workdir if job.workdir.is_dir() else exp.path
    store = tracking.sqlite_store_path(job.tracking_uri)
    if store is not None:
        if not store.is_absolute():
            store = cwd / store
        problem = tracking.local_store_problem(store) if os.path.lexists(store) else None
        if problem:
            if not quiet:  # the sweep said it once; `launch results` says it its own way
                _say(
                    f"warning: {problem}; no MLflow runs\nhint: {tracking.broken_store_hint(store)}\n"
                )
            return None
    python = tracking_python(
        job.command, frozen=bool(getattr(sys, "frozen", False)), own=sys.executable
    )
    if python is None:
        return None
    env = trial_env(base_env, job, f"{job.name}-mirror", None)
    return mirror.MirrorProcess.start(python, exp.path, cwd=cwd, env=env)


def mirror_pending(exp: state.Experiment, *, wait_s: float = 120.0) -> bool:
    """For a command that finds an experiment with finished trials that have no MLflow run yet
    (a coordinator killed before its mirror was done): write them now. True when there were
    some. Never raises."""
    try:
        if not mirror.pending(exp.path, exp.state().trials.values()):
            return False
        job = LocalExperiment.load(exp)
        env = dict(os.environ)
        if not mirror.enabled({**env, **job.env}):
            return False
        proc = start_mirror(exp, job, env, quiet=True)
        if proc is not None:
            proc.finish(wait_s)
        return True
    except Exception as exc:
        _say(f"warning: MLflow mirror: {exc}\n")
        return False


def _say(text: str) -> None:
    """A line on stderr, if anyone still reads it (a closed pipe never stops the sweep)."""
    import sys

    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(text)
        sys.stderr.flush()


def last_line(path: Path, *, limit: int = 200) -> str:
    """The last message of a log (at most `limit` characters), or "" when none: its last
    non-empty line, joined to the line it continues when indented (Draccus's
    `DecodingError: <field>: ...` is followed by a tab-indented `Underlying error is ...`, and
    the field's name is on the first line)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return ""
    message = [lines[-1].strip()]
    index = len(lines) - 1
    # A traceback's frames are indented too: stop at the first unindented line, and only a few up.
    while index > 0 and lines[index][:1].isspace() and len(message) < 4:
        index -= 1
        message.insert(0, lines[index].strip())
    if len(message) > 1 and lines[index][:1].isspace():
        message = message[-1:]  # no unindented head nearby: keep the last line alone
    return " ".join(message)[:limit]


def create(
    *,
    home: Path,
    name: str,
    spec: LaunchSpec,
    command: Sequence[str],
    snap: Any,
    in_place: bool,
    gpus_per_trial: int,
    parallel: int,
    gpu_slices: list[list[str]],
    max_trials: int,
    max_failed: int,
    env: Mapping[str, str],
    seed_flag: str = "seed",
    extra_env: Mapping[str, str] | None = None,
    trial_timeout_s: float | None = None,
    retries: int = DEFAULT_RETRIES,
    extra_meta: Mapping[str, Any] | None = None,
) -> state.Experiment:
    """Create the experiment directory, its worktree of the commit (or run in place) and metadata.

    On any failure nothing is left behind: the directory is removed again. `retries`: how many
    times a trial killed from outside (not by launch) is restarted in place.
    """
    if retries < 0:
        raise UsageError(f"--retries {retries}: must be 0 or more")
    import shutil

    from launch import git

    path = state.experiments_dir(home) / name
    worktree = None if in_place else path / "worktree"
    base = snap.root if worktree is None else worktree
    job = LocalExperiment(
        name=name,
        spec=spec,
        command=list(command),
        workdir=base / snap.subdir if snap.subdir else base,
        commit=snap.commit,
        gpus_per_trial=gpus_per_trial,
        parallel=parallel,
        max_trials=max_trials,
        max_failed=max_failed,
        tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        gpu_slices=gpu_slices,
        seed_flag=seed_flag,
        retries=retries,
        env=dict(extra_env or {}),
        extra={
            "repo_root": str(snap.root),
            "worktree": None if worktree is None else str(worktree),
            "branch": snap.branch,
            "created": time.time(),
            "trial_timeout_s": trial_timeout_s,
            **(extra_meta or {}),
        },
    )
    exp = state.Experiment.create(home, name, job.to_meta())
    try:
        write_env(exp.path, job.env)
        if worktree is not None:
            git.add_worktree(snap.root, snap.commit, worktree)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return exp


def ensure_worktree(exp: state.Experiment) -> None:
    """Before resuming: put back a worktree that was removed (its commit is still in the repo)."""
    from launch import git

    meta = exp.meta()
    worktree = meta.get("worktree")
    if worktree and not Path(worktree).is_dir():
        git.add_worktree(Path(meta["repo_root"]), meta["commit"], Path(worktree))


def cleanup(exp: state.Experiment) -> None:
    """After the experiment ended for good: remove its worktree (logs and events stay)."""
    from launch import git

    meta = exp.meta()
    worktree = meta.get("worktree")
    if worktree and Path(worktree).is_dir():
        with contextlib.suppress(Exception):
            git.remove_worktree(Path(meta["repo_root"]), Path(worktree))


def discard(exp: state.Experiment) -> None:
    """Remove an experiment that never ran (a refused launch): its worktree and directory."""
    import shutil

    cleanup(exp)
    shutil.rmtree(exp.path, ignore_errors=True)
