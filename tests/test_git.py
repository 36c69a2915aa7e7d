"""launch.git against real temporary repositories and bare remotes (no mocks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from launch import git as lgit
from launch.errors import ExitCode, GitStateError, LaunchError, UsageError

try:
    from tests.gitrepo import GitRepo, git, init_bare, make_repo
except ModuleNotFoundError:
    # draccus installs a top-level `tests` package into site-packages that shadows ours until
    # tests/__init__.py exists; pytest's default import mode puts tests/ itself on sys.path.
    from gitrepo import GitRepo, git, init_bare, make_repo  # type: ignore[no-redef]


@pytest.fixture(autouse=True)
def _no_enclosing_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tmp_path must never be taken for part of a repository that happens to enclose it.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def _refused(snap: lgit.Snapshot, **kwargs: bool) -> GitStateError:
    with pytest.raises(GitStateError) as info:
        lgit.require_buildable(snap, allow_dirty=False, **kwargs)
    assert info.value.exit_code == ExitCode.GIT_STATE == 3
    return info.value


def _tar_names(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
        return out


# --------------------------------------------------------------------------------------------
# snapshot


def test_clean_and_pushed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    snap = lgit.snapshot(repo.path)
    assert snap.root == repo.path.resolve()
    assert snap.commit == repo.head() and len(snap.commit) == 40
    assert snap.short == snap.commit[:12]
    assert snap.branch == "main"
    assert snap.clean and snap.dirty_files == () and snap.dirty_count == 0
    assert snap.pushed
    assert snap.remote_name == "origin"
    assert snap.remote_url == str(tmp_path / "proj.git")
    assert snap.repo_name == "proj"
    assert snap.upstream == "origin/main" and snap.remote_branch == "main" and snap.ahead == 0
    assert snap.subdir == ""
    lgit.require_buildable(snap, allow_dirty=False)


def test_snapshot_defaults_to_cwd_and_reports_subdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path, files={"a/b/train.py": "x\n"})
    monkeypatch.chdir(repo.path / "a" / "b")
    snap = lgit.snapshot()
    assert snap.root == repo.path.resolve()
    assert snap.subdir == "a/b"
    assert snap.clean and snap.pushed


@pytest.mark.parametrize("kind", ["modified", "untracked", "staged", "deleted", "untracked-dir"])
def test_dirty_tree_is_refused_with_allow_dirty_hint(tmp_path: Path, kind: str) -> None:
    repo = make_repo(tmp_path)
    if kind == "modified":
        repo.write("train.py", "print('edited')\n")
        expected = "train.py"
    elif kind == "untracked":
        repo.write("new file.py", "x\n")  # a space, and no quoting in the message
        expected = "new file.py"
    elif kind == "staged":
        repo.write("train.py", "print('staged')\n")
        repo.git("add", "train.py")
        expected = "train.py"
    elif kind == "deleted":
        (repo.path / "Dockerfile").unlink()
        expected = "Dockerfile"
    else:
        repo.write("data/x.txt", "x\n")
        expected = "data/"
    snap = lgit.snapshot(repo.path)
    assert not snap.clean
    assert expected in snap.dirty_files
    assert snap.pushed  # the commit itself is pushed
    err = _refused(snap)
    assert expected in err.message
    assert err.hint is not None
    assert "--allow-dirty" in err.hint and "git commit" in err.hint and "git stash" in err.hint
    lgit.require_buildable(snap, allow_dirty=True)
    with pytest.raises(GitStateError):  # the local backend runs the commit: still refused
        lgit.require_buildable(snap, allow_dirty=False, require_pushed=False)


def test_ignored_and_utf8_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("run.log", "ignored\n")
    assert lgit.snapshot(repo.path).clean
    repo.write("données.py", "x\n")
    snap = lgit.snapshot(repo.path)
    assert snap.dirty_files == ("données.py",)  # core.quotepath=off: no octal escapes


def test_dirty_message_lists_five_files_then_counts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(8):
        repo.write(f"f{i}.py", "x\n")
    snap = lgit.snapshot(repo.path)
    assert snap.dirty_count == 8
    err = _refused(snap)
    assert "8 files" in err.message and "and 3 more" in err.message
    assert "f4.py" in err.message and "f5.py" not in err.message


def test_many_dirty_files_are_cut_but_counted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(lgit.DIRTY_FILES_KEPT + 5):
        repo.write(f"f{i:02}.py", "x\n")
    snap = lgit.snapshot(repo.path)
    assert len(snap.dirty_files) == lgit.DIRTY_FILES_KEPT
    assert snap.dirty_count == lgit.DIRTY_FILES_KEPT + 5


def test_commit_after_push_is_unpushed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.commit("local only", {"train.py": "v2\n"})
    snap = lgit.snapshot(repo.path)
    assert snap.clean and not snap.pushed
    assert snap.ahead == 1 and snap.upstream == "origin/main"
    assert snap.remote_name == "origin" and snap.remote_branch is None
    err = _refused(snap)
    assert "1 commit not pushed" in err.message
    assert err.hint is not None and "git push" in err.hint and "--allow-dirty" in err.hint
    lgit.require_buildable(snap, allow_dirty=True)
    lgit.require_buildable(snap, allow_dirty=False, require_pushed=False)
    repo.push()
    assert lgit.snapshot(repo.path).pushed


def test_behind_upstream_is_still_pushed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = repo.head()
    repo.commit("second", {"train.py": "v2\n"})
    repo.push()
    repo.git("reset", "--quiet", "--hard", first)
    snap = lgit.snapshot(repo.path)
    assert snap.commit == first and snap.ahead == 0 and snap.pushed


def test_no_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, name="my_project", remote=False)
    snap = lgit.snapshot(repo.path)
    assert snap.clean and not snap.pushed
    assert snap.remote_url is None and snap.remote_name is None and snap.upstream is None
    assert snap.repo_name == "my_project"  # from the directory
    err = _refused(snap)
    assert "no git remote" in err.message
    assert err.hint is not None and "git remote add" in err.hint and "--allow-dirty" in err.hint


def test_pushed_without_upstream_counts_as_pushed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, push=False)
    repo.push(upstream=False)
    snap = lgit.snapshot(repo.path)
    assert snap.upstream is None and snap.ahead is None
    assert snap.pushed and snap.remote_name == "origin" and snap.remote_branch == "main"
    lgit.require_buildable(snap, allow_dirty=False)


def test_new_branch_without_upstream(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("switch", "--quiet", "-c", "feat")
    snap = lgit.snapshot(repo.path)
    # Same commit as origin/main: fetchable through main.
    assert snap.branch == "feat" and snap.pushed and snap.remote_branch == "main"
    repo.commit("feat work", {"feat.py": "x\n"})
    snap = lgit.snapshot(repo.path)
    assert not snap.pushed and snap.remote_name == "origin"
    err = _refused(snap)
    assert "no upstream" in err.message
    assert err.hint is not None and "git push -u origin feat" in err.hint


def test_remote_not_yet_pushed_to(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, push=False)
    snap = lgit.snapshot(repo.path)
    assert not snap.pushed and snap.remote_name == "origin"
    assert snap.remote_url == str(tmp_path / "proj.git")
    _refused(snap)


def test_upstream_gone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("switch", "--quiet", "-c", "feat")
    repo.commit("feat work", {"feat.py": "x\n"})
    repo.push()
    assert lgit.snapshot(repo.path).pushed
    repo.git("push", "--quiet", "origin", "--delete", "feat")
    snap = lgit.snapshot(repo.path)
    assert snap.upstream == "origin/feat" and snap.ahead is None and not snap.pushed
    err = _refused(snap)
    assert "gone" in err.message


def test_detached_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("checkout", "--quiet", "--detach")
    snap = lgit.snapshot(repo.path)
    assert snap.branch is None and snap.upstream is None
    assert snap.pushed and snap.remote_branch == "main"  # the commit is on origin/main
    lgit.require_buildable(snap, allow_dirty=False)
    repo.commit("detached work", {"x.py": "x\n"})
    snap = lgit.snapshot(repo.path)
    assert snap.branch is None and not snap.pushed
    err = _refused(snap)
    assert "detached" in err.message
    assert err.hint is not None and "git switch -c" in err.hint and "--allow-dirty" in err.hint


def test_detached_head_without_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, remote=False)
    repo.git("checkout", "--quiet", "--detach")
    snap = lgit.snapshot(repo.path)
    assert snap.branch is None and not snap.pushed and snap.remote_name is None
    err = _refused(snap)
    assert "no git remote" in err.message
    assert err.hint is not None and "git push -u origin HEAD" in err.hint


def test_branch_and_remote_names_with_slashes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, remote=False)
    repo.git("switch", "--quiet", "-c", "user/feature.v2")
    repo.commit("work", {"w.py": "x\n"})
    repo.add_remote(init_bare(tmp_path / "fork.git"), name="team/fork")
    repo.push(remote="team/fork")
    snap = lgit.snapshot(repo.path)
    assert snap.branch == "user/feature.v2"
    assert snap.upstream == "team/fork/user/feature.v2"
    assert snap.pushed and snap.ahead == 0
    assert snap.remote_name == "team/fork" and snap.remote_branch == "user/feature.v2"
    assert snap.remote_url == str(tmp_path / "fork.git") and snap.repo_name == "fork"
    # Without an upstream, the containing remote-tracking ref is split at the remote's name.
    repo.git("branch", "--quiet", "--unset-upstream")
    snap = lgit.snapshot(repo.path)
    assert snap.upstream is None and snap.pushed
    assert snap.remote_name == "team/fork" and snap.remote_branch == "user/feature.v2"


def test_upstream_with_another_name_gives_the_remote_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("switch", "--quiet", "-c", "local-name")
    repo.commit("work", {"w.py": "x\n"})
    repo.git("push", "--quiet", "-u", "origin", "local-name:remote-name")
    snap = lgit.snapshot(repo.path)
    assert snap.branch == "local-name" and snap.pushed
    assert snap.upstream == "origin/remote-name" and snap.remote_branch == "remote-name"


def test_prefers_origin_among_remotes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.add_remote(init_bare(tmp_path / "aaa.git"), name="aaa")
    repo.push(remote="aaa", upstream=False)
    repo.git("branch", "--quiet", "--unset-upstream")
    snap = lgit.snapshot(repo.path)
    assert snap.pushed and snap.remote_name == "origin" and snap.repo_name == "proj"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("git@github.com:org/My-Proj.git", "My-Proj"),
        ("https://github.com/org/proj.git/", "proj"),
        ("https://gitlab.example.com/group/sub/proj", "proj"),
        ("ssh://git@host:2222/org/proj.git", "proj"),
        ("/srv/git/proj.git", "proj"),
        ("file:///srv/git/proj/", "proj"),
        ("host:proj.git", "proj"),
    ],
)
def test_repo_name_from_remote_url(tmp_path: Path, url: str, name: str) -> None:
    repo = make_repo(tmp_path, name="checkout", push=False)
    repo.git("remote", "set-url", "origin", url)
    snap = lgit.snapshot(repo.path)
    assert snap.remote_url == url and snap.repo_name == name


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitStateError) as info:
        lgit.snapshot(plain)
    assert "not inside a git repository" in info.value.message
    assert info.value.hint is not None and "git init" in info.value.hint
    with pytest.raises(UsageError):
        lgit.snapshot(tmp_path / "missing")


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, commit=False)
    repo.write("train.py", "x\n")
    with pytest.raises(GitStateError) as info:
        lgit.snapshot(repo.path)
    assert "no commits yet" in info.value.message
    assert info.value.hint is not None and "git commit" in info.value.hint


def test_git_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path, remote=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(UsageError) as info:
        lgit.snapshot(repo.path)
    assert "git is not installed" in info.value.message


def test_callers_git_env_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As inside a git hook of another repository.
    other = make_repo(tmp_path, name="other", remote=False)
    repo = make_repo(tmp_path)
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other.path / ".git" / "index"))
    snap = lgit.snapshot(repo.path)
    assert snap.root == repo.path.resolve() and snap.commit == repo.head() and snap.pushed


def test_snapshot_process_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def counting_popen(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
        if "--no-pager" in args:  # launch.git's processes, not the test helpers'
            started.append(list(args))
        return real_popen(args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", counting_popen)
    assert lgit.snapshot(repo.path).pushed
    assert len(started) == 3  # rev-parse, status, config; run at the same time
    started.clear()
    repo.commit("local only")
    assert not lgit.snapshot(repo.path).pushed
    assert len(started) == 4  # + for-each-ref --contains
    started.clear()
    bare = make_repo(tmp_path, name="alone", remote=False)
    lgit.snapshot(bare.path)
    assert len(started) == 3  # no remote: nothing to look up


def test_importing_launch_git_does_not_import_gitpython() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import launch.git, sys; print('git' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------------------------
# tree hash


def _index_state(repo: GitRepo) -> tuple[str, str, bytes]:
    return (
        repo.git("status", "--porcelain=v1"),
        repo.git("ls-files", "--stage"),
        (repo.path / ".git" / "index").read_bytes(),
    )


def test_tree_hash_tracks_working_tree_content(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    clean = lgit.tree_hash(repo.path)
    assert clean == repo.git("rev-parse", "HEAD^{tree}")
    assert lgit.tree_hash(repo.path) == clean  # stable

    repo.write("train.py", "print('edited')\n")
    edited = lgit.tree_hash(repo.path)
    assert edited != clean
    assert lgit.tree_hash(repo.path) == edited

    repo.write("train.py", "print('train')\n")  # back to the committed content
    assert lgit.tree_hash(repo.path) == clean

    repo.write("notes.md", "untracked\n")
    with_untracked = lgit.tree_hash(repo.path)
    assert with_untracked not in (clean, edited)
    repo.write("debug.log", "ignored\n")
    assert lgit.tree_hash(repo.path) == with_untracked  # ignored files do not count

    (repo.path / "notes.md").unlink()
    assert lgit.tree_hash(repo.path) == clean


def test_tree_hash_leaves_the_index_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("staged.py", "staged\n")
    repo.git("add", "staged.py")
    repo.write("train.py", "modified, not staged\n")
    repo.write("untracked.py", "untracked\n")
    before = _index_state(repo)
    index_bytes = (repo.path / ".git" / "index").read_bytes()
    tree = lgit.tree_hash(repo.path)
    assert (repo.path / ".git" / "index").read_bytes() == index_bytes
    assert _index_state(repo) == before
    assert "A  staged.py" in before[0] and "?? untracked.py" in before[0]
    # The tree holds the working tree's content, and its objects exist.
    assert git(repo.path, "show", f"{tree}:train.py") == "modified, not staged"
    assert git(repo.path, "show", f"{tree}:untracked.py") == "untracked"


def test_tree_hash_from_a_subdirectory_covers_the_whole_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files={"sub/a.py": "a\n", "top.py": "t\n"})
    repo.write("top.py", "changed\n")
    assert lgit.tree_hash(repo.path / "sub") == lgit.tree_hash(repo.path)


# --------------------------------------------------------------------------------------------
# worktrees, files at a commit, archives


def test_worktree_has_the_commit_not_the_edits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = repo.head()
    repo.commit("second", {"train.py": "print('v2')\n"})
    repo.write("train.py", "print('uncommitted')\n")
    repo.write("scratch.py", "untracked\n")

    dest = lgit.add_worktree(repo.path, first, tmp_path / "trials" / "wt")
    assert dest == (tmp_path / "trials" / "wt").absolute()
    assert (dest / "train.py").read_text() == "print('train')\n"
    assert not (dest / "scratch.py").exists()
    assert git(dest, "rev-parse", "HEAD") == first
    assert str(dest) in repo.git("worktree", "list", "--porcelain")
    assert "?? " not in repo.git("status", "--porcelain=v1", "--", "trials")

    (dest / "out.txt").write_text("trial output\n")  # a dirty worktree is removed all the same
    lgit.remove_worktree(repo.path, dest)
    assert not dest.exists()
    assert str(dest) not in repo.git("worktree", "list", "--porcelain")
    lgit.remove_worktree(repo.path, dest)  # already gone: fine
    assert (repo.path / "train.py").read_text() == "print('uncommitted')\n"


def test_worktree_is_detached(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    dest = lgit.add_worktree(repo.path, repo.head(), tmp_path / "wt")
    with pytest.raises(AssertionError):
        git(dest, "symbolic-ref", "HEAD")  # detached: no branch checked out twice
    lgit.remove_worktree(repo.path, dest)


def test_worktree_deleted_by_hand_is_pruned(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    dest = lgit.add_worktree(repo.path, repo.head(), tmp_path / "wt")
    shutil.rmtree(dest)
    lgit.remove_worktree(repo.path, dest)
    assert str(dest) not in repo.git("worktree", "list", "--porcelain")


def test_remove_worktree_leaves_other_directories_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep\n")
    with pytest.raises(LaunchError):
        lgit.remove_worktree(repo.path, precious)
    assert (precious / "keep.txt").exists()


def test_git_failure_carries_git_stderr(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    with pytest.raises(lgit.GitCommandError) as info:
        lgit.add_worktree(repo.path, "0" * 40, tmp_path / "wt")
    assert "git worktree add" in info.value.message
    assert "fatal" in info.value.message  # git's own words
    assert info.value.exit_code == ExitCode.UNEXPECTED
    with pytest.raises(UsageError):
        lgit.add_worktree(repo.path, "--orphan", tmp_path / "wt")


def test_file_exists_at_the_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files={"Dockerfile": "FROM x\n", "docker/train.Dockerfile": "y\n"})
    commit = repo.head()
    (repo.path / "Dockerfile").unlink()  # deleted in the working tree only
    repo.write("Untracked.Dockerfile", "z\n")
    assert lgit.file_exists_at(repo.path, commit, "Dockerfile")
    assert lgit.file_exists_at(repo.path, commit, Path("docker/train.Dockerfile"))
    assert lgit.file_exists_at(repo.path, commit, "./docker/train.Dockerfile")
    assert lgit.file_exists_at(repo.path, commit, repo.path / "docker" / "train.Dockerfile")
    assert not lgit.file_exists_at(repo.path, commit, "Untracked.Dockerfile")
    assert not lgit.file_exists_at(repo.path, commit, "docker")  # a directory is not a file
    assert not lgit.file_exists_at(repo.path, commit, "nope/Dockerfile")
    with pytest.raises(UsageError):
        lgit.file_exists_at(repo.path, commit, "../outside")
    with pytest.raises(LaunchError):
        lgit.file_exists_at(repo.path, "no-such-rev", "Dockerfile")


def test_archive_of_a_commit(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path, files={"Dockerfile": "FROM x\n", "src/train.py": "v1\n", ".gitignore": "*.log\n"}
    )
    commit = repo.head()
    repo.write("src/train.py", "uncommitted\n")
    repo.write("extra.py", "untracked\n")

    out = lgit.archive(repo.path, commit, tmp_path / "ctx" / "context.tar.gz")
    assert out == tmp_path / "ctx" / "context.tar.gz"
    files = _tar_names(out)
    assert files == {".gitignore": b"*.log\n", "Dockerfile": b"FROM x\n", "src/train.py": b"v1\n"}
    assert not (tmp_path / "ctx" / "context.tar.gz.part").exists()

    sub = lgit.archive(repo.path, commit, tmp_path / "sub.tar.gz", subdir="src")
    assert _tar_names(sub) == {"train.py": b"v1\n"}
    with pytest.raises(UsageError):
        lgit.archive(repo.path, commit, tmp_path / "bad.tar.gz", subdir="missing")
    assert not (tmp_path / "bad.tar.gz").exists()


def test_archive_of_the_working_tree(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path, files={"Dockerfile": "FROM x\n", "src/train.py": "v1\n", ".gitignore": "*.log\n"}
    )
    repo.write("src/train.py", "uncommitted\n")
    repo.write("extra.py", "untracked\n")
    repo.write("debug.log", "ignored\n")
    (repo.path / "Dockerfile").unlink()
    before = _index_state(repo)

    tree = lgit.archive_worktree(repo.path, tmp_path / "wt.tar.gz")
    assert tree == lgit.tree_hash(repo.path)
    assert _tar_names(tmp_path / "wt.tar.gz") == {
        ".gitignore": b"*.log\n",
        "extra.py": b"untracked\n",
        "src/train.py": b"uncommitted\n",
    }
    assert _index_state(repo) == before
