"""Where settings come from: LAUNCH_* variables, the project's `.launch.toml` (or `[tool.launch]`
in pyproject.toml) and the user's config file, merged by `launch.settings.resolve`."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from launch.errors import UsageError
from launch.settings import KEYS, SECRET_KEYS, Settings, resolve

__all__ = ["KEYS", "Settings", "load_settings", "project_file", "resolve", "user_file"]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path}: not valid TOML: {exc}", hint="fix the file or remove it"
        ) from None


def project_file(start: Path) -> tuple[str, Mapping[str, Any]] | None:
    """`.launch.toml`, else `[tool.launch]` of pyproject.toml, in `start` or its parents."""
    for directory in (start, *start.parents):
        dotfile = directory / ".launch.toml"
        if dotfile.is_file():
            return str(dotfile), _read_toml(dotfile)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("launch")
            if table is not None:
                return f"{pyproject} [tool.launch]", table
        if (directory / ".git").exists():
            break
    return None


def user_file(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "launch" / "config.toml"


def load_settings(flags: Mapping[str, Any] | None = None, *, cwd: Path | None = None) -> Settings:
    """Read env and the settings files, then resolve (the I/O edge of this module)."""
    env = dict(os.environ)
    path = user_file(env)
    user = (str(path), _read_toml(path)) if path.is_file() else None
    if user is not None and any(key in user[1] for key in SECRET_KEYS):
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:  # as ssh does with a private key: a secret others can read is not one
            raise UsageError(
                f"{path} holds a secret (`registry_token`) but others may read it (mode {mode:o})",
                hint=f"chmod 600 {path}",
            )
    return resolve(flags=flags or {}, env=env, project=project_file(cwd or Path.cwd()), user=user)
