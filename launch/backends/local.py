"""The local backend: trials run as processes on this machine, driven by `launch.coordinator`
and recorded in the experiment's journal (`launch.state`)."""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from launch import state
from launch.backends.base import (
    SHOWN_TRIALS,
    Confirm,
    Created,
    Ending,
    LaunchRequest,
    Preview,
    Rerun,
    StatusReport,
    Until,
    more_trials,
)
from launch.backends.links import (
    best_doc,
    count_statuses,
    usage_doc,
    usage_lines,
    with_mlflow_links,
)
from launch.errors import UsageError
from launch.events import Event, ExperimentStatus, Sink, ignore, journal_sink, note
from launch.results import Trial
from launch.spec import LaunchSpec

ENDED = (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


class LocalBackend:
    name = "local"
    runs_here = True

    # ------------------------------------------------------------------ launching

    def _layout(self, request: LaunchRequest) -> tuple[str, Any, int, list[list[str]], Path]:
        """(name, counts, parallel trials, GPU slices, home) of a local launch; refuses what
        the local sampler cannot run."""
        import secrets

        from launch import local, names, sampling, spec

        sampling.check_local(request.spec)
        if request.resources.nodes > 1:
            raise UsageError(
                f"--nodes {request.resources.nodes}: the local backend runs each trial on this "
                "one machine",
                hint="run multi-node trials on the cluster (--backend katib); on one machine, "
                "put torchrun --nproc-per-node=N in front of your command instead",
            )
        counts = spec.resolve_counts(request.spec)
        parallel, slices = local.plan_slots(
            gpus_per_trial=request.gpus,
            visible=local.detect_gpus(os.environ),
            parallel=counts.parallel,
        )
        snap = request.snap
        if request.name is None:
            name = names.experiment_name(
                stem=snap.repo_name, commit=snap.commit, suffix=secrets.token_hex(2)
            )
        else:
            names.validate_experiment_name(request.name)
            name = request.name
        return name, counts, parallel, slices, state.home_dir(request.settings.home)

    def caveats(self, request: LaunchRequest) -> list[str]:
        from launch import sampling

        return list(sampling.local_caveats(request.spec))

    def preview(self, request: LaunchRequest) -> Preview:
        name, counts, parallel, slices, home = self._layout(request)
        snap = request.snap
        in_place = request.allow_dirty and not snap.clean
        trials_dir = state.experiments_dir(home) / name / "trials"
        lines, complete, exact = first_trials(
            request.spec, list(request.command), name=name, trials_dir=trials_dir,
            max_trials=counts.max_trials, seed_flag=request.settings.seed_flag,
        )  # fmt: skip
        where = snap.root if in_place else state.experiments_dir(home) / name / "worktree"
        doc = {
            "backend": "local", "name": name, "commit": snap.commit, "workdir": str(where / snap.subdir),
            "parallel": parallel, "maxTrialCount": counts.max_trials, "maxFailedTrialCount": counts.max_failed,
            "gpuSlices": slices, "trials": lines, "trialsComplete": complete, "trialsExact": exact,
        }  # fmt: skip
        if complete:
            what = "every trial, in order"
        elif exact:
            what = f"the first {len(lines)}, as random_state fixes them"
        else:
            what = f"a sample of {len(lines)}: the sampler picks again when it runs"
        from launch import preflight

        plan = preflight.plan(
            request.spec, seed_flag=request.settings.seed_flag,
            tensorboard_dir=str(trials_dir / f"{name}-0001" / "tfevent"),
        )  # fmt: skip
        doc["preflight"], said = preflight.describe(
            plan, request.command, enabled=request.preflight, where="in the worktree, before the first trial"
        )  # fmt: skip
        text = (
            f"# local experiment {name} at {snap.commit[:12]}, in {doc['workdir']}\n"
            f"# {counts.max_trials} trials, {parallel} at a time, stop after {counts.max_failed} failures\n"
            f"# trial command lines ({what}):\n"
            + "".join(f"{shlex.join(line)}\n" for line in lines[:SHOWN_TRIALS])
            + more_trials(len(lines), prefix="# ")
            + said
        )
        return Preview(doc=doc, text=text)

    def create(
        self, request: LaunchRequest, *, confirm: Confirm | None = None, sink: Sink | None = None
    ) -> Created:
        from launch import local

        name, counts, parallel, slices, home = self._layout(request)
        snap = request.snap
        in_place = request.allow_dirty and not snap.clean
        exp = local.create(
            home=home, name=name, spec=request.spec, command=request.command, snap=snap,
            in_place=in_place, gpus_per_trial=request.gpus, parallel=parallel, gpu_slices=slices,
            max_trials=counts.max_trials, max_failed=counts.max_failed, env=os.environ,
            seed_flag=request.settings.seed_flag, extra_env=dict(request.resources.env),
            trial_timeout_s=request.resources.trial_timeout_s, retries=request.resources.retries,
            extra_meta={"study": dict(request.study)} if request.study else None,
        )  # fmt: skip
        if request.preflight:
            try:
                _preflight(request, exp, sink or ignore)
            except BaseException:
                local.discard(exp)  # a refused launch leaves no experiment behind
                raise
        where = "in place (--allow-dirty)" if in_place else f"in a worktree of {snap.commit[:12]}"
        return Created(
            exp,
            summary=[
                f"experiment {name}: {counts.max_trials} trials, {parallel} at a time, {where}; "
                f"state in {exp.path}"
            ],
        )

    # ------------------------------------------------------------------ following

    def follow(
        self,
        exp: state.Experiment,
        sink: Sink,
        *,
        until: Until = "all",
        timeout_s: float | None = None,
    ) -> Ending:
        """Run the sweep here, or resume it, or (another process runs it) follow its journal.
        Locally a sweep always runs to its end: `until` applies to cluster runs only."""
        current = exp.state()
        if current.status in ENDED:
            return Ending("already-ended", current.status, current.reason)
        if exp.coordinator_pid() is None:
            if current.trials:
                sink(note(f"resuming {exp.name}"))
            return self._drive(exp, sink, timeout_s=timeout_s)
        return self._tail(exp, sink)

    def _drive(self, exp: state.Experiment, sink: Sink, *, timeout_s: float | None) -> Ending:
        from launch import coordinator, local

        local.ensure_worktree(exp)
        runner = coordinator.Coordinator(exp, report=journal_sink(sink), deadline_s=timeout_s)
        status = runner.run()
        if status in ENDED:
            local.cleanup(exp)
        if runner.timed_out:
            return Ending("timed-out", status)
        if status == ExperimentStatus.INTERRUPTED:
            return Ending("interrupted", status)
        return Ending("ended", status, exp.state().reason)

    def _tail(self, exp: state.Experiment, sink: Sink) -> Ending:
        report = journal_sink(sink)
        offset, final = 0, None
        while final is None:
            events, offset = exp.events(offset)
            for event in events:
                report(event)
                if event.get("event") == "experiment" and event.get("status") != state.EXP_RUNNING:
                    final = event["status"]
            if final is None and exp.coordinator_pid() is None:
                final = exp.state().status
                break
            time.sleep(0.2)
        return Ending("ended", final, exp.state().reason)

    # ------------------------------------------------------------------ reading

    def job(self, exp: state.Experiment) -> Any:
        from launch import local

        return local.LocalExperiment.from_meta(exp.meta())

    def trials(self, exp: state.Experiment) -> tuple[LaunchSpec, list[Trial]]:
        from launch import results

        job = self.job(exp)
        objective = job.spec.objective.objectiveMetricName
        gpus = int(job.gpus_per_trial or 0)
        rows = [results.from_local(r, objective, gpus=gpus) for r in exp.state().trials.values()]
        rows = results.rank(rows, minimize=job.spec.objective.type == "minimize")
        return job.spec, rows

    def links(self, exp: state.Experiment, rows: list[Trial]) -> tuple[list[Trial], str | None]:
        uri = exp.meta().get("tracking_uri")
        if not uri or not rows:
            return rows, None
        if exp.coordinator_pid() is None:
            # Trials a killed coordinator finished but did not mirror: write their runs now.
            from launch import local

            local.mirror_pending(exp, wait_s=60)
        return with_mlflow_links(exp.name, rows, uri=uri, ui_base=None)

    def status(self, exp: state.Experiment) -> StatusReport:
        current = exp.state()
        job = self.job(exp)
        _, rows = self.trials(exp)
        alive = exp.coordinator_pid()
        status = current.status
        if status == state.EXP_RUNNING and alive is None:
            status = state.EXP_INTERRUPTED
        counts = count_statuses(rows)
        best = next((r for r in rows if r.objective is not None), None)
        doc = {
            "name": exp.name, "backend": "local", "status": status, "reason": current.reason,
            "maxTrialCount": job.max_trials, "trials": counts, "coordinatorPid": alive,
            "best": best_doc(best), **usage_doc(rows),
        }  # fmt: skip
        footer = usage_lines(rows)
        if status == state.EXP_INTERRUPTED:
            footer.append(f"resume with: launch watch {exp.name}")
        return StatusReport(
            name=exp.name, status=status, reason=current.reason, counts=counts, best=best,
            objective=job.spec.objective.objectiveMetricName, title=exp.name,
            max_trials=job.max_trials, footer=footer, doc=doc,
        )  # fmt: skip

    def problems(self, exp: state.Experiment) -> str | None:
        return state.problems_warning(exp.name, exp.state().problems)

    def logs(
        self,
        exp: state.Experiment,
        trial: int | None,
        *,
        follow: bool,
        out: IO[bytes],
        say: Callable[[str], None],
        rank: int | None = None,
    ) -> None:
        if rank is not None:
            raise UsageError(
                f"--rank {rank}: {exp.name} ran on this machine, one process per trial",
                hint="--rank picks a node of a multi-node (--nodes) cluster trial",
            )
        record = _pick_trial(exp, trial)
        path = exp.trial_dir(record.name) / "output.log"
        say(f"== {record.name} ({record.status}) {path}")
        with path.open("rb") as handle:
            while True:
                chunk = handle.read(65536)
                if chunk:
                    out.write(chunk)
                    out.flush()
                    continue
                if not follow:
                    break
                current = exp.state().trials.get(record.name)
                if (
                    current is None
                    or current.status != state.RUNNING
                    or exp.coordinator_pid() is None
                ):
                    out.write(handle.read())
                    break
                time.sleep(0.2)

    def cancel(self, exp: state.Experiment) -> str:
        from launch import coordinator, local

        current = exp.state()
        if current.status in ENDED:
            return f"{exp.name} already ended: {current.status}"
        pid = exp.coordinator_pid()
        if pid and pid > 0:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + coordinator.DEFAULT_GRACE_S + 10
            while exp.coordinator_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        if exp.state().status != state.EXP_CANCELLED:
            # No coordinator (or it did not answer): stop leftovers and record the end ourselves.
            with exp.coordinator_lock():
                coordinator.Coordinator(exp).reap_orphans()
                exp.append(
                    {"event": "experiment", "status": state.EXP_CANCELLED, "reason": "cancelled"}
                )
        local.cleanup(exp)
        return f"cancelled {exp.name}; results kept: launch results {exp.name}"

    def rerun(self, exp: state.Experiment, row: Trial) -> Rerun:
        from launch import contract

        meta = exp.meta()
        spec, _ = self.trials(exp)
        root = meta.get("repo_root")
        workdir = meta.get("workdir", "")
        base = meta.get("worktree") or root or ""
        subdir = str(Path(workdir).relative_to(base)) if base and workdir.startswith(base) else ""
        command = contract.rerun_command(
            row, command=meta["command"], fixed=spec.fixed, commit=meta.get("commit"),
            repo_root=root, subdir="" if subdir == "." else subdir,
            # Each printed command gets its own worktree: a second rerun never collides.
            scratch=time.strftime("-%Y%m%d-%H%M%S-") + str(os.getpid()),
            argv=getattr(exp.state().trials.get(row.name), "argv", None),
        )  # fmt: skip
        return Rerun(command)


def _preflight(request: LaunchRequest, exp: state.Experiment, sink: Sink) -> None:
    """Run the program's config parsing on every flag set, in the trials' worktree and
    environment, before the first trial (`launch.preflight`); PreflightError on a problem."""
    from launch import local, preflight, preflight_local

    job = local.LocalExperiment.load(exp)
    first = exp.trial_dir(f"{exp.name}-0001") / "tfevent"
    plan = preflight.plan(
        request.spec, seed_flag=request.settings.seed_flag, tensorboard_dir=str(first)
    )
    sink(Event("progress", text=f"preflight: {shlex.join([*request.command, '--help'])}"))
    env = local.trial_env(os.environ, job, f"{exp.name}-preflight", None)
    outcome = preflight_local.run(
        plan, request.command, cwd=job.workdir, env=env, timeout_s=PREFLIGHT_TIMEOUT_S
    )
    verdict = preflight.verdict(
        request.spec, plan, outcome, command=request.command, timeout_s=PREFLIGHT_TIMEOUT_S
    )
    preflight.refuse(verdict, outcome.seconds)
    for warning in verdict.warnings:
        sink(note(f"preflight: {warning}", "warn"))
    sink(note(f"preflight: {verdict.summary}: no problems ({outcome.seconds:.1f}s)"))


# A program answers `--help` (or reaches its Draccus parse) in seconds; two minutes cover a slow
# import (torch, a cold disk) on a loaded machine.
PREFLIGHT_TIMEOUT_S = 120.0


def first_trials(
    spec: LaunchSpec, argv: list[str], *, name: str, trials_dir: Path, max_trials: int,
    seed_flag: str, sample_size: int = 5,
) -> tuple[list[list[str]], bool, bool]:  # fmt: skip
    """The argv of the first trials as the local sampler picks them: every one for a grid or a
    seed sweep (complete), else the first `sample_size` (exact when random_state fixes them)."""
    from launch import contract, sampling

    complete = spec.algorithm.algorithmName == "grid" or (spec.seeds and not spec.parameters)
    suggester = sampling.make_suggester(spec, [], seed_flag=seed_flag)
    lines = []
    for number in range(1, (max_trials if complete else min(sample_size, max_trials)) + 1):
        asked = suggester.ask()
        if asked is None:
            break
        _, params, _ = asked
        tb_dir = trials_dir / f"{name}-{number:04d}" / "tfevent"
        lines.append(
            contract.trial_argv(argv, contract.merge_params(spec.fixed, params), str(tb_dir))
        )
    exact = complete or len(lines) <= sampling.predictable_trials(spec)
    return lines, bool(complete), bool(exact)


def _pick_trial(exp: state.Experiment, trial: int | None) -> Any:
    trials = sorted(exp.state().trials.values(), key=lambda r: r.number)
    if not trials:
        raise UsageError(
            f"{exp.name} has no trials yet", hint=f"follow it with `launch watch {exp.name}`"
        )
    if trial is None:
        return trials[-1]
    for record in trials:
        if record.number == trial:
            return record
    raise UsageError(
        f"{exp.name} has no trial {trial}", hint=f"trials are numbered 1 to {trials[-1].number}"
    )
