"""The fast image path: a commit's image composed in the registry, no Kaniko build.

An image is two parts. The *dependency image* is the Dockerfile up to its final source copy
(`COPY . <dir>`), built by Kaniko from an uploaded context (that truncated Dockerfile and the
files its earlier COPY/ADD read), tagged `deps-<key>` where the key hashes exactly those inputs
plus the platform: it is built again only when they change. The commit's image is that image's
manifest and config plus one layer, a reproducible tar of the commit's files under the copy's
destination (`launch.source_layer`), with the metadata-only instructions after the copy applied
to the config (`launch.dockerfile.apply`). So a code change costs one layer upload, a config
blob and a manifest PUT: seconds, no Job.

`choose` decides the path (pure apart from reading git); `compose_image` talks to the registry.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import dockerfile as df
from launch import dockerfile_config, git_files, image_config, registry, registry_push, source_layer
from launch.dockerignore import DockerIgnore
from launch.errors import UsageError
from launch.source_layer import Entry

BUILD_MODES = ("auto", "compose", "kaniko")
# What launch composed, on the image's config (so launch and a person can tell what it holds).
DEPENDENCY_LABEL = "dev.launch.dependencies"  # the dependency key
SOURCE_DIR_LABEL = "dev.launch.source-dir"  # where the source layer put the files
# Bumped when the dependency context or the layer format changes: old keys stop matching.
FORMAT = "launch-compose/1"
LARGE_LAYER_BYTES = 50_000_000  # above this the upload warns and names the largest files
DEPENDENCY_TAG_PREFIX = "deps-"

Report = Callable[[str, str], None]


def _quiet(level: str, text: str) -> None:
    """The default reporter says nothing."""


@dataclass(frozen=True)
class Choice:
    """How a launch makes its image, for the launch itself and for `render`/`--dry-run`."""

    path: str  # "compose" or "kaniko"
    why: str | None = None  # kaniko in auto mode: the one line that says why, and how to reorder
    key: str | None = None  # compose: the dependency key (sha256 hex)
    context: bytes | None = None  # compose: the dependency build context (tar.gz)
    split: df.Split | None = None
    source: tuple[Entry, ...] = ()  # compose: the files of the source copy (.dockerignore applied)
    treeish: str = ""
    mtime: int = 0  # the layer's file times: the commit's time (0 for a working tree)

    @property
    def dependency_tag(self) -> str:
        assert self.key is not None
        return f"{DEPENDENCY_TAG_PREFIX}{self.key}"

    def describe(self) -> str:
        """One line for the narration and the preview."""
        if self.path == "kaniko":
            return "a full Kaniko build" + (f" ({self.why})" if self.why else "")
        assert self.split is not None and self.key is not None
        size = sum(e.size for e in self.source)
        copy = self.split.copy
        return (
            f"composed in the registry: dependency image {self.dependency_tag[:17]} (the "
            f"Dockerfile before line {copy.line}) + one layer of {len(self.source)} files "
            f"({size / 1e6:.1f} MB) for `{copy.keyword} . {copy.dest}`"
        )

    def as_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path}
        if self.why:
            doc["why"] = self.why
        if self.key is not None and self.split is not None:
            doc["dependencyKey"] = self.key
            doc["dependencyTag"] = self.dependency_tag
            doc["sourceCopy"] = {"line": self.split.copy.line, "dest": self.split.copy.dest}
            doc["sourceFiles"] = len(self.source)
            doc["sourceBytes"] = sum(e.size for e in self.source)
        return doc


def choose(
    root: Path,
    treeish: str,
    *,
    context_dir: str | None,
    dockerfile: str,
    mode: str,
    platform: str,
    mtime: int = 0,
) -> Choice:
    """Which path builds `treeish` (a commit, or a working tree's tree hash), and, for the fast
    path, the dependency context and key. `mode` is the `--build` setting: `kaniko` always
    builds, `compose` refuses (UsageError, exit 2) what it cannot compose, `auto` falls back to
    Kaniko with the reason."""
    if mode not in BUILD_MODES:
        raise UsageError(
            f"--build {mode!r}: not one of {', '.join(BUILD_MODES)}",
            hint="auto composes the image in the registry when the Dockerfile allows it",
        )
    if mode == "kaniko":
        return Choice("kaniko", treeish=treeish)
    base = (context_dir or "").strip("/")
    path = f"{base}/{dockerfile}" if base else dockerfile
    text = git_files.read_file(root, treeish, path)
    if text is None:
        absent = f"{path} does not exist in {treeish[:12]}"
        if mode == "compose":
            raise UsageError(
                absent, hint="commit it, or pass --dockerfile PATH (relative to --context)"
            )
        # `render` still shows the plan; a launch refuses it before anything is created.
        return Choice("kaniko", why=absent, treeish=treeish)
    try:
        split = df.split(text.decode(errors="replace"), path=path)
    except df.DockerfileError as err:
        if mode == "compose":
            raise
        return Choice("kaniko", why=f"launch cannot read {err.message}", treeish=treeish)
    if isinstance(split, df.Unsplittable):
        if mode == "compose":
            raise UsageError(f"--build compose: {split.reason}", hint=split.hint)
        return Choice("kaniko", why=f"{split.reason}; {split.hint}", treeish=treeish)
    files = _context_files(root, treeish, base, path)
    by_path = {e.path: e for e in files}
    matches = df.sources_matching(split.inputs, sorted(by_path))
    missing = df.unmatched(matches)
    if missing:
        line = split.input_lines.get(missing[0], 0)
        raise UsageError(
            f"{path}:{line}: COPY {missing[0]}: no such file in {treeish[:12]} (or .dockerignore "
            "leaves it out)",
            hint="commit the file, or fix the path in the Dockerfile (relative to the context)",
        )
    inputs = sorted({p for found in matches.values() for p in found})
    context, diff_id = _dependency_context(root, split, dockerfile, [by_path[p] for p in inputs])
    key = hashlib.sha256("\n".join((FORMAT, platform, dockerfile, diff_id)).encode()).hexdigest()
    return Choice(
        "compose", key=key, context=context, split=split, source=tuple(files),
        treeish=treeish, mtime=mtime,
    )  # fmt: skip


def _context_files(root: Path, treeish: str, base: str, dockerfile: str) -> list[Entry]:
    """The files of the build context (`base` of `treeish`) that a Docker build sees: less what
    `<Dockerfile>.dockerignore` (BuildKit's per-Dockerfile file) or `.dockerignore` excludes."""
    tree = git_files.list_tree(root, treeish, base)
    rules_text = git_files.read_file(root, treeish, f"{dockerfile}.dockerignore")
    if rules_text is None:
        rules_text = git_files.read_file(
            root, treeish, f"{base}/.dockerignore" if base else ".dockerignore"
        )
    if rules_text is None:
        return list(tree.entries)
    rules = DockerIgnore(rules_text.decode(errors="replace"))
    return [e for e in tree.entries if not rules.excludes(e.path)]


def _dependency_context(
    root: Path, split: df.Split, dockerfile: str, inputs: Sequence[Entry]
) -> tuple[bytes, str]:
    """The dependency build's context, a deterministic tar.gz (the same inputs upload the same
    blob): the truncated Dockerfile at its path, and the files the earlier COPY/ADD read."""
    text = split.dependency_dockerfile.encode()
    marker = Entry(path=dockerfile, mode=0o100644, size=len(text), key="")
    entries = [e for e in inputs if e.path != dockerfile] + [marker]
    out = io.BytesIO()
    with git_files.blob_reader(root) as read:
        layer = source_layer.write_layer(
            entries, lambda e: text if e is marker else read(e), dest="/", out=out
        )
    return out.getvalue(), layer.diff_id


# --------------------------------------------------------------------------- the registry part


@dataclass(frozen=True)
class Composed:
    digest: str  # the manifest's, what trials pin
    layer_bytes: int
    uploaded_bytes: int
    seconds: float


def compose_image(
    *,
    root: Path,
    choice: Choice,
    transport: registry.Transport,
    repository: str,
    tag: str,
    dependency_digest: str,
    platform: str,
    report: Report = _quiet,
    now: Callable[[], float] = time.monotonic,
) -> Composed:
    """Put `<repository>:<tag>` together from the dependency image `dependency_digest`: GET its
    manifest (a platform's, for an index) and config, upload the source layer and the new config
    (each only when the registry lacks it), PUT the manifest. `image_config.ManifestError` for a
    dependency image launch cannot compose onto."""
    assert choice.split is not None and choice.key is not None
    start = now()
    media_type, body, _ = registry.get_manifest(
        repository=repository, reference=dependency_digest, transport=transport
    )
    manifest = _json(body)
    if media_type in (registry.OCI_INDEX, registry.DOCKER_MANIFEST_LIST):
        chosen = image_config.platform_descriptor(manifest, platform)
        media_type, body, _ = registry.get_manifest(
            repository=repository, reference=chosen["digest"], transport=transport
        )
        manifest = _json(body)
    image_config.layer_media_type(media_type)  # refuses what it cannot extend, before uploading
    config = _json(
        registry.get_blob(
            repository=repository, digest=manifest["config"]["digest"], transport=transport
        )
    )
    args = dockerfile_config.arg_values(choice.split.stage_args, {})
    dest = dockerfile_config.resolve_dest(choice.split.copy, config, args)
    with tempfile.TemporaryDirectory(prefix="launch-layer-") as tmp:
        path = Path(tmp) / "layer.tar.gz"
        with path.open("wb") as out:
            layer = write_source_layer(root, choice, dest, out)
        if layer.size > LARGE_LAYER_BYTES:
            report("warn", _large_layer_text(layer.size, choice.source))
        shown = f"{layer.size / 1e6:.1f} MB"
        uploaded = registry_push.upload_file(
            repository=repository, path=path, digest=layer.digest, size=layer.size,
            transport=transport,
            progress=lambda sent, size: report(
                "progress", f"uploading the source layer: {sent / 1e6:.1f}/{size / 1e6:.1f} MB"
            ),
        )  # fmt: skip
    new_config = dockerfile_config.apply(
        config, choice.split.after, args, cmd_set=choice.split.cmd_set
    )
    labels = {
        DEPENDENCY_LABEL: choice.key,
        SOURCE_DIR_LABEL: dest,
        "org.opencontainers.image.revision": tag,
    }
    composed = image_config.compose(
        manifest=manifest, media_type=media_type, config=new_config, layer_digest=layer.digest,
        diff_id=layer.diff_id, layer_size=layer.size, labels=labels,
        created_by=f"launch: {choice.split.copy.keyword} . {dest} ({tag[:12]})",
        created=_iso(choice.mtime) if choice.mtime else None,
    )  # fmt: skip
    registry_push.upload_blob(repository=repository, data=composed.config, transport=transport)
    digest = registry_push.put_manifest(
        repository=repository, tag=tag, media_type=composed.media_type, data=composed.manifest,
        transport=transport,
    )  # fmt: skip
    sent = layer.size if uploaded else 0
    report(
        "info",
        f"composed image {repository}:{tag[:12]} in the registry ({shown} source layer"
        + ("" if uploaded else ", already there")
        + f", {now() - start:.1f}s): no build",
    )
    return Composed(digest, layer.size, sent, now() - start)


def write_source_layer(root: Path, choice: Choice, dest: str, out: Any) -> source_layer.Layer:
    """The source layer of `choice` at `dest`, written to `out` (a null sink just hashes)."""
    assert choice.split is not None
    copy = choice.split.copy
    uid, gid = copy.chown if copy.chown is not None else (0, 0)
    with git_files.blob_reader(root) as read:
        return source_layer.write_layer(
            choice.source, read, dest=dest, out=out, uid=uid, gid=gid, chmod=copy.chmod,
            mtime=choice.mtime,
        )  # fmt: skip


def matches_image(root: Path, choice: Choice, config: Mapping[str, Any]) -> str | None:
    """Why an image that says it is this commit is not what composing it here gives (its
    dependency key or its source layer differ), or None when it is. Images Kaniko built (no
    dependency label) are judged by their revision label alone (`build.reusable`)."""
    labels = image_config.labels_of(config)
    key = labels.get(DEPENDENCY_LABEL)
    if key is None or choice.path != "compose":
        return None
    if key != choice.key:
        return "its dependency image is another (the Dockerfile's dependency part, its inputs or the platform changed)"
    dest = labels.get(SOURCE_DIR_LABEL, "")
    diff_ids = image_config.layer_diff_ids(config)
    layer = write_source_layer(root, choice, dest, _Null())
    if not diff_ids or diff_ids[-1] != layer.diff_id:
        return f"its source layer is not this commit's files (want {layer.diff_id[:19]})"
    return None


class _Null(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _large_layer_text(size: int, entries: Sequence[Entry]) -> str:
    biggest = sorted(entries, key=lambda e: e.size, reverse=True)[:3]
    names = ", ".join(f"{e.path} ({e.size / 1e6:.0f} MB)" for e in biggest)
    return (
        f"the source layer is {size / 1e6:.0f} MB; largest files: {names}. Data or outputs "
        "committed by mistake? List them in .dockerignore"
    )


def _json(data: bytes) -> dict[str, Any]:
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        raise image_config.ManifestError(
            "the dependency image's manifest or config is not JSON",
            hint="rebuild it: launch --rebuild ...",
        ) from None
    if not isinstance(doc, dict):
        raise image_config.ManifestError(
            "the dependency image's manifest or config is not a JSON object",
            hint="rebuild it: launch --rebuild ...",
        )
    return doc


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
