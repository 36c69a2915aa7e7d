"""`launch run` (the default command) and `launch render`: check everything that needs no
cluster, then ask the chosen backend to preview, or create and follow, the experiment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from launch.cli.follow import follow_and_finish
from launch.cli.options import (
    AllowDirtyOpt,
    BackendOpt,
    BuildOpt,
    CommandArg,
    CpusOpt,
    EnvOpt,
    GpusOpt,
    JsonOpt,
    MemoryOpt,
    NameOpt,
    NamespaceOpt,
    NodeSelectorOpt,
    NoPreflightOpt,
    PriorityOpt,
    QueueOpt,
    QuietOpt,
    RetriesOpt,
    SecretEnvOpt,
    SeedsOpt,
    ShmOpt,
    SpecArg,
    TolerationOpt,
    TrialTimeoutOpt,
    VolumeOpt,
    duration,
    trial_resources,
)
from launch.cli.root import COMMANDS, app, guard, stderr, stdout
from launch.errors import UsageError
from launch.settings import Settings


def _request(
    spec_path: Path, command: list[str] | None, *, seeds: int | None, settings: Settings,
    allow_dirty: bool, local: bool, **fields: Any,
) -> Any:  # fmt: skip
    """Every check that needs no cluster, in order: spec, command, git state.

    Local trials run the commit, so a local run refuses a dirty tree too but needs no push."""
    from launch import git, spec
    from launch.backends.base import LaunchRequest

    sweep = spec.load_sweep(str(spec_path), seeds=seeds, seed_flag=settings.seed_flag, local=local)
    if not command:
        raise UsageError(
            "no training command given",
            hint="put it after `--`, e.g. `launch search.yaml -- python train.py`",
        )
    snap = git.snapshot()
    git.require_buildable(snap, allow_dirty=allow_dirty, require_pushed=not local)
    _warn_coercions(sweep.spec)
    return LaunchRequest(
        spec=sweep.spec, command=command, snap=snap, settings=settings,
        allow_dirty=allow_dirty, **fields,
    )  # fmt: skip


def _warn_coercions(loaded: Any) -> None:
    from launch import spec

    warnings = spec.coercion_warnings(loaded)
    if not warnings:
        return  # rich (markup, console) costs ~20 ms to import: only when there is something to say
    from rich.markup import escape

    for warning in warnings:
        stderr().print(f"[yellow]warning:[/] {escape(warning)}", markup=True, highlight=False)


def _print_preview(preview: Any, *, as_json: bool) -> None:
    import json

    if preview.warning:
        stderr().print(f"warning: {preview.warning}", highlight=False)
    sys.stdout.write(json.dumps(preview.doc, indent=2) + "\n" if as_json else preview.text)


def _settings(*, namespace: str | None, backend: str | None, build: str | None = None) -> Any:
    from launch import config

    return config.load_settings({"namespace": namespace, "backend": backend, "build": build})


@app.command(
    "render",
    help="Print the Kaniko build Job, the Katib Experiment and the trial command lines; touch nothing "
    "(same as `launch run --dry-run --backend katib`).",
)
@guard
def render(
    spec_path: SpecArg,
    command: CommandArg = None,
    gpus: GpusOpt = 0,
    namespace: NamespaceOpt = None,
    name: NameOpt = None,
    seeds: SeedsOpt = None,
    allow_dirty: AllowDirtyOpt = False,
    as_json: JsonOpt = False,
    cpus: CpusOpt = None,
    memory: MemoryOpt = None,
    shm_size: ShmOpt = None,
    env: EnvOpt = None,
    secret_env: SecretEnvOpt = None,
    volume: VolumeOpt = None,
    node_selector: NodeSelectorOpt = None,
    toleration: TolerationOpt = None,
    queue: QueueOpt = None,
    priority: PriorityOpt = None,
    trial_timeout: TrialTimeoutOpt = None,
    retries: RetriesOpt = None,
    no_preflight: NoPreflightOpt = False,
    build: BuildOpt = None,
) -> None:
    from launch import backends

    settings = _settings(namespace=namespace, backend="katib", build=build)
    request = _request(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty, local=False,
        name=name, gpus=gpus, preflight=not no_preflight,
        resources=trial_resources(
            settings, gpus=gpus, cpus=cpus, memory=memory, shm_size=shm_size, env=env, secret_env=secret_env,
            volume=volume, node_selector=node_selector, toleration=toleration, queue=queue,
            priority=priority, trial_timeout=trial_timeout, retries=retries,
        ),
    )  # fmt: skip
    _print_preview(backends.named("katib").preview(request), as_json=as_json)


@app.command(
    "run",
    help="Run a sweep: `launch run [OPTIONS] SPEC -- CMD...` (the default command). "
    "Examples: `launch --gpus 8 search.yaml -- python train.py`; "
    "`launch --backend local --seeds 5 search.yaml -- python train.py`.",
)
@guard
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
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Cluster: do not ask before launching (asked only on a terminal)."
        ),
    ] = False,
    wait: Annotated[
        str,
        typer.Option(
            "--wait", help="Cluster: return when the `first` trial succeeds, or when `all` finish."
        ),
    ] = "first",
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Cluster: return once the experiment is created.")
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="Stop waiting after this long (90s, 30m, 2h) and exit 6. Cluster: the experiment "
            "keeps running. Local: running trials are stopped; `launch watch` resumes the sweep.",
        ),
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Cluster: build the image even if the registry has it."),
    ] = False,
    dockerfile: Annotated[
        str, typer.Option("--dockerfile", help="Cluster: Dockerfile path, relative to --context.")
    ] = "Dockerfile",
    context_dir: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="Cluster: build context directory inside the repository (default: its root).",
        ),
    ] = None,
    cpus: CpusOpt = None,
    memory: MemoryOpt = None,
    shm_size: ShmOpt = None,
    env: EnvOpt = None,
    secret_env: SecretEnvOpt = None,
    volume: VolumeOpt = None,
    node_selector: NodeSelectorOpt = None,
    toleration: TolerationOpt = None,
    queue: QueueOpt = None,
    priority: PriorityOpt = None,
    trial_timeout: TrialTimeoutOpt = None,
    retries: RetriesOpt = None,
    no_preflight: NoPreflightOpt = False,
    build: BuildOpt = None,
) -> None:
    from launch import backends

    _refuse_mistyped_command(spec_path)
    if wait not in ("first", "all"):
        raise UsageError(
            f"--wait {wait}: expected first or all", hint="pass --wait first or --wait all"
        )
    timeout_s = duration(timeout, "--timeout") if timeout else None
    settings = _settings(namespace=namespace, backend=backend, build=build)
    chosen, why = settings.backend()
    chosen_backend = backends.named(chosen)
    request = _request(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty,
        local=chosen_backend.runs_here, name=name, gpus=gpus, rebuild=rebuild, dockerfile=dockerfile,
        context_dir=context_dir, preflight=not no_preflight,
        resources=trial_resources(
            settings, gpus=gpus, cpus=cpus, memory=memory, shm_size=shm_size, env=env, secret_env=secret_env,
            volume=volume, node_selector=node_selector, toleration=toleration, queue=queue,
            priority=priority, trial_timeout=trial_timeout, retries=retries,
        ),
    )  # fmt: skip
    stderr().print(f"backend: {chosen} ({why})", highlight=False)
    for caveat in chosen_backend.caveats(request):
        stderr().print(f"note: {caveat}", highlight=False)
    if dry_run:
        _print_preview(chosen_backend.preview(request), as_json=as_json)
        return
    ask = None
    if not yes and sys.stdin.isatty() and not chosen_backend.runs_here:
        ask = _confirm
    from launch.cli.follow import event_sink

    sink = event_sink(request, quiet=quiet)
    try:
        created = chosen_backend.create(request, confirm=ask, sink=sink)
    finally:
        sink.close()
    if created is None:
        stderr().print("nothing launched", highlight=False)
        return
    for line in created.summary:
        stderr().print(line, highlight=False)
    for line in created.links:
        stdout().print(line, highlight=False)
    if detach:
        stderr().print(
            f"detached; follow it with: launch watch {created.experiment.name}", highlight=False
        )
        return
    follow_and_finish(
        chosen_backend, created.experiment, quiet=quiet, until=wait, timeout_s=timeout_s,
        results=chosen_backend.runs_here,
    )  # fmt: skip


def _confirm(question: str) -> bool:
    return bool(typer.confirm(question, default=True, err=True))


def _refuse_mistyped_command(spec_path: Path) -> None:
    """`launch reslts EXP` is `launch run reslts EXP`: when no file has that name and the word is
    close to a subcommand, say which one was meant (exit 2) instead of `reslts: no such file`."""
    import difflib

    word = str(spec_path)
    if spec_path.exists() or "/" in word or "." in word:
        return
    close = difflib.get_close_matches(word.lower(), COMMANDS, n=1, cutoff=0.6)
    if close:
        raise UsageError(
            f"`{word}` is not a launch command (and no file is called {word})",
            hint=f"did you mean `launch {close[0]}`? (`launch --help` lists the commands)",
        )
