"""Kaniko knowledge: image names, the git build context, the build Job, the digest it reports.

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

# Upstream GoogleContainerTools/kaniko was archived in June 2025 (images frozen at v1.24.0); the
# fork publishes release images as `ghcr.io/osscontainertools/kaniko:v<X.Y.Z>`
# (.github/workflows/images.yaml, "Apply release tags").
DEFAULT_KANIKO_IMAGE = "ghcr.io/osscontainertools/kaniko:v1.28.3"
CONTAINER_NAME = "kaniko"
TERMINATION_LOG = "/dev/termination-log"
# Build context read from the container's stdin as a gzipped tar (pkg/buildcontext/tar.go):
# the `--allow-dirty` path, fed by the caller through the pod's attach subresource.
STDIN_CONTEXT = "tar://stdin"
# Keys of the git credentials Secret (type kubernetes.io/basic-auth), read as GIT_USERNAME and
# GIT_PASSWORD (pkg/buildcontext/git.go getGitAuth).
GIT_SECRET_USERNAME_KEY = "username"
GIT_SECRET_PASSWORD_KEY = "password"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def _registry_host(registry: str) -> str:
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
    return f"{_registry_host(registry)}/{repository_name(repo_name)}:{tag}"


def cache_repo(*, registry: str, repo_name: str) -> str:
    """Kaniko's layer cache repository: `<registry>/<repo>/cache`."""
    return f"{_registry_host(registry)}/{repository_name(repo_name)}/cache"


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
    context: str,
    destination: str,
    cache_repo: str,
    dockerfile: str = "Dockerfile",
    context_sub_path: str | None = None,
    kaniko_image: str = DEFAULT_KANIKO_IMAGE,
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

    The digest goes to the termination log (`--digest-file=/dev/termination-log`,
    terminationMessagePolicy File). Kaniko writes it *before* pushing: trust it only when the
    container exited 0.

    `context` is a git context (`git_context`) or `STDIN_CONTEXT` for `--allow-dirty`: Kaniko then
    reads a gzipped tar of the working tree from stdin (pkg/buildcontext/tar.go; `stdin` and
    `stdinOnce` are set, no tty) which the caller streams through the pod's `attach` subresource
    and closes (EOF). A `tar:///path` context would need a volume and a copy step; stdin needs
    neither. `active_deadline_s` ends a build whose caller never attached.

    `git_secret` names a Secret with `username`/`password` keys, passed as GIT_USERNAME and
    GIT_PASSWORD (optional keys). GIT_TOKEN is never set: Kaniko lets it silently override both.
    `insecure_registry` is the registry's `host:port` when it speaks plain HTTP (push, pull and
    cache). `dockerfile` is relative to the context after `context_sub_path` is applied
    (cmd/executor/cmd/root.go resolveSourceContext, then resolveDockerfilePath).
    """
    args = [
        f"--context={context}",
        f"--dockerfile={dockerfile}",
        f"--destination={destination}",
        "--cache=true",
        f"--cache-repo={cache_repo}",
        f"--digest-file={TERMINATION_LOG}",
        f"--custom-platform={platform}",
    ]
    if context_sub_path:
        args.append(f"--context-sub-path={context_sub_path}")
    if insecure_registry:
        args.append(f"--insecure-registry={_registry_host(insecure_registry)}")

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": kaniko_image,
        "args": args,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    env: list[dict[str, Any]] = []
    is_git = context.startswith("git://")
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
    if context == STDIN_CONTEXT:
        container["stdin"] = True
        container["stdinOnce"] = True

    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
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


def digest_from_termination_message(text: str | None) -> str | None:
    """The `sha256:<64 hex>` digest Kaniko wrote to the termination log, or None."""
    if not text:
        return None
    digest = text.strip()
    return digest if _DIGEST_RE.match(digest) else None
