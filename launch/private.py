"""Local state private to its user: directories 0700, files 0600, whatever the umask.

Everything launch writes under its home (`.launch/`) is created with explicit modes (`mkdir`,
`open_file`, `write_atomic`), never through the umask: trial environments (`--env` values),
logs and the MLflow store are nobody else's business. A home made by an older launch (0755 /
0644) is tightened when launch next writes to it (`tighten`, `tighten_tree`); a file that
belongs to someone else cannot be changed and is said once (`warning:` on stderr), never an
error. The git worktree of a commit (`<exp>/worktree`) keeps git's modes: its experiment
directory is 0700, which is enough. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SKIP = frozenset({"worktree"})  # the user's own files, with git's modes

_warned = False


def mkdir(path: Path, *, parents: bool = False, exist_ok: bool = True) -> None:
    """`path.mkdir` with mode 0700 (the directories it creates; an existing one is tightened)."""
    if parents and not path.parent.exists():
        mkdir(path.parent, parents=True)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not exist_ok or not path.is_dir():
            raise
        tighten(path)
        return
    os.chmod(path, DIR_MODE)  # mkdir's mode went through the umask


def open_file(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT, 0o600)`; a file that existed is tightened too."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    _fix(fd, path)
    return fd


def write_atomic(path: Path, data: bytes) -> None:
    """`data` in `path`, mode 0600, fsynced, published with a rename (readers never see half)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a stale temporary file keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def tighten(path: Path) -> None:
    """Drop group and other permissions of `path` (not followed if a symlink); a missing path is
    ignored, one that belongs to someone else is warned about once."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
        return
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077)
    except OSError as exc:
        _warn(path, exc)


def tighten_tree(root: Path, *, skip: frozenset[str] = SKIP) -> None:
    """`tighten` `root` and everything under it (symlinks not followed, `skip`'s names left)."""
    tighten(root)
    for top, dirs, files in os.walk(root, onerror=lambda exc: None):
        dirs[:] = [d for d in dirs if d not in skip and not os.path.islink(os.path.join(top, d))]
        for name in (*dirs, *files):
            tighten(Path(top, name))


def _fix(fd: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        info = os.fstat(fd)
        if info.st_mode & 0o077:
            try:
                os.fchmod(fd, stat.S_IMODE(info.st_mode) & ~0o077)
            except OSError as exc:
                _warn(path, exc)


def _warn(path: Path, exc: OSError) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(
            f"warning: cannot make {path} private ({exc.strerror or exc}); launch's state "
            "there may be readable by others\n"
        )
        sys.stderr.flush()
