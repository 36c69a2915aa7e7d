"""A code-only change relaunched on the cluster: the composed image against a Kaniko build.

One run, one lab: a real git repository (the fast-path Dockerfile of tests/compose_lab.py and
~2 MB of generated source), the Kubernetes API emulator, the real Distribution registry behind
the emulator's service proxy, and a Kaniko stand-in that pushes a dependency image of 12 layers.
The first launch builds the dependency image; then each measured relaunch follows a new
code-only commit, as the real console script (`launch --detach`, a subprocess). Side by side:

- build Jobs created (goal for the composed path: 0);
- bytes sent to the registry (request bodies through the service proxy) divided by the gzip size
  of the commit's tracked source (`git archive --format=tar.gz`) (goal <= 1.05);
- command start -> Experiment created, as a ratio to the floor of bench/cluster_requests.py
  (`python -c "import kubernetes, git, pydantic, yaml"`, without `git` where GitPython is not
  installed), medians of interleaved repeats (goal <= 2).

The Kaniko path (`--build kaniko`: an upload of the commit, one Job per change) has no build in
its time here (the emulated Job completes at once); on a cluster it adds Kaniko's pull and
unpack of the base and every cached layer (minutes for an ML image).

Run: `uv run python bench/rebuild.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.compose_lab import kaniko_push, project_files  # noqa: E402
from tests.gitrepo import GitRepo, make_repo  # noqa: E402
from tests.kube_emulator import KanikoController, KubeEmulator, running  # noqa: E402
from tests.registry_server import running_registry  # noqa: E402

LAUNCH = str(Path(sys.executable).with_name("launch"))


def floor_code() -> str:
    """The floor of bench/cluster_requests.py: its imports, GitPython included when importable."""
    probe = subprocess.run([sys.executable, "-c", "import git"], capture_output=True)
    return f"import kubernetes, {'git, ' if probe.returncode == 0 else ''}pydantic, yaml"


FLOOR = floor_code()
GOAL_BYTES = 1.05
GOAL_RATIO = 2.0
WORDS = [
    "model",
    "layer",
    "loss",
    "batch",
    "optimizer",
    "tensor",
    "grad",
    "step",
    "epoch",
    "sample",
    "metric",
    "config",
]


def source_files(count: int = 200, lines: int = 300) -> dict[str, str | bytes]:
    """Plausible Python modules (~10 KB each, compressing like code does)."""
    rng = random.Random(7)
    files: dict[str, str | bytes] = {}
    for i in range(count):
        body = "".join(
            f"def {rng.choice(WORDS)}_{j}(x):\n    return x * {rng.random():.6f}"
            f"  # {' '.join(rng.choices(WORDS, k=4))}\n"
            for j in range(lines // 2)
        )
        files[f"src/project/module_{i:03}.py"] = body
    return files


def is_experiment_create(r: Any) -> bool:
    return r.verb == "create" and r.resource == "experiments" and "dryRun" not in r.query


def upto_create(kube: KubeEmulator) -> list[Any]:
    requests = list(kube.requests)
    index = next((i for i, r in enumerate(requests) if is_experiment_create(r)), None)
    if index is None:
        raise SystemExit("the launch created no Experiment")
    return requests[: index + 1]


def run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def change_code(repo: GitRepo, n: str) -> None:
    path = repo.path / "src/project/module_000.py"
    path.write_text(path.read_text() + f"\nVERSION = {n!r}\n")
    repo.commit(f"change {n}")
    repo.git("update-ref", "refs/remotes/origin/main", "HEAD")


def source_gzip_bytes(repo: GitRepo) -> int:
    done = subprocess.run(
        ["git", "archive", "--format=tar.gz", "HEAD"],
        cwd=repo.path,
        capture_output=True,
        check=True,
    )
    return len(done.stdout)


def measure(
    label: str, kube: KubeEmulator, repo: GitRepo, env: dict[str, str], repeat: int, tag: str
) -> dict[str, Any]:
    """`repeat` code-only relaunches, each interleaved with a floor run."""
    launches, floors, jobs, sent, ratios = [], [], [], [], []
    for i in range(repeat):
        change_code(repo, f"{tag}-{i}")
        floors.append(run([sys.executable, "-c", FLOOR], cwd=repo.path, env=env))
        kube.reset_requests()
        launches.append(
            run([LAUNCH, "--name", f"{tag}-{i}", "--detach", "--no-preflight", "search.yaml",
                 "--", "python", "train.py"], cwd=repo.path, env=env)
        )  # fmt: skip
        before = upto_create(kube)
        jobs.append(sum(1 for r in before if r.verb == "create" and r.resource == "jobs"))
        body = sum(r.body_bytes for r in before if r.verb == "proxy")
        sent.append(body)
        ratios.append(body / source_gzip_bytes(repo))
    m_launch, m_floor = statistics.median(launches), statistics.median(floors)
    print(f"\n## {label}")
    print(f"  build Jobs per relaunch:        {jobs}")
    print(f"  bytes sent to the registry:     {sent}")
    print(f"  / gzip of the tracked source:   {', '.join(f'{r:.3f}' for r in ratios)}")
    print(
        f"  floor  median {m_floor * 1000:6.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in floors)})"
    )
    print(
        f"  launch median {m_launch * 1000:6.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in launches)})"
    )
    ratio = m_launch / m_floor
    print(f"  command start -> Experiment created: {ratio:.2f}x the floor")
    return {"jobs": max(jobs), "bytes": max(ratios), "time": ratio}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp_name:
        tmp = Path(tmp_name)
        repo = make_repo(
            tmp, "lab-project", files={**project_files(), **source_files()}, remote=False
        )
        repo.git("remote", "add", "origin", "https://git.example.com/lab/lab-project.git")
        repo.git("update-ref", "refs/remotes/origin/main", "HEAD")
        repo.git("branch", "--set-upstream-to=origin/main")
        builds: list[dict[str, Any]] = []
        with running_registry(tmp) as reg, running() as kube:
            kube.register_proxy("launch-system", "registry", 5000, ("127.0.0.1", reg.port))
            kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
            KanikoController(kube, on_success=kaniko_push(reg, builds, 12, 400_000)).auto()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "KUBE"))}
            env.update(
                KUBECONFIG=str(kubeconfig), LAUNCH_BACKEND="katib", NO_COLOR="1",
                LAUNCH_HOME=str(tmp / "state"), XDG_CONFIG_HOME=str(tmp / "xdg"),
            )  # fmt: skip
            print(f"source: {source_gzip_bytes(repo) / 1e6:.2f} MB gzipped (git archive of HEAD)")
            run([LAUNCH, "--name", "first", "--detach", "--no-preflight", "search.yaml", "--",
                 "python", "train.py"], cwd=repo.path, env=env)  # fmt: skip
            print(f"first launch: {len(builds)} Kaniko Job(s) (the dependency image, 12 layers)")
            fast = measure("composed in the registry (--build auto)", kube, repo, env,
                           args.repeat, "fast")  # fmt: skip
            slow = measure("Kaniko (--build kaniko)", kube, repo, {**env, "LAUNCH_BUILD": "kaniko"},
                           args.repeat, "slow")  # fmt: skip
    ok = [fast["jobs"] == 0, fast["bytes"] <= GOAL_BYTES, fast["time"] <= GOAL_RATIO]
    print(
        f"\ncomposed: {fast['jobs']} Jobs (goal 0), bytes/source gzip {fast['bytes']:.3f} "
        f"(goal <= {GOAL_BYTES}), time {fast['time']:.2f}x floor (goal <= {GOAL_RATIO:g})  "
        f"{'ok' if all(ok) else 'MISSED'}"
    )
    print(
        f"kaniko:   {slow['jobs']} Job per change, bytes/source gzip {slow['bytes']:.3f}, time "
        f"{slow['time']:.2f}x floor without the build itself"
    )
    print(f"{sum(ok)}/{len(ok)} goals met")


if __name__ == "__main__":
    main()
