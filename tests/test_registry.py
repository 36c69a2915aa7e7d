"""launch.registry against a real CNCF Distribution 2.8 (`/usr/bin/docker-registry`) and small
local HTTP servers for the failure answers a healthy registry never gives (500, 401, ...).

No mocks: every request crosses a real socket.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from launch import kaniko
from launch.errors import LaunchError
from launch.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    PROXY_HINT,
    SCHEMA1_MEDIA_TYPES,
    BlobUnknown,
    HttpTransport,
    ManifestUnknown,
    RegistryError,
    Transport,
    digest_of,
    get_blob,
    get_manifest,
    image_config,
    image_exists,
    image_labels,
    manifest_digest,
    parse_image,
    ping,
    pinned,
)
from tests.registry_server import (
    REGISTRY_BINARY,
    Registry,
    free_port,
    push_index,
    push_tiny_image,
    running_registry,
    tiny_image,
    write_oci_layout,
)

FAST_S = 3.0  # every failure must be reported quicker than this (timeouts are 1 s: no retries)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry for the read-only tests of this module (each uses its own repository)."""
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


# --- small HTTP servers for answers a healthy registry does not give ----------------------------


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class FakeServer:
    """A real HTTP server on 127.0.0.1 answering `route(method, path)`; records what it got."""

    url: str
    received: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[str, str], Reply]], FakeServer]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(route: Callable[[str, str], Reply]) -> FakeServer:
        fake = FakeServer(url="")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                fake.received.append((self.command, self.path, dict(self.headers)))
                status, headers, body = route(self.command, self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _answer_with_body(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            do_GET = do_HEAD = _answer
            do_POST = do_PUT = _answer_with_body

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        fake.url = f"http://127.0.0.1:{server.server_address[1]}"
        return fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


DISTRIBUTION = {"Docker-Distribution-API-Version": "registry/2.0"}


# --- the reuse check against the real registry --------------------------------------------------


def test_absent_tag_and_absent_repository_are_none(registry: Registry) -> None:
    push_tiny_image(registry.url, "absent/app", "present")
    assert manifest_digest(repository="absent/app", tag="not-built", base_url=registry.url) is None
    assert manifest_digest(repository="never/pushed", tag="abc", base_url=registry.url) is None
    assert not image_exists(repository="absent/app", tag="not-built", base_url=registry.url)


def test_docker_v2_image_digest_is_the_pushed_digest(registry: Registry) -> None:
    pushed = push_tiny_image(registry.url, "docker/app", "v1")
    assert pushed == tiny_image().digest  # sha256 of the manifest bytes we sent
    assert manifest_digest(repository="docker/app", tag="v1", base_url=registry.url) == pushed
    assert image_exists(repository="docker/app", tag="v1", base_url=registry.url)
    # a digest works as the reference too (what a pinned image is pulled by)
    assert manifest_digest(repository="docker/app", tag=pushed, base_url=registry.url) == pushed


def test_oci_image_is_found(registry: Registry) -> None:
    pushed = push_tiny_image(registry.url, "oci/app", "v1", oci=True)
    assert manifest_digest(repository="oci/app", tag="v1", base_url=registry.url) == pushed


def test_without_the_oci_accept_types_distribution_answers_404_for_oci_images(
    registry: Registry,
) -> None:
    """The rule is real: asking with Docker types only, an OCI image looks absent -> rebuilds."""
    manifest = push_tiny_image(registry.url, "rule/app", "manifest", oci=True)
    index, _ = push_index(registry.url, "rule/app", "index", oci=True)
    docker_only = {"Accept": f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}"}
    for tag, what in (("manifest", "manifests"), ("index", "indexes")):
        head = requests.head(
            f"{registry.url}/v2/rule/app/manifests/{tag}", headers=docker_only, timeout=5
        )
        assert head.status_code == 404
        assert "Docker-Content-Digest" not in head.headers
        get = requests.get(
            f"{registry.url}/v2/rule/app/manifests/{tag}", headers=docker_only, timeout=5
        )
        assert get.status_code == 404
        assert get.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert f"does not support OCI {what}" in get.json()["errors"][0]["message"]
    # ... and with all four types both are found
    assert manifest_digest(repository="rule/app", tag="manifest", base_url=registry.url) == manifest
    assert manifest_digest(repository="rule/app", tag="index", base_url=registry.url) == index


def test_without_the_docker_types_distribution_refuses_docker_images(registry: Registry) -> None:
    """Distribution 2.8 tries to down-convert a schema2 manifest to schema1 and answers 400."""
    push_tiny_image(registry.url, "rule2/app", "v1")
    for headers in ({}, {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}):
        head = requests.head(
            f"{registry.url}/v2/rule2/app/manifests/v1", headers=headers, timeout=5
        )
        assert head.status_code == 400


def test_multi_platform_images_give_the_index_digest(registry: Registry) -> None:
    """Without the list type, Distribution answers a Docker manifest list with the amd64
    manifest's digest; with all four types it is the list's own digest."""
    oci_index, _ = push_index(registry.url, "multi/app", "oci", oci=True)
    docker_list, per_arch = push_index(registry.url, "multi/app", "docker")
    assert manifest_digest(repository="multi/app", tag="oci", base_url=registry.url) == oci_index
    assert (
        manifest_digest(repository="multi/app", tag="docker", base_url=registry.url) == docker_list
    )
    head = requests.head(
        f"{registry.url}/v2/multi/app/manifests/docker",
        headers={"Accept": DOCKER_MANIFEST},
        timeout=5,
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == per_arch["amd64"] != docker_list


def test_exactly_one_request_per_check_with_all_four_types(registry: Registry) -> None:
    push_tiny_image(registry.url, "count/app", "v1", oci=True)
    transport = HttpTransport(registry.url, timeout_s=5)
    assert manifest_digest(repository="count/app", tag="v1", transport=transport)
    assert manifest_digest(repository="count/app", tag="v2", transport=transport) is None
    assert transport.requests == [
        ("HEAD", "/v2/count/app/manifests/v1"),
        ("HEAD", "/v2/count/app/manifests/v2"),
    ]
    assert MANIFEST_ACCEPT.split(", ") == [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]


def test_sent_accept_header_lists_the_four_types(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda method, path: (404, DISTRIBUTION, b""))
    assert manifest_digest(repository="a/b", tag="t", base_url=fake.url) is None
    [(method, path, headers)] = fake.received
    assert (method, path) == ("HEAD", "/v2/a/b/manifests/t")
    assert {t.strip() for t in headers["Accept"].split(",")} == {
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    }


@dataclass
class PrefixTransport:
    """Another Transport, as launch.cluster's service-proxy one: forwards under a path prefix."""

    inner: HttpTransport
    prefix: str
    base_url: str = "https://apiserver/api/v1/namespaces/launch-system/services/registry:5000/proxy"
    calls: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append(f"{method} {path}")
        status, got, body = self.inner.request(method, self.prefix + path, headers, body)
        return status, {k.lower(): v for k, v in got.items()}, body  # any header case works


def test_any_transport_object_is_one_code_path(registry: Registry) -> None:
    pushed = push_tiny_image(registry.url, "proxy/app", "v1")
    transport = PrefixTransport(HttpTransport(registry.url), prefix="")
    assert isinstance(transport, Transport)
    assert manifest_digest(repository="proxy/app", tag="v1", transport=transport) == pushed
    assert manifest_digest(repository="proxy/app", tag="nope", transport=transport) is None
    assert transport.calls == [
        "HEAD /v2/proxy/app/manifests/v1",
        "HEAD /v2/proxy/app/manifests/nope",
    ]
    ping(transport)


def test_kaniko_names_round_trip_to_a_pinned_reference(registry: Registry) -> None:
    """image_ref() -> parse_image() -> HEAD -> pinned(): what the build step does."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    ref = kaniko.image_ref(registry=registry.url, repo_name="My_Repo", tag=sha)
    host, repository, tag = parse_image(ref)
    assert (host, repository, tag) == (registry.host, "my_repo", sha)
    assert manifest_digest(repository=repository, tag=tag, base_url=registry.url) is None
    pushed = push_tiny_image(registry.url, repository, tag)
    digest = manifest_digest(repository=repository, tag=tag, base_url=registry.url)
    assert digest == pushed
    assert pinned(ref, digest) == f"{registry.host}/my_repo@{pushed}"
    cache_host, cache_repository, _ = parse_image(
        kaniko.cache_repo(registry=registry.host, repo_name="My_Repo") + ":x"
    )
    assert (cache_host, cache_repository) == (registry.host, "my_repo/cache")


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_an_image_pushed_by_skopeo_is_found(registry: Registry, tmp_path: Path) -> None:
    image = tiny_image(oci=True, payload=b"pushed by skopeo\n")
    layout = write_oci_layout(tmp_path / "layout", image, "v1")
    result = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            f"oci:{layout}:v1",
            f"docker://{registry.host}/skopeo/app:v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert manifest_digest(repository="skopeo/app", tag="v1", base_url=registry.url) == image.digest


# --- failures -------------------------------------------------------------------------------------


def _timed(fn: Callable[[], object]) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(RegistryError) as info:
        fn()
    return info.value, time.monotonic() - start


def test_registry_down_is_a_quick_error_with_a_hint(tmp_path: Path) -> None:
    with running_registry(tmp_path) as reg:
        push_tiny_image(reg.url, "down/app", "v1")
        reg.stop()
        err, took = _timed(
            lambda: manifest_digest(repository="down/app", tag="v1", base_url=reg.url, timeout_s=1)
        )
    assert isinstance(err, LaunchError)
    assert took < FAST_S
    assert reg.url in err.message and "connection refused" in err.message
    assert err.hint is not None and "registry_url" in err.hint and "launch config" in err.hint


def test_closed_port_and_ping() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err, took = _timed(lambda: ping(HttpTransport(url, timeout_s=1)))
    assert took < FAST_S and url in str(err)


def test_a_server_that_never_answers_times_out_quickly() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        err, took = _timed(
            lambda: manifest_digest(repository="a/b", tag="t", base_url=url, timeout_s=0.5)
        )
    assert took < FAST_S
    assert "did not answer within 0.5s" in str(err)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_an_error_naming_the_url(serve: Callable[..., FakeServer], status: int) -> None:
    body = b'{"errors":[{"code":"UNKNOWN","message":"storage is on fire"}]}'
    fake = serve(lambda method, path: (status, DISTRIBUTION, body))
    err, took = _timed(lambda: manifest_digest(repository="a/b", tag="t", base_url=fake.url))
    assert took < FAST_S
    assert f"{fake.url}/v2/a/b/manifests/t" in str(err) and str(status) in str(err)
    assert isinstance(err, RegistryError) and err.hint and "registry_url" in err.hint
    # ping reads the body (GET): the registry's own words reach the user
    err = _timed(lambda: ping(HttpTransport(fake.url)))[0]
    assert "storage is on fire" in str(err)


def test_5xx_through_a_proxy_transport_hints_at_the_service(
    serve: Callable[..., FakeServer],
) -> None:
    fake = serve(lambda method, path: (503, {}, b"no endpoints available for service"))

    @dataclass
    class Proxy:
        inner: HttpTransport
        base_url: str = (
            "https://api:6443/api/v1/namespaces/launch-system/services/registry:5000/proxy"
        )
        hint: str = PROXY_HINT

        def request(
            self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
        ) -> tuple[int, dict[str, str], bytes]:
            return self.inner.request(method, path, headers, body)

    err = _timed(
        lambda: manifest_digest(repository="a/b", tag="t", transport=Proxy(HttpTransport(fake.url)))
    )[0]
    assert isinstance(err, RegistryError)
    assert "services/registry:5000/proxy/v2/a/b/manifests/t" in err.message
    assert err.hint == PROXY_HINT and "in-cluster registry" in err.hint


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_hints_at_credentials(serve: Callable[..., FakeServer], status: int) -> None:
    fake = serve(lambda method, path: (status, DISTRIBUTION, b""))
    err = _timed(lambda: manifest_digest(repository="a/b", tag="t", base_url=fake.url))[0]
    assert isinstance(err, RegistryError) and str(status) in err.message
    assert err.hint is not None and "credentials" in err.hint


def test_ping_accepts_200_and_401(registry: Registry, serve: Callable[..., FakeServer]) -> None:
    ping(HttpTransport(registry.url))
    ping(HttpTransport(serve(lambda method, path: (401, DISTRIBUTION, b"")).url))
    with pytest.raises(RegistryError):
        ping(HttpTransport(serve(lambda method, path: (404, {}, b"not here")).url))


def test_404_from_something_that_is_not_a_registry_is_an_error(
    serve: Callable[..., FakeServer],
) -> None:
    """E.g. the API server's proxy when the Service is missing: not "image absent"."""
    fake = serve(
        lambda method, path: (404, {"Content-Type": "application/json"}, b'{"kind":"Status"}')
    )
    err = _timed(lambda: manifest_digest(repository="a/b", tag="t", base_url=fake.url))[0]
    assert "/v2/" in str(err)
    assert [(m, p) for m, p, _ in fake.received] == [
        ("HEAD", "/v2/a/b/manifests/t"),
        ("GET", "/v2/"),
    ]


def test_404_without_the_api_header_from_a_live_registry_is_absent(
    serve: Callable[..., FakeServer],
) -> None:
    """Registries other than Distribution may omit the header: `GET /v2/` confirms, then None."""
    fake = serve(lambda method, path: (200, {}, b"{}") if path == "/v2/" else (404, {}, b""))
    assert manifest_digest(repository="a/b", tag="t", base_url=fake.url) is None
    assert len(fake.received) == 2


def test_missing_digest_header_falls_back_to_hashing_the_manifest(
    serve: Callable[..., FakeServer],
) -> None:
    manifest = tiny_image().manifest
    fake = serve(lambda method, path: (200, {"Content-Type": DOCKER_MANIFEST}, manifest))
    digest = manifest_digest(repository="a/b", tag="t", base_url=fake.url)
    assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert [m for m, _, _ in fake.received] == ["HEAD", "GET"]


def test_a_malformed_digest_header_is_an_error(serve: Callable[..., FakeServer]) -> None:
    fake = serve(lambda method, path: (200, {"Docker-Content-Digest": "md5:abc"}, b""))
    err = _timed(lambda: manifest_digest(repository="a/b", tag="t", base_url=fake.url))[0]
    assert "md5:abc" in str(err)


def test_https_against_a_plain_http_registry(registry: Registry) -> None:
    url = registry.url.replace("http://", "https://")
    err, took = _timed(
        lambda: manifest_digest(repository="a/b", tag="t", base_url=url, timeout_s=1)
    )
    assert took < FAST_S
    assert isinstance(err, RegistryError)
    assert "does not speak TLS" in err.message
    assert err.hint is not None and registry.url in err.hint


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make a certificate for the HTTPS registry")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    argv = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]
    subprocess.run(
        [*argv, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    with running_registry(directory, tls=(cert, key), verify=str(cert)) as reg:
        yield reg, cert


def test_plain_http_against_an_https_registry(tls_registry: tuple[Registry, Path]) -> None:
    reg, _ = tls_registry
    url = reg.url.replace("https://", "http://")
    err, took = _timed(
        lambda: manifest_digest(repository="a/b", tag="t", base_url=url, timeout_s=1)
    )
    assert took < FAST_S
    assert isinstance(err, RegistryError)
    assert "speaks HTTPS but was asked in plain HTTP" in err.message
    assert err.hint is not None and reg.url in err.hint
    err = _timed(lambda: ping(HttpTransport(url)))[0]  # GET: the body says so outright
    assert "speaks HTTPS" in str(err)


def test_https_registry_with_an_untrusted_certificate(tls_registry: tuple[Registry, Path]) -> None:
    reg, cert = tls_registry
    err = _timed(lambda: manifest_digest(repository="a/b", tag="t", base_url=reg.url, timeout_s=1))[
        0
    ]
    assert isinstance(err, RegistryError) and "not trusted" in err.message
    assert err.hint is not None and "REQUESTS_CA_BUNDLE" in err.hint
    # trusted, it just works
    pushed = push_tiny_image(reg.url, "tls/app", "v1", verify=str(cert))
    transport = HttpTransport(reg.url, verify=str(cert))
    assert manifest_digest(repository="tls/app", tag="v1", transport=transport) == pushed


@pytest.mark.parametrize("url", ["127.0.0.1:30500", "ftp://127.0.0.1:30500"])
def test_registry_url_needs_http_or_https(url: str) -> None:
    with pytest.raises(RegistryError, match="http"):
        HttpTransport(url)


def test_base_url_xor_transport() -> None:
    with pytest.raises(TypeError):
        manifest_digest(repository="a/b", tag="t")
    with pytest.raises(TypeError):
        manifest_digest(
            repository="a/b", tag="t", base_url="http://x", transport=HttpTransport("http://x")
        )


@pytest.mark.parametrize(
    ("repository", "tag"), [("Upper/app", "t"), ("a//b", "t"), ("a/b", "bad tag"), ("a/b", "-x")]
)
def test_invalid_names_are_refused_before_any_request(repository: str, tag: str) -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    with pytest.raises(ValueError):
        manifest_digest(repository=repository, tag=tag, transport=transport)
    assert transport.requests == []


# --- pure helpers ---------------------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("127.0.0.1:30500/team/app:abc", ("127.0.0.1:30500", "team/app", "abc")),
        ("127.0.0.1:30500/app", ("127.0.0.1:30500", "app", "latest")),
        (f"127.0.0.1:30500/app@{DIGEST}", ("127.0.0.1:30500", "app", DIGEST)),
        (f"127.0.0.1:30500/app:v1@{DIGEST}", ("127.0.0.1:30500", "app", DIGEST)),
        (
            "registry.launch-system.svc.cluster.local:5000/repo/cache:x",
            ("registry.launch-system.svc.cluster.local:5000", "repo/cache", "x"),
        ),
        ("localhost/app:1", ("localhost", "app", "1")),
        (
            "ghcr.io/osscontainertools/kaniko:v1.28.3",
            ("ghcr.io", "osscontainertools/kaniko", "v1.28.3"),
        ),
        ("python:3.12", ("docker.io", "library/python", "3.12")),
        ("team/app", ("docker.io", "team/app", "latest")),
    ],
)
def test_parse_image(ref: str, expected: tuple[str, str, str]) -> None:
    assert parse_image(ref) == expected


@pytest.mark.parametrize(
    "ref",
    ["", "http://127.0.0.1/app", "host:5000/App:1", "host:5000/app:bad tag", "host/app@sha256:x"],
)
def test_parse_image_refuses_invalid_references(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_image(ref)


def test_pinned() -> None:
    assert pinned("127.0.0.1:30500/team/app", DIGEST) == f"127.0.0.1:30500/team/app@{DIGEST}"
    assert pinned("127.0.0.1:30500/team/app:abc", DIGEST) == f"127.0.0.1:30500/team/app@{DIGEST}"
    assert pinned(f"127.0.0.1:30500/app@{DIGEST}", DIGEST) == f"127.0.0.1:30500/app@{DIGEST}"
    host, repository, reference = parse_image(pinned("127.0.0.1:30500/app:v1", DIGEST))
    assert (host, repository, reference) == ("127.0.0.1:30500", "app", DIGEST)
    with pytest.raises(ValueError):
        pinned("127.0.0.1:30500/app", "sha256:short")
    with pytest.raises(ValueError):
        pinned(f"127.0.0.1:30500/app@sha256:{'cd' * 32}", DIGEST)


# --- reads: manifests, blobs, configs (composing an image from a dependency image) -------------


@dataclass
class Corrupt:
    """A broken proxy: GET answers reach launch with one byte changed."""

    inner: HttpTransport
    base_url: str = "https://apiserver/api/v1/namespaces/launch-system/services/registry:5000/proxy"
    hint: str = PROXY_HINT

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        status, got, answer = self.inner.request(method, path, headers, body)
        if method == "GET" and answer:
            answer = bytes([answer[0] ^ 1]) + answer[1:]
        return status, got, answer


@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci"])
def test_get_manifest_returns_the_pushed_bytes(registry: Registry, oci: bool) -> None:
    repository = f"get/{'oci' if oci else 'docker'}"
    pushed = push_tiny_image(registry.url, repository, "v1", oci=oci)
    image = tiny_image(oci=oci)
    transport = HttpTransport(registry.url)
    for reference in ("v1", pushed):
        transport.requests.clear()
        media_type, data, digest = get_manifest(
            repository=repository, reference=reference, transport=transport
        )
        assert (media_type, data, digest) == (image.media_type, image.manifest, pushed)
        assert transport.requests == [("GET", f"/v2/{repository}/manifests/{reference}")]


@pytest.mark.parametrize("oci", [False, True], ids=["docker-list", "oci-index"])
def test_get_manifest_of_an_index_is_the_index(registry: Registry, oci: bool) -> None:
    repository = f"get/{'oci' if oci else 'docker'}-index"
    index_digest, per_arch = push_index(registry.url, repository, "multi", oci=oci)
    transport = HttpTransport(registry.url)
    media_type, data, digest = get_manifest(
        repository=repository, reference="multi", transport=transport
    )
    assert media_type == (OCI_INDEX if oci else DOCKER_MANIFEST_LIST)
    assert digest == index_digest == digest_of(data)
    assert [m["digest"] for m in json.loads(data)["manifests"]] == list(per_arch.values())
    arm = get_manifest(repository=repository, reference=per_arch["arm64"], transport=transport)
    assert arm[0] == (OCI_MANIFEST if oci else DOCKER_MANIFEST) and arm[2] == per_arch["arm64"]


def test_get_manifest_media_type_falls_back_to_the_body(serve: Callable[..., FakeServer]) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
    fake = serve(lambda m, p: (200, {**DISTRIBUTION, "Content-Type": "application/json"}, body))
    got = get_manifest(repository="a/b", reference="v1", transport=HttpTransport(fake.url))
    assert got == (OCI_MANIFEST, body, digest_of(body))


def test_get_manifest_returns_schema1_as_it_is(serve: Callable[..., FakeServer]) -> None:
    schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    body = b'{"schemaVersion": 1, "signatures": []}'
    headers = {**DISTRIBUTION, "Content-Type": schema1, "Docker-Content-Digest": DIGEST}
    fake = serve(lambda m, p: (200, headers, body))
    got = get_manifest(repository="a/b", reference="old", transport=HttpTransport(fake.url))
    assert got == (schema1, body, DIGEST) and schema1 in SCHEMA1_MEDIA_TYPES


def test_a_missing_manifest_is_manifest_unknown(registry: Registry) -> None:
    transport = HttpTransport(registry.url)
    for reference in ("gone", DIGEST):
        with pytest.raises(ManifestUnknown, match="no such manifest") as info:
            get_manifest(repository="get/never", reference=reference, transport=transport)
        assert isinstance(info.value, RegistryError)
        assert info.value.hint and "--rebuild" in info.value.hint


def test_changed_manifest_bytes_are_detected(registry: Registry) -> None:
    pushed = push_tiny_image(registry.url, "get/corrupt", "v1")
    transport = Corrupt(HttpTransport(registry.url))
    for reference in ("v1", pushed):  # the header, then also the digest asked for, disagree
        with pytest.raises(RegistryError, match="hash to") as info:
            get_manifest(repository="get/corrupt", reference=reference, transport=transport)
        assert not isinstance(info.value, ManifestUnknown)
        assert info.value.hint and PROXY_HINT in info.value.hint


def test_a_digest_reference_is_checked_without_the_digest_header(
    serve: Callable[..., FakeServer],
) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}).encode()
    fake = serve(lambda m, p: (200, {**DISTRIBUTION, "Content-Type": DOCKER_MANIFEST}, body))
    transport = HttpTransport(fake.url)
    assert get_manifest(repository="a/b", reference="v1", transport=transport)[2] == digest_of(body)
    with pytest.raises(RegistryError, match=f"not to {DIGEST}"):
        get_manifest(repository="a/b", reference=DIGEST, transport=transport)


def test_get_blob_checks_the_digest_and_the_limit(registry: Registry) -> None:
    image = tiny_image(labels={"a": "b"})
    push_tiny_image(registry.url, "get/blob", "v1", labels={"a": "b"})
    config = digest_of(image.config)
    transport = HttpTransport(registry.url)
    assert get_blob(repository="get/blob", digest=config, transport=transport) == image.config
    with pytest.raises(RegistryError, match="hash to"):
        get_blob(repository="get/blob", digest=config, transport=Corrupt(transport))
    with pytest.raises(RegistryError, match=f"over the {len(image.config) - 1} bytes"):
        get_blob(
            repository="get/blob", digest=config, transport=transport, limit=len(image.config) - 1
        )
    with pytest.raises(BlobUnknown, match="no such blob"):
        get_blob(repository="get/blob", digest=DIGEST, transport=transport)


def test_image_config_and_labels_pick_the_platform_of_an_index(registry: Registry) -> None:
    index_digest, _ = push_index(registry.url, "get/platforms", "multi", oci=True)
    transport = HttpTransport(registry.url)
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("os/x", "amd64")):
        config = image_config(
            repository="get/platforms", digest=index_digest, transport=transport, platform=platform
        )
        assert config["architecture"] == arch
    digest = push_tiny_image(registry.url, "get/labels", "v1", labels={"org.x/rev": "abc"})
    assert image_labels(repository="get/labels", digest=digest, transport=transport) == {
        "org.x/rev": "abc"
    }
    assert image_labels(repository="get/platforms", digest=index_digest, transport=transport) == {}


def test_running_registry_skips_without_the_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.registry_server as registry_server

    monkeypatch.setattr(registry_server, "REGISTRY_BINARY", str(tmp_path / "no-such-binary"))
    with pytest.raises(pytest.skip.Exception, match="docker-registry"), running_registry(tmp_path):
        pass
    assert "no-such-binary" not in REGISTRY_BINARY  # the module's own value is untouched


def test_running_registry_stops_the_server(tmp_path: Path) -> None:
    with running_registry(tmp_path) as reg:
        assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200
        assert reg.host == f"127.0.0.1:{reg.port}"
    assert reg.process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{reg.url}/v2/", timeout=1)
    reg.stop()  # idempotent
