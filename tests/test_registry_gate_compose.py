"""Issue 19 on the fast image path: behind the registry's gate, with a push token, the
dependency image Kaniko builds lands in staging/ and is copied under the token's prefix, and
the commit's image is composed there with the token (tests/test_compose.py's lab: emulated API,
real registry, a Kaniko stand-in pushing realistic dependency images)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch import registry
from tests import test_compose
from tests.compose_lab import EXAMPLE
from tests.gate_server import Gate, running_gate
from tests.test_compose import Lab, advance, trial_image
from tests.test_submit import creates, invoke

lab = test_compose.lab
RUN = test_compose.RUN
TOKEN = "d" * 64


@pytest.fixture
def gate(lab: Lab, tmp_path: Path) -> Iterator[Gate]:
    with running_gate(tmp_path, lab.registry.host, {"carol": TOKEN}) as started:
        port = int(started.url.rsplit(":", 1)[1])
        lab.kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", port))
        yield started


def test_the_composed_image_and_its_dependencies_live_under_the_prefix(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAUNCH_REGISTRY_TOKEN", TOKEN)
    result = invoke("--name", "fast", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    [deps] = lab.builds
    destination = next(a for a in deps["args"] if a.startswith("--destination="))
    assert destination.split("/", 1)[1] == f"staging/carol/lab-project:{deps['tag']}"
    # The context the dependency build reads was uploaded under the prefix, with the token.
    assert "/v2/carol/lab-project/context/blobs/sha256:" in json.dumps(deps["job"])
    staged = registry.manifest_digest(
        repository="staging/carol/lab-project", tag=deps["tag"], base_url=lab.registry.url
    )
    copied = registry.manifest_digest(
        repository="carol/lab-project", tag=deps["tag"], base_url=lab.registry.url
    )
    assert staged is not None and copied == staged
    commit = lab.repo.head()
    composed = registry.manifest_digest(
        repository="carol/lab-project", tag=commit, base_url=lab.registry.url
    )
    assert composed is not None
    assert trial_image(lab.kube, "fast") == f"127.0.0.1:30500/carol/lab-project@{composed}"
    # Nothing of this launch outside carol/ and staging/.
    catalog = registry.HttpTransport(lab.registry.url).request("GET", "/v2/_catalog", {})[2]
    assert {r.split("/")[0] for r in json.loads(catalog)["repositories"]} == {"carol", "staging"}
    # A code change: no Job, composed on the copied dependency image under the prefix.
    second = advance(lab.repo, {"train.py": (EXAMPLE / "train.py").read_text() + "\n# v2\n"}, "v2")
    again = invoke("--name", "fast2", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert creates(lab.kube, "jobs") == 1
    new = registry.manifest_digest(
        repository="carol/lab-project", tag=second, base_url=lab.registry.url
    )
    assert new is not None and new != composed
    assert trial_image(lab.kube, "fast2") == f"127.0.0.1:30500/carol/lab-project@{new}"
