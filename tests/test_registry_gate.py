"""The registry's push gate (launch/registry_gate.py, deploy/registry): Debian's nginx running the
rendered conf in front of a real Distribution 2.8, spoken to over real sockets; the pure
renderers; and deploy/registry's wiring of the gate.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from launch.errors import UsageError
from launch.registry_gate import (
    HEADER,
    STAGING,
    USERS_KEY,
    USERS_SECRET,
    WHOAMI_PATH,
    check_prefix,
    new_token,
    render_nginx_conf,
    render_users_map,
)
from tests.gate_server import Gate, running_gate
from tests.goldens import update_requested
from tests.registry_server import (
    Registry,
    push_tiny_image,
    running_registry,
    tiny_image,
)

ROOT = Path(__file__).resolve().parents[1]
REGISTRY_DEPLOY = ROOT / "deploy" / "registry"
CONFIGMAP = REGISTRY_DEPLOY / "registry-gate.configmap.yaml"
ALICE, BOB = new_token(), new_token()
BOGUS = "f" * 64
_TIMEOUT_S = 10.0


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- pure renderers


@pytest.mark.parametrize("name", ["alice", "team-a", "a.b_c", "x9", "0"])
def test_check_prefix_accepts_one_path_component(name: str) -> None:
    assert check_prefix(name) == name


@pytest.mark.parametrize(
    "name", ["", "Alice", "a/b", "-a", "a-", "a..b", "a b", "a:b", STAGING, "launch"]
)
def test_check_prefix_refuses_other_names_with_a_hint(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_prefix(name)
    assert f"`{name}`" in caught.value.message
    assert caught.value.hint


def test_new_tokens_are_64_hex_and_fresh() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)


def test_users_map_has_one_sorted_line_per_user() -> None:
    text = render_users_map({"bob": BOB, "alice": ALICE})
    assert text == f'"{ALICE}" alice;\n"{BOB}" bob;\n'
    assert render_users_map({}) == ""


@pytest.mark.parametrize(
    ("users", "words"),
    [
        ({"alice": "abc"}, "64 lowercase hex"),
        ({"alice": ALICE.upper()}, "64 lowercase hex"),
        ({"alice": "g" * 64}, "64 lowercase hex"),
        ({"alice": ALICE + "0"}, "64 lowercase hex"),
        ({"alice": '";\n"' + "0" * 60}, "64 lowercase hex"),  # no way out of the quotes
        ({"alice": ""}, "64 lowercase hex"),
        ({"alice": ALICE, "bob": ALICE}, "the same push token"),
        ({STAGING: ALICE}, "reserved"),
        ({"Bob": BOB}, "not one repository path component"),
    ],
)
def test_users_map_refuses_bad_entries(users: dict[str, str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        render_users_map(users)


def test_conf_renders_the_given_paths() -> None:
    conf = render_nginx_conf(
        listen="127.0.0.1:1", upstream="127.0.0.1:2", users_map_path="/u/*.map", pid_path="/p",
        temp_dir="/t",
    )  # fmt: skip
    for line in (
        "listen 127.0.0.1:1;",
        "server 127.0.0.1:2;",
        "include /u/*.map;",
        "pid /p;",
        "client_body_temp_path /t/client_body;",
        'proxy_set_header X-Launch-Push-Token "";',
        "daemon off;",
    ):
        assert line in conf, line


# --------------------------------------------------------------------------- through the gate


@dataclass
class Lab:
    registry: Registry
    gate: Gate

    @property
    def url(self) -> str:
        return self.gate.url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("gate")
    with (
        running_registry(tmp) as registry,
        running_gate(tmp, registry.host, {"alice": ALICE, "bob": BOB}) as gate,
    ):
        yield Lab(registry=registry, gate=gate)


def _headers(token: str | None) -> dict[str, str]:
    return {} if token is None else {HEADER: token}


def _start_upload(url: str, repo: str, token: str | None, query: str = "") -> requests.Response:
    return requests.post(
        f"{url}/v2/{repo}/blobs/uploads/{query}", headers=_headers(token), timeout=_TIMEOUT_S
    )


def _location(url: str, response: requests.Response) -> str:
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    return location if location.startswith("http") else url + location


def _push_blob(url: str, repo: str, data: bytes, token: str | None) -> str:
    """Monolithic upload: POST, then PUT <Location>&digest=."""
    location = _location(url, _start_upload(url, repo, token))
    done = requests.put(
        f"{location}&digest={_sha256(data)}",
        data=data,
        headers={**_headers(token), "Content-Type": "application/octet-stream"},
        timeout=_TIMEOUT_S,
    )
    assert done.status_code == 201, done.text
    return _sha256(data)


def _push_blob_in_chunks(url: str, repo: str, data: bytes, token: str | None) -> str:
    """POST; a PATCH with Content-Range; a PATCH streamed with Transfer-Encoding: chunked (as
    docker and Kaniko send layers); then an empty PUT ?digest=."""
    location = _location(url, _start_upload(url, repo, token))
    half = len(data) // 2
    first = requests.patch(
        location,
        data=data[:half],
        headers={
            **_headers(token),
            "Content-Type": "application/octet-stream",
            "Content-Range": f"0-{half - 1}",
        },
        timeout=_TIMEOUT_S,
    )
    assert first.status_code == 202, first.text
    location = _location(url, first)

    def stream() -> Iterator[bytes]:
        rest = data[half:]
        for i in range(0, len(rest), 4096):
            yield rest[i : i + 4096]

    second = requests.patch(
        location,
        data=stream(),
        headers={**_headers(token), "Content-Type": "application/octet-stream"},
        timeout=_TIMEOUT_S,
    )
    assert second.status_code == 202, second.text
    assert second.headers["Range"] == f"0-{len(data) - 1}"
    location = _location(url, second)
    done = requests.put(
        f"{location}&digest={_sha256(data)}", headers=_headers(token), timeout=_TIMEOUT_S
    )
    assert done.status_code == 201, done.text
    return _sha256(data)


def _put_manifest(
    url: str, repo: str, ref: str, body: bytes, media_type: str, token: str | None
) -> requests.Response:
    return requests.put(
        f"{url}/v2/{repo}/manifests/{ref}",
        data=body,
        headers={**_headers(token), "Content-Type": media_type},
        timeout=_TIMEOUT_S,
    )


def _assert_denied(response: requests.Response, *words: str) -> None:
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["code"] == "DENIED"
    for word in words:
        assert word in error["message"], error["message"]


def test_the_owner_pushes_under_their_prefix_and_anyone_pulls(lab: Lab) -> None:
    image = tiny_image(payload=b"alice's app\n" * 5000)  # a layer of a few KiB, two PATCHes
    _push_blob(lab.url, "alice/app", image.config, ALICE)
    _push_blob_in_chunks(lab.url, "alice/app", image.layer, ALICE)
    put = _put_manifest(lab.url, "alice/app", "v1", image.manifest, image.media_type, ALICE)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == image.digest
    # Pulls need no token: the manifest by tag, its blobs, HEADs, the catalog.
    got = requests.get(
        f"{lab.url}/v2/alice/app/manifests/v1",
        headers={"Accept": image.media_type},
        timeout=_TIMEOUT_S,
    )
    assert got.status_code == 200 and got.content == image.manifest
    layer = requests.get(f"{lab.url}/v2/alice/app/blobs/{_sha256(image.layer)}", timeout=_TIMEOUT_S)
    assert layer.content == image.layer
    head = requests.head(
        f"{lab.url}/v2/alice/app/manifests/{image.digest}",
        headers={"Accept": image.media_type},
        timeout=_TIMEOUT_S,
    )
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == image.digest
    catalog = requests.get(f"{lab.url}/v2/_catalog", timeout=_TIMEOUT_S)
    assert "alice/app" in catalog.json()["repositories"]
    assert requests.get(f"{lab.url}/v2/", timeout=_TIMEOUT_S).status_code == 200


@pytest.mark.parametrize(
    ("token", "why"),
    [(None, "in X-Launch-Push-Token"), (BOB, "pushes to bob/"), (BOGUS, "in X-Launch-Push-Token")],
    ids=["no-token", "bobs-token", "unknown-token"],
)
def test_writes_to_a_prefix_need_its_token(lab: Lab, token: str | None, why: str) -> None:
    # An upload alice started: PATCH and PUT on it are writes to alice/ too.
    location = _location(lab.url, _start_upload(lab.url, "alice/lib", ALICE))
    image = tiny_image(payload=b"forged\n")
    refusals = [
        _start_upload(lab.url, "alice/lib", token),
        _start_upload(lab.url, "alice/deep/lib", token),
        requests.patch(location, data=b"x", headers=_headers(token), timeout=_TIMEOUT_S),
        requests.put(
            f"{location}&digest={_sha256(b'')}", headers=_headers(token), timeout=_TIMEOUT_S
        ),
        _put_manifest(lab.url, "alice/lib", "v1", image.manifest, image.media_type, token),
    ]
    for response in refusals:
        _assert_denied(response, "push to alice/ needs alice's push token", why)
    missing = requests.get(f"{lab.url}/v2/alice/lib/manifests/v1", timeout=_TIMEOUT_S)
    assert missing.status_code == 404
    _assert_denied(_start_upload(lab.url, "_catalog", token), "pushes go to /v2/<prefix>/")


def test_deletes_are_refused_even_to_the_owner(lab: Lab) -> None:
    digest = push_tiny_image(lab.url, f"{STAGING}/to-delete", "v1")
    # The owner's token makes no difference, in staging/ or in their own prefix.
    for token in (None, ALICE):
        for path in (f"{STAGING}/to-delete/manifests/{digest}", "alice/app/manifests/v1"):
            response = requests.delete(
                f"{lab.url}/v2/{path}", headers=_headers(token), timeout=_TIMEOUT_S
            )
            _assert_denied(response, "deletes are disabled")
    still = requests.head(
        f"{lab.url}/v2/{STAGING}/to-delete/manifests/{digest}",
        headers={"Accept": tiny_image().media_type},
        timeout=_TIMEOUT_S,
    )
    assert still.status_code == 200


def test_other_methods_are_refused(lab: Lab) -> None:
    for method in ("OPTIONS", "PROPFIND", "MKCOL"):
        response = requests.request(method, f"{lab.url}/v2/{STAGING}/x/", timeout=_TIMEOUT_S)
        _assert_denied(response, f"{method} is not allowed")
    # nginx itself answers TRACE, before any location.
    trace = requests.request("TRACE", f"{lab.url}/v2/{STAGING}/x/", timeout=_TIMEOUT_S)
    assert trace.status_code == 405


def test_staging_takes_pushes_without_a_token(lab: Lab) -> None:
    digest = push_tiny_image(lab.url, f"{STAGING}/kaniko/app", "build-1")
    got = requests.head(
        f"{lab.url}/v2/{STAGING}/kaniko/app/manifests/build-1",
        headers={"Accept": tiny_image().media_type},
        timeout=_TIMEOUT_S,
    )
    assert got.headers["Docker-Content-Digest"] == digest


def test_cross_repo_mounts_from_staging_are_decided_by_the_target(lab: Lab) -> None:
    image = tiny_image(payload=b"built by kaniko\n")
    push_tiny_image(lab.url, f"{STAGING}/build", "b1", payload=b"built by kaniko\n")
    layer = _sha256(image.layer)
    query = f"?mount={layer}&from={STAGING}/build"
    mounted = _start_upload(lab.url, "alice/copied", ALICE, query)
    assert mounted.status_code == 201, mounted.text  # mounted, no upload needed
    assert mounted.headers["Docker-Content-Digest"] == layer
    for token in (BOB, None, BOGUS):
        _assert_denied(_start_upload(lab.url, "alice/copied", token, query), "alice's push token")
    # Bob mounts into his own prefix; into staging anyone may.
    assert _start_upload(lab.url, "bob/copied", BOB, query).status_code == 201
    assert _start_upload(lab.url, f"{STAGING}/again", None, query).status_code == 201


def test_whoami_names_the_tokens_prefix(lab: Lab) -> None:
    for token, prefix in ((ALICE, "alice"), (BOB, "bob")):
        response = requests.get(
            f"{lab.url}{WHOAMI_PATH}", headers=_headers(token), timeout=_TIMEOUT_S
        )
        assert response.status_code == 200
        assert response.text == prefix
        assert response.headers["Content-Type"] == "text/plain"
    for other in (None, BOGUS, ""):
        response = requests.get(
            f"{lab.url}{WHOAMI_PATH}", headers=_headers(other), timeout=_TIMEOUT_S
        )
        _assert_denied(response, "no valid push token")


def _raw_post(lab: Lab, path: str, token: str) -> tuple[int, str]:
    """A request line exactly as written (requests would normalise dot segments)."""
    connection = http.client.HTTPConnection(lab.gate.host, timeout=_TIMEOUT_S)
    try:
        connection.request("POST", path, headers={HEADER: token, "Content-Length": "0"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/bob/../alice/victim/blobs/uploads/",
        "/v2/bob/%2e%2e/alice/victim/blobs/uploads/",
        "/v2/bob//../alice/victim/blobs/uploads/",
        "/v2/bob/x%2F..%2F..%2Falice/victim/blobs/uploads/",
        "/v2/bob%2F..%2Falice/victim/blobs/uploads/",
        "/v2/./bob/../alice/victim/blobs/uploads/",
        "http://other/v2/bob/../alice/victim/blobs/uploads/",
    ],
)
def test_paths_that_climb_out_of_the_prefix_write_nothing(lab: Lab, path: str) -> None:
    """The gate decides on the path as sent; Distribution answers one it would clean with a
    redirect (gorilla/mux), so bob's token never starts an upload in alice/."""
    status, body = _raw_post(lab, path, BOB)
    assert status in (301, 403), (status, body)
    assert not (lab.registry.root / "docker/registry/v2/repositories/alice/victim").exists()


# --------------------------------------------------------------------------- what reaches Distribution


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012 (one test's record)

    def _answer(self) -> None:
        self.seen.append(dict(self.headers.items()))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_token_never_reaches_the_registry(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        upstream = f"127.0.0.1:{server.server_address[1]}"
        with running_gate(tmp_path, upstream, {"alice": ALICE}) as gate:
            _Recorder.seen.clear()
            forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.org"}
            for method in ("GET", "POST", "PATCH"):
                response = requests.request(
                    method,
                    f"{gate.url}/v2/alice/app/blobs/uploads/",
                    headers={HEADER: ALICE, **forwarded},
                    timeout=_TIMEOUT_S,
                )
                assert response.status_code == 202
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Recorder.seen) == 3
    for headers in _Recorder.seen:
        assert HEADER.lower() not in {k.lower() for k in headers}
        assert headers["Host"] == gate.host  # Distribution builds upload Locations from it
        assert (
            headers["X-Forwarded-Proto"] == "https" and headers["X-Forwarded-Host"] == "example.org"
        )


def test_without_a_users_map_only_staging_takes_pushes(tmp_path: Path) -> None:
    """The Deployment mounts the Secret as optional: with none, the registry still serves."""
    with running_registry(tmp_path) as registry, running_gate(tmp_path, registry.host) as gate:
        push_tiny_image(gate.url, f"{STAGING}/x", "v1")
        _assert_denied(_start_upload(gate.url, "alice/x", ALICE), "alice's push token")
        _assert_denied(
            requests.get(f"{gate.url}{WHOAMI_PATH}", headers=_headers(ALICE), timeout=_TIMEOUT_S),
            "no valid push token",
        )
        assert requests.get(f"{gate.url}/v2/{STAGING}/x/tags/list", timeout=_TIMEOUT_S).json() == {
            "name": f"{STAGING}/x",
            "tags": ["v1"],
        }


# --------------------------------------------------------------------------- deploy/registry


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _deployment() -> dict[str, Any]:
    (doc,) = _docs(REGISTRY_DEPLOY / "deployment.yaml")
    return doc


def test_configmap_holds_render_nginx_conf() -> None:
    """The conf the cluster runs is the one tested above (defaults = deploy's paths)."""
    text = CONFIGMAP.read_text()
    marker = "  nginx.conf: |\n"
    conf = render_nginx_conf()
    if update_requested():
        body = "".join(f"    {line}\n" if line else "\n" for line in conf.splitlines())
        CONFIGMAP.write_text(text[: text.index(marker) + len(marker)] + body)
        text = CONFIGMAP.read_text()
    (configmap,) = yaml.safe_load_all(text)
    assert configmap["metadata"] == {
        "name": "registry-gate",
        "namespace": "launch-system",
        "labels": {"app.kubernetes.io/name": "registry", "app.kubernetes.io/part-of": "launch"},
    }
    assert configmap["data"] == {"nginx.conf": conf}, (
        f"{CONFIGMAP} differs from render_nginx_conf(): LAUNCH_UPDATE_GOLDENS=1 pytest "
        "tests/test_registry_gate.py -k configmap"
    )


def test_deployment_puts_the_gate_in_front_of_distribution() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"registry", "gate"}
    registry, gate = containers["registry"], containers["gate"]
    env = {e["name"]: e["value"] for e in registry["env"]}
    assert env["REGISTRY_HTTP_ADDR"] == "127.0.0.1:5001"  # loopback: only the gate reaches it
    assert "ports" not in registry
    assert gate["image"] == "docker.io/library/nginx:1.27-alpine"
    assert gate["ports"] == [{"name": "http", "containerPort": 5000}]
    assert gate["readinessProbe"]["httpGet"] == {"path": "/v2/", "port": "http"}
    # The paths the default conf names are the gate's mounts.
    mounts = {m["name"]: m["mountPath"] for m in gate["volumeMounts"]}
    conf_dir = gate["command"][gate["command"].index("-c") + 1].rsplit("/", 1)[0]
    conf = render_nginx_conf()
    assert mounts["gate-conf"] == conf_dir
    assert f"include {mounts['gate-users']}/*.map;" in conf
    assert f"pid {mounts['gate-tmp']}/nginx.pid;" in conf
    assert "listen 5000;" in conf and "server 127.0.0.1:5001;" in conf
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["gate-conf"]["configMap"]["name"] == "registry-gate"
    # The users map: optional (the registry runs without it), and only the gate sees it.
    assert volumes["gate-users"]["secret"] == {"secretName": USERS_SECRET, "optional": True}
    assert all(m["name"] != "gate-users" for m in registry["volumeMounts"])
    # Unprivileged: Talos' baseline allows root, the gate does not need it.
    security = gate["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False


def test_users_secret_is_a_template_outside_the_kustomization() -> None:
    path = REGISTRY_DEPLOY / "registry-gate-users.secret.template.yaml"
    (secret,) = _docs(path)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == USERS_SECRET
    assert secret["metadata"]["namespace"] == "launch-system"
    assert secret["stringData"] == {USERS_KEY: ""}  # a template holds no values
    (kustomization,) = _docs(REGISTRY_DEPLOY / "kustomization.yaml")
    assert path.name not in kustomization["resources"]
    assert CONFIGMAP.name in kustomization["resources"]
