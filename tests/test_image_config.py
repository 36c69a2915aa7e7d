"""launch.image_config: composing a base image plus one layer, checked against a real CNCF
Distribution registry (`/usr/bin/docker-registry`) and skopeo, which verifies what it copies.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from launch.image_config import (
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    HISTORY_COMMENT,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Composed,
    ManifestError,
    compose,
    labels_of,
    layer_diff_ids,
    layer_media_type,
    platform_descriptor,
)
from launch.source_layer import Entry, Layer, write_layer
from tests.registry_server import (
    push_blob,
    push_index,
    push_manifest,
    running_registry,
    tiny_image,
)

SKOPEO = shutil.which("skopeo") or ""
needs_skopeo = pytest.mark.skipif(not SKOPEO, reason="skopeo not installed (apt install skopeo)")
SOURCE = {"train.py": b"print('hi')\n", "pkg/model.py": b"M = 1\n"}
CREATED = "2026-01-02T03:04:05Z"


def source_layer() -> tuple[bytes, Layer]:
    out = io.BytesIO()
    entries = [Entry(path, 0o100644, len(data), path) for path, data in SOURCE.items()]
    layer = write_layer(entries, lambda e: SOURCE[e.key], dest="/app", out=out, mtime=1)
    return out.getvalue(), layer


def compose_onto(
    manifest: dict[str, Any],
    config: dict[str, Any],
    media_type: str,
    layer: Layer,
    *,
    labels: dict[str, str] | None = None,
    created: str | None = CREATED,
) -> Composed:
    return compose(
        manifest=manifest,
        media_type=media_type,
        config=config,
        layer_digest=layer.digest,
        diff_id=layer.diff_id,
        layer_size=layer.size,
        labels=labels if labels is not None else {"launch.commit": "abc123"},
        created_by="COPY . /app # launch",
        created=created,
    )


def base(*, oci: bool, history: bool = True) -> tuple[dict[str, Any], dict[str, Any], str]:
    image = tiny_image(oci=oci, labels={"team": "ml"})
    config = json.loads(image.config)
    if history:
        config["history"] = [
            {"created_by": "base layer"},
            {"created_by": "ENV A=1", "empty_layer": True},
        ]
    return json.loads(image.manifest), config, image.media_type


def skopeo(*args: str) -> str:
    result = subprocess.run(
        [SKOPEO, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@needs_skopeo
@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci"])
def test_a_composed_image_is_accepted_and_verifies(tmp_path: Path, oci: bool) -> None:
    image = tiny_image(oci=oci, labels={"team": "ml"})
    manifest, config, media_type = (
        json.loads(image.manifest),
        json.loads(image.config),
        image.media_type,
    )
    config["history"] = [{"created_by": "base layer"}]
    config["config"]["Env"] = ["PATH=/usr/bin"]  # what the caller sets from the Dockerfile
    blob, layer = source_layer()
    composed = compose_onto(manifest, config, media_type, layer)
    with running_registry(tmp_path) as registry:
        repo = "team/app"
        push_blob(registry.url, repo, image.layer)
        push_blob(registry.url, repo, blob)
        push_blob(registry.url, repo, composed.config)
        digest = push_manifest(registry.url, repo, "v1", composed.manifest, composed.media_type)
        assert digest == composed.manifest_digest
        ref = f"docker://{registry.host}/{repo}:v1"
        raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", ref))
        assert raw["mediaType"] == media_type
        assert [layer["mediaType"] for layer in raw["layers"]] == [
            OCI_LAYER if oci else DOCKER_LAYER
        ] * 2
        assert raw["layers"][-1] == {
            "mediaType": raw["layers"][0]["mediaType"],
            "size": layer.size,
            "digest": layer.digest,
        }
        raw_config = skopeo("inspect", "--tls-verify=false", "--config", "--raw", ref)
        assert raw_config.encode() == composed.config
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref))
        assert inspected["Labels"] == {"team": "ml", "launch.commit": "abc123"}
        assert len(inspected["Layers"]) == 2 and inspected["Created"].startswith("2026-01-02")
        # skopeo checks every blob's digest on the way; the layout then holds the image.
        layout = tmp_path / "layout"
        skopeo("copy", "--src-tls-verify=false", ref, f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    oci_manifest = json.loads(blob_of(layout, index["manifests"][0]["digest"]))
    oci_config = json.loads(blob_of(layout, oci_manifest["config"]["digest"]))
    top = blob_of(layout, oci_manifest["layers"][-1]["digest"])
    assert (
        "sha256:" + hashlib.sha256(gzip.decompress(top)).hexdigest()
        == oci_config["rootfs"]["diff_ids"][-1]
    )
    assert oci_config["rootfs"]["diff_ids"] == [
        *json.loads(image.config)["rootfs"]["diff_ids"],
        layer.diff_id,
    ]
    with tarfile.open(fileobj=io.BytesIO(top), mode="r:gz") as tar:
        tar.extractall(tmp_path / "rootfs", filter="tar")
    for path, data in SOURCE.items():
        assert (tmp_path / "rootfs" / "app" / path).read_bytes() == data


def blob_of(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


@pytest.mark.parametrize("oci", [False, True], ids=["docker-v2", "oci"])
def test_compose_config_and_manifest(oci: bool) -> None:
    manifest, config, media_type = base(oci=oci)
    _, layer = source_layer()
    composed = compose_onto(manifest, config, media_type, layer)
    new_config = json.loads(composed.config)
    new_manifest = json.loads(composed.manifest)
    assert composed.config_digest == "sha256:" + hashlib.sha256(composed.config).hexdigest()
    assert composed.manifest_digest == "sha256:" + hashlib.sha256(composed.manifest).hexdigest()
    assert composed.media_type == media_type
    assert layer_diff_ids(new_config) == [*config["rootfs"]["diff_ids"], layer.diff_id]
    assert labels_of(new_config) == {"team": "ml", "launch.commit": "abc123"}
    assert new_config["history"][-1] == {
        "created": CREATED, "created_by": "COPY . /app # launch", "comment": HISTORY_COMMENT
    }  # fmt: skip
    assert new_config["created"] == CREATED
    assert new_manifest["config"] == {
        "mediaType": manifest["config"]["mediaType"],
        "digest": composed.config_digest,
        "size": len(composed.config),
    }
    assert new_manifest["layers"][:-1] == manifest["layers"]
    assert new_manifest["layers"][-1] == {
        "mediaType": layer_media_type(media_type), "size": layer.size, "digest": layer.digest
    }  # fmt: skip
    assert composed.config == json.dumps(new_config, sort_keys=True, separators=(",", ":")).encode()


def test_same_inputs_same_digests_and_inputs_untouched() -> None:
    manifest, config, media_type = base(oci=True)
    manifest["annotations"] = {"org.opencontainers.image.source": "https://example.com/x"}
    manifest["subject"] = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 1}
    before = copy.deepcopy((manifest, config))
    _, layer = source_layer()
    first = compose_onto(manifest, config, media_type, layer)
    assert (manifest, config) == before
    assert compose_onto(manifest, config, media_type, layer) == first
    new_manifest = json.loads(first.manifest)
    assert "subject" not in new_manifest
    assert new_manifest["annotations"] == manifest["annotations"]
    assert compose_onto(manifest, config, media_type, layer, labels={"x": "y"}) != first


def test_created_none_keeps_the_base_time() -> None:
    manifest, config, media_type = base(oci=False)
    config["created"] = "2020-01-01T00:00:00Z"
    _, layer = source_layer()
    new_config = json.loads(compose_onto(manifest, config, media_type, layer, created=None).config)
    assert new_config["created"] == "2020-01-01T00:00:00Z"
    assert "created" not in new_config["history"][-1]


def test_no_history_is_added_to_a_base_without_one() -> None:
    # Appending one entry would pair it with the base's first layer.
    manifest, config, media_type = base(oci=False, history=False)
    _, layer = source_layer()
    new_config = json.loads(compose_onto(manifest, config, media_type, layer).config)
    assert "history" not in new_config


def test_labels_where_the_base_has_none() -> None:
    manifest, config, media_type = base(oci=True)
    config.pop("config")
    _, layer = source_layer()
    new_config = json.loads(compose_onto(manifest, config, media_type, layer).config)
    assert labels_of(new_config) == {"launch.commit": "abc123"}
    config["config"] = {"Labels": None}
    assert labels_of(config) == {}
    new_config = json.loads(compose_onto(manifest, config, media_type, layer, labels={}).config)
    assert new_config["config"] == {"Labels": None}  # nothing to add: left as it was


def test_mismatched_diff_ids_are_refused() -> None:
    manifest, config, media_type = base(oci=False)
    config["rootfs"]["diff_ids"].append("sha256:" + "1" * 64)
    _, layer = source_layer()
    with pytest.raises(ManifestError, match=r"2 layers .* its manifest 1") as caught:
        compose_onto(manifest, config, media_type, layer)
    assert caught.value.hint
    config["rootfs"] = {"type": "layers", "diff_ids": "nope"}
    with pytest.raises(ManifestError, match="diff_ids"):
        compose_onto(manifest, config, media_type, layer)
    config.pop("rootfs")
    with pytest.raises(ManifestError, match="rootfs"):
        compose_onto(manifest, config, media_type, layer)


@pytest.mark.parametrize(
    ("media_type", "match"),
    [
        (OCI_INDEX, "index"),
        (DOCKER_MANIFEST_LIST, "index"),
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
        ("application/vnd.docker.distribution.manifest.v1+json", "schema 1"),
        ("application/json", "unsupported"),
    ],
)
def test_unknown_media_types_are_refused(media_type: str, match: str) -> None:
    manifest, config, _ = base(oci=False)
    _, layer = source_layer()
    with pytest.raises(ManifestError, match=match) as caught:
        compose_onto(manifest, config, media_type, layer)
    assert caught.value.hint
    with pytest.raises(ManifestError, match=match):
        layer_media_type(media_type)


def test_malformed_manifests_are_refused() -> None:
    manifest, config, media_type = base(oci=False)
    _, layer = source_layer()
    with pytest.raises(ManifestError, match="says it is"):
        compose_onto(manifest, config, OCI_MANIFEST, layer)
    for broken in ({"schemaVersion": 1}, {"config": None}, {"layers": None}):
        with pytest.raises(ManifestError):
            compose_onto({**manifest, **broken}, config, media_type, layer)


def test_an_oci_manifest_without_media_type_field() -> None:
    manifest, config, _ = base(oci=True)
    manifest.pop("mediaType")
    _, layer = source_layer()
    composed = compose_onto(manifest, config, OCI_MANIFEST, layer)
    assert json.loads(composed.manifest)["layers"][-1]["mediaType"] == OCI_LAYER


def hand_made_index(media_type: str = OCI_INDEX) -> dict[str, Any]:
    def descriptor(platform: dict[str, str], n: str, **annotations: str) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + n * 64, "size": 1}
        out["platform"] = platform
        if annotations:
            out["annotations"] = annotations
        return out

    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor({"os": "linux", "architecture": "amd64"}, "1"),
            descriptor({"os": "linux", "architecture": "arm", "variant": "v6"}, "2"),
            descriptor({"os": "linux", "architecture": "arm", "variant": "v7"}, "3"),
            descriptor({"os": "linux", "architecture": "arm64", "variant": "v8"}, "4"),
            descriptor(
                {"os": "unknown", "architecture": "unknown"},
                "5",
                **{
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": "sha256:" + "1" * 64,
                },
            ),
        ],
    }


def test_platform_selection_from_an_index() -> None:
    index = hand_made_index()
    before = copy.deepcopy(index)
    assert platform_descriptor(index, "linux/amd64")["digest"].endswith("1" * 64)
    assert platform_descriptor(index, "linux/arm64")["digest"].endswith("4" * 64)
    assert platform_descriptor(index, "linux/arm64/v8")["digest"].endswith("4" * 64)
    assert platform_descriptor(index, "linux/arm")["digest"].endswith("3" * 64)
    assert platform_descriptor(index, "linux/arm/v6")["digest"].endswith("2" * 64)
    assert index == before
    platform_descriptor(index, "linux/amd64")["platform"]["os"] = "changed"
    assert index == before


def test_a_missing_platform_names_those_present() -> None:
    with pytest.raises(ManifestError) as caught:
        platform_descriptor(hand_made_index(DOCKER_MANIFEST_LIST), "linux/s390x")
    assert "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8" in caught.value.message
    assert "unknown" not in caught.value.message  # the attestation is not a platform
    with pytest.raises(ManifestError, match="no linux/arm/v5"):
        platform_descriptor(hand_made_index(), "linux/arm/v5")
    with pytest.raises(ManifestError, match="not os/architecture"):
        platform_descriptor(hand_made_index(), "amd64")
    with pytest.raises(ManifestError, match="expected an image index"):
        platform_descriptor({"mediaType": DOCKER_MANIFEST, "layers": []}, "linux/amd64")


@pytest.mark.parametrize("oci", [False, True], ids=["docker-list", "oci-index"])
def test_platform_selection_from_a_pushed_index(tmp_path: Path, oci: bool) -> None:
    import requests

    with running_registry(tmp_path) as registry:
        _, per_arch = push_index(registry.url, "multi/app", "v1", oci=oci)
        accept = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
        response = requests.get(
            f"{registry.url}/v2/multi/app/manifests/v1", headers={"Accept": accept}, timeout=10
        )
        index = response.json()
    assert platform_descriptor(index, "linux/arm64")["digest"] == per_arch["arm64"]
    assert platform_descriptor(index, "linux/amd64")["digest"] == per_arch["amd64"]
