"""Cluster backend requests and start-up, counted against the API emulator and a real registry.

One run, one lab (a real git repo whose https remote is faked with `update-ref`, the Kubernetes
API emulator of tests/ on 127.0.0.1, the real Distribution registry behind the emulator's service
proxy, a Kaniko controller that pushes a tiny image), three measurements (issue 5, "Benchmarks"):

1. Relaunch of an already-built commit: the first launch builds, then the same commit is launched
   again; both run the real console script (`launch --detach ...`) as a subprocess. Counted:
   build Jobs created, and every request before the Experiment's (real) create. Registry requests
   go through the emulator's service proxy (`services/proxy`), one emulator request per registry
   request, so "API requests" below = Kubernetes API requests + registry requests, each once.
   Goal: 0 build Jobs and <= 10 requests (the create itself included).
2. Waiting: `launch.submit.watch` (in-process) on an Experiment whose one trial runs forever, for
   a real T seconds with `window_s` scaled down from the default 300 s; the emulator honours the
   shorter timeoutSeconds, so T real seconds stand for T * 300 / window_s seconds of a default
   wait. Requests per simulated minute, goal <= 2; compared with polling every 2 s (30/min).
3. Time from command start to "experiment created" (the relaunch with --detach exits right after
   the create), as a ratio to the floor `python -c "import kubernetes, git, pydantic, yaml"`;
   medians of interleaved repeats. Goal <= 2.0.

Run: `uv run python bench/cluster_requests.py [--repeat N] [--wait-s T] [--window-s W]`.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from launch import spec as spec_module  # noqa: E402
from launch import submit  # noqa: E402
from launch.cluster import Cluster  # noqa: E402
from launch.errors import TimedOutError  # noqa: E402
from tests.compose_lab import kaniko_push, quickstart_files  # noqa: E402
from tests.gitrepo import make_repo  # noqa: E402
from tests.kube_emulator import KanikoController, KatibController, KubeEmulator, running  # noqa: E402
from tests.registry_server import running_registry  # noqa: E402

EXAMPLE = ROOT / "examples" / "quickstart"
LAUNCH = str(Path(sys.executable).with_name("launch"))
NS = "default"
RUN = ["search.yaml", "--", "python", "train.py"]
DEFAULT_WINDOW_S = 300.0
POLL_INTERVAL_S = 2.0
GOAL_REQUESTS = 10
GOAL_PER_MIN = 2.0
GOAL_RATIO = 2.0


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def is_create_of_experiment(r: Any) -> bool:
    return r.verb == "create" and r.resource == "experiments" and "dryRun" not in r.query


def real_creates(requests: list[Any], resource: str) -> int:
    return sum(
        1
        for r in requests
        if r.verb == "create" and r.resource == resource and "dryRun" not in r.query
    )


def describe(r: Any) -> str:
    dry = "  (dryRun=All)" if r.query.get("dryRun") else ""
    return f"{r.method:6} {r.path}{dry}   [{' '.join(filter(None, (r.verb, r.resource)))}]"


def launch_cmd(name: str) -> list[str]:
    # The preflight pod (issue 16) adds its own requests and seconds; bench/preflight.py
    # measures what it costs. These goals are about reaching the Experiment.
    return [LAUNCH, "--name", name, "--detach", "--no-preflight", *RUN]


def run_timed(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return elapsed


def make_lab_repo(tmp: Path) -> Path:
    files = quickstart_files()
    files.setdefault("Dockerfile", "FROM python:3.12-slim\n")
    repo = make_repo(tmp, "lab-project", files=files, remote=False)
    repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
    # A remote-tracking ref equal to HEAD: the commit counts as pushed, no network needed.
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
    repo.git("branch", "--set-upstream-to=origin/main")
    return repo.path


# --------------------------------------------------------------------------- 1. relaunch


def bench_relaunch(kube: KubeEmulator, repo: Path, env: dict[str, str]) -> bool:
    print("\n## 1. Relaunch of an already-built commit (subprocess: launch --detach)")
    kube.reset_requests()
    elapsed = run_timed(launch_cmd("first"), cwd=repo, env=env)
    first = list(kube.requests)
    print(
        f"first launch:  {real_creates(first, 'jobs')} build Job(s), {len(first)} requests in all, "
        f"{elapsed:.2f}s"
    )
    for i, r in enumerate(first, 1):
        print(f"  {i:2}. {describe(r)}")
    if real_creates(first, "jobs") != 1 or real_creates(first, "experiments") != 1:
        raise SystemExit("the first launch did not build and create as expected")

    kube.reset_requests()
    elapsed = run_timed(launch_cmd("second"), cwd=repo, env=env)
    second = list(kube.requests)
    index = next((i for i, r in enumerate(second) if is_create_of_experiment(r)), None)
    if index is None:
        raise SystemExit("the relaunch created no Experiment")
    until_created = second[: index + 1]
    jobs = real_creates(second, "jobs")
    print(f"relaunch:      {jobs} build Job(s), {elapsed:.2f}s; requests up to and including the")
    print("               Experiment's create (K8s API + registry via the service proxy):")
    for i, r in enumerate(until_created, 1):
        print(f"  {i:2}. {describe(r)}")
    after = second[index + 1 :]
    print(f"  ({len(after)} request(s) after the create)")
    by_kind = collections.Counter(
        "registry" if r.verb == "proxy" else "kubernetes" for r in until_created
    )
    n = len(until_created)
    ok = jobs == 0 and n <= GOAL_REQUESTS
    print(
        f"relaunch: {jobs} build Jobs, {n} requests until the Experiment exists "
        f"({by_kind['kubernetes']} Kubernetes API, {by_kind['registry']} registry) "
        f"(goal: 0 Jobs, <= {GOAL_REQUESTS})  {verdict(ok)}"
    )
    return ok


# --------------------------------------------------------------------------- 2. waiting


def bench_wait(kube: KubeEmulator, kubeconfig: Path, wait_s: float, window_s: float) -> bool:
    scale = DEFAULT_WINDOW_S / window_s
    simulated_min = wait_s * scale / 60.0
    print("\n## 2. Waiting for a first trial that never finishes (in-process submit.watch)")
    print(
        f"scaling: {wait_s:g}s real with window_s={window_s:g}s stands for "
        f"{wait_s * scale:g}s = {simulated_min:g} min with the default window_s="
        f"{DEFAULT_WINDOW_S:g}s (x{scale:g})"
    )
    katib = KatibController(kube)
    # "second" (the relaunch) exists; Katib starts it and one trial runs without ever finishing.
    (trial,) = katib.create_trials(
        NS, "second", [{"optim.lr": 0.01, "hidden": 8, "activation": "relu"}]
    )
    katib.run_trial(NS, trial.name)
    loaded = spec_module.load(str(EXAMPLE / "search.yaml"))
    cluster = Cluster.connect(None, kubeconfig=str(kubeconfig))
    kube.reset_requests()
    start = time.monotonic()
    counted: list[Any] = []
    try:
        submit.watch(
            cluster=cluster, spec=loaded, namespace=NS, name="second", until="first",
            timeout_s=wait_s, window_s=window_s,
        )  # fmt: skip
        raise SystemExit("watch returned, but no trial could have succeeded")
    except TimedOutError:
        counted = list(kube.requests)  # the moment the wait ends
    elapsed = time.monotonic() - start
    by_verb = collections.Counter(f"{r.verb} {r.resource}" for r in counted)
    per_min = len(counted) / simulated_min
    print(
        f"watched {elapsed:.1f}s real; {len(counted)} requests: "
        + ", ".join(f"{v} x{c}" for v, c in sorted(by_verb.items()))
    )
    # After the wait: do the watch threads keep requesting? (they are daemon threads of watch())
    time.sleep(window_s * 1.5)
    leaked = len(kube.requests) - len(counted)
    print(
        f"after watch() raised: {leaked} more request(s) within {window_s * 1.5:g}s "
        "(its watch threads are not stopped)"
        if leaked
        else "after watch() raised: no more requests"
    )
    cluster.close()

    # Polling, as Astera's launch does: one GET of the Experiment every 2 s (real time, unscaled).
    kube.reset_requests()
    poll_cluster = Cluster.connect(None, kubeconfig=str(kubeconfig))
    poll_s = 6.0
    start = time.monotonic()
    while time.monotonic() - start < poll_s:
        poll_cluster.get("Experiment", NS, "second")
        time.sleep(POLL_INTERVAL_S)
    # Only the poll's GETs: watch()'s leftover threads (above) may still be requesting.
    polled = kube.count(verb="get", resource="experiments")
    poll_cluster.close()
    poll_per_min = polled / (poll_s / 60.0)
    print(
        f"2 s polling loop (one GET per poll, {poll_s:g}s real, unscaled): {polled} requests = "
        f"{poll_per_min:.0f}/min (by definition 60/{POLL_INTERVAL_S:g} = {60 / POLL_INTERVAL_S:.0f}/min)"
    )
    ok = per_min <= GOAL_PER_MIN
    print(
        f"waiting: {per_min:.2f} requests per simulated minute with watch vs "
        f"{60 / POLL_INTERVAL_S:.0f}/min polling every 2 s ({60 / POLL_INTERVAL_S / per_min:.0f}x fewer) "
        f"(goal <= {GOAL_PER_MIN:g})  {verdict(ok)}"
    )
    return ok


# --------------------------------------------------------------------------- 3. time to created


def bench_time(repo: Path, env: dict[str, str], repeat: int) -> bool:
    print("\n## 3. Command start -> experiment created (relaunch, cached image, --detach exit)")
    probe = subprocess.run([sys.executable, "-c", "import git"], capture_output=True)
    if probe.returncode == 0:
        floor_code = "import kubernetes, git, pydantic, yaml"
        note = "(GitPython is importable in this venv: the floor as written)"
    else:
        floor_code = "import kubernetes, pydantic, yaml"
        note = "(GitPython is not importable here: the floor without `git`)"
    floor_cmd = [sys.executable, "-c", floor_code]
    launches, floors = [], []
    for i in range(repeat):  # interleaved, side by side
        floors.append(run_timed(floor_cmd, cwd=repo, env=env))
        launches.append(run_timed(launch_cmd(f"timed-{i}"), cwd=repo, env=env))
    m_launch, m_floor = statistics.median(launches), statistics.median(floors)
    ratio = m_launch / m_floor
    print(f'floor `python -c "{floor_code}"` {note}')
    print(
        f"  floor   median {m_floor * 1000:7.0f} ms  ({', '.join(f'{t * 1000:.0f}' for t in floors)})"
    )
    print(
        f"  launch  median {m_launch * 1000:7.0f} ms  ({', '.join(f'{t * 1000:.0f}' for t in launches)})"
    )
    ok = ratio <= GOAL_RATIO
    print(f"time to created: {ratio:.2f}x the floor (goal <= {GOAL_RATIO:g})  {verdict(ok)}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--wait-s", type=float, default=20.0, help="real seconds of watching")
    parser.add_argument("--window-s", type=float, default=10.0, help="scaled-down watch window")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp_name:
        tmp = Path(tmp_name)
        repo = make_lab_repo(tmp)
        with running_registry(tmp) as reg, running() as kube:
            kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", reg.port))
            kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")

            # What Kaniko does: push the image for the destination's tag, labelled as asked.
            KanikoController(kube, on_success=kaniko_push(reg, [])).auto("succeed")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "KUBE"))}
            env.update(
                KUBECONFIG=str(kubeconfig),
                LAUNCH_BACKEND="katib",
                LAUNCH_KATIB_URL="http://katib.lab",
                LAUNCH_HOME=str(tmp / "state"),
                XDG_CONFIG_HOME=str(tmp / "xdg"),
                NO_COLOR="1",
            )
            print(f"emulator {kube.url}, registry {reg.url} (behind services/registry:5000/proxy)")
            results.append(bench_relaunch(kube, repo, env))
            results.append(bench_time(repo, env, args.repeat))
            results.append(bench_wait(kube, kubeconfig, args.wait_s, args.window_s))
    print(f"\n{sum(results)}/{len(results)} goals met")


if __name__ == "__main__":
    main()
