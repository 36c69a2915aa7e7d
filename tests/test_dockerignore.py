"""The .dockerignore matcher against Docker's documented rules (docs.docker.com, "Build context",
.dockerignore; moby/patternmatcher), and the secret-looking names."""

from __future__ import annotations

import pytest

from launch.dockerignore import DockerIgnore, secret_looking


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        # Docker's own example file.
        ("*/temp*\n*/*/temp*\ntemp?\n", "somedir/temporary.txt", True),
        ("*/temp*\n*/*/temp*\ntemp?\n", "somedir/temp", True),
        ("*/temp*\n*/*/temp*\ntemp?\n", "somedir/subdir/temporary.txt", True),
        ("*/temp*\n*/*/temp*\ntemp?\n", "tempa", True),
        ("*/temp*\n*/*/temp*\ntemp?\n", "tempab", False),
        ("*/temp*\n*/*/temp*\ntemp?\n", "temporary.txt", False),
        # `**` spans any number of directories, including none.
        ("**/*.go\n", "main.go", True),
        ("**/*.go\n", "a/b/c/main.go", True),
        ("**/*.go\n", "a/b/c/main.py", False),
        # A directory pattern covers what is inside it; a leading slash is the context root.
        ("/build\n", "build/out/app.bin", True),
        ("build\n", "src/build/x", False),
        # `*` does not cross `/`.
        ("*.md\n", "docs/guide.md", False),
        ("*.md\n", "README.md", True),
        # The last matching rule decides: exceptions re-include, and can be overridden again.
        ("*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md\n", "README-public.md", False),
        ("*.md\n!README*.md\nREADME-secret.md\n", "CHANGES.md", True),
        # Comments, blanks, `./` prefixes and character classes.
        ("# a comment\n\n./data\n", "data/x.csv", True),
        ("[abc].txt\n", "b.txt", True),
        ("[abc].txt\n", "d.txt", False),
        ("[^abc].txt\n", "d.txt", True),
    ],
)
def test_docker_rules(rules: str, path: str, excluded: bool) -> None:
    assert DockerIgnore(rules).excludes(path) is excluded


def test_secret_looking_names() -> None:
    paths = [".env", ".env.local", "a/b/id_rsa", "tls/server.pem", "src/main.py", "env.py",
             "config/credentials.json", "notes/secret_plan.json", "data.csv"]  # fmt: skip
    assert secret_looking(paths) == [
        ".env", ".env.local", "a/b/id_rsa", "tls/server.pem", "config/credentials.json",
        "notes/secret_plan.json",
    ]  # fmt: skip
