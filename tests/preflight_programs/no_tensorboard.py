"""A Draccus trainer whose config has no `tensorboard_dir` field."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import draccus


@dataclass
class Config:
    lr: float = 0.1


def main() -> None:
    draccus.parse(config_class=Config)
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()


if __name__ == "__main__":
    main()
