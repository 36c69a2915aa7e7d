"""What the metadata instructions after the source copy do to an image config (ENV, LABEL,
WORKDIR, CMD, ENTRYPOINT, EXPOSE, USER, ARG), and where the copy writes, as Docker does it
(dockerfile2llb/convert.go). Pure: standard library and launch's Dockerfile parser only."""

from __future__ import annotations

import copy as _copy
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from launch.dockerfile import HINT as _HINT
from launch.dockerfile import (
    DockerfileError,
    Instruction,
    SourceCopy,
    arg_pairs,
    describe,
    error_at,
)
from launch.dockerfile_words import process as _process


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Docker's variable substitution of one word: `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
    `${VAR:+w}`, `${VAR:?msg}`, `${VAR#p}`, `${VAR%p}`, `${VAR/p/r}`; quotes removed, `\\$` a
    literal `$`, unset variables empty. Raises DockerfileError for a bad substitution."""
    try:
        return _process(word, env, escape)
    except ValueError as exc:
        raise DockerfileError(f"{word}: {exc}", hint=_HINT) from None


def _env(config: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in (config.get("config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def _abs(base: str, path: str) -> str:
    joined = posixpath.normpath(posixpath.join("/", base or "/", path))
    return "/" + joined.lstrip("/")


def resolve_dest(copy: SourceCopy, config: Mapping[str, Any], args: Mapping[str, str]) -> str:
    """The absolute directory the source copy writes to in the dependency image: variables
    expanded (the image's Env wins over ARGs, as in Docker), relative to its WorkingDir."""
    scope = {**args, **_env(config)}
    try:
        dest = _process(copy.dest, scope, copy.escape)
    except ValueError as exc:
        raise DockerfileError(f"Dockerfile:{copy.line}: {copy.dest}: {exc}", hint=_HINT) from None
    return _abs(str((config.get("config") or {}).get("WorkingDir") or "/"), dest)


def arg_values(
    stage_args: Mapping[str, str | None], build_args: Mapping[str, str]
) -> dict[str, str]:
    """The ARG values in scope at the copy: a build arg, else the default (expanded), else unset."""
    values: dict[str, str] = {}
    for name, default in stage_args.items():
        if name in build_args:
            values[name] = build_args[name]
        elif default is not None:
            values[name] = expand(default, values)
    return values


def _ports(spec: str) -> list[str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", port)
    if not match or proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid port {spec!r}")
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if high < low or high > 65535:
        raise ValueError(f"invalid port range {spec!r}")
    return [f"{n}/{proto}" for n in range(low, high + 1)]


def apply(
    config: Mapping[str, Any],
    after: Sequence[Instruction],
    args: Mapping[str, str],
    *,
    cmd_set: bool = False,
    build_args: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A new image config with the metadata instructions applied as BuildKit applies them.

    `args` are the ARG values in scope at the copy (`arg_values`); an ARG after the copy takes
    its value from `build_args`, else its default. ENTRYPOINT clears the inherited Cmd unless
    the stage set CMD itself (`cmd_set`, `Split.cmd_set`): dockerfile2llb dispatchEntrypoint.
    A WORKDIR is only recorded: the runtime creates a missing working directory.
    """
    new = _copy.deepcopy(dict(config))
    cfg = new["config"] = dict(new.get("config") or {})
    scope_args = dict(args)
    env = list(cfg.get("Env") or [])
    for inst in after:
        scope = {**scope_args, **_env({"config": {"Env": env}})}
        try:
            _apply_one(inst, cfg, env, scope, scope_args, build_args or {})
        except ValueError as exc:
            raise error_at("Dockerfile", inst.line, f"`{describe(inst)}`: {exc}") from None
        cmd_set = cmd_set or inst.keyword == "CMD"
        if inst.keyword == "ENTRYPOINT" and not cmd_set:
            cfg["Cmd"] = None
    if env or "Env" in cfg:
        cfg["Env"] = env
    return new


def _apply_one(
    inst: Instruction,
    cfg: dict[str, Any],
    env: list[str],
    scope: dict[str, str],
    scope_args: dict[str, str],
    build_args: Mapping[str, str],
) -> None:
    def ex(word: str) -> str:
        return _process(word, scope, inst.escape)

    keyword = inst.keyword
    if keyword in ("ENV", "LABEL"):
        if "=" in inst.args[0]:
            pairs = [w.partition("=")[::2] for w in inst.args]
        else:  # the legacy `ENV name value with spaces` form
            pairs = [(inst.args[0], inst.args[1])]
        # Every value sees the variables as they were before this instruction (Docker's rule).
        done = [(ex(k), ex(v)) for k, v in pairs]
        if keyword == "LABEL":
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(done)}
        for key, value in done if keyword == "ENV" else []:
            at = [n for n, item in enumerate(env) if item.partition("=")[0] == key]
            if at:
                env[at[0]] = f"{key}={value}"
            else:
                env.append(f"{key}={value}")
    elif keyword == "ARG":
        for name, default in arg_pairs(inst).items():
            if name in build_args:
                scope_args[name] = build_args[name]
            elif default is not None:
                scope_args[name] = ex(default)
    elif keyword == "WORKDIR":
        cfg["WorkingDir"] = _abs(str(cfg.get("WorkingDir") or "/"), ex(inst.args[0]))
    elif keyword == "USER":
        cfg["User"] = ex(inst.args[0])
    elif keyword == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        for spec in inst.args:
            for port in _ports(ex(spec)):
                ports[port] = {}
        cfg["ExposedPorts"] = ports
    elif keyword in ("CMD", "ENTRYPOINT"):
        shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
        command = list(inst.args) if inst.json_form else [*shell, inst.text]
        cfg["Cmd" if keyword == "CMD" else "Entrypoint"] = command
    else:
        raise ValueError(f"{keyword} is not a metadata instruction")
