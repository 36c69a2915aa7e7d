"""A local trial's processes, found and ended as one, and its exit status kept on disk.

A trial runs in its own session, but its processes may leave it: a child that calls `setsid()`
(daemonising data loaders, servers) is out of reach of `killpg`, and one whose parent died is
reparented to init. Every trial process inherits `LAUNCH_TRIAL_TOKEN`, so a scan of /proc for it
finds them wherever they went; a walk of the process tree adds children that cleared their
environment while their parent lives. We chose this over a cgroup (needs systemd delegation or
root, not on a laptop) and a child subreaper (it only catches orphans, and makes the coordinator
reap what it did not start). Linux reads /proc; elsewhere only the process group is signalled.

The trial's parent is a small `sh` that writes the trainer's exit status to a file before it
exits, so a coordinator that was dead when the trial ended still learns how it ended.
Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

TOKEN_VAR = "LAUNCH_TRIAL_TOKEN"
EXIT_FILE = "exit_status"

# `$1` is the exit-status file, the rest the trial's argv. `trap :` keeps the shell alive through
# the SIGTERM/SIGINT/SIGHUP sent to the trial's group (caught, not ignored: the trainer still gets
# the default action), so it can write the status; then it ends the way the trainer did (same
# code, or the same signal for 129..159), so the coordinator sees what it always saw. The status
# file is private (umask 077 once the trainer, which keeps the user's umask, has ended).
_WRAPPER = (
    'f=$1; shift; trap : HUP INT TERM; "$@"; c=$?; umask 077; echo "$c" > "$f"; '
    'if [ "$c" -gt 128 ] && [ "$c" -lt 160 ]; then trap - HUP INT TERM; kill -$((c - 128)) $$; fi; '
    'exit "$c"'
)


def wrapped_argv(argv: Sequence[str], exit_file: Path) -> list[str]:
    """`argv` run under the status-keeping shell (`launch-trial` is its `$0` in messages)."""
    return ["/bin/sh", "-c", _WRAPPER, "launch-trial", str(exit_file), *argv]


def read_exit_status(exit_file: Path) -> int | None:
    """The exit code the wrapper recorded (128+N for signal N), or None if it wrote none."""
    try:
        text = exit_file.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    # A whole line only: a shell killed mid-write leaves an empty or partial file.
    if not text.endswith("\n") or not text.strip().isdigit():
        return None
    return int(text.strip())


def token_for(trial_dir: Path) -> str:
    """The trial's marker: stable across coordinators (a resumed one finds the same processes)."""
    return hashlib.sha256(str(trial_dir.resolve()).encode()).hexdigest()[:24]


def start_time(pid: int) -> str | None:
    """The kernel's start time of a process, to tell a pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def is_running(pid: int | None, started: str | None) -> bool:
    """Whether `pid` is still the process that started at `started` and has not ended (a zombie
    nobody reaped, e.g. under a container's init, has ended)."""
    if not pid or not started or start_time(pid) != started:
        return False
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def members(token: str, leader: int | None = None) -> set[int]:
    """Live processes of a trial: those carrying its token, plus the leader's descendants."""
    marker = f"{TOKEN_VAR}={token}".encode()
    found: set[int] = set()
    children: dict[int, list[int]] = {}
    try:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return found
    for pid in pids:
        stat = _stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie: nothing left to signal
            continue
        children.setdefault(stat[1], []).append(pid)
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:  # another user's process, or it just ended
            continue
        if marker in environ.split(b"\0"):
            found.add(pid)
    stack = [leader] if leader else []
    while stack:
        pid = stack.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    found.discard(os.getpid())
    return found


def signal_trial(token: str, leader: int | None, sig: int) -> set[int]:
    """Send `sig` to the leader's process group and to every member; returns who got it."""
    if leader:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, sig)
    targets = members(token, leader)
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return targets


def end_trial(token: str, leader: int | None, *, grace_s: float) -> None:
    """SIGTERM the whole trial, SIGKILL whatever is left after `grace_s` (0: SIGKILL at once)."""
    if grace_s > 0 and signal_trial(token, leader, signal.SIGTERM):
        deadline = time.monotonic() + grace_s
        while members(token, leader) and time.monotonic() < deadline:
            time.sleep(0.05)
    signal_trial(token, leader, signal.SIGKILL)


# -- a trial killed from outside (the OOM killer, `kill -9`), which launch restarts -------------

# Signals that end a trainer from outside: the OOM killer's SIGKILL, a user's `kill`, a shutdown.
# A program's own crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, ...) is its failure, never restarted.
# The status shell reports a trainer that *exited* 128+N as killed by N (the code a shell gives
# a child it saw killed), so `bash train.sh` whose python was OOM-killed counts too.
OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGINT})


def outside_signal(returncode: int | None) -> int | None:
    """The signal that ended a trial whose return code is `returncode` when it is one sent from
    outside (OUTSIDE_SIGNALS), else None (an exit code, or the program's own crash)."""
    if returncode is None or returncode >= 0 or -returncode not in OUTSIDE_SIGNALS:
        return None
    return -returncode


def signal_name(signum: int) -> str:
    """`SIGKILL` for 9; `signal 64` for a number without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def oom_kills() -> int | None:
    """The `oom_kill` count of this process's cgroup (cgroup v2 `memory.events`; the trials run
    in it too), or None where it cannot be read. Cheap: two small files."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        path = next(line[3:] for line in lines if line.startswith("0::"))
        text = (Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, StopIteration, ValueError):
        return None
    return None


def kill_detail(signum: int, *, oom: bool | None = None) -> str:
    """`signal 9; out of memory?`, as in `killed by SIGKILL (signal 9; out of memory?)`. `oom`:
    whether the cgroup's oom_kill count rose meanwhile (None: unknown); the OOM killer is named
    only for SIGKILL, and only as a guess unless the count rose."""
    detail = f"signal {signum}"
    if signum == signal.SIGKILL:
        detail += (
            "; out of memory (the cgroup's oom_kill count rose)" if oom else "; out of memory?"
        )
    return detail


def cannot_start(program: str, *, cwd: Path, path: str | None) -> str | None:
    """Why `program` cannot be executed (as the shell would look it up), or None."""
    import shutil

    if "/" in program:
        full = cwd / program
        if not full.exists():
            return "No such file or directory"
        return None if os.access(full, os.X_OK) and full.is_file() else "Permission denied"
    return None if shutil.which(program, path=path) else "No such file or directory"
