"""Issue 19, per-prefix push rights, end to end: `launch` with a push token against a real
Distribution registry behind the real nginx gate (deploy/registry's configuration, rendered by
`launch.registry_gate`), through the API emulator's service proxy, as a user's laptop reaches
it. Kaniko's pushes (played by the emulator) go to staging/ without a token, as a build pod's
would; launch copies the image into the token's prefix by digest.

A launch with alice's token builds under alice/, relaunches reuse it, trials pull it from the
nodes' name under alice/; another user can neither overwrite alice's tags nor pass for her; a
launch without a token, or with one the gate does not know, stops before anything is created.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from launch import registry, registry_push
from launch.registry import HttpTransport, RegistryError
from tests import test_submit
from tests.gate_server import Gate, running_gate
from tests.registry_server import push_tiny_image
from tests.test_submit import NS, RUN, Lab, creates, invoke

lab = test_submit.lab

ALICE = "a" * 64
BOB = "b" * 64


@pytest.fixture
def gate(lab: Lab, tmp_path: Any) -> Iterator[Gate]:
    """The lab's registry behind the gate; the cluster's registry Service leads to the gate."""
    with running_gate(tmp_path, lab.registry.host, {"alice": ALICE, "bob": BOB}) as started:
        port = int(started.url.rsplit(":", 1)[1])
        lab.kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", port))
        yield started


def _kaniko_through(gate: Gate, lab: Lab) -> list[str]:
    """Kaniko's pushes, as a build pod makes them: to its --destination, through the gate,
    with no token. The destinations pushed."""
    from tests.kube_emulator import KanikoController

    pushed: list[str] = []

    def push(job: dict[str, Any], _digest: str) -> str:
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]
        destination = next(a for a in args if a.startswith("--destination="))
        repository, tag = destination.split("/", 1)[1].rsplit(":", 1)
        labels = dict(a[len("--label=") :].split("=", 1) for a in args if a.startswith("--label="))
        pushed.append(f"{repository}:{tag}")
        return push_tiny_image(gate.url, repository, tag, labels=labels)

    KanikoController(lab.kube, on_success=push).auto("succeed")
    return pushed


def _image(name: str, lab: Lab) -> str:
    exp = lab.kube.get_object("experiments", NS, name)
    assert exp is not None
    spec = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    return str(spec["containers"][0]["image"])


def test_a_token_puts_the_image_under_its_prefix_through_staging(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = _kaniko_through(gate, lab)
    monkeypatch.setenv("LAUNCH_REGISTRY_TOKEN", ALICE)
    result = invoke("--name", "gated", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert ALICE not in result.output  # the token is never printed
    # The build pod pushed to staging/ (open to pods), launch copied it to alice/ by digest.
    assert pushed == [f"staging/alice/lab-project:{lab.commit}"]
    (job,) = lab.kube.objects("jobs", NS)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--insecure-registry=registry.launch-system.svc.cluster.local:5000" in args
    staged = registry.manifest_digest(
        repository="staging/alice/lab-project", tag=lab.commit, base_url=lab.registry.url
    )
    mine = registry.manifest_digest(
        repository="alice/lab-project", tag=lab.commit, base_url=lab.registry.url
    )
    assert staged is not None and mine == staged
    assert _image("gated", lab) == f"127.0.0.1:30500/alice/lab-project@{mine}"
    assert f"copied from staging/alice/lab-project ({mine[:19]})" in result.stderr
    # Relaunch: the recorded digest, one HEAD under alice/, no build.
    again = invoke("--name", "gated2", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert creates(lab.kube, "jobs") == 1
    assert _image("gated2", lab) == _image("gated", lab)
    shown = invoke("config")
    assert shown.exit_code == 0 and ALICE not in shown.output and "(set)" in shown.output


def test_another_user_cannot_overwrite_or_pass_for_the_owner(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's token may push under bob/ only: a manifest PUT or a blob upload under alice/ is
    refused with the hint to use one's own token, and so is any delete."""
    _kaniko_through(gate, lab)
    monkeypatch.setenv("LAUNCH_REGISTRY_TOKEN", ALICE)
    assert invoke("--name", "owned", "--detach", *RUN).exit_code == 0
    digest = registry.manifest_digest(
        repository="alice/lab-project", tag=lab.commit, base_url=lab.registry.url
    )
    assert digest is not None
    media_type, body, _ = registry.get_manifest(
        repository="staging/alice/lab-project", reference=digest,
        transport=HttpTransport(gate.url),
    )  # fmt: skip
    from launch.build import TokenTransport

    as_bob = TokenTransport(HttpTransport(gate.url), BOB)
    with pytest.raises(RegistryError) as refused:
        registry_push.put_manifest(repository="alice/lab-project", tag="latest",
                                   media_type=media_type, data=body, transport=as_bob)  # fmt: skip
    assert "403" in refused.value.message and "LAUNCH_REGISTRY_TOKEN" in (refused.value.hint or "")
    with pytest.raises(RegistryError):
        registry_push.upload_blob(repository="alice/lab-project", data=b"poison", transport=as_bob)
    status, _, _ = as_bob.request("DELETE", f"/v2/alice/lab-project/manifests/{digest}", {})
    assert status == 403
    # bob's own prefix is his: the same copy into bob/ works.
    assert registry_push.copy_image(source="alice/lab-project", repository="bob/lab-project",
                                    tag="mine", digest=digest, transport=as_bob) == digest  # fmt: skip
    assert (
        registry.manifest_digest(
            repository="alice/lab-project", tag=lab.commit, base_url=lab.registry.url
        )
        == digest
    )


def test_without_a_known_token_nothing_is_created(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown token is refused by the gate before any build; no token at all means the
    first push (here the --allow-dirty context upload) is refused with the hint to set one.
    Neither leaves a Job or an Experiment behind."""
    _kaniko_through(gate, lab)
    monkeypatch.setenv("LAUNCH_REGISTRY_TOKEN", "c" * 64)
    result = invoke("--name", "stranger", "--detach", *RUN)
    assert result.exit_code != 0
    assert "does not know your push token" in result.stderr and "hint:" in result.stderr
    monkeypatch.delenv("LAUNCH_REGISTRY_TOKEN")
    (lab.repo / "notes.txt").write_text("uncommitted\n")
    result = invoke("--name", "anon", "--detach", "--allow-dirty", *RUN)
    assert result.exit_code != 0
    assert "403" in result.stderr and "LAUNCH_REGISTRY_TOKEN" in result.stderr, result.stderr
    assert creates(lab.kube, "jobs") == 0 and not lab.kube.objects("experiments", NS)


def test_the_token_belongs_in_env_or_the_user_file_not_the_project(lab: Lab) -> None:
    (lab.repo / ".launch.toml").write_text(f'registry_token = "{ALICE}"\n')
    result = invoke("render", *RUN)
    assert result.exit_code == 2
    assert "secret" in result.stderr and "LAUNCH_REGISTRY_TOKEN" in result.stderr
    assert ALICE not in result.output


def _registry_check(monkeypatch: pytest.MonkeyPatch, token: str | None) -> dict[str, Any]:
    import json

    if token is None:
        monkeypatch.delenv("LAUNCH_REGISTRY_TOKEN", raising=False)
    else:
        monkeypatch.setenv("LAUNCH_REGISTRY_TOKEN", token)
    result = invoke("doctor", "--json")
    checks = json.loads(result.stdout)
    found: dict[str, Any] = next(c for c in checks["checks"] if c["name"] == "registry")
    return found


def test_doctor_says_what_the_gate_makes_of_your_pushes(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = _registry_check(monkeypatch, ALICE)
    assert mine["ok"] is True and "under alice/" in mine["detail"], mine
    none = _registry_check(monkeypatch, None)
    assert none["ok"] is False and "by token only" in none["detail"]
    assert "LAUNCH_REGISTRY_TOKEN" in none["fix"]
    wrong = _registry_check(monkeypatch, "c" * 64)
    assert wrong["ok"] is False and "does not know your registry_token" in wrong["detail"]
    assert ALICE not in json_dump(mine) and "c" * 64 not in json_dump(wrong)


def json_dump(doc: Any) -> str:
    import json

    return json.dumps(doc)


def test_a_build_the_gate_refuses_says_to_set_the_token(
    lab: Lab, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token, and Kaniko (cloning the pushed commit, `git_context`: no upload first, which
    would meet the refusal itself) pushes to <repo>:<tag>:
    the gate refuses and Kaniko fails with the gate's words, which launch turns into the hint
    to set a push token."""
    status, _, body = HttpTransport(gate.url).request(
        "POST", "/v2/lab-project/blobs/uploads/", {}, b""
    )  # what the build pod's push meets
    assert status == 403
    kaniko_log = (
        "error pushing image: failed to push to destination registry.launch-system.svc.cluster."
        f"local:5000/lab-project:{lab.commit}: POST http://registry.launch-system.svc.cluster."
        f"local:5000/v2/lab-project/blobs/uploads/: DENIED: {registry._error_detail(body)}\n"
    )
    lab.kaniko.auto("fail", log=kaniko_log)
    monkeypatch.setenv("LAUNCH_GIT_CONTEXT", "true")
    result = invoke("--name", "nopush", "--detach", *RUN)
    assert result.exit_code != 0
    assert "the image build failed" in result.stderr
    assert "hint:" in result.stderr and "LAUNCH_REGISTRY_TOKEN" in result.stderr, result.stderr
    assert not lab.kube.objects("experiments", NS)
