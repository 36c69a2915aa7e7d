"""The process form of the trial wrapper: ``python -m launch.mlflow_wrapper -- CMD ...`` runs CMD
inside the trial's MLflow run (params from its flags, scalars of its ``--tensorboard_dir``,
signals forwarded, the run closed with its outcome) and exits with CMD's exit status."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from launch.mirror import ENV_SPOOL, read_spool
from launch.mlflow_tensorboard import _Mirror
from launch.mlflow_wrapper import (
    _ENV_WRAPPED,
    ENV_MIRROR_INTERVAL_S,
    _active,
    _env_float,
    _flag_params,
    _say,
    _settings,
    _short,
    _trial_tags,
    tensorboard_dir_from_argv,
)

if TYPE_CHECKING:
    from launch.mlflow_tracker import _Tracker

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
        from launch.mlflow_tracker import _Tracker  # not needed when the mirror makes the run

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
