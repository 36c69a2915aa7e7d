"""What `launch --version` prints: the version, and the git commit this copy was built from.

Where the facts come from, first found wins:

1. `launch/_buildinfo.json`, written by `packaging/build.py` and bundled into `dist/launch`
   (never present in a source tree): `launch 0.1.0 (commit abc1234, built 2026-11-23)`.
2. A source checkout (`uv run launch`, an editable install): the package's metadata version and
   `git rev-parse HEAD` of the checkout: `launch 0.1.0 (commit abc1234, source checkout)`.
3. Otherwise (a wheel install): `launch 0.1.0 (commit unknown)`.

Standard library only, and nothing is imported or run until `version_line()` is called.
"""

from __future__ import annotations

from pathlib import Path

BUILDINFO_FILE = "_buildinfo.json"
UNKNOWN = "unknown"


def _short(commit: str) -> str:
    return commit[:7] if commit and commit != UNKNOWN else UNKNOWN


def _embedded(here: Path) -> dict[str, str] | None:
    import json

    try:
        data = json.loads((here / BUILDINFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items()}


def _metadata_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from launch.install import DIST_NAME

    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return UNKNOWN


def _checkout_commit(root: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the source checkout `root` that this module lives in, if it is one."""
    if not ((root / ".git").exists() and (root / "pyproject.toml").is_file()):
        return None
    import subprocess

    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "launch"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return (head, bool(status)) if head else None


def build_facts(here: Path | None = None) -> dict[str, str]:
    """version, commit (full hash or "unknown"), dirty ("yes" or ""), built (date), source."""
    here = Path(__file__).resolve().parent if here is None else here
    embedded = _embedded(here)
    if embedded is not None:
        return {
            "version": embedded.get("version") or UNKNOWN,
            "commit": embedded.get("commit") or UNKNOWN,
            "dirty": embedded.get("dirty", ""),
            "built": embedded.get("built") or UNKNOWN,
            "source": "build",
        }
    facts = {"version": _metadata_version(), "commit": UNKNOWN, "dirty": "", "built": ""}
    checkout = _checkout_commit(here.parent)
    if checkout is not None:
        facts.update(commit=checkout[0], dirty="yes" if checkout[1] else "", source="checkout")
    else:
        facts["source"] = "installed"
    return facts


def version_line(here: Path | None = None) -> str:
    """`launch 0.1.0 (commit abc1234, built 2026-11-23)`; see the module docstring."""
    facts = build_facts(here)
    commit = _short(facts["commit"]) + ("-dirty" if facts["dirty"] else "")
    where = {"build": f"built {facts['built']}", "checkout": "source checkout"}.get(facts["source"])
    details = f"commit {commit}" + (f", {where}" if where else "")
    return f"launch {facts['version']} ({details})"
