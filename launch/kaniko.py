"""Kaniko knowledge: image names, the build contexts (a git commit, or the working tree uploaded
as a registry blob for `--allow-dirty`), the build Job, the digest it reports.

Pure: plain dicts and strings; no network, disk, environment or clock. Imports only the standard
library and `launch.errors`. Facts are checked against the maintained fork
(github.com/osscontainertools/kaniko, v1.28.x); comments name the upstream file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from launch.errors import UsageError
from launch.registry_gate import STAGING

# Upstream GoogleContainerTools/kaniko was archived in June 2025 (images frozen at v1.24.0); the
# fork publishes release images as `ghcr.io/osscontainertools/kaniko:v<X.Y.Z>`
# (.github/workflows/images.yaml, "Apply release tags").
DEFAULT_KANIKO_IMAGE = "ghcr.io/osscontainertools/kaniko:v1.28.3"
CONTAINER_NAME = "kaniko"
TERMINATION_LOG = "/dev/termination-log"
# `--allow-dirty`: the working tree, a gzipped tar uploaded to the registry as a blob of
# `<repo>/context`, is fetched by an init container into an emptyDir, and Kaniko unpacks it from
# there (`tar://<path>`: pkg/buildcontext/buildcontext.go GetBuildContext keeps what follows
# `tar://`; pkg/buildcontext/tar.go -> pkg/util/tar_util.go UnpackCompressedTar gunzips it
# whatever its name, into /kaniko/buildcontext/). The mount is under /kaniko on purpose: Kaniko
# leaves every mount point out of the image (pkg/util/fs_util.go DetectFilesystemIgnoreList), so
# a volume at Kaniko's usual /workspace would silently drop whatever a Dockerfile with
# `WORKDIR /workspace` copies there; /kaniko is ignored anyway (defaultIgnoreList: KanikoDir).
DEFAULT_FETCH_IMAGE = "busybox:1.36.1"
FETCH_CONTAINER_NAME = "fetch-context"
CONTEXT_VOLUME = "build-context"
CONTEXT_DIR = "/kaniko/launch-context"
CONTEXT_TAR = f"{CONTEXT_DIR}/context.tar.gz"
TAR_CONTEXT = f"tar://{CONTEXT_TAR}"
# The init container's script (busybox sh, wget, sha256sum; the env names the URL, the digest
# and the file). A wrong digest cannot reach Kaniko: Distribution addresses blobs by digest and
# verifies it on upload, and the script checks it again after the download.
FETCH_SCRIPT = (
    'wget -T 60 -O "$CONTEXT_TAR.part" "$CONTEXT_URL"\n'
    'got="sha256:$(sha256sum "$CONTEXT_TAR.part" | cut -d" " -f1)"\n'
    'if [ "$got" != "$CONTEXT_DIGEST" ]; then\n'
    '  echo "build context $CONTEXT_URL: digest $got, expected $CONTEXT_DIGEST" >&2\n'
    "  exit 1\n"
    "fi\n"
    'mv "$CONTEXT_TAR.part" "$CONTEXT_TAR"\n'
    'echo "build context $CONTEXT_DIGEST: $(wc -c < "$CONTEXT_TAR") bytes"\n'
)
# A build pod lost to the infrastructure in a way that is not a disruption is built again this
# many times (the Job's backoffLimit); a preempted or evicted one is always rebuilt, uncounted,
# and a failed build (Kaniko's or the context fetch's non-zero exit) fails at once
# (`build_failure_policy`; docs/design.md "Preemption, eviction and node loss").
BUILD_RETRIES = 2
# Keys of the git credentials Secret (type kubernetes.io/basic-auth), read as GIT_USERNAME and
# GIT_PASSWORD (pkg/buildcontext/git.go getGitAuth).
GIT_SECRET_USERNAME_KEY = "username"
GIT_SECRET_PASSWORD_KEY = "password"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
_BLOB_URL_RE = re.compile(r"^https?://[^/?#]+/v2/[^?#]+/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


# The OCI annotation key for "the source revision this image was built from".
REVISION_LABEL = "org.opencontainers.image.revision"


def registry_host(registry: str) -> str:
    """`host:port[/prefix]` without a scheme or trailing slash."""
    for scheme in ("https://", "http://"):
        if registry.startswith(scheme):
            registry = registry[len(scheme) :]
    return registry.rstrip("/")


def repository_name(repo_name: str) -> str:
    """A repo name as an OCI repository path component: lowercase `[a-z0-9]` joined by `.`/`_`/`-`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", repo_name.lower())
    name = re.sub(r"[._-]*([._-])[._-]*", r"\1", name).strip("._-")
    if not name:
        raise UsageError(
            f"cannot make an image name from the repository name {repo_name!r}",
            hint="rename the repository directory to contain letters or digits",
        )
    return name


def image_ref(*, registry: str, repo_name: str, tag: str) -> str:
    """`<registry>/<repo name lowercased, sanitised>:<tag>`."""
    if not _TAG_RE.match(tag):
        raise ValueError(f"invalid image tag {tag!r}")
    return f"{registry_host(registry)}/{repository_name(repo_name)}:{tag}"


def repository_path(*, registry: str, repo_name: str) -> str:
    """The repository of the images on the registry (path, no host): `<repo>`, after any path
    prefix of `registry` (`reg.io/alice` -> `alice/<repo>`)."""
    prefix = registry_host(registry).partition("/")[2]
    return f"{prefix}/{repository_name(repo_name)}" if prefix else repository_name(repo_name)


def staging_ref(ref: str) -> str:
    """Where a Kaniko Job pushes `ref` when the registry's gate admits pushes by token only:
    `<host>/staging/<path>:<tag>`, the one prefix open to pods (launch then copies the image by
    digest to `ref`, with the user's token)."""
    host, _, path = ref.partition("/")
    return f"{host}/{STAGING}/{path}"


def cache_repo(*, registry: str, repo_name: str) -> str:
    """Kaniko's layer cache repository: `<registry>/<repo>/cache`."""
    return f"{registry_host(registry)}/{repository_name(repo_name)}/cache"


def context_repository(*, registry: str, repo_name: str) -> str:
    """The repository (path on the registry, no host) that holds `--allow-dirty` build contexts:
    `<repo>/context`, after any path prefix of `registry` (`reg.io/team` -> `team/<repo>/context`).
    Give it to `launch.registry.upload_blob`."""
    if not registry_host(registry).partition("/")[0]:
        raise ValueError(f"invalid registry {registry!r}")
    return f"{repository_path(registry=registry, repo_name=repo_name)}/context"


def context_blob_url(*, registry: str, repo_name: str, digest: str, insecure: bool) -> str:
    """Where the build pod downloads an uploaded build context: the registry's blob endpoint
    `http(s)://<registry>/v2/<repo>/context/blobs/<digest>` (plain HTTP when `insecure`).

    `registry` is the push name, the one Kaniko pushes to from inside the cluster. Distribution
    answers blob GETs anonymously when it has no `auth` configured (the in-cluster registry of
    deploy/registry/); with the filesystem driver the bytes come straight back, with S3-like
    drivers as a redirect, which wget follows.
    """
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    host = registry_host(registry).partition("/")[0]
    repository = context_repository(registry=registry, repo_name=repo_name)
    scheme = "http" if insecure else "https"
    return f"{scheme}://{host}/v2/{repository}/blobs/{digest}"


def _remote_host_path(remote_url: str) -> tuple[str, str, str]:
    """(scheme, host[:port], path) of an https, http, ssh, git or scp-like remote; no credentials."""
    if "://" in remote_url:
        parts = urlsplit(remote_url)
        scheme = parts.scheme.lower()
        if (
            scheme not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git")
            or not parts.hostname
        ):
            raise UsageError(
                f"git remote {remote_url!r} is not a URL the cluster can clone",
                hint="push the branch to an https or ssh remote (git remote -v), or use --allow-dirty",
            )
        host = parts.hostname
        # An ssh port says nothing about the https port Kaniko clones from; keep http(s) ports.
        if parts.port is not None and scheme in ("https", "http"):
            host = f"{host}:{parts.port}"
        return scheme, host, parts.path.lstrip("/")
    match = _SCP_RE.match(remote_url)
    if match is None or match["path"].startswith("~"):
        raise UsageError(
            f"git remote {remote_url!r} is not a URL the cluster can clone",
            hint="push the branch to an https or ssh remote (git remote -v), or use --allow-dirty",
        )
    return "ssh", match["host"], match["path"]


def git_pull_method(remote_url: str) -> str:
    """`http` for a plain-HTTP remote, else `https` (Kaniko's GIT_PULL_METHOD, default https)."""
    scheme, _, _ = _remote_host_path(remote_url)
    return "http" if scheme == "http" else "https"


def git_context(remote_url: str, branch: str | None, commit: str) -> str:
    """Kaniko's git build context: `git://<host>/<path>#refs/heads/<branch>#<sha>`.

    Kaniko clones `<GIT_PULL_METHOD>://<host>/<path>` (https unless told otherwise), so ssh and
    scp-like remotes (`git@host:org/repo.git`) become the https address of the same repository;
    credentials in the URL are dropped (they come from the Secret). A full `refs/heads/` ref is
    cloned directly, then the sha is checked out (pkg/buildcontext/git.go). Without a branch
    (detached HEAD) the sha alone is fetched.
    """
    if not _SHA_RE.match(commit):
        raise ValueError(f"commit must be a full 40-character sha, got {commit!r}")
    _, host, path = _remote_host_path(remote_url)
    base = f"git://{host}/{path}"
    if not branch:
        return f"{base}#{commit}"
    if "#" in branch:
        raise UsageError(
            f"branch {branch!r} contains `#`, which Kaniko's git context cannot express",
            hint="rename the branch (git branch -m NEW)",
        )
    return f"{base}#refs/heads/{branch}#{commit}"


def render_build_job(
    *,
    name: str,
    namespace: str,
    context: str | None = None,
    context_blob_url: str | None = None,
    destination: str,
    cache_repo: str | None,
    dockerfile: str = "Dockerfile",
    context_sub_path: str | None = None,
    kaniko_image: str = DEFAULT_KANIKO_IMAGE,
    fetch_image: str = DEFAULT_FETCH_IMAGE,
    insecure_registry: str | None = None,
    platform: str = "linux/amd64",
    git_secret: str | None = None,
    git_pull_method: str = "https",
    service_account: str | None = None,
    ttl_seconds: int = 3600,
    active_deadline_s: int | None = 7200,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A batch/v1 Job that builds `destination` with Kaniko and reports the digest.

    A preempted or evicted build pod is replaced without counting; Kaniko's non-zero exit fails
    the Job at once (`build_failure_policy`).

    The digest goes to the termination log (`--digest-file=/dev/termination-log`,
    terminationMessagePolicy File). Kaniko writes it *before* pushing: trust it only when the
    container exited 0.

    Pass exactly one source. `context`: a git context (`git_context`), the clean-commit path.
    `context_blob_url` (`context_blob_url()`), the `--allow-dirty` path: a gzipped tar of the
    working tree already uploaded to the registry (`launch.registry.upload_blob`). An init
    container (`fetch_image`, busybox: sh, wget, sha256sum) downloads it into an emptyDir at
    `CONTEXT_DIR` and checks its sha256 against the digest in the URL; Kaniko then builds
    `--context=tar://<CONTEXT_TAR>`. Nothing is streamed into the pod, so no `pods/attach`.

    `git_secret` names a Secret with `username`/`password` keys, passed as GIT_USERNAME and
    GIT_PASSWORD (optional keys). GIT_TOKEN is never set: Kaniko lets it silently override both.
    `insecure_registry` is the registry's `host:port` when it speaks plain HTTP (push, pull and
    cache). `dockerfile` is relative to the context after `context_sub_path` is applied
    (cmd/executor/cmd/root.go resolveSourceContext, then resolveDockerfilePath).
    """
    if (context is None) == (context_blob_url is None):
        raise TypeError("pass exactly one of context or context_blob_url")
    blob_digest = None
    if context_blob_url is not None:
        match = _BLOB_URL_RE.match(context_blob_url)
        if match is None:
            raise ValueError(
                f"context_blob_url must be http(s)://<registry>/v2/<repo>/blobs/sha256:<hex>, "
                f"got {context_blob_url!r}"
            )
        blob_digest = match["digest"]
        context = TAR_CONTEXT
    elif context is not None and context.startswith("tar://"):
        raise ValueError(
            f"tar context {context!r}: pass the uploaded blob's URL as context_blob_url instead"
        )
    args = [
        f"--context={context}",
        f"--dockerfile={dockerfile}",
        f"--destination={destination}",
        # What the image was built from (the tag: a commit, or an uploaded tree's hash): a later
        # launch reuses the tag only when the image says the same (`submit.find_or_build`).
        f"--label={REVISION_LABEL}={destination.rsplit(':', 1)[1]}",
        # No layer cache without a cache_repo: its tags are as writable as any other, and a
        # cached layer is pulled without a check (`image_trust = local`, launch.image_trust).
        *(["--cache=true", f"--cache-repo={cache_repo}"] if cache_repo else ["--cache=false"]),
        f"--digest-file={TERMINATION_LOG}",
        f"--custom-platform={platform}",
    ]
    if context_sub_path:
        args.append(f"--context-sub-path={context_sub_path}")
    if insecure_registry:
        # A host, not a path: `reg:5000/alice` would match nothing and Kaniko would try HTTPS.
        host = registry_host(insecure_registry).partition("/")[0]
        args.append(f"--insecure-registry={host}")

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": kaniko_image,
        "args": args,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    env: list[dict[str, Any]] = []
    is_git = context is not None and context.startswith("git://")
    if is_git and git_pull_method != "https":
        if git_pull_method != "http":
            raise ValueError(f"git_pull_method must be https or http, got {git_pull_method!r}")
        env.append({"name": "GIT_PULL_METHOD", "value": git_pull_method})
    if is_git and git_secret:
        for var, key in (
            ("GIT_USERNAME", GIT_SECRET_USERNAME_KEY),
            ("GIT_PASSWORD", GIT_SECRET_PASSWORD_KEY),
        ):
            env.append(
                {
                    "name": var,
                    "valueFrom": {
                        "secretKeyRef": {"name": git_secret, "key": key, "optional": True}
                    },
                }
            )
    if env:
        container["env"] = env

    pod_spec: dict[str, Any] = {"restartPolicy": "Never"}
    if context_blob_url is not None:
        mount = {"name": CONTEXT_VOLUME, "mountPath": CONTEXT_DIR}
        container["volumeMounts"] = [mount]
        pod_spec["initContainers"] = [
            {
                "name": FETCH_CONTAINER_NAME,
                "image": fetch_image,
                "command": ["sh", "-ec", FETCH_SCRIPT],
                "env": [
                    {"name": "CONTEXT_URL", "value": context_blob_url},
                    {"name": "CONTEXT_DIGEST", "value": blob_digest},
                    {"name": "CONTEXT_TAR", "value": CONTEXT_TAR},
                ],
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                "volumeMounts": [dict(mount)],
            }
        ]
        pod_spec["volumes"] = [{"name": CONTEXT_VOLUME, "emptyDir": {}}]
    pod_spec["containers"] = [container]
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    job_spec: dict[str, Any] = {
        "backoffLimit": BUILD_RETRIES,
        "podFailurePolicy": build_failure_policy(fetch_context=context_blob_url is not None),
        "ttlSecondsAfterFinished": ttl_seconds,
    }
    if active_deadline_s is not None:
        job_spec["activeDeadlineSeconds"] = active_deadline_s
    job_spec["template"] = {
        "metadata": {
            "labels": dict(labels or {}),
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
        "spec": pod_spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": job_spec,
    }


def build_failure_policy(*, fetch_context: bool) -> dict[str, Any]:
    """The build Job's podFailurePolicy: `Ignore` a pod with the `DisruptionTarget` condition
    (preempted, evicted, drained, node lost: built again, uncounted), then `FailJob` on a
    non-zero exit of Kaniko, or of the context fetch (`fetch_context`: a wrong digest or a
    missing blob does not get better by retrying), as `backoffLimit: 0` did. Other pod failures
    count against `BUILD_RETRIES`."""
    containers = [CONTAINER_NAME, *([FETCH_CONTAINER_NAME] if fetch_context else [])]
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            *(
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": name, "operator": "NotIn", "values": [0]},
                }
                for name in containers
            ),
        ]
    }


def digest_from_termination_message(text: str | None) -> str | None:
    """The `sha256:<64 hex>` digest Kaniko wrote to the termination log, or None."""
    if not text:
        return None
    digest = text.strip()
    return digest if _DIGEST_RE.match(digest) else None
