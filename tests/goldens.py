"""The regenerate-goldens switch (`make goldens`, LAUNCH_UPDATE_GOLDENS=1): never under CI, where
rewriting a golden file would turn every rendering change into a pass."""

from __future__ import annotations

import os


def update_requested(env: dict[str, str] | None = None) -> bool:
    """True when the run asks to rewrite golden files; refused (RuntimeError) under `CI`."""
    env = dict(os.environ) if env is None else env
    if env.get("LAUNCH_UPDATE_GOLDENS") != "1":
        return False
    if env.get("CI"):
        raise RuntimeError(
            "LAUNCH_UPDATE_GOLDENS=1 under CI: goldens are regenerated on purpose, by a person "
            "(`make goldens`), never by CI"
        )
    return True
