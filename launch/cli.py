"""The `launch` command line (Typer): parses argv, prints; no Kubernetes logic.

Start-up matters (`launch --help` must stay near a bare Typer app), so everything beyond Typer is
imported inside the commands that need it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from launch.errors import ExitCode, LaunchError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 usage, configuration or search.yaml error (also a "
    "failed `launch doctor` check, no kubeconfig for the cluster, a missing optional library), "
    "3 git state refused (dirty/unpushed), 4 build failed, 5 trial or experiment failed, "
    "6 timed out, 7 cancelled by `launch cancel`, 130 detached by Ctrl-C (the experiment keeps "
    "running)."
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
COMMANDS = (
    "run", "render", "config", "list", "status", "watch", "logs", "results", "cancel", "compare",
    "doctor", "completion", "ui",
)  # fmt: skip

_debug = False

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: LaunchError) -> NoReturn:
    from rich.markup import escape

    err = _stderr()
    # Escaped: messages quote user text and commands such as `uv tool install '...[plot]'`.
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
    if exc.hint:
        err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}", markup=True, highlight=False)
    raise typer.Exit(int(exc.exit_code))


def _stderr() -> Any:
    from launch.terminal import Console

    # Long paths and URLs stay whole, copy-pasteable; no markup: printed text is user text.
    return Console(stderr=True, soft_wrap=True, markup=False)


def _stdout() -> Any:
    from launch.terminal import Console

    console = Console(soft_wrap=True, markup=False)
    if not console.is_terminal:
        # A pipe or a file gets whole rows: never cut table cells to an assumed 80 columns.
        console = Console(soft_wrap=True, width=1000, markup=False)
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
        except BrokenPipeError:
            # The reader left (`launch results | head`): what it wanted was printed.
            _discard_output()
            raise typer.Exit(0) from None
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


def _discard_output() -> None:
    """Point stdout at /dev/null once its reader is gone, so the interpreter's last flush is quiet."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _version_callback(value: bool) -> None:
    if value:
        from launch.buildinfo import version_line

        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version (and the commit it was built from) and exit.",
            is_eager=True, callback=_version_callback,
        ),
    ] = False,
) -> None:  # fmt: skip
    global _debug
    _debug = debug


SpecArg = Annotated[
    Path,
    typer.Argument(
        metavar="SPEC", help="The search space: a search.yaml (Katib Experiment spec subset)."
    ),
]
CommandArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="-- CMD...",
        help="The training command, after `--`, e.g. `-- python train.py --epochs 3`.",
    ),
]
GpusOpt = Annotated[int, typer.Option("--gpus", min=0, metavar="N", help="GPUs per trial.")]
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
        "--seeds",
        min=1,
        metavar="N",
        help="Repeat each configuration over N seeds (passed as --seed=K).",
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
CpusOpt = Annotated[
    str | None, typer.Option("--cpus", help="Cluster: CPU request per trial (e.g. 8).")
]
MemoryOpt = Annotated[
    str | None,
    typer.Option("--memory", help="Cluster: memory per trial, request = limit (e.g. 32Gi)."),
]
ShmOpt = Annotated[
    str | None,
    typer.Option(
        "--shm-size", help="Cluster: size of /dev/shm (PyTorch data loaders need it; e.g. 8Gi)."
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="K=V", help="Trial environment variable K=V (repeatable)."),
]
SecretEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-env",
        metavar="SECRET",
        help="Cluster: a Secret whose keys become env variables (repeatable).",
    ),
]
VolumeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--volume",
        metavar="PVC:/PATH[:ro]",
        help="Cluster: mount a PVC, PVC:/path or PVC:/path:ro (repeatable).",
    ),
]
NodeSelectorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--node-selector",
        metavar="K=V",
        help="Cluster: run trials on nodes with label K=V (repeatable).",
    ),
]
TolerationOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--toleration",
        metavar="KEY[=VALUE][:EFFECT]",
        help="Cluster: tolerate a taint, key[=value][:Effect] (repeatable).",
    ),
]
QueueOpt = Annotated[
    str | None, typer.Option("--queue", help="Cluster: Kueue LocalQueue for the trials.")
]
PriorityOpt = Annotated[
    str | None,
    typer.Option("--priority", help="Cluster: Kueue WorkloadPriorityClass for the trials."),
]
TrialTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--trial-timeout",
        metavar="DURATION",
        help="Fail a trial that runs longer than this (90s, 30m, 2h): its processes are stopped "
        "(SIGTERM, SIGKILL after 10 s locally; the Job's activeDeadlineSeconds on the cluster).",
    ),
]


def _pairs(items: Any, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {item}: expected K=V", hint=f"pass {flag} NAME=value")
        out[key] = value
    return out


def _render_options(settings: Any, **flags: Any) -> dict[str, Any]:
    """Trial resources for the Experiment: flags over settings; list flags add to the settings'."""

    def pick(key: str) -> Any:
        return flags.get(key) if flags.get(key) is not None else settings.get(key)

    def merged(key: str) -> tuple[str, ...]:
        return (*(settings.get(key) or ()), *(flags.get(key) or ()))

    return {
        "cpus": pick("cpus"),
        "memory": pick("memory"),
        "shm_size": pick("shm_size"),
        "extra_env": _pairs(merged("env"), "--env") or None,
        "secret_env": merged("secret_env"),
        "volumes": merged("volume"),
        "node_selector": _pairs(merged("node_selector"), "--node-selector") or None,
        "tolerations": merged("toleration"),
        "queue": pick("queue"),
        "priority": pick("priority"),
        "trial_timeout_s": _trial_timeout(flags.get("trial_timeout")),
    }


def _trial_timeout(text: str | None) -> int | None:
    """--trial-timeout in whole seconds (activeDeadlineSeconds is an integer), at least 1."""
    if text is None:
        return None
    import math

    return max(1, math.ceil(_duration(text, "--trial-timeout")))


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

    blocked = [n for n in plan.notes if n.startswith(NOT_LAUNCHABLE)]
    if blocked:
        _stderr().print(f"warning: {blocked[0]}", highlight=False)
    if as_json:
        doc = {
            "launchable": not blocked,
            "name": plan.name,
            "namespace": plan.namespace,
            "image": plan.image,
            "buildJob": plan.build_job,
            "experiment": plan.experiment,
            "trials": plan.trial_lines,
            "trialsComplete": plan.complete,
        }
        if plan.notes:
            doc["notes"] = list(plan.notes)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from launch import katib

    docs = [d for d in (plan.build_job, plan.experiment) if d is not None]
    out = "".join(f"# {line}\n" for line in blocked)
    out += "---\n".join(katib.to_yaml(doc) for doc in docs)
    out += "".join(f"# {line}\n" for line in plan.notes)
    what = "every trial" if plan.complete else f"a sample of {len(plan.trial_lines)} trials"
    out += f"# trial command lines ({what}):\n"
    out += "".join(f"#   {shlex.join(line)}\n" for line in plan.trial_lines[:SHOWN_TRIALS])
    out += _more_trials(len(plan.trial_lines), prefix="#   ")
    sys.stdout.write(out)


# A grid may hold up to spec.MAX_GRID_COMBINATIONS trials: the text shows the first ones (--json
# lists all).
SHOWN_TRIALS = 1000


def _more_trials(count: int, *, prefix: str = "") -> str:
    hidden = count - SHOWN_TRIALS
    return f"{prefix}... and {hidden:,} more (--json lists every one)\n" if hidden > 0 else ""


NOT_LAUNCHABLE = "NOT LAUNCHABLE as is"


def _uncloneable_remote(snap: Any) -> str | None:
    """Why Kaniko cannot clone this clean, pushed commit from its remote (a local path, a
    `file://` URL...), or None when it can (or the tree is not clean and pushed anyway)."""
    if not (snap.clean and snap.pushed and snap.remote_url):
        return None
    from launch import kaniko

    try:
        kaniko.git_context(snap.remote_url, snap.remote_branch or snap.branch, snap.commit)
    except UsageError as err:
        return err.message
    return None


def _facts(
    snap: Any, *, name: str | None, allow_dirty: bool, preview: bool = False
) -> tuple[Any, str, bytes | None, str | None]:
    """The git facts a plan needs, the experiment name (given, or generated), for a dirty
    tree the bytes of its archive (the `--allow-dirty` build context, tagged by tree hash), and
    a note when the plan is shown but cannot be launched as it is.

    A clean, pushed commit whose remote the cluster cannot clone (a local path) is built from
    an upload with `--allow-dirty`, as an unpushed one is; without it a launch is refused with
    that hint, and `preview` (render, --dry-run) shows the upload plan marked not launchable."""
    import secrets

    from launch import katib
    from launch.plan import GitFacts

    tag, data, digest, note = snap.commit, None, None, None
    uncloneable = _uncloneable_remote(snap)
    if uncloneable and not allow_dirty:
        hint = (
            "push the branch to an https or ssh remote (`git remote -v`), or pass --allow-dirty "
            "to build from an upload of the working tree"
        )
        if not preview:
            raise UsageError(uncloneable, hint=hint)
        note = f"{NOT_LAUNCHABLE}: {uncloneable}; {hint} (shown: that upload's plan)"
    # Kaniko can fetch only a clean, pushed commit from a remote it can clone; anything else is
    # built from an upload.
    if uncloneable or (allow_dirty and not (snap.clean and snap.pushed)):
        import tempfile

        from launch import git, registry

        with tempfile.TemporaryDirectory(prefix="launch-context-") as tmp:
            path = Path(tmp) / "context.tar.gz"
            tag = git.archive_worktree(snap.root, path)
            data = path.read_bytes()
        digest = registry.digest_of(data)
    facts = GitFacts(
        commit=tag,
        branch=snap.remote_branch or snap.branch,
        remote_url=snap.remote_url if snap.clean and snap.pushed and not uncloneable else None,
        repo_name=snap.repo_name,
        subdir=snap.subdir,
        context_digest=digest,
    )
    if name is None:
        name = katib.experiment_name(stem=snap.repo_name, commit=tag, suffix=secrets.token_hex(2))
    else:
        katib.validate_experiment_name(name)
    return facts, name, data, note


def _plan(
    settings: Any, argv: list[str], loaded: Any, snap: Any, *, name: str | None, gpus: int,
    allow_dirty: bool, **options: Any,
) -> Any:  # fmt: skip
    import dataclasses
    import getpass

    from launch.plan import make_plan

    facts, name, _, note = _facts(snap, name=name, allow_dirty=allow_dirty, preview=True)
    plan = make_plan(
        spec=loaded, command=argv, git=facts, settings=settings, name=name,
        user=getpass.getuser(), gpus=gpus, **options,
    )  # fmt: skip
    if note is not None:
        plan = dataclasses.replace(plan, notes=(note, *plan.notes))
    return plan


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
) -> None:
    settings = _settings(namespace=namespace, backend="katib")
    settings, argv, loaded, snap = _prepare(
        spec_path, command, seeds=seeds, settings=settings, allow_dirty=allow_dirty
    )
    _warn_coercions(loaded)
    options = _render_options(
        settings,
        cpus=cpus,
        memory=memory,
        shm_size=shm_size,
        env=env,
        secret_env=secret_env,
        volume=volume,
        node_selector=node_selector,
        toleration=toleration,
        queue=queue,
        priority=priority,
        trial_timeout=trial_timeout,
    )
    _print_plan(
        _plan(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty,
              render_options=options),
        as_json=as_json,
    )  # fmt: skip


def _warn_coercions(loaded: Any) -> None:
    from launch import spec

    warnings = spec.coercion_warnings(loaded)
    if not warnings:
        return  # rich (markup, console) costs ~20 ms to import: only when there is something to say
    from rich.markup import escape

    for warning in warnings:
        _stderr().print(f"[yellow]warning:[/] {escape(warning)}", markup=True, highlight=False)


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
) -> None:
    _refuse_mistyped_command(spec_path)
    if wait not in ("first", "all"):
        raise UsageError(
            f"--wait {wait}: expected first or all", hint="pass --wait first or --wait all"
        )
    timeout_s = _duration(timeout, "--timeout") if timeout else None
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
    options = _render_options(
        settings, cpus=cpus, memory=memory, shm_size=shm_size, env=env, secret_env=secret_env,
        volume=volume, node_selector=node_selector, toleration=toleration, queue=queue,
        priority=priority, trial_timeout=trial_timeout,
    )  # fmt: skip
    if chosen == "local":
        _run_local(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty,
                   dry_run=dry_run, as_json=as_json, quiet=quiet, env=options["extra_env"] or {},
                   timeout_s=timeout_s, trial_timeout_s=options["trial_timeout_s"])  # fmt: skip
        return
    if dry_run:
        _print_plan(
            _plan(settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty,
                  render_options=options, dockerfile=dockerfile, context_dir=context_dir),
            as_json=as_json,
        )  # fmt: skip
        return
    _run_cluster(
        settings, argv, loaded, snap, name=name, gpus=gpus, allow_dirty=allow_dirty, quiet=quiet,
        wait=wait, detach=detach, timeout_s=timeout_s, rebuild=rebuild, dockerfile=dockerfile,
        context_dir=context_dir, render_options=options, yes=yes,
    )  # fmt: skip


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


def _duration(text: str, flag: str) -> float:
    """`90`, `90s`, `30m`, `2h` -> seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise UsageError(
            f"{flag} {text}: not a duration", hint=f"pass {flag} 90s, {flag} 30m or {flag} 2h"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _connect(settings: Any) -> Any:
    return _connect_context(settings["context"])


def _connect_context(context: str | None) -> Any:
    """The cluster client; a kubeconfig it cannot load is a configuration error (exit 2), not a
    crash: `Cluster.connect` makes no request, so every error it raises is about the kubeconfig."""
    from launch.cluster import Cluster, ClusterError

    try:
        return Cluster.connect(context)
    except ClusterError as err:
        raise UsageError(
            err.message,
            hint=(err.hint or "")
            + ("; " if err.hint else "")
            + "without a cluster, run the sweep here: `launch --backend local SPEC -- CMD`",
        ) from None


def _run_cluster(
    settings: Any, argv: list[str], loaded: Any, snap: Any, *, name: str | None, gpus: int,
    allow_dirty: bool, quiet: bool, wait: str, detach: bool, timeout_s: float | None,
    rebuild: bool, dockerfile: str, context_dir: str | None, render_options: dict[str, Any],
    yes: bool = False,
) -> None:  # fmt: skip
    import getpass

    from launch import state, submit
    from launch.progress import Narrator

    facts, name, context_data, _ = _facts(snap, name=name, allow_dirty=allow_dirty)
    home = state.home_dir(settings["home"])
    if (state.experiments_dir(home) / name).exists():
        # Refused before the cluster sees anything (the record is written after the create).
        raise UsageError(
            f"experiment `{name}` already exists in {state.experiments_dir(home)}",
            hint=f"pick another --name, or `launch watch {name}` to follow it",
        )
    if not yes and sys.stdin.isatty():
        from launch import spec

        counts = spec.resolve_counts(loaded)
        gpu_text = f" x {gpus} GPU(s)" if gpus else ""
        where = f"{settings['context'] or 'the current context'}/{settings['namespace']}"
        question = f"launch {name}: up to {counts.max_trials} trials{gpu_text}, {counts.parallel} at a time, on {where}?"
        if not typer.confirm(question, default=True, err=True):
            _stderr().print("nothing launched", highlight=False)
            return
    say = Narrator(quiet=quiet)
    cluster = _connect(settings)
    try:
        launched = submit.launch(
            cluster=cluster, settings=settings, spec=loaded, command=argv, snap=snap,
            git_facts=facts, name=name, user=getpass.getuser(), gpus=gpus, rebuild=rebuild,
            dockerfile=dockerfile, context_dir=context_dir, render_options=render_options,
            context_data=context_data, report=say,
        )  # fmt: skip
    finally:
        say.close()
    state.Experiment.create(
        home,
        name,
        {
            "backend": "katib", "name": name, "namespace": launched.namespace,
            "context": settings["context"], "spec": loaded.model_dump(mode="json"),
            "image": launched.image, "commit": facts.commit, "katib_url": launched.katib_url,
            "mlflow_url": settings["mlflow_url"], "created": __import__("time").time(),
            "seed_flag": settings["seed_flag"], "command": argv, "subdir": snap.subdir,
            "queue": render_options.get("queue"), "gpus": gpus,
        },
    )  # fmt: skip
    out = _stdout()
    out.print(f"experiment {launched.namespace}/{name} created ({launched.image})", highlight=False)
    if launched.katib_url:
        out.print(f"Katib:  {launched.katib_url}", highlight=False)
    if settings["mlflow_url"]:
        from launch import tracking

        # Created now (as the local backend does), so the link is exact from the start; the
        # trials log into it by name. Unreachable from here: a fallback link, never an error.
        link = tracking.ensure_experiment(
            settings["mlflow_url"], name,
            tags={"katib.url": launched.katib_url} if launched.katib_url else None,
        )  # fmt: skip
        base = settings["mlflow_url"].rstrip("/")
        where = link.url or f"{base}/#/experiments (experiment {name}, made by the first trial)"
        out.print(f"MLflow: {where}", highlight=False)
    if detach:
        _stderr().print(f"detached; follow it with: launch watch {name}", highlight=False)
        return
    _watch_cluster(
        cluster, loaded, launched.namespace, name, wait=wait, timeout_s=timeout_s, quiet=quiet,
        kueue=bool(render_options.get("queue")),
    )  # fmt: skip


def _watch_cluster(
    cluster: Any, loaded: Any, namespace: str, name: str, *, wait: str, timeout_s: float | None,
    quiet: bool, kueue: bool = False,
) -> None:  # fmt: skip
    from launch import submit
    from launch.errors import ExitCode
    from launch.progress import Narrator

    say = Narrator(quiet=quiet)
    say(
        "info",
        f"waiting for {'the first trial to succeed' if wait == 'first' else 'every trial'} (Ctrl-C detaches)",
    )
    try:
        result = submit.watch(
            cluster=cluster, spec=loaded, namespace=namespace, name=name, until=wait,
            timeout_s=timeout_s, report=say, kueue=kueue,
        )  # fmt: skip
    except KeyboardInterrupt:
        say.close()
        _stderr().print(
            f"detached; {name} keeps running. Follow it with: launch watch {name}", highlight=False
        )
        raise typer.Exit(int(ExitCode.DETACHED)) from None
    finally:
        say.close()
    if result.status == "first-succeeded":
        _stderr().print(
            f"a first trial of {name} succeeded; the sweep goes on. Results: launch results {name}",
            highlight=False,
        )


def _run_local(
    settings: Any, argv: list[str], loaded: Any, snap: Any, *, name: str | None, gpus: int,
    allow_dirty: bool, dry_run: bool, as_json: bool, quiet: bool, env: dict[str, str],
    timeout_s: float | None = None, trial_timeout_s: int | None = None,
) -> None:  # fmt: skip
    import os
    import secrets

    from launch import katib, local, sampling, spec, state

    sampling.check_local(loaded)
    for caveat in sampling.local_caveats(loaded):
        _stderr().print(f"note: {caveat}", highlight=False)
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
        trials_dir = state.experiments_dir(home) / name / "trials"
        lines, complete, exact = _local_first_trials(
            loaded, argv, name=name, trials_dir=trials_dir, max_trials=counts.max_trials,
            seed_flag=settings["seed_flag"],
        )  # fmt: skip
        where = snap.root if in_place else state.experiments_dir(home) / name / "worktree"
        plan = {
            "backend": "local", "name": name, "commit": snap.commit, "workdir": str(where / snap.subdir),
            "parallel": parallel, "maxTrialCount": counts.max_trials, "maxFailedTrialCount": counts.max_failed,
            "gpuSlices": slices, "trials": lines, "trialsComplete": complete, "trialsExact": exact,
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
        if complete:
            what = "every trial, in order"
        elif exact:
            what = f"the first {len(lines)}, as random_state fixes them"
        else:
            what = f"a sample of {len(lines)}: the sampler picks again when it runs"
        out.write(f"# trial command lines ({what}):\n")
        out.writelines(f"{shlex.join(line)}\n" for line in lines[:SHOWN_TRIALS])
        out.write(_more_trials(len(lines), prefix="# "))
        return
    exp = local.create(
        home=home, name=name, spec=loaded, command=argv, snap=snap, in_place=in_place,
        gpus_per_trial=gpus, parallel=parallel, gpu_slices=slices, max_trials=counts.max_trials,
        max_failed=counts.max_failed, env=os.environ, seed_flag=settings["seed_flag"],
        extra_env=env, trial_timeout_s=trial_timeout_s,
    )  # fmt: skip
    where = "in place (--allow-dirty)" if in_place else f"in a worktree of {snap.commit[:12]}"
    _stderr().print(
        f"experiment {name}: {counts.max_trials} trials, {parallel} at a time, {where}; state in {exp.path}",
        highlight=False,
    )
    _drive_local(exp, quiet=quiet, timeout_s=timeout_s)


def _local_first_trials(
    loaded: Any, argv: list[str], *, name: str, trials_dir: Path, max_trials: int,
    seed_flag: str, sample_size: int = 5,
) -> tuple[list[list[str]], bool, bool]:  # fmt: skip
    """The argv of the first trials as the local sampler picks them: every one for a grid or a
    seed sweep (complete), else the first `sample_size` (exact when random_state fixes them)."""
    from launch import katib, sampling

    complete = loaded.algorithm.algorithmName == "grid" or (loaded.seeds and not loaded.parameters)
    suggester = sampling.make_suggester(loaded, [], seed_flag=seed_flag)
    lines = []
    for number in range(1, (max_trials if complete else min(sample_size, max_trials)) + 1):
        asked = suggester.ask()
        if asked is None:
            break
        _, params, _ = asked
        tb_dir = trials_dir / f"{name}-{number:04d}" / "tfevent"
        lines.append(katib.trial_argv(argv, katib.merge_params(loaded.fixed, params), str(tb_dir)))
    exact = complete or len(lines) <= sampling.predictable_trials(loaded)
    return lines, bool(complete), bool(exact)


def _drive_local(exp: Any, *, quiet: bool, timeout_s: float | None = None) -> None:
    """Run or resume a local experiment in the foreground, then print its results.

    `timeout_s` (--timeout): stop the trials after that long, exit 6; `launch watch` resumes."""
    from launch import local, state
    from launch.errors import ExitCode
    from launch.progress import Progress

    job = local.LocalExperiment.from_meta(exp.meta())
    progress = Progress(
        experiment=exp.name, objective=job.spec.objective.objectiveMetricName,
        minimize=job.spec.objective.type == "minimize", total=job.max_trials, quiet=quiet,
        param_order=_param_order(job.spec),
    )  # fmt: skip
    coordinator = None
    try:
        local.ensure_worktree(exp)
        coordinator = local.Coordinator(exp, report=progress, deadline_s=timeout_s)
        status = coordinator.run()
    finally:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr ends narration only
            progress.close()
    if status in (state.EXP_SUCCEEDED, state.EXP_FAILED, state.EXP_CANCELLED):
        local.cleanup(exp)
    try:
        _print_results(exp, fmt="table")
    except BrokenPipeError:  # the exit code still tells how the sweep ended
        _discard_output()
    if coordinator.timed_out:
        _stderr().print(
            f"timed out (--timeout); running trials were stopped. Resume with: launch watch {exp.name}",
            highlight=False,
        )
        raise typer.Exit(int(ExitCode.TIMED_OUT))
    if status == state.EXP_INTERRUPTED:
        _stderr().print(f"interrupted; resume with: launch watch {exp.name}", highlight=False)
        raise typer.Exit(int(ExitCode.DETACHED))
    if status == state.EXP_CANCELLED:  # by `launch cancel` from another shell
        _stderr().print(f"{exp.name} was cancelled (launch cancel)", highlight=False)
        raise typer.Exit(int(ExitCode.CANCELLED))
    if status == state.EXP_FAILED:
        raise typer.Exit(int(ExitCode.TRIAL_FAILED))


def _param_order(spec: Any) -> list[str]:
    """The spec's order of trial values (parameters, then the seed axis), for progress lines."""
    order = [p.name for p in spec.parameters]
    return [*order, *(k for k in spec.fixed if k not in order)]


def _local_trials(exp: Any) -> tuple[Any, list[Any]]:
    from launch import local, results

    job = local.LocalExperiment.from_meta(exp.meta())
    objective = job.spec.objective.objectiveMetricName
    rows = [results.from_local(r, objective) for r in exp.state().trials.values()]
    return job, results.rank(rows, minimize=job.spec.objective.type == "minimize")


def _is_cluster(exp: Any) -> bool:
    return bool(exp.meta().get("backend") == "katib")


def _cluster_of(exp: Any) -> tuple[Any, dict[str, Any]]:
    from launch import config

    meta = exp.meta()
    context = meta.get("context") or config.load_settings()["context"]
    return _connect_context(context), meta


def _trials_of(exp: Any) -> tuple[Any, list[Any]]:
    """(spec, rows best first) for either backend. A cluster experiment's rows come from its
    Trial objects, else (the experiment was deleted) from the results saved by `cancel`."""
    from launch import results
    from launch.spec import LaunchSpec

    if not _is_cluster(exp):
        job, rows = _local_trials(exp)
        return job.spec, rows
    meta = exp.meta()
    spec = LaunchSpec.model_validate(meta["spec"])
    saved = exp.path / "results.json"
    if meta.get("deleted") and saved.is_file():
        rows = results.from_json(saved.read_text())
    else:
        from launch import submit

        cluster, meta = _cluster_of(exp)
        with cluster:
            rows = submit.trial_rows(cluster, spec=spec, namespace=meta["namespace"], name=exp.name)
            if not rows and cluster.find("Experiment", meta["namespace"], exp.name) is None:
                raise UsageError(
                    f"{meta['namespace']}/{exp.name} no longer exists on the cluster, and its "
                    "trials went with it (deleted outside launch, so nothing was saved)",
                    hint=f"`launch cancel {exp.name}` saves results.csv before it deletes",
                )
    return spec, results.rank(rows, minimize=spec.objective.type == "minimize")


def _print_results(exp: Any, *, fmt: str) -> None:
    """What `launch results EXP` prints by default: a seed sweep's distribution per config,
    else one row per trial with its MLflow link."""
    from launch import stats

    spec, rows = _trials_of(exp)
    seed_flag = exp.meta().get("seed_flag", "seed")
    if stats.has_seed_axis(rows, seed_flag):
        groups = stats.group_by_config(
            rows, minimize=spec.objective.type == "minimize", seed_flag=seed_flag,
            objective_name=spec.objective.objectiveMetricName,
        )  # fmt: skip
        _print_groups(exp.name, groups, n_trials=len(rows), fmt=fmt)
        return
    _print_rows(exp.name, spec, _with_mlflow_links(exp, rows), fmt=fmt)


def _with_mlflow_links(exp: Any, rows: list[Any]) -> list[Any]:
    """Each trial's MLflow run link, found by its `katib.trial` tag in one search request.
    A local store is read directly; a cluster's through `mlflow_url`. Never fatal."""
    import dataclasses

    from launch import config, tracking

    meta = exp.meta()
    settings = config.load_settings()
    if _is_cluster(exp):
        uri = meta.get("mlflow_url") or settings["mlflow_url"]
    else:
        uri = meta.get("tracking_uri")
    if not uri or not rows:
        return rows
    if not _is_cluster(exp) and exp.coordinator_pid() is None:
        # Trials a killed coordinator finished but did not get to mirror: write their runs now.
        from launch import local

        local.mirror_pending(exp, wait_s=60)
    found = tracking.find_runs(
        uri, exp.name, [r.name for r in rows], katib_experiment=exp.name,
        ui_base=settings["mlflow_url"] if _is_cluster(exp) else None,
    )  # fmt: skip
    if found.warning:
        _stderr().print(f"warning: {found.warning}", highlight=False)
    elif found and found.hint:
        _stderr().print(found.hint, highlight=False)
    return [
        dataclasses.replace(r, mlflow_run_id=found[r.name].run_id, mlflow_url=found[r.name].url)
        if r.name in found
        else r
        for r in rows
    ]


def _print_rows(name: str, spec: Any, rows: list[Any], *, fmt: str) -> None:
    from launch import results

    objective = spec.objective.objectiveMetricName
    if fmt == "json":
        sys.stdout.write(results.to_json(rows) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(results.to_csv(rows, objective))
        return
    from launch import stats

    header, text_rows = results.to_rows(rows, objective, precise=False)
    # The table is for reading: start times and empty link columns live in --format csv/json.
    keep = [
        i
        for i, h in enumerate(header)
        if h != "start" and (h not in ("mlflow_run", "reason") or any(r[i] for r in text_rows))
    ]
    _stderr().print(f"{name}: {len(rows)} trials, best first", highlight=False)
    # A plain aligned table: rich costs ~1 ms a row, too slow for 10k-trial sweeps.
    table = stats.text_table([header[i] for i in keep], [[r[i] for i in keep] for r in text_rows])
    sys.stdout.write(table + "\n")


def _open_local(name: str) -> Any:
    """The experiment's directory; a journal with damaged lines is read anyway, with one warning."""
    from launch import config, state

    exp = state.Experiment.open(state.home_dir(config.load_settings()["home"]), name)
    if not _is_cluster(exp):
        _warn(state.problems_warning(exp.name, exp.state().problems))
    return exp


def _warn(text: str | None, hint: str | None = None) -> None:
    if text:
        _stderr().print(f"warning: {text}" + (f"\nhint: {hint}" if hint else ""), highlight=False)


ExpArg = Annotated[str, typer.Argument(help="Experiment name (see `launch list`).")]


@app.command("list", help="List experiments (local ones in .launch/).")
@_guard
def list_cmd(as_json: JsonOpt = False) -> None:
    import json

    from launch import config, state

    home = state.home_dir(config.load_settings()["home"])
    # One broken experiment is a row saying why, never the end of the list.
    rows = state.summaries(home)
    items = [row.as_dict() for row in rows]
    for row in rows:
        if row.problem:
            _warn(f"{row.name}: {row.problem}", row.hint)
        else:
            _warn(state.problems_warning(row.name, row.warnings))
    if as_json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    if not items:
        _stderr().print(f"no experiments in {state.experiments_dir(home)}", highlight=False)
        return
    from rich.table import Table

    table = Table("name", "backend", "status", "trials", box=None)
    for item in items:
        trials = ", ".join(f"{n} {_status_words(s)}" for s, n in sorted(item["trials"].items()))
        table.add_row(
            item["name"], item["backend"], item["status"], trials or item["problem"] or ""
        )
    _stdout().print(table)


@app.command("status", help="Show an experiment's state, trial counts and best trial.")
@_guard
def status_cmd(experiment: ExpArg, as_json: JsonOpt = False) -> None:
    import json

    from launch import state

    exp = _open_local(experiment)
    if _is_cluster(exp):
        _cluster_status(exp, as_json=as_json)
        return
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
    out.print("trials: " + (", ".join(f"{n} {_status_words(s)}" for s, n in sorted(counts.items())) or "none yet")
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
    if _is_cluster(exp):
        from launch.spec import LaunchSpec

        cluster, meta = _cluster_of(exp)
        spec = LaunchSpec.model_validate(meta["spec"])
        _watch_cluster(
            cluster, spec, meta["namespace"], exp.name, wait="all", timeout_s=None, quiet=quiet,
            kueue=bool(meta.get("queue")),
        )  # fmt: skip
        _print_results(exp, fmt="table")
        return
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
        param_order=_param_order(job.spec),
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
    if final == state.EXP_CANCELLED:
        raise typer.Exit(int(ExitCode.CANCELLED))


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
    if _is_cluster(exp):
        _cluster_logs(exp, trial, follow=follow)
        return
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


@app.command(
    "results",
    help="Trial results, best first (table, CSV or JSON on stdout). Seed sweeps are grouped by "
    "config: n, mean, std, 95% CI, min, median, max.",
)
@_guard
def results_cmd(
    experiment: ExpArg,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    as_json: JsonOpt = False,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Summarise this metric instead of the objective.")
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot", help="Draw the distribution per config: FILE.png, or - for the terminal."
        ),
    ] = None,
    per_trial: Annotated[
        bool, typer.Option("--per-trial", help="One row per trial, even for a seed sweep.")
    ] = False,
    trial: Annotated[
        int | None, typer.Option("--trial", "-t", help="With --rerun: the trial number.")
    ] = None,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="Print a copy-paste command that reruns --trial N.")
    ] = False,
) -> None:
    from launch import stats

    if fmt not in ("table", "csv", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table, csv or json")
    fmt = "json" if as_json else fmt
    exp = _open_local(experiment)
    spec, rows = _trials_of(exp)
    meta = exp.meta()
    if rerun or trial is not None:
        _print_rerun(exp, meta, spec, rows, trial)
        return
    seed_flag = meta.get("seed_flag", "seed")
    minimize = spec.objective.type == "minimize"
    objective = spec.objective.objectiveMetricName
    grouped = not per_trial and (
        plot is not None or metric is not None or stats.has_seed_axis(rows, seed_flag)
    )
    if metric is not None and metric not in spec.objective.metric_names:
        raise UsageError(
            f"{exp.name} has no metric `{metric}`",
            hint="use one of " + ", ".join(spec.objective.metric_names),
        )
    if not grouped:
        _print_rows(exp.name, spec, _with_mlflow_links(exp, rows), fmt=fmt)
        return
    groups = stats.group_by_config(
        rows, minimize=minimize, seed_flag=seed_flag, metric=metric, objective_name=objective
    )
    if plot is not None:
        from launch import plots

        title = f"{exp.name} · {metric or objective} by config, best first"
        if plot == "-":
            color = sys.stdout.isatty() and "NO_COLOR" not in __import__("os").environ
            sys.stdout.write(plots.plot_terminal(groups, objective=metric or objective, title=title,
                                                 minimize=minimize, color=color) + "\n")  # fmt: skip
        else:
            drawn = plots.plot_png(
                groups, plot, objective=metric or objective, title=title, minimize=minimize
            )
            _stderr().print(f"wrote {plot} ({drawn} configs)", highlight=False)
        return
    _print_groups(exp.name, groups, n_trials=len(rows), fmt=fmt)


def _print_groups(name: str, groups: list[Any], *, n_trials: int, fmt: str) -> None:
    """A seed sweep's distribution per config, as a table, CSV or JSON."""
    from launch import stats

    if fmt == "json":
        sys.stdout.write(stats.to_json(groups) + "\n")
    elif fmt == "csv":
        sys.stdout.write(stats.to_csv(groups))
    else:
        header, text_rows = stats.to_table_rows(groups)
        _stderr().print(
            f"{name}: {n_trials} trials in {len(groups)} configs, best mean first",
            highlight=False,
        )
        sys.stdout.write(stats.text_table(header, text_rows) + "\n")


def _print_rerun(
    exp: Any, meta: dict[str, Any], spec: Any, rows: list[Any], trial: int | None
) -> None:
    import os
    import time

    from launch import stats

    if trial is None:
        raise UsageError("--rerun needs the trial", hint="pass --trial N (see `launch results`)")
    row = next((r for r in rows if r.number == trial), None)
    if row is None:
        raise UsageError(
            f"{exp.name} has no trial {trial}", hint="see `launch results " + exp.name + "`"
        )
    if _is_cluster(exp):
        image = str(meta.get("image") or "")
        command = stats.rerun_command(
            row, command=meta.get("command", []), fixed=spec.fixed, image=image,
            commit=meta.get("commit"), subdir=meta.get("subdir", ""), gpus=int(meta.get("gpus") or 0),
        )  # fmt: skip
        repo = image.split("/", 1)[-1]
        _stderr().print(
            f"# trial {row.number} ({row.name}) of commit {str(meta.get('commit'))[:12]}; the image "
            "is in the cluster's registry: from a laptop, `kubectl -n launch-system port-forward "
            f"svc/registry 5000:5000` and use 127.0.0.1:5000/{repo}",
            highlight=False,
        )
    else:
        root = meta.get("repo_root")
        workdir = meta.get("workdir", "")
        base = meta.get("worktree") or root or ""
        subdir = str(Path(workdir).relative_to(base)) if base and workdir.startswith(base) else ""
        command = stats.rerun_command(
            row, command=meta["command"], fixed=spec.fixed, commit=meta.get("commit"),
            repo_root=root, subdir="" if subdir == "." else subdir,
            # Each printed command gets its own worktree: a second rerun never collides.
            scratch=time.strftime("-%Y%m%d-%H%M%S-") + str(os.getpid()),
            argv=getattr(exp.state().trials.get(row.name), "argv", None),
        )  # fmt: skip
    sys.stdout.write(command + "\n")


@app.command("compare", help="Does experiment B beat A? Welch's t-test on the best config of each.")
@_guard
def compare_cmd(
    experiment_a: Annotated[str, typer.Argument(help="The baseline experiment.")],
    experiment_b: Annotated[str, typer.Argument(help="The candidate experiment.")],
    metric: Annotated[str | None, typer.Option("--metric", help="Compare this metric.")] = None,
    as_json: JsonOpt = False,
) -> None:
    from launch import stats

    exp_a, exp_b = _open_local(experiment_a), _open_local(experiment_b)
    spec, rows_a = _trials_of(exp_a)
    _, rows_b = _trials_of(exp_b)
    comparison, _, _ = stats.compare_trials(
        rows_a, rows_b, minimize=spec.objective.type == "minimize",
        seed_flag=exp_a.meta().get("seed_flag", "seed"), metric=metric,
        objective_name=spec.objective.objectiveMetricName, name_a=exp_a.name, name_b=exp_b.name,
    )  # fmt: skip
    if as_json:
        sys.stdout.write(stats.comparison_to_json(comparison) + "\n")
    else:
        header, text_rows = stats.comparison_rows(comparison)
        sys.stdout.write(stats.text_table(header, text_rows) + "\n")
    if comparison.p is None:  # refused: too few finished trials for a t-test
        raise UsageError(
            comparison.verdict,
            hint="run each experiment with --seeds N (N >= 2) so its best config has several "
            "values, or wait until more trials finish",
        )
    if not as_json:
        _stdout().print(comparison.verdict, highlight=False)


@app.command("cancel", help="Stop an experiment: running trials are stopped, results are kept.")
@_guard
def cancel_cmd(experiment: ExpArg) -> None:
    import os
    import signal
    import time

    from launch import local, state

    exp = _open_local(experiment)
    if _is_cluster(exp):
        _cluster_cancel(exp)
        return
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


def _cluster_status(exp: Any, *, as_json: bool) -> None:
    import json

    from launch import katib, results, submit
    from launch.spec import LaunchSpec

    cluster, meta = _cluster_of(exp)
    spec = LaunchSpec.model_validate(meta["spec"])
    with cluster:
        obj = cluster.get("Experiment", meta["namespace"], exp.name)
        rows = submit.trial_rows(cluster, spec=spec, namespace=meta["namespace"], name=exp.name)
        pending = submit.pending_reasons(
            cluster, namespace=meta["namespace"], name=exp.name,
            states={r.name: r.status for r in rows}, kueue=bool(meta.get("queue")),
        )  # fmt: skip
    status, reason = katib.experiment_status(obj)
    rows = results.rank(rows, minimize=spec.objective.type == "minimize")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    best = next((r for r in rows if r.objective is not None), None)
    doc = {
        "name": exp.name, "backend": "katib", "namespace": meta["namespace"], "status": status,
        "reason": reason, "trials": counts, "katibUrl": meta.get("katib_url"),
        "best": None if best is None else {"trial": best.name, "objective": best.objective, "params": dict(best.params)},
        "pending": pending,
    }  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out = _stdout()
    out.print(
        f"{meta['namespace']}/{exp.name}: {status}" + (f" ({reason})" if reason else ""),
        highlight=False,
    )
    out.print(
        "trials: "
        + (", ".join(f"{n} {_status_words(s)}" for s, n in sorted(counts.items())) or "none yet"),
        highlight=False,
    )
    if best is not None:
        objective = spec.objective.objectiveMetricName
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        out.print(f"best: {best.name} {objective}={best.objective:.6g}  {params}", highlight=False)
    numbers = {r.name: r.number for r in rows}
    for trial_name, why in pending.items():
        out.print(f"trial {numbers[trial_name]} ({trial_name}) pending: {why}", highlight=False)
    if meta.get("katib_url"):
        out.print(f"Katib: {meta['katib_url']}", highlight=False)


def _cluster_logs(exp: Any, trial: int | None, *, follow: bool) -> None:
    from launch import katib, submit
    from launch.spec import LaunchSpec

    cluster, meta = _cluster_of(exp)
    spec = LaunchSpec.model_validate(meta["spec"])
    ns = meta["namespace"]
    with cluster:
        rows = submit.trial_rows(cluster, spec=spec, namespace=ns, name=exp.name)
        if not rows:
            raise UsageError(
                f"{exp.name} has no trials yet", hint=f"follow it with `launch watch {exp.name}`"
            )
        row = rows[-1] if trial is None else next((r for r in rows if r.number == trial), None)
        if row is None:
            raise UsageError(
                f"{exp.name} has no trial {trial}", hint=f"trials are numbered 1 to {len(rows)}"
            )
        pods = cluster.list("Pod", ns, label_selector=f"{submit.TRIAL_LABEL}={row.name}")
        if not pods:
            raise UsageError(
                f"trial {row.number} ({row.name}) has no pod (not started yet, or deleted)",
                hint=f"see why: launch status {exp.name}",
            )
        pod = pods[-1]["metadata"]["name"]
        _stderr().print(f"== {row.name} ({row.status}) pod {ns}/{pod}", highlight=False)
        if follow:
            for line in cluster.stream_pod_logs(ns, pod, container=katib.PRIMARY_CONTAINER):
                sys.stdout.write(line if line.endswith("\n") else line + "\n")
                sys.stdout.flush()
        else:
            sys.stdout.write(cluster.pod_logs(ns, pod, container=katib.PRIMARY_CONTAINER))


def _cluster_cancel(exp: Any) -> None:
    """Save the results first (deleting an Experiment deletes its metrics), then delete it."""
    from launch import results, state, submit

    spec, rows = _trials_of(exp)
    (exp.path / "results.json").write_text(results.to_json(rows) + "\n")
    (exp.path / "results.csv").write_text(results.to_csv(rows, spec.objective.objectiveMetricName))
    cluster, meta = _cluster_of(exp)
    with cluster:
        submit.delete_experiment(cluster, namespace=meta["namespace"], name=exp.name)
    state.write_json_atomic(exp.meta_path, {**meta, "deleted": True})
    _stderr().print(
        f"deleted {meta['namespace']}/{exp.name}; {len(rows)} trials saved to {exp.path / 'results.csv'} "
        f"(launch results {exp.name} still works)",
        highlight=False,
    )


@app.command(
    "doctor",
    help="Check the cluster setup in order (kubeconfig, API, Katib webhook, namespace label, "
    "registry, builds, MLflow, Kueue) and say what to fix. Local sweeps need none of it. "
    "Exit 0 when all pass, 2 when a check failed.",
)
@_guard
def doctor_cmd(
    as_json: JsonOpt = False,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."
        ),
    ] = None,
) -> None:
    import json

    from launch import config, doctor

    checks = doctor.run_checks(config.load_settings(), kubeconfig=kubeconfig)
    if as_json:
        sys.stdout.write(json.dumps(doctor.to_json(checks), indent=2) + "\n")
    else:
        sys.stdout.write(doctor.render(checks))
    if not doctor.passed(checks):  # the setup needs the printed fix: a configuration error
        raise typer.Exit(int(ExitCode.USAGE))


@app.command(
    "ui", help="Serve the MLflow UI of the local store (where `launch results` links point)."
)
@_guard
def ui_cmd(
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (result links use 5000).")
    ] = 5000,
) -> None:
    from launch import config, state, tracking

    home = state.home_dir(config.load_settings()["home"])
    raise typer.Exit(tracking.ui(tracking.local_tracking_uri(home), port=port))


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
    rows = [
        [key, "" if settings.values[key] is None else str(settings.values[key]),
         settings.sources[key], meta.help]
        for key, meta in config.KEYS.items()
    ]  # fmt: skip
    out = _stdout()
    sys.stdout.write(_config_text(rows, width=out.width if out.is_terminal else 1000))
    chosen, why = settings.backend()
    _stderr().print(f"backend: {chosen} ({why})", highlight=False)


def _config_text(rows: list[list[str]], *, width: int) -> str:
    """`launch config`: one aligned row per setting when it fits in `width` columns; else (an
    80-column terminal) each setting on one line, `key  value  (source)`, and its meaning
    indented on the next (two lines a setting). Values are never cut: they are what a user
    copies."""
    import textwrap

    from launch import stats

    table = stats.text_table(["setting", "value", "source", "meaning"], rows)
    if max(map(len, table.splitlines())) <= width:
        return table
    key_width = max(len(r[0]) for r in rows)
    lines = []
    for key, value, source, meaning in rows:
        lines.append(f"{key:<{key_width}}  {value or '-'}  ({source})")
        lines += textwrap.wrap(
            meaning, width=max(40, width), initial_indent="    ", subsequent_indent="    "
        )
    return "\n".join(lines) + "\n"


def _status_words(status: str) -> str:
    """A trial status for a count: `MetricsUnavailable` -> `metrics unavailable` (not the
    run-together `metricsunavailable`), `Running` -> `running`."""
    import re

    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", status).lower()


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


@app.command(
    "completion",
    help='Print the shell completion script for bash, zsh or fish: eval "$(launch completion bash)".',
)
def completion_cmd(shell: Annotated[str, typer.Argument(help="bash, zsh or fish.")]) -> None:
    from typer._completion_shared import get_completion_script  # Typer's own generator

    if shell not in ("bash", "zsh", "fish"):
        raise typer.BadParameter("use bash, zsh or fish")
    typer.echo(
        get_completion_script(prog_name="launch", complete_var="_LAUNCH_COMPLETE", shell=shell)
    )


def main() -> None:
    """Console-script entry point."""
    import os

    if "_LAUNCH_COMPLETE" in os.environ:  # the shell asks for completions
        from typer.completion import completion_init  # type: ignore[attr-defined]

        completion_init()
    app(args=_with_default_command(sys.argv[1:]), prog_name="launch")
