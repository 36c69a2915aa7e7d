"""Preflight on this machine: `CMD --help` once, in the trials' directory and environment, with
the hook first on PYTHONPATH (`launch.preflight` says what is asked and judges the answer)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from launch import processes
from launch.preflight import MARKER, REQUEST_VAR, SITE_DIR, Outcome, Plan

OUTPUT_TAIL = 64 * 1024  # enough for any --help text, and a traceback


def site_dir() -> Path:
    """The directory that holds the hook's `sitecustomize.py` (inside the launch package)."""
    return Path(__file__).resolve().parent / SITE_DIR


def hook_source() -> str:
    """The hook's source, for a pod (its image has no launch)."""
    return (site_dir() / "sitecustomize.py").read_text(encoding="utf-8")


def run(
    plan: Plan,
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
) -> Outcome:
    """Run `command --help` with the hook and collect the answer; the process and everything it
    started are gone when this returns (also on Ctrl-C)."""
    start = time.monotonic()
    problem = processes.cannot_start(command[0], cwd=cwd, path=env.get("PATH"))
    if problem is not None:
        return Outcome(cannot_start=problem, seconds=time.monotonic() - start)
    with tempfile.TemporaryDirectory(prefix="launch-preflight-") as tmp:
        answer_path = Path(tmp) / "answer.json"
        log_path = Path(tmp) / "output.log"
        token = processes.token_for(Path(tmp))
        # One process, not a distributed job: a RANK inherited from a torchrun above would make
        # the hook leave the answer to a rank 0 that does not exist here.
        child_env = {k: v for k, v in env.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
        child_env[REQUEST_VAR] = plan.request(out=str(answer_path))
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(site_dir()), env.get("PYTHONPATH", "")) if p
        )
        child_env[processes.TOKEN_VAR] = token
        timed_out, returncode = False, None
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(
                    [*command, "--help"], cwd=cwd, env=child_env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as err:
                return Outcome(
                    cannot_start=err.strerror or str(err), seconds=time.monotonic() - start
                )
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Whatever it left running (a data loader, torchrun's workers) goes too.
                processes.end_trial(token, proc.pid, grace_s=2.0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        output = _tail(log_path)
        answer = _read_answer(answer_path)
    return Outcome(
        answer=answer,
        output=output,
        returncode=returncode,
        timed_out=timed_out and answer is None,
        seconds=time.monotonic() - start,
    )


def _read_answer(path: Path) -> dict[str, object] | None:
    import json

    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - OUTPUT_TAIL))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(line for line in text.splitlines() if not line.startswith(MARKER))
