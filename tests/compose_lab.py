"""A project whose Dockerfile has the fast-path shape, and a Kaniko stand-in that pushes what
Kaniko would: for a dependency build a multi-layer image with the Dockerfile's WORKDIR and
labels, for a full build a tiny image. Shared by tests/test_compose.py and bench/rebuild.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.registry_server import Registry, push_image, push_tiny_image

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
BUSYBOX = Path("/bin/busybox")

DOCKERFILE = """\
FROM docker.io/library/python:3.12-slim-bookworm
ENV PYTHONUNBUFFERED=1
WORKDIR /workspace
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock
COPY . .
ENV APP_HOME=/workspace MODE=sweep
LABEL team="vision research"
CMD ["python", "train.py"]
"""


def project_files() -> dict[str, str | bytes]:
    """The quickstart's trainer and search space, a lock file, ignored data, nested modules."""
    return {
        "train.py": (EXAMPLE / "train.py").read_text(),
        "search.yaml": (EXAMPLE / "search.yaml").read_text(),
        "requirements.lock": "numpy==2.1.0\n",
        "Dockerfile": DOCKERFILE,
        ".dockerignore": "data/\n*.ckpt\n",
        "data/big.bin": b"\0" * 5000,
        "model.ckpt": b"weights",
        "scripts/run.sh": "#!/bin/sh\necho run\n",
        "pkg/deep/nested/module.py": "VALUE = 42\n",
    }


def base_layers(count: int = 12, size: int = 2000) -> list[dict[str, tuple[bytes, int]]]:
    """A dependency image of realistic shape: `count` layers, a static shell in the first
    (when the machine has one) so the composed image can run a command."""
    shell = BUSYBOX.read_bytes() if BUSYBOX.is_file() else b"#!/bin/false\n"
    layers: list[dict[str, tuple[bytes, int]]] = [{"bin/busybox": (shell, 0o755)}]
    for i in range(count - 1):
        path = f"usr/lib/python3.12/site-packages/pkg{i}/__init__.py"
        layers.append({path: (bytes([65 + i % 26]) * size * i, 0o644)})
    return layers


def build_args(job: dict[str, Any]) -> tuple[str, str, dict[str, str], list[str]]:
    """(repository, tag, labels, args) of a Kaniko build Job."""
    args = list(job["spec"]["template"]["spec"]["containers"][0]["args"])
    destination = next(a for a in args if a.startswith("--destination="))
    repository, tag = destination.split("/", 1)[1].rsplit(":", 1)
    labels = dict(a[len("--label=") :].split("=", 1) for a in args if a.startswith("--label="))
    return repository, tag, labels, args


def kaniko_push(
    reg: Registry,
    builds: list[dict[str, Any]],
    layers: int = 12,
    layer_bytes: int = 2000,
    *,
    oci: bool = False,
) -> Callable[[dict[str, Any], str], str]:
    """An `on_success` for `KanikoController` that records each build in `builds`."""

    def push(job: dict[str, Any], _digest: str) -> str:
        repository, tag, labels, args = build_args(job)
        builds.append({"tag": tag, "args": args, "job": job})
        if not tag.startswith("deps-"):
            return push_tiny_image(reg.url, repository, tag, labels=labels)
        config = {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED=1"],
            "WorkingDir": "/workspace",
            "Cmd": ["python3"],
            "Labels": labels,
        }
        return push_image(
            reg.url, repository, tag, layers=base_layers(layers, layer_bytes), config=config,
            oci=oci,
        )  # fmt: skip

    return push


def quickstart_files() -> dict[str, str]:
    """The quickstart example as a project of its own (files at the repository root): its
    Dockerfile's lock-file path made relative to that root, as a user copying it would."""
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}
    files["Dockerfile"] = files["Dockerfile"].replace(
        "examples/quickstart/requirements.lock", "requirements.lock"
    )
    return files
