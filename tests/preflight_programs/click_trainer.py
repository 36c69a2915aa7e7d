"""A click trainer (no Draccus); leaves `RAN` in its cwd when it runs."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command()
@click.option("--lr", type=float, default=0.1)
@click.option("--layers", type=int, default=1)
@click.option("--tensorboard_dir", default="tb")
def main(lr: float, layers: int, tensorboard_dir: str) -> None:
    """Train."""
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(tensorboard_dir)
    for step in range(2):
        writer.add_scalar("loss", lr * layers + 1 - step, step)
    writer.close()


if __name__ == "__main__":
    main()
