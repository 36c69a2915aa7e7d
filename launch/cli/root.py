"""The Typer app, its root options, error handling and the entry point.

Start-up matters (`launch --help` must stay near a bare Typer app), so everything beyond Typer is
imported inside the commands that need it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from launch.errors import ExitCode, LaunchError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 usage, configuration or search.yaml error, or a "
    "problem the preflight found (also a "
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
    "doctor", "completion", "ui", "seeds", "import",
)  # fmt: skip

_debug = False

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: LaunchError) -> NoReturn:
    from rich.markup import escape

    err = stderr()
    # Escaped: messages quote user text and commands such as `uv tool install '...[plot]'`.
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
    if exc.hint:
        err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}", markup=True, highlight=False)
    for message, hint in exc.more:
        err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
        if hint:
            err.print(f"[bold cyan]hint:[/] {escape(hint)}", markup=True, highlight=False)
    if exc.closing:
        err.print(escape(exc.closing), markup=True, highlight=False)
    raise typer.Exit(int(exc.exit_code))


def stderr() -> Any:
    from launch.terminal import Console

    # Long paths and URLs stay whole, copy-pasteable; no markup: printed text is user text.
    return Console(stderr=True, soft_wrap=True, markup=False)


def stdout() -> Any:
    from launch.terminal import Console

    console = Console(soft_wrap=True, markup=False)
    if not console.is_terminal:
        # A pipe or a file gets whole rows: never cut table cells to an assumed 80 columns.
        console = Console(soft_wrap=True, width=1000, markup=False)
    return console


def guard(func: F) -> F:
    """Turn LaunchError into `error:`/`hint:` + exit code; tracebacks only with --debug."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LaunchError as exc:
            if _debug:
                raise
            fail(exc)
        except KeyboardInterrupt:
            stderr().print("interrupted")
            raise typer.Exit(int(ExitCode.DETACHED)) from None
        except BrokenPipeError:
            # The reader left (`launch results | head`): what it wanted was printed.
            discard_output()
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line, the traceback only with --debug
            if _debug:
                raise
            fail(
                LaunchError(
                    f"unexpected {type(exc).__name__}: {exc}",
                    hint="run again with `launch --debug ...` for the traceback, and report it",
                )
            )

    return wrapper  # type: ignore[return-value]


def discard_output() -> None:
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


def warn(text: str | None, hint: str | None = None) -> None:
    if text:
        stderr().print(f"warning: {text}" + (f"\nhint: {hint}" if hint else ""), highlight=False)


def open_experiment(name: str) -> tuple[Any, Any]:
    """The experiment's directory and the backend it ran on; damaged records are read anyway,
    with one warning."""
    from launch import backends, config, state

    exp = state.Experiment.open(state.home_dir(config.load_settings().home), name)
    backend = backends.of(exp)
    warn(backend.problems(exp))
    return exp, backend


def with_default_command(argv: list[str]) -> list[str]:
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
    import os

    if "_LAUNCH_COMPLETE" in os.environ:  # the shell asks for completions
        from typer.completion import completion_init  # type: ignore[attr-defined]

        completion_init()
    app(args=with_default_command(sys.argv[1:]), prog_name="launch")
