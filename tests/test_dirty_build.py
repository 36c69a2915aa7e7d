"""`--allow-dirty` on the cluster, end to end over HTTP: the working tree of a real, dirty git
repository is archived (`git.archive_worktree`), uploaded as a blob to a real CNCF Distribution
2.8 registry, directly and through the API emulator's service proxy (the real `kubernetes`
client), read back, and handed to a rendered Kaniko Job whose init container script is run here
against the same registry.

No mocks: every request crosses a real socket. Needs /usr/bin/docker-registry (skipped without).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate
import pytest
import requests

from launch import git, kaniko
from launch.cluster import Cluster, ClusterError, ServiceProxy
from launch.errors import UsageError
from launch.registry import HttpTransport, digest_of
from launch.registry_push import blob_exists, upload_blob
from tests.gitrepo import GitRepo, make_repo
from tests.kube_emulator import KubeEmulator, running
from tests.registry_server import Registry, running_registry

K8S_VERSION = "1.33.0"
# The push name, as launch's `registry` setting holds it: what Kaniko and the init container use.
PUSH_NAME = "registry.launch-system.svc.cluster.local:5000"
SERVICE = ("launch-system", "registry", 5000)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running() as emulator:
        yield emulator


@pytest.fixture
def cluster(kube: KubeEmulator, registry: Registry, tmp_path: Path) -> Iterator[Cluster]:
    kube.register_proxy(*SERVICE, ("127.0.0.1", registry.port))
    path = kube.write_kubeconfig(tmp_path / "kubeconfig", context="lab", namespace="research")
    with Cluster.connect("lab", kubeconfig=str(path), request_timeout_s=5) as c:
        yield c


@dataclass
class Context:
    tree: str
    data: bytes
    digest: str


def dirty_repo(tmp_path: Path) -> GitRepo:
    """Pushed, then edited: a modified file, an untracked one, an ignored one, a binary one."""
    repo = make_repo(
        tmp_path,
        name="Dirty_Proj",
        files={
            "services/trainer/Dockerfile": "FROM python:3.12-slim\nWORKDIR /workspace\nCOPY . .\n",
            "services/trainer/train.py": "print('committed')\n",
            "README.md": "proj\n",
            ".gitignore": "*.log\n",
        },
    )
    repo.write("services/trainer/train.py", "print('edited, not committed')\n")
    repo.write("services/trainer/new_module.py", "X = 1\n")
    repo.write("services/trainer/weights.bin", bytes(range(256)) * 16)
    repo.write("services/trainer/debug.log", "ignored\n")
    return repo


def archive(repo: GitRepo, dest: Path) -> Context:
    tree = git.archive_worktree(repo.path, dest)
    data = dest.read_bytes()
    return Context(tree, data, digest_of(data))


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_the_archive_is_the_working_tree(tmp_path: Path) -> None:
    repo = dirty_repo(tmp_path)
    ctx = archive(repo, tmp_path / "context.tar.gz")
    assert ctx.tree == git.tree_hash(repo.path) != repo.git("rev-parse", "HEAD^{tree}")
    assert ctx.data[:2] == b"\x1f\x8b"  # gzip: Kaniko's tar context gunzips whatever its name
    files = members(ctx.data)
    assert files["services/trainer/train.py"] == b"print('edited, not committed')\n"
    assert files["services/trainer/new_module.py"] == b"X = 1\n"
    assert files["services/trainer/weights.bin"] == bytes(range(256)) * 16
    assert "services/trainer/debug.log" not in files
    assert members(archive(repo, tmp_path / "again.tar.gz").data) == files


def test_the_same_tree_archives_to_the_same_bytes(tmp_path: Path) -> None:
    repo = dirty_repo(tmp_path)
    first = archive(repo, tmp_path / "first.tar.gz")
    time.sleep(1.1)
    again = archive(repo, tmp_path / "again.tar.gz")
    assert again.tree == first.tree
    assert again.digest == first.digest


def test_upload_directly_then_skip(registry: Registry, tmp_path: Path) -> None:
    ctx = archive(dirty_repo(tmp_path), tmp_path / "context.tar.gz")
    repository = kaniko.context_repository(registry=PUSH_NAME, repo_name="Dirty_Proj")
    assert repository == "dirty_proj/context"
    transport = HttpTransport(registry.url, timeout_s=5)

    assert upload_blob(repository=repository, data=ctx.data, transport=transport) == ctx.digest
    assert [m for m, _ in transport.requests] == ["HEAD", "POST", "PUT"]
    assert blob_exists(repository=repository, digest=ctx.digest, transport=transport)
    status, _, body = transport.request("GET", f"/v2/{repository}/blobs/{ctx.digest}", {})
    assert status == 200 and body == ctx.data

    transport.requests.clear()
    assert upload_blob(repository=repository, data=ctx.data, transport=transport) == ctx.digest
    assert transport.requests == [("HEAD", f"/v2/{repository}/blobs/{ctx.digest}")]


def test_upload_through_the_service_proxy_then_skip(
    registry: Registry, kube: KubeEmulator, cluster: Cluster, tmp_path: Path
) -> None:
    ctx = archive(dirty_repo(tmp_path), tmp_path / "context.tar.gz")
    repository = kaniko.context_repository(registry=PUSH_NAME, repo_name="Dirty_Proj")
    proxy = cluster.service_proxy(*SERVICE)
    kube.reset_requests()

    assert upload_blob(repository=repository, data=ctx.data, transport=proxy) == ctx.digest
    # The registry's 404 carries Docker-Distribution-API-Version, so ServiceProxy needs no GET
    # to tell it from an API-server refusal: an absent blob costs one HEAD.
    assert [r.method for r in kube.matching(verb="proxy")] == ["HEAD", "POST", "PUT"]
    check_through_the_proxy(registry, kube, proxy, repository, ctx)


def check_through_the_proxy(
    registry: Registry, kube: KubeEmulator, proxy: ServiceProxy, repository: str, ctx: Context
) -> None:
    assert all(r.authorization == "Bearer emulator-token" for r in kube.matching(verb="proxy"))
    assert blob_exists(repository=repository, digest=ctx.digest, transport=proxy)
    status, _, body = proxy.request("GET", f"/v2/{repository}/blobs/{ctx.digest}")
    assert status == 200 and body == ctx.data  # binary bytes both ways through the proxy
    # ... and the registry itself has them (what the build pod reads, anonymously)
    direct = requests.get(f"{registry.url}/v2/{repository}/blobs/{ctx.digest}", timeout=5)
    assert direct.status_code == 200 and direct.content == ctx.data
    # a relaunch of the same tree: one HEAD, nothing uploaded
    kube.reset_requests()
    assert upload_blob(repository=repository, data=ctx.data, transport=proxy) == ctx.digest
    assert [r.method for r in kube.matching(verb="proxy")] == ["HEAD"]


def test_an_upload_rbac_refuses_names_the_missing_verb(
    kube: KubeEmulator, cluster: Cluster, tmp_path: Path
) -> None:
    """`get` on services/proxy (enough for the reuse check) does not allow the upload's POST."""
    ctx = archive(dirty_repo(tmp_path), tmp_path / "context.tar.gz")
    kube.forbid("create", "services/proxy", "launch-system")
    proxy = cluster.service_proxy(*SERVICE)
    with pytest.raises(ClusterError) as info:
        upload_blob(repository="dirty_proj/context", data=ctx.data, transport=proxy)
    assert "`create` on `services/proxy`" in (info.value.hint or "")
    assert not blob_exists(repository="dirty_proj/context", digest=ctx.digest, transport=proxy)


def build_job(ctx: Context, *, insecure: bool = True) -> dict[str, object]:
    return kaniko.render_build_job(
        name=f"build-dirty-proj-{ctx.tree[:12]}",
        namespace="research",
        context_blob_url=kaniko.context_blob_url(
            registry=PUSH_NAME, repo_name="Dirty_Proj", digest=ctx.digest, insecure=insecure
        ),
        destination=kaniko.image_ref(registry=PUSH_NAME, repo_name="Dirty_Proj", tag=ctx.tree),
        cache_repo=kaniko.cache_repo(registry=PUSH_NAME, repo_name="Dirty_Proj"),
        context_sub_path="services/trainer",
        insecure_registry=PUSH_NAME,
        service_account="launch-builder",
        labels={"app.kubernetes.io/managed-by": "launch"},
    )


def test_the_build_job_fetches_the_uploaded_context(registry: Registry, tmp_path: Path) -> None:
    ctx = archive(dirty_repo(tmp_path), tmp_path / "context.tar.gz")
    repository = kaniko.context_repository(registry=PUSH_NAME, repo_name="Dirty_Proj")
    upload_blob(repository=repository, data=ctx.data, transport=HttpTransport(registry.url))

    job = build_job(ctx)
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]  # type: ignore[index]
    (fetch,) = pod["initContainers"]
    (main,) = pod["containers"]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env["CONTEXT_URL"] == f"http://{PUSH_NAME}/v2/dirty_proj/context/blobs/{ctx.digest}"
    assert env["CONTEXT_DIGEST"] == ctx.digest
    assert main["args"] == [
        "--context=tar:///kaniko/launch-context/context.tar.gz",
        "--dockerfile=Dockerfile",
        f"--destination={PUSH_NAME}/dirty_proj:{ctx.tree}",
        f"--label=org.opencontainers.image.revision={ctx.tree}",
        "--cache=true",
        f"--cache-repo={PUSH_NAME}/dirty_proj/cache",
        "--digest-file=/dev/termination-log",
        "--custom-platform=linux/amd64",
        "--context-sub-path=services/trainer",
        f"--insecure-registry={PUSH_NAME}",
    ]
    assert "env" not in main and "stdin" not in main
    assert build_job(ctx, insecure=False)["spec"]["template"]["spec"]["initContainers"][0]["env"][  # type: ignore[index]
        0
    ]["value"].startswith("https://")

    # The init container's script, run here with the URL of this test's registry (GNU wget,
    # sha256sum, cut, wc and mv stand in for busybox's).
    if shutil.which("wget") is None or shutil.which("sha256sum") is None:
        pytest.skip("wget or sha256sum not installed")
    workdir = tmp_path / "pod"
    workdir.mkdir()
    url = env["CONTEXT_URL"].replace(f"http://{PUSH_NAME}", registry.url)
    done = run_fetch(fetch, url=url, digest=ctx.digest, tar=workdir / "context.tar.gz")
    assert done.returncode == 0, done.stderr
    assert f"build context {ctx.digest}: {len(ctx.data)} bytes" in done.stdout
    assert (workdir / "context.tar.gz").read_bytes() == ctx.data
    # What Kaniko then does (pkg/util/tar_util.go UnpackCompressedTar into /kaniko/buildcontext,
    # then cmd/executor/cmd/root.go joins --context-sub-path and finds --dockerfile there).
    unpacked = tmp_path / "buildcontext"
    with tarfile.open(workdir / "context.tar.gz", mode="r:gz") as tar:
        tar.extractall(unpacked, filter="data")
    sub = unpacked / "services/trainer"
    assert (sub / "Dockerfile").is_file()
    assert (sub / "train.py").read_text() == "print('edited, not committed')\n"
    assert (sub / "new_module.py").is_file() and not (sub / "debug.log").exists()

    # A wrong digest (or a missing blob) fails the init container, so Kaniko never starts.
    other = tmp_path / "other"
    other.mkdir()
    bad = run_fetch(fetch, url=url, digest="sha256:" + "0" * 64, tar=other / "context.tar.gz")
    assert bad.returncode == 1 and "expected sha256:" + "0" * 64 in bad.stderr
    assert not (other / "context.tar.gz").exists()
    missing = url.rsplit("/", 1)[0] + "/sha256:" + "0" * 64
    gone = run_fetch(fetch, url=missing, digest="sha256:" + "0" * 64, tar=other / "context.tar.gz")
    assert gone.returncode != 0 and not (other / "context.tar.gz").exists()


def run_fetch(
    container: dict[str, object], *, url: str, digest: str, tar: Path
) -> subprocess.CompletedProcess[str]:
    command = container["command"]
    assert isinstance(command, list) and command[:2] == ["sh", "-ec"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONTEXT_URL": url,
        "CONTEXT_DIGEST": digest,
        "CONTEXT_TAR": str(tar),
    }
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_an_upload_leaves_out_what_dockerignore_excludes(
    registry: Registry, tmp_path: Path
) -> None:
    """An untracked `.env` listed in .dockerignore is not in the blob anyone could GET back;
    untracked files .dockerignore does not exclude still are, as are tracked files it names."""
    repo = dirty_repo(tmp_path)
    repo.write(".dockerignore", "# local only\n.env\n**/scratch/\n**/*.tmp\n!keep.tmp\n")
    repo.write(".env", "MY_API_TOKEN=hunter2\n")
    repo.write("services/trainer/scratch/notes.txt", "draft\n")
    repo.write("services/trainer/run.tmp", "x\n")
    repo.write("keep.tmp", "kept\n")
    ctx = archive(repo, tmp_path / "context.tar.gz")
    repository = kaniko.context_repository(registry=PUSH_NAME, repo_name="Dirty_Proj")
    transport = HttpTransport(registry.url, timeout_s=5)
    upload_blob(repository=repository, data=ctx.data, transport=transport)
    status, _, body = transport.request("GET", f"/v2/{repository}/blobs/{ctx.digest}", {})
    assert status == 200
    files = members(body)
    assert ".env" not in files and not any("hunter2" in str(v) for v in files.values())
    assert "services/trainer/scratch/notes.txt" not in files
    assert "services/trainer/run.tmp" not in files  # `**/*.tmp`; `*.tmp` alone is top-level only
    assert files["keep.tmp"] == b"kept\n" and ".dockerignore" in files
    assert files["services/trainer/new_module.py"] == b"X = 1\n"
    assert files["README.md"] == b"proj\n"  # tracked: always in, as in the commit


@pytest.mark.parametrize("name", [".env", "deploy/id_rsa", "certs/server.pem", ".netrc"])
def test_an_untracked_credential_is_refused(tmp_path: Path, name: str) -> None:
    repo = dirty_repo(tmp_path)
    repo.write(name, "secret\n")
    with pytest.raises(UsageError, match="look like credentials") as info:
        archive(repo, tmp_path / "context.tar.gz")
    assert name in info.value.message and ".dockerignore" in (info.value.hint or "")
    assert not (tmp_path / "context.tar.gz").exists()
    # Ignored by git, or by .dockerignore: left out, no error.
    repo.write(".dockerignore", f"{name}\n")
    assert name not in members(archive(repo, tmp_path / "ok.tar.gz").data)
