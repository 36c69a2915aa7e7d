"""A real CNCF Distribution registry for tests, and tiny images pushed to it over the Distribution API.

    from tests.registry_server import push_tiny_image, running_registry

    def test_x(tmp_path):
        with running_registry(tmp_path) as reg:           # /usr/bin/docker-registry on 127.0.0.1:<free>
            digest = push_tiny_image(reg.url, "team/app", "abc123")
            ...                                           # reg.stop() simulates "registry down"

The registry is Debian's `docker-registry` package (Distribution 2.8), the same software as the
in-cluster registry of deploy/registry/. Tests that need it are skipped with a clear reason when
the binary is missing (CI installs it). Images are pushed exactly as Kaniko or skopeo push them:
blobs with a monolithic upload (`POST /v2/<repo>/blobs/uploads/` then `PUT <location>?digest=`),
then the manifest (`PUT /v2/<repo>/manifests/<tag>`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "REGISTRY_BINARY",
    "Registry",
    "ServerProcess",
    "TinyImage",
    "free_port",
    "layer_of",
    "push_blob",
    "push_image",
    "push_index",
    "push_manifest",
    "push_tiny_image",
    "running_registry",
    "tiny_image",
    "write_oci_layout",
]

REGISTRY_BINARY = os.environ.get("LAUNCH_TEST_REGISTRY_BINARY", "/usr/bin/docker-registry")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """What a test's server process (the registry, the gate) can do: stop, show its log."""

    log_path: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (terminate, wait, kill); idempotent. The port is closed afterwards."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Registry(ServerProcess):
    """A running `docker-registry serve` process."""

    host: str  # "127.0.0.1:PORT", the name images are tagged with
    url: str  # "http://127.0.0.1:PORT"
    root: Path  # filesystem storage
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])


def _config(root: Path, port: int, tls: tuple[Path, Path] | None) -> str:
    # JSON is YAML: no YAML writer needed. Quiet logs, filesystem storage, deletes allowed.
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "launch-tests"}
    if tls is not None:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    return json.dumps(config, indent=2)


def _start(workdir: Path, tls: tuple[Path, Path] | None, verify: bool | str) -> Registry:
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = workdir / "config.yml"
    config_path.write_text(_config(root, port, tls))
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    scheme = "https" if tls is not None else "http"
    registry = Registry(
        host=f"127.0.0.1:{port}",
        url=f"{scheme}://127.0.0.1:{port}",
        root=root,
        log_path=log_path,
        process=process,
    )
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {process.returncode} before answering:\n{registry.log()}"
            )
        try:
            response = requests.get(f"{registry.url}/v2/", timeout=1, verify=verify)
            if response.status_code == 200:
                return registry
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            registry.stop()
            raise RuntimeError(
                f"docker-registry did not answer /v2/ in {_TIMEOUT_S}s:\n{registry.log()}"
            )
        time.sleep(0.02)


@contextmanager
def running_registry(
    tmp_path: Path, *, tls: tuple[Path, Path] | None = None, verify: bool | str = True
) -> Iterator[Registry]:
    """Start `/usr/bin/docker-registry serve` on 127.0.0.1:<free port>; stop it on exit.

    Storage lives under `tmp_path/registry-<port>/`. With `tls=(cert, key)` it serves HTTPS
    (`verify` is what the readiness probe passes to requests: a CA bundle path or False).
    Skips the calling test when the binary is missing.
    """
    if not (os.path.isfile(REGISTRY_BINARY) and os.access(REGISTRY_BINARY, os.X_OK)):
        pytest.skip(
            f"{REGISTRY_BINARY} not found: install Debian's `docker-registry` package "
            "(CNCF Distribution 2.8) to run the registry tests"
        )
    workdir = Path(tmp_path) / f"registry-{time.monotonic_ns()}"
    workdir.mkdir(parents=True)
    registry = None
    for attempt in range(3):  # a free port can be taken between probing and binding
        try:
            registry = _start(workdir, tls, verify)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    assert registry is not None
    try:
        yield registry
    finally:
        registry.stop()


# --- pushing -----------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _repo_url(url: str, repository: str) -> str:
    return f"{url.rstrip('/')}/v2/{repository}"


def push_blob(url: str, repository: str, data: bytes, *, verify: bool | str = True) -> str:
    """Monolithic blob upload (POST, then PUT `<Location>?digest=`); returns the blob digest."""
    digest = _sha256(data)
    started = requests.post(
        f"{_repo_url(url, repository)}/blobs/uploads/", timeout=_TIMEOUT_S, verify=verify
    )
    if started.status_code != 202:
        raise RuntimeError(f"POST blob upload: {started.status_code} {started.text}")
    location = urljoin(url.rstrip("/") + "/", started.headers["Location"])
    separator = "&" if "?" in location else "?"
    finished = requests.put(
        f"{location}{separator}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=_TIMEOUT_S,
        verify=verify,
    )
    if finished.status_code != 201:
        raise RuntimeError(f"PUT blob {digest}: {finished.status_code} {finished.text}")
    return digest


def push_manifest(
    url: str,
    repository: str,
    reference: str,
    body: bytes,
    media_type: str,
    *,
    verify: bool | str = True,
) -> str:
    """PUT a manifest (or index) under a tag or digest; returns the registry's Docker-Content-Digest."""
    response = requests.put(
        f"{_repo_url(url, repository)}/manifests/{reference}",
        data=body,
        headers={"Content-Type": media_type},
        timeout=_TIMEOUT_S,
        verify=verify,
    )
    if response.status_code != 201:
        raise RuntimeError(
            f"PUT manifest {repository}:{reference}: {response.status_code} {response.text}"
        )
    digest = response.headers["Docker-Content-Digest"]
    if digest != _sha256(body):
        raise RuntimeError(f"registry digest {digest} != sha256 of the manifest {_sha256(body)}")
    return digest


@dataclass(frozen=True)
class TinyImage:
    """A one-layer image: its blobs and manifest bytes (digest = sha256 of `manifest`)."""

    config: bytes
    layer: bytes
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return _sha256(self.manifest)

    def descriptor(self, platform: dict[str, str] | None = None) -> dict[str, Any]:
        descriptor: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest),
        }
        if platform is not None:
            descriptor["platform"] = platform
        return descriptor


def _layer(payload: bytes) -> tuple[bytes, str]:
    """A reproducible gzipped tar with one file; returns (gzip bytes, diff_id of the tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0), _sha256(raw)


def tiny_image(
    *, oci: bool = False, payload: bytes = b"hello from launch\n", architecture: str = "amd64",
    labels: dict[str, str] | None = None,
) -> TinyImage:  # fmt: skip
    """Build (not push) a tiny single-layer image, Docker v2 schema2 or OCI; `labels` go in its
    config (`config.Labels`, as `docker build --label` / Kaniko's `--label` put them)."""
    layer, diff_id = _layer(payload)
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"], **({"Labels": labels} if labels else {})},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "digest": _sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                    "digest": _sha256(layer),
                    "size": len(layer),
                }
            ],
        },
        indent=3,  # like Docker/Kaniko: the digest is of these exact bytes, whitespace included
    ).encode()
    return TinyImage(config=config, layer=layer, manifest=manifest, media_type=media_type)


def push_tiny_image(
    url: str,
    repository: str,
    tag: str,
    *,
    oci: bool = False,
    payload: bytes = b"hello from launch\n",
    architecture: str = "amd64",
    verify: bool | str = True,
    labels: dict[str, str] | None = None,
) -> str:
    """Push a one-layer image (config blob, layer blob, manifest) as `repository:tag`.

    Docker v2 schema2 (`application/vnd.docker.distribution.manifest.v2+json`) by default, OCI
    (`application/vnd.oci.image.manifest.v1+json`) with `oci=True`. Returns the manifest digest
    from the PUT response's `Docker-Content-Digest` header.
    """
    image = tiny_image(oci=oci, payload=payload, architecture=architecture, labels=labels)
    push_blob(url, repository, image.config, verify=verify)
    push_blob(url, repository, image.layer, verify=verify)
    return push_manifest(url, repository, tag, image.manifest, image.media_type, verify=verify)


def push_index(
    url: str,
    repository: str,
    tag: str,
    *,
    oci: bool = False,
    architectures: Sequence[str] = ("amd64", "arm64"),
    verify: bool | str = True,
) -> tuple[str, dict[str, str]]:
    """Push a multi-platform image: one tiny manifest per architecture, then an OCI index
    (`oci=True`) or a Docker manifest list under `tag`.

    Returns (index digest, {architecture: that platform's manifest digest}).
    """
    descriptors = []
    per_arch = {}
    for arch in architectures:
        image = tiny_image(oci=oci, payload=f"{arch}\n".encode(), architecture=arch)
        push_blob(url, repository, image.config, verify=verify)
        push_blob(url, repository, image.layer, verify=verify)
        per_arch[arch] = push_manifest(
            url, repository, image.digest, image.manifest, image.media_type, verify=verify
        )
        descriptors.append(image.descriptor({"architecture": arch, "os": "linux"}))
    media_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": descriptors}, indent=3
    ).encode()
    return push_manifest(url, repository, tag, body, media_type, verify=verify), per_arch


def write_oci_layout(directory: Path, image: TinyImage, tag: str) -> Path:
    """Write `image` as an OCI image layout (oci-layout, index.json, blobs/sha256/…) for
    `skopeo copy oci:<directory>:<tag> docker://…`. Returns `directory`."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (image.config, image.layer, image.manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    descriptor = image.descriptor()
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (directory / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]})
    )
    return directory


def skopeo_binary() -> str | None:
    return shutil.which("skopeo")


def layer_of(files: Mapping[str, tuple[bytes, int]]) -> tuple[bytes, str]:
    """A reproducible gzipped layer tar of `files` ({path: (bytes, mode)}) with their parent
    directories; returns (gzip bytes, diff_id of the tar)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted(
            {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        )
        for name in dirs:
            info = tarfile.TarInfo(name + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            data, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0), _sha256(raw)


def push_image(
    url: str,
    repository: str,
    tag: str,
    *,
    layers: Sequence[Mapping[str, tuple[bytes, int]]],
    config: Mapping[str, Any] | None = None,
    oci: bool = False,
    architecture: str = "amd64",
) -> str:
    """Push an image of several layers (each {path: (bytes, mode)}) with `config` as its
    `config` section (Env, WorkingDir, Labels...), as Kaniko pushes a multi-layer build.
    Returns the manifest digest."""
    blobs = [layer_of(files) for files in layers]
    doc = {
        "architecture": architecture,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in blobs]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(blobs))],
    }
    body = json.dumps(doc, sort_keys=True).encode()
    push_blob(url, repository, body)
    for data, _ in blobs:
        push_blob(url, repository, data)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "digest": _sha256(body),
            "size": len(body),
        },
        "layers": [
            {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "digest": _sha256(d), "size": len(d)}
            for d, _ in blobs
        ],
    }
    return push_manifest(url, repository, tag, json.dumps(manifest, indent=3).encode(), media_type)
