"""launch.katib: golden Experiments, every Katib fact on them, the args string, dry-run lines,
and trial pod options as rendered (status: test_katib_status.py; names: test_names.py).

Goldens: tests/golden/<case>.yaml rendered from tests/specs/<case>.yaml; regenerate on purpose with
`make goldens` (LAUNCH_UPDATE_GOLDENS=1), never in CI.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from launch import contract, katib, names, podspec, spec, yamltext
from launch.contract import ParamValue
from launch.errors import UsageError
from launch.spec import LaunchSpec, Parameter

HERE = Path(__file__).parent
SPECS = HERE / "specs"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("LAUNCH_UPDATE_GOLDENS") == "1"
K8S_VERSION = "1.33.0"  # a version kubernetes-validate ships schemas for

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BRANCH = "feature/seed-sweeps"
USER = "ada"
NAMESPACE = "research"
IMAGE = "registry.local:5000/proj@sha256:" + "3f" * 32
MLFLOW = "http://mlflow.mlflow.svc.cluster.local:5000"
NAME = names.experiment_name(stem="proj", commit=COMMIT, suffix="a1b2")
COMMAND = ["python", "train.py"]

# Render options per golden case (the spec file is tests/specs/<case>.yaml).
CASES: dict[str, dict[str, Any]] = {
    "random": {"command": ["python", "-u", "train.py", "--note=costs $5 (it's fine)"]},
    "grid_step": {},
    "categorical": {},
    "dotted": {},
    "bayesianoptimization": {},
    "cmaes": {},
    "tpe": {},
    "multivariate_tpe": {},
    "sobol": {},
    "seeds": {},
    "grid_seeds": {},
    "hyperband": {},  # Katib's own example (examples/v1beta1/hp-tuning/hyperband.yaml)
    "gpus8": {
        "gpus": 8,
        "cpus": 32,
        "memory": "256Gi",
        "extra_env": {"NCCL_DEBUG": "INFO"},
        "mlflow_experiment_name": "llm-sweeps",
    },
    "experiment_doc": {"gpus": 0},
    "pod_options": {
        "gpus": 2,
        "cpus": "7500m",
        "memory": "64Gi",
        "shm_size": "16Gi",
        "extra_env": {"HF_HOME": "/data/hf"},
        "secret_env": ["hf-token", "wandb-api"],
        "volumes": ["datasets:/data:ro", "checkpoints:/ckpt", "datasets:/mnt/also-data"],
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": ["nvidia.com/gpu:NoSchedule", "dedicated=research:NoExecute", "spot"],
        "queue": "research",
        "priority": "high",
        "service_account": "trainer",
        "image_pull_policy": "IfNotPresent",
    },
}


def load_spec(case: str) -> LaunchSpec:
    path = SPECS / f"{case}.yaml"
    return spec.parse(path.read_text(), filename=str(path))


def render(case: str, **overrides: Any) -> dict[str, Any]:
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
    }
    options.update(CASES.get(case, {}))
    options.update(overrides)
    return katib.render_experiment(spec=load_spec(case), **options)


def trial_job(doc: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = doc["spec"]["trialTemplate"]["trialSpec"]
    return job


def container(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = trial_job(doc)["spec"]["template"]["spec"]["containers"][0]
    return found


# --------------------------------------------------------------------------- goldens


def test_every_spec_has_a_case() -> None:
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = yamltext.to_yaml(render(case))
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run `make goldens`"
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_round_trips(case: str) -> None:
    """The YAML text means the dict (numbers-as-strings stay strings for any reader)."""
    path = GOLDEN / f"{case}.yaml"
    assert yaml.safe_load(path.read_text()) == render(case)


# --------------------------------------------------------------------------- Katib facts

ANY = object()  # a free-form map (labels, annotations) or a Kubernetes object validated elsewhere

# Every key Katib v0.19 knows (pkg/apis/controller/experiments/v1beta1/experiment_types.go,
# pkg/apis/controller/common/v1beta1/common_types.go); unknown ones are dropped silently.
KNOWN_KEYS: dict[str, Any] = {
    "apiVersion": None,
    "kind": None,
    "metadata": {"name": None, "namespace": None, "labels": ANY, "annotations": ANY},
    "spec": {
        "parameters": [
            {
                "name": None,
                "parameterType": None,
                "feasibleSpace": {
                    "max": None,
                    "min": None,
                    "list": [None],
                    "step": None,
                    "distribution": None,
                },
            }
        ],
        "objective": {
            "type": None,
            "goal": None,
            "objectiveMetricName": None,
            "additionalMetricNames": [None],
            "metricStrategies": [{"name": None, "value": None}],
        },
        "algorithm": {"algorithmName": None, "algorithmSettings": [{"name": None, "value": None}]},
        "earlyStopping": ANY,
        "trialTemplate": {
            "retain": None,
            "trialSpec": ANY,
            "configMap": ANY,
            "trialParameters": [{"name": None, "description": None, "reference": None}],
            "primaryPodLabels": ANY,
            "primaryContainerName": None,
            "successCondition": None,
            "failureCondition": None,
        },
        "parallelTrialCount": None,
        "maxTrialCount": None,
        "maxFailedTrialCount": None,
        "metricsCollectorSpec": {
            "source": {
                "httpGet": ANY,
                "fileSystemPath": {"path": None, "kind": None, "format": None},
                "filter": ANY,
            },
            "collector": {"kind": None, "customCollector": ANY},
        },
        "nasConfig": ANY,
        "resumePolicy": None,
    },
}

CONTRACT_ENV = {
    "KATIB_EXPERIMENT_NAME",
    "KATIB_NAMESPACE",
    "LAUNCH_GIT_COMMIT",
    "LAUNCH_IMAGE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
}
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PLACEHOLDER_RE = re.compile(
    r"\$\{trialParameters\.(.+?)\}"
)  # consts.TrialTemplateParamReplaceFormatRegex


def unknown_keys(value: Any, schema: Any, path: str = "") -> list[str]:
    if schema is ANY or schema is None:
        return []
    if isinstance(schema, list):
        assert isinstance(value, list), path
        return [
            k for i, item in enumerate(value) for k in unknown_keys(item, schema[0], f"{path}[{i}]")
        ]
    assert isinstance(value, dict), path
    found = [f"{path}.{key}" for key in value if key not in schema]
    for key, item in value.items():
        if key in schema:
            found += unknown_keys(item, schema[key], f"{path}.{key}")
    return found


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assert_katib_facts(doc: dict[str, Any], gpus: int) -> None:
    """Every rule of DESIGN "Katib facts" that can be checked on the rendered object."""
    assert doc["apiVersion"] == "kubeflow.org/v1beta1" and doc["kind"] == "Experiment"
    meta = doc["metadata"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 40
    assert meta["namespace"]
    for key, value in meta["labels"].items():
        assert LABEL_VALUE_RE.match(value) and len(value) <= 63, (key, value)
    assert {"launch/user", "launch/branch", "launch/commit"} <= set(meta["labels"])
    assert unknown_keys(doc, KNOWN_KEYS) == []

    spec_ = doc["spec"]
    # Counts and goal are numbers; parallel <= max; max and maxFailed always set.
    for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
        assert isinstance(spec_[key], int) and not isinstance(spec_[key], bool), key
    assert 1 <= spec_["parallelTrialCount"] <= spec_["maxTrialCount"]
    assert 0 <= spec_["maxFailedTrialCount"] <= spec_["maxTrialCount"]
    objective = spec_["objective"]
    assert objective["type"] in ("minimize", "maximize")
    if "goal" in objective:
        assert is_number(objective["goal"])
    metrics = [objective["objectiveMetricName"], *objective.get("additionalMetricNames", [])]
    strategies = {s["name"]: s["value"] for s in objective["metricStrategies"]}
    assert sorted(strategies) == sorted(metrics)
    assert set(strategies.values()) <= {"min", "max", "latest"}

    # Settings and feasibleSpace values are strings; int bounds are integer strings.
    for setting in spec_["algorithm"].get("algorithmSettings", []):
        assert isinstance(setting["name"], str) and isinstance(setting["value"], str)
    params = spec_["parameters"]
    assert params
    for param in params:
        space = param["feasibleSpace"]
        for key in ("min", "max", "step"):
            if key in space:
                assert isinstance(space[key], str), (param["name"], key)
                float(space[key])
                if param["parameterType"] == "int":
                    assert re.fullmatch(r"[+-]?\d+", space[key]), (param["name"], key)
        for item in space.get("list", []):
            assert isinstance(item, str)
        if param["parameterType"] in ("int", "double"):
            assert "min" in space and "max" in space and "list" not in space
        else:
            assert space.get("list") and not {"min", "max", "step"} & set(space)

    algorithm = spec_["algorithm"]["algorithmName"]
    models = [Parameter.model_validate(p) for p in params]
    if algorithm == "grid":
        for param in params:
            if param["parameterType"] == "double":
                assert "step" in param["feasibleSpace"]
        assert spec_["maxTrialCount"] <= math.prod(len(spec.grid_values(m)) for m in models)
        assert {s["name"] for s in spec_["algorithm"].get("algorithmSettings", [])} <= {
            "random_state"
        }
    if algorithm == "bayesianoptimization":
        for param in params:
            if param["parameterType"] == "double":
                assert float(param["feasibleSpace"]["min"]) > 0
    if algorithm == "cmaes":
        assert sum(p["parameterType"] in ("int", "double") for p in params) >= 2
    if algorithm in ("grid", "multivariate-tpe"):
        for param in params:
            assert param["feasibleSpace"].get("distribution", "uniform") in (
                "uniform",
                "logUniform",
            )

    # Collector: TensorFlowEvent on the Directory Katib watches, no format (validator.go).
    collector = spec_["metricsCollectorSpec"]
    assert collector["collector"] == {"kind": "TensorFlowEvent"}
    assert collector["source"] == {
        "fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}
    }
    assert "earlyStopping" not in spec_

    # Trial template: one trialParameter per parameter, references = parameter names.
    template = spec_["trialTemplate"]
    assert template["retain"] is True
    assert (
        template["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    assert template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    trial_params = template["trialParameters"]
    assert sorted(tp["reference"] for tp in trial_params) == sorted(p["name"] for p in params)
    tp_names = [tp["name"] for tp in trial_params]
    assert len(set(tp_names)) == len(tp_names)
    for name in tp_names:
        assert re.fullmatch(r"[A-Za-z0-9_]+", name), name
    # The webhook's own check: each name appears, and nothing else is left after substitution.
    text = json.dumps(template["trialSpec"])
    for name in tp_names:
        assert "${trialParameters." + name + "}" in text
        text = text.replace("${trialParameters." + name + "}", "test-value")
    assert PLACEHOLDER_RE.findall(text) == []

    # Trial Job.
    job = template["trialSpec"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert "name" not in job.get("metadata", {}) and "namespace" not in job.get("metadata", {})
    # Katib names the Job; the template may carry only Kueue's labels.
    assert set(job.get("metadata", {})) <= {"labels"}
    assert set(job.get("metadata", {}).get("labels", {})) <= {
        names.KUEUE_QUEUE_LABEL,
        names.KUEUE_PRIORITY_LABEL,
    }
    # Disruptions restart the pod uncounted, the trial's own error fails it at once, other pod
    # failures use the retries (tests/test_pod_failure_policy.py checks the rules themselves).
    assert job["spec"]["backoffLimit"] == podspec.DEFAULT_RETRIES
    assert job["spec"]["podFailurePolicy"] == katib.trial_failure_policy()
    pod = job["spec"]["template"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["labels"] == meta["labels"]
    assert pod["spec"]["restartPolicy"] == "Never"
    containers = pod["spec"]["containers"]
    assert [c["name"] for c in containers] == [template["primaryContainerName"]]
    main = containers[0]
    assert main["command"] == ["sh", "-c"]
    assert len(main["args"]) == 1
    assert main["args"][0].endswith(" --tensorboard_dir=/var/log/katib/tfevent/")
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert set(env) >= CONTRACT_ENV
    assert "KATIB_TRIAL_NAME" not in env  # injected by Katib's pod webhook
    assert env["KATIB_EXPERIMENT_NAME"] == meta["name"]
    assert env["KATIB_NAMESPACE"] == meta["namespace"]
    limits = main.get("resources", {}).get("limits", {})
    if gpus > 0:
        assert limits["nvidia.com/gpu"] == str(gpus)
    else:
        assert "nvidia.com/gpu" not in limits
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_katib_facts(case: str) -> None:
    options = {"gpus": 1, **CASES[case]}
    assert_katib_facts(render(case), gpus=options["gpus"])


def test_dotted_names() -> None:
    doc = render("dotted")
    refs = {tp["reference"]: tp["name"] for tp in doc["spec"]["trialTemplate"]["trialParameters"]}
    assert refs == {"optim.lr": "optim__lr", "model.encoder.layers": "model__encoder__layers"}
    args = container(doc)["args"][0]
    assert "--optim.lr=${trialParameters.optim__lr}" in args
    assert "--model.encoder.layers=${trialParameters.model__encoder__layers}" in args


def test_gpus_cpus_memory_env() -> None:
    main = container(render("gpus8"))
    assert main["resources"] == {
        "requests": {"cpu": "32", "memory": "256Gi"},
        "limits": {"memory": "256Gi", "nvidia.com/gpu": "8"},
    }
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["NCCL_DEBUG"] == "INFO"
    assert env["MLFLOW_EXPERIMENT_NAME"] == "llm-sweeps"
    assert "resources" not in container(render("random", gpus=0))


def test_trial_timeout_is_the_jobs_active_deadline() -> None:
    job = trial_job(render("random", trial_timeout_s=1800))
    assert job["spec"]["activeDeadlineSeconds"] == 1800
    assert job["spec"]["backoffLimit"] == podspec.DEFAULT_RETRIES
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert "activeDeadlineSeconds" not in trial_job(render("random"))["spec"]
    with pytest.raises(UsageError, match="--trial-timeout"):
        render("random", trial_timeout_s=0)


def test_pure_seed_sweep_is_a_grid_over_seed() -> None:
    doc = render("seeds")
    assert doc["spec"]["algorithm"]["algorithmName"] == "grid"
    assert [p["name"] for p in doc["spec"]["parameters"]] == ["seed"]
    assert doc["spec"]["maxTrialCount"] == 5
    assert "--lr=0.01 --seed=${trialParameters.seed}" in container(doc)["args"][0]


def test_seed_flag_is_configurable() -> None:
    doc = render("seeds", seed_flag="train.seed")
    assert [p["name"] for p in doc["spec"]["parameters"]] == ["train.seed"]
    assert "--train.seed=${trialParameters.train__seed}" in container(doc)["args"][0]


def test_grid_times_seeds_runs_every_point_once_per_seed() -> None:
    doc = render("grid_seeds")
    assert doc["spec"]["maxTrialCount"] == 2 * 3 * 3
    lines = katib.trial_command_lines(load_spec("grid_seeds"), COMMAND, seed_flag="seed")
    assert len(lines) == 18 and len({tuple(line) for line in lines}) == 18


def test_env_and_labels_escape_and_sanitise() -> None:
    doc = render("random", extra_env={"PROMPT": "$(HOME) costs $5"}, branch="feature/x y")
    env = {e["name"]: e["value"] for e in container(doc)["env"]}
    assert env["PROMPT"] == "$$(HOME) costs $$5"
    assert doc["metadata"]["labels"]["launch/branch"] == "feature-x-y"
    assert doc["metadata"]["annotations"]["launch/branch"] == "feature/x y"


@pytest.mark.parametrize(
    "overrides",
    [
        {"command": ["python", "train.py", "--x=${trialParameters.lr}"]},
        {"extra_env": {"X": "${trialParameters.lr}"}},
    ],
)
def test_user_text_may_not_hold_katib_placeholders(overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="trialParameters"):
        render("random", **overrides)


def test_extra_env_cannot_override_the_contract() -> None:
    with pytest.raises(UsageError) as info:
        render("random", extra_env={"KATIB_TRIAL_NAME": "x"})
    assert info.value.hint


def test_colliding_trial_parameter_names_are_refused() -> None:
    doc = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "parameters": [
            {"name": "a.b", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 2}},
            {"name": "a__b", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 2}},
        ],
        "maxTrialCount": 2,
    }
    with pytest.raises(UsageError, match="a__b"):
        katib.render_experiment(
            spec=LaunchSpec.model_validate(doc),
            name=NAME,
            namespace=NAMESPACE,
            image=IMAGE,
            command=COMMAND,
            gpus=0,
            commit=COMMIT,
            branch=BRANCH,
            user=USER,
            mlflow_tracking_uri=MLFLOW,
        )


# --------------------------------------------------------------------------- the args string


def kubernetes_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command/args (third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    var = text[i + 2 : end]
                    out.append(env.get(var, f"$({var})"))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


TRICKY = [
    "plain",
    "a b",
    "it's",
    'say "hi"',
    "$HOME",
    "$(HOME)",
    "$$",
    "${trialParameters_x}",
    "`id`",
    "$(id)",
    "*",
    ";echo pwned",
    "a&&b|c>d",
    "back\\slash",
    "tab\there\nnewline",
    "",
    "--flag=$(VAR)",
    "ünïcode",
]


def test_args_string_gives_the_program_exactly_the_users_argv() -> None:
    """Render, let Katib substitute and Kubernetes expand, then run it with `sh -c`."""
    printer = [sys.executable, "-c", "import sys,json; print(json.dumps(sys.argv[1:]))"]
    spec_ = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "parameters": [
                {
                    "name": "optim.lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": 0.1, "max": 1},
                },
                {
                    "name": "act",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["a b*", "relu"]},
                },
                {"name": "n", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 3}},
            ],
            "maxTrialCount": 3,
            "fixed": {"note": "costs $5 & $(HOME)", "flag": True, "ratio": 0.5},
        }
    )
    doc = katib.render_experiment(
        spec=spec_,
        name=NAME,
        namespace=NAMESPACE,
        image=IMAGE,
        command=[*printer, *TRICKY],
        gpus=0,
        commit=COMMIT,
        branch=BRANCH,
        user=USER,
        mlflow_tracking_uri=MLFLOW,
    )
    args = container(doc)["args"][0]
    sampled: dict[str, ParamValue] = {"optim.lr": 0.25, "act": "a b*", "n": 2}
    names = {"optim.lr": "optim__lr", "act": "act", "n": "n"}
    # Katib: plain text replacement of the placeholders in the template (manifest/generator.go).
    for param, value in sampled.items():
        args = args.replace("${trialParameters." + names[param] + "}", contract.format_value(value))
    # Kubernetes: $(VAR) expansion with the container's env, `$$` -> `$`.
    args = kubernetes_expand(args, {"HOME": "/EXPANDED", "VAR": "EXPANDED"})
    # Katib's pod webhook appends `&& echo completed > ...` to the joined args (pod/utils.go).
    result = subprocess.run(
        ["sh", "-c", args + " && :"], capture_output=True, text=True, check=True
    )
    expected = contract.trial_argv(
        [*printer, *TRICKY], contract.merge_params(spec_.fixed, sampled), contract.TFEVENT_DIR
    )
    assert json.loads(result.stdout) == expected[3:]


# --------------------------------------------------------------------------- dry-run trial lines


def test_grid_lines_list_every_combination() -> None:
    lines = katib.trial_command_lines(load_spec("grid_step"), COMMAND, seed_flag="seed")
    assert len(lines) == 5 * 3
    assert lines[0] == [
        *COMMAND,
        "--lr=0.01",
        "--layers=2",
        "--tensorboard_dir=/var/log/katib/tfevent/",
    ]
    assert lines[-1] == [
        *COMMAND,
        "--lr=0.05",
        "--layers=6",
        "--tensorboard_dir=/var/log/katib/tfevent/",
    ]


def test_seed_sweep_lines() -> None:
    lines = katib.trial_command_lines(load_spec("seeds"), COMMAND, seed_flag="seed")
    assert [line[2:4] for line in lines] == [["--lr=0.01", f"--seed={k}"] for k in range(5)]


@pytest.mark.parametrize("case", ["random", "tpe", "sobol", "dotted", "categorical", "cmaes"])
def test_sampled_lines_are_deterministic_and_inside_the_space(case: str) -> None:
    spec_ = load_spec(case)
    lines = katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4)
    assert lines == katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4)
    assert len(lines) == min(4, spec_.maxTrialCount or 4)
    for line in lines:
        flags = dict(arg[2:].split("=", 1) for arg in line[len(COMMAND) : -1])
        for param in spec_.parameters:
            text = flags[param.name]
            space = param.feasibleSpace
            if param.parameterType in ("categorical", "discrete"):
                assert text in (space.list or ())
            else:
                assert space.min is not None and space.max is not None
                assert float(space.min) <= float(text) <= float(space.max)
                if param.parameterType == "int":
                    assert re.fullmatch(r"-?\d+", text)
    other = katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4, rng_seed=1)
    assert other != lines or not spec_.parameters


def numpy_grid(param: Parameter) -> list[Any]:
    """Katib's convert_to_combinations, verbatim (pkg/suggestion/v1beta1/internal/search_space.py)."""
    np = pytest.importorskip("numpy")
    space = param.feasibleSpace
    assert space.min is not None and space.max is not None
    if param.parameterType == "int":
        return [str(v) for v in range(int(space.min), int(space.max) + 1, int(space.step or 1))]
    assert space.step is not None
    values = np.arange(float(space.min), float(space.max) + float(space.step), float(space.step))
    if values[-1] > float(space.max):
        values = values[:-1]
    # Katib's Assignment: str(value) of the numpy float (pkg/suggestion/v1beta1/internal/trial.py)
    return [str(v) for v in values]


@pytest.mark.parametrize(
    ("kind", "low", "high", "step"),
    [
        ("double", "0.1", "0.3", "0.1"),
        ("double", "0.01", "0.05", "0.01"),
        ("double", "0", "1", "0.3"),
        ("double", "0.001", "0.002", "0.0001"),
        ("double", "-1", "1", "0.25"),
        ("int", "2", "6", "2"),
        ("int", "1", "10", "3"),
        ("int", "0", "4", None),
    ],
)
def test_grid_lines_use_katib_grid_values(kind: str, low: str, high: str, step: str | None) -> None:
    space: dict[str, Any] = {"min": low, "max": high}
    if step is not None:
        space["step"] = step
    param = Parameter.model_validate({"name": "p", "parameterType": kind, "feasibleSpace": space})
    expected = numpy_grid(param)
    assert list(spec.grid_values(param)) == expected
    grid = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"},
            "parameters": [{"name": "p", "parameterType": kind, "feasibleSpace": space}],
        }
    )
    lines = katib.trial_command_lines(grid, ["t"], seed_flag="seed")
    assert [line[1] for line in lines] == [f"--p={value}" for value in expected]


def test_no_heavy_imports() -> None:
    """katib.py must not pull optuna or kubernetes onto the render path (startup time)."""
    code = (
        "import sys, launch.katib, launch.kaniko; "
        "bad = [m for m in ('optuna', 'kubernetes', 'numpy', 'mlflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- trial pod options


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = trial_job(doc)["spec"]["template"]["spec"]
    return found


def test_pod_options_render_where_kubernetes_and_kueue_read_them() -> None:
    doc = render("pod_options")
    job, pod, main = trial_job(doc), pod_spec(doc), container(doc)
    assert job["metadata"] == {
        "labels": {"kueue.x-k8s.io/queue-name": "research", "kueue.x-k8s.io/priority-class": "high"}
    }
    assert main["resources"] == {
        "requests": {"cpu": "7500m", "memory": "64Gi"},
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "2"},
    }
    assert main["envFrom"] == [
        {"secretRef": {"name": "hf-token"}},
        {"secretRef": {"name": "wandb-api"}},
    ]
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {
        "medium": "Memory",
        "sizeLimit": "16Gi",
    }
    data = volumes[mounts["/data"]["name"]]
    assert data["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert mounts["/data"]["readOnly"] is True and "readOnly" not in mounts["/ckpt"]
    # One volume per claim, however many mounts.
    assert mounts["/mnt/also-data"]["name"] == mounts["/data"]["name"]
    assert len(pod["volumes"]) == 3
    assert pod["serviceAccountName"] == "trainer"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert len(pod["tolerations"]) == 3


def test_no_pod_options_means_no_keys() -> None:
    doc = render("random", gpus=0)
    assert "metadata" not in trial_job(doc)
    assert set(pod_spec(doc)) == {"restartPolicy", "containers"}
    assert set(container(doc)) == {"name", "image", "command", "args", "env"}


@pytest.mark.parametrize(
    ("text", "toleration"),
    [
        (
            "nvidia.com/gpu=present:NoSchedule",
            {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            },
        ),
        (
            "nvidia.com/gpu:NoSchedule",
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        ),
        ("dedicated=ml", {"key": "dedicated", "operator": "Equal", "value": "ml"}),
        ("spot", {"key": "spot", "operator": "Exists"}),
        (
            "node.kubernetes.io/unreachable:NoExecute",
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
        ),
        (
            "a=b:PreferNoSchedule",
            {"key": "a", "operator": "Equal", "value": "b", "effect": "PreferNoSchedule"},
        ),
    ],
)
def test_parse_toleration(text: str, toleration: dict[str, str]) -> None:
    assert podspec.parse_toleration(text) == toleration
    kubernetes_validate.validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [toleration]},
        },
        K8S_VERSION,
        strict=True,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gpu:NoSchedul", "unknown taint effect 'NoSchedul'"),
        ("gpu:noschedule", "unknown taint effect"),
        ("gpu=yes:", "unknown taint effect ''"),
        ("", "not a taint key"),
        ("=x:NoSchedule", "not a taint key"),
        ("bad key", "not a taint key"),
        ("k=:NoSchedule", "not a taint value"),
        ("k=a b", "not a taint value"),
    ],
)
def test_parse_toleration_refuses_with_a_hint(text: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        podspec.parse_toleration(text)
    assert says in info.value.message and "--toleration" in info.value.message
    assert "--toleration KEY=VALUE:EFFECT" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data:/data", podspec.VolumeMount("data", "/data")),
        ("data:/data:ro", podspec.VolumeMount("data", "/data", read_only=True)),
        ("data:/data:rw", podspec.VolumeMount("data", "/data")),
        ("my.claim-1:/mnt/x/", podspec.VolumeMount("my.claim-1", "/mnt/x")),
        ("c://a//b", podspec.VolumeMount("c", "/a/b")),
    ],
)
def test_parse_volume(text: str, expected: podspec.VolumeMount) -> None:
    assert podspec.parse_volume(text) == expected


@pytest.mark.parametrize(
    ("volumes", "says"),
    [
        (["data"], "expected CLAIM:/path"),
        (["data:"], "expected CLAIM:/path"),
        ([":/data"], "expected CLAIM:/path"),
        (["data:relative/path"], "must be absolute"),
        (["data:/a:b"], "must be absolute"),
        (["Data:/data"], "not a PersistentVolumeClaim name"),
        (["data_set:/data"], "not a PersistentVolumeClaim name"),
        (["data:/"], "below `/`"),
        (["data:/a/../etc"], "without `..`"),
        (["data:/dev/shm"], "overlaps /dev/shm"),
        (["data:/dev"], "overlaps /dev/shm"),
        (["data:/var/log/katib/tfevent"], "overlaps /var/log/katib/tfevent"),
        (["data:/var/log/katib/tfevent/run1"], "overlaps /var/log/katib/tfevent"),
        (["data:/data", "ckpt:/data/"], "already the mount path"),
        (["data:/x/${trialParameters.lr}"], "may not contain `$`"),
    ],
)
def test_volume_errors_name_the_flag(volumes: list[str], says: str) -> None:
    with pytest.raises(UsageError) as info:
        render("random", volumes=volumes)
    assert says in info.value.message
    assert "--volume" in info.value.message + (info.value.hint or "")
    assert info.value.hint


def test_volume_names_stay_unique_and_valid() -> None:
    doc = render(
        "random",
        volumes=["a.b:/one", "a-b:/two", "x" * 70 + ":/three", "x" * 70 + "y:/four"],
    )
    names = [v["name"] for v in pod_spec(doc)["volumes"]]
    assert len(set(names)) == 4
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
    kubernetes_validate.validate(trial_job(doc), K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("overrides", "flag", "says"),
    [
        ({"cpus": "lots"}, "--cpus", "not a CPU count"),
        ({"cpus": 0}, "--cpus", "not a CPU count"),
        ({"cpus": "-1"}, "--cpus", "not a CPU count"),
        ({"memory": "16GB"}, "--memory", "not an amount of memory"),
        ({"memory": "16"}, "--memory", "is 16 bytes"),
        ({"memory": "16m"}, "--memory", "`m` is milli"),
        ({"shm_size": "lots"}, "--shm-size", "not an amount of memory"),
        ({"memory": "8Gi", "shm_size": "16Gi"}, "--shm-size", "exceeds --memory"),
        ({"secret_env": ["Bad_Name"]}, "--secret-env", "not a valid Secret name"),
        ({"node_selector": {"gpu type": "a"}}, "--node-selector", "key is invalid"),
        ({"node_selector": {"gpu": "a b"}}, "--node-selector", "value is invalid"),
        ({"queue": "Research"}, "--queue", "LocalQueue"),
        ({"queue": "q" * 64}, "--queue", "at most 63"),
        ({"priority": "high prio"}, "--priority", "WorkloadPriorityClass"),
        ({"service_account": "svc_acct"}, "--service-account", "ServiceAccount"),
        ({"image_pull_policy": "always"}, "--image-pull-policy", "not a pull policy"),
        ({"extra_env": {"1X": "y"}}, "--env", "not an environment variable name"),
    ],
)
def test_pod_option_errors_name_the_flag(overrides: dict[str, Any], flag: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        render("random", **overrides)
    assert says in info.value.message
    assert flag in info.value.message
    assert info.value.hint


def test_memory_units_hint_says_the_kubernetes_spelling() -> None:
    with pytest.raises(UsageError) as info:
        render("random", memory="16GB")
    assert "`16G`" in (info.value.hint or "") and "`16Gi`" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("cpus", "text"), [(8, "8"), (8.0, "8"), (0.5, "0.5"), ("500m", "500m"), ("2", "2")]
)
def test_cpus_render_as_quantities(cpus: Any, text: str) -> None:
    assert container(render("random", cpus=cpus))["resources"]["requests"]["cpu"] == text


def test_shm_without_memory_and_duplicate_secrets() -> None:
    doc = render("random", shm_size="2Gi", secret_env=["s", "s"])
    assert container(doc)["envFrom"] == [{"secretRef": {"name": "s"}}]
    assert pod_spec(doc)["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    ]


def test_queue_alone_labels_the_job() -> None:
    job = trial_job(render("random", queue="team-a"))
    assert job["metadata"] == {"labels": {names.KUEUE_QUEUE_LABEL: "team-a"}}
