"""The files of a commit (or of a tree) as a build sees them: paths, modes, sizes and bytes.

The second half of the git edge (`launch.git` has the facts of a launch): the fast image path
(`launch.compose`) reads the commit's files straight from the object store, so the layer it
makes is a function of the commit alone, never of the working tree's timestamps or
permissions. One `git ls-tree` lists a tree; one long-lived `git cat-file --batch` reads every
blob, in the order asked (no process per file).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from launch.git import GIT_ARGS, GitCommandError, check_rev, git_env, git_missing, rel_path, run
from launch.source_layer import Entry

__all__ = ["Tree", "blob_reader", "commit_time", "list_tree", "read_file"]

_FILE_MODES = ("100644", "100755", "120000")


@dataclass(frozen=True)
class Tree:
    """The files under one directory of a tree (paths relative to it), and what was skipped."""

    entries: tuple[Entry, ...]
    submodules: tuple[str, ...]  # gitlinks: a commit of another repository, not files


def list_tree(root: Path, treeish: str, subdir: str = "") -> Tree:
    """Every file and symlink of `treeish` under `subdir` (relative to the repository root),
    with git's mode (0o100644, 0o100755, 0o120000), size and blob id (the `Entry.key`)."""
    root = Path(root)
    rev = check_rev(treeish)
    sub = rel_path(root, subdir) if subdir else ""
    spec = f"{rev}:{sub}" if sub else rev
    done = run(["ls-tree", "-r", "-z", "-l", "--full-tree", spec], root, check=False)
    if done.returncode != 0:
        raise GitCommandError(["ls-tree", spec], done.returncode, done.stderr)
    entries, submodules = [], []
    for record in done.stdout.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, sha, size = meta.split()
        if kind == "commit":
            submodules.append(path)
        elif kind == "blob" and mode in _FILE_MODES:
            entries.append(Entry(path=path, mode=int(mode, 8), size=int(size), key=sha))
    return Tree(tuple(entries), tuple(submodules))


def read_file(root: Path, treeish: str, path: str) -> bytes | None:
    """The bytes of `path` (relative to the repository root) in `treeish`, or None when there is
    no such file."""
    spec = f"{check_rev(treeish)}:{rel_path(root, path)}"
    try:
        done = subprocess.run(
            [*GIT_ARGS, "cat-file", "blob", spec],
            cwd=root, env=git_env(), stdin=subprocess.DEVNULL, capture_output=True, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise git_missing() from None
    return done.stdout if done.returncode == 0 else None


def commit_time(root: Path, commit: str) -> int:
    """The committer time of `commit`, in seconds since the epoch."""
    return int(run(["show", "-s", "--format=%ct", check_rev(commit)], Path(root)).stdout.strip())


@contextmanager
def blob_reader(root: Path) -> Iterator[Reader]:
    """A `read(entry) -> bytes` for `Entry`s of `list_tree`, backed by one `git cat-file --batch`
    process that ends with the block."""
    try:
        process = subprocess.Popen(
            [*GIT_ARGS, "cat-file", "--batch"],
            cwd=root, env=git_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
    except FileNotFoundError:
        raise git_missing() from None
    assert process.stdin is not None and process.stdout is not None
    try:
        yield Reader(process.stdin, process.stdout)
    finally:
        process.stdin.close()
        process.stdout.close()
        if process.wait(timeout=30) not in (0, -13):
            assert process.stderr is not None
            err = process.stderr.read().decode(errors="replace")
            if err.strip():
                raise GitCommandError(["cat-file", "--batch"], process.returncode, err)
        if process.stderr is not None:
            process.stderr.close()


class Reader:
    """One blob at a time from a running `git cat-file --batch`."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._stdin, self._stdout = stdin, stdout

    def __call__(self, entry: Entry) -> bytes:
        self._stdin.write(entry.key.encode() + b"\n")
        self._stdin.flush()
        header = self._stdout.readline().decode(errors="replace").split()
        if len(header) != 3 or header[1] != "blob":
            raise GitCommandError(["cat-file", "--batch"], 1, f"{entry.key}: {' '.join(header)}")
        size = int(header[2])
        data = self._stdout.read(size)
        self._stdout.read(1)  # the newline after each object
        if len(data) != size:
            raise GitCommandError(["cat-file", "--batch"], 1, f"{entry.key}: short read")
        return data
