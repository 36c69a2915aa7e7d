"""The preflight's pure half (`launch.preflight`): the flag sets it asks for, and its judgement of
answers, with the real hook answering for real Draccus configs (in-process parsing is what the
hook does in the trial's Python; here it runs as `python prog.py --help`, as launch runs it)."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from launch import preflight, preflight_local, spec

SPEC = """\
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random}
parameters:
  - name: lr
    parameterType: double
    feasibleSpace: {min: 0.001, max: 0.1}
  - name: depth
    parameterType: int
    feasibleSpace: {min: 2, max: 9, step: 3}
  - name: act
    parameterType: categorical
    feasibleSpace: {list: [relu, gelu]}
fixed:
  epochs: 3
"""


def _spec(text: str = SPEC) -> Any:
    """The spec as `launch --backend local --seeds 2` loads it (each config runs per seed)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "search.yaml"
        path.write_text(text)
        return spec.load_sweep(str(path), seeds=2, seed_flag="seed", local=True).spec


def test_the_plan_covers_bounds_every_value_a_seed_and_the_tensorboard_dir() -> None:
    plan = preflight.plan(_spec(), seed_flag="seed", tensorboard_dir="/tb")
    assert [f.text for f in plan.base] == [
        "--epochs=3", "--lr=0.001", "--depth=2", "--act=relu", "--seed=0", "--tensorboard_dir=/tb",
    ]  # fmt: skip
    # The int's top is the last step below max (2, 5, 8).
    assert [(i, f.text) for i, f in plan.variants] == [
        (1, "--lr=0.1"),
        (2, "--depth=8"),
        (3, "--act=gelu"),
    ]
    assert len(plan.sets()) == 4
    assert plan.base[1].origin == ("parameters", 0, "feasibleSpace", "min")
    request = json.loads(plan.request(out="/x"))
    assert request["out"] == "/x" and request["variants"][2] == [3, "--act=gelu"]


def _ask(tmp_path: Path, program: str, text: str = SPEC) -> preflight.Verdict:
    """Run the real hook on `program` (a Draccus trainer) and judge its answer."""
    (tmp_path / "prog.py").write_text(program)
    loaded = _spec(text)
    plan = preflight.plan(loaded, seed_flag="seed", tensorboard_dir=str(tmp_path / "tb"))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    outcome = preflight_local.run(plan, ["python", "prog.py"], cwd=tmp_path, env=env, timeout_s=120)
    assert outcome.answer is not None, outcome.output
    assert not (tmp_path / "RAN").exists(), "the program's main ran"
    return preflight.verdict(loaded, plan, outcome, command=["python", "prog.py"], timeout_s=120)


HEAD = """\
import dataclasses, pathlib
import draccus

def main(cfg):
    pathlib.Path("RAN").touch()
"""


# A config whose `epochs` has no default: a fixed flag gives it. `{act}` names the field the
# `act` parameter of SPEC is meant for.
REQUIRED = """
@dataclasses.dataclass
class C:
    epochs: int
    lr: float = 0.1
    depth: int = 2
    {act}: str = "relu"
    seed: int = 0
    tensorboard_dir: str = ""

main(draccus.parse(config_class=C))
"""


def test_a_required_field_given_by_a_fixed_flag_is_not_a_problem(tmp_path: Path) -> None:
    verdict = _ask(tmp_path, HEAD + REQUIRED.format(act="act"))
    assert verdict.check == "draccus" and verdict.problems == [], verdict.problems


def test_with_a_required_field_a_wrong_flag_is_still_blamed_alone(tmp_path: Path) -> None:
    verdict = _ask(tmp_path, HEAD + REQUIRED.format(act="activation"))
    (problem,) = verdict.problems
    assert "parameters[2].name: the program's config has no field `act`" in problem.message
    assert problem.hint == "did you mean `activation`?"


def test_a_post_init_check_is_reported_for_the_combination(tmp_path: Path) -> None:
    verdict = _ask(
        tmp_path,
        HEAD
        + """
@dataclasses.dataclass
class C:
    epochs: int = 1
    lr: float = 0.1
    depth: int = 2
    act: str = "relu"
    seed: int = 0
    tensorboard_dir: str = ""

    def __post_init__(self):
        if self.depth > 6:
            raise ValueError("depth > 6 needs a residual model")

@draccus.wrap()
def run(cfg: C):
    main(cfg)

run()
""",
    )
    (problem,) = verdict.problems
    assert "--depth=8" in problem.message and "depth > 6 needs a residual model" in problem.message


# --------------------------------------------------------------------------- hostile answers


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    keys = ["sets", "ok", "error", "culprits", "values", "found", "type", "kind", "value", "repr",
            "known", "baseline", "choices", "optional", "text", "rest_ok", "--lr=0.001", "lr"]  # fmt: skip
    pick = rng.randrange(8 if depth < 4 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False, 0, -1, 1.5, float("1e308")])
    if pick == 2:
        return rng.choice(["", "x", "int", "str", "enum", "list", "None", "\x00", "é" * 3])
    if pick == 3:
        return rng.choice(keys)
    if pick == 4:
        return rng.randrange(-5, 5)
    if pick in (5, 6):
        return {rng.choice(keys): _garbage(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_garbage(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_300_garbage_answers_never_raise_and_an_intact_answer_line_is_always_found() -> None:
    loaded = _spec()
    plan = preflight.plan(loaded, seed_flag="seed", tensorboard_dir="/tb")
    good = {"version": 1, "known": ["epochs"], "baseline": {"ok": True}, "sets": []}
    for seed in range(300):
        rng = random.Random(seed)
        answer = _garbage(rng)
        if not isinstance(answer, dict):
            answer = {"sets": answer}
        verdict = preflight.verdict(
            loaded, plan, preflight.Outcome(answer=answer), command=["python"], timeout_s=1
        )
        assert verdict.check == "draccus"
        # Garbage lines around one intact answer line: that line is the one read.
        noise = [json.dumps(_garbage(rng), default=str)[:200] for _ in range(rng.randrange(6))]
        noise += [preflight.MARKER + "{broken", "\x1b[31m" + preflight.MARKER]
        rng.shuffle(noise)
        lines = [*noise, preflight.MARKER + json.dumps(good), *noise[: rng.randrange(3)]]
        lines = [line for line in lines if not line.startswith(preflight.MARKER + "{broken")]
        assert preflight.find_answer("\n".join(lines)) == good


@pytest.mark.parametrize(
    ("text", "listed"),
    [
        ("usage: t [-h] [--lr LR] [--epochs EPOCHS] [--depth D] [--act {relu,gelu}] [--seed S] "
         "[--tensorboard_dir DIR]", True),
        ("Options:\n  --lr FLOAT\n  --epochs INTEGER\n  --depth INTEGER\n  --act TEXT\n  --seed INTEGER\n"
         "  --tensorboard-dir TEXT", False),
    ],
)  # fmt: skip
def test_a_program_without_draccus_must_list_every_flag_in_its_help(
    text: str, listed: bool
) -> None:
    loaded = _spec()
    plan = preflight.plan(loaded, seed_flag="seed", tensorboard_dir="/tb")
    verdict = preflight.judge_help(plan, text, loaded)
    assert verdict.check == "help"
    if listed:
        assert verdict.problems == []
    else:
        (problem,) = verdict.problems
        assert "does not list --tensorboard_dir" in problem.message
        assert problem.hint is not None and "tensorboard_dir" in problem.hint
