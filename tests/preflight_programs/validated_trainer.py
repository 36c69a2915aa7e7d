"""A Draccus trainer whose config has a required field (`data`, no default) and a check in
`__post_init__` (lr at most 0.05); it touches $RAN_MARKER when its main runs."""

import os
from dataclasses import dataclass
from pathlib import Path

import draccus


@dataclass
class Config:
    data: str
    lr: float = 0.01
    tensorboard_dir: str = "tb"

    def __post_init__(self) -> None:
        if self.lr > 0.05:
            raise ValueError(f"lr {self.lr} is too large for this model")


@draccus.wrap()
def main(cfg: Config) -> None:
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(cfg.tensorboard_dir)
    writer.add_scalar("loss", cfg.lr, 0)
    writer.close()


if __name__ == "__main__":
    main()
