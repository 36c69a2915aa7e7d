"""Writing to a Distribution (OCI) registry: blob uploads and manifest PUTs.

`launch.registry` reads (references, transports, manifest digests, configs); this module writes,
through the same `Transport` (direct HTTP or the API server's service proxy). Two users: the
`--allow-dirty` build context (`upload_blob`, bytes in memory) and the fast image path, which
composes an image from a dependency image: one new layer (`upload_file`, possibly large, read
from disk one chunk at a time), a config (`upload_blob`) and the manifest (`put_manifest`).

Observed with CNCF Distribution 2.8 (tests/test_registry_push.py pins each of these):

- an upload starts with `POST /v2/<repo>/blobs/uploads/` (202 and a `Location` carrying the
  upload's `_state`), and ends with `PUT <Location>&digest=sha256:…`, whose bytes (if any) are
  appended first; the registry hashes everything and refuses a mismatch (400 DIGEST_INVALID);
- each chunk is a `PATCH <Location>` with `Content-Type: application/octet-stream` and
  `Content-Range: <start>-<end>` (inclusive, no `bytes ` prefix). 2.8 appends whatever comes
  (3.x answers 416 when the start is not the bytes received so far); the final digest check
  catches a lost chunk. Every answer carries a NEW `Location` (its `_state` holds the offset):
  the next request must use it;
- a read-only registry (`storage.maintenance.readonly.enabled`) or a pull-through cache answers
  the POST (and a manifest PUT) with 405 `Method not allowed` (`Allow: GET, HEAD`);
- a manifest PUT naming a blob the repository lacks answers 400 MANIFEST_BLOB_UNKNOWN, with the
  missing digest in the error's `detail`: what happens when the dependency image an image is
  composed from was deleted and garbage-collected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from launch.errors import LaunchError
from launch.registry import (
    _DIGEST_RE,
    API_VERSION_HEADER,
    DIGEST_HEADER,
    RegistryError,
    Transport,
    _check_names,
    _describe,
    _error_detail,
    _header,
    _hint,
    _status_error,
    digest_of,
    ping,
)

__all__ = [
    "CHUNK_BYTES", "blob_exists", "copy_image", "mount_blob", "put_manifest", "upload_blob",
    "upload_file",
]  # fmt: skip

CHUNK_BYTES = 16 << 20  # upload_file's default: the memory held, and the bytes per request

_HINT_READ_ONLY = (
    "the registry accepts no pushes (405: read-only, `storage.maintenance.readonly.enabled: "
    "true`, or a pull-through cache): push to a registry that accepts them, or ask its admin"
)
HINT_PUSH_AUTH = (
    "behind launch's registry gate (deploy/registry) a push outside staging/ needs your push "
    'token: set LAUNCH_REGISTRY_TOKEN (ask the cluster admin; docs/cluster-setup.md, "Registry '
    "push tokens\"); another registry must accept launch's pushes without credentials (`registry_url`)"
)
_HINT_REGISTRY = "is this address a Distribution/OCI registry? "


def blob_exists(*, repository: str, digest: str, transport: Transport) -> bool:
    """Whether `repository` has the blob `digest`: one `HEAD /v2/<repository>/blobs/<digest>`.

    200: True. 404 from the registry: False (a 404 without Distribution's API header is checked
    with `GET /v2/`, as in `manifest_digest`). Anything else: `RegistryError` with a hint.
    """
    _check_names(repository, digest)
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    path = f"/v2/{repository}/blobs/{digest}"
    status, headers, body = transport.request("HEAD", path, {})
    if status == 200:
        return True
    if status == 404:
        if _header(headers, API_VERSION_HEADER) is None:
            ping(transport)
        return False
    raise _status_error(transport, "HEAD", f"{_describe(transport)}{path}", status, headers, body)


def upload_blob(*, repository: str, data: bytes, transport: Transport) -> str:
    """Put `data` in `repository` as a blob and return its digest (`digest_of(data)`).

    A blob the repository already has is not sent again (`blob_exists`: one HEAD, and nothing
    else). Otherwise a monolithic upload, two requests: POST, then `PUT <Location>&digest=` with
    the bytes (201). Chunks would cost more requests and give nothing: the bytes are in memory
    anyway, and Distribution stores a monolithic PUT the same way.
    """
    digest = digest_of(data)
    if blob_exists(repository=repository, digest=digest, transport=transport):
        return digest
    target = _start_upload(repository, transport)
    _finish_upload(transport, target, digest, data, len(data))
    return digest


def upload_file(
    *,
    repository: str,
    path: Path | str,
    digest: str,
    size: int,
    transport: Transport,
    progress: Callable[[int, int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> bool:
    """Upload the file at `path` (`size` bytes hashing to `digest`) as a blob of `repository`.

    False, after one HEAD and nothing else, when the repository has the blob already; True once
    uploaded. A file of at most `chunk_bytes` goes in one `PUT <Location>&digest=`; a larger one
    as PATCHes of `chunk_bytes` (each to the `Location` the previous answer gave), then a PUT
    with an empty body. At most one chunk is in memory. `progress(sent, size)` is called after
    each request that carried bytes. The file is hashed as it is read: one that no longer holds
    `size` bytes hashing to `digest` raises `LaunchError` before the upload is committed (the
    registry drops the unfinished upload itself, `storage.maintenance.uploadpurging`).
    """
    _check_names(repository, digest)
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    if size < 0 or chunk_bytes <= 0:
        raise ValueError(f"size {size} and chunk_bytes {chunk_bytes}: want size >= 0, chunk > 0")
    if blob_exists(repository=repository, digest=digest, transport=transport):
        return False
    target = _start_upload(repository, transport)
    sha = hashlib.sha256()
    sent = 0
    with open(path, "rb") as file:
        if size <= chunk_bytes:
            data = _read(file, size, sha, path)
            _check_file(file, sha, digest, size, path)
            _finish_upload(transport, target, digest, data, size)
            sent = size
        else:
            while sent < size:
                data = _read(file, min(chunk_bytes, size - sent), sha, path)
                target = _patch(transport, target, data, sent)
                sent += len(data)
                if progress is not None:
                    progress(sent, size)
            _check_file(file, sha, digest, size, path)
            _finish_upload(transport, target, digest, b"", size)
            return True
    if progress is not None:
        progress(sent, size)
    return True


def _read(file: BinaryIO, count: int, sha: hashlib._Hash, path: Path | str) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise LaunchError(
            f"{path}: the file is shorter than when it was measured (it changed while launch "
            "uploaded it)",
            hint="run launch again once nothing writes to the file",
        )
    sha.update(data)
    return data


def _check_file(
    file: BinaryIO, sha: hashlib._Hash, digest: str, size: int, path: Path | str
) -> None:
    longer = bool(file.read(1))
    found = "sha256:" + sha.hexdigest()
    if longer or found != digest:
        change = "grew" if longer else f"hashes to {found}, not {digest}"
        raise LaunchError(
            f"{path}: the file {change} since launch measured it ({size} bytes): it changed "
            "while launch uploaded it",
            hint="run launch again once nothing writes to the file",
        )


def _start_upload(repository: str, transport: Transport) -> str:
    """`POST /v2/<repository>/blobs/uploads/`: the path to send the upload's bytes to."""
    start = f"/v2/{repository}/blobs/uploads/"
    where = f"{_describe(transport)}{start}"
    status, headers, body = transport.request("POST", start, {})
    if status != 202:
        raise _push_error(transport, "POST", where, status, headers, body)
    return _next_location(
        transport, headers, f"POST {where}: the registry started an upload", where
    )


def _patch(transport: Transport, target: str, data: bytes, offset: int) -> str:
    """One chunk at `offset`; returns where the next request goes (the answer's Location)."""
    where = f"{_describe(transport)}{target.split('?', 1)[0]}"
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{offset}-{offset + len(data) - 1}",
    }
    status, answer, body = transport.request("PATCH", target, headers, data)
    if status != 202:
        if status == 416:
            raise RegistryError(
                f"PATCH {where}: the registry refused the chunk at byte {offset} (416: it holds "
                f"{_header(answer, 'Range') or 'another amount of'} bytes)",
                hint="another client wrote to this upload, or a proxy dropped a chunk; run "
                "launch again. " + _hint(transport),
            )
        raise _push_error(transport, "PATCH", where, status, answer, body)
    return _next_location(transport, answer, f"PATCH {where}: the registry took the chunk", where)


def _next_location(transport: Transport, headers: Mapping[str, str], what: str, where: str) -> str:
    """The upload's next `Location` from an answer's headers, as a path for the transport."""
    location = _header(headers, "Location")
    if not location:
        raise RegistryError(f"{what} but sent no Location", hint=_HINT_REGISTRY + _hint(transport))
    return _upload_path(location, where, _hint(transport))


def _finish_upload(transport: Transport, target: str, digest: str, data: bytes, size: int) -> None:
    """`PUT <target>&digest=` with the last bytes (or none): commits the blob (201)."""
    target += ("&" if "?" in target else "?") + f"digest={digest}"
    headers = {"Content-Type": "application/octet-stream"}
    status, answer, body = transport.request("PUT", target, headers, data)
    where = f"{_describe(transport)}{target.split('?', 1)[0]}"
    if status != 201:
        if status == 400 and b"DIGEST_INVALID" in body:
            raise RegistryError(
                f"PUT {where}: the registry computed another digest than {digest} for the "
                f"{size} bytes sent ({_error_detail(body)})",
                hint="something between launch and the registry changed the upload; "
                + _hint(transport),
            )
        raise _push_error(transport, "PUT", where, status, answer, body)
    stored = _header(answer, DIGEST_HEADER)
    if stored is not None and stored.strip() != digest:
        raise RegistryError(
            f"PUT {where}: the registry stored the upload as {stored.strip()}, not {digest}",
            hint=_HINT_REGISTRY + _hint(transport),
        )


def _push_error(
    transport: Transport,
    method: str,
    where: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
) -> RegistryError:
    # Distribution registers no write handlers when read-only: the router answers 405.
    if status == 405:
        return RegistryError(
            f"{method} {where}: the registry does not accept pushes (405 "
            f"{_error_detail(body) or 'Method not allowed'}; allows "
            f"{_header(headers, 'Allow') or '?'})",
            hint=_HINT_READ_ONLY,
        )
    if status in (401, 403):
        verb = "requires authentication" if status == 401 else "refused the push"
        detail = _error_detail(body)
        return RegistryError(
            f"{method} {where}: the registry {verb} ({status}){': ' + detail if detail else ''}",
            hint=HINT_PUSH_AUTH,
        )
    return _status_error(transport, method, where, status, headers, body)


def _upload_path(location: str, where: str, hint: str) -> str:
    """The `/v2/...?...` part of an upload `Location`, to send through the transport again.

    It may be absolute (Distribution builds it from the request's Host), relative
    (`relativeurls`), or rewritten by the API server's service proxy into its own
    `/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/v2/...` URL.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    path = parts.path
    if not path.startswith("/v2/"):
        cut = path.find("/proxy/v2/")
        if cut < 0:
            raise RegistryError(
                f"{where}: unexpected upload Location {location!r}",
                hint=_HINT_REGISTRY + hint,
            )
        path = path[cut + len("/proxy") :]
    return f"{path}?{parts.query}" if parts.query else path


def put_manifest(
    *, repository: str, tag: str, media_type: str, data: bytes, transport: Transport
) -> str:
    """`PUT /v2/<repository>/manifests/<tag>` of `data` (`Content-Type: media_type`); returns its
    digest (sha256 of `data`; a `Docker-Content-Digest` that disagrees is an error).

    The registry checks that every blob the manifest names is in the repository: a missing one
    (400 MANIFEST_BLOB_UNKNOWN) is named in the error, with the likely cause (the dependency
    image was deleted and garbage-collected). 405: a read-only registry.
    """
    _check_names(repository, tag)
    digest = digest_of(data)
    path = f"/v2/{repository}/manifests/{tag}"
    where = f"{_describe(transport)}{path}"
    status, headers, body = transport.request("PUT", path, {"Content-Type": media_type}, data)
    if status == 400:
        codes = _error_codes(body)
        missing = codes.get("MANIFEST_BLOB_UNKNOWN") or codes.get("BLOB_UNKNOWN")
        if missing is not None:
            raise RegistryError(
                f"PUT {where}: the registry lacks blob {missing or '(not named)'} that the "
                "manifest uses",
                hint="the image it is made from was probably deleted from the registry (garbage "
                "collection); `--rebuild` builds it again",
            )
        if codes:
            detail = _error_detail(body)
            raise RegistryError(
                f"PUT {where}: the registry refused the manifest ({detail})",
                hint=f"launch composed an invalid {media_type} manifest: please report it",
            )
    if status != 201:
        raise _push_error(transport, "PUT", where, status, headers, body)
    stored = (_header(headers, DIGEST_HEADER) or "").strip()
    if stored and stored != digest:
        raise RegistryError(
            f"PUT {where}: the registry stored the manifest as {stored}, not {digest}",
            hint="something between launch and the registry changed it; " + _hint(transport),
        )
    return digest


def _error_codes(body: bytes) -> dict[str, str]:
    """{code: the digest its `detail` names, or ""} of a Distribution error body."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return {}
    codes: dict[str, str] = {}
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        detail = error.get("detail")
        # MANIFEST_BLOB_UNKNOWN's detail is the digest itself; BLOB_UNKNOWN's may be a dict.
        if isinstance(detail, dict):
            detail = detail.get("digest") or detail.get("Digest")
        codes.setdefault(str(error.get("code")), detail if isinstance(detail, str) else "")
    return codes


def mount_blob(*, repository: str, digest: str, source: str, transport: Transport) -> bool:
    """Link blob `digest` of repository `source` into `repository` without moving its bytes:
    `POST /v2/<repository>/blobs/uploads/?mount=<digest>&from=<source>`. True on 201 (mounted);
    False when the registry started an ordinary upload instead (202: it cannot mount), which is
    left to expire."""
    _check_names(repository, digest)
    _check_names(source, digest)
    path = f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}"
    where = f"{_describe(transport)}/v2/{repository}/blobs/uploads/"
    status, headers, body = transport.request("POST", path, {"Content-Length": "0"}, b"")
    if status == 201:
        return True
    if status == 202:
        return False
    raise _push_error(transport, "POST", where, status, headers, body)


def copy_image(*, source: str, repository: str, tag: str, digest: str, transport: Transport) -> str:
    """Put the image `source@digest` under `repository:tag`, byte for byte (same digest): its
    config and layers mounted across repositories, then its manifest. Returns the digest. A
    manifest whose bytes do not hash to `digest` is refused (by `get_manifest`) before anything
    is written: content addressing is what makes an image from an open repository safe."""
    from launch.registry import get_manifest

    media_type, body, _ = get_manifest(repository=source, reference=digest, transport=transport)
    manifest = json.loads(body)
    if "manifests" in manifest:
        raise RegistryError(
            f"{source}@{digest} is an image index; launch copies single-platform images only",
            hint="build for one platform (`platform` setting)",
        )
    blobs = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    for blob in blobs:
        blob_digest = str(blob.get("digest") or "")
        if blob_exists(repository=repository, digest=blob_digest, transport=transport):
            continue
        if not mount_blob(
            repository=repository, digest=blob_digest, source=source, transport=transport
        ):
            # Distribution mounts any blob its source repository links; the bytes (layers of
            # gigabytes) are not worth fetching here and pushing back.
            raise RegistryError(
                f"the registry would not mount {blob_digest[:19]} from {source} into {repository}",
                hint="was the build's image deleted from the registry meanwhile? run launch again",
            )
    return put_manifest(
        repository=repository, tag=tag, media_type=media_type, data=body, transport=transport
    )
