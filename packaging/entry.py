"""Entry script of the frozen `launch` (PyInstaller); the console script is `launch.cli:main`.

Before anything else, undo what PyInstaller's bootloader adds to the environment, so the processes
`launch` starts (`git`, and above all the trials: the user's own `python`) see the user's
environment, not the bundle's: the bootloader prepends the bundle's directory to
`LD_LIBRARY_PATH` (keeping the original in `LD_LIBRARY_PATH_ORIG`), which would make the user's
programs load our copies of libssl, libz, libstdc++... `launch` itself is not affected: the
dynamic loader read `LD_LIBRARY_PATH` when this process started.

`LAUNCH_DIST_PROBE=<module>,<module>...` makes the binary report, as JSON on stdout, which of those
modules import (used by tests/test_dist.py to check that lazily imported modules were bundled);
`LAUNCH_DIST_PROBE=@loaded` runs the command normally and then reports the heavy modules it loaded.
"""

from __future__ import annotations

import os
import sys

_BOOTLOADER_VARS = ("LD_LIBRARY_PATH", "LIBPATH", "DYLD_LIBRARY_PATH")
HEAVY = ("kubernetes", "mlflow", "optuna", "matplotlib", "numpy", "sqlalchemy", "requests")


def restore_environment(environ: dict[str, str] | os._Environ[str]) -> None:
    """Give back the user's library path (and drop PyInstaller's private variables)."""
    for var in _BOOTLOADER_VARS:
        orig = environ.pop(var + "_ORIG", None)
        if orig is not None:
            environ[var] = orig
        elif var in environ and getattr(sys, "_MEIPASS", None):
            # No _ORIG: the user had none; drop the value only if it is the bootloader's.
            parts = [p for p in environ[var].split(os.pathsep) if not _in_bundle(p)]
            if parts:
                environ[var] = os.pathsep.join(parts)
            else:
                del environ[var]
    for var in [v for v in environ if v.startswith(("_PYI_", "_MEIPASS"))]:
        del environ[var]


def _in_bundle(path: str) -> bool:
    bundle = os.path.realpath(getattr(sys, "_MEIPASS", ""))
    real = os.path.realpath(path) if path else ""
    return bool(bundle) and (real == bundle or real.startswith(bundle + os.sep))


def _probe(spec: str) -> None:
    import importlib
    import json

    report: dict[str, str] = {}
    for name in filter(None, spec.split(",")):
        try:
            importlib.import_module(name)
            report[name] = "ok"
        except Exception as exc:  # report every failure, not only ImportError
            report[name] = f"{type(exc).__name__}: {exc}"
    sys.stdout.write(json.dumps(report) + "\n")


def _report_loaded() -> None:
    import json

    loaded = sorted(m for m in HEAVY if m in sys.modules)
    sys.stderr.write("LAUNCH_DIST_LOADED=" + json.dumps(loaded) + "\n")


def main() -> None:
    restore_environment(os.environ)
    probe = os.environ.pop("LAUNCH_DIST_PROBE", "")
    if probe and probe != "@loaded":
        _probe(probe)
        return
    if probe == "@loaded":
        import atexit

        atexit.register(_report_loaded)
    from launch.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
