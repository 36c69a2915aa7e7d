"""The local coordinator: runs one experiment's trials as subprocesses on this machine.

One coordinator per experiment (a kernel lock), trials started with the trial contract's argv and
env in a git worktree of the commit, GPU slices via CUDA_VISIBLE_DEVICES, every event appended to
the journal before it is reported. A killed coordinator is resumed by `launch watch`: finished
trials are kept, trials that were running are marked Killed and their parameters run again.
A trial killed by a signal launch did not send (the OOM killer, `kill -9`) is started again in
place, up to the experiment's `retries` (`trial_restarted` in the journal; see `_finish`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import contract, mirror, private, processes, state
from launch.errors import LaunchError
from launch.local import (
    CHECKPOINT_DIR,
    RESTART_VAR,
    LocalExperiment,
    last_line,
    start_mirror,
    trial_env,
)
from launch.spec import LaunchSpec

Reporter = Callable[[dict[str, Any]], None]

DEFAULT_GRACE_S = 10.0
# Kept free on the state's filesystem, so a full disk still lets the coordinator stop trials and
# journal why (each event is a few hundred bytes).
RESERVE_BYTES = 64 * 1024


# --------------------------------------------------------------------------- GPUs
@dataclass
class _Running:
    record: state.TrialRecord
    proc: subprocess.Popen[bytes]
    handle: int
    gpus: list[str]
    tb_dir: Path
    token: str
    fd: int | None = None
    deadline: float | None = None  # --trial-timeout, monotonic
    kill_at: float | None = None  # SIGTERM sent (timeout): SIGKILL at this time
    killed: bool = False  # SIGKILL sent: nothing left to do but wait for the exit
    argv: list[str] = field(default_factory=list)  # what a restart runs again
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0  # times killed from outside and started again
    oom_kills: int | None = None  # the cgroup's oom_kill count when this attempt started


class Coordinator:
    """Runs (or resumes) one local experiment until it ends, is interrupted, or is cancelled.

    `deadline_s` (--timeout) stops the sweep after that many seconds, resumable like Ctrl-C;
    `--trial-timeout` (kept in experiment.json) fails a trial that runs longer.
    """

    def __init__(
        self,
        exp: state.Experiment,
        *,
        report: Reporter = lambda event: None,
        grace_s: float = DEFAULT_GRACE_S,
        base_env: Mapping[str, str] | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.exp = exp
        self.job = LocalExperiment.load(exp, migrate=True)  # --env values: `env.json`
        self.report = report
        self.grace_s = grace_s
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.running: dict[str, _Running] = {}
        self._stop: str | None = None  # experiment status to end with, once asked to stop
        self._stop_reason = ""
        self._pidfds = True
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.deadline_s = deadline_s
        self.timed_out = False
        timeout = self.job.extra.get("trial_timeout_s")
        self.trial_timeout_s = float(timeout) if timeout else None
        self.mirror: mirror.MirrorProcess | None = None
        self.tracking = mirror.enabled({**self.base_env, **self.job.env})

    # -- journal + report in one place, journal first ------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        self.exp.append(event)
        if event.get("event") == "trial_finished":
            # What the trainer wrote with the user's umask: private, as the rest of the state.
            with contextlib.suppress(OSError):
                private.tighten_tree(self.exp.trial_dir(event["trial"]))
            self._poke_mirror()
        try:
            self.report({"t": time.time(), **event})
        except (OSError, ValueError):
            # stdout/stderr closed (`launch ... | head`): narration stops, the sweep goes on.
            self.report = _silent

    def _note(self, text: str) -> None:
        """A warning for whoever watches (not journaled: it is about this run, not the sweep)."""
        try:
            self.report({"t": time.time(), "event": "note", "level": "warn", "text": text})
        except (OSError, ValueError):
            self.report = _silent

    def run(self) -> str:
        """Run to the end; returns the experiment's final status."""
        self.exp.make_private()  # an older launch's state was 0755/0644
        with self.exp.coordinator_lock(), self._signals() as wakeup:
            reserve = self.exp.path / ".reserve"
            _reserve(reserve)
            try:
                return self._run(wakeup)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    self._abort(f"launch stopped: {exc}")
                    raise
                with contextlib.suppress(OSError):
                    reserve.unlink()  # room for the last events
                self._abort(f"disk full ({exc.filename or self.exp.path})")
                raise LaunchError(
                    f"the disk holding {self.exp.path} is full; running trials were stopped",
                    hint=f"free some space, then resume with `launch watch {self.exp.name}`",
                ) from None
            except BaseException as exc:
                self._abort(f"launch stopped: {type(exc).__name__}: {exc}")
                raise

    def _abort(self, reason: str) -> None:
        """After an error in the loop: stop every trial and journal why, as far as the disk lets."""
        self._stop, self._stop_reason = state.EXP_INTERRUPTED, reason
        with contextlib.suppress(Exception):
            self._stop_all(None)
        with contextlib.suppress(Exception):
            self._emit({"event": "experiment", "status": state.EXP_INTERRUPTED, "reason": reason})

    @contextlib.contextmanager
    def _signals(self) -> Any:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)

        def stop(signum: int, _frame: Any) -> None:
            self._stop = state.EXP_INTERRUPTED if signum == signal.SIGINT else state.EXP_CANCELLED

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        try:
            yield read_fd
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(read_fd)
            os.close(write_fd)

    def _run(self, wakeup: int) -> str:
        from launch.sampling import make_suggester

        job, spec = self.job, self.job.spec
        current = self.exp.state()
        if current.status in (state.EXP_SUCCEEDED, state.EXP_FAILED, state.EXP_CANCELLED):
            return current.status
        self.reap_orphans(current)
        trials = sorted(self.exp.state().trials.values(), key=lambda r: r.number)
        # Finished trials are history; Killed ones (Ctrl-C, cancel, a lost coordinator) run again.
        suggester = make_suggester(spec, trials, seed_flag=job.seed_flag)
        finished = [
            r for r in trials if r.status in state.FINISHED_STATES and r.status != state.KILLED
        ]
        number = max((r.number for r in trials), default=0)
        tally = _Tally(job, finished)
        free = [list(s) for s in job.gpu_slices]
        self._emit({"event": "experiment", "status": state.EXP_RUNNING, "resumed": bool(trials)})
        self._start_mirror()

        selector = selectors.DefaultSelector()
        selector.register(wakeup, selectors.EVENT_READ, None)
        try:
            while True:
                self._check_deadlines()
                # Start trials while there is room, trials left and no reason to stop.
                while (
                    self._stop is None
                    and tally.end_status is None
                    and len(self.running) < job.parallel
                    and tally.counted + len(self.running) < job.max_trials
                ):
                    asked = suggester.ask()
                    if asked is None:
                        break
                    handle, params, retry_of = asked
                    number += 1
                    gpus = free.pop(0) if job.gpus_per_trial else []
                    started = self._start(number, params, handle, gpus, retry_of, selector)
                    if started is not None:  # it could not even start
                        free.extend([gpus] if gpus else [])
                        suggester.tell(handle, tally.add(started))
                if not self.running:
                    break
                if self._stop is not None:
                    self._stop_all(selector)
                    break
                # pidfds make select() return the moment a trial exits; poll() covers old kernels.
                for key, _ in selector.select(timeout=self._wait_s()):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wakeup, 512)
                for name in [
                    name for name, run in self.running.items() if run.proc.poll() is not None
                ]:
                    run = self.running[name]
                    self._forget_fd(run, selector)
                    record = self._finish(run, selector)
                    if record is None:  # killed from outside and started again: still running
                        continue
                    # Only once journaled: if that fails (disk full), _abort still knows the trial.
                    del self.running[name]
                    free.extend([run.gpus] if run.gpus else [])
                    suggester.tell(run.handle, tally.add(record))
        finally:
            selector.close()
        if self._stop is not None:
            status = self._stop
            reason = self._stop_reason or (
                "interrupted (Ctrl-C)" if status == state.EXP_INTERRUPTED else "cancelled"
            )
        elif tally.end_status is not None:
            status, reason = tally.end_status, tally.end_reason
        elif tally.succeeded:
            status, reason = (
                state.EXP_SUCCEEDED,
                f"{tally.counted} trials finished (maxTrialCount {job.max_trials})",
            )
        else:
            status, reason = state.EXP_FAILED, f"none of {tally.counted} trials succeeded"
        self._emit({"event": "experiment", "status": status, "reason": reason})
        self._finish_mirror(interrupted=self._stop is not None)
        return status

    # -- MLflow: one mirror child per sweep (launch.mirror); never fatal, never in this process

    def _start_mirror(self) -> None:
        try:
            self.mirror = start_mirror(self.exp, self.job, self.base_env) if self.tracking else None
        except Exception as exc:  # tracking must never stop a sweep
            self._note(f"MLflow mirror not started: {exc}")
            self.mirror = None

    def _poke_mirror(self) -> None:
        if self.mirror is not None:
            with contextlib.suppress(Exception):
                self.mirror.poke()

    def _finish_mirror(self, *, interrupted: bool) -> None:
        if self.mirror is None:
            return
        wait = mirror.wait_seconds(self.base_env)
        try:
            self.mirror.finish(min(wait, 10.0) if interrupted else wait)
        except Exception as exc:
            self._note(f"MLflow mirror: {exc}")
        self.mirror = None

    def _check_deadlines(self) -> None:
        """--timeout stops the sweep (resumable); --trial-timeout ends one trial's processes."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline and self._stop is None:
            self._stop, self.timed_out = state.EXP_INTERRUPTED, True
            self._stop_reason = f"timed out after {_seconds(self.deadline_s or 0)} (--timeout)"
        for run in self.running.values():
            if run.deadline is not None and now >= run.deadline and run.kill_at is None:
                processes.signal_trial(run.token, run.proc.pid, signal.SIGTERM)
                run.kill_at = now + self.grace_s
            elif run.kill_at is not None and now >= run.kill_at and not run.killed:
                run.killed = True
                processes.signal_trial(run.token, run.proc.pid, signal.SIGKILL)

    def _wait_s(self) -> float:
        """How long select() may sleep: until the next deadline, at most 1 s (0.05 without pidfds)."""
        wait = 1.0 if self._pidfds else 0.05
        now = time.monotonic()
        times = [self.deadline] + [
            r.kill_at or r.deadline for r in self.running.values() if not r.killed
        ]
        for moment in times:
            if moment is not None:
                wait = min(wait, max(0.0, moment - now))
        return wait

    def reap_orphans(self, current: state.JournalState | None = None) -> None:
        """Trials a dead coordinator left Running. One that ended meanwhile is finished from the
        exit status its shell kept and its event files (never run twice); one still running is
        stopped with everything it started (same pid *and* start time, so a reused pid is never
        hit) and marked Killed, and `_run` runs its parameters again."""
        current = current or self.exp.state()
        for record in sorted(current.trials.values(), key=lambda r: r.number):
            if record.status != state.RUNNING:
                continue
            trial_dir = self.exp.trial_dir(record.name)
            alive = processes.is_running(record.pid, record.proc_start)
            code = None if alive else processes.read_exit_status(trial_dir / processes.EXIT_FILE)
            if code is not None:
                # The shell re-raised a trainer's signal N as 128+N (see processes._WRAPPER).
                record.exit_code = -(code - 128) if 128 < code < 160 else code
                self._record_end(
                    record, trial_dir / "tfevent", ended_while="launch was not running"
                )
                continue
            processes.end_trial(
                processes.token_for(trial_dir), record.pid if alive else None, grace_s=0
            )
            self._emit(
                {
                    "event": "trial_finished",
                    "trial": record.name,
                    "status": state.KILLED,
                    "reason": "its coordinator stopped; run again",
                }
            )

    def _start(
        self,
        number: int,
        params: dict[str, Any],
        handle: int,
        gpus: list[str],
        retry_of: str | None,
        selector: selectors.BaseSelector,
    ) -> state.TrialRecord | None:
        """Start one trial; a trial whose program cannot start comes back finished (Failed)."""
        job = self.job
        name = f"{job.name}-{number:04d}"
        trial_dir = self.exp.trial_dir(name)
        if trial_dir.exists():
            # Left by a coordinator killed between creating it and journaling: keep it aside.
            trial_dir.rename(trial_dir.with_name(f"{name}.stale-{int(time.time())}"))
        tb_dir = trial_dir / "tfevent"
        private.mkdir(tb_dir, parents=True)
        checkpoints = trial_dir / CHECKPOINT_DIR  # kept across restarts (LAUNCH_CHECKPOINT_DIR)
        private.mkdir(checkpoints)
        argv = contract.trial_argv(
            job.command, contract.merge_params(job.spec.fixed, params), str(tb_dir)
        )
        # Journal the trial before its process exists, so a crash can never leave an unknown one.
        self._emit({"event": "trial_started", "trial": name, "number": number, "params": params,
                    "argv": argv, "gpus": ",".join(gpus), "retry_of": retry_of})  # fmt: skip
        env = trial_env(self.base_env, job, name, gpus, restarts=0, checkpoint_dir=checkpoints)
        if self.tracking:  # what the trial's `trial_run` adds, for the mirror (no MLflow in it)
            env[mirror.ENV_SPOOL] = str(trial_dir / mirror.SPOOL_NAME)
        token = processes.token_for(trial_dir)
        env[processes.TOKEN_VAR] = token
        problem = processes.cannot_start(argv[0], cwd=job.workdir, path=env.get("PATH"))
        with open(
            private.open_file(trial_dir / "output.log", os.O_WRONLY | os.O_TRUNC), "wb"
        ) as log:
            if problem is None:
                try:
                    proc = self._popen(argv, env, trial_dir, log)
                except OSError as exc:
                    problem = exc.strerror or str(exc)
            if problem is not None:
                # A missing program fails like a trial that exits 127, visible in its log and status.
                reason = f"cannot start {argv[0]!r}: {problem}"
                log.write(f"launch: {reason}\n".encode())
        if problem is not None:
            self._emit({"event": "trial_finished", "trial": name, "status": state.FAILED, "exit_code": 127,
                        "reason": reason})  # fmt: skip
            return state.TrialRecord(
                name, number, params, status=state.FAILED, exit_code=127, reason=reason
            )
        # Known before it is journaled as running: if that write fails, _abort still stops it.
        run = _Running(
            state.TrialRecord(name=name, number=number, params=params),
            proc, handle, gpus, tb_dir, token,
            deadline=None if self.trial_timeout_s is None else time.monotonic() + self.trial_timeout_s,
            argv=argv, env=env, oom_kills=processes.oom_kills(),
        )  # fmt: skip
        self.running[name] = run
        self._watch(run, selector)
        return None

    def _popen(
        self, argv: list[str], env: dict[str, str], trial_dir: Path, log: Any
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            processes.wrapped_argv(argv, trial_dir / processes.EXIT_FILE),
            cwd=self.job.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: Ctrl-C reaches us, we stop it
        )

    def _watch(self, run: _Running, selector: selectors.BaseSelector) -> None:
        """Wait on the trial's new process (a pidfd), and journal it as running."""
        try:
            run.fd = os.pidfd_open(run.proc.pid)
        except (AttributeError, OSError):  # pragma: no cover - kernels before 5.3
            run.fd, self._pidfds = None, False
        if run.fd is not None:
            selector.register(run.fd, selectors.EVENT_READ, run.record.name)
        self._emit(
            {
                "event": "trial_running",
                "trial": run.record.name,
                "pid": run.proc.pid,
                "proc_start": processes.start_time(run.proc.pid),
            }
        )

    def _finish(
        self, run: _Running, selector: selectors.BaseSelector | None = None
    ) -> state.TrialRecord | None:
        """Record an ended trial; None when it was killed from outside and started again in
        place (only with a `selector` to wait on it, and while the sweep is not stopping)."""
        code = run.proc.wait()
        # What the trainer left behind (a setsid daemon, a data loader) ends with it, as the
        # container's processes do on the cluster. Before any restart: it carries the same token.
        processes.end_trial(run.token, None, grace_s=0)
        run.record.exit_code = code
        if run.kill_at is not None and self.trial_timeout_s is not None:
            timed_out = f"timed out after {_seconds(self.trial_timeout_s)} (--trial-timeout)"
            return self._record_end(run.record, run.tb_dir, failure=timed_out)
        signum = None if run.kill_at is not None else processes.outside_signal(code)
        if signum is None:
            return self._record_end(run.record, run.tb_dir)
        # Killed by a signal launch did not send (it sends only after Ctrl-C, cancel, timeouts).
        now = processes.oom_kills()
        oom = None if now is None or run.oom_kills is None else now > run.oom_kills
        detail = processes.kill_detail(signum, oom=oom)
        killed = f"killed by {processes.signal_name(signum)} ({detail})"
        if self._stop is not None:  # stopping: Killed, so a resumed sweep runs it again
            return self._record_killed(run, f"{killed}; run again")
        retry = run.restarts < self.job.retries
        if selector is not None and retry and self._restart(run, killed, selector):
            return None
        if run.restarts:
            killed = (
                f"killed by {processes.signal_name(signum)} {run.restarts + 1} times; "
                f"--retries {self.job.retries} exhausted ({detail})"
            )
        return self._record_end(run.record, run.tb_dir, failure=killed)

    def _restart(self, run: _Running, killed: str, selector: selectors.BaseSelector) -> bool:
        """Start a trial killed from outside again in place: same name, number, argv, event files
        and checkpoint directory, `LAUNCH_RESTART_COUNT` one more. False if it cannot start."""
        name, attempt = run.record.name, run.restarts + 1
        trial_dir = self.exp.trial_dir(name)
        env = {**run.env, RESTART_VAR: str(attempt)}
        with contextlib.suppress(OSError):
            (trial_dir / processes.EXIT_FILE).unlink()  # the last attempt's: not this one's
        # Reported as it is journaled (`events.from_journal`): live and on replay alike.
        self._emit({"event": "trial_restarted", "trial": name, "number": run.record.number,
                    "attempt": attempt, "retries": self.job.retries, "reason": killed})  # fmt: skip
        try:
            with open(
                private.open_file(trial_dir / "output.log", os.O_WRONLY | os.O_APPEND), "ab"
            ) as log:
                log.write(f"launch: {killed}; restarting ({attempt}/{self.job.retries})\n".encode())
                log.flush()
                proc = self._popen(run.argv, env, trial_dir, log)
        except OSError as exc:
            self._note(f"{name}: cannot restart: {exc}")
            return False
        run.proc, run.env, run.restarts, run.oom_kills = proc, env, attempt, processes.oom_kills()
        self._watch(run, selector)
        return True

    def _record_killed(self, run: _Running, reason: str) -> state.TrialRecord:
        run.record.status, run.record.reason = state.KILLED, reason
        self._emit({"event": "trial_finished", "trial": run.record.name, "status": state.KILLED,
                    "exit_code": run.proc.returncode, "reason": reason})  # fmt: skip
        return run.record

    def _record_end(
        self,
        record: state.TrialRecord,
        tb_dir: Path,
        *,
        failure: str | None = None,
        ended_while: str | None = None,
    ) -> state.TrialRecord:
        """Status, metrics and reason of an ended trial from its exit code and event files."""
        from launch import tfevents

        code = record.exit_code if record.exit_code is not None else 0
        spec = self.job.spec
        names = list(spec.objective.metric_names)
        result = tfevents.collect_metrics(
            tb_dir,
            names,
            {m: spec.objective.strategy(m) for m in names},  # type: ignore[misc]
        )
        objective = spec.objective.objectiveMetricName
        # Katib keeps nothing when the objective is missing; the table still shows what was found.
        record.metrics = {**result.other_values, **result.values}
        record.found_tags = list(result.found_tags)
        record.reason = ""
        if failure is not None:  # timed out, or killed from outside with no restart left
            record.status, record.reason = state.FAILED, failure
        elif code != 0:
            record.status = state.FAILED
            record.reason = (
                f"exit code {code}"
                if code > 0
                else f"killed by {processes.signal_name(-code)} ({processes.kill_detail(-code)})"
            )
            last = last_line(self.exp.trial_dir(record.name) / "output.log")
            if last:  # e.g. `ModuleNotFoundError: No module named 'draccus'`: the why, at once
                record.reason += f": {last}"
        elif objective not in result.values:
            record.status = state.METRICS_UNAVAILABLE
            record.reason = f"objective `{objective}` not found: {result.describe_missing()}"
        else:
            record.status = state.SUCCEEDED
        if ended_while:
            record.reason = "; ".join(filter(None, [record.reason, f"ended while {ended_while}"]))
        self._emit(
            {
                "event": "trial_finished",
                "trial": record.name,
                "status": record.status,
                "exit_code": code,
                "metrics": record.metrics,
                "found_tags": record.found_tags,
                "reason": record.reason,
            }
        )
        return record

    def _forget_fd(self, run: _Running, selector: selectors.BaseSelector | None) -> None:
        if run.fd is not None:
            if selector is not None:
                selector.unregister(run.fd)
            os.close(run.fd)
            run.fd = None

    def _stop_all(self, selector: selectors.BaseSelector | None) -> None:
        """SIGTERM every running trial (its whole process tree), SIGKILL what is left after the
        grace period; record Killed. A trial that had already ended is recorded as it ended."""
        for name, run in list(self.running.items()):
            if run.proc.poll() is not None:
                self._forget_fd(run, selector)
                self._finish(run)  # never restarted: the sweep is stopping
                del self.running[name]
        for run in self.running.values():
            processes.signal_trial(run.token, run.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for run in self.running.values():
            # The trainer's children may outlive it (SIGTERM ignored, setsid): wait for them too.
            while time.monotonic() < deadline and (
                run.proc.poll() is None or processes.members(run.token)
            ):
                time.sleep(0.05)
            processes.signal_trial(run.token, run.proc.pid, signal.SIGKILL)
            run.proc.wait()
        for name, run in list(self.running.items()):
            self._forget_fd(run, selector)
            self._emit(
                {
                    "event": "trial_finished",
                    "trial": name,
                    "status": state.KILLED,
                    "exit_code": run.proc.returncode,
                    "reason": self._stop_reason
                    or (
                        "stopped by Ctrl-C" if self._stop == state.EXP_INTERRUPTED else "cancelled"
                    ),
                }
            )
        self.running.clear()


def _silent(event: dict[str, Any]) -> None:
    """The reporter once the terminal is gone."""


def _reserve(path: Path) -> None:
    """Keep RESERVE_BYTES allocated at `path` (freed when the disk fills up)."""
    with contextlib.suppress(OSError):
        if not path.exists() or path.stat().st_size < RESERVE_BYTES:
            with open(private.open_file(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
                handle.write(b"\0" * RESERVE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())


def _seconds(value: float) -> str:
    """90 -> `90s`, 1800 -> `30m`, 7200 -> `2h` (as the flags are written)."""
    for unit, size in (("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


class _Tally:
    """Counts finished trials and decides when the experiment ends (Katib's rules)."""

    def __init__(self, job: LocalExperiment, finished: Sequence[state.TrialRecord]) -> None:
        self.job = job
        self.objective = job.spec.objective
        self.counted = self.failures = self.succeeded = 0
        self.best: float | None = None
        self.end_status: str | None = None
        self.end_reason = ""
        for record in finished:
            self.add(record)

    def add(self, record: state.TrialRecord) -> float | None:
        """Count one finished trial; returns its objective value (None unless Succeeded)."""
        self.counted += 1
        if record.status in (state.FAILED, state.METRICS_UNAVAILABLE):
            self.failures += 1
            # Katib: the experiment fails once failed >= maxFailedTrialCount (and failed != 0),
            # MetricsUnavailable included (pkg/controller.v1beta1/experiment/util/status_util.go).
            if self.failures >= max(self.job.max_failed, 1) and self.end_status is None:
                self.end_status = state.EXP_FAILED
                self.end_reason = (
                    f"{self.failures} trials failed (maxFailedTrialCount is {self.job.max_failed})"
                )
            return None
        value = record.metrics.get(self.objective.objectiveMetricName)
        if record.status != state.SUCCEEDED or value is None:
            return None
        self.succeeded += 1
        if self.best is None or _better(self.job.spec, value, self.best):
            self.best = value
        goal = self.objective.goal
        if (
            goal is not None
            and _reached(self.job.spec, self.best, goal)
            and self.end_status is None
        ):
            self.end_status = state.EXP_SUCCEEDED
            self.end_reason = f"objective goal {goal} reached ({self.objective.objectiveMetricName} = {self.best})"
        return value


def _better(spec: LaunchSpec, a: float, b: float) -> bool:
    return a < b if spec.objective.type == "minimize" else a > b


def _reached(spec: LaunchSpec, value: float, goal: float) -> bool:
    return value <= goal if spec.objective.type == "minimize" else value >= goal
