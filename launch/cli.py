"""The `launch` command line (Typer): parses argv, prints; no Kubernetes logic.

Start-up matters (`launch --help` must stay near a bare Typer app), so everything beyond Typer is
imported inside the commands that need it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from launch.errors import ExitCode, LaunchError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 usage or search.yaml error, 3 git state refused "
    "(dirty/unpushed), 4 build failed, 5 trial or experiment failed, 6 timed out, "
    "130 detached by Ctrl-C (the experiment keeps running)."
)

app = typer.Typer(
    name="launch",
    help=(
        "Run a hyperparameter sweep of your training command, on Katib or on this machine.\n\n"
        "  launch --gpus 8 search.yaml -- python train.py\n\n"
        "builds the current commit into an image, submits a Katib Experiment whose trials run the "
        "command with the sampled hyperparameters as flags (--optim.lr=0.01 ...) plus "
        "--tensorboard_dir, and waits until the first trial succeeds. `launch SPEC -- CMD` is "
        "short for `launch run SPEC -- CMD`.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# Subcommands; anything else as the first word means `run` (see `main`).
COMMANDS = ("run", "render", "config", "list", "status", "watch", "logs", "results", "cancel")

_debug = False

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: LaunchError) -> NoReturn:
    err = _stderr()
    err.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"[bold cyan]hint:[/] {exc.hint}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(int(exc.exit_code))


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _stdout() -> Any:
    from rich.console import Console

    console = Console(soft_wrap=True)
    if not console.is_terminal:
        # A pipe or a file gets whole rows: never cut table cells to an assumed 80 columns.
        console = Console(soft_wrap=True, width=1000)
    return console


def _guard(func: F) -> F:
    """Turn LaunchError into `error:`/`hint:` + exit code; tracebacks only with --debug."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LaunchError as exc:
            if _debug:
                raise
            _fail(exc)
        except KeyboardInterrupt:
            _stderr().print("interrupted")
            raise typer.Exit(int(ExitCode.DETACHED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line, the traceback only with --debug
            if _debug:
                raise
            _fail(
                LaunchError(
                    f"unexpected {type(exc).__name__}: {exc}",
                    hint="run again with `launch --debug ...` for the traceback, and report it",
                )
            )

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    global _debug
    _debug = debug
    if version:
        from importlib.metadata import version as dist_version

        typer.echo(f"launch {dist_version('launch')}")
        raise typer.Exit(0)


SpecArg = Annotated[
    Path, typer.Argument(help="The search space: a search.yaml (Katib Experiment spec subset).")
]
CommandArg = Annotated[
    list[str] | None,
    typer.Argument(help="The training command, after `--`, e.g. `-- python train.py --epochs 3`."),
]
GpusOpt = Annotated[int, typer.Option("--gpus", min=0, help="GPUs per trial.")]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Kubernetes namespace.")
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name", help="Experiment name (DNS-1035, <= 40 chars); default: <repo>-<sha7>-<random>."
    ),
]
SeedsOpt = Annotated[
    int | None,
    typer.Option(
        "--seeds", min=1, help="Repeat each configuration over N seeds (passed as --seed=K)."
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="katib, local, or auto (katib when a cluster is configured)."),
]
AllowDirtyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-dirty", help="Launch uncommitted/unpushed work (image tagged by tree hash)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def _command_or_fail(command: list[str] | None) -> list[str]:
    if not command:
        raise UsageError(
            "no training command given",
            hint="put it after `--`, e.g. `launch search.yaml -- python train.py`",
        )
    return command


def _settings(*, namespace: str | None, backend: str | None) -> Any:
    from launch import config

    return config.load_settings({"namespace": namespace, "backend": backend})


def _prepare(
    spec_path: Path,
    command: list[str] | None,
    *,
    seeds: int | None,
    settings: Any,
    allow_dirty: bool,
    local: bool = False,
) -> tuple[Any, list[str], Any, Any]:
    """Every check that needs no cluster, in order: spec, command, git state.

    Local trials run the commit, so a local run refuses a dirty tree too but needs no push."""
    from launch import git, spec

    loaded = spec.apply_seeds(
        spec.load(str(spec_path)), seeds=seeds, seed_flag=settings["seed_flag"], local=local
    )
    argv = _command_or_fail(command)
    snap = git.snapshot()
    git.require_buildable(snap, allow_dirty=allow_dirty, require_pushed=not local)
    return settings, argv, loaded, snap


def _print_plan(plan: Any, *, as_json: bool) -> None:
    import json
    import shlex

    if as_json:
        doc = {
            "name": plan.name,
            "namespace": plan.namespace,
            "image": plan.image,
            "buildJob": plan.build_job,
            "experiment": plan.experiment,
            "trials": plan.trial_lines,
            "trialsComplete": plan.complete,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from launch import katib

    docs = [d for d in (plan.build_job, plan.experiment) if d is not None]
    out = "---\n".join(katib.to_yaml(doc) for doc in docs)
    what = "every trial" if plan.complete else f"a sample of {len(plan.trial_lines)} trials"
    out += f"# trial command lines ({what}):\n"
    out += "".join(f"#   {shlex.join(line)}\n" for line in plan.trial_lines)
    sys.stdout.write(out)


def _plan(
    settings: Any,
    argv: list[str],
    loaded: Any,
    snap: Any,
    *,
    name: str | None,
    gpus: int,
    allow_dirty: bool,
) -> Any:
    import getpass
    import secrets

    from launch import katib
    from launch.plan import GitFacts, make_plan

    tag = snap.commit
    if allow_dirty and not snap.clean:
        from launch import git

        tag = git.tree_hash(snap.root)
    facts = GitFacts(
        commit=tag,
        branch=snap.remote_branch or snap.branch,
        remote_url=snap.remote_url if snap.clean and snap.pushed else None,
        repo_name=snap.repo_name,
        subdir=snap.subdir,
    )
    if name is None:
        name = katib.experiment_name(stem=snap.repo_name, commit=tag, suffix=secrets.token_hex(2))
    else:
        katib.validate_experiment_name(name)
    return make_plan(
        spec=loaded,
        command=argv,
        git=facts,
        settings=settings,
        name=name,
        user=getpass.getuser(),
        gpus=gpus,
    )


@app.command(
    "render",
    help="Print the Kaniko build Job, the Katib Experiment and the trial command lines; touch nothing "
    "(same as `launch run --dry-run --backend katib`).",
)
@_guard
def render(
    spec_path: SpecArg,
    command: CommandArg = None,
    gpus: GpusOpt = 0,
    namespace: NamespaceOpt = None,
    name: NameOpt = None,
    seeds: SeedsOpt = None,
    allow_dirty: AllowDirtyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    settings = _settings(namespace=namespace, backend="katib")
    settings, argv, loaded, snap = _prepare(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty
    )
    _warn_coercions(loaded)
    _print_plan(
        _plan(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty),
        as_json=as_json,
    )


def _warn_coercions(loaded: Any) -> None:
    from launch import spec

    for warning in spec.coercion_warnings(loaded):
        _stderr().print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@app.command(
    "run",
    help="Run a sweep: `launch run [OPTIONS] SPEC -- CMD...` (the default command). "
    "Examples: `launch --gpus 8 search.yaml -- python train.py`; "
    "`launch --backend local --seeds 5 search.yaml -- python train.py`.",
)
@_guard
def run(
    spec_path: SpecArg,
    command: CommandArg = None,
    gpus: GpusOpt = 0,
    namespace: NamespaceOpt = None,
    name: NameOpt = None,
    seeds: SeedsOpt = None,
    backend: BackendOpt = None,
    allow_dirty: AllowDirtyOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be created and run; touch nothing.")
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    settings = _settings(namespace=namespace, backend=backend)
    chosen, why = settings.backend()
    settings, argv, loaded, snap = _prepare(
        spec_path,
        command,
        seeds=seeds,
        settings=settings,
        allow_dirty=allow_dirty,
        local=chosen == "local",
    )
    _warn_coercions(loaded)
    _stderr().print(f"backend: {chosen} ({why})", highlight=False)
    if chosen == "local":
        _run_local(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty,
                   dry_run=dry_run, as_json=as_json, quiet=quiet)  # fmt: skip
        return
    if dry_run:
        _print_plan(
            _plan(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty),
            as_json=as_json,
        )
        return
    raise UsageError(
        "the katib backend cannot submit experiments yet in this version",
        hint="use `--backend local`, or `launch render` to see the manifests",
    )


def _run_local(
    settings: Any, argv: list[str], loaded: Any, snap: Any, *, name: str | None, gpus: int,
    allow_dirty: bool, dry_run: bool, as_json: bool, quiet: bool,
) -> None:  # fmt: skip
    import os
    import secrets

    from launch import katib, local, sampling, spec, state

    sampling.check_local(loaded)
    counts = spec.resolve_counts(loaded)
    parallel, slices = local.plan_slots(
        gpus_per_trial=gpus, visible=local.detect_gpus(os.environ), parallel=counts.parallel
    )
    if name is None:
        name = katib.experiment_name(
            stem=snap.repo_name, commit=snap.commit, suffix=secrets.token_hex(2)
        )
    else:
        katib.validate_experiment_name(name)
    home = state.home_dir(settings["home"])
    in_place = allow_dirty and not snap.clean
    if dry_run:
        lines = katib.trial_command_lines(loaded, argv, seed_flag=settings["seed_flag"])
        where = snap.root if in_place else state.experiments_dir(home) / name / "worktree"
        plan = {
            "backend": "local", "name": name, "commit": snap.commit, "workdir": str(where / snap.subdir),
            "parallel": parallel, "maxTrialCount": counts.max_trials, "maxFailedTrialCount": counts.max_failed,
            "gpuSlices": slices, "trials": lines, "trialsComplete": loaded.algorithm.algorithmName == "grid",
        }  # fmt: skip
        if as_json:
            import json

            sys.stdout.write(json.dumps(plan, indent=2) + "\n")
            return
        import shlex

        out = sys.stdout
        out.write(f"# local experiment {name} at {snap.commit[:12]}, in {plan['workdir']}\n")
        out.write(
            f"# {counts.max_trials} trials, {parallel} at a time, stop after {counts.max_failed} failures\n"
        )
        what = "every trial" if plan["trialsComplete"] else f"a sample of {len(lines)} trials"
        out.write(f"# trial command lines ({what}; --tensorboard_dir is per trial):\n")
        out.writelines(f"{shlex.join(line)}\n" for line in lines)
        return
    exp = local.create(
        home=home, name=name, spec=loaded, command=argv, snap=snap, in_place=in_place,
        gpus_per_trial=gpus, parallel=parallel, gpu_slices=slices, max_trials=counts.max_trials,
        max_failed=counts.max_failed, env=os.environ, seed_flag=settings["seed_flag"],
    )  # fmt: skip
    where = "in place (--allow-dirty)" if in_place else f"in a worktree of {snap.commit[:12]}"
    _stderr().print(
        f"experiment {name}: {counts.max_trials} trials, {parallel} at a time, {where}; state in {exp.path}",
        highlight=False,
    )
    _drive_local(exp, quiet=quiet)


def _drive_local(exp: Any, *, quiet: bool) -> None:
    """Run or resume a local experiment in the foreground, then print its results."""
    from launch import local, state
    from launch.errors import ExitCode
    from launch.progress import Progress

    job = local.LocalExperiment.from_meta(exp.meta())
    progress = Progress(
        experiment=exp.name, objective=job.spec.objective.objectiveMetricName,
        minimize=job.spec.objective.type == "minimize", total=job.max_trials, quiet=quiet,
    )  # fmt: skip
    try:
        local.ensure_worktree(exp)
        status = local.Coordinator(exp, report=progress).run()
    finally:
        progress.close()
    if status in (state.EXP_SUCCEEDED, state.EXP_FAILED, state.EXP_CANCELLED):
        local.cleanup(exp)
    _print_results(exp, fmt="table")
    if status == state.EXP_INTERRUPTED:
        _stderr().print(f"interrupted; resume with: launch watch {exp.name}", highlight=False)
        raise typer.Exit(int(ExitCode.DETACHED))
    if status == state.EXP_CANCELLED:
        raise typer.Exit(int(ExitCode.DETACHED))
    if status == state.EXP_FAILED:
        raise typer.Exit(int(ExitCode.TRIAL_FAILED))


def _local_trials(exp: Any) -> tuple[Any, list[Any]]:
    from launch import local, results

    job = local.LocalExperiment.from_meta(exp.meta())
    objective = job.spec.objective.objectiveMetricName
    rows = [results.from_local(r, objective) for r in exp.state().trials.values()]
    return job, results.rank(rows, minimize=job.spec.objective.type == "minimize")


def _print_results(exp: Any, *, fmt: str) -> None:
    from launch import results

    job, rows = _local_trials(exp)
    objective = job.spec.objective.objectiveMetricName
    if fmt == "json":
        sys.stdout.write(results.to_json(rows) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(results.to_csv(rows, objective))
        return
    from rich.table import Table

    header, text_rows = results.to_rows(rows, objective, precise=False)
    # The table is for reading: start times and empty link columns live in --format csv/json.
    keep = [
        i
        for i, h in enumerate(header)
        if h != "start" and (h != "mlflow_run" or any(r[i] for r in text_rows))
    ]
    table = Table(
        *(header[i] for i in keep), box=None, title=f"{exp.name} (best first)", title_justify="left"
    )
    for row in text_rows:
        table.add_row(*(row[i] for i in keep))
    _stdout().print(table)


def _open_local(name: str) -> Any:
    from launch import config, state

    return state.Experiment.open(state.home_dir(config.load_settings()["home"]), name)


ExpArg = Annotated[str, typer.Argument(help="Experiment name (see `launch list`).")]


@app.command("list", help="List experiments (local ones in .launch/).")
@_guard
def list_cmd(as_json: JsonOpt = False) -> None:
    import json

    from launch import config, state

    home = state.home_dir(config.load_settings()["home"])
    items: list[dict[str, Any]] = []
    for name in state.list_names(home):
        exp = state.Experiment(state.experiments_dir(home) / name)
        current = exp.state()
        counts: dict[str, int] = {}
        for record in current.trials.values():
            counts[record.status] = counts.get(record.status, 0) + 1
        status = current.status
        if status == state.EXP_RUNNING and exp.coordinator_pid() is None:
            status = state.EXP_INTERRUPTED  # its coordinator died: `launch watch` resumes it
        items.append({"name": name, "backend": "local", "status": status, "trials": counts,
                      "created": exp.meta().get("created")})  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    if not items:
        _stderr().print(f"no experiments in {state.experiments_dir(home)}", highlight=False)
        return
    from rich.table import Table

    table = Table("name", "backend", "status", "trials", box=None)
    for item in items:
        trials = ", ".join(f"{n} {s.lower()}" for s, n in sorted(item["trials"].items()))
        table.add_row(item["name"], item["backend"], item["status"], trials)
    _stdout().print(table)


@app.command("status", help="Show an experiment's state, trial counts and best trial.")
@_guard
def status_cmd(experiment: ExpArg, as_json: JsonOpt = False) -> None:
    import json

    from launch import state

    exp = _open_local(experiment)
    current = exp.state()
    job, rows = _local_trials(exp)
    alive = exp.coordinator_pid()
    status = current.status
    if status == state.EXP_RUNNING and alive is None:
        status = state.EXP_INTERRUPTED
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    best = next((r for r in rows if r.objective is not None), None)
    doc = {
        "name": exp.name, "backend": "local", "status": status, "reason": current.reason,
        "maxTrialCount": job.max_trials, "trials": counts, "coordinatorPid": alive,
        "best": None if best is None else {"trial": best.name, "objective": best.objective, "params": dict(best.params)},
    }  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out = _stdout()
    out.print(
        f"{exp.name}: {status}" + (f" ({current.reason})" if current.reason else ""),
        highlight=False,
    )
    out.print("trials: " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none yet")
              + f" of {job.max_trials}", highlight=False)  # fmt: skip
    if best is not None:
        objective = job.spec.objective.objectiveMetricName
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        out.print(f"best: {best.name} {objective}={best.objective:.6g}  {params}", highlight=False)
    if status == state.EXP_INTERRUPTED:
        out.print(f"resume with: launch watch {exp.name}", highlight=False)


@app.command("watch", help="Follow an experiment until it ends; resumes an interrupted local one.")
@_guard
def watch_cmd(experiment: ExpArg, quiet: QuietOpt = False) -> None:
    from launch import local, state
    from launch.errors import ExitCode
    from launch.progress import Progress

    exp = _open_local(experiment)
    current = exp.state()
    if current.status in (state.EXP_SUCCEEDED, state.EXP_FAILED, state.EXP_CANCELLED):
        _stderr().print(
            f"{exp.name} already ended: {current.status} ({current.reason})", highlight=False
        )
        _print_results(exp, fmt="table")
        return
    if exp.coordinator_pid() is None:
        _stderr().print(f"resuming {exp.name}", highlight=False)
        _drive_local(exp, quiet=quiet)
        return
    # Another process runs it: follow its journal.
    import time

    job = local.LocalExperiment.from_meta(exp.meta())
    progress = Progress(
        experiment=exp.name, objective=job.spec.objective.objectiveMetricName,
        minimize=job.spec.objective.type == "minimize", total=job.max_trials, quiet=quiet,
    )  # fmt: skip
    offset, final = 0, None
    try:
        while final is None:
            events, offset = exp.events(offset)
            for event in events:
                progress(event)
                if event.get("event") == "experiment" and event.get("status") != state.EXP_RUNNING:
                    final = event["status"]
            if final is None and exp.coordinator_pid() is None:
                final = exp.state().status
                break
            time.sleep(0.2)
    finally:
        progress.close()
    _print_results(exp, fmt="table")
    if final == state.EXP_FAILED:
        raise typer.Exit(int(ExitCode.TRIAL_FAILED))


def _pick_trial(exp: Any, trial: int | None) -> Any:
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


@app.command(
    "logs", help="Print a trial's output (stdout and stderr); the latest trial by default."
)
@_guard
def logs_cmd(
    experiment: ExpArg,
    trial: Annotated[
        int | None, typer.Option("--trial", "-t", help="Trial number (see `launch results`).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the trial ends.")
    ] = False,
) -> None:
    import time

    from launch import state

    exp = _open_local(experiment)
    record = _pick_trial(exp, trial)
    path = exp.trial_dir(record.name) / "output.log"
    _stderr().print(f"== {record.name} ({record.status}) {path}", highlight=False)
    out = sys.stdout.buffer
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
            if current is None or current.status != state.RUNNING or exp.coordinator_pid() is None:
                out.write(handle.read())
                break
            time.sleep(0.2)


@app.command("results", help="Trial results, best first: table, CSV or JSON on stdout.")
@_guard
def results_cmd(
    experiment: ExpArg,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    as_json: JsonOpt = False,
) -> None:
    if fmt not in ("table", "csv", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table, csv or json")
    _print_results(_open_local(experiment), fmt="json" if as_json else fmt)


@app.command("cancel", help="Stop an experiment: running trials are stopped, results are kept.")
@_guard
def cancel_cmd(experiment: ExpArg) -> None:
    import os
    import signal
    import time

    from launch import local, state

    exp = _open_local(experiment)
    current = exp.state()
    if current.status in (state.EXP_SUCCEEDED, state.EXP_FAILED, state.EXP_CANCELLED):
        _stderr().print(f"{exp.name} already ended: {current.status}", highlight=False)
        return
    pid = exp.coordinator_pid()
    if pid and pid > 0:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + local.DEFAULT_GRACE_S + 10
        while exp.coordinator_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    if exp.state().status not in (state.EXP_CANCELLED,):
        # No coordinator (or it did not answer): stop leftovers and record the end ourselves.
        with exp.coordinator_lock():
            local.Coordinator(exp).reap_orphans()
            exp.append(
                {"event": "experiment", "status": state.EXP_CANCELLED, "reason": "cancelled"}
            )
    local.cleanup(exp)
    _stderr().print(
        f"cancelled {exp.name}; results kept: launch results {exp.name}", highlight=False
    )


@app.command("config", help="Show the effective settings and where each comes from.")
@_guard
def config_cmd(as_json: JsonOpt = False) -> None:
    import json

    from launch import config

    settings = config.load_settings()
    if as_json:
        doc = {k: {"value": settings.values[k], "source": settings.sources[k]} for k in config.KEYS}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("setting", "value", "source", "meaning", box=None)
    for key, meta in config.KEYS.items():
        value = settings.values[key]
        table.add_row(key, "" if value is None else str(value), settings.sources[key], meta.help)
    _stdout().print(table)
    chosen, why = settings.backend()
    _stderr().print(f"backend: {chosen} ({why})", highlight=False)


def _with_default_command(argv: list[str]) -> list[str]:
    """`launch [GLOBAL OPTS] SPEC -- CMD` means `launch run ...`: insert `run` before the first word
    that is not a subcommand (global options --debug/--version/--help stay in front)."""
    globals_ = {"--debug", "--version", "--help", "-h"}
    for index, word in enumerate(argv):
        if word in globals_:
            continue
        if word in COMMANDS:
            return argv
        return [*argv[:index], "run", *argv[index:]]
    return argv


def main() -> None:
    """Console-script entry point."""
    app(args=_with_default_command(sys.argv[1:]), prog_name="launch")
