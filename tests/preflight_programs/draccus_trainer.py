"""A Draccus trainer with many field kinds; it leaves `RAN` in its cwd and a tensorboard dir
when its main runs (the preflight must stop it before that)."""

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import draccus


class Act(enum.Enum):
    relu = "relu"
    tanh = "tanh"


@dataclass
class Optim:
    lr: float = 0.1
    momentum: float = 0.0


@dataclass
class ModelConfig(draccus.ChoiceRegistry):
    depth: int = 1


@ModelConfig.register_subclass("a")
@dataclass
class ModelA(ModelConfig):
    width: int = 8


@ModelConfig.register_subclass("b")
@dataclass
class ModelB(ModelConfig):
    heads: int = 2


@dataclass
class Config:
    optim: Optim = field(default_factory=Optim)
    model: ModelConfig = field(default_factory=ModelA)
    layers: int = 1
    steps: int = 3
    epochs: int = 1
    warmup: int = 0
    batch: int = 4
    act: Act = Act.relu
    sched: Literal["cosine", "linear"] = "cosine"
    patience: Optional[int] = None  # noqa: UP045
    nesterov: bool = False
    data: Path = Path("data")
    dims: list[int] = field(default_factory=lambda: [4])
    sizes: list[int] = field(default_factory=lambda: [4])
    name: str = "run"
    tag: str = "t"
    seed: int = 0
    tensorboard_dir: str = "tb"


@draccus.wrap()
def main(cfg: Config) -> None:
    Path(os.environ.get("RAN_MARKER", "RAN")).touch()
    Path(cfg.tensorboard_dir).mkdir(parents=True, exist_ok=True)
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(cfg.tensorboard_dir)
    for step in range(2):
        writer.add_scalar("loss", cfg.optim.lr * cfg.layers + 1 - step, step)
    writer.close()


if __name__ == "__main__":
    main()
