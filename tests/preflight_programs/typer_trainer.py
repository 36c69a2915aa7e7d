"""A typer trainer (no Draccus; rich formats its --help); touches $RAN_MARKER when it runs."""

import os
from pathlib import Path

import typer


def main(
    lr: float = typer.Option(0.1, "--lr"),
    layers: int = typer.Option(1, "--layers"),
    tensorboard_dir: str = typer.Option("tb", "--tensorboard_dir"),
) -> None:
    """Train."""
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(tensorboard_dir)
    for step in range(2):
        writer.add_scalar("loss", lr * layers + 1 - step, step)
    writer.close()


if __name__ == "__main__":
    typer.run(main)
