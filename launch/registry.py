"""The Distribution (OCI registry) API, reading: does `<repo>:<tag>` exist, what is its digest,
what is the image made of.

With `launch.registry_push` (writing), the only modules speaking registry HTTP. A reuse check is
ONE request,
`HEAD /v2/<repo>/manifests/<tag>` with an `Accept` header listing all four manifest media types;
the digest is the `Docker-Content-Digest` response header. Observed with CNCF Distribution 2.8
(tests/test_registry.py pins each of these):

- an OCI manifest or OCI index asked for without the OCI types answers **404** (MANIFEST_UNKNOWN,
  "OCI manifest found, but accept header does not support OCI manifests"): launch would believe
  the image absent and rebuild on every run;
- a Docker v2 manifest asked for without the Docker type (no Accept, or OCI types only) answers
  **400** (the registry tries to down-convert to schema1);
- a Docker manifest list asked for with the v2 manifest type but not the list type answers 200
  with the digest of the *amd64 platform manifest*, not of the list.

It also reads what an image is made of (`get_manifest`, `get_blob`, `image_config`), so launch
can compose a new image from a dependency image without building. Every byte read is checked
against its digest (a proxy in between must not change an image silently). Observed: a registry
GET answers `Content-Type` = the manifest's media type and `Docker-Content-Digest` = sha256 of
the exact bytes (whitespace included), except for schema1 (signed) manifests, whose digest is of
the payload without signatures; those are returned unchecked, for the caller to refuse. A
manifest or blob the registry does not have (never pushed, or deleted and garbage-collected)
answers 404 MANIFEST_UNKNOWN / BLOB_UNKNOWN: `ManifestUnknown` / `BlobUnknown`, so callers can
tell "deleted" from "broken".

Two ways to reach the registry, one code path: a `Transport` does the HTTP. `HttpTransport` goes
to a direct URL (the `registry_url` setting, e.g. `http://127.0.0.1:30500`); `launch.cluster`
provides one going through the API server's service proxy, so a kubeconfig is all a user needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from launch.errors import LaunchError

if TYPE_CHECKING:
    import requests as _requests

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "PROXY_HINT",
    "SCHEMA1_MEDIA_TYPES",
    "BlobUnknown",
    "HttpTransport",
    "ManifestUnknown",
    "RegistryError",
    "Transport",
    "digest_of",
    "get_blob",
    "get_manifest",
    "image_config",
    "image_exists",
    "image_labels",
    "manifest_digest",
    "parse_image",
    "ping",
    "pinned",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
# Docker's pre-2017 manifests: no config blob, signed; the registry may still serve old ones.
SCHEMA1_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
)
CONFIG_LIMIT = 8 << 20  # get_blob's default: image configs are KiBs; a larger blob is not one

DIGEST_HEADER = "Docker-Content-Digest"
API_VERSION_HEADER = "Docker-Distribution-API-Version"
DEFAULT_REGISTRY = "docker.io"  # the Docker convention for references without a registry host

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# distribution/reference grammar: path components, tag, digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}$")

_HINT_DIRECT = (
    "check that the registry runs and that `registry_url` is right (`launch config` shows it; "
    "unset it to go through the API server's service proxy)"
)
PROXY_HINT = (
    "check the in-cluster registry: `kubectl -n launch-system get svc,pods` (Service and its "
    "endpoints), or set `registry_url` to a direct URL (`launch config`)"
)
_HINT_AUTH = (
    "the registry refused launch's credentials: launch reads anonymously; allow anonymous "
    "pulls or reach the registry through a URL that does (`registry_url`, `launch config`)"
)


class RegistryError(LaunchError):
    """The registry could not answer the question (unreachable, refused, or not a registry).

    Exit code 1 (unexpected): nothing was built or created when it is raised.
    """


class ManifestUnknown(RegistryError):
    """The registry answered that it has no such manifest (404): never pushed, or deleted."""


class BlobUnknown(RegistryError):
    """The registry answered that it has no such blob (404): never pushed, or deleted."""


# --- transports --------------------------------------------------------------------------------


@runtime_checkable
class Transport(Protocol):
    """How registry requests reach the registry: directly (`HttpTransport`) or through the API
    server's service proxy (`launch.cluster`).

    `request("HEAD", "/v2/<repo>/manifests/<tag>", {"Accept": ...})` returns (status, headers,
    body) for any HTTP answer, and raises `RegistryError` (or another `LaunchError`) with a hint
    when no HTTP answer came back (refused, timed out, TLS failure). A request `body` (bytes, a
    blob upload's PUT) is sent as it is, with the caller's `Content-Type`; `path` may carry a
    query string. Headers may come in any case; readers here look them up case-insensitively. A
    HEAD's body may be empty.

    Optional attributes, read with getattr for messages: `base_url` (str, what `path` is appended
    to, e.g. `https://<apiserver>/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy`) and
    `hint` (str, the `hint:` line for an unreachable registry; a service-proxy transport should
    use `PROXY_HINT`). Count requests in the transport: benchmarks read them.
    """

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]: ...


def _describe(transport: Transport) -> str:
    """Where requests go, for messages: a transport may expose `base_url` (both of ours do)."""
    base = getattr(transport, "base_url", None)
    return str(base).rstrip("/") if base else "the registry"


def _hint(transport: Transport) -> str:
    hint = getattr(transport, "hint", None)
    return str(hint) if hint else _HINT_DIRECT


@dataclass
class HttpTransport:
    """Direct HTTP(S) to `base_url` with requests. One attempt per call, no retries, no redirects.

    `requests` lists every (method, path) sent, so callers and benchmarks can count them.
    `verify` is requests' TLS verification (True, False or a CA bundle path).
    """

    base_url: str
    timeout_s: float = 10.0
    session: _requests.Session | None = None
    verify: bool | str = True
    requests: list[tuple[str, str]] = field(default_factory=list)
    hint: str = _HINT_DIRECT

    def __post_init__(self) -> None:
        url = self.base_url.strip().rstrip("/")
        if "://" not in url:
            raise RegistryError(
                f"registry URL {self.base_url!r} has no scheme (http:// or https://)",
                hint="write it as http://HOST:PORT (plain HTTP) or https://HOST:PORT in "
                "`registry_url` (`launch config`)",
            )
        scheme = url.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise RegistryError(
                f"registry URL {self.base_url!r}: scheme {scheme!r} is not http or https",
                hint="set `registry_url` to http://HOST:PORT or https://HOST:PORT (`launch config`)",
            )
        self.base_url = url

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        import requests  # lazy: `launch --help` and the local backend never pay for it

        url = self.base_url + path
        self.requests.append((method, path))
        session = self.session if self.session is not None else requests.Session()
        try:
            response = session.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=self.timeout_s,
                allow_redirects=False,
                verify=self.verify,
            )
        except requests.exceptions.SSLError as exc:
            raise _tls_error(url, exc) from exc
        except requests.exceptions.Timeout as exc:
            raise RegistryError(
                f"registry {self.base_url} did not answer within {self.timeout_s:g}s ({method} {path})",
                hint=self.hint,
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise RegistryError(
                f"cannot connect to the registry at {self.base_url} ({_reason(exc)})",
                hint=self.hint,
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                f"request to the registry at {url} failed: {exc}", hint=self.hint
            ) from exc
        finally:
            if self.session is None:
                session.close()
        content = b"" if method == "HEAD" else response.content
        return response.status_code, dict(response.headers), content


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection without answering"
    return text


def _tls_error(url: str, exc: Exception) -> RegistryError:
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer" in text:
        plain = "http://" + url.split("://", 1)[1].split("/", 1)[0]
        return RegistryError(
            f"{url}: the registry does not speak TLS (it answered plain HTTP to an HTTPS request)",
            hint=f"use {plain} as `registry_url` (`launch config`); the in-cluster registry "
            "speaks plain HTTP",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return RegistryError(
            f"{url}: the registry's TLS certificate is not trusted ({text.split('(', 1)[0].strip()})",
            hint="point REQUESTS_CA_BUNDLE at the CA that signed it, or use the registry's "
            "plain-HTTP address",
        )
    return RegistryError(
        f"{url}: TLS handshake failed: {text}",
        hint="check the scheme of `registry_url` (http:// for a plain-HTTP registry)",
    )


# --- references --------------------------------------------------------------------------------


def parse_image(ref: str) -> tuple[str, str, str]:
    """`host[:port]/repo/name[:tag][@digest]` -> (registry host, repository, tag or digest).

    Docker's rules: the first path component is a registry host when it contains `.` or `:` or is
    `localhost`; otherwise the host is docker.io (and a one-component name gets `library/`).
    A digest wins over a tag; with neither, the tag is `latest`.
    """
    text = ref.strip()
    if not text or "://" in text:
        raise ValueError(f"invalid image reference {ref!r}")
    reference: str | None = None
    if "@" in text:
        text, reference = text.split("@", 1)
        if not _ANY_DIGEST_RE.match(reference):
            raise ValueError(f"invalid digest in image reference {ref!r}")
    host, _, rest = text.partition("/")
    if not rest or not ("." in host or ":" in host or host == "localhost"):
        host, rest = DEFAULT_REGISTRY, text
    tag = "latest"
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ValueError(f"invalid tag {tag!r} in image reference {ref!r}")
    if host == DEFAULT_REGISTRY and "/" not in rest:
        rest = f"library/{rest}"
    if not _REPOSITORY_RE.match(rest):
        raise ValueError(f"invalid repository {rest!r} in image reference {ref!r}")
    return host, rest, reference if reference is not None else tag


def pinned(image_ref_without_tag: str, digest: str) -> str:
    """`<registry>/<repo>@sha256:…`, the form trials run. A tag on the input is dropped."""
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    name = image_ref_without_tag.strip()
    if "@" in name:
        name, existing = name.split("@", 1)
        if existing != digest:
            raise ValueError(f"{image_ref_without_tag!r} is already pinned to another digest")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash and slash != -1:
        name = name[:colon]
    if not name or name.endswith("/"):
        raise ValueError(f"invalid image name {image_ref_without_tag!r}")
    return f"{name}@{digest}"


# --- the API -----------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _check_names(repository: str, tag: str) -> None:
    if not _REPOSITORY_RE.match(repository):
        raise ValueError(f"invalid repository name {repository!r}")
    if not (_TAG_RE.match(tag) or _DIGEST_RE.match(tag)):
        raise ValueError(f"invalid tag or digest {tag!r}")


def _resolve(base_url: str | None, transport: Transport | None, timeout_s: float) -> Transport:
    if (base_url is None) == (transport is None):
        raise TypeError("pass exactly one of base_url or transport")
    if transport is not None:
        return transport
    assert base_url is not None
    return HttpTransport(base_url, timeout_s=timeout_s)


def manifest_digest(
    *,
    repository: str,
    tag: str,
    base_url: str | None = None,
    transport: Transport | None = None,
    timeout_s: float = 10,
) -> str | None:
    """The digest of `repository:tag`, or None when the registry has no such manifest.

    One request: `HEAD /v2/<repository>/manifests/<tag>` with `Accept` listing the OCI manifest
    and index and the Docker v2 manifest and list, so the answer is the digest of whatever was
    pushed (never a down-converted or per-platform manifest). Reach the registry with `base_url`
    (direct) or `transport` (e.g. the API server's service proxy); `timeout_s` applies to
    `base_url` only. `tag` may also be a `sha256:` digest.

    - 200: the `Docker-Content-Digest` header. Registries that omit it (the OCI distribution spec
      makes it optional) cost a second request: GET the manifest and hash its bytes.
    - 404 from a Distribution registry (it sets `Docker-Distribution-API-Version`): None. A 404
      without that header may come from something else (a proxy, or the API server when the
      Service is missing): `GET /v2/` decides, and a registry that answers it means None.
    - 401/403, 5xx, anything else, or no answer: `RegistryError` naming the URL, with a hint.
    """
    _check_names(repository, tag)
    transport = _resolve(base_url, transport, timeout_s)
    path = f"/v2/{repository}/manifests/{tag}"
    where = f"{_describe(transport)}{path}"
    status, headers, body = transport.request("HEAD", path, {"Accept": MANIFEST_ACCEPT})
    if status == 200:
        digest = _header(headers, DIGEST_HEADER)
        if digest is None:
            return _digest_from_body(transport, path, where)
        digest = digest.strip()
        if not _DIGEST_RE.match(digest):
            raise RegistryError(
                f"{where}: unexpected {DIGEST_HEADER} header {digest!r} (want sha256:<64 hex>)",
                hint="launch pins images by sha256 digest; is this a Distribution/OCI registry?",
            )
        return digest
    if status == 404:
        if _header(headers, API_VERSION_HEADER) is None:
            ping(transport)  # raises when no registry is behind this address
        return None
    raise _status_error(transport, "HEAD", where, status, headers, body)


def _digest_from_body(transport: Transport, path: str, where: str) -> str:
    status, headers, body = transport.request("GET", path, {"Accept": MANIFEST_ACCEPT})
    if status != 200:
        raise _status_error(transport, "GET", where, status, headers, body)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _status_error(
    transport: Transport,
    method: str,
    where: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> RegistryError:
    detail = _error_detail(body)
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        verb = "requires authentication" if status == 401 else "refused access"
        return RegistryError(
            f"{method} {where}: the registry {verb} ({status}){suffix}", hint=_HINT_AUTH
        )
    if status == 400 and b"HTTP request to an HTTPS server" in body:
        return _scheme_error(where)
    # HEAD hides the body Go's TLS listener sends to plain HTTP ("Client sent an HTTP request to
    # an HTTPS server"), so a 400 without the registry's API header most likely is that.
    if (
        status == 400
        and method == "HEAD"
        and where.startswith("http://")
        and _header(headers, API_VERSION_HEADER) is None
    ):
        return _scheme_error(where)
    if status >= 500:
        return RegistryError(
            f"{method} {where}: the registry answered {status}{suffix}", hint=_hint(transport)
        )
    return RegistryError(
        f"{method} {where}: unexpected answer {status}{suffix}",
        hint="is this address a Distribution/OCI registry? " + _hint(transport),
    )


def _scheme_error(where: str) -> RegistryError:
    https = "https://" + where.split("://", 1)[1].split("/", 1)[0]
    return RegistryError(
        f"{where}: the registry speaks HTTPS but was asked in plain HTTP",
        hint=f"use {https} as `registry_url` (`launch config`)",
    )


def _error_detail(body: bytes) -> str:
    """The first Distribution error (`{"errors": [{"code", "message"}]}`) or a short text."""
    if not body:
        return ""
    try:
        errors = json.loads(body).get("errors")
        first = errors[0]
        return f"{first.get('code', '')} {first.get('message', '')}".strip()
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        text = body.decode(errors="replace").strip().replace("\n", " ")
        return text[:200]


def image_exists(
    *,
    repository: str,
    tag: str,
    base_url: str | None = None,
    transport: Transport | None = None,
    timeout_s: float = 10,
) -> bool:
    """Whether `repository:tag` is in the registry (`manifest_digest(...) is not None`)."""
    digest = manifest_digest(
        repository=repository, tag=tag, base_url=base_url, transport=transport, timeout_s=timeout_s
    )
    return digest is not None


def digest_of(data: bytes) -> str:
    """`sha256:<hex>` of `data`: the digest Distribution gives a blob or manifest of these bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get_manifest(
    *, repository: str, reference: str, transport: Transport
) -> tuple[str, bytes, str]:
    """`GET /v2/<repository>/manifests/<reference>` (a tag or a digest): (media type, the exact
    bytes, digest).

    `Accept` lists the four manifest types, so the manifest comes as it was pushed (an index
    stays an index). The media type is the `Content-Type`, else the body's `mediaType`. The
    digest is sha256 of the bytes; a `Docker-Content-Digest` header or a digest `reference` that
    disagrees means the bytes changed on the way: `RegistryError`. A schema1 manifest
    (`SCHEMA1_MEDIA_TYPES`) is returned unchecked, its digest being the header's: refuse it.
    404: `ManifestUnknown`; anything else: `RegistryError` naming the URL, with a hint.
    """
    _check_names(repository, reference)
    path = f"/v2/{repository}/manifests/{reference}"
    where = f"{_describe(transport)}{path}"
    status, headers, body = transport.request("GET", path, {"Accept": MANIFEST_ACCEPT})
    if status == 404:
        if _header(headers, API_VERSION_HEADER) is None:
            ping(transport)  # raises when no registry is behind this address
        raise ManifestUnknown(
            f"{where}: the registry has no such manifest ({_error_detail(body) or '404'})",
            hint="was the image deleted from the registry (garbage collection), or never "
            "pushed? `--rebuild` builds it again",
        )
    if status != 200:
        raise _status_error(transport, "GET", where, status, headers, body)
    media_type = _media_type(headers, body)
    if not media_type:
        raise RegistryError(
            f"GET {where}: the manifest has no media type (no Content-Type, no mediaType)",
            hint="is this address a Distribution/OCI registry? " + _hint(transport),
        )
    header = (_header(headers, DIGEST_HEADER) or "").strip()
    if media_type in SCHEMA1_MEDIA_TYPES:
        return media_type, body, header or digest_of(body)
    digest = digest_of(body)
    for claimed, what in ((header, DIGEST_HEADER), (reference, "the digest asked for")):
        if _DIGEST_RE.match(claimed) and claimed != digest:
            raise RegistryError(
                f"GET {where}: the {len(body)} bytes received hash to {digest}, not to "
                f"{claimed} ({what})",
                hint="something between launch and the registry changed the manifest; "
                + _hint(transport),
            )
    return media_type, body, digest


_GENERIC_TYPES = ("application/json", "application/octet-stream", "text/plain")


def _media_type(headers: Mapping[str, str], body: bytes) -> str:
    content_type = (_header(headers, "Content-Type") or "").split(";", 1)[0].strip()
    # Distribution answers the stored type; a generic one (a proxy's, or a registry that does
    # not keep types) says nothing, and the body's `mediaType` (optional in OCI) decides.
    if content_type and content_type not in _GENERIC_TYPES:
        return content_type
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    found = doc.get("mediaType") if isinstance(doc, dict) else None
    return found if isinstance(found, str) else ""


def get_blob(
    *, repository: str, digest: str, transport: Transport, limit: int = CONFIG_LIMIT
) -> bytes:
    """`GET /v2/<repository>/blobs/<digest>`: the bytes, checked to hash to `digest`.

    For small blobs (image configs): the whole answer is held in memory, so a blob over `limit`
    bytes (by `Content-Length`, else by what came) is refused. 404: `BlobUnknown`. A redirect
    (a registry storing blobs in S3 or GCS with `storage.redirect`) is an error: launch does not
    follow redirects, so a service proxy never sends it elsewhere.
    """
    _check_names(repository, digest)
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    path = f"/v2/{repository}/blobs/{digest}"
    where = f"{_describe(transport)}{path}"
    status, headers, body = transport.request("GET", path, {"Accept": "*/*"})
    if status == 404:
        if _header(headers, API_VERSION_HEADER) is None:
            ping(transport)
        raise BlobUnknown(
            f"{where}: the registry has no such blob ({_error_detail(body) or '404'})",
            hint="was the image deleted from the registry (garbage collection)? `--rebuild` "
            "builds it again",
        )
    if status in (301, 302, 303, 307, 308):
        raise RegistryError(
            f"GET {where}: the registry redirects blob downloads ({status} to "
            f"{(_header(headers, 'Location') or '?').split('?', 1)[0]})",
            hint="launch reads blobs from the registry itself: disable `storage.redirect` in "
            "the registry's configuration",
        )
    if status != 200:
        raise _status_error(transport, "GET", where, status, headers, body)
    length = _header(headers, "Content-Length")
    size = int(length) if length and length.strip().isdigit() else len(body)
    if max(size, len(body)) > limit:
        raise RegistryError(
            f"GET {where}: the blob is {max(size, len(body))} bytes, over the {limit} bytes "
            "launch reads into memory",
            hint="an image config is a few KiB: is this digest an image config?",
        )
    if digest_of(body) != digest:
        raise RegistryError(
            f"GET {where}: the {len(body)} bytes received hash to {digest_of(body)}",
            hint="something between launch and the registry changed the blob; " + _hint(transport),
        )
    return body


def image_config(
    *, repository: str, digest: str, transport: Transport, platform: str = "linux/amd64"
) -> dict[str, Any]:
    """The config JSON of the image `repository@digest`; for an index or manifest list, of its
    `platform` image (else its first). Two or three GETs: manifest, (platform manifest,) config
    blob, each checked against its digest. `RegistryError` when one fails or is not an image
    (`ManifestUnknown` / `BlobUnknown` when it is gone)."""
    media_type, body, _ = get_manifest(repository=repository, reference=digest, transport=transport)
    return config_of(
        repository=repository, reference=digest, media_type=media_type, body=body,
        transport=transport, platform=platform,
    )  # fmt: skip


def config_of(
    *,
    repository: str,
    reference: str,
    media_type: str,
    body: bytes,
    transport: Transport,
    platform: str = "linux/amd64",
) -> dict[str, Any]:
    """`image_config` of a manifest already read (`get_manifest` of `reference`): one GET for
    an image manifest, two for an index."""
    digest = reference
    manifest = _json(body, media_type, f"{_describe(transport)}/v2/{repository}/manifests/{digest}")
    entries = manifest.get("manifests")
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or isinstance(entries, list):
        if not isinstance(entries, list) or not entries:
            raise RegistryError(
                f"{_describe(transport)}/v2/{repository}/manifests/{digest}: an empty index",
                hint="is this a container image?",
            )
        os_name, _, arch = platform.partition("/")
        chosen = next(
            (m for m in entries if (m.get("platform") or {}).get("os") == os_name
             and (m.get("platform") or {}).get("architecture") == arch),
            entries[0],
        )  # fmt: skip
        digest = str(chosen.get("digest"))
        if not _DIGEST_RE.match(digest):
            raise RegistryError(
                f"{_describe(transport)}/v2/{repository}/manifests/{digest}: an index entry "
                f"without a sha256 digest ({digest[:80]!r})",
                hint="is this a container image?",
            )
        media_type, body, _ = get_manifest(
            repository=repository, reference=digest, transport=transport
        )
        manifest = _json(
            body, media_type, f"{_describe(transport)}/v2/{repository}/manifests/{digest}"
        )
    config_digest = (manifest.get("config") or {}).get("digest")
    if not isinstance(config_digest, str) or not _DIGEST_RE.match(config_digest):
        raise RegistryError(
            f"{_describe(transport)}/v2/{repository}/manifests/{digest}: no image config in it "
            f"({media_type})",
            hint="is this a container image manifest? (schema1 images are not supported: push "
            "the image again with a current Docker, Kaniko or skopeo)",
        )
    blob = get_blob(repository=repository, digest=config_digest, transport=transport)
    return _json(
        blob, "image config", f"{_describe(transport)}/v2/{repository}/blobs/{config_digest}"
    )


def _json(body: bytes, what: str, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(
            f"{where}: not JSON ({what})", hint="is this a Distribution/OCI registry?"
        ) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: not a JSON object ({what})", hint="is this an image?")
    return doc


def image_labels(
    *, repository: str, digest: str, transport: Transport, platform: str = "linux/amd64"
) -> dict[str, str]:
    """The labels of the image `repository@digest` (its config's `config.Labels`; see
    `image_config`). `RegistryError` when a read fails."""
    config = image_config(
        repository=repository, digest=digest, transport=transport, platform=platform
    )
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def built_from_tag(
    *, repository: str, tag: str, digest: str, transport: Transport, label: str,
    warn: Callable[[str], None],
) -> bool:  # fmt: skip
    """Whether the image under `repository:tag` says (its `label`) it was built from `tag`, so
    it may be reused. An image without the label (built before launch labelled images, or not by
    launch) is built again (False, said with `warn`); one that names another revision was
    swapped or mis-pushed, and is an error, never a silent reuse."""
    from launch.errors import UsageError

    labels = image_labels(repository=repository, digest=digest, transport=transport)
    revision = labels.get(label)
    if revision == tag:
        return True
    if revision is None:
        warn(f"image {repository}:{tag[:12]} does not say what it was built from (no {label} "
             "label): building it again")  # fmt: skip
        return False
    raise UsageError(
        f"image {repository}:{tag[:12]} ({digest[:19]}) says it was built from {revision[:40]}, "
        f"not {tag[:12]}: the tag was overwritten by something other than launch's build",
        hint="`--rebuild` builds this commit again and replaces the tag; ask who can push to "
        "the registry (docs/cluster-setup.md)",
    )


def ping(transport: Transport) -> None:
    """`GET /v2/` for `launch doctor`: 200 or 401 (auth needed, but a registry) is fine."""
    status, headers, body = transport.request("GET", "/v2/", {})
    if status in (200, 401):
        return
    raise _status_error(transport, "GET", f"{_describe(transport)}/v2/", status, headers, body)
