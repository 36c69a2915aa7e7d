"""`launch run` (the default command) and `launch render`: check everything that needs no
cluster, then ask the chosen backend to preview, or create and follow, the experiment."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from launch.cli.follow import follow_and_finish
from launch.cli.options import (
    AllowDirtyOpt,
    BackendOpt,
    BuildOpt,
    CheckpointDirOpt,
    CommandArg,
    CpusOpt,
    DetachOpt,
    EnvOpt,
    GpusOpt,
    JsonOpt,
    MemoryOpt,
    NameOpt,
    NamespaceOpt,
    NodeSelectorOpt,
    NodesOpt,
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
    WaitOpt,
    duration,
    trial_resources,
)
from launch.cli.root import COMMANDS, app, guard, stderr, stdout
from launch.errors import UsageError
from launch.settings import Settings

ThenSeedsOpt = Annotated[
    int | None,
    typer.Option(
        "--then-seeds",
        min=1,
        metavar="K",
        help="With --seeds N and an algorithm other than grid: run the search without seeds, "
        "then (while launch is watching) its K best configs x N seeds as a second experiment, "
        "`launch seeds EXP --top K --seeds N`. Without it, Katib runs the search and launch "
        "prints that command; a detached launch (--detach) never starts the second phase.",
    ),
]


def _request(
    spec_path: Path, command: list[str] | None, *, seeds: int | None, settings: Settings,
    allow_dirty: bool, local: bool, then_seeds: int | None = None, **fields: Any,
) -> tuple[Any, Then | None]:  # fmt: skip
    """Every check that needs no cluster, in order: spec, command, git state; and the seed study
    that follows the search, when there is one (`_then_plan`).

    Local trials run the commit, so a local run refuses a dirty tree too but needs no push."""
    import dataclasses

    from launch import git, spec
    from launch.backends.base import LaunchRequest

    sweep = spec.load_sweep(str(spec_path), seeds=seeds, seed_flag=settings.seed_flag, local=local)
    if then_seeds is not None and sweep.then_seeds is None and local:
        # --then-seeds locally: the search runs without seeds, its best configs with them after.
        deferred = spec.deferred_seeds(spec.load(str(spec_path)), seeds=seeds,
                                       seed_flag=settings.seed_flag)  # fmt: skip
        if deferred is not None:
            sweep = dataclasses.replace(sweep, spec=deferred[0], then_seeds=deferred[1])
    if not command:
        raise UsageError(
            "no training command given",
            hint="put it after `--`, e.g. `launch search.yaml -- python train.py`",
        )
    snap = git.snapshot()
    git.require_buildable(snap, allow_dirty=allow_dirty, require_pushed=not local)
    _warn_coercions(sweep.spec)
    request = LaunchRequest(
        spec=sweep.spec, command=command, snap=snap, settings=settings,
        allow_dirty=allow_dirty, **fields,
    )  # fmt: skip
    keep = ("gpus", "resources", "preflight", "rebuild", "dockerfile", "context_dir")
    study_fields = {"allow_dirty": allow_dirty, **{k: v for k, v in fields.items() if k in keep}}
    return request, _then_plan(sweep, then_seeds, study_fields)


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
    checkpoint_dir: CheckpointDirOpt = None,
    nodes: NodesOpt = None,
    no_preflight: NoPreflightOpt = False,
    build: BuildOpt = None,
    then_seeds: ThenSeedsOpt = None,
) -> None:
    from launch import backends

    settings = _settings(namespace=namespace, backend="katib", build=build)
    request, then = _request(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty, local=False,
        name=name, gpus=gpus, preflight=not no_preflight,
        resources=trial_resources(
            settings, gpus=gpus, cpus=cpus, memory=memory, shm_size=shm_size, env=env, secret_env=secret_env,
            volume=volume, node_selector=node_selector, toleration=toleration, queue=queue,
            priority=priority, trial_timeout=trial_timeout, retries=retries,
            checkpoint_dir=checkpoint_dir, nodes=nodes,
        ),
        then_seeds=then_seeds,
    )  # fmt: skip
    preview = backends.named("katib").preview(request)
    _print_preview(preview if then is None else _with_then(preview, then), as_json=as_json)


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
    wait: WaitOpt = "first",
    detach: DetachOpt = False,
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
    checkpoint_dir: CheckpointDirOpt = None,
    nodes: NodesOpt = None,
    no_preflight: NoPreflightOpt = False,
    build: BuildOpt = None,
    then_seeds: ThenSeedsOpt = None,
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
    request, then = _request(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty,
        local=chosen_backend.runs_here, then_seeds=then_seeds, name=name, gpus=gpus, rebuild=rebuild, dockerfile=dockerfile,
        context_dir=context_dir, preflight=not no_preflight,
        resources=trial_resources(
            settings, gpus=gpus, cpus=cpus, memory=memory, shm_size=shm_size, env=env, secret_env=secret_env,
            volume=volume, node_selector=node_selector, toleration=toleration, queue=queue,
            priority=priority, trial_timeout=trial_timeout, retries=retries,
            checkpoint_dir=checkpoint_dir, nodes=nodes,
        ),
    )  # fmt: skip
    stderr().print(f"backend: {chosen} ({why})", highlight=False)
    if then is not None and dry_run:
        _print_preview(_with_then(chosen_backend.preview(request), then), as_json=as_json)
        return
    go = Go(dry_run=dry_run, as_json=as_json, yes=yes, quiet=quiet, detach=detach,
            wait="all" if then is not None and then.auto else wait, timeout_s=timeout_s)  # fmt: skip
    if then is not None and then.auto and detach:
        stderr().print(
            "note: --detach: launch will not be watching when the search ends, so the seed study "
            "(--then-seeds) will not start; start it yourself with the command printed below",
            highlight=False,
        )
    exp = launch_and_follow(
        chosen_backend, request, go, before_follow=None if then is None else then.say
    )
    if exp is None or then is None or not then.auto or detach:
        return
    from launch.cli.seeds import start_study

    start_study(
        exp.name, top=then.top, seeds=then.seeds, backend_name=chosen, go=go,
        command=list(request.command), fields=then.fields, namespace=namespace, build=build,
        # A named search names its study after it (DNS-1035, <= 40 chars).
        name=None if name is None else f"{name[:34].rstrip('-')}-seeds",
    )  # fmt: skip


@dataclass(frozen=True)
class Go:
    """How to launch and follow: the flags `run` and `seeds` share."""

    dry_run: bool = False
    as_json: bool = False
    yes: bool = False
    quiet: bool = False
    detach: bool = False
    wait: str = "first"
    timeout_s: float | None = None


def launch_and_follow(
    chosen_backend: Any, request: Any, go: Go, *, results: bool | None = None,
    before_follow: Any = None,
) -> Any:  # fmt: skip
    """Preview (--dry-run), or create and follow the experiment: what `run` and `seeds` share.
    Returns the created experiment (None: a dry run, or the user said no)."""
    for caveat in chosen_backend.caveats(request):
        stderr().print(f"note: {caveat}", highlight=False)
    if go.dry_run:
        _print_preview(chosen_backend.preview(request), as_json=go.as_json)
        return None
    ask = None
    if not go.yes and sys.stdin.isatty() and not chosen_backend.runs_here:
        ask = _confirm
    from launch.cli.follow import event_sink

    sink = event_sink(request, quiet=go.quiet)
    try:
        created = chosen_backend.create(request, confirm=ask, sink=sink)
    finally:
        sink.close()
    if created is None:
        stderr().print("nothing launched", highlight=False)
        return None
    for line in created.summary:
        stderr().print(line, highlight=False)
    for line in created.links:
        stdout().print(line, highlight=False)
    if before_follow is not None:
        before_follow(created.experiment.name)
    if go.detach:
        stderr().print(
            f"detached; follow it with: launch watch {created.experiment.name}", highlight=False
        )
        return created.experiment
    follow_and_finish(
        chosen_backend, created.experiment, quiet=go.quiet, until=go.wait, timeout_s=go.timeout_s,
        results=chosen_backend.runs_here if results is None else results,
    )  # fmt: skip
    return created.experiment


@dataclass(frozen=True)
class Then:
    """A search whose seeds become a seed study of its best configs afterwards."""

    seeds: int | tuple[int, ...]
    top: int
    auto: bool  # --then-seeds: launch starts the study when the search ends
    fields: dict[str, Any]  # the trial options the study repeats (gpus, resources, ...)
    why: str

    def command(self, name: str) -> str:
        return f"launch seeds {name} --top {self.top} --seeds {seeds_text(self.seeds)}"

    def say(self, name: str) -> None:
        """The second phase, with the exact command (on stdout, for scripts) either way."""
        if self.auto:
            stderr().print(
                f"then: when {name} ends, launch runs its {self.top} best configs x "
                f"{_count(self.seeds)} seeds as a second experiment, the same as:",
                highlight=False,
            )
        else:
            stderr().print(
                f"then: when {name} has finished, run the seed study of its best configs:",
                highlight=False,
            )
        stdout().print(self.command(name), highlight=False)


DEFAULT_TOP = 3  # the printed `launch seeds` command's --top when --then-seeds does not say


def seeds_text(seeds: int | tuple[int, ...]) -> str:
    return str(seeds) if isinstance(seeds, int) else ",".join(map(str, seeds))


def _count(seeds: int | tuple[int, ...]) -> int:
    return seeds if isinstance(seeds, int) else len(seeds)


def _then_plan(sweep: Any, then_seeds: int | None, fields: dict[str, Any]) -> Then | None:
    """The second phase of a search x seeds: Katib cannot run a non-grid search x seeds as one
    Experiment (always two phases there); --then-seeds K asks for them on either backend."""
    seeds = sweep.then_seeds
    if seeds is None:
        if then_seeds is not None:
            raise UsageError(
                "--then-seeds needs seeds and an algorithm other than grid",
                hint="pass --seeds N too (a grid x seeds already runs every config per seed)",
            )
        return None
    top = then_seeds or DEFAULT_TOP
    why = (
        f"--seeds with algorithm {sweep.spec.algorithm.algorithmName} cannot be one Katib "
        "Experiment (each sampled config would need one trial per seed)"
    )
    if then_seeds is None:
        stderr().print(
            f"note: {why}; the plan: the search (without the {_count(seeds)} seeds), then a seed "
            f"study of its {top} best configs x {_count(seeds)} seeds, whose command is printed "
            "below; --then-seeds K runs both while launch is watching",
            highlight=False,
        )
    else:
        stderr().print(
            f"note: two phases: the search, then its {top} best configs x {_count(seeds)} seeds "
            "(--then-seeds), while launch is watching",
            highlight=False,
        )
    return Then(seeds=seeds, top=top, auto=then_seeds is not None, fields=fields, why=why)


def _with_then(preview: Any, then: Then) -> Any:
    """A preview of the search, with the seed study that follows it."""
    import dataclasses

    name = str(preview.doc.get("name") or "EXP")
    text = preview.text + (
        f"# then ({'--then-seeds' if then.auto else 'run it yourself'}): {then.command(name)}\n"
        f"#   {then.why}; the seed study runs the {then.top} best configs x "
        f"{_count(then.seeds)} seeds as one grid Experiment (config number x seed)\n"
    )
    doc = {**preview.doc, "then": {"command": then.command(name), "top": then.top,
                                   "seeds": then.seeds, "auto": then.auto}}  # fmt: skip
    return dataclasses.replace(preview, doc=doc, text=text)


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
