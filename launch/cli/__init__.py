"""The `launch` command line: each command module parses its flags, asks a backend
(`launch.backends`) and renders the answer; none of them drives a process or a cluster.

Importing this package registers every command on `app`.
"""

from launch.cli import admin, experiments, results, run, seeds  # noqa: F401  (registers the commands)
from launch.cli.root import app, fail, main, with_default_command

__all__ = ["app", "fail", "main", "with_default_command"]
