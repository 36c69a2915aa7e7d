"""The cluster backend end to end: the real `kubernetes` client talking HTTP to the API emulator,
the real Distribution registry behind the emulator's service proxy, real git repos, and the CLI
(in-process through CliRunner, and as a real process where signals matter)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from launch import cli, git, registry, registry_push
from launch.errors import ExitCode
from tests.compose_lab import quickstart_files
from tests.gitrepo import make_repo
from tests.kube_emulator import Denied, KanikoController, KatibController, KubeEmulator, running
from tests.registry_server import Registry, push_tiny_image, running_registry

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
LAUNCH = str(Path(sys.executable).with_name("launch"))
NS = "default"


@dataclass
class Lab:
    """A user's project, a cluster (emulated API, real registry) and the env to reach it."""

    repo: Path
    kube: KubeEmulator
    registry: Registry
    kaniko: KanikoController
    katib: KatibController
    env: dict[str, str]
    commit: str


@pytest.fixture
def lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    files = quickstart_files()
    files["Dockerfile"] = files.get("Dockerfile", "FROM python:3.12-slim\n")
    repo = make_repo(tmp_path, "lab-project", files=files, remote=False)
    repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    repo.git("branch", "--set-upstream-to=origin/main")
    trainer = request.node.get_closest_marker("trainer") is not None
    with running_registry(tmp_path) as reg, running(trainer=trainer) as kube:
        kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", reg.port))
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

        def push(job: dict[str, Any], _digest: str) -> str:
            # What Kaniko does: push the image for the destination's tag to the registry.
            args = job["spec"]["template"]["spec"]["containers"][0]["args"]
            destination = next(a for a in args if a.startswith("--destination="))
            repository, tag = destination.split("/", 1)[1].rsplit(":", 1)
            labels = dict(
                a[len("--label=") :].split("=", 1) for a in args if a.startswith("--label=")
            )
            return push_tiny_image(reg.url, repository, tag, labels=labels)

        env = {
            "KUBECONFIG": str(kubeconfig),
            "LAUNCH_BACKEND": "katib",
            # The Kaniko path, whole images built by a Job; tests/test_compose.py has the
            # default one (composed in the registry), whose labs push realistic dependency images.
            "LAUNCH_BUILD": "kaniko",
            "LAUNCH_KATIB_URL": "http://katib.lab",
            "LAUNCH_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "NO_COLOR": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(repo.path)
        yield Lab(repo.path, kube, reg, KanikoController(kube, on_success=push), KatibController(kube), env,
                  repo.head())  # fmt: skip


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, cli.with_default_command(list(args)), prog_name="launch")


def creates(kube: KubeEmulator, resource: str) -> int:
    """Real (not dry-run) creates of `resource`."""
    return sum(
        1
        for r in kube.requests
        if r.verb == "create" and r.resource == resource and "dryRun" not in r.query
    )


RUN = ["search.yaml", "--", "python", "train.py"]


def test_first_launch_builds_then_relaunch_reuses(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.kaniko.auto("succeed")
    monkeypatch.setenv(
        "LAUNCH_MLFLOW_URL", "http://127.0.0.1:9"
    )  # nothing listens: a fallback link
    result = invoke("--name", "first", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "MLflow: http://127.0.0.1:9/#/experiments (experiment first" in result.stdout
    assert creates(lab.kube, "jobs") == 1
    exp = lab.kube.get_object("experiments", NS, "first")
    assert exp is not None
    image = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    # Trials pull by the digest Kaniko pushed, from the name nodes pull from.
    pushed = registry.manifest_digest(
        repository="lab-project", tag=lab.commit, base_url=lab.registry.url
    )
    assert image == f"127.0.0.1:30500/lab-project@{pushed}"
    assert "Katib:  http://katib.lab/katib/experiment/default/first?tab=trials" in result.stdout
    # The relaunch of the same commit: zero builds, few requests before the Experiment exists.
    lab.kube.reset_requests()
    result = invoke("--name", "second", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert creates(lab.kube, "jobs") == 0
    before = []
    for request in lab.kube.requests:
        if (
            request.verb == "create"
            and request.resource == "experiments"
            and "dryRun" not in request.query
        ):
            break
        before.append(request)
    # 10, and two GETs (manifest, config) that check the reused image says it is this commit.
    assert len(before) + 1 <= 12, [f"{r.method} {r.path}" for r in before]
    second = lab.kube.get_object("experiments", NS, "second")
    assert second is not None
    assert (
        second["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == image
    )


@pytest.mark.timeout(300)
def test_the_mlflow_experiment_is_made_at_submit_so_its_link_is_exact(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from tests.mlflow_server import shared_mlflow_server

    server = shared_mlflow_server()
    monkeypatch.setenv("LAUNCH_MLFLOW_URL", server.uri)
    lab.kaniko.auto("succeed")
    result = invoke("--name", "tracked", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    made = MlflowClient(server.uri).get_experiment_by_name("tracked")
    assert made is not None
    assert f"MLflow: {server.uri}/#/experiments/{made.experiment_id}" in result.stdout
    assert made.tags["katib.url"] == "http://katib.lab/katib/experiment/default/tracked?tab=trials"
    # An MLflow experiment that exists already (made by hand, or an earlier sweep) is reused.
    mine = MlflowClient(server.uri).create_experiment("mine")
    again = invoke("--name", "mine", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert f"MLflow: {server.uri}/#/experiments/{mine}" in again.stdout
    # The same launch name again: refused before anything reaches the cluster.
    lab.kube.reset_requests()
    clash = invoke("--name", "mine", "--detach", *RUN)
    assert clash.exit_code == ExitCode.USAGE and "already exists" in clash.stderr
    assert lab.kube.requests == []


def test_build_failure_prints_log_exits_4_creates_no_experiment(lab: Lab) -> None:
    noise = "".join(f"build line {i}\n" for i in range(1, 80))
    lab.kaniko.auto("fail", log=noise + "error: COPY failed: file not found: requirements.lock\n")
    result = invoke("--name", "broken", "--detach", *RUN)
    assert result.exit_code == ExitCode.BUILD_FAILED, result.output
    assert "COPY failed: file not found" in result.stderr
    # The last 50 lines of the build's log: 49 of the noise, then the error.
    assert "build line 31\n" in result.stderr and "build line 30\n" not in result.stderr
    assert creates(lab.kube, "experiments") == 0


def test_namespace_without_label_is_refused_before_anything(lab: Lab) -> None:
    lab.kube.put(
        "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}}
    )
    result = invoke("--name", "nolabel", "--namespace", "bare", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE
    assert (
        "kubectl label namespace bare katib.kubeflow.org/metrics-collector-injection=enabled"
        in result.stderr
    )
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0


def test_webhook_denial_before_any_build(lab: Lab) -> None:
    def deny(obj: dict[str, Any], operation: str, dry_run: bool) -> None:
        raise Denied('spec.algorithm.algorithmName: Invalid value: "random": not supported here')

    lab.kube.add_admission("experiments", deny)
    lab.kaniko.auto("succeed")
    result = invoke("--name", "denied", "--detach", *RUN)
    assert result.exit_code != 0
    assert "not supported here" in result.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0


def test_registry_down_is_a_clear_error_and_nothing_is_created(lab: Lab) -> None:
    lab.registry.stop()
    result = invoke("--name", "noreg", "--detach", *RUN)
    assert result.exit_code != 0
    assert "error:" in result.stderr and "hint:" in result.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0


def test_dirty_tree_refused_with_exit_3(lab: Lab) -> None:
    (lab.repo / "train.py").write_text("# edited\n")
    result = invoke("--name", "dirty", "--detach", *RUN)
    assert result.exit_code == ExitCode.GIT_STATE and "--allow-dirty" in result.stderr
    assert lab.kube.requests == []  # refused before any request


def test_allow_dirty_builds_the_uploaded_working_tree_then_reuses_it(lab: Lab) -> None:
    (lab.repo / "train.py").write_text((lab.repo / "train.py").read_text() + "# edited\n")
    lab.kaniko.auto("succeed")
    result = invoke("--allow-dirty", "--name", "dirty1", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "uploaded the build context" in result.stderr
    (job,) = lab.kube.objects("jobs", NS)
    pod = job["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]  # fetches the uploaded context and checks its sha256
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env["CONTEXT_URL"].endswith(f"/v2/lab-project/context/blobs/{env['CONTEXT_DIGEST']}")
    transport = registry.HttpTransport(lab.registry.url, timeout_s=5)
    assert registry_push.blob_exists(
        repository="lab-project/context", digest=env["CONTEXT_DIGEST"], transport=transport
    )  # the bytes the build pod fetches are in the real registry
    destination = next(a for a in pod["containers"][0]["args"] if a.startswith("--destination="))
    assert destination.rsplit(":", 1)[1] == git.tree_hash(lab.repo) != lab.commit
    # The same tree again: no upload, no build.
    lab.kube.reset_requests()
    again = invoke("--allow-dirty", "--name", "dirty2", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert "already built" in again.stderr and "uploaded" not in again.stderr
    assert creates(lab.kube, "jobs") == 0
    assert not [r for r in lab.kube.requests if r.verb == "proxy" and r.method in ("POST", "PUT")]


def test_render_allow_dirty_lists_what_would_be_uploaded(lab: Lab) -> None:
    """The upload is a blob anyone who can read the registry can fetch: render says what is in
    it, and what .dockerignore leaves out is not."""
    (lab.repo / ".dockerignore").write_text(".env\n")
    (lab.repo / ".env").write_text("MY_API_TOKEN=hunter2\n")
    (lab.repo / "notes.txt").write_text("untracked, not ignored: uploaded\n")
    result = invoke("render", "--allow-dirty", "--json", *RUN)
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["upload"]["files"]
    assert "notes.txt" in files and "train.py" in files and ".dockerignore" in files
    assert ".env" not in files
    text = invoke("render", "--allow-dirty", *RUN).stdout
    assert "# the build context Kaniko builds is uploaded:" in text
    assert "#   notes.txt\n" in text and ".env\n" not in text
    assert creates(lab.kube, "jobs") == 0
    assert not [r for r in lab.kube.requests if r.verb == "proxy"]  # nothing uploaded


def test_a_tag_this_clone_did_not_make_is_built_not_run(lab: Lab) -> None:
    """image_trust = local (the default): an image under the commit's tag that this clone never
    recorded is not run, whatever its labels; Kaniko builds the commit (without the shared
    layer cache) and the relaunch reuses that build by its digest."""
    swapped = push_tiny_image(lab.registry.url, "lab-project", lab.commit, payload=b"not ours\n",
                              labels={"org.opencontainers.image.revision": lab.commit})  # fmt: skip
    lab.kaniko.auto("succeed")
    result = invoke("--name", "fresh", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    (job,) = lab.kube.objects("jobs", NS)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--cache=false" in args and not any(a.startswith("--cache-repo") for a in args)
    (exp,) = lab.kube.objects("experiments", NS)
    assert swapped not in json.dumps(exp)
    again = invoke("--name", "again", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert "already built by this clone" in again.stderr and creates(lab.kube, "jobs") == 1
    stored = json.loads((Path(lab.env["LAUNCH_HOME"]) / "images.json").read_text())
    assert [r["digest"] for r in stored["images"].values()] != [swapped]
    assert oct((Path(lab.env["LAUNCH_HOME"]) / "images.json").stat().st_mode & 0o777) == "0o600"


def test_labels_trust_refuses_a_swapped_image(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """image_trust = labels: someone pushed another image under this commit's tag: launch names
    it and stops."""
    monkeypatch.setenv("LAUNCH_IMAGE_TRUST", "labels")
    other = "f" * 40
    push_tiny_image(lab.registry.url, "lab-project", lab.commit, payload=b"not ours\n",
                    labels={"org.opencontainers.image.revision": other})  # fmt: skip
    result = invoke("--name", "swapped", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"image lab-project:{lab.commit[:12]}" in result.stderr
    assert f"says it was built from {other}, not {lab.commit[:12]}" in result.stderr
    assert "--rebuild" in result.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0
    assert creates(lab.kube, "pods") == 0  # not even the preflight ran in it


def test_labels_trust_builds_an_unlabelled_image_again(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image from before launch labelled its builds (or not from launch): rebuilt, said."""
    monkeypatch.setenv("LAUNCH_IMAGE_TRUST", "labels")
    push_tiny_image(lab.registry.url, "lab-project", lab.commit)
    lab.kaniko.auto("succeed")
    result = invoke("--name", "unlabelled", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert "does not say what it was built from" in result.stderr
    assert creates(lab.kube, "jobs") == 1 and creates(lab.kube, "experiments") == 1
    (job,) = lab.kube.objects("jobs", NS)
    assert "--cache=true" in job["spec"]["template"]["spec"]["containers"][0]["args"]
    # Rebuilt with the label: the next launch of the commit reuses it.
    again = invoke("--name", "relabelled", "--detach", *RUN)
    assert again.exit_code == 0, again.output
    assert "already built" in again.stderr and creates(lab.kube, "jobs") == 1


def test_allow_dirty_without_the_dockerfile_creates_nothing(lab: Lab) -> None:
    (lab.repo / "Dockerfile").unlink()  # deleted in the working tree, which is what is built
    lab.kaniko.auto("succeed")
    result = invoke("--allow-dirty", "--name", "nodockerfile", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Dockerfile does not exist in the working tree" in result.stderr
    assert "hint:" in result.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0
    assert not [r for r in lab.kube.requests if r.verb == "proxy"]  # nothing uploaded


def test_a_dockerfile_missing_at_the_commit_is_refused_before_anything(lab: Lab) -> None:
    result = invoke("--dockerfile", "docker/Dockerfile", "--name", "nofile", "--detach", *RUN)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"docker/Dockerfile does not exist at commit {lab.commit[:12]}" in result.stderr
    assert creates(lab.kube, "jobs") == 0 and creates(lab.kube, "experiments") == 0


def test_create_500_is_retried_without_two_experiments(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    lab.kube.fail_next("create", "experiments", code=500, dry_run=False)
    result = invoke("--name", "retry", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    assert len(lab.kube.objects("experiments", NS)) == 1


def _once_watching(lab: Lab, resource: str) -> str:
    """The Experiment's name, once it exists and launch watches `resource` (plural)."""
    lab.kube.wait_for(lambda: lab.kube.objects("experiments", NS), timeout_s=30)
    deadline = time.monotonic() + 30
    while not lab.kube.count(verb="watch", resource=resource) and time.monotonic() < deadline:
        time.sleep(0.02)  # requests are not object changes: wait_for would not wake
    return str(lab.kube.objects("experiments", NS)[0]["metadata"]["name"])


def _drive_trials(lab: Lab, outcome: str) -> threading.Thread:
    """Play Katib once the Experiment exists: two trials, one fails, then `outcome` for the other."""

    def play() -> None:
        # Start once launch is watching, so the trials' changes arrive as events, in order.
        name = _once_watching(lab, "trials")
        first, second = lab.katib.create_trials(
            NS, name, [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"},
                       {"optim.lr": 0.05, "hidden": 16, "activation": "tanh"}]
        )  # fmt: skip
        lab.katib.run_trial(NS, first.name)
        lab.katib.fail_trial(
            NS, first.name, log="Traceback (most recent call last):\nValueError: bad lr\n"
        )
        lab.katib.run_trial(NS, second.name)
        if outcome == "succeed":
            lab.katib.succeed_trial(NS, second.name, {"val_loss": 0.02, "train_loss": 0.03})
        elif outcome == "unavailable":
            lab.katib.metrics_unavailable(NS, second.name, log="done\n")
            lab.katib.finish(NS, name, succeeded=False)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def test_waits_until_the_first_trial_succeeds(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    driver = _drive_trials(lab, "succeed")
    result = invoke("--name", "waits", "--timeout", "60s", *RUN)
    driver.join(5)
    assert result.exit_code == 0, result.output
    assert "Failed" in result.stderr and "ValueError: bad lr" in result.stderr
    assert "Succeeded" in result.stderr and "val_loss=0.02" in result.stderr
    assert "a first trial of waits succeeded" in result.stderr
    # Each trial's reported states only move forward (never Running -> Pending).
    order = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2}
    seen: dict[str, list[int]] = {}
    for m in re.finditer(r"(waits-\w+) (Pending|Running|Succeeded|Failed)\b", result.stderr):
        seen.setdefault(m[1], []).append(order[m[2]])
    assert len(seen) == 2 and all(states == sorted(states) for states in seen.values()), seen


def test_wait_all_returns_once_every_trial_has_finished(lab: Lab) -> None:
    lab.kaniko.auto("succeed")

    def play() -> None:
        _once_watching(lab, "trials")
        first, second = lab.katib.create_trials(
            NS, "all", [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"},
                        {"optim.lr": 0.05, "hidden": 16, "activation": "tanh"}]
        )  # fmt: skip
        lab.katib.run_trial(NS, first.name)
        lab.katib.succeed_trial(NS, first.name, {"val_loss": 0.3, "train_loss": 0.3})
        time.sleep(0.5)  # `--wait first` would have returned here
        lab.katib.run_trial(NS, second.name)
        lab.katib.succeed_trial(NS, second.name, {"val_loss": 0.1, "train_loss": 0.1})
        lab.katib.finish(NS, "all", succeeded=True)

    driver = threading.Thread(target=play, daemon=True)
    driver.start()
    result = invoke("--name", "all", "--wait", "all", "--timeout", "60s", *RUN)
    driver.join(5)
    assert result.exit_code == 0, result.output
    assert "val_loss=0.3" in result.stderr and "val_loss=0.1" in result.stderr
    assert "a first trial of all succeeded" not in result.stderr


def test_rebuild_builds_an_existing_image_again(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    assert invoke("--name", "rb1", "--detach", *RUN).exit_code == 0
    assert creates(lab.kube, "jobs") == 1
    again = invoke("--name", "rb2", "--detach", "--rebuild", *RUN)
    assert again.exit_code == 0, again.output
    assert creates(lab.kube, "jobs") == 2 and "already built" not in again.stderr
    # Deleted behind launch's back (not `launch cancel`): said plainly, not an empty table.
    lab.kube.remove("experiments", NS, "rb2")
    gone = invoke("results", "rb2")
    assert gone.exit_code == ExitCode.USAGE and "no longer exists on the cluster" in gone.stderr


def test_the_created_experiment_is_the_rendered_one(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    args = ("--name", "same", "--gpus", "2", "--env", "A=1", *RUN)
    rendered = json.loads(invoke("render", "--json", *args).stdout)["experiment"]
    assert invoke("--detach", *args).exit_code == 0
    created = lab.kube.get_object("experiments", NS, "same")
    assert created is not None

    def image(exp: dict[str, Any]) -> str:
        found: str = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
            "containers"
        ][0]["image"]
        return found

    # Only the image differs (in the container and its env): the digest Kaniko reported.
    assert image(created).startswith("127.0.0.1:30500/lab-project@sha256:")
    assert image(rendered) == f"127.0.0.1:30500/lab-project:{lab.commit}"
    same = json.loads(json.dumps(rendered).replace(image(rendered), image(created)))
    for key in ("apiVersion", "kind", "spec"):
        assert created[key] == same[key], key
    # ... and the request id that makes a retried create idempotent.
    assert created["metadata"]["annotations"].pop("launch/request-id")
    assert {k: created["metadata"].get(k) for k in same["metadata"]} == same["metadata"]
    # A trial of it, rerun by hand: the pinned image, its GPUs, its exact flags.
    lab.katib.create_trials(NS, "same", [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"}])
    rerun = invoke("results", "same", "--trial", "1", "--rerun")
    assert rerun.exit_code == 0, rerun.output
    assert rerun.stdout.startswith(f"docker run --rm --gpus 2 {image(created)} sh -c ")
    assert "--optim.lr=0.01 --hidden=8 --activation=relu" in rerun.stdout
    assert "port-forward svc/registry 5000:5000" in rerun.stderr and lab.commit[:12] in rerun.stderr


def test_a_role_without_events_still_watches(lab: Lab) -> None:
    """Events only explain pending trials: without access to them the watch goes on."""
    lab.kube.forbid("list", "events", NS)
    lab.kube.forbid("watch", "events", NS)
    lab.kaniko.auto("succeed")
    driver = _drive_trials(lab, "succeed")
    result = invoke("--name", "noevents", "--timeout", "60s", *RUN)
    driver.join(5)
    assert result.exit_code == 0, result.output
    assert invoke("status", "noevents").exit_code == 0
    # The stream that lost its access says so once (when it loses before the verdict).
    import queue

    from launch import submit
    from launch.cluster import ClusterError

    def refused() -> Iterator[Any]:
        raise ClusterError("cannot watch events", status=403)
        yield  # a generator, as cluster.watch is

    for tag, expected in (("event", "lost"), ("workload", "lost"), ("trial", "error")):
        out: queue.Queue[tuple[str, Any]] = queue.Queue()
        submit._pump(refused(), out, tag, threading.Event())
        assert out.get_nowait()[0] == expected, tag


def test_failed_experiment_exits_5_with_expected_tags(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    driver = _drive_trials(lab, "unavailable")
    result = invoke("--name", "fails", "--timeout", "60s", *RUN)
    driver.join(5)
    assert result.exit_code == ExitCode.TRIAL_FAILED, result.output
    assert "MetricsUnavailable" in result.stderr
    assert "val_loss" in result.stderr  # which tags the collector expected


def test_timeout_exits_6_and_the_experiment_stays(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    result = invoke("--name", "slow", "--timeout", "1s", *RUN)
    assert result.exit_code == ExitCode.TIMED_OUT, result.output
    assert "launch watch slow" in result.stderr
    assert lab.kube.get_object("experiments", NS, "slow") is not None


def _spawn(lab: Lab, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [LAUNCH, *args], cwd=lab.repo, env={**os.environ, **lab.env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_ctrl_c_during_build_deletes_the_job_and_creates_nothing(lab: Lab) -> None:
    lab.kaniko.auto("run")
    proc = _spawn(lab, "--name", "ctrlbuild", *RUN)
    lab.kube.wait_for(lambda: lab.kube.objects("jobs", NS), timeout_s=60)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.DETACHED, err
    assert lab.kube.objects("jobs", NS) == []  # the build Job was deleted
    assert creates(lab.kube, "experiments") == 0


def test_ctrl_c_during_watch_detaches_and_the_experiment_keeps_running(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    proc = _spawn(lab, "--name", "ctrlwatch", *RUN)
    lab.kube.wait_for(lambda: lab.kube.objects("experiments", NS), timeout_s=60)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.DETACHED, err
    assert "launch watch ctrlwatch" in err
    assert lab.kube.get_object("experiments", NS, "ctrlwatch") is not None


def test_dry_run_on_katib_touches_nothing(lab: Lab) -> None:
    result = invoke("--name", "dry", "--dry-run", *RUN)
    assert result.exit_code == 0, result.output
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout)] == ["Job", "Experiment"]
    assert lab.kube.requests == []


def test_state_records_the_cluster_experiment(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    assert invoke("--name", "rec", "--detach", *RUN).exit_code == 0
    meta = json.loads(
        (Path(lab.env["LAUNCH_HOME"]) / "experiments" / "rec" / "experiment.json").read_text()
    )
    assert meta["backend"] == "katib" and meta["namespace"] == NS and meta["commit"] == lab.commit


def test_cluster_experiment_commands_status_logs_results_cancel(lab: Lab) -> None:
    (lab.repo / "seeds.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: val_loss}\nfixed: {optim.lr: 0.05}\n"
    )
    subprocess.run(["git", "add", "seeds.yaml"], cwd=lab.repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "seeds"],
        cwd=lab.repo,
        check=True,
    )
    subprocess.run(
        ["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=lab.repo, check=True
    )
    lab.kaniko.auto("succeed")
    result = invoke(
        "--name", "sds", "--seeds", "3", "--detach", "seeds.yaml", "--", "python", "train.py"
    )
    assert result.exit_code == 0, result.output
    trials = lab.katib.create_trials(NS, "sds", [{"seed": 0}, {"seed": 1}, {"seed": 2}])
    for handle, loss in zip(trials, (0.3, 0.2, 0.25), strict=True):
        lab.katib.run_trial(NS, handle.name)
        lab.katib.succeed_trial(
            NS, handle.name, {"val_loss": loss, "train_loss": loss}, log=f"loss {loss}\n"
        )

    status = json.loads(invoke("status", "sds", "--json").stdout)
    assert status["backend"] == "katib" and status["trials"] == {"Succeeded": 3}
    assert status["best"]["objective"] == pytest.approx(0.2)
    # Trials created in the same second (timestamps are whole seconds) are numbered by name, so
    # the number is looked up as a user would: from the per-trial results.
    rows = json.loads(invoke("results", "sds", "--per-trial", "--json").stdout)
    best = next(r for r in rows if r["objective"] == pytest.approx(0.2))
    assert sorted(r["number"] for r in rows) == [1, 2, 3]
    logs = invoke("logs", "sds", "--trial", str(best["number"]))
    assert logs.exit_code == 0 and "loss 0.2" in logs.stdout
    grouped = invoke("results", "sds")  # a seed sweep: one config, its distribution
    assert grouped.exit_code == 0, grouped.output
    assert "3/3" in grouped.stdout and "0.25" in grouped.stdout  # n and the median
    cancel = invoke("cancel", "sds")
    assert cancel.exit_code == 0, cancel.output
    assert lab.kube.get_object("experiments", NS, "sds") is None
    # The results outlive the experiment: saved before the delete.
    saved = json.loads(invoke("results", "sds", "--per-trial", "--json").stdout)
    assert sorted(r["objective"] for r in saved) == pytest.approx([0.2, 0.25, 0.3])
    listed = json.loads(invoke("list", "--json").stdout)
    assert {"name": "sds", "status": "deleted"}.items() <= next(
        i for i in listed if i["name"] == "sds"
    ).items()


def test_logs_follow_streams_a_running_trial_until_it_ends(lab: Lab) -> None:
    lab.kaniko.auto("succeed")
    assert invoke("--name", "fol", "--detach", *RUN).exit_code == 0
    (trial,) = lab.katib.create_trials(
        NS, "fol", [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"}]
    )
    lab.katib.run_trial(NS, trial.name)
    lab.kube.set_pod_log(NS, trial.pod, "epoch 1\n", closed=False)

    def write_more() -> None:
        # Lines the trainer writes after `logs -f` started reading; then the container ends.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            r.resource == "pods/log" and r.query.get("follow") == "true" for r in lab.kube.requests
        ):
            time.sleep(0.02)
        lab.kube.append_pod_log(NS, trial.pod, "epoch 2\nepoch 3 done", close=True)

    writer = threading.Thread(target=write_more, daemon=True)
    writer.start()
    logs = invoke("logs", "fol", "-f")
    writer.join(timeout=30)
    assert logs.exit_code == 0, logs.output
    assert logs.stdout.splitlines() == ["epoch 1", "epoch 2", "epoch 3 done"]
    assert f"== {trial.name} (Running) pod {NS}/{trial.pod}" in logs.stderr


def test_pending_trials_say_why(lab: Lab) -> None:
    lab.kaniko.auto("succeed")

    def play() -> None:
        name = _once_watching(lab, "workloads")
        first, second, third, fourth, fifth = lab.katib.create_trials(
            NS, name, [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"},
                       {"optim.lr": 0.02, "hidden": 8, "activation": "relu"},
                       {"optim.lr": 0.03, "hidden": 8, "activation": "relu"},
                       {"optim.lr": 0.04, "hidden": 8, "activation": "relu"},
                       {"optim.lr": 0.05, "hidden": 8, "activation": "relu"}]
        )  # fmt: skip
        lab.katib.image_pull_backoff(NS, fifth.name)
        lab.katib.unschedulable(NS, first.name)
        lab.katib.kueue_pending(NS, second.name, queue="launch")
        # Only Events say these: kubelet cannot mount a volume; the Job controller makes no pod.
        lab.kube.remove("pods", NS, fourth.pod)
        for kind, name, reason, message in (
            ("Pod", third.pod, "FailedMount", 'persistentvolumeclaim "data" not found'),
            ("Job", fourth.job, "FailedCreate", 'pods "x" is forbidden: exceeded quota'),
            ("Pod", "someone-elses-pod", "BackOff", "not ours"),
        ):
            lab.kube.add_event(NS, involved_kind=kind, involved_name=name, type_="Warning",
                               reason=reason, message=message)  # fmt: skip

    threading.Thread(target=play, daemon=True).start()
    result = invoke("--name", "pend", "--queue", "launch", "--timeout", "8s", *RUN)
    assert result.exit_code == ExitCode.TIMED_OUT, result.output
    assert (
        "pending: unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
        in result.stderr
    )
    assert "queued in Kueue, not admitted" in result.stderr
    assert 'pending: FailedMount: persistentvolumeclaim "data" not found' in result.stderr
    assert 'pending: FailedCreate: pods "x" is forbidden: exceeded quota' in result.stderr
    assert "not ours" not in result.stderr
    # kubelet's Failed event says why the pull fails; the pod status only says it backs off.
    assert "pending: image pull failed (ImagePullBackOff): Failed to pull image" in result.stderr
    assert ": not found" in result.stderr
    # `status` says the same, at any later time, from one list each of pods, events, workloads.
    status = json.loads(invoke("status", "pend", "--json").stdout)
    reasons = sorted(status["pending"].values())
    assert len(reasons) == 5 and reasons[0].startswith("FailedCreate: ")
    assert any(r.startswith("unschedulable: 0/3 nodes") for r in reasons)
    shown = invoke("status", "pend")
    assert shown.exit_code == 0 and shown.stdout.count(" pending: ") == 5
    assert 'pending: FailedMount: persistentvolumeclaim "data" not found' in shown.stdout


def test_watch_json_reports_the_cluster_trials_as_events(lab: Lab) -> None:
    """`launch watch --json`: the cluster's trials as the same events the local backend sends,
    one JSON object a line; a failure carries its reason, the log tail follows as a note."""
    lab.kaniko.auto("succeed")
    created = invoke("--name", "evts", "--detach", *RUN)
    assert created.exit_code == 0, created.output
    driver = _drive_trials(lab, "unavailable")
    result = invoke("watch", "evts", "--json")
    driver.join(5)
    assert result.exit_code == ExitCode.TRIAL_FAILED, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = {e["trial"]: e for e in events if e["event"] == "trial_finished"}
    started = [e["trial"] for e in events if e["event"] == "trial_started"]
    # A state the watch saw only in passing (Running for a moment) may be skipped: a watch
    # reports what it sees, the final states always.
    assert set(started) <= set(finished) and len(finished) == 2, events
    statuses = sorted(e["status"] for e in finished.values())
    assert statuses == ["Failed", "MetricsUnavailable"]
    failed = next(e for e in finished.values() if e["status"] == "Failed")
    assert failed["params"]["optim.lr"] == 0.01 and failed["number"] in (1, 2)
    notes = [e["text"] for e in events if e["event"] == "note"]
    assert any("ValueError: bad lr" in text for text in notes)
    assert all(e["t"] > 0 for e in events)


def test_the_build_digest_comes_from_this_launchs_job_only(lab: Lab) -> None:
    """A pod of another Job of the same name (left over, or made by someone who deleted and
    recreated the build Job) that reports an image of its choosing is not read: only pods with
    this Job's controller-uid are."""
    evil = "sha256:" + "e" * 64
    lab.kube.put("pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "zz-build-namesake", "namespace": NS,
                     "labels": {"batch.kubernetes.io/job-name": "build-namesake",
                                "batch.kubernetes.io/controller-uid": "another-job"}},
        "spec": {"containers": [{"name": "kaniko", "image": "kaniko"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "kaniko", "state": {"terminated": {"exitCode": 0, "message": evil}}}]},
    })  # fmt: skip
    lab.kaniko.auto("succeed")
    result = invoke("--name", "namesake", "--detach", *RUN)
    assert result.exit_code == 0, result.output
    (exp,) = lab.kube.objects("experiments", NS)
    assert evil not in json.dumps(exp) and "@sha256:" in json.dumps(exp)
