"""launch.contract: the trial contract's argv and environment, the same for both backends."""

from __future__ import annotations

from typing import Any

import pytest

from launch import contract


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-3, "-3"),
        (1e-05, "1e-05"),
        (0.1, "0.1"),
        (1.0, "1.0"),
        (2.5e10, "25000000000.0"),
        ("adam", "adam"),
        ("1e-4", "1e-4"),
        ("", ""),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert contract.format_value(value) == text


def test_trial_argv() -> None:
    argv = contract.trial_argv(
        ["python", "train.py", "--x"],
        {"optim.lr": 0.001, "layers": 4, "use_amp": True, "act": "relu"},
        "/tmp/tb",
    )
    assert argv == [
        "python",
        "train.py",
        "--x",
        "--optim.lr=0.001",
        "--layers=4",
        "--use_amp=true",
        "--act=relu",
        "--tensorboard_dir=/tmp/tb",
    ]
    assert contract.trial_argv([], {}, "/d") == ["--tensorboard_dir=/d"]


def test_merge_params_puts_fixed_first() -> None:
    assert list(contract.merge_params({"epochs": 3}, {"lr": 0.1})) == ["epochs", "lr"]
    with pytest.raises(ValueError, match="lr"):
        contract.merge_params({"lr": 1}, {"lr": 0.1})


def test_trial_env_in_contract_order_without_unset_values() -> None:
    env = contract.trial_env(
        experiment="exp", namespace="research", commit="abc", image="img", tracking_uri=None
    )
    assert list(env.items()) == [
        ("KATIB_EXPERIMENT_NAME", "exp"),
        ("KATIB_NAMESPACE", "research"),
        ("LAUNCH_GIT_COMMIT", "abc"),
        ("LAUNCH_IMAGE", "img"),
        ("MLFLOW_EXPERIMENT_NAME", "exp"),
    ]
    local = contract.trial_env(
        trial="exp-0001",
        experiment="exp",
        namespace=contract.LOCAL_NAMESPACE,
        commit="abc",
        tracking_uri="sqlite:///x.db",
        mlflow_experiment="other",
    )
    assert local == {
        "KATIB_TRIAL_NAME": "exp-0001",
        "KATIB_EXPERIMENT_NAME": "exp",
        "KATIB_NAMESPACE": "local",
        "LAUNCH_GIT_COMMIT": "abc",
        "MLFLOW_TRACKING_URI": "sqlite:///x.db",
        "MLFLOW_EXPERIMENT_NAME": "other",
    }
    assert set(local) | {"LAUNCH_IMAGE", "LAUNCH_KATIB_URL"} == contract.RESERVED_ENV


def test_both_backends_give_a_trial_the_contracts_env(tmp_path: Any) -> None:
    """The local coordinator's env holds the contract's variables, as the Experiment's does."""
    from launch import katib, local
    from tests.test_katib import NAMESPACE, load_spec, render

    job = local.LocalExperiment.from_meta(
        {
            "name": "exp",
            "spec": load_spec("random").model_dump(mode="json"),
            "command": ["python", "train.py"],
            "workdir": str(tmp_path),
            "commit": "abc",
            "gpus_per_trial": 0,
            "parallel": 1,
            "max_trials": 1,
            "max_failed": 1,
            "tracking_uri": "sqlite:///x.db",
            "env": {"HF_HOME": "/data"},
        }
    )
    env = local.trial_env({"PATH": "/bin"}, job, "exp-0001", None)
    assert {k: env[k] for k in contract.RESERVED_ENV if k in env} == contract.trial_env(
        trial="exp-0001",
        experiment="exp",
        namespace="local",
        commit="abc",
        tracking_uri="sqlite:///x.db",
    )
    assert env["HF_HOME"] == "/data"
    cluster = render("random")["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    names = {item["name"] for item in cluster["containers"][0]["env"]}
    assert names == contract.RESERVED_ENV - {"KATIB_TRIAL_NAME", "LAUNCH_KATIB_URL"}
    assert cluster["containers"][0]["name"] == katib.PRIMARY_CONTAINER
    assert NAMESPACE in {item["value"] for item in cluster["containers"][0]["env"]}
