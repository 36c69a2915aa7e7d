""".dockerignore rules, and the file names that look like secrets, for `--allow-dirty` uploads.

Pure and standard library only. Follows Docker's matcher (moby/patternmatcher): patterns are
relative to the context root (a leading `/` is dropped), `*` and `?` do not cross `/`, `**`
matches any number of directories, a pattern that matches a directory excludes everything in it,
`!pattern` re-includes, and the last pattern that matches a path decides.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Untracked files with these names are refused in an upload (they are usually credentials): the
# user keeps them out with .gitignore or .dockerignore, or allows them by setting.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa", "id_dsa", "id_ecdsa",
    "id_ed25519", ".netrc", ".pgpass", ".npmrc", ".pypirc", "credentials", "credentials.json",
    "*.kubeconfig", "kubeconfig", ".git-credentials", "*secret*.json", "*.tfstate",
)  # fmt: skip


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    exclude: bool  # False for a `!` exception


def _translate(pattern: str) -> re.Pattern[str]:
    """A Docker pattern as a regex over slash-separated paths (`**` spans directories)."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # `**/` : zero or more directories
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(char)
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out += f"[^{body[1:]}]" if body.startswith("^") else f"[{body}]"
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    # A match on a directory covers what is inside it.
    return re.compile(f"^{out}(?:/.*)?$")


class DockerIgnore:
    """The rules of one .dockerignore file."""

    def __init__(self, text: str) -> None:
        self.rules: list[_Rule] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            pattern = line if exclude else line[1:].strip()
            pattern = posixpath.normpath(pattern).lstrip("/")
            if pattern in ("", "."):
                continue
            self.rules.append(_Rule(_translate(pattern), exclude))

    def excludes(self, path: str) -> bool:
        """Whether `path` (relative to the context root, `/`-separated) is left out."""
        excluded = False
        for rule in self.rules:
            if rule.regex.match(path):
                excluded = rule.exclude
        return excluded


def secret_looking(paths: Iterable[str]) -> list[str]:
    """The paths whose file name looks like a credential (SECRET_PATTERNS)."""
    found = []
    for path in paths:
        name = posixpath.basename(path)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_PATTERNS):
            found.append(path)
    return found
