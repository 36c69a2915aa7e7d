"""Git facts for a launch: the only module that touches git.

It runs the `git` command line (no GitPython: importing it costs ~270 ms, more than the whole
startup budget of `launch render`), with as few processes as possible. `snapshot()` starts three
git processes at once and waits for them together (`rev-parse`, `status --porcelain=v2`,
`config`), plus one `for-each-ref --contains` only when the upstream does not already prove the
commit is pushed. Nothing here talks to the network: "pushed" is judged against the local
remote-tracking refs, i.e. as of the last fetch or push.

Every git process runs with `LC_ALL=C`, `GIT_TERMINAL_PROMPT=0`, no pager, no optional locks
(`status` never rewrites the user's index), `-c core.quotepath=off`, and without the
repository-locating variables (`GIT_DIR`, `GIT_INDEX_FILE`, ...) of the caller's environment: every
function names its repository by path (this also keeps things right inside git hooks).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from launch.errors import GitStateError, LaunchError, UsageError

__all__ = [
    "GitCommandError",
    "Snapshot",
    "add_worktree",
    "archive",
    "archive_worktree",
    "file_exists_at",
    "remove_worktree",
    "require_buildable",
    "snapshot",
    "tree_hash",
    "worktree_tree",
]

DIRTY_FILES_KEPT = 20  # Snapshot.dirty_files keeps this many paths (dirty_count has the total)
DIRTY_FILES_SHOWN = 5  # require_buildable's message lists this many
_STDERR_MAX_CHARS = 1500

# Variables that would point git at another repository or index than the one we name by path.
_SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
GIT_ARGS = ("git", "--no-pager", "-c", "core.quotepath=off")


class GitCommandError(LaunchError):
    """A git command failed unexpectedly; the message carries git's own stderr (shortened)."""

    def __init__(
        self, args: Sequence[str], returncode: int, stderr: str, *, hint: str | None = None
    ) -> None:
        detail = _shorten(stderr) or "(no output)"
        super().__init__(f"`git {' '.join(args)}` failed (exit {returncode}): {detail}", hint=hint)
        self.git_args = tuple(args)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Snapshot:
    """What launch needs to know about the repository it runs in, read once."""

    root: Path  # top level of the working tree (symlinks resolved, as git reports it)
    commit: str  # full sha of HEAD
    branch: str | None  # None when HEAD is detached
    clean: bool  # no modified, staged, deleted, conflicted or untracked-not-ignored file
    pushed: bool  # the commit is on a remote-tracking branch (see `snapshot`)
    remote_url: str | None  # URL of `remote_name` as configured (no insteadOf rewriting)
    remote_name: str | None
    repo_name: str  # last path component of remote_url without `.git`, else root's name
    dirty_files: tuple[str, ...]  # first DIRTY_FILES_KEPT dirty paths, relative to root
    subdir: str  # the directory snapshot() looked at, relative to root ("" at the top)
    upstream: str | None = None  # e.g. "origin/main": the branch's configured remote upstream
    remote_branch: str | None = None  # branch on `remote_name` containing the commit, e.g. "main"
    ahead: int | None = None  # commits on HEAD not on the upstream; None without one
    dirty_count: int = 0  # number of dirty paths (dirty_files may be cut)

    @property
    def short(self) -> str:
        return self.commit[:12]


# --------------------------------------------------------------------------------------------
# running git


def _shorten(text: str) -> str:
    text = text.strip()
    if len(text) <= _STDERR_MAX_CHARS:
        return text
    return "... " + text[-_STDERR_MAX_CHARS:]


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_OPTIONAL_LOCKS="0",
    )
    if extra:
        env.update(extra)
    return env


def git_missing() -> UsageError:
    return UsageError(
        "git is not installed (no `git` command on PATH)",
        hint="install git (e.g. `apt install git` or `brew install git`) and run launch again",
    )


def _spawn(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            [*GIT_ARGS, *args],
            cwd=cwd,
            env=git_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
        )
    except FileNotFoundError:
        raise git_missing() from None


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd` with launch's environment; GitCommandError when it fails (`check`)."""
    try:
        done = subprocess.run(
            [*GIT_ARGS, *args],
            cwd=cwd,
            env=git_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            check=check,
        )
    except FileNotFoundError:
        raise git_missing() from None
    except subprocess.CalledProcessError as exc:
        raise GitCommandError(args, exc.returncode, exc.stderr or "") from None
    return done


# The helpers `launch.git_files` (the other half of the git edge) shares.
def check_rev(rev: str) -> str:
    """`rev` when it is a plausible revision (no option, no whitespace), else UsageError."""
    if not rev or rev.startswith("-") or any(c.isspace() for c in rev):
        raise UsageError(f"not a git revision: {rev!r}")
    return rev


def rel_path(root: Path, path: str | os.PathLike[str]) -> str:
    """A path inside the repository as git wants it in `<rev>:<path>`: relative to root, posix."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            raise UsageError(f"{path} is outside the git repository {root}") from None
    rel = PurePosixPath(p.as_posix())
    if ".." in rel.parts:
        raise UsageError(f"{path} must stay inside the git repository {root}")
    text = str(rel)
    return "" if text == "." else text


# --------------------------------------------------------------------------------------------
# snapshot


def snapshot(path: Path | None = None) -> Snapshot:
    """Read the repository containing `path` (default: the current directory).

    `pushed` is True when either
      * HEAD's branch has an upstream on a remote (`branch.<b>.remote` is not "."), its
        remote-tracking ref exists, and HEAD is not ahead of it (behind is fine: the commit is
        contained in it); or, failing that,
      * the commit is contained in some remote-tracking branch `refs/remotes/<remote>/<b>` of a
        configured remote (one `git for-each-ref --contains`; this covers a detached HEAD and a
        branch pushed without `-u`). The upstream's remote is preferred, then `origin`, then a
        branch of the same name, then the first by name.
    `remote_name`/`remote_branch` name the remote branch that contains the commit (what a Kaniko
    git context must fetch); when the commit is not pushed, `remote_name` is the upstream's
    remote, else `origin`, else the only remote, else None.
    """
    where = Path.cwd() if path is None else Path(path)
    if not where.is_dir():
        raise UsageError(f"{where} is not a directory")
    procs = (
        _spawn(["rev-parse", "--show-toplevel", "--show-prefix"], where),
        _spawn(
            [
                "status",
                "--porcelain=v2",
                "--branch",
                "-z",
                "--untracked-files=normal",
                "--no-renames",
            ],
            where,
        ),
        _spawn(
            ["config", "-z", "--get-regexp", r"^(remote\..*\.url|branch\..*\.(remote|merge))$"],
            where,
        ),
    )
    (rp_out, rp_err), (st_out, st_err), (cf_out, cf_err) = (p.communicate() for p in procs)
    rp, st, cf = procs

    if rp.returncode != 0:
        if "not a git repository" in rp_err:
            raise GitStateError(
                f"{where.resolve()} is not inside a git repository",
                hint="run launch inside your project's git checkout, or make one: "
                "`git init && git add -A && git commit -m 'first commit'`",
            )
        raise GitStateError(
            f"cannot use {where.resolve()} as a git working tree: {_shorten(rp_err)}"
        )
    lines = rp_out.splitlines()
    root = Path(lines[0])
    subdir = lines[1].rstrip("/") if len(lines) > 1 else ""

    if st.returncode != 0:
        raise GitCommandError(["status", "--porcelain=v2"], st.returncode, st_err)
    status = _parse_status(st_out)

    if cf.returncode not in (0, 1):  # 1: no matching key
        raise GitCommandError(["config", "--get-regexp"], cf.returncode, cf_err)
    remotes, branch_remote, branch_merge = _parse_config(cf_out if cf.returncode == 0 else "")

    if status.oid is None:
        on = f" on branch {status.head}" if status.head else ""
        raise GitStateError(
            f"the repository {root} has no commits yet{on}",
            hint="commit your code first: `git add -A && git commit -m 'first commit'`",
        )
    commit = status.oid
    branch = status.head

    # Upstream: only a remote one counts ("." means a local branch).
    upstream: str | None = None
    up_remote: str | None = None
    up_branch: str | None = None
    if branch is not None and status.upstream is not None:
        r = branch_remote.get(branch)
        merge = branch_merge.get(branch, "")
        if r is not None and r != "." and r in remotes:
            upstream = status.upstream
            up_remote = r
            up_branch = merge.removeprefix("refs/heads/")

    pushed = False
    remote_name: str | None = None
    remote_branch: str | None = None
    if up_remote is not None and status.ahead == 0:  # ahead is None when the ref is gone
        pushed, remote_name, remote_branch = True, up_remote, up_branch
    elif remotes:
        found = _containing_remote_branch(root, commit, remotes, prefer=up_remote, branch=branch)
        if found is not None:
            pushed = True
            remote_name, remote_branch = found
    if remote_name is None:
        if up_remote is not None:
            remote_name = up_remote
        elif "origin" in remotes:
            remote_name = "origin"
        elif len(remotes) == 1:
            remote_name = next(iter(remotes))
    remote_url = remotes.get(remote_name) if remote_name is not None else None

    return Snapshot(
        root=root,
        commit=commit,
        branch=branch,
        clean=not status.dirty,
        pushed=pushed,
        remote_url=remote_url,
        remote_name=remote_name,
        repo_name=_repo_name(remote_url) or root.name,
        dirty_files=tuple(status.dirty[:DIRTY_FILES_KEPT]),
        subdir=subdir,
        upstream=upstream,
        remote_branch=remote_branch,
        ahead=status.ahead if upstream is not None else None,
        dirty_count=len(status.dirty),
    )


class _Status:
    def __init__(self) -> None:
        self.oid: str | None = None  # None: no commit yet
        self.head: str | None = None  # None: detached
        self.upstream: str | None = None
        self.ahead: int | None = None  # None: no upstream, or its ref is gone
        self.behind: int | None = None
        self.dirty: list[str] = []


def _parse_status(out: str) -> _Status:
    """Parse `git status --porcelain=v2 --branch -z --no-renames` (paths relative to the root)."""
    st = _Status()
    dirty = st.dirty
    records = iter(out.split("\0"))
    for record in records:
        if not record:
            continue
        if record.startswith("# "):
            key, _, value = record[2:].partition(" ")
            if key == "branch.oid":
                st.oid = None if value == "(initial)" else value
            elif key == "branch.head":
                st.head = None if value == "(detached)" else value
            elif key == "branch.upstream":
                st.upstream = value
            elif key == "branch.ab":
                a, _, b = value.partition(" ")
                st.ahead, st.behind = int(a.lstrip("+")), int(b.lstrip("-"))
        elif record[0] == "1":
            dirty.append(record.split(" ", 8)[8])
        elif record[0] == "u":
            dirty.append(record.split(" ", 10)[10])
        elif record[0] == "2":  # not produced with --no-renames; the next record is the old path
            dirty.append(record.split(" ", 9)[9])
            next(records, None)
        elif record[0] == "?":
            dirty.append(record[2:])
    return st


def _parse_config(out: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """remote name -> url, branch -> branch.<b>.remote, branch -> branch.<b>.merge."""
    remotes: dict[str, str] = {}
    branch_remote: dict[str, str] = {}
    branch_merge: dict[str, str] = {}
    for record in out.split("\0"):
        if not record:
            continue
        key, _, value = record.partition("\n")
        section, _, rest = key.partition(".")
        name, _, var = rest.rpartition(".")
        if section == "remote" and var == "url":
            remotes.setdefault(name, value)  # the first url is the fetch url
        elif section == "branch" and var == "remote":
            branch_remote[name] = value
        elif section == "branch" and var == "merge":
            branch_merge[name] = value
    return remotes, branch_remote, branch_merge


def _containing_remote_branch(
    root: Path,
    commit: str,
    remotes: Mapping[str, str],
    *,
    prefer: str | None,
    branch: str | None,
) -> tuple[str, str] | None:
    """(remote, branch) of a remote-tracking branch that contains `commit`, or None."""
    out = run(
        ["for-each-ref", "--contains", commit, "--format=%(refname)", "refs/remotes/"], root
    ).stdout
    by_length = sorted(remotes, key=len, reverse=True)  # remote names may contain "/"
    found: list[tuple[str, str]] = []
    for ref in out.splitlines():
        rest = ref.removeprefix("refs/remotes/")
        for remote in by_length:
            if rest.startswith(remote + "/"):
                name = rest[len(remote) + 1 :]
                if name != "HEAD":  # the symbolic refs/remotes/<r>/HEAD
                    found.append((remote, name))
                break
    if not found:
        return None
    preferred = prefer or "origin"
    return min(found, key=lambda rb: (rb[0] != preferred, rb[1] != branch, rb))


_URL_SPLIT = re.compile(r"[/:\\]")


def _repo_name(url: str | None) -> str | None:
    """`git@host:org/proj.git`, `https://host/org/proj/`, `/srv/proj.git` -> `proj`."""
    if not url:
        return None
    text = url.strip().rstrip("/")
    text = text.removesuffix(".git").rstrip("/")
    name = _URL_SPLIT.split(text)[-1]
    return None if name in ("", ".", "..") else name


# --------------------------------------------------------------------------------------------
# checks


def require_buildable(snap: Snapshot, *, allow_dirty: bool, require_pushed: bool = True) -> None:
    """Refuse (GitStateError, exit 3) a state whose commit is not what would run.

    Checks, in this order: uncommitted changes; then (when `require_pushed`, i.e. for cluster
    builds, which fetch the commit from the remote) no remote at all, a detached HEAD on no
    remote branch, a gone upstream, commits not pushed. `allow_dirty` skips every check (the
    build then uses the working tree as a tar context, tagged by its tree hash).
    """
    if allow_dirty:
        return
    if not snap.clean:
        shown = ", ".join(snap.dirty_files[:DIRTY_FILES_SHOWN])
        count = max(snap.dirty_count, len(snap.dirty_files))
        more = f" and {count - DIRTY_FILES_SHOWN} more" if count > DIRTY_FILES_SHOWN else ""
        files = "file" if count == 1 else "files"
        raise GitStateError(
            f"the working tree of {snap.root} has uncommitted changes ({count} {files}: "
            f"{shown}{more}); the trials would not run what you see",
            hint="commit them (`git add -A && git commit`) or set them aside (`git stash -u`); "
            "list generated outputs in .gitignore; or pass --allow-dirty to use the working "
            "tree as it is",
        )
    if not require_pushed or snap.pushed:
        return
    if snap.remote_name is None:
        where = snap.branch or "HEAD"
        raise GitStateError(
            f"the repository {snap.root} has no git remote: the cluster cannot fetch commit "
            f"{snap.short}",
            hint=f"add one and push: `git remote add origin <url> && git push -u origin {where}`, "
            "or pass --allow-dirty to build from the working tree",
        )
    remote = snap.remote_name
    if snap.branch is None:
        raise GitStateError(
            f"HEAD is detached at {snap.short}, which is on no branch of the remote {remote!r}",
            hint=f"check out a branch and push it: `git switch -c <name> && git push -u {remote} "
            "<name>`, or pass --allow-dirty to build from the working tree",
        )
    if snap.upstream is not None and snap.ahead is None:
        raise GitStateError(
            f"the upstream {snap.upstream} of branch {snap.branch!r} is gone, and commit "
            f"{snap.short} is on no branch of the remote {remote!r}",
            hint=f"`git push -u {remote} {snap.branch}`, or pass --allow-dirty",
        )
    if snap.upstream is not None:
        n = snap.ahead or 0
        commits = "commit" if n == 1 else "commits"
        raise GitStateError(
            f"branch {snap.branch!r} has {n} {commits} not pushed to {snap.upstream}",
            hint="`git push`, or pass --allow-dirty to build from the working tree",
        )
    raise GitStateError(
        f"branch {snap.branch!r} has no upstream and commit {snap.short} is on no branch of the "
        f"remote {remote!r}",
        hint=f"`git push -u {remote} {snap.branch}`, or pass --allow-dirty",
    )


# --------------------------------------------------------------------------------------------
# content


def tree_hash(root: Path, *, leave_out: Sequence[str] = ()) -> str:
    """Tree hash of the working tree: tracked files as they are on disk plus untracked files that
    are not ignored (deleted files left out), less the untracked paths in `leave_out` (relative
    to the root). Equals the commit's tree when the tree is clean.

    The user's index is untouched: `git add -A` runs against a temporary copy of it
    (`GIT_INDEX_FILE`). It does write the blobs and trees into the repository's object store
    (loose objects, pruned by `git gc` if unreferenced), which is what lets `archive()` pack that
    exact tree.
    """
    import shutil  # lazily: not needed on the snapshot path
    import tempfile

    root = Path(root)
    index = Path(run(["rev-parse", "--git-path", "index"], root).stdout.strip())
    if not index.is_absolute():
        index = root / index
    with tempfile.TemporaryDirectory(prefix="launch-index-") as tmp:
        tmp_index = Path(tmp) / "index"
        if index.is_file():
            shutil.copyfile(index, tmp_index)  # its stat cache spares re-hashing unchanged files
        env = {"GIT_INDEX_FILE": str(tmp_index)}
        run(["add", "--all", "--", ":/"], root, env=env)
        if leave_out:
            # From a file, NUL-separated, literal: any number of paths, any characters.
            specs = Path(tmp) / "leave-out"
            specs.write_bytes(b"".join(f":(top,literal){p}".encode() + b"\0" for p in leave_out))
            run(["rm", "--cached", "-q", "--ignore-unmatch", f"--pathspec-from-file={specs}",
                  "--pathspec-file-nul"], root, env=env)  # fmt: skip
        return run(["write-tree"], root, env=env).stdout.strip()


def untracked(root: Path) -> list[str]:
    """Untracked files that .gitignore does not exclude, relative to the repository root."""
    done = run(["ls-files", "--others", "--exclude-standard", "-z", "--", ":/"], Path(root))
    return [p for p in done.stdout.split("\0") if p]


def file_exists_at(root: Path, commit: str, path: str | os.PathLike[str]) -> bool:
    """Whether `path` (relative to the repository root) is a file in `commit`."""
    rel = rel_path(root, path)
    if not rel:
        return False
    spec = f"{check_rev(commit)}:{rel}"
    done = run(["cat-file", "-t", spec], Path(root), check=False)
    if done.returncode == 0:
        return done.stdout.strip() == "blob"
    if "does not exist in" in done.stderr or "exists on disk, but not in" in done.stderr:
        return False
    raise GitCommandError(["cat-file", "-t", spec], done.returncode, done.stderr)


def archive(root: Path, commit_or_tree: str, dest_tar_gz: Path, subdir: str | None = None) -> Path:
    """Write a tar.gz (a Kaniko tar context) of a commit or tree, or of `subdir` of it.

    For the working tree (`--allow-dirty`) pass `tree_hash(root)`, or use `archive_worktree`.
    Paths in the archive are relative to `subdir` (or the root). `export-ignore` attributes
    apply, as with any `git archive`. Written to a temporary name, then renamed.
    """
    root = Path(root)
    rev = check_rev(commit_or_tree)
    sub = rel_path(root, subdir) if subdir else ""
    treeish = f"{rev}:{sub}" if sub else rev
    dest = Path(dest_tar_gz).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    args = ["archive", "--format=tar.gz", "-o", str(part), treeish]
    done = run(args, root, check=False)
    if done.returncode != 0:
        part.unlink(missing_ok=True)
        if sub and (
            "not a valid object name" in done.stderr.lower() or "not a tree" in done.stderr
        ):
            raise UsageError(
                f"{sub!r} is not a directory in {rev[:12]}",
                hint="pass a directory that is committed (a path relative to the repository root)",
            )
        raise GitCommandError(args, done.returncode, done.stderr)
    part.replace(dest)
    return dest


def worktree_tree(root: Path, *, allow_secrets: bool = False) -> str:
    """The tree hash of the working tree as an `--allow-dirty` build sees it (the image tag).

    Untracked files that the root's .dockerignore excludes are left out (they would be readable
    by anyone who can GET the uploaded blob), and untracked files that look like credentials
    (`.env`, `*.pem`, `id_rsa`, ...) are refused unless `allow_secrets`.
    """
    from launch.dockerignore import DockerIgnore, secret_looking

    root = Path(root)
    extra = untracked(root)
    ignore = root / ".dockerignore"
    rules = DockerIgnore(ignore.read_text(errors="replace")) if ignore.is_file() else None
    leave_out = [p for p in extra if rules is not None and rules.excludes(p)]
    left = set(leave_out)
    risky = secret_looking(p for p in extra if p not in left)
    if risky and not allow_secrets:
        shown = ", ".join(risky[:5]) + (f" and {len(risky) - 5} more" if len(risky) > 5 else "")
        raise UsageError(
            f"--allow-dirty would upload untracked files that look like credentials: {shown}",
            hint="add them to .gitignore or .dockerignore (they are then left out of the upload), "
            "or commit them if they are not secret",
        )
    return tree_hash(root, leave_out=leave_out)


def archive_worktree(
    root: Path, dest_tar_gz: Path, subdir: str | None = None, *, allow_secrets: bool = False
) -> str:
    """Archive the working tree as `worktree_tree` sees it; returns that tree hash."""
    tree = worktree_tree(root, allow_secrets=allow_secrets)
    archive_tree(root, tree, dest_tar_gz, subdir)
    return tree


def archive_tree(root: Path, tree: str, dest_tar_gz: Path, subdir: str | None = None) -> Path:
    """`archive` of a tree (not a commit), byte-stable: `git archive` of a tree stamps files
    with the current time, so it archives a commit of that tree with a fixed date instead (the
    same tree is then the same blob, uploaded once)."""
    fixed = {
        "GIT_AUTHOR_NAME": "launch", "GIT_AUTHOR_EMAIL": "launch@localhost",
        "GIT_COMMITTER_NAME": "launch", "GIT_COMMITTER_EMAIL": "launch@localhost",
        "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    }  # fmt: skip
    commit = run(
        ["commit-tree", check_rev(tree), "-m", "launch build context"], Path(root), env=fixed
    )
    return archive(root, commit.stdout.strip(), dest_tar_gz, subdir)


# --------------------------------------------------------------------------------------------
# worktrees (the local backend's trials run in one)


def add_worktree(root: Path, commit: str, dest: Path) -> Path:
    """Check out `commit` into a new detached worktree at `dest` (absent or empty)."""
    dest = Path(dest).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A worktree whose directory was deleted (`rm -rf .launch`) stays registered and blocks a new
    # one at the same path: forget such stale entries first (prune touches only missing ones).
    run(["worktree", "prune"], Path(root))
    run(["worktree", "add", "--detach", "--quiet", str(dest), check_rev(commit)], Path(root))
    return dest


def remove_worktree(root: Path, dest: Path) -> None:
    """Remove the worktree at `dest` even if it has changes or is locked, then prune.

    Removing one that is already gone is not an error; a directory that is not a worktree of this
    repository is left alone (GitCommandError).
    """
    dest = Path(dest).absolute()
    args = ["worktree", "remove", "--force", "--force", str(dest)]
    done = run(args, Path(root), check=False)
    if done.returncode != 0 and dest.exists():
        raise GitCommandError(args, done.returncode, done.stderr)
    run(["worktree", "prune"], Path(root))
