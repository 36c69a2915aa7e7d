"""The manifest and config of an image composed in the registry: a base (the dependency image)
plus one layer (the commit's source), without a build.

Pure: plain dicts, strings and bytes; no network, environment or clock. Imports only the
standard library and `launch.errors`. Facts are from the OCI image-spec (manifest.md,
image-index.md, config.md: `rootfs.diff_ids` lists the uncompressed layers' digests in manifest
order; `history` entries with `empty_layer` made no layer) and Docker's Image Manifest V2
Schema 2 and Image spec v1.2, which use the same fields under Docker media types.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from launch.errors import LaunchError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SCHEMA1_MANIFESTS = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
HISTORY_COMMENT = "launch: the commit's source"
# BuildKit puts provenance/SBOM attestations in the index as manifests with this annotation and
# the platform unknown/unknown (docs.docker.com/build/metadata/attestations/attestation-storage).
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
# Variants a platform without one means (containerd platforms.Normalize).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_REBUILD_HINT = "build the image with Kaniko instead (launch does so when it cannot compose)"


class ManifestError(LaunchError):
    """A manifest, index or config that launch cannot compose an image onto."""


def canonical_json(document: Any) -> bytes:
    """Deterministic bytes: the same document always gives the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse_platform(platform: str) -> tuple[str, str, str]:
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ManifestError(
            f"platform {platform!r} is not os/architecture[/variant]",
            hint='name a platform like "linux/amd64" or "linux/arm64/v8"',
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def _platform_name(platform: Mapping[str, Any]) -> str:
    name = f"{platform.get('os', '?')}/{platform.get('architecture', '?')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


def platform_descriptor(index: Mapping[str, Any], platform: str) -> dict[str, Any]:
    """The descriptor of `platform` ("linux/amd64", "linux/arm64/v8") in an OCI index or a
    Docker manifest list, attestation manifests skipped. A copy: the index is left untouched.

    Without a variant, the architecture's default variant (arm64: v8, arm: v7) or none is
    preferred; arm64 with and without "v8" are the same platform.
    """
    media_type = index.get("mediaType")
    manifests = index.get("manifests")
    if media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST, None) or not isinstance(manifests, list):
        raise ManifestError(
            f"expected an image index or manifest list, got {media_type or 'a document'} "
            "without a `manifests` list",
            hint=_REBUILD_HINT,
        )
    want_os, want_arch, want_variant = _parse_platform(platform)
    default = _DEFAULT_VARIANT.get(want_arch, "")
    present: list[str] = []
    matches: list[tuple[int, dict[str, Any]]] = []
    for descriptor in manifests:
        if not isinstance(descriptor, Mapping):
            continue
        annotations = descriptor.get("annotations") or {}
        described = descriptor.get("platform") or {}
        if annotations.get(_ATTESTATION_ANNOTATION) == "attestation-manifest" or (
            described.get("os") == "unknown" and described.get("architecture") == "unknown"
        ):
            continue
        present.append(_platform_name(described))
        if (described.get("os"), described.get("architecture")) != (want_os, want_arch):
            continue
        variant = described.get("variant") or ""
        if want_variant:
            if (variant or default) == want_variant:
                matches.append((0, dict(copy.deepcopy(descriptor))))
        else:
            rank = 0 if variant in ("", default) else 1
            matches.append((rank, dict(copy.deepcopy(descriptor))))
    if not matches:
        raise ManifestError(
            f"the image has no {platform} manifest; it has: {', '.join(present) or 'none'}",
            hint="build the dependency image for this platform, or pick a node of one it has",
        )
    return min(matches, key=lambda match: match[0])[1]


def layer_media_type(manifest_media_type: str) -> str:
    """The media type of a gzipped layer in a manifest of `manifest_media_type`."""
    if manifest_media_type == DOCKER_MANIFEST:
        return DOCKER_LAYER
    if manifest_media_type == OCI_MANIFEST:
        return OCI_LAYER
    raise _unsupported(manifest_media_type)


def _unsupported(media_type: str) -> ManifestError:
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        return ManifestError(
            f"got an image index ({media_type}) where an image manifest was expected",
            hint="resolve the index to one platform's manifest first (platform_descriptor)",
        )
    if media_type in SCHEMA1_MANIFESTS:
        return ManifestError(
            f"the dependency image has a Docker schema 1 manifest ({media_type})",
            hint="push it again with a current builder (Kaniko, docker, skopeo write schema 2); "
            + _REBUILD_HINT,
        )
    return ManifestError(
        f"unsupported manifest media type {media_type!r}: launch composes onto Docker schema 2 "
        "and OCI image manifests only",
        hint=_REBUILD_HINT,
    )


def layer_diff_ids(config: Mapping[str, Any]) -> list[str]:
    """The config's `rootfs.diff_ids` (bottom layer first); ManifestError when malformed."""
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, Mapping) or rootfs.get("type") != "layers":
        raise ManifestError("the image config has no `rootfs` of type `layers`", hint=_REBUILD_HINT)
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and d.startswith("sha256:") for d in diff_ids
    ):
        raise ManifestError(
            "the image config's `rootfs.diff_ids` is not a list of sha256 digests",
            hint=_REBUILD_HINT,
        )
    return list(diff_ids)


def labels_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The image's labels (`config.Labels`; missing or null: none)."""
    inner = config.get("config") or {}
    labels = inner.get("Labels") if isinstance(inner, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(key): str(value) for key, value in labels.items()}


@dataclass(frozen=True)
class Composed:
    """The new image's config and manifest, as the bytes to push and their digests."""

    config: bytes  # canonical JSON of the new config
    config_digest: str
    manifest: bytes  # canonical JSON of the new manifest
    manifest_digest: str
    media_type: str  # the manifest's media type (the base manifest's)


def _check_manifest(manifest: Mapping[str, Any], media_type: str) -> list[Any]:
    """The base manifest's layers, after checking it is one launch can extend."""
    layer_media_type(media_type)  # refuses indexes, schema 1 and unknown types
    if manifest.get("mediaType", media_type) != media_type:
        raise ManifestError(
            f"the manifest says it is {manifest.get('mediaType')}, the registry said {media_type}",
            hint=_REBUILD_HINT,
        )
    if manifest.get("schemaVersion") != 2:
        raise ManifestError(
            f"the image manifest has schemaVersion {manifest.get('schemaVersion')!r}, not 2",
            hint=_REBUILD_HINT,
        )
    config = manifest.get("config")
    layers = manifest.get("layers")
    if (
        not isinstance(config, Mapping)
        or not isinstance(config.get("mediaType"), str)
        or not isinstance(layers, list)
    ):
        raise ManifestError(
            "the image manifest lacks a `config` descriptor or a `layers` list",
            hint=_REBUILD_HINT,
        )
    return layers


def compose(
    *,
    manifest: Mapping[str, Any],
    media_type: str,
    config: Mapping[str, Any],
    layer_digest: str,
    diff_id: str,
    layer_size: int,
    labels: Mapping[str, str],
    created_by: str,
    created: str | None,
) -> Composed:
    """The base image (`manifest` of `media_type`, its `config` already carrying the Dockerfile's
    metadata) with one more gzipped layer on top, labelled. The inputs are not modified.

    History: one entry for the new layer, appended only where the base keeps a history (or has
    no layers): a history that stops short of the layers would pair entries with wrong layers.
    `created` (RFC 3339) also becomes the image's creation time; None keeps the base's.
    """
    base_layers = _check_manifest(manifest, media_type)
    diff_ids = layer_diff_ids(config)
    if len(diff_ids) != len(base_layers):
        raise ManifestError(
            f"the image config lists {len(diff_ids)} layers (rootfs.diff_ids), its manifest "
            f"{len(base_layers)}",
            hint=_REBUILD_HINT,
        )
    new_config = copy.deepcopy(dict(config))
    new_config["rootfs"]["diff_ids"] = [*diff_ids, diff_id]
    if labels:
        inner = new_config.get("config")
        if not isinstance(inner, dict):  # OCI allows no `config`; Docker writes null
            inner = new_config["config"] = {}
        merged = labels_of(new_config)
        merged.update(labels)
        inner["Labels"] = merged
    history = new_config.get("history")
    if history is None and not base_layers:
        history = new_config["history"] = []
    if isinstance(history, list) and (history or not base_layers):
        entry: dict[str, Any] = {"created_by": created_by, "comment": HISTORY_COMMENT}
        if created is not None:
            entry["created"] = created
        history.append(entry)
    if created is not None:
        new_config["created"] = created
    config_bytes = canonical_json(new_config)
    config_digest = sha256_digest(config_bytes)

    new_manifest = copy.deepcopy(dict(manifest))
    # A `subject` says "this manifest refers to that one" (signatures, SBOMs): not true of ours.
    new_manifest.pop("subject", None)
    new_manifest["config"]["digest"] = config_digest
    new_manifest["config"]["size"] = len(config_bytes)
    new_manifest["layers"].append(
        {"mediaType": layer_media_type(media_type), "size": layer_size, "digest": layer_digest}
    )
    manifest_bytes = canonical_json(new_manifest)
    return Composed(
        config=config_bytes,
        config_digest=config_digest,
        manifest=manifest_bytes,
        manifest_digest=sha256_digest(manifest_bytes),
        media_type=media_type,
    )
