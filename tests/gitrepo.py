"""Real temporary git repositories for tests (no mocks): a working repo, a bare "remote", pushes.

Plain functions and a small class, importable from any test:

    from tests.gitrepo import make_repo

    def test_x(tmp_path):
        repo = make_repo(tmp_path)              # committed, pushed to a bare origin, upstream set
        repo.write("train.py", "print(1)\\n")
        sha = repo.commit("change")             # not pushed yet
        repo.push()

Every git process here ignores the user's global/system config and the caller's GIT_DIR-style
variables, and uses a fixed identity and dates, so repositories are the same on every machine.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GitRepo", "git", "init_bare", "make_repo"]

_SCRUBBED = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.com",
        GIT_AUTHOR_DATE="2025-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2025-01-01T00:00:00Z",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; return stdout without the trailing newline; raise with stderr on failure."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}:\n{done.stderr}")
    return done.stdout.rstrip("\n")


def init_bare(path: Path, *, branch: str = "main") -> Path:
    """A bare repository at `path`, to serve as a remote (its URL is its path)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--bare", f"--initial-branch={branch}")
    return path


@dataclass(frozen=True)
class GitRepo:
    """A working repository on disk, with helpers that run real git."""

    path: Path

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def write(self, relpath: str, content: str | bytes = "") -> Path:
        target = self.path / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return target

    def commit(
        self, message: str = "change", files: Mapping[str, str | bytes] | None = None
    ) -> str:
        """Write `files`, stage everything (`git add -A`), commit; return the new sha."""
        for relpath, content in (files or {}).items():
            self.write(relpath, content)
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def add_remote(self, bare: Path, name: str = "origin") -> None:
        self.git("remote", "add", name, str(bare))

    def push(
        self, branch: str | None = None, remote: str = "origin", *, upstream: bool = True
    ) -> None:
        """Push `branch` (default: the current one) and, by default, set it as the upstream."""
        ref = branch or self.git("symbolic-ref", "--short", "HEAD")
        self.git("push", "--quiet", *(["-u"] if upstream else []), remote, ref)

    def status(self) -> str:
        """`git status --porcelain=v1` plus the staged diff: a fingerprint of the index state."""
        return self.git("status", "--porcelain=v1") + "\n" + self.git("diff", "--cached", "--stat")


def make_repo(
    tmp_path: Path,
    name: str = "proj",
    *,
    files: Mapping[str, str | bytes] | None = None,
    branch: str = "main",
    commit: bool = True,
    remote: bool = True,
    push: bool = True,
) -> GitRepo:
    """A repo at `tmp_path/name` on `branch` with `files` committed (default: a tiny project),
    a bare remote `origin` at `tmp_path/name.git`, pushed with upstream set.

    `commit=False` leaves it without commits; `remote=False` without remote; `push=False` with
    the remote but nothing pushed.
    """
    path = tmp_path / name
    path.mkdir(parents=True)
    git(path, "init", "--quiet", f"--initial-branch={branch}")
    git(path, "config", "user.name", "Test Author")
    git(path, "config", "user.email", "author@example.com")
    repo = GitRepo(path)
    if not commit:
        return repo
    repo.commit(
        "first commit",
        files
        if files is not None
        else {
            "train.py": "print('train')\n",
            "Dockerfile": "FROM python:3.11-slim\nCOPY . /app\n",
            ".gitignore": "*.log\n",
        },
    )
    if remote:
        repo.add_remote(init_bare(tmp_path / f"{name}.git", branch=branch))
        if push:
            repo.push()
    return repo
