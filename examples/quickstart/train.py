"""A tiny trainer that follows launch's trial contract.

A Draccus config (nested: `--optim.lr=0.01`), scalars written with tensorboardX to
`--tensorboard_dir`. It fits a one-hidden-layer network to a noisy sine with NumPy, so a sweep
finishes in seconds on a CPU.

    python train.py --optim.lr=0.05 --hidden=16 --activation=tanh --tensorboard_dir=runs/try
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import draccus
import numpy as np
from tensorboardX import SummaryWriter

try:  # An MLflow run named after the Katib trial, with params, tags and the TensorBoard scalars.
    from launch.mlflow_wrapper import trial_run
except ImportError:  # launch is not installed where this runs: train without tracking

    def trial_run(config: object) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class OptimConfig:
    lr: float = 0.05  # learning rate of plain SGD with momentum
    momentum: float = 0.9


@dataclass
class TrainConfig:
    optim: OptimConfig = field(default_factory=OptimConfig)
    hidden: int = 16  # hidden units
    activation: str = "tanh"  # tanh | relu
    epochs: int = 200
    seed: int = 0
    tensorboard_dir: str = "runs/default"  # launch passes --tensorboard_dir


def main(cfg: TrainConfig) -> None:
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(-3, 3, size=(512, 1))
    y = np.sin(x) + 0.1 * rng.normal(size=x.shape)
    x_val = np.linspace(-3, 3, 128).reshape(-1, 1)
    y_val = np.sin(x_val)

    w1 = rng.normal(scale=1.0, size=(1, cfg.hidden))
    b1 = np.zeros(cfg.hidden)
    w2 = rng.normal(scale=1.0 / np.sqrt(cfg.hidden), size=(cfg.hidden, 1))
    b2 = np.zeros(1)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]

    def act(z: np.ndarray) -> np.ndarray:
        return np.tanh(z) if cfg.activation == "tanh" else np.maximum(z, 0.0)

    def act_grad(z: np.ndarray) -> np.ndarray:
        return 1.0 - np.tanh(z) ** 2 if cfg.activation == "tanh" else (z > 0).astype(float)

    writer = SummaryWriter(cfg.tensorboard_dir)
    for epoch in range(cfg.epochs):
        z = x @ w1 + b1
        h = act(z)
        pred = h @ w2 + b2
        err = pred - y
        loss = float(np.mean(err**2))
        g_pred = 2 * err / len(x)
        g_w2, g_b2 = h.T @ g_pred, g_pred.sum(0)
        g_z = (g_pred @ w2.T) * act_grad(z)
        g_w1, g_b1 = x.T @ g_z, g_z.sum(0)
        for p, v, g in zip(params, velocity, [g_w1, g_b1, g_w2, g_b2], strict=True):
            v *= cfg.optim.momentum
            v -= cfg.optim.lr * g
            p += v
        if epoch % 10 == 9 or epoch == cfg.epochs - 1:
            val = float(np.mean((act(x_val @ w1 + b1) @ w2 + b2 - y_val) ** 2))
            writer.add_scalar("train_loss", loss, epoch)
            writer.add_scalar("val_loss", val if np.isfinite(val) else 1e9, epoch)
    writer.close()
    print(f"final train_loss={loss:.4f} val_loss={val:.4f}")


if __name__ == "__main__":
    cfg = draccus.parse(config_class=TrainConfig)
    with trial_run(cfg):
        main(cfg)
