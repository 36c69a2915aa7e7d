"""The local MLflow store (`<home>/mlflow.db`) with the real MLflow: created atomically, so an
interrupted creation (Ctrl-C, kill) never leaves a half-built store, and a broken store is found
(`tracking.local_store_problem`, standard library only, fast) and explained.

Interruptions are deterministic: the creating child is killed when its temporary file appears
and when MLflow's migrations are half done in it (watched from here), not after a guessed delay.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from launch import mlflow_store, tracking

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
CREATE = "import sys; from launch import mlflow_store; mlflow_store.create_local_store(sys.argv[1])"
PREPARE = (
    "import sys; from launch import mlflow_store; "
    "sys.exit(mlflow_store.prepare(sys.argv[1], sys.argv[2]) is None)"
)


def child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def temps(store: Path) -> list[Path]:
    return sorted(store.parent.glob(f".{store.name}.tmp-*"))


def sound(store: Path) -> bool:
    return tracking.local_store_problem(store) is None


def interrupt(store: Path, when: Callable[[Path], bool], sig: int) -> tuple[int, str]:
    """Start a creation of `store`, send `sig` once `when(temporary file)` holds; watching all
    along that `store` never exists half-built. The child's exit status and stderr."""
    proc = child(CREATE, str(store))
    deadline = time.monotonic() + 240
    try:
        while True:
            assert not store.exists() or sound(store), tracking.local_store_problem(store)
            tmp = [t for t in temps(store) if t.name.endswith(f"-{proc.pid}")]
            if tmp and when(tmp[0]):
                proc.send_signal(sig)
                break
            if proc.poll() is not None:
                raise AssertionError(f"the creation ended before the interruption: {proc.stderr}")
            assert time.monotonic() < deadline
            time.sleep(0.002)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not store.exists() or sound(store), tracking.local_store_problem(store)
    return proc.returncode, err


def size_at_least(n: int) -> Callable[[Path], bool]:
    def check(tmp: Path) -> bool:
        try:
            return tmp.stat().st_size >= n
        except FileNotFoundError:
            return False

    return check


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store as create_local_store makes it (copied by the tests that damage one)."""
    store = tmp_path_factory.mktemp("good") / "mlflow.db"
    assert mlflow_store.create_local_store(store) is True
    return store


# --------------------------------------------------------------------------- atomic creation


def test_interrupted_creation_leaves_no_store_and_the_next_one_works(tmp_path: Path) -> None:
    store = tmp_path / "home" / "mlflow.db"
    store.parent.mkdir()
    # Ctrl-C halfway through MLflow's migrations (a finished store is ~950 kB): the child
    # removes its temporary file
    rc, err = interrupt(store, size_at_least(200_000), signal.SIGINT)
    assert rc != 0 and "KeyboardInterrupt" in err
    assert not store.exists()
    assert temps(store) == []
    # killed as soon as its temporary file exists, then halfway through the migrations: no
    # store, only the temporary file (and journal) of a dead process, which the next creation
    # removes
    for when in (lambda tmp: True, size_at_least(200_000)):
        left = temps(store)
        rc, _ = interrupt(store, when, signal.SIGKILL)
        assert rc == -signal.SIGKILL
        assert not store.exists()
        assert temps(store) and not set(left) & set(temps(store))

    # the next sweep's prepare creates a complete store, removes the leftovers, and logs
    start = time.monotonic()
    proc = child(PREPARE, f"sqlite:///{store}", "exp")
    _, err = proc.communicate(timeout=240)
    created_s = time.monotonic() - start
    assert proc.returncode == 0, err
    assert "warning" not in err
    assert sound(store)
    assert temps(store) == []
    print(f"prepare (child, MLflow import included): {created_s:.2f} s")

    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{store}")
    exp = c.get_experiment_by_name("exp")
    assert exp is not None
    run = c.create_run(exp.experiment_id, run_name="t1", tags={"katib.trial": "t1"})
    c.log_metric(run.info.run_id, "loss", 0.5, step=1)
    c.set_terminated(run.info.run_id, "FINISHED")
    assert [m.value for m in c.get_metric_history(run.info.run_id, "loss")] == [0.5]
    found = tracking.find_runs(f"sqlite:///{store}", "exp", ["t1"])
    assert found.warning is None and found["t1"].run_id == run.info.run_id


def test_racing_creators_one_wins_no_one_clobbers(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "from launch import mlflow_store\n"
        "print(mlflow_store.create_local_store(sys.argv[1]))\n"
    )
    warm = "import mlflow.store.tracking.sqlalchemy_store, launch.mlflow_store\n"
    procs = [child(warm + code, str(store), str(go)) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sorted(out.strip() for out, _ in outs) == ["False", "True"]
    assert sound(store)
    assert temps(store) == []


def test_a_creator_that_loses_the_race_discards_its_copy(
    tmp_path: Path, good_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministically: another creator links its store while this one builds."""
    store = tmp_path / "mlflow.db"
    build = mlflow_store._build_store

    def build_then_lose(tmp: str) -> None:
        build(tmp)
        shutil.copyfile(good_store, store)
        with sqlite3.connect(store) as con:  # mark the winner's store
            con.execute("INSERT INTO experiments (name, lifecycle_stage) VALUES ('won', 'active')")
        con.close()

    monkeypatch.setattr(mlflow_store, "_build_store", build_then_lose)
    assert mlflow_store.create_local_store(store) is False
    assert temps(store) == []
    with sqlite3.connect(store) as con:
        assert con.execute("SELECT 1 FROM experiments WHERE name = 'won'").fetchone()
    con.close()
    assert mlflow_store.create_local_store(store) is False  # exists: nothing done


def test_created_store_matches_mlflows_own(tmp_path: Path, good_store: Path) -> None:
    """Same schema, schema version and Default experiment as MLflow creating it in place, and
    no connection to the temporary file left open in this process."""
    from mlflow.tracking import MlflowClient

    own = tmp_path / "own.db"
    MlflowClient(f"sqlite:///{own}").search_experiments()

    def dump(path: Path) -> tuple[object, ...]:
        with sqlite3.connect(path) as con:
            # Tables, not every index: MLflow's in-place creation was seen to differ run to run
            # in the index list within one process (a flaky comparison, not a property).
            schema = sorted(
                con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            )
            version = con.execute("SELECT version_num FROM alembic_version").fetchall()
            exps = con.execute("SELECT experiment_id, name, lifecycle_stage FROM experiments")
            return schema, version, exps.fetchall()

    assert dump(good_store) == dump(own)
    open_files = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert not [f for f in open_files if ".tmp-" in f]


# --------------------------------------------------------------------------- broken stores


def damaged(good: Path, tmp_path: Path, how: str) -> Path:
    path = tmp_path / "mlflow.db"
    if how == "garbage":
        path.write_bytes(b"this is not a database\n" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "header only":
        path.write_bytes(good.read_bytes()[:100])
    elif how == "not mlflow":
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE notes (x)")
        con.close()
    elif how == "no tables":
        sqlite3.connect(path).close()
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE t (x)")
            con.execute("DROP TABLE t")
        con.close()
    else:
        shutil.copyfile(good, path)
        sql = {
            "missing runs": "DROP TABLE runs",
            "no alembic_version": "DROP TABLE alembic_version",
            "empty alembic_version": "DELETE FROM alembic_version",
            "no experiment": "DELETE FROM experiments",
        }[how]
        con = sqlite3.connect(path)
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute(sql)
        con.commit()
        con.close()
    return path


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("garbage", "is not an SQLite database"),
        ("empty", "is empty (0 bytes): its creation was interrupted"),
        ("truncated", "is truncated"),
        ("header only", "is truncated"),
        ("not mlflow", "is an SQLite database but not an MLflow store"),
        ("no tables", "has no tables: its creation was interrupted"),
        ("missing runs", "lacks the table(s) runs: its creation was interrupted"),
        ("no alembic_version", "has no schema version (table alembic_version)"),
        ("empty alembic_version", "has an empty alembic_version"),
        ("no experiment", "has no experiment, not even MLflow's Default"),
    ],
)
def test_broken_store_is_detected_with_a_sentence(
    good_store: Path, tmp_path: Path, how: str, says: str
) -> None:
    path = damaged(good_store, tmp_path, how)
    problem = tracking.local_store_problem(path)
    assert problem is not None and says in problem, problem
    assert str(path) in problem
    hint = tracking.broken_store_hint(path)
    assert hint == f"move it aside: mv {path} {path}.broken; the next sweep creates a new one"


def test_sound_and_missing_stores_pass_quickly(good_store: Path, tmp_path: Path) -> None:
    assert tracking.local_store_problem(tmp_path / "nothing.db") is None
    assert tracking.local_store_problem(tmp_path) == f"the MLflow store {tmp_path} is not a file"
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert tracking.local_store_problem(good_store) is None
        times.append(time.perf_counter() - start)
    print(f"local_store_problem on a real store: best {min(times) * 1000:.2f} ms")
    assert min(times) < 1.0  # about a millisecond; generous for a loaded machine


def test_a_store_killed_mid_write_is_not_broken(good_store: Path, tmp_path: Path) -> None:
    """A trial killed mid-transaction leaves a hot journal: SQLite rolls it back, no alarm."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(good_store, path)
    code = (
        "import os, signal, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size = 1')\n"
        "con.execute('BEGIN')\n"
        "for i in range(3000):\n"
        "    con.execute('INSERT INTO experiments (name, lifecycle_stage, artifact_location)'\n"
        "                ' VALUES (?, ?, ?)', (f'e{i}', 'active', 'x' * 500))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert Path(f"{path}-journal").stat().st_size > 0
    assert tracking.local_store_problem(path) is None
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM experiments").fetchone() == (1,)
    con.close()


def test_prepare_explains_a_broken_store_and_leaves_it_alone(
    good_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = damaged(good_store, tmp_path, "no alembic_version")
    before = path.read_bytes()
    assert mlflow_store.prepare(f"sqlite:///{path}", "exp") is None
    err = capsys.readouterr().err
    assert "has no schema version" in err
    assert f"mv {path} {path}.broken" in err
    assert path.read_bytes() == before
