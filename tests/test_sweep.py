"""`load_sweep` and `Sweep` (a spec after apply_seeds, with its counts), and where a spec keeps its
source (file:line of each field): on the spec itself, through copies, not in `==`."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path

import pytest

from launch import spec
from launch.errors import SpecError

SPECS = Path(__file__).parent / "specs"
OBJ = "objective: {type: minimize, objectiveMetricName: loss}\n"
LR = "parameters:\n  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1}\n"


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(text)
    return str(path)


def _by_hand(
    path: str, *, seeds: int | None, seed_flag: str, local: bool
) -> tuple[spec.LaunchSpec, spec.Counts]:
    """What launch did before load_sweep: apply_seeds(load(path)), then resolve_counts."""
    loaded = spec.apply_seeds(spec.load(path), seeds=seeds, seed_flag=seed_flag, local=local)
    return loaded, spec.resolve_counts(loaded)


@pytest.mark.parametrize(
    ("name", "seeds", "local"),
    [
        ("random.yaml", None, False),
        ("random.yaml", 3, True),
        ("seeds.yaml", None, False),
        ("seeds.yaml", 7, False),
        ("grid_seeds.yaml", None, False),
        ("grid_step.yaml", 2, False),
        ("hyperband.yaml", None, False),
        ("experiment_doc.yaml", None, True),
    ],
)
def test_load_sweep_is_load_then_apply_seeds_then_resolve_counts(
    name: str, seeds: int | None, local: bool
) -> None:
    path = str(SPECS / name)
    sweep = spec.load_sweep(path, seeds=seeds, seed_flag="seed", local=local)
    loaded, counts = _by_hand(path, seeds=seeds, seed_flag="seed", local=local)
    assert sweep.spec == loaded
    assert sweep.counts == counts
    assert sweep.seed_flag == "seed"
    assert sweep.source is spec.source_of(sweep.spec)
    assert sweep.source is not None and sweep.source.filename == path


def test_a_seed_sweep_resolves_to_a_grid_over_the_seed_flag() -> None:
    sweep = spec.load_sweep(str(SPECS / "seeds.yaml"), seeds=None, seed_flag="rng", local=False)
    assert [p.name for p in sweep.spec.parameters] == ["rng"]
    assert sweep.spec.algorithm.algorithmName == "grid"
    assert sweep.spec.seeds is None
    assert sweep.counts == spec.Counts(parallel=5, max_trials=5, max_failed=3)
    assert sweep.seed_flag == "rng"


def test_local_search_times_seeds_keeps_the_seeds() -> None:
    sweep = spec.load_sweep(str(SPECS / "random.yaml"), seeds=2, seed_flag="seed", local=True)
    assert sweep.spec.seeds == (0, 1)
    assert sweep.counts.max_trials == 40  # maxTrialCount 20 configs x 2 seeds


def test_sweep_is_frozen() -> None:
    sweep = spec.load_sweep(str(SPECS / "random.yaml"), seeds=None, seed_flag="seed", local=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.seed_flag = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seeds", "local"),
    [
        (OBJ + LR + "seeds: 3\n", None, False),  # random x seeds on Katib
        (OBJ, None, False),  # nothing to search
        (OBJ + LR + "maxTrialCount: 0\n", None, True),  # a field rule
        (OBJ + "seeds: 2\nfixed: {seed: 1}\n", None, False),  # the seed flag clashes
    ],
)
def test_load_sweep_fails_as_load_and_apply_seeds_do(
    tmp_path: Path, text: str, seeds: int | None, local: bool
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as by_hand:
        _by_hand(path, seeds=seeds, seed_flag="seed", local=local)
    with pytest.raises(SpecError) as caught:
        spec.load_sweep(path, seeds=seeds, seed_flag="seed", local=local)
    assert (caught.value.message, caught.value.hint) == (by_hand.value.message, by_hand.value.hint)
    assert caught.value.message.startswith((path, "--seeds: "))


def test_katib_search_times_cli_seeds_is_the_search_then_a_seed_study(tmp_path: Path) -> None:
    """`--seeds` with a non-grid search on Katib: the search without seeds now, and the seeds for
    `launch seeds` afterwards (no longer refused); the same on the local backend keeps them."""
    path = _write(tmp_path, OBJ + LR)
    sweep = spec.load_sweep(path, seeds=3, seed_flag="seed", local=False)
    assert sweep.then_seeds == 3 and sweep.spec.seeds is None
    assert [p.name for p in sweep.spec.parameters] == ["lr"]
    assert sweep.counts == spec.resolve_counts(sweep.spec)
    local = spec.load_sweep(path, seeds=3, seed_flag="seed", local=True)
    assert local.then_seeds is None and local.spec.seeds == (0, 1, 2)
    # apply_seeds itself still refuses it: one Katib Experiment cannot run it.
    with pytest.raises(SpecError, match="cannot be one Katib Experiment"):
        spec.apply_seeds(spec.load(path), seeds=3, seed_flag="seed")
    with pytest.raises(SpecError, match="clashes"):
        spec.load_sweep(path, seeds=3, seed_flag="lr", local=False)


def test_load_sweep_of_a_missing_file() -> None:
    with pytest.raises(SpecError) as caught:
        spec.load_sweep("no/such/search.yaml", seeds=None, seed_flag="seed", local=False)
    assert caught.value.message == "no/such/search.yaml: no such file"


# --------------------------------------------------------------------------- the spec's source


def test_the_source_survives_model_copy_and_apply_seeds(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        OBJ
        + "algorithm: {algorithmName: grid}\n"
        + "parameters:\n  - name: mode\n    parameterType: categorical\n"
        + '    feasibleSpace: {list: [fast, "on"]}\n',
    )
    loaded = spec.load(path)
    source = spec.source_of(loaded)
    assert source is not None and source.filename == path
    assert spec.source_of(loaded.model_copy(update={"maxTrialCount": 2})) is source
    seeded = spec.apply_seeds(loaded, seeds=2)
    assert [p.name for p in seeded.parameters] == ["mode", "seed"]
    assert spec.source_of(seeded) is source
    # coercion_warnings after apply_seeds still names file:line (`on` is on line 6).
    (warning,) = spec.coercion_warnings(seeded)
    assert warning.startswith(f"{path}:6: parameters[0].feasibleSpace.list[1]: `--mode=on`")


def test_a_spec_built_in_code_has_no_source() -> None:
    built = spec.LaunchSpec(objective=spec.Objective(type="minimize", objectiveMetricName="loss"))
    assert spec.source_of(built) is None
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(built)
    assert caught.value.message == (
        "search.yaml: parameters: nothing to search: no parameters and no seeds"
    )


def test_equality_ignores_where_a_spec_was_read_from() -> None:
    text = OBJ + LR + "maxTrialCount: 4\n"
    a = spec.parse(text, filename="a.yaml")
    b = spec.parse("\n\n" + text, filename="b.yaml")
    built = spec.LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 1}}
            ],
            "maxTrialCount": 4,
        }
    )
    assert spec.source_of(a) is not spec.source_of(b)
    assert a == b == built
    assert a != built.model_copy(update={"maxTrialCount": 5})
    assert a != "not a spec"


def test_the_source_goes_with_the_spec() -> None:
    """No registry outlives a spec: the source is an attribute of the spec itself."""
    loaded = spec.parse(OBJ + LR)
    found = spec.source_of(loaded)
    assert found is not None
    source = weakref.ref(found)
    del found
    del loaded
    gc.collect()
    assert source() is None
