"""The record of images a clone made (`launch.image_trust`): what it matches and how it is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from launch.image_trust import Record, TrustStore, ref

DIGEST = "sha256:" + "a" * 64
REF = ref("registry.launch-system.svc.cluster.local:5000", "proj", "0" * 40)


def test_a_record_matches_only_what_it_was_made_for(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "home")
    assert store.get(REF, key="k1", platform="linux/amd64") is None
    store.put(REF, Record(DIGEST, "k1", "linux/amd64"))
    assert store.get(REF, key="k1", platform="linux/amd64") == DIGEST
    assert store.get(REF, key="k2", platform="linux/amd64") is None  # another dependency part
    assert store.get(REF, key="k1", platform="linux/arm64") is None
    assert store.get(REF.replace("proj", "other"), key="k1", platform="linux/amd64") is None
    store.forget(REF)
    assert store.get(REF, key="k1", platform="linux/amd64") is None


def test_the_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        TrustStore(tmp_path / "home").put(REF, Record(DIGEST, "", "linux/amd64"))
    finally:
        os.umask(old)
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "home" / "images.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "text",
    ["{not json", '["a list"]', '{"images": {"x": 1}}',
     json.dumps({"images": {REF: {"digest": "md5:1", "key": "", "platform": "linux/amd64"}}})],
)  # fmt: skip
def test_a_damaged_file_only_means_building_again(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "images.json").write_text(text)
    store = TrustStore(tmp_path)
    assert store.get(REF, key="", platform="linux/amd64") is None
    store.put(REF, Record(DIGEST, "", "linux/amd64"))  # rewritten whole, readable again
    assert store.get(REF, key="", platform="linux/amd64") == DIGEST
    if text.startswith("{not"):
        assert "unreadable" in capsys.readouterr().err
