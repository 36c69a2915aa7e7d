"""A reproducible image layer: a commit's files as a gzipped tar under a `COPY` destination.

Pure: standard library and `launch.errors` only; no network, environment or clock (the caller
passes the mtime and a `read` callback). The same entries, contents and options always give the
same bytes: entries sorted by the UTF-8 bytes of their archive path, fixed mtime, numeric owner
with empty user/group names, modes from git, PAX headers only where a field needs one (long or
non-ASCII names, large ids), gzip without a timestamp or file name.

The layout follows what Docker and Kaniko put in a `COPY . <dest>` layer: paths relative to `/`
without a leading `/` ("app/train.py"), directory names ending in `/`, every directory present
before what it holds (moby pkg/archive; OCI image-spec layer.md "Changesets").
"""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

# Python's default level is 9; 6 is Go's (and so Docker's and Kaniko's) default: much faster on
# large sources for a few percent of size. Fixed, so one zlib gives the same bytes every time.
# Only the uncompressed tar (the diff_id) is stable across zlib versions; the blob digest of the
# gzip bytes is stable for one zlib build.
COMPRESS_LEVEL = 6
DIR_MODE = 0o755
SYMLINK_MODE = 0o777
_GIT_SYMLINK = 0o120000
_GIT_FILE = 0o100000


@dataclass(frozen=True)
class Entry:
    """One file of the copy's source, as git describes it."""

    path: str  # relative to the copy's source root, '/'-separated, e.g. "src/pkg/a.py"
    mode: int  # git's mode: 0o100644, 0o100755 or 0o120000 (symlink)
    size: int  # bytes of the file (symlink: length of its target)
    key: str  # opaque id that the caller's `read` understands (e.g. the git blob sha)


@dataclass(frozen=True)
class Layer:
    """What a manifest and a config need to reference the layer written."""

    digest: str  # "sha256:<hex>" of the gzip bytes (the blob digest)
    diff_id: str  # "sha256:<hex>" of the uncompressed tar (config rootfs.diff_ids)
    size: int  # gzip bytes
    tar_size: int  # uncompressed bytes
    files: int  # regular files + symlinks written


class _Sink(Protocol):
    def write(self, data: memoryview, /) -> object: ...


class _HashingWriter(io.RawIOBase):
    """Passes bytes on to `sink`, counting and hashing them on the way."""

    def __init__(self, sink: _Sink) -> None:
        super().__init__()
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.count += len(view)
        self.sink.write(view)
        return len(view)

    def tell(self) -> int:  # tarfile asks for the position when it opens in "w" mode
        return self.count

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def _check_path(path: str) -> None:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"unsafe or malformed path in a layer: {path!r}")


def _dest_prefix(dest: str) -> str:
    """The archive path of `dest`: "/app/src" -> "app/src", "/" -> ""."""
    if not dest.startswith("/") or "\x00" in dest:
        raise ValueError(f"the copy's destination must be an absolute path: {dest!r}")
    return posixpath.normpath(dest).lstrip("/")


def _file_mode(entry: Entry) -> int | None:
    """The tar mode of a git entry; None for a symlink."""
    kind = stat.S_IFMT(entry.mode)
    if entry.mode == _GIT_SYMLINK:
        return None
    if kind == _GIT_FILE:
        # Git records only 644 or 755 (old repositories may hold 664: it means 644).
        return 0o755 if entry.mode & 0o100 else 0o644
    raise ValueError(
        f"{entry.path}: git mode {entry.mode:o} cannot go in a layer (a submodule or a tree?)"
    )


def _sort_key(name: str, is_dir: bool) -> bytes:
    return (name + "/" if is_dir else name).encode("utf-8", "surrogateescape")


def write_layer(
    entries: Iterable[Entry],
    read: Callable[[Entry], bytes],
    *,
    dest: str,
    out: BinaryIO,
    uid: int = 0,
    gid: int = 0,
    chmod: int | None = None,
    mtime: int = 0,
) -> Layer:
    """Write the gzipped tar of `entries` placed under `dest` into `out`; return its digests.

    `read(entry)` gives a file's bytes (a symlink's target) and is called once per entry, in the
    archive's order. The archive streams through the hashes into `out`: one file at a time is in
    memory. `uid`/`gid` (a numeric `COPY --chown`) own `dest` and everything under it; `chmod`
    (a `COPY --chmod`) replaces the mode of those files and directories, as BuildKit and Kaniko
    apply it to both. The directories above `dest` are written as root's, mode 755: they normally
    exist already in the image, and Docker leaves the parents it did not create to root.
    Raises ValueError for an unsafe path, a path given twice or both a file and a directory, a
    git mode that is neither a file nor a symlink, or `read` giving a size other than `size`.
    """
    prefix = _dest_prefix(dest)
    members: dict[str, Entry | None] = {}  # archive path -> entry (None: a directory)
    for ancestor in _ancestors(prefix, include_self=True):
        members[ancestor] = None
    owned_dirs: set[str] = {prefix} if prefix else set()
    for entry in entries:
        _check_path(entry.path)
        _file_mode(entry)  # reject submodules before writing anything
        name = posixpath.join(prefix, entry.path) if prefix else entry.path
        if name in members:
            raise ValueError(f"{entry.path}: given twice, or both a file and a directory")
        members[name] = entry
        for ancestor in _ancestors(name, include_self=False):
            if ancestor in members and members[ancestor] is not None:
                raise ValueError(f"{ancestor}: both a file and a directory in the layer")
            members[ancestor] = None
            if len(ancestor) > len(prefix):
                owned_dirs.add(ancestor)
    gz_sink = _HashingWriter(out)
    files = 0
    # No name and mtime 0 in the gzip header: nothing of the machine or the moment leaks in.
    with gzip.GzipFile(
        filename="", mode="wb", compresslevel=COMPRESS_LEVEL, fileobj=gz_sink, mtime=0
    ) as gz:
        tar_sink = _HashingWriter(gz)
        with tarfile.open(fileobj=tar_sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # Sorted by the archive path as written: a directory's ends with "/".
            for name in sorted(members, key=lambda n: _sort_key(n, members[n] is None)):
                member = members[name]
                owned = member is not None or name in owned_dirs
                info = tarfile.TarInfo(name)
                info.mtime = mtime
                info.uid, info.gid = (uid, gid) if owned else (0, 0)
                if member is None:
                    info.type = tarfile.DIRTYPE  # tarfile adds the trailing "/"
                    info.mode = chmod if chmod is not None and owned else DIR_MODE
                    tar.addfile(info)
                    continue
                data = read(member)
                if len(data) != member.size:
                    raise ValueError(
                        f"{member.path}: read {len(data)} bytes, expected {member.size}"
                    )
                mode = _file_mode(member)
                files += 1
                if mode is None:
                    info.type = tarfile.SYMTYPE
                    info.mode = SYMLINK_MODE  # Linux ignores a symlink's mode; Docker writes 777
                    info.linkname = data.decode("utf-8", "surrogateescape")
                    tar.addfile(info)
                else:
                    info.mode = chmod if chmod is not None else mode
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return Layer(
        digest=gz_sink.digest,
        diff_id=tar_sink.digest,
        size=gz_sink.count,
        tar_size=tar_sink.count,
        files=files,
    )


def _ancestors(path: str, *, include_self: bool) -> list[str]:
    """The directories above `path` ("a/b/c" -> ["a", "a/b"]), plus `path` with include_self."""
    if not path:
        return []
    parts = path.split("/")
    stop = len(parts) if include_self else len(parts) - 1
    return ["/".join(parts[:i]) for i in range(1, stop + 1)]
