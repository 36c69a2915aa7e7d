"""The options commands share (Annotated Typer types) and how flags become values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from launch.errors import UsageError
from launch.settings import Settings

SpecArg = Annotated[
    Path,
    typer.Argument(
        metavar="SPEC", help="The search space: a search.yaml (Katib Experiment spec subset)."
    ),
]
CommandArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="-- CMD...",
        help="The training command, after `--`, e.g. `-- python train.py --epochs 3`.",
    ),
]
GpusOpt = Annotated[int, typer.Option("--gpus", min=0, metavar="N", help="GPUs per trial.")]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Kubernetes namespace.")
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name", help="Experiment name (DNS-1035, <= 40 chars); default: <repo>-<sha7>-<random>."
    ),
]
SeedsOpt = Annotated[
    int | None,
    typer.Option(
        "--seeds",
        min=1,
        metavar="N",
        help="Repeat each configuration over N seeds (passed as --seed=K).",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help="katib, local, or auto (katib when a cluster is configured)."),
]
BuildOpt = Annotated[
    str | None,
    typer.Option(
        "--build",
        help="Cluster: how the image is made. auto (default): composed in the registry from a "
        "dependency image (the Dockerfile up to `COPY . <dir>`, rebuilt only when it or the files "
        "it copies change) plus a layer of the commit, when the Dockerfile allows; else a full "
        "Kaniko build, saying why. compose: refuse what cannot be composed. kaniko: always build.",
        metavar="auto|compose|kaniko",
    ),
]
AllowDirtyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-dirty", help="Launch uncommitted/unpushed work (image tagged by tree hash)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
CpusOpt = Annotated[
    str | None, typer.Option("--cpus", help="Cluster: CPU request per trial (e.g. 8).")
]
MemoryOpt = Annotated[
    str | None,
    typer.Option("--memory", help="Cluster: memory per trial, request = limit (e.g. 32Gi)."),
]
ShmOpt = Annotated[
    str | None,
    typer.Option(
        "--shm-size", help="Cluster: size of /dev/shm (PyTorch data loaders need it; e.g. 8Gi)."
    ),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="K=V", help="Trial environment variable K=V (repeatable)."),
]
SecretEnvOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--secret-env",
        metavar="SECRET",
        help="Cluster: a Secret whose keys become env variables (repeatable).",
    ),
]
VolumeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--volume",
        metavar="PVC:/PATH[:ro]",
        help="Cluster: mount a PVC, PVC:/path or PVC:/path:ro (repeatable).",
    ),
]
NodeSelectorOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--node-selector",
        metavar="K=V",
        help="Cluster: run trials on nodes with label K=V (repeatable).",
    ),
]
TolerationOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--toleration",
        metavar="KEY[=VALUE][:EFFECT]",
        help="Cluster: tolerate a taint, key[=value][:Effect] (repeatable).",
    ),
]
QueueOpt = Annotated[
    str | None, typer.Option("--queue", help="Cluster: Kueue LocalQueue for the trials.")
]
PriorityOpt = Annotated[
    str | None,
    typer.Option("--priority", help="Cluster: Kueue WorkloadPriorityClass for the trials."),
]
TrialTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--trial-timeout",
        metavar="DURATION",
        help="Fail a trial that runs longer than this (90s, 30m, 2h): its processes are stopped "
        "(SIGTERM, SIGKILL after 10 s locally; the Job's activeDeadlineSeconds on the cluster).",
    ),
]


RetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--retries",
        min=0,
        metavar="N",
        help="Restart a trial lost to the infrastructure up to N times (default 3; the "
        "`retries` setting). Preemption, eviction and node loss restart it without counting; "
        "the trial's own failure (a non-zero exit) is never retried.",
    ),
]
NodesOpt = Annotated[
    int | None,
    typer.Option(
        "--nodes",
        min=1,
        metavar="N",
        help="Cluster: run each trial on N machines as a Kubeflow Trainer TrainJob (--gpus counts "
        "each machine's GPUs; the command is started by torchrun unless it already is a "
        "launcher; `launch render` says which). Only rank 0's TensorBoard scalars count.",
    ),
]
WaitOpt = Annotated[
    str,
    typer.Option(
        "--wait", help="Cluster: return when the `first` trial succeeds, or when `all` finish."
    ),
]
DetachOpt = Annotated[
    bool, typer.Option("--detach", "-d", help="Cluster: return once the experiment is created.")
]
CheckpointDirOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint-dir",
        metavar="PATH",
        help="Cluster: a directory inside a writable --volume mount (the `checkpoint_dir` "
        "setting). Each trial gets LAUNCH_CHECKPOINT_DIR=PATH/<experiment>/<trial>, which "
        "survives a preempted pod's replacement, and LAUNCH_RESTART_COUNT (0, then 1, 2, ... on "
        "each restart) to decide whether to resume from its own checkpoint; --tensorboard_dir is "
        "then LAUNCH_CHECKPOINT_DIR/tensorboard, so the history spans restarts, and a stopped "
        "pod's SIGTERM reaches the program, so it can save first.",
    ),
]
NoPreflightOpt = Annotated[
    bool,
    typer.Option(
        "--no-preflight",
        help="Skip the preflight: before any trial, launch runs `CMD --help` once (locally in the "
        "trials' worktree, on a cluster in one CPU-only pod of the image) so the program's own "
        "Draccus parser reads every fixed flag, each parameter at its bounds and every list "
        "value; a flag or value it refuses stops the launch (exit 2). A program without Draccus "
        "must list every flag in its --help.",
    ),
]
ExpArg = Annotated[str, typer.Argument(help="Experiment name (see `launch list`).")]


def _pairs(items: Any, origins: list[str]) -> tuple[dict[str, str], list[str]]:
    """K=V items -> a dict (a later key wins) and the origin of each kept value, in order."""
    kept: dict[str, tuple[str, str]] = {}
    for item, origin in zip(items, origins, strict=True):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{origin} {item}: expected K=V", hint=f"pass {origin} NAME=value")
        kept[key] = (value, origin)
    return {k: v for k, (v, _) in kept.items()}, [o for _, o in kept.values()]


def trial_resources(settings: Settings, *, gpus: int, **flags: Any) -> Any:
    """What each trial asks for, checked once: flags over settings, list flags added to the
    settings' lists; a refused value is named by where it came from (the flag, or the settings
    file and key, or the LAUNCH_* variable)."""
    from launch import podspec

    origins: dict[str, Any] = {}

    def setting(key: str) -> str:
        return podspec.setting_origin(key, settings.source(key))

    def pick(key: str, field: str) -> Any:
        if flags.get(key) is not None:
            return flags[key]
        origins[field] = setting(key)
        return getattr(settings, key)

    def merged(key: str, field: str) -> tuple[list[str], list[str]]:
        ours, theirs = list(getattr(settings, key) or ()), list(flags.get(key) or ())
        where = [setting(key)] * len(ours) + [podspec.FLAGS[field]] * len(theirs)
        return ours + theirs, where

    env, env_origins = _pairs(*merged("env", "env"))
    selector, selector_origins = _pairs(*merged("node_selector", "node_selector"))
    secret_env, origins["secret_env"] = merged("secret_env", "secret_env")
    volumes, origins["volumes"] = merged("volume", "volumes")
    tolerations, origins["tolerations"] = merged("toleration", "tolerations")
    origins["env"], origins["node_selector"] = env_origins, selector_origins
    return podspec.trial_resources(
        gpus=gpus, cpus=pick("cpus", "cpus"), memory=pick("memory", "memory"),
        shm_size=pick("shm_size", "shm_size"), extra_env=env or None, secret_env=secret_env,
        volumes=volumes, node_selector=selector or None, tolerations=tolerations,
        queue=pick("queue", "queue"), priority=pick("priority", "priority"),
        retries=pick("retries", "retries"), checkpoint_dir=pick("checkpoint_dir", "checkpoint_dir"),
        nodes=flags.get("nodes") or 1,
        trial_timeout_s=trial_timeout(flags.get("trial_timeout")),
        origins={k: v for k, v in origins.items() if v != []},
    )  # fmt: skip


def trial_timeout(text: str | None) -> int | None:
    """--trial-timeout in whole seconds (activeDeadlineSeconds is an integer), at least 1."""
    if text is None:
        return None
    import math

    return max(1, math.ceil(duration(text, "--trial-timeout")))


def duration(text: str, flag: str) -> float:
    """`90`, `90s`, `30m`, `2h` -> seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise UsageError(
            f"{flag} {text}: not a duration", hint=f"pass {flag} 90s, {flag} 30m or {flag} 2h"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
