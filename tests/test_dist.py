"""The single-file build, `dist/launch` (`make dist`), used the way a researcher would use it.

The binary is copied into an empty directory and run under `env -i PATH=/usr/bin:/bin HOME=$tmp`:
no venv, no Python of ours on PATH. The project is a copy of examples/quickstart in a fresh git
repo, with a stdlib-only trainer (the system python3 has no numpy/draccus/tensorboardX) that writes
its scalars as a hand-made TensorBoard event file. Run: `uv run pytest -m dist tests/test_dist.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.dist

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "dist" / "launch"
SYSTEM_PATH = "/usr/bin:/bin"
PYTHON = "python3"  # the user's python, from PATH=/usr/bin:/bin

if not BINARY.is_file():
    pytest.skip(
        f"{BINARY.relative_to(ROOT)} is missing: build it with `make dist`", allow_module_level=True
    )
if shutil.which(PYTHON, path=SYSTEM_PATH) is None or shutil.which("git", path=SYSTEM_PATH) is None:
    pytest.skip(f"needs {PYTHON} and git in {SYSTEM_PATH}", allow_module_level=True)

# A trainer with the standard library only: reads --key=value flags, writes val_loss/train_loss
# as a TFRecord of Event protos (bytes laid out by hand, CRC32C in pure Python), and its own
# environment to env.json so the test can see what leaked from the frozen app.
TRAINER = r"""
import json, math, os, struct, sys, time

def crc32c(data, table=[]):
    if not table:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(num, wire, payload):
    key = varint(num << 3 | wire)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)

def event(step, **scalars):
    head = field(1, 1, struct.pack("<d", time.time())) + field(2, 0, varint(step))
    if not scalars:
        return head + field(3, 2, b"brain.Event:2")
    values = b"".join(
        field(1, 2, field(1, 2, k.encode()) + field(2, 5, struct.pack("<f", v)))
        for k, v in scalars.items()
    )
    return head + field(5, 2, values)

def record(data):
    n = struct.pack("<Q", len(data))
    return n + struct.pack("<I", masked(n)) + data + struct.pack("<I", masked(data))

if "--help" in sys.argv:  # what launch's preflight asks a program without Draccus
    print("usage: train.py [--optim.lr=LR] [--hidden=N] [--activation=A] [--epochs=N] [--tensorboard_dir=DIR]")
    sys.exit(0)
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
lr, hidden = float(args["optim.lr"]), int(args["hidden"])
loss = (math.log10(lr) + 2) ** 2 + abs(hidden - 16) / 100 + (args["activation"] == "relu") * 0.1
out = args["tensorboard_dir"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "env.json"), "w") as f:
    json.dump(dict(os.environ), f)
with open(os.path.join(out, "events.out.tfevents.%d.local" % time.time()), "wb") as f:
    f.write(record(event(0)))
    for step in range(3):
        f.write(record(event(step, train_loss=loss + 0.1 / (step + 1), val_loss=loss + 0.01 * step)))
print("val_loss", loss)
"""

# Modules the binary must carry although launch imports them inside functions.
BUNDLED = (
    "launch.cli", "launch.local", "launch.sampling", "launch.tfevents", "launch.results",
    "launch.buildinfo", "launch.katib", "launch.kaniko", "launch.state", "launch.git",
    "optuna", "optuna.samplers", "optuna.distributions", "kubernetes", "kubernetes.client",
    "kubernetes.config", "crc32c", "yaml", "pydantic", "rich.table", "rich.live", "requests",
    "certifi", "typer._completion_shared",
)  # fmt: skip
HEAVY_NEVER_ON_HELP = ("kubernetes", "optuna", "mlflow", "matplotlib", "numpy", "requests")
LEAKS = ("LD_LIBRARY_PATH", "LD_LIBRARY_PATH_ORIG", "PYTHONHOME", "PYTHONPATH", "_MEIPASS2")


def git(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bin/launch (a copy), an empty HOME, and proj/: the quickstart in a clean, "pushed" repo."""
    tmp = tmp_path_factory.mktemp("dist")
    bindir, home, proj = tmp / "bin", tmp / "home", tmp / "proj"
    bindir.mkdir()
    home.mkdir()
    shutil.copy2(BINARY, bindir / "launch")
    proj.mkdir()
    spec = (ROOT / "examples" / "quickstart" / "search.yaml").read_text()
    spec = re.sub(r"(?m)^maxTrialCount: \d+$", "maxTrialCount: 4", spec)
    (proj / "search.yaml").write_text(spec)
    (proj / "train.py").write_text(TRAINER)
    env = clean_env(home)
    ident = ["-c", "user.name=dist test", "-c", "user.email=dist@example.invalid"]
    git("init", "-q", "-b", "main", cwd=proj, env=env)
    git("add", "-A", cwd=proj, env=env)
    git(*ident, "commit", "-q", "-m", "quickstart", cwd=proj, env=env)
    git("remote", "add", "origin", "https://example.invalid/lab/proj.git", cwd=proj, env=env)
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=proj, env=env)
    git("branch", "-u", "origin/main", cwd=proj, env=env)
    return {"tmp": tmp, "bin": bindir / "launch", "home": home, "proj": proj}


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What `env -i PATH=/usr/bin:/bin HOME=$tmp` leaves (plus `extra`)."""
    return {"PATH": SYSTEM_PATH, "HOME": str(home), **extra}


def launch(
    box: dict[str, Path], *args: str, check: bool = True, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in clean_env(box["home"], **extra).items()),
         str(box["bin"]), *args],
        cwd=box["proj"], capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if check and done.returncode != 0:
        pytest.fail(
            f"launch {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def built_commit() -> str:
    """The commit the binary was built from, as its stub's header states it."""
    with BINARY.open("rb") as handle:
        head = handle.read(512).decode("utf-8", "replace")
    found = re.search(r"\(commit ([0-9a-f]{7,40})", head)
    assert found, f"no commit in the header of {BINARY}"
    return found.group(1)


def test_help_and_cache(sandbox: dict[str, Path]) -> None:
    first = launch(sandbox, "--help")
    assert "Usage: launch" in first.stdout
    assert "render" in first.stdout and "results" in first.stdout
    cache = sandbox["home"] / ".cache" / "launch"
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "launch").is_file(), entries
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "temporary dir left over"
    marker = entries[0] / "launch"
    before = marker.stat().st_mtime_ns
    again = launch(sandbox, "-h")
    assert again.stdout == first.stdout
    assert marker.stat().st_mtime_ns == before  # the second run did not unpack again


def test_concurrent_first_runs(tmp_path: Path) -> None:
    env = {"PATH": SYSTEM_PATH, "HOME": str(tmp_path)}
    procs = [
        subprocess.Popen([str(BINARY), "--help"], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all("Usage: launch" in out for out in outs)
    cache = tmp_path / ".cache" / "launch"
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []
    assert len(list(cache.iterdir())) == 1


def test_version_names_the_commit(sandbox: dict[str, Path]) -> None:
    out = launch(sandbox, "--version").stdout
    assert out.startswith("launch ")
    assert built_commit()[:7] in out, out


def test_lazy_modules_are_bundled(sandbox: dict[str, Path]) -> None:
    done = launch(sandbox, LAUNCH_DIST_PROBE=",".join(BUNDLED))
    report = json.loads(done.stdout)
    assert {k: v for k, v in report.items() if v != "ok"} == {}


def test_help_and_render_stay_lazy(sandbox: dict[str, Path]) -> None:
    for args in (["--help"], ["render", "search.yaml", "--name", "lazy", "--", PYTHON, "train.py"]):
        done = launch(sandbox, *args, LAUNCH_DIST_PROBE="@loaded")
        line = next(ln for ln in done.stderr.splitlines() if ln.startswith("LAUNCH_DIST_LOADED="))
        loaded = json.loads(line.split("=", 1)[1])
        heavy = [m for m in loaded if m in HEAVY_NEVER_ON_HELP]
        assert heavy == [], f"launch {' '.join(args)} imported {heavy}"


def test_render_is_yaml(sandbox: dict[str, Path]) -> None:
    out = launch(
        sandbox, "render", "search.yaml", "--name", "dist-render", "--", PYTHON, "train.py"
    )
    docs = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    kinds = [d.get("kind") for d in docs]
    assert "Experiment" in kinds, kinds


def test_config_json(sandbox: dict[str, Path]) -> None:
    doc = json.loads(launch(sandbox, "config", "--json").stdout)
    assert doc["namespace"] == {"value": "default", "source": "default"}, doc
    assert doc["backend"]["value"] in ("auto", "local"), doc


def _run_sweep(box: dict[str, Path], name: str, **extra: str) -> list[dict[str, object]]:
    args = (
        "run",
        "--backend",
        "local",
        "--name",
        name,
        "-q",
        "search.yaml",
        "--",
        PYTHON,
        "train.py",
    )
    launch(box, *args, timeout=300, **extra)
    rows = json.loads(launch(box, "results", name, "--json").stdout)
    assert isinstance(rows, list) and len(rows) == 4, rows
    return rows


def _trial_envs(box: dict[str, Path], name: str) -> list[dict[str, str]]:
    found = sorted((box["proj"] / ".launch").rglob("env.json")) + sorted(
        box["home"].rglob("env.json")
    )
    # The trainer's own env.json, in its trial's folder (not the experiment's --env values file).
    envs = [json.loads(p.read_text()) for p in found if name in str(p) and "trials" in p.parts]
    assert envs, f"no trial wrote env.json for {name}"
    return envs


def test_local_sweep_and_results(sandbox: dict[str, Path]) -> None:
    rows = _run_sweep(sandbox, "dist-sweep")
    text = json.dumps(rows)
    assert text.count("Succeeded") >= 4, text
    assert "val_loss" in text
    for env in _trial_envs(sandbox, "dist-sweep"):
        leaked = [k for k in env if k in LEAKS or k.startswith(("_PYI_", "_MEI"))]
        assert leaked == [], f"the frozen app leaked {leaked} into a trial"
        assert env["PATH"] == SYSTEM_PATH
        assert env["KATIB_EXPERIMENT_NAME"] == "dist-sweep"
    csv_text = launch(sandbox, "results", "dist-sweep", "--format", "csv").stdout
    assert (
        csv_text.splitlines()[0].startswith("trial,status,val_loss") and csv_text.count("\n") == 5
    )
    # No plotting libraries in the binary: said so, with what to do instead.
    plot = launch(sandbox, "results", "dist-sweep", "--plot", "x.png", check=False)
    assert plot.returncode == 2, plot.stderr  # a missing extra is a usage error, not a crash
    assert "the single-file launch has no optional libraries" in plot.stderr
    assert "--format csv" in plot.stderr


def test_trials_get_the_users_library_path(sandbox: dict[str, Path]) -> None:
    user_libs = str(sandbox["tmp"] / "user-libs")
    _run_sweep(sandbox, "dist-ldpath", LD_LIBRARY_PATH=user_libs)
    for env in _trial_envs(sandbox, "dist-ldpath"):
        assert env.get("LD_LIBRARY_PATH") == user_libs
        assert "LD_LIBRARY_PATH_ORIG" not in env


def test_doctor_talks_to_a_cluster(sandbox: dict[str, Path], tmp_path: Path) -> None:
    """The bundled kubernetes client works: doctor against the API emulator."""
    from tests.kube_emulator import running

    with running() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        done = launch(sandbox, "doctor", check=False, KUBECONFIG=str(kubeconfig))
    for check in ("kubeconfig", "api", "katib", "namespace"):
        assert re.search(rf"^PASS\s+{check}\s", done.stdout, re.M), done.stdout + done.stderr
    assert done.returncode == 2 and "FAIL  registry" in done.stdout  # no registry behind it


def test_completion_script(sandbox: dict[str, Path]) -> None:
    done = launch(sandbox, "completion", "bash")
    assert "_LAUNCH_COMPLETE" in done.stdout
    words = launch(
        sandbox, _LAUNCH_COMPLETE="complete_bash", COMP_WORDS="launch re", COMP_CWORD="1"
    ).stdout.split()
    assert "render" in words and "results" in words


def test_no_python_of_ours_needed(sandbox: dict[str, Path]) -> None:
    # The binary must not depend on where it was built: no path into this checkout or its venv.
    done = launch(sandbox, "--help", PYTHONPATH=str(ROOT), PYTHONHOME="/nonexistent")
    assert "Usage: launch" in done.stdout
    assert os.access(sandbox["bin"], os.X_OK)
