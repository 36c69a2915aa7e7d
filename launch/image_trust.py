"""The images this clone's launches made: `<home>/images.json`, the digests launch may reuse
without trusting a registry tag.

Anyone who can push to the registry can move a tag (the service proxy cannot tell users apart,
docs/cluster-setup.md), but nobody can change what a digest names. So with `image_trust =
local` (the default) launch reuses an image only by a digest it recorded here when it built or
composed that image itself, and builds again when it has none: another user's tag is never
run. A record says what it was made for (`key`: the dependency key of a composed image, `""`
for a Kaniko build; the platform), so a changed Dockerfile or platform does not match it.

The file is private (0600 in the 0700 home, `launch.private`) and written atomically; a
record lost to two launches writing at once only costs a build. An unreadable file is read as
empty (said once): it can only make launch build more, never reuse something else.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import private

FILE = "images.json"
FORMAT = 1


@dataclass(frozen=True)
class Record:
    digest: str
    key: str  # the dependency key of a composed image; "" for a whole-image Kaniko build
    platform: str


class TrustStore:
    """`<home>/images.json`: `"<registry>/<repository>:<tag>"` -> `Record`."""

    def __init__(self, home: Path) -> None:
        self.path = home / FILE

    def get(self, ref: str, *, key: str, platform: str) -> str | None:
        """The digest recorded for `ref` made for `key` and `platform`, or None."""
        entry = self._read().get(ref)
        if not isinstance(entry, dict):
            return None
        if entry.get("key") != key or entry.get("platform") != platform:
            return None
        digest = entry.get("digest")
        return digest if isinstance(digest, str) and digest.startswith("sha256:") else None

    def put(self, ref: str, record: Record) -> None:
        """Record (or replace) what `ref` was made as."""
        images = self._read()
        images[ref] = {"digest": record.digest, "key": record.key, "platform": record.platform}
        private.mkdir(self.path.parent, parents=True)
        self._write(images)

    def forget(self, ref: str) -> None:
        """Drop `ref` (its digest is gone from the registry)."""
        images = self._read()
        if images.pop(ref, None) is not None:
            self._write(images)

    def _write(self, images: dict[str, Any]) -> None:
        data = json.dumps({"format": FORMAT, "images": images}, indent=1, sort_keys=True)
        private.write_atomic(self.path, (data + "\n").encode())

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            print(f"warning: {self.path}: unreadable ({exc}); images are built again",
                  file=sys.stderr)  # fmt: skip
            return {}
        images = doc.get("images") if isinstance(doc, dict) else None
        return dict(images) if isinstance(images, dict) else {}


def ref(registry: str, repository: str, tag: str) -> str:
    """The record's name: where the image lives and the tag it was pushed under."""
    return f"{registry}/{repository}:{tag}"
