"""launch.source_layer: reproducible layers, unpacked by Python's tarfile and by GNU tar."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from launch.source_layer import Entry, Layer, write_layer

GNU_TAR = shutil.which("tar") or ""

FILES: dict[str, tuple[int, bytes]] = {
    "train.py": (0o100644, b"print('train')\n"),
    "run.sh": (0o100755, b"#!/bin/sh\necho run\n"),
    "src/pkg/__init__.py": (0o100644, b""),
    "src/pkg/model.py": (0o100644, b"MODEL = 1\n"),
    "src/pkg-extra.txt": (0o100644, b"sorts before src/pkg/ by bytes\n"),
    "link-to-train": (0o120000, b"train.py"),
    "src/pkg/up": (0o120000, b"../../train.py"),
}


def entries_of(files: dict[str, tuple[int, bytes]]) -> list[Entry]:
    return [Entry(path, mode, len(data), f"key:{path}") for path, (mode, data) in files.items()]


def build(
    files: dict[str, tuple[int, bytes]],
    *,
    dest: str = "/app",
    order: Sequence[Entry] | None = None,
    uid: int = 0,
    gid: int = 0,
    chmod: int | None = None,
    mtime: int = 0,
) -> tuple[bytes, Layer, list[str]]:
    """Write a layer; returns (gzip bytes, Layer, the keys `read` was called with in order)."""
    by_key = {f"key:{path}": data for path, (_, data) in files.items()}
    calls: list[str] = []

    def read(entry: Entry) -> bytes:
        calls.append(entry.key)
        return by_key[entry.key]

    out = io.BytesIO()
    layer = write_layer(
        order if order is not None else entries_of(files),
        read,
        dest=dest,
        out=out,
        uid=uid,
        gid=gid,
        chmod=chmod,
        mtime=mtime,
    )
    return out.getvalue(), layer, calls


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return tar.getmembers()


def raw_names(blob: bytes) -> list[str]:
    """Names as stored in the headers (tarfile strips a directory's trailing '/')."""
    raw = gzip.decompress(blob)
    names = []
    offset = 0
    while offset + 512 <= len(raw):
        header = raw[offset : offset + 512]
        if header == b"\0" * 512:
            break
        name = header[:100].rstrip(b"\0").decode()
        prefix = header[345:500].rstrip(b"\0").decode()
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        names.append(f"{prefix}/{name}" if prefix else name)
        offset += 512 + (size + 511) // 512 * 512
    return names


def test_the_digests_are_those_of_the_bytes() -> None:
    blob, layer, _ = build(FILES)
    raw = gzip.decompress(blob)
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (layer.size, layer.tar_size, layer.files) == (len(blob), len(raw), len(FILES))


def test_the_gzip_header_has_no_time_and_no_name() -> None:
    blob, _, _ = build(FILES)
    assert blob[:4] == b"\x1f\x8b\x08\x00"  # magic, deflate, FLG: no FNAME
    assert blob[4:8] == b"\0\0\0\0"  # MTIME 0


def test_two_writes_give_the_same_bytes_whatever_the_input_order() -> None:
    first, layer1, _ = build(FILES)
    again, layer2, _ = build(FILES, order=list(reversed(entries_of(FILES))))
    assert first == again
    assert layer1 == layer2


def test_read_is_called_once_per_file_in_archive_order() -> None:
    _, _, calls = build(FILES, order=list(reversed(entries_of(FILES))))
    paths = [key.removeprefix("key:") for key in calls]
    assert sorted(paths) == sorted(FILES)
    assert [f"app/{p}".encode() for p in paths] == sorted(f"app/{p}".encode() for p in paths)


def test_members_sorted_by_bytes_with_directories_first() -> None:
    blob, _, _ = build(FILES, dest="/app/src")
    names = raw_names(blob)
    assert names == sorted(names, key=lambda name: name.encode())
    assert names[:2] == ["app/", "app/src/"]
    assert "app/src/src/" in names and "app/src/src/pkg/" in names
    assert names.index("app/src/src/pkg-extra.txt") < names.index("app/src/src/pkg/")
    for name in names:  # every parent directory comes before what it holds
        parent = name.rstrip("/").rpartition("/")[0]
        if parent:
            assert names.index(parent + "/") < names.index(name)


def test_header_fields_are_fixed() -> None:
    blob, _, _ = build(FILES)
    for info in members(blob):
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.pax_headers == {}  # nothing here needs one: no atime/ctime/mtime records
    by_name = {info.name: info for info in members(blob)}
    assert by_name["app"].isdir() and by_name["app"].mode == 0o755
    assert by_name["app/src/pkg"].isdir() and by_name["app/src/pkg"].mode == 0o755
    assert by_name["app/train.py"].mode == 0o644
    assert by_name["app/run.sh"].mode == 0o755
    assert by_name["app/link-to-train"].issym()
    assert by_name["app/link-to-train"].linkname == "train.py"
    assert by_name["app/link-to-train"].mode == 0o777


def check_unpacked(root: Path, prefix: str = "app") -> None:
    base = root / prefix if prefix else root
    for path, (mode, data) in FILES.items():
        target = base / path
        if mode == 0o120000:
            assert target.is_symlink()
            assert os.readlink(target) == data.decode()
        else:
            assert not target.is_symlink()
            assert target.read_bytes() == data
            assert stat.S_IMODE(target.lstat().st_mode) == (0o755 if mode & 0o111 else 0o644)
    assert (base / "src" / "pkg").is_dir()
    assert (base / "src" / "pkg" / "up").resolve() == (base / "train.py").resolve()


def test_python_tarfile_unpacks_it(tmp_path: Path) -> None:
    blob, _, _ = build(FILES)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="tar")
    check_unpacked(tmp_path)


@pytest.mark.skipif(not GNU_TAR, reason="GNU tar not installed")
def test_gnu_tar_unpacks_it(tmp_path: Path) -> None:
    blob, _, _ = build(FILES, dest="/opt/app")
    archive = tmp_path / "layer.tar.gz"
    archive.write_bytes(blob)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [GNU_TAR, "-xzf", str(archive), "-C", str(out), "--no-same-owner"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no "unknown extended header" or other warnings
    check_unpacked(out, "opt/app")
    listing = subprocess.run(
        [GNU_TAR, "-tvzf", str(archive), "--numeric-owner"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "0/0" in listing and "1970-01-01" in listing


def test_dest_root_puts_files_at_the_top(tmp_path: Path) -> None:
    blob, _, _ = build(FILES, dest="/")
    names = raw_names(blob)
    assert "train.py" in names and "src/" in names
    assert not any(name.startswith(("/", "./")) for name in names)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="tar")
    check_unpacked(tmp_path, "")


def test_dest_is_normalised() -> None:
    assert build(FILES, dest="/app/")[0] == build(FILES, dest="/app")[0]
    assert build(FILES, dest="//app/./")[0] == build(FILES, dest="/app")[0]


def test_mtime_uid_gid_chmod_are_honoured() -> None:
    blob, _, _ = build(FILES, dest="/srv/app", mtime=1_700_000_000, uid=1000, gid=2000, chmod=0o750)
    by_name = {info.name: info for info in members(blob)}
    assert all(info.mtime == 1_700_000_000 for info in by_name.values())
    # The directories above dest stay root's 755; dest and below belong to --chown, get --chmod.
    assert (by_name["srv"].uid, by_name["srv"].gid, by_name["srv"].mode) == (0, 0, 0o755)
    for name in ("srv/app", "srv/app/src", "srv/app/train.py", "srv/app/run.sh"):
        info = by_name[name]
        assert (info.uid, info.gid, info.mode) == (1000, 2000, 0o750), name
    link = by_name["srv/app/link-to-train"]
    assert (link.uid, link.gid, link.mode) == (1000, 2000, 0o777)


def test_large_ids_get_a_pax_header() -> None:
    blob, _, _ = build({"a": (0o100644, b"x")}, uid=10_000_000, gid=10_000_001)
    info = {i.name: i for i in members(blob)}["app/a"]
    assert (info.uid, info.gid) == (10_000_000, 10_000_001)


@pytest.mark.parametrize("length", [101, 300])
def test_long_paths(tmp_path: Path, length: int) -> None:
    deep = "/".join(["d" * 50] * (length // 51)) + "/" + "f" * 60
    link = "l" * 120
    files = {deep: (0o100644, b"deep\n"), link: (0o120000, deep.encode())}
    blob, _, _ = build(files)
    assert len(f"app/{deep}") > length - 60
    names = {info.name for info in members(blob)}
    assert f"app/{deep}" in names and f"app/{link}" in names
    if GNU_TAR:
        (tmp_path / "l.tgz").write_bytes(blob)
        subprocess.run([GNU_TAR, "-xzf", "l.tgz"], cwd=tmp_path, check=True)
        assert (tmp_path / "app" / deep).read_bytes() == b"deep\n"
        assert (tmp_path / "app" / link).read_bytes() == b"deep\n"


def test_non_ascii_names(tmp_path: Path) -> None:
    files = {"données/été.txt": (0o100644, "ça\n".encode()), "日本/名前.py": (0o100755, b"")}
    blob, _, _ = build(files)
    names = {info.name for info in members(blob)}
    assert {"app/données/été.txt", "app/日本/名前.py", "app/données", "app/日本"} <= names
    if GNU_TAR:
        (tmp_path / "u.tgz").write_bytes(blob)
        subprocess.run([GNU_TAR, "-xzf", "u.tgz"], cwd=tmp_path, check=True)
        assert (tmp_path / "app" / "données" / "été.txt").read_text() == "ça\n"
        assert os.access(tmp_path / "app" / "日本" / "名前.py", os.X_OK)


def test_empty_files_and_no_files() -> None:
    blob, layer, _ = build({"empty": (0o100644, b"")})
    info = {i.name: i for i in members(blob)}["app/empty"]
    assert info.isfile() and info.size == 0
    assert layer.files == 1
    blob, layer, _ = build({}, dest="/app")
    assert [i.name for i in members(blob)] == ["app"] and layer.files == 0
    blob, layer, _ = build({}, dest="/")
    assert members(blob) == [] and layer.files == 0


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../up", "a/../../up", "a/./b", "./a", "a//b", "a/", "a\x00b"]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="unsafe or malformed"):
        build({}, order=[Entry(path, 0o100644, 0, "k")])


def test_bad_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        build({}, order=[Entry("a", 0o100644, 0, "k"), Entry("a", 0o100644, 0, "k")])
    with pytest.raises(ValueError, match="both a file and a directory"):
        build({}, order=[Entry("a", 0o100644, 0, "k"), Entry("a/b", 0o100644, 0, "k")])
    with pytest.raises(ValueError, match=r"both a file and a directory|given twice"):
        build({}, order=[Entry("a/b", 0o100644, 0, "k"), Entry("a", 0o100644, 0, "k")])
    with pytest.raises(ValueError, match="submodule"):
        build({}, order=[Entry("sub", 0o160000, 0, "k")])
    with pytest.raises(ValueError, match="expected 5"):
        build({"a": (0o100644, b"abc")}, order=[Entry("a", 0o100644, 5, "key:a")])
    with pytest.raises(ValueError, match="absolute"):
        build(FILES, dest="app")


def test_streams_into_a_non_seekable_output() -> None:
    class Pipe:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    pipe = Pipe()
    out: Any = pipe  # a writer with write() only: no seek, no tell
    layer = write_layer(entries_of(FILES), lambda e: FILES[e.path][1], dest="/app", out=out)
    assert layer.digest == "sha256:" + hashlib.sha256(b"".join(pipe.chunks)).hexdigest()
    assert layer.digest == build(FILES)[1].digest
