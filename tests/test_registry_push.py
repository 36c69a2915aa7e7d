"""launch.registry_push against a real CNCF Distribution 2.8 (`/usr/bin/docker-registry`), directly
and through the Kubernetes emulator's service proxy: blob uploads (monolithic and chunked),
manifest PUTs, and the refusals of a read-only registry. Every request crosses a real socket;
the only doubles are transports that change bytes on the way (a broken proxy).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from launch.cluster import Cluster
from launch.errors import LaunchError
from launch.registry import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    PROXY_HINT,
    HttpTransport,
    RegistryError,
    Transport,
    digest_of,
    get_manifest,
)
from launch.registry_push import blob_exists, put_manifest, upload_blob, upload_file
from tests import test_registry as base
from tests.kube_emulator import KubeEmulator, running
from tests.registry_server import (
    REGISTRY_BINARY,
    Registry,
    free_port,
    push_tiny_image,
    running_registry,
    tiny_image,
)
from tests.test_registry import DIGEST, DISTRIBUTION, FakeServer, _timed

registry = base.registry  # one registry for the module (each test uses its own repository)
serve = base.serve  # small HTTP servers for answers a healthy registry does not give

KIB = 1 << 10


# --- upload_blob: `--allow-dirty` build contexts, moved from launch.registry ---------------------


def test_upload_blob_is_monolithic_then_skipped(registry: Registry) -> None:
    data = b"\x1f\x8b" + bytes(range(256)) * 64  # any bytes; build contexts are tar.gz
    digest = digest_of(data)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    transport = HttpTransport(registry.url, timeout_s=60)
    assert not blob_exists(repository="up/app/context", digest=digest, transport=transport)
    transport.requests.clear()
    assert upload_blob(repository="up/app/context", data=data, transport=transport) == digest
    methods = [(m, p.split("?", 1)[0]) for m, p in transport.requests]
    assert methods[:2] == [
        ("HEAD", f"/v2/up/app/context/blobs/{digest}"),
        ("POST", "/v2/up/app/context/blobs/uploads/"),
    ]
    assert methods[2][0] == "PUT" and methods[2][1].startswith("/v2/up/app/context/blobs/uploads/")
    assert f"digest={digest}" in transport.requests[2][1]
    assert "_state=" in transport.requests[2][1]  # Distribution's Location query is kept
    assert len(transport.requests) == 3
    assert blob_exists(repository="up/app/context", digest=digest, transport=transport)
    # what the build pod's init container does: an anonymous GET of the blob
    got = requests.get(f"{registry.url}/v2/up/app/context/blobs/{digest}", timeout=5)
    assert got.status_code == 200 and got.content == data
    transport.requests.clear()
    assert upload_blob(repository="up/app/context", data=data, transport=transport) == digest
    assert transport.requests == [("HEAD", f"/v2/up/app/context/blobs/{digest}")]
    # the same bytes in another repository are uploaded there (blob links are per repository)
    assert not blob_exists(repository="other/context", digest=digest, transport=transport)
    upload_blob(repository="other/context", data=data, transport=transport)
    assert blob_exists(repository="other/context", digest=digest, transport=transport)


def test_distribution_verifies_the_digest_on_put(registry: Registry) -> None:
    """The fact upload_blob leans on: a PUT whose bytes do not hash to `digest` is refused."""
    started = requests.post(f"{registry.url}/v2/verify/app/blobs/uploads/", timeout=5)
    assert started.status_code == 202
    location = started.headers["Location"]
    wrong = digest_of(b"other bytes")
    put = requests.put(
        f"{location}&digest={wrong}",
        data=b"these bytes",
        headers={"Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert put.status_code == 400 and put.json()["errors"][0]["code"] == "DIGEST_INVALID"
    transport = HttpTransport(registry.url)
    assert not blob_exists(repository="verify/app", digest=wrong, transport=transport)
    assert not blob_exists(
        repository="verify/app", digest=digest_of(b"these bytes"), transport=transport
    )


@dataclass
class Tamper:
    """A transport between launch and the registry that rewrites things on the way."""

    inner: HttpTransport
    location: Callable[[str], str] = lambda location: location
    body: Callable[[bytes], bytes] = lambda body: body
    base_url: str = "https://apiserver/api/v1/namespaces/launch-system/services/registry:5000/proxy"
    hint: str = PROXY_HINT

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        sent = self.body(body) if body is not None else None
        status, got, answer = self.inner.request(method, path, headers, sent)
        if "Location" in got:
            got["Location"] = self.location(got["Location"])
        return status, got, answer


def _path_and_query(location: str) -> str:
    """`http://host:port/v2/...?_state=...` -> `/v2/...?_state=...`."""
    return "/" + location.split("://", 1)[1].split("/", 1)[1]


@pytest.mark.parametrize(
    "rewrite",
    [
        # what the API server's service proxy makes of Distribution's absolute Location
        lambda loc: (
            "https://apiserver:6443/api/v1/namespaces/launch-system/services/"
            "registry:5000/proxy" + _path_and_query(loc)
        ),
        # Distribution with `relativeurls: true`
        _path_and_query,
    ],
    ids=["service-proxy", "relative"],
)
def test_upload_follows_any_location_form(
    registry: Registry, rewrite: Callable[[str], str]
) -> None:
    data = f"location {rewrite}".encode()
    transport = Tamper(HttpTransport(registry.url), location=rewrite)
    digest = upload_blob(repository="loc/context", data=data, transport=transport)
    got = requests.get(f"{registry.url}/v2/loc/context/blobs/{digest}", timeout=5)
    assert got.content == data


def test_upload_refuses_a_location_outside_the_registry_api(registry: Registry) -> None:
    transport = Tamper(HttpTransport(registry.url), location=lambda loc: "https://elsewhere/x")
    with pytest.raises(RegistryError, match="unexpected upload Location") as info:
        upload_blob(repository="loc2/context", data=b"x", transport=transport)
    assert info.value.hint and PROXY_HINT in info.value.hint


def test_bytes_changed_on_the_way_are_refused_by_the_registry(registry: Registry) -> None:
    transport = Tamper(HttpTransport(registry.url), body=lambda body: body + b"!")
    with pytest.raises(RegistryError, match="another digest") as info:
        upload_blob(repository="tamper/context", data=b"context bytes", transport=transport)
    assert "DIGEST_INVALID" in info.value.message
    digest = digest_of(b"context bytes")
    assert not blob_exists(repository="tamper/context", digest=digest, transport=transport)


@pytest.mark.parametrize("status", [401, 403])
def test_upload_refused_by_the_registry_hints_at_credentials(
    serve: Callable[..., FakeServer], status: int
) -> None:
    fake = serve(
        lambda method, path: (
            (404, DISTRIBUTION, b"") if method == "HEAD" else (status, DISTRIBUTION, b"")
        )
    )
    transport = HttpTransport(fake.url)
    err = _timed(lambda: upload_blob(repository="a/b", data=b"x", transport=transport))[0]
    assert (
        isinstance(err, RegistryError) and f"POST {fake.url}/v2/a/b/blobs/uploads/" in err.message
    )
    assert err.hint is not None and "credentials" in err.hint
    assert [m for m, _, _ in fake.received] == ["HEAD", "POST"]


def test_upload_to_a_registry_that_is_down_names_the_address(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = _timed(lambda: upload_blob(repository="a/b", data=b"x", transport=HttpTransport(url)))[0]
    assert isinstance(err, RegistryError) and url in err.message


def test_blob_exists_refuses_bad_names() -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    with pytest.raises(ValueError):
        blob_exists(repository="Bad/Name", digest=DIGEST, transport=transport)
    with pytest.raises(ValueError):
        blob_exists(repository="a/b", digest="latest", transport=transport)
    assert transport.requests == []


# --- upload_file: large layers, one chunk in memory -----------------------------------------------


def _file(tmp_path: Path, size: int, name: str = "layer.tar.gz") -> tuple[Path, bytes, str]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data, digest_of(data)


def _served(registry: Registry, repository: str, digest: str) -> bytes:
    got = requests.get(f"{registry.url}/v2/{repository}/blobs/{digest}", timeout=5)
    assert got.status_code == 200
    return got.content


def test_distribution_takes_inclusive_content_ranges_and_moves_the_location(
    registry: Registry,
) -> None:
    """What upload_file leans on: `Content-Range: <start>-<end>` (inclusive, no `bytes `) is
    accepted, the answer's `Range` is what the upload holds, and each answer gives a new
    Location. Distribution 2.8 does not check the range (3.x answers 416 when the start is not
    the bytes received): only the final digest check catches a lost or repeated chunk."""
    started = requests.post(f"{registry.url}/v2/range/app/blobs/uploads/", timeout=5)
    location = started.headers["Location"]
    headers = {"Content-Type": "application/octet-stream"}
    first = requests.patch(
        location, data=b"0123456789", headers={**headers, "Content-Range": "0-9"}, timeout=5
    )
    assert first.status_code == 202 and first.headers["Range"] == "0-9"
    assert first.headers["Location"] != location  # its `_state` holds the offset
    gap = requests.patch(
        first.headers["Location"],
        data=b"x",
        headers={**headers, "Content-Range": "11-11"},
        timeout=5,
    )
    assert gap.status_code == 202 and gap.headers["Range"] == "0-10"  # appended regardless
    digest = digest_of(b"0123456789x")
    done = requests.put(f"{gap.headers['Location']}&digest={digest}", timeout=5)
    assert done.status_code == 201


def test_upload_file_small_is_one_put_then_skipped(registry: Registry, tmp_path: Path) -> None:
    path, data, digest = _file(tmp_path, 3000)
    transport = HttpTransport(registry.url, timeout_s=60)
    calls: list[tuple[int, int]] = []
    assert upload_file(
        repository="file/small", path=path, digest=digest, size=len(data), transport=transport,
        progress=lambda sent, size: calls.append((sent, size)),
    )  # fmt: skip
    assert [m for m, _ in transport.requests] == ["HEAD", "POST", "PUT"]
    assert f"digest={digest}" in transport.requests[2][1]
    assert calls == [(3000, 3000)]
    assert _served(registry, "file/small", digest) == data
    transport.requests.clear()
    assert not upload_file(
        repository="file/small", path=path, digest=digest, size=len(data), transport=transport,
        progress=lambda sent, size: calls.append((sent, size)),
    )  # fmt: skip
    assert transport.requests == [("HEAD", f"/v2/file/small/blobs/{digest}")]
    assert calls == [(3000, 3000)]


def _check_chunked(
    transport: Transport, requests_sent: list[tuple[str, str]], registry: Registry, tmp_path: Path,
    repository: str,
) -> None:  # fmt: skip
    path, data, digest = _file(tmp_path, 300 * KIB)
    calls: list[tuple[int, int]] = []
    assert upload_file(
        repository=repository, path=path, digest=digest, size=len(data), transport=transport,
        progress=lambda sent, size: calls.append((sent, size)), chunk_bytes=64 * KIB,
    )  # fmt: skip
    methods = [m for m, _ in requests_sent]
    assert methods == ["HEAD", "POST"] + ["PATCH"] * 5 + ["PUT"]  # 4 x 64 KiB + 44 KiB
    targets = [p for _, p in requests_sent[2:]]
    assert len(set(targets)) == len(targets)  # each PATCH went to the Location the last gave
    assert f"digest={digest}" in targets[-1]
    assert [s for s, _ in calls] == [64 * KIB, 128 * KIB, 192 * KIB, 256 * KIB, 300 * KIB]
    assert {size for _, size in calls} == {300 * KIB}
    assert _served(registry, repository, digest) == data
    requests_sent.clear()
    assert not upload_file(
        repository=repository, path=path, digest=digest, size=len(data), transport=transport,
        chunk_bytes=64 * KIB,
    )  # fmt: skip
    assert [m for m, _ in requests_sent] == ["HEAD"]


def test_upload_file_large_goes_in_patched_chunks(registry: Registry, tmp_path: Path) -> None:
    transport = HttpTransport(registry.url, timeout_s=60)
    _check_chunked(transport, transport.requests, registry, tmp_path, "file/large")


def test_upload_file_of_exactly_one_chunk_is_monolithic(registry: Registry, tmp_path: Path) -> None:
    path, data, digest = _file(tmp_path, 64 * KIB)
    transport = HttpTransport(registry.url, timeout_s=60)
    assert upload_file(
        repository="file/edge", path=path, digest=digest, size=len(data), transport=transport,
        chunk_bytes=64 * KIB,
    )  # fmt: skip
    assert [m for m, _ in transport.requests] == ["HEAD", "POST", "PUT"]
    assert _served(registry, "file/edge", digest) == data


@pytest.mark.parametrize("change", ["shorter", "longer", "other bytes"])
def test_a_file_that_changed_is_not_committed(
    registry: Registry, tmp_path: Path, change: str
) -> None:
    path, data, digest = _file(tmp_path, 200 * KIB)
    if change == "shorter":
        path.write_bytes(data[:-1])
    elif change == "longer":
        path.write_bytes(data + b"!")
    else:
        path.write_bytes(b"?" + data[1:])
    transport = HttpTransport(registry.url, timeout_s=60)
    for chunk in (64 * KIB, 1 << 20):
        with pytest.raises(LaunchError, match="changed while launch uploaded it"):
            upload_file(
                repository="file/changed", path=path, digest=digest, size=len(data),
                transport=transport, chunk_bytes=chunk,
            )  # fmt: skip
    assert not blob_exists(repository="file/changed", digest=digest, transport=transport)


@dataclass
class Recording:
    """The service proxy, with the (method, path) of each request kept for the assertions."""

    inner: Transport
    requests: list[tuple[str, str]]

    @property
    def base_url(self) -> str:
        return str(getattr(self.inner, "base_url", ""))

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((method, path))
        return self.inner.request(method, path, headers, body)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running() as emulator:
        yield emulator


@pytest.fixture
def cluster(kube: KubeEmulator, registry: Registry, tmp_path: Path) -> Iterator[Cluster]:
    kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", registry.port))
    path = kube.write_kubeconfig(tmp_path / "kubeconfig", context="lab", namespace="research")
    with Cluster.connect("lab", kubeconfig=str(path), request_timeout_s=5) as c:
        yield c


def test_chunked_upload_through_the_service_proxy(
    registry: Registry, kube: KubeEmulator, cluster: Cluster, tmp_path: Path
) -> None:
    proxy = Recording(cluster.service_proxy("launch-system", "registry", 5000), [])
    _check_chunked(proxy, proxy.requests, registry, tmp_path, "proxy/large")
    sent = [r.method for r in kube.requests if r.resource == "services/proxy"]
    assert sent.count("PATCH") == 5


def test_chunked_upload_needs_the_patch_verb(
    kube: KubeEmulator, cluster: Cluster, tmp_path: Path
) -> None:
    """RBAC of a proxied PATCH is `patch` (deploy/registry/launch-user.yaml grants it)."""
    kube.forbid("patch", "services/proxy", "launch-system")
    path, data, digest = _file(tmp_path, 100 * KIB)
    proxy = cluster.service_proxy("launch-system", "registry", 5000)
    with pytest.raises(LaunchError, match='cannot patch resource "services/proxy"'):
        upload_file(
            repository="proxy/forbidden", path=path, digest=digest, size=len(data),
            transport=proxy, chunk_bytes=64 * KIB,
        )  # fmt: skip
    assert upload_file(  # one chunk: POST and PUT only, no PATCH
        repository="proxy/forbidden", path=path, digest=digest, size=len(data), transport=proxy,
    )  # fmt: skip


# --- put_manifest ---------------------------------------------------------------------------------


def test_put_manifest_composes_an_image(registry: Registry, tmp_path: Path) -> None:
    image = tiny_image(oci=True, payload=b"composed\n")
    transport = HttpTransport(registry.url, timeout_s=60)
    upload_blob(repository="put/app", data=image.config, transport=transport)
    layer = tmp_path / "layer"
    layer.write_bytes(image.layer)
    upload_file(
        repository="put/app", path=layer, digest=digest_of(image.layer), size=len(image.layer),
        transport=transport,
    )  # fmt: skip
    digest = put_manifest(
        repository="put/app", tag="fast-1", media_type=OCI_MANIFEST, data=image.manifest,
        transport=transport,
    )  # fmt: skip
    assert digest == image.digest
    assert get_manifest(repository="put/app", reference="fast-1", transport=transport) == (
        OCI_MANIFEST,
        image.manifest,
        digest,
    )


def test_put_manifest_naming_a_missing_blob_says_which_and_why(registry: Registry) -> None:
    image = tiny_image(payload=b"deleted dependency\n")
    transport = HttpTransport(registry.url, timeout_s=60)
    upload_blob(repository="put/gc", data=image.config, transport=transport)  # not the layer
    with pytest.raises(RegistryError, match=f"lacks blob {digest_of(image.layer)}") as info:
        put_manifest(
            repository="put/gc", tag="v1", media_type=DOCKER_MANIFEST, data=image.manifest,
            transport=transport,
        )  # fmt: skip
    assert info.value.hint and "garbage collection" in info.value.hint
    assert "--rebuild" in info.value.hint


def test_put_manifest_that_is_invalid_is_a_clear_error(registry: Registry) -> None:
    transport = HttpTransport(registry.url, timeout_s=60)
    with pytest.raises(RegistryError, match=r"refused the manifest .*MANIFEST_INVALID"):
        put_manifest(
            repository="put/bad", tag="v1", media_type=OCI_MANIFEST, data=b"{not json",
            transport=transport,
        )  # fmt: skip


def test_put_manifest_checks_the_stored_digest(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda m, p: (201, {**DISTRIBUTION, "Docker-Content-Digest": DIGEST}, b""))
    with pytest.raises(RegistryError, match=f"stored the manifest as {DIGEST}"):
        put_manifest(
            repository="a/b", tag="v1", media_type=OCI_MANIFEST, data=b"{}",
            transport=HttpTransport(fake.url),
        )  # fmt: skip


# --- a registry that accepts no pushes ------------------------------------------------------------


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Distribution with `storage.maintenance.readonly.enabled: true` and one image in it."""
    with running_registry(tmp_path_factory.mktemp("writable")) as writable:
        push_tiny_image(writable.url, "ro/app", "v1")
        root = writable.root
    workdir = tmp_path_factory.mktemp("read-only")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": True}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "launch-tests"},
    }
    (workdir / "config.yml").write_text(json.dumps(config))
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", str(workdir / "config.yml")], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if requests.get(f"{url}/v2/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "no read-only registry"
            time.sleep(0.02)
        yield Registry(f"127.0.0.1:{port}", url, root, workdir / "registry.log", process)
    finally:
        process.terminate()
        process.wait(timeout=5)
        log.close()


def test_a_read_only_registry_refuses_pushes_clearly(read_only: Registry, tmp_path: Path) -> None:
    transport = HttpTransport(read_only.url, timeout_s=5)
    path, data, digest = _file(tmp_path, 1000)
    attempts: list[Callable[[], object]] = [
        lambda: upload_file(
            repository="ro/app", path=path, digest=digest, size=len(data), transport=transport
        ),
        lambda: upload_blob(repository="ro/app", data=b"context", transport=transport),
        lambda: put_manifest(
            repository="ro/app",
            tag="v2",
            media_type=DOCKER_MANIFEST,
            data=tiny_image().manifest,
            transport=transport,
        ),
    ]
    for attempt in attempts:
        with pytest.raises(RegistryError, match=r"does not accept pushes \(405") as info:
            attempt()
        assert info.value.hint and "readonly" in info.value.hint
    # reads still work: a composed image's dependency can be read from it
    assert get_manifest(repository="ro/app", reference="v1", transport=transport)[0] == (
        DOCKER_MANIFEST
    )
    assert hashlib.sha256(data).hexdigest() in digest
