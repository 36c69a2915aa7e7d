"""`launch seeds EXP --top K --seeds N`: a seed study of a search's best configs, on the backend
the search ran on (or `--backend`); also the second phase of `launch run --then-seeds K`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from launch.cli.options import (
    AllowDirtyOpt,
    BackendOpt,
    BuildOpt,
    CheckpointDirOpt,
    CommandArg,
    CpusOpt,
    DetachOpt,
    EnvOpt,
    ExpArg,
    JsonOpt,
    MemoryOpt,
    NameOpt,
    NamespaceOpt,
    NodesOpt,
    NoPreflightOpt,
    PriorityOpt,
    QueueOpt,
    QuietOpt,
    RetriesOpt,
    SecretEnvOpt,
    ShmOpt,
    TrialTimeoutOpt,
    WaitOpt,
    duration,
    trial_resources,
)
from launch.cli.root import app, guard, open_experiment, stderr
from launch.errors import UsageError

if TYPE_CHECKING:
    from launch.cli.run import Go


def parse_seeds(text: str) -> int | tuple[int, ...]:
    """`--seeds 10` (seeds 0..9) or `--seeds 3,17,42` (those seeds), checked like `seeds:`."""
    from launch.spec.seeds import _cli_seeds

    words = [w.strip() for w in text.split(",")]
    try:
        numbers = [int(w) for w in words]
    except ValueError:
        raise UsageError(
            f"--seeds {text}: expected a count N or a list of seeds 3,17,42",
            hint="pass --seeds 10 (seeds 0..9) or --seeds 3,17,42",
        ) from None
    return _cli_seeds(numbers[0] if len(numbers) == 1 and "," not in text else numbers)


def study_request(
    source: str, *, top: int, seeds: int | tuple[int, ...], settings: Any,
    command: list[str] | None, name: str | None, fields: dict[str, Any], local: bool,
) -> tuple[Any, list[str]]:  # fmt: skip
    """The LaunchRequest of a seed study of `source`'s `top` configs, and its plan in words."""
    from launch import git, seed_study
    from launch import spec as spec_module
    from launch.backends.base import LaunchRequest

    exp, backend = open_experiment(source)
    facts = seed_study.Source.of(exp.meta())
    search, rows = backend.trials(exp)
    selection = seed_study.pick_top(
        rows, k=top, minimize=search.objective.type == "minimize", seed_flag=facts.seed_flag,
        objective_name=search.objective.objectiveMetricName, source=exp.name,
    )  # fmt: skip
    study = spec_module.study_spec(
        search, selection.configs, seeds=seeds, seed_flag=settings.seed_flag
    )
    argv = list(command or facts.command)
    if not argv:
        raise UsageError(
            f"{exp.name}'s record has no training command",
            hint=f"give it after `--`: launch seeds {exp.name} --top {top} --seeds N -- python train.py",
        )
    snap = git.snapshot()
    allow_dirty = bool(fields.get("allow_dirty"))
    git.require_buildable(snap, allow_dirty=allow_dirty, require_pushed=not local)
    count = seeds if isinstance(seeds, int) else len(seeds)
    lines = seed_study.describe(
        selection, seeds=count, backend="this machine" if local else "Katib"
    )
    if facts.commit and facts.commit != snap.commit:
        lines.append(
            f"note: {exp.name} ran commit {facts.commit[:12]}; the study runs {snap.commit[:12]} "
            "(the checked-out commit)"
        )
    request = LaunchRequest(
        spec=study, command=argv, snap=snap, settings=settings, name=name,
        study=selection.as_meta(seeds=study.seed_values, backend=facts.backend), **fields,
    )  # fmt: skip
    return request, lines


def start_study(
    source: str, *, top: int, seeds: int | tuple[int, ...], backend_name: str | None, go: Go,
    command: list[str] | None = None, fields: dict[str, Any] | None = None, name: str | None = None,
    namespace: str | None = None, build: str | None = None,
) -> Any:  # fmt: skip
    """Launch (and follow) the seed study of `source`; the experiment, or None for a dry run."""
    from launch import backends, config
    from launch.cli.run import launch_and_follow

    if backend_name is None:  # the backend the search ran on
        backend_name = _source(source).backend
    settings = config.load_settings(
        {"namespace": namespace, "backend": backend_name, "build": build}
    )
    chosen, why = settings.backend()
    chosen_backend = backends.named(chosen)
    fields = dict(fields or {})
    request, lines = study_request(
        source, top=top, seeds=seeds, settings=settings, command=command, name=name,
        fields=fields, local=chosen_backend.runs_here,
    )  # fmt: skip
    stderr().print(f"backend: {chosen} ({why})", highlight=False)
    for line in lines:
        stderr().print(line, highlight=False)
    # A study is read when it has ended: print its per-config table then, on either backend.
    return launch_and_follow(chosen_backend, request, go, results=go.wait == "all" or None)


@app.command(
    "seeds",
    help="A seed study: re-run the K best configs of experiment EXP (by its objective, mean over "
    "seeds when it had them) over N seeds each, as a new experiment, on the backend EXP ran on "
    "(or --backend). On Katib it is one grid Experiment over the config number and the seed; the "
    "trial command maps the number to the config's flags. Trials that did not finish with a "
    "value are not ranked; equal means keep search order; both are said. `launch results STUDY` "
    "then shows each config's n, mean, std, 95% CI and median; `launch compare STUDY:1 STUDY:2` "
    "compares two of its configs. Example: `launch seeds EXP --top 3 --seeds 10`.",
)
@guard
def seeds_cmd(
    experiment: ExpArg,
    command: CommandArg = None,
    top: Annotated[
        int, typer.Option("--top", min=1, metavar="K", help="How many of EXP's best configs.")
    ] = 3,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            metavar="N|LIST",
            help="Seeds per config: N (0..N-1) or a list (3,17,42), passed as --seed=K.",
        ),
    ] = "10",
    backend: BackendOpt = None,
    name: NameOpt = None,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", min=0, metavar="N", help="GPUs per trial (default: EXP's)."),
    ] = None,
    namespace: NamespaceOpt = None,
    allow_dirty: AllowDirtyOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the configs and what would run; touch nothing.")
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Cluster: do not ask before launching.")
    ] = False,
    wait: WaitOpt = "all",
    detach: DetachOpt = False,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="Stop waiting after this long (90s, 30m, 2h) and exit 6."),
    ] = None,
    cpus: CpusOpt = None,
    memory: MemoryOpt = None,
    shm_size: ShmOpt = None,
    env: EnvOpt = None,
    secret_env: SecretEnvOpt = None,
    queue: QueueOpt = None,
    priority: PriorityOpt = None,
    trial_timeout: TrialTimeoutOpt = None,
    retries: RetriesOpt = None,
    checkpoint_dir: CheckpointDirOpt = None,
    nodes: NodesOpt = None,
    no_preflight: NoPreflightOpt = False,
    build: BuildOpt = None,
) -> None:
    from launch import config
    from launch.cli.run import Go

    if wait not in ("first", "all"):
        raise UsageError(
            f"--wait {wait}: expected first or all", hint="pass --wait first or --wait all"
        )
    values = parse_seeds(seeds)
    settings = config.load_settings({"namespace": namespace, "backend": backend, "build": build})
    gpus_n = gpus if gpus is not None else _source(experiment).gpus
    fields = {
        "gpus": gpus_n, "allow_dirty": allow_dirty, "preflight": not no_preflight,
        "resources": trial_resources(
            settings, gpus=gpus_n, cpus=cpus, memory=memory, shm_size=shm_size, env=env,
            secret_env=secret_env, volume=None, node_selector=None, toleration=None, queue=queue,
            priority=priority, trial_timeout=trial_timeout, retries=retries,
            checkpoint_dir=checkpoint_dir, nodes=nodes,
        ),
    }  # fmt: skip
    go = Go(
        dry_run=dry_run, as_json=as_json, yes=yes, quiet=quiet, detach=detach, wait=wait,
        timeout_s=duration(timeout, "--timeout") if timeout else None,
    )  # fmt: skip
    start_study(
        experiment, top=top, seeds=values, backend_name=backend, go=go, command=command or None,
        fields=fields, name=name, namespace=namespace, build=build,
    )  # fmt: skip


def _source(name: str) -> Any:
    """The search's facts from its record (`seed_study.Source`): an unknown name is refused
    with its hint by `open_experiment`."""
    from launch import seed_study

    exp, _ = open_experiment(name)
    return seed_study.Source.of(exp.meta())
