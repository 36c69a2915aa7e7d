"""launch.podspec: trial pod options checked once into a frozen TrialResources, with errors that
name where each value came from, and the pod spec parts rendered from it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from launch import katib, podspec, yamltext
from launch.errors import UsageError
from tests.test_katib import (
    BRANCH,
    CASES,
    COMMAND,
    COMMIT,
    GOLDEN,
    IMAGE,
    MLFLOW,
    NAME,
    NAMESPACE,
    USER,
    load_spec,
    render,
)

POD_OPTIONS = {*podspec.FLAGS, "extra_env"} - {"env"}


@pytest.mark.parametrize("case", ["pod_options", "gpus8", "random"])
def test_resources_render_the_same_experiment_as_keyword_options(case: str) -> None:
    """`render_experiment(resources=...)` and the older keyword options give the golden bytes."""
    options: dict[str, Any] = {
        "name": NAME,
        "namespace": NAMESPACE,
        "image": IMAGE,
        "command": COMMAND,
        "gpus": 1,
        "commit": COMMIT,
        "branch": BRANCH,
        "user": USER,
        "mlflow_tracking_uri": MLFLOW,
        **CASES[case],
    }
    pod = {key: options.pop(key) for key in list(options) if key in POD_OPTIONS}
    doc = katib.render_experiment(
        spec=load_spec(case), resources=podspec.trial_resources(**pod), **options
    )
    assert yamltext.to_yaml(doc) == (GOLDEN / f"{case}.yaml").read_text()
    assert doc == render(case)


def test_resources_are_typed_and_frozen() -> None:
    res = podspec.trial_resources(
        gpus=2,
        cpus=8.0,
        memory=" 64Gi",
        extra_env={"A": "1"},
        secret_env=["s", "t", "s"],
        volumes=["data:/data/:ro"],
        node_selector={"zone": "a"},
        tolerations=["spot"],
        trial_timeout_s=90,
    )
    assert res.cpus == "8" and res.memory == "64Gi" and res.secret_env == ("s", "t")
    assert res.volumes == (podspec.VolumeMount("data", "/data", read_only=True),)
    assert res.env == (("A", "1"),) and res.node_selector == (("zone", "a"),)
    assert podspec.pod_scheduling(res) == {
        "nodeSelector": {"zone": "a"},
        "tolerations": [{"key": "spot", "operator": "Exists"}],
    }
    assert podspec.container_resources(res) == {
        "requests": {"cpu": "8", "memory": "64Gi"},
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "2"},
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.gpus = 3  # type: ignore[misc]
    assert podspec.trial_resources() == podspec.TrialResources()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"cpus": "-1"}, "--cpus: '-1' is not a CPU count"),
        ({"memory": "16GB"}, "--memory: '16GB' is not an amount of memory"),
        ({"volumes": ["data"]}, "--volume 'data': expected CLAIM:/path[:ro]"),
        ({"tolerations": ["a:Never"]}, "--toleration 'a:Never': unknown taint effect"),
        ({"node_selector": {"a": "b c"}}, "--node-selector a=b c: not a node label"),
        ({"extra_env": {"KATIB_NAMESPACE": "x"}}, "--env KATIB_NAMESPACE: set by launch"),
        ({"secret_env": ["Bad"]}, "--secret-env 'Bad': not a valid Secret name"),
        ({"queue": "Q"}, "--queue 'Q': not a valid Kueue LocalQueue name"),
        ({"trial_timeout_s": 0}, "--trial-timeout: expected at least 1 second"),
        ({"image_pull_policy": "Sometimes"}, "--image-pull-policy 'Sometimes': not a pull"),
        ({"retries": -1}, "--retries: expected a whole number from 0 to 20, got -1"),
    ],
)
def test_errors_name_the_flag_by_default(options: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError) as info:
        podspec.trial_resources(**options)
    assert info.value.message.startswith(says), info.value.message


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ({"volumes": ["data"]}, "volumes", "'data': expected CLAIM:/path[:ro]"),
        ({"cpus": "lots"}, "cpus", ": 'lots' is not a CPU count"),
        ({"memory": "12m"}, "memory", ": 12m means 12 thousandths of a byte"),
        ({"tolerations": ["=x"]}, "tolerations", "'=x': '' is not a taint key"),
        ({"extra_env": {"1A": "x"}}, "env", "1A: not an environment variable name"),
        ({"queue": "Q"}, "queue", "'Q': not a valid Kueue LocalQueue name"),
        ({"retries": 21}, "retries", ": expected a whole number from 0 to 20, got 21"),
    ],
)
def test_errors_name_the_origin_given(options: dict[str, Any], field: str, says: str) -> None:
    origin = podspec.setting_origin(
        {"volumes": "volume", "tolerations": "toleration"}.get(field, field),
        "/home/ada/proj/.launch.toml",
    )
    with pytest.raises(UsageError) as info:
        podspec.trial_resources(**options, origins={field: origin})
    assert info.value.message.startswith(origin), info.value.message
    assert says in info.value.message
    assert "`/home/ada/proj/.launch.toml` key " in info.value.message
    assert not info.value.message.startswith("--")


def test_list_fields_take_one_origin_per_item() -> None:
    project = "`.launch.toml` key volume"
    with pytest.raises(UsageError) as info:
        podspec.trial_resources(
            volumes=["data:/data", "scratch:/data"], origins={"volumes": [project, "--volume"]}
        )
    assert info.value.message == (
        "--volume 'scratch:/data': /data is already the mount path of "
        "`.launch.toml` key volume 'data:/data'"
    )
    with pytest.raises(UsageError, match=r"^`\.launch\.toml` key memory 32Gi exceeds --memory"):
        podspec.trial_resources(
            memory="16Gi", shm_size="32Gi", origins={"shm_size": "`.launch.toml` key memory"}
        )


def test_origins_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fields: volume"):
        podspec.trial_resources(origins={"volume": "x"})
    with pytest.raises(ValueError, match="1 origins for 2 items"):
        podspec.trial_resources(volumes=["a:/a", "b:/b"], origins={"volumes": ["x"]})
    with pytest.raises(ValueError, match="one origin"):
        podspec.trial_resources(cpus=1, origins={"cpus": ["x"]})


def test_retries_are_the_trial_jobs_backoff_limit() -> None:
    """`retries` (default 3) is a whole number 0..20: pod failures that are neither a disruption
    nor the training container's own error (tests/test_pod_failure_policy.py)."""
    assert podspec.trial_resources().retries == podspec.DEFAULT_RETRIES == 3
    assert podspec.TrialResources().retries == podspec.DEFAULT_RETRIES
    for ok in (0, 1, podspec.MAX_RETRIES):
        assert podspec.trial_resources(retries=ok).retries == ok
        job = katib.render_experiment(
            spec=load_spec("random"),
            name=NAME,
            namespace=NAMESPACE,
            image=IMAGE,
            command=COMMAND,
            commit=COMMIT,
            branch=BRANCH,
            user=USER,
            mlflow_tracking_uri=MLFLOW,
            resources=podspec.trial_resources(retries=ok),
        )["spec"]["trialTemplate"]["trialSpec"]
        assert job["spec"]["backoffLimit"] == ok
    for bad in (-1, 21, True, "3", 2.0, None):
        with pytest.raises(UsageError) as info:
            podspec.trial_resources(retries=bad)
        assert info.value.message.startswith("--retries: expected a whole number from 0 to 20")
        assert "--retries 3" in (info.value.hint or "")
    with pytest.raises(UsageError, match=r"^env LAUNCH_RETRIES: expected"):
        podspec.trial_resources(retries=99, origins={"retries": "env LAUNCH_RETRIES"})


def test_setting_origin() -> None:
    assert podspec.setting_origin("retries", "flag") == "--retries"
    assert podspec.setting_origin("retries", "/p/.launch.toml") == "`/p/.launch.toml` key retries"
    assert podspec.setting_origin("volume", "flag") == "--volume"
    assert podspec.setting_origin("volume", "env LAUNCH_VOLUME") == "env LAUNCH_VOLUME"
    assert podspec.setting_origin("toleration", "/p/pyproject.toml [tool.launch]") == (
        "`/p/pyproject.toml [tool.launch]` key toleration"
    )


def test_render_refuses_resources_and_options_together() -> None:
    with pytest.raises(TypeError, match="not both"):
        render("random", resources=podspec.trial_resources(), cpus=2)


def test_make_plan_renders_the_checked_resources() -> None:
    from launch import settings as launch_settings
    from launch.plan import GitFacts, make_plan

    settings = launch_settings.resolve(
        flags={"registry": "registry.local:5000", "registry_pull": "registry.local:5000",
               "namespace": NAMESPACE, "mlflow_tracking_uri": MLFLOW},
        env={}, project=None, user=None,
    )  # fmt: skip
    facts = GitFacts(commit=COMMIT, branch="main", remote_url=None, repo_name="proj")
    resources = podspec.trial_resources(gpus=2, cpus=4, volumes=["data:/data"])
    plan = make_plan(
        spec=load_spec("random"), command=COMMAND, git=facts, settings=settings, name=NAME,
        user=USER, resources=resources, image_digest="sha256:" + "0" * 64,
    )  # fmt: skip
    trial = plan.experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    (container,) = trial["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["cpu"] == "4"
    assert {"name": "pvc-data", "mountPath": "/data"} in [
        {k: m[k] for k in ("name", "mountPath")} for m in container["volumeMounts"]
    ]
    with pytest.raises(UsageError, match=r"^`\.launch\.toml` key volume 'data'"):
        podspec.trial_resources(
            gpus=2, volumes=["data"], origins={"volumes": "`.launch.toml` key volume"}
        )
