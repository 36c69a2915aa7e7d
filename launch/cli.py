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
COMMANDS = ("run", "render", "config")

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

    return Console(soft_wrap=True)


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


def _command_or_fail(command: list[str] | None) -> list[str]:
    if not command:
        raise UsageError(
            "no training command given",
            hint="put it after `--`, e.g. `launch search.yaml -- python train.py`",
        )
    return command


def _prepare(
    spec_path: Path,
    command: list[str] | None,
    *,
    seeds: int | None,
    namespace: str | None,
    backend: str | None,
    allow_dirty: bool,
) -> tuple[Any, list[str], Any, Any]:
    """Every check that needs no cluster, in order: settings, spec, command, git state."""
    from launch import config, git, spec

    settings = config.load_settings({"namespace": namespace, "backend": backend})
    loaded = spec.apply_seeds(
        spec.load(str(spec_path)), seeds=seeds, seed_flag=settings["seed_flag"]
    )
    argv = _command_or_fail(command)
    snap = git.snapshot()
    git.require_buildable(snap, allow_dirty=allow_dirty)
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
    import yaml

    docs = [d for d in (plan.build_job, plan.experiment) if d is not None]
    out = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=1000)
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
        branch=snap.branch,
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
    settings, argv, loaded, snap = _prepare(
        spec_path, command, seeds=seeds, namespace=namespace, backend=None, allow_dirty=allow_dirty
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    settings, argv, loaded, snap = _prepare(
        spec_path,
        command,
        seeds=seeds,
        namespace=namespace,
        backend=backend,
        allow_dirty=allow_dirty,
    )
    _warn_coercions(loaded)
    chosen, why = settings.backend()
    _stderr().print(f"backend: {chosen} ({why})", highlight=False)
    if dry_run:
        _print_plan(
            _plan(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty),
            as_json=as_json,
        )
        return
    raise UsageError(
        f"the {chosen} backend cannot run sweeps yet in this version",
        hint="use `launch render` or `--dry-run` to see what would run",
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
