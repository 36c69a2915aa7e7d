"""What a launch would create: the Kaniko build Job, the Katib Experiment and the trial command lines.

Pure: a function of the spec, the git facts and the settings; `launch render` and `--dry-run` print it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from launch import hyperband, kaniko, katib, podspec
from launch import spec as spec_module
from launch.settings import Settings
from launch.spec import LaunchSpec

KATIB_TFEVENT_DIR = "/var/log/katib/tfevent/"


@dataclass(frozen=True)
class GitFacts:
    """The git facts a plan needs (a subset of git.Snapshot, so the plan stays pure and testable)."""

    commit: str
    branch: str | None  # the branch on the remote that holds the commit
    remote_url: str | None
    repo_name: str
    subdir: str = ""
    context_digest: str | None = None  # --allow-dirty: the uploaded working-tree archive


@dataclass(frozen=True)
class Plan:
    name: str
    namespace: str
    image: str
    build_job: dict[str, Any] | None
    experiment: dict[str, Any]
    trial_lines: list[list[str]]
    complete: bool  # trial_lines lists every trial (grid, seeds) rather than a sample
    # What the reader needs to know about the search, as lines (hyperband: its brackets).
    notes: tuple[str, ...] = ()


def make_plan(
    *,
    spec: LaunchSpec,
    command: Sequence[str],
    git: GitFacts,
    settings: Settings,
    name: str,
    user: str,
    resources: podspec.TrialResources,
    image_digest: str | None = None,
    sample_size: int = 5,
    dockerfile: str = "Dockerfile",
    context_dir: str | None = None,
    dependency: tuple[str, str] | None = None,
) -> Plan:
    """Render everything a cluster launch creates; `image_digest` None means "build first".
    The trial pod options come checked, as `resources` (`podspec.trial_resources`).

    `dependency` (tag, context digest) is the fast path's (`launch.compose`): the build Job
    then builds the dependency image `<repo>:<tag>` from that uploaded context (the Dockerfile
    up to its source copy and the files it reads), and the commit's image is composed on it."""
    push_ref = kaniko.image_ref(registry=settings.registry, repo_name=git.repo_name, tag=git.commit)
    pull_repo = kaniko.image_ref(
        registry=settings.registry_pull, repo_name=git.repo_name, tag=git.commit
    )
    image = pull_repo.rsplit(":", 1)[0] + "@" + image_digest if image_digest else pull_repo
    namespace = settings.namespace
    build_job = None
    if image_digest is None and dependency is not None:
        deps_tag, deps_digest = dependency
        build_job = _build_job(
            name=f"deps-{name}", settings=settings, git=git, dockerfile=dockerfile,
            destination=kaniko.image_ref(
                registry=settings.registry, repo_name=git.repo_name, tag=deps_tag
            ),
            blob_url=kaniko.context_blob_url(
                registry=settings.registry, repo_name=git.repo_name, digest=deps_digest,
                insecure=settings.registry_insecure,
            ),
        )  # fmt: skip
    elif image_digest is None:
        context: str | None = None
        blob_url: str | None = None
        pull_method = "https"
        if git.remote_url:
            context = kaniko.git_context(git.remote_url, git.branch, git.commit)
            pull_method = kaniko.git_pull_method(git.remote_url)
        else:
            # --allow-dirty: the working tree, uploaded to the registry as a blob by the caller.
            if git.context_digest is None:
                raise ValueError("a commit Kaniko cannot fetch needs the uploaded context's digest")
            blob_url = kaniko.context_blob_url(
                registry=settings.registry,
                repo_name=git.repo_name,
                digest=git.context_digest,
                insecure=settings.registry_insecure,
            )
        build_job = _build_job(
            name=f"build-{name}", settings=settings, git=git, dockerfile=dockerfile,
            destination=push_ref,
            context=context, blob_url=blob_url, context_dir=context_dir, pull_method=pull_method,
        )  # fmt: skip
    experiment = katib.render_experiment(
        spec=spec,
        name=name,
        namespace=namespace,
        image=image,
        command=list(command),
        workdir=git.subdir,
        commit=git.commit,
        branch=git.branch or "detached",
        user=user,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
        katib_url=settings.katib_url,
        seed_flag=settings.seed_flag,
        resources=resources,
        trainer_runtime=settings.trainer_runtime,
    )
    lines = katib.trial_command_lines(
        spec, command, seed_flag=settings.seed_flag, sample_size=sample_size
    )
    complete = spec.algorithm.algorithmName == "grid"
    notes = _notes(spec) + _launcher_note(command, resources)
    return Plan(name, namespace, image, build_job, experiment, lines, complete, notes)


def _build_job(
    *,
    name: str,
    settings: Settings,
    git: GitFacts,
    dockerfile: str,
    destination: str,
    context: str | None = None,
    blob_url: str | None = None,
    context_dir: str | None = None,
    pull_method: str = "https",
) -> dict[str, Any]:
    # The shared layer cache only where images are trusted by their labels anyway.
    cache_repo = (
        kaniko.cache_repo(registry=settings.registry, repo_name=git.repo_name)
        if settings.image_trust == "labels"
        else None
    )
    if settings.gate_prefix:  # pods push to staging/ only; launch copies the image (build.py)
        destination = kaniko.staging_ref(destination)
        cache_repo = cache_repo and kaniko.staging_ref(cache_repo)
    return kaniko.render_build_job(
        # Named after the experiment (<= 40 chars + "build-" or "deps-"): a launch that cannot
        # compose onto its new dependency image builds the whole image with a second Job.
        name=name,
        namespace=settings.namespace,
        context=context,
        context_blob_url=blob_url,
        destination=destination,
        dockerfile=dockerfile,
        context_sub_path=context_dir,
        cache_repo=cache_repo,
        kaniko_image=settings.kaniko_image,
        insecure_registry=settings.registry if settings.registry_insecure else None,
        platform=settings.platform,
        git_secret=settings.git_secret,
        git_pull_method=pull_method,
        service_account=settings.build_service_account,
        labels={"app.kubernetes.io/managed-by": "launch"},
    )


def _launcher_note(command: Sequence[str], resources: Any) -> tuple[str, ...]:
    """--nodes > 1: which launcher starts the command on each node, and why."""
    if resources is None or resources.nodes <= 1:
        return ()
    from launch import trainjob

    found = trainjob.launcher(command, nodes=resources.nodes, procs_per_node=max(resources.gpus, 1))
    return (f"each trial: a TrainJob of {resources.nodes} nodes; {found.why}",)


def _notes(spec: LaunchSpec) -> tuple[str, ...]:
    """hyperband: how many trials at which resource value (launch/hyperband.py explains why)."""
    hb = spec_module.hyperband_of(spec)
    if hb is None:
        return ()
    counts = spec_module.resolve_counts(spec)
    return tuple(hyperband.explain(hb, parallel=counts.parallel, max_trials=counts.max_trials))
