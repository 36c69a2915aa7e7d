"""An argparse trainer (no Draccus); leaves `RAN` in its cwd when it runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--tensorboard_dir", default="tb")
    args = parser.parse_args()
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(args.tensorboard_dir)
    for step in range(2):
        writer.add_scalar("loss", args.lr * args.layers + 1 - step, step)
    writer.close()


if __name__ == "__main__":
    main()
