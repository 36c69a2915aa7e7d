"""launch.kaniko: image names, git contexts, the build Job (golden + offline schema), digests.

Goldens: tests/golden/kaniko_*.yaml; regenerate on purpose with `make goldens`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from launch import kaniko, yamltext
from launch.errors import UsageError
from tests import goldens

GOLDEN = Path(__file__).parent / "golden"
UPDATE = goldens.update_requested()
K8S_VERSION = "1.33.0"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "registry.registry.svc.cluster.local:5000"
CONTEXT_DIGEST = "sha256:" + "cd" * 32


def build_job(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": "build-proj-0123456789ab",
        "namespace": "research",
        "context": kaniko.git_context("git@github.com:lab/Proj.git", "feature/x", COMMIT),
        "destination": kaniko.image_ref(registry=REGISTRY, repo_name="Proj", tag=COMMIT),
        "cache_repo": kaniko.cache_repo(registry=REGISTRY, repo_name="Proj"),
        "insecure_registry": REGISTRY,
        "git_secret": "git-credentials",
        "service_account": "launch-builder",
        "labels": {"app.kubernetes.io/managed-by": "launch", "launch/commit": COMMIT},
    }
    options.update(overrides)
    return kaniko.render_build_job(**options)


GOLDEN_CASES: dict[str, dict[str, Any]] = {
    "kaniko_job": {},
    "kaniko_job_blob": {
        "context": None,
        "context_blob_url": kaniko.context_blob_url(
            registry=REGISTRY, repo_name="Proj", digest=CONTEXT_DIGEST, insecure=True
        ),
        "destination": kaniko.image_ref(
            registry=REGISTRY,
            repo_name="Proj",
            tag="ab" * 20,  # the working tree's hash
        ),
        # Kaniko resolves --dockerfile inside context + --context-sub-path (cmd/executor/cmd/root.go)
        "context_sub_path": "services/trainer",
        "dockerfile": "Dockerfile",
        "git_secret": None,
    },
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(case: str) -> None:
    text = yamltext.to_yaml(build_job(**GOLDEN_CASES[case]))
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run `make goldens`"
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"
    assert yaml.safe_load(text) == build_job(**GOLDEN_CASES[case])


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_job_is_valid_kubernetes(case: str) -> None:
    kubernetes_validate.validate(build_job(**GOLDEN_CASES[case]), K8S_VERSION, strict=True)


def args_of(job: dict[str, Any]) -> list[str]:
    args: list[str] = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_build_job_shape() -> None:
    job = build_job()
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    spec = job["spec"]
    # A preempted/evicted build is built again uncounted; a failed one fails at once.
    assert spec["backoffLimit"] == kaniko.BUILD_RETRIES
    assert spec["podFailurePolicy"] == {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "kaniko", "operator": "NotIn", "values": [0]},
            },
        ]
    }
    assert spec["ttlSecondsAfterFinished"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "launch-builder"
    (main,) = pod["containers"]
    assert main["image"] == "ghcr.io/osscontainertools/kaniko:v1.28.3"
    assert main["terminationMessagePolicy"] == "File"
    assert main["terminationMessagePath"] == "/dev/termination-log"
    assert "stdin" not in main
    assert args_of(job) == [
        f"--context=git://github.com/lab/Proj.git#refs/heads/feature/x#{COMMIT}",
        "--dockerfile=Dockerfile",
        f"--destination={REGISTRY}/proj:{COMMIT}",
        f"--label=org.opencontainers.image.revision={COMMIT}",
        "--cache=true",
        f"--cache-repo={REGISTRY}/proj/cache",
        "--digest-file=/dev/termination-log",
        "--custom-platform=linux/amd64",
        f"--insecure-registry={REGISTRY}",
    ]
    env = {e["name"]: e for e in main["env"]}
    assert set(env) == {"GIT_USERNAME", "GIT_PASSWORD"}  # never GIT_TOKEN: it overrides both
    assert env["GIT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "git-credentials",
        "key": "password",
        "optional": True,
    }


def test_build_job_options() -> None:
    job = build_job(
        insecure_registry=None,
        git_secret=None,
        service_account=None,
        platform="linux/arm64",
        context_sub_path="sub",
        dockerfile="docker/Dockerfile.train",
        ttl_seconds=60,
        active_deadline_s=None,
        kaniko_image="mirror.local/kaniko:v1.28.3",
    )
    args = args_of(job)
    assert "--custom-platform=linux/arm64" in args
    assert "--context-sub-path=sub" in args
    assert "--dockerfile=docker/Dockerfile.train" in args
    assert not any(a.startswith("--insecure-registry") for a in args)
    pod = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod and "env" not in pod["containers"][0]
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert "activeDeadlineSeconds" not in job["spec"]
    assert pod["containers"][0]["image"] == "mirror.local/kaniko:v1.28.3"
    assert build_job(insecure_registry="http://reg.local:5000/")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"][-1] == ("--insecure-registry=reg.local:5000")


def test_blob_context_for_allow_dirty() -> None:
    url = kaniko.context_blob_url(
        registry=REGISTRY, repo_name="Proj", digest=CONTEXT_DIGEST, insecure=True
    )
    assert url == f"http://{REGISTRY}/v2/proj/context/blobs/{CONTEXT_DIGEST}"
    job = build_job(context=None, context_blob_url=url, fetch_image="mirror.local/busybox:1.36.1")
    pod = job["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    (fetch,) = pod["initContainers"]
    assert "stdin" not in main and "stdinOnce" not in main
    assert args_of(job)[0] == "--context=tar:///kaniko/launch-context/context.tar.gz"
    assert "env" not in main  # git credentials are useless for a tar context
    # the archive lands in an emptyDir shared by the init container and Kaniko, under /kaniko
    # (Kaniko leaves mount points out of the image: never at a path a Dockerfile may use)
    assert pod["volumes"] == [{"name": "build-context", "emptyDir": {}}]
    mount = {"name": "build-context", "mountPath": "/kaniko/launch-context"}
    assert main["volumeMounts"] == [mount] and fetch["volumeMounts"] == [mount]
    assert fetch["image"] == "mirror.local/busybox:1.36.1"
    assert fetch["command"][:2] == ["sh", "-ec"]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env == {
        "CONTEXT_URL": url,
        "CONTEXT_DIGEST": CONTEXT_DIGEST,
        "CONTEXT_TAR": "/kaniko/launch-context/context.tar.gz",
    }
    assert "tar://" + env["CONTEXT_TAR"] == kaniko.TAR_CONTEXT
    # a failed fetch (wrong digest, missing blob) fails the build at once, as Kaniko's exit does
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert [r["onExitCodes"]["containerName"] for r in rules[1:]] == ["kaniko", "fetch-context"]
    assert {fetch["name"], main["name"]} == {"fetch-context", "kaniko"}
    # the git build keeps its single container and no volume
    assert "initContainers" not in build_job()["spec"]["template"]["spec"]
    assert "volumes" not in build_job()["spec"]["template"]["spec"]


def test_blob_context_names() -> None:
    assert kaniko.context_repository(registry=REGISTRY, repo_name="My_Proj") == "my_proj/context"
    assert (
        kaniko.context_repository(registry="https://reg.io/team/", repo_name="P")
        == "team/p/context"
    )
    assert (
        kaniko.context_blob_url(
            registry="reg.io/team", repo_name="P", digest=CONTEXT_DIGEST, insecure=False
        )
        == f"https://reg.io/v2/team/p/context/blobs/{CONTEXT_DIGEST}"
    )
    with pytest.raises(ValueError):
        kaniko.context_blob_url(
            registry=REGISTRY, repo_name="p", digest="sha256:abc", insecure=True
        )


def test_exactly_one_build_source() -> None:
    url = f"http://{REGISTRY}/v2/proj/context/blobs/{CONTEXT_DIGEST}"
    with pytest.raises(TypeError):
        build_job(context_blob_url=url)  # and the git context of build_job()
    with pytest.raises(TypeError):
        build_job(context=None)
    for bad in (f"http://{REGISTRY}/v2/proj/context/blobs/sha256:abc", "file:///x.tar.gz"):
        with pytest.raises(ValueError):
            build_job(context=None, context_blob_url=bad)
    for tar in ("tar://stdin", "tar:///workspace/context.tar.gz"):
        with pytest.raises(ValueError, match="context_blob_url"):
            build_job(context=tar)


def test_plain_http_git_remote_sets_pull_method() -> None:
    remote = "http://gitea.lab:3000/lab/proj.git"
    assert kaniko.git_pull_method(remote) == "http"
    assert kaniko.git_pull_method("https://github.com/lab/proj.git") == "https"
    job = build_job(
        context=kaniko.git_context(remote, "main", COMMIT),
        git_pull_method=kaniko.git_pull_method(remote),
    )
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["GIT_PULL_METHOD"] == "http"
    with pytest.raises(ValueError):
        build_job(git_pull_method="ftp")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("registry", "repo", "tag", "ref"),
    [
        ("registry.local:5000", "proj", COMMIT, f"registry.local:5000/proj:{COMMIT}"),
        ("registry.local:5000/", "My_Repo", "abc", "registry.local:5000/my_repo:abc"),
        ("http://127.0.0.1:30500", "Deep Learning!", "v1", "127.0.0.1:30500/deep-learning:v1"),
        ("reg.io/team", "a..b--c", "t", "reg.io/team/a.b-c:t"),
        ("reg.io", "-x-", "t", "reg.io/x:t"),
    ],
)
def test_image_ref(registry: str, repo: str, tag: str, ref: str) -> None:
    assert kaniko.image_ref(registry=registry, repo_name=repo, tag=tag) == ref
    path = ref.split("/", 1)[1].rsplit(":", 1)[0]
    # distribution/reference path-component grammar
    for component in path.split("/"):
        assert re.fullmatch(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", component), component


def test_image_ref_refusals() -> None:
    with pytest.raises(UsageError):
        kaniko.image_ref(registry="r", repo_name="!!!", tag="t")
    with pytest.raises(ValueError):
        kaniko.image_ref(registry="r", repo_name="p", tag="bad:tag")


def test_cache_repo() -> None:
    assert kaniko.cache_repo(registry="reg:5000", repo_name="Proj") == "reg:5000/proj/cache"


@pytest.mark.parametrize(
    ("remote", "base"),
    [
        ("https://github.com/lab/proj.git", "git://github.com/lab/proj.git"),
        ("https://github.com/lab/proj", "git://github.com/lab/proj"),
        ("https://user:tok3n@github.com/lab/proj.git", "git://github.com/lab/proj.git"),
        ("https://git.lab:8443/lab/proj.git", "git://git.lab:8443/lab/proj.git"),
        ("git@github.com:lab/proj.git", "git://github.com/lab/proj.git"),
        ("github.com:lab/proj.git", "git://github.com/lab/proj.git"),
        ("ssh://git@github.com/lab/proj.git", "git://github.com/lab/proj.git"),
        ("ssh://git@git.lab:2222/lab/proj.git", "git://git.lab/lab/proj.git"),
        ("git://git.lab/lab/proj.git", "git://git.lab/lab/proj.git"),
    ],
)
def test_git_context(remote: str, base: str) -> None:
    assert kaniko.git_context(remote, "main", COMMIT) == f"{base}#refs/heads/main#{COMMIT}"
    assert "tok3n" not in kaniko.git_context(remote, "main", COMMIT)


def test_git_context_detached_and_refusals() -> None:
    remote = "https://github.com/lab/proj.git"
    assert kaniko.git_context(remote, None, COMMIT) == f"git://github.com/lab/proj.git#{COMMIT}"
    with pytest.raises(ValueError):
        kaniko.git_context(remote, "main", COMMIT[:7])
    with pytest.raises(UsageError):
        kaniko.git_context(remote, "fix#1", COMMIT)
    for local in ("/srv/git/proj.git", "file:///srv/git/proj.git", "../proj", "host:~user/p.git"):
        with pytest.raises(UsageError) as info:
            kaniko.git_context(local, "main", COMMIT)
        assert info.value.hint and "--allow-dirty" in info.value.hint


# --------------------------------------------------------------------------- digest


@pytest.mark.parametrize(
    ("text", "digest"),
    [
        ("sha256:" + "a" * 64, "sha256:" + "a" * 64),
        ("sha256:" + "0f" * 32 + "\n", "sha256:" + "0f" * 32),
        ("sha256:" + "A" * 64, None),
        ("sha256:" + "a" * 63, None),
        ("sha512:" + "a" * 64, None),
        ("error: failed to push", None),
        ("", None),
        (None, None),
    ],
)
def test_digest_from_termination_message(text: str | None, digest: str | None) -> None:
    assert kaniko.digest_from_termination_message(text) == digest
