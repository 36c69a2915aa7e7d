"""Build dist/launch: one self-extracting executable for this platform (`make dist`).

Steps (docs/dist.md has the measurements behind the choice):

1. Decide what goes in: launch's runtime requirements and their dependencies (from the installed
   distributions' metadata, not from the dev venv), plus the extras given with `--extras`.
   Everything else installed in the venv (pytest, mypy, tensorboard, mlflow...) is excluded
   explicitly, so optional imports inside the bundled libraries cannot drag it in.
2. Write the build facts (version, commit, date) to build/dist/_buildinfo.json; the bundle
   carries it as launch/_buildinfo.json, read by `launch.buildinfo.version_line()`.
3. PyInstaller, one-dir mode (`packaging/entry.py` as the script): every `launch.*` module and
   every submodule of the libraries launch imports (also the ones imported inside functions,
   found by reading launch's source) goes in.
4. Pack the one-dir bundle as a tar.gz behind `packaging/stub.sh`: the first run unpacks it once
   into ~/.cache/launch/<hash>/, later runs exec the cached program directly.

Run: `uv run python packaging/build.py [--extras plot] [--keep-onedir]`. Offline: needs only the
synced venv. Prints the size and the build time at the end.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "packaging"
WORK = ROOT / "build" / "dist"
DIST = ROOT / "dist"
NAME = "launch"  # the import package, the command and the binary
DIST_NAME = "launch-sweep"  # the distribution (`launch` on PyPI is an unrelated package)

# Standard-library parts no launch path uses (GUI, test suites, build tools).
STDLIB_EXCLUDES = (
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "test", "lib2to3", "ensurepip",
    "venv", "pydoc_data", "distutils", "setuptools", "pkg_resources", "pip",
)  # fmt: skip
# Submodules of bundled libraries that are their own test suites.
TEST_PACKAGES = ("test", "tests", "e2e_test", "testing")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist: str, extras: Iterable[str] = ()) -> list[str]:
    """Names of the distributions `dist` requires (with `extras`), markers evaluated here."""
    out = []
    for text in metadata.distribution(dist).requires or []:
        req = Requirement(text)
        envs = [{"extra": e} for e in ("", *extras)]
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            out.append(req.name)
    return out


def closure(extras: Iterable[str]) -> set[str]:
    """launch and every distribution it needs at run time (normalized names)."""
    seen: set[str] = set()
    todo = [(DIST_NAME, tuple(extras))]
    while todo:
        dist, with_extras = todo.pop()
        if norm(dist) in seen:
            continue
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            print(f"note: {dist} is not installed; the binary will not have it", file=sys.stderr)
            continue
        seen.add(norm(dist))
        todo.extend((req, ()) for req in requirements(dist, with_extras))
    return seen


def top_levels() -> dict[str, set[str]]:
    """Distribution (normalized) -> its top-level import names."""
    out: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(norm(dist), set()).add(module)
    return out


def launch_imports() -> set[str]:
    """Top-level modules imported anywhere in launch/, function bodies included."""
    names: set[str] = set()
    for path in sorted((ROOT / NAME).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names)
    return {n for n in names if n not in stdlib and n != NAME}


def excludes(keep: set[str], tops: dict[str, set[str]]) -> list[str]:
    """Import names of installed distributions outside `keep` (never a name a kept one owns)."""
    kept_names = {m for dist in keep for m in tops.get(dist, ())}
    out: set[str] = set()
    for dist in metadata.distributions():
        name = norm(dist.metadata["Name"])
        if name in keep:
            continue
        for module in tops.get(name, ()):
            if module not in kept_names:
                out.add(module)
                continue
            # A shared namespace (google.*): exclude this distribution's subpackages only.
            for file in dist.files or []:
                parts = file.parts
                if len(parts) > 2 and parts[0] == module and "." not in parts[1]:
                    out.add(f"{module}.{parts[1]}")
    return sorted(out)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def build_facts() -> dict[str, str]:
    commit = git("rev-parse", "HEAD") or "unknown"
    # Dirty = the bundled sources differ from the commit (uncommitted or untracked files).
    dirty = bool(git("status", "--porcelain", "--", NAME, "packaging", "pyproject.toml", "uv.lock"))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return {
        "version": metadata.version(DIST_NAME),
        "commit": commit,
        "dirty": "yes" if dirty else "",
        "built": when.strftime("%Y-%m-%d"),
        "built_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sysconfig.get_python_version(),
        "platform": sysconfig.get_platform(),
    }


def _not_a_test_suite(name: str) -> bool:
    return not any(part in TEST_PACKAGES for part in name.split(".")[1:])


def pyinstaller(
    facts_file: Path, keep: set[str], extras: list[str], *, onefile: bool = False
) -> Path:
    tops = top_levels()
    imported = launch_imports()
    direct = sorted(
        m for dist in keep for m in tops.get(dist, ()) if m in imported and not m.startswith("_")
    )
    args = [
        str(HERE / "entry.py"),
        "--name", NAME, "--onefile" if onefile else "--onedir", "--noconfirm", "--log-level", "WARN",
        "--distpath", str(WORK / "onedir"), "--workpath", str(WORK / "pyinstaller"),
        "--specpath", str(WORK),
        "--collect-submodules", NAME,
        "--copy-metadata", DIST_NAME,
        "--add-data", f"{facts_file}{os.pathsep}{NAME}",
        # The preflight hook is a file put on the trials' PYTHONPATH, not a module launch imports.
        "--add-data", f"{ROOT / NAME / 'preflight_site'}{os.pathsep}{NAME}/preflight_site",
    ]  # fmt: skip
    from PyInstaller.utils.hooks import collect_submodules

    for module in direct:
        for sub in collect_submodules(module, filter=_not_a_test_suite, on_error="ignore"):
            args += ["--hidden-import", sub]
    for dist in sorted(keep - {norm(DIST_NAME)}):
        # Some libraries ask importlib.metadata for their own version on import.
        args += ["--copy-metadata", dist]
        for module in sorted(tops.get(dist, ())):
            args += ["--hidden-import", module]
    for module in [*STDLIB_EXCLUDES, *excludes(keep, tops)]:
        args += ["--exclude-module", module]
    for module in direct:
        for sub in TEST_PACKAGES:
            args += ["--exclude-module", f"{module}.{sub}"]
    print(f"bundling {len(keep)} distributions (extras: {', '.join(extras) or 'none'}); "
          f"collecting submodules of: {', '.join(direct)}")  # fmt: skip
    import PyInstaller.__main__

    PyInstaller.__main__.run(args)
    return WORK / "onedir" / NAME


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def pack(onedir: Path, facts: dict[str, str], out: Path) -> str:
    """The stub plus a deterministic tar.gz of `onedir` (top directory `launch/`); its hash."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(onedir.rglob("*"))
        tar.add(onedir, arcname=NAME, recursive=False, filter=_tar_filter)
        for path in paths:
            arcname = f"{NAME}/{path.relative_to(onedir).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=_tar_filter)
    payload = gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)
    digest = hashlib.sha256(payload).hexdigest()[:16]
    template = (HERE / "stub.sh").read_text()
    commit = facts["commit"][:12] + ("-dirty" if facts["dirty"] else "")
    header = ""
    offset = 0
    while True:  # the header holds its own length: pad to a block, recompute until stable
        text = (
            template.replace("@HASH@", digest)
            .replace("@VERSION@", facts["version"])
            .replace("@COMMIT@", commit)
            .replace("@OFFSET@", str(offset + 1))
        )
        size = -(-len(text.encode()) // 512) * 512
        if size == offset:
            header = text + "#" * (size - len(text.encode()) - 1) + "\n"
            break
        offset = size
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(header.encode() + payload)
    tmp.chmod(0o755)
    tmp.replace(out)
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extras",
        default="",
        help="launch extras to bundle, comma-separated (plot, mlflow); default none",
    )
    parser.add_argument(
        "--keep-onedir", action="store_true", help="keep build/dist/onedir/launch for inspection"
    )
    parser.add_argument("--out", type=Path, default=DIST / NAME)
    parser.add_argument(
        "--pyinstaller-onefile",
        action="store_true",
        help="for comparison only: PyInstaller's own onefile (unpacks on every run) to --out",
    )
    args = parser.parse_args()
    extras = [e for e in args.extras.split(",") if e]
    start = time.monotonic()
    shutil.rmtree(WORK / "onedir", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    facts = build_facts()
    facts_file = WORK / "_buildinfo.json"
    facts_file.write_text(json.dumps(facts, indent=2) + "\n")
    keep = closure(extras)
    onedir = pyinstaller(facts_file, keep, extras, onefile=args.pyinstaller_onefile)
    built = time.monotonic()
    if args.pyinstaller_onefile:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(onedir, args.out)
        print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB; built in {built - start:.0f} s")
        return
    digest = pack(onedir, facts, args.out)
    unpacked = sum(p.stat().st_size for p in onedir.rglob("*") if p.is_file())
    if not args.keep_onedir:
        shutil.rmtree(onedir.parent, ignore_errors=True)
    end = time.monotonic()
    print(
        f"{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
        f"{args.out.stat().st_size / 1e6:.1f} MB ({unpacked / 1e6:.0f} MB unpacked, "
        f"cache key {digest}); commit {facts['commit'][:12]}{' (dirty)' if facts['dirty'] else ''}; "
        f"built in {end - start:.0f} s (PyInstaller {built - start:.0f} s, pack {end - built:.0f} s)"
    )


if __name__ == "__main__":
    main()
