"""The image of a launch: reused when the registry has it (and it is what it says), composed in
the registry from a dependency image (`launch.compose`, no Job), or built in-cluster by a Kaniko
Job. The only module that creates build Jobs; narrates with `report(level, text)`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from launch import (
    compose,
    diagnosis,
    image_config,
    image_trust,
    kaniko,
    registry,
    registry_gate,
    registry_push,
)
from launch.errors import BuildError, LaunchError, TimedOutError, UsageError
from launch.kube_api import ClusterAPI
from launch.settings import Settings

Report = Callable[[str, str], None]

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
BUILD_LOG_LINES = 50


def _quiet(level: str, text: str) -> None:
    """The default reporter says nothing."""


# --------------------------------------------------------------------------- registry access


def registry_service(push_host: str) -> tuple[str, str, int]:
    """(service, namespace, port) of an in-cluster registry name like
    `registry.launch-system.svc.cluster.local:5000`, for the API server's service proxy."""
    host, _, port = push_host.partition("/")[0].rpartition(":")
    parts = host.split(".")
    if not port.isdigit() or len(parts) < 3 or parts[2] != "svc":
        raise UsageError(
            f"cannot reach the registry `{push_host}` from here: it is not an in-cluster Service "
            "name (<service>.<namespace>.svc...:<port>) and no registry_url is set",
            hint="set registry_url (e.g. LAUNCH_REGISTRY_URL=http://127.0.0.1:30500) or the "
            "`registry` setting to the in-cluster Service name (`launch config`)",
        )
    return parts[0], parts[1], int(port)


def registry_transport(cluster: ClusterAPI, settings: Settings) -> registry.Transport:
    """Direct when `registry_url` is configured, else through the API server's service proxy,
    so a kubeconfig is all a user needs; with `registry_token`, every request carries it for
    the registry's gate (a header of its own: the API server strips `Authorization`)."""
    inner: registry.Transport
    if settings.registry_url:
        inner = registry.HttpTransport(settings.registry_url)
    else:
        service, namespace, port = registry_service(settings.registry)
        inner = cluster.service_proxy(namespace, service, port)
    if settings.registry_token:
        return TokenTransport(inner, settings.registry_token)
    return inner


class TokenTransport:
    """A registry transport that sends the gate's push token with every request."""

    def __init__(self, inner: registry.Transport, token: str) -> None:
        self.inner, self._token = inner, token

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return self.inner.request(
            method, path, {**headers, registry_gate.HEADER: self._token}, body
        )

    def __getattr__(self, name: str) -> Any:  # base_url, hint, requests: the inner transport's
        return getattr(self.inner, name)


def behind_gate(settings: Settings, transport: registry.Transport) -> Settings:
    """`settings` for a registry behind launch's gate (deploy/registry): with a
    `registry_token`, the prefix the gate names for it (one GET) goes in front of every image
    path (`registry`, `registry_pull`) and Kaniko Jobs push to staging/ (`gate_prefix`).
    Without a token, or without a gate (404), `settings` as they are."""
    if not settings.registry_token:
        return settings
    status, _, body = transport.request("GET", registry_gate.WHOAMI_PATH, {})
    if status == 404:
        return settings  # a registry without the gate: the token has no use
    if status != 200:
        raise UsageError(
            f"the registry's gate does not know your push token ({status}: "
            f"{registry._error_detail(body) or body[:200].decode(errors='replace')})",
            hint="check LAUNCH_REGISTRY_TOKEN / `registry_token` (`launch config` says where it "
            "comes from), or ask the cluster admin for a token (docs/cluster-setup.md, "
            '"Registry push tokens")',
        )
    prefix = registry_gate.check_prefix(body.decode(errors="replace").strip())
    for key in ("registry", "registry_pull"):
        if "/" in kaniko.registry_host(getattr(settings, key)):
            raise UsageError(
                f"`{key}` {getattr(settings, key)!r} has a path, and the registry's gate puts "
                f"your images under {prefix}/",
                hint=f"set `{key}` to host:port only (`launch config`)",
            )
    return replace(
        settings,
        registry=f"{kaniko.registry_host(settings.registry)}/{prefix}",
        registry_pull=f"{kaniko.registry_host(settings.registry_pull)}/{prefix}",
        gate_prefix=prefix,
    )


# --------------------------------------------------------------------------- the image


@dataclass
class BuildResult:
    digest: str
    built: bool  # False: the registry already had the image
    job_name: str | None = None  # the Kaniko Job that ran, if one did
    path: str = "reused"  # reused | composed | kaniko


@dataclass(frozen=True)
class KanikoBuild:
    """The Job that builds the whole image, and the upload it builds from: (repository,
    tar.gz), or None when Kaniko clones the commit (`git_context`)."""

    job: Mapping[str, Any]
    context: tuple[str, bytes] | None = None


@dataclass(frozen=True)
class Sources:
    """What a build may need besides the registry: the repository (to compose from), how the
    image would be made (`compose.Choice`), and the Kaniko builds of each path (the whole
    image's made only when it is needed: its upload may be large)."""

    root: Path
    choice: compose.Choice
    kaniko: Callable[[], KanikoBuild] | None  # None: the whole image cannot be built from here
    dependency_job: Mapping[str, Any] | None = None  # compose: builds the dependency image
    dependency_context_repository: str = ""
    platform: str = "linux/amd64"
    # `image_trust = local`: reuse only digests recorded here (`launch.image_trust`), under
    # refs named after `registry`; None: trust a tag whose labels say it is the commit.
    trust: image_trust.TrustStore | None = None
    registry: str = ""
    # Kaniko Jobs push to staging/<repository> (the registry's gate admits pods there only);
    # their image is then copied, by digest, to <repository>.
    staged: bool = False

    def ref(self, repository: str, tag: str) -> str:
        return image_trust.ref(self.registry, repository, tag)

    def record(self, repository: str, tag: str, digest: str, *, key: str) -> None:
        if self.trust is not None:
            self.trust.put(
                self.ref(repository, tag), image_trust.Record(digest, key, self.platform)
            )


def find_or_build(
    *,
    cluster: ClusterAPI,
    transport: registry.Transport,
    repository: str,
    tag: str,
    sources: Sources,
    rebuild: bool = False,
    timeout_s: float = 3600.0,
    report: Report = _quiet,
    now: Callable[[], float] = time.monotonic,
) -> BuildResult:
    """The digest of `<repository>:<tag>`: one this clone recorded (`sources.trust`, one HEAD)
    or, with `image_trust = labels`, the tag's when its labels say it is this commit (two GETs);
    else the image composed in the registry or built by a Kaniko Job. Never returns a digest the
    registry does not hold."""
    choice = sources.choice
    if not rebuild:
        digest = (
            _recorded(transport, repository, tag, sources, report=report)
            if sources.trust is not None
            else _labelled(transport, repository, tag, sources, report=report)
        )
        if digest is not None:
            return BuildResult(digest, built=False)
    if choice.path == "compose":
        try:
            return _compose(
                cluster, transport, repository, tag, sources, rebuild=rebuild,
                timeout_s=timeout_s, report=report, now=now,
            )  # fmt: skip
        except image_config.ManifestError as err:
            if sources.kaniko is None:
                raise
            report("warn", f"cannot compose onto the dependency image ({err.message}): "
                   "building the whole image with Kaniko")  # fmt: skip
    if sources.kaniko is None:
        raise BuildError(
            f"image {repository}:{tag[:12]} is not in the registry and cannot be built",
            hint="push the commit (so Kaniko can fetch it) or pass --allow-dirty",
        )
    if choice.why:
        report("warn", f"building with Kaniko: {choice.why}")
    whole = sources.kaniko()
    if whole.context is not None:
        context_repo, data = whole.context
        size_mb = len(data) / 1e6
        if size_mb > 100:
            report(
                "warn",
                f"the build context is {size_mb:.0f} MB: check .gitignore for data or outputs",
            )
        registry_push.upload_blob(repository=context_repo, data=data, transport=transport)
        report("info", f"uploaded the build context ({size_mb:.1f} MB)")
    digest = run_build(cluster=cluster, job=whole.job, timeout_s=timeout_s, report=report, now=now)
    _unstage(transport, repository, tag, digest, sources, report=report)
    sources.record(repository, tag, digest, key="")
    return BuildResult(digest, built=True, job_name=whole.job["metadata"]["name"], path="kaniko")


def _recorded(
    transport: registry.Transport, repository: str, tag: str, sources: Sources, *, report: Report
) -> str | None:
    """`image_trust = local`: the digest this clone recorded for `repository:tag`, when the
    registry still holds it (one HEAD, by digest: what it names cannot have changed). The tag
    itself is not read: whoever moved it last is not trusted."""
    keys = ("", sources.choice.key) if sources.choice.path == "compose" else ("",)
    return _still_there(transport, repository, tag, sources, keys=keys, report=report)


def _still_there(
    transport: registry.Transport,
    repository: str,
    tag: str,
    sources: Sources,
    *,
    keys: tuple[str | None, ...],
    report: Report,
) -> str | None:
    assert sources.trust is not None
    ref = sources.ref(repository, tag)
    for key in keys:
        if key is None:
            continue
        digest = sources.trust.get(ref, key=key, platform=sources.platform)
        if digest is None:
            continue
        if registry.manifest_digest(repository=repository, tag=digest, transport=transport):
            report("info", f"image {repository}:{_short(tag)} already built by this clone "
                   f"({digest[:19]}): no build")  # fmt: skip
            return digest
        report("info", f"image {repository}:{_short(tag)} ({digest[:19]}) is gone from the "
               "registry: making it again")  # fmt: skip
        sources.trust.forget(ref)
    return None


def _short(tag: str) -> str:
    return tag[:17] if tag.startswith("deps-") else tag[:12]


def _labelled(
    transport: registry.Transport, repository: str, tag: str, sources: Sources, *, report: Report
) -> str | None:
    """`image_trust = labels`: the image under the tag, when it says it is this commit
    (`reusable`): one GET of the manifest and one of the config."""
    found = _manifest(transport, repository, tag)
    if found is None:
        return None
    media_type, body, digest = found
    config = registry.config_of(
        repository=repository, reference=tag, media_type=media_type, body=body,
        transport=transport, platform=sources.platform,
    )  # fmt: skip
    if not reusable(sources, config, repository=repository, tag=tag, digest=digest, report=report):
        return None
    report("info", f"image {repository}:{tag[:12]} already built ({digest[:19]}): no build")
    return digest


def _compose(
    cluster: ClusterAPI,
    transport: registry.Transport,
    repository: str,
    tag: str,
    sources: Sources,
    *,
    rebuild: bool,
    timeout_s: float,
    report: Report,
    now: Callable[[], float],
) -> BuildResult:
    """The fast path: the dependency image (built by a Kaniko Job only when the registry lacks
    it), then the commit's image composed on top of it."""
    choice = sources.choice
    deps_tag = choice.dependency_tag
    deps = None  # `rebuild`: the dependency image too
    if not rebuild and sources.trust is not None:
        deps = _still_there(
            transport, repository, deps_tag, sources, keys=(choice.key,), report=lambda *_: None
        )
    elif not rebuild:
        deps = registry.manifest_digest(repository=repository, tag=deps_tag, transport=transport)
        if deps is not None and not registry.built_from_tag(
            repository=repository, tag=deps_tag, digest=deps, transport=transport,
            label=kaniko.REVISION_LABEL, warn=lambda text: report("warn", text),
        ):  # fmt: skip
            deps = None
    job_name = None
    if deps is None:
        job = sources.dependency_job
        assert job is not None and choice.context is not None
        why = (
            "this clone has not built it" if sources.trust is not None else "it is the first build"
        )
        report("info", f"building the dependency image {deps_tag[:17]} (its inputs changed, or "
               f"{why})")  # fmt: skip
        registry_push.upload_blob(
            repository=sources.dependency_context_repository, data=choice.context,
            transport=transport,
        )  # fmt: skip
        deps = run_build(cluster=cluster, job=job, timeout_s=timeout_s, report=report, now=now)
        _unstage(transport, repository, deps_tag, deps, sources, report=report)
        job_name = str(job["metadata"]["name"])
        sources.record(repository, deps_tag, deps, key=choice.key or "")
    else:
        report("info", f"dependency image {deps_tag[:17]} is in the registry: no build")
    composed = compose.compose_image(
        root=sources.root, choice=choice, transport=transport, repository=repository, tag=tag,
        dependency_digest=deps, platform=sources.platform, report=report, now=now,
    )  # fmt: skip
    sources.record(repository, tag, composed.digest, key=choice.key or "")
    return BuildResult(composed.digest, built=True, job_name=job_name, path="composed")


def _unstage(
    transport: registry.Transport,
    repository: str,
    tag: str,
    digest: str,
    sources: Sources,
    *,
    report: Report,
) -> None:
    """A staged build's image, copied from staging/<repository> to <repository>:<tag> by digest
    (the digest the build Job's own pod reported: whatever else staging/ holds is not taken)."""
    if not sources.staged:
        return
    staging = f"{registry_gate.STAGING}/{repository}"
    registry_push.copy_image(
        source=staging, repository=repository, tag=tag, digest=digest, transport=transport
    )
    report("info", f"image {repository}:{_short(tag)} copied from {staging} ({digest[:19]})")


def _manifest(
    transport: registry.Transport, repository: str, tag: str
) -> tuple[str, bytes, str] | None:
    """(media type, bytes, digest) of `repository:tag`, or None when the registry lacks it: one
    GET, whose body the reuse check reads next (a HEAD first would cost a request more)."""
    try:
        return registry.get_manifest(repository=repository, reference=tag, transport=transport)
    except registry.ManifestUnknown:
        return None


def reusable(
    sources: Sources,
    config: Mapping[str, Any],
    *,
    repository: str,
    tag: str,
    digest: str,
    report: Report,
) -> bool:
    """Whether the image under `repository:tag` (its `config`) may be reused: it says (its
    revision label) it was made from `tag`, and, when launch composed it, its source layer is
    what composing this commit gives (recomputed here). No label: made again (said). Another
    revision or other files: an error naming the tag, never a silent reuse."""
    revision = image_config.labels_of(config).get(kaniko.REVISION_LABEL)
    if revision is None:
        report("warn", f"image {repository}:{tag[:12]} does not say what it was built from (no "
               f"{kaniko.REVISION_LABEL} label): building it again")  # fmt: skip
        return False
    why = (
        f"says it was built from {revision[:40]}, not {tag[:12]}"
        if revision != tag
        else compose.matches_image(sources.root, sources.choice, config)
    )
    if why is None:
        return True
    if revision == tag and why.startswith("its dependency image"):
        report("info", f"image {repository}:{tag[:12]}: {why}: composing it again")
        return False
    raise UsageError(
        f"image {repository}:{tag[:12]} ({digest[:19]}) {why}: the tag was overwritten by "
        "something other than launch",
        hint="`--rebuild` makes this commit's image again and replaces the tag; ask who can "
        "push to the registry (docs/cluster-setup.md)",
    )


# --------------------------------------------------------------------------- Kaniko Jobs


def run_build(
    *,
    cluster: ClusterAPI,
    job: Mapping[str, Any],
    timeout_s: float,
    report: Report = _quiet,
    now: Callable[[], float] = time.monotonic,
) -> str:
    """Create the build Job, follow it, and return the digest Kaniko reported.

    The digest is trusted only from a container that exited 0 (Kaniko writes the digest file
    before pushing). Failure: the last log lines and BuildError. Ctrl-C or a timeout: the Job is
    deleted (nothing half-built is left running) and the interruption propagates.
    """
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    # The Job is the side effect itself: a dry-run right before it would tell nothing new.
    created = cluster.create(job, dry_run_first=False)
    # The digest is read from this Job's pod only: another user may delete the Job and create
    # one of the same name whose pod reports an image of their choosing.
    uid = str((created.get("metadata") or {}).get("uid") or "")
    report("info", f"building the image in-cluster (Job {namespace}/{name})")
    start = now()
    done = False
    try:
        for event in cluster.watch("Job", namespace, name=name, timeout_s=timeout_s):
            if event.type == "DELETED" or _uid(event.object) not in ("", uid):
                raise BuildError(f"build Job {name} was deleted", hint="run launch again")
            state = _job_state(event.object)
            report("progress", f"build {name}: {state} ({int(now() - start)}s)")
            if state == "Complete":
                done = True
                return _build_digest(cluster, namespace, name, uid=uid)
            if state == "Failed":
                done = True
                tail = _tail(cluster, namespace, name, BUILD_LOG_LINES)
                hint = f"fix the Dockerfile or the build context; full log: kubectl logs -n {namespace} job/{name}"
                if registry_gate.HEADER in tail:  # the gate refused Kaniko's push
                    hint = registry_push.HINT_PUSH_AUTH
                raise BuildError(
                    f"the image build failed (Job {namespace}/{name}):\n" + tail, hint=hint
                )
        raise TimedOutError(
            f"the image build did not finish within {int(timeout_s)}s",
            hint="raise --timeout, or check the build pod: kubectl describe job -n "
            + f"{namespace} {name}",
        )
    finally:
        if not done:
            with contextlib.suppress(LaunchError):
                cluster.delete("Job", namespace, name)
                report("warn", f"build Job {name} deleted")


def _job_state(job: Mapping[str, Any]) -> str:
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    if status.get("active"):
        return "Running"
    return "Pending"


def _uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _job_pod(
    cluster: ClusterAPI, namespace: str, job_name: str, *, uid: str = ""
) -> Mapping[str, Any] | None:
    """The Job's pod that counts: the one that succeeded, else the current one (a build Job
    whose pod was preempted has had several). With `uid`, only pods of that Job (the Job
    controller's label), not of a namesake."""
    selector = f"{CONTROLLER_UID_LABEL}={uid}" if uid else f"{JOB_NAME_LABEL}={job_name}"
    pods = cluster.list("Pod", namespace, label_selector=selector)
    done = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
    return done[-1] if done else diagnosis.live_pod(pods)


def _build_digest(cluster: ClusterAPI, namespace: str, job_name: str, *, uid: str) -> str:
    pod = _job_pod(cluster, namespace, job_name, uid=uid)
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") == 0:
            digest = kaniko.digest_from_termination_message(terminated.get("message"))
            if digest:
                return digest
    raise BuildError(
        f"the build Job {job_name} succeeded but reported no image digest",
        hint="check that Kaniko runs with --digest-file=/dev/termination-log",
    )


def _tail(cluster: ClusterAPI, namespace: str, job_name: str, lines: int) -> str:
    pod = _job_pod(cluster, namespace, job_name)
    if pod is None:
        return "  (no pod: the Job never started one)"
    # A failed init container (fetching an --allow-dirty context) has the log that explains.
    container = None
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if ((status.get("state") or {}).get("terminated") or {}).get("exitCode", 0) != 0:
            container = status.get("name")
    try:
        text = cluster.pod_logs(
            namespace, pod["metadata"]["name"], container=container, tail_lines=lines
        )
    except LaunchError as exc:
        return f"  (no log: {exc.message})"
    return "\n".join(f"  | {line}" for line in text.rstrip("\n").splitlines()[-lines:])
