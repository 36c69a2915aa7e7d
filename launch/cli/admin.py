"""Commands about the setup rather than an experiment: doctor, ui, config, completion."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from launch.cli.options import JsonOpt
from launch.cli.root import app, guard, stderr, stdout
from launch.errors import ExitCode


@app.command(
    "doctor",
    help="Check the cluster setup in order (kubeconfig, API, Katib webhook, namespace label, "
    "registry, builds, MLflow, Kueue) and say what to fix. Local sweeps need none of it. "
    "Exit 0 when all pass, 2 when a check failed.",
)
@guard
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
@guard
def ui_cmd(
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (result links use 5000).")
    ] = 5000,
) -> None:
    from launch import config, state, tracking

    home = state.home_dir(config.load_settings().home)
    raise typer.Exit(tracking.ui(tracking.local_tracking_uri(home), port=port))


@app.command("config", help="Show the effective settings and where each comes from.")
@guard
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
    out = stdout()
    sys.stdout.write(config_text(rows, width=out.width if out.is_terminal else 1000))
    chosen, why = settings.backend()
    stderr().print(f"backend: {chosen} ({why})", highlight=False)


def config_text(rows: list[list[str]], *, width: int) -> str:
    """`launch config`: one aligned row per setting when it fits in `width` columns; else (an
    80-column terminal) each setting on one line, `key  value  (source)`, and its meaning
    indented on the next (two lines a setting). Values are never cut: they are what a user
    copies."""
    import textwrap

    from launch import tables

    table = tables.text_table(["setting", "value", "source", "meaning"], rows)
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
