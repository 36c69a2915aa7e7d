"""The backends, by the name an experiment's record keeps: a new backend is a module here and
one line in `BACKENDS`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from launch.errors import UsageError

if TYPE_CHECKING:
    from launch.backends.base import Backend
    from launch.state import Experiment

BACKENDS = {
    "local": ("launch.backends.local", "LocalBackend"),
    "katib": ("launch.backends.katib", "KatibBackend"),
    "archive": ("launch.backends.archive", "ArchiveBackend"),  # `launch import`: read-only
}


def named(name: str) -> Backend:
    """The backend called `name` (imported only when chosen: each costs start-up time)."""
    import importlib

    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}", hint="use " + ", ".join(BACKENDS))
    module, cls = BACKENDS[name]
    backend: Backend = getattr(importlib.import_module(module), cls)()
    return backend


def of(exp: Experiment) -> Backend:
    """The backend an experiment ran on (its record says; older local records say nothing)."""
    return named(str(exp.meta().get("backend") or "local"))
