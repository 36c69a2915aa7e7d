"""Preflight (issue 16) end to end: real Draccus, argparse, click and typer programs, real git
repos, the real `launch` console script. A mistake in search.yaml is refused before any trial starts (exit
2, the search.yaml line, the field, a hint), and the refused launch leaves nothing behind.

The programs live in tests/preflight_programs/; each touches $RAN_MARKER when its main runs, so a
test sees whether any program got past its config parsing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from launch import preflight, state
from launch.errors import ExitCode
from launch.spec import apply_seeds, parse
from tests.gitrepo import git, make_repo

LAUNCH = str(Path(sys.executable).with_name("launch"))
PYTHON = sys.executable
PROGRAMS = Path(__file__).parent / "preflight_programs"

HEAD = """objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: 3}]}
"""

# Many mistakes at once: preflight reports them all together in one refusal.
MISTAKES = (
    HEAD
    + """parameters:
  - {name: optim.lrr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  - {name: layers, parameterType: discrete, feasibleSpace: {list: ["1", "010"]}}
  - {name: name, parameterType: categorical, feasibleSpace: {list: [a, "1.10"]}}
  - {name: dims, parameterType: categorical, feasibleSpace: {list: ["1,2"]}}
  - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, "on", "off", gelu]}}
  - {name: nesterov, parameterType: categorical, feasibleSpace: {list: ["0", "1"]}}
fixed:
  model.type: a
  model.heads: 3
  steps: 1e3
  epochs: "1.0"
  warmup: null
  patience: null
  sched: "yes"
  tag: include_me
  sizes: "[1, 2]"
  data: some/dir
maxTrialCount: 1
"""
)

# Every kind of field, written right: the sweep runs (007 only warns; null fits Optional[int]).
CORRECT = (
    HEAD
    + """parameters:
  - {name: optim.lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  - {name: steps, parameterType: discrete, feasibleSpace: {list: ["2", "007"]}}
  - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, tanh]}}
  - {name: nesterov, parameterType: categorical, feasibleSpace: {list: ["true", "false"]}}
  - {name: sched, parameterType: categorical, feasibleSpace: {list: [cosine, linear]}}
fixed:
  model.type: a
  model.width: 3
  patience: null
  sizes: "[1, 2]"
  data: some/dir
  name: trial
maxTrialCount: 1
"""
)

TYPO_ONLY = (
    HEAD
    + """parameters:
  - {name: optim.lrr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
maxTrialCount: 1
"""
)

PLAIN = (
    HEAD
    + """parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
  - {name: layers, parameterType: int, feasibleSpace: {min: "1", max: "3"}}
maxTrialCount: 1
"""
)

PLAIN_MISTAKES = PLAIN + "fixed: {foo: 1, layer: 2}\n"


@dataclass(frozen=True)
class Ran:
    """One CLI run in a throwaway project."""

    cwd: Path
    search: str
    marker: Path
    done: subprocess.CompletedProcess[str]

    @property
    def stderr(self) -> str:
        return self.done.stderr

    def line_of(self, needle: str) -> int:
        """The 1-based search.yaml line that holds `needle`."""
        for number, line in enumerate(self.search.splitlines(), start=1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} is not in the search.yaml")

    def error(self, needle: str, field: str) -> str:
        """The `error: search.yaml:<line>: <field>: ...` line (asserted present), with its hint
        (the next line, when it starts with `hint:`) after a newline."""
        prefix = f"error: search.yaml:{self.line_of(needle)}: {field}: "
        lines = self.stderr.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                after = lines[i + 1] if i + 1 < len(lines) else ""
                return line + ("\n" + after if after.startswith("hint:") else "")
        raise AssertionError(f"no line starts with {prefix!r}:\n{self.stderr}")


def base_env(mlflow: str) -> dict[str, str]:
    """This process's environment without what would change launch's or the programs' behaviour
    (LAUNCH_* settings, forced colours, a distributed job's RANK), plus the shared MLflow store."""
    drop = {"FORCE_COLOR", "CLICOLOR_FORCE", "RANK", "LOCAL_RANK", "WORLD_SIZE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LAUNCH_")}
    return {**env, "NO_COLOR": "1", "MLFLOW_TRACKING_URI": mlflow}


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module: creating a fresh one costs many seconds per sweep."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def run_launch(
    tmp_path: Path,
    mlflow: str,
    *args: str,
    program: str = "draccus_trainer.py",
    search: str = CORRECT,
    command: tuple[str, ...] = (PYTHON, "train.py"),
    env: Mapping[str, str] | None = None,
    uncommitted: Mapping[str, str] | None = None,
) -> Ran:
    """Commit `program` as train.py and `search` as search.yaml (then write `uncommitted`), and
    run `launch run --backend local ARGS search.yaml -- COMMAND` there."""
    repo = make_repo(
        tmp_path,
        files={"train.py": (PROGRAMS / program).read_text(), "search.yaml": search},
    )
    for relpath, content in (uncommitted or {}).items():
        repo.write(relpath, content)
    marker = tmp_path / "RAN"
    env = {**base_env(mlflow), "RAN_MARKER": str(marker), **(env or {})}
    done = subprocess.run(
        [LAUNCH, "run", "--backend", "local", *args, "search.yaml", "--", *command],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Ran(repo.path, search, marker, done)


def experiments(cwd: Path) -> list[str]:
    root = cwd / ".launch" / "experiments"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def assert_refused(ran: Ran) -> None:
    """Exit 2, the closing line, and nothing left behind: no experiment, no worktree, no run."""
    assert ran.done.returncode == ExitCode.USAGE, ran.stderr
    assert "nothing was launched, no trial ran (--no-preflight skips this check)" in ran.stderr
    assert experiments(ran.cwd) == []
    worktrees = git(ran.cwd, "worktree", "list", "--porcelain").splitlines()
    assert [w for w in worktrees if w.startswith("worktree ")] == [f"worktree {ran.cwd}"]
    assert not ran.marker.exists()
    assert " started " not in ran.stderr  # no trial line


def only_experiment(cwd: Path) -> state.Experiment:
    (name,) = experiments(cwd)
    return state.Experiment.open(cwd / ".launch", name)


# ------------------------------------------------------------ one refusal, many problems


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Ran:
    """The Draccus trainer with MISTAKES: one CLI run, shared by the tests below."""
    return run_launch(tmp_path_factory.mktemp("mistakes"), mlflow_uri, search=MISTAKES)


def test_mistakes_are_refused_before_any_trial(mistakes: Ran) -> None:
    """Every mistake in one refusal; the experiment and its worktree are gone, no program ran."""
    assert_refused(mistakes)
    assert "preflight: 15 problems (the program's Draccus parser read 8 flag sets" in (
        mistakes.stderr
    )


def test_unknown_flag_names(mistakes: Ran) -> None:
    """A typo names the `name:` line and suggests the field; a field of the other subclass of a
    ChoiceRegistry is refused (only subclass b has `heads`)."""
    typo = mistakes.error("name: optim.lrr", "parameters[0].name")
    assert "the program's config has no field `optim.lrr`" in typo
    assert "hint: did you mean `optim.lr`" in typo
    other = mistakes.error("model.heads: 3", "fixed.model.heads")
    assert "the program refuses `--model.heads=3`" in other and "ModelA" in other


def test_other_choice_subclass_has_a_hint(mistakes: Ran) -> None:
    """A field that only another registered subclass has deserves a hint (which `type` has it)."""
    other = mistakes.error("model.heads: 3", "fixed.model.heads")
    assert "\nhint:" in other


def test_numbers_bools_enums_and_literals(mistakes: Ran) -> None:
    """1e3 and 1.0 for an int, 0/1 for a bool, on/off/yes and an unknown name for an Enum or a
    Literal: each refused, with the accepted spellings in the hint."""
    e3 = mistakes.error("steps: 1e3", "fixed.steps")
    assert "`--steps=1e3`" in e3 and "hint: the field `steps` is an int: write 1000" in e3
    one = mistakes.error('epochs: "1.0"', "fixed.epochs")
    assert "hint: the field `epochs` is an int: write 1" in one
    for index, value in enumerate(["0", "1"]):
        bad = mistakes.error("name: nesterov", f"parameters[5].feasibleSpace.list[{index}]")
        assert f"`--nesterov={value}`" in bad
        assert "hint: the field `nesterov` is a bool: write true or false" in bad
    for index, value in [(1, "on"), (2, "off"), (3, "gelu")]:
        bad = mistakes.error("name: act", f"parameters[4].feasibleSpace.list[{index}]")
        assert f"`--act={value}`" in bad
        assert "hint: the field `act: Act` accepts: relu, tanh" in bad
    assert "Draccus reads `on` as a YAML 1.1 bool" in mistakes.error(
        "name: act", "parameters[4].feasibleSpace.list[1]"
    )
    literal = mistakes.error('sched: "yes"', "fixed.sched")
    assert "`--sched=yes`" in literal
    assert "accepts: cosine, linear; Draccus reads `yes` as a YAML 1.1 bool" in literal


def test_values_read_differently(mistakes: Ran) -> None:
    """010 reaches an int as 8, 1.10 reaches a str as '1.1', null a non-Optional int as None,
    include... is Draccus's reserved word, "1,2" is no list; null for Optional[int] is fine."""
    octal = mistakes.error("name: layers", "parameters[1].feasibleSpace.list[1]")
    assert "`--layers=010` reaches the program as 8" in octal
    assert "hint: write the number without leading zeros (10)" in octal
    text = mistakes.error("name: name", "parameters[2].feasibleSpace.list[1]")
    assert "`--name=1.10` reaches the str field `name` as '1.1'" in text
    null = mistakes.error("warmup: null", "fixed.warmup")
    assert "gives the field `warmup: int` None" in null and "Optional[int]" in null
    include = mistakes.error("tag: include_me", "fixed.tag")
    assert "`include" in include.split("hint:", 1)[1]
    as_list = mistakes.error('list: ["1,2"]', "parameters[3].feasibleSpace.list[0]")
    assert "`--dims=1,2`" in as_list and "[1, 2]" in as_list.split("hint:", 1)[1]
    # Not problems: null for Optional[int], a list passed as "[1, 2]", a Path, a valid subclass.
    for fine in ("fixed.patience", "fixed.sizes", "fixed.data", "fixed.model.type"):
        assert f": {fine}: " not in "\n".join(
            line for line in mistakes.stderr.splitlines() if line.startswith("error:")
        )


# --------------------------------------------------------------------------- other refusals


def test_trainer_without_tensorboard_dir(tmp_path: Path, mlflow_uri: str) -> None:
    """A Draccus config without `tensorboard_dir` cannot follow the trial contract."""
    ran = run_launch(tmp_path, mlflow_uri, program="no_tensorboard.py", search=PLAIN)
    assert_refused(ran)
    lines = ran.stderr.splitlines()
    (error,) = [line for line in lines if "no field `tensorboard_dir`" in line]
    assert error.startswith("error: the trial contract's --tensorboard_dir: ")
    hint = lines[lines.index(error) + 1]
    assert hint.startswith("hint: ") and "tensorboard_dir: str" in hint


def test_command_that_cannot_start(tmp_path: Path, mlflow_uri: str) -> None:
    """A command missing from PATH is refused before any experiment exists."""
    ran = run_launch(tmp_path, mlflow_uri, search=PLAIN, command=("no-such-program-xyz",))
    assert_refused(ran)
    assert "the trials' command cannot start: `no-such-program-xyz`" in ran.stderr


def test_program_that_fails_its_help_run(tmp_path: Path, mlflow_uri: str) -> None:
    """A program that dies before reading its config (an ImportError) is refused with its last
    output line."""
    ran = run_launch(tmp_path, mlflow_uri, program="fails_import.py", search=PLAIN)
    assert_refused(ran)
    assert "failed (exit 1) before the program read its config" in ran.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_for_preflight'" in ran.stderr


@pytest.mark.parametrize("program", ["argparse_trainer.py", "click_trainer.py"])
def test_help_must_list_every_flag(tmp_path: Path, mlflow_uri: str, program: str) -> None:
    """A program without Draccus: a flag its --help does not list is refused (with did-you-mean
    when a listed flag is close)."""
    ran = run_launch(tmp_path, mlflow_uri, program=program, search=PLAIN_MISTAKES)
    assert_refused(ran)
    foo = ran.error("fixed: {foo", "fixed.foo")
    assert "the program's --help does not list --foo" in foo
    layer = ran.error("fixed: {foo", "fixed.layer")
    assert "does not list --layer" in layer and "hint: did you mean `--layers`?" in layer
    assert "preflight: 2 problems (the program does not use Draccus" in ran.stderr


VALIDATED = (
    HEAD
    + """parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.1"}}
fixed: {data: here}
maxTrialCount: 1
"""
)


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Ran:
    """The trainer whose __post_init__ refuses lr > 0.05, swept up to 0.1."""
    tmp = tmp_path_factory.mktemp("validated")
    return run_launch(tmp, mlflow_uri, program="validated_trainer.py", search=VALIDATED)


def test_config_check_refuses_a_bound(validated: Ran) -> None:
    """A value the config's own check (__post_init__) refuses is found at its bound."""
    assert_refused(validated)
    bad = validated.error('max: "0.1"', "parameters[0].feasibleSpace.max")
    assert "`--lr=0.1`" in bad


def test_config_check_message_reaches_the_user(validated: Ran) -> None:
    """The reason the program gives (`lr 0.1 is too large`) is in the error, not only Draccus's
    "Couldn't instantiate class Config using the given arguments"."""
    assert "too large" in validated.error('max: "0.1"', "parameters[0].feasibleSpace.max")


def test_required_field_without_a_value(tmp_path: Path, mlflow_uri: str) -> None:
    """A required field that search.yaml does not fill: refused, the hint says `fixed:`."""
    search = VALIDATED.replace("fixed: {data: here}\n", "")
    ran = run_launch(tmp_path, mlflow_uri, program="validated_trainer.py", search=search)
    assert_refused(ran)
    lines = ran.stderr.splitlines()
    (error,) = [x for x in lines if x.startswith("error:") and "`data`" in x]
    hint = lines[lines.index(error) + 1]
    assert hint.startswith("hint:") and "fixed:" in hint


@pytest.mark.parametrize(
    ("algorithm", "seeds_flag", "expected"),
    [
        ("random", True, "error: --seeds"),  # no `seeds:` in search.yaml: name the CLI flag
        ("grid", False, "error: search.yaml:5: seeds"),  # `seeds: 2` is on line 5
    ],
)
def test_seed_flag_errors_name_where_the_seeds_come_from(
    tmp_path: Path, mlflow_uri: str, algorithm: str, seeds_flag: bool, expected: str
) -> None:
    """A config without a `seed` field and a seed sweep: the error should name `--seeds` (or the
    `seeds:` line), not line 1 `seeds` or a `parameters[1]` that search.yaml does not have."""
    search = (
        "objective: {type: minimize, objectiveMetricName: loss}\n"
        f"algorithm: {{algorithmName: {algorithm}}}\n"
        "parameters:\n"
        '  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.03", '
        'step: "0.01"}}\n' + ("maxTrialCount: 1\n" if seeds_flag else "seeds: 2\n")
    )
    args = ("--seeds", "2") if seeds_flag else ()
    ran = run_launch(tmp_path, mlflow_uri, *args, program="no_tensorboard.py", search=search)
    assert_refused(ran)
    (error,) = [x for x in ran.stderr.splitlines() if "no field `seed`" in x]
    assert error.startswith(expected), error


def test_refused_in_place_launch_keeps_the_checkout(tmp_path: Path, mlflow_uri: str) -> None:
    """--allow-dirty runs in the user's checkout: a refusal removes the experiment, never the
    user's files or their uncommitted change."""
    ran = run_launch(
        tmp_path, mlflow_uri, "--allow-dirty", search=TYPO_ONLY, uncommitted={"notes.txt": "mine\n"}
    )
    assert_refused(ran)
    assert "no field `optim.lrr`" in ran.stderr
    assert (ran.cwd / "notes.txt").read_text() == "mine\n"
    assert (ran.cwd / "train.py").is_file() and (ran.cwd / "search.yaml").is_file()


def test_rank_in_the_environment_does_not_hide_draccus(tmp_path: Path, mlflow_uri: str) -> None:
    """RANK=1 left in the shell (a distributed job's variable): the trials do not care, but the
    hook stays silent as a non-zero rank, and launch judges the Draccus program's (empty) help."""
    ran = run_launch(tmp_path, mlflow_uri, search=CORRECT, env={"RANK": "1"})
    assert ran.done.returncode == ExitCode.OK, ran.stderr


# --------------------------------------------------------------------------- runs that go ahead


@pytest.mark.parametrize("program", ["argparse_trainer.py", "click_trainer.py"])
def test_help_listing_every_flag_runs(tmp_path: Path, mlflow_uri: str, program: str) -> None:
    """Every flag listed: the sweep runs, and says which check it made."""
    ran = run_launch(tmp_path, mlflow_uri, program=program, search=PLAIN)
    assert ran.done.returncode == ExitCode.OK, ran.stderr
    assert "preflight: the program does not use Draccus: checked that its --help lists" in (
        ran.stderr
    )
    assert ran.marker.exists()
    trials = only_experiment(ran.cwd).state().trials.values()
    assert [t.status for t in trials] == [state.SUCCEEDED]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="plain"),
        pytest.param(
            {"FORCE_COLOR": "1"},
            id="FORCE_COLOR",
        ),
    ],
)
def test_typer_help_runs(tmp_path: Path, mlflow_uri: str, env: dict[str, str]) -> None:
    """A typer program (rich-formatted --help) that lists every flag runs; FORCE_COLOR in the
    user's shell (common in CI) colours each `-` of `--lr` apart, and should change nothing."""
    ran = run_launch(tmp_path, mlflow_uri, program="typer_trainer.py", search=PLAIN, env=env)
    assert ran.done.returncode == ExitCode.OK, ran.stderr
    assert "preflight: the program does not use Draccus" in ran.stderr


def test_correct_sweep_runs_unchanged(tmp_path: Path, mlflow_uri: str) -> None:
    """A correct sweep runs: the check's line, a warning for 007 (read as 7), no error."""
    ran = run_launch(tmp_path, mlflow_uri, search=CORRECT)
    assert ran.done.returncode == ExitCode.OK, ran.stderr
    assert "preflight: the program's Draccus parser read 6 flag sets" in ran.stderr
    assert "no problems" in ran.stderr
    warning = [line for line in ran.stderr.splitlines() if "`--steps=007`" in line]
    assert any(
        f"search.yaml:{ran.line_of('name: steps')}: parameters[1].feasibleSpace.list[1]: "
        "`--steps=007` reaches the program as 7 (leading zeros dropped)" in line
        for line in warning
    ), ran.stderr
    assert not [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert ran.marker.exists()
    trials = only_experiment(ran.cwd).state().trials.values()
    assert [t.status for t in trials] == [state.SUCCEEDED]


def test_no_preflight_lets_the_mistake_reach_the_trials(tmp_path: Path, mlflow_uri: str) -> None:
    """--no-preflight skips the check: the typo fails the trial instead (exit 5)."""
    ran = run_launch(tmp_path, mlflow_uri, "--no-preflight", search=TYPO_ONLY)
    assert ran.done.returncode == ExitCode.TRIAL_FAILED, ran.stderr
    assert "Draccus parser read" not in ran.stderr
    assert "unrecognized arguments: --optim.lrr" in ran.stderr
    trials = only_experiment(ran.cwd).state().trials.values()
    assert [t.status for t in trials] == [state.FAILED]
    assert not ran.marker.exists()


def test_dry_run_describes_the_preflight(tmp_path: Path, mlflow_uri: str) -> None:
    """--dry-run says the preflight will run (or is skipped); --json has a "preflight" object;
    neither runs it or leaves an experiment."""
    ran = run_launch(tmp_path, mlflow_uri, "--dry-run", search=MISTAKES)
    assert ran.done.returncode == ExitCode.OK, ran.stderr
    (line,) = [x for x in ran.done.stdout.splitlines() if x.startswith("# preflight (")]
    assert f"`{PYTHON} train.py --help` runs once first" in line and "8 flag sets" in line
    assert "error:" not in ran.stderr

    def again(*args: str) -> str:
        argv = [LAUNCH, "run", "--backend", "local", "--dry-run", *args]
        done = subprocess.run(
            [*argv, "search.yaml", "--", PYTHON, "train.py"],
            cwd=ran.cwd,
            env=base_env(mlflow_uri),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == ExitCode.OK, done.stderr
        return done.stdout

    doc = json.loads(again("--json"))["preflight"]
    assert doc["enabled"] is True and doc["flagSets"] == 8
    assert doc["command"] == [PYTHON, "train.py", "--help"]
    assert json.loads(again("--json", "--no-preflight"))["preflight"] == {"enabled": False}
    assert "# preflight: skipped (--no-preflight)" in again("--no-preflight").splitlines()
    assert experiments(ran.cwd) == [] and not ran.marker.exists()


# --------------------------------------------------------------------------- units


def _flags(flags: list[preflight.Flag]) -> list[str]:
    return [f.text for f in flags]


def test_plan_covers_bounds_and_every_list_value() -> None:
    """Set 0: fixed flags, each parameter's first value, the seed, --tensorboard_dir; then one
    set per other value (an int max rounded down to its step)."""
    spec = parse(
        HEAD
        + """parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.5"}}
  - {name: layers, parameterType: int, feasibleSpace: {min: "1", max: "10", step: "4"}}
  - {name: act, parameterType: categorical, feasibleSpace: {list: [relu, tanh, relu2, gelu]}}
fixed: {epochs: 3}
maxTrialCount: 2
"""
    )
    spec = apply_seeds(spec, seeds=[7, 8], local=True)  # as the local backend does
    plan = preflight.plan(spec, seed_flag="seed", tensorboard_dir="/tb")
    sets = [_flags(s) for s in plan.sets()]
    base = [
        "--epochs=3",
        "--lr=0.01",
        "--layers=1",
        "--act=relu",
        "--seed=7",
        "--tensorboard_dir=/tb",
    ]
    assert sets[0] == base
    changed = [[f for f in s if f not in base] for s in sets[1:]]
    assert changed == [
        ["--lr=0.5"],
        ["--layers=9"],
        ["--act=tanh"],
        ["--act=relu2"],
        ["--act=gelu"],
    ]
    assert plan.flag_count == len(base) + 5
    # Origins point at search.yaml fields; launch's own flags have none.
    assert plan.base[1].origin == ("parameters", 0, "feasibleSpace", "min")
    assert plan.variants[0][1].origin == ("parameters", 0, "feasibleSpace", "max")
    assert plan.base[0].origin == ("fixed", "epochs") and plan.base[-1].origin is None
    request = json.loads(plan.request(out="/x.json"))
    assert request["base"] == base and request["out"] == "/x.json"
    assert request["variants"][:2] == [[1, "--lr=0.5"], [2, "--layers=9"]]


def test_plan_without_seeds() -> None:
    """No seeds: no seed flag, just the parameters and --tensorboard_dir."""
    plan = preflight.plan(parse(PLAIN), seed_flag="seed", tensorboard_dir="/tb")
    assert _flags(list(plan.base)) == ["--lr=0.01", "--layers=1", "--tensorboard_dir=/tb"]
    assert [f.text for _, f in plan.variants] == ["--lr=0.1", "--layers=3"]


def test_judge_help_looks_up_every_flag_name() -> None:
    """Flag names listed by --help pass; a missing one is named, with did-you-mean; a missing
    --tensorboard_dir gets the trial-contract hint."""
    spec = parse(PLAIN_MISTAKES)
    plan = preflight.plan(spec, seed_flag="seed", tensorboard_dir="/tb")
    listed = "usage: t [-h] [--lr LR] [--layers N]\n  --foo X\n  --tensorboard_dir DIR\n"
    verdict = preflight.judge_help(plan, listed, spec)
    assert verdict.check == "help"
    (problem,) = verdict.problems
    assert problem.message.endswith("the program's --help does not list --layer")
    assert problem.hint == "did you mean `--layers`?"
    assert "fixed.layer" in problem.message
    bare = preflight.judge_help(plan, "usage: t [--lr LR] [--layers N] [--foo X]", spec)
    (missing,) = bare.problems[-1:]
    assert "--tensorboard_dir" in missing.message and "trial contract" in (missing.hint or "")
    assert not preflight.judge_help(plan, listed + " --layer\n", spec).problems


def test_judge_help_names_the_parameter_name_line() -> None:
    """An unknown parameter name is a wrong `name:`, as the Draccus check says
    (`parameters[0].name`); judge_help points at `feasibleSpace.min`, another line here."""
    spec = parse(
        HEAD
        + """parameters:
  - name: lrx
    parameterType: double
    feasibleSpace:
      min: "0.01"
      max: "0.1"
maxTrialCount: 1
"""
    )
    plan = preflight.plan(spec, seed_flag="seed", tensorboard_dir="/tb")
    (problem,) = preflight.judge_help(
        plan, "usage: t [--lr LR] [--tensorboard_dir D]", spec
    ).problems
    assert problem.message.startswith("search.yaml:4: parameters[0].name: "), problem.message
