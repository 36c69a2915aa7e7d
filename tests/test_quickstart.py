"""examples/quickstart as a user meets it: the local sweep with its MLflow runs and `launch
results` links, a seed sweep's distribution and plot, and the trial inside its cluster image
(only the packages of requirements.lock importable, launch from the repository root)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.compose_lab import quickstart_files
from tests.gitrepo import make_repo
from tests.mlflow_server import MlflowServer, shared_mlflow_server
from tests.test_mlflow_wrapper import client, runs_of, trial_env

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "quickstart"
LAUNCH = str(Path(sys.executable).with_name("launch"))


def quickstart(tmp_path: Path, **replace: str) -> Path:
    """The quickstart as a committed project, with `replace` applied to search.yaml."""
    files = quickstart_files()
    for old, new in replace.items():
        assert old in files["search.yaml"], old
        files["search.yaml"] = files["search.yaml"].replace(old, new)
    return make_repo(tmp_path, "qs", files=files, remote=False).path


def launch(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAUNCH_", "MLFLOW_"))}
    env.update(NO_COLOR="1", XDG_CONFIG_HOME=str(cwd / ".xdg"))
    return subprocess.run(
        [LAUNCH, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_local_sweep_makes_mlflow_runs_that_results_links_to(tmp_path: Path) -> None:
    cwd = quickstart(
        tmp_path, **{"maxTrialCount: 6": "maxTrialCount: 3", "epochs: 200": "epochs: 30"}
    )
    done = launch(cwd, "--backend", "local", "--name", "qs1", "search.yaml", "--", sys.executable,
                  "train.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    uri = f"sqlite:///{cwd / '.launch' / 'mlflow.db'}"
    assert f"open the links with: launch ui (or mlflow ui --backend-store-uri {uri})" in done.stderr

    rows = json.loads(launch(cwd, "results", "qs1", "--json").stdout)
    assert len(rows) == 3 and all(r["status"] == "Succeeded" for r in rows)
    c = client(uri)
    for row in rows:
        [run] = runs_of(uri, "qs1", row["name"])  # one run per trial, found by its tag
        assert row["mlflow_run_id"] == run.info.run_id
        assert row["mlflow_url"].endswith(f"/runs/{run.info.run_id}")
        assert run.info.run_name == row["name"] and run.info.status == "FINISHED"
        params = run.data.params
        assert float(params["optim.lr"]) == pytest.approx(row["params"]["optim.lr"])
        assert params["hidden"] == str(row["params"]["hidden"]) and params["epochs"] == "30"
        assert run.data.tags["katib.trial"] == row["name"]
        assert re.fullmatch(r"[0-9a-f]{40}", run.data.tags["mlflow.source.git.commit"])
        history = c.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == [9, 19, 29]  # mirrored with their steps
        # Katib's default strategy for a minimized objective: the minimum reported.
        assert min(m.value for m in history) == pytest.approx(row["objective"], rel=1e-6)
    table = launch(cwd, "results", "qs1")
    assert table.returncode == 0 and "mlflow_run" in table.stdout.splitlines()[0]
    assert table.stdout.count("/#/experiments/") == 3


def test_local_seed_sweep_reports_a_distribution_and_plots_it(tmp_path: Path) -> None:
    cwd = quickstart(tmp_path, **{"epochs: 200": "epochs: 20"})
    (cwd / "seeds.yaml").write_text(
        "objective: {type: minimize, objectiveMetricName: val_loss}\n"
        "fixed: {optim.lr: 0.05, hidden: 8, epochs: 20}\nparallelTrialCount: 2\n"
    )
    subprocess.run(["git", "add", "seeds.yaml"], cwd=cwd, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "seeds"],
                   cwd=cwd, check=True)  # fmt: skip
    done = launch(cwd, "--backend", "local", "--name", "sd", "--seeds", "4", "seeds.yaml", "--",
                  sys.executable, "train.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The sweep ends with what `launch results` shows for a seed sweep: the distribution.
    assert "4/4" in done.stdout and "1 configs, best mean first" in done.stderr
    per_trial = json.loads(launch(cwd, "results", "sd", "--per-trial", "--json").stdout)
    assert sorted(r["params"]["seed"] for r in per_trial) == [0, 1, 2, 3]
    losses = sorted(r["objective"] for r in per_trial)
    assert len(set(losses)) == 4  # the seed changes the outcome: a distribution, not a number

    grouped = json.loads(launch(cwd, "results", "sd", "--json").stdout)
    (group,) = grouped
    assert group["n_total"] == group["n_succeeded"] == 4 and group["seeds"] == [0, 1, 2, 3]
    assert group["median"] == pytest.approx((losses[1] + losses[2]) / 2)
    assert group["ci_lo"] < group["mean"] < group["ci_hi"]
    table = launch(cwd, "results", "sd")
    assert table.returncode == 0 and "4/4" in table.stdout

    png = launch(cwd, "results", "sd", "--plot", "dist.png")
    assert png.returncode == 0, png.stderr
    assert (cwd / "dist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    terminal = launch(cwd, "results", "sd", "--plot", "-")
    assert terminal.returncode == 0 and "val_loss" in terminal.stdout


def image_site(dest: Path, names: list[str]) -> Path:
    """The cluster image's site-packages: links to this venv's copies of exactly the
    distributions requirements.lock names (run with `python -S`: nothing else importable)."""
    import importlib.metadata

    site_packages = Path(sysconfig.get_paths()["purelib"])
    wanted = {_norm(n) for n in names}
    dest.mkdir()
    for dist in importlib.metadata.distributions():
        if _norm(dist.metadata["Name"]) not in wanted:
            continue
        for top in {f.parts[0] for f in dist.files or () if f.parts[0] != ".."}:
            if (site_packages / top).exists() and not (dest / top).exists():
                (dest / top).symlink_to(site_packages / top)
    return dest


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The trial as the image runs it: no site-packages but the lock's, launch from the repository
# root (the Dockerfile's PYTHONPATH), train.py from examples/quickstart.
IMAGE_PYTHON = (
    "import runpy, sys; sys.path[:0] = sys.argv[1:3]; sys.argv = sys.argv[3:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def lock_names() -> list[str]:
    text = (EXAMPLE / "requirements.lock").read_text()
    return re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", text, re.M)


@pytest.fixture(scope="module")
def server() -> MlflowServer:
    return shared_mlflow_server()


def test_the_trial_in_its_image_makes_an_mlflow_run(server: MlflowServer, tmp_path: Path) -> None:
    names = lock_names()
    assert "mlflow-skinny" in names and "crc32c" not in names and "typer" not in names
    dockerfile = (EXAMPLE / "Dockerfile").read_text()
    workdir = re.search(r"^WORKDIR (\S+)", dockerfile, re.M)
    assert workdir and f"ENV PYTHONPATH={workdir[1]}" in dockerfile  # the repo root, copied there
    env = trial_env(server.uri, "qs-img-0001", experiment="qs-img")
    del env["PYTHONPATH"]
    site = image_site(tmp_path / "site", names)
    tb = tmp_path / "tfevent"
    argv = ["train.py", "--optim.lr=0.05", "--hidden=8", "--epochs=20", f"--tensorboard_dir={tb}"]
    done = subprocess.run(
        [sys.executable, "-S", "-c", IMAGE_PYTHON, str(site), str(REPO), *argv],
        cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr  # tracking did not silently turn off
    [run] = runs_of(server.uri, "qs-img", "qs-img-0001")
    assert run.info.status == "FINISHED" and run.data.params["optim.lr"] == "0.05"
    history: list[Any] = client(server.uri).get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [9, 19]


def test_the_image_python_really_hides_what_the_image_lacks(tmp_path: Path) -> None:
    """The check above could pass vacuously if nothing were hidden: typer must be unimportable,
    and so must crc32c (the wrapper then mirrors with its pure-Python CRC)."""
    site = image_site(tmp_path / "site", lock_names())
    script = tmp_path / "probe.py"
    script.write_text(
        "import importlib.util as u, mlflow, launch.tfevents as t\n"
        "print(u.find_spec('typer'), u.find_spec('crc32c'), t._crc32c is t._crc32c_py)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", IMAGE_PYTHON, str(site), str(REPO), str(script)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None", "True"]
