"""User and project settings with their sources: flags > LAUNCH_* env > project file > user file > defaults.

`resolve` is pure; `load_settings` does the I/O (reads env and two TOML files). Standard library only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch.errors import UsageError
from launch.kaniko import DEFAULT_KANIKO_IMAGE

# Defaults match deploy/ (names shared with deploy/ are checked by a contract test once deploy/ lands).
REGISTRY_PUSH = "registry.launch-system.svc.cluster.local:5000"  # in-cluster Service, for Kaniko
REGISTRY_PULL = "127.0.0.1:30500"  # NodePort: containerd on nodes cannot resolve *.svc names
KANIKO_IMAGE = DEFAULT_KANIKO_IMAGE


@dataclass(frozen=True)
class Key:
    """One setting: its default, how to parse text for it, and what it means (for `launch config`)."""

    default: Any
    help: str
    kind: type = str


KEYS: dict[str, Key] = {
    "backend": Key("auto", "auto | local | katib; auto picks katib when a cluster is configured"),
    "namespace": Key("default", "Kubernetes namespace of experiments and build Jobs"),
    "context": Key(None, "kubeconfig context (default: the current context)"),
    "registry": Key(REGISTRY_PUSH, "registry host:port Kaniko pushes to (in-cluster name)"),
    "registry_pull": Key(REGISTRY_PULL, "registry host:port nodes pull trial images from"),
    "registry_url": Key(
        None, "direct URL of the registry from this machine (default: API service proxy)"
    ),
    "registry_insecure": Key(True, "the registry speaks plain HTTP", bool),
    "katib_url": Key(None, "Katib UI base URL, for printed links"),
    "mlflow_tracking_uri": Key(None, "MLflow tracking URI given to trials (cluster)"),
    "mlflow_url": Key(None, "MLflow UI base URL, for printed links"),
    "kaniko_image": Key(KANIKO_IMAGE, "Kaniko executor image for in-cluster builds"),
    "platform": Key("linux/amd64", "platform images are built for"),
    "git_secret": Key(
        "git-credentials", "Secret with GIT_USERNAME/GIT_PASSWORD for Kaniko's git context"
    ),
    "build_service_account": Key("launch-builder", "ServiceAccount of build Jobs"),
    "seed_flag": Key("seed", "flag name that receives the seed in seed sweeps"),
    "home": Key(".launch", "directory for local experiments, journals and logs"),
    # What a cluster trial needs besides GPUs: project defaults for the flags of the same name.
    "cpus": Key(None, "CPU request of each trial (e.g. 8)"),
    "memory": Key(None, "memory request and limit of each trial (e.g. 32Gi)"),
    "shm_size": Key(None, "size of /dev/shm for data loaders (e.g. 8Gi)"),
    "env": Key((), "environment of trials, K=V entries", list),
    "secret_env": Key((), "Secrets whose keys become trial environment variables", list),
    "volume": Key((), "PVC:/path[:ro] mounts for datasets and checkpoints", list),
    "node_selector": Key((), "node labels trials must run on, K=V entries", list),
    "toleration": Key((), "taints trials tolerate: key[=value][:Effect]", list),
    "queue": Key(None, "Kueue LocalQueue of trial Jobs"),
    "priority": Key(None, "Kueue WorkloadPriorityClass of trial Jobs"),
}

CLUSTER_KEYS = ("context", "registry_url", "katib_url")


@dataclass(frozen=True)
class Settings:
    """Effective settings, each with where it came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str) -> Any:
        return self.values.get(key)

    @property
    def cluster_configured(self) -> bool:
        """A cluster profile exists when any cluster-only key was set somewhere other than defaults."""
        return any(self.sources.get(key, "default") != "default" for key in CLUSTER_KEYS)

    def backend(self) -> tuple[str, str]:
        """The backend to use and why, for the CLI to say."""
        chosen = self.values["backend"]
        if chosen != "auto":
            return chosen, f"backend set by {self.sources['backend']}"
        if self.cluster_configured:
            return "katib", "a cluster is configured (" + ", ".join(
                f"{k} from {self.sources[k]}"
                for k in CLUSTER_KEYS
                if self.sources.get(k, "default") != "default"
            ) + ")"
        return (
            "local",
            "no cluster configured (set `context` or `katib_url`, or pass --backend katib)",
        )


def _parse(key: str, raw: Any, source: str) -> Any:
    spec = KEYS[key]
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UsageError(
            f"{source}: {key}: expected true or false, got {raw!r}", hint=f"set {key} = true"
        )
    if raw is None:
        return None
    if spec.kind is list:
        # A TOML array, or comma-separated text in an env var / flag.
        items = [x.strip() for x in raw.split(",")] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
            raise UsageError(
                f"{source}: {key}: expected a list of strings, got {raw!r}",
                hint=f'write {key} = ["..."]',
            )
        return tuple(x for x in items if x)
    if not isinstance(raw, str):
        raise UsageError(
            f"{source}: {key}: expected a string, got {raw!r}", hint=f'quote it: {key} = "{raw}"'
        )
    if key == "backend" and raw not in ("auto", "local", "katib"):
        raise UsageError(
            f"{source}: backend: unknown backend {raw!r}", hint="use auto, local or katib"
        )
    return raw


def _check_keys(table: Mapping[str, Any], source: str) -> None:
    import difflib

    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            raise UsageError(
                f"{source}: unknown setting `{key}`",
                hint=f"did you mean `{close[0]}`?"
                if close
                else "run `launch config` to list settings",
            )


def resolve(
    *,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    project: tuple[str, Mapping[str, Any]] | None,
    user: tuple[str, Mapping[str, Any]] | None,
) -> Settings:
    """Merge the layers (pure). `project`/`user` are (label, table); flags with None are unset."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    flags = {k: v for k, v in flags.items() if v not in (None, (), [])}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    for layer in (user, project):
        if layer is not None:
            _check_keys(layer[1], layer[0])
            layers.append(layer)
    env_table = {k[len("LAUNCH_") :].lower(): v for k, v in env.items() if k.startswith("LAUNCH_")}
    env_table = {k: v for k, v in env_table.items() if k in KEYS}
    layers.append(("env LAUNCH_*", env_table))
    layers.append(("flag", dict(flags)))
    for key, spec in KEYS.items():
        values[key], sources[key] = spec.default, "default"
        for label, table in layers:
            if key in table:
                where = f"env LAUNCH_{key.upper()}" if label == "env LAUNCH_*" else label
                values[key], sources[key] = _parse(key, table[key], where), where
    return Settings(values, sources)


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
    return resolve(flags=flags or {}, env=env, project=project_file(cwd or Path.cwd()), user=user)
