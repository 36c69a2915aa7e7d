"""How this copy of launch was installed, and the command that adds an optional extra to it.

The distribution is `launch-sweep` (the `launch` name on PyPI is an unrelated package), while the
command and the import package stay `launch`. A hint such as `pip install 'launch[plot]'` would
install that other package, so every install hint comes from here and matches the way this copy
was installed: the single file (`make dist`), `uv tool install`, `pipx install`, this repository's
own environment (`make setup` / `uv sync`), or any other virtual environment.

Pure apart from `detect()`, which reads `sys` and the installed metadata; standard library only.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

DIST_NAME = "launch-sweep"

# The extras' requirements, as in pyproject.toml; used when the metadata cannot be read.
EXTRAS: dict[str, tuple[str, ...]] = {
    "plot": ("matplotlib>=3.9", "plotext>=5.3"),
    "mlflow": ("mlflow-skinny>=3.5",),
}

SINGLE_FILE, UV_TOOL, PIPX, CHECKOUT, VENV = "single-file", "uv-tool", "pipx", "checkout", "venv"


@dataclass(frozen=True)
class Install:
    """What `extra_hint` needs to know about this copy."""

    method: str  # SINGLE_FILE, UV_TOOL, PIPX, CHECKOUT or VENV
    python: str = sys.executable
    source: str | None = None  # the directory it was installed from (direct_url.json), if local
    has_pip: bool = True
    requirements: dict[str, tuple[str, ...]] | None = None  # extra -> requirements (metadata)


def _source_dir(direct_url: str | None) -> tuple[str | None, bool]:
    """(local source directory, editable) from a distribution's direct_url.json text."""
    if not direct_url:
        return None, False
    try:
        doc = json.loads(direct_url)
    except ValueError:
        return None, False
    url = doc.get("url", "") if isinstance(doc, dict) else ""
    editable = bool(isinstance(doc, dict) and (doc.get("dir_info") or {}).get("editable"))
    if not isinstance(url, str) or not url.startswith("file://"):
        return None, editable
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path) or None, editable


def _extras_from_metadata(requires: list[str] | None) -> dict[str, tuple[str, ...]] | None:
    if not requires:
        return None
    import re

    out: dict[str, list[str]] = {}
    for text in requires:
        req, _, marker = text.partition(";")
        match = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if match:
            out.setdefault(match.group(1), []).append(req.strip())
    return {k: tuple(v) for k, v in out.items()} or None


def detect() -> Install:
    """This copy's install: frozen single file, uv tool, pipx, this repository's environment,
    or another virtual environment (the fallback)."""
    if getattr(sys, "frozen", False):
        return Install(SINGLE_FILE)
    from importlib import metadata

    prefix = Path(sys.prefix)
    direct_url = requires = None
    try:
        dist = metadata.distribution(DIST_NAME)
        direct_url = dist.read_text("direct_url.json")
        requires = dist.requires
    except metadata.PackageNotFoundError:
        pass
    source, editable = _source_dir(direct_url)
    has_pip = any((prefix / "bin" / name).exists() for name in ("pip", "pip3"))
    if (prefix / "uv-receipt.toml").is_file():
        method = UV_TOOL
    elif (prefix / "pipx_metadata.json").is_file():
        method = PIPX
    elif (
        editable
        and source is not None
        and (Path(source) / "uv.lock").is_file()
        and prefix == Path(source) / ".venv"
    ):
        method = CHECKOUT
    else:
        method = VENV
    return Install(
        method, python=sys.executable, source=source, has_pip=has_pip,
        requirements=_extras_from_metadata(requires),
    )  # fmt: skip


def extra_hint(extra: str, install: Install | None = None) -> str:
    """The command that adds the optional `extra` (plot, mlflow) to this copy of launch."""
    install = detect() if install is None else install
    reqs = (install.requirements or {}).get(extra) or EXTRAS.get(extra, ())
    libraries = " ".join(shlex.quote(r) for r in reqs)
    with_extra = shlex.quote(f"{install.source or DIST_NAME}[{extra}]")
    if install.method == SINGLE_FILE:
        return (
            f"the single-file launch has no optional libraries: install launch from a clone with "
            f"them (`uv tool install '.[{extra}]'` or `pipx install '.[{extra}]'` in the clone; "
            "docs/dist.md)"
        )
    if install.method == UV_TOOL:
        return f"uv tool install --force {with_extra}"
    if install.method == PIPX:
        return f"pipx inject {DIST_NAME} {libraries}"
    if install.method == CHECKOUT:
        # Exact sync: `--extra X` alone would remove the other extras; all of them is `make setup`.
        return f"cd {shlex.quote(install.source or '.')} && uv sync --frozen --all-extras"
    python = shlex.quote(install.python)
    if install.has_pip:
        return f"{python} -m pip install {libraries}"
    return f"uv pip install --python {python} {libraries}"
