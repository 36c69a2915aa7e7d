"""The settings: what each key means, its default, and `Settings`, the typed result of merging
the layers (flags > LAUNCH_* env > project file > user file > defaults) with each value's source.

Pure: `launch.config` reads the layers (env, two TOML files) and calls `resolve`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "build": Key(
        "auto",
        "how cluster images are made: auto (composed in the registry when the Dockerfile "
        "allows, else Kaniko) | compose | kaniko",
    ),
    "image_trust": Key(
        "local",
        "which registry images launch reuses: local (only digests this clone built or composed, "
        "recorded in <home>/images.json; the Kaniko layer cache is off) | labels (any image whose "
        "labels say it is the commit, and the shared Kaniko cache: trusts everyone who can push)",
    ),
    "git_context": Key(
        False,
        "Kaniko clones the commit from its git remote (needs git_secret in the cluster, which "
        "every user who can create Jobs there can read) instead of building an upload of it",
        bool,
    ),
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
    "retries": Key(
        3, "restarts of a trial lost to the infrastructure (not to its own errors)", int
    ),
    "trainer_runtime": Key(
        "launch-torch",
        "ClusterTrainingRuntime of multi-node trials (--nodes > 1; deploy/trainer ships it)",
    ),
    "checkpoint_dir": Key(
        None,
        "cluster: a directory inside a writable `volume` mount; each trial gets "
        "LAUNCH_CHECKPOINT_DIR=<it>/<experiment>/<trial> and LAUNCH_RESTART_COUNT",
    ),
    "registry_token": Key(
        None,
        "your push token for the registry's gate (deploy/registry): images go under the prefix "
        "it names; a secret, so env LAUNCH_REGISTRY_TOKEN or the user file only, never shown",
    ),
}

SECRET_KEYS = ("registry_token",)  # never printed; refused in the project file (it is committed)

CLUSTER_KEYS = ("context", "registry_url", "katib_url")


@dataclass(frozen=True)
class Settings:
    """Effective settings (typed, one field per `KEYS` entry), each with where it came from."""

    backend_name: str = "auto"  # `backend` in files and env; `backend()` says which and why
    namespace: str = "default"
    context: str | None = None
    registry: str = REGISTRY_PUSH
    registry_pull: str = REGISTRY_PULL
    registry_url: str | None = None
    registry_insecure: bool = True
    katib_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_url: str | None = None
    kaniko_image: str = KANIKO_IMAGE
    platform: str = "linux/amd64"
    build: str = "auto"
    image_trust: str = "local"
    git_context: bool = False
    git_secret: str = "git-credentials"
    build_service_account: str = "launch-builder"
    seed_flag: str = "seed"
    home: str = ".launch"
    cpus: str | None = None
    memory: str | None = None
    shm_size: str | None = None
    env: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    volume: tuple[str, ...] = ()
    node_selector: tuple[str, ...] = ()
    toleration: tuple[str, ...] = ()
    queue: str | None = None
    priority: str | None = None
    retries: int = 3
    trainer_runtime: str = "launch-torch"
    checkpoint_dir: str | None = None
    registry_token: str | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)
    # Not a setting: the prefix the registry's gate gave `registry_token` (`build.behind_gate`,
    # which also puts it into `registry` and `registry_pull`); Kaniko then pushes to staging/.
    gate_prefix: str = ""

    @classmethod
    def of(cls, values: Mapping[str, Any], sources: Mapping[str, str]) -> Settings:
        fields = {("backend_name" if k == "backend" else k): v for k, v in values.items()}
        return cls(**fields, sources=dict(sources))

    @property
    def values(self) -> dict[str, Any]:
        """Every setting by its `KEYS` name (for `launch config`); a secret that is set shows
        as `(set)`."""
        out = {key: getattr(self, "backend_name" if key == "backend" else key) for key in KEYS}
        return {k: "(set)" if k in SECRET_KEYS and v else v for k, v in out.items()}

    def source(self, key: str) -> str:
        return self.sources.get(key, "default")

    @property
    def cluster_configured(self) -> bool:
        """A cluster profile exists when any cluster-only key was set somewhere other than defaults."""
        return any(self.source(key) != "default" for key in CLUSTER_KEYS)

    def backend(self) -> tuple[str, str]:
        """The backend to use and why, for the CLI to say."""
        chosen = self.backend_name
        if chosen != "auto":
            return chosen, f"backend set by {self.sources['backend']}"
        if self.cluster_configured:
            return "katib", "a cluster is configured (" + ", ".join(
                f"{k} from {self.sources[k]}" for k in CLUSTER_KEYS if self.source(k) != "default"
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
    if spec.kind is int:
        text = str(raw).strip()
        if isinstance(raw, bool) or not (isinstance(raw, int) or text.isdigit()):
            raise UsageError(
                f"{source}: {key}: expected a whole number, got {raw!r}", hint=f"set {key} = 3"
            )
        return int(text)
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
    if key == "build" and raw not in ("auto", "compose", "kaniko"):
        raise UsageError(
            f"{source}: build: unknown build mode {raw!r}", hint="use auto, compose or kaniko"
        )
    if key == "image_trust" and raw not in ("local", "labels"):
        raise UsageError(
            f"{source}: image_trust: unknown value {raw!r}", hint="use local or labels"
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
    if project is not None:
        for key in SECRET_KEYS:
            if key in project[1]:
                raise UsageError(
                    f"{project[0]}: `{key}` is a secret and this file is committed with the "
                    "project",
                    hint=f"remove it there; set env LAUNCH_{key.upper()}, or put it in your user "
                    "settings file ($XDG_CONFIG_HOME/launch/config.toml, by default "
                    "~/.config/launch/config.toml) with mode 600",
                )
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
    return Settings.of(values, sources)
