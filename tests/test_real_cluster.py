"""Opt-in tests against a real cluster (`pytest -m cluster`), per docs/cluster-tests.md.

They drive the real `launch` console script with `LAUNCH_TEST_*` settings and skip, with the
reason, when `LAUNCH_TEST_CONTEXT` is not set. Names start with `lt-`; everything created is
deleted unless `LAUNCH_TEST_KEEP=1`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch.errors import ExitCode
from tests.compose_lab import quickstart_files
from tests.gitrepo import make_repo

pytestmark = pytest.mark.cluster

CONTEXT = os.environ.get("LAUNCH_TEST_CONTEXT")
NAMESPACE = os.environ.get("LAUNCH_TEST_NAMESPACE", "launch-test")
LAUNCH = str(Path(sys.executable).with_name("launch"))
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
KEEP = os.environ.get("LAUNCH_TEST_KEEP") == "1"
GIT_REMOTE = os.environ.get("LAUNCH_TEST_GIT_REMOTE")
GPUS = int(os.environ.get("LAUNCH_TEST_GPUS") or "0")
QUEUE = os.environ.get("LAUNCH_TEST_QUEUE")

if not CONTEXT:
    pytest.skip("set LAUNCH_TEST_CONTEXT to run the real-cluster tests", allow_module_level=True)


def launch_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "LAUNCH_HOME": str(home), "LAUNCH_BACKEND": "katib"}
    env["LAUNCH_CONTEXT"] = CONTEXT or ""
    env["LAUNCH_NAMESPACE"] = NAMESPACE
    for ours, theirs in (
        ("LAUNCH_TEST_REGISTRY", "LAUNCH_REGISTRY"),
        ("LAUNCH_TEST_REGISTRY_PULL", "LAUNCH_REGISTRY_PULL"),
        ("LAUNCH_TEST_REGISTRY_URL", "LAUNCH_REGISTRY_URL"),
        ("LAUNCH_TEST_MLFLOW_URI", "LAUNCH_MLFLOW_TRACKING_URI"),
    ):
        if os.environ.get(ours):
            env[theirs] = os.environ[ours]
    return env


def run(
    cwd: Path, home: Path, *args: str, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAUNCH, *args],
        cwd=cwd,
        env=launch_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """The quickstart as a dirty project (built with --allow-dirty: no remote needed)."""
    files = quickstart_files()
    files["Dockerfile"] = (EXAMPLE / "Dockerfile").read_text()
    repo = make_repo(tmp_path, f"lt-{secrets.token_hex(3)}", files=files, remote=False)
    (repo.path / "search.yaml").write_text(
        (EXAMPLE / "search.yaml").read_text().replace("maxTrialCount: 6", "maxTrialCount: 2")
    )
    yield repo.path


def cancel(cwd: Path, home: Path, name: str) -> None:
    if not KEEP:
        run(cwd, home, "cancel", name, timeout=120)


def test_doctor_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [LAUNCH, "doctor"], env=launch_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("kubeconfig", "api", "katib", "namespace", "registry"):
        assert check in done.stdout


def test_dirty_build_then_reuse_and_a_sweep(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    args = ["--allow-dirty", "--name", name, "--wait", "all", "--timeout", "25m"]
    first = run(project, home, *args, "search.yaml", "--", "python", "train.py")
    try:
        assert first.returncode == 0, first.stderr
        results = json.loads(run(project, home, "results", name, "--json").stdout)
        assert len(results) == 2 and all(r["objective"] is not None for r in results)
        # Same tree again: the image is found by its tree-hash tag, no build.
        again = run(project, home, "--allow-dirty", "--name", name + "b", "--detach", "search.yaml",
                    "--", "python", "train.py")  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "already built" in again.stderr and "building the image" not in again.stderr
        cancel(project, home, name + "b")
    finally:
        cancel(project, home, name)


def test_failing_trials_exit_5(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    done = run(project, home, "--allow-dirty", "--name", name, "--timeout", "20m", "search.yaml", "--",
               "python", "-c", "raise SystemExit(3)")  # fmt: skip
    try:
        assert done.returncode == ExitCode.TRIAL_FAILED, done.stderr
    finally:
        cancel(project, home, name)


def test_ctrl_c_detaches_and_watch_reattaches(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    proc = subprocess.Popen(
        [LAUNCH, "--allow-dirty", "--name", name, "search.yaml", "--", "python", "train.py"],
        cwd=project, env=launch_env(home), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline and not (home / "experiments" / name).exists():
            time.sleep(2)  # created once the image is built and the Experiment exists
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.DETACHED, err
        watched = run(project, home, "watch", name, timeout=1800)
        assert watched.returncode == 0, watched.stderr
    finally:
        cancel(project, home, name)


@pytest.mark.skipif(not GIT_REMOTE, reason="set LAUNCH_TEST_GIT_REMOTE for the git-context build")
def test_git_context_build_then_relaunch_starts_no_job(tmp_path: Path) -> None:
    """Check 2: a pushed commit of a clone of this repository builds from git (Kaniko clones
    it); the same commit again finds the image by its tag and starts no build Job."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--depth", "1", GIT_REMOTE or "", str(clone)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    cwd, home = clone / "examples" / "quickstart", tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    args = ["--dockerfile", "examples/quickstart/Dockerfile", "--detach"]
    first = run(cwd, home, *args, "--rebuild", "--name", name, "search.yaml", "--", "python",
                "train.py")  # fmt: skip
    try:
        assert first.returncode == 0, first.stderr
        assert "building the image in-cluster" in first.stderr
        again = run(cwd, home, *args, "--name", name + "b", "search.yaml", "--", "python",
                    "train.py")  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "already built" in again.stderr and "building the image" not in again.stderr
        cancel(cwd, home, name + "b")
    finally:
        cancel(cwd, home, name)


@pytest.mark.skipif(not QUEUE, reason="set LAUNCH_TEST_QUEUE (a LocalQueue with no GPU quota)")
def test_queued_trials_say_not_admitted(project: Path, tmp_path: Path) -> None:
    """Check 7: the queue's ClusterQueue has no GPU quota, so a 1-GPU trial's Workload is never
    admitted; launch says so while it waits, and the trial Jobs carry the queue label."""
    home = tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    done = run(project, home, "--allow-dirty", "--name", name, "--queue", QUEUE or "", "--gpus",
               "1", "--timeout", "4m", "search.yaml", "--", "python", "train.py")  # fmt: skip
    try:
        assert done.returncode == ExitCode.TIMED_OUT, done.stderr
        assert "queued in Kueue, not admitted" in done.stderr
        status = json.loads(run(project, home, "status", name, "--json").stdout)
        assert any("not admitted" in why for why in status["pending"].values())
        assert "Succeeded" not in status["trials"]
    finally:
        cancel(project, home, name)


@pytest.mark.skipif(GPUS <= 0, reason="set LAUNCH_TEST_GPUS (GPUs per trial) for the GPU test")
def test_a_gpu_trial_sees_its_gpus(project: Path, tmp_path: Path) -> None:
    """Check 8: a trial asking for GPUs sees exactly that many (`nvidia-smi -L` inside the
    trial, no runtimeClassName), then runs the trainer with its flags."""
    home = tmp_path / "home"
    name = f"lt-{secrets.token_hex(3)}"
    script = 'nvidia-smi -L && exec python train.py "$@"'  # the flags arrive as "$@"
    done = run(project, home, "--allow-dirty", "--name", name, "--gpus", str(GPUS), "--timeout",
               "25m", "search.yaml", "--", "sh", "-c", script, "sh")  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        rows = json.loads(run(project, home, "results", name, "--per-trial", "--json").stdout)
        first = next(r for r in rows if r["status"] == "Succeeded")
        logs = run(project, home, "logs", name, "--trial", str(first["number"]))
        assert sum(line.startswith("GPU ") for line in logs.stdout.splitlines()) == GPUS
    finally:
        cancel(project, home, name)


@pytest.mark.skipif(
    not os.environ.get("LAUNCH_REGISTRY_TOKEN"),
    reason="set LAUNCH_REGISTRY_TOKEN (docs/cluster-setup.md, Registry push tokens) to test the gate",
)
def test_the_push_gate_takes_my_build_under_my_prefix(project: Path, tmp_path: Path) -> None:
    """deploy/registry's gate on the real cluster: doctor names the token's prefix; a build is
    pushed to staging/ by Kaniko and copied under the prefix; without the token the same build
    is refused with the hint to set one, and nothing is created."""
    home = tmp_path / "home"
    doctor = subprocess.run([LAUNCH, "doctor"], env=launch_env(tmp_path), capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert "the push gate puts your images under" in doctor.stdout, doctor.stdout
    name = f"lt-{secrets.token_hex(3)}"
    (project / "gate.txt").write_text(name)  # a tree of its own: a build is needed
    first = run(project, home, "--allow-dirty", "--rebuild", "--name", name, "--detach",
                "search.yaml", "--", "python", "train.py")  # fmt: skip
    try:
        assert first.returncode == 0, first.stderr
        assert "copied from staging/" in first.stderr or "composed image" in first.stderr
    finally:
        cancel(project, home, name)
    env = {k: v for k, v in launch_env(home).items() if k != "LAUNCH_REGISTRY_TOKEN"}
    (project / "gate.txt").write_text(name + " again")
    refused = subprocess.run(
        [LAUNCH, "--allow-dirty", "--name", name + "n", "--detach", "search.yaml", "--",
         "python", "train.py"], cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert refused.returncode != 0 and "LAUNCH_REGISTRY_TOKEN" in refused.stderr
